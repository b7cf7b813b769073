"""hwr.synth.parallel: a synthesizer's lines rendered on several processes are the lines
rendered one by one, in order."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hwr.synth import parallel
from hwr.synth.config import hard_validation_config
from hwr.synth.synthesizer import LineSynthesizer

from helpers import process_running
from unguarded_scripts import run_unguarded


def _same(a, b) -> bool:
    return a.id == b.id and a.text == b.text and a.meta == b.meta and np.array_equal(a.image, b.image)


def test_lines_rendered_by_processes_are_the_lines_rendered_here_in_order(monkeypatch):
    synth = LineSynthesizer(hard_validation_config(), split="val", seed=7)
    monkeypatch.setattr(parallel, "MIN_LINES_TO_SHARE", 1)
    monkeypatch.setattr(parallel, "LINES_PER_JOB", 2)  # 3 jobs for 2 workers: one worker renders two
    shared = parallel.render_lines(synth, 5, processes=2)
    here = [synth.sample(index) for index in range(5)]
    assert len(shared) == 5 and all(_same(a, b) for a, b in zip(shared, here))
    assert [line.meta["index"] for line in shared] == list(range(5))


def test_few_lines_or_one_process_render_here(monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("no pool for this")

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", no_pool)
    synth = LineSynthesizer(split="val", seed=7)
    assert [line.meta["index"] for line in parallel.render_lines(synth, 3, processes=4)] == [0, 1, 2]
    monkeypatch.setattr(parallel, "MIN_LINES_TO_SHARE", 1)
    assert len(parallel.render_lines(synth, 3, processes=1)) == 3
    assert parallel.render_lines(synth, 0, processes=4) == []


def test_the_default_is_the_cores_this_process_may_use_at_most_eight(monkeypatch):
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(3)), raising=False)
    assert parallel.default_processes() == 3
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert parallel.default_processes() == parallel.MAX_DEFAULT_PROCESSES == 8
    assert parallel.default_processes(2) == 2  # a command's --processes, when given


def test_rendering_stopped_early_ends_the_workers_and_takes_no_more_indices(monkeypatch):
    import multiprocessing

    from slow_synth import SlowAfterTheFirstLine

    monkeypatch.setattr(parallel, "MIN_LINES_TO_SHARE", 1)
    monkeypatch.setattr(parallel, "LINES_PER_JOB", 1)
    synth = SlowAfterTheFirstLine(seed=2)
    taken = []

    def indices():
        for index in range(400):
            taken.append(index)
            yield index

    others = set(multiprocessing.active_children())  # another test's workers, if any
    drawn = parallel.rendered(synth, indices(), 400, processes=2)
    index, first = next(drawn)
    assert index == 0 and first.id == synth.sample_id(0)
    assert len(taken) <= 2 * parallel.JOBS_AHEAD_PER_PROCESS + 1  # not all 400 taken up front
    drawn.close()  # as a caller stopped by Ctrl-C or a failed write leaves it
    deadline = time.monotonic() + 5
    while set(multiprocessing.active_children()) - others and time.monotonic() < deadline:
        time.sleep(0.1)
    # Ended, not left rendering the lines they were on (a minute each here) while the command waits.
    assert not set(multiprocessing.active_children()) - others


def _children(pid: int) -> list[int]:
    """The spawned worker processes of `pid` (multiprocessing's resource tracker aside)."""
    from pathlib import Path

    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_the_render_processes_of_hwr_synth_end_with_it(tmp_path, stop):
    """`timeout 60 hwr synth ...` (SIGTERM) and a kill had left its render processes rendering
    on as orphans, each at a full core (a probe helper)."""
    command = [sys.executable, "-m", "hwr", "synth", "--out", str(tmp_path / "set"), "--n", "4000",
               "--processes", "2", "--no-progress"]
    export = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    workers = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline and export.poll() is None:
            time.sleep(0.2)
            workers = _children(export.pid)
        assert len(workers) == 2, export.stderr.read() if export.poll() is not None else "no workers"
        export.send_signal(stop)
        assert export.wait(timeout=60) == (128 + signal.SIGTERM if stop == signal.SIGTERM else -signal.SIGKILL)
        if stop == signal.SIGTERM:  # said as for Ctrl-C: the export can be finished
            assert "run the same command again to finish it" in export.stderr.read()
        deadline = time.monotonic() + 30
        while any(map(process_running, workers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(process_running, workers))
    finally:
        export.kill()
        for pid in filter(process_running, workers):
            os.kill(pid, signal.SIGKILL)


def test_a_script_without_a_main_guard_gets_its_lines_rendered_here_in_order(tmp_path):
    """Each render process ran the main script again and started rendering there, which
    multiprocessing refuses: the workers died and the export stopped with BrokenProcessPool."""
    last, err = run_unguarded(tmp_path, """
        from hwr.synth import parallel
        from hwr.synth.synthesizer import LineSynthesizer
        parallel.MIN_LINES_TO_SHARE, parallel.LINES_PER_JOB = 1, 2
        synth = LineSynthesizer(split="val", seed=7)
        lines = parallel.render_lines(synth, 5, processes=2)
        here = [synth.sample(i) for i in range(5)]
        print([line.meta["index"] for line in lines],
              all(a.text == b.text and (a.image == b.image).all() for a, b in zip(lines, here)))
    """)
    assert last == "[0, 1, 2, 3, 4] True"
    assert "rendering in this process" in err and "__main__" in err


def test_a_pool_made_but_not_started_as_the_main_script_is_imported_again_keeps_the_workers(tmp_path):
    """A guarded script whose imports only make a pool (no process started) is no unguarded
    script: its worker processes must stay (a review found them given up for one)."""
    (tmp_path / "helper.py").write_text(
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from hwr.interrupts import quiet_workers_context\n"
        "POOL = ProcessPoolExecutor(1, mp_context=quiet_workers_context('spawn'))\n")
    script = tmp_path / "guarded.py"
    script.write_text(
        "import helper\n"
        "from hwr.synth import parallel\n"
        "from hwr.synth.synthesizer import LineSynthesizer\n"
        "if __name__ == '__main__':\n"
        "    parallel.MIN_LINES_TO_SHARE, parallel.LINES_PER_JOB = 1, 2\n"
        "    lines = parallel.render_lines(LineSynthesizer(split='val', seed=7), 5, processes=2)\n"
        "    print([line.meta['index'] for line in lines])\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[0, 1, 2, 3, 4]"
    assert "in this process" not in run.stderr and "leaving" not in run.stderr, run.stderr
