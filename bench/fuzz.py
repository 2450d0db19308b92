"""The long schemathesis run: tests/test_fuzz_api.py with many more examples and a random seed.

    .venv/bin/python bench/fuzz.py                       # 300 examples per operation and mode
    .venv/bin/python bench/fuzz.py --examples 1000 --seed 42 --budget 1800
    .venv/bin/python bench/fuzz.py --postgres            # on a private PostgreSQL database

The default suite runs the same test with 40 derandomized examples. This run fails if any
response is a 5xx, has an undocumented status code or content type, does not match its
documented schema, or accepts a request that violates the schema. It uses a throwaway
VAR_DIR; with --postgres the test database is a private one on the local server (dropped by
pytest-django afterwards). Prints the test's summary line and the seed to reproduce with.
"""

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=300, help="per operation and mode")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--budget", type=float, default=1500, help="seconds before giving up")
    parser.add_argument("--postgres", action="store_true", help="run on a private PostgreSQL db")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    var_dir = tempfile.mkdtemp(prefix="bench-fuzz-")
    env = {
        **os.environ,
        "VAR_DIR": var_dir,
        "FUZZ_EXAMPLES": str(args.examples),
        "FUZZ_SEED": str(seed),
        "FUZZ_BUDGET_SECONDS": str(args.budget),
    }
    if args.postgres:
        server = env.get("RELIABILITY_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
        env["DATABASE_URL"] = server.rsplit("/", 1)[0] + f"/bench_fuzz_{os.getpid()}"
    print(f"fuzz: {args.examples} examples per operation and mode, seed {seed}", flush=True)
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/test_fuzz_api.py",
            "-k",
            "schemathesis",
            "-q",
            "-s",
            "-p",
            "no:logging",
            "-o",
            f"timeout={int(args.budget) + 300}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=args.budget + 600,
    )
    output = done.stdout + done.stderr
    summary = [line for line in output.splitlines() if line.startswith("fuzz: ")]
    for line in summary:
        print(line)
    if done.returncode != 0:
        failures = re.findall(r"^E\s+--- (.*)$", output, re.MULTILINE)
        print(f"FAILED ({len(failures)} distinct failures; reproduce with --seed {seed}):")
        # Each failure's report: the lines after its "--- " line, up to the next one.
        report = [line[1:].strip() for line in output.splitlines() if line.startswith("E ")]
        shown = 0
        for line in report:
            if line.startswith("--- "):
                shown = 30
            if shown:
                print(f"  {line}")
                shown -= 1
        if not failures:
            print(output[-5000:])
        return 1
    print(f"ok in {time.monotonic() - started:.0f} s: no 5xx, every response as documented")
    return 0


if __name__ == "__main__":
    sys.exit(main())
