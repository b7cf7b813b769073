"""Atomic writes leave no temp file behind, and output paths are checked before the work."""
from __future__ import annotations

import errno
import os
import textwrap
import time

import pytest

from hwr.errors import ConfigError
from hwr.fileio import (
    atomic_output,
    atomic_write_text,
    check_distinct_outputs,
    check_output_dir,
    check_output_file,
    naming_file,
)


def test_atomic_write_replaces_whole_and_a_failed_write_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "first")
    atomic_write_text(target, "second")
    assert target.read_text() == "second"
    folder = tmp_path / "taken.txt"
    folder.mkdir()  # a folder where the file should go: the rename fails
    with pytest.raises(OSError):
        atomic_write_text(folder, "text")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "taken.txt"]


def test_a_write_that_fills_the_disk_leaves_no_temp_file_and_names_the_target(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(OSError) as raised, atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")  # as write() raises it: no file named
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []


def test_an_os_error_is_made_to_name_the_file_only_when_it_names_none_or_the_temp_file(tmp_path):
    unnamed = OSError(errno.EACCES, "Permission denied")
    named = naming_file(unnamed, tmp_path / "a.txt")
    assert isinstance(named, PermissionError) and named.filename == str(tmp_path / "a.txt")
    temp = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".a.txt.1.tmp"))
    assert naming_file(temp, tmp_path / "a.txt", instead_of=tmp_path / ".a.txt.1.tmp").filename == str(
        tmp_path / "a.txt")
    other = FileNotFoundError(errno.ENOENT, "No such file or directory", "input.png")  # a writer's input
    assert naming_file(other, tmp_path / "a.txt", instead_of=tmp_path / ".a.txt.1.tmp") is other


def test_a_file_written_through_atomic_output_appears_only_when_the_block_ends_well(tmp_path):
    target = tmp_path / "out.zip"
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"whole")
        assert not target.exists()
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"whole" and [p.name for p in tmp_path.iterdir()] == ["out.zip"]


def test_a_name_near_the_file_system_limit_is_written_though_its_temp_name_would_not_fit(tmp_path):
    # 250 bytes fit in a file name (255 at most); ".<name>.<pid>.tmp" would not.
    target = tmp_path / ("a" * 241 + ".alto.xml")
    atomic_write_text(target, "page")
    assert target.read_text() == "page"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_output_folder_is_made_or_refused_naming_the_option(tmp_path):
    check_output_dir(tmp_path / "a" / "b", "--output-dir")
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="--output-dir .*file: is a file"):
        check_output_dir(tmp_path / "file", "--output-dir")
    with pytest.raises(ConfigError, match="--output-dir .*cannot create"):
        check_output_dir(tmp_path / "file" / "sub", "--output-dir")
    check_output_dir(None, "--output-dir")  # not asked for: nothing to check


def test_a_pipe_or_device_is_no_output_file_and_is_never_replaced(tmp_path):
    import os
    import stat

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="--out .*fifo: is a pipe, not a file; give a file name"):
        check_output_file(fifo, "--out")
    with pytest.raises(OSError, match="is a pipe, not a file, and is not replaced"):
        atomic_write_text(fifo, "report")  # a reader waiting on the pipe had waited for ever
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and [p.name for p in tmp_path.iterdir()] == ["fifo"]
    with pytest.raises(ConfigError, match="--json .*fifo/r.json: .*fifo is a pipe, not a folder"):
        check_output_file(fifo / "r.json", "--json")
    (tmp_path / "plain").write_text("x")
    # The message names the file given, and the folder that is the trouble.
    with pytest.raises(ConfigError, match=r"--out .*plain/lm.arpa: .*plain is a file, not a folder"):
        check_output_file(tmp_path / "plain" / "lm.arpa", "--out")


def test_an_output_that_is_a_symbolic_link_is_written_through_and_the_link_stays(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "report.json").write_text("old")
    link = tmp_path / "report.json"
    link.symlink_to(shared / "report.json")
    check_output_file(link, "--json")
    atomic_write_text(link, "new")
    # The rename had replaced the link with a plain file; the shared file kept the old report.
    assert link.is_symlink() and (shared / "report.json").read_text() == "new"
    assert sorted(p.name for p in shared.iterdir()) == ["report.json"]  # no temp file left
    # A link to a file not there yet makes it (as open() does), in the folder the link names.
    dangling = tmp_path / "next.json"
    dangling.symlink_to(shared / "made" / "next.json")
    check_output_file(dangling, "--json")
    atomic_write_text(dangling, "made")
    assert dangling.is_symlink() and (shared / "made" / "next.json").read_text() == "made"
    # Links to links are followed to the end.
    (tmp_path / "twice.json").symlink_to(link)
    atomic_write_text(tmp_path / "twice.json", "third")
    assert (shared / "report.json").read_text() == "third" and (tmp_path / "twice.json").is_symlink()


def test_a_symbolic_link_loop_is_a_clear_error_naming_the_path(tmp_path):
    loop = tmp_path / "loop.json"
    loop.symlink_to(tmp_path / "back.json")
    (tmp_path / "back.json").symlink_to(loop)
    with pytest.raises(ConfigError, match="--json .*loop.json: is a symbolic link that leads round in a loop"):
        check_output_file(loop, "--json")
    with pytest.raises(OSError, match="loop.json"):
        atomic_write_text(loop, "x")
    check_distinct_outputs([("--json", loop), ("--csv", tmp_path / "lines.csv")])  # no RuntimeError (3.10-3.12)
    assert loop.is_symlink() and (tmp_path / "back.json").is_symlink()


def test_output_file_must_not_be_a_folder_and_its_folder_must_be_makeable(tmp_path):
    check_output_file(tmp_path / "new" / "report.json", "--json")
    assert (tmp_path / "new").is_dir() and not (tmp_path / "new" / "report.json").exists()
    with pytest.raises(ConfigError, match="--json .*new: is a folder"):
        check_output_file(tmp_path / "new", "--json")
    (tmp_path / "plain").write_text("x")
    with pytest.raises(ConfigError, match="--csv .*plain"):
        check_output_file(tmp_path / "plain" / "lines.csv", "--csv")


def test_an_output_file_no_file_system_takes_is_refused_before_the_work(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="--json .*: the file name is too long \\(304 bytes"):
        check_output_file(tmp_path / ("a" * 299 + ".json"), "--json")
    # A folder whose permissions say yes but which takes no file (/proc, /sys, a read-only mount):
    # only a write shows it, so one is tried, and nothing is left behind.
    check_output_file(tmp_path / "ok.json", "--json")
    assert list(tmp_path.iterdir()) == []
    real_open = os.open

    def refusing(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path)):
            raise FileNotFoundError(2, "No such file or directory")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    with pytest.raises(ConfigError, match="--csv .*lines.csv: no file can be written in .* \\(No such file"):
        check_output_file(tmp_path / "lines.csv", "--csv")


def test_a_file_is_found_under_a_name_in_another_unicode_form(tmp_path):
    import unicodedata

    from hwr.fileio import file_in_any_unicode_form

    (tmp_path / unicodedata.normalize("NFD", "café.png")).write_bytes(b"x")
    found = file_in_any_unicode_form(tmp_path / unicodedata.normalize("NFC", "café.png"))
    assert found is not None and found.name == unicodedata.normalize("NFD", "café.png")
    assert file_in_any_unicode_form(tmp_path / "missing.png") is None
    assert file_in_any_unicode_form(tmp_path / "no-folder" / "café.png") is None


def test_a_folder_is_listed_once_for_its_names_in_another_unicode_form_while_unchanged(tmp_path, monkeypatch):
    """A list file of 4,000 rows naming decomposed files had listed their folder once a row (45 s;
    a review helper). A file added since is found: the folder's change lists it again."""
    import pathlib
    import unicodedata

    from hwr.fileio import file_in_any_unicode_form

    listed, iterdir = [], pathlib.Path.iterdir

    def counted(self):
        listed.append(self)
        return iterdir(self)

    monkeypatch.setattr(pathlib.Path, "iterdir", counted)
    for k in range(3):
        (tmp_path / unicodedata.normalize("NFD", f"café{k}.png")).write_bytes(b"x")
    assert all(file_in_any_unicode_form(tmp_path / f"café{k}.png") for k in range(3)) and len(listed) == 1
    (tmp_path / unicodedata.normalize("NFD", "café3.png")).write_bytes(b"x")
    os.utime(tmp_path, ns=(1, 1))  # changed, whatever the file system's clock tick
    assert file_in_any_unicode_form(tmp_path / "café3.png") is not None and len(listed) == 2


def test_an_output_may_be_neither_an_input_nor_another_output(tmp_path):
    data = tmp_path / "lines.tsv"
    data.write_text("a.png\tthe cat\n")
    check_distinct_outputs([("--csv", tmp_path / "out.csv"), ("--json", tmp_path / "out.json")], [data])
    with pytest.raises(ConfigError, match="--csv .*lines.tsv: is one of the input files"):
        check_distinct_outputs([("--json", None), ("--csv", tmp_path / "." / "lines.tsv")], [data])
    with pytest.raises(ConfigError, match="--json .*same: is also the --csv file"):
        check_distinct_outputs([("--csv", tmp_path / "same"), ("--json", tmp_path / "same")])
    check_distinct_outputs([("--csv", tmp_path / "x.csv")], [tmp_path])  # a folder input holds no such file


def test_temp_files_of_processes_no_longer_running_are_removed_and_only_those(tmp_path):
    import subprocess
    import sys

    from hwr.fileio import remove_stale_temp_files

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / f".p06.txt.{dead}.hwr.tmp", tmp_path / "sub" / f".p07.xml.{dead}.hwr.tmp"]
    kept = [tmp_path / f".p08.txt.{os.getpid()}.hwr.tmp",  # a run writing there now
            tmp_path / ".notes.tmp", tmp_path / "p09.txt",  # not hwr's temp files
            tmp_path / f".notes.{dead}.tmp", tmp_path / "sub" / f".budget.{dead}.tmp"]  # another program's
    for path in stale + kept:
        path.write_bytes(b"")
    assert remove_stale_temp_files(tmp_path) == 2
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def test_stale_temp_files_of_outputs_written_through_links_are_removed_in_the_targets_folder(tmp_path):
    """An output that is a symbolic link is written in its target's folder, and so is its temp
    file: a run killed mid-write left it there, where the output folder's sweep never looked.
    Only the targets' own temp files go: the folder is someone else's."""
    import subprocess
    import sys

    from hwr.fileio import _temp_path, remove_stale_temp_files

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)
    out, shared = tmp_path / "out", tmp_path / "shared"
    out.mkdir()
    shared.mkdir()
    long_name = "p" * 245 + ".txt"
    for name in ("p01.txt", long_name):
        (out / name).symlink_to(shared / name)
    (out / "loop.txt").symlink_to(out / "loop.txt")
    # A long name's temp file is named by a digest of it.
    digest_named = _temp_path(shared / long_name).name.replace(f".{os.getpid()}.", f".{dead}.")
    assert long_name not in digest_named
    stale = [shared / f".p01.txt.{dead}.hwr.tmp", shared / digest_named]
    kept = [shared / f".p02.txt.{dead}.hwr.tmp",  # not an output's: another run's, into shared/
            shared / f".p01.txt.{os.getpid()}.hwr.tmp"]  # a run writing there now
    for path in stale + kept:
        path.write_bytes(b"")
    assert remove_stale_temp_files(out) == 2
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def test_writing_a_file_removes_the_temp_files_a_killed_write_of_it_left(tmp_path):
    """A --json or eval report killed while being written left its temp file beside it for good:
    no run sweeps a report's folder (a probe helper). Only the written file's own go, and only
    dead processes' (the folder may be the user's home, or shared)."""
    import subprocess
    import sys

    from hwr.fileio import atomic_write_bytes

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)
    stale = [tmp_path / f".report.json.{dead}.hwr.tmp", tmp_path / f".errors.tsv.{dead}.hwr.tmp"]
    kept = [tmp_path / f".notes.txt.{dead}.hwr.tmp",  # a file this process does not write
            tmp_path / f".report.json.{os.getppid()}.hwr.tmp"]  # a live process's
    for path in stale + kept:
        path.write_bytes(b"")
    atomic_write_bytes(tmp_path / "report.json", b"{}")
    atomic_write_bytes(tmp_path / "errors.tsv", b"")  # the folder listed once: found all the same
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert (tmp_path / "report.json").read_bytes() == b"{}"


def test_an_output_is_on_the_disk_before_it_is_renamed_into_place(tmp_path, monkeypatch):
    """Renamed before its data reached the disk, a file can be there but empty after a power cut,
    and --resume takes an existing output as a page done."""
    from hwr import fileio

    events = []
    sync, replace = os.fsync, os.replace
    monkeypatch.setattr(fileio.os, "fsync", lambda fd: (events.append("fsync"), sync(fd))[1])
    monkeypatch.setattr(fileio.os, "replace", lambda a, b: (events.append("rename"), replace(a, b))[1])
    fileio.atomic_write_bytes(tmp_path / "page.txt", b"text")
    assert events == ["fsync", "rename"] and (tmp_path / "page.txt").read_bytes() == b"text"


def test_a_name_too_long_to_look_up_is_no_file_but_other_lookup_errors_still_say_why(tmp_path, monkeypatch):
    from pathlib import Path

    from hwr.fileio import exists, is_dir, is_file

    long = tmp_path / ("q" * 300 + ".png")
    with pytest.raises(OSError):  # what pathlib does from Python 3.11: the reason for the helpers
        Path(long).stat()
    assert not is_file(long) and not is_dir(long) and not exists(long)
    (tmp_path / "a.png").write_bytes(b"x")
    assert is_file(tmp_path / "a.png") and is_dir(tmp_path) and exists(tmp_path / "a.png")

    def refused(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "stat", refused)
    for check in (is_file, is_dir, exists):
        with pytest.raises(PermissionError):  # not "not found": the user must see the cause
            check(tmp_path / "a.png")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_pipe_is_named_as_one_and_files_folders_and_missing_names_are_not_special(tmp_path):
    from hwr.fileio import special_file_kind

    os.mkfifo(tmp_path / "lm.arpa")
    (tmp_path / "plain.txt").write_text("x")
    assert special_file_kind(tmp_path / "lm.arpa") == "a pipe"
    assert special_file_kind(os.devnull) == "a device"
    for ordinary in (tmp_path / "plain.txt", tmp_path, tmp_path / "missing", tmp_path / ("q" * 300)):
        assert special_file_kind(ordinary) is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_data_files_that_are_pipes_are_said_to_be_pipes_not_missing(tmp_path):
    # Each had said "not found" (or could not tell the format) of a file the user can list.
    import numpy as np
    from PIL import Image

    from hwr.datasets import DatasetError, open_dataset
    from hwr.errors import MissingFileError
    from hwr.recognition.lm_files import check_readable_file
    from hwr.scoring.report.breakdown import read_group_table

    for name in ("lm.arpa", "table.txt", "rows.tsv"):
        os.mkfifo(tmp_path / name)
    with pytest.raises(ConfigError, match="is a pipe, not a language model file"):
        check_readable_file(str(tmp_path / "lm.arpa"), "lm")
    with pytest.raises(MissingFileError, match="is a pipe"):
        read_group_table(tmp_path / "table.txt")
    with pytest.raises(DatasetError, match="is a pipe"):
        open_dataset(str(tmp_path / "rows.tsv"))
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    Image.fromarray(np.full((20, 60), 255, np.uint8)).save(pairs / "a.png")
    os.mkfifo(pairs / "a.gt.txt")
    with pytest.raises(DatasetError, match="ground truth a.gt.txt is a pipe"):
        open_dataset(f"pairs:{pairs}")


def test_printed_text_shows_control_and_layout_characters_as_escapes():
    """A right-to-left override (U+202E) in a reference reordered the eval report on the screen;
    a line separator (U+2028) broke its line."""
    from hwr.fileio import escape_controls, escape_line_controls

    assert escape_controls("a\u202eb\x1bc\td\u2028e") == "a\\u202eb\\x1bc\td\\u2028e"
    assert escape_line_controls("x\ty\u2066z\u2069") == "x\\x09y\\u2066z\\u2069"
    hebrew = "\u05e9\u05dc\u05d5\u05dd \u200f!"  # right-to-left text and its marks stay as they are
    assert escape_line_controls(hebrew) == hebrew


def test_recovering_a_folder_removes_staging_folders_of_gone_runs_but_not_of_running_ones(tmp_path):
    """A staging folder is a live write's while its writer holds its flock (written_whole), or
    for STAGING_GRACE_S after it was made; whatever process has the id its name ends with."""
    import subprocess
    import sys

    from hwr.fileio import STAGING_GRACE_S, recover_folder

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    # Another run writing the same folder now, its staging folder locked (a dead pid in its name:
    # on a shared file system, another host's process id means nothing here).
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import fcntl, os, sys, time
        handle = os.open(sys.argv[1], os.O_RDONLY)
        fcntl.flock(handle, fcntl.LOCK_EX)
        print("locked", flush=True)
        time.sleep(60)
        """), str(tmp_path / f".model.saving-{int(gone.stdout)}0")], stdout=subprocess.PIPE, text=True)
    try:
        model = tmp_path / "model"
        model.mkdir()
        old = time.time() - 2 * STAGING_GRACE_S
        stale = [tmp_path / f".model.saving-{int(gone.stdout)}",
                 tmp_path / f".model.saving-{os.getppid()}",  # a live process's id, reused: no lock
                 tmp_path / f".model.saving-{os.getpid()}"]  # this process's own write, given up
        kept = [tmp_path / f".model.saving-{int(gone.stdout)}0",  # locked by the writer
                tmp_path / f".model.saving-{int(gone.stdout)}1",  # made just now, not yet locked
                tmp_path / ".model.saving-notes"]  # not a staging folder hwr names
        for folder in stale + kept:
            folder.mkdir()
            (folder / "config.json").write_text("{}")
        for folder in stale + kept[:1]:
            os.utime(folder, (old, old))
        assert writer.stdout.readline().strip() == "locked"
        assert recover_folder(model) is False
        assert not any(f.exists() for f in stale) and all(f.exists() for f in kept)
    finally:
        writer.kill()
        writer.wait()
        writer.stdout.close()


def test_a_folder_written_whole_replaces_the_old_one_or_nothing(tmp_path):
    from hwr.fileio import recover_folder, staging_folder, written_whole

    model = tmp_path / "model"
    model.mkdir()
    (model / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with written_whole(model) as staging:
            (staging / "new.txt").write_text("half")
            raise RuntimeError("killed midway")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (model / "old.txt").read_text() == "old"
    with written_whole(model) as staging:
        assert staging == staging_folder(model) and not any(staging.iterdir())
        (staging / "new.txt").write_text("new")
        recover_folder(model)  # another run's recovery meanwhile: a live write is left alone
        assert (staging / "new.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert [p.name for p in model.iterdir()] == ["new.txt"]


def test_a_folder_is_held_by_one_run_at_a_time_and_let_go_when_the_run_ends_or_is_killed(tmp_path):
    from hwr.fileio import folder_held

    from helpers import held_by_another_process

    out = tmp_path / "out"
    with held_by_another_process(out):
        with pytest.raises(ConfigError, match=r"out: busy"):
            with folder_held(out, "busy"):
                pass
    with folder_held(out, "busy"):  # the holder was killed: the kernel let the folder go
        with folder_held(out, "busy"):  # held further up this process's own call
            pass
    with pytest.raises(RuntimeError):
        with folder_held(out, "busy"):
            raise RuntimeError("the run failed")
    with held_by_another_process(out):  # let go when the block ended, even by an error
        pass
    assert list(out.iterdir()) == []  # no lock file left among the outputs


def test_a_forked_child_outliving_the_hold_does_not_keep_the_folder(tmp_path):
    """A training's forked data-loader workers had inherited its --out's lock: killed, the
    training left the folder refused to its rerun while a worker lived on."""
    import os
    import signal

    from hwr.fileio import folder_held

    started, says = os.pipe()
    with folder_held(tmp_path, "busy"):
        child = os.fork()
        if child == 0:  # a loader worker: it lives on after the hold ends
            os.write(says, b"up")
            time.sleep(60)
            os._exit(0)
    assert os.read(started, 2) == b"up"  # the child runs (the fork's handlers are done)
    os.close(started)
    os.close(says)
    try:
        with folder_held(tmp_path, "busy"):  # a new open of the folder: refused while any copy holds it
            pass
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)


def test_another_thread_of_the_process_is_refused_a_folder_one_thread_holds(tmp_path):
    import threading

    from hwr.fileio import folder_held

    refused = []

    def second_run():
        try:
            with folder_held(tmp_path, "busy"):
                pass
        except ConfigError as error:
            refused.append(str(error))

    with folder_held(tmp_path, "busy"):
        other = threading.Thread(target=second_run)
        other.start()
        other.join()
    assert refused == [f"{tmp_path}: busy"]
    other = threading.Thread(target=second_run)  # let go: the next thread's run holds it
    other.start()
    other.join()
    assert len(refused) == 1


def test_standard_outputs_dash_is_refused_as_an_output_file_not_made_a_file(tmp_path, monkeypatch):
    """`--json -` had made a file named "-" (a probe helper)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"--json -: standard output is not written to; give a file name"):
        check_output_file("-", "--json")
    assert not (tmp_path / "-").exists()
