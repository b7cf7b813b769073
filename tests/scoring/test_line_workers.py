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

from hwr.documents.workers import SHM_PREFIX, PageWorkers
from hwr.recognition.imaging import NormalizeConfig
from hwr.records import FailedInput, LineSample
from hwr.scoring.line_workers import LINE_WORKER_DIED, SampleBatch, prepare_samples, prepared_in_workers

REPO = Path(__file__).resolve().parents[2]


def render_line(text: str) -> np.ndarray:
    # helpers.render_line, imported late: helpers imports torch, and the workers import this module.
    from helpers import render_line

    return render_line(text)

TEXTS = ["the cat sat", "a dog ran home", "hello world", "sat on the mat", "today is fine", "quick brown fox"]


def hwr_blocks() -> set[str]:
    """The blocks this process's pools made (each is named for the pool's process): another test
    running beside this one (pytest-xdist) makes and unlinks blocks of its own, and a killed batch's
    orphans wait for a later pool; both had failed a "nothing leaked" comparison here now and then."""
    shm = Path("/dev/shm")
    return {p.name for p in shm.glob(f"{SHM_PREFIX}{os.getpid()}_*")} if shm.is_dir() else set()


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
    before = hwr_blocks()
    with pytest.raises(ImageError, match="bad.png") as raised:
        evaluate(recognizer, samples, batch_size=2, workers=2, processes=True)
    # The loaders stopped with the run, though the exception (and so evaluate's frame) is held:
    # the batches read ahead of the bad one are not left in shared memory.
    assert raised.value is not None and hwr_blocks() == before


def test_line_workers_never_import_torch(samples):
    batch = SampleBatch(0, tuple(samples[:4]))
    with PageWorkers(NormalizeConfig(), workers=1, prepare=prepare_samples) as pool:
        (got,) = list(pool.prepared([batch]))
        modules = pool.worker_modules()
    assert "torch" not in modules and "hwr" in modules
    assert [u is None for u in got.unreadable] == [True, True, True, False]
    assert got.unreadable[3][0] == samples[3].image
    assert len(got.images) == 3 and all(im.dtype == np.uint8 and im.shape[0] == 48 for im in got.images)


def test_a_crashing_worker_costs_only_the_line_that_kills_it(samples):
    samples = [s for s in samples if s.id != "bad"][:3]
    samples.insert(2, LineSample("poison", "x", render_line("x")))  # first of the second batch of two
    before = hwr_blocks()
    got = list(prepared_in_workers(samples, 2, NormalizeConfig(), 2, prepare=crash_on_poison))
    assert [[s.id for s in batch] for batch, _ in got] == [[s.id for s in samples[i:i + 2]]
                                                          for i in range(0, len(samples), 2)]
    slots = [slot for _, lines in got for slot in lines.slots]
    failures = [(samples[k].id, slot) for k, slot in enumerate(slots) if isinstance(slot, FailedInput)]
    assert [(line_id, f.message) for line_id, f in failures] == [("poison", LINE_WORKER_DIED)]
    assert failures[0][1].source == "poison"  # an array's line: named by its id
    assert sum(len(lines.arrays) for _, lines in got) == 3
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
    assert main([*args, "--pages", "--processes"]) == 2  # page scoring has its own page threads
    assert "--processes does not apply to --pages" in capsys.readouterr().err


def test_hwr_eval_stops_on_sigterm_as_on_ctrl_c(monkeypatch, tmp_path):
    """SIGTERM raises SystemExit(143) in the run, so its loaders end and unlink their shared
    memory on the way out, as on Ctrl-C (README "Exit codes")."""
    import signal

    import hwr.scoring.report.run as run
    from hwr.cli import main

    seen = []

    def run_eval(cfg, dataset):
        seen.append(signal.getsignal(signal.SIGTERM))
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.setattr(run, "run_eval", run_eval)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        main(["eval", str(tmp_path), "--device", "cpu"])
    assert stopped.value.code == 143 and seen[0] not in (signal.SIG_DFL, before)
    assert signal.getsignal(signal.SIGTERM) == before
