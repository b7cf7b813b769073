"""The project's own error types: what `hwr` reports as a user error (message, exit 2).

Every error caused by the user's input, files or settings derives from `HwrError` (data sets:
`hwr.datasets.DatasetError`, models: `hwr.recognition.model.ModelError`, images:
`hwr.recognition.imaging.ImageError`, settings: `ConfigError`). The CLI catches `HwrError`
only, so a bug that raises a plain `ValueError` still shows its traceback.
"""
from __future__ import annotations


class HwrError(Exception):
    """A problem with the user's input, files or settings; the message says which."""


class ConfigError(HwrError, ValueError):
    """A setting (command-line flag, config file entry or config field) has an unusable value."""


class MissingFileError(HwrError, FileNotFoundError):
    """A file that a setting names (an LM, a lexicon, a charset file) does not exist."""


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """"1 line", "3 lines": a count with its noun in the right number (`plural` when not noun + "s")."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def name_some(items, limit: int, sep: str = "; ") -> str:
    """The first `limit` items joined, then how many more: "a; b; c; and 2 more". Messages name
    a few bad files so the user can start, without a screenful for a large data set."""
    items = [str(item) for item in items]
    more = f"{sep}and {len(items) - limit} more" if len(items) > limit else ""
    return sep.join(items[:limit]) + more
