"""Where hwr's shipped assets live: fonts/corpora/LMs (`data/`) and trained models (`models/`).

A checkout or editable install reads them from the repository; a regular `pip install .`
copies them to `<prefix>/share/hwr/` (pyproject's data-files). Environment variables
override both, e.g. for a shared read-only install.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent
_INSTALLED_ROOT = Path(sys.prefix) / "share" / "hwr"


def _resolve(env_var: str, name: str) -> Path:
    env = os.environ.get(env_var)
    if env:
        return Path(env)
    for root in (_REPO_ROOT, _INSTALLED_ROOT):
        if (root / name).is_dir():
            return root / name
    return _REPO_ROOT / name


def data_dir() -> Path:
    """Fonts, corpora, digits, language models, schemas, samples."""
    return _resolve("HWR_DATA_DIR", "data")


def models_dir() -> Path:
    """Shipped trained models, one folder each."""
    return _resolve("HWR_MODELS_DIR", "models")
