"""Start-up of the `peridio` command: `peridio --help`, and `peridio artifacts list -o prn`
beside `curl` making the same request, against a whole stack (gunicorn and a worker, from
tests/cli_helpers.py) on this machine.

    .venv/bin/python bench/cli_startup.py [--runs 20]

Prints the median and the best wall-clock time of each, the median CPU time (user + system,
steadier on a loaded machine), and the modules that cost most to import (`python -X
importtime`). The goal: under 80 ms for both peridio commands.
"""

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cli_helpers import PERIDIO, running_stack  # noqa: E402


def timed(args: list[str], env: dict[str, str], runs: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (user + system) milliseconds of each run: on a shared, loaded
    machine the CPU time is the steadier figure."""
    took, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        done = subprocess.run(args, env=env, capture_output=True, stdin=subprocess.DEVNULL)
        took.append((time.perf_counter() - began) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
        if done.returncode != 0:
            raise SystemExit(f"{args[:3]} exited {done.returncode}: {done.stderr.decode()}")
    return took, cpu


def slowest_imports(args: list[str], env: dict[str, str], count: int = 8) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "peridio_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    rows = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match and len(match.group(3)) <= 3:  # top-level imports and their children
            rows.append((int(match.group(2)), match.group(4)))
    return [f"{name} {us / 1000:.1f} ms" for us, name in sorted(rows, reverse=True)[:count]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with running_stack(Path(tempfile.mkdtemp(prefix="peridio-bench-startup-"))) as stack:
        env = stack.cli_env()
        env["PYTHONPATH"] = str(ROOT)
        url = f"{stack.url}/v1/artifacts"
        curl = ["curl", "-sf", "-o", os.devnull, "-H", f"Authorization: Bearer {stack.api_key}"]
        results = {
            "peridio --help": timed([PERIDIO, "--help"], env, args.runs),
            "peridio artifacts list -o prn": timed(
                [PERIDIO, "artifacts", "list", "-o", "prn"], env, args.runs
            ),
            "curl GET /v1/artifacts": timed([*curl, url], env, args.runs),
        }
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for name, (took, cpu) in results.items():
            print(
                f"{name:30} wall median {statistics.median(took):6.1f} ms, best "
                f"{min(took):6.1f} ms; CPU median {statistics.median(cpu):6.1f} ms "
                f"({args.runs} runs)"
            )
        print("imports of `peridio artifacts list` (cumulative):")
        for line in slowest_imports(["artifacts", "list", "-o", "prn"], env):
            print(f"  {line}")


if __name__ == "__main__":
    main()
