"""SIGTERM handled as Ctrl-C is: a job scheduler's stop, `kill` or a container shutdown ends a
long command through the same cleanup (a training's emergency checkpoint and --resume, a
batch's worker processes, shared memory and its --json report), not with the process killed
where it stands.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import threading

log = logging.getLogger(__name__)


@contextlib.contextmanager
def sigterm_as_exit():
    """Within the block, SIGTERM raises SystemExit(143) in the main thread, so `finally`
    clauses and context managers run as they do for KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install signal handlers
        return

    def stop(signum, frame):
        log.error("SIGTERM received: stopping")
        raise SystemExit(128 + signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
