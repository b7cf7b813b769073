"""Ragged batches on the CPU: spend compute on lines, not on padding.

A batch is padded to its widest line, so one long line in a batch of short ones makes every
line pay for its width: on a page-sized call (tens of lines, widths 100-1,700 px) nearly a
third of the work is padding. The CPU has no packed kernels worth using (PyTorch's packed
LSTM is 2.5-3x slower than the padded one), so instead:

- the conv stack runs in **width groups**: consecutive lines in width order, each group
  padded only to its own widest line;
- each recurrent direction runs in **segments** of time steps: all lines up to the shortest
  line's length, then only the lines still going, carrying their state across
  (what a packed sequence does step by step, done in a few large calls).

Both plans minimise a modelled cost (line-steps of work, plus a fixed price per kernel call
and, for the recurrence, per step) by dynamic programming over the sorted widths, so a batch
of similar widths stays one call. Results equal the padded batch's (every network here
already keeps padding from reaching valid columns): this is scheduling, never modelling.
"""
from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence

import torch

# Cost constants in units of one line-step (one line through one recurrent step, or one
# pixel column of one line through the conv stack), measured with oneDNN on a 2-core x86
# CPU (bench/bench_ragged.py): a kernel call costs ~150 us, the price of ~50 line-steps of
# LSTM-128; each recurrent step adds ~1.5 line-steps whatever the batch; a conv-stack call
# costs ~1-1.5 ms, ~300 line-columns.
RECURRENCE_STEP_COST = 1.5
RECURRENCE_CALL_COST = 50
CONV_CALL_COST = 300


# Cut points the plans consider, at most: keeps planning well under a millisecond for a
# batch of hundreds (the search is quadratic in them) and costs little, since widths between
# two candidates differ little once there are this many.
MAX_CUT_CANDIDATES = 48


def _cheapest_cuts(count: int, cost: Callable[[int, int], float]) -> list[int]:
    """Cut points 0 = c0 < c1 < ... < ck = count minimising the sum of cost(ci, ci+1), by
    dynamic programming over at most MAX_CUT_CANDIDATES evenly spaced candidates."""
    step = max(1.0, count / MAX_CUT_CANDIDATES)
    candidates = sorted({round(k * step) for k in range(int(count / step) + 1)} | {0, count})
    # best[j]: cheapest cost up to candidates[j]; previous[j]: where its last piece starts.
    best, previous = [0.0] + [float("inf")] * (len(candidates) - 1), [0] * len(candidates)
    for j in range(1, len(candidates)):
        for i in range(j):
            total = best[i] + cost(candidates[i], candidates[j])
            if total < best[j]:
                best[j], previous[j] = total, i
    cuts, j = [], len(candidates) - 1
    while j:
        cuts.append(candidates[j])
        j = previous[j]
    return [0] + cuts[::-1]


def width_groups(widths: Sequence[int], call_cost: float = CONV_CALL_COST) -> list[list[int]]:
    """Partition line indices into groups of consecutive widths (narrowest first) that
    minimise sum(lines x widest width) + call_cost per group."""
    order = sorted(range(len(widths)), key=lambda i: widths[i])
    if not order:
        return []
    sorted_widths = [widths[i] for i in order]
    cuts = _cheapest_cuts(len(order), lambda i, j: (j - i) * sorted_widths[j - 1] + call_cost)
    return [order[i:j] for i, j in zip(cuts, cuts[1:])]


def recurrence_segments(lengths: Sequence[int], step_cost: float = RECURRENCE_STEP_COST,
                        call_cost: float = RECURRENCE_CALL_COST) -> list[tuple[int, int, int]]:
    """(first step, end step, active lines) per segment, for lines ordered longest first:
    segment k runs steps [first, end) over the first `active` lines, those longer than
    `first`. Together the segments cover every valid step of every line."""
    ascending = sorted(int(n) for n in lengths)
    points = [0] + sorted(set(ascending) - {0})  # segment boundaries: where some line ends

    def active(step: int) -> int:
        return len(ascending) - bisect.bisect_right(ascending, step)

    def cost(i: int, j: int) -> float:
        return (points[j] - points[i]) * (active(points[i]) + step_cost) + call_cost

    cuts = _cheapest_cuts(len(points) - 1, cost)
    return [(points[i], points[j], active(points[i])) for i, j in zip(cuts, cuts[1:])]


def run_in_segments(kernel: Callable, inputs: torch.Tensor, state: tuple[torch.Tensor, ...],
                    segments: Sequence[tuple[int, int, int]]) -> torch.Tensor:
    """One recurrent direction over `inputs` (T, N, F), lines ordered longest first, in the
    given segments. `kernel(x, state) -> (output, *final state)` is a single-layer,
    single-direction `torch.lstm`/`gru`/`rnn_tanh` call. Steps no segment covers come out as
    zeros; a line's steps past its length may hold anything (callers mask them)."""
    outputs = []
    for first, end, lines in segments:
        state = tuple(s[:, :lines] for s in state)
        output, *state = kernel(inputs[first:end, :lines], state)
        if lines < inputs.shape[1]:
            output = torch.nn.functional.pad(output, (0, 0, 0, inputs.shape[1] - lines))
        outputs.append(output)
    if segments and segments[-1][1] < inputs.shape[0]:
        outputs.append(outputs[0].new_zeros(inputs.shape[0] - segments[-1][1], *outputs[0].shape[1:]))
    return torch.cat(outputs)
