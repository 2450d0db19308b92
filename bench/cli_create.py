"""Benchmark `peridio binaries create --content-path` (hash, upload in parts, complete, wait
for the worker's verification: `signable`) against the floor of the same work, on this machine.

    .venv/bin/python bench/cli_create.py                  # 1 GiB, filesystem and S3 (moto)
    .venv/bin/python bench/cli_create.py --size-mib 256 --rounds 3 --skip-s3

All in one run, in a temporary folder (removed afterwards unless --keep):
- a random file of --size-mib;
- filesystem: the embedded server (gunicorn gthread 2x4 + a Celery worker, DEBUG off, SQLite,
  filesystem broker and storage, on a throwaway VAR_DIR) takes the file from the CLI, against
  the floor: `openssl dgst -sha256` of the file (the client's hash) + bench/bare_receiver.py
  under the same gunicorn settings taking the same parts, as many in parallel (a bare WSGI app
  that reads, hashes and writes each body; nothing else) + `openssl dgst -sha256` again (the
  server's verification);
- S3: the same server with STORAGE_BACKEND=s3 on a loopback moto server (its own process),
  against boto3's TransferManager uploading the file (same part size and concurrency) plus a
  download-and-hash of the object;
- the CLI's peak RSS, sampled every 20 ms with psutil.

Goals: CLI / floor <= 1.3 on both; CLI peak RSS <= 100 MB.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from upload import put_parts, start_gunicorn  # noqa: E402  (bench/upload.py, beside this file)
from upload import stop as stop_gunicorn  # noqa: E402

from peridio_cli.transfer import limits  # noqa: E402
from tests.cli_helpers import BIN, PERIDIO, Stack, free_port, random_file  # noqa: E402

MiB = 1 << 20
BUCKET = "peridio-bench"


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_cli(stack: Stack, version: str, source: Path) -> tuple[float, int, dict[str, Any]]:
    """(seconds to signable, peak RSS in bytes, the binary printed)."""
    command = [
        PERIDIO,
        "binaries",
        "create",
        "--artifact-version-prn",
        version,
        "--target",
        "universal",
        "--content-path",
        str(source),
        "--verbose",
    ]
    peak = 0
    started = time.perf_counter()
    proc = psutil.Popen(
        command, env=stack.cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"peridio exited {proc.returncode}: {err.decode()}")
    binary = json.loads(out)
    if binary["state"] != "signable":
        raise SystemExit(f"peridio left the binary {binary['state']}")
    phases = {
        name: float(match.group(1))
        for name, pattern in (
            ("hash", r"hashed .* in ([0-9.]+) s"),
            ("upload", r"uploaded \d+ part\(s\), \d+ bytes, \d+ at once, in ([0-9.]+) s"),
            ("verify", r"verified by the server in ([0-9.]+) s"),
        )
        if (match := re.search(pattern, err.decode()))
    }
    print(
        f"  peridio {source.stat().st_size // MiB} MiB: {elapsed:.2f} s = "
        + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items())
        + f", other {elapsed - sum(phases.values()):.2f} s; peak RSS {peak / 1e6:.0f} MB"
    )
    return elapsed, peak, binary


def part_hashes(source: Path, part_size: int) -> list[str]:
    hashes = []
    with open(source, "rb") as handle:
        while chunk := handle.read(part_size):
            hashes.append(hashlib.sha256(chunk).hexdigest())
    return hashes


# --- Filesystem ---------------------------------------------------------------------------


def filesystem(work: Path, source: Path, args: argparse.Namespace) -> dict[str, Any]:
    size = source.stat().st_size
    part_size = limits.default_part_size(size)
    parallel = limits.default_concurrency()
    count = limits.part_count(size, part_size)
    stack = Stack(work / "fs", debug=False).start()
    env = {**stack.server_env(), "BARE_RECEIVER_DIR": str(work / "bare")}
    bare = start_gunicorn(
        "bare receiver",
        "bench.bare_receiver:app",
        env,
        argparse.Namespace(workers=2, threads=4),
    )
    results: dict[str, list[float]] = {"cli": [], "floor": [], "hash": [], "bare": []}
    peaks: list[int] = []
    try:
        warm = random_file(work / "warm.bin", 9 * MiB)  # first requests load code; not timed
        run_cli(stack, stack.new_version(), warm)
        put_parts([f"{bare.url}/warm"], warm, part_size, part_size, 1)
        expected = part_hashes(source, part_size)
        for _ in range(args.rounds):
            os.sync()
            first = timed(["openssl", "dgst", "-sha256", str(source)])
            urls = [f"{bare.url}/part-{i + 1}" for i in range(count)]
            bare_time, answers = put_parts(urls, source, part_size, size, parallel)
            assert [a["sha256"] for a in answers] == expected, "the bare receiver got other bytes"
            second = timed(["openssl", "dgst", "-sha256", str(source)])
            print(
                f"  floor: openssl {first:.2f} s + bare receiver {bare_time:.2f} s + openssl "
                f"{second:.2f} s = {first + bare_time + second:.2f} s"
            )
            shutil.rmtree(work / "bare", ignore_errors=True)
            results["floor"].append(first + bare_time + second)
            results["hash"].append((first + second) / 2)
            results["bare"].append(bare_time)
            os.sync()
            elapsed, peak, _ = run_cli(stack, stack.new_version(), source)
            results["cli"].append(elapsed)
            peaks.append(peak)
    finally:
        stop_gunicorn(bare)
        stack.stop()
    return {
        **{k: statistics.median(v) for k, v in results.items()},
        "runs": results,
        "peak_rss": max(peaks),
        "parts": count,
        "part_size": part_size,
        "parallel": parallel,
    }


# --- S3 (moto) ----------------------------------------------------------------------------


def start_moto(parallel: int) -> tuple[subprocess.Popen, Any, dict[str, str]]:
    """moto's server on a free loopback port with an empty bucket: (its process, a boto3
    client, the server's storage settings pointing at it)."""
    import boto3
    from botocore.config import Config

    port = free_port()
    moto = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                moto.kill()
                raise SystemExit("moto_server did not start") from None
            time.sleep(0.1)
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto's
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=parallel + 2),
    )
    client.create_bucket(Bucket=BUCKET)
    storage = {
        "STORAGE_BACKEND": "s3",
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_S3_ADDRESSING_STYLE": "path",
    }
    return moto, client, storage


def s3(work: Path, source: Path, args: argparse.Namespace) -> dict[str, Any]:
    from boto3.s3.transfer import TransferConfig

    size = source.stat().st_size
    part_size = limits.default_part_size(size)
    parallel = limits.default_concurrency()
    moto, client, storage = start_moto(parallel)
    stack = Stack(work / "s3", storage, debug=False)
    results: dict[str, list[float]] = {"cli": [], "floor": [], "upload": [], "download": []}
    peaks: list[int] = []
    config = TransferConfig(
        multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=parallel
    )
    try:
        stack.start()
        warm = random_file(work / "warm-s3.bin", 9 * MiB)
        run_cli(stack, stack.new_version(), warm)
        for n in range(args.rounds):
            key = f"boto3/{n}.bin"
            started = time.perf_counter()
            client.upload_file(str(source), BUCKET, key, Config=config)
            upload = time.perf_counter() - started
            started = time.perf_counter()
            digest = hashlib.sha256()
            body = client.get_object(Bucket=BUCKET, Key=key)["Body"]
            for chunk in body.iter_chunks(MiB):
                digest.update(chunk)
            download = time.perf_counter() - started
            client.delete_object(Bucket=BUCKET, Key=key)
            results["upload"].append(upload)
            results["download"].append(download)
            results["floor"].append(upload + download)
            elapsed, peak, binary = run_cli(stack, stack.new_version(), source)
            assert binary["hash"] == f"sha256:{digest.hexdigest()}"
            results["cli"].append(elapsed)
            peaks.append(peak)
    finally:
        stack.stop()
        moto.terminate()
        moto.wait(timeout=30)
    return {
        **{k: statistics.median(v) for k, v in results.items()},
        "runs": results,
        "peak_rss": max(peaks),
        "part_size": part_size,
        "parallel": parallel,
    }


def _paired(runs: dict[str, list[float]]) -> str:
    """Each round's CLI time over the floor measured just before it (the machine's load
    changes between rounds; a pair shares it)."""
    return ", ".join(f"{c / f:.2f}" for c, f in zip(runs["cli"], runs["floor"], strict=True))


def _best(runs: dict[str, list[float]]) -> float:
    return min(runs["cli"]) / min(runs["floor"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip-s3", action="store_true")
    parser.add_argument("--skip-filesystem", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="peridio-bench-cli-"))
    try:
        source = random_file(work / "source.bin", args.size_mib * MiB)
        print(
            f"file: {args.size_mib} MiB random; {os.cpu_count()} CPUs; CLI defaults: "
            f"{limits.default_part_size(args.size_mib * MiB) // MiB} MiB parts, "
            f"{limits.default_concurrency()} in parallel"
        )
        summary: dict[str, Any] = {}
        if not args.skip_filesystem:
            fs = filesystem(work, source, args)
            summary["filesystem"] = fs
            print(
                f"filesystem: peridio binaries create -> signable {fs['cli']:6.2f} s; floor "
                f"{fs['floor']:6.2f} s (openssl dgst {fs['hash']:.2f} s x2 + bare receiver "
                f"{fs['bare']:.2f} s, {fs['parts']} parts)"
            )
            print(
                f"filesystem: CLI / floor = {fs['cli'] / fs['floor']:.3f} (medians; per round "
                f"{_paired(fs['runs'])}; best/best {_best(fs['runs']):.3f})   (goal <= 1.3)"
            )
            print(f"filesystem: CLI peak RSS {fs['peak_rss'] / 1e6:.0f} MB   (goal <= 100 MB)")
        if not args.skip_s3:
            s3_result = s3(work, source, args)
            summary["s3"] = s3_result
            print(
                f"s3 (moto):  peridio binaries create -> signable {s3_result['cli']:6.2f} s; "
                f"boto3 TransferManager upload {s3_result['upload']:.2f} s + download-and-hash "
                f"{s3_result['download']:.2f} s = {s3_result['floor']:.2f} s"
            )
            print(
                f"s3 (moto):  CLI / boto3 = {s3_result['cli'] / s3_result['floor']:.3f} (medians; "
                f"per round {_paired(s3_result['runs'])}; best/best "
                f"{_best(s3_result['runs']):.3f})   (goal <= 1.3)"
            )
            print(f"s3 (moto):  CLI peak RSS {s3_result['peak_rss'] / 1e6:.0f} MB")
        print(
            json.dumps(
                {
                    k: {
                        "cli_s": v["cli"],
                        "floor_s": v["floor"],
                        "ratio": v["cli"] / v["floor"],
                        "peak_rss": v["peak_rss"],
                    }
                    for k, v in summary.items()
                }
            )
        )
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
