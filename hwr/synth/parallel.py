"""Many lines (or pages) of one synthesizer rendered on several processes, in order. Torch-free.

`LineSynthesizer.sample(i)` and `sample_page(i)` are pure functions of (seed, split, index),
so a line rendered in a worker is the same pixels and label as one rendered here; only the
time differs. Scoring a model on a synthetic set (`hwr eval synth:hard:600`) had rendered its
lines one by one before the first was read, and `hwr synth` wrote its set one line at a time:
on a GPU host, whose network reads 600 lines in a second, rendering was nearly all of an
evaluation.

The workers are spawned, not forked (the caller may already run torch or OpenCV thread pools,
which a forked child can hang in), and import only the synthesizer. Each is handed the
synthesizer once (it pickles without its fonts, corpora and real characters, which each
worker loads as the first lines need them) and then lists of indices. At most a few jobs a
worker are in flight, so a long export holds a bounded number of rendered lines in memory.
"""
from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import chain, islice

import cv2

from hwr.interrupts import (
    exit_with_parent,
    quiet_workers_context,
    stop_workers_now,
    unguarded_main_note,
    worker_leaves_ctrl_c_to_its_parent,
    workers_reran_main,
)
from hwr.logs import init_worker_logging, level_for_workers
from hwr.records import LineSample
from hwr.synth.page import SynthPage
from hwr.synth.synthesizer import LineSynthesizer

log = logging.getLogger("hwr.synth.parallel")

# Below this many lines a pool costs more than it saves. Measured on a quiet 2-core VM
# (bench/bench_render_processes.py, synth:hard:600): one process renders 110 lines/s, fonts and
# corpora loading included; two processes 600 lines in 4.5 s against 5.5, the workers' start
# costing about 1.8 s: even at about 400 lines on two cores, sooner on more. A page holds
# several lines.
MIN_LINES_TO_SHARE = 400
LINES_PER_PAGE = 8
# Indices per job: small enough that the workers finish together, large enough that handing
# jobs out costs nothing beside rendering them.
LINES_PER_JOB = 16
JOBS_AHEAD_PER_PROCESS = 4
# Each worker loads its own fonts and corpora (some hundreds of MB); past this many the
# rendering outruns what reads the lines anyway.
MAX_DEFAULT_PROCESSES = 8


def default_processes(requested: int | None = None) -> int:
    """`requested`, or when it is None (a command's --processes unset) the cores this process
    may run on, at most MAX_DEFAULT_PROCESSES."""
    if requested is not None:
        return requested
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_PROCESSES, cores))


def render_lines(synthesizer: LineSynthesizer, n: int, processes: int) -> list[LineSample]:
    """Lines 0..n-1 of `synthesizer`, in order (`rendered`)."""
    return [line for _, line in rendered(synthesizer, range(n), n, processes)]


def rendered(synthesizer: LineSynthesizer, indices: Iterable[int], count: int, processes: int,
             pages: bool = False) -> Iterator[tuple[int, LineSample | SynthPage]]:
    """(index, line) for each of `indices` (`sample`; with `pages`, the pages: `sample_page`),
    in their order: on `processes` spawned processes, or here when that is 1 or `count` (how
    many indices there are, at most) is too few to pay for starting them (MIN_LINES_TO_SHARE
    lines). The indices are taken as the jobs go out, not all at once."""
    weight = LINES_PER_PAGE if pages else 1
    if processes <= 1 or count * weight < MIN_LINES_TO_SHARE:
        draw = synthesizer.sample_page if pages else synthesizer.sample
        for index in indices:
            yield index, draw(index)
        return
    per_job = max(1, LINES_PER_JOB // weight)
    workers = min(processes, -(-count // per_job))
    pool = ProcessPoolExecutor(workers, mp_context=quiet_workers_context("spawn"), initializer=_adopt,
                               initargs=(synthesizer, level_for_workers()))
    waiting: deque[tuple[list[int], Future]] = deque()
    finished = False
    remaining = iter(indices)
    try:
        while job := list(islice(remaining, per_job)):
            waiting.append((job, pool.submit(_render, job, pages)))
            if len(waiting) >= workers * JOBS_AHEAD_PER_PROCESS:
                job, future = waiting.popleft()
                yield from zip(job, _result(pool, future, waiting, job))
        while waiting:
            job, future = waiting.popleft()
            yield from zip(job, _result(pool, future, waiting, job))
        finished = True
    except _RenderHere as here:
        stop_workers_now(pool)
        yield from rendered(synthesizer, chain(here.indices, remaining), count, 1, pages)
        finished = True
    finally:
        if finished:
            pool.shutdown()
        else:
            stop_workers_now(pool)


class _RenderHere(Exception):
    """The workers cannot run (the main script, run again in each, renders there too): the lines
    not yet handed over (`indices`) and the rest are rendered in this process."""

    def __init__(self, indices: list[int]):
        super().__init__()
        self.indices = indices


def _result(pool: ProcessPoolExecutor, future: Future, waiting: deque, job: list[int]) -> list:
    """A job's lines; _RenderHere when its worker left because the main script, which has no
    `if __name__ == "__main__":` guard, started rendering again in it (the same lines come out
    here: each is a pure function of its index)."""
    try:
        return future.result()
    except BrokenProcessPool:
        if not workers_reran_main(pool):
            raise
        log.warning("rendering in this process: %s", unguarded_main_note())
        raise _RenderHere(job + [i for waiting_job, _ in waiting for i in waiting_job]) from None


_synthesizer: LineSynthesizer | None = None  # in a worker: the synthesizer it renders for


def _adopt(synthesizer: LineSynthesizer, log_level: int | None) -> None:
    global _synthesizer
    # A parent killed outright (SIGKILL, the OOM killer) runs no cleanup: its renderers had lived
    # on as orphans, each rendering at a full core.
    exit_with_parent()
    init_worker_logging(log_level)  # the synthesizer's warnings as the command logs its own
    # Started with SIGINT blocked (quiet_workers_context); ignored too, should anything unblock it.
    worker_leaves_ctrl_c_to_its_parent()
    # One OpenCV thread a worker: the workers share the cores out already.
    cv2.setNumThreads(1)
    _synthesizer = synthesizer


def _render(indices: list[int], pages: bool) -> list[LineSample | SynthPage]:
    assert _synthesizer is not None, "the pool's initializer hands each worker its synthesizer"
    draw = _synthesizer.sample_page if pages else _synthesizer.sample
    return [draw(index) for index in indices]
