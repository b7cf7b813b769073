"""Write a synthetic data set to disk, in a layout the readers in hwr.datasets understand.

Formats:
  iam    `ascii/lines.txt` (IAM header and rows `id ok graylevel components x y w h w1|w2|...`)
         and `lines/<s00>/<s00-000>/<s00-000-00>.png`. Ten lines make a "form" when lines are
         rendered alone; x y w h is then the line image itself (0 0 w h). IAM separates words
         with `|`, so IAM exports draw labels from the charset without `|` (a literal `|`
         could not be told from a word break).
  pairs  `<id>.png` beside `<id>.gt.txt` (one line of text, newline-terminated).

pages=True renders n pages instead of n lines: `pages/<page_id>.png` and
`pages/<page_id>.json` (page size and, per line in reading order: id, text, polygon, baseline,
bbox, font, kind; coordinates in page pixels), plus every line cut from its page into the
chosen format (pixels outside the line polygon are set to paper, as in IAM's line images;
IAM x y w h is then the line's box on the page). Pairs then go to `lines/`, away from the
page images, which have no single-line ground truth: read them as `pairs:<out>/lines`.

Every file is written to a temporary name and moved into place (os.replace), so an
interrupted export never leaves a truncated image or label behind. `synth-config.json`
records the seed, split and SynthConfig for reproduction; it is written first with
`"complete": false` and rewritten with `true` at the end, so a set cut short says so. A
non-empty folder is refused unless it holds an export of the very same settings: that rerun
finishes it (a line is a pure function of seed, split and index, so nothing is duplicated;
pairs lines already on disk are kept, not rendered again). Anything else would mix two sets.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from tqdm import tqdm

from hwr.config_args import check_at_least, check_fields, setting
from hwr.errors import ConfigError, name_some
from hwr.fileio import atomic_write_bytes
from hwr.recognition.charset import Charset
from hwr.synth.config import SynthConfig
from hwr.synth.page import SynthPage
from hwr.synth.parallel import default_processes, rendered
from hwr.synth.synthesizer import LineSynthesizer

log = logging.getLogger(__name__)

FORMATS = ("iam", "pairs")
RECORD_FILE = "synth-config.json"
LINES_PER_FORM = 10
IAM_HEADER = """\
#--- lines.txt ---------------------------------------------------------------#
#
# iam database line information (synthetic lines written by hwr.synth)
#
# format: s00-000-00 ok 154 19 408 746 1661 89 A|MOVE|to|stop|Mr.|Gaitskell|from
#
#     s00-000-00   -> line 00 of form s00-000
#     ok              -> result of word segmentation (always ok: words are drawn apart)
#     154             -> graylevel to binarize line (Otsu threshold of the line image)
#     19              -> number of components for this line
#     408 746 1661 89 -> bounding box around this line in x,y,w,h format
#     A|MOVE|to|stop  -> transcription for this line. word tokens are separated
#                        by the character |
#
"""


@dataclass
class SynthExportConfig:
    """Settings of `hwr synth` (CLI flags and --config files read these); see `export_dataset`."""

    out: str = setting(help="output folder")
    n: int = setting(1000, help="number of lines (or pages with --pages)")
    format: Literal["iam", "pairs"] = setting("pairs", help="iam (ascii/lines.txt + lines/) or pairs "
                                                            "(image + .gt.txt)")
    pages: bool = setting(False, help="render whole pages with line geometry (pages/) and cut their lines")
    split: Literal["train", "val"] = setting("train", help="font/text/digit split to draw from")
    seed: int = setting(0, help="random seed: a (seed, split, index) always renders the same line")
    progress: bool = setting(True, help="progress bar on stderr")
    processes: int | None = setting(None, help="processes that render the lines; default: the cores, at most 8; "
                                               "1: in this process (the same set either way)")

    def __post_init__(self) -> None:
        check_fields(self)
        check_at_least(self, 1, "n")  # `--n 0` would write only a config file, in silence
        check_at_least(self, 0, "seed")  # numpy's generators take no negative seed: a traceback at the first line
        if self.processes is not None:
            check_at_least(self, 1, "processes")


def png_bytes(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError("PNG encoding failed")
    return data.tobytes()


def iam_ids(form_index: int, line_index: int) -> tuple[str, str, str]:
    """(writer folder, form id, line id) in IAM's shape, e.g. ('s00', 's00-007', 's00-007-03')."""
    group = f"s{form_index // 1000:02d}"
    form = f"{group}-{form_index % 1000:03d}"
    return group, form, f"{form}-{line_index:02d}"


def iam_row(line_id: str, image: np.ndarray, box: tuple[int, int, int, int], text: str) -> str:
    """One lines.txt row: graylevel is the Otsu threshold, components count the ink blobs."""
    threshold, binary = cv2.threshold(image, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    components = cv2.connectedComponents(binary)[0] - 1
    x, y, w, h = box
    return f"{line_id} ok {int(threshold)} {components} {x} {y} {w} {h} {'|'.join(text.split(' '))}"


class _Writer:
    """Puts line images and labels where the chosen format wants them."""

    def __init__(self, out_dir: Path, fmt: str):
        self.out_dir = out_dir
        self.fmt = fmt
        self.rows: list[str] = []

    def line(self, image: np.ndarray, text: str, pairs_id: str, form_index: int, line_index: int,
             box: tuple[int, int, int, int] | None = None) -> str:
        if self.fmt == "pairs":
            atomic_write_bytes(self.out_dir / f"{pairs_id}.png", png_bytes(image))
            atomic_write_bytes(self.out_dir / f"{pairs_id}.gt.txt", (text + "\n").encode("utf-8"))
            return pairs_id
        group, form, line_id = iam_ids(form_index, line_index)
        atomic_write_bytes(self.out_dir / "lines" / group / form / f"{line_id}.png", png_bytes(image))
        self.rows.append(iam_row(line_id, image, box or (0, 0, image.shape[1], image.shape[0]), text))
        return line_id

    def has_pair(self, pairs_id: str) -> bool:
        """Both files of a pairs line are on disk (each was renamed into place whole)."""
        return (self.out_dir / f"{pairs_id}.png").is_file() and (self.out_dir / f"{pairs_id}.gt.txt").is_file()

    def finish(self) -> None:
        if self.fmt == "iam":
            body = IAM_HEADER + "".join(row + "\n" for row in self.rows)
            atomic_write_bytes(self.out_dir / "ascii" / "lines.txt", body.encode("utf-8"))


def export_dataset(out_dir: str | Path, n: int, fmt: str = "pairs", pages: bool = False, seed: int = 0,
                   split: str = "train", progress: bool = True, config: SynthConfig | None = None,
                   charset: Charset | None = None, processes: int | None = None) -> Path:
    """Render n lines (or n pages) of the split into out_dir, on `processes` processes (None:
    the cores, at most 8; hwr.synth.parallel); returns out_dir."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    if n < 0:
        raise ConfigError(f"n must be >= 0, got {n}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    charset = charset or Charset()
    if fmt == "iam" and "|" in charset:
        log.info("IAM export: '|' separates words in lines.txt, so labels are drawn without it")
        charset = Charset([s for s in charset.symbols if s != "|"])
    config = config or SynthConfig()
    record = {"format": fmt, "pages": pages, "n": n, "seed": seed, "split": split,
              "charset": charset.to_json(), "config": config.to_dict()}
    earlier = (out_dir / RECORD_FILE).exists()
    check_export_folder(out_dir, record)
    _write_record(out_dir, record, complete=False)
    synth = LineSynthesizer(config, split=split, charset=charset, seed=seed)
    writer = _Writer(out_dir / "lines" if pages and fmt == "pairs" else out_dir, fmt)
    unit = "page" if pages else "line"
    done = 0
    bar = tqdm(total=n, desc=f"synth {split} {unit}s", unit=unit, disable=not progress)

    def to_draw() -> Iterator[int]:
        """The indices to render, looked at as they are needed: a rerun finishing a pairs export
        keeps the lines on disk (lines.txt and the pages' line crops are written from every
        line again)."""
        nonlocal done
        for i in range(n):
            if pages or fmt != "pairs" or not writer.has_pair(synth.sample_id(i)):
                yield i
            else:
                done += 1
                bar.update()

    try:
        with bar, closing(rendered(synth, to_draw(), n, default_processes(processes),
                                   pages)) as drawn:
            for i, item in drawn:
                if pages:
                    _export_page(item, i, writer, out_dir, fmt)
                else:
                    writer.line(item.image, item.text, item.id, i // LINES_PER_FORM, i % LINES_PER_FORM)
                done += 1
                bar.update()
        writer.finish()
    except BaseException as exc:
        if not earlier and all(p.name == RECORD_FILE for p in out_dir.iterdir()):
            # Failed before the first file (no usable font): no set behind, not even an unfinished one.
            (out_dir / RECORD_FILE).unlink()
        # Ctrl-C, or SIGTERM as `hwr synth` turns it into an exit (hwr.interrupts.sigterm_as_exit).
        if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        log.warning("interrupted after %d of %d %ss: %s is incomplete (%s says so); run the same command "
                    "again to finish it", done, n, unit, out_dir, RECORD_FILE)
        raise
    _write_record(out_dir, record, complete=True)
    return out_dir


def _write_record(out_dir: Path, record: dict, complete: bool) -> None:
    body = {**record, "complete": complete}
    atomic_write_bytes(out_dir / RECORD_FILE, json.dumps(body, indent=2).encode("utf-8"))


def check_export_folder(out_dir: Path, record: dict) -> None:
    """ConfigError unless out_dir is missing, empty, or an export (finished or cut short) of
    the same settings; another set's lines, or files of the user's, would be mixed in."""
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    try:
        earlier = json.loads((out_dir / RECORD_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{out_dir}: folder exists, is not empty and holds no {RECORD_FILE} (it is no hwr synth "
                          "export); give an empty or new folder") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{out_dir / RECORD_FILE}: unreadable ({exc}); give an empty or new folder") from None
    record = json.loads(json.dumps(record))  # as it reads back: tuples become lists
    differ = [key for key in record if not isinstance(earlier, dict) or earlier.get(key) != record[key]]
    if differ:
        raise ConfigError(f"{out_dir}: holds a synthetic set made with other settings ({name_some(differ, 4, ', ')} "
                          "differ); give an empty or new folder, or the same settings to finish that set")
    if earlier.get("complete") is False:
        log.info("%s: finishing the export cut short there (same settings)", out_dir)


def _export_page(rendered: SynthPage, index: int, writer: _Writer, out_dir: Path, fmt: str) -> None:
    page = rendered.page
    if fmt == "iam":
        # The page is the IAM form: its id names the page files and prefixes its lines.
        page.id = iam_ids(index, 0)[1]
        for k, line in enumerate(page.lines):
            line.id = iam_ids(index, k)[2]
    atomic_write_bytes(out_dir / "pages" / f"{page.id}.png", png_bytes(rendered.image))
    atomic_write_bytes(out_dir / "pages" / f"{page.id}.json",
                       json.dumps(rendered.to_json(), indent=1).encode("utf-8"))
    paper = int(np.median(rendered.image[::8, ::8]))
    for k, line in enumerate(page.lines):
        x0, y0, x1, y1 = line.bbox
        crop = line_crop(rendered.image, line.polygon, line.bbox, paper)
        writer.line(crop, line.text, line.id, index, k, box=(x0, y0, x1 - x0, y1 - y0))


def line_crop(image: np.ndarray, polygon: list[tuple[int, int]], bbox: tuple[int, int, int, int],
              paper: int) -> np.ndarray:
    """The line's box, with everything outside its polygon painted paper-gray."""
    x0, y0, x1, y1 = bbox
    crop = image[y0:y1, x0:x1].copy()
    mask = np.zeros(crop.shape, np.uint8)
    cv2.fillPoly(mask, [np.array(polygon, np.int32) - (x0, y0)], 255)
    crop[mask == 0] = paper
    return crop
