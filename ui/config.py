"""Settings of `hwr ui`: one dataclass gives the CLI flags and their defaults.

The model, device, decoder (with its LM options) and batch size are the ones every command
that reads images shares (`hwr.recognition.model.RecognizerSettings`); the rest is the web server's.
"""
from __future__ import annotations

from dataclasses import dataclass

from hwr.recognition.model import RecognizerSettings


@dataclass
class UIConfig(RecognizerSettings):
    host: str = "127.0.0.1"  # loopback only: other machines reach the app only when asked (--host 0.0.0.0)
    port: int = 7860
    share: bool = False  # a public gradio.live tunnel: the only setting that makes network calls
    # Recognition is CPU/GPU bound: running more jobs at once only splits the same cores, so a
    # small limit keeps each request fast and memory bounded; the rest wait in the queue.
    concurrency: int = 2
    queue_size: int = 32  # requests waiting beyond this are refused ("queue full"), not piled up
    max_upload_mb: int = 200  # per uploaded file; zips are also capped on their unpacked size
    max_zip_mb: int = 1024  # total unpacked size of one uploaded zip
    max_zip_files: int = 20000
