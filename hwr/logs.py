"""Log lines on stderr as hwr's commands write them, in the main process and in its spawned
worker processes (which start with logging unconfigured: a worker's warning came out bare,
without its level and logger, and with a file name's control characters sent to the terminal).

Torch-free: the page workers import it."""
from __future__ import annotations

import logging

from hwr.fileio import escape_controls

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


class TerminalSafeFormatter(logging.Formatter):
    """Log lines name files, and a file name's control characters are written, not sent to the terminal."""

    def format(self, record: logging.LogRecord) -> str:
        return escape_controls(super().format(record))


def log_to_stderr(level: int) -> None:
    """The commands' logging: `level` and up on stderr, terminal-safe."""
    handler = logging.StreamHandler()
    handler.setFormatter(TerminalSafeFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])  # a no-op where logging is set up already


def level_for_workers() -> int | None:
    """The level worker processes should log at: this process's, when it logs through a handler
    of its own (a command); None for a library caller who set up no logging (theirs to choose)."""
    root = logging.getLogger()
    return root.level if root.handlers else None


def init_worker_logging(level: int | None) -> None:
    """In a spawned worker: log as the parent does (`level_for_workers`), or leave logging alone."""
    if level is not None:
        log_to_stderr(level)
