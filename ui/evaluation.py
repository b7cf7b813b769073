"""Evaluate tab logic: a zipped labelled data set in; CER/WER, the lines by error, CER by length out."""
from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from hwr.datasets import DatasetError, OutsideFolder, SkipReport, detect_format, looks_like_page, open_dataset
from hwr.datasets.errors import visible_files
from hwr.datasets.iam import LINES_TXT
from hwr.datasets.pagexml import XML_PATTERN
from hwr.datasets.pairs import GT_SUFFIX
from hwr.errors import counted, name_some
from hwr.recognition.imaging import ImageError, load_gray
from hwr.records import LineSample
from hwr.scoring.evaluate import EvalReport, write_csv
from hwr.scoring.metrics import undefined_rate
from hwr.spreadsheet import text_cell

from .render import thumbnail_uri
from .uploads import UploadError, ZipLimits, display_name, extract_data_zip

# The table shows the worst lines with thumbnails inline; the CSV download has every line.
TABLE_ROWS = 200
LENGTH_BIN = 10  # characters per bar of the CER-by-length plot
NO_GROUND_TRUTH = ("{name} holds no ground truth: expected an IAM tree (ascii/lines.txt and lines/) "
                   "or line images with a .gt.txt file beside each (foo.png + foo.gt.txt)")


def open_uploaded_dataset(archive: str | Path, work: Path, limits: ZipLimits) -> tuple[list[LineSample], SkipReport]:
    """Unpack a zipped data set and read its lines; bad entries are skipped and reported."""
    name = display_name(archive)
    folder = work / "dataset"
    extract_data_zip(archive, folder, limits)
    root = dataset_root(folder, name)
    try:
        detect_format(root)
    except DatasetError:  # no lines.txt, .gt.txt, manifest or PAGE XML anywhere
        raise UploadError(NO_GROUND_TRUTH.format(name=name)) from None
    report = SkipReport()
    try:
        # A server may read an upload's own files only: a PAGE XML or manifest naming a path on
        # the server had shown that image's lines (or told whether the file exists).
        samples = open_dataset(root, skip_bad=True, report=report, confined_to=folder)
    except (DatasetError, OutsideFolder) as exc:
        raise UploadError(f"{name}: {relative_to_upload(str(exc), folder)}") from None
    if not samples:
        raise UploadError(f"{name}: no usable lines ({relative_to_upload(report.summary(3), folder)})")
    return samples, report


def dataset_root(folder: Path, name: str) -> Path:
    """Where the data set starts inside an unpacked zip (`name`, the upload): the IAM root if
    there is one, else the top. A zip holding two data sets, or two kinds (IAM and pairs, pairs
    and PAGE XML), is refused naming them: one reader reads one of them, and the others had
    been left out with nothing said but a line count (a probe helper)."""
    iam_roots = sorted({lines_txt.parent.parent for lines_txt in folder.rglob(LINES_TXT.name)
                        if lines_txt.parent.name == LINES_TXT.parent.name})
    if len(iam_roots) > 1:
        where = name_some([relative_to_upload(str(root), folder) for root in iam_roots], 3, sep=", ")
        raise UploadError(f"{name} holds {len(iam_roots)} IAM data sets ({where}); upload one per zip")
    visible = visible_files(folder)  # hidden trees left out, as the readers leave them out
    kinds = {"image + .gt.txt pairs": sum(path.name.endswith(GT_SUFFIX) for path in visible),
             "PAGE XML pages": sum(path.match(XML_PATTERN) and looks_like_page(path) for path in visible)}
    if iam_roots:
        kinds = {"an IAM data set": 1, **kinds}
    found = [f"{kind} ({count} files)" if count > 1 else kind for kind, count in kinds.items() if count]
    if len(found) > 1:
        raise UploadError(f"{name} holds {' and '.join(found)}: one kind is read from a zip, and the other "
                          "would be left out; upload each kind in a zip of its own, or leave out the one that is "
                          "not ground truth (hwr's own PAGE outputs beside corrected pairs, say)")
    return iam_roots[0] if iam_roots else folder


def relative_to_upload(message: str, folder: Path, top: str = "the zip's top folder") -> str:
    """`message` with the server's copy of an upload (`folder`) taken out of its paths: messages
    name files by their server path; the user knows them by their path in the zip."""
    return message.replace(str(folder) + "/", "").replace(str(folder), top)


def summary_markdown(report: EvalReport, skipped: SkipReport, folder: Path) -> str:
    def rate(name: str, value: float, errors: int, total: int, unit: str) -> str:
        if not total:  # the JSON's placeholder 1.0 or 0.0 is no rate (docs/eval-json.md)
            return f"**{name} undefined**: {undefined_rate(errors, unit)}"
        return f"**{name} {value:.2%}** ({errors} / {total} {unit})"

    text = (f"{rate('CER', report.cer, report.char_errors, report.chars, 'characters')} · "
            f"{rate('WER', report.wer, report.word_errors, report.words, 'words')} · {counted(report.lines, 'line')}")
    problems = [relative_to_upload(f"{source}{'' if row == '' else f':{row}'}: {reason}", folder)
                for source, row, reason in _unusable_entries(report, skipped)]
    if problems:
        text += f"\n\nSkipped {counted(len(problems), 'unusable entry', 'unusable entries')}: {name_some(problems, 5)}"
        if len(problems) > 5:
            text += " (every one in the skipped-entries CSV below)"
    if skipped.untranscribed:
        # Lines nobody has transcribed yet (PAGE TextLines without text) are not faults of the data.
        text += f"\n\nNot scored: {counted(skipped.untranscribed, 'line')} without a transcription yet."
    return text


SKIPPED_COLUMNS = ["entry", "row", "reason"]


def _unusable_entries(report: EvalReport, skipped: SkipReport) -> list[tuple[str, int | str, str]]:
    """(file, row of a list file or "", why) of every entry left out as unusable: the files
    that failed to read, then those the data set's reader skipped (lines not transcribed yet
    are no fault, and not among them)."""
    return ([(f.source, "", f.message) for f in report.failures]
            + [(e.source, "" if e.line_no is None else e.line_no, e.reason) for e in skipped.problems])


def write_skipped_csv(report: EvalReport, skipped: SkipReport, folder: Path, path: Path) -> bool:
    """Every entry left out as unusable (the summary names only a few), by its path in the zip
    and, for a list file's row, the row number; False (nothing written) when there is none."""
    rows = _unusable_entries(report, skipped)
    if not rows:
        return False
    write_csv(path, SKIPPED_COLUMNS, ([text_cell(relative_to_upload(source, folder)), row,
                                       text_cell(relative_to_upload(reason, folder))] for source, row, reason in rows))
    return True


def lines_table_html(report: EvalReport, samples: list[LineSample], rows: int = TABLE_ROWS) -> str:
    """The lines, worst first, each with a thumbnail of its image."""
    by_id = {s.id: s for s in samples}
    worst = report.worst(len(report.results))
    body = "".join(_row_html(r, by_id.get(r.id)) for r in worst[:rows])
    note = f"<p>Showing the {rows} worst of {len(worst)} lines; the CSV has all.</p>" if len(worst) > rows else ""
    return (f'{note}<table class="hwr-eval"><thead><tr><th>image</th><th>id</th><th>reference / recognised</th>'
            f"<th>CER</th><th>confidence</th></tr></thead><tbody>{body}</tbody></table>")


def _row_html(result, sample: LineSample | None) -> str:
    thumb = ""
    if sample is not None:
        try:
            thumb = f'<img src="{thumbnail_uri(load_gray(sample.image))}" alt="{html.escape(result.id)}">'
        except ImageError:
            thumb = "(unreadable)"
    return (f"<tr><td>{thumb}</td><td>{html.escape(result.id)}</td>"
            f"<td>{html.escape(result.reference)}<br><b>{html.escape(result.hypothesis)}</b></td>"
            f"<td>{result.cer:.1%}</td><td>{result.confidence:.0%}</td></tr>")


def cer_by_length(report: EvalReport, bin_size: int = LENGTH_BIN) -> pd.DataFrame:
    """Corpus CER of the lines in each reference-length bin (short lines often fare worst)."""
    bins: dict[int, list[int]] = {}
    for r in report.results:
        start = len(r.reference) // bin_size * bin_size
        errors_chars = bins.setdefault(start, [0, 0, 0])
        errors_chars[0] += r.char_errors
        errors_chars[1] += len(r.reference)
        errors_chars[2] += 1
    rows = [{"length": f"{start}-{start + bin_size - 1}", "CER": errors / max(chars, 1), "lines": count}
            for start, (errors, chars, count) in sorted(bins.items())]
    return pd.DataFrame(rows, columns=["length", "CER", "lines"])


EVAL_CSS = """
.hwr-eval { border-collapse: collapse; font-size: 0.9em; }
.hwr-eval td, .hwr-eval th {
  border-bottom: 1px solid #ddd; padding: 0.25em 0.5em; text-align: left; vertical-align: middle;
}
.hwr-eval img { max-height: 32px; }
"""
