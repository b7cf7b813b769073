"""`hwr eval --workers N --processes` (hwr.scoring.line_workers): lines read and normalised in
torch-free worker processes score as the in-process reading does, an unreadable file is named,
a crashing worker costs only its batch, and no shared memory is left behind.

The worker processes import this module too (they unpickle `crash_on_poison` from it), so it
imports nothing that pulls in torch at module level."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hwr.documents.workers import SHM_PREFIX, WORKER_DIED, PageWorkers
from hwr.recognition.imaging import NormalizeConfig
from hwr.records import FailedInput, LineSample
from hwr.scoring.line_workers import SampleBatch, prepare_samples, prepared_in_workers

REPO = Path(__file__).resolve().parents[2]


def render_line(text: str) -> np.ndarray:
    # helpers.render_line, imported late: helpers imports torch, and the workers import this module.
    from helpers import render_line

    return render_line(text)

TEXTS = ["the cat sat", "a dog ran home", "hello world", "sat on the mat", "today is fine", "quick brown fox"]


def hwr_blocks() -> set[str]:
    shm = Path("/dev/shm")
    return {p.name for p in shm.glob(SHM_PREFIX + "*")} if shm.is_dir() else set()


@pytest.fixture
def samples(tmp_path: Path) -> list[LineSample]:
    """Line files, one that is no image, and one line held as pixels."""
    found = []
    for i, text in enumerate(TEXTS):
        Image.fromarray(render_line(text)).save(tmp_path / f"l{i}.png")
        found.append(LineSample(f"l{i}", text, str(tmp_path / f"l{i}.png")))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    found.insert(3, LineSample("bad", "x", str(tmp_path / "bad.png")))
    found.insert(5, LineSample("pixels", "the end", render_line("the end")))
    return found


def crash_on_poison(batch: SampleBatch, settings: NormalizeConfig):
    if any(sample.id == "poison" for sample in batch.samples):
        os._exit(3)  # as a decoder's segfault ends a worker
    return prepare_samples(batch, settings)


def test_processes_score_as_the_in_process_reading_does(samples):
    from hwr.recognition.model import Recognizer
    from hwr.scoring.evaluate import evaluate

    # A trained model: an untrained one's near-tie readings could turn on the uint8 rounding
    # of the lines that the workers hand back.
    recognizer = Recognizer.load(REPO / "models" / "hwr-en-small", device="cpu")
    before = hwr_blocks()
    inline = evaluate(recognizer, samples, batch_size=3, skip_bad=True, workers=0)
    workers = evaluate(recognizer, samples, batch_size=3, skip_bad=True, workers=2, processes=True)
    assert [(r.id, r.hypothesis) for r in workers.results] == [(r.id, r.hypothesis) for r in inline.results]
    assert [r.id for r in workers.results] == [s.id for s in samples if s.id != "bad"]
    assert inline.cer < 0.1  # read, not garbled
    assert [(f.source, f.page_id) for f in workers.failures] == [(samples[3].image, "bad")]
    assert workers.failures[0].message == inline.failures[0].message
    assert hwr_blocks() == before


def test_without_skip_bad_an_unreadable_file_stops_the_run_naming_it(samples, untrained_model):
    from hwr.recognition.imaging import ImageError
    from hwr.recognition.model import Recognizer
    from hwr.scoring.evaluate import evaluate

    recognizer = Recognizer.load(untrained_model, device="cpu")
    with pytest.raises(ImageError, match="bad.png"):
        evaluate(recognizer, samples, batch_size=2, workers=2, processes=True)


def test_line_workers_never_import_torch(samples):
    batch = SampleBatch(0, tuple(samples[:4]))
    with PageWorkers(NormalizeConfig(), workers=1, prepare=prepare_samples) as pool:
        (got,) = list(pool.prepared([batch]))
        modules = pool.worker_modules()
    assert "torch" not in modules and "hwr" in modules
    assert [u is None for u in got.unreadable] == [True, True, True, False]
    assert got.unreadable[3][0] == samples[3].image
    assert len(got.images) == 3 and all(im.dtype == np.uint8 and im.shape[0] == 48 for im in got.images)


def test_a_crashing_worker_fails_its_batch_alone(samples):
    samples = [s for s in samples if s.id != "bad"][:3]
    samples.append(LineSample("poison", "x", render_line("x")))  # the second batch of two
    before = hwr_blocks()
    got = list(prepared_in_workers(samples, 2, NormalizeConfig(), 2, prepare=crash_on_poison))
    assert [[s.id for s in batch] for batch, _ in got] == [[s.id for s in samples[i:i + 2]]
                                                          for i in range(0, len(samples), 2)]
    for batch, lines in got:
        dead = any(s.id == "poison" for s in batch)
        failures = [slot for slot in lines.slots if isinstance(slot, FailedInput)]
        assert len(failures) == (len(batch) if dead else 0)
        assert all(f.message == WORKER_DIED for f in failures)
        assert len(lines.arrays) == (0 if dead else len(batch))
    assert hwr_blocks() == before


def test_hwr_eval_reads_with_worker_processes(samples, tmp_path, untrained_model, capsys):
    from hwr.cli import main

    manifest = tmp_path / "lines.tsv"
    manifest.write_text("".join(f"{s.image}\t{s.text}\n" for s in samples if isinstance(s.image, str)),
                        encoding="utf-8")
    args = ["eval", str(manifest), "--model", str(untrained_model), "--device", "cpu", "--decoder", "greedy"]
    assert main([*args, "--workers", "2", "--processes", "--skip-bad", "--json", str(tmp_path / "r.json")]) == 1
    assert "bad.png" in capsys.readouterr().err
    assert main([*args, "--workers", "-1"]) == 2
    assert "--workers" in capsys.readouterr().err
