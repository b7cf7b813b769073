"""Scoring a model on a labelled data set: corpus CER/WER, per-line results, worst lines."""
from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .imaging import ImageError
from .metrics import ErrorCounts, cer, char_errors, wer
from .model import Recognizer, atomic_write_bytes
from .records import LineSample

log = logging.getLogger("hwr.evaluate")


@dataclass
class LineResult:
    id: str
    reference: str
    hypothesis: str
    cer: float
    wer: float
    char_errors: int
    confidence: float


@dataclass
class EvalReport:
    cer: float
    wer: float
    lines: int
    chars: int
    words: int
    char_errors: int
    word_errors: int
    results: list[LineResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # "file: reason" for unreadable lines

    def worst(self, n: int = 10) -> list[LineResult]:
        return sorted(self.results, key=lambda r: (-r.char_errors, -r.cer, r.id))[:n]

    def summary(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("results", "failures")} | {
            "failures": len(self.failures)}


def evaluate(recognizer: Recognizer, samples: list[LineSample], batch_size: int = 16, skip_bad: bool = False,
             progress=None) -> EvalReport:
    """Recognise every sample and score it. Unreadable images fail the run unless skip_bad."""
    counts = ErrorCounts()
    results: list[LineResult] = []
    failures: list[str] = []
    for start in range(0, len(samples), batch_size):
        chunk, lines = [], []
        for sample in samples[start : start + batch_size]:
            try:
                lines.append(recognizer.preprocess(sample.image))
                chunk.append(sample)
            except ImageError as exc:
                if not skip_bad:
                    raise
                failures.append(str(exc))
        for sample, rec in zip(chunk, recognizer.recognize_normalized(lines, batch_size)):
            counts.add(sample.text, rec.text)
            results.append(LineResult(
                sample.id, sample.text, rec.text, cer(sample.text, rec.text), wer(sample.text, rec.text),
                char_errors(sample.text, rec.text), rec.confidence))
        if progress is not None:
            progress(len(chunk) + (len(samples[start : start + batch_size]) - len(chunk)))
    return EvalReport(counts.cer, counts.wer, counts.lines, counts.chars, counts.words, counts.char_errors,
                      counts.word_errors, results, failures)


def write_lines_csv(report: EvalReport, path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "reference", "hypothesis", "cer", "wer", "char_errors", "confidence"])
    for r in report.results:
        writer.writerow([r.id, r.reference, r.hypothesis, f"{r.cer:.4f}", f"{r.wer:.4f}", r.char_errors, f"{r.confidence:.4f}"])
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


def write_report_json(report: EvalReport, path: Path, model: str, dataset: str) -> None:
    payload = {"model": model, "dataset": dataset, **report.summary(),
               "failed_files": report.failures, "lines_detail": [asdict(r) for r in report.results]}
    atomic_write_bytes(path, json.dumps(payload, indent=1, ensure_ascii=False).encode("utf-8"))


@dataclass
class EvalConfig:
    """Settings of `hwr eval` (CLI flags and --config files read these defaults)."""

    model: str | None = None  # model directory; default: the shipped model
    device: str = "auto"
    decoder: str = "greedy"
    batch_size: int = 16
    skip_bad: bool = False
    split_file: str | None = None  # IAM split file (form or line ids)
    csv: str | None = None  # per-line CSV output
    json: str | None = None  # summary + per-line JSON output
    worst: int = 10  # how many of the worst lines to print
