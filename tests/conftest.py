"""Shared fixtures: tiny rendered line images, built in the test, nothing downloaded."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO = Path(__file__).resolve().parent.parent
# Keep the 2-core CI machine responsive when tests run torch.
torch.set_num_threads(min(2, torch.get_num_threads()))

LINE_TEXTS = [
    "the cat sat", "a big dog", "hello world", "read me now", "one two three",
    "we go home", "red and blue", "it is done", "sun and moon", "top of the hill",
]


def render_line(text: str, size: int = 28, pad: int = 8) -> np.ndarray:
    """A clean dark-on-light line image drawn with Pillow's built-in scalable font."""
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text or " ")
    img = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 255)
    ImageDraw.Draw(img).text((pad - left, pad - top), text, fill=0, font=font)
    return np.asarray(img)


@pytest.fixture
def line_image():
    return render_line


@pytest.fixture
def pairs_dir(tmp_path: Path) -> Path:
    """A folder of line images with .gt.txt beside each (kraken/Calamari convention)."""
    folder = tmp_path / "pairs"
    folder.mkdir()
    for i, text in enumerate(LINE_TEXTS):
        Image.fromarray(render_line(text)).save(folder / f"line{i:03d}.png")
        (folder / f"line{i:03d}.gt.txt").write_text(text + "\n", encoding="utf-8")
    return folder


def make_untrained_model(folder: Path, seed: int = 0) -> Path:
    """A tiny untrained CRNN model directory: for tests of structure (shapes, files, outputs),
    not of recognition quality."""
    from hwr.recognition.charset import Charset
    from hwr.recognition.model import ModelConfig, save_model
    from hwr.recognition.nets import build_network, make_config

    torch.manual_seed(seed)
    cfg = make_config("crnn", "tiny")
    net = build_network("crnn", cfg, len(Charset()))
    config = ModelConfig(arch="crnn", net=cfg.to_dict(), charset=Charset().to_json(),
                         normalize={"line_height": cfg.line_height})
    return save_model(folder, net.eval(), config)


def free_port() -> int:
    """A localhost port nobody listens on (for the web app's test servers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def untrained_model(tmp_path_factory) -> Path:
    return make_untrained_model(tmp_path_factory.mktemp("model") / "tiny")
