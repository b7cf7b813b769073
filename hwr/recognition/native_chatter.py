"""KenLM's chatter on stderr, held back while a beam decoder loads its language model.

KenLM (inside flashlight-text) writes to the process's stderr, below Python, each time it reads
an ARPA file: a hint to build a binary file (a KenLM tool that is not on PyPI), the file's path
and a 100-character progress bar. Every `hwr transcribe` and `hwr eval` printed those four lines
among its own messages, and a search worker printed them again. They are caught at the file
descriptor while the model loads; whatever else reached stderr meanwhile is written out after
it, and everything is when the load fails.

Torch-free."""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

_CHATTER = re.compile(
    r"Loading the LM will be faster if you build a binary file\.\n"
    r"|Reading .*\n"
    r"|-*5---10---15---20-.*-100\n"
    r"|\*+\n")
# The stderr descriptor is the process's: two loads at once would each take back what the other caught.
_HELD = threading.Lock()


def is_chatter(line: str) -> bool:
    """Whether a line (with its newline) is one of KenLM's loading messages."""
    return _CHATTER.fullmatch(line) is not None


@contextlib.contextmanager
def kenlm_chatter_held_back() -> Iterator[None]:
    """While the block runs, stderr (descriptor 2) goes to a temp file; after it, what was caught
    is written to stderr, less KenLM's loading messages when the block succeeded.

    Only in a process with one Python thread (a command loading its model, a search worker):
    a process started by another thread meanwhile (the web app's page workers) would keep the
    temp file as its stderr for good, so where other threads run, KenLM's lines are left as
    they are."""
    if other_threads_run():
        yield
        return
    with _HELD:
        try:
            _flush_python_stderr()
            saved = os.dup(2)
        except OSError:  # no stderr to redirect (a process started without one)
            yield
            return
        try:
            with tempfile.TemporaryFile() as caught:
                succeeded = False
                try:
                    os.dup2(caught.fileno(), 2)
                    yield
                    succeeded = True
                finally:
                    # Back first: a second Ctrl-C below must not leave stderr in the temp file.
                    # (Python's own stderr, if it holds text of the block still, writes it out now.)
                    os.dup2(saved, 2)
                    _flush_python_stderr()
                    caught.seek(0)
                    lines = caught.read().decode("utf-8", "replace").splitlines(keepends=True)
                    kept = "".join(line for line in lines if not (succeeded and is_chatter(line)))
                    if kept:
                        _write_all(2, kept.encode("utf-8"))
        finally:
            os.close(saved)


# Threads that start no processes: the watcher that ends a search worker whose parent is gone
# (hwr.interrupts.exit_with_parent) runs before the worker loads its decoder.
QUIET_THREADS = frozenset({"hwr-exit-with-parent"})


def other_threads_run() -> bool:
    """Whether a Python thread besides this one, and besides QUIET_THREADS, runs."""
    me = threading.current_thread()
    return any(thread is not me and thread.name not in QUIET_THREADS for thread in threading.enumerate())


def _flush_python_stderr() -> None:
    """Python's buffered stderr written out first: it goes where the descriptor points now."""
    for stream in {id(s): s for s in (sys.stderr, sys.__stderr__) if s is not None}.values():
        with contextlib.suppress(OSError, ValueError, AttributeError):  # closed, or no flush: nothing to order
            stream.flush()


def _write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):  # stderr gone (a closed pipe): the messages had nowhere to go anyway
        while data:
            data = data[os.write(fd, data):]
