"""Drive the upload protocol the way a client does, on either backend."""

import base64
import hashlib
import os
from urllib.parse import urlsplit

import httpx

from binaries import services, uploads
from binaries.models import Binary
from peridio_console.actors import Actor

MiB = 1 << 20


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split(data: bytes, part_size: int) -> list[bytes]:
    return [data[i : i + part_size] for i in range(0, len(data), part_size)] or []


def new_binary(version, actor: Actor, data: bytes, target: str = "arm-linux-gnueabihf") -> Binary:
    return services.binary_create(
        artifact_version=version, target=target, actor=actor, hash=sha256(data), size=len(data)
    )


def declare(binary: Binary, index: int, chunk: bytes) -> uploads.DeclaredPart:
    return uploads.part_declare(
        binary=binary,
        index=index,
        hash=sha256(chunk),
        size=len(chunk),
        base_url="http://testserver/",
    )


def put_bytes(client, declared: uploads.DeclaredPart, body: bytes) -> int:
    """PUT a part's bytes to its upload URL, as a client would; returns the HTTP status."""
    url = declared.upload_url
    if url.startswith("http://testserver/"):
        response = client.put(
            urlsplit(url).path, data=body, content_type="application/octet-stream"
        )
        return response.status_code
    checksum = base64.b64encode(bytes.fromhex(declared.part.hash)).decode()
    return httpx.put(url, content=body, headers={"x-amz-checksum-sha256": checksum}).status_code


def upload_all(client, binary: Binary, data: bytes, part_size: int = 5 * MiB) -> None:
    for index, chunk in enumerate(split(data, part_size), start=1):
        declared = declare(binary, index, chunk)
        assert put_bytes(client, declared, chunk) == 200


def random_bytes(n: int) -> bytes:
    return os.urandom(n)
