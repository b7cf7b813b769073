"""Cross-page width batching (hwr.documents.line_batches): padding, width order, pages back
whole, failures per page. Pure numpy, no network; recognition is tests/documents/test_pipeline_workers.py."""
from __future__ import annotations

import numpy as np
import pytest

from hwr.documents.line_batches import WIDTH_MULTIPLE, LineBatch, PageBatcher, pad_uint8
from hwr.documents.prepare import PreparedPage
from hwr.records import FailedInput, Line, Page


def prepared(page_id: str, widths: list[int], height: int = 8) -> PreparedPage:
    lines = [Line(id=f"l{i}", polygon=[], baseline=[], bbox=(0, 0, w, height)) for i, w in enumerate(widths)]
    # Each image is filled with its width mod 251, so a batch row tells which line it holds.
    images = [np.full((height, w), w % 251, np.uint8) for w in widths]
    return PreparedPage(page_id, page_id + ".png", Page(page_id, page_id + ".png", 100, 100, lines), images)


def read(batch: LineBatch) -> list[str]:
    """A stand-in network: 'reads' each line as the width its pixels encode."""
    return [f"w{int(batch.images[i, 0, 0, 0])}" for i in range(len(batch))]


def test_pad_uint8_pads_right_with_zeros_to_the_width_multiple():
    batch, widths = pad_uint8([np.full((4, 70), 9, np.uint8), np.full((4, 10), 5, np.uint8)])
    assert batch.shape == (2, 1, 4, 128) and batch.dtype == np.uint8 and widths.tolist() == [70, 10]
    assert (batch[0, 0, :, :70] == 9).all() and (batch[0, 0, :, 70:] == 0).all()
    assert (batch[1, 0, :, :10] == 5).all() and (batch[1, 0, :, 10:] == 0).all()
    with pytest.raises(ValueError, match="height"):
        pad_uint8([np.zeros((4, 5), np.uint8), np.zeros((5, 5), np.uint8)])


def test_lines_of_several_pages_share_width_sorted_batches_and_pages_come_back_whole():
    batcher = PageBatcher(batch_size=3, pool_lines=6)
    assert batcher.add(prepared("a", [200, 10, 100])) == []  # 3 lines: below the pool size
    batches = batcher.add(prepared("b", [30, 150, 20, 90]))  # 7 lines: the pool is read
    assert [len(b) for b in batches] == [3, 3, 1]
    widths = [w for b in batches for w in b.widths.tolist()]
    assert widths == sorted(widths) == [10, 20, 30, 90, 100, 150, 200]
    assert all(b.images.shape[3] % WIDTH_MULTIPLE == 0 for b in batches)
    assert {serial for b in batches[:1] for serial, _ in b.owners} == {0, 1}  # one batch, two pages
    for batch in batches[:2]:
        batcher.complete(batch, read(batch))
    done = batcher.done()
    assert [p.page_id for p in done] == ["b"] and batcher.pending_pages == 1  # "a" waits for its widest line
    batcher.complete(batches[2], read(batches[2]))
    done += batcher.done()
    assert [p.page_id for p in done] == ["b", "a"] and batcher.done() == []
    for page in done:
        assert [line.recognition for line in page.page.lines] == [f"w{line.bbox[2]}" for line in page.page.lines]
        assert page.images == []  # pixels dropped once read
    assert batcher.flush() == [] and batcher.pending_pages == 0


def test_flush_reads_what_is_left_and_a_blank_page_is_done_at_once():
    batcher = PageBatcher(batch_size=4, pool_lines=100)
    batcher.add(prepared("a", [50, 60]))
    assert batcher.add(prepared("blank", [])) == []
    assert [p.page_id for p in batcher.done()] == ["blank"]
    batches = batcher.flush()
    assert [len(b) for b in batches] == [2]
    batcher.complete(batches[0], read(batches[0]))
    assert [p.page_id for p in batcher.done()] == ["a"]


def test_a_line_that_cannot_be_read_fails_only_its_page():
    batcher = PageBatcher(batch_size=8, pool_lines=1)
    (batch,) = batcher.add(prepared("a", [10, 20]))
    (other,) = batcher.add(prepared("b", [15]))
    single = batch.split()
    assert [s.owners for s in single] == [[o] for o in batch.owners] and single[1].images.shape[0] == 1
    batcher.complete(single[0], read(single[0]))
    batcher.fail_line(single[1].owners[0], "RuntimeError: out of memory")
    batcher.complete(other, read(other))
    done = {p.page_id: p for p in batcher.done()}
    assert done["a"].failure == FailedInput("a.png", "recognize", "RuntimeError: out of memory", "a")
    assert done["b"].failure is None


def test_batcher_refuses_failed_pages_and_mismatched_results():
    batcher = PageBatcher()
    with pytest.raises(ValueError, match="failed page"):
        batcher.add(PreparedPage("x", "x.png", failure=FailedInput("x.png", "read", "broken", "x")))
    page = prepared("a", [10, 20])
    page.images.pop()
    with pytest.raises(ValueError, match="1 line images for 2 lines"):
        batcher.add(page)
    (batch,) = PageBatcher(pool_lines=1).add(prepared("b", [5]))
    with pytest.raises(ValueError, match="2 recognitions"):
        PageBatcher().complete(batch, ["x", "y"])
    with pytest.raises(ValueError, match=">= 1"):
        PageBatcher(batch_size=0)


def test_a_second_reading_that_cannot_be_read_loses_instead_of_failing_its_page():
    """Auto mode's whole reading of an image (its last line) failing costs only that reading;
    one of the image's own lines failing still fails the page."""
    batcher = PageBatcher(batch_size=8, pool_lines=100)
    for page_id in ("a", "b"):
        page = prepared(page_id, [10, 20, 300])
        page.read_whole_too = True
        batcher.add(page)
    single = [s for batch in batcher.flush() for s in batch.split()]
    for line in single:
        serial, index = line.owners[0]
        if (serial, index) in {(0, 2), (1, 0)}:  # a's whole reading, b's first line
            batcher.fail_line(line.owners[0], "RuntimeError: out of memory")
        else:
            batcher.complete(line, read(line))
    done = {p.page_id: p for p in batcher.done()}
    assert done["a"].failure is None and done["a"].page.lines[2].recognition.text == ""
    assert [line.recognition for line in done["a"].page.lines[:2]] == ["w10", "w20"]
    assert done["b"].failure == FailedInput("b.png", "recognize", "RuntimeError: out of memory", "b")
