"""Which character LM the search should ship with: each LM reads the harder validation set and
lines of text from outside the LMs' corpora, against the first LM (paired bootstrap).

    python bench/bench_lm.py --model models/hwr-en-small \\
        --lms data/lm/char-6gram.arpa.gz,old/char-5gram.arpa.gz --json lm.json

The harder set's running text is the corpora's held-out lines, so an LM of those corpora is
read on text of its own kind there; an LM that only learnt those corpora's phrasing would gain
on it and lose on other text. The second set is the harder set's own writers, pens and capture
conditions with other text: sentences of Python's own documentation (pydoc topics, shipped with
every Python) and of /usr/share/common-licenses where the system has it. Network posteriors are
computed once per set and shared by all LMs, so each LM's search speed is measured apart.
"""
from __future__ import annotations

import argparse
import json
import re
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

from hwr.datasets.synthetic import hard_validation_lines
from hwr.recognition.decode import make_decoder
from hwr.recognition.model import Recognizer
from hwr.scoring.evaluate import EvalReport, score_texts
from hwr.scoring.report.compare import compare_reports

LICENSES = Path("/usr/share/common-licenses")
LINE_CHARS = (30, 64)  # wrap width of a prose line, drawn per sentence
MIN_LINE_CHARS = 15
MIN_LETTER_SHARE = 0.9  # sentences of code or tables are left out: letters and spaces only, mostly


def default_prose() -> list[str]:
    import pydoc_data.topics

    texts = [pydoc_data.topics.topics[key] for key in sorted(pydoc_data.topics.topics)]
    if LICENSES.is_dir():
        texts += [p.read_text(errors="ignore") for p in sorted(LICENSES.iterdir()) if p.is_file()]
    return texts


def prose_lines(texts: list[str], n: int, seed: int = 11) -> list[str]:
    """Up to n lines of printable ASCII cut from the texts' prose sentences, in a seeded order."""
    flat = re.sub(r"\s+", " ", re.sub(r"[^\x20-\x7e]+", " ", " ".join(texts)))
    rng = np.random.default_rng(seed)
    lines = []
    for sentence in re.split(r"(?<=[.!?])\s+", flat):
        if len(sentence) < 2 * MIN_LINE_CHARS:
            continue
        if sum(c.isalpha() or c == " " for c in sentence) < MIN_LETTER_SHARE * len(sentence):
            continue
        width = int(rng.integers(*LINE_CHARS))
        lines += [line for line in textwrap.wrap(sentence, width) if len(line) >= MIN_LINE_CHARS]
    order = rng.permutation(len(lines))
    return [lines[i] for i in order[:n]]


class GivenTexts:
    """A synthesizer's text source that hands out given lines in turn, as running text.

    The source it replaces still draws its text first, so each line's capture condition is the
    harder set's line's; its writer and pen are drawn as the harder set draws them (validation
    fonts, the same engine), though not the same ones: the text's own draws shift what follows."""

    def __init__(self, source, lines: list[str]):
        self.source, self.lines, self.next = source, lines, 0

    def sample(self, rng, kinds=None):
        self.source.sample(rng, kinds)
        line = self.lines[self.next % len(self.lines)]
        self.next += 1
        return line, "corpus"


def lines_with_text(lines: list[str]):
    """The given lines rendered as the harder set renders its lines, in order."""
    data = hard_validation_lines(len(lines))
    synthesizer = data.synthesizer
    synthesizer.texts = GivenTexts(synthesizer.texts, lines)
    return [data[i] for i in range(len(lines))]


def posteriors(recognizer: Recognizer, samples, batch_size: int = 16):
    lines = [recognizer.preprocess(s.image) for s in samples]
    order = sorted(range(len(lines)), key=lambda i: lines[i].shape[1])  # as Recognizer batches them
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [(chunk, *recognizer.log_probs([lines[i] for i in chunk])) for chunk in chunks]


def read_with(decoder, batches, samples) -> tuple[EvalReport, float]:
    """The lines' readings with this decoder, scored as `hwr eval` scores them, and lines/s."""
    started = time.perf_counter()
    texts = {}
    for chunk, log_probs, lengths in batches:
        for i, rec in zip(chunk, decoder.decode(log_probs, lengths)):
            texts[i] = rec.text
    seconds = time.perf_counter() - started
    report = score_texts([s.id for s in samples], [s.text for s in samples], [texts[i] for i in range(len(samples))])
    return report, len(samples) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/hwr-en-small")
    parser.add_argument("--lms", required=True, help="character LMs, comma-separated; the first is the baseline")
    parser.add_argument("--n", type=int, default=600, help="lines of each set")
    parser.add_argument("--lm-weight", type=float, default=None, help="unset: the char mode's default")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    recognizer = Recognizer.load(args.model, device="cpu")
    options = {} if args.lm_weight is None else {"lm_weight": args.lm_weight}
    decoders = {lm: make_decoder("beam", recognizer.charset, lm=lm, **options) for lm in args.lms.split(",")}
    sets = {"harder": list(hard_validation_lines(args.n)),
            "other-text": lines_with_text(prose_lines(default_prose(), args.n))}
    report: dict = {"model": args.model, "lms": list(decoders), "sets": {}}
    for name, samples in sets.items():
        batches = posteriors(recognizer, samples)
        readings = {lm: read_with(decoder, batches, samples) for lm, decoder in decoders.items()}
        first, (baseline, _) = next(iter(readings.items()))
        results = {}
        for lm, (scored, lines_per_s) in readings.items():
            result = {"cer": scored.cer, "wer": scored.wer, "search_lines_per_s": lines_per_s}
            if lm != first:
                comparison = compare_reports(baseline, scored, first, lm)
                result["against_first"] = {key: value for key, value in comparison.to_dict().items()
                                           if key != "disagreements"}
            results[lm] = result
            print(name, Path(lm).name, json.dumps(result), flush=True)
        report["sets"][name] = {"lines": len(samples), "example": samples[0].text, **results}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
