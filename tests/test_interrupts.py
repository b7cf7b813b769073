"""hwr.interrupts: SIGTERM as an exit, and worker processes that do not outlive their parent."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers import process_running

# A parent that starts one spawned worker watching it (as the page workers of `hwr transcribe
# --processes` do), prints the worker's pid and waits to be killed.
_PARENT = textwrap.dedent("""
    import multiprocessing, sys, time
    from hwr.interrupts import exit_with_parent

    def work():
        exit_with_parent(check_seconds=0.1)
        time.sleep(600)

    if __name__ == "__main__":
        worker = multiprocessing.get_context("spawn").Process(target=work)
        worker.start()
        print(worker.pid, flush=True)
        time.sleep(600)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_exits_when_its_parent_is_killed_outright(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
        time.sleep(0.5)
        assert process_running(worker)
        parent.send_signal(signal.SIGKILL)  # no cleanup runs in the parent
        parent.wait()
        deadline = time.monotonic() + 20
        while process_running(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not process_running(worker)
    finally:
        parent.kill()
        if "worker" in locals() and process_running(worker):
            os.kill(worker, signal.SIGKILL)


def test_a_signal_asks_for_a_stop_between_steps_and_a_second_one_stops_at_once():
    from hwr.interrupts import stop_between_steps

    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    with pytest.raises(KeyboardInterrupt):
        with stop_between_steps("this step") as request:
            signal.raise_signal(signal.SIGINT)
            assert request.signum == signal.SIGINT  # nothing raised mid-step: the step finishes
            request.raise_if_asked()
            pytest.fail("the stop asked for was not honoured")
    with pytest.raises(SystemExit) as stopped:
        with stop_between_steps("this step"):
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)
            pytest.fail("a second signal did not stop at once")
    assert stopped.value.code == 128 + signal.SIGTERM
    # A loader worker stopped by the same signal fails the batch waited for: the stop is reported.
    with pytest.raises(KeyboardInterrupt):
        with stop_between_steps("this step"):
            signal.raise_signal(signal.SIGINT)
            raise RuntimeError("DataLoader worker (pid(s) 123) exited unexpectedly")
    for died_handing_over in (EOFError(), ConnectionResetError(104, "Connection reset by peer")):
        with pytest.raises(KeyboardInterrupt):
            with stop_between_steps("this step"):
                signal.raise_signal(signal.SIGINT)
                raise died_handing_over
        with pytest.raises(type(died_handing_over)):  # without a stop asked for, it is itself
            with stop_between_steps("this step"):
                raise died_handing_over
    with pytest.raises(RuntimeError, match="a bug"):  # without a stop asked for, an error is itself
        with stop_between_steps("this step"):
            raise RuntimeError("a bug")
    # With one asked for, any other error is itself too: a full disk must not read "interrupted".
    for error in (OSError(28, "No space left on device"), RuntimeError("CUDA out of memory")):
        with pytest.raises(type(error), match=str(error.args[-1])):
            with stop_between_steps("this step"):
                signal.raise_signal(signal.SIGINT)
                raise error
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_stops_held_back_arrive_when_the_block_ends():
    from hwr.interrupts import stop_between_steps, stops_held_back

    before = signal.getsignal(signal.SIGINT)
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt):
        with stops_held_back():
            signal.raise_signal(signal.SIGINT)
            reached_the_end = True  # nothing raised where native code could have swallowed it
    assert reached_the_end and signal.getsignal(signal.SIGINT) is before
    # An error of the block's own still ends in the stop, which names it as its context.
    with pytest.raises(KeyboardInterrupt) as stopped:
        with stops_held_back():
            signal.raise_signal(signal.SIGINT)
            raise ValueError("could not determine the shape of object type 'torch.storage.UntypedStorage'")
    assert isinstance(stopped.value.__context__, ValueError)
    # Inside a stop between steps, the held-back signals go to it: one asks, a second stops at once.
    with stop_between_steps("this step") as request:
        with stops_held_back():
            signal.raise_signal(signal.SIGTERM)
        assert request.signum == signal.SIGTERM
    with pytest.raises(KeyboardInterrupt):
        with stop_between_steps("this step"):
            with stops_held_back():
                signal.raise_signal(signal.SIGINT)
                signal.raise_signal(signal.SIGINT)
            pytest.fail("the second Ctrl-C held back did not stop at once")
    with stops_held_back():  # without a signal nothing happens
        pass
    assert signal.getsignal(signal.SIGINT) is before


# A fresh interpreter (the first worker is the one that starts multiprocessing's resource
# tracker, which unblocks SIGINT on its way). The initializer's sleep stands for a worker's
# imports: a Ctrl-C then had killed each worker with a traceback of its own.
_QUIET_POOL = textwrap.dedent("""
    import os, signal, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing.connection import wait
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a background job inherits it ignored
    from hwr.interrupts import quiet_workers_context, stop_workers_now

    if __name__ == "__main__":
        method = sys.argv[1]
        pool = ProcessPoolExecutor(2, mp_context=quiet_workers_context(method), initializer=time.sleep,
                                   initargs=(1.0,))
        futures = [pool.submit(os.getpid) for _ in range(2)]
        workers = list(pool._processes.values())
        for worker in workers:
            os.kill(worker.pid, signal.SIGINT)
        [future.result(timeout=60) for future in futures]
        time.sleep(1.5)  # both done with their initializer
        print("alive", len(workers), all(worker.is_alive() for worker in workers), flush=True)
        print("parent blocks SIGINT", signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set()), flush=True)
        long_job = pool.submit(time.sleep, 600)
        time.sleep(0.5)
        start = time.monotonic()
        stop_workers_now(pool)  # not after the job it is on
        # Each worker's sentinel, not join() and is_alive(): the pool's thread may reap a worker
        # first, and a join that loses that race returns at once with the worker still "alive".
        ended = wait([worker.sentinel for worker in workers], timeout=30)
        while len(ended) < len(workers) and time.monotonic() - start < 30:
            ended = wait([worker.sentinel for worker in workers], timeout=30 - (time.monotonic() - start))
        print("stopped", len(ended) == len(workers), time.monotonic() - start < 10, flush=True)
""")


def _run_script(folder: Path, text: str, argument: str) -> subprocess.CompletedProcess:
    """`text` run as a script of its own (a fresh interpreter: its own resource tracker and
    signal handlers) from the repository root, with one argument."""
    script = folder / "pool.py"
    script.write_text(text, encoding="utf-8")
    return subprocess.run([sys.executable, str(script), argument], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_quiet_workers_leave_ctrl_c_to_their_parent_which_stops_them_at_once(tmp_path, method):
    run = _run_script(tmp_path, _QUIET_POOL, method)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "KeyboardInterrupt" not in run.stderr, run.stderr
    assert run.stdout.split("\n")[:3] == ["alive 2 True", "parent blocks SIGINT False", "stopped True True"]


# A Ctrl-C that arrives while a worker starts is held back, and raised as the start ends: before
# the pool has recorded the worker. stop_workers_now must still end it (the orphan had printed a
# traceback of its own, or kept the interpreter from exiting).
_CTRL_C_AS_A_WORKER_STARTS = textwrap.dedent("""
    import multiprocessing, multiprocessing.context as mpc, os, signal, sys, threading, time
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing.connection import wait
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from hwr.interrupts import quiet_workers_context, stop_workers_now

    start = mpc.SpawnProcess._Popen

    def ctrl_c_meanwhile(process):
        os.kill(os.getpid(), signal.SIGINT)
        return start(process)

    if __name__ == "__main__":
        if sys.argv[1] == "threads":  # another thread about: the kernel may hand it the Ctrl-C
            threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        mpc.SpawnProcess._Popen = staticmethod(ctrl_c_meanwhile)
        pool = ProcessPoolExecutor(2, mp_context=quiet_workers_context("spawn"))
        try:
            pool.submit(time.sleep, 0)
        except KeyboardInterrupt:
            print("interrupted, recorded", len(pool._processes), "started", len(multiprocessing.active_children()),
                  flush=True)
            children = multiprocessing.active_children()
            stop_workers_now(pool)
            sentinels = [child.sentinel for child in children]
            deadline = time.monotonic() + 20
            while len(wait(sentinels, timeout=0)) < len(sentinels) and time.monotonic() < deadline:
                wait(sentinels, timeout=1)
            print("left", len(sentinels) - len(wait(sentinels, timeout=0)), flush=True)
""")


@pytest.mark.parametrize("threads", ["alone", "threads"])
def test_a_worker_started_as_a_ctrl_c_arrives_is_still_stopped(tmp_path, threads):
    run = _run_script(tmp_path, _CTRL_C_AS_A_WORKER_STARTS, threads)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:2] == ["interrupted, recorded 0 started 1", "left 0"], run.stdout + run.stderr
    assert "Traceback" not in run.stderr, run.stderr


def test_an_unknown_start_method_is_refused():
    from hwr.interrupts import quiet_workers_context

    with pytest.raises(ValueError, match="start method must be one of"):
        quiet_workers_context("threads")
