"""A JSON API client holding one API key, for the tests of /v1."""

import json
from typing import Any
from urllib.parse import urlencode

from django.test import Client

from peridio_console.accounts.models import Membership, Organization
from tests.factories import ApiKeyFactory


class ApiClient:
    def __init__(self, membership: Membership, secret: str):
        self.membership = membership
        self.organization: Organization = membership.organization
        self.secret = secret
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")

    @classmethod
    def for_membership(cls, membership: Membership) -> "ApiClient":
        key = ApiKeyFactory(organization=membership.organization, user=membership.user)
        return cls(membership, key.secret)

    @staticmethod
    def _url(path: str, params: dict[str, Any] | None) -> str:
        return f"/v1{path}" + (f"?{urlencode(params)}" if params else "")

    def get(self, path: str, **params: Any):
        return self.client.get(self._url(path, params))

    def post(self, path: str, data: Any = None, **extra: Any):
        body = data if isinstance(data, bytes | str) else json.dumps(data)
        return self.client.post(
            self._url(path, None), body, content_type="application/json", **extra
        )

    def patch(self, path: str, data: Any = None):
        body = data if isinstance(data, bytes | str) else json.dumps(data)
        return self.client.patch(self._url(path, None), body, content_type="application/json")

    def put(self, path: str, data: Any = None):
        body = data if isinstance(data, bytes | str) else json.dumps(data)
        return self.client.put(self._url(path, None), body, content_type="application/json")

    def delete(self, path: str, data: Any = None, **params: Any):
        body = b"" if data is None else json.dumps(data)
        return self.client.delete(self._url(path, params), body, content_type="application/json")


def error_of(response) -> dict[str, Any]:
    """The error object of an error response, after checking the one shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "field"}, body
    return body["error"]
