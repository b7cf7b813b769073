"""Pages to text: load -> segment -> cut lines -> Recognizer -> Page -> writers.

`transcribe_page` does one image. `run_batch` does many, and is the one batch path of the
CLI (`hwr transcribe`, every mode), the UI's Batch tab and the page scorer:

    page refs -> page workers (load, segment, cut, normalise to uint8 lines: threads, or
              torch-free processes handing lines back through shared memory;
              hwr.documents.prepare, hwr.documents.workers)
              -> PageBatcher (lines of many pages in width-sorted batches: the GPU stays busy)
              -> hwr.recognition.feed (to the device, network, CTC decoding)
              -> word boxes, writers, on_page (this process, the only one holding the model)

Outputs are written atomically; `resume` skips pages whose outputs all exist; an input that
fails at any stage becomes a `FailedInput` (errors file, summary) and the batch goes on; a full
or read-only output disk stops it (an OSError naming the file), as every later page would fail.
`StageTimes` says where a run's time went.

Modes (hwr.documents.prepare holds the one rule, for the CLI and the UI alike: `layout_page`,
and for auto mode's second reading `reads_both_ways` and `settle_reading`):
- "line": every input (every page of a document) is one line image, read whole.
- "page": every input is a page, segmented into lines.
- "auto": a page of a PDF or of a multi-page TIFF is a page; a single image is a line image read
  whole, exactly as "line" would read it, unless the segmenter finds two or more text lines on
  it; then it is read both ways, as those lines and whole (an image taller than 512 pixels from
  a reduced copy, so not quite as "line" reads it), and the surer reading is kept
  (hwr.documents.reading_choice: a tilted line, or one with a wide gap, cut into pieces).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hwr.documents.line_batches import LineBatch, PageBatcher
from hwr.documents.linegeom import cut_line
from hwr.documents.orientation import analyse_upright
from hwr.documents.pages import DEFAULT_DPI, PageRef, page_refs

# The modes' one rule lives in the torch-free hwr.documents.prepare (page worker processes use
# it too); re-exported here for the CLI and the UI.
from hwr.documents.prepare import (
    MODES,
    PreparedPage,
    PrepareSettings,
    failure_reason,
    layout_page,
    page_inputs,
    settle_reading,
)
from hwr.documents.segment import SegmentConfig
from hwr.documents.workers import PageWorkers
from hwr.documents.writers import SUFFIXES, output_paths, write_page_files, written_by_hwr
from hwr.documents.writers.manifest import OutputManifest
from hwr.errors import ConfigError, counted, describe_os_error, fails_every_write, name_some
from hwr.fileio import (
    TEXT_ERRORS,
    atomic_write_text,
    escape_controls,
    file_sha256,
    folder_held,
    is_file,
    naming_file,
    remove_stale_temp_files,
)
from hwr.interrupts import leave_if_rerunning_main
from hwr.ranks import context_from_env
from hwr.recognition.imaging import load_gray, readable_gray
from hwr.records import (
    DOCUMENT_PAGE_SUFFIX,
    FailedInput,
    Line,
    Page,
    document_page_number,
    input_stamp,
    source_identity,
)

log = logging.getLogger("hwr.documents.pipeline")

WORD_FORMATS = {"json", "pagexml", "alto"}  # outputs that carry word boxes
# Pages to read from which page workers run as processes unless told (BatchConfig.processes):
# from the 2-core figures there, processes catch up their start-up from about 5 pages.
AUTO_PROCESSES_PAGES = 8


# --- one image ------------------------------------------------------------------------------

def segment_and_crop(gray: np.ndarray, config: SegmentConfig | None = None) -> tuple[list[Line], list[np.ndarray]]:
    """Lines of a page (reading order) and each line's grayscale image (see hwr.documents.linegeom),
    both of the page in dark ink without pepper noise (readable_gray), turned upright
    (hwr.documents.orientation)."""
    gray = readable_gray(gray)
    layout = analyse_upright(gray, config)
    return layout.lines, [cut_line(gray, line, turn=layout.turn) for line in layout.lines]


def transcribe_image(recognizer, image, mode: str = "page", page_id: str = "page", source: str = "",
                     is_document_page: bool = False, segment_config: SegmentConfig | None = None,
                     batch_size: int = 16, words: bool = True, orientation: str = "auto") -> tuple[Page, bool]:
    """One image (uint8 gray array or anything load_gray reads) read in `mode` -> (Page with
    text, whether it was read as one line image). `words`: also locate words on each line
    (Recognition.words, for PAGE Word / ALTO String); `orientation`: as layout_page's."""
    gray = readable_gray(load_gray(image))
    if not source and isinstance(image, (str, Path)):
        source = str(image)
    page, is_line = layout_page(gray, mode, page_id, source, is_document_page, segment_config, orientation)
    arrays, geometries, read_whole_too = page_inputs(gray, page, is_line, mode, is_document_page,
                                                     recognizer.normalize_config, orientation)
    # Words are located after the readings are settled: the losing one's would be wasted.
    for line, rec in zip(page.lines, recognizer.recognize_normalized(arrays, batch_size)):
        line.recognition = rec
    if read_whole_too:
        page, geometries, is_line = settle_reading(page, geometries)
    if words:
        locate_words(page, geometries)
    return page, is_line


def locate_words(page: Page, geometries) -> None:
    """Each read line's word boxes (CTC alignment, in page pixels through its geometry)."""
    from hwr.recognition.align import word_boxes

    for line, geometry in zip(page.lines, geometries):
        line.recognition.words = word_boxes(line.recognition, geometry)


def transcribe_page(recognizer, image, page_id: str = "page", source: str = "",
                    segment_config: SegmentConfig | None = None, batch_size: int = 16, words: bool = True) -> Page:
    """One page image, segmented into lines (mode "page"), with its text."""
    return transcribe_image(recognizer, image, "page", page_id, source, False, segment_config, batch_size, words)[0]


# --- batches -------------------------------------------------------------------------------

@dataclass
class BatchConfig:
    mode: str = "auto"
    formats: list[str] = field(default_factory=lambda: ["txt"])
    output_dir: str | None = None
    resume: bool = False
    errors: str | None = None  # errors file; default <output_dir>/errors.tsv
    dpi: int = DEFAULT_DPI
    # Pages scanned sideways or upside down: "auto" turns each page as its text reads upright
    # (hwr.documents.orientation); "0", "90", "180", "270" turn every page that far clockwise.
    orientation: str = "auto"
    workers: int = 2  # page workers (load, segment, cut, normalise); 0: in the model's process
    # Workers as processes instead of threads: for many-core (GPU) hosts, where the threads'
    # Python work contends for the GIL with the process feeding the network. They never import
    # torch or load the model and hand lines back through shared memory; a second or so of
    # start-up. On 2 CPU cores (bench/bench_page_workers.py, 12 pages of 15 lines, 2026-12-07, quiet)
    # 2 processes read 1.55 pages/s at 1.10 CPU s a page, 2 threads 1.31 at 1.40, start-up
    # included (on an H200's host, 12.8 pages/s against 9.6). None: processes for a batch of
    # AUTO_PROCESSES_PAGES pages or more, threads for fewer (a one-page run, whose time the
    # processes' start-up of a second or so would be most of): `hwr transcribe`'s default. Not
    # the library's: spawned workers import the caller's main module again, which a script
    # without a __main__ guard runs again (its workers then leave and the batch goes on in
    # threads: PageWorkers._recover) and `python -` does not have (threads from the start).
    processes: bool | None = False
    batch_size: int = 16
    batch_lines: int = 64  # lines pooled across pages before they are sorted into batches (>= 2 batches)
    # Locate words (CTC alignment) for PAGE Word / ALTO String elements; None: when an
    # output format carries words (json, pagexml, alto), not for plain text.
    words: bool | None = None
    progress: bool = True
    # Replace outputs hwr did not write, or that were edited since (--overwrite). Without it a page
    # whose outputs are someone's fails naming them: a --resume reading a page again (other
    # settings, its input changed) had replaced hand corrections that the run's check had passed
    # as those of a page it would skip.
    overwrite: bool = False


@dataclass
class BatchSummary:
    pages: int = 0
    line_images: int = 0  # inputs read as single lines (auto and line modes)
    lines: int = 0
    skipped: int = 0  # pages whose outputs existed (resume)
    skipped_sources: list[str] = field(default_factory=list)  # those pages' PageRef.source
    skipped_ids: list[str] = field(default_factory=list)  # and their PageRef.page_id, in the same order
    failures: list[FailedInput] = field(default_factory=list)
    seconds: float = 0.0
    errors_file: str | None = None  # where the failures were listed (TSV, ERRORS_COLUMNS)

    def text(self) -> str:
        rate = self.pages / self.seconds if self.seconds else 0.0
        line_rate = self.lines / self.seconds if self.seconds else 0.0
        return (f"pages {self.pages}  line images {self.line_images}  lines {self.lines}  "
                f"failures {len(self.failures)}  skipped {self.skipped}  time {self.seconds:.1f} s  "
                f"({rate:.2f} pages/s, {line_rate:.1f} lines/s)")


@dataclass
class StageTimes:
    """Seconds per stage of one batch run (wall clock in the model's process, CPU in the workers')."""

    prepare_cpu: float = 0.0  # CPU time the workers (or this process, with 0 workers) spent preparing pages
    wait: float = 0.0  # this process waiting for the next prepared page (all of preparing, with 0 workers)
    network: float = 0.0  # batches to the device, network, CTC decoding
    write: float = 0.0  # word boxes, output files, on_page
    wall: float = 0.0

    def text(self) -> str:
        other = self.wall - self.wait - self.network - self.write
        return (f"wait for pages {self.wait:.2f} s, network {self.network:.2f} s, write {self.write:.2f} s, "
                f"other {other:.2f} s of {self.wall:.2f} s wall; workers' prepare CPU {self.prepare_cpu:.2f} s")


# In an output folder: how its outputs were read (mode, model, decoding, dpi, layout settings), so
# that --resume does not keep pages read otherwise as done.
READING_SETTINGS_FILE = ".hwr-reading.settings"


def reading_settings(recognizer, config: BatchConfig, segment_config: SegmentConfig | None) -> dict:
    """What decides the text of a page's outputs, besides the page itself (JSON values only)."""
    from hwr.recognition.model import WEIGHTS_FILE

    model = getattr(recognizer, "path", None)
    weights = Path(model) / WEIGHTS_FILE if model is not None else None
    describe = getattr(recognizer, "describe_reading", None)
    settings = {"mode": config.mode, "dpi": config.dpi, "orientation": config.orientation,
                "model": str(Path(model).resolve()) if model is not None else None,
                "weights_sha256": file_sha256(weights) if weights is not None and weights.is_file() else None,
                "reading": describe() if callable(describe) else None,
                "layout": asdict(segment_config) if segment_config is not None else None}
    return json.loads(json.dumps(settings, default=str))  # as it reads back from the file


def check_resumed_settings(output_dir: str | Path, settings: dict, resume: bool) -> None:
    """With --resume, a ConfigError when the folder's outputs were read with other settings (its
    pages would be skipped as done, keeping the other reading: a page read as one line, another
    model's text); then records this run's settings there."""
    path = Path(output_dir) / READING_SETTINGS_FILE
    if resume:
        try:
            earlier = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            earlier = None  # a folder from before the record, or none: nothing to compare
        if isinstance(earlier, dict) and "orientation" not in earlier:
            earlier["orientation"] = (settings.get("orientation") if reads_as_before_orientation(settings)
                                      else ORIENTATION_BEFORE)
        if isinstance(earlier, dict) and earlier != settings:
            # Each with both values: "reading differ" alone left the user to guess (the decoder).
            changes = "; ".join(f"{key}: {_shown(then)} then, {_shown(now)} now"
                                for key, then, now in setting_changes(earlier, settings))
            raise ConfigError(f"{output_dir}: --resume would keep the pages done so far, read with other settings "
                              f"({changes}); rerun without --resume to read every page again, or with the earlier "
                              "settings")
    atomic_write_text(path, json.dumps(settings, indent=1, sort_keys=True) + "\n")


# Folders read by an hwr that did not turn pages record no orientation: it read every page as
# it lay. "auto" reads an upright page just so, and refusing to resume such a folder (or reading
# all of it again) would leave no setting to carry on with; a fixed turn is another reading.
ORIENTATION_BEFORE = "0"


def reads_as_before_orientation(settings: dict) -> bool:
    """Whether these reading settings read upright pages as an hwr that recorded no orientation did."""
    return settings.get("orientation") in ("auto", ORIENTATION_BEFORE)


def accepted_digests(settings: dict) -> set[str]:
    """The settings digests of outputs that --resume may keep under `settings`: theirs, and
    that of the same settings recorded before orientation was (reads_as_before_orientation)."""
    digests = {settings_digest(settings)}
    if reads_as_before_orientation(settings):
        digests.add(settings_digest({key: value for key, value in settings.items() if key != "orientation"}))
    return digests


ABSENT = object()  # a setting one record has and the other lacks


def setting_changes(earlier: dict, now: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted name, earlier value, value now) of each setting that differs, sorted by name.
    Within settings that are themselves records (the reading's description) only the entries
    that differ: the reading's whole record, cut to its first 120 characters, had hidden the one
    that changed (beside_below, recorded since a pair reads fewer lines twice)."""
    changes = []
    for key in sorted(set(earlier) | set(now)):
        then, value = earlier.get(key, ABSENT), now.get(key, ABSENT)
        if then == value:
            continue
        if isinstance(then, dict) and isinstance(value, dict):
            changes += setting_changes(then, value, f"{prefix}{key}.")
        else:
            changes.append((f"{prefix}{key}", then, value))
    return changes


def _shown(value, limit: int = 120) -> str:
    if value is ABSENT:
        return "not recorded"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def settings_digest(settings: dict) -> str:
    """A short digest of reading_settings, recorded with each output (output_origin)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:16]


def output_origin(source: str, digest: str, stamp=ABSENT) -> dict:
    """What the output folder's record notes an output was read from (OutputManifest.origin_of):
    the input, its size and modification time (`stamp`, taken before the page was read; by
    default now), so that a page scanned again under its name is read again, and the reading
    settings' digest."""
    stamp = input_stamp(source) if stamp is ABSENT else stamp
    return {"source": source_identity(source), "settings": digest, **({"input": stamp} if stamp else {})}


def is_complete(page_id: str, output_dir: str | Path | None, formats: Iterable[str]) -> bool:
    # Outputs are only ever renamed into place whole, so existing means complete (an output name
    # too long for the file system was never written: not complete, the page fails again).
    return output_dir is not None and all(is_file(p) for p in output_paths(page_id, output_dir, formats))


def done_earlier(ref: PageRef, output_dir: str | Path | None, formats: Iterable[str],
                 manifest: OutputManifest | None, digests: Iterable[str]) -> bool:
    """Whether --resume may skip the page: its outputs are all there, and the folder's record says
    they were read from this input with these settings. An output recorded from another input
    (another folder's page of the same name) or read otherwise (a run interrupted after it had
    replaced part of a folder read in another mode) is read again; an output recorded without
    its origin (an earlier version of hwr) counts as done, as it always did. `digests`: the
    settings digests it may have been read with (accepted_digests)."""
    formats = list(formats)
    if not is_complete(ref.page_id, output_dir, formats):
        return False
    if manifest is None:
        return True
    source = source_identity(ref.source)
    digests = set(digests)
    stamp = input_stamp(ref.source)
    for path in output_paths(ref.page_id, output_dir, formats):
        origin = manifest.origin_of(path)
        if origin is not None and (origin.get("source") != source or origin.get("settings") not in digests):
            why = "another input" if origin.get("source") != source else "other settings"
            log.info("%s: read again: its output %s was read from %s", ref.source, path, why)
            return False
        # Recorded since 2026-12-07; an output recorded without it counts as this input's.
        if origin is not None and "input" in origin and origin["input"] != stamp:
            log.info("%s: read again: the file changed (size or time) since its output %s was read", ref.source,
                     path)
            return False
        if origin is not None and _an_earlier_reading(manifest, path):
            # A full disk stopped its write after the record: the file is an earlier reading's,
            # and its other outputs may be the later one's (PAGE at 150 dpi beside JSON at 300).
            log.info("%s: read again: its output %s is not the reading last recorded (a write that failed)",
                     ref.source, path)
            return False
    return True


def _an_earlier_reading(manifest: OutputManifest, path: Path) -> bool:
    """Whether the output at `path` holds one of hwr's readings but not the latest recorded. One
    edited since is the user's (--resume leaves it as it is), not an earlier reading."""
    try:
        data = path.read_bytes()
    except OSError:
        return False  # its page is read again only for a reason of its own
    return manifest.wrote(path, data) and not manifest.holds_latest(path, data)


def check_outputs_replace_only_own(inputs: Iterable[str | Path], output_dir: str | Path | None,
                                   formats: Iterable[str], resume: bool = False) -> None:
    """ConfigError naming both files when a page's output would replace a file hwr did not
    write (hwr.documents.writers.written_by_hwr), e.g. `--output-dir scans --format pagexml`
    over ground-truth PAGE XML beside the scans, or a text output hwr wrote and someone has
    corrected since: replacing hwr's own earlier outputs is what a rerun does, replacing a
    transcription someone made by hand destroys it (and --resume would take it for a finished
    page). With `resume`, a page whose outputs all exist is skipped, not written: an edited
    text output of hwr's is left as it is, and only a file hwr never wrote is refused."""
    if not output_dir or not Path(output_dir).is_dir():
        return
    formats = list(formats)
    manifest = OutputManifest(output_dir)
    # The output folder's files are sniffed first; listing the inputs again (a walk and a page
    # count per PDF) is only needed when one of them is not hwr's.
    foreign = {path.resolve() for fmt in formats for path in Path(output_dir).rglob("*" + SUFFIXES[fmt])
               if path.is_file() and not written_by_hwr(path, fmt, manifest)}
    if not foreign:
        return
    clashes = []  # (output, format, the page's source): every one is named, so one rerun finds them all
    for ref in page_refs(inputs, formats):
        if ref.error:
            continue
        paths = output_paths(ref.page_id, output_dir, formats)
        skipped = resume and all(is_file(path) for path in paths)
        for fmt, path in zip(formats, paths):
            # Sniffed again as this format: "*.xml" also finds ALTO's .alto.xml, foreign as PAGE XML.
            if path.resolve() not in foreign or written_by_hwr(path, fmt, manifest):
                continue
            if skipped and manifest.knows(path):
                continue
            clashes.append((path, fmt, ref.source))
    if not clashes:
        return
    path, fmt, source = clashes[0]
    others = (f" (and {counted(len(clashes) - 1, 'other file')} likewise: "
              f"{name_some([other for other, _, _ in clashes[1:]], 5)})" if len(clashes) > 1 else "")
    raise ConfigError(f"--output-dir {output_dir}: {path} was not written by hwr (or was edited since) and would be "
                      f"replaced by the {fmt} output of {source}{others}; write the outputs to another folder, or "
                      "pass --overwrite to replace them")


ERRORS_COLUMNS = ("page_id", "source", "stage", "message")


def tsv_field(value) -> str:
    """A value as one TSV field: backslash, tab, newline and carriage return escaped as \\\\,
    \\t, \\n, \\r, other control characters as \\xNN, so a file name holding them still
    reads back as itself and cannot drive the terminal it is printed on."""
    text = (str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))
    return escape_controls(text)


class ErrorLog:
    """Failed inputs, one TSV row each (ERRORS_COLUMNS), flushed as they happen.

    Each run writes the file afresh (a file from an earlier run is removed at the start): a
    resumed run retries every input that failed, so the file lists what fails now, never an
    input that has since been read, and never one twice."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._file = None
        if self.path is not None and self.path.is_file():
            self.path.unlink()

    def add(self, failure: FailedInput) -> None:
        log.error("%s: %s", failure.source, failure.message)
        if self.path is None:
            return
        row = (failure.page_id, failure.source, failure.stage, failure.message)
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path, "w", encoding="utf-8", errors=TEXT_ERRORS)
            self._file.write("\t".join(tsv_field(v) for v in row) + "\n")
            self._file.flush()
        except OSError as exc:
            error = naming_file(exc, self.path)  # a failed flush names no file
            self._abandon()
            raise error

    def _abandon(self) -> None:
        """Close the file after a failed write, and write no more: its buffer, which close()
        would flush again, cannot be written either (a full disk), and the error is raised."""
        if self._file is not None:
            with suppress(OSError):
                self._file.close()
        self._file = self.path = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def per_rank(path: str | Path) -> Path:
    """`path`, or under torchrun this rank's own file beside it (`errors.rank2.tsv`): ranks
    writing one file would each replace the others' lines."""
    ctx = context_from_env()
    path = Path(path)
    return path.with_suffix(f".rank{ctx.rank}{path.suffix}") if ctx.enabled else path


def output_folder_held(output_dir: str | Path | None):
    """The batch's output folder held for this run (fileio.folder_held): a second run into it is
    refused. Ranks of one torchrun job share the folder by design (each writes its own pages)."""
    if not output_dir or context_from_env().world_size != 1:
        return nullcontext()
    return folder_held(output_dir, "another hwr run is writing its outputs there; wait for it to finish, or "
                                   "choose another --output-dir")


def run_batch(recognizer, inputs: Iterable[str | Path], config: BatchConfig | None = None,
              segment_config: SegmentConfig | None = None,
              on_page: Callable[[Page, bool], None] | None = None,
              stages: StageTimes | None = None, summary: BatchSummary | None = None,
              on_read: Callable[[Page, bool], None] | None = None) -> BatchSummary:
    """Transcribe every page of `inputs` (files, folders, globs, list files; see
    hwr.documents.pages); `on_page(page, is_line_image)` sees each result, in input order;
    `on_read(page, is_line_image)` sees it as soon as it is read, before its output files are
    written (pages finish out of input order, so a page can wait a while for `on_page`: a
    journal kept from here loses no page whose outputs a killed run left for --resume to skip);
    `stages` collects where the time went; `summary`, when given, is filled in as the batch
    goes (what was done so far, should the batch be interrupted)."""
    config = config or BatchConfig()
    return transcribe_refs(recognizer, page_refs(inputs, config.formats), config, segment_config, on_page, stages,
                           summary, on_read)


def transcribe_refs(recognizer, refs: Iterable[PageRef], config: BatchConfig | None = None,
                    segment_config: SegmentConfig | None = None,
                    on_page: Callable[[Page, bool], None] | None = None,
                    stages: StageTimes | None = None, summary: BatchSummary | None = None,
                    on_read: Callable[[Page, bool], None] | None = None) -> BatchSummary:
    """`run_batch` on pages already listed (the UI's uploads, the scorer's ground-truth pages)."""
    # In a page worker still importing the main script (a script without a __main__ guard):
    # leave before the batch starts again there, its output folder held by the parent.
    leave_if_rerunning_main()
    config = config or BatchConfig()
    if config.mode not in MODES:
        raise ValueError(f"unknown mode {config.mode!r}; choose one of {', '.join(MODES)}")
    with output_folder_held(config.output_dir):
        return _transcribe_refs(recognizer, refs, config, segment_config, on_page, stages, summary, on_read)


def _transcribe_refs(recognizer, refs: Iterable[PageRef], config: BatchConfig,
                     segment_config: SegmentConfig | None, on_page: Callable[[Page, bool], None] | None,
                     stages: StageTimes | None, summary: BatchSummary | None,
                     on_read: Callable[[Page, bool], None] | None) -> BatchSummary:
    stages = stages if stages is not None else StageTimes()
    digest = ""  # only outputs record it (it hashes the weights: not for every page a library reads)
    resumable: set[str] = set()
    if config.output_dir:
        reading = reading_settings(recognizer, config, segment_config)
        digest = settings_digest(reading)
        resumable = accepted_digests(reading)
        check_resumed_settings(config.output_dir, reading, config.resume)
    # Under torchrun each rank reads every world_size-th page of the deterministic page order
    # and writes that page's outputs itself; resume is per page, so a rerun with any number
    # of ranks skips what is done.
    ctx = context_from_env()
    errors_path = config.errors or (Path(config.output_dir) / "errors.tsv" if config.output_dir else None)
    if errors_path is not None:
        errors_path = per_rank(errors_path)
    errors = ErrorLog(errors_path)
    summary = summary if summary is not None else BatchSummary()
    summary.errors_file = str(errors_path) if errors_path else None
    started = time.perf_counter()

    manifest = OutputManifest(config.output_dir) if config.output_dir else None

    input_stamps: dict[str, dict | None] = {}
    # Each input file counted this run, done or not: its identity -> (its page count, the file as given).
    documents: dict[str, tuple[int, str]] = {}

    def wanted(ref: PageRef) -> bool:
        if ref.index == 0 and not (ref.error and ref.count == 1):  # not an input that failed whole
            documents[DOCUMENT_PAGE_SUFFIX.sub("", source_identity(ref.source))] = (
                ref.count, DOCUMENT_PAGE_SUFFIX.sub("", ref.source))
        if (not ref.error and config.resume
                and done_earlier(ref, config.output_dir, config.formats, manifest, resumable)):
            summary.skipped += 1
            summary.skipped_sources.append(ref.source)
            summary.skipped_ids.append(ref.page_id)
            return False
        if manifest is not None and not ref.error:  # as the file is when its page goes to be read
            input_stamps[ref.page_id] = input_stamp(ref.source)
        return True

    # Only the normalisation settings go to the workers (picklable, unlike the network).
    settings = PrepareSettings(recognizer.normalize_config, segment_config, config.mode, config.dpi,
                               config.orientation)
    if config.output_dir and Path(config.output_dir).is_dir() and ctx.is_main:
        stale = remove_stale_temp_files(config.output_dir)
        if stale:
            log.info("removed %d temp files that an interrupted run left in %s", stale, config.output_dir)
    run = _Run(recognizer, config, summary, errors, on_page, stages, _progress(config.progress), manifest, on_read,
               digest, input_stamps)

    # A pool of at least two batches: with --batch-size 256 on a GPU, the default pool of 64
    # lines would otherwise cap every batch at 64 lines.
    batcher = PageBatcher(config.batch_size, max(config.batch_lines, 2 * config.batch_size))
    try:
        mine = (r for i, r in enumerate(refs) if i % ctx.world_size == ctx.rank and wanted(r))
        processes = config.processes
        if processes is None and config.mode == "line":
            processes = False  # a line image is loaded and scaled in milliseconds: nothing to win
        if processes is None:  # as many pages as make processes pay? (the first few listed, then all)
            first = list(itertools.islice(mine, AUTO_PROCESSES_PAGES))
            processes, mine = len(first) >= AUTO_PROCESSES_PAGES, itertools.chain(first, mine)
        with PageWorkers(settings, config.workers, processes) as workers, \
                _torch_threads_beside(workers, recognizer.device):
            pages = iter(workers.prepared(mine))
            while (prepared := run.next_page(pages)) is not None:
                stages.prepare_cpu += prepared.seconds
                if prepared.failure is not None:
                    run.fail_page(prepared)
                    continue
                run.read(batcher, batcher.add(prepared))
            run.read(batcher, batcher.flush())
    finally:
        run.bar.close()
        errors.close()
    if manifest is not None and ctx.world_size == 1:  # a rank sees only its share of a document's pages
        _say_pages_gone(manifest, config.output_dir, documents)
    summary.seconds = stages.wall = time.perf_counter() - started
    return summary


def _say_pages_gone(manifest: OutputManifest, output_dir: str | Path, documents: dict[str, tuple[int, str]]) -> None:
    """Warn of hwr's outputs in the folder read from pages a document no longer has: a PDF or TIFF
    scanned again with fewer pages (or now of one page, its page's id without `#p1`) had left the
    old last pages' outputs beside the new ones, read as part of it without a word. Named, not
    removed: they may be all that is left of those pages. Only outputs that still hold what hwr
    wrote; `documents`: the input files this run counted (its identity -> page count, as given)."""
    gone: dict[str, list[tuple[int, str]]] = {}
    for name in manifest.names_read_from(set(documents)):
        path = Path(output_dir) / name
        source = manifest.origin_of(path)["source"]
        page = document_page_number(source)
        document = DOCUMENT_PAGE_SUFFIX.sub("", source)
        count = documents[document][0]
        if page is None or (count > 1 and page <= count):  # a page it has, whatever its id is now
            continue
        try:
            if not manifest.wrote(path, path.read_bytes()):
                continue  # edited since: the user's
        except OSError:  # removed since, or unreadable: nothing to say of it
            continue
        gone.setdefault(document, []).append((page, str(path)))
    for document, pages in gone.items():
        count, given = documents[document]
        paths = [path for _, path in sorted(pages)]
        log.warning("%s has %s now; %s of pages read from an earlier version of it %s left as %s: %s; remove "
                    "them if they are stale", given, counted(count, "page"), counted(len(paths), "output"),
                    "is" if len(paths) == 1 else "are", "it was" if len(paths) == 1 else "they were",
                    ", ".join(paths[:4]) + (", ..." if len(paths) > 4 else ""))


@contextmanager
def _torch_threads_beside(workers: PageWorkers, device) -> Iterator[None]:
    """On CPU, leave the worker processes their cores: torch's intra-op threads spin at each
    parallel region's barrier, and with one of them descheduled by a page worker the whole
    operation waits (measured on 2 shared cores: 2 threads read 2-9 lines/s where 1 read 30-40).
    Threads as workers share this process and are left alone, as is the GPU."""
    if device.type != "cpu" or not workers.processes or workers.workers == 0:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, min(before, (os.cpu_count() or 1) - workers.workers)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class _Run:
    """The model process's side of one batch run."""

    recognizer: object
    config: BatchConfig
    summary: BatchSummary
    errors: ErrorLog
    on_page: Callable | None
    stages: StageTimes
    bar: object
    manifest: OutputManifest | None  # the output folder's record of the text outputs hwr wrote
    on_read: Callable | None = None
    settings_digest: str = ""  # of this run's reading_settings, recorded with each output
    # Each page's input file as it was when the page was sent to be read (records.input_stamp),
    # by page id: a file replaced while its page was being read must be read again by --resume.
    input_stamps: dict[str, dict | None] = field(default_factory=dict)
    # Pages finish out of input order (a blank page before the long page ahead of it, whose
    # lines wait in the batcher's pool), but on_page's readers (the CLI printing a document
    # page by page) expect input order: a result that finishes early waits here for the pages
    # before it. Keyed by the PreparedPage object, which travels whole through the batcher.
    _serials: dict[int, int] = field(default_factory=dict)  # id(prepared) -> its place in the input
    _finished: dict[int, tuple[Page, bool] | None] = field(default_factory=dict)  # place -> result (None: failed)
    _taken: int = 0
    _shown: int = 0

    @property
    def words(self) -> bool:
        return self.config.words if self.config.words is not None else bool(WORD_FORMATS & set(self.config.formats))

    def next_page(self, pages) -> PreparedPage | None:
        started = time.perf_counter()
        prepared = next(pages, None)
        self.stages.wait += time.perf_counter() - started
        if prepared is not None:
            self._serials[id(prepared)] = self._taken
            self._taken += 1
        return prepared

    def read(self, batcher: PageBatcher, batches: list[LineBatch]) -> None:
        started = time.perf_counter()
        self._recognize(batcher, batches)
        self.stages.network += time.perf_counter() - started
        started = time.perf_counter()
        for prepared in batcher.done():
            if prepared.failure is not None:
                self.fail_page(prepared)
            else:
                self.finish(prepared)
        self.stages.write += time.perf_counter() - started

    def _recognize(self, batcher: PageBatcher, batches: list[LineBatch]) -> None:
        """Read the batches; when one fails, read it again line by line, so that a line the
        network cannot take costs only its page (the copy-ahead generator cannot go on after
        an exception, so the rest are read one batch at a time)."""
        from hwr.recognition.feed import recognize_line_batches

        finished = 0
        try:
            for batch, recognitions in recognize_line_batches(self.recognizer, batches):
                batcher.complete(batch, recognitions)
                finished += 1
            return
        except Exception:  # noqa: BLE001 - retried below, each failure recorded
            log.debug("a batch of %d lines failed; reading it line by line", len(batches[finished]), exc_info=True)
        for batch in batches[finished:]:
            try:
                for _, recognitions in recognize_line_batches(self.recognizer, [batch]):
                    batcher.complete(batch, recognitions)
            except Exception:  # noqa: BLE001
                for single in batch.split():
                    try:
                        for _, recognitions in recognize_line_batches(self.recognizer, [single]):
                            batcher.complete(single, recognitions)
                    except Exception as exc:  # noqa: BLE001
                        batcher.fail_line(single.owners[0], failure_reason(exc))

    def _not_hwrs(self, page_id: str) -> list[str]:
        """The page's existing outputs that are not hwr's to replace (written_by_hwr)."""
        paths = output_paths(page_id, self.config.output_dir, self.config.formats)
        return [str(path) for fmt, path in zip(self.config.formats, paths)
                if is_file(path) and not written_by_hwr(path, fmt, self.manifest)]

    def finish(self, prepared: PreparedPage) -> None:
        if prepared.read_whole_too:
            prepared.page, prepared.geometries, prepared.is_line = settle_reading(prepared.page, prepared.geometries)
            prepared.read_whole_too = False
        page = prepared.page
        if self.words:
            locate_words(page, prepared.geometries)
        if self.on_read is not None:
            self.on_read(page, prepared.is_line)
        try:
            if self.config.output_dir:
                if not self.config.overwrite and (theirs := self._not_hwrs(page.id)):
                    self.fail(FailedInput(page.source, "write", f"not replaced: {name_some(theirs, 3, ', ')} "
                                          "was not written by hwr, or was edited since (pass --overwrite to replace "
                                          "it)", page.id))
                    self._show_in_order(prepared, None)
                    return
                origin = output_origin(page.source, self.settings_digest, self.input_stamps.pop(page.id, ABSENT))
                write_page_files(page, self.config.output_dir, page.id, self.config.formats, self.manifest, origin)
        except (OSError, ValueError) as exc:
            if fails_every_write(exc):  # a full disk: every later page would fail too, so stop here
                raise naming_file(exc, self.config.output_dir)
            reason = describe_os_error(exc) if isinstance(exc, OSError) else f"cannot write outputs ({exc})"
            self.fail(FailedInput(page.source, "write", reason, page.id))
            self._show_in_order(prepared, None)
            return
        if prepared.is_line:
            self.summary.line_images += 1
        else:
            self.summary.pages += 1
        self.summary.lines += len(page.lines)
        self._show_in_order(prepared, (page, prepared.is_line))
        self.bar.update(1)
        self.bar.set_postfix(lines=self.summary.lines, refresh=False)

    def fail_page(self, prepared: PreparedPage) -> None:
        self.fail(prepared.failure)
        self._show_in_order(prepared, None)

    def fail(self, failure: FailedInput) -> None:
        self.summary.failures.append(failure)
        self.errors.add(failure)
        self.bar.update(1)

    def _show_in_order(self, prepared: PreparedPage, result: tuple[Page, bool] | None) -> None:
        self._finished[self._serials.pop(id(prepared))] = result
        while self._shown in self._finished:
            result = self._finished.pop(self._shown)
            self._shown += 1
            if result is not None and self.on_page is not None:
                self.on_page(*result)


def _progress(enabled: bool):
    from tqdm import tqdm

    return tqdm(unit="page", disable=not enabled, file=sys.stderr, dynamic_ncols=True, desc="pages")
