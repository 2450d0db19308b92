"""Who did something: a user in the console, an API key, or the system itself."""

from dataclasses import dataclass, replace
from typing import Any

from django.http import HttpRequest

from peridio_console.accounts.models import ApiKey, EventSource
from peridio_console.accounts.throttle import client_address

# What the peridio CLI sends (peridio_cli/api.py USER_AGENT): its API calls are source "cli".
CLI_USER_AGENT = "peridio-cli/"


@dataclass(frozen=True)
class Actor:
    label: str
    user: Any = None
    api_key: ApiKey | None = None
    ip: str | None = None
    # Where the change came from: "api", "console", "cli", "admin" or "task" (None: not known).
    source: str | None = None
    user_agent: str | None = None

    def event_fields(self) -> dict[str, Any]:
        """Who, as every event row records it (binary events and audit events alike)."""
        return {
            "actor_user": self.user,
            "actor_api_key": self.api_key,
            "actor_label": self.label[:160],
            "source": self.source or "",
            "ip": self.ip,
            "user_agent": (self.user_agent or "")[:512],
        }

    def with_ip(self, ip: str | None) -> "Actor":
        return replace(self, ip=ip)

    def via(self, source: str, user_agent: str | None = None) -> "Actor":
        """The same actor, saying where the change came from (and the client's user agent)."""
        return replace(self, source=source, user_agent=user_agent)

    def from_request(self, request: HttpRequest, source: str) -> "Actor":
        """The same actor, with the request's client address and user agent, and `source`
        (api or console; an API call made by the peridio CLI is cli)."""
        agent = request.headers.get("User-Agent", "")
        if source == EventSource.API and agent.startswith(CLI_USER_AGENT):
            source = EventSource.CLI
        return replace(
            self, ip=client_address(request) or None, source=source, user_agent=agent or None
        )

    @classmethod
    def for_user(cls, user: Any) -> "Actor":
        return cls(label=user.get_username(), user=user)

    @classmethod
    def for_api_key(cls, api_key: ApiKey) -> "Actor":
        return cls(
            label=f"{api_key.user.get_username()} (API key {api_key.prefix})",
            user=api_key.user,
            api_key=api_key,
        )

    @classmethod
    def system(cls, what: str) -> "Actor":
        return cls(label=f"system: {what}", source=EventSource.TASK)
