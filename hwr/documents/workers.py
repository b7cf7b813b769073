"""Page worker processes: pages in, prepared line images out through shared memory.

The process that owns the network should do nothing but feed it; decoding, deskewing,
segmenting and normalising pages is Python and OpenCV work that, in threads, contends with
it for the GIL. `PageWorkers` runs `hwr.documents.prepare.prepare_page` in worker processes
that never import torch or load the model (so they start in well under a second and hold a
few tens of MB each, not a model and torch's thread pools), and hands each page's uint8 line
images back in one `multiprocessing.shared_memory` block: the pipe carries only the page
record and the block's name, and the parent copies the pixels out with one memcpy and
unlinks the block at once.

Guarantees, each tested in tests/documents/test_workers.py:
- workers never import torch (the entry point is this torch-free module; `spawn`, not fork,
  so nothing of the parent's torch state is inherited);
- a page that fails comes back as a PreparedPage with its `failure`, and the rest go on; a worker
  that dies outright (a segfault in a decoder) is replaced, and the pages it had in hand are
  retried one at a time so that only the page that kills a worker is reported;
- at most `window` pages are in flight or waiting, so memory stays bounded whatever the
  input size;
- every block is unlinked: by the parent after copying, or on close/Ctrl-C for pages
  finished but never consumed. Workers ignore SIGINT, so Ctrl-C reaches only the parent,
  which shuts the pool down cleanly. (Were the parent killed outright, multiprocessing's
  resource tracker, shared with the workers, unlinks what is left; were the tracker killed too,
  as a SIGKILL of the whole process group does, the next pool to start unlinks the blocks whose
  owning process is gone: each block's name carries its owner's pid.)

Caveat: `spawn` re-imports the parent's main script in each worker; a script that imports
torch at module level would bring torch into the workers. `hwr`'s CLI and the benches import
torch lazily.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import re
import secrets
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np

from hwr.documents.pages import prefetch_map
from hwr.documents.prepare import PreparedPage, PrepareSettings, failed, prepare_page
from hwr.fileio import process_runs
from hwr.interrupts import (
    exit_with_parent,
    quiet_workers_context,
    stops_held_back,
    unguarded_main_note,
    workers_reran_main,
)
from hwr.logs import init_worker_logging, level_for_workers

log = logging.getLogger("hwr.documents.workers")

# Names of hwr's blocks in /dev/shm, so leaks can be told from other programs' blocks:
# hwr_pg_<pid of the process that owns the pool>_<random>.
SHM_PREFIX = "hwr_pg_"
_OWNED_BLOCK = re.compile(re.escape(SHM_PREFIX) + r"(\d+)_[0-9a-f]+")
# Where POSIX shared memory shows as files (Linux); elsewhere there is nothing to sweep.
SHM_DIR = Path("/dev/shm")
# A live batch reads each block within seconds of its making; a pid that looks dead may belong to
# another pid namespace sharing /dev/shm (containers with a shared IPC namespace), so only blocks
# left this long are taken for orphans.
ORPHAN_AGE_S = 600.0
# Not fork (a copy of a parent that may hold torch and threads), nor forkserver: its workers are
# forked by its server and would not start with SIGINT held back as PageWorkers._starting_workers
# holds it.
START_METHODS = ("spawn",)
WORKER_DIED = "the worker process preparing this page died (a crash in an image decoder?)"


@dataclass
class _Shipped:
    """A prepared page on its way to the parent: images are in shared memory `block`."""

    prepared: PreparedPage  # its `images` list is empty in transit
    block: str | None = None
    shapes: list[tuple[int, int]] = field(default_factory=list)


# --- worker side -----------------------------------------------------------------------------

_settings: PrepareSettings | None = None
_prepare: Callable[[object, PrepareSettings], PreparedPage] = prepare_page
_owner: int | None = None  # the pool's process, named in each block (set in each worker)


def _init_worker(settings: PrepareSettings, prepare: Callable, owner: int, log_level: int | None = None) -> None:
    global _settings, _prepare, _owner
    init_worker_logging(log_level)  # warnings (a page's problems) come out as the parent's do
    # Ctrl-C goes to the whole process group; only the parent should act on it (and stop the
    # pool in order), not each worker dying mid-page with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        # Started with SIGINT blocked (PageWorkers._starting_workers): a Ctrl-C pending since is dropped.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    exit_with_parent()  # a SIGKILLed parent leaves no orphans holding pages and shared memory
    import cv2

    # OpenCV's pool defaults to every core; the workers are the parallelism.
    cv2.setNumThreads(1)
    _settings, _prepare, _owner = settings, prepare, owner


def _prepare_and_ship(ref) -> _Shipped:
    prepared = _prepare(ref, _settings)
    try:
        return ship(prepared)
    except OSError as exc:  # /dev/shm full: this page fails, the worker goes on
        return _Shipped(failed(ref, "read", f"cannot pass the page's lines through shared memory ({exc})"))


def ship(prepared: PreparedPage) -> _Shipped:
    """Move a page's line images into one new shared memory block (the caller then owns it),
    named for the pool's process (in a worker; else this one) so that an orphan can be told."""
    images = prepared.images
    prepared.images = []
    total = sum(im.size for im in images)
    if total == 0:
        return _Shipped(prepared)
    name = f"{SHM_PREFIX}{_owner or os.getpid()}_{secrets.token_hex(8)}"
    block = shared_memory.SharedMemory(name=name, create=True, size=total)
    try:
        flat = np.ndarray((total,), np.uint8, buffer=block.buf)
        offset = 0
        for im in images:
            flat[offset : offset + im.size] = im.ravel()
            offset += im.size
        del flat  # no view may outlive close()
    except BaseException:
        block.close()
        block.unlink()
        raise
    block.close()
    return _Shipped(prepared, block.name, [im.shape for im in images])


def loaded_modules() -> list[str]:
    """Top-level packages imported in this process (the tests ask a worker for its own)."""
    return sorted({name.partition(".")[0] for name in sys.modules})


# --- parent side -----------------------------------------------------------------------------

def unlink_orphaned_blocks(shm_dir: Path = SHM_DIR, min_age_s: float = ORPHAN_AGE_S) -> int:
    """Unlink hwr blocks whose owning process no longer runs and that nobody touched for
    `min_age_s` (a batch SIGKILLed with its whole process group, resource tracker included,
    leaves its unread pages in /dev/shm, which is RAM). Returns how many were unlinked. Blocks
    of live processes and of other users stay."""
    if not shm_dir.is_dir():
        return 0
    unlinked, now = 0, time.time()
    for path in shm_dir.glob(SHM_PREFIX + "*"):
        match = _OWNED_BLOCK.fullmatch(path.name)
        if match is None or process_runs(int(match.group(1))):
            continue
        try:
            if now - path.stat().st_mtime < min_age_s:
                continue
            path.unlink()
            unlinked += 1
        except OSError:  # gone meanwhile, or another user's
            pass
    if unlinked:
        log.info("unlinked %d shared memory blocks left in %s by page workers of a killed batch", unlinked, shm_dir)
    return unlinked


def receive(shipped: _Shipped) -> PreparedPage:
    """Copy a shipped page's images out of its block, then unlink the block."""
    prepared = shipped.prepared
    if shipped.block is None:
        return prepared
    block = shared_memory.SharedMemory(name=shipped.block)
    try:
        total = sum(h * w for h, w in shipped.shapes)
        pixels = np.frombuffer(block.buf, np.uint8, count=total).copy()
    finally:
        block.close()
        block.unlink()
    offset = 0
    for h, w in shipped.shapes:
        prepared.images.append(pixels[offset : offset + h * w].reshape(h, w))
        offset += h * w
    return prepared


def discard(shipped: _Shipped) -> None:
    """Unlink a shipped page's block without reading it (closing early, Ctrl-C)."""
    if shipped.block is None:
        return
    try:
        block = shared_memory.SharedMemory(name=shipped.block)
    except FileNotFoundError:
        return
    block.close()
    block.unlink()


class _ProcessesUnusable(Exception):
    """Worker processes cannot run here (PageWorkers._recover): the batch goes on in threads."""


@dataclass
class _InFlight:
    ref: object
    future: Future


def main_file_spawn_cannot_import() -> str | None:
    """The main module's file when a spawned process could not import it again ("<stdin>" of
    `python -`, a file since removed: every page then failed, its worker dead), else None. A
    module run with -m is imported by name, and a main without a file (a notebook) is not
    imported again."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if getattr(main, "__spec__", None) is not None or path is None:
        return None
    return None if os.path.isfile(path) else str(path)


class PageWorkers:
    """A pool of torch-free page worker processes; `prepared(refs)` yields PreparedPages in
    input order. Use as a context manager (or call close()).

    workers: worker processes; 0 prepares pages in this process (no pool, no shared memory).
    processes: False runs the `workers` as threads of this process instead (no shared memory
      either): on a machine with few cores, where a process of its own gains little and the
      page work's OpenCV and decoding release the GIL anyway.
    window: pages in flight or finished-but-unread at most; default 2 per worker.
    prepare: the per-page function (module-level, picklable); tests swap it to inject faults.
    """

    def __init__(self, settings: PrepareSettings, workers: int = 2, processes: bool = True,
                 window: int | None = None, start_method: str = "spawn", prepare: Callable = prepare_page):
        if workers < 0:
            raise ValueError(f"workers must be >= 0, not {workers}")
        if start_method not in START_METHODS:
            raise ValueError(f"start_method must be one of {', '.join(START_METHODS)}, not {start_method!r}")
        self.settings = settings
        self.workers = workers
        unimportable = main_file_spawn_cannot_import() if processes and workers and start_method == "spawn" else None
        if unimportable is not None:
            log.warning("page workers run as threads, not processes: a spawned process imports the main module "
                        "again, and it is no file (%s: `python -` or the like)", unimportable)
            processes = False
        self.processes = processes
        self.window = window or 2 * max(1, workers)
        self.start_method = start_method
        self.prepare = prepare
        self.restarts = 0  # pools replaced after a worker died
        self._pool: ProcessPoolExecutor | None = None
        self._pending: deque[_InFlight] = deque()  # submitted, not yet yielded (in input order)

    def __enter__(self) -> PageWorkers:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _new_pool(self) -> ProcessPoolExecutor:
        unlink_orphaned_blocks()
        return ProcessPoolExecutor(self.workers, mp_context=quiet_workers_context(self.start_method),
                                   initializer=_init_worker,
                                   initargs=(self.settings, self.prepare, os.getpid(), level_for_workers()))

    @property
    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = self._new_pool()
        return self._pool

    @contextlib.contextmanager
    def _starting_workers(self) -> Iterator[ProcessPoolExecutor]:
        """The pool, with a Ctrl-C held back while the block submits to it: whatever the block
        records of its submissions (the pending pages, whose shared memory close() unlinks) is
        recorded before the Ctrl-C is raised. (The workers themselves leave Ctrl-C to this
        process: quiet_workers_context.)"""
        with stops_held_back((signal.SIGINT,)):
            yield self.pool

    def close(self) -> None:
        """Stop the workers (pages not started are dropped, pages being prepared finish), then
        unlink the blocks of pages that finished but were never read."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for item in self._pending:
            if item.future.done() and not item.future.cancelled() and item.future.exception() is None:
                discard(item.future.result())
        self._pending.clear()

    def worker_modules(self) -> list[str]:
        """Top-level packages loaded in a worker process (one of them, if several)."""
        if self.workers == 0 or not self.processes:
            raise ValueError("no worker processes (workers=0 or threads)")
        with self._starting_workers() as pool:
            future = pool.submit(loaded_modules)
        return future.result()

    def prepared(self, refs: Iterable) -> Iterator[PreparedPage]:
        """Each PageRef prepared, in input order."""
        if self.workers == 0 or not self.processes:
            yield from self._in_threads(refs)
            return
        refs = iter(refs)
        pending = self._pending
        try:
            for ref in refs:
                with self._starting_workers() as pool:
                    pending.append(_InFlight(ref, pool.submit(_prepare_and_ship, ref)))
                if len(pending) >= self.window:
                    yield self._next(pending)
            while pending:
                yield self._next(pending)
        except _ProcessesUnusable:
            # The pages not yet handed over are prepared again, in threads, then the rest.
            again = [item.ref for item in pending]
            self.close()
            yield from self._in_threads(itertools.chain(again, refs))
        except BaseException:
            # Stopped early (an exception, Ctrl-C or close() in the consumer): stop the pool
            # and unlink the blocks of pages that finished but were never read.
            self.close()
            raise

    def _next(self, pending: deque[_InFlight]) -> PreparedPage:
        try:
            pending[0].future.result()
        except BrokenProcessPool:
            self._recover(pending)
        except Exception:  # noqa: BLE001 - reported as this page's failure just below
            pass
        item = pending.popleft()
        try:
            return receive(item.future.result())
        except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be unpickled: this page fails
            return failed(item.ref, "read", f"page worker failed ({type(exc).__name__}: {exc})")

    def _in_threads(self, refs: Iterable) -> Iterator[PreparedPage]:
        yield from prefetch_map(functools.partial(self.prepare, settings=self.settings), refs, self.workers,
                                self.window)

    def _recover(self, pending: deque[_InFlight]) -> None:
        """A worker died: every unfinished page of the dead pool runs again, alone in a fresh
        pool, so that a crash can be pinned on the one page that causes it. Workers that died
        because the main script, run again in them, started a batch of its own (no `__main__`
        guard) would die so again: the pages go to threads instead (_ProcessesUnusable)."""
        if workers_reran_main(self._pool):
            log.warning("page workers run as threads, not processes: %s", unguarded_main_note())
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self.processes = False
            raise _ProcessesUnusable
        log.warning("a worker process died; restarting the pool and retrying its unfinished work one item at a time")
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pool = None
        self.restarts += 1
        for item in pending:
            if item.future.done() and not item.future.cancelled() and item.future.exception() is None:
                continue  # finished before the crash: its block is intact
            with self._starting_workers() as pool:
                item.future = pool.submit(_prepare_and_ship, item.ref)
            try:
                item.future.result()
            except BrokenProcessPool:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
                self.restarts += 1
                item.future = Future()
                item.future.set_result(_Shipped(failed(item.ref, "read", WORKER_DIED)))
