"""Read a line at more than one width and keep the reading the network is surest of.

Why: writers squeeze and stretch their words, and a line normalised to the network's height
keeps the writer's width. A cramped hand reads better stretched sideways: on 600 lines of the
harder validation set (seed 7, hwr-en-small stage 23) each line read as normalised and
stretched to 1.3 times its width, keeping the reading with the higher greedy line confidence,
went 5.07% -> 4.69% CER greedy and 3.66% -> 3.30% with the LM search (paired bootstrap
p <= 0.001). Every line read at 1.15 or 1.3 alone reads no better than as normalised (the
confidence picks the lines a stretch helps), and squeezing (0.85) or a third stretch (1.5)
added errors. The cost is one more network pass per factor over a wider line: about 2.3 times
the network's time for (1.3,).

How: the padded batch is stretched as a whole (bilinear, as the normaliser resizes), so the
page pipeline's batches, already on the device, need no second preparation; each line's
frames then cover fewer of its normalised pixels, and `frame_widths` says how many, so
character positions and word boxes map back to the line as read.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from hwr.errors import ConfigError
from hwr.recognition.decode import greedy_line_confidence

MIN_FACTOR, MAX_FACTOR = 0.5, 3.0  # beyond these a line is no longer its writer's letters


def check_width_factors(factors: Sequence[float], flag: str = "--width-variants") -> tuple[float, ...]:
    """The extra width factors as a tuple, or a ConfigError naming the flag: each finite, within
    [MIN_FACTOR, MAX_FACTOR], not 1 (the line as normalised is always read) and not repeated."""
    for factor in factors:
        if not math.isfinite(factor) or not MIN_FACTOR <= factor <= MAX_FACTOR:
            raise ConfigError(f"{flag}: each factor must be between {MIN_FACTOR} and {MAX_FACTOR}, got {factor}")
        if factor == 1.0:
            raise ConfigError(f"{flag}: the line as normalised (factor 1) is always read; give only the other widths")
    if len(set(factors)) != len(factors):
        raise ConfigError(f"{flag}: a factor is given twice: {list(factors)}")
    return tuple(float(f) for f in factors)


def stretched(images: torch.Tensor, widths: torch.Tensor, factor: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """A padded batch (N, 1, H, W) stretched sideways by about `factor`: (images, widths, the
    exact ratio of the new padded width to the old, which every line's width follows)."""
    height, width = images.shape[-2:]
    new_width = max(1, round(width * factor))
    ratio = new_width / width
    wider = F.interpolate(images, size=(height, new_width), mode="bilinear", align_corners=False)
    new_widths = torch.round(widths.double() * ratio).to(widths.dtype).clamp(min=1, max=new_width)
    return wider, new_widths, ratio


def surest_reading(read: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                   images: torch.Tensor, widths: torch.Tensor, factors: Sequence[float],
                   frame_width: float) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Read the batch as given and stretched by each of `factors` (`read`: images, widths ->
    log_probs (T, N, C), lengths (N,)); per line keep the reading greedy decoding is surest of
    (a tie keeps the line as given). Returns (log_probs padded to the longest kept reading,
    lengths, each line's input pixels per frame in the batch as given)."""
    readings = [(*read(images, widths), 1.0)]
    for factor in factors:
        wider, wider_widths, ratio = stretched(images, widths, factor)
        readings.append((*read(wider, wider_widths), ratio))
    confidence = torch.stack([greedy_line_confidence(lp, n) for lp, n, _ in readings])  # (K, N)
    best = confidence.argmax(dim=0).cpu()  # the first of equals: the line as given wins a tie
    frames = max(lp.shape[0] for lp, _, _ in readings)
    first = readings[0][0]
    log_probs = first.new_zeros((frames, *first.shape[1:]))
    lengths = readings[0][1].clone()
    for k, (lp, n, _) in enumerate(readings):
        lines = (best == k).nonzero().flatten()
        if len(lines):
            log_probs[: lp.shape[0], lines.to(lp.device)] = lp[:, lines.to(lp.device)]
            lengths[lines.to(lengths.device)] = n[lines.to(n.device)]
    ratios = [readings[k][2] for k in best.tolist()]
    return log_probs, lengths, [frame_width / ratio for ratio in ratios]
