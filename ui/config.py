"""Settings of `hwr ui`, declared in `hwr.ui_cli` (so the CLI knows the flags without importing
the app) and re-exported here for the app's code."""
from __future__ import annotations

from hwr.ui_cli import UIConfig

__all__ = ["UIConfig"]
