"""Everything the CLI writes to stderr: notes, verbose request logs, and progress bars.

Progress is a bar redrawn in place when stderr is a terminal, else a plain line every few
seconds (--progress bar|plain|none chooses); notes and errors are plain lines.
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
        if _bar is not None and _bar.enabled:
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


def _columns() -> int:
    """The terminal's width (stderr's), else COLUMNS, else 80."""
    try:
        return os.get_terminal_size(_stderr().fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        pass
    try:
        return int(os.environ.get("COLUMNS", "")) or 80
    except ValueError:
        return 80


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


_mode = "auto"  # auto: a bar on a terminal, plain lines otherwise; bar; plain; none
PLAIN_INTERVAL = 5.0


def set_progress(mode: str | None) -> None:
    global _mode
    _mode = mode or "auto"


def progress_style() -> str:
    if _mode == "auto":
        return "bar" if stderr_is_tty() else "plain"
    return _mode


class Progress:
    """A byte counter on stderr, safe across threads: a bar redrawn in place on a terminal
    (one line, never wider than the terminal), or a plain line every few seconds otherwise.
    Bytes already there (a resumed transfer) count as done but not toward the rate."""

    def __init__(self, label: str, total: int, *, enabled: bool = True, already: int = 0):
        self.label = label
        self.total = max(0, total)
        self.done = already
        self.already = already
        self.style = progress_style() if enabled else "none"
        self.enabled = self.style == "bar"
        self.started = time.monotonic()
        self.last_draw = 0.0 if self.style == "bar" else self.started
        self.drawn = False
        self.printed = False
        self.detail = ""

    def __enter__(self) -> "Progress":
        global _bar
        with _lock:
            _bar = self
        self.draw(force=self.enabled)
        return self

    def __exit__(self, *exc: object) -> None:
        global _bar
        with _lock:
            if not exc[0] and (self.enabled or self.printed):
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

    def figures(self, now: float) -> tuple[float, str]:
        """The fraction done and "45% 120.0 MiB/1.0 GiB 85.3 MiB/s ETA 0:12"."""
        fraction = min(1.0, max(0.0, self.done / self.total)) if self.total else 1.0
        elapsed = max(now - self.started, 1e-6)
        rate = max(0, self.done - self.already) / elapsed
        text = f"{fraction * 100:3.0f}% {human_bytes(self.done)}/{human_bytes(self.total)}"
        if rate > 0 and elapsed >= 0.5:
            text += f" {human_bytes(rate)}/s"
            if self.done < self.total:
                text += f" ETA {_clock((self.total - self.done) / rate)}"
        if self.detail:
            text += f" {self.detail}"
        return fraction, text

    def draw(self, force: bool = False) -> None:
        if self.style in ("none", "auto"):
            return
        now = time.monotonic()
        with _lock:
            interval = 0.1 if self.enabled else PLAIN_INTERVAL
            if not force and now - self.last_draw < interval:
                return
            self.last_draw = now
            fraction, text = self.figures(now)
            stream = _stderr()
            if not self.enabled:
                stream.write(f"peridio: {self.label} {text}\n")
                stream.flush()
                self.printed = True
                return
            # One character short of the width: a line that fills the last column wraps on
            # some terminals, and the next \r would then redraw on a new line.
            width = _columns() - 1
            head = f"{self.label} "
            room = width - len(head) - len(text) - 3
            bar = ""
            if room >= 10:
                filled = int(fraction * min(room, 30))
                bar = f"[{'#' * filled}{'.' * (min(room, 30) - filled)}] "
            line = (head + bar + text)[:width]
            stream.write("\r\x1b[2K" + line)
            stream.flush()
            self.drawn = True
