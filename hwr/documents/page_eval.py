"""Scoring whole pages: page CER/WER and line detection precision/recall.

Page text is the lines in reading order joined by newlines, so a line found in the wrong
order, missed, split in two or merged with its neighbour costs characters, as it would a
reader. Rates are corpus-level (edits summed over pages / reference characters summed).

Detection: a predicted line matches a ground-truth line when their polygons overlap with
IoU >= 0.5 (one-to-one, best pairs first); precision = matches / predicted lines, recall =
matches / ground-truth lines. A merged pair of lines or a line cut in half fails the
threshold, which is what makes this measure segmentation quality.

Ground truth: a page image with `<stem>.gt.txt` beside it (one line of text per line, no
geometry, so only CER/WER), or PAGE XML (text and line polygons, so detection too).

A PAGE line without a transcription yet (an eScriptorium or Transkribus export of a page
still being transcribed) is left out of the text scores together with the predicted line
that matches it (IoU >= 0.5; a line without Coords cannot match, so its reading still counts),
so what the model reads there is neither an insertion nor scored against an empty reference.
Detection on a scored page still counts every line: their geometry is ground truth either
way. A page with no transcribed line at all is not scored, neither text nor detection; a
PAGE line whose Coords cannot be read (a typo in its points) keeps its text in the page's
scores, and the page is left out of detection only.
"""
from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from glob import escape as glob_escape
from pathlib import Path

import cv2
import numpy as np

from hwr.datasets.pagexml import (
    XML_PATTERN,
    check_page_image,
    line_polygon,
    line_text,
    local_name,
    page_image_ref,
    parse_page_root,
    polygon_on_page,
    reading_order_lines,
    resolve_page_image,
    unusable_line_polygon,
)
from hwr.documents.pages import TakenNames, count_pages
from hwr.recognition.charset import normalize_text
from hwr.recognition.image_formats import is_tiff, usual_first
from hwr.recognition.imaging import ImageError
from hwr.records import FailedInput, Page
from hwr.scoring.metrics import ErrorCounts, TextNormalization, char_errors, word_errors

log = logging.getLogger("hwr.documents.page_eval")

IOU_THRESHOLD = 0.5
GT_SUFFIX = ".gt.txt"


@dataclass
class PageTruth:
    """One ground-truth page: its image, its lines in reading order, polygons if known."""

    id: str
    image: Path
    lines: list[str]
    polygons: list[list[tuple[int, int]]] | None = None
    truth_file: Path | None = None  # the PAGE XML or .gt.txt the lines were read from
    untranscribed: frozenset[int] = frozenset()  # indices of lines (polygons) with no text yet
    page_index: int = 0  # which page of `image` (a PDF or multi-page TIFF holds several)
    page_count: int = 1
    dpi: int | None = None  # a PDF page's resolution, that of its ground truth's coordinates
    # Lines whose Coords could not be read: their text is scored, the page's detection is not
    # (a line that cannot match would count as a missed line the segmenter may well have found).
    bad_coords: tuple[str, ...] = ()

    @property
    def files(self) -> list[Path]:
        """The files this page's ground truth was read from."""
        return [self.image, *([self.truth_file] if self.truth_file else [])]

    @property
    def text(self) -> str:
        """The transcribed lines in reading order (untranscribed ones left out)."""
        return "\n".join(line for i, line in enumerate(self.lines) if i not in self.untranscribed)

    @property
    def transcribed(self) -> bool:
        """False for a page whose every line awaits its text (a page with no lines has none to read)."""
        return not self.lines or len(self.untranscribed) < len(self.lines)


@dataclass
class PageResult:
    id: str
    reference: str
    hypothesis: str
    char_errors: int
    chars: int
    word_errors: int
    words: int
    gt_lines: int
    predicted_lines: int
    matched_lines: int | None  # None: no ground-truth polygons
    untranscribed_lines: int = 0  # left out of the text scores, with the predicted lines matching them


@dataclass
class PageEvalReport:
    pages: int
    cer: float
    wer: float
    chars: int
    char_errors: int
    words: int
    word_errors: int
    detection_precision: float | None
    detection_recall: float | None
    untranscribed_lines: int = 0  # on the scored pages: left out of CER/WER (see the module's notes)
    untranscribed_pages: int = 0  # pages with no transcribed line: not scored
    results: list[PageResult] = field(default_factory=list)
    failures: list[FailedInput] = field(default_factory=list)  # pages skipped (--skip-bad)
    normalization: list[str] = field(default_factory=list)  # TextNormalization.steps; [] = raw text

    def summary(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("results", "failures")} | {
            "failures": len(self.failures)}


# --- detection -----------------------------------------------------------------------------

def polygon_iou(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> float:
    """IoU of two polygons, rasterised on the union of their boxes (exact to a pixel)."""
    pa, pb = np.asarray(a, np.int32).reshape(-1, 2), np.asarray(b, np.int32).reshape(-1, 2)
    if len(pa) < 3 or len(pb) < 3:
        return 0.0
    lo = np.minimum(pa.min(axis=0), pb.min(axis=0))
    hi = np.maximum(pa.max(axis=0), pb.max(axis=0))
    if (np.minimum(pa.max(axis=0), pb.max(axis=0)) < np.maximum(pa.min(axis=0), pb.min(axis=0))).any():
        return 0.0  # boxes do not even touch
    size = (hi - lo + 1).tolist()
    ma = np.zeros((size[1], size[0]), np.uint8)
    mb = np.zeros_like(ma)
    cv2.fillPoly(ma, [pa - lo], 1)
    cv2.fillPoly(mb, [pb - lo], 1)
    union = np.count_nonzero(ma | mb)
    return float(np.count_nonzero(ma & mb)) / union if union else 0.0


def match_lines(truth: Sequence[Sequence[tuple[int, int]]], predicted: Sequence[Sequence[tuple[int, int]]],
                threshold: float = IOU_THRESHOLD) -> list[tuple[int, int, float]]:
    """One-to-one matches (truth index, predicted index, IoU) with IoU >= threshold, best first."""
    pairs = []
    for i, t in enumerate(truth):
        for j, p in enumerate(predicted):
            iou = polygon_iou(t, p)
            if iou >= threshold:
                pairs.append((iou, i, j))
    used_t, used_p, matches = set(), set(), []
    for iou, i, j in sorted(pairs, reverse=True):
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
            matches.append((i, j, iou))
    return matches


# --- scoring -------------------------------------------------------------------------------

def score_page(truth: PageTruth, page: Page, normalization: TextNormalization | None = None) -> PageResult:
    """Compare a transcribed page (lines in reading order) with its ground truth; `normalization`
    (hwr eval's --casefold etc.) applies to each line of both, so lines stay lines."""
    normalize = normalization or TextNormalization()
    reference = "\n".join(normalize(line) for line in truth.text.split("\n"))
    matched = None
    unscored: set[int] = set()  # predicted lines read where the truth has no text yet
    if truth.polygons is not None:
        matches = match_lines(truth.polygons, [line.polygon for line in page.lines])
        matched = None if truth.bad_coords else len(matches)
        unscored = {j for i, j, _ in matches if i in truth.untranscribed}
    hypothesis = "\n".join(normalize(line.read_text) for j, line in enumerate(page.lines) if j not in unscored)
    return PageResult(truth.id, reference, hypothesis, char_errors(reference, hypothesis), len(reference),
                      word_errors(reference, hypothesis), len(reference.split()), len(truth.lines),
                      len(page.lines), matched, len(truth.untranscribed))


def summarize(results: list[PageResult], failures: list[FailedInput] | None = None,
              untranscribed_pages: int = 0, normalization: TextNormalization | None = None) -> PageEvalReport:
    counts = ErrorCounts()
    for r in results:
        counts.char_errors += r.char_errors
        counts.chars += r.chars
        counts.word_errors += r.word_errors
        counts.words += r.words
    with_geometry = [r for r in results if r.matched_lines is not None]
    precision = recall = None
    if with_geometry:
        matched = sum(r.matched_lines for r in with_geometry)
        predicted = sum(r.predicted_lines for r in with_geometry)
        gt = sum(r.gt_lines for r in with_geometry)
        precision = matched / predicted if predicted else (1.0 if gt == 0 else 0.0)
        recall = matched / gt if gt else 1.0
    return PageEvalReport(len(results), counts.cer, counts.wer, counts.chars, counts.char_errors, counts.words,
                          counts.word_errors, precision, recall, sum(r.untranscribed_lines for r in results),
                          untranscribed_pages, results, list(failures or []),
                          (normalization or TextNormalization()).steps)


def evaluate_pages(recognizer, truths: Iterable[PageTruth], batch_size: int = 16, segment_config=None,
                   skip_bad: bool = False, progress=None, failures: Sequence[FailedInput] = (),
                   workers: int = 2, normalization: TextNormalization | None = None) -> PageEvalReport:
    """Transcribe every ground-truth page with the batch path (hwr.documents.pipeline, mode
    "page") and score it.

    A page that cannot be read fails the run (ImageError naming it) unless skip_bad, which
    records it and goes on; `failures` are ground-truth files already skipped (read_page_truth)."""
    from hwr.documents.pages import PageRef
    from hwr.documents.pipeline import BatchConfig, transcribe_refs

    truths = list(truths)
    # Nothing of a page without a transcribed line can be scored: not read at all.
    untranscribed_pages = [t.id for t in truths if not t.transcribed]
    if untranscribed_pages:
        log.warning("%d page(s) with no transcribed line left out: %s", len(untranscribed_pages),
                    ", ".join(untranscribed_pages[:5]) + (", ..." if len(untranscribed_pages) > 5 else ""))
    truths = [t for t in truths if t.transcribed]
    pages: dict[str, Page] = {}

    def done(page: Page, is_line: bool) -> None:
        pages[page.id] = page
        if progress is not None:
            progress(1)

    config = BatchConfig(mode="page", workers=workers, batch_size=batch_size, words=False, progress=False)
    refs = [PageRef(t.id, Path(t.image), t.page_index, t.page_count, dpi=t.dpi) for t in truths]
    summary = transcribe_refs(recognizer, refs, config, segment_config, on_page=done)
    if summary.failures and not skip_bad:
        first = summary.failures[0]
        raise ImageError(first.source, first.message + " (--skip-bad scores the other pages)")
    results = [score_page(truth, pages[truth.id], normalization) for truth in truths if truth.id in pages]
    return summarize(results, [*failures, *summary.failures], len(untranscribed_pages), normalization)


def evaluate_page_folder(recognizer, path: str | Path, batch_size: int = 16, skip_bad: bool = False,
                         segment_config=None, reports: Sequence[tuple[str, str | None]] = (),
                         normalization: TextNormalization | None = None) -> PageEvalReport:
    """`hwr eval --pages`: read the ground truth under `path` and score every page; with
    skip_bad, unusable ground truth and unreadable pages are recorded in the report's failures.

    `reports`, the (option, path) of the reports the caller will write, are refused
    (ConfigError) before any page is read when one is a ground-truth file or page image."""
    from hwr.fileio import check_distinct_outputs

    truth_failures: list[FailedInput] = []
    truths = read_page_truth(path, truth_failures if skip_bad else None)
    files = [file for truth in truths for file in truth.files] + [failure.source for failure in truth_failures]
    check_distinct_outputs(list(reports), files, f"the data set {path}")
    return evaluate_pages(recognizer, truths, batch_size, segment_config, skip_bad, failures=truth_failures,
                          normalization=normalization)


def format_page_summary(report: PageEvalReport) -> str:
    """The headline of `hwr eval --pages`; a rate with nothing to divide by is called undefined."""
    from hwr.scoring.evaluate import undefined_rates_note

    cer = f"CER {report.cer:.4f} ({report.char_errors}/{report.chars})" if report.chars else "CER undefined"
    wer = f"WER {report.wer:.4f} ({report.word_errors}/{report.words})" if report.words else "WER undefined"
    detection = ("" if report.detection_precision is None else
                 f"  detection P {report.detection_precision:.3f} R {report.detection_recall:.3f} (IoU>=0.5)")
    judged = sum(r.matched_lines is not None for r in report.results)
    if detection and judged < report.pages:  # .gt.txt pages, or a line's Coords unreadable
        detection = detection[:-1] + f", on the {judged} of {report.pages} pages with line polygons)"
    text = f"pages {report.pages}  {cer}  {wer}{detection}"
    if report.normalization:  # a normalised figure must not pass for a raw one
        text += f"\nnormalisation: {', '.join(report.normalization)}"
    if report.untranscribed_lines or report.untranscribed_pages:
        text += (f"\nuntranscribed (not scored, nor what was read on them): {report.untranscribed_lines} line(s) "
                 f"on scored pages, {report.untranscribed_pages} page(s) with no transcribed line")
    note = undefined_rates_note(report.chars, report.char_errors, report.words, report.word_errors)
    return text + (f"\nwarning: {note}" if note and report.pages else "")


# --- ground truth --------------------------------------------------------------------------

def read_page_truth(path: str | Path, failures: list[FailedInput] | None = None) -> list[PageTruth]:
    """Ground-truth pages under a folder (or one file): PAGE XML files, else images with .gt.txt.

    A ground-truth file that cannot be used (not UTF-8, malformed XML, a .gt.txt with no page
    image beside it) raises DatasetError naming it; given a `failures` list, it is recorded
    there instead (stage "truth") and the other pages are kept."""
    from hwr.datasets import DatasetError
    from hwr.datasets.errors import visible_files
    from hwr.recognition.image_formats import IMAGE_SUFFIXES

    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == ".xml":
            return _kept([lambda: read_pagexml_truth(path, path.stem, in_folder=False)], failures)
        return _say_blank_gt_txt(_kept([lambda: _gt_txt_truth(path, path.stem)], failures))
    if not path.is_dir():
        raise DatasetError(path, "no such file or folder")
    files = visible_files(path)  # hidden trees (.git, editor backups) hold copies, never pages to score
    xmls = [file for file in files if file.match(XML_PATTERN)]
    gts = [file for file in files if file.name.endswith(GT_SUFFIX)]
    if not xmls and not gts:
        raise DatasetError(path, f"no PAGE XML and no page image with a {GT_SUFFIX} beside it")
    truths = _kept([functools.partial(read_pagexml_truth, xml, xml.relative_to(path).with_suffix("").as_posix(),
                                      in_folder=True) for xml in xmls], failures)
    # Both kinds in one folder are both scored; a page image that a PAGE XML already
    # transcribes is scored once, from the XML.
    covered = {t.image.resolve() for t in truths}
    truths += [t for t in _kept([functools.partial(_gt_txt_page, gt, path) for gt in gts], failures)
               if t.image.resolve() not in covered]
    covered |= {t.image.resolve() for t in truths}
    # A page image with no ground truth at all cannot be scored: said, not dropped in silence
    # (an image a failed ground-truth file names is already reported with that file).
    # A failed PAGE XML names no image it can be trusted for: the image of its stem, beside it
    # or above its page/ folder (Transkribus), is taken as its page.
    named = {Path(f.source).resolve() for f in failures or []}
    named |= {p.with_suffix("") for p in named if p.suffix.lower() == ".xml"}
    named |= {p.parent.parent / p.name for p in named if p.parent.name == "page"}
    for image in (file for file in files if file.suffix.lower() in IMAGE_SUFFIXES):
        if image.resolve() not in covered and not {image.with_name(image.stem + GT_SUFFIX).resolve(),
                                                   image.resolve().with_suffix("")} & named:
            _kept([functools.partial(_gt_txt_truth, image, image.stem)], failures)
    _say_blank_gt_txt(truths)
    # a.xml (transcribing page.png) and a.png with a.gt.txt are two pages: one id would score
    # both against one reading.
    taken = TakenNames()
    for truth in truths:
        truth.id = taken.unique(truth.id)
    return truths


def _say_blank_gt_txt(truths: list[PageTruth]) -> list[PageTruth]:
    """Warn of each page scored from an empty .gt.txt (only those scored: one beside a PAGE XML
    is not read): a blank page is a page, but more often a transcription not yet typed."""
    for truth in truths:
        if not truth.lines and truth.truth_file is not None and truth.truth_file.name.endswith(GT_SUFFIX):
            log.warning("%s: empty: the page is scored as blank, so whatever is read on it counts as inserted "
                        "characters; check the ground truth", truth.truth_file)
    return truths


def _kept(readers: list, failures: list[FailedInput] | None) -> list[PageTruth]:
    from hwr.datasets import DatasetError

    truths = []
    for read in readers:
        try:
            truth = read()
            if truth is not None:  # None: not a page (an export's METS beside the pages)
                truths.append(truth)
        except DatasetError as exc:
            if failures is None:
                raise
            log.error("%s", exc)
            failures.append(FailedInput(str(exc.source), "truth", exc.reason))
    return truths


def _gt_txt_page(gt: Path, root: Path) -> PageTruth:
    """The page a .gt.txt transcribes: the image beside it with the same stem."""
    from hwr.datasets import DatasetError
    from hwr.recognition.image_formats import IMAGE_SUFFIXES, USUAL_SUFFIXES

    stem = gt.name[: -len(GT_SUFFIX)]
    beside = [p for p in gt.parent.glob(glob_escape(stem) + ".*") if p.name[: -len(p.suffix)] == stem]
    images = sorted((p for p in beside if p.suffix.lower() in IMAGE_SUFFIXES), key=_master_first)
    if not images:
        pdf = next((p for p in beside if p.suffix.lower() == ".pdf"), None)
        if pdf is not None:  # said so: "no page image" alone had sent the user looking for a missing file
            raise DatasetError(gt, f"{pdf.name} is a PDF, whose pages a {GT_SUFFIX} cannot transcribe: give each "
                                   f"page a PAGE XML ({stem}#p1.xml, ...; hwr transcribe --format pagexml writes them)")
        raise DatasetError(gt, f"no page image beside it (looked for {stem}.png, .jpg, .tif, ...)")
    others = [p.name for p in images[1:] if p.suffix.lower() in USUAL_SUFFIXES]
    if others:  # an archive's TIFF master and its JPEG copy, most often: the master is scored, and said
        log.warning("%s: scored against %s; %s beside it of the same name %s not scored (give the page a PAGE XML "
                    "naming its image to choose)", gt, images[0].name, ", ".join(others),
                    "is" if len(others) == 1 else "are")
    return _gt_txt_truth(images[0], images[0].relative_to(root).with_suffix("").as_posix())


# Formats that lose detail: a JPEG or WebP beside a TIFF or PNG of one name is its access copy.
LOSSY_SUFFIXES = frozenset({".jpg", ".jpeg", ".jfif", ".jpe", ".webp"})


def _master_first(image: Path) -> tuple[bool, bool, str]:
    """Sort key of the page images of one name: the usual formats first (usual_first), and among
    them the lossless ones (the master a .gt.txt was typed from, rather than its JPEG copy)."""
    usual_later, name = usual_first(image)
    return usual_later, image.suffix.lower() in LOSSY_SUFFIXES, name


def _gt_txt_truth(image: Path, page_id: str) -> PageTruth:
    from hwr.datasets import DatasetError
    from hwr.datasets.errors import read_utf8, text_rows

    gt = image.with_name(image.stem + GT_SUFFIX)
    if not gt.is_file():
        raise DatasetError(image, f"no ground truth {gt.name} beside the page image")
    if is_tiff(image):
        try:
            pages = count_pages(image).pages
        except ImageError:
            pages = 1  # reading the page says what is wrong with it, naming it
        if pages > 1:  # only its first page had been scored against the whole text, in silence
            raise DatasetError(gt, f"{image.name} holds {pages} pages, and a {GT_SUFFIX} transcribes one page: give "
                                   f"each page a PAGE XML ({image.stem}#p1.xml, ...), or each its own image and "
                                   f"{GT_SUFFIX}")
    # Read as the line readers read .gt.txt: a Windows editor's BOM and CRLF are not text.
    lines = [line for line in (normalize_text(row.strip()) for row in text_rows(read_utf8(gt))) if line]
    return PageTruth(page_id, image, lines, truth_file=gt)


def read_pagexml_truth(xml: Path, page_id: str, in_folder: bool = False) -> PageTruth | None:
    """Lines of a PAGE XML page in its reading order (`reading_order_lines`). The page image
    must have the size the XML declares, or every polygon would be compared in the wrong place.
    None for other XML in a folder, as the line readers skip it (`parse_page_root`)."""
    from hwr.datasets import DatasetError

    root = parse_page_root(xml, in_folder)
    if root is None:
        return None
    pages = [el for el in root.iter() if local_name(el.tag) == "Page"]
    if not pages:
        raise DatasetError(xml, "no Page element")
    image = resolve_page_image(xml, pages[0].get("imageFilename", ""), root)
    page = page_image_ref(xml, root, image)
    width, height = check_page_image(xml, pages[0], page)
    lines, polygons, untranscribed, bad_coords = [], [], set(), []
    for line_id, line_el in reading_order_lines(pages[0]):
        try:
            polygon = line_polygon(line_el)
            problem = unusable_line_polygon(polygon, width, height)
        except ValueError as exc:
            problem = str(exc)
        if problem:
            # One typo in one line's points must not leave the whole page unscored, nor count as a
            # line the segmenter missed.
            log.warning("%s: TextLine %r: %s; its text is scored, this page's line detection is not",
                        xml, line_id, problem)
            bad_coords.append(line_id)
            polygon = None
        text = line_text(line_el)
        if text is None:
            untranscribed.add(len(lines))
        lines.append(text or "")
        polygons.append(_on_page(polygon, width, height) if polygon is not None else [])
    return PageTruth(page_id, image, lines, polygons, truth_file=xml, untranscribed=frozenset(untranscribed),
                     page_index=page.index, page_count=page.count, dpi=page.dpi, bad_coords=tuple(bad_coords))


def _on_page(polygon: np.ndarray, width: int, height: int) -> list[tuple[int, int]]:
    """A truth polygon held to the page as the line reader's crop holds it (`polygon_on_page`):
    `polygon_iou` rasterises the box around both polygons, so one point far off the page asked
    for a 37 GiB mask at 100000 px and crashed."""
    return [tuple(p) for p in polygon_on_page(polygon, width, height).tolist()]


def truth_from_page(page: Page, image: Path | str = "") -> PageTruth:
    """Ground truth from a records.Page with text and geometry (e.g. a synthetic page)."""
    return PageTruth(page.id, Path(image), [line.text for line in page.lines],
                     [list(line.polygon) for line in page.lines])


def write_page_report(report: PageEvalReport, path: Path, model: str, dataset: str) -> None:
    from hwr.fileio import atomic_write_bytes, utf8_bytes

    payload = {"model": model, "dataset": dataset, **report.summary(),
               "failed_files": [str(f) for f in report.failures],
               "pages_detail": [asdict(r) for r in report.results]}
    atomic_write_bytes(Path(path), utf8_bytes(json.dumps(payload, indent=1, ensure_ascii=False)))
