"""Benchmark verification (hashing.verify) against `openssl dgst -sha256`, on this machine.

    .venv/bin/python bench/hashing.py                  # 1 GiB, filesystem then moto S3
    .venv/bin/python bench/hashing.py --size-mib 256 --runs 5 --skip-s3

All in one run, in a temporary folder (removed afterwards unless --keep), against a throwaway
VAR_DIR and SQLite database (migrated first):
- a random file of --size-mib is written 4 MiB at a time, with its SHA-256 and each part's;
- filesystem: the file is stored through the storage seam the way the upload protocol does it
  (parts declared, streamed to binaries.uploads.part_receive, the upload completed by
  mark_hashable); then, interleaved, --runs times each:
  (a) `openssl dgst -sha256` of the stored object,
  (b) a verifying process: the first run is hashing.verify (claim, stream, progress writes,
      move to signable); later runs stream the object through hashing._hash_stream, the same
      code without the moves (a binary is verified once);
  with the verifying process's peak RSS (its VmHWM);
- S3: moto's server on loopback, the parts PUT to their presigned URLs, the upload completed;
  then (b) as above against it, and (c) a plain boto3 download-and-hash of the same object
  (get_object, read 4 MiB at a time, SHA-256), each in a process of its own, --runs times.

Celery is not eager here (CELERY_TASK_ALWAYS_EAGER=false, broker memory://): completing the
upload queues nothing that runs. Goals: (b) >= 0.9 x (a) on the filesystem; RSS <= 150 MB.
"""

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
PART = 64 * MiB
BUCKET = "peridio-bench"
MOTO_KEY = "testing"  # moto takes any credentials


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_file(path: Path, size: int, part_size: int) -> tuple[str, list[str]]:
    """Random content written 4 MiB at a time; its SHA-256 and each part's."""
    whole = hashlib.sha256()
    parts: list[str] = []
    with open(path, "wb") as out:
        written = 0
        while written < size:
            part = hashlib.sha256()
            end = min(written + part_size, size)
            while written < end:
                block = os.urandom(min(4 * MiB, end - written))
                out.write(block)
                whole.update(block)
                part.update(block)
                written += len(block)
            parts.append(part.hexdigest())
    return whole.hexdigest(), parts


def base_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        DJANGO_SETTINGS_MODULE="peridio_console.settings",
        DEBUG="true",
        VAR_DIR=str(workdir / "var"),
        DATABASE_URL=f"sqlite:///{workdir / 'bench.sqlite3'}",
        CELERY_BROKER_URL="memory://",
        CELERY_TASK_ALWAYS_EAGER="false",
        STORAGE_BACKEND="filesystem",
        LOG_LEVEL="WARNING",
    )
    return env


def s3_env(endpoint: str) -> dict[str, str]:
    return {
        "STORAGE_BACKEND": "s3",
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": MOTO_KEY,
        "AWS_SECRET_ACCESS_KEY": MOTO_KEY,
        "AWS_S3_ADDRESSING_STYLE": "path",
    }


# --- Child processes: each measured on its own -------------------------------------------------


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: a child's ru_maxrss starts at
    its parent's RSS at fork time, and the parent here holds moto's copy of the object."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, arg: str) -> None:
    """Runs in a fresh process (the way a worker would) and prints one JSON line."""
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    from binaries import hashing, storage
    from binaries.models import Binary

    backend = storage.get()
    if isinstance(backend, storage.S3Storage):
        assert backend.client  # a worker's client is made once and lives across tasks

    if mode == "boto3":
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=os.environ["AWS_S3_ENDPOINT_URL"],
            aws_access_key_id=MOTO_KEY,
            aws_secret_access_key=MOTO_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )
        started = time.perf_counter()
        body = client.get_object(Bucket=BUCKET, Key=arg)["Body"]
        digest = hashlib.sha256()
        size = 0
        while chunk := body.read(4 * MiB):
            digest.update(chunk)
            size += len(chunk)
        seconds = time.perf_counter() - started
        print(
            json.dumps(
                {
                    "seconds": seconds,
                    "sha256": digest.hexdigest(),
                    "size": size,
                    "rss": peak_rss_mib(),
                }
            )
        )
        return
    binary = Binary.objects.select_related("organization").get(pk=int(arg))
    started = time.perf_counter()
    if mode == "verify":
        outcome = hashing.verify(binary.pk)
        binary.refresh_from_db()
        found, size = binary.verified_hash, binary.bytes_hashed
    else:
        outcome = "streamed"
        found, size = hashing._hash_stream(binary, lambda done: None)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "outcome": outcome,
                "sha256": found,
                "size": size,
                "rss": peak_rss_mib(),
            }
        )
    )


def run_child(env: dict[str, str], mode: str, arg: str) -> dict[str, Any]:
    """Its JSON line."""
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", mode, arg],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
        assert proc.stdout is not None
        out = proc.stdout.read()
        if proc.wait() != 0:
            errors.seek(0)
            raise SystemExit(f"child {mode} failed ({proc.returncode}):\n{errors.read().decode()}")
    return json.loads(out.decode().strip().splitlines()[-1])


def openssl(path: Path) -> tuple[str, float]:
    started = time.perf_counter()
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-r", str(path)], check=True, capture_output=True
    ).stdout
    return out.split()[0].decode(), time.perf_counter() - started


# --- Setting up a binary through the protocol --------------------------------------------------


def new_binary(digest: str, size: int, target: str) -> Any:
    from binaries import services
    from binaries.models import ArtifactVersion
    from peridio_console.accounts.actors import Actor

    version = ArtifactVersion.objects.get()
    return services.binary_create(
        artifact_version=version, target=target, actor=Actor.system("bench"), hash=digest, size=size
    )


def store_filesystem(binary: Any, source: Path, part_hashes: list[str]) -> None:
    from binaries import uploads
    from binaries.models import PartState
    from binaries.storage import tokens

    size = source.stat().st_size
    for index, part_hash in enumerate(part_hashes, start=1):
        offset = (index - 1) * PART
        length = min(PART, size - offset)
        declared = uploads.part_declare(
            binary=binary, index=index, hash=part_hash, size=length, base_url="http://bench/"
        )
        payload = tokens.read_part_token(declared.upload_url.rsplit("/", 1)[1])
        with open(source, "rb") as stream:
            stream.seek(offset)
            part = uploads.part_receive(token_payload=payload, stream=stream, length=length)
        assert part.state == PartState.VALID, part.last_error


def store_s3(binary: Any, source: Path, part_hashes: list[str]) -> None:
    import base64

    import httpx

    from binaries import uploads

    size = source.stat().st_size
    with open(source, "rb") as stream, httpx.Client(timeout=600) as http:
        for index, part_hash in enumerate(part_hashes, start=1):
            length = min(PART, size - (index - 1) * PART)
            declared = uploads.part_declare(
                binary=binary, index=index, hash=part_hash, size=length, base_url="http://bench/"
            )
            checksum = base64.b64encode(bytes.fromhex(part_hash)).decode()
            response = http.put(
                declared.upload_url,
                content=stream.read(length),
                headers={"x-amz-checksum-sha256": checksum},
            )
            response.raise_for_status()


def mark_hashable(binary: Any) -> None:
    from binaries import moves
    from binaries.models import State
    from peridio_console.accounts.actors import Actor

    moves.mark_hashable(binary=binary, actor=Actor.system("bench"))
    binary.refresh_from_db()
    assert binary.state == State.HASHABLE, binary.state


# --- Reporting ---------------------------------------------------------------------------------


def rate(size: int, seconds: float) -> str:
    return f"{size / MiB / seconds:8.0f} MiB/s ({seconds:6.3f} s)"


def measure_ours(env, binary_id: int, size: int, digest: str, runs: int, between=None) -> dict:
    results: dict[str, Any] = {"ours": [], "rss": [], "other": []}
    for n in range(runs):
        if between is not None:
            results["other"].append(between())
        mode = "verify" if n == 0 else "stream"
        line = run_child(env, mode, str(binary_id))
        assert line["sha256"] == digest and line["size"] == size, line
        if mode == "verify":
            assert line["outcome"] == "signable", line
        results["ours"].append((mode, line["seconds"]))
        results["rss"].append(line["rss"])
    return results


def report(title: str, size: int, ours, rss, others: list[float], other_name: str) -> None:
    print(f"\n== {title}: {size / MiB:.0f} MiB")
    for (mode, seconds), peak in zip(ours, rss, strict=True):
        print(f"  ours ({mode:6}) {rate(size, seconds)}  peak RSS {peak:6.1f} MiB")
    for seconds in others:
        print(f"  {other_name:15} {rate(size, seconds)}")
    best_ours = min(s for _, s in ours)
    best_verify = min(s for m, s in ours if m == "verify")
    best_other = min(others)
    print(
        f"  best: ours {size / MiB / best_ours:.0f} MiB/s, {other_name} "
        f"{size / MiB / best_other:.0f} MiB/s -> ratio {best_other / best_ours:.2f}x "
        f"(verify run alone: {best_other / best_verify:.2f}x); peak RSS {max(rss):.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "ARG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    workdir = Path(tempfile.mkdtemp(prefix="peridio-bench-hashing-"))
    env = base_env(workdir)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from binaries import services
    from peridio_console.accounts.actors import Actor
    from peridio_console.accounts.models import Organization

    server = None
    try:
        call_command("migrate", verbosity=0)
        org = Organization.objects.create(name="Bench", slug="bench")
        bench = Actor.system("bench")
        artifact = services.artifact_create(organization=org, actor=bench, name="firmware")
        services.artifact_version_create(artifact=artifact, actor=bench, version="1.0.0")

        size = args.size_mib * MiB
        source = workdir / "firmware.img"
        started = time.perf_counter()
        digest, part_hashes = make_file(source, size, PART)
        print(f"random file: {size / MiB:.0f} MiB written in {time.perf_counter() - started:.1f} s")
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")

        # --- filesystem
        from binaries import storage

        binary = new_binary(digest, size, "aarch64-linux-gnu")
        store_filesystem(binary, source, part_hashes)
        mark_hashable(binary)
        filesystem = storage.get()
        assert isinstance(filesystem, storage.FilesystemStorage)
        stored = filesystem.object_path(binary)
        openssl_runs: list[float] = []

        def one_openssl() -> float:
            found, seconds = openssl(stored)
            assert found == digest, found
            openssl_runs.append(seconds)
            return seconds

        one_openssl()  # warm the page cache for both
        fs = measure_ours(env, binary.pk, size, digest, args.runs, between=one_openssl)
        report("filesystem", size, fs["ours"], fs["rss"], openssl_runs[1:], "openssl dgst -sha256")

        if args.skip_s3:
            return

        # --- S3 (moto's server on loopback)
        import boto3
        from botocore.config import Config
        from django.conf import settings
        from moto.server import ThreadedMotoServer

        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=MOTO_KEY,
            aws_secret_access_key=MOTO_KEY,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        ).create_bucket(Bucket=BUCKET)
        settings.STORAGE_BACKEND = "s3"
        settings.STORAGES = {
            **settings.STORAGES,
            "binaries": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": BUCKET,
                    "endpoint_url": endpoint,
                    "region_name": "us-east-1",
                    "access_key": MOTO_KEY,
                    "secret_key": MOTO_KEY,
                    "addressing_style": "path",
                    "signature_version": "s3v4",
                    "file_overwrite": True,
                    "default_acl": None,
                },
            },
        }
        env_s3 = {**env, **s3_env(endpoint)}
        binary = new_binary(digest, size, "x86_64-linux-gnu")
        started = time.perf_counter()
        store_s3(binary, source, part_hashes)
        mark_hashable(binary)
        print(f"\nS3 upload to moto: {time.perf_counter() - started:.1f} s")
        source.unlink()
        s3_backend = storage.get()
        assert isinstance(s3_backend, storage.S3Storage)
        key = s3_backend.key(binary)
        boto_runs: list[float] = []

        def one_boto3() -> float:
            line = run_child(env_s3, "boto3", key)
            assert line["sha256"] == digest and line["size"] == size, line
            boto_runs.append(line["seconds"])
            return line["seconds"]

        s3 = measure_ours(env_s3, binary.pk, size, digest, args.runs, between=one_boto3)
        report("S3 (moto on loopback)", size, s3["ours"], s3["rss"], boto_runs, "boto3 get+sha256")
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            print(f"\nkept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
