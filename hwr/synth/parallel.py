"""Many lines of one synthesizer rendered on several processes, in order. Torch-free.

`LineSynthesizer.sample(i)` is a pure function of (seed, split, index), so a line rendered in
a worker is the same pixels and label as one rendered here; only the time differs. Scoring a
model on a synthetic set (`hwr eval synth:hard:600`) had rendered its lines one by one before
the first was read: on two cores about as long as reading them greedily, and on a GPU host,
whose network reads them in a second, nearly all of the run.

The workers are spawned, not forked (the caller may already run torch or OpenCV thread pools,
which a forked child can hang in), and import only the synthesizer. Each is handed the
synthesizer once (it pickles without its fonts, corpora and real characters, which each
worker loads as the first lines need them) and then ranges of indices.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor

import cv2

from hwr.logs import init_worker_logging, level_for_workers
from hwr.records import LineSample
from hwr.synth.synthesizer import LineSynthesizer

# Below this many lines a pool costs more than it saves: starting a worker (imports, fonts,
# corpora) takes seconds, a line tens of milliseconds.
MIN_LINES_TO_SHARE = 64
# Indices per job: small enough that the workers finish together, large enough that handing
# jobs out costs nothing beside rendering them.
LINES_PER_JOB = 16
# Each worker loads its own fonts and corpora (some hundreds of MB); past this many the
# rendering outruns what reads the lines anyway.
MAX_DEFAULT_PROCESSES = 8


def default_processes() -> int:
    """The cores this process may run on, at most MAX_DEFAULT_PROCESSES."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_PROCESSES, cores))


def render_lines(synthesizer: LineSynthesizer, n: int, processes: int) -> list[LineSample]:
    """Lines 0..n-1 of `synthesizer`, in order: on `processes` spawned processes, or here when
    that is 1 or there are fewer than MIN_LINES_TO_SHARE lines."""
    if processes <= 1 or n < MIN_LINES_TO_SHARE:
        return [synthesizer.sample(index) for index in range(n)]
    jobs = [range(start, min(n, start + LINES_PER_JOB)) for start in range(0, n, LINES_PER_JOB)]
    lines: list[LineSample] = []
    with ProcessPoolExecutor(min(processes, len(jobs)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_adopt, initargs=(synthesizer, level_for_workers())) as pool:
        for rendered in pool.map(_render, jobs):
            lines.extend(rendered)
    return lines


_synthesizer: LineSynthesizer | None = None  # in a worker: the synthesizer it renders for


def _adopt(synthesizer: LineSynthesizer, log_level: int | None) -> None:
    global _synthesizer
    init_worker_logging(log_level)  # the synthesizer's warnings as the command logs its own
    # Ctrl-C reaches the whole process group: the parent stops the pool; a worker's own
    # KeyboardInterrupt would only print a traceback per worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One OpenCV thread a worker: the workers share the cores out already.
    cv2.setNumThreads(1)
    _synthesizer = synthesizer


def _render(indices: range) -> list[LineSample]:
    assert _synthesizer is not None, "the pool's initializer hands each worker its synthesizer"
    return [_synthesizer.sample(index) for index in indices]
