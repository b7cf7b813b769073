"""The local collection of training lines: saving a corrected page's lines, listing, removing,
repairing an interrupted save, and reading the folder back as a pairs data set.

Not tested here: the buttons that call it (tests/test_ui_browser.py drives those).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hwr.datasets import open_dataset
from hwr.documents.orientation import line_back, turned
from hwr.records import Line, Page, Recognition
from hwr_ui.collection import Collection, page_key, user_data_dir

from helpers import render_line


def two_line_page() -> tuple[np.ndarray, Page]:
    top, bottom = render_line("the cat sat"), render_line("a big dog")
    width = max(top.shape[1], bottom.shape[1])
    gray = np.full((top.shape[0] + bottom.shape[0], width), 255, np.uint8)
    gray[: top.shape[0], : top.shape[1]] = top
    gray[top.shape[0]:, : bottom.shape[1]] = bottom
    lines = []
    for i, (y0, y1, text) in enumerate([(0, top.shape[0], "the cat sat"), (top.shape[0], gray.shape[0], "a big dog")]):
        polygon = [(0, y0), (width - 1, y0), (width - 1, y1 - 1), (0, y1 - 1)]
        lines.append(Line(id=f"l{i + 1:03d}", polygon=polygon, baseline=[(0, y1 - 4), (width - 1, y1 - 4)],
                          bbox=(0, y0, width, y1), text=text, recognition=Recognition(text=text, confidence=1.0)))
    return gray, Page(id="scan", source="scan.png", width=width, height=gray.shape[0], lines=lines)


def test_saved_lines_read_back_as_a_pairs_data_set_grouped_by_page(tmp_path):
    collection = Collection(tmp_path / "c")
    gray, page = two_line_page()
    first = collection.save_page(gray, page, "scan.png")
    other = gray.copy()
    other[0, 0] = 0  # another page: other pixels
    second = collection.save_page(other, page, "scan.png")
    assert [s.text for s in first] == ["the cat sat", "a big dog"]
    assert first[0].page != second[0].page  # each page its own folder
    assert collection.count() == 4 and collection.pages() == 2
    samples = open_dataset(collection.lines_dir)
    assert sorted(s.text for s in samples) == sorted(["the cat sat", "a big dog"] * 2)
    assert {s.id.split("/")[0] for s in samples} == {first[0].page, second[0].page}
    crop = np.asarray(Image.open(first[0].image))
    assert crop.shape[0] == render_line("the cat sat").shape[0]


def test_a_page_in_light_ink_is_saved_as_its_lines_in_dark_ink(tmp_path):
    gray, page = two_line_page()
    for line in page.lines:  # triangles: most of each crop is outside its polygon
        x0, y0, x1, y1 = line.bbox
        line.polygon = [(x0, y0), (x1 - 1, y0), (x0, y1 - 1)]
    dark_ink = Collection(tmp_path / "a").save_page(gray, page, "scan.png")
    light_ink = Collection(tmp_path / "b").save_page(255 - gray, page, "negative.png")
    for ours, theirs in zip(light_ink, dark_ink):
        # Cut white outside the polygon from the page as given, the line had been a blot once inverted.
        assert np.array_equal(np.asarray(Image.open(ours.image)), np.asarray(Image.open(theirs.image)))


@pytest.mark.parametrize("turn", [90, 180, 270])
def test_the_lines_of_a_page_read_turned_are_saved_upright(tmp_path, turn):
    gray, page = two_line_page()
    upright = Collection(tmp_path / "a").save_page(gray, page, "scan.png")
    scan = turned(gray, 360 - turn)  # the page as scanned: it reads once turned `turn` clockwise
    height, width = scan.shape
    page.lines = [line_back(line, turn, width, height) for line in page.lines]
    page.width, page.height, page.orientation = width, height, turn
    saved = Collection(tmp_path / "b").save_page(scan, page, "scan.png")
    for ours, theirs in zip(saved, upright):
        assert np.array_equal(np.asarray(Image.open(ours.image)), np.asarray(Image.open(theirs.image)))


def test_lines_without_text_are_not_saved(tmp_path):
    collection = Collection(tmp_path / "c")
    gray, page = two_line_page()
    page.lines[1].recognition = Recognition(text="  ", confidence=1.0)
    assert [s.text for s in collection.save_page(gray, page, "scan")] == ["the cat sat"]
    assert collection.save_lines([], "empty") == [] and collection.pages() == 1


def test_remove_by_line_or_page_and_unknown_ids_remove_nothing(tmp_path):
    collection = Collection(tmp_path / "c")
    gray, page = two_line_page()
    a = collection.save_page(gray, page, "a")
    b = collection.save_page(255 - gray, page, "b")  # another page
    with pytest.raises(KeyError, match="nope"):
        collection.remove([a[0].id, "nope"])
    assert collection.count() == 4
    assert collection.remove([a[0].id]) == 1 and collection.count() == 3
    assert collection.remove([b[0].page]) == 2
    assert [s.id for s in collection.lines()] == [a[1].id]
    assert not (collection.lines_dir / b[0].page).exists()


def test_repair_removes_what_an_interrupted_save_left(tmp_path):
    collection = Collection(tmp_path / "c")
    gray, page = two_line_page()
    saved = collection.save_page(gray, page, "scan")
    saved[1].image.with_name(saved[1].image.stem + ".gt.txt").unlink()  # crashed before the text
    (saved[0].image.parent / ".l009.png.123.tmp").write_bytes(b"partial")
    assert collection.count() == 1
    assert collection.repair() == 2
    assert len(open_dataset(collection.lines_dir)) == 1


def test_a_stray_or_hand_edited_file_breaks_neither_the_list_nor_removal_nor_repair(tmp_path):
    collection = Collection(tmp_path / "c")
    gray, page = two_line_page()
    saved = collection.save_page(gray, page, "scan")
    folder = saved[0].image.parent
    saved[0].image.with_name(saved[0].image.stem + ".gt.txt").write_bytes("caf\xe9".encode("latin-1"))
    (folder / ".backup").mkdir()  # a hidden folder someone made: repair leaves it
    (folder / "notes.gt.txt").mkdir()
    assert [line.text for line in collection.lines()] == ["caf\ufffd", saved[1].text]
    assert collection.repair() == 0 and (folder / ".backup").is_dir()
    assert collection.remove([saved[0].id]) == 1 and collection.count() == 1


def test_user_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HWR_USER_DIR", str(tmp_path / "mine"))
    assert user_data_dir() == tmp_path / "mine"
    monkeypatch.delenv("HWR_USER_DIR")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert user_data_dir() == tmp_path / "xdg" / "hwr"
    assert Collection().root == Path(tmp_path / "xdg" / "hwr" / "collection")


def test_saving_a_page_again_replaces_its_earlier_save(tmp_path):
    """Two copies of one page would let adapt learn a line from one and hold it out in the other."""
    collection = Collection(tmp_path / "c")
    gray, page = two_line_page()
    first = collection.save_page(gray, page, "scan.png")
    page.lines[1].recognition = Recognition(text="a big cat", confidence=1.0)  # corrected since
    again = collection.save_page(gray, page, "scan.png")
    assert collection.pages() == 1 and collection.saved_pages(page_key(gray)) == [again[0].page]
    assert [line.text for line in collection.lines()] == ["the cat sat", "a big cat"]
    assert not (collection.lines_dir / first[0].page).exists()
    assert collection.remove([again[0].page]) == 2
    assert not any(collection.lines_dir.iterdir())  # the page's digest goes with its last line


def test_two_saves_of_one_page_at_once_leave_one_copy(tmp_path, monkeypatch):
    """A double click: two requests save the same page together. Each looked for earlier saves
    before the other had written, so both copies stayed (a line learned from and held out)."""
    import threading
    from contextlib import suppress

    collection = Collection(tmp_path / "c")
    gray, page = two_line_page()
    # Both saves meet here before either writes; saved one after the other (the lock), the
    # first waits out the timeout alone and the second finds the barrier broken.
    started, new_folder = threading.Barrier(2, timeout=2), collection._new_page_folder

    def both_inside(name):
        with suppress(threading.BrokenBarrierError):
            started.wait()
        return new_folder(name)

    monkeypatch.setattr(collection, "_new_page_folder", both_inside)
    saves = [threading.Thread(target=collection.save_page, args=(gray, page, "scan.png")) for _ in range(2)]
    for thread in saves:
        thread.start()
    for thread in saves:
        thread.join()
    assert collection.pages() == 1 and len(collection.saved_pages(page_key(gray))) == 1


def test_the_list_holds_exactly_the_lines_adapt_reads_even_after_hand_edits(tmp_path):
    """Lines added or moved by hand (a .jpg pair, a page in a sub-folder) were trained on but
    neither listed nor removable; a hidden backup was listed but never read."""
    collection = Collection(tmp_path / "c")
    gray, page = two_line_page()
    (saved,) = {line.page for line in collection.save_page(gray, page, "scan.png")}
    root = collection.lines_dir
    Image.fromarray(render_line("by hand")).save(root / saved / "extra.jpg")
    (root / saved / "extra.gt.txt").write_text("by hand\n", encoding="utf-8")
    (root / "archive").mkdir()
    (root / saved).rename(root / "archive" / saved)  # a page moved into a folder of its own
    (root / ".backup").mkdir()
    Image.fromarray(render_line("copy")).save(root / ".backup" / "l001.png")
    (root / ".backup" / "l001.gt.txt").write_text("copy\n", encoding="utf-8")
    listed = sorted(line.id for line in collection.lines())
    assert listed == sorted(s.id for s in open_dataset(str(root))) and len(listed) == 3
    assert collection.remove([f"archive/{saved}/extra"]) == 1
    assert sorted(s.id for s in open_dataset(str(root))) == sorted(line.id for line in collection.lines())


def test_a_failed_save_leaves_nothing_and_a_killed_one_is_replaced_by_the_next(tmp_path, monkeypatch):
    """A full disk on the second line had left the first line in a folder without the page's
    key: the retry made a second folder, and the page's lines stood in the collection twice."""
    import hwr_ui.collection as collection_module

    collection = Collection(tmp_path / "c")
    gray, page = two_line_page()
    write = collection_module.atomic_write_bytes
    written = []

    def full_disk_on_the_second_line(path, data):
        written.append(path)
        if Path(path).name.startswith("l002"):
            raise OSError(28, "No space left on device")
        write(path, data)

    monkeypatch.setattr(collection_module, "atomic_write_bytes", full_disk_on_the_second_line)
    with pytest.raises(OSError, match="No space left"):
        collection.save_page(gray, page, "scan.png")
    assert collection.count() == 0 and not any(collection.lines_dir.iterdir())
    # Killed midway instead (the first line and the page's key written): the next save replaces it.
    monkeypatch.setattr(collection_module, "atomic_write_bytes", write)
    killed = collection._new_page_folder("scan.png")
    write(killed / "page.sha256", page_key(gray).encode("ascii"))
    write(killed / "l001.png", b"")
    collection.save_page(gray, page, "scan.png")
    assert collection.pages() == 1 and not killed.exists()


def test_line_ids_that_make_one_file_name_are_saved_apart(tmp_path):
    collection = Collection(tmp_path / "c")
    crops = [(line_id, render_line("ab"), text) for line_id, text in
             [("α", "first"), ("β", "second"), ("r1/l1", "third"), ("r1-l1", "fourth"), ("R1-L1", "fifth")]]
    saved = collection.save_lines(crops, "page.png")
    assert len({line.image for line in saved}) == 5
    assert sorted(line.text for line in collection.lines()) == ["fifth", "first", "fourth", "second", "third"]


def test_repair_waits_for_a_save_under_way(tmp_path, monkeypatch):
    """repair() between a line's image and its text took the image for an interrupted save's
    orphan: the save said 2 lines and the collection held 1, and a text without its image."""
    import threading

    import hwr_ui.collection as collection_module

    collection = Collection(tmp_path / "c")
    gray, page = two_line_page()
    write, repaired = collection_module.atomic_write_bytes, []

    def repair_midway(path, data):
        write(path, data)
        if Path(path).suffix == ".png" and not repaired:
            other = threading.Thread(target=lambda: repaired.append(collection.repair()))
            other.start()
            other.join(timeout=0.5)  # it waits for the save's lock
            assert other.is_alive()
            repaired.append(other)

    monkeypatch.setattr(collection_module, "atomic_write_bytes", repair_midway)
    saved = collection.save_page(gray, page, "scan.png")
    repaired[0].join()
    assert repaired[1] == 0 and collection.count() == len(saved) == 2
