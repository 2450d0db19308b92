"""The floor for bench/upload.py: a bare WSGI app that takes a PUT body the way our upload
endpoint does (1 MiB reads, SHA-256, written to disk) and nothing else: no Django, no database,
no signed URL.

    BARE_RECEIVER_DIR=/tmp/out gunicorn bench.bare_receiver:app -k gthread --workers 2 --threads 4

PUT /<name> with a Content-Length writes the body to $BARE_RECEIVER_DIR/<name> and answers
{"sha256": ..., "size": ...}. With BARE_RECEIVER_FSYNC=1 it fsyncs the file before answering,
as our endpoint does before it records a part valid (the durable floor).
"""

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
OUT = Path(os.environ.get("BARE_RECEIVER_DIR", "/tmp/bare-receiver"))
FSYNC = os.environ.get("BARE_RECEIVER_FSYNC") == "1"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    name = environ.get("PATH_INFO", "/").strip("/").replace("/", "_") or "body"
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    received = 0
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / name, "wb", buffering=0) as out:
        while received < length:
            chunk = stream.read(min(CHUNK, length - received))
            if not chunk:
                break
            digest.update(chunk)
            out.write(chunk)
            received += len(chunk)
        if FSYNC:
            os.fsync(out.fileno())
    body = json.dumps({"sha256": digest.hexdigest(), "size": received}).encode()
    start_response(
        "200 OK" if received == length else "422 Unprocessable Entity",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
