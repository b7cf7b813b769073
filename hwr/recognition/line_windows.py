"""Read a line wider than the network's window in overlapping windows, and join their frames.

Why: a line normalised to the network's height was squeezed sideways to the model's
`max_width` (4096 pixels, about 180 characters at 48 pixels high), a guard on the memory of
one padded batch. Squeezed, its letters are narrower than any the network learnt: lines of
validation-font text joined end to end read at 3.8% CER up to 4096 pixels, 8% at 5,700
(squeezed to 0.72 of their width), 26% at 8,600 and 47% at 11,400 (hwr-en-small). A page
whose columns the segmenter joins, or a ledger row across a spread, is such a line.

How: the network reads windows of at most `window` pixels, each `overlap` pixels into the one
before, and each window's frames are kept from the middle of its overlap with the one before
(the first window's from its start, the last window's to the line's end): every kept frame
has at least half the overlap of the line around it on both sides, as the whole line would.
Windows start at multiples of the network's frame width, so a window's frame k is the line's
frame start / frame_width + k, and the decoders, word boxes and confidences read the joined
frames as one line's. Only lines that reach a window are read in it.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

Scores = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

# Overlap of two windows, in line heights: each kept frame sees at least half of it (2 line
# heights, 4-6 letters) on each side. Measured on joined validation lines (bench/bench_long_lines.py).
OVERLAP_HEIGHTS = 4


def window_geometry(window: int, overlap: int, frame_width: float) -> tuple[int, int] | None:
    """(window, overlap) in pixels rounded down to whole frames (the overlap to an even number
    of frames, so that its middle is a frame boundary), or None when the network's frames are not
    whole pixels or the window holds no more than the overlap (nothing to read windowed)."""
    if frame_width != int(frame_width) or frame_width < 1:
        return None
    step = int(frame_width)
    window -= window % step
    overlap -= overlap % (2 * step)
    if overlap < 0 or window <= overlap:
        return None
    return window, overlap


def windowed_scores(scores: Scores, images: torch.Tensor, widths: torch.Tensor, window: int, overlap: int,
                    frame_width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`scores(images, widths)` -> (log_probs (T, N, C), frames (N,)) for a padded batch wider
    than `window`, read window by window (`window_geometry`'s window and overlap). Frames past
    a line's length are zeros."""
    host_widths = widths.cpu()
    stride = window - overlap
    kept_from = overlap // 2 // frame_width  # a later window's first kept frame, in its own frames
    pieces = []
    start = 0
    while True:
        # A line is in this window when the window before did not reach its end.
        reached = host_widths > start + overlap if start else torch.ones_like(host_widths, dtype=torch.bool)
        lines = reached.nonzero().flatten()
        if len(lines) == 0:
            break
        index = lines.to(images.device)
        crop_widths = (host_widths[lines] - start).clamp(max=window)
        # Cut before the lines are picked: picking first copied the whole batch at full width.
        crop = images[..., start : start + int(crop_widths.max())]
        if len(lines) < images.shape[0]:
            crop = crop.index_select(0, index)
        log_probs, frames = scores(crop, crop_widths.to(widths.device))
        pieces.append((start // frame_width, 0 if start == 0 else kept_from, index, log_probs, frames))
        start += stride
    total = max(first + log_probs.shape[0] for first, _, _, log_probs, _ in pieces)
    first_scores = pieces[0][3]
    joined = first_scores.new_zeros(total, images.shape[0], first_scores.shape[-1])
    lengths = torch.zeros(images.shape[0], dtype=pieces[0][4].dtype, device=pieces[0][4].device)
    # In order: each window's kept frames overwrite the tail of the one before, which the line
    # keeps only where this window does not reach (its last window).
    for first, kept, index, log_probs, frames in pieces:
        joined[first + kept : first + log_probs.shape[0], index.to(joined.device)] = log_probs[kept:]
        lengths[index.to(lengths.device)] = first + frames
    # A line's last window pads it to the window's widest line: those frames are no line's.
    past_end = torch.arange(total, device=joined.device)[:, None] >= lengths.to(joined.device)[None, :]
    joined[past_end] = 0
    return joined, lengths
