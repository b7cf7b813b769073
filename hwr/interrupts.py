"""SIGTERM handled as Ctrl-C is: a job scheduler's stop, `kill` or a container shutdown ends a
long command through the same cleanup (a training's emergency checkpoint and --resume, a
batch's worker processes, shared memory and its --json report), not with the process killed
where it stands.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.context as mp_context
import os
import signal
import sys
import threading
import time
import weakref
from multiprocessing import resource_tracker

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


class StopRequest:
    """A stop that SIGINT (Ctrl-C) or SIGTERM asked for, honoured where the work can stop cleanly."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def raise_if_asked(self, elsewhere: bool = False) -> None:
        """Raise what the signal would have raised at once: KeyboardInterrupt for SIGINT,
        SystemExit(128 + signal) for SIGTERM. `elsewhere`: another process of the same work was
        asked (a Ctrl-C reaches torchrun's processes at different moments), and this one stops
        with it as if by Ctrl-C."""
        if self.signum is not None:
            raise _stop_exception(self.signum)
        if elsewhere:
            raise KeyboardInterrupt()


def _stop_exception(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else SystemExit(128 + signum)


@contextlib.contextmanager
def stop_between_steps(what: str):
    """Within the block, SIGINT and SIGTERM only ask for a stop (the StopRequest yielded), which
    the work honours between its steps (`raise_if_asked`); a second signal stops at once.

    Why: between steps nothing is half done, so the emergency checkpoint holds the step under
    way, and no interrupt unwinds through the loader's half-received batches. (A training
    stopped so still dies in native code now and then, before or after its checkpoint is saved:
    3 of 12 short runs stopped by `timeout -s INT` with loader workers, glibc's "corrupted
    double-linked list" or SIGSEGV, as often as when the interrupt was raised at once; the cause
    is not found. A core dump of one shows glibc finding the heap corrupted while oneDNN's CPU
    LSTM (`mkldnn_rnn_layer`) freed a tensor mid-step, the Python handler not yet run; the same
    runs without a signal, 200 steps, finished cleanly. None of 36 crashed at low priority, 1 of 12
    at normal priority beside another training.)"""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request  # only the main thread may install signal handlers
        return

    def ask(signum, frame):
        name = signal.Signals(signum).name
        if request.signum is not None:
            log.error("%s received again: stopping now", name)
            raise _stop_exception(signum)
        request.signum = signum
        log.error("%s received: stopping after %s (send it again to stop at once)", name, what)

    previous = {signum: signal.signal(signum, ask) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    except (RuntimeError, EOFError, ConnectionError) as exc:
        # A loader worker stopped by the same signal (sent to the whole process group) fails the
        # batch being waited for: the stop asked for is what happened, not that worker's death.
        # Any other error (a full disk while the checkpoint is written) is itself, stop or not.
        if request.signum is not None and _a_loader_worker_died(exc):
            raise _stop_exception(request.signum) from exc
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _a_loader_worker_died(exc: Exception) -> bool:
    """Whether PyTorch's DataLoader says one of its workers is gone: "DataLoader worker (pid(s) N)
    exited unexpectedly", or "... (pid N) is killed by signal: Interrupt.", or the worker died
    while handing over a batch's shared memory: multiprocessing's resource sharer then meets a
    closed connection (EOFError, ConnectionError). That last one, seen once in a full test suite
    on a loaded VM, had made a SIGTERM'd training exit 1 with a traceback after its checkpoint."""
    return isinstance(exc, (EOFError, ConnectionError)) or "DataLoader worker" in str(exc)


@contextlib.contextmanager
def stops_held_back(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)):
    """Within the block, SIGINT and SIGTERM (or `signals`) are held back; when it ends (however
    it ends) each one that arrived is delivered, in order, to the handler that was in place before.

    Why: safetensors builds tensors through calls back into Python, and a KeyboardInterrupt raised
    in one of them comes out as a ValueError ("could not determine the shape of object type
    'torch.storage.UntypedStorage'"; 17 of 300 loads of hwr-en-small interrupted at random). A
    Ctrl-C while a model or a checkpoint loaded said its file was corrupt (`hwr train` stopped
    early exited 2 naming hwr-en-small's weights), which could send a user to delete a good
    checkpoint. Held back for the load (well under a second), the stop is the stop it was."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install signal handlers
        return
    arrived: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: arrived.append(signum))
                for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            # None: a handler not installed from Python, which Python cannot put back; the default is
            # what such a process gets from a signal here anyway.
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        for signum in arrived:  # a second Ctrl-C still means "at once" to stop_between_steps
            signal.raise_signal(signum)


def worker_leaves_ctrl_c_to_its_parent() -> None:
    """In a data-loader worker process: ignore SIGINT. Ctrl-C reaches the whole foreground
    process group; the training decides when to stop (`stop_between_steps`) and then ends its
    workers itself. Forked, a worker would otherwise run the parent's handler too, saying it
    stops when it does not."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def worker_exits_quietly_on_sigterm() -> None:
    """In a data-loader worker process: SIGTERM ends it with exit status 0.

    A stop sent to the whole process group (GNU `timeout`, SLURM, systemd) reaches the workers
    as well as the training. Killed by the signal, a worker makes PyTorch's SIGCHLD handler raise
    "DataLoader worker is killed by signal" in the main process while that is saving its
    emergency checkpoint, and the checkpoint is lost. A worker that exits with status 0 is not
    an error to that handler; the main process stops through its own SIGTERM, and a worker
    stopped alone is still reported by the loader as gone ("exited unexpectedly")."""
    import os

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))


# How often a worker process looks whether its parent is still there, in seconds.
PARENT_CHECK_SECONDS = 1.0


def exit_with_parent(check_seconds: float = PARENT_CHECK_SECONDS) -> threading.Thread:
    """In a worker process: exit as soon as the process that started it is gone.

    A SIGKILLed (or crashed) parent runs no cleanup, and its spawned pool workers would live on,
    each holding a page's memory and keeping multiprocessing's resource tracker (and with it the
    shared memory it would unlink) alive. Orphans are re-parented, so a changed parent id means the
    parent died. (Linux's PR_SET_PDEATHSIG fires when the parent's *thread* that started the worker
    ends, and pools start workers from whichever thread submits first: not usable here.)"""
    import multiprocessing
    import os

    # The pid multiprocessing recorded when it started this process, not getppid() now: a parent
    # killed while this worker was still importing has already handed it to another parent.
    started_by = multiprocessing.parent_process()
    parent = started_by.pid if started_by is not None else os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(check_seconds)
        os._exit(1)

    watcher = threading.Thread(target=watch, name="hwr-exit-with-parent", daemon=True)
    watcher.start()
    return watcher


@contextlib.contextmanager
def sigint_blocked():
    """SIGINT held back in this thread, and in the processes it starts, for the block. A Ctrl-C
    meanwhile is not lost: another thread takes it, or this one when the block ends."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _LeavesCtrlCToParent:
    """A worker process started with SIGINT blocked, which it keeps: a Ctrl-C reaches the whole
    foreground process group, and a worker still importing (a second or more, before any
    initializer could ignore it) died of it with a traceback of its own. Its parent stops it
    instead (`stop_workers_now`)."""

    def start(self) -> None:
        leave_if_rerunning_main()  # where multiprocessing would refuse to start it
        if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks, no resource tracker
            super().start()
            return
        # Starting multiprocessing's resource tracker unblocks SIGINT in the starting thread, and
        # the first process started would start it: started here, before the block.
        resource_tracker.ensure_running()
        # The mask holds SIGINT back in this thread only: with other threads about (the pool's
        # own, torch's) the kernel hands a Ctrl-C to one of them, and Python would raise it here,
        # inside the start, where the child may exist before the process object knows it and no
        # one could stop it. Held back by its handler too, it is raised once the process is
        # started and its context has it (`made`). Not SIGTERM: a forked child would inherit
        # that handler, and terminate() would no longer end it.
        with stops_held_back((signal.SIGINT,)), sigint_blocked():
            super().start()


# Module-level classes: a spawned process is pickled to its child, its class by name.
class QuietSpawnProcess(_LeavesCtrlCToParent, mp_context.SpawnProcess):
    pass


class _QuietContext:
    """Makes its processes quiet, and remembers every one it made (`made`): a Ctrl-C held back
    during a worker's start is raised as the start ends, before the pool records the worker,
    and stop_workers_now must still find it."""

    quiet_process: type

    def __init__(self) -> None:
        super().__init__()
        self.made: weakref.WeakSet = weakref.WeakSet()

    def Process(self, *args, **kwargs):  # noqa: N802 - multiprocessing's name
        process = self.quiet_process(*args, **kwargs)
        self.made.add(process)
        return process


class _QuietSpawnContext(_QuietContext, mp_context.SpawnContext):
    quiet_process = QuietSpawnProcess


_QUIET_CONTEXTS = {"spawn": _QuietSpawnContext}

# Not forkserver: its children take their signal mask from the server process, not from the
# thread that asks for them, so blocking SIGINT around a start would not make them quiet.
if sys.platform != "win32":
    class QuietForkProcess(_LeavesCtrlCToParent, mp_context.ForkProcess):
        pass

    class _QuietForkContext(_QuietContext, mp_context.ForkContext):
        quiet_process = QuietForkProcess

    _QUIET_CONTEXTS["fork"] = _QuietForkContext


def quiet_workers_context(method: str = "spawn") -> mp_context.BaseContext:
    """A multiprocessing context (`method`: spawn or fork) for a worker pool whose processes
    leave Ctrl-C to their parent (`_LeavesCtrlCToParent`); one per pool, as it remembers the
    processes it made (`stop_workers_now`)."""
    if method not in _QUIET_CONTEXTS:
        raise ValueError(f"start method must be one of {', '.join(_QUIET_CONTEXTS)}, not {method!r}")
    return _QUIET_CONTEXTS[method]()


# Exit status of a spawned worker that left because its parent's main script, run again in it,
# started workers of its own (leave_if_rerunning_main); not 1-3, which crashes and tests use.
RERAN_MAIN_EXIT = 113
REAPED_WITHIN_S = 5.0  # a broken pool's workers are ended and reaped well within this


def unguarded_main_note() -> str:
    """Why a pool's workers left (workers_reran_main) and what to do, for each fallback's warning."""
    main = getattr(sys.modules.get("__main__"), "__file__", None) or "the main script"
    return (f"each worker process runs {main} again from the top (spawn imports the main module), and there the "
            "script starts its work again; put that work under `if __name__ == \"__main__\":` to use worker processes")


def leave_if_rerunning_main() -> None:
    """In a spawned worker that is still importing its parent's main script (spawn runs the
    script again, as `__mp_main__`, before the worker's first job), work started now comes from
    a script without an `if __name__ == "__main__":` guard around it: multiprocessing would
    refuse to start the processes it asks for, with a traceback in every worker, and the parent
    would see only its workers die (every page of a batch had failed as "a crash in an image
    decoder?"). Say so, and leave at once with RERAN_MAIN_EXIT, which the parent's pool reads
    (`workers_reran_main`) to go on without worker processes."""
    if not getattr(multiprocessing.current_process(), "_inheriting", False):
        return
    main = getattr(sys.modules.get("__mp_main__"), "__file__", None) or "the main script"
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"hwr: this worker process runs {main} again as it starts, and the script starts "
                         "workers of its own there (no `if __name__ == \"__main__\":` guard); leaving\n")
        sys.stderr.flush()
    os._exit(RERAN_MAIN_EXIT)


def workers_reran_main(pool) -> bool:
    """Whether a worker of `pool` (a ProcessPoolExecutor on a quiet context) left because the
    main script, run again in it, started workers there (leave_if_rerunning_main). Ask once the
    pool has broken, before it is shut down (the pool holds its processes until then)."""
    made = getattr(getattr(pool, "_mp_context", None), "made", None)
    processes = [process for process in (ref() for ref in (made.data.copy() if made is not None else ()))
                 if process is not None]
    # The broken pool ends its other workers meanwhile, and its own thread may be reaping the one
    # that left: its exit status shows once that is done (a poll racing it reads none).
    deadline = time.monotonic() + REAPED_WITHIN_S
    for process in processes:
        with contextlib.suppress(ValueError, AssertionError):  # closed, or not this process's child
            process.join(max(0.0, deadline - time.monotonic()))
        while process.exitcode is None and time.monotonic() < deadline:
            time.sleep(0.01)
    return any(process.exitcode == RERAN_MAIN_EXIT for process in processes)



def stop_workers_now(pool) -> None:
    """A ProcessPoolExecutor stopped early (Ctrl-C, a failed write, a caller done): the jobs not
    started are dropped and the workers ended now, not after the jobs they are on. Its workers
    ignore Ctrl-C (`quiet_workers_context`), and a shutdown that waited would run on for the
    jobs they hold: seconds, dozens of pages or fonts, after a Ctrl-C."""
    # Taken before the shutdown, which forgets them; with those its quiet context made (a Ctrl-C
    # raised as a worker's start ended left it out of the pool's own list; Python 3.14's
    # terminate_workers() ends only that list). The weak set's own set is copied at once: another
    # thread may add to it meanwhile.
    made = getattr(getattr(pool, "_mp_context", None), "made", None)
    workers = {*(getattr(pool, "_processes", None) or {}).values(),
               *(process for process in (ref() for ref in (made.data.copy() if made is not None else ()))
                 if process is not None)}
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        try:
            if process.is_alive():
                process.terminate()
        except ValueError:  # closed by its owner: nothing left to end
            pass
    # The pool's own thread sees its workers gone and closes its wake-up pipe. An exit meanwhile
    # (the usual end of a Ctrl-C) wrote to that pipe as it closed: "Exception ignored ... Bad file
    # descriptor" with a traceback (1 exit in 30; CPython 3.11's wake-up has no lock).
    if manager is not None and manager is not threading.current_thread():
        manager.join(timeout=5)
