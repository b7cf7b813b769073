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
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from hwr.recognition.charset import normalize_text
from hwr.datasets.pagexml import line_polygon, line_text, local_name, resolve_page_image
from hwr.scoring.metrics import ErrorCounts, char_errors, word_errors
from hwr.records import Page

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

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


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
    results: list[PageResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

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

def score_page(truth: PageTruth, page: Page) -> PageResult:
    """Compare a transcribed page (lines in reading order) with its ground truth."""
    hypothesis = page.text
    reference = truth.text
    matched = None
    if truth.polygons is not None:
        matched = len(match_lines(truth.polygons, [line.polygon for line in page.lines]))
    return PageResult(truth.id, reference, hypothesis, char_errors(reference, hypothesis), len(reference),
                      word_errors(reference, hypothesis), len(reference.split()), len(truth.lines),
                      len(page.lines), matched)


def summarize(results: list[PageResult], failures: list[str] | None = None) -> PageEvalReport:
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
                          counts.word_errors, precision, recall, results, list(failures or []))


def evaluate_pages(recognizer, truths: Iterable[PageTruth], batch_size: int = 16, segment_config=None,
                   skip_bad: bool = False, progress=None) -> PageEvalReport:
    """Transcribe every ground-truth page with the page pipeline and score it."""
    from hwr.recognition.imaging import ImageError, load_gray
    from hwr.documents.pipeline import transcribe_page

    results, failures = [], []
    for truth in truths:
        try:
            gray = load_gray(truth.image)
        except ImageError as exc:
            if not skip_bad:
                raise
            failures.append(str(exc))
            continue
        page = transcribe_page(recognizer, gray, page_id=truth.id, source=str(truth.image),
                               segment_config=segment_config, batch_size=batch_size)
        results.append(score_page(truth, page))
        if progress is not None:
            progress(1)
    return summarize(results, failures)


# --- ground truth --------------------------------------------------------------------------

def read_page_truth(path: str | Path) -> list[PageTruth]:
    """Ground-truth pages under a folder (or one file): PAGE XML files, else images with .gt.txt."""
    from hwr.datasets import DatasetError
    from hwr.recognition.imaging import IMAGE_SUFFIXES

    path = Path(path)
    if path.is_file():
        if path.suffix.lower() == ".xml":
            return [read_pagexml_truth(path, path.stem)]
        return [_gt_txt_truth(path, path.stem)]
    if not path.is_dir():
        raise DatasetError(path, "no such file or folder")
    # Hidden trees (.git, editor backups) hold copies, never pages to score.
    xmls = sorted(x for x in path.rglob("*.xml") if not any(p.startswith(".") for p in x.relative_to(path).parts))
    if xmls:
        return [read_pagexml_truth(xml, xml.relative_to(path).with_suffix("").as_posix()) for xml in xmls]
    truths = []
    for image in sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        if image.with_name(image.stem + GT_SUFFIX).is_file():
            truths.append(_gt_txt_truth(image, image.relative_to(path).with_suffix("").as_posix()))
    if not truths:
        raise DatasetError(path, f"no PAGE XML and no page image with a {GT_SUFFIX} beside it")
    return truths


def _gt_txt_truth(image: Path, page_id: str) -> PageTruth:
    from hwr.datasets import DatasetError

    gt = image.with_name(image.stem + GT_SUFFIX)
    if not gt.is_file():
        raise DatasetError(image, f"no ground truth {gt.name} beside the page image")
    lines = [normalize_text(line.strip()) for line in gt.read_text(encoding="utf-8").splitlines()]
    return PageTruth(page_id, image, [line for line in lines if line])


def read_pagexml_truth(xml: Path, page_id: str) -> PageTruth:
    """Lines of a PAGE XML page in document order (PAGE stores lines in reading order)."""
    import xml.etree.ElementTree as ET

    from hwr.datasets import DatasetError

    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as exc:
        raise DatasetError(xml, f"not well-formed XML ({exc.msg})") from None
    pages = [el for el in root.iter() if local_name(el.tag) == "Page"]
    if local_name(root.tag) != "PcGts" or not pages:
        raise DatasetError(xml, "not a PAGE XML file")
    image = resolve_page_image(xml, pages[0].get("imageFilename", ""))
    lines, polygons = [], []
    for line_el in (el for el in root.iter() if local_name(el.tag) == "TextLine"):
        try:
            polygon = line_polygon(line_el)
        except ValueError as exc:
            raise DatasetError(xml, f"TextLine {line_el.get('id')!r}: {exc}") from None
        lines.append(line_text(line_el) or "")
        polygons.append([tuple(p) for p in polygon.tolist()] if polygon is not None else [])
    return PageTruth(page_id, image, lines, polygons)


def truth_from_page(page: Page, image: Path | str = "") -> PageTruth:
    """Ground truth from a records.Page with text and geometry (e.g. a synthetic page)."""
    return PageTruth(page.id, Path(image), [line.text for line in page.lines], [list(line.polygon) for line in page.lines])


def write_page_report(report: PageEvalReport, path: Path, model: str, dataset: str) -> None:
    from hwr.fileio import atomic_write_bytes

    payload = {"model": model, "dataset": dataset, **report.summary(), "failed_files": report.failures,
               "pages_detail": [asdict(r) for r in report.results]}
    atomic_write_bytes(Path(path), json.dumps(payload, indent=1, ensure_ascii=False).encode("utf-8"))
