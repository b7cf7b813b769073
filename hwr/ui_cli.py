"""`hwr ui`: serve the web app (top-level package `ui`) on this machine.

Kept apart from hwr/cli.py so the CLI learns the app's flags from `ui.config.UIConfig`
without importing gradio until the command actually runs.
"""
from __future__ import annotations

import argparse

from hwr.config_args import add_dataclass_arguments, build_config

# The shared recognizer fields (model.RecognizerSettings) take their help from here; the
# server's own fields carry theirs (ui/config.py).
UI_HELP = {
    "model": "model folder offered first (others in models/ are offered too)",
    "device": "cpu, cuda, cuda:N or auto",
    "decoder": "decoder selected at start: greedy, beam, beam-char or beam-word (users may switch)",
}


def add_ui_parser(sub) -> argparse.ArgumentParser:
    from ui.config import UIConfig

    from hwr.recognition.decode import DECODER_HELP

    p = sub.add_parser("ui", help="start the web app (transcribe, batch, evaluate)",
                       description="Serve the hwr web app: upload handwriting and read it, transcribe many files, "
                                   "score a model on a zipped data set. Listens on 127.0.0.1 unless --host is given.")
    add_dataclass_arguments(p, UIConfig, help_texts=DECODER_HELP | UI_HELP)
    return p


def cmd_ui(args: argparse.Namespace) -> int:
    from ui.app import serve
    from ui.config import UIConfig

    config = build_config(UIConfig, args, args.config)
    print(f"hwr ui: serving on http://{config.host}:{config.port} (Ctrl-C stops it)")
    serve(config)
    return 0
