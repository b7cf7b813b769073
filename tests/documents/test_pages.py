"""Page inputs: folders, globs, list files, multi-page TIFF and PDF, stable ids, broken files."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hwr.recognition.imaging import ImageError
from hwr.documents.pages import expand_inputs, iter_pages, page_refs, prefetch_map


def _img(value: int, size=(60, 40)) -> Image.Image:
    return Image.new("L", size, value)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "box" / "sub").mkdir(parents=True)
    _img(10).save(tmp_path / "box" / "a.png")
    _img(20).save(tmp_path / "box" / "sub" / "b.jpg")
    (tmp_path / "box" / "notes.md").write_text("not a page")
    frames = [_img(v) for v in (30, 40, 50)]
    frames[0].save(tmp_path / "box" / "scan.tif", save_all=True, append_images=frames[1:])
    pdf_pages = [_img(200, (144, 72)).convert("RGB"), _img(100, (144, 72)).convert("RGB")]
    pdf_pages[0].save(tmp_path / "doc.pdf", save_all=True, append_images=pdf_pages[1:], resolution=72)
    return tmp_path


def test_folder_ids_are_relative_paths_and_frames_numbered(tree):
    ids = [ref.page_id for ref in page_refs([tree / "box"])]
    assert ids == ["a", "scan#p1", "scan#p2", "scan#p3", "sub/b"]
    pages = {pid: gray for pid, _, gray in iter_pages([tree / "box"], workers=2)}
    assert pages["scan#p2"].dtype == np.uint8 and int(pages["scan#p2"][0, 0]) == 40
    assert int(pages["sub/b"].mean()) in range(15, 26)


def test_pdf_rasterised_at_dpi(tree):
    pages = list(iter_pages([tree / "doc.pdf"], dpi=144, workers=0))
    assert [p[0] for p in pages] == ["doc#p1", "doc#p2"]
    gray = pages[0][2]
    assert gray.shape == (144, 288)  # 2 x 1 inch at 144 dpi
    assert gray.mean() > pages[1][2].mean()
    assert pages[1][1].endswith("doc.pdf#p2")


def test_globs_and_list_files(tree):
    assert [p.name for p, _ in expand_inputs([str(tree / "box" / "*.png")])] == ["a.png"]
    listing = tree / "pages.txt"
    listing.write_text("# scans\nbox/a.png\n\nbox/sub/b.jpg\n")
    assert [stem for _, stem in expand_inputs([listing])] == ["box/a", "box/sub/b"]


def test_same_stem_keeps_suffix(tmp_path):
    _img(1).save(tmp_path / "p.png")
    _img(2).save(tmp_path / "p.bmp")
    assert sorted(stem for _, stem in expand_inputs([tmp_path])) == ["p.bmp", "p.png"]


def test_broken_and_missing_pages_are_reported_not_raised(tmp_path):
    _img(5).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 garbage")
    results = list(iter_pages([tmp_path / "bad.png", tmp_path / "gone.png", tmp_path / "bad.pdf",
                               tmp_path / "good.png"]))
    assert [r[0] for r in results] == ["bad.png", "gone", "bad.pdf", "good"]  # same stem: suffix kept
    errors = [r for r in results if isinstance(r[2], Exception)]
    assert len(errors) == 3 and all(isinstance(e[2], ImageError) for e in errors)
    assert "bad.png" in str(errors[0][2])
    assert isinstance(results[-1][2], np.ndarray)


def test_skip_drops_pages_before_loading(tree):
    got = [pid for pid, _, _ in iter_pages([tree / "box"], skip=lambda pid: pid.startswith("scan"))]
    assert got == ["a", "sub/b"]


def test_prefetch_map_keeps_order():
    assert list(prefetch_map(lambda x: x * x, range(20), workers=3)) == [x * x for x in range(20)]


def _square_and_pid(x: int) -> tuple[int, int]:
    import os

    return x * x, os.getpid()


def test_prefetch_map_in_processes_keeps_order_and_runs_elsewhere():
    import os

    got = list(prefetch_map(_square_and_pid, range(12), workers=2, processes=True))
    assert [square for square, _ in got] == [x * x for x in range(12)]
    assert os.getpid() not in {pid for _, pid in got}
