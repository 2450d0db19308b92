"""Benchmark Create Binary in Chromium against `peridio binaries create --content-path`, on the
same server, with the same file: click (or command) to signable.

    .venv/bin/python bench/browser_create.py                      # 256 MiB and 1 GiB, 3 rounds
    .venv/bin/python bench/browser_create.py --size-mib 256 --rounds 1

All in one run, in a temporary folder (removed afterwards unless --keep): the embedded server
(tests/cli_helpers.Stack: gunicorn gthread 2x4 + a Celery worker, DEBUG off, SQLite, filesystem
broker and storage), a random file per size, then per round, alternated: Chromium (Debian's,
through Playwright) logs in once, opens a new version's Create Binary page, chooses the file,
clicks Create binary and waits until the page says signable; then the CLI does the same. Both
start from a new artifact version, so every run creates a binary.

Printed per browser run, from the page's performance timeline (Resource Timing): the part
uploads (count, median duration, median gap between starts, most at once) and the part
declarations; and the browser's peak memory: the resident set of Chromium's processes summed,
sampled every 50 ms (shared pages counted once per process, so it overstates). Goal: browser
median <= 1.5 x the CLI's.
"""

import argparse
import itertools
import json
import os
import shutil
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

from tests.cli_helpers import PERIDIO, Stack, random_file  # noqa: E402

MiB = 1 << 20
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
PASSWORD = "x" * 24  # Stack's `create_org ... --admin cli --password`


class BrowserStack(Stack):
    """The CLI's stack, with cookies allowed over plain HTTP so a browser can log in."""

    def server_env(self) -> dict[str, str]:
        return {**super().server_env(), "SECURE_COOKIES": "false"}

    def start(self) -> "BrowserStack":
        # Pages name their static files by the manifest (DEBUG off), which collectstatic makes.
        self.secret_key, self.database_url = "bench-" * 8, "sqlite:///:memory:"
        self.manage("collectstatic", "--noinput", "-v", "0")
        super().start()
        return self


def chromium_rss() -> int:
    total = 0
    for child in psutil.Process().children(recursive=True):
        try:
            if "chrom" in child.name():
                total += child.memory_info().rss
        except psutil.Error:
            continue
    return total


class PeakSampler:
    def __init__(self) -> None:
        self.peak = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, chromium_rss())
            time.sleep(0.05)

    def __enter__(self) -> "PeakSampler":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


TIMELINE = """() => performance.getEntriesByType("resource").map(e => ({
  name: e.name, start: e.startTime, end: e.responseEnd,
  request: e.requestStart, response: e.responseStart }))"""


def timeline_summary(entries: list[dict[str, Any]], clicked: float) -> str:
    def pick(fragment: str) -> list[dict[str, Any]]:
        return sorted((e for e in entries if fragment in e["name"]), key=lambda e: e["start"])

    uploads = pick("/transfer/parts/")
    declares = [e for e in pick("/parts/") if "/v1/binaries/" in e["name"]]
    if not uploads:
        return "no part uploads in the timeline"
    durations = [e["end"] - e["start"] for e in uploads]
    gaps = [b["start"] - a["start"] for a, b in itertools.pairwise(uploads)]
    most = max(sum(1 for o in uploads if o["start"] <= e["start"] < o["end"]) for e in uploads)
    last = max(e["end"] for e in uploads)
    return (
        f"last part saved {(last - clicked) / 1000:.2f} s after the click; "
        f"{len(uploads)} part uploads: first starts {(uploads[0]['start'] - clicked) / 1000:.2f} s "
        f"after the click, median {statistics.median(durations):.0f} ms each, starts "
        f"{statistics.median(gaps) if gaps else 0:.0f} ms apart (median), at most {most} at once; "
        f"{len(declares)} declarations, median "
        f"{statistics.median([e['end'] - e['start'] for e in declares]) if declares else 0:.0f} ms"
    )


SIGNABLE_SHOWN = """() => document.querySelector('#upload-status[data-phase=signable]') ||
  [...document.querySelectorAll('h1 .badge')].some(b => b.textContent.trim() === 'signable')"""


def run_browser(page: Any, stack: Stack, source: Path) -> tuple[float, int, str]:
    version = stack.new_version().rsplit(":", 1)[1]
    page.goto(f"{stack.url}/versions/{version}/binaries/new")
    page.evaluate("() => performance.clearResourceTimings()")
    page.get_by_label("Target").fill("universal")
    page.get_by_label("File").set_input_files(source)
    with PeakSampler() as sampler:
        clicked = page.evaluate("() => performance.now()")
        started = time.perf_counter()
        page.get_by_role("button", name="Create binary").click()
        # The old uploader ends on the binary's page (its badge), the new one says so in its
        # status area; either counts.
        page.wait_for_function(
            SIGNABLE_SHOWN,
            timeout=600_000,
            polling=20,
        )
        elapsed = time.perf_counter() - started
    entries = page.evaluate(TIMELINE) if "/binaries/new" in page.url else []
    summary = timeline_summary(entries, clicked) if entries else "page left: no timeline"
    hashed = page.locator("#upload-status .upload-hashing span")
    if hashed.count():
        summary = f"{hashed.inner_text()} {summary}"
    return elapsed, sampler.peak, summary


def run_cli(stack: Stack, source: Path) -> float:
    version = stack.new_version()
    command = [PERIDIO, "binaries", "create", "--artifact-version-prn", version]
    command += ["--target", "universal", "--content-path", str(source)]
    started = time.perf_counter()
    done = subprocess.run(command, env=stack.cli_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or json.loads(done.stdout)["state"] != "signable":
        raise SystemExit(f"peridio failed ({done.returncode}): {done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, action="append", help="default: 256 and 1024")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    sizes = args.size_mib or [256, 1024]

    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="browser-create-"))
    stack = BrowserStack(work / "fs", debug=False).start()
    print(f"load: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} on {os.cpu_count()} cores")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page()
            answer = page.goto(f"{stack.url}/login/")
            if answer is None or answer.status != 200:
                raise SystemExit(f"/login/ answered {answer and answer.status}\n{stack.output()}")
            page.get_by_label("Username").fill("cli")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{stack.url}/")
            warm = random_file(work / "warm.bin", 9 * MiB)  # first requests load code
            run_browser(page, stack, warm)
            run_cli(stack, warm)
            for size in sizes:
                source = random_file(work / f"file-{size}.bin", size * MiB)
                times: dict[str, list[float]] = {"browser": [], "cli": []}
                peaks = []
                for n in range(args.rounds):
                    os.sync()
                    elapsed, peak, summary = run_browser(page, stack, source)
                    times["browser"].append(elapsed)
                    peaks.append(peak)
                    print(
                        f"  {size} MiB round {n + 1}: browser {elapsed:.2f} s, peak "
                        f"{peak / 1e6:.0f} MB; {summary}"
                    )
                    os.sync()
                    elapsed = run_cli(stack, source)
                    times["cli"].append(elapsed)
                    print(f"  {size} MiB round {n + 1}: peridio {elapsed:.2f} s")
                browser_median = statistics.median(times["browser"])
                cli_median = statistics.median(times["cli"])
                print(
                    f"{size} MiB: browser median {browser_median:.2f} s, CLI median "
                    f"{cli_median:.2f} s, ratio {browser_median / cli_median:.2f} (goal <= 1.5); "
                    f"browser peak {max(peaks) / 1e6:.0f} MB (Chromium's processes' RSS summed)"
                )
                source.unlink()
            browser.close()
    finally:
        stack.stop()
        print(f"load after: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f}")
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
