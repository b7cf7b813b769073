"""`hwr eval` as a plain function: data sets -> recognition -> scoring -> analysis -> outputs.

One model on one data set gives the summary and the error analysis. `splits` scores several
data sets (train/dev/test) for the bias/variance table; `compare` scores a second model on
the analysed data set for a paired test. The analysed data set is the only one, else the
split named dev (or val), else the last split: error analysis belongs on dev, not test.
"""
from __future__ import annotations

import itertools
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hwr.datasets import open_dataset
from hwr.datasets.errors import DatasetError, SkipReport
from hwr.errors import ConfigError, name_some
from hwr.fileio import LINE_CONTROL_CHARS, check_distinct_outputs, escape_line_controls
from hwr.recognition.decode import decoder_options, describe_decoding, usable_options
from hwr.recognition.model import Recognizer
from hwr.records import FailedInput
from hwr.scoring.evaluate import (
    EvalConfig,
    EvalReport,
    evaluate,
    undefined_rates_note,
    write_lines_csv,
    write_report_json,
    write_worst_csv,
)
from hwr.scoring.report.analysis import ErrorAnalysis, analyze
from hwr.scoring.report.bias_variance import DEV_NAMES, Diagnosis, SplitScore, diagnose, format_table
from hwr.scoring.report.breakdown import AUTO_FIELDS, NO_SUBSET, read_group_table, subset_resolver
from hwr.scoring.report.compare import Comparison, compare_reports, format_comparison
from hwr.scoring.report.html import render_html, write_html
from hwr.scoring.report.svg import show_char

log = logging.getLogger("hwr.scoring.eval")


@dataclass
class DatasetSpec:
    name: str  # split name ("dev"), or the spec itself for a single data set
    spec: str
    split_file: str | None = None


@dataclass
class DatasetRun:
    dataset: DatasetSpec
    report: EvalReport
    analysis: ErrorAnalysis
    images: dict = field(default_factory=dict)  # line id -> image source, analysed set only


@dataclass
class EvalRun:
    model: str
    analysed: DatasetRun
    splits: list[DatasetRun] = field(default_factory=list)
    diagnosis: Diagnosis | None = None
    comparison: Comparison | None = None
    decoding: dict = field(default_factory=dict)  # the decoder's describe(): how the lines were read
    # Reference characters (as scored) the model cannot write, with their counts: each is an error
    # whatever the model reads, and the CER alone had not said why (a Greek set read at 92%).
    unwritable: Counter = field(default_factory=Counter)
    compared_unwritable: Counter = field(default_factory=Counter)  # the same for --compare's model


def parse_splits(splits: str, dataset: str | None = None) -> list[DatasetSpec]:
    """`train=A,dev=B,test=C` -> specs. With a positional IAM `dataset`, A/B/C are its split files."""
    specs = []
    for item in filter(None, (part.strip() for part in splits.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ConfigError(f"--splits expects name=DATASET items, e.g. train=iam:/data/IAM,dev=...; got {item!r}")
        name, value = name.strip(), value.strip()
        if any(spec.name.lower() == name.lower() for spec in specs):
            # The report keys splits by name (and finds dev/test by it): a second one would hide the first.
            raise ConfigError(f"--splits names {name!r} twice; give each split its own name")
        specs.append(DatasetSpec(name, dataset, value) if dataset else DatasetSpec(name, value))
    if not specs:
        raise ConfigError("--splits names no data set")
    return specs


def dataset_specs(cfg: EvalConfig, dataset: str | None) -> list[DatasetSpec]:
    if cfg.splits and cfg.split_file:  # --splits names each split's file: one more would be ignored
        raise ConfigError("--split-file and --splits do not go together: name each split's file in --splits "
                          "(e.g. --splits dev=dev.lst,test=test.lst with the IAM folder)")
    if cfg.splits:
        return parse_splits(cfg.splits, dataset)
    if not dataset:
        raise ConfigError("name a data set to score (or --splits name=DATASET,...)")
    return [DatasetSpec(dataset, dataset, cfg.split_file)]


def analysed_index(specs: list[DatasetSpec]) -> int:
    names = [s.name.lower() for s in specs]
    return next((i for i, n in enumerate(names) if n in DEV_NAMES), len(specs) - 1)


def _forms_table(spec: str) -> Path | None:
    """IAM's ascii/forms.txt, when the data set is an IAM tree that has it (form -> writer)."""
    location = spec[4:] if spec.startswith("iam:") else spec
    forms = Path(location) / "ascii" / "forms.txt"
    return forms if forms.is_file() else None


def _subset_setup(cfg: EvalConfig, spec: str, first_sample, groups: dict[str, str] | None = None):
    """The subset function and a description of it (shown in every report); `groups` is
    `cfg.groups_file` read already (see run_eval)."""
    table_path = Path(cfg.groups_file) if cfg.groups_file else (_forms_table(spec) if cfg.group_by == "auto" else None)
    table = groups if groups is not None else (read_group_table(table_path) if table_path else None)
    if table is not None:
        key = f"table {table_path.name}" + (" (writer)" if table_path.name == "forms.txt" else "")
    elif cfg.group_by == "auto":
        field_name = next((f for f in AUTO_FIELDS if first_sample is not None and first_sample.meta.get(f)), None)
        key = f"auto: {field_name or 'folder of the id'}"
    else:
        key = cfg.group_by
    return subset_resolver(cfg.group_by, table), key


@dataclass
class LoadedDataset:
    """A data set's lines as read, before any is scored."""

    spec: DatasetSpec
    samples: list
    failures: list[FailedInput]  # entries the reader left out as bad (--skip-bad)
    untranscribed: int  # lines left out as not transcribed yet (PAGE work in progress: no failure)
    files: set[str]  # every file it was read from, the bad entries' too: no report may replace one


def load_dataset(ds: DatasetSpec, cfg: EvalConfig) -> LoadedDataset:
    skipped = SkipReport()
    samples = open_dataset(ds.spec, skip_bad=cfg.skip_bad, split_file=ds.split_file, report=skipped)
    if len(samples) == 0:
        raise DatasetError(ds.spec, "the data set holds no lines")
    from hwr.datasets.synthetic import all_lines
    from hwr.synth.parallel import default_processes

    samples = all_lines(samples, default_processes(cfg.render_processes))  # synthetic sets render here
    # Bad ground truth is a failed input like an unreadable image: one record, one exit code.
    failures = [FailedInput(f"{e.source}:{e.line_no}" if e.line_no is not None else e.source,
                            "read" if e.image_missing else "truth", e.reason)
                for e in skipped.problems]
    files = {file for sample in samples for file in sample.files} | {str(e.source) for e in skipped.problems}
    return LoadedDataset(ds, samples, failures, skipped.untranscribed, files)


def report_outputs(cfg: EvalConfig) -> list[tuple[str, str | None]]:
    """The report files `hwr eval` writes, as (option, path)."""
    return [("--json", cfg.json), ("--csv", cfg.csv), ("--html", cfg.html), ("--worst-csv", cfg.worst_csv)]


def check_reports_spare_data(cfg: EvalConfig, datasets: list[LoadedDataset]) -> None:
    """ConfigError naming both paths when a report would be written over a file of a data set
    it scores (`hwr eval gt/ --json gt/line-01.gt.txt` replaced a transcription with JSON).
    Only files with an output's name are compared, so a large data set costs no path
    resolution per line."""
    outputs = [(option, path) for option, path in report_outputs(cfg) if path]
    # The name of the file an output is written into too: a report path that is a link into the
    # data set (reports/latest.csv -> ds/line-01.gt.txt) had replaced its ground truth (a probe helper).
    names = {Path(path).name for _, path in outputs} | {Path(os.path.realpath(path)).name for _, path in outputs}
    for data in datasets:
        same_names = [file for file in data.files if Path(file).name in names]
        check_distinct_outputs(outputs, same_names, f"the data set {data.spec.spec}")


# Characters that look like nothing (or like a space) yet count as edits: a reference holding
# one costs an error no recognizer can avoid, and nobody sees why in the printed lines.
INVISIBLE_CHARS = {"\u00a0": "NBSP", "\u200b": "ZWSP", "\u200c": "ZWNJ", "\u200d": "ZWJ", "\u2060": "WJ",
                   "\ufeff": "BOM", "\u00ad": "SHY"}


# Control characters too (a tab, a lone carriage return from old Mac text, an ESC): the model
# reads a space or nothing there.
CONTROL_NAMES = {"\t": "TAB", "\n": "LF", "\r": "CR", "\x1b": "ESC"}


def invisible_name(char: str) -> str | None:
    """The name a warning gives `char` when it is invisible or a control character, else None."""
    if char in INVISIBLE_CHARS:
        return INVISIBLE_CHARS[char]
    if LINE_CONTROL_CHARS.fullmatch(char):
        return CONTROL_NAMES.get(char, f"U+{ord(char):04X}")
    return None


def warn_invisible_characters(samples: list, shown: int = 3) -> list[str]:
    """Log a warning naming the lines whose reference holds an invisible or control character;
    their ids."""
    found = [(s, sorted({name for name in map(invisible_name, s.text) if name})) for s in samples]
    found = [(s, names) for s, names in found if names]
    if found:
        examples = name_some((f"{s.where} ({', '.join(names)})" for s, names in found), shown)
        log.warning("%d references hold invisible characters, scored as they are: %s", len(found), examples)
    return [s.id for s, _ in found]


def warn_unmatched_groups(cfg: EvalConfig, samples: list, subset_of) -> None:
    """A warning when the breakdown asked for puts every line in no subset: a --group-by field
    no line has (a typo), or a --groups-file whose ids match no line, would otherwise just
    leave the breakdown out, as if the data set had one group."""
    if cfg.group_by in ("auto", "none") and not cfg.groups_file:
        return
    if any(subset_of(s) != NO_SUBSET for s in samples):
        return
    if cfg.groups_file:
        log.warning("--groups-file %s: no line's id (nor form id) is in it: no breakdown by it", cfg.groups_file)
    elif cfg.group_by.startswith("id:"):
        log.warning("--group-by %s: the pattern matches no line id (e.g. %s): no breakdown", cfg.group_by,
                    samples[0].id)
    else:
        fields = sorted({k for s in samples[:100] for k in s.meta})
        log.warning("--group-by %s: no line has that field (the lines' fields: %s): no breakdown", cfg.group_by,
                    ", ".join(fields) or "none")


def score_dataset(recognizer: Recognizer, data: LoadedDataset, cfg: EvalConfig, keep_images: bool,
                  groups: dict[str, str] | None = None) -> DatasetRun:
    samples = data.samples
    warn_invisible_characters(samples)
    subset_of, subset_key = _subset_setup(cfg, data.spec.spec, samples[0], groups)
    warn_unmatched_groups(cfg, samples, subset_of)
    report = evaluate(recognizer, samples, cfg.batch_size, cfg.skip_bad, normalization=cfg.normalization(),
                      subset_of=subset_of, workers=cfg.workers, processes=cfg.processes)
    report.failures[:0] = data.failures
    report.untranscribed = data.untranscribed
    analysis = analyze(report, cfg.bootstrap, cfg.seed, subset_key)
    images = {s.id: s.image for s in samples} if keep_images else {}
    return DatasetRun(data.spec, report, analysis, images)


def run_eval(cfg: EvalConfig, dataset: str | None = None) -> EvalRun:
    """Score the model (and `cfg.compare`) as configured; writes nothing (see write_outputs),
    but refuses a report path that is a file of a data set before the first line is read."""
    specs = dataset_specs(cfg, dataset)
    # Read before the model loads: a bad table should not cost a model load and a data set.
    groups = read_group_table(cfg.groups_file, "--groups-file") if cfg.groups_file else None
    # Two readings of one model (`--decoder greedy --compare-decoder beam-char --lm X`: "does my
    # LM help?"): each takes the search settings it uses, and one that neither uses is refused.
    if cfg.compare_decoder:
        check_used_by_either(cfg)
    recognizer = cfg.load_recognizer(decoder=cfg.decoder if cfg.compare_decoder else None)
    model = str(recognizer.path)
    datasets = [load_dataset(ds, cfg) for ds in specs]
    check_reports_spare_data(cfg, datasets)
    if cfg.splits:
        warn_of_shared_lines(datasets)
    focus = analysed_index(specs)
    runs = [score_dataset(recognizer, data, cfg, keep_images=(i == focus), groups=groups)
            for i, data in enumerate(datasets)]
    run = EvalRun(model, runs[focus], runs if cfg.splits else [], decoding=recognizer.describe_reading(),
                  unwritable=unwritable_characters(recognizer.charset, runs[focus].report.results,
                                                   cfg.normalization()))
    if cfg.splits:
        run.diagnosis = diagnose([split_score(r) for r in runs], cfg.human_cer, cfg.target_cer)
    if cfg.compare or cfg.compare_decoder:
        other = cfg.load_recognizer(cfg.compare, decoder=cfg.compare_decoder)
        b = score_dataset(other, datasets[focus], cfg, keep_images=False, groups=groups)
        run.comparison = compare_reports(run.analysed.report, b.report, *_reading_labels(recognizer, other, cfg),
                                         cfg.bootstrap, cfg.seed)
        # A model of another charset loses every character it cannot write: said for it too.
        run.compared_unwritable = unwritable_characters(other.charset, b.report.results, cfg.normalization())
    return run


def check_used_by_either(cfg: EvalConfig) -> None:
    """ConfigError naming the search settings that neither --decoder nor --compare-decoder uses."""
    given = decoder_options(cfg)
    unused = set(given) - set(usable_options(cfg.decoder, given)) - set(usable_options(cfg.compare_decoder, given))
    if unused:
        flags = ", ".join("--" + name.replace("_", "-") for name in sorted(unused))
        raise ConfigError(f"{flags}: used by neither --decoder {cfg.decoder} nor --compare-decoder "
                          f"{cfg.compare_decoder}")


def warn_of_shared_lines(datasets: list[LoadedDataset]) -> None:
    """Warn naming each pair of --splits that share lines (the same image file, or the same line
    of the same PAGE or synthetic source): the gaps between such splits, which the bias and
    variance reading rests on, measure less than they seem (a probe helper)."""
    def key(sample) -> tuple:
        if isinstance(sample.image, (str, Path)):
            return ("file", str(Path(sample.image).resolve()))
        if "file" in sample.meta:  # a PAGE line: its XML and line id, whatever folder was named
            xml, line_id = sample.meta["file"].rsplit("#", 1)
            return ("page line", str(Path(xml).resolve()), line_id)
        return ("line", sample.id)  # a synthetic line's id names its split, seed and index

    keys = [{key(sample) for sample in data.samples} for data in datasets]
    for i, j in itertools.combinations(range(len(datasets)), 2):
        shared = keys[i] & keys[j]
        if shared:
            log.warning("--splits: %s and %s share %d of their lines (%d and %d): the gap between them measures "
                        "less than it seems; give each split lines of its own", datasets[i].spec.name,
                        datasets[j].spec.name, len(shared), len(datasets[i].samples), len(datasets[j].samples))


def unwritable_characters(charset, results, normalization) -> Counter:
    """The characters of the scored references (`normalization` applied) that no reading can
    give, `charset`'s symbols put through the same normalisation (spaces aside), counted: with
    --casefold an upper-case-only model writes "hello" (a review helper)."""
    writable = set(charset.symbols) | set("".join(normalization(symbol) for symbol in charset.symbols))
    missing = Counter()
    for result in results:
        missing.update(ch for ch in result.reference if not ch.isspace() and ch not in writable)
    return missing


def split_score(run: DatasetRun) -> SplitScore:
    """A split's line of the bias/variance table; no CER when nothing was there to divide by
    (every line left out by --skip-bad, or only empty references)."""
    report = run.report
    if report.chars == 0:
        return SplitScore(run.dataset.name, None, None, report.lines)
    return SplitScore(run.dataset.name, report.cer, run.analysis.cer_ci, report.lines)


def _reading_labels(a: Recognizer, b: Recognizer, cfg: EvalConfig) -> tuple[str, str]:
    """The comparison's two sides: the models, and with --compare-decoder how each read."""
    if not cfg.compare_decoder:
        return str(a.path), str(b.path)
    return tuple(f"{r.path} ({describe_decoding(r.describe_reading())})" for r in (a, b))  # type: ignore[return-value]


# --- Outputs ---------------------------------------------------------------------------------

def format_summary(run: EvalRun, cfg: EvalConfig) -> str:
    """What `hwr eval` prints: the headline numbers first, then where the errors are."""
    report, analysis = run.analysed.report, run.analysed.analysis
    # With no reference characters (or words) a rate divides by zero: say so, not "1.0000 (283/0)".
    cer = (f"CER {report.cer:.4f} [{analysis.cer_ci.low:.4f}, {analysis.cer_ci.high:.4f}] "
           f"({report.char_errors}/{report.chars})" if report.chars else "CER undefined")
    wer = (f"WER {report.wer:.4f} [{analysis.wer_ci.low:.4f}, {analysis.wer_ci.high:.4f}] "
           f"({report.word_errors}/{report.words})" if report.words else "WER undefined")
    out = [f"decoding: {describe_decoding(run.decoding)}; normalisation: {cfg.normalization().describe()}",
           f"{run.analysed.dataset.name}: lines {report.lines}  {cer}  {wer}  (95% bootstrap CI)"]
    note = (f"no line was scored: all were left out ({report.skipped_lines()})" if report.lines == 0 else
            undefined_rates_note(report.chars, report.char_errors, report.words, report.word_errors))
    if note:
        out.append(f"warning: {note}")
    if run.unwritable and report.chars:
        out.append(_unwritable_warning(run.unwritable, report.chars, "this model"))
    if run.diagnosis is not None:
        out += ["bias / variance:", format_table(run.diagnosis)]
    if report.lines:  # an unscored split has no breakdown to show
        out += _breakdown_lines(analysis)
    if run.comparison is not None:
        out += ["model comparison (paired bootstrap):", format_comparison(run.comparison, cfg.worst)]
        if run.compared_unwritable and report.chars:
            out.append(_unwritable_warning(run.compared_unwritable, report.chars,
                                           f"B ({run.comparison.model_b})"))
    if cfg.worst:
        out.append(f"worst {min(cfg.worst, len(report.results))} lines:")
        out += [f"  {r.id}  CER {r.cer:.3f}\n    ref: {escape_line_controls(r.reference)}\n"
                f"    hyp: {escape_line_controls(r.hypothesis)}" for r in report.worst(cfg.worst)]
    return "\n".join(out)


def _unwritable_warning(unwritable: Counter, chars: int, who: str) -> str:
    total = sum(unwritable.values())
    shown = ", ".join(f"{show_char(ch)} x{n}" for ch, n in unwritable.most_common(8))
    return (f"warning: {total} of the {chars} reference characters ({total / chars:.1%}) are ones {who} cannot "
            f"write ({shown}{', ...' if len(unwritable) > 8 else ''}): each counts as an error whatever it reads")


def _breakdown_lines(analysis: ErrorAnalysis, rows: int = 5) -> list[str]:
    out = []
    if len(analysis.subsets) > 1:
        out.append(f"CER by subset ({analysis.subset_key}), worst {min(rows, len(analysis.subsets))} "
                   f"of {len(analysis.subsets)}: "
                   + ", ".join(f"{g.name} {g.cer:.3f} ({g.lines})" for g in analysis.subsets[:rows]))
    out.append("CER by length: " + ", ".join(f"{g.name} {g.cer:.3f} ({g.lines})" for g in analysis.by_length))
    confusions = analysis.top_confusions(10)["all"]
    if confusions:
        out.append("top confusions (ref>hyp): " + ", ".join(
            f"{show_char(c['reference'])}>{show_char(c['hypothesis'])} {c['count']}" for c in confusions))
    return out


def write_outputs(run: EvalRun, cfg: EvalConfig) -> None:
    analysed = run.analysed
    if cfg.csv:
        write_lines_csv(analysed.report, Path(cfg.csv))
    if cfg.worst_csv:
        write_worst_csv(analysed.report, Path(cfg.worst_csv), cfg.worst_n, cfg.label_columns.split(","))
    if cfg.json:
        write_report_json(analysed.report, Path(cfg.json), run.model, analysed.dataset.spec, json_extra(run))
    if cfg.html:
        write_html(cfg.html, render_html(analysed.report, analysed.analysis, run.model, analysed.dataset.spec,
                                         analysed.images, cfg.worst_n, run.diagnosis, run.comparison,
                                         describe_decoding(run.decoding) if run.decoding else ""))


def json_extra(run: EvalRun) -> dict:
    extra = {"decoding": run.decoding, "split": run.analysed.dataset.name if run.splits else None,
             "unwritable_chars": dict(run.unwritable.most_common()),
             "split_file": run.analysed.dataset.split_file, **run.analysed.analysis.to_dict()}
    if run.diagnosis is not None:
        extra["bias_variance"] = run.diagnosis.to_dict()
    if run.comparison is not None:
        extra["comparison"] = {**run.comparison.to_dict(),
                               "unwritable_chars_b": dict(run.compared_unwritable.most_common())}
    return extra
