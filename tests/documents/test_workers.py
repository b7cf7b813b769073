"""Page worker processes (hwr.documents.workers) and torch-free page preparation
(hwr.documents.prepare): no torch in the workers, results through shared memory that is
always unlinked, failures as data, a crashing worker replaced, Ctrl-C handled by the parent.

This module is imported by the worker processes too (they unpickle `crash_on_poison` from
it), so it imports nothing that pulls in torch at module level. Not tested here: recognition
(tests/documents/test_pipeline_workers.py) and speed (bench/bench_page_workers.py).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from multiprocessing import shared_memory
from pathlib import Path

import cv2
import numpy as np
import pytest

from hwr.documents.pages import PageRef, page_refs
from hwr.documents.prepare import (
    WHOLE_READING_ID,
    WHOLE_READING_MAX_HEIGHT,
    PreparedPage,
    PrepareSettings,
    add_whole_reading,
    ink_from_uint8,
    ink_to_uint8,
    layout_page,
    line_inputs,
    prepare_page,
)
from hwr.documents.workers import (
    _OWNED_BLOCK,
    ORPHAN_AGE_S,
    SHM_PREFIX,
    WORKER_DIED,
    PageWorkers,
    unlink_orphaned_blocks,
)
from hwr.recognition.imaging import NormalizeConfig

from unguarded_scripts import run_unguarded

SHM = Path("/dev/shm")
pytestmark = pytest.mark.skipif(not SHM.is_dir(), reason="needs /dev/shm to look for leaked blocks")


def crash_on_poison(ref: PageRef, settings: PrepareSettings) -> PreparedPage:
    """A prepare function whose worker dies outright (no exception, no cleanup) on 'poison' pages."""
    if "poison" in ref.page_id:
        os._exit(3)
    return prepare_page(ref, settings)


def hwr_blocks() -> set[str]:
    """This test's blocks: those of this process, its children, and dead owners. Orphans of an
    earlier killed run would vanish when a test's pool starts, failing its "nothing leaked"
    comparison: swept before each look. Another xdist worker's batch makes and unlinks blocks
    of its own meanwhile: left out (they had failed a comparison now and then)."""
    unlink_orphaned_blocks(SHM)
    return {name for name in blocks_now() if not _owned_by_another_live_tree(name)}


def _owned_by_another_live_tree(name: str) -> bool:
    named = _OWNED_BLOCK.fullmatch(name)
    if named is None:  # not a name hwr gives: no owner to tell by
        return False
    pid = owner = int(named.group(1))
    while pid > 1:
        if pid == os.getpid():
            return False
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):  # gone: a dead owner's blocks are this test's to see
            return pid != owner
    return True


def blocks_now() -> set[str]:
    return {p.name for p in SHM.glob(SHM_PREFIX + "*")}


@pytest.fixture(scope="module")
def page_images():
    from hwr.synth import LineSynthesizer

    synth = LineSynthesizer(split="val", seed=3)
    return [synth.sample_page(i, n_lines=n).image for i, n in enumerate((3, 4, 3))]


@pytest.fixture
def folder(tmp_path, page_images):
    for i, image in enumerate(page_images):
        cv2.imwrite(str(tmp_path / f"page{i}.png"), image)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    return tmp_path


def settings(mode: str = "page") -> PrepareSettings:
    return PrepareSettings(NormalizeConfig(line_height=32), mode=mode)


def as_tuples(pages: list[PreparedPage]):
    return [(p.page_id, p.failure is not None, [im.tobytes() for im in p.images]) for p in pages]


def test_prepared_lines_are_uint8_at_the_network_height_and_match_the_float_path(page_images, tmp_path):
    image = page_images[1]
    config = NormalizeConfig(line_height=32)
    page, is_line = layout_page(image, "page")
    floats, _ = line_inputs(image, page, is_line, config)
    cv2.imwrite(str(tmp_path / "p.png"), image)
    prepared = prepare_page(PageRef("p", tmp_path / "p.png"), PrepareSettings(config, mode="page"))
    assert prepared.failure is None and len(prepared.images) == len(page.lines) == len(floats) >= 3
    for u8, ink in zip(prepared.images, floats):
        assert u8.dtype == np.uint8 and u8.shape == ink.shape and u8.shape[0] == 32
        assert np.abs(ink_from_uint8(u8) - ink).max() <= 0.5 / 255 + 1e-6
    assert prepared.seconds > 0


def test_auto_mode_prepares_a_segmented_image_also_whole_as_its_last_line(page_images, tmp_path):
    config = NormalizeConfig(line_height=32)
    cv2.imwrite(str(tmp_path / "p.png"), page_images[1])
    paged = prepare_page(PageRef("p", tmp_path / "p.png"), PrepareSettings(config, mode="page"))
    auto = prepare_page(PageRef("p", tmp_path / "p.png"), PrepareSettings(config, mode="auto"))
    assert not paged.read_whole_too and auto.read_whole_too and not auto.is_line
    assert len(auto.images) == len(auto.page.lines) == len(auto.geometries) == len(paged.images) + 1
    height, width = page_images[1].shape
    assert auto.page.lines[-1].id == WHOLE_READING_ID and auto.page.lines[-1].bbox == (0, 0, width, height)
    assert [im.tobytes() for im in auto.images[:-1]] == [im.tobytes() for im in paged.images]
    # A page of a document is never read whole, in any mode.
    document = prepare_page(PageRef("p", tmp_path / "p.png", count=2), PrepareSettings(config))  # a TIFF's page
    assert not document.read_whole_too and len(document.images) == len(paged.images)


def test_a_tall_image_is_read_whole_from_a_reduced_copy_whose_geometry_maps_back(page_images):
    """Normalising a big page whole would cost as much as segmenting it: an image taller than
    WHOLE_READING_MAX_HEIGHT is reduced first. A line that tall reads the same, and the
    reading's geometry still maps x back to the image's own pixels."""
    from helpers import render_line  # not at module level: it imports torch, and worker processes import this module

    config = NormalizeConfig(line_height=32)
    line = render_line("a line written large", size=28)
    tall = cv2.resize(line, None, fx=16, fy=16, interpolation=cv2.INTER_CUBIC)
    assert tall.shape[0] > WHOLE_READING_MAX_HEIGHT
    page, _ = layout_page(page_images[1], "page")
    arrays, geometries = [], []
    add_whole_reading(tall, page, arrays, geometries, config)
    (full,), (full_geometry,) = line_inputs(tall, layout_page(tall, "line")[0], True, config)
    assert arrays[0].shape[0] == 32 and abs(arrays[0].shape[1] - full.shape[1]) <= 1
    assert np.abs(arrays[0][:, : full.shape[1]].mean() - full.mean()) < 0.02
    network_pixel = 1 / full_geometry.x_scale  # source pixels per pixel of the network's input
    for x in (0.0, arrays[0].shape[1] / 2, arrays[0].shape[1]):  # within one such pixel of the full reading's
        assert abs(geometries[0].to_source_x(x) - full_geometry.to_source_x(x)) <= network_pixel


def test_uint8_round_trip_is_exact_on_the_255_grid():
    ink = np.arange(256, dtype=np.float32) / 255
    assert np.array_equal(ink_to_uint8(ink), np.arange(256, dtype=np.uint8))
    assert np.allclose(ink_from_uint8(ink_to_uint8(ink)), ink, atol=1e-7)


def test_workers_never_import_torch_and_match_the_in_process_path(folder):
    before = hwr_blocks()
    refs = list(page_refs([folder]))
    with PageWorkers(settings(), workers=0) as local:
        expected = list(local.prepared(refs))
    with PageWorkers(settings(), workers=1) as pool:
        got = list(pool.prepared(refs))
        modules = pool.worker_modules()  # the one worker, after it prepared every page
    assert "torch" not in modules and {"cv2", "hwr", "numpy"} <= set(modules)
    assert as_tuples(got) == as_tuples(expected)
    assert [p.page_id for p in got] == ["broken", "page0", "page1", "page2"]
    assert [len(p.images) for p in got] == [len(p.page.lines) if p.page else 0 for p in got]
    assert hwr_blocks() == before


def test_thread_workers_prepare_the_same_pages_without_shared_memory(folder):
    refs = list(page_refs([folder]))
    before = hwr_blocks()
    with PageWorkers(settings(), workers=2, processes=False) as threads:
        got = threads.prepared(refs)
        first = next(got)
        assert hwr_blocks() == before  # nothing goes through /dev/shm
        got = [first, *got]
        with pytest.raises(ValueError, match="no worker processes"):
            threads.worker_modules()
    with PageWorkers(settings(), workers=0) as local:
        assert as_tuples(got) == as_tuples(list(local.prepared(refs)))


def test_a_bad_page_is_reported_and_the_rest_complete(folder):
    with PageWorkers(settings(), workers=2) as pool:
        got = list(pool.prepared(page_refs([folder, folder / "missing.png"])))
    failures = {p.page_id: p.failure for p in got if p.failure is not None}
    assert set(failures) == {"broken", "missing"}
    assert failures["broken"].stage == "read" and "broken.png" in failures["broken"].source
    assert "not found" in failures["missing"].message
    assert all(p.images for p in got if p.failure is None) and len(got) == 5


def test_a_crashing_worker_costs_only_its_page(folder, page_images):
    cv2.imwrite(str(folder / "poison.png"), page_images[0])
    before = hwr_blocks()
    with PageWorkers(settings(), workers=2, prepare=crash_on_poison) as pool:
        got = list(pool.prepared(page_refs([folder])))
        assert pool.restarts >= 2  # the crash, then the page crashing again alone
    by_id = {p.page_id: p for p in got}
    assert by_id["poison"].failure.message == WORKER_DIED
    assert all(by_id[f"page{i}"].failure is None and by_id[f"page{i}"].images for i in range(3))
    assert hwr_blocks() == before


def wait_for_new_blocks(before: set[str], timeout: float = 30.0) -> set[str]:
    deadline = time.monotonic() + timeout
    while not (hwr_blocks() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    return hwr_blocks() - before


def test_closing_early_unlinks_the_blocks_of_unread_pages(folder, page_images):
    for i in range(6):
        cv2.imwrite(str(folder / f"more{i}.png"), page_images[i % 3])
    before = hwr_blocks()
    pool = PageWorkers(settings(), workers=2, window=6)
    pages = pool.prepared(page_refs([folder]))
    assert next(pages).page_id == "broken"
    assert wait_for_new_blocks(before)  # finished pages wait in shared memory, unread
    pages.close()
    assert pool._pool is None and hwr_blocks() == before


def test_leaving_the_with_block_unlinks_the_blocks_of_unread_pages(folder, page_images):
    for i in range(6):
        cv2.imwrite(str(folder / f"more{i}.png"), page_images[i % 3])
    before = hwr_blocks()
    with PageWorkers(settings(), workers=2, window=6) as pool:
        pages = pool.prepared(page_refs([folder]))
        next(pages)
        assert wait_for_new_blocks(before)
    assert hwr_blocks() == before


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="mode"):
        PrepareSettings(mode="lines")
    with pytest.raises(ValueError, match="workers"):
        PageWorkers(settings(), workers=-1)
    with pytest.raises(ValueError, match="start_method"):
        PageWorkers(settings(), start_method="fork")


# The script restores Python's Ctrl-C handler: a test run started as a background job (CI
# runners, `cmd &` in a script) inherits SIGINT ignored, and Python then installs none.
CTRL_C_SCRIPT = textwrap.dedent("""
    import multiprocessing, signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from hwr.documents.pages import page_refs
    from hwr.documents.prepare import PrepareSettings
    from hwr.documents.workers import PageWorkers

    try:
        with PageWorkers(PrepareSettings(mode="page"), workers=2, window=4) as pool:
            for i, page in enumerate(pool.prepared(page_refs([sys.argv[1]]))):
                if i == 0:
                    print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
                time.sleep(30)  # a slow consumer: Ctrl-C arrives here
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
""")


def signalled_with_unread_pages(folder, page_images, signum: int):
    """Run CTRL_C_SCRIPT until pages finished in its workers wait unread in shared memory, then
    send `signum` to its whole process group, as a terminal or a scheduler does. Returns the
    process (ended), its workers' pids, the blocks it had made, and its stdout and stderr."""
    for i in range(6):
        cv2.imwrite(str(folder / f"more{i}.png"), page_images[i % 3])
    before = hwr_blocks()
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT, str(folder)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        workers = [int(pid) for pid in proc.stdout.readline().split()]
        assert workers
        made = wait_for_new_blocks(before)
        assert made  # pages finished in the workers, unread
        os.killpg(proc.pid, signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc, workers, made, out, err


def test_ctrl_c_stops_the_workers_and_leaves_no_shared_memory(folder, page_images):
    before = hwr_blocks()
    proc, workers, _, out, err = signalled_with_unread_pages(folder, page_images, signal.SIGINT)
    assert proc.returncode == 130 and "interrupted" in out, err
    assert "Traceback" not in err and "leaked" not in err  # workers quiet; nothing left to the resource tracker
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    assert hwr_blocks() == before


# In a fresh interpreter: the first worker of a process is the one that starts multiprocessing's
# resource tracker, which unblocks SIGINT on its way.
STARTING_WORKERS_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from hwr.documents.prepare import PrepareSettings
    from hwr.documents.workers import PageWorkers

    with PageWorkers(PrepareSettings(mode="page"), workers=2) as pool:
        with pool._starting_workers() as executor:
            futures = [executor.submit(time.sleep, 0.2) for _ in range(2)]
        workers = list(executor._processes.values())
        for worker in workers:  # milliseconds after their start, long before their imports end
            os.kill(worker.pid, signal.SIGINT)
        for future in futures:
            future.result(timeout=60)
        print("workers alive", len(workers), all(worker.is_alive() for worker in workers), flush=True)
        print("parent blocks SIGINT", signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set()), flush=True)
        try:  # the parent's own Ctrl-C is not lost (another thread may take it within the block)
            with pool._starting_workers():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
            time.sleep(0.2)
        except KeyboardInterrupt:
            print("delivered", flush=True)
""")


def test_a_ctrl_c_while_workers_still_start_does_not_kill_them_and_reaches_the_parent():
    # A worker spends a second or more importing before it can ignore SIGINT; a Ctrl-C then
    # (a quick user, a loaded machine) killed it with a traceback.
    run = subprocess.run([sys.executable, "-c", STARTING_WORKERS_SCRIPT], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stdout.split("\n")[:3] == ["workers alive 2 True", "parent blocks SIGINT False", "delivered"]


def test_blocks_of_a_batch_killed_with_its_whole_group_are_unlinked_by_the_next_pool(folder, page_images):
    # SIGKILL of the process group (a scheduler's hard stop) takes the resource tracker too, so
    # nothing of that batch unlinks its unread pages: the next pool must.
    proc, _, leaked, _, _ = signalled_with_unread_pages(folder, page_images, signal.SIGKILL)
    assert all(name.startswith(f"{SHM_PREFIX}{proc.pid}_") for name in leaked)
    time.sleep(0.5)  # the killed workers' last blocks
    assert leaked <= blocks_now()  # left behind, as the kernel keeps them
    with PageWorkers(settings(), workers=1) as pool:
        pool.pool
    assert leaked <= blocks_now()  # too fresh to be taken for orphans (another pid namespace's?)
    long_ago = time.time() - 2 * ORPHAN_AGE_S
    for name in leaked:
        os.utime(SHM / name, (long_ago, long_ago))
    own = shared_memory.SharedMemory(name=f"{SHM_PREFIX}{os.getpid()}_0123abcd", create=True, size=8)
    os.utime(SHM / own.name, (long_ago, long_ago))
    try:
        with PageWorkers(settings(), workers=1) as pool:
            pool.pool  # starting a pool sweeps
        assert not (leaked & blocks_now())
        assert own.name in blocks_now()  # a live process's block stays, however old
    finally:
        own.close()
        own.unlink()
    assert unlink_orphaned_blocks(SHM, min_age_s=0) == 0


def test_workers_run_as_threads_where_a_spawned_process_could_not_import_the_main_module(monkeypatch, caplog,
                                                                                          tmp_path):
    """From `python -` every page of a batch with processes failed, its worker dead: the spawned
    process looked for the main module's file "<stdin>". Threads then, and a warning saying why."""
    import types

    stdin_main = types.ModuleType("__main__")
    stdin_main.__file__ = "<stdin>"
    monkeypatch.setitem(sys.modules, "__main__", stdin_main)
    with PageWorkers(settings(), workers=2, processes=True) as workers:
        assert not workers.processes
    assert "page workers run as threads, not processes" in caplog.text and "<stdin>" in caplog.text
    script = tmp_path / "script.py"
    script.write_text("")
    stdin_main.__file__ = str(script)  # a script: imported again (its __main__ guard is its own)
    with PageWorkers(settings(), workers=2, processes=True) as workers:
        assert workers.processes
    notebook = types.ModuleType("__main__")  # no file: nothing is imported again
    monkeypatch.setitem(sys.modules, "__main__", notebook)
    with PageWorkers(settings(), workers=2, processes=True) as workers:
        assert workers.processes


def test_a_script_without_a_main_guard_has_its_pages_prepared_in_threads_not_failed(folder, tmp_path):
    """Spawned workers run the main script again from the top; one without an `if __name__ ==
    "__main__":` guard started its batch again in each of them, which multiprocessing refuses:
    every worker died, and every page failed as "a crash in an image decoder?"."""
    last, err = run_unguarded(tmp_path, """
        import sys
        from hwr.documents.pages import page_refs
        from hwr.documents.prepare import PrepareSettings
        from hwr.documents.workers import PageWorkers

        with PageWorkers(PrepareSettings(mode="page"), workers=2, processes=True) as pool:
            pages = list(pool.prepared(page_refs([sys.argv[1]])))
        print(sorted((p.page_id, p.failure is None, len(p.images)) for p in pages), pool.processes)
    """, folder)
    assert "page workers run as threads, not processes" in err and "__main__" in err
    assert last == "[('broken', False, 0), ('page0', True, 3), ('page1', True, 4), ('page2', True, 3)] False", last
