"""CTC forced alignment: where along the line each character and word of a transcript lies.

torchaudio's `forced_align` finds the single best CTC path that spells a given label sequence
(Viterbi over the CTC trellis), whose runs of one label give one frame span per label. A
beam decoder only says *what* was read; aligning its text against the network's posteriors
says *where*, and gives each character a confidence from the frames that emit it.

Geometry: a character's span marks the frames where CTC fires for it, usually narrower than
its ink (CTC posteriors are spiky). Its box runs from halfway between the previous
character's frames and its own to halfway towards the next one's, so boxes tile the line and
their centres follow the glyph centres. Words are runs of non-space characters; a word's
confidence is the MINIMUM of its characters' confidences (one doubtful letter makes the word
doubtful, and a mean would hide it in long words).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchaudio.functional import forced_align

from hwr.recognition.charset import BLANK_ID
from hwr.recognition.imaging import LineGeometry
from hwr.records import Recognition, WordBox


@dataclass
class CharAlignment:
    """One label on the CTC frame axis: frames first..last (inclusive) and its confidence."""

    label: int
    first: int
    last: int
    confidence: float


def min_frames(labels: list[int]) -> int:
    """CTC needs one frame per label plus a blank between two equal neighbours."""
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


def align_labels(log_probs: torch.Tensor, labels: list[int]) -> list[CharAlignment] | None:
    """Best CTC path spelling `labels` through (T, C) log-probs; None if the line is too short.

    A character's confidence is its highest posterior over its frames, as in greedy decoding,
    so the two decoders' confidences mean the same thing."""
    if not labels:
        return []
    if min_frames(labels) > log_probs.shape[0]:
        return None
    emissions = log_probs.detach().float().cpu().unsqueeze(0).contiguous()
    targets = torch.tensor([labels], dtype=torch.int32)
    path, _ = forced_align(emissions, targets, blank=BLANK_ID)
    path = path[0].numpy()
    # Runs of one label on the path (torchaudio's merge_tokens, without its per-run tensor ops,
    # which cost more than the beam search itself): a run starts where the label changes.
    changes = np.flatnonzero(np.diff(path, prepend=-1, append=-1))
    starts, ends = changes[:-1], changes[1:]
    emitting = path[starts] != BLANK_ID
    starts, ends = starts[emitting], ends[emitting]
    # Each frame's log-probability of its own path label, blanks out of the running: the max
    # from a run's start to the next run's start is then the max over the run itself.
    own = emissions[0].numpy()[np.arange(path.shape[0]), path]
    own = np.where(path != BLANK_ID, own, -np.inf)
    # exp as greedy decoding takes it (torch, over the whole vector), so that the two decoders'
    # confidences of the same frames are the same numbers.
    best = torch.from_numpy(np.maximum.reduceat(own, starts)).exp().numpy() if starts.size else own[:0]
    return [CharAlignment(int(path[a]), int(a), int(b) - 1, float(p))
            for a, b, p in zip(starts.tolist(), ends.tolist(), best.tolist())]


def char_extents(frames: list[tuple[int, int]], frame_width: float) -> list[tuple[float, float]]:
    """(x0, x1) of each character in pixels of the normalised line, tiling the line between
    neighbours' frame spans (see module docstring)."""
    if not frames:
        return []
    edges = [float(frames[0][0])]
    for (_, last), (first, _) in zip(frames, frames[1:]):
        edges.append((last + 1 + first) / 2.0)
    edges.append(float(frames[-1][1] + 1))
    return [(edges[k] * frame_width, edges[k + 1] * frame_width) for k in range(len(frames))]


def word_spans(text: str) -> list[tuple[int, int]]:
    """(first, last) character indices of each space-separated word of `text`."""
    spans, start = [], None
    for k, ch in enumerate(text):
        if ch == " ":
            if start is not None:
                spans.append((start, k - 1))
            start = None
        elif start is None:
            start = k
    if start is not None:
        spans.append((start, len(text) - 1))
    return spans


def word_boxes(rec: Recognition, geometry: LineGeometry | None = None) -> list[WordBox]:
    """Word boxes of a recognition whose char_frames are filled, in source-image pixels
    (normalised-line pixels when no geometry is given)."""
    if len(rec.char_frames) != len(rec.text):
        return []
    extents = char_extents(rec.char_frames, rec.frame_width)
    boxes = []
    for first, last in word_spans(rec.text):
        x0, x1 = extents[first][0], extents[last][1]
        if geometry is not None:
            x0, x1 = geometry.to_source_x(x0), geometry.to_source_x(x1)
        conf = float(np.min(rec.char_confidences[first : last + 1])) if rec.char_confidences else 0.0
        boxes.append(WordBox(rec.text[first : last + 1], conf, x0, x1))
    return boxes
