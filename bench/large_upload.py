"""The largest upload: `peridio binaries create --content-path` of a file of several GiB to
`signable` through S3 (moto's server), with the server's and moto's memory watched.

    .venv/bin/python bench/large_upload.py                  # 5 GiB
    .venv/bin/python bench/large_upload.py --size-gib 6

In a temporary folder (removed afterwards): the file, made quickly by repeating one random
block of --block-mib (63 MiB, so the 64 MiB parts of a file of 4 GiB or more all differ; the
SHA-256 of the whole has to match as for any file); moto_server on a free loopback port with
a bucket; the server of bench/cli_create.py (gunicorn gthread 2x4 + a Celery worker, DEBUG
off, SQLite, filesystem broker) with STORAGE_BACKEND=s3 pointed at moto. The CLI hashes,
uploads in its default parts and concurrency, marks hashable (CompleteMultipartUpload, which
moto assembles in memory) and waits for the worker's verification.

Printed: size, wall time to signable and throughput, the CLI's phases, peak RSS (sampled
every 0.2 s) of the CLI, the web server (gunicorn and its workers), the Celery worker and moto,
and the machine's lowest available memory. moto holds the parts and the object in its process
and in temporary files, and copies the whole object in memory to complete and to serve it: the
bench refuses to start with less than 2.5 x the size available (--min-free-gib), and kills
moto if available memory falls under --floor-gib. Afterwards the object, any upload left and
the bucket are deleted and moto stopped.
"""

import argparse
import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli_create import BUCKET, run_cli, start_moto  # noqa: E402  (beside this file)

from peridio_cli.transfer import limits  # noqa: E402
from tests.cli_helpers import Stack  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30


def repeated_file(path: Path, size: int, block_size: int) -> str:
    """Write `size` bytes repeating one random block; its SHA-256."""
    block = os.urandom(block_size)
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            piece = block[: min(block_size, left)]
            out.write(piece)
            digest.update(piece)
            left -= len(piece)
    return digest.hexdigest()


def tree_rss(process: psutil.Process) -> int:
    """RSS of a process and its descendants (bytes)."""
    total = 0
    with contextlib.suppress(psutil.Error):
        for each in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += each.memory_info().rss
    return total


class Watch:
    """Peak RSS of named process trees and the lowest available memory, from a thread; kills
    `guard` if available memory falls under `floor` bytes."""

    def __init__(self, trees: dict[str, int], guard: psutil.Process, floor: int):
        self.trees = {name: psutil.Process(pid) for name, pid in trees.items()}
        self.peaks = dict.fromkeys(trees, 0)
        self.lowest_available = psutil.virtual_memory().available
        self.guard = guard
        self.floor = floor
        self.tripped = False
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            for name, process in self.trees.items():
                self.peaks[name] = max(self.peaks[name], tree_rss(process))
            available = psutil.virtual_memory().available
            self.lowest_available = min(self.lowest_available, available)
            if available < self.floor and not self.tripped:
                self.tripped = True
                print(f"available memory {available / GiB:.1f} GiB: killing moto", flush=True)
                self.guard.kill()

    def __enter__(self) -> "Watch":
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)


def empty_and_delete_bucket(client) -> None:
    for upload in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
        client.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gib", type=float, default=5.0)
    parser.add_argument("--block-mib", type=int, default=63, help="the repeated random block")
    parser.add_argument("--min-free-gib", type=float, default=None, help="default: 2.5 x size")
    parser.add_argument("--floor-gib", type=float, default=2.0)
    args = parser.parse_args()
    size = int(args.size_gib * GiB)
    needed = (args.min_free_gib if args.min_free_gib is not None else 2.5 * args.size_gib) * GiB
    available = psutil.virtual_memory().available
    if available < needed:
        print(
            f"Only {available / GiB:.1f} GiB of memory available; this bench needs "
            f"{needed / GiB:.1f} GiB (moto keeps the object in memory). Try later or pass "
            "--min-free-gib.",
            file=sys.stderr,
        )
        return 2
    part_size = limits.default_part_size(size)
    work = Path(tempfile.mkdtemp(prefix="bench-large-upload-"))
    moto, client, storage = start_moto(limits.default_concurrency())
    stack = Stack(work / "stack", storage, debug=False)
    try:
        started = time.perf_counter()
        source = work / "large.bin"
        expected = repeated_file(source, size, args.block_mib * MiB)
        print(
            f"file: {size} bytes ({size / GiB:.2f} GiB), a random {args.block_mib} MiB block "
            f"repeated, written and hashed in {time.perf_counter() - started:.1f} s; CLI "
            f"defaults: {part_size // MiB} MiB parts ({limits.part_count(size, part_size)}), "
            f"{limits.default_concurrency()} at once; {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.1f}; {available / GiB:.1f} GiB available",
            flush=True,
        )
        stack.start()
        web, worker = stack.procs
        trees = {"web server": web.pid, "worker": worker.pid, "moto": moto.pid}
        with Watch(trees, psutil.Process(moto.pid), int(args.floor_gib * GiB)) as watch:
            elapsed, cli_peak, binary = run_cli(stack, stack.new_version(), source)
        if binary["hash"] != f"sha256:{expected}" or binary["size"] != size:
            print(f"the server verified {binary['hash']}, {binary['size']} bytes", file=sys.stderr)
            return 1
        objects = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
        uploads = client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
        print(
            f"signable: {size / GiB:.2f} GiB in {elapsed:.1f} s = {size / MiB / elapsed:.0f} "
            f"MiB/s (hash, upload, complete, verify); the bucket holds {len(objects)} object(s) "
            f"of {[o['Size'] for o in objects]} bytes, {len(uploads)} multipart upload(s)"
        )
        print(
            "peak RSS: "
            + ", ".join(f"{name} {peak / MiB:.0f} MiB" for name, peak in watch.peaks.items())
            + f", CLI {cli_peak / MiB:.0f} MiB; lowest available memory "
            f"{watch.lowest_available / GiB:.1f} GiB; load average {os.getloadavg()[0]:.1f}"
        )
        return 0
    finally:
        stack.stop()
        if moto.poll() is None:
            try:
                empty_and_delete_bucket(client)
            finally:
                moto.terminate()
                moto.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
