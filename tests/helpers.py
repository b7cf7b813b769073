"""Test helpers shared by every test module: tiny rendered lines and an untrained model, built
in the test, nothing downloaded. Import them as `from helpers import render_line` (tests/ is on
the path); the fixtures that wrap them live in conftest.py."""
from __future__ import annotations

import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parent.parent

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


def page_image(texts: list[str]) -> Image.Image:
    """Lines stacked with gaps, as a page the segmenter cuts into len(texts) lines."""
    lines = [render_line(t) for t in texts]
    width = max(line.shape[1] for line in lines) + 80
    page = np.full((sum(line.shape[0] + 40 for line in lines) + 80, width), 255, np.uint8)
    y = 60
    for line in lines:
        page[y : y + line.shape[0], 40 : 40 + line.shape[1]] = line
        y += line.shape[0] + 40
    return Image.fromarray(page)


def make_untrained_model(folder: Path, seed: int = 0, symbols: str | None = None) -> Path:
    """A tiny untrained CRNN model directory: for tests of structure (shapes, files, outputs),
    not of recognition quality. `symbols`: its charset (default: printable ASCII)."""
    from hwr.recognition.charset import Charset
    from hwr.recognition.imaging import NormalizeConfig
    from hwr.recognition.model import ModelConfig, save_model
    from hwr.recognition.nets import build_network, make_config

    torch.manual_seed(seed)
    cfg = make_config("crnn", "tiny")
    charset = Charset(list(symbols)) if symbols is not None else Charset()
    net = build_network("crnn", cfg, len(charset))
    config = ModelConfig(arch="crnn", net=cfg.to_dict(), charset=charset.to_json(),
                         normalize=NormalizeConfig(line_height=cfg.line_height).to_dict())
    return save_model(folder, net.eval(), config)


def free_port() -> int:
    """A localhost port nobody listens on (for the web app's test servers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def count_gaps(ink: np.ndarray, width: int) -> int:
    """Runs of at least `width` ink-free columns in a coverage image (how many word gaps show)."""
    empty = ~(ink > 0).any(axis=0)
    runs, run = 0, 0
    for is_empty in empty:
        run = run + 1 if is_empty else 0
        runs += run == width
    return runs


def salt_and_pepper(image: np.ndarray, share: float, seed: int = 1) -> np.ndarray:
    """The image with `share` of its pixels set to black or white at random (half each)."""
    draw = np.random.default_rng(seed).random(image.shape)
    noisy = image.copy()
    noisy[draw < share / 2] = 0
    noisy[(draw >= share / 2) & (draw < share)] = 255
    return noisy


def gaussian_noise(image: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    """The image with Gaussian pixel noise of `sigma` grey levels."""
    noise = np.random.default_rng(seed).normal(0, sigma, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


@contextmanager
def held_by_another_process(folder: Path):
    """`folder` held (hwr.fileio.folder_held) by another process for the block, as a run
    writing there holds it: this process's own holds let each other in."""
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom hwr.fileio import folder_held\n"
                               "with folder_held(sys.argv[1], 'held'):\n    print('held', flush=True)\n"
                               "    time.sleep(120)", str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


BENCH = Path(__file__).resolve().parents[1] / "bench"


@contextmanager
def bench_script(name: str, siblings: tuple[str, ...] = ()):
    """The script bench/`name`.py loaded as a module, with bench/ on the path as when it is run (it
    imports the sibling scripts `siblings`, which are forgotten again afterwards)."""
    import importlib.util

    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))
        for sibling in siblings:
            sys.modules.pop(sibling, None)


def process_running(pid: int) -> bool:
    """Whether process `pid` runs (Linux: reads /proc); a zombie has exited, only its parent's
    reaping is left."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
