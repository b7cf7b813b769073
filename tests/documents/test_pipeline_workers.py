"""The batch path (hwr.documents.pipeline.run_batch) with page worker processes and threads:
same texts with and without workers, the same texts as the Recognizer on the same uint8
pixels, failures per page, the model's torch threads beside worker processes. The model is
tiny and untrained: texts are compared between paths, never against ground truth. Outputs,
resume and modes in general: tests/documents/test_pipeline.py; the worker pool itself:
tests/documents/test_workers.py."""
from __future__ import annotations

import os

import cv2
import pytest
import torch

from hwr.documents import pipeline
from hwr.documents.pages import page_refs
from hwr.documents.pipeline import AUTO_PROCESSES_PAGES, BatchConfig, StageTimes, run_batch
from hwr.documents.prepare import PrepareSettings, ink_from_uint8, prepare_page
from hwr.documents.transcribe import TranscribeConfig
from hwr.recognition.model import Recognizer

from helpers import render_line
from unguarded_scripts import run_unguarded


@pytest.fixture(scope="module")
def recognizer(untrained_model):
    return Recognizer.load(untrained_model, device="cpu")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from hwr.synth import LineSynthesizer

    folder = tmp_path_factory.mktemp("pages")
    synth = LineSynthesizer(split="val", seed=7)
    for i, n in enumerate((4, 3, 5)):
        cv2.imwrite(str(folder / f"page{i}.png"), synth.sample_page(i, n_lines=n).image)
    cv2.imwrite(str(folder / "line.png"), render_line("only one line"))
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


def run(recognizer, folder, out, workers: int, processes: bool = True, **options):
    pages = {}
    config = BatchConfig(formats=["txt", "json"], output_dir=str(out), workers=workers, processes=processes,
                         batch_size=4,
                         batch_lines=6, progress=False, **options)
    stages = StageTimes()
    threads_seen = set()

    def on_page(page, is_line):
        pages[page.id] = (page, is_line)
        threads_seen.add(torch.get_num_threads())

    summary = run_batch(recognizer, [folder], config, on_page=on_page, stages=stages)
    stages.threads_seen = threads_seen
    return summary, pages, stages


def texts(pages) -> dict[str, list[tuple[str, list]]]:
    return {pid: [(line.recognition.text, [(w.text, round(w.x0, 3)) for w in line.recognition.words])
                  for line in page.lines]
            for pid, (page, _) in pages.items()}


def test_two_workers_read_the_same_texts_as_the_in_process_path(recognizer, folder, tmp_path):
    threads = torch.get_num_threads()
    local, local_pages, stages = run(recognizer, folder, tmp_path / "w0", workers=0)
    pooled, pooled_pages, pooled_stages = run(recognizer, folder, tmp_path / "w2", workers=2)
    assert pooled_stages.threads_seen == {max(1, min(threads, os.cpu_count() - 2))}  # cores left to the workers
    threaded, threaded_pages, threaded_stages = run(recognizer, folder, tmp_path / "t2", workers=2, processes=False)
    assert threaded_stages.threads_seen == {threads} and texts(threaded_pages) == texts(local_pages)
    for summary in (local, pooled, threaded):
        assert (summary.pages, summary.line_images, len(summary.failures)) == (3, 1, 1)
        assert summary.failures[0].stage == "read" and summary.failures[0].source.endswith("broken.png")
    assert local.lines == pooled.lines == sum(len(p.lines) for p, _ in local_pages.values())
    assert texts(pooled_pages) == texts(local_pages) and local_pages["line"][1] is True
    for name in ("page0.txt", "page2.json", "line.txt"):
        assert (tmp_path / "w0" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes()
    assert (tmp_path / "w2" / "errors.tsv").read_text().count("\n") == 1
    assert stages.network > 0 and stages.prepare_cpu > 0 and stages.wall >= stages.network + stages.write
    assert torch.get_num_threads() == threads  # lowered beside the worker processes, then restored


def test_texts_are_the_recognizers_on_the_same_pixels(recognizer, folder, tmp_path):
    """The padded uint8 feed reads what Recognizer.recognize_normalized reads from the same lines
    (in page mode: auto mode's second reading of each image, whole, is tests/documents/test_pipeline.py's)."""
    _, pages, _ = run(recognizer, folder, tmp_path / "out", workers=0, mode="page")
    settings = PrepareSettings(recognizer.normalize_config, mode="page")
    for ref in page_refs([folder / "page1.png", folder / "page2.png"]):
        prepared = prepare_page(ref, settings)
        floats = [ink_from_uint8(im) for im in prepared.images]
        expected = [r.text for r in recognizer.recognize_normalized(floats, batch_size=4)]
        assert [line.recognition.text for line in pages[ref.page_id][0].lines] == expected


def test_resume_skips_finished_pages(recognizer, folder, tmp_path):
    run(recognizer, folder, tmp_path / "out", workers=0)
    again, pages, _ = run(recognizer, folder, tmp_path / "out", workers=0, resume=True)
    assert again.skipped == 4 and again.pages == 0 and pages == {} and len(again.failures) == 1


class WidthLimitedNet(torch.nn.Module):
    """The real network, but a batch wider than `max_width` fails (an out-of-memory stand-in)."""

    def __init__(self, net, max_width: int):
        super().__init__()
        self.inner, self.max_width = net, max_width
        self.width_factor = getattr(net, "width_factor", 1)

    def forward(self, images, widths):
        if int(widths.max()) > self.max_width:
            raise RuntimeError("CUDA out of memory (simulated)")
        return self.inner(images, widths)


def test_a_line_the_network_cannot_take_fails_only_its_page(recognizer, folder, tmp_path):
    settings = PrepareSettings(recognizer.normalize_config)
    widest = {ref.page_id: max(im.shape[1] for im in prepare_page(ref, settings).images)
              for ref in page_refs([folder]) if not ref.page_id == "broken"}
    limit = sorted(widest.values())[-2]  # only the page with the widest line is refused
    victim = max(widest, key=widest.get)
    original = recognizer.net
    recognizer.net = WidthLimitedNet(original, limit)
    try:
        summary, pages, _ = run(recognizer, folder, tmp_path / "out", workers=0)
    finally:
        recognizer.net = original
    failed = {f.page_id: f for f in summary.failures}
    assert set(failed) == {"broken", victim} and failed[victim].stage == "recognize"
    assert "out of memory" in failed[victim].message and victim not in pages and len(pages) == 3


def test_batches_fill_to_the_batch_size_even_when_the_pool_is_set_smaller(recognizer, folder, monkeypatch):
    sizes = []
    read = recognizer.padded_scores  # the network's half of each padded batch

    def counting(images, widths):
        sizes.append(len(widths))
        return read(images, widths)

    monkeypatch.setattr(recognizer, "padded_scores", counting)
    config = BatchConfig(mode="page", workers=0, batch_size=8, batch_lines=2, progress=False)
    summary = run_batch(recognizer, [folder / f"page{i}.png" for i in range(3)], config)
    assert sum(sizes) == summary.lines >= 12 and max(sizes) == 8  # a pool of 2 lines would make batches of 2-5


@pytest.mark.parametrize("pages, expected", [(AUTO_PROCESSES_PAGES - 1, False), (AUTO_PROCESSES_PAGES, True)])
def test_unset_processes_are_chosen_by_the_batchs_pages(recognizer, tmp_path, monkeypatch, pages, expected):
    """Processes for a batch of AUTO_PROCESSES_PAGES pages or more (they read a fifth faster on 2
    cores, after a second of start-up), threads for fewer; every page read either way, in order.
    Unset is hwr transcribe's default; the library's stays threads (spawned workers import the
    caller's main module again)."""
    assert BatchConfig().processes is False and TranscribeConfig().processes is None
    for k in range(pages):
        cv2.imwrite(str(tmp_path / f"p{k:02d}.png"), render_line(f"page {k}"))
    chosen = []

    class Recorded(pipeline.PageWorkers):
        def __init__(self, settings, workers, processes, **kwargs):
            chosen.append(processes)
            super().__init__(settings, workers, False, **kwargs)  # threads either way: the test is the choice

    monkeypatch.setattr(pipeline, "PageWorkers", Recorded)
    read = []
    run_batch(recognizer, [tmp_path], BatchConfig(processes=None, progress=False),
              on_page=lambda page, _: read.append(page.id))
    assert chosen == [expected] and read == [f"p{k:02d}" for k in range(pages)]
    # Line images load and scale in milliseconds: threads whatever their number.
    run_batch(recognizer, [tmp_path], BatchConfig(processes=None, mode="line", progress=False))
    assert chosen == [expected, False]


def test_a_batch_from_a_script_without_a_main_guard_reads_every_page(untrained_model, folder, tmp_path):
    """Each spawned page worker ran the script again and started the batch there, where the
    output folder, held by the parent, refused it: every page failed, its worker dead."""
    out = tmp_path / "out"
    last, err = run_unguarded(tmp_path, """
        import sys
        from hwr import Recognizer
        from hwr.documents.pipeline import BatchConfig, run_batch

        summary = run_batch(Recognizer.load(sys.argv[1], device="cpu"), [sys.argv[2]],
                            BatchConfig(output_dir=sys.argv[3], processes=True, workers=2, progress=False))
        print(summary.pages, summary.line_images, [f.source for f in summary.failures])
    """, untrained_model, folder, out)
    assert "another hwr run is writing" not in err and "page workers run as threads" in err
    pages, line_images, failed = last.split(" ", 2)
    assert (pages, line_images) == ("3", "1") and failed == f"[{str(folder / 'broken.png')!r}]"
    assert sorted(p.name for p in out.glob("*.txt")) == ["line.txt", "page0.txt", "page1.txt", "page2.txt"]
