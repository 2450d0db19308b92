"""The limits and defaults of a transfer: part sizes and counts, the read chunk, workers and
retries; the part size an upload uses and the one an interrupted upload used."""

import math
import os
from typing import Any

from peridio_cli.errors import UsageProblem

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
CHUNK = 1 * MiB  # read and send buffer
MIN_PART_SIZE = 5 * MiB  # every part but the last (S3's rule, the server's too)
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
DEFAULT_MIN_PART_SIZE = 8 * MiB
MAX_DEFAULT_PART_SIZE = 64 * MiB
TARGET_PARTS = 64
DEFAULT_RETRIES = 5


def default_concurrency() -> int:
    return min(2 * (os.cpu_count() or 1), 8)


def default_part_size(size: int) -> int:
    """Whole MiB: at least 8 MiB; about 1/64 of the file up to 64 MiB (fewer, larger parts
    cost less per byte on the server, 64 still keep 8 workers busy and a retry small); and
    large enough that there are at most 10,000 parts."""
    share = min(math.ceil(size / TARGET_PARTS), MAX_DEFAULT_PART_SIZE)
    needed = max(DEFAULT_MIN_PART_SIZE, share, math.ceil(size / MAX_PARTS))
    return math.ceil(needed / MiB) * MiB


def check_part_size(part_size: int, size: int) -> None:
    if part_size > MAX_PART_SIZE:
        raise UsageProblem(f"--binary-part-size can be at most 5 GiB ({MAX_PART_SIZE} bytes).")
    if part_size < MIN_PART_SIZE and size > part_size:
        raise UsageProblem(
            f"--binary-part-size must be at least 5 MiB ({MIN_PART_SIZE} bytes) when the file "
            f"needs more than one part; got {part_size}."
        )
    if size and math.ceil(size / part_size) > MAX_PARTS:
        raise UsageProblem(
            f"--binary-part-size {part_size} makes {math.ceil(size / part_size)} parts; at most "
            f"{MAX_PARTS} are allowed: use at least {default_part_size(size)}."
        )


def part_count(size: int, part_size: int) -> int:
    return math.ceil(size / part_size) if size else 0


def adopt_layout(existing: dict[int, dict[str, Any]], size: int, chosen: int | None) -> int | None:
    """The part size an earlier, interrupted upload used, so a rerun resumes it; None when
    there is nothing to adopt (or the user chose a size)."""
    if chosen is not None or 1 not in existing:
        return None
    first = int(existing[1].get("size") or 0)
    if first <= 0 or first > MAX_PART_SIZE:
        return None
    if first < size and (first < MIN_PART_SIZE or part_count(size, first) > MAX_PARTS):
        return None
    return min(first, size) if size else None
