"""Read a doubtful line at more widths and keep the reading the network is surest of.

Why: writers squeeze and stretch their words, and a line normalised to the network's height
keeps the writer's width. A cramped hand reads better stretched sideways: on 600 lines of the
harder validation set (seed 7, hwr-en-small stage 23) each line read as normalised and
stretched to 1.3 times its width, keeping the reading with the higher greedy line confidence,
went 5.07% -> 4.69% CER greedy and 3.66% -> 3.30% with the LM search (paired bootstrap
p <= 0.001). Every line read at 1.15 or 1.3 alone reads no better than as normalised (the
confidence picks the lines a stretch helps), and squeezing (0.85) or a third stretch (1.5)
added errors. Only the lines read with a confidence below DOUBTFUL_BELOW (hwr.recognition.settings,
with the commands' default widths) are read again: a
fifth of them, which read better still (a line read surely stays as it was), at a fraction of
the cost of a second pass over every line.

How: the doubtful lines of a padded batch are stretched together (bilinear, as the normaliser
resizes), so the page pipeline's batches, already on the device, need no second preparation;
a line kept stretched has frames that cover fewer of its normalised pixels, and `frame_widths`
says how many, so character positions and word boxes map back to the line as read.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from hwr.documents.line_batches import WIDTH_MULTIPLE
from hwr.recognition.decode import greedy_line_confidence
from hwr.recognition.settings import DOUBTFUL_BELOW


def stretched(images: torch.Tensor, widths: torch.Tensor, factor: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """A padded batch (N, 1, H, W) stretched sideways by `factor`: (images, widths, the ratio
    every line's pixels were resampled by: `factor` itself). Resampled at the factor, not at the
    ratio of two padded widths: that ratio (round(W * 1.3) / W) depended on the widest line of
    the batch, and a line read differently with other lines beside it or another batch size."""
    new_width = max(1, math.floor(images.shape[-1] * factor))
    wider = F.interpolate(images, scale_factor=(1.0, factor), mode="bilinear", align_corners=False,
                          recompute_scale_factor=False)
    new_widths = torch.round(widths.double() * factor).to(widths.dtype).clamp(min=1, max=new_width)
    return wider, new_widths, factor


def lines_of_batch(images: torch.Tensor, widths: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Some lines of a padded batch (`rows`: their indices, on the host) as a batch of their own,
    cropped to the widest of them rounded up as batches are padded (a line of 1-2 px alone was
    too narrow for the network's convolutions): a second pass over them costs what they do."""
    widest = max(1, int(widths.cpu()[rows].max()))  # lines of no width still get a padded column
    crop = min(images.shape[-1], -(-widest // WIDTH_MULTIPLE) * WIDTH_MULTIPLE)
    return (images.index_select(0, rows.to(images.device))[..., :crop],
            widths.index_select(0, rows.to(widths.device)))


def surest_reading(read: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                   images: torch.Tensor, widths: torch.Tensor, factors: Sequence[float], frame_width: float,
                   below: float = DOUBTFUL_BELOW) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Read the batch as given (`read`: images, widths -> log_probs (T, N, C), lengths (N,));
    read the lines greedy decoding is less sure of than `below` again stretched by each of
    `factors`, and keep per line the reading greedy decoding is surest of (a tie keeps the line
    as given). Returns (log_probs padded to the longest kept reading, lengths, each line's input
    pixels per frame in the batch as given)."""
    plain, plain_lengths = read(images, widths)
    plain_confidence = greedy_line_confidence(plain, plain_lengths)
    doubtful = (plain_confidence < below).nonzero().flatten().cpu()
    frame_widths = [frame_width] * len(widths)
    if len(doubtful) == 0:
        return plain, plain_lengths, frame_widths
    sub_images, sub_widths = lines_of_batch(images, widths, doubtful)
    best_confidence = plain_confidence.index_select(0, doubtful.to(plain_confidence.device))
    best = [None] * len(doubtful)  # (log_probs, lengths, ratio) of the reading kept, None: as given
    for factor in factors:
        wider, wider_widths, ratio = stretched(sub_images, sub_widths, factor)
        log_probs, lengths = read(wider, wider_widths)
        confidence = greedy_line_confidence(log_probs, lengths)
        for k in (confidence > best_confidence).nonzero().flatten().tolist():
            best[k] = (log_probs[:, k], lengths[k], ratio)
        best_confidence = torch.maximum(best_confidence, confidence)
    kept = [(int(doubtful[k]), reading) for k, reading in enumerate(best) if reading is not None]
    if not kept:
        return plain, plain_lengths, frame_widths
    frames = max(plain.shape[0], *(reading[0].shape[0] for _, reading in kept))
    log_probs = plain.new_zeros((frames, *plain.shape[1:]))
    log_probs[: plain.shape[0]] = plain
    lengths = plain_lengths.clone()
    for line, (scores, length, ratio) in kept:
        log_probs[:, line] = 0
        log_probs[: scores.shape[0], line] = scores
        lengths[line] = length.to(lengths.device)
        frame_widths[line] = frame_width / ratio
    return log_probs, lengths, frame_widths
