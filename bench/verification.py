"""Benchmark the server's verification end to end (issue 18, item 4): from the client's
`PATCH {"state": "hashable"}` (the upload completed, the task queued) to the binary read back
as signable, against `openssl dgst -sha256` of the same file in the same run.

    .venv/bin/python bench/verification.py                       # 1 GiB, filesystem and Redis
    .venv/bin/python bench/verification.py --broker redis --rounds 5

The embedded server of tests/cli_helpers.Stack (gunicorn gthread 2x4 + one Celery worker,
DEBUG off, SQLite, filesystem storage) with its broker: the filesystem transport, or Redis
(--redis-url, default db 9). Per round, alternated: openssl on the file, then a new binary
(hash and size declared), its parts declared and PUT to their upload URLs (not timed), then the
timed part: PATCH hashable, and GET every 20 ms until signable. Goal: median <= 1.2 x openssl.
"""

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from upload import put_parts  # noqa: E402  (bench/upload.py, beside this file)

from peridio_cli.transfer import limits  # noqa: E402
from tests.cli_helpers import Stack, random_file  # noqa: E402

MiB = 1 << 20


class BrokerStack(Stack):
    def __init__(self, folder: Path, broker: str) -> None:
        super().__init__(folder, debug=False)
        self.broker = broker

    def server_env(self) -> dict[str, str]:
        return {**super().server_env(), "CELERY_BROKER_URL": self.broker}


def openssl(source: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sha256", str(source)], check=True, capture_output=True)
    return time.perf_counter() - started


def uploaded_binary(stack: Stack, client: httpx.Client, source: Path, digest: str) -> str:
    """A binary whose parts are all uploaded, still uploadable; its PRN."""
    size = source.stat().st_size
    part_size = limits.default_part_size(size)
    answer = client.post(
        "/binaries",
        json={
            "artifact_version_prn": stack.new_version(),
            "target": "universal",
            "hash": digest,
            "size": size,
        },
    )
    prn = answer.raise_for_status().json()["binary"]["prn"]
    urls = []
    with open(source, "rb") as handle:
        for index in range(1, limits.part_count(size, part_size) + 1):
            part = handle.read(part_size)
            declared = client.put(
                f"/binaries/{prn}/parts/{index}",
                json={"hash": hashlib.sha256(part).hexdigest(), "size": len(part)},
            )
            urls.append(declared.raise_for_status().json()["binary_part"]["presigned_upload_url"])
    put_parts(urls, source, part_size, size, limits.default_concurrency())
    return prn


def hashable_to_signable(client: httpx.Client, prn: str) -> float:
    started = time.perf_counter()
    client.patch(f"/binaries/{prn}", json={"state": "hashable"}).raise_for_status()
    while True:
        binary = client.get(f"/binaries/{prn}").raise_for_status().json()["binary"]
        if binary["state"] == "signable":
            return time.perf_counter() - started
        if binary["state"] not in ("hashable", "hashing"):
            raise SystemExit(f"{prn} became {binary['state']}: {binary.get('last_error')}")
        time.sleep(0.02)


def measure(work: Path, name: str, broker: str, source: Path, digest: str, rounds: int) -> None:
    stack = BrokerStack(work / name, broker).start()
    headers = {"Authorization": f"Token {stack.api_key}"}
    try:
        with httpx.Client(base_url=stack.url + "/v1", headers=headers, timeout=600) as client:
            ours, theirs = [], []
            for n in range(rounds):
                prn = uploaded_binary(stack, client, source, digest)
                os.sync()
                theirs.append(openssl(source))
                ours.append(hashable_to_signable(client, prn))
                print(
                    f"  {name} round {n + 1}: openssl {theirs[-1]:.2f} s, hashable -> signable "
                    f"{ours[-1]:.2f} s"
                )
    finally:
        stack.stop()
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"{name}: hashable -> signable median {a:.2f} s, openssl {b:.2f} s, ratio {a / b:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--broker", choices=["filesystem", "redis"], action="append")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="verification-"))
    try:
        source = random_file(work / "file.bin", args.size_mib * MiB)
        with open(source, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        print(f"load: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        brokers = {"filesystem": "filesystem://", "redis": args.redis_url}
        for name in args.broker or ["filesystem", "redis"]:
            measure(work, name, brokers[name], source, digest, args.rounds)
        print(f"load after: {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
