"""Widen a trained CRNN into a wider one that computes the same scores (Net2WiderNet).

Chen, Goodfellow and Shlens, "Net2Net: accelerating learning via knowledge transfer" (ICLR
2016): every unit of the wider layer copies a unit of the narrow one, and the layer above
reads each copy with a share of the original's outgoing weight, the shares summing to one.
The copies then carry the same activations, so the wider network's scores equal the narrow
one's exactly, and training goes on from there instead of from scratch: the `base` preset
starts from the trained `small` network (`hwr train --preset base --init-from
models/hwr-en-small`), which matters most on a CPU, where `base` costs three times as much per
step.

The shares differ per outgoing weight (random, summing to one): copies that a layer above
read with equal weights would get equal gradients and stay copies for ever.

Only widths change: the two networks need the same depth, pooling, line height, cell and
normalisation. `BatchNorm` statistics are copied with their channels (a copy normalises
exactly as its original).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from hwr.recognition.nets.crnn import CRNN

# Spread of the random shares around 1/n (n copies of a unit); small, so that the wider net
# starts where the narrow one ended yet its copies part ways in the first steps.
SHARE_SPREAD = 0.1
# What must agree between two CRNN configs for one to widen into the other.
FIXED_FIELDS = ("line_height", "pool_blocks", "height_pool_blocks", "norm", "rnn_cell", "rnn_layers")


def widening_problem(narrow: CRNN, wide: CRNN) -> str | None:
    """None when `narrow` can be widened into `wide`'s shape, else what stands in the way."""
    a, b = narrow.config, wide.config
    for name in FIXED_FIELDS:
        if getattr(a, name) != getattr(b, name):
            return f"{name} differs ({getattr(a, name)} vs {getattr(b, name)})"
    if len(a.conv_channels) != len(b.conv_channels):
        return "the number of conv blocks differs"
    if any(w < n for n, w in zip(a.conv_channels, b.conv_channels)) or b.rnn_hidden < a.rnn_hidden:
        return "the target is narrower somewhere"
    if narrow.output.out_features != wide.output.out_features:
        return "the number of classes differs"
    return None


def widen_crnn(narrow: CRNN, wide: CRNN, generator: torch.Generator | None = None) -> None:
    """Overwrite `wide`'s weights (and BatchNorm statistics) so that it computes `narrow`'s scores."""
    problem = widening_problem(narrow, wide)
    if problem:
        raise ValueError(f"cannot widen this CRNN into that one: {problem}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    with torch.no_grad():
        channel_map = _widen_conv_stack(narrow, wide, gen)
        height = narrow.feature_size // narrow.config.conv_channels[-1]
        inputs = _feature_map(channel_map, height)  # column features = channel * height + row
        for layer in range(narrow.config.rnn_layers):
            maps = []
            for suffix in ("", "_reverse"):
                unit_map = UnitMap.random(narrow.config.rnn_hidden, wide.config.rnn_hidden, gen)
                _widen_recurrent(narrow.rnn, wide.rnn, f"l{layer}{suffix}", inputs, unit_map, gen)
                maps.append(unit_map)
            inputs = UnitMap.concat(maps)
        wide.output.weight.copy_(inputs.read(narrow.output.weight, gen))
        wide.output.bias.copy_(narrow.output.bias)


class UnitMap:
    """Which narrow unit each wide unit copies: the first ones are the originals in order,
    the rest random repeats (so a doubled layer holds each original twice)."""

    def __init__(self, source: torch.Tensor, narrow_size: int):
        self.source = source  # (wide,) narrow index per wide unit
        self.copies = torch.bincount(source, minlength=narrow_size).to(torch.float32)

    @classmethod
    def random(cls, narrow: int, wide: int, gen: torch.Generator) -> UnitMap:
        extra = wide - narrow
        # Each original repeated as evenly as the widths allow, in a random order.
        repeats = torch.randperm(narrow, generator=gen).repeat(extra // narrow + 1)[:extra]
        return cls(torch.cat([torch.arange(narrow), repeats]), narrow)

    @classmethod
    def identity(cls, size: int) -> UnitMap:
        return cls(torch.arange(size), size)

    @classmethod
    def concat(cls, maps: list[UnitMap]) -> UnitMap:
        offsets = [0]
        for m in maps[:-1]:
            offsets.append(offsets[-1] + len(m.copies))
        return cls(torch.cat([m.source + off for m, off in zip(maps, offsets)]), offsets[-1] + len(maps[-1].copies))

    def copy_rows(self, weight: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """The outputs side: each wide unit takes its original's incoming weights."""
        return weight.index_select(dim, self.source.to(weight.device))

    def read(self, weight: torch.Tensor, gen: torch.Generator, dim: int = 1) -> torch.Tensor:
        """The inputs side: each copy gets a random share of its original's outgoing weight,
        the shares of one original's copies summing to one in every row."""
        moved = weight.movedim(dim, -1)
        shares = _random_shares(self.source, self.copies, moved.shape[:-1], gen).to(weight)
        return (moved.index_select(-1, self.source.to(weight.device)) * shares).movedim(-1, dim)


def _random_shares(source: torch.Tensor, copies: torch.Tensor, batch_shape: torch.Size,
                   gen: torch.Generator) -> torch.Tensor:
    n = copies[source]  # copies of each wide unit's original
    noise = (torch.rand(*batch_shape, len(source), generator=gen) * 2 - 1) * SHARE_SPREAD
    noise = noise * (n > 1)  # a unit with no copy keeps its weight as it is
    # Centre the noise within each original's copies so that their shares still sum to one.
    sums = torch.zeros(*batch_shape, len(copies)).index_add_(-1, source, noise)
    noise = noise - sums.index_select(-1, source) / n
    return 1.0 / n + noise


def _widen_conv_stack(narrow: CRNN, wide: CRNN, gen: torch.Generator) -> UnitMap:
    inputs = UnitMap.identity(1)  # the grey image
    for small_block, big_block in zip(narrow.blocks, wide.blocks):
        channels = UnitMap.random(small_block.conv.out_channels, big_block.conv.out_channels, gen)
        big_block.conv.weight.copy_(channels.copy_rows(inputs.read(small_block.conv.weight, gen)))
        if small_block.conv.bias is not None:
            big_block.conv.bias.copy_(channels.copy_rows(small_block.conv.bias))
        if isinstance(small_block.norm, nn.BatchNorm2d):
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(big_block.norm, name).copy_(channels.copy_rows(getattr(small_block.norm, name)))
            big_block.norm.num_batches_tracked.copy_(small_block.norm.num_batches_tracked)
        inputs = channels
    return inputs


def _feature_map(channels: UnitMap, height: int) -> UnitMap:
    rows = torch.arange(height)
    source = (channels.source[:, None] * height + rows[None, :]).reshape(-1)
    return UnitMap(source, len(channels.copies) * height)


def _widen_recurrent(narrow: nn.Module, wide: nn.Module, suffix: str, inputs: UnitMap, units: UnitMap,
                     gen: torch.Generator) -> None:
    """One direction of one layer: gate rows follow the layer's own units (per gate block),
    input columns the layer below, recurrent columns the layer's own units."""
    gates = narrow.weight_hh_l0.shape[0] // narrow.hidden_size  # 4 for an LSTM, 3 GRU, 1 RNN
    hidden = narrow.hidden_size
    rows = UnitMap(torch.cat([units.source + g * hidden for g in range(gates)]), gates * hidden)
    getattr(wide, f"weight_ih_{suffix}").copy_(rows.copy_rows(inputs.read(getattr(narrow, f"weight_ih_{suffix}"), gen)))
    getattr(wide, f"weight_hh_{suffix}").copy_(rows.copy_rows(units.read(getattr(narrow, f"weight_hh_{suffix}"), gen)))
    for name in ("bias_ih", "bias_hh"):
        getattr(wide, f"{name}_{suffix}").copy_(rows.copy_rows(getattr(narrow, f"{name}_{suffix}")))
