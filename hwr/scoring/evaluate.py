"""Scoring a model on a labelled data set: corpus CER/WER, per-line results, worst lines.

Recognition and scoring are separate steps: `evaluate()` recognises the lines and hands the
texts to `score_texts()`, which the analysis, the benchmarks and other engines' outputs use
directly. Analysis and reports (bootstrap, breakdowns, confusions, HTML) live in `hwr.scoring.report`.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hwr.config_args import check_at_least, setting
from hwr.errors import ConfigError, counted
from hwr.fileio import atomic_write_bytes, utf8_bytes
from hwr.recognition.imaging import ImageError
from hwr.recognition.settings import RecognizerSettings
from hwr.records import FailedInput, LineSample
from hwr.scoring.metrics import ErrorCounts, TextNormalization, char_errors, undefined_rate, word_errors
from hwr.spreadsheet import text_cell

if TYPE_CHECKING:
    from hwr.recognition.model import Recognizer

log = logging.getLogger("hwr.scoring.evaluate")

DEFAULT_LABEL_COLUMNS = "slant,touching,rare char,label error"
JSON_SCHEMA = "hwr-eval/2"  # bump when a documented key changes meaning (docs/eval-json.md)


@dataclass
class LineResult:
    """One scored line. `reference`/`hypothesis` are the texts as scored (after normalisation)."""

    id: str
    reference: str
    hypothesis: str
    cer: float
    wer: float
    char_errors: int
    confidence: float
    word_errors: int = 0
    chars: int = 0  # reference characters
    words: int = 0  # reference words
    subset: str = ""  # writer / form / font ... (see hwr.scoring.report.breakdown)


def score_line(id: str, reference: str, hypothesis: str, confidence: float = 1.0, subset: str = "",
               normalization: TextNormalization | None = None) -> LineResult:
    if normalization is not None:
        reference, hypothesis = normalization(reference), normalization(hypothesis)
    ce, we = char_errors(reference, hypothesis), word_errors(reference, hypothesis)
    chars, words = len(reference), len(reference.split())
    return LineResult(id, reference, hypothesis, _line_rate(ce, chars), _line_rate(we, words), ce, confidence,
                      we, chars, words, subset)


def _line_rate(errors: int, length: int) -> float:
    if length == 0:
        return 0.0 if errors == 0 else 1.0
    return errors / length


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
    failures: list[FailedInput] = field(default_factory=list)  # lines left out (skip_bad): images, ground truth
    normalization: list[str] = field(default_factory=list)  # TextNormalization.steps applied
    untranscribed: int = 0  # lines left out because nobody has transcribed them yet (PAGE); not failures

    def worst(self, n: int = 10) -> list[LineResult]:
        """Most character errors first (absolute, so long bad lines lead), then rate, then id."""
        return sorted(self.results, key=lambda r: (-r.char_errors, -r.cer, r.id))[:n]

    def skipped_lines(self) -> str:
        """The lines left out, by why: "3 lines (unreadable image: 2, bad ground truth: 1)"."""
        return skipped_by_cause(self.failures, "line")

    def summary(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("results", "failures")} | {
            "failures": len(self.failures)}


def skipped_by_cause(failures: Sequence[FailedInput], unit: str) -> str:
    # unit: the singular noun, "line" or "page"
    """Inputs left out, by why: "3 lines (unreadable image: 2, bad ground truth: 1)"; "none"."""
    truth = sum(f.stage == "truth" for f in failures)
    parts = [f"{what}: {n}" for what, n in (("unreadable image", len(failures) - truth),
                                            ("bad ground truth", truth)) if n]
    return f"{counted(len(failures), unit)} ({', '.join(parts)})" if parts else "none"


def report_from_results(results: list[LineResult], failures: Sequence[FailedInput] = (),
                        normalization: TextNormalization | None = None) -> EvalReport:
    counts = ErrorCounts()
    for r in results:
        counts.add_counts(r.char_errors, r.chars, r.word_errors, r.words)
    steps = normalization.steps if normalization is not None else []
    return EvalReport(counts.cer, counts.wer, counts.lines, counts.chars, counts.words, counts.char_errors,
                      counts.word_errors, results, list(failures), steps)


def score_texts(ids: Sequence[str], references: Sequence[str], hypotheses: Sequence[str],
                confidences: Sequence[float] | None = None, subsets: Sequence[str] | None = None,
                normalization: TextNormalization | None = None) -> EvalReport:
    """Score given transcriptions (no recognition): the scorer behind `evaluate()`."""
    if not len(ids) == len(references) == len(hypotheses):
        raise ValueError("ids, references and hypotheses must have the same length")
    confidences = confidences if confidences is not None else [1.0] * len(ids)
    subsets = subsets if subsets is not None else [""] * len(ids)
    results = [score_line(*row, normalization=normalization)
               for row in zip(ids, references, hypotheses, confidences, subsets)]
    return report_from_results(results, normalization=normalization)


def evaluate(recognizer: Recognizer, samples: Sequence[LineSample], batch_size: int = 16, skip_bad: bool = False,
             progress=None, normalization: TextNormalization | None = None,
             subset_of: Callable[[LineSample], str] | None = None, workers: int = 1,
             processes: bool = False) -> EvalReport:
    """Recognise every sample and score it. Unreadable images fail the run (ImageError naming
    the file) unless skip_bad, which records each as a FailedInput and goes on.

    Lines are read through `Recognizer.prepare` and `recognize_prepared` (the two halves of
    `Recognizer.recognize`, on_error="return"), the one path from line images to text. The
    reading half runs ahead of the network in `workers` threads (image decoding, OpenCV and
    torch release the GIL), or with `processes` in that many worker processes that never import
    torch (hwr.scoring.line_workers: the lines come back as uint8 ink, as the page pipeline's
    do); 0 reads each batch in this thread before the network reads it. The samples are taken
    from `samples` in this thread either way: a data set that renders lines on demand is not
    safe to share between threads.
    `subset_of(sample)` names the line's subset (writer, font, ...) for breakdowns.
    """
    from hwr.documents.pages import prefetch_map
    from hwr.scoring.line_workers import prepared_in_workers, sample_batches

    def load(batch):
        return list(batch.samples), recognizer.prepare([sample.image for sample in batch.samples], on_error="return")

    if processes and workers > 0:
        batches = prepared_in_workers(samples, batch_size, recognizer.normalize_config, workers)
    else:
        batches = prefetch_map(load, sample_batches(samples, batch_size), workers=workers)
    results: list[LineResult] = []
    failures: list[FailedInput] = []
    # Closed on the way out, an exception too: the loaders (worker processes, their shared
    # memory) end with the run, not whenever the exception holding this frame is dropped.
    with contextlib.closing(batches):
        for batch, prepared in batches:
            read = recognizer.recognize_prepared(prepared, batch_size)
            for sample, rec in zip(batch, read):
                if isinstance(rec, FailedInput):
                    # An array has no file name; the line id is what the user can look up.
                    source = rec.source if isinstance(sample.image, (str, Path)) else sample.id
                    if not skip_bad:
                        raise ImageError(source, sample.with_row(rec.message))
                    failures.append(FailedInput(source, "read", sample.with_row(rec.message), sample.id))
                    continue
                subset = subset_of(sample) if subset_of is not None else ""
                results.append(score_line(sample.id, sample.text, rec.text, rec.confidence, subset, normalization))
            if progress is not None:
                progress(len(batch))
    return report_from_results(results, failures, normalization)


def undefined_rates_note(chars: int, char_errors: int, words: int, word_errors: int) -> str:
    """A warning when a rate has no reference to divide by ("" when both are defined)."""
    notes = []
    if chars == 0:
        notes.append(f"CER is undefined: {undefined_rate(char_errors, 'characters')}")
    if words == 0:
        notes.append(f"WER is undefined: {undefined_rate(word_errors, 'words')}")
    return "; ".join(notes)


# --- Per-line outputs ---------------------------------------------------------------------

LINE_COLUMNS = ["id", "subset", "reference", "hypothesis", "chars", "char_errors", "cer", "words", "word_errors",
                "wer", "confidence"]


def _line_row(r: LineResult) -> list:
    # The text cells escaped (hwr.spreadsheet): a line reading "=1+1" must not become a formula.
    return [*map(text_cell, (r.id, r.subset, r.reference, r.hypothesis)), r.chars, r.char_errors, f"{r.cer:.4f}",
            r.words, r.word_errors, f"{r.wer:.4f}", f"{r.confidence:.4f}"]


def write_csv(path: Path, header: list[str], rows: Iterable[list]) -> None:
    """A CSV written whole (atomically), UTF-8; text cells must come escaped (hwr.spreadsheet)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_bytes(Path(path), utf8_bytes(buffer.getvalue()))


def write_lines_csv(report: EvalReport, path: Path) -> None:
    """Every scored line, in data set order."""
    write_csv(path, LINE_COLUMNS, (_line_row(r) for r in report.results))


def write_worst_csv(report: EvalReport, path: Path, n: int = 100,
                    label_columns: Sequence[str] = tuple(DEFAULT_LABEL_COLUMNS.split(","))) -> None:
    """The n worst lines with empty label columns, for tallying error causes by hand.

    Filling in a cause per line over ~100 errors says which fix is worth most (a column
    marked on 40% of lines beats one marked on 2%) before any time goes into it.
    """
    labels = [c.strip() for c in label_columns if c.strip()]
    write_csv(path, LINE_COLUMNS + labels + ["notes"],
              (_line_row(r) + [""] * (len(labels) + 1) for r in report.worst(n)))


def write_report_json(report: EvalReport, path: Path, model: str, dataset: str, extra: dict | None = None) -> None:
    """The summary, per-line details and any analysis blocks (keys: docs/eval-json.md)."""
    head = {"schema": JSON_SCHEMA, "model": model, "dataset": dataset, **report.summary(),
            "failed_files": [str(f) for f in report.failures]}
    # One flat object: a block key equal to a summary key would silently replace the figure.
    clash = sorted(set(head) & set(extra or {}))
    if clash:
        raise ValueError(f"eval JSON: analysis keys {clash} would overwrite summary keys")
    payload = {**head, **(extra or {}), "lines_detail": [asdict(r) for r in report.results]}
    atomic_write_bytes(Path(path), utf8_bytes(json.dumps(payload, indent=1, ensure_ascii=False)))



@dataclass
class EvalConfig(RecognizerSettings):
    """Settings of `hwr eval` (CLI flags and --config files read these defaults)."""

    skip_bad: bool = setting(
        False,
        help="record unreadable lines and pages and go on (exit 1), instead of stopping (exit 2)")
    split_file: str | None = setting(None, help="IAM split file (form or line ids) choosing the lines to score")
    workers: int = setting(
        1,
        help="line loaders that read and normalise the next batches while the network reads (threads, or "
             "processes with --processes); 0: all in one thread")
    processes: bool = setting(
        False,
        help="run the --workers as processes that never load torch or the model and hand lines back "
             "through shared memory as uint8 ink (as a GPU reads them; on a CPU a few lines in a hundred may "
             "read differently from the float lines of threads): for many-core (GPU) hosts; on 2 cores "
             "threads are faster")
    render_processes: int | None = setting(
        None,
        help="processes that render a synthetic data set (synth:...) before it is read; default: the cores, at "
             "most 8; 1: in this process (the same lines either way)")
    csv: str | None = setting(None, help="write per-line results (CSV) here")
    json: str | None = setting(None, help="write the summary and per-line results (JSON) here")
    worst: int = setting(10, help="how many of the worst lines to print")
    compare: str | None = setting(
        None,
        help="a second model directory: paired bootstrap test on the same lines, and where they disagree")
    compare_decoder: str | None = setting(
        None,
        help="read the lines a second time with this decoder (greedy, auto, beam, ...; the --compare model's "
             "reading when that is given): a paired test of the two readings, e.g. whether the language model "
             "helps on your lines")
    splits: str | None = setting(
        None,
        help="score several data sets side by side, e.g. train=PATH,dev=PATH,test=PATH, with "
             "bias/variance gaps (given a positional IAM root: train=SPLITFILE,...)")
    human_cer: float | None = setting(None, help="human-level CER (e.g. 0.02), the baseline for avoidable bias")
    target_cer: float | None = setting(
        None,
        help="the CER the project aims for; the reading says whether dev meets it")
    iam_detokenize: bool = setting(
        False,
        help="score with IAM's tokenisation undone (no space before punctuation, \"did n't\" -> \"didn't\")")
    casefold: bool = setting(False, help="score case-insensitively")
    strip_punctuation: bool = setting(False, help="score without punctuation characters")
    collapse_whitespace: bool = setting(False, help="score with whitespace runs collapsed and ends trimmed")
    group_by: str = setting(
        "auto",
        help="line subsets for the breakdown: auto, none, a metadata field (font, form, kind, page; synthetic sets: "
             "condition, struck, pen) or id:REGEX")
    groups_file: str | None = setting(
        None,
        help="id<TAB>subset table (line or form ids); an IAM ascii/forms.txt gives writers")
    bootstrap: int = setting(1000, help="bootstrap resamples for the 95% confidence intervals")
    seed: int = setting(0, help="random seed of the bootstrap")
    html: str | None = setting(None, help="write a self-contained HTML error-analysis report here")
    worst_csv: str | None = setting(
        None,
        help="write the worst lines with empty label columns here, for labelling error causes by hand")
    worst_n: int = setting(100, help="lines in --worst-csv and the HTML gallery")
    label_columns: str = setting(DEFAULT_LABEL_COLUMNS, help="comma-separated label columns of --worst-csv")

    def __post_init__(self) -> None:
        super().__post_init__()  # the decoder settings
        # Checked here, before the model loads and every line is read, not where they are used.
        if self.compare_decoder is not None:
            from hwr.recognition.decode import check_decoder_name

            check_decoder_name(self.compare_decoder)
        check_at_least(self, 1, "batch_size", "bootstrap")
        check_at_least(self, 0, "worst", "worst_n", "workers")
        if self.render_processes is not None:
            check_at_least(self, 1, "render_processes")
        for name in ("human_cer", "target_cer"):  # NaN made every verdict "misses"
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a rate of 0 or more (0.02 is 2%), got {value}")
        if self.group_by.startswith("id:"):
            try:
                re.compile(self.group_by[3:])
            except re.error as exc:
                raise ConfigError(f"--group-by {self.group_by!r}: not a valid regular expression ({exc})") from None

    def normalization(self) -> TextNormalization:
        return TextNormalization(iam_detokenize=self.iam_detokenize, casefold=self.casefold,
                                 strip_punctuation=self.strip_punctuation,
                                 collapse_whitespace=self.collapse_whitespace)
