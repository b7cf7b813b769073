"""Line recognition networks.

Every architecture is an `nn.Module` built as `Net(config, num_classes)` whose
`forward(images, widths)` takes a zero-padded batch `images` (N, 1, H, W) float32 with
ink = 1, and `widths` (N,) the valid width of each line (on the images' device or the CPU),
and returns
`(logits, lengths)`: unnormalised CTC scores (T, N, C) and the valid frame count per line.
Padding must never change a line's output: each network masks or packs its sequences.

Configs are dataclasses with `to_dict()` / `from_dict()`, `validate()` (ValueError for a
config no network can be built from), `num_layers()` (the repeated layers it describes, each
holding at least one tensor) and a `line_height` field; the registry below maps an
architecture name (saved in the model config) to both.
"""
from __future__ import annotations

import importlib
import math
import typing

import torch
import torch.nn as nn

from hwr.errors import ConfigError

# name -> (module, config class, network class); imported lazily so that a missing optional
# architecture never breaks the others.
ARCHITECTURES = {
    "crnn": ("hwr.recognition.nets.crnn", "CRNNConfig", "CRNN"),
    "mdlstm": ("hwr.recognition.nets.mdlstm", "MDLSTMConfig", "MDLSTMNet"),
}


def _lookup(arch: str):
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    module_name, config_name, net_name = ARCHITECTURES[arch]
    module = importlib.import_module(module_name)
    return getattr(module, config_name), getattr(module, net_name)


def config_class(arch: str):
    return _lookup(arch)[0]


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


def build_network(arch: str, config, num_classes: int) -> nn.Module:
    _, net_cls = _lookup(arch)
    return net_cls(config, num_classes)


# What `hwr train` will build. The shipped networks hold 1-5 M parameters; these caps are far
# above any useful line recognizer and far below what hangs or exhausts memory while a
# mistyped setting (rnn_hidden 1000000, rnn_layers 1000000000) is being built.
MAX_TRAINED_LAYERS = 64
MAX_TRAINED_PARAMETERS = 200_000_000


def check_network_size(arch: str, config, num_classes: int, source: str = "the settings") -> int:
    """The parameter count of the network `config` describes, counted on the meta device (no
    weight is allocated); ConfigError naming `source` when it is beyond the caps above."""
    if config.num_layers() > MAX_TRAINED_LAYERS:
        raise ConfigError(f"{source}: a {arch} of {config.num_layers()} layers; hwr builds at most "
                          f"{MAX_TRAINED_LAYERS}")
    with torch.device("meta"):
        parameters = count_parameters(build_network(arch, config, num_classes))
    if parameters > MAX_TRAINED_PARAMETERS:
        raise ConfigError(f"{source}: a {arch} of {parameters:,} parameters; hwr trains at most "
                          f"{MAX_TRAINED_PARAMETERS:,} (the shipped models hold about 1-5 million)")
    return parameters


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def prepare_for_inference(net: nn.Module, device: torch.device) -> nn.Module:
    """Make a loaded network fast for inference only (it cannot be trained or saved after).

    Networks may fold their normalisation into the preceding layers (`fuse_for_inference`);
    on the CPU, 4-D weights go channels-last to match the NHWC kernels the nets run there.
    """
    net = net.to(device).eval()
    fuse = getattr(net, "fuse_for_inference", None)
    if fuse is not None:
        fuse()
    if device.type == "cpu":
        net.to(memory_format=torch.channels_last)
    return net
