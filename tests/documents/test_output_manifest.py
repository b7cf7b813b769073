"""The output folder's record of the text outputs hwr wrote (hwr.documents.writers.manifest).

Not tested here: how the batch uses it (tests/documents/test_pipeline.py)."""
from __future__ import annotations

from hwr.documents.writers.manifest import MANIFEST_NAME, OutputManifest


def test_a_recorded_content_is_hwrs_and_any_other_content_is_not(tmp_path):
    manifest = OutputManifest(tmp_path)
    manifest.record(tmp_path / "sub" / "a.txt", b"read\n")
    again = OutputManifest(tmp_path)  # a later run reads what this one recorded
    assert again.knows(tmp_path / "sub" / "a.txt") and again.wrote(tmp_path / "sub" / "a.txt", b"read\n")
    assert not again.wrote(tmp_path / "sub" / "a.txt", b"corrected\n")
    assert not again.knows(tmp_path / "a.txt") and not again.wrote(tmp_path / "a.txt", b"read\n")


def test_recording_a_content_again_adds_no_line(tmp_path):
    for _ in range(2):
        OutputManifest(tmp_path).record(tmp_path / "a.txt", b"read\n")
    assert len((tmp_path / MANIFEST_NAME).read_text().splitlines()) == 1


def test_a_line_torn_by_a_crash_is_skipped_and_swallows_no_later_record(tmp_path):
    OutputManifest(tmp_path).record(tmp_path / "a.txt", b"first\n")
    with open(tmp_path / MANIFEST_NAME, "a") as file:
        file.write('{"name": "b.txt", "sha')  # a crash in the middle of an append
    OutputManifest(tmp_path).record(tmp_path / "c.txt", b"third\n")
    manifest = OutputManifest(tmp_path)
    assert manifest.wrote(tmp_path / "a.txt", b"first\n") and manifest.wrote(tmp_path / "c.txt", b"third\n")
    assert not manifest.knows(tmp_path / "b.txt")
