"""Models on disk (safetensors + JSON, no pickle) and the `Recognizer` facade.

A model directory holds `model.safetensors` (weights), `config.json` (architecture,
charset, normalisation, training summary) and optionally `MODEL_CARD.md`. The CLI, the
batch transcriber, the scorer and the UI all go through `Recognizer`; none of them
re-implements preprocessing or decoding.
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from hwr.assets import models_dir
from hwr.config_args import parse_json
from hwr.errors import ConfigError, HwrError, name_some
from hwr.fileio import (
    atomic_write_bytes,
    check_folder_can_be_made,
    check_folder_can_be_swapped,
    held_elsewhere,
    not_found_reason,
    previous_folder,
    recover_folder,
    utf8_named,
    written_whole,
)
from hwr.interrupts import stops_held_back
from hwr.recognition.charset import Charset, unwritable_symbol
from hwr.recognition.decode import BeamDecoder, greedy_line_confidence, make_decoder
from hwr.recognition.imaging import (
    ImageError,
    LineGeometry,
    NormalizeConfig,
    normalize_line,
    normalize_line_with_geometry,
)
from hwr.recognition.line_windows import OVERLAP_HEIGHTS, window_geometry, windowed_scores
from hwr.recognition.nets import build_network, config_class, count_parameters, prepare_for_inference
from hwr.recognition.search_workers import MAX_AUTO_WORKERS, SearchWorkers
from hwr.recognition.settings import DOUBTFUL_BELOW, check_reread_below, check_width_factors
from hwr.recognition.width_variants import lines_of_batch, surest_reading
from hwr.records import FailedInput, Recognition

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
# `hwr adapt --beside`: the base model kept in this sub-folder of the adapted one (Recognizer.beside).
BESIDE_DIR = "beside"
# The lines an adapted model reads less surely than this are read by its base model too (above 1:
# every line); a line the adapted network reads surely keeps its reading. Measured with
# bench/bench_adapt.py (hwr-en-small, 50 lines, --beside, 400 unlabeled lines, seed 2, 2026-12-06)
# on two hands, greedy: 0.98 read the hand and the other hands as every line read twice did
# (just-another-hand 7.00% / 3.65% against 7.00% / 3.64%; sacramento 3.52% / 4.60% against
# 3.54% / 4.56%), the base model reading about half of the lines; 0.95 (a fifth) let the other
# hands lose a third of what the base model saves them (3.88%, 4.91%; the adapted network alone
# 4.21%, 5.40%).
BESIDE_DOUBTFUL_BELOW = 0.98
# Lines are read up to this wide after normalisation (about 1,400 times the line height), in
# windows of the model's max_width; wider ones are squeezed to it, a guard against an image that
# is no line at all (hwr.recognition.line_windows).
LONGEST_LINE = 65536
MODEL_CARD_FILE = "MODEL_CARD.md"
ADAPT_HISTORY_FILE = "adapt-history.jsonl"  # `hwr adapt`: the held-out CER at each evaluation
# What a model folder holds: replacing a model (--overwrite) removes nothing else.
MODEL_ENTRIES = frozenset({WEIGHTS_FILE, CONFIG_FILE, MODEL_CARD_FILE, ADAPT_HISTORY_FILE, BESIDE_DIR})
FORMAT_VERSION = 1
DEFAULT_MODEL_NAME = "hwr-en-small"

log = logging.getLogger("hwr.recognition.model")


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
    def from_dict(cls, d: dict) -> ModelConfig:
        """A checked config; ValueError naming the key when a value has the wrong type or range."""
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        missing = {"arch", "net", "charset"} - set(d)
        if missing:
            raise ValueError(f"missing keys {sorted(missing)}")
        version = d.get("format_version", FORMAT_VERSION)
        if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
            raise ValueError(f"format_version {version!r} is not one this hwr reads (1..{FORMAT_VERSION}); "
                             "a newer hwr wrote it, or the file is damaged")
        if not isinstance(d["arch"], str):
            raise ValueError(f"arch must be a string, got {d['arch']!r}")
        for key in ("net", "normalize", "training"):
            if key in d and not isinstance(d[key], dict):
                raise ValueError(f"{key} must be a JSON object, got {type(d[key]).__name__}")
        charset = d["charset"]
        if not isinstance(charset, list) or not charset or not all(isinstance(c, str) and c for c in charset):
            raise ValueError("charset must be a non-empty list of non-empty strings")
        # Duplicate or multi-character symbols: a ValueError here, not a traceback when the network is built.
        Charset(charset)
        if unwritable := [c for c in charset if unwritable_symbol(c)]:
            log.warning("the model's charset lists control characters or line breaks (%s): its readings may hold "
                        "them (an older hwr learnt them from labels that held them)",
                        name_some(map(ascii, unwritable), 5, sep=", "))
        config = cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
        try:
            net_class = config_class(config.arch)
        except (ValueError, KeyError) as exc:
            raise ValueError(f"arch: {exc}") from None
        check_fields(net_class, config.net, "net")
        net_config = net_class.from_dict(config.net)
        try:
            net_config.validate()
        except ValueError as exc:
            raise ValueError(f"net: {exc}") from None
        check_fields(NormalizeConfig, config.normalize, "normalize")
        norm = NormalizeConfig.from_dict(config.normalize)
        if not 0 <= norm.low_percentile < norm.high_percentile <= 100:
            raise ValueError("normalize.low_percentile and high_percentile must satisfy 0 <= low < high <= 100")
        # Lines are resized to normalize.line_height for a network built for net.line_height
        # (training sets one from the other); a hand-edited height would read every line at the
        # wrong size, or blow each one up to millions of rows.
        if norm.line_height != net_config.line_height:
            given = "line_height" in d.get("normalize", {})  # not the default's
            raise ValueError(f"normalize.line_height {norm.line_height} differs from the network's "
                             f"net.line_height {net_config.line_height}" if given else
                             f"normalize.line_height is missing (the network reads lines {net_config.line_height} "
                             f"px tall; without it they would be normalised to {norm.line_height})")
        return config


def check_fields(cls, values: dict, section: str) -> None:
    """Each known key of `values` has the type of `cls`'s default for it (ints where ints are
    expected, lists of numbers where lists are), and sizes and counts are positive.

    Reading a model must fail here, naming `section.key`, not deep inside torch with a
    TypeError about a tensor shape."""
    defaults = cls()
    for key, value in values.items():
        if key not in cls.__dataclass_fields__:
            continue
        default = getattr(defaults, key)
        where = f"{section}.{key}"
        if not _same_kind(value, default):
            raise ValueError(f"{where} must be {_kind_name(default)}, got {value!r}")
        if isinstance(default, list):
            if default and any(not _same_kind(v, default[0]) for v in value):
                raise ValueError(f"{where} must be a list of {_kind_name(default[0])}s, got {value!r}")
            if any(isinstance(v, (int, float)) and v < 0 for v in value):
                raise ValueError(f"{where} must not hold negative values, got {value!r}")
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            if not math.isfinite(value):
                raise ValueError(f"{where} must be a finite number, got {value!r}")
            # Sizes and counts (a default of 1 or more) must stay positive; rates may be 0.
            minimum = 1 if isinstance(default, int) and default >= 1 else 0
            if value < minimum:
                raise ValueError(f"{where} must be at least {minimum}, got {value!r}")


def _same_kind(value, default) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, list)
    if isinstance(default, str):
        return isinstance(value, str)
    return value is None or isinstance(value, type(default))


def _kind_name(default) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list",
            tuple: "a list"}.get(type(default), type(default).__name__)


def default_model_dir() -> Path:
    """The model used when none is named: $HWR_MODEL (a folder, or a shipped model's name as
    --model takes it), else the shipped default."""
    env = os.environ.get("HWR_MODEL")
    if env:
        return resolve_model_dir(env)
    return models_dir() / DEFAULT_MODEL_NAME


def resolve_model_dir(name_or_dir: str | Path | None) -> Path:
    """A model folder from a path, a shipped model's name (a folder under models/, e.g.
    "hwr-en-base"), or None (the default model). A path that exists wins over a name; what
    is neither comes back as given, for the caller's "not found"."""
    if name_or_dir is None or isinstance(name_or_dir, str) and not name_or_dir:
        return default_model_dir()
    if not isinstance(name_or_dir, (str, os.PathLike)):
        raise ModelError(f"{name_or_dir!r:.80}: not a model: expected a model folder's path or a shipped model's name")
    path = Path(os.fsdecode(name_or_dir))
    named = models_dir() / path
    # A name whose folder a stopped save left as `.NAME.previous` is that model too: its message
    # (read_model_config) says how to get it back, where a plain "not found" had said nothing.
    if not path.exists() and len(path.parts) == 1 and ((named / CONFIG_FILE).is_file()
                                                        or not named.exists() and previous_folder(named).is_dir()):
        return named
    return path


def model_files(model: str | Path | None) -> list[Path]:
    """Every file of a model folder (a path, a shipped model's name, None: the default model)
    and of its subfolders (the base model `beside/` an adapted one), which no output may be:
    `hwr eval --json m/model.safetensors` had replaced the weights it scored with its report."""
    folder = resolve_model_dir(model)
    if not folder.is_dir():
        return []
    return [path for path in (*folder.glob("*"), *folder.glob("*/*")) if path.is_file()]


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


def save_model_folder(directory: str | Path, net: torch.nn.Module, config: ModelConfig, half: bool = False) -> Path:
    """`save_model` into a folder beside `directory`, swapped in whole for the folder there
    (hwr.fileio.written_whole): its weights and config are two files, and a kill between their
    writes had paired new weights with the old config.json; an older model's card, `beside/` or
    adapt history would otherwise outlive it and describe, or be read beside, another network."""
    directory = Path(directory)
    with written_whole(directory) as staging:
        save_model(staging, net, config, half=half)
    return directory


def entries_not_a_models(folder: str | Path, own: Iterable[str] = ()) -> list[str]:
    """The names in `folder` that no model folder holds (`MODEL_ENTRIES`, and the writer's `own`
    working files): replacing the model there would remove them with it. Hidden ones count: a
    model kept under git has its `.git` there."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    kept = MODEL_ENTRIES | set(own)
    return sorted(p.name for p in folder.iterdir() if p.name not in kept)


# What a training run writes in its --out folder as it goes (hwr.training.train).
TRAINING_RUN_ENTRIES = frozenset({"best", "last", "snapshots"})


def checked_model_out(given: str | Path, *, overwrite: bool, sources: Sequence[Path] = (), source_role: str = "",
                      own: Iterable[str] = ()) -> Path:
    """The folder `--out given` names, where `save_model_folder` will write a model whole at the
    end of a run (hwr average, hwr adapt); ConfigError now, before the work, when it cannot or
    must not: a file; the current folder or one holding it; one of `sources` (the models read,
    `source_role` says which); a folder with something in it unless `overwrite`; files that are
    not a model's (`entries_not_a_models`, the writer's `own` aside); a place it cannot be made
    or swapped in. Returned resolved: a link's target (the swap would replace the link itself),
    and "." by its path (a folder swapped in needs a name)."""
    out = Path(os.path.realpath(given))
    cwd = Path.cwd().resolve()
    if out == cwd or out in cwd.parents:
        raise ConfigError(f"--out {given}: is the current folder or holds it; it is replaced whole, so name "
                          "another folder")
    # Before anything there is touched: a run may be writing it now. `hwr average --out run/best
    # --overwrite` had replaced the best model of a training still running into run/.
    busy = held_elsewhere(out)
    if busy == out:
        raise ConfigError(f"--out {given}: another hwr run is using this folder; wait for it to finish, or write "
                          "the model elsewhere")
    if busy is not None and out.relative_to(busy).parts[0] in TRAINING_RUN_ENTRIES:
        raise ConfigError(f"--out {given}: is {out.relative_to(busy).parts[0]}/ of {busy}, which a training "
                          "running there now replaces as it saves; wait for it to finish, or write the model "
                          "elsewhere")
    if recover_folder(out):  # a run killed between the renames that put its model in place
        log.warning("%s: put back the model folder a stopped run had set aside", out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {given}: is a file, not a folder")
    if any(out == Path(source).resolve() for source in sources):
        raise ConfigError(f"--out {given}: is {source_role}; write the new model elsewhere")
    own = set(own)
    if out.is_dir() and any(p.name not in own for p in out.iterdir()) and not overwrite:
        raise ConfigError(f"--out {given}: folder exists and is not empty (use --overwrite to replace the model in it)")
    # The new model replaces the whole folder: what is not a model's would go with it.
    if foreign := entries_not_a_models(out, own):
        raise ConfigError(f"--out {given}: holds files that are not a model's ({name_some(foreign, 3)}), which "
                          "--overwrite would remove with the old model; move them, or choose another --out")
    check_folder_can_be_made(out, "--out")
    check_folder_can_be_swapped(out, "--out")
    return out


def read_model_config(directory: str | Path) -> ModelConfig:
    """The checked config.json of a model directory; ModelError naming the file and the key."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not directory.is_dir():
        if not directory.exists() and previous_folder(directory).is_dir():
            # A save stopped between its two renames (microseconds; a kill): the model is whole
            # beside it, and "not found" had sent the user looking for a folder they had.
            raise ModelError(f"{directory}: not found, but a save stopped while replacing it left the model in "
                             f"{previous_folder(directory).name} beside it: rename that back to {directory.name} "
                             "(hwr train --resume does it for a run's best/ and last/)")
        raise ModelError(f"{directory}: model directory {not_found_reason(directory)}" if not directory.exists()
                         else f"{directory}: not a model directory (a file, not a folder)")
    if not path.exists():
        if (directory / "best" / CONFIG_FILE).is_file():  # a training run's folder named for its model
            raise ModelError(f"{path}: model config not found: {directory} holds a training run, whose model is "
                             f"{directory / 'best'}")
        raise ModelError(f"{path}: model config not found")
    if not path.is_file():
        raise ModelError(f"{path}: model config is not a file")
    try:
        data = parse_json(path.read_text(encoding="utf-8-sig"))  # a byte order mark from a hand edit in Notepad
    except ValueError as exc:  # not UTF-8, not JSON, or nested too deeply
        raise ModelError(f"{path}: invalid model config: not valid JSON ({exc})") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return ModelConfig.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{path}: invalid model config: {exc}") from None


def check_model_files(directory: str | Path) -> ModelConfig:
    """The folder's config, once it and the weights file's header describe the same network
    (ModelError naming the file otherwise); no weight is read. The web app checks its models
    so when it starts: it had served a model that failed at the first page read."""
    config = read_model_config(directory)
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"{weights}: weights file not found" if not weights.exists()
                         else f"{weights}: weights file is not a file")
    check_config_fits_weights(config, len(Charset(config.charset)), weights)
    return config


def unknown_model(name_or_dir: str) -> ModelError:
    """The error for a --model that names neither a model folder nor a shipped model."""
    from hwr.assets import models_dir

    if os.path.islink(name_or_dir) and not os.path.exists(name_or_dir):
        return ModelError(f"{name_or_dir}: model directory {not_found_reason(name_or_dir)}")
    return ModelError(f"{name_or_dir}: no model folder or model name (models in {models_dir()})")


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ModelConfig]:
    """Build the network from config.json and load its safetensors weights (float32)."""
    config = check_model_files(directory)
    weights = Path(directory) / WEIGHTS_FILE
    num_classes = len(Charset(config.charset))
    try:
        with stops_held_back():  # a Ctrl-C mid-load is no corrupt file (hwr.interrupts)
            with utf8_named(weights) as name:
                state = load_file(name, device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{weights}: corrupt or unreadable weights ({exc})") from None
    net = _build_described(config, num_classes, Path(directory) / CONFIG_FILE)
    expected = net.state_dict()
    check_weight_values(state, expected, weights)
    state = {k: v.to(expected[k].dtype) if k in expected else v for k, v in state.items()}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{weights}: weights do not match the architecture in {CONFIG_FILE} ({exc})") from None
    return net.to(device).eval(), config


def check_weight_values(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], weights: Path) -> None:
    """ModelError naming the tensor when weights the network holds in floating point are stored
    as integers, or hold NaN or infinity: such a model loaded and read every line as "" with a
    confidence of NaN, which no JSON reader accepts."""
    for key, value in state.items():
        want = expected.get(key)
        if want is None or not want.is_floating_point():
            continue  # an unknown key is load_state_dict's to name; counters are integers
        if not value.is_floating_point():
            raise ModelError(f"{weights}: {key} is stored as {value.dtype}, not floating point: not a model's weights")
        if not bool(torch.isfinite(value).all()):
            raise ModelError(f"{weights}: {key} holds NaN or infinite values (a training run that diverged, or a "
                             "damaged file); use an earlier checkpoint")


def beside_dir(path: Path) -> Path | None:
    """<path>/beside when the model there reads beside another (`hwr adapt --beside`: the base
    model kept next to the adapted one), else None."""
    folder = Path(path) / BESIDE_DIR
    return folder if (folder / CONFIG_FILE).is_file() else None


def load_beside(path: Path, config: ModelConfig) -> torch.nn.Module | None:
    """The network in <path>/beside (beside_dir), or None. It must be the same network reading
    the same lines: the same architecture, charset and normalisation."""
    folder = beside_dir(path)
    if folder is None:
        return None
    net, other = load_model(folder)
    pairs = (("arch", other.arch, config.arch), ("net", other.net_config(), config.net_config()),
             ("charset", other.charset, config.charset), ("normalize", other.normalize, config.normalize))
    differs = [name for name, a, b in pairs if a != b]
    if differs:
        raise ModelError(f"{folder}: the model beside {path} must be the same network reading the same lines; "
                         f"its {', '.join(differs)} differ")
    return net


def read_weight_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Each tensor's name and shape from the safetensors header, without reading the weights."""
    try:
        with stops_held_back(), utf8_named(weights) as name, safe_open(name, framework="pt") as tensors:
            return {name: tuple(tensors.get_slice(name).get_shape()) for name in tensors.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{weights}: corrupt or unreadable weights ({exc})") from None


def check_config_fits_weights(config: ModelConfig, num_classes: int, weights: Path) -> None:
    """ModelError unless the network config.json describes has exactly the tensors (names and
    shapes) of the weights file's header.

    Checked before any weight is allocated, so a damaged or hand-edited config (a billion
    layers, a hidden size of a million) fails at once instead of hanging or eating memory:
    a config describing more layers than the file holds tensors cannot match it (and would
    take hours just to build), and the others are built on the meta device, which only
    records shapes."""
    config_file = weights.parent / CONFIG_FILE
    shapes = read_weight_shapes(weights)
    net_config = config.net_config()
    if net_config.num_layers() > len(shapes):
        raise ModelError(f"{config_file}: describes a network of {net_config.num_layers()} layers, but "
                         f"{weights.name} holds only {len(shapes)} tensors; the config is damaged")
    with torch.device("meta"):
        described = _build_described(config, num_classes, config_file).state_dict()
    differences = [f"{name} missing" for name in described if name not in shapes]
    differences += [f"{name} unexpected" for name in shapes if name not in described]
    differences += [f"{name} is {list(shapes[name])} there, {list(tensor.shape)} in the config"
                    for name, tensor in described.items()
                    if name in shapes and shapes[name] != tuple(tensor.shape)]
    if differences:
        raise ModelError(f"{weights}: weights do not match the architecture in {CONFIG_FILE} "
                         f"({name_some(differences, 3)})")


def _build_described(config: ModelConfig, num_classes: int, config_file: Path) -> torch.nn.Module:
    """The network config.json describes, or a ModelError naming the file."""
    try:
        return build_network(config.arch, config.net_config(), num_classes)
    except (ValueError, TypeError, IndexError, KeyError, RuntimeError) as exc:
        raise ModelError(f"{config_file}: cannot build the network it describes "
                         f"({type(exc).__name__}: {exc})") from None


def pick_device(device: str | None = None) -> torch.device:
    """The device asked for ("auto": a GPU when there is one). Under torchrun a GPU not named by
    index is this process's own (LOCAL_RANK), made current: every rank of a sharded
    `hwr transcribe` had read on GPU 0, the others idle."""
    from hwr.ranks import context_from_env

    picked = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device in (None, "auto")
                          else usable_device(device))
    ctx = context_from_env()
    if picked.type == "cuda" and picked.index is None and ctx.enabled:
        picked = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(picked)
    return picked


def usable_device(device: str) -> torch.device:
    """`device` (cpu, cuda, cuda:N, mps) as torch's, or ConfigError naming it when it is no device
    or not on this machine: torch's own errors surfaced mid-run as a traceback (no NVIDIA driver)."""
    try:
        picked = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"device {device!r} is not one: use cpu, cuda, cuda:N or auto") from None
    if picked.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {device!r}: torch finds no CUDA GPU on this machine; use cpu or auto")
        if picked.index is not None and picked.index >= count:
            raise ConfigError(f"device {device!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    elif picked.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r}: no Apple GPU (MPS) here; use cpu or auto")
    return picked


def resolve_search_workers(requested: int | None, device: torch.device, decoder) -> int:
    """How many search worker processes to read with: `requested`, or for None the auto choice:
    none on a CPU (the network already uses the cores: README, "Decoding"), on a GPU half the
    CPU cores, at most MAX_AUTO_WORKERS; none for a decoder without a search (greedy)."""
    if not isinstance(decoder, BeamDecoder):
        return 0
    if requested is not None:
        return requested
    if device.type == "cpu":
        return 0
    return max(1, min(MAX_AUTO_WORKERS, (os.cpu_count() or 2) // 2))


def with_frame_widths(recognitions: list[Recognition], frame_widths: list[float] | None) -> list[Recognition]:
    """Recognitions decoded at one frame width, each given its line's own where lines were read
    at different widths (hwr.recognition.width_variants)."""
    if frame_widths is not None:
        for rec, frame_width in zip(recognitions, frame_widths, strict=True):
            rec.frame_width = frame_width
    return recognitions


def finishing_with_frame_widths(finish: Callable[[], list[Recognition]], frame_widths: list[float] | None
                                ) -> Callable[[], list[Recognition]]:
    """A decoding's finishing call (`decoder.start`, `SearchWorkers.submit`) that also sets the
    lines' own frame widths (`with_frame_widths`)."""
    if frame_widths is None:
        return finish
    return lambda: with_frame_widths(finish(), frame_widths)


@dataclass
class PreparedLines:
    """Line images read and normalised for the network (`Recognizer.prepare`): one slot per
    input image, a FailedInput where it could not be read, None where its line is in `arrays`
    (at `positions`)."""

    slots: list = field(default_factory=list)
    arrays: list[np.ndarray] = field(default_factory=list)
    geometries: list[LineGeometry] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)


class Recognizer:
    """Line images in, `Recognition`s out: normalisation, batching by width, network, decoding."""

    def __init__(self, net: torch.nn.Module, config: ModelConfig, device: str | torch.device | None = None,
                 decoder: str = "greedy", search_workers: int | None = 0, amp: bool = False,
                 beside: torch.nn.Module | None = None, width_variants: Sequence[float] = (),
                 width_variants_below: float = DOUBTFUL_BELOW, beside_below: float = BESIDE_DOUBTFUL_BELOW,
                 windowed: bool = True, **decoder_options):
        self.device = pick_device(device) if not isinstance(device, torch.device) else device
        self.net = net.to(self.device).eval()
        # A second network of the same shape (an adapted model's base, BESIDE_DIR): each line this
        # one is unsure of is read by both, and kept as the surer reads it (`_surer_beside`).
        self.beside = beside.to(self.device).eval() if beside is not None else None
        # Only lines this network reads less surely than this are read by the one beside too.
        self.beside_below = check_reread_below(beside_below, "beside_below")
        # On CUDA, read under float16 autocast (as the models were trained) when asked. Off by
        # default: on an H200 (2026-12-04, bench/bench_gpu_reading.py) it read 6 of 1,536 lines
        # differently and was no faster, the host's work being the bound.
        self.amp = amp and self.device.type == "cuda"
        # Widths, besides the line as normalised, that a doubtful line is also read at; the
        # surest reading is kept (hwr.recognition.width_variants).
        self.width_variants = check_width_factors(width_variants)
        self.width_variants_below = check_reread_below(width_variants_below)
        self.config = config
        self.charset = Charset(config.charset)
        normalize = NormalizeConfig.from_dict(config.normalize)
        # The network reads windows of the model's max_width at most (its memory guard), and a
        # line wider than that in overlapping windows (hwr.recognition.line_windows), so lines
        # are normalised without squeezing them to it, up to LONGEST_LINE. `windowed=False`
        # squeezes them to max_width, as hwr read them before 2026-12-06.
        # A network that does not say how many pixels make a frame (width_factor) is not cut.
        declares_frames = getattr(self.net, "width_factor", None) is not None
        self.windows = window_geometry(normalize.max_width, OVERLAP_HEIGHTS * normalize.line_height,
                                       self.frame_width) if windowed and declares_frames else None
        self.normalize_config = (replace(normalize, max_width=max(normalize.max_width, LONGEST_LINE))
                                 if self.windows else normalize)
        self.decoder = make_decoder(decoder, self.charset, **decoder_options)
        self.search_workers = None
        workers = resolve_search_workers(search_workers, self.device, self.decoder)
        if workers:
            self.search_workers = SearchWorkers(self.decoder, workers)
        self.path: Path | None = None
        self.num_parameters = count_parameters(self.net)

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | None = None, decoder: str = "greedy",
             search_workers: int | None = 0, width_variants: Sequence[float] = (),
             width_variants_below: float = DOUBTFUL_BELOW, **decoder_options) -> Recognizer:
        """Load a model directory, ready to read lines.

        Args:
            path: a model directory (`model.safetensors` + `config.json`), or the name of a
                shipped one ("hwr-en-base"); None: $HWR_MODEL, else the shipped default (hwr.assets).
            device: "cpu", "cuda", "cuda:1", ...; None or "auto": CUDA when available.
            decoder: "greedy" or "beam" (hwr.recognition.decode); `decoder_options` go to it
                (lm, lexicon, beam_size, lm_weight, ...).
            search_workers: processes that run a beam search beside the network
                (hwr.recognition.search_workers); 0: in this process; None: the auto choice
                (`resolve_search_workers`). Greedy decoding ignores it.
            width_variants: factors (other than 1) by which a line is also read stretched
                sideways, keeping the surest reading (hwr.recognition.width_variants), when
                its greedy confidence is below `width_variants_below` (above 1: every line).

        Returns:
            A Recognizer whose network is prepared for inference only (not for training).

        Raises:
            ModelError: the directory, its config or its weights are missing, unreadable or
                inconsistent; the message names the file (and the config key at fault).

        Example:
            >>> rec = Recognizer.load("models/hwr-en-small", device="cpu")
            >>> rec.recognize(["line.png"])[0].text
            'the cat sat'
        """
        path = resolve_model_dir(path)
        if not path.exists() and not previous_folder(path).is_dir():  # (that one is named by read_model_config)
            hint = (" (no default model is shipped in this install; pass --model)" if path == default_model_dir()
                    else f" (nor a model name in {models_dir()})")
            raise ModelError(f"{path}: model directory {not_found_reason(path)}{hint}")
        net, config = load_model(path)
        beside = load_beside(path, config)
        rec = cls(net, config, device, decoder, search_workers, beside=beside, width_variants=width_variants,
                  width_variants_below=width_variants_below, **decoder_options)
        rec.path = path
        # This network is ours alone (a Recognizer built around a training net must leave it
        # trainable), so it can be folded and re-laid-out for speed.
        rec.net = prepare_for_inference(rec.net, rec.device)
        if rec.beside is not None:
            rec.beside = prepare_for_inference(rec.beside, rec.device)
        return rec

    def preprocess(self, image) -> np.ndarray:
        """Any image source -> the normalised float array the network reads."""
        return normalize_line(image, self.normalize_config)

    def preprocess_with_geometry(self, image) -> tuple[np.ndarray, LineGeometry]:
        """`preprocess`, plus the crop/scale that maps network-input x back to the source image."""
        return normalize_line_with_geometry(image, self.normalize_config)

    def recognize(self, images: Iterable, batch_size: int = 16, words: bool = False,
                  on_error: str = "raise") -> list[Recognition | FailedInput]:
        """Read line images; results come back in input order, one per image.

        Args:
            images: a list (or other iterable) of line images: file paths, bytes, PIL images,
                or numpy arrays (HxW, HxWx3, HxWx4; bool, integer or finite float pixels).
            batch_size: lines per network call (lines are sorted by width inside).
            words: also locate the words on each line (Recognition.words, boxes in
                source-image pixels).
            on_error: what an image that cannot be read (missing file, not an image, None,
                an object or all-NaN array, a closed PIL image) does:
                "raise": raise ImageError naming it (`images[3] (scan.png): ...`) before
                    the network runs; nothing is returned.
                "return": its slot holds a `FailedInput` (source, stage "read", message,
                    page_id = the image's index as a string)
                    and every other image is read as usual.

        Returns:
            One `Recognition` per image (text, confidence, per-character confidences and
            frames, words) or, with on_error="return", a `FailedInput` where an image failed.

        Raises:
            ImageError: on_error="raise" and an image cannot be read.
            TypeError: `images` is a single image rather than a list of them.
            ValueError: on_error is neither "raise" nor "return".

        Example:
            >>> results = rec.recognize(["a.png", None, "b.png"], on_error="return")
            >>> [r.text if isinstance(r, Recognition) else str(r) for r in results]
            ['the cat', '<NoneType>: not an image: ...', 'sat here']
        """
        return self.recognize_prepared(self.prepare(images, on_error), batch_size, words)

    def prepare(self, images: Iterable, on_error: str = "raise") -> PreparedLines:
        """The CPU half of `recognize`: read and normalise the images (safe to run in a loader
        thread while the network reads earlier ones). Arguments and errors as `recognize`'s."""
        if on_error not in ("raise", "return"):
            raise ValueError(f"on_error must be 'raise' or 'return', not {on_error!r}")
        single = (str, Path, bytes, bytearray, np.ndarray)
        if images is None or isinstance(images, single) or hasattr(images, "getpixel"):  # a PIL image
            raise TypeError("recognize takes a list of images; wrap a single image as [image]")
        from hwr.documents.prepare import ink_to_uint8

        prepared = PreparedLines()
        for k, image in enumerate(images):
            try:
                array, geometry = self.preprocess_with_geometry(image)
            except ImageError as exc:
                if on_error == "raise":
                    raise ImageError(f"images[{k}] ({exc.source})", exc.reason) from None
                prepared.slots.append(FailedInput(exc.source, "read", exc.reason, page_id=str(k)))
                continue
            prepared.slots.append(None)
            prepared.positions.append(k)
            # For a GPU the lines are kept as uint8 ink, as the page pipeline hands them over: a
            # quarter of the bytes to pad, pin and copy, where the host bounds the reading speed.
            prepared.arrays.append(ink_to_uint8(array) if self.device.type == "cuda" else array)
            prepared.geometries.append(geometry)
        return prepared

    def recognize_prepared(self, prepared: PreparedLines, batch_size: int = 16,
                           words: bool = False) -> list[Recognition | FailedInput]:
        """The network half of `recognize`: lines from `prepare`, results in input order."""
        slots = list(prepared.slots)
        geometries = prepared.geometries if words else None
        results = self.recognize_normalized(prepared.arrays, batch_size, geometries) if prepared.arrays else []
        for k, rec in zip(prepared.positions, results):
            slots[k] = rec
        return slots  # type: ignore[return-value]

    def recognize_normalized(self, lines: Sequence[np.ndarray], batch_size: int = 16,
                             geometries: Sequence[LineGeometry] | None = None) -> list[Recognition]:
        """Recognise normalised lines (float ink in [0, 1] or uint8 ink, as `preprocess` and
        `prepare` give them); with their geometries, also locate the words."""
        from hwr.recognition.feed import lines_to_device

        if batch_size < 1:  # range() with a step below 1 reads nothing, and every line came back None
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        # Sorting by width keeps padding (wasted compute) small; results go back in input order.
        order = sorted(range(len(lines)), key=lambda i: lines[i].shape[1])
        results: list[Recognition | None] = [None] * len(lines)

        def padded():
            # On CUDA the copy from pinned memory does not block the host, which pads the next
            # batch meanwhile; the widths stay on the host (the nets count frames there).
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                yield chunk, *lines_to_device([lines[i] for i in chunk], self.device)

        for chunk, recognitions in self.read_batches(padded()):
            for i, rec in zip(chunk, recognitions):
                results[i] = rec
        if geometries is not None:
            from hwr.recognition.align import word_boxes

            for rec, geometry in zip(results, geometries):
                rec.words = word_boxes(rec, geometry)
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def log_probs(self, lines: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised lines of one height, float ink in [0, 1] or uint8 ink (as `prepare` keeps
        them), all uint8 or all float -> (T, N, C) log-probabilities and each line's frames."""
        from hwr.recognition.feed import lines_to_device

        # A caller's own float64 normalisation reads as float32 (as the old float padding cast it).
        lines = [line if line.dtype == np.uint8 else line.astype(np.float32, copy=False) for line in lines]
        images, widths = lines_to_device(lines, self.device)
        return self.padded_log_probs(images, widths.to(self.device))

    @torch.inference_mode()
    def padded_log_probs(self, images: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch padded already, on this recognizer's device: (N, 1, H, W) float ink, widths (N,)."""
        return self.padded_scores(images, widths)[:2]

    @torch.inference_mode()
    def padded_scores(self, images: torch.Tensor, widths: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, list[float] | None]:
        """`padded_log_probs`, and each line's input pixels per output frame where the lines were
        read at more than one width (`width_variants`), else None (every line `frame_width`)."""
        if not self.width_variants:
            return *self._network_scores(images, widths), None
        return surest_reading(self._network_scores, images, widths, self.width_variants, self.frame_width,
                              self.width_variants_below)

    def _network_scores(self, images: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.windows and images.shape[-1] > self.windows[0]:
            return windowed_scores(self._window_scores, images, widths, *self.windows, int(self.frame_width))
        return self._window_scores(images, widths)

    def _window_scores(self, images: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast("cuda", dtype=torch.float16) if self.amp else nullcontext():
            logits, lengths = self.net(images, widths)
            log_probs = logits.float().log_softmax(-1)
            if self.beside is not None:
                log_probs = self._surer_beside(images, widths, log_probs, lengths)
        return log_probs, lengths

    def _surer_beside(self, images: torch.Tensor, widths: torch.Tensor, log_probs: torch.Tensor,
                      lengths: torch.Tensor) -> torch.Tensor:
        """`log_probs` with the lines this network reads less surely than `beside_below` read by
        the network beside it too, each kept as the network greedy decoding is surer of reads it
        (a tie goes to this one's own). The same frames from both: the same network shape."""
        confidence = greedy_line_confidence(log_probs, lengths)
        doubtful = (confidence < self.beside_below).nonzero().flatten().cpu()
        if len(doubtful) == 0:
            return log_probs
        other = self.beside(*lines_of_batch(images, widths, doubtful))[0].float().log_softmax(-1)
        other_surer = greedy_line_confidence(other, lengths[doubtful.to(lengths.device)]) > confidence[
            doubtful.to(confidence.device)]
        if not other_surer.any():
            return log_probs
        lines = doubtful.to(log_probs.device)[other_surer]
        log_probs = log_probs.clone()
        log_probs[:, lines] = 0  # frames past the line's length (a cropped batch has fewer) are never read
        log_probs[: other.shape[0], lines] = other[:, other_surer]
        return log_probs

    def recognize_padded(self, images: torch.Tensor, widths: torch.Tensor) -> list[Recognition]:
        """One Recognition per line of a padded batch on this recognizer's device (the page
        pipeline pads and copies its batches itself: hwr.recognition.feed)."""
        log_probs, lengths, frame_widths = self.padded_scores(images, widths)
        return with_frame_widths(self.decoder.decode(log_probs, lengths, frame_width=self.frame_width), frame_widths)

    def describe_reading(self) -> dict:
        """What reports record of how lines were read: the decoder's `describe()`, the widths
        doubtful lines were read at too (`width_variants`), and whether a base model read the lines
        the network was unsure of (`beside`), when any."""
        reading = self.decoder.describe()
        if self.width_variants:
            reading.update(width_variants=list(self.width_variants), width_variants_below=self.width_variants_below)
        if self.beside is not None:
            reading.update(beside_below=self.beside_below)
        return reading

    @property
    def frame_width(self) -> float:
        """Input pixels per output frame."""
        return float(getattr(self.net, "width_factor", 1))

    def read_batches(self, batches: Iterable[tuple[object, torch.Tensor, torch.Tensor]]
                     ) -> Iterator[tuple[object, list[Recognition]]]:
        """(key, images, widths) padded batches on this recognizer's device -> (key, their
        Recognitions), in order. With search workers, the search of earlier batches runs in
        them while the network reads the next ones (at most two batches per worker ahead)."""
        workers = self.search_workers
        # Batches read before one that fails are handed over before its error: a caller that
        # retries from its first unfinished batch (the page pipeline) then reads none twice.
        pending: deque = deque()
        try:
            if workers is None:
                # One batch behind: the next batch's network is queued before this one's decoding
                # waits for its scores, so on a GPU the host decodes while the device reads on.
                for key, images, widths in batches:
                    log_probs, lengths, frame_widths = self.padded_scores(images, widths)
                    started = self.decoder.start(log_probs, lengths, frame_width=self.frame_width)
                    pending.append((key, finishing_with_frame_widths(started, frame_widths)))
                    while len(pending) > 1:
                        done_key, result = pending.popleft()
                        yield done_key, result()
            else:
                for key, images, widths in batches:
                    log_probs, lengths, frame_widths = self.padded_scores(images, widths)
                    submitted = workers.submit(log_probs, lengths, self.frame_width)
                    pending.append((key, finishing_with_frame_widths(submitted, frame_widths)))
                    while len(pending) > 2 * workers.processes:
                        done_key, result = pending.popleft()
                        yield done_key, result()
        except Exception:
            while pending:
                done_key, result = pending.popleft()
                yield done_key, result()
            raise
        while pending:
            done_key, result = pending.popleft()
            yield done_key, result()

    def close(self) -> None:
        """Stop the search workers, if any (they start again when needed)."""
        if self.search_workers is not None:
            self.search_workers.close()
