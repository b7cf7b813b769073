"""How hwr installs: the web app as `hwr_ui` (never a bare `ui`), and a core that does not
import it until `hwr ui` runs.

Not tested here: the shipped assets under share/hwr (tests/test_assets-style checks do that)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _python(code: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def test_building_every_parser_imports_no_ui_package(tmp_path):
    proc = _python("import sys; from hwr.cli import build_parser; build_parser().parse_args(['ui', '--port', '1']); "
                   "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ui', 'hwr_ui', 'gradio')))", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_app_imports_as_hwr_ui_and_not_as_ui(tmp_path):
    """From outside the checkout (no ui/ folder on the path), only the installed name exists."""
    proc = _python("import importlib.util as u, hwr_ui; print(u.find_spec('ui') is None, hwr_ui.UIConfig.__module__)",
                   tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "hwr.ui_cli"]


@pytest.mark.slow
def test_a_regular_install_holds_hwr_and_hwr_ui_only(tmp_path):
    """Build the wheel, install it into a folder, and start `hwr ui --help` from there."""
    # Built from a copy of the sources: setuptools writes build/ beside them, never into the checkout
    # (models/ and data/ are left out: they only add share/hwr data files).
    source = tmp_path / "source"
    for name in ("hwr", "ui"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyi"))
    for name in ("pyproject.toml", "setup.py", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "wheel"),
                            str(source)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "wheel").glob("hwr-*.whl"))
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.startswith("hwr-")} == {"hwr", "hwr_ui"}
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "hwr", "ui", "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--max-zip-files" in proc.stdout, proc.stderr
    proc = _python("import hwr, hwr_ui.app; print(hwr.__file__, hwr_ui.app.__file__)", tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert all(path.startswith(str(target)) for path in proc.stdout.split())
