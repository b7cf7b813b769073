"""Bad inputs of every kind issue 21 found, fed between good ones through the real CLI
(`python -m hwr transcribe` / `eval` subprocesses) and through `Recognizer.recognize`.

Asserted for every run: no traceback, every bad file named (stderr and the errors file),
the documented exit code (README "Exit codes": 0 all done, 1 done but some inputs failed,
2 nothing done: usage or input error), and every good file's outputs present and complete
(each one parses). The model is tiny and untrained: what it reads is not tested here.
Not covered here: an unreadable sub-folder (tests run as root, where only a patched listing
can fail; see tests/documents/test_pages.py) and the 14400 pt PDF page (a 120 Mpx render;
see test_pages.py for the pixel cap).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bad_inputs
from helpers import REPO, make_untrained_model, page_image, render_line

pytestmark = pytest.mark.slow  # a few CLI subprocesses (each starts torch): ~30 s in all

FORMATS = ["txt", "json", "pagexml", "alto"]
SUFFIXES = {"txt": ".txt", "json": ".json", "pagexml": ".xml", "alto": ".alto.xml"}


def hwr(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "hwr", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_untrained_model(tmp_path_factory.mktemp("fuzz-model") / "tiny")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict:
    """A folder where good and bad files alternate by name, plus a bad list file beside it."""
    root = tmp_path_factory.mktemp("fuzz-in")
    folder = root / "scans"
    (folder / "batch1").mkdir(parents=True)
    (folder / "batch2").mkdir()
    good = {}
    Image.fromarray(render_line("a good line")).save(folder / "a_line.png")
    good["a_line"] = 1
    bad_inputs.huge_tiff_header(folder / "b_bomb.tif")
    page_image(["first line of a page", "second line of it", "and a third"]).save(folder / "c_page.png")
    good["c_page"] = 1
    # Page 1 reads (a blank page: no text); page 2 does not decode; page 3 lies past the cut.
    bad_inputs.truncated_multipage_tiff(folder / "d_cut.tif")
    bad_inputs.not_an_image(folder / "e_text.png")
    bad_inputs.empty_file(folder / "f_empty.jpg")
    bad_inputs.broken_pdf(folder / "g_broken.pdf")
    frames = [Image.fromarray(render_line(t)) for t in ("fax one", "fax two")]
    frames[0].save(folder / "h_fax.tif", save_all=True, append_images=frames[1:])
    good["h_fax#p1"] = good["h_fax#p2"] = 1
    # The same name in two sub-folders: two ids, two outputs.
    Image.fromarray(render_line("batch one")).save(folder / "batch1" / "scan001.png")
    Image.fromarray(render_line("batch two")).save(folder / "batch2" / "scan001.png")
    good["batch1/scan001"] = good["batch2/scan001"] = 1
    # A list row in Latin-1 names a file by its bytes (none is there): that row fails, not the list.
    listing = bad_inputs.latin1_text(root / "pages.txt", "caf\xe9.png\n")
    listed = "caf\\udce9.png"  # the missing name as messages and errors.tsv write its byte
    bad = {"b_bomb.tif", "d_cut.tif#p2", "d_cut.tif#p3", "e_text.png", "f_empty.jpg", "g_broken.pdf", listed}
    return {"root": root, "folder": folder, "listing": listing, "good": good, "bad": bad, "blank": ["d_cut#p1"],
            "listed": listed}


def assert_clean(proc: subprocess.CompletedProcess, code: int) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, proc.stderr


def assert_complete(out: Path, page_id: str, formats: list[str]) -> None:
    for fmt in formats:
        path = out / (page_id + SUFFIXES[fmt])
        assert path.is_file(), f"{path} missing"
        text = path.read_text(encoding="utf-8")
        if fmt == "json":
            assert json.loads(text)["id"] == page_id
        elif fmt in ("pagexml", "alto"):
            ET.fromstring(text.encode("utf-8"))
        else:
            assert text.endswith("\n")


@pytest.mark.parametrize("mode", ["auto", "page", "line"])
def test_transcribe_reads_every_good_file_and_names_every_bad_one(model, inputs, tmp_path, mode):
    out = tmp_path / "out"
    formats = FORMATS if mode != "line" else ["txt", "json"]
    proc = hwr("transcribe", inputs["folder"], inputs["listing"], "--mode", mode, "--model", model, "--device", "cpu",
               "--output-dir", out, "--format", ",".join(formats), "--no-progress", "--json", tmp_path / "lines.json",
               cwd=tmp_path)
    assert_clean(proc, 1)
    errors = (out / "errors.tsv").read_text(encoding="utf-8")
    for name in inputs["bad"]:
        assert name in proc.stderr and name in errors, name
    for page_id in inputs["good"]:
        assert_complete(out, page_id, formats)
    assert all((out / (page_id + ".txt")).is_file() for page_id in inputs["blank"])
    assert not list(out.rglob("*.tmp"))
    report = json.loads((tmp_path / "lines.json").read_text(encoding="utf-8"))
    assert {Path(f["source"]).name for f in report["failures"]} >= inputs["bad"] - {inputs["listed"]}
    assert os.fsdecode(b"caf\xe9.png") in {Path(f["source"]).name for f in report["failures"]}
    assert all(set(f) == {"source", "stage", "message", "page_id"} for f in report["failures"])
    # A page read as a page is in the report too, line by line, with each line's id and box.
    page_lines = [line for line in report["lines"] if line["source"].endswith("c_page.png")]
    if mode == "line":
        assert len(page_lines) == 1 and not page_lines[0]["line"]
    else:
        assert len(page_lines) == 3 and len({line["line"] for line in page_lines}) == 3
        assert all(len(line["bbox"]) == 4 for line in page_lines)
    # --resume after the run: every good page is skipped, the bad ones fail again, nothing is lost.
    again = hwr("transcribe", inputs["folder"], "--mode", mode, "--model", model, "--device", "cpu",
                "--output-dir", out, "--format", ",".join(formats), "--no-progress", "--resume", cwd=tmp_path)
    assert_clean(again, 1)
    assert f"skipped {len(inputs['good']) + len(inputs['blank'])}" in again.stderr


def test_transcribe_exit_codes_0_and_2(model, tmp_path):
    Image.fromarray(render_line("all good")).save(tmp_path / "ok.png")
    assert_clean(hwr("transcribe", tmp_path / "ok.png", "--model", model, "--device", "cpu", "--no-progress",
                     cwd=tmp_path), 0)
    nothing = hwr("transcribe", str(tmp_path / "none-*.png"), "--model", model, "--device", "cpu", "--no-progress",
                  cwd=tmp_path)
    assert_clean(nothing, 2)
    assert "no input images found" in nothing.stderr
    broken_model = tmp_path / "broken-model"
    broken_model.mkdir()
    (broken_model / "config.json").write_text(json.dumps({"arch": "crnn", "net": {"line_height": 0},
                                                          "charset": ["a"]}))
    bad_model = hwr("transcribe", tmp_path / "ok.png", "--model", broken_model, "--device", "cpu", cwd=tmp_path)
    assert_clean(bad_model, 2)
    assert "config.json" in bad_model.stderr and "net.line_height" in bad_model.stderr


def test_eval_lines_with_bad_images_and_ground_truth(model, tmp_path):
    data = tmp_path / "pairs"
    data.mkdir()
    for k, text in enumerate(["the cat", "a dog", "red hat"]):
        Image.fromarray(render_line(text)).save(data / f"l{k}.png")
        (data / f"l{k}.gt.txt").write_text(text + "\n", encoding="utf-8")
    bad_inputs.huge_tiff_header(data / "l0_bomb.tif")
    (data / "l0_bomb.gt.txt").write_text("boom\n", encoding="utf-8")
    bad_inputs.not_an_image(data / "l1_junk.png")
    (data / "l1_junk.gt.txt").write_text("junk\n", encoding="utf-8")
    Image.fromarray(render_line("latin")).save(data / "l2_latin.png")
    bad_inputs.latin1_text(data / "l2_latin.gt.txt")
    strict = hwr("eval", data, "--model", model, "--device", "cpu", "--bootstrap", 10, cwd=tmp_path)
    assert_clean(strict, 2)
    assert "l2_latin.gt.txt" in strict.stderr
    lenient = hwr("eval", data, "--model", model, "--device", "cpu", "--bootstrap", 10, "--skip-bad",
                  "--json", tmp_path / "r.json", cwd=tmp_path)
    assert_clean(lenient, 1)
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["lines"] == 3
    failed = " ".join(report["failed_files"])
    assert all(name in failed for name in ("l0_bomb.tif", "l1_junk.png", "l2_latin.gt.txt"))


def test_eval_pages_with_bad_images_and_ground_truth(model, tmp_path):
    data = tmp_path / "pages"
    data.mkdir()
    for k in range(2):
        page_image([f"page {k} line one", f"page {k} line two"]).save(data / f"p{k}.png")
        (data / f"p{k}.gt.txt").write_text(f"page {k} line one\npage {k} line two\n", encoding="utf-8")
    bad_inputs.huge_tiff_header(data / "q_bomb.tif")
    (data / "q_bomb.gt.txt").write_text("boom\n", encoding="utf-8")
    page_image(["latin one", "latin two"]).save(data / "r_latin.png")
    bad_inputs.latin1_text(data / "r_latin.gt.txt")
    (data / "s_orphan.gt.txt").write_text("no image\n", encoding="utf-8")
    strict = hwr("eval", data, "--pages", "--model", model, "--device", "cpu", cwd=tmp_path)
    assert_clean(strict, 2)
    assert "r_latin.gt.txt" in strict.stderr
    lenient = hwr("eval", data, "--pages", "--model", model, "--device", "cpu", "--skip-bad",
                  "--json", tmp_path / "p.json", cwd=tmp_path)
    assert_clean(lenient, 1)
    report = json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))
    assert report["pages"] == 2
    failed = " ".join(report["failed_files"])
    assert all(name in failed for name in ("q_bomb.tif", "r_latin.gt.txt", "s_orphan.gt.txt"))
    assert all(name in lenient.stderr for name in ("q_bomb.tif", "r_latin.gt.txt", "s_orphan.gt.txt"))


def test_recognize_reads_the_good_images_between_bad_values(model, tmp_path):
    from hwr.recognition.model import Recognizer
    from hwr.records import FailedInput, Recognition

    recognizer = Recognizer.load(model, device="cpu")
    good = [render_line("one"), str(_saved(tmp_path / "two.png", "two")), Image.fromarray(render_line("three"))]
    closed = Image.open(_saved(tmp_path / "closed.png", "closed"))
    closed.close()
    bad = [None, 3, np.full((8, 8), np.nan), np.array([["x"]], dtype=object), closed,
           str(bad_inputs.huge_tiff_header(tmp_path / "bomb.tif")), str(tmp_path / "gone.png"),
           str(bad_inputs.not_an_image(tmp_path / "junk.png")), b"not image bytes"]
    mixed = [good[0], *bad[:5], good[1], *bad[5:], good[2]]
    results = recognizer.recognize(mixed, on_error="return")
    assert [type(r) for r in results] == [Recognition] + [FailedInput] * 5 + [Recognition] + [FailedInput] * 4 + [
        Recognition]
    expected = [r.text for r in recognizer.recognize(good)]
    assert [r.text for r in results if isinstance(r, Recognition)] == expected
    named = [r.source for r in results if isinstance(r, FailedInput)]
    assert any("bomb.tif" in s for s in named) and any("gone.png" in s for s in named)


def _saved(path: Path, text: str) -> Path:
    Image.fromarray(render_line(text)).save(path)
    return path
