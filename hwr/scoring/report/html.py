"""The self-contained HTML error-analysis report: summary, plots, tables, worst-line gallery.

Everything is inline (CSS, SVG charts, line images as base64 JPEG) so the file can be mailed,
archived next to a paper's numbers, or opened offline years later.
"""
from __future__ import annotations

import base64
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from hwr.errors import counted
from hwr.fileio import atomic_write_bytes, utf8_bytes
from hwr.recognition.imaging import ImageError, load_gray
from hwr.scoring.metrics import DELETION, INSERTION, MATCH, edit_script, undefined_rate
from hwr.scoring.report.analysis import ErrorAnalysis
from hwr.scoring.report.bias_variance import Diagnosis
from hwr.scoring.report.compare import Comparison
from hwr.scoring.report.confusions import confusion_matrix, top_pairs
from hwr.scoring.report.svg import bar_chart, heat_map, show_char

if TYPE_CHECKING:
    from hwr.scoring.evaluate import EvalReport

GALLERY_HEIGHT = 64  # px; IAM lines are ~120 px tall, this keeps ink legible and files small
GALLERY_MAX_WIDTH = 1400
GALLERY_JPEG_QUALITY = 85
TABLE_ROWS = 30

CSS = """
body{font-family:sans-serif;margin:1.5em;color:#222;max-width:1500px}
table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}
.plots{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
.line{border-top:1px solid #ddd;padding:.6em 0}.line img{max-width:100%;display:block;margin:.3em 0}
.t{font-family:monospace;font-size:15px;white-space:pre-wrap}
del{background:#f6c6cc;text-decoration:line-through}ins{background:#bfe8c4;text-decoration:none}
.sub{background:#fbe3a8}.muted{color:#777}
"""


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f'<td class="n">{escape(str(v))}</td>' if i in numeric else
                                    f"<td>{escape(str(v))}</td>" for i, v in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<table>{head}{body}</table>"


def char_diff_html(reference: str, hypothesis: str) -> str:
    """The hypothesis against the reference: <del> missing, <ins> extra, marked substitutions.

    Runs of the same edit are merged so a misread word reads as one change, not ten.
    """
    out = []
    for op, refs, hyps in _edit_runs(reference, hypothesis):
        if op == MATCH:
            out.append(escape(refs))
        elif op == DELETION:
            out.append(f"<del>{_visible(refs)}</del>")
        elif op == INSERTION:
            out.append(f"<ins>{_visible(hyps)}</ins>")
        else:
            out.append(f'<span class="sub" title="{escape(refs)} → {escape(hyps)}"><del>{_visible(refs)}</del>'
                       f"<ins>{_visible(hyps)}</ins></span>")
    return "".join(out)


def _visible(text: str) -> str:
    # A lost or extra space is a real error (word segmentation) and must show in the diff.
    return escape(text.replace(" ", "␣"))


def _edit_runs(reference: str, hypothesis: str) -> list[tuple[str, str, str]]:
    runs: list[list[str]] = []
    for op, ref, hyp in edit_script(reference, hypothesis):
        if runs and runs[-1][0] == op:
            runs[-1][1] += ref
            runs[-1][2] += hyp
        else:
            runs.append([op, ref, hyp])
    return [(op, refs, hyps) for op, refs, hyps in runs]


def line_image_data_uri(source) -> str | None:
    """A line image scaled to the gallery height as a data: URI (None when unreadable)."""
    try:
        gray = load_gray(source)
    except (ImageError, OSError, ValueError):
        return None
    scale = min(GALLERY_HEIGHT / gray.shape[0], GALLERY_MAX_WIDTH / gray.shape[1], 1.0)
    if scale < 1.0:
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    # JPEG, not PNG: scans and synthetic lines carry paper noise that PNG compresses poorly
    # (about 3x larger at this size), and a hundred lines should stay a mailable file.
    ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(gray), [cv2.IMWRITE_JPEG_QUALITY, GALLERY_JPEG_QUALITY])
    return "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii") if ok else None


def _summary(report: EvalReport, analysis: ErrorAnalysis, model: str, dataset: str, decoding: str = "") -> str:
    rows = [["model", model], *([["decoding", decoding]] if decoding else []), ["data set", dataset],
            ["lines", report.lines],
            ["CER", _rate(report.cer, analysis.cer_ci, report.char_errors, report.chars, "characters")],
            ["WER", _rate(report.wer, analysis.wer_ci, report.word_errors, report.words, "words")],
            ["95% intervals", f"bootstrap over lines, {analysis.resamples} resamples, seed {analysis.seed}"],
            ["normalisation", ", ".join(report.normalization) or "none (raw text scored)"],
            ["skipped", report.skipped_lines()]]
    return "<h2>Summary</h2>" + _table([], rows)


def _rate(rate: float, ci, errors: int, total: int, unit: str) -> str:
    # As the terminal says it: with no reference to divide by, no rate (the JSON's 1.0 or 0.0
    # is a placeholder, docs/eval-json.md).
    if not total:
        return f"undefined: {undefined_rate(errors, unit)}"
    return f"{_pct(rate)}  [{_pct(ci.low)}, {_pct(ci.high)}]  ({errors} / {total} {unit})"


def _plots(report: EvalReport, analysis: ErrorAnalysis) -> str:
    bins = len(analysis.histogram)
    hist = bar_chart(analysis.histogram, [f"{i / bins:.2f}" for i in range(bins)], "Lines by line CER",
                     lambda v: f"{v:g} lines", x_title="line CER (bin start; last bin includes ≥ 1)")
    length = bar_chart([g.cer * 100 for g in analysis.by_length], [g.name for g in analysis.by_length],
                       "CER by reference length", lambda v: f"{v:.1f}%", x_title="characters per line")
    rows, cols, matrix = confusion_matrix(analysis.tally)
    heat = heat_map(rows, cols, matrix, "Character confusions (edits only)")
    return f'<h2>Plots</h2><div class="plots">{hist}{length}{heat}</div>'


def _breakdowns(analysis: ErrorAnalysis) -> str:
    group_rows = [[g.name, g.lines, g.chars, g.char_errors, _pct(g.cer), _pct(g.wer)]
                  for g in analysis.subsets[:TABLE_ROWS]]
    more = len(analysis.subsets) - TABLE_ROWS
    note = f'<p class="muted">{more} more subsets in the JSON report.</p>' if more > 0 else ""
    length_rows = [[g.name, g.lines, g.chars, g.char_errors, _pct(g.cer)] for g in analysis.by_length]
    conf = analysis.top_confusions(TABLE_ROWS)["all"]
    conf_rows = [[c["type"], show_char(c["reference"]), show_char(c["hypothesis"]), c["count"]] for c in conf]
    word_rows = [[w["type"], w["reference"] or "ε", w["hypothesis"] or "ε", w["count"]]
                 for w in top_pairs(analysis.tally.words, TABLE_ROWS)]
    return (f"<h2>CER by subset ({escape(analysis.subset_key)}), worst first</h2>"
            + _table(["subset", "lines", "chars", "char errors", "CER", "WER"], group_rows, {1, 2, 3, 4, 5}) + note
            + "<h2>CER by line length</h2>"
            + _table(["characters", "lines", "chars", "char errors", "CER"], length_rows, {1, 2, 3, 4})
            + "<h2>Top character confusions</h2>"
            + _table(["type", "reference", "hypothesis", "count"], conf_rows, {3})
            + "<h2>Most frequent word errors</h2>"
            + _table(["type", "reference", "hypothesis", "count"], word_rows, {3}))


def _splits(diagnosis: Diagnosis) -> str:
    rows = [[s.name, s.lines, "n/a", s.why_undefined] if s.cer is None else
            [s.name, s.lines, _pct(s.cer), f"[{_pct(s.interval.low)}, {_pct(s.interval.high)}]"]
            for s in diagnosis.splits]
    gaps = [[name.replace("_", " "), f"{gap * 100:+.2f} points", "yes" if name in diagnosis.noisy else ""]
            for name, gap in diagnosis.gaps.items()]
    return ("<h2>Bias and variance</h2>" + _table(["split", "lines", "CER", "95% CI"], rows, {1, 2})
            + _table(["gap", "size", "within bootstrap noise"], gaps) + f"<p>{escape(diagnosis.reading)}</p>")


def _comparison(c: Comparison) -> str:
    rows = [[d.id, d.reference, d.hypothesis_a, d.hypothesis_b, d.char_errors_a, d.char_errors_b]
            for d in c.disagreements[:TABLE_ROWS * 2]]
    return (f"<h2>Model comparison</h2><p>A = {escape(c.model_a)} (CER {_pct(c.cer_a)}), "
            f"B = {escape(c.model_b)} (CER {_pct(c.cer_b)}). B − A = {c.test.delta * 100:+.2f} points, 95% CI "
            f"[{c.test.interval.low * 100:+.2f}, {c.test.interval.high * 100:+.2f}], paired bootstrap "
            f"{c.test.p_text()}. A better on {counted(c.a_better, 'line')}, B on {c.b_better}. "
            f"{escape(c.reading())}.</p>"
            + _table(["id", "reference", "A", "B", "errors A", "errors B"], rows, {4, 5}))


def _gallery(report: EvalReport, images: Mapping[str, object], n: int) -> str:
    items = []
    for r in report.worst(n):
        uri = line_image_data_uri(images[r.id]) if r.id in images else None
        img = f'<img alt="{escape(r.id)}" src="{uri}">' if uri else '<p class="muted">(no image)</p>'
        items.append(
            f'<div class="line"><b>{escape(r.id)}</b> <span class="muted">{escape(r.subset)}</span> '
            f"CER {_pct(r.cer)} ({r.char_errors} errors / {r.chars} chars), confidence {r.confidence:.2f}{img}"
            f'<div class="t">ref: {escape(r.reference)}</div><div class="t">hyp: {escape(r.hypothesis)}</div>'
            f'<div class="t">diff: {char_diff_html(r.reference, r.hypothesis)}</div></div>')
    return f"<h2>The {len(items)} worst lines</h2>" + "".join(items)


def render_html(report: EvalReport, analysis: ErrorAnalysis, model: str = "", dataset: str = "",
                images: Mapping[str, object] | None = None, worst_n: int = 100,
                diagnosis: Diagnosis | None = None, comparison: Comparison | None = None, decoding: str = "") -> str:
    """The whole report as one HTML string; `images` maps line ids to image sources;
    `decoding` says how the lines were read (hwr.recognition.decode.describe_decoding)."""
    sections = [_summary(report, analysis, model, dataset, decoding)]
    if diagnosis is not None:
        sections.append(_splits(diagnosis))
    if comparison is not None:
        sections.append(_comparison(comparison))
    sections += [_plots(report, analysis), _breakdowns(analysis), _gallery(report, images or {}, worst_n)]
    title = f"hwr eval: {dataset}" if dataset else "hwr eval"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>{''.join(sections)}</body></html>")


def write_html(path: str | Path, html: str) -> None:
    atomic_write_bytes(Path(path), utf8_bytes(html))
