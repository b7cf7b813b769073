"""hwr.errors: the helpers that word messages (a few of many bad items named; counts with their nouns;
an OSError in one line) and tell the user's OSErrors from a bug's."""
import errno

import pytest

from hwr.errors import counted, describe_os_error, fails_every_write, is_users_os_error, name_some


def test_name_some_names_the_first_few_and_counts_the_rest():
    assert name_some(["a", "b"], 3) == "a; b"
    assert name_some(["a", "b", "c", "d", "e"], 3) == "a; b; c; and 2 more"
    assert name_some((n for n in range(4)), 2, sep=", ") == "0, 1, and 2 more"


def test_counted_puts_the_noun_in_the_number_of_the_count():
    assert counted(1, "line") == "1 line" and counted(0, "line") == "0 lines" and counted(3, "page") == "3 pages"
    assert counted(2, "unusable entry", "unusable entries") == "2 unusable entries"


def test_an_os_error_reads_as_the_file_and_its_reason_and_a_full_disk_says_so():
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device", "out/a.txt")) == (
        "cannot write out/a.txt: the disk is full (No space left on device)")
    assert describe_os_error(OSError(errno.EROFS, "Read-only file system", "out/a.txt")).startswith(
        "cannot write out/a.txt: the file system is read-only")
    assert describe_os_error(PermissionError(errno.EACCES, "Permission denied", "x.png")) == "x.png: Permission denied"


def test_a_file_where_a_folder_belongs_is_named_as_such(tmp_path):
    (tmp_path / "sub").write_text("a file")
    with pytest.raises(FileExistsError) as exists:
        (tmp_path / "sub").mkdir(parents=True, exist_ok=True)
    with pytest.raises(NotADirectoryError) as not_a_folder:
        (tmp_path / "sub" / "a.txt").write_text("x")
    for raised in (exists.value, not_a_folder.value):
        assert "a file stands where a folder is needed" in describe_os_error(raised)
    assert describe_os_error(FileExistsError(errno.EEXIST, "File exists", str(tmp_path))) == f"{tmp_path}: File exists"


def test_a_pipe_where_an_output_belongs_is_named_as_a_pipe_not_as_a_file_where_a_folder_belongs(tmp_path):
    import os

    from hwr.fileio import atomic_output

    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    os.mkfifo(tmp_path / "page.txt")
    with pytest.raises(OSError) as refused, atomic_output(tmp_path / "page.txt"):
        pass
    assert describe_os_error(refused.value) == (f"cannot write {tmp_path / 'page.txt'}: it is a pipe, not a file, "
                                                "and is not replaced")


def test_only_the_disks_and_permissions_errors_are_the_users_and_only_a_full_disk_stops_every_write():
    assert is_users_os_error(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_users_os_error(PermissionError(errno.EACCES, "Permission denied"))
    assert not is_users_os_error(FileNotFoundError(errno.ENOENT, "No such file or directory"))
    assert not is_users_os_error(ValueError("a bug"))
    assert fails_every_write(OSError(errno.ENOSPC, "No space left on device"))
    assert not fails_every_write(PermissionError(errno.EACCES, "Permission denied"))
