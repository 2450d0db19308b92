"""The console's templates carry no script of their own: everything runs from static files, so
a Content-Security-Policy without 'unsafe-inline' holds (the browser tests send one)."""

import re
from pathlib import Path

from django.conf import settings

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
EVENT_ATTRIBUTE = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
SCRIPT_URL = re.compile(r"javascript:", re.IGNORECASE)
# htmx evaluates these as JavaScript.
HTMX_SCRIPT = re.compile(r"\bhx-on\b|\bhx-vars\b|hx-vals\s*=\s*['\"]\s*js:", re.IGNORECASE)


def templates() -> list[Path]:
    folders = [Path(folder) for folder in settings.TEMPLATES[0]["DIRS"]]
    found = [path for folder in folders for path in folder.rglob("*.html")]
    assert found, f"no templates under {folders}"
    return found


def test_it_has_no_inline_scripts_or_event_attributes():
    for path in templates():
        text = path.read_text()
        for pattern in (INLINE_SCRIPT, EVENT_ATTRIBUTE, SCRIPT_URL, HTMX_SCRIPT):
            match = pattern.search(text)
            assert match is None, f"{path}: {match.group(0) if match else ''}"
