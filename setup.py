"""Packaging metadata lives in pyproject.toml; this file only lists the shipped assets.

A regular (non-editable) install copies `models/` and `data/` to `<prefix>/share/hwr/`, where
`hwr.assets` finds them. setuptools' static `data-files` table cannot recurse into folders,
hence this walk.
"""
import os

from setuptools import setup


def tree(source: str, target: str) -> list[tuple[str, list[str]]]:
    entries = []
    for folder, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        files = sorted(os.path.join(folder, f) for f in files if not f.startswith("."))
        if files:
            entries.append((os.path.join(target, os.path.relpath(folder, source)), files))
    return entries


DATA_FILES = tree("models", "share/hwr/models") + tree("data", "share/hwr/data")

if __name__ == "__main__":  # setuptools' build backend runs this file as __main__
    setup(data_files=DATA_FILES)
