"""Packaging metadata lives in pyproject.toml; this file lists the packages and the shipped assets.

A regular (non-editable) install copies `models/` and `data/` to `<prefix>/share/hwr/`, where
`hwr.assets` finds them. setuptools' static `data-files` table cannot recurse into folders,
hence this walk.
"""
import os

from setuptools import find_packages, setup


def tree(source: str, target: str) -> list[tuple[str, list[str]]]:
    entries = []
    for folder, dirs, files in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        files = sorted(os.path.join(folder, f) for f in files if not f.startswith("."))
        if files:
            entries.append((os.path.join(target, os.path.relpath(folder, source)), files))
    return entries


DATA_FILES = tree("models", "share/hwr/models") + tree("data", "share/hwr/data")

# The web app stays in the top-level ui/ folder but installs as `hwr_ui`: site-packages gets no
# package with a name as generic as `ui`.
PACKAGES = find_packages(include=["hwr", "hwr.*"]) + ["hwr_ui"]
PACKAGE_DIR = {"hwr_ui": "ui"}

if __name__ == "__main__":  # setuptools' build backend runs this file as __main__
    setup(packages=PACKAGES, package_dir=PACKAGE_DIR, data_files=DATA_FILES)
