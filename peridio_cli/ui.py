"""Everything the CLI writes to stderr: notes, verbose request logs, and progress bars.

Progress bars are drawn only when stderr is a terminal; notes and errors are plain lines.
One lock keeps a note from landing in the middle of a bar.
"""

import os
import sys
import threading
import time
from typing import TextIO

_lock = threading.RLock()
_verbose = False
_bar: "Progress | None" = None


def set_verbose(on: bool) -> None:
    global _verbose
    _verbose = on


def _stderr() -> TextIO:
    return sys.stderr


def stderr_is_tty() -> bool:
    try:
        return _stderr().isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def _write_line(text: str) -> None:
    with _lock:
        stream = _stderr()
        if _bar is not None and _bar.drawn:
            stream.write("\r\x1b[2K")
        stream.write(text + "\n")
        if _bar is not None:
            _bar.draw(force=True)
        stream.flush()


def note(text: str) -> None:
    """A line for the person (or CI log) watching; stdout stays clean for JSON and PRNs."""
    _write_line(f"peridio: {text}")


_started = time.monotonic()


def debug(text: str) -> None:
    if _verbose:
        _write_line(f"peridio: [{time.monotonic() - _started:7.3f} s] {text}")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Progress:
    """A byte counter drawn as a bar on stderr (only on a terminal), safe across threads."""

    def __init__(self, label: str, total: int, *, enabled: bool | None = None):
        self.label = label
        self.total = max(0, total)
        self.done = 0
        self.enabled = stderr_is_tty() if enabled is None else enabled
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.drawn = False
        self.detail = ""

    def __enter__(self) -> "Progress":
        global _bar
        with _lock:
            _bar = self
        self.draw(force=True)
        return self

    def __exit__(self, *exc: object) -> None:
        global _bar
        with _lock:
            if not exc[0]:
                self.draw(force=True)
            if self.enabled and self.drawn:
                _stderr().write("\n")
                _stderr().flush()
            _bar = None

    def advance(self, n: int) -> None:
        with _lock:
            self.done += n
        self.draw()

    def set(self, done: int, detail: str | None = None) -> None:
        with _lock:
            self.done = done
            if detail is not None:
                self.detail = detail
        self.draw()

    def draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        with _lock:
            if not force and now - self.last_draw < 0.1:
                return
            self.last_draw = now
            total = self.total or 1
            fraction = min(1.0, self.done / total) if self.total else 1.0
            width = 24
            filled = int(fraction * width)
            elapsed = max(now - self.started, 1e-6)
            rate = self.done / elapsed
            line = (
                f"{self.label:<10} [{'#' * filled}{'.' * (width - filled)}] {fraction * 100:5.1f}% "
                f"{human_bytes(self.done)}/{human_bytes(self.total)} {human_bytes(rate)}/s"
            )
            if self.detail:
                line += f"  {self.detail}"
            stream = _stderr()
            stream.write("\r\x1b[2K" + line)
            stream.flush()
            self.drawn = True
