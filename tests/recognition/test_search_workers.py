"""The beam search in worker processes (hwr.recognition.search_workers): the same recognitions as
the search in the reading process, in order, and nothing lost when a worker dies."""
from __future__ import annotations

import logging
import os
import signal

import numpy as np
import pytest
import torch

from hwr.errors import ConfigError
from hwr.recognition.charset import Charset
from hwr.recognition.decode import BeamDecoder
from hwr.recognition.lm import build_lm
from hwr.recognition.model import Recognizer, resolve_search_workers
from hwr.recognition.search_workers import SearchWorkers
from hwr.recognition.settings import RecognizerSettings

from unguarded_scripts import run_unguarded

pytest.importorskip("flashlight.lib.text.decoder")

CHARSET = Charset("abcdehlostxyz ")
CORPUS = "the cat sat\nthe hat\nthe cat\na cat sat on the hat\nthe cat ate\n" * 3


@pytest.fixture(scope="module")
def decoder(tmp_path_factory) -> BeamDecoder:
    folder = tmp_path_factory.mktemp("lm")
    corpus = folder / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    lm = folder / "char.arpa"
    build_lm([corpus], lm, order=3, unit="char")
    return BeamDecoder(CHARSET, mode="char", lm=str(lm), lm_weight=1.0)


def peaked_log_probs(n: int, frames: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, N, C) log-probs with a clear best class per frame (a network's shape), lines of
    different lengths."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.0, (frames, n, len(CHARSET)))
    logits[np.arange(frames)[:, None], np.arange(n)[None, :], rng.integers(0, len(CHARSET), (frames, n))] += 5.0
    log_probs = torch.from_numpy(logits).float().log_softmax(-1)
    lengths = torch.from_numpy(rng.integers(frames // 2, frames + 1, n))
    return log_probs, lengths


def fields(recognitions):
    return [(r.text, r.confidence, r.char_confidences, r.char_frames, r.frame_width) for r in recognitions]


def test_workers_read_every_line_as_the_search_in_this_process(decoder):
    workers = SearchWorkers(decoder, 2)
    try:
        batches = [peaked_log_probs(n, 40, seed) for seed, n in enumerate([20, 3, 17])]
        pending = [workers.submit(lp, lengths, frame_width=4.0) for lp, lengths in batches]
        for (lp, lengths), result in zip(batches, pending):
            got = result()
            assert fields(got) == fields(decoder.decode(lp, lengths, frame_width=4.0))
            assert len(got) == lp.shape[1]
        assert not workers.broken
    finally:
        workers.close()


def test_a_worker_that_dies_costs_no_line(decoder, caplog):
    workers = SearchWorkers(decoder, 2)
    try:
        lp, lengths = peaked_log_probs(16, 30, 5)
        expected = fields(decoder.decode(lp, lengths))
        assert fields(workers.submit(lp, lengths)()) == expected  # the pool is up
        for pid in list(workers._pool._processes):
            os.kill(pid, signal.SIGKILL)
        with caplog.at_level(logging.WARNING, logger="hwr.recognition.search_workers"):
            assert fields(workers.submit(lp, lengths)()) == expected
            assert fields(workers.submit(lp, lengths)()) == expected
        assert workers.broken
        assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
        assert "search worker process died" in caplog.records[0].message
    finally:
        workers.close()


def test_a_script_without_a_main_guard_searches_in_its_own_process_and_says_why(decoder, tmp_path):
    """Each search worker ran the main script again and started a search pool there, which
    multiprocessing refuses: the lines were still searched, but the warning spoke of a dying worker."""
    last, err = run_unguarded(tmp_path, """
        import sys
        import torch
        from hwr.recognition.charset import Charset
        from hwr.recognition.decode import BeamDecoder
        from hwr.recognition.search_workers import SearchWorkers

        charset = Charset("abcdehlostxyz ")
        decoder = BeamDecoder(charset, mode="char", lm=sys.argv[1], lm_weight=1.0)
        log_probs = torch.randn(30, 4, len(charset), generator=torch.Generator().manual_seed(3)).log_softmax(-1)
        lengths = torch.tensor([30, 20, 25, 12])
        workers = SearchWorkers(decoder, 2)
        got = [r.text for r in workers.submit(log_probs, lengths)()]
        workers.close()
        print(got == [r.text for r in decoder.decode(log_probs, lengths)], workers.broken)
    """, decoder.lm_path)
    assert last == "True True"
    assert "__main__" in err and "died" not in err, err


@pytest.mark.parametrize("width_variants", [(), (1.3,)])
def test_the_recognizer_reads_the_same_with_search_workers(untrained_model, width_variants):
    rng = np.random.default_rng(3)
    # Every line read again stretched too (an untrained network doubts them all): each keeps its
    # own frame width through the workers.
    reading = dict(decoder="beam", lm="none", width_variants=width_variants, width_variants_below=2.0)
    plain = Recognizer.load(untrained_model, device="cpu", **reading)
    height = plain.normalize_config.line_height
    lines = [rng.random((height, int(w))).astype(np.float32) for w in rng.integers(20, 120, 13)]
    with_workers = Recognizer.load(untrained_model, device="cpu", search_workers=1, **reading)
    try:
        # Batches of 2: seven of them, more than the two the one worker may have ahead.
        read = fields(plain.recognize_normalized(lines, 2))
        assert fields(with_workers.recognize_normalized(lines, 2)) == read
        assert any(r[-1] < plain.frame_width for r in read) == bool(width_variants)
    finally:
        with_workers.close()


def test_search_workers_start_only_for_a_search_and_by_default_only_beside_a_gpu(decoder, untrained_model):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    greedy = Recognizer.load(untrained_model, device="cpu", search_workers=3)
    assert greedy.search_workers is None and resolve_search_workers(3, cpu, greedy.decoder) == 0
    assert resolve_search_workers(None, cpu, decoder) == 0
    assert 1 <= resolve_search_workers(None, cuda, decoder) <= 8
    assert resolve_search_workers(3, cpu, decoder) == 3
    with pytest.raises(ConfigError, match="--search-workers"):
        RecognizerSettings(search_workers=-1)
    with pytest.raises(ValueError):
        SearchWorkers(decoder, 0)


def test_a_worker_ignores_ctrl_c_before_it_imports_torch():
    """Ctrl-C reaches the whole process group; a worker must ignore it from its first seconds
    (importing torch takes them), so the module it unpickles first may not import torch."""
    import subprocess
    import sys

    code = "import sys, hwr.recognition.search_workers; print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"
