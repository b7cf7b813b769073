"""The networks' settings: each architecture's config dataclass and presets, and `make_config`.

Torch-free, so that reading them (`hwr train --help`, a config file's checks) does not import
torch; the networks themselves (`hwr.recognition.nets.crnn`, `.mdlstm`) build from these.
Configs are dataclasses with `to_dict()` / `from_dict()`, `validate()` (ValueError for a config
no network can be built from), `num_layers()` (the repeated layers it describes, each holding at
least one tensor) and a `line_height` field.
"""
from __future__ import annotations

import math
import typing
from dataclasses import asdict, dataclass, field

from hwr.errors import ConfigError

# The CRNN's recurrent cells (crnn.RNN_CELLS maps each to its torch module); the type gives
# `hwr train --rnn-cell` its choices.
RnnCell = typing.Literal["lstm", "gru", "rnn"]
RNN_CELL_NAMES = typing.get_args(RnnCell)


@dataclass
class CRNNConfig:
    line_height: int = 48
    conv_channels: list[int] = field(default_factory=lambda: [16, 32, 48, 64])
    # Blocks that end in a 2x2 max-pool (index into conv_channels). Each halves the width too,
    # so a line of width W gives W / 2**len(pooled) frames: keep >= 2 frames per character.
    pool_blocks: list[int] = field(default_factory=lambda: [0, 1])
    # Extra height-only pooling after these blocks: shrinks the feature column, not the frames.
    height_pool_blocks: list[int] = field(default_factory=lambda: [2, 3])
    conv_dropout: float = 0.0
    # "batch" (BatchNorm, the reference) or "none": no cross-line statistics at all, e.g. to
    # compare data-parallel runs exactly. (Group/LayerNorm would mix padding into the stats.)
    norm: str = "batch"
    rnn_cell: str = "lstm"
    rnn_hidden: int = 128
    rnn_layers: int = 3
    dropout: float = 0.3

    PRESETS = {
        # Small default, sized for CPU inference (line height 48 as in Calamari): ~1.3 M parameters.
        "small": {},
        # `small` with two recurrent layers instead of three: ~1.4x faster on a 2-core CPU (the
        # recurrence is half the CPU time); fine-tunes from `small` weights (hwr train
        # --init-from), whose conv stack, first two layers and output layer it shares.
        "compact": dict(rnn_layers=2),
        # ~5.2 M parameters: two to three times the conv channels and twice the LSTM width of
        # `small`, at the same depth. Real pens vary far more than one font's rendering, and
        # `small` stopped improving on the harder validation set (issue 19). Same height,
        # pooling and depth as `small`, so it starts from `small`'s weights, widened with the
        # same scores (hwr.recognition.nets.widen: --init-from models/hwr-en-small); ~3x the
        # CPU cost per training step.
        "base": dict(conv_channels=[32, 64, 128, 192], rnn_hidden=256),
        # Puigcerver 2017: 5 conv blocks 16-32-48-64-80, pools in the first 3, 5 x BLSTM-256,
        # dropout 0.5, height 128.
        "puigcerver2017": dict(
            line_height=128,
            conv_channels=[16, 32, 48, 64, 80],
            pool_blocks=[0, 1, 2],
            height_pool_blocks=[],
            conv_dropout=0.2,
            rnn_hidden=256,
            rnn_layers=5,
            dropout=0.5,
        ),
        # A few thousand parameters' worth of network: tests and smoke runs.
        "tiny": dict(
            line_height=32,
            conv_channels=[8, 16],
            pool_blocks=[0],
            height_pool_blocks=[1],
            rnn_hidden=32,
            rnn_layers=1,
            dropout=0.0,
        ),
    }

    @classmethod
    def preset(cls, name: str) -> CRNNConfig:
        if name not in cls.PRESETS:
            raise ConfigError(f"unknown crnn preset {name!r}; choose from {sorted(cls.PRESETS)}")
        return cls(**cls.PRESETS[name])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CRNNConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def validate(self) -> None:
        """ValueError for settings no CRNN can be built from (a hand-edited config.json)."""
        if self.rnn_cell not in RNN_CELL_NAMES:
            raise ValueError(f"rnn_cell must be one of {sorted(RNN_CELL_NAMES)}, not {self.rnn_cell!r}")
        if self.norm not in ("batch", "none"):
            raise ValueError(f"norm must be batch or none, not {self.norm!r}")
        if not self.conv_channels or min(self.conv_channels) < 1:
            raise ValueError(f"conv_channels must list channel counts of 1 or more, got {self.conv_channels!r}")
        for name in ("line_height", "rnn_hidden", "rnn_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("dropout", "conv_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be at least 0 and below 1, got {getattr(self, name)}")
        blocks = range(len(self.conv_channels))
        for name in ("pool_blocks", "height_pool_blocks"):
            indices = getattr(self, name)
            # A repeated index pools once but would count twice in width_factor: every frame
            # count (hence every CTC alignment) would be wrong.
            if len(set(indices)) != len(indices) or any(i not in blocks for i in indices):
                raise ValueError(f"{name} must list distinct conv block indices 0..{len(blocks) - 1}, "
                                 f"got {indices!r}")

    def num_layers(self) -> int:
        """Conv blocks plus recurrent layers: each holds at least one tensor of the weights."""
        return len(self.conv_channels) + self.rnn_layers


FRONT_ENDS = ("block", "conv")
DIRECTION_MERGES = ("concat", "sum")


@dataclass
class MDLSTMConfig:
    line_height: int = 64
    front: str = "block"
    # 2D-LSTM cells per direction, one layer per stage.
    hidden_sizes: list[int] = field(default_factory=lambda: [2, 10, 50])
    # "block" front: blocks[s] = [height, width] pixels of the previous layer per position of
    # stage s (blocks[0] is the input block); stages s > 0 also apply a tanh feed-forward layer
    # of subsample_sizes[s - 1] units to each hidden block.
    # Graves used 4-wide blocks at every level (width / 64) on IFN/ENIT word images; on our
    # 64-px lines that leaves under one frame per character, so the width shrinks 4 x 2 x 1 =
    # 8 here (~4 CTC frames per character) while the height still shrinks 2 x 2 x 2 = 8.
    blocks: list[list[int]] = field(default_factory=lambda: [[2, 4], [2, 2], [2, 1]])
    subsample_sizes: list[int] = field(default_factory=lambda: [6, 20])
    # "conv" front: conv_channels[s] 3x3 filters before the 2D-LSTM of stage s, followed by a
    # 2x2 max-pool in the stages listed in pool_stages (each halves height and frames).
    conv_channels: list[int] = field(default_factory=list)
    pool_stages: list[int] = field(default_factory=list)
    # How the next stage sees the four directions: side by side (RNNLIB) or summed.
    direction_merge: str = "concat"
    # Dropout on each 2D-LSTM's output (Voigtlaender et al. 2016 used 0.25).
    dropout: float = 0.0

    PRESETS = {
        # Graves & Schmidhuber (NIPS 2009): 2D-LSTM of 2, 10, 50 cells per direction, tanh
        # subsampling layers of 6 and 20 units. ~150k parameters (with 96 classes).
        "graves2009": {},
        # Voigtlaender, Doetsch & Ney (ICFHR 2016): conv 15/45/75/105 + 2D-LSTM 30/60/90/120,
        # pooling after the first two blocks. 128-px lines work too (set line_height).
        "voigtlaender2016": dict(
            line_height=64,
            front="conv",
            hidden_sizes=[30, 60, 90, 120],
            blocks=[],
            subsample_sizes=[],
            conv_channels=[15, 45, 75, 105],
            pool_stages=[0, 1],
            direction_merge="sum",
            dropout=0.25,
        ),
        # A few hundred parameters: tests and smoke runs.
        "tiny": dict(
            line_height=16,
            hidden_sizes=[2, 4],
            blocks=[[2, 4], [2, 1]],
            subsample_sizes=[4],
        ),
    }

    @classmethod
    def preset(cls, name: str) -> MDLSTMConfig:
        if name not in cls.PRESETS:
            raise ConfigError(f"unknown mdlstm preset {name!r}; choose from {sorted(cls.PRESETS)}")
        return cls(**cls.PRESETS[name])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MDLSTMConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def num_layers(self) -> int:
        """Stages (a front end and a 2D-LSTM each): each holds at least one tensor of the weights."""
        return len(self.hidden_sizes)

    def validate(self) -> None:
        stages = len(self.hidden_sizes)
        if self.front not in FRONT_ENDS:
            raise ValueError(f"front must be one of {FRONT_ENDS}, not {self.front!r}")
        if self.direction_merge not in DIRECTION_MERGES:
            raise ValueError(f"direction_merge must be one of {DIRECTION_MERGES}")
        if self.front == "block" and (
            len(self.blocks) != stages or len(self.subsample_sizes) != stages - 1
        ):
            raise ValueError("block front needs one block per stage and one fewer subsample size")
        if self.front == "conv" and len(self.conv_channels) != stages:
            raise ValueError("conv front needs one conv_channels entry per stage")


# name -> config class; the network class of each is named in hwr.recognition.nets.ARCHITECTURES.
CONFIGS = {"crnn": CRNNConfig, "mdlstm": MDLSTMConfig}


def config_class(arch: str):
    if arch not in CONFIGS:
        raise ConfigError(f"unknown architecture {arch!r}; choose from {sorted(CONFIGS)}")
    return CONFIGS[arch]


def make_config(arch: str, preset: str | None = None, **overrides):
    """A network config from a named preset (or the default) with field overrides."""
    cls = config_class(arch)
    config = cls.preset(preset) if preset else cls()
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in cls.__dataclass_fields__:
            raise ConfigError(f"{arch} has no setting {key!r} (its settings: "
                              f"{', '.join(sorted(cls.__dataclass_fields__))})")
        setattr(config, key, _checked(arch, key, value, typing.get_type_hints(cls)[key]))
    try:
        config.validate()
    except ValueError as exc:  # a setting no network can be built from: the user's, so no traceback
        raise ConfigError(f"{arch}: {exc}") from None
    return config


def _checked(arch: str, key: str, value, kind):
    """`value` for a network setting declared as `kind` (int, float, str, list[int],
    list[list[int]]), or ConfigError naming the setting. An int is a valid float."""
    def whole(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def fits(v, k) -> bool:
        if typing.get_origin(k) is list:
            (item,) = typing.get_args(k)
            return isinstance(v, list) and all(fits(x, item) for x in v)
        if k is int:
            return whole(v)
        if k is float:
            return (whole(v) or isinstance(v, float)) and math.isfinite(v)
        return isinstance(v, k)

    if not fits(value, kind):
        raise ConfigError(f"{arch} setting {key!r} must be {_kind_name(kind)}, got {value!r}")
    return float(value) if kind is float else value


def _kind_name(kind) -> str:
    if typing.get_origin(kind) is list:
        return f"a list of {_kind_name(typing.get_args(kind)[0]).removeprefix('a ')}s"
    return {int: "a whole number", float: "a number", str: "a string"}.get(kind, getattr(kind, "__name__", str(kind)))
