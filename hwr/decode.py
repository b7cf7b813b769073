"""CTC decoding: network scores -> text with per-character confidences.

Greedy (best-path) decoding takes the most likely label per frame, merges repeats and drops
blanks (Graves et al., 2006). A character's confidence is the highest posterior among the
frames of its run; the line confidence is the mean over characters, so one doubtful
character lowers the line without a long line being penalised for its length.
"""
from __future__ import annotations

import numpy as np
import torch

from .charset import BLANK_ID, Charset
from .records import Recognition


class GreedyDecoder:
    name = "greedy"

    def __init__(self, charset: Charset):
        self.charset = charset

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor, frame_width: float = 1.0) -> list[Recognition]:
        """log_probs (T, N, C) log-softmax scores; lengths (N,) valid frames per line."""
        best_logp, best = log_probs.detach().float().max(dim=2)
        best_prob = best_logp.exp().cpu().numpy()
        best = best.cpu().numpy()
        lengths = lengths.cpu().numpy()
        return [
            self._decode_line(best[: lengths[n], n], best_prob[: lengths[n], n], frame_width)
            for n in range(best.shape[1])
        ]

    def _decode_line(self, labels: np.ndarray, probs: np.ndarray, frame_width: float) -> Recognition:
        ids, confs, spans = [], [], []
        prev = BLANK_ID
        for t, (label, p) in enumerate(zip(labels.tolist(), probs.tolist())):
            if label != BLANK_ID and label == prev:
                confs[-1] = max(confs[-1], p)
                spans[-1] = (spans[-1][0], t)
            elif label != BLANK_ID:
                ids.append(label)
                confs.append(p)
                spans.append((t, t))
            prev = label
        if confs:
            line_conf = float(np.mean(confs))
        else:  # empty output: as sure as the blank frames are
            line_conf = float(np.mean(probs)) if len(probs) else 0.0
        return Recognition(
            text=self.charset.decode(ids),
            confidence=line_conf,
            char_confidences=[float(c) for c in confs],
            char_frames=spans,
            frame_width=frame_width,
        )


DECODERS = {"greedy": GreedyDecoder}


def make_decoder(name: str, charset: Charset, **options):
    if name not in DECODERS:
        raise ValueError(f"unknown decoder {name!r}; available: {sorted(DECODERS)}")
    return DECODERS[name](charset, **options)
