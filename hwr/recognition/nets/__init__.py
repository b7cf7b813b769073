"""Line recognition networks.

Every architecture is an `nn.Module` built as `Net(config, num_classes)` whose
`forward(images, widths)` takes a zero-padded batch `images` (N, 1, H, W) float32 with
ink = 1, and `widths` (N,) the valid width of each line (on the images' device or the CPU),
and returns
`(logits, lengths)`: unnormalised CTC scores (T, N, C) and the valid frame count per line.
Padding must never change a line's output: each network masks or packs its sequences.

Their configs live in `hwr.recognition.nets.configs` (torch-free); the registry below maps an
architecture name (saved in the model config) to its network. This package's own import stays
torch-free too, so that `hwr.recognition.nets.configs` can be read without torch: torch is
imported where a network is built.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from hwr.errors import ConfigError
from hwr.recognition.nets.configs import config_class, make_config

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

__all__ = ["ARCHITECTURES", "build_network", "check_network_size", "config_class", "count_parameters",
           "make_config", "prepare_for_inference"]

# name -> (module, network class); imported when a network is built, so that reading settings
# (hwr.recognition.nets.configs) never imports torch.
ARCHITECTURES = {
    "crnn": ("hwr.recognition.nets.crnn", "CRNN"),
    "mdlstm": ("hwr.recognition.nets.mdlstm", "MDLSTMNet"),
}


def build_network(arch: str, config, num_classes: int) -> nn.Module:
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}")
    module_name, net_name = ARCHITECTURES[arch]
    return getattr(importlib.import_module(module_name), net_name)(config, num_classes)


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
    import torch

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
    import torch

    net = net.to(device).eval()
    fuse = getattr(net, "fuse_for_inference", None)
    if fuse is not None:
        fuse()
    if device.type == "cpu":
        net.to(memory_format=torch.channels_last)
    return net
