"""CNN + bidirectional LSTM line recognizer (Puigcerver, ICDAR 2017).

Conv blocks (3x3 conv, BatchNorm, LeakyReLU, optional 2x2 max-pool) turn the line image into
a sequence of column features; a stack of bidirectional recurrent layers (cuDNN `nn.LSTM` on
GPU) reads it; a linear layer gives CTC scores per column.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from hwr.recognition.nets.configs import RNN_CELL_NAMES, CRNNConfig
from hwr.recognition.nets.ragged import recurrence_segments, run_in_segments, width_groups

RNN_CELLS = dict(zip(RNN_CELL_NAMES, (nn.LSTM, nn.GRU, nn.RNN), strict=True))
# The single-direction kernels behind each module, called layer by layer on the CPU path.
RNN_KERNELS = {"lstm": torch.lstm, "gru": torch.gru, "rnn": torch.rnn_tanh}


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, pool: bool, height_pool: bool, dropout: float, norm: str = "batch"):
        super().__init__()
        if norm not in ("batch", "none"):
            raise ValueError(f"unknown norm {norm!r}; use batch or none")
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=norm == "none")
        self.norm = nn.BatchNorm2d(cout) if norm == "batch" else nn.Identity()
        self.act = nn.LeakyReLU(0.01, inplace=True)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.pool = nn.MaxPool2d(2) if pool else (nn.MaxPool2d((2, 1)) if height_pool else None)
        self.halves_width = pool

    def forward(self, x: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.norm(self.conv(x))
        if self.pool is not None:
            # Pooled before the activation and dropout, not after: both are monotonic within a
            # channel, so max-pooling commutes with them exactly, and they then touch a quarter
            # (a half) of the values. Outside autograd the CPU takes the strided maxima, which
            # skip the argmax indices that max_pool2d computes for a backward pass.
            x = self.pool(x) if x.requires_grad or x.is_cuda else strided_max_pool(x, self.halves_width)
        x = self.drop(self.act(x))
        if self.halves_width:
            widths = torch.div(widths, 2, rounding_mode="floor")
        return mask_columns(x, widths), widths


def strided_max_pool(x: torch.Tensor, halves_width: bool) -> torch.Tensor:
    """nn.MaxPool2d((2, 2)) (halves_width) or nn.MaxPool2d((2, 1)) as maxima of strided views: the
    same values, 1.4-3x faster on the CPU. An odd last row or column is dropped, as there."""
    rows = x.shape[2] // 2 * 2
    x = torch.maximum(x[:, :, 0:rows:2], x[:, :, 1:rows:2])
    if halves_width:
        cols = x.shape[3] // 2 * 2
        x = torch.maximum(x[:, :, :, 0:cols:2], x[:, :, :, 1:cols:2])
    return x


def mask_columns(x: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """Zero the padded columns so the next conv sees exactly what a lone line would see.

    Without this, BatchNorm's shift makes padding non-zero and the last valid columns of a
    short line in a wide batch would differ from the same line alone.
    """
    cols = torch.arange(x.shape[-1], device=x.device)
    mask = cols[None, :] < widths[:, None]
    return x * mask[:, None, None, :].to(x.dtype)


class CRNN(nn.Module):
    def __init__(self, config: CRNNConfig, num_classes: int):
        super().__init__()
        config.validate()
        self.config = config
        blocks, cin, height = [], 1, config.line_height
        for i, cout in enumerate(config.conv_channels):
            pool, hpool = i in config.pool_blocks, i in config.height_pool_blocks
            blocks.append(ConvBlock(cin, cout, pool, hpool and not pool, config.conv_dropout, config.norm))
            cin = cout
            if pool or hpool:
                height //= 2
        if height < 1:
            raise ValueError("too much pooling for the line height")
        self.blocks = nn.ModuleList(blocks)
        self.width_factor = 2 ** len(config.pool_blocks)
        self.feature_size = cin * height
        rnn_cls = RNN_CELLS[config.rnn_cell]
        self.rnn = rnn_cls(
            self.feature_size,
            config.rnn_hidden,
            num_layers=config.rnn_layers,
            bidirectional=True,
            dropout=config.dropout if config.rnn_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(2 * config.rnn_hidden, num_classes)

    def fuse_for_inference(self) -> None:
        """Fold each eval-mode BatchNorm into its conv: same scores, ~15% less CPU time."""
        for block in self.blocks:
            if isinstance(block.norm, nn.BatchNorm2d):
                block.conv = fuse_conv_bn_eval(block.conv.eval(), block.norm.eval())
                block.norm = nn.Identity()

    def forward(self, images: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (N, 1, H, W), widths (N,) -> (logits (T, N, C), frames (N,)) on the images' device.

        Widths may stay on the CPU while the images are on a GPU: cuDNN's packed kernel wants
        the frame counts on the host, and counting them from host widths spares a copy back
        that would make the CPU wait for the GPU every batch."""
        x = images
        host_frames = self.frame_counts(widths) if x.is_cuda and not widths.is_cuda else None
        widths = widths.to(x.device, non_blocking=True)
        if not x.is_cuda:
            # oneDNN's NHWC kernels: max-pooling is ~8x and the conv stack ~1.7x faster than
            # NCHW on the CPU. cuDNN picks its own layout, so GPUs are left alone.
            x = x.contiguous(memory_format=torch.channels_last)
        if self.training or x.is_cuda:
            seq, widths = self.convolve(x, widths)
        else:
            seq, widths = self.convolve_in_width_groups(x, widths)
        lengths = widths.clamp(min=1)
        seq = self.dropout(seq)
        out = self.recur_packed(seq, lengths, host_frames) if seq.is_cuda else self.recur_reversed(seq, lengths)
        logits = self.output(self.dropout(out))
        return logits, lengths

    def convolve(self, images: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The conv stack: images (N, 1, H, W) -> column features (T, N, features), frames."""
        x = images
        for block in self.blocks:
            x, widths = block(x, widths)
        n, c, h, w = x.shape
        return x.permute(3, 0, 1, 2).reshape(w, n, c * h), widths

    def convolve_in_width_groups(self, images: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`convolve`, each group of similar widths cropped to its own widest line
        (hwr.recognition.nets.ragged): the same features, without convolving the batch's padding.
        Inference only: BatchNorm in training normalises over the whole batch."""
        groups = width_groups(widths.tolist())
        if len(groups) == 1:
            return self.convolve(images, widths)
        parts = []
        for group in groups:
            index = torch.tensor(group, device=images.device)
            group_widths = widths.index_select(0, index)
            # Never narrower than the batch would be below the last pool: a group of only
            # very narrow lines must not shrink to no columns at all.
            crop_width = max(int(group_widths.max()), 2 * self.width_factor)
            crop = images.index_select(0, index)[..., :crop_width]
            parts.append((index, *self.convolve(crop, group_widths)))
        num_frames = images.shape[-1] // self.width_factor  # as the whole batch would give
        seq = parts[0][1].new_zeros(num_frames, len(widths), parts[0][1].shape[-1])
        frames = torch.empty_like(widths)
        for index, features, group_frames in parts:
            seq[: features.shape[0], index] = features
            frames[index] = group_frames
        return seq, frames

    def frame_counts(self, widths: torch.Tensor) -> torch.Tensor:
        """Output frames per line for these input widths, as the conv stack counts them (each
        width-pooling block floors half the width; floors of halves nest into one floor)."""
        return torch.div(widths, self.width_factor, rounding_mode="floor").clamp(min=1)

    def recur_packed(self, seq: torch.Tensor, lengths: torch.Tensor,
                     host_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """cuDNN's packed bidirectional kernel: the fast path on the GPU. host_lengths: the
        same lengths on the CPU, when known, so packing need not copy them back.

        The lines are sorted longest first here, on the host, and put back by index: with
        torch's own unsorted packing, unpacking copies the order back from the GPU (a wait for
        the network every batch)."""
        host_lengths = lengths.cpu() if host_lengths is None else host_lengths
        order = torch.argsort(host_lengths, descending=True, stable=True)
        restore = torch.empty_like(order)
        restore[order] = torch.arange(len(order))
        packed = pack_padded_sequence(seq.index_select(1, order.to(seq.device, non_blocking=True)),
                                      host_lengths[order], enforce_sorted=True)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, total_length=seq.shape[0])
        return out.index_select(1, restore.to(out.device, non_blocking=True))

    def recur_reversed(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The same network as `recur_packed`, 2.5-3x faster on the CPU, where PyTorch's
        packed-sequence kernels are slow (training above all).

        Each direction runs over the padded batch as a plain sequence, with the module's own
        weights. The forward direction never looks ahead, so trailing padding cannot reach a
        valid step; the backward direction reads each line reversed within its own length
        (padding stays behind it), then is turned back. Padded steps come out as zeros, as
        from `pad_packed_sequence`.
        """
        rnn, kernel = self.rnn, RNN_KERNELS[self.config.rnn_cell]
        # Lines longest first, so that each segment of steps (hwr.recognition.nets.ragged) runs over a
        # prefix of the batch; the original order is restored at the end.
        order = torch.argsort(lengths, descending=True, stable=True)
        seq, lengths = seq.index_select(1, order), lengths.index_select(0, order)
        segments = recurrence_segments(lengths.tolist())
        num_steps, batch = seq.shape[:2]
        steps = torch.arange(num_steps, device=seq.device)[:, None]
        valid = steps < lengths[None, :]
        reverse = torch.where(valid, lengths[None, :] - 1 - steps, steps)
        # The reversal as whole rows of the flattened (step, line) table: index_select copies
        # rows, several times faster than a gather through an expanded index.
        rows = (reverse * batch + torch.arange(batch, device=seq.device)).reshape(-1)

        def reversed_in_length(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(num_steps * batch, -1).index_select(0, rows).view(num_steps, batch, -1)

        def direction(weights):
            def run(inputs, state):
                hx = state if self.config.rnn_cell == "lstm" else state[0]
                return kernel(inputs, hx, weights, True, 1, 0.0, self.training, False, False)
            return run

        x = seq
        for layer in range(rnn.num_layers):
            if layer:
                x = nn.functional.dropout(x, rnn.dropout, self.training)
            directions = []
            for suffix in ("", "_reverse"):
                weights = [getattr(rnn, f"{name}_l{layer}{suffix}")
                           for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                inputs = reversed_in_length(x) if suffix else x
                h0 = x.new_zeros(1, x.shape[1], rnn.hidden_size)
                state = (h0, h0) if self.config.rnn_cell == "lstm" else (h0,)
                y = run_in_segments(direction(weights), inputs, state, segments)
                directions.append(reversed_in_length(y) if suffix else y)
            x = torch.cat(directions, -1)
        x = x * valid[:, :, None].to(x.dtype)
        return x.index_select(1, torch.argsort(order))
