"""Model tab logic: what the model is (card, device, size) and how fast it reads here."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from hwr.assets import data_dir
from hwr.errors import name_some
from hwr.recognition.imaging import ImageError, load_gray
from hwr.recognition.model import MODEL_CARD_FILE, Recognizer

from .pages import transcribe_image


def samples_dir() -> Path:
    return data_dir() / "samples"


def sample_lines() -> list[Path]:
    return sorted(samples_dir().glob("line-*.png"))


def sample_pages() -> list[Path]:
    return sorted(samples_dir().glob("page-*.jpg"))


def model_card(recognizer: Recognizer) -> str:
    """The model's MODEL_CARD.md when it has one, else what its config.json says."""
    card = recognizer.path / MODEL_CARD_FILE if recognizer.path else None
    if card is not None and card.is_file():
        # A card edited by hand in another encoding still shows (bad bytes as U+FFFD).
        return card.read_bytes().decode("utf-8", errors="replace")
    config = recognizer.config
    training = config.training or {}
    facts = [f"- architecture: `{config.arch}`", f"- characters: {len(config.charset)}",
             f"- line height: {config.normalize.get('line_height', '?')} px"]
    facts += [f"- {key.replace('_', ' ')}: {value}" for key, value in training.items() if not isinstance(value, dict)]
    name = recognizer.path.name if recognizer.path else "model"
    return f"# {name}\n\nThis model has no {MODEL_CARD_FILE}; from its config.json:\n\n" + "\n".join(facts)


def model_facts(recognizer: Recognizer) -> dict:
    # No "path" key: gradio takes a JSON object with one for a file to serve, and refuses it.
    return {"model_folder": str(recognizer.path), "device": str(recognizer.device),
            "parameters": recognizer.num_parameters,
            "decoder": getattr(recognizer.decoder, "name", type(recognizer.decoder).__name__),
            "torch_threads": torch.get_num_threads()}


def measure_speed(recognizer: Recognizer, repeats: int = 3) -> dict:
    """Wall-clock times on the shipped samples: one line alone, lines in a batch, a page."""
    lines, unreadable = _readable_samples(sample_lines())
    if not lines:
        return {"error": f"no readable sample lines in {samples_dir()}"
                         + (f" (unreadable: {name_some(unreadable, 3)})" if unreadable else "")}
    recognizer.recognize(lines[:1], batch_size=1)  # warm-up: first call allocates and picks kernels
    single = [_seconds(lambda: recognizer.recognize([line], batch_size=1)) for line in lines * repeats]
    batch = min(_seconds(lambda: recognizer.recognize(lines, batch_size=len(lines))) for _ in range(repeats))
    result = {"one_line_ms_median": round(1000 * statistics.median(single), 1),
              "batch_lines_per_s": round(len(lines) / batch, 1),
              "mean_line_width_px": int(np.mean([g.shape[1] for g in lines]))}
    if unreadable:
        result["unreadable_samples"] = unreadable
    pages, unreadable_pages = _readable_samples(sample_pages()[:1])
    if unreadable_pages:
        result["unreadable_samples"] = unreadable + unreadable_pages
    if pages:
        gray = pages[0]
        result["page_s"] = round(min(_seconds(lambda: transcribe_image(recognizer, gray, "page"))
                                     for _ in range(repeats)), 2)
        result["page_size_px"] = f"{gray.shape[1]}x{gray.shape[0]}"
    return result


def _readable_samples(paths: list[Path]) -> tuple[list, list[str]]:
    """The images that load, and the names of those that do not: a damaged sample file is
    left out of the timing and named, not a failed measurement."""
    images, unreadable = [], []
    for path in paths:
        try:
            images.append(load_gray(path))
        except ImageError:
            unreadable.append(path.name)
    return images, unreadable


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
