"""Drive the upload protocol the way a client does, on either backend."""

import base64
import hashlib
import os
from urllib.parse import urlsplit

import httpx

from binaries import services, uploads
from binaries.models import Binary
from peridio_console.accounts.actors import Actor

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


# --- Clients over real HTTP (a live server for the filesystem backend, moto for S3) ----------


def checksum_header(part_hash: str) -> dict[str, str]:
    """The signed header a presigned S3 UploadPart URL requires: the part's SHA-256, base64."""
    return {"x-amz-checksum-sha256": base64.b64encode(bytes.fromhex(part_hash)).decode()}


def put_http(url: str, body: bytes, part_hash: str, headers: dict | None = None) -> httpx.Response:
    """PUT bytes to an upload URL over real HTTP, as the CLI or a browser does."""
    sent = checksum_header(part_hash) if "X-Amz-Signature" in url else {}
    sent.update(headers or {})
    with httpx.Client(timeout=120) as http:
        return http.put(url, content=body, headers=sent)


def declare_at(
    binary: Binary, index: int, chunk: bytes, base_url: str, **extra
) -> uploads.DeclaredPart:
    """Declare a part whose filesystem upload URL points at `base_url` (a live server)."""
    return uploads.part_declare(
        binary=binary, index=index, hash=sha256(chunk), size=len(chunk), base_url=base_url, **extra
    )


def fresh(binary: Binary) -> Binary:
    """Another instance of the same row: each thread gets its own."""
    return Binary.objects.select_related("organization", "artifact_version__artifact").get(
        pk=binary.pk
    )


def upload_parallel(binary: Binary, chunks: list[bytes], base_url: str, order: list[int]) -> dict:
    """One thread per part: each declares its part, all wait at a barrier, then all PUT at once.

    Returns {index: HTTP status}.
    """
    import threading

    from django.db import connection

    barrier = threading.Barrier(len(order))
    statuses: dict[int, object] = {}
    lock = threading.Lock()

    def one(index: int) -> None:
        try:
            chunk = chunks[index - 1]
            declared = declare_at(fresh(binary), index, chunk, base_url)
            barrier.wait(timeout=60)
            outcome: object = put_http(declared.upload_url, chunk, declared.part.hash).status_code
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {exc}"
            barrier.abort()
        finally:
            connection.close()
        with lock:
            statuses[index] = outcome

    threads = [threading.Thread(target=one, args=(index,)) for index in order]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not any(thread.is_alive() for thread in threads)
    return statuses


def base_url_for(backend, live_server) -> str:
    """Where filesystem upload URLs point; S3 URLs point at the store whatever this is."""
    return live_server.url + "/" if backend.name == "filesystem" else "http://testserver/"


def read_back(binary: Binary) -> bytes:
    from binaries import storage

    with storage.get().open(binary) as stream:
        return b"".join(bytes(c) for c in storage.read_chunks(stream))


def raw_put(url: str, body: bytes, content_length: int | None) -> tuple[int, dict]:
    """PUT over a bare socket, saying whatever Content-Length we like (or none), then closing
    our side: a client that dies mid-part. Returns (status, JSON body)."""
    import json
    import socket

    parts = urlsplit(url)
    head = [
        f"PUT {parts.path} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/octet-stream",
        "Connection: close",
    ]
    if content_length is not None:
        head.append(f"Content-Length: {content_length}")
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        while chunk := sock.recv(1 << 16):
            received += chunk
    header, _, payload = bytes(received).partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1])
    return status, json.loads(payload) if payload.startswith(b"{") else {}
