"""hwr.documents.transcribe: the --json report's journal names itself when a write fails."""
from __future__ import annotations

import errno

import pytest

from hwr.documents.transcribe import LineJournal, journal_path
from hwr.errors import describe_os_error


class FullDisk:
    """A file whose every write fails as a full disk's does: an OSError naming no file."""

    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        pass

    def close(self):
        pass


def test_a_full_disk_while_journalling_names_the_journal(tmp_path):
    report = tmp_path / "report.json"
    journal = LineJournal(report, keep=False)
    journal._file.close()
    journal._file = FullDisk()
    with pytest.raises(OSError) as caught:
        journal.add("page.png", [])
    assert caught.value.filename == str(journal_path(report))
    assert describe_os_error(caught.value) == (f"cannot write {journal_path(report)}: the disk is full "
                                               "(No space left on device)")
