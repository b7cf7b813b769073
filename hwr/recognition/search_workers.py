"""The beam search in worker processes, beside the network.

flashlight's search (BeamDecoder) holds Python's lock while it runs, so threads cannot share
it out, and one process searches 250-400 lines/s. The network reads thousands of lines a
second on a GPU: with the search in the reading process, `hwr transcribe` on a GPU would read
at the search's speed. `SearchWorkers` gives each of N processes its own copy of the decoder
(built from `BeamDecoder.spec`, so the same LM, lexicon and settings), sends them the network's
log-probabilities batch by batch and hands the recognitions back in order, while the reading
process goes on with the next batches. The text is the same as the in-process search's: the
same code reads the same numbers.

- A large batch is cut into chunks of at least MIN_CHUNK_LINES lines, so several workers share
  it; each chunk carries only its own lines' frames.
- A worker that dies (a crash inside the search) breaks the pool: the batches it had, and all
  later ones, are searched in the reading process instead, with one warning; nothing is lost.
- Workers ignore Ctrl-C (the reading process shuts them down) and exit when the process that
  started them is gone (hwr.interrupts.exit_with_parent).
- Workers are spawned, not forked, when first needed; each imports torch and torchaudio (the
  decoder's home) on one thread: a second or two, a few hundred MB.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

import numpy as np

from hwr.interrupts import quiet_workers_context, unguarded_main_note, workers_reran_main
from hwr.records import Recognition

if TYPE_CHECKING:
    import torch

# torch is imported inside the functions: a worker unpickles this module before its initializer
# runs, and should ignore Ctrl-C before the seconds torch's import takes (the parent has torch).

log = logging.getLogger("hwr.recognition.search_workers")

# A chunk smaller than this costs more in hand-over than the search it moves.
MIN_CHUNK_LINES = 8
# Most workers the auto setting starts (hwr.recognition.model.resolve_search_workers).
MAX_AUTO_WORKERS = 8


class SearchWorkers:
    """`processes` worker processes, each with a copy of `decoder` (a BeamDecoder)."""

    def __init__(self, decoder, processes: int, start_method: str = "spawn"):
        if processes < 1:
            raise ValueError(f"search workers must be at least 1, got {processes}")
        self.decoder = decoder
        self.processes = processes
        self.start_method = start_method
        self._spec = decoder.spec()
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()  # the UI reads from several threads with one Recognizer
        self.broken = False

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.processes,
                                                 mp_context=quiet_workers_context(self.start_method),
                                                 initializer=_start_worker, initargs=(self._spec,))
            return self._pool

    def submit(self, log_probs: torch.Tensor, lengths: torch.Tensor,
               frame_width: float = 1.0) -> Callable[[], list[Recognition]]:
        """Start the search of one batch: log_probs (T, N, C), lengths (N,). Returns a function
        that waits for and returns the batch's recognitions, in line order."""
        import torch

        if self.broken or log_probs.shape[1] == 0:
            result = self.decoder.decode(log_probs, lengths, frame_width=frame_width)
            return lambda: result
        emissions = log_probs.detach().float().cpu().transpose(0, 1).numpy()  # (N, T, C), a view
        lens = lengths.detach().cpu().to(torch.int64).numpy()
        n = emissions.shape[0]
        chunks = max(1, min(self.processes, n // MIN_CHUNK_LINES))
        bounds = np.linspace(0, n, chunks + 1).round().astype(int)
        parts = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            frames = max(1, int(lens[a:b].max()))
            # Contiguous (T, n, C) of the chunk's frames only: what BeamDecoder.decode takes.
            part = (np.ascontiguousarray(emissions[a:b, :frames].transpose(1, 0, 2)), lens[a:b].copy())
            parts.append((part, self._submit_part(part, frame_width)))
        return lambda: [rec for part, future in parts for rec in self._result(part, future, frame_width)]

    def _submit_part(self, part, frame_width: float) -> Future | None:
        try:
            return self._get_pool().submit(_search, part[0], part[1], frame_width)
        except (BrokenProcessPool, RuntimeError) as exc:  # RuntimeError: submit after a break
            self._break(exc)
            return None

    def _result(self, part, future: Future | None, frame_width: float) -> list[Recognition]:
        if future is not None:
            try:
                return future.result()
            except BrokenProcessPool as exc:
                self._break(exc)
            except CancelledError:
                pass  # closed while this batch waited (a UI cache dropping the model): searched here
        import torch

        # Searched here instead: the same decoder, the same numbers.
        log_probs, lengths = part
        return self.decoder.decode(torch.from_numpy(log_probs), torch.from_numpy(lengths), frame_width=frame_width)

    def _break(self, exc: BaseException) -> None:
        if not self.broken:
            if workers_reran_main(self._pool):
                log.warning("searching in this process: %s", unguarded_main_note())
            else:
                log.warning("a search worker process died (%s); searching in this process from now on", exc)
        self.broken = True
        self.close()

    def close(self) -> None:
        """Stop the workers (they are started again if another batch comes, unless broken)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


# --- in the worker process --------------------------------------------------------------------
_decoder = None


def _start_worker(spec: dict) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the reading process's to handle
    import torch

    from hwr.interrupts import exit_with_parent
    from hwr.recognition.decode import BeamDecoder

    exit_with_parent()
    # One search per process; torch's own thread pool would only contend with the others.
    torch.set_num_threads(1)
    global _decoder
    _decoder = BeamDecoder.from_spec(spec)
    log.debug("search worker %d ready", os.getpid())


def _search(log_probs: np.ndarray, lengths: np.ndarray, frame_width: float) -> list[Recognition]:
    import torch

    return _decoder.decode(torch.from_numpy(log_probs), torch.from_numpy(lengths), frame_width=frame_width)
