import os
import sys
import threading

import pytest

from hwr.recognition import native_chatter
from hwr.recognition.native_chatter import is_chatter, kenlm_chatter_held_back

# What KenLM writes to the process's stderr as it reads an ARPA file (flashlight-text 0.0.7).
KENLM_LOADING = (b"Loading the LM will be faster if you build a binary file.\n"
                 b"Reading /models/lm/char-6gram.arpa.gz\n"
                 b"----5---10---15---20---25---30---35---40---45---50---55---60---65---70---75---80---85---90---95--100\n"
                 + b"*" * 100 + b"\n")


@pytest.fixture
def alone(monkeypatch):
    """As in a command's process: no other Python thread (threads that earlier tests left
    running do not count)."""
    monkeypatch.setattr(native_chatter, "other_threads_run", lambda: False)


def test_kenlm_loading_messages_are_held_back_and_other_output_is_written_after(capfd, alone):
    with kenlm_chatter_held_back():
        os.write(2, KENLM_LOADING[:60])
        print("WARNING hwr.ui: another thread's log line", file=sys.stderr)
        os.write(2, KENLM_LOADING[60:])
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "WARNING hwr.ui: another thread's log line\nafter\n"


def test_when_the_load_fails_everything_caught_is_written(capfd, alone):
    with pytest.raises(RuntimeError), kenlm_chatter_held_back():
        os.write(2, KENLM_LOADING + b"terminate called: lm.cc:42 bad header\n")
        raise RuntimeError("cannot load")
    err = capfd.readouterr().err
    assert err.encode() == KENLM_LOADING + b"terminate called: lm.cc:42 bad header\n"


def test_python_stderr_written_before_the_hold_comes_out_first(capfd, alone):
    sys.stderr.write("before, buffered")  # no newline: still in Python's buffer
    with kenlm_chatter_held_back():
        os.write(2, b"during\n")
    assert capfd.readouterr().err == "before, bufferedduring\n"


def test_with_other_threads_running_nothing_is_held_back(capfd):
    """A process another thread started meanwhile (the web app's page workers) would keep the
    temp file as its stderr: where other threads run, KenLM's lines are left as they are."""
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert native_chatter.other_threads_run()
        with kenlm_chatter_held_back():
            os.write(2, KENLM_LOADING)
    finally:
        stop.set()
        other.join()
    assert capfd.readouterr().err.encode() == KENLM_LOADING


@pytest.mark.parametrize("line", ["INFO hwr.recognition.decode: Reading the page\n", "* a list item\n",
                                  "Loading the LM\n", "----5---10\n"])
def test_only_kenlm_s_own_lines_are_chatter(line):
    assert not is_chatter(line)
    assert is_chatter("Reading /x.arpa\n") and is_chatter("*" * 100 + "\n")


def test_a_search_worker_s_parent_watcher_does_not_count_as_another_thread():
    """It starts no processes, and it runs before the worker loads its decoder: counted, every
    search worker printed KenLM's chatter again."""
    before = native_chatter.other_threads_run()
    stop = threading.Event()
    watcher = threading.Thread(target=stop.wait, name="hwr-exit-with-parent", daemon=True)
    other = threading.Thread(target=stop.wait)
    watcher.start()
    try:
        assert native_chatter.other_threads_run() == before
        other.start()
        assert native_chatter.other_threads_run()
    finally:
        stop.set()
        watcher.join()
        if other.is_alive() or other.ident:
            other.join()
