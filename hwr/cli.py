"""The `hwr` command line: transcribe, train, average, eval, synth, lm, ui.

Each subcommand builds its settings from a config dataclass (see `hwr.config_args`) and
calls a plain Python function, so everything the CLI does is also a library call.
"""
from __future__ import annotations

import argparse
import difflib
import logging
import os
import re
import signal
import sys
from dataclasses import asdict, replace
from pathlib import Path

from hwr import __version__
from hwr.config_args import add_dataclass_arguments, build_config
from hwr.errors import ConfigError, HwrError, MissingFileError, counted, describe_os_error, is_users_os_error, name_some
from hwr.fileio import (
    TEXT_ERRORS,
    check_distinct_outputs,
    check_output_dir,
    check_output_file,
    escape_controls,
    escape_line_controls,
    not_found_reason,
    special_file_kind,
)
from hwr.logs import log_to_stderr


def emit(text: str) -> None:
    """Print a result to stdout. When the reader has gone (`hwr transcribe ... | head`), the
    rest of the output is dropped, not the work: the batch goes on and its files are written."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Point stdout at /dev/null: later prints, and Python's flush at exit, find no broken pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def lenient_stdout() -> None:
    """Print a file name's bytes that are not UTF-8 as \\udcXX escapes (hwr.fileio.TEXT_ERRORS):
    a strict stdout (macOS, an en_US.UTF-8 locale) would raise on the first such name that a
    transcription prints and stop the batch."""
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors=TEXT_ERRORS)


class CommandLineParser(argparse.ArgumentParser):
    """hwr's argument parser (its subcommands' too): flags are never abbreviated (`--out` is not
    taken for `--output-dir`, and a flag added later cannot change what an abbreviation in a
    user's script means), and an unknown flag is reported by the command it was given to, with
    its usage and the closest flag it knows. argparse's own report came from the top-level
    parser, whose usage lists only the commands: `hwr transcribe x.png --fromat json` answered
    `usage: hwr [-h] [--version] COMMAND ...` and no hint. A value like `-1e6` is a negative
    number, not a flag (argparse before Python 3.13 knew only `-5` and `-.5`: `--word-score -1e6`
    was "expected one argument")."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        # Python 3.13's own pattern: a dash, then a digit or a point and a digit.
        self._negative_number_matcher = re.compile(r"-\.?\d")

    def parse_args(self, args=None, namespace=None):
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            command = self.command_parser(parsed)
            command.error(f"unrecognized arguments: {' '.join(unknown)}{command.closest_flags(unknown)}")
        return parsed

    def command_parser(self, parsed: argparse.Namespace) -> CommandLineParser:
        """The (sub)command's own parser that `parsed` came through: `hwr lm build` -> build's."""
        parser = self
        while True:
            commands = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
            chosen = getattr(parsed, commands.dest, None) if commands else None
            if chosen not in (commands.choices if commands else {}):
                return parser
            parser = commands.choices[chosen]

    def closest_flags(self, unknown: list[str]) -> str:
        """" (did you mean --format?)" for each unknown flag: the flags it abbreviates, else the
        one it most resembles (a typo)."""
        known = [flag for action in self._actions for flag in action.option_strings if flag.startswith("--")]
        flags = [word.split("=", 1)[0] for word in unknown if word.startswith("--")]
        hints = []
        for flag in flags:
            matches = [k for k in known if k.startswith(flag)][:3] or difflib.get_close_matches(flag, known, n=1)
            if matches:
                hints.append(f"{flag + ': ' if len(flags) > 1 else ''}{' or '.join(matches)}")
        return f" (did you mean {'; '.join(hints)}?)" if hints else ""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="JSON, YAML or TOML file of settings; flags override it")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def command_named(argv: list[str]) -> str:
    """The command `argv` names ("" for none: `hwr --help`, `hwr --version`, a misspelt one). The
    top-level parser's own flags take no value, so the first word that is not a flag is it."""
    first = next((word for word in argv if not word.startswith("-")), "")
    return first if first in COMMANDS else ""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """hwr's parser, every command's flags (`only` None) or just those of the command `only`
    names: each command's settings import its module, and those of train, adapt and average import
    torch (a few seconds), which `hwr --help` and the other commands' help need not wait for (the
    settings of transcribe, eval and ui are torch-free: hwr.recognition.settings)."""

    def wanted(command: str) -> bool:
        return only is None or only == command

    parser = CommandLineParser(
        prog="hwr", description="Handwriting text recognition: read, train on and score handwritten lines.")
    parser.add_argument("--version", action="version", version=f"hwr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("transcribe", help="read line images or whole pages and write their text",
                       description="Transcribe line images or scanned pages (images, multi-page TIFF, PDF) with "
                                   "a model (default: the shipped one). --mode auto reads PDFs and multi-page TIFFs "
                                   "as pages (segmented into lines), other images as single lines, unless the "
                                   "segmenter finds two or more text lines on one: then the surer of its two "
                                   "readings (as lines, whole) is kept.")
    if wanted("transcribe"):
        from hwr.documents.transcribe import TranscribeConfig

        p.add_argument("inputs", nargs="+", help="image or PDF files, folders (recursive), glob patterns, or "
                                                 ".txt/.lst files listing one path per line")
        add_dataclass_arguments(p, TranscribeConfig)
    _common(p)

    p = sub.add_parser("train", help="train a model", description="Train a line recognizer with CTC. "
                       "Runs unchanged under `torchrun --nproc-per-node N -m hwr train ...` (DDP).")
    if wanted("train"):
        from hwr.training.settings import TrainConfig

        add_dataclass_arguments(p, TrainConfig)
        p.add_argument("--nproc", type=int, default=1,
                       help="launch N data-parallel processes on this machine through torchrun (default: 1)")
    _common(p)

    p = sub.add_parser("adapt", help="fine-tune a model on your own labelled lines (before/after CER)",
                       description="Adapt a model to one collection's handwriting: hold out some lines (whole "
                                   "pages when known), fine-tune on the rest with writer-like augmentation and "
                                   "synthetic rehearsal lines, and write a model folder that reads the held-out "
                                   "lines better, or the base model unchanged when it does not.")
    if wanted("adapt"):
        from hwr.training.settings import AdaptConfig

        p.add_argument("data", nargs="+", help="your labelled lines: folders of image + .gt.txt pairs, IAM roots, "
                                               ".tsv manifests, PAGE XML files or folders (eScriptorium, Transkribus)")
        add_dataclass_arguments(p, AdaptConfig)
    _common(p)

    p = sub.add_parser("average", help="average the weights of several snapshots of one training run",
                       description="Write one model whose weights are the mean of the given models' (e.g. "
                                   "runs/x/snapshots/step-* from hwr train --keep-snapshots). They must share "
                                   "architecture, charset and normalisation; score the result with hwr eval.")
    if wanted("average"):
        from hwr.training.settings import AverageConfig

        p.add_argument("models", nargs="+", help="model directories (two or more)")
        add_dataclass_arguments(p, AverageConfig)
    _common(p)

    p = sub.add_parser("eval", help="score a model on a labelled data set (CER/WER)",
                       description="Score a model on a labelled data set: corpus CER and WER with bootstrap "
                                   "95% intervals, breakdowns, confusions, worst lines; train/dev/test gaps "
                                   "(--splits); a second model (--compare). JSON keys: docs/eval-json.md.")
    if wanted("eval"):
        from hwr.scoring.evaluate import EvalConfig

        p.add_argument("dataset", nargs="?",
                       help="IAM root, pairs folder, .tsv manifest, PAGE XML, or synth:val:N (with --splits: "
                            "an IAM root whose split files --splits names)")
        add_dataclass_arguments(p, EvalConfig)
        p.add_argument("--pages", action="store_true",
                       help="score whole pages (page images with .gt.txt beside them, or PAGE XML): page CER/WER "
                            "through segmentation, and line detection precision/recall at IoU >= 0.5")
    _common(p)

    p = sub.add_parser("synth", help="write a synthetic handwriting data set",
                       description="Render synthetic handwritten lines to disk (IAM layout or image + .gt.txt pairs).")
    if wanted("synth"):
        from hwr.synth.export import SynthExportConfig

        add_dataclass_arguments(p, SynthExportConfig)
    _common(p)

    p = sub.add_parser("lm", help="build n-gram language models for beam decoding",
                       description="Language models for `--decoder beam`: ARPA n-grams (interpolated modified "
                                   "Kneser-Ney).")
    lm_sub = p.add_subparsers(dest="lm_command", required=True, metavar="LM_COMMAND")
    b = lm_sub.add_parser("build", help="estimate an ARPA n-gram LM from text files",
                          description="Estimate an ARPA n-gram LM (one sentence per line) and optionally its lexicon.")
    if wanted("lm"):
        from hwr.recognition.lm import LMBuildConfig

        b.add_argument("corpus", nargs="+", help="UTF-8 text files, one sentence or line per line")
        add_dataclass_arguments(b, LMBuildConfig)
    _common(b)

    # The web app's settings live beside hwr, not in hwr_ui, which imports gradio (seconds more).
    p = sub.add_parser("ui", help="start the web app (transcribe, batch, evaluate)",
                       description="Serve the hwr web app: upload handwriting and read it, transcribe many files, "
                                   "score a model on a zipped data set. Listens on 127.0.0.1 unless --host is given.")
    if wanted("ui"):
        from hwr.ui_cli import UIConfig

        add_dataclass_arguments(p, UIConfig)
    _common(p)
    return parser


def cmd_transcribe(args) -> int:
    from hwr.documents.pipeline import check_outputs_replace_only_own, output_folder_held
    from hwr.documents.transcribe import TranscribeConfig

    cfg = build_config(TranscribeConfig, args, args.config)  # checks --mode, --format, --resume too
    errors = cfg.errors or (str(Path(cfg.output_dir) / "errors.tsv") if cfg.output_dir else None)
    from hwr.documents.pages import input_files

    # Against every file a folder, pattern or list file stands for, not only the files named.
    check_distinct_outputs([("--json", cfg.json), ("--errors", errors)], input_files(args.inputs))
    check_distinct_outputs([("--json", cfg.json), ("--errors", errors)], cfg.files_read(),
                           "the model or its language model")
    _check_reports_are_no_page_outputs(cfg, errors, cfg.formats, args.inputs)
    check_output_dir(cfg.output_dir, "--output-dir")
    check_output_file(cfg.errors, "--errors")
    check_output_file(cfg.json, "--json")
    # Held before the folder is looked at (another run's outputs there are not the user's) and
    # before the --json journal opens (a run refused there would empty the other's).
    with output_folder_held(cfg.output_dir):
        if not cfg.overwrite:
            check_outputs_replace_only_own(args.inputs, cfg.output_dir, cfg.formats, cfg.resume)
        recognizer = cfg.load_recognizer()
        return _transcribe_pages(recognizer, cfg, args.inputs)


def _check_reports_are_no_page_outputs(cfg, errors: str | None, formats: list[str], inputs) -> None:
    """ConfigError when --json or --errors is a file the batch writes for a page (--output-dir o
    --format json --json o/page.json): the page and the report would overwrite each other (the
    page's output, renamed into place, would take the errors listed so far with it). So too for
    the folder's record of hwr's outputs (o/.hwr-outputs.jsonl): a report written over it would
    make every output there look like the user's, and the next run refuse to replace them. And
    for the record of the settings its pages were read with (o/.hwr-reading.settings): a report
    written over it let --resume go on under other settings without a word."""
    from hwr.documents.pages import page_refs
    from hwr.documents.pipeline import READING_SETTINGS_FILE
    from hwr.documents.writers import SUFFIXES, output_paths
    from hwr.documents.writers.manifest import MANIFEST_NAME

    if not cfg.output_dir:
        return
    out = Path(cfg.output_dir).resolve()
    reports = [(option, path, Path(path).resolve()) for option, path in (("--json", cfg.json), ("--errors", errors))
               if path]
    own_records = {MANIFEST_NAME: "the record of the outputs hwr wrote in --output-dir",
                   READING_SETTINGS_FILE: "the record of the settings the pages in --output-dir were read with"}
    for option, path, target in reports:
        for name, what in own_records.items():
            if target == out / name:
                raise ConfigError(f"{option} {path}: is {what} ({name}); write the report elsewhere")
    # Listing the inputs costs a walk (and a page count per PDF): only for a report that
    # could be a page output at all.
    reports = [(option, path, target) for option, path, target in reports
               if out in target.parents and any(target.name.endswith(SUFFIXES[fmt]) for fmt in formats)]
    if not reports:
        return
    for ref in page_refs(inputs, formats):
        if ref.error:
            continue
        pages = {p.resolve() for p in output_paths(ref.page_id, out, formats)}
        for option, path, target in reports:
            if target in pages:
                raise ConfigError(f"{option} {path}: is also the output of {ref.source} in --output-dir; "
                                  "write the report elsewhere")


def _transcribe_pages(recognizer, cfg, inputs) -> int:
    """Every mode (line images, pages, auto) through hwr.documents.pipeline.run_batch."""
    from hwr.documents.pages import may_name_several
    from hwr.documents.pipeline import BatchConfig, BatchSummary, per_rank, run_batch, tsv_field
    from hwr.documents.transcribe import LineJournal, LineTranscription, TranscriptionResult
    from hwr.interrupts import sigterm_as_exit

    # --json lists a line image's words whatever --format is (word boxes cost little once read).
    batch = BatchConfig(mode=cfg.mode, formats=cfg.formats, output_dir=cfg.output_dir,
                        resume=cfg.resume, errors=cfg.errors, dpi=cfg.dpi, orientation=cfg.orientation,
                        workers=cfg.workers, processes=cfg.processes, batch_size=cfg.batch_size, progress=cfg.progress,
                        words=True if cfg.json else None, overwrite=cfg.overwrite)
    several = may_name_several(inputs)
    if cfg.json:  # under torchrun each rank reports the pages it read
        cfg = replace(cfg, json=str(per_rank(cfg.json)))
    line_results = TranscriptionResult()
    journal = LineJournal(cfg.json, keep=cfg.resume) if cfg.json else None

    def transcriptions(page, is_line: bool) -> list[LineTranscription]:
        if is_line:
            rec = page.lines[0].recognition
            return [LineTranscription(page.source, rec.text, rec.confidence, rec.char_confidences,
                                      [asdict(w) for w in rec.words])]
        return [LineTranscription(page.source, line.recognition.text, line.recognition.confidence,
                                  line.recognition.char_confidences, line=line.id, bbox=list(line.bbox))
                for line in page.lines if line.recognition is not None]

    def journalled(page, is_line: bool) -> None:
        # Before the page's outputs are written: a run killed once they are (and --resume
        # skips the page) finds its lines here, though `show` may not have seen it yet.
        journal.add(page.source, transcriptions(page, is_line))

    def show(page, is_line: bool) -> None:
        line_results.read(transcriptions(page, is_line))
        # A tab or newline in a file name would break the `source<TAB>text` lines: escaped as
        # in errors.tsv.
        if is_line:
            text = page.lines[0].recognition.text
            emit(f"{tsv_field(page.source)}\t{text}" if several else text)
        elif not cfg.output_dir:
            emit(f"==> {tsv_field(page.source)} <==\n{page.text}" if several else page.text)

    summary, finished = BatchSummary(), False
    try:
        # SIGTERM (kill, a scheduler's stop) takes Ctrl-C's way out: the page workers are shut
        # down and their shared memory unlinked, and the --json below is still written.
        with sigterm_as_exit():
            run_batch(recognizer, inputs, batch, on_page=show, summary=summary,
                      on_read=journalled if journal is not None else None)
        finished = True
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_interrupted(summary, cfg.output_dir)) from None
    except SystemExit as stop:
        if stop.code == 128 + signal.SIGTERM:  # stopped as Ctrl-C stops it: says how far it got, as Ctrl-C does
            print(f"hwr transcribe: {_interrupted(summary, cfg.output_dir)}", file=sys.stderr)
        raise
    finally:
        if journal is not None:
            _close_line_json(cfg, journal, line_results, summary, finished, stopped_by=sys.exc_info()[1])
    print(f"hwr transcribe: {summary.text()}", file=sys.stderr)
    if summary.pages + summary.line_images + summary.skipped == 0 and all(
            f.stage == "input" for f in summary.failures):
        print(escape_controls("hwr transcribe: no input images found"
              + (f" ({'; '.join(map(str, summary.failures[:3]))})" if summary.failures else "")), file=sys.stderr)
        return 2
    if summary.failures:
        print(escape_controls(f"hwr transcribe: {counted(len(summary.failures), 'input')} failed, e.g. "
                              f"{summary.failures[0]}" + (f" (all listed in {summary.errors_file})"
                                                          if summary.errors_file else "")), file=sys.stderr)
        return 1
    return 0


def _interrupted(summary, output_dir: str | None) -> str:
    """What a Ctrl-C'd batch says: how far it got and how to go on (with --output-dir, --resume
    skips the inputs whose outputs are there; without it there is nothing to resume from)."""
    if not output_dir:
        return "interrupted"
    done = summary.pages + summary.line_images + summary.skipped
    failed = f", {len(summary.failures)} failed" if summary.failures else ""
    return f"interrupted: {counted(done, 'input')} done{failed}; rerun with --resume to continue"


def _close_line_json(cfg, journal, results, summary, finished: bool, stopped_by: BaseException | None) -> None:
    """Write the --json report however the run ended; its journal goes once the report holds its
    lines. A run stopped by an error whose report cannot be written either (the same full disk)
    says so and lets the first error through: that one, naming the page's output, is the cause."""
    written = False
    try:
        if not finished:
            results.read_journalled(journal)
        _write_line_json(cfg, results, summary, finished)
        written = True
    except OSError as exc:
        if stopped_by is None or not is_users_os_error(exc):
            raise
        print(escape_controls(f"hwr transcribe: warning: the --json report was not written either "
                              f"({describe_os_error(exc)}); its lines are kept in {journal.path} for --resume"),
              file=sys.stderr)
    finally:
        journal.close(remove=written)  # kept when the report could not be written


def _write_line_json(cfg, results, summary, finished: bool) -> None:
    """The --json report, however the run ended: an interrupted run writes what it read, so
    that the --resume that skips those inputs finds their lines here."""
    from hwr.documents.transcribe import skipped_with_lines
    from hwr.fileio import atomic_write_bytes, utf8_bytes

    results.failures = summary.failures
    if cfg.resume:
        missing = results.add_earlier(cfg.json, summary.skipped_sources if finished else None)
        if finished and missing and cfg.mode != "line":  # a line image always has its line
            missing = skipped_with_lines(missing, summary, cfg.output_dir, cfg.formats)
        if finished and summary.skipped and (missing is None or missing):
            count = summary.skipped if missing is None else len(missing)
            print(f"hwr transcribe: warning: the earlier {cfg.json} holds no line of {counted(count, 'input')} "
                  "skipped as done (--resume)" + (" (it could not be read)" if missing is None else
                                                   f", e.g. {missing[0]}")
                  + "; nor does the new one: run without --resume to read everything again",
                  file=sys.stderr)
    atomic_write_bytes(Path(cfg.json), utf8_bytes(results.to_json()))


def cmd_train(args) -> int:
    from hwr.training.distributed import context_from_env, lost_a_peer, relaunch_with_torchrun
    from hwr.training.settings import TrainConfig
    from hwr.training.train import train

    if args.nproc > 1 and not context_from_env().enabled:
        return relaunch_with_torchrun(args.nproc, _without_option(sys.argv[1:], "--nproc"))
    cfg = build_config(TrainConfig, args, args.config)
    try:
        state = train(cfg)
    except RuntimeError as exc:
        if not (context_from_env().enabled and lost_a_peer(exc)):
            raise
        # Another process died (killed for memory): this one's collective failed, and its
        # traceback had stood above the launcher's line saying which process ended and how.
        print(f"hwr train: process {context_from_env().rank}: the other training processes are gone "
              f"({str(exc).splitlines()[0]})", file=sys.stderr)
        return 1
    if not context_from_env().is_main:
        return 0
    emit(f"best validation CER {state.best_cer:.4f} at step {state.best_step}; model in {Path(cfg.out) / 'best'}")
    return 0


def _without_option(argv: list[str], name: str) -> list[str]:
    """argv minus `name VALUE` / `name=VALUE`, so the relaunched processes do not relaunch."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def cmd_eval(args) -> int:
    from hwr.interrupts import sigterm_as_exit
    from hwr.scoring.evaluate import EvalConfig
    from hwr.scoring.report.run import format_summary, report_outputs, run_eval, write_outputs

    cfg = build_config(EvalConfig, args, args.config)
    outputs = report_outputs(cfg)
    for option, path in outputs:
        check_output_file(path, option)
    check_distinct_outputs(outputs, _eval_inputs(cfg, args.dataset))
    check_distinct_outputs(outputs, cfg.files_read(cfg.compare), "the model or its language model")
    # A SIGTERM stops as Ctrl-C does: the line loaders' worker processes end and their shared
    # memory is unlinked on the way out (README "Exit codes": 143).
    with sigterm_as_exit():
        if args.pages:
            return _eval_pages(cfg, args.dataset)
        run = run_eval(cfg, args.dataset)
    emit(format_summary(run, cfg))
    write_outputs(run, cfg)
    report = run.analysed.report
    empty = [r.id for r in report.results if r.chars == 0]
    if empty:
        print(f"hwr eval: an empty reference on {counted(len(empty), 'line')} (e.g. {', '.join(empty[:3])}): "
              "whatever is read there counts as inserted characters; check the ground truth", file=sys.stderr)
    if report.untranscribed:
        print(f"hwr eval: not scored: {counted(report.untranscribed, 'line')} without a transcription yet (PAGE "
              "TextLines without text)", file=sys.stderr)
    runs = run.splits or [run.analysed]
    for scored in runs:
        _print_skipped(scored, named=bool(run.splits))
    if any(r.report.failures for r in runs):
        # Scored, but not everything: 1; nothing scored at all, in any split: 2 (README "Exit codes").
        return 1 if any(r.report.lines for r in runs) else 2
    return 0


def _print_skipped(scored, named: bool) -> None:
    """The lines a data set (with --splits: a split, named) left out, and whether any was scored."""
    report = scored.report
    if not report.failures:
        return
    where = f"{scored.dataset.name}: " if named else ""
    nothing = "no line scored; " if report.lines == 0 else ""
    _print_failures(f"{where}{nothing}skipped {report.skipped_lines()}", report.failures)


SKIPPED_NAMED = 20  # inputs an eval names on stderr: every one of a few, the first of many


def _print_failures(head: str, failures: list) -> None:
    """The lines `hwr eval` left out, each on its own line (only three had been named, the rest
    in --json alone: the user could not tell which file was left out); `hwr transcribe` has its
    errors file for this, `--pages` logs each as it goes."""
    # File names: no terminal codes, and no newline that would make one look like two.
    rows = [f"hwr eval: {escape_line_controls(head)}:",
            *(f"  {escape_line_controls(str(failure))}" for failure in failures[:SKIPPED_NAMED])]
    if len(failures) > SKIPPED_NAMED:
        rows.append(f"  and {len(failures) - SKIPPED_NAMED} more (all in --json FILE's failed_files)")
    print("\n".join(rows), file=sys.stderr)


def _eval_inputs(cfg, dataset: str | None) -> list[str]:
    """The files `hwr eval` reads (data set, split files, groups table): no output may be one."""
    from hwr.datasets import split_spec
    from hwr.scoring.report.run import parse_splits

    specs = parse_splits(cfg.splits, dataset) if cfg.splits else []
    named = [dataset, cfg.split_file, cfg.groups_file, *(s.spec for s in specs), *(s.split_file for s in specs)]
    return [split_spec(str(path))[1] for path in named if path]


def _eval_pages(cfg, dataset: str) -> int:
    """`hwr eval --pages`: page CER/WER and line detection P/R (hwr.documents.page_eval)."""
    from hwr.documents.page_eval import evaluate_page_folder, format_page_summary, write_page_report
    from hwr.scoring.evaluate import EvalConfig, skipped_by_cause

    if not dataset:
        raise ConfigError("--pages needs a folder of page images with .gt.txt, or PAGE XML")
    # Page scoring has no per-line results to write: refused, not skipped in silence.
    for option, path in (("--csv", cfg.csv), ("--html", cfg.html), ("--worst-csv", cfg.worst_csv)):
        if path:
            raise ConfigError(f"{option} writes per-line results, which --pages does not score; use --json")
    # Nor does it split, group or compare: a figure that looked split or compared would mislead.
    for option, value in (("--split-file", cfg.split_file), ("--splits", cfg.splits),
                          ("--groups-file", cfg.groups_file), ("--compare", cfg.compare),
                          ("--processes", cfg.processes), ("--workers", cfg.workers != EvalConfig.workers)):
        if value:
            raise ConfigError(f"{option} does not apply to --pages (it scores whole pages of one folder)")
    recognizer = cfg.load_recognizer()
    report = evaluate_page_folder(recognizer, dataset, cfg.batch_size, skip_bad=cfg.skip_bad,
                                  reports=[("--json", cfg.json)], normalization=cfg.normalization())
    emit(format_page_summary(report))
    if cfg.worst:
        for r in sorted(report.results, key=lambda r: -r.char_errors)[: cfg.worst]:
            emit(f"  {r.id}  char errors {r.char_errors}/{r.chars}  lines {r.predicted_lines}/{r.gt_lines}")
    if cfg.json:
        write_page_report(report, Path(cfg.json), str(recognizer.path), dataset)
    if report.failures:
        # Each failure was logged as it happened (page_eval): the summary names a few, on one line
        # (file names: no terminal codes, no newline).
        print(escape_line_controls(f"hwr eval: skipped {skipped_by_cause(report.failures, 'page')}: "
                                   f"{name_some(report.failures, 3)}"), file=sys.stderr)
        return 1 if report.results else 2
    return 0


def cmd_synth(args) -> int:
    from hwr.interrupts import sigterm_as_exit
    from hwr.synth.export import SynthExportConfig, export_dataset

    cfg = build_config(SynthExportConfig, args, args.config)
    check_output_dir(cfg.out, "--out")
    with sigterm_as_exit():  # as Ctrl-C: the render processes are stopped, not left rendering on
        export_dataset(cfg.out, cfg.n, fmt=cfg.format, pages=cfg.pages, seed=cfg.seed, split=cfg.split,
                       progress=cfg.progress, processes=cfg.processes)
    return 0


def cmd_lm(args) -> int:
    from hwr.recognition.charset import Charset
    from hwr.recognition.lexicon import read_corpus_lines, write_lexicon
    from hwr.recognition.lm import LMBuildConfig, build_lm

    cfg = build_config(LMBuildConfig, args, args.config)
    if cfg.lexicon and cfg.unit != "word":
        raise ConfigError("--lexicon needs --unit word")
    if cfg.words and not cfg.lexicon:  # had been ignored, a word list that does not exist too
        raise ConfigError("--words adds words to the lexicon: give --lexicon FILE (and --unit word) too")
    # Inputs and outputs before the counting: a missing file is not found after the LM is written.
    for path in [*args.corpus, *cfg.words]:
        if not Path(path).is_file():
            special, missing = special_file_kind(path), not_found_reason(path)
            raise MissingFileError(f"{path}: " + ("is a folder, not a text file" if Path(path).is_dir()
                                                  else f"is {special}, not a text file" if special
                                                  else "text file not found" if missing == "not found" else missing))
    check_output_file(cfg.out, "--out")
    check_output_file(cfg.lexicon, "--lexicon")
    outputs = [("--out", cfg.out), ("--lexicon", cfg.lexicon)]
    check_distinct_outputs(outputs, [*args.corpus, *cfg.words])
    cutoffs = cfg.cutoffs()  # a bad --min-counts is an error now, not after the counting
    split = None if cfg.split == "all" else cfg.split
    # The charset of the model that will read with the LM (the shipped models': printable
    # ASCII): the LM drops what it cannot write.
    charset = Charset()
    if cfg.model:
        from hwr.recognition.model import model_files, read_model_config, resolve_model_dir

        check_distinct_outputs(outputs, model_files(cfg.model), f"the model {cfg.model}")
        charset = Charset(read_model_config(resolve_model_dir(cfg.model)).charset)
    # Read before the LM is written: a word list that is not UTF-8 had failed the command (exit
    # 2, "nothing done") after the LM was written.
    # Every word of a word list: --split holds corpus lines out, not words (it had dropped every
    # 20th). A row of two words is no lexicon entry, said rather than dropped in silence.
    listed = list(read_corpus_lines(cfg.words))
    extra = [word for word in listed if " " not in word]
    if len(extra) < len(listed):
        spaced = [word for word in listed if " " in word]
        logging.getLogger("hwr.cli").warning("--words: left out %s holding a space (a lexicon entry is one word): %s",
                    counted(len(spaced), "row"), name_some([repr(w) for w in spaced], 5, sep=", "))
    model = build_lm(args.corpus, cfg.out, cfg.order, cfg.unit, cutoffs, split, charset)
    sizes = ", ".join(f"{n + 1}-grams {len(t)}" for n, t in enumerate(model.ngrams))
    emit(f"wrote {cfg.out}: {sizes}")
    if cfg.lexicon:
        write_lexicon(cfg.lexicon, model.vocabulary() + extra, charset)
        emit(f"wrote {cfg.lexicon}")
    return 0


def cmd_average(args) -> int:
    from hwr.recognition.model import checked_model_out, resolve_model_dir, save_model_folder
    from hwr.training.averaging import average_models
    from hwr.training.settings import AverageConfig

    cfg = build_config(AverageConfig, args, args.config)
    models = [resolve_model_dir(m) for m in args.models]  # shipped names as every --model takes them
    out = checked_model_out(cfg.out, overwrite=cfg.overwrite, sources=models,
                            source_role="one of the models being averaged")
    net, config = average_models(models)
    save_model_folder(out, net, config, half=cfg.half)
    emit(f"wrote {cfg.out}: the mean of {len(models)} models")
    return 0


def cmd_adapt(args) -> int:
    from hwr.training.adapt import adapt
    from hwr.training.settings import AdaptConfig

    cfg = build_config(AdaptConfig, args, args.config)
    result = adapt(args.data, cfg)
    kept = "adapted weights" if result.improved else "base model's weights (adaptation did not help)"
    emit(f"held-out CER {result.before_cer:.4f} -> {result.after_cer:.4f} on {counted(result.held_out_lines, 'line')} "
          f"({result.adapt_lines} adapted on, {result.minutes:.1f} min); {result.out} holds the {kept}")
    if result.read_before is not None:
        emit(f"read with the default LM search (what the weights were kept by): {result.read_before:.4f} -> "
             f"{result.read_after:.4f}")
    if result.others_before is not None:
        share = "" if result.mix == 1.0 or not result.improved else f", {result.mix:.0%} of the change kept"
        emit(f"other hands (synthetic check lines) {result.others_before:.4f} -> {result.others_after:.4f}{share}")
    return 0


def cmd_ui(args) -> int:
    from hwr.ui_cli import cmd_ui as serve_ui

    return serve_ui(args)


COMMANDS = {"transcribe": cmd_transcribe, "train": cmd_train, "average": cmd_average, "eval": cmd_eval,
            "synth": cmd_synth, "lm": cmd_lm, "ui": cmd_ui, "adapt": cmd_adapt}


def main(argv: list[str] | None = None) -> int:
    try:
        argv = sys.argv[1:] if argv is None else argv
        args = build_parser(only=command_named(argv)).parse_args(argv)
    except KeyboardInterrupt:  # the command's settings import its module (train's: torch and all): seconds
        print("hwr: interrupted", file=sys.stderr)
        return 130
    lenient_stdout()
    log_to_stderr(logging.DEBUG if args.verbose else logging.INFO)
    try:
        return COMMANDS[args.command](args)
    except HwrError as exc:  # the user's input or settings; anything else is a bug and keeps its traceback
        print(escape_controls(f"hwr {args.command}: error: {exc}"), file=sys.stderr)
        return 2
    except OSError as exc:
        if not is_users_os_error(exc):  # a full disk or a file's permissions, not a bug
            raise
        print(escape_controls(f"hwr {args.command}: error: {describe_os_error(exc)}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # its message, when a command gives one, says what was done
        print(f"hwr {args.command}: {str(exc) or 'interrupted'}", file=sys.stderr)  # an exception is always truthy
        return 130


if __name__ == "__main__":
    sys.exit(main())
