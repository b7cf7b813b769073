"""Atomic file writes: every output hwr writes appears whole or not at all.

Write to a temp file beside the target (same file system, so the rename is atomic; named per
process, so parallel writers never share one), then `os.replace` it into place.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_gzip_by_suffix(path: str | Path, data: bytes) -> None:
    """Gzipped when `path` ends in .gz (reproducibly: no timestamp), as is otherwise."""
    atomic_write_bytes(path, gzip.compress(data, mtime=0) if Path(path).suffix == ".gz" else data)
