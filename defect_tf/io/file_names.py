"""File names the tool makes from what users give it (photo names, attribute names): safe on every file system,
and unique within one folder the way case-insensitive file systems compare them. No TensorFlow."""

from __future__ import annotations

import re


def safe_file_name(text: str) -> str:
    """`text` with every run of characters other than letters, digits, `.`, `_` and `-` turned into one `_`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"


class UniqueNames:
    """Hands out names unique within one folder, ignoring case: a name already given gets -2, -3, ... after its
    stem (before `suffix`)."""

    def __init__(self):
        self.used: set[str] = set()

    def __call__(self, stem: str, suffix: str = "") -> str:
        candidate, number = stem, 1
        while (candidate + suffix).lower() in self.used:
            number += 1
            candidate = f"{stem}-{number}"
        self.used.add((candidate + suffix).lower())
        return candidate + suffix
