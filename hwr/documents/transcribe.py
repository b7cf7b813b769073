"""What `hwr transcribe` reports for line images (JSON), and its settings.

The transcription itself, in every mode, is hwr.documents.pipeline.run_batch: one batch path
for the CLI, the UI and the page scorer, with one failure record (hwr.records.FailedInput).
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from hwr import records
from hwr.config_args import check_at_least, setting
from hwr.documents.orientation import parse_orientation
from hwr.documents.pipeline import AUTO_PROCESSES_PAGES, MODES, BatchConfig, BatchSummary
from hwr.documents.writers import holds_lines, output_paths, parse_formats
from hwr.errors import ConfigError
from hwr.fileio import TEXT_ERRORS, held_here
from hwr.recognition.settings import RecognizerSettings
from hwr.records import FailedInput


@dataclass
class LineTranscription:
    """One line read: a line image (`source` is its file), or a line of a page read as a page
    (`source` is the page's file, `line` its line id, `bbox` its box in page pixels)."""

    source: str
    text: str
    confidence: float
    char_confidences: list[float] = field(default_factory=list)
    # Word boxes of a line image from CTC alignment: {"text", "confidence", "x0", "x1"} in its
    # pixels (a page's word boxes are in its json/pagexml/alto outputs, in page coordinates).
    words: list[dict] = field(default_factory=list)
    line: str = ""
    bbox: list[int] = field(default_factory=list)  # x0, y0, x1, y1 (exclusive), a page's line only


@dataclass
class TranscriptionResult:
    """The `--json` output: every line read (line images, and the lines of pages), and every
    input that failed."""

    lines: list[LineTranscription] = field(default_factory=list)
    failures: list[FailedInput] = field(default_factory=list)

    def add_earlier(self, path: str | Path, skipped: list[str] | None = None) -> list[str] | None:
        """With --resume: keep the lines an earlier run wrote to `path` (or, killed before it
        wrote `path`, to its journal beside it) for the inputs this run skipped as done
        (`skipped`: their sources); earlier failures were retried, so only this run's count.
        `skipped` None (a run interrupted before it saw every input): keep every earlier line
        this run did not read again, for the next --resume to sort out.

        Returns the skipped sources the earlier file has no line for (a page where no line was
        found has none), or None when neither file can be read (it keeps none)."""
        lines = _earlier_lines(Path(path))
        if lines is None:
            return None
        # Inputs compared as files, not as spelled: the earlier run may have named the folder
        # another way (`scans` then `/home/me/scans`); its lines take this run's spelling.
        source_identity = functools.cache(records.source_identity)  # one look per file, not per line
        read_now = {source_identity(line.source) for line in self.lines}
        if skipped is None:
            kept = [line for line in lines if source_identity(line.source) not in read_now]
            self.lines = kept + self.lines
            return []
        done = {source_identity(source): source for source in skipped}
        done = {identity: source for identity, source in done.items() if identity not in read_now}
        kept = [replace(line, source=done[identity]) for line in lines
                if (identity := source_identity(line.source)) in done]
        self.lines = kept + self.lines
        have = {line.source for line in kept}
        return [source for source in skipped if source not in have]

    def read(self, lines: list[LineTranscription]) -> None:
        """Add one input's lines (the CLI journals them as each page is read: LineJournal)."""
        self.lines.extend(lines)

    def read_journalled(self, journal: LineJournal) -> None:
        """Add the lines of the inputs `journal` holds that were not read here yet: an interrupted
        run's pages whose outputs were written before their turn to be shown came (pages finish
        out of order), which the --resume skips as done."""
        shown = {line.source for line in self.lines}
        for source, lines in journal.records.items():
            if source not in shown:
                self.lines.extend(lines)

    def to_json(self) -> str:
        return json.dumps({"lines": [asdict(line) for line in self.lines],
                           "failures": [asdict(f) for f in self.failures]},
                          indent=1, ensure_ascii=False)


class LineJournal:
    """The --json report's lines as they are read, one JSON record per input appended to
    `<json>.part.jsonl`: the report itself is written whole at the end (or on Ctrl-C and
    SIGTERM), so a run killed outright (SIGKILL, out of memory, power) would otherwise lose the
    lines of every input it had done, which its outputs let --resume skip. The next --resume
    reads them from here; the journal goes once the report holds them."""

    def __init__(self, report: str | Path, keep: bool):
        self.path = journal_path(report)
        # keep (--resume): the lines a killed run journalled stay until a report holds them.
        torn = keep and _ends_torn(self.path)
        # Opened without emptying it, and held: two runs with one --json (and other output
        # folders) had each emptied the other's journal and both exited 0, one report lost.
        self._file = open(self.path, "a", encoding="utf-8", errors=TEXT_ERRORS)  # noqa: SIM115 - closed in close()
        if not held_here(self._file):
            self._file.close()
            raise ConfigError(f"{report}: another hwr run is writing this --json report; wait for it to finish, "
                              "or choose another --json")
        if not keep:
            self._file.truncate(0)
        self.records: dict[str, list[LineTranscription]] = {}  # this run's, by source, in the order read
        if torn:  # a record cut short (a full disk): the next one must not be glued to it and lost
            self._file.write("\n")

    def add(self, source: str, lines: list[LineTranscription]) -> None:
        self.records[source] = lines
        record = {"source": source, "lines": [asdict(line) for line in lines]}
        try:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._file.flush()  # in the kernel's hands: a SIGKILL of this process loses nothing
        except OSError as exc:
            # A full disk's write and flush name no file: the message must say which one.
            if exc.filename is None:
                exc.filename = str(self.path)
            raise

    def close(self, remove: bool) -> None:
        # Removed while still held: closed first, another run could take the file in between
        # and then write into one no longer on the disk.
        try:
            if remove:
                self.path.unlink(missing_ok=True)
        finally:
            self._file.close()


def _ends_torn(path: Path) -> bool:
    """Whether the file's last line lacks its newline (a write cut short)."""
    try:
        with open(path, "rb") as journal:
            journal.seek(-1, os.SEEK_END)
            return journal.read(1) != b"\n"
    except OSError:  # missing, or empty (no byte to seek back to)
        return False


def journal_path(report: str | Path) -> Path:
    report = Path(report)
    return report.with_name(report.name + ".part.jsonl")


def _earlier_lines(report: Path) -> list[LineTranscription] | None:
    """The lines of an earlier report, with those its journal holds for inputs read after it
    (the journal's record of an input replaces the report's); None when there is neither."""
    try:
        lines = [LineTranscription(**line) for line in json.loads(report.read_text(encoding="utf-8"))["lines"]]
    except (OSError, ValueError, KeyError, TypeError):
        lines = None
    journalled = _journal_records(journal_path(report))
    if lines is None and journalled is None:
        return None
    if not journalled:
        return lines
    kept = [line for line in lines or [] if line.source not in journalled]
    return kept + [line for page in journalled.values() for line in page]


def _journal_records(path: Path) -> dict[str, list[LineTranscription]] | None:
    """Each input's lines from a journal, the last record of an input winning (a page read
    again by a later run); a record cut short by the kill is left out."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    records: dict[str, list[LineTranscription]] = {}
    # At "\n" only, as the records were written: a U+2028 in a file name (kept raw by
    # ensure_ascii=False) split its record in two for splitlines, and the page's lines were lost.
    for row in text.split("\n"):
        try:
            record = json.loads(row)
            records.pop(record["source"], None)  # re-inserted last: the order inputs were read
            records[record["source"]] = [LineTranscription(**line) for line in record["lines"]]
        except (ValueError, KeyError, TypeError):
            continue
    return records


def skipped_with_lines(sources: list[str], summary: BatchSummary, output_dir: str | Path,
                       formats: list[str]) -> list[str]:
    """Of `sources` (pages the --resume skipped as done), those whose outputs hold lines: a page
    on which no line was found has none in the --json either, and lost nothing there."""
    page_ids = dict(zip(summary.skipped_sources, summary.skipped_ids))
    fmt = formats[0]  # a page's outputs are written together, from one read of it
    return [source for source in sources
            if holds_lines(output_paths(page_ids[source], output_dir, [fmt])[0], fmt)]


MIN_DPI = 50  # --dpi: the least resolution at which handwriting on a PDF page can be read


@dataclass
class TranscribeConfig(RecognizerSettings):
    """Settings of `hwr transcribe` (CLI flags and --config files read these defaults)."""

    json: str | None = setting(None, help="write texts and confidences (JSON) here")
    output_dir: str | None = setting(
        None,
        help="write each input's outputs here, one file per --format (<stem>.txt, .json, .xml, .alto.xml), line images "
             "and pages alike")
    # Pages (hwr.documents.pipeline): line = every input is one line image; page = every input is a page
    # to segment; auto = PDFs and multi-page TIFFs are pages, other images line images unless the
    # segmenter finds 2+ lines; then they are read both ways and the surer reading is kept.
    # The page settings take their defaults from hwr.documents.pipeline.BatchConfig, their one source.
    mode: str = setting(
        BatchConfig.mode,
        help="line: every input is one line image; page: every input is a page; auto: PDFs and multi-page "
             "TIFFs are pages, other images line images, unless the segmenter finds 2+ lines on one: then it "
             "is read both ways (as those lines and whole) and the surer reading is kept")
    format: str = setting(
        ",".join(BatchConfig().formats),
        help="page outputs, comma-separated: txt,json,pagexml,alto")
    resume: bool = setting(BatchConfig.resume, help="skip pages whose outputs all exist in --output-dir")
    overwrite: bool = setting(
        False,
        help="replace files in --output-dir that hwr did not write, or that were edited since it wrote "
             "them (refused by default: they may be transcriptions made by hand)")
    errors: str | None = setting(
        BatchConfig.errors,
        help="file listing failed inputs (TSV, no header: page_id, source, stage, message); default "
             "<output-dir>/errors.tsv")
    dpi: int = setting(BatchConfig.dpi, help="resolution at which PDF pages are rasterised (50 or more)")
    orientation: str = setting(
        BatchConfig.orientation,
        help="pages scanned sideways or upside down: auto turns each page the way its text reads upright; "
             "0, 90, 180 or 270 turns every page that many degrees clockwise (outputs keep the image's own "
             "coordinates)")
    workers: int = setting(
        BatchConfig.workers,
        help="page workers that load, segment and cut pages while the recognizer runs (threads, or "
             "processes with --processes); 0: all in one process")
    processes: bool | None = setting(
        None,
        help="run the --workers as processes that never load torch or the model and hand lines back "
             "through shared memory (2 CPU cores: about a fifth more pages/s than threads, after a second of "
             f"start-up); --no-processes: threads; unset: processes for a batch of {AUTO_PROCESSES_PAGES} inputs or "
             "more, but for --mode line")
    progress: bool = setting(BatchConfig.progress, help="progress bar on stderr")

    @property
    def formats(self) -> list[str]:
        """--format as the writers' format names; a ConfigError naming the flag for a bad one."""
        try:
            return parse_formats(self.format)
        except ValueError as exc:  # hwr.documents.writers names the bad format
            raise ConfigError(f"--format: {exc}") from None

    def __post_init__(self) -> None:
        super().__post_init__()  # the decoder settings
        # Checked before the model loads: a --batch-size 0 would fail deep in the batcher, and a
        # --dpi 0 would fail every PDF page with a message that does not name the flag.
        check_at_least(self, 1, "batch_size")
        # Below it a page's writing is a few pixels tall: --dpi 1 read 2x3-pixel pages, found no
        # line and said nothing (a probe helper). Fax is 100-200 dpi, a screen 72.
        check_at_least(self, MIN_DPI, "dpi")
        check_at_least(self, 0, "workers")
        # Here, not in the command: a value from a --config file is then named as the file's.
        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        try:
            self.orientation = parse_orientation(self.orientation)
        except ValueError as exc:
            raise ConfigError(f"--{exc}") from None
        if self.resume and not self.output_dir:
            raise ConfigError("--resume needs --output-dir: it skips the inputs whose outputs are there")
        formats = self.formats  # parsed now, so a bad --format fails before any page is read
        if not self.output_dir and formats != BatchConfig().formats:
            # Without a folder the texts go to stdout: a PAGE XML asked for would be silently missing.
            raise ConfigError(f"--format {self.format} needs --output-dir: page outputs are written there "
                              "(without it the texts are printed)")
