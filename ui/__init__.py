"""hwr's web app (Gradio), installed as the package `hwr_ui` (from the top-level `ui/` folder).
`hwr ui` starts it; in Python:

    from hwr_ui import UIConfig, build_app, launch_app
    demo = build_app(UIConfig(model="models/hwr-en-small"))
    url = launch_app(demo, UIConfig(port=7860), block=False)

Importing `hwr` first sets the telemetry switches before gradio is imported.
"""
import hwr  # noqa: F401

from .config import UIConfig


def __getattr__(name):  # lazy: gradio takes seconds to import, `hwr --help` should not wait
    if name in ("build_app", "launch_app", "close_app", "serve"):
        from . import app

        return getattr(app, name)
    raise AttributeError(name)


__all__ = ["UIConfig", "build_app", "close_app", "launch_app", "serve"]
