"""Models on disk (safetensors + JSON, no pickle) and the `Recognizer` facade.

A model directory holds `model.safetensors` (weights), `config.json` (architecture,
charset, normalisation, training summary) and optionally `MODEL_CARD.md`. The CLI, the
batch transcriber, the scorer and the UI all go through `Recognizer`; none of them
re-implements preprocessing or decoding.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from hwr.assets import models_dir
from hwr.errors import HwrError
from hwr.recognition.charset import Charset
from hwr.recognition.decode import make_decoder
from hwr.fileio import atomic_write_bytes
from hwr.recognition.imaging import LineGeometry, NormalizeConfig, normalize_line, normalize_line_with_geometry
from hwr.recognition.nets import build_network, config_class, count_parameters, prepare_for_inference
from hwr.records import Recognition

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1
DEFAULT_MODEL_NAME = "hwr-en-small"


class ModelError(HwrError, RuntimeError):
    """A model directory is missing, incomplete or corrupt; the message names the file."""


@dataclass
class ModelConfig:
    arch: str
    net: dict
    charset: list[str]
    normalize: dict = field(default_factory=lambda: NormalizeConfig().to_dict())
    training: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def net_config(self):
        return config_class(self.arch).from_dict(self.net)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        missing = {"arch", "net", "charset"} - set(d)
        if missing:
            raise ValueError(f"missing keys {sorted(missing)}")
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def default_model_dir() -> Path:
    """The model used when none is named: $HWR_MODEL, else the shipped default."""
    env = os.environ.get("HWR_MODEL")
    if env:
        return Path(env)
    return models_dir() / DEFAULT_MODEL_NAME


def save_model(directory: str | Path, net: torch.nn.Module, config: ModelConfig, half: bool = False) -> Path:
    """Write weights and config atomically; `half` stores float tensors as fp16 (smaller files)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, tensor in net.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        if half and tensor.is_floating_point():
            tensor = tensor.half()
        tensors[name] = tensor
    weights = save_safetensors(tensors, metadata={"format": "pt", "hwr_format_version": str(FORMAT_VERSION)})
    atomic_write_bytes(directory / WEIGHTS_FILE, weights)
    atomic_write_bytes(directory / CONFIG_FILE, config.to_json().encode("utf-8"))
    return directory


def read_model_config(directory: str | Path) -> ModelConfig:
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        raise ModelError(f"{directory}: model directory not found")
    if not path.exists():
        raise ModelError(f"{path}: model config not found")
    try:
        return ModelConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{path}: invalid model config ({exc})") from None


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ModelConfig]:
    """Build the network from config.json and load its safetensors weights (float32)."""
    config = read_model_config(directory)
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.exists():
        raise ModelError(f"{weights}: weights file not found")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{weights}: corrupt or unreadable weights ({exc})") from None
    net = build_network(config.arch, config.net_config(), len(Charset(config.charset)))
    expected = net.state_dict()
    state = {k: v.to(expected[k].dtype) if k in expected else v for k, v in state.items()}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{weights}: weights do not match the architecture in {CONFIG_FILE} ({exc})") from None
    return net.to(device).eval(), config


def pick_device(device: str | None = None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Recognizer:
    """Line images in, `Recognition`s out: normalisation, batching by width, network, decoding."""

    def __init__(self, net: torch.nn.Module, config: ModelConfig, device: str | torch.device | None = None,
                 decoder: str = "greedy", **decoder_options):
        self.device = pick_device(device) if not isinstance(device, torch.device) else device
        self.net = net.to(self.device).eval()
        self.config = config
        self.charset = Charset(config.charset)
        self.normalize_config = NormalizeConfig.from_dict(config.normalize)
        self.decoder = make_decoder(decoder, self.charset, **decoder_options)
        self.path: Path | None = None
        self.num_parameters = count_parameters(self.net)

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | None = None, decoder: str = "greedy", **decoder_options) -> "Recognizer":
        """Load a model directory (default: the shipped model)."""
        path = Path(path) if path else default_model_dir()
        if not path.exists():
            hint = "" if path != default_model_dir() else " (no default model is shipped in this install; pass --model)"
            raise ModelError(f"{path}: model directory not found{hint}")
        net, config = load_model(path)
        rec = cls(net, config, device, decoder, **decoder_options)
        rec.path = path
        # This network is ours alone (a Recognizer built around a training net must leave it
        # trainable), so it can be folded and re-laid-out for speed.
        rec.net = prepare_for_inference(rec.net, rec.device)
        return rec

    from_pretrained = load

    def preprocess(self, image) -> np.ndarray:
        """Any image source -> the normalised float array the network reads."""
        return normalize_line(image, self.normalize_config)

    def preprocess_with_geometry(self, image) -> tuple[np.ndarray, LineGeometry]:
        """`preprocess`, plus the crop/scale that maps network-input x back to the source image."""
        return normalize_line_with_geometry(image, self.normalize_config)

    def recognize(self, images: Iterable, batch_size: int = 16, words: bool = False) -> list[Recognition]:
        """Recognise line images (paths, arrays or PIL images); order is preserved.

        words=True also fills each Recognition's `words` (boxes in source-image pixels)."""
        if not words:
            return self.recognize_normalized([self.preprocess(im) for im in images], batch_size)
        prepared = [self.preprocess_with_geometry(im) for im in images]
        return self.recognize_normalized([p[0] for p in prepared], batch_size, [p[1] for p in prepared])

    def recognize_normalized(self, lines: Sequence[np.ndarray], batch_size: int = 16,
                             geometries: Sequence[LineGeometry] | None = None) -> list[Recognition]:
        """Recognise normalised lines; with their geometries, also locate the words."""
        # Sorting by width keeps padding (wasted compute) small; results go back in input order.
        order = sorted(range(len(lines)), key=lambda i: lines[i].shape[1])
        results: list[Recognition | None] = [None] * len(lines)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            for i, rec in zip(chunk, self._recognize_batch([lines[i] for i in chunk])):
                results[i] = rec
        if geometries is not None:
            from hwr.recognition.align import word_boxes

            for rec, geometry in zip(results, geometries):
                rec.words = word_boxes(rec, geometry)
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def log_probs(self, lines: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        from hwr.training.batches import pad_images

        images, widths = pad_images(lines)
        logits, lengths = self.net(images.to(self.device), widths.to(self.device))
        return logits.float().log_softmax(-1), lengths

    def _recognize_batch(self, lines: Sequence[np.ndarray]) -> list[Recognition]:
        log_probs, lengths = self.log_probs(lines)
        frame_width = float(getattr(self.net, "width_factor", 1))
        return self.decoder.decode(log_probs, lengths, frame_width=frame_width)


@dataclass
class RecognizerSettings:
    """Which model, device and decoder to read with: the settings every command that reads
    images shares (`hwr transcribe`, `hwr eval`, the UI), declared once."""

    model: str | None = None  # model directory; default: the shipped model
    device: str = "auto"
    decoder: str = "greedy"
    # Beam decoding (hwr.recognition.decode.BeamDecoder); None: the tuned default of the decoder's mode.
    lm: str | None = None
    lexicon: str | None = None
    beam_size: int | None = None
    lm_weight: float | None = None
    word_score: float | None = None
    sil_score: float | None = None
    blank_penalty: float | None = None
    batch_size: int = 16

    def load_recognizer(self, model: str | None = None) -> Recognizer:
        from hwr.recognition.decode import decoder_options

        return Recognizer.load(model or self.model, device=self.device, decoder=self.decoder,
                               **decoder_options(self))
