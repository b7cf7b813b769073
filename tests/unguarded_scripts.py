"""Running a script that has no `if __name__ == "__main__":` guard, as a user's would be: its
worker processes run it again from the top (spawn). Torch-free, for the test modules that
worker processes import too."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def run_unguarded(folder: Path, source: str, *args: str) -> tuple[str, str]:
    """Write `source` to folder/unguarded.py, run it there, and return the last line it printed
    and its stderr. It must exit 0 without a traceback."""
    script = folder / "unguarded.py"
    script.write_text(textwrap.dedent(source))
    run = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                         timeout=300, cwd=folder)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    return run.stdout.strip().splitlines()[-1], run.stderr
