"""Multidimensional LSTM line recognizer (Graves & Schmidhuber, NIPS 2009).

A hierarchy of stages, each a front end that shrinks the image followed by a four-direction
2D-LSTM layer (`hwr.recognition.nets.mdlstm_layer`). Two kinds of front end:

- "block" (Graves 2009, RNNLIB's offline handwriting setup): the first stage cuts the image
  into input blocks (h x w pixels become one feature vector); later stages gather hidden
  blocks of the previous 2D-LSTM's four directions and squash them with a tanh feed-forward
  layer (the "subsampling" layers of 6 and 20 units).
- "conv" (Voigtlaender, Doetsch & Ney, ICFHR 2016): a 3x3 tanh convolution before every
  2D-LSTM, 2x2 max-pooling in the first stages.

After the last stage the vertical axis is collapsed by summation (RNNLIB's collapse layer) and
a linear layer gives the CTC scores of each remaining column.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from hwr.recognition.nets.configs import MDLSTMConfig
from hwr.recognition.nets.crnn import mask_columns
from hwr.recognition.nets.mdlstm_layer import NUM_DIRECTIONS, MDLSTM2d


class BlockFront(nn.Module):
    """Cut (N, H, W, C) into h x w blocks, one feature vector per block (Graves 2009).

    Ragged edges are zero-padded up to whole blocks (valid width rounded up), so a short line
    keeps its last pixels; padded columns are zero on input, so the straddling block is the
    same alone or in a batch. With `units`, a tanh feed-forward layer squashes each block:
    the subsampling layer between 2D-LSTM levels.
    """

    def __init__(self, block: list[int], in_channels: int, units: int | None):
        super().__init__()
        self.block_h, self.block_w = block
        block_features = self.block_h * self.block_w * in_channels
        self.linear = nn.Linear(block_features, units) if units else None
        self.out_channels = units or block_features

    def forward(self, x: torch.Tensor, widths: torch.Tensor):
        n, h, w, c = x.shape
        bh, bw = self.block_h, self.block_w
        x = F.pad(x, (0, 0, 0, -w % bw, 0, -h % bh))
        h2, w2 = x.shape[1] // bh, x.shape[2] // bw
        x = x.reshape(n, h2, bh, w2, bw, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h2, w2, -1)
        if self.linear is not None:
            x = torch.tanh(self.linear(x))
        return x, self.out_widths(widths)

    def out_widths(self, widths: torch.Tensor) -> torch.Tensor:
        """Valid columns after blocking: ragged edges round up to a whole block."""
        return torch.div(widths + self.block_w - 1, self.block_w, rounding_mode="floor")


class ConvFront(nn.Module):
    """3x3 tanh convolution, optional 2x2 max-pool (Voigtlaender et al. 2016), features last."""

    def __init__(self, in_channels: int, out_channels: int, pool: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.pool = pool
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor, widths: torch.Tensor):
        # Zero padding before the conv, so the last valid column sees what it sees alone.
        x = mask_columns(x.permute(0, 3, 1, 2), widths)
        x = torch.tanh(self.conv(x))
        if self.pool:
            x = F.max_pool2d(x, 2)
        return x.permute(0, 2, 3, 1), self.out_widths(widths)

    def out_widths(self, widths: torch.Tensor) -> torch.Tensor:
        # Floor: pooled valid columns never include a padded one.
        return torch.div(widths, 2, rounding_mode="floor") if self.pool else widths


class MDLSTMNet(nn.Module):
    def __init__(self, config: MDLSTMConfig, num_classes: int):
        super().__init__()
        config.validate()
        self.config = config
        fronts, layers, channels = [], [], 1
        for stage, hidden in enumerate(config.hidden_sizes):
            front = self._front(stage, channels)
            fronts.append(front)
            layers.append(MDLSTM2d(front.out_channels, hidden))
            channels = hidden * (NUM_DIRECTIONS if config.direction_merge == "concat" else 1)
        self.fronts = nn.ModuleList(fronts)
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(channels, num_classes)

    @property
    def width_factor(self) -> int:
        """Input pixels per output frame: the blocks' widths (each rounds a ragged edge up to a
        whole block) or the pooling stages' halvings (each floors), multiplied."""
        factor = 1
        for front in self.fronts:
            factor *= front.block_w if isinstance(front, BlockFront) else 2 if front.pool else 1
        return factor

    def _front(self, stage: int, channels: int) -> nn.Module:
        config = self.config
        if config.front == "block":
            units = config.subsample_sizes[stage - 1] if stage else None
            return BlockFront(config.blocks[stage], channels, units)
        return ConvFront(channels, config.conv_channels[stage], stage in config.pool_stages)

    def merge_directions(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.direction_merge == "concat":
            return x
        n, h, w, _ = x.shape
        return x.view(n, h, w, NUM_DIRECTIONS, -1).sum(dim=3)

    def forward(
        self, images: torch.Tensor, widths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        widths = widths.to(images.device)
        x = mask_columns(images, widths).permute(0, 2, 3, 1)  # (N, H, W, 1), features last
        for front, layer in zip(self.fronts, self.layers):
            x, widths = front(x, widths)
            # The 2D-LSTM zeroes padded columns itself, so the next front sees clean padding.
            x = self.dropout(self.merge_directions(layer(x, widths)))
        # Collapse the vertical axis by summation (RNNLIB), then per-column CTC scores.
        logits = self.output(x.sum(dim=1))  # (N, T, C)
        return logits.transpose(0, 1), widths.clamp(min=1)

    def frame_counts(self, widths: torch.Tensor) -> torch.Tensor:
        """Output frames per line for these input widths, from the widths alone (on the host,
        the training step needs no copy back from the GPU), as `forward` counts them."""
        for front in self.fronts:
            widths = front.out_widths(widths)
        return widths.clamp(min=1)
