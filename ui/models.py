"""The models a UI user may choose, and a small cache of loaded `Recognizer`s.

The choices are fixed when the server starts (the --model folder and the shipped models):
a web user never types a server path, so a shared app cannot be used to probe the disk.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

from hwr.assets import models_dir
from hwr.recognition.decode import DECODERS, usable_options
from hwr.recognition.model import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    ModelError,
    Recognizer,
    check_model_files,
    resolve_model_dir,
    unknown_model,
)
from hwr.recognition.settings import DOUBTFUL_BELOW

log = logging.getLogger("ui.models")

# Each Recognizer holds a network (tens of MB); two cover "compare decoders" or two models.
CACHE_SIZE = 2


def decoder_names() -> list[str]:
    return list(DECODERS)


def discover_models(preferred: str | None) -> dict[str, Path]:
    """label -> model folder: the preferred (or default) model first, then models/*.

    A `preferred` that names no model, or one whose files cannot be read (a config that is
    no JSON, weights cut short, a charset the weights do not fit), is refused (ModelError), as
    `hwr transcribe --model` refuses it: a typo must not quietly serve another model, nor a
    broken one start a server that fails at the first page. Another such folder under models/
    is left off the menu with a warning."""
    candidates = [resolve_model_dir(preferred)]
    if preferred and not (candidates[0] / CONFIG_FILE).is_file():
        raise unknown_model(preferred)
    if preferred:
        check_model_files(candidates[0])
    root = models_dir()
    if root.is_dir():
        # Hidden folders are a model being written or set aside (hwr.fileio.swap_in_folder).
        candidates += sorted(p for p in root.iterdir() if (p / CONFIG_FILE).is_file() and not p.name.startswith("."))
    choices: dict[str, Path] = {}
    for number, path in enumerate(candidates):
        if not (path / CONFIG_FILE).is_file() or path.resolve() in {p.resolve() for p in choices.values()}:
            continue
        if (number > 0 or not preferred) and not usable_model(path):
            continue
        # The page shows labels as text (JSON): a folder named in Latin-1 is shown with escapes.
        name = shown_name(path.name)
        label = name if name not in choices else f"{name} ({shown_name(str(path.parent))})"
        choices[label] = path
    return choices


def usable_model(folder: Path) -> bool:
    """Whether a model folder found on the disk can be read (check_model_files); one that
    cannot is logged and left off the menu, and the server starts with the others."""
    try:
        check_model_files(folder)
    except ModelError as exc:
        log.warning("%s; it is left off the model menu", exc)
        return False
    return True


def shown_name(name: str) -> str:
    """A file name as the page can show it: the bytes of one that is not UTF-8 as escapes
    (gradio sends the page JSON, which cannot carry them, and the server had failed to start)."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")


class ModelRegistry:
    """Loads models on first use and keeps the last few; safe to call from queue workers."""

    def __init__(self, preferred: str | None = None, device: str = "auto", beam_options: dict | None = None,
                 search_workers: int | None = None, width_variants: tuple[float, ...] = (),
                 width_variants_below: float = DOUBTFUL_BELOW):
        self.preferred = preferred
        self.device = device
        self.search_workers = search_workers  # the server's --search-workers (None: the auto choice)
        # The server's --width-variants and --width-variants-below, for every model.
        self.width_variants, self.width_variants_below = tuple(width_variants), width_variants_below
        # LM, lexicon and search settings for the beam decoders (the server's --lm etc.).
        self.beam_options = beam_options or {}
        self.choices = discover_models(preferred)
        self._cache: OrderedDict[tuple, Recognizer] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def labels(self) -> list[str]:
        """The models to offer now (menus are listed from this on opening)."""
        self._drop_deleted()
        return list(self.choices)

    def _drop_deleted(self) -> list[str]:
        """Forget the models whose folder no longer holds one (an adapted model someone deleted
        from the disk): a menu must not offer what fails when picked. Returns their labels."""
        with self._lock:
            gone = [label for label, path in self.choices.items() if not (path / CONFIG_FILE).is_file()]
            for label in gone:
                del self.choices[label]
        return gone

    @property
    def default_label(self) -> str | None:
        return self.labels[0] if self.choices else None

    def add(self, label: str, path: Path) -> None:
        """Offer one more model: one this server made (an adapted model under the user's data
        folder), never a path a web user typed."""
        with self._lock:
            self.choices[label] = Path(path)

    def path(self, label: str | None) -> Path:
        """The folder of the model a label names (ModelError when unknown)."""
        return self._path(label)

    def get(self, label: str | None, decoder: str = "greedy") -> Recognizer:
        path = self._path(label)
        if decoder not in DECODERS:
            raise ModelError(f"unknown decoder {decoder!r}; choose one of {decoder_names()}")
        # The weights' mtime is part of the key, so a model retrained in place is reloaded.
        weights = path / WEIGHTS_FILE
        key = (str(path.resolve()), decoder, weights.stat().st_mtime_ns if weights.exists() else 0)
        with self._lock:  # one load at a time: two users asking at once must not load twice
            if key not in self._cache:
                # The server's search settings, those this decoder uses (--word-score is the word
                # search's): the character search had failed every request with it.
                options = usable_options(decoder, self.beam_options)
                self._cache[key] = Recognizer.load(path, device=self.device, decoder=decoder,
                                                   search_workers=self.search_workers,
                                                   width_variants=self.width_variants,
                                                   width_variants_below=self.width_variants_below, **options)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)[1].close()
            self._cache.move_to_end(key)
            return self._cache[key]

    def _path(self, label: str | None) -> Path:
        if label is not None and label in self._drop_deleted():
            raise ModelError(f"the model {label!r} is no longer on the server (its folder was deleted); it is off "
                             f"the menu now: choose another of {self.labels}")
        if not self.choices:
            wanted = resolve_model_dir(self.preferred)
            raise ModelError(f"no model found at {wanted}; start the app with `hwr ui --model <model folder>`")
        if label is None:
            return next(iter(self.choices.values()))
        if label not in self.choices:
            raise ModelError(f"unknown model {label!r}; choose one of {self.labels}")
        return self.choices[label]
