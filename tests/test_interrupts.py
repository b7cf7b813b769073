"""hwr.interrupts: SIGTERM as an exit, and worker processes that do not outlive their parent."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

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


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's reaping is left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_exits_when_its_parent_is_killed_outright(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
        time.sleep(0.5)
        assert _running(worker)
        parent.send_signal(signal.SIGKILL)  # no cleanup runs in the parent
        parent.wait()
        deadline = time.monotonic() + 20
        while _running(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _running(worker)
    finally:
        parent.kill()
        if "worker" in locals() and _running(worker):
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
