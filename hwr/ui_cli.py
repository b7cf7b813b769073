"""`hwr ui`: the web app's settings and the command that serves it.

The app itself lives in the top-level `ui/` folder, installed as the package `hwr_ui`. It
imports hwr; hwr imports it only inside `cmd_ui`, when the app actually runs (gradio takes
seconds to import). Its settings live here, so the CLI learns `hwr ui`'s flags without it.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from hwr.config_args import build_config, setting
from hwr.recognition.settings import RecognizerSettings


@dataclass
class UIConfig(RecognizerSettings):
    """Settings of `hwr ui`: the shared recognizer settings plus the web server's."""

    # Loopback only: other machines reach the app only when asked (--host 0.0.0.0).
    host: str = setting("127.0.0.1", help="address to listen on; 0.0.0.0 lets other machines in")
    port: int = setting(7860, help="port to listen on")
    # A public gradio.live tunnel: the only setting that makes network calls.
    share: bool = setting(False, help="also open a public gradio.live link (makes network calls)")
    # Recognition is CPU/GPU bound: running more jobs at once only splits the same cores, so a
    # small limit keeps each request fast and memory bounded; the rest wait in the queue.
    concurrency: int = setting(2, help="jobs run at once; further requests wait in the queue")
    # Requests waiting beyond this are refused ("queue full"), not piled up.
    queue_size: int = setting(32, help="requests that may wait; more are refused")
    max_upload_mb: int = setting(200, help="largest accepted upload, per file (zips are also capped unpacked)")
    max_zip_mb: int = setting(1024, help="largest accepted unpacked size of an uploaded zip")
    max_zip_files: int = setting(20000, help="most files accepted in an uploaded zip")


def cmd_ui(args: argparse.Namespace) -> int:
    from hwr_ui.app import serve
    from hwr_ui.models import discover_models

    config = build_config(UIConfig, args, args.config)
    discover_models(config.model)  # a --model that names no model stops here, not after "serving"
    print(f"hwr ui: serving on http://{config.host}:{config.port} (Ctrl-C stops it)")
    serve(config)
    return 0
