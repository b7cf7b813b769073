"""Dataset readers: every format becomes a list of `LineSample` (id, text, image, meta).

`open_dataset(spec)` is the one entry point the trainer, scorer and CLI use. A spec is a path
whose format is detected, or a path with an explicit prefix:

    iam:/data/IAM            folder with ascii/lines.txt and lines/
    pairs:/data/lines        images with foo.gt.txt beside foo.png (recursive)
    manifest:/data/gt.tsv    path<TAB>text rows
    pagexml:/data/pages      a PAGE XML file or a folder of them; lines are cut from the page
    synth:val:500[:seed]     500 synthetic lines of the val split (seed 0 unless given)
    synth:hard:600[:seed]    the harder validation set: val fonts, pens, capture conditions
                             (meta["condition"]), real held-out letters and digits
    synth:struck:600[:seed]  the harder set with a word struck out (`#`) in half its lines
                             (meta["struck"])
    synth:archive:600[:seed] the harder set's writing on old leaves: faded ink, the back
                             showing through, heavy grain
    synth:neighbours:600[:seed] the harder set's writing cut with the tails of the lines
                             above and below in the crop
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from hwr.datasets.errors import DatasetError, OutsideFolder, PathLike, SkipReport, check_within
from hwr.datasets.iam import LINES_TXT, read_iam
from hwr.datasets.manifest import read_manifest
from hwr.datasets.pagexml import PAGE_ROOT, XML_PATTERN, iter_pagexml, read_pagexml
from hwr.datasets.pairs import GT_SUFFIX, read_pairs
from hwr.errors import name_some
from hwr.fileio import special_file_kind
from hwr.records import LineSample

__all__ = [
    "DatasetError",
    "LineDataset",
    "OutsideFolder",
    "SkipReport",
    "detect_format",
    "iter_pagexml",
    "known_lines",
    "looks_like_page",
    "open_dataset",
    "read_iam",
    "read_manifest",
    "read_pagexml",
    "read_pairs",
]

log = logging.getLogger("hwr.datasets")

FORMATS = ("iam", "pairs", "manifest", "pagexml", "synth")
# The fixed validation sets, each with its own seed unless a spec names one: the function of
# hwr.datasets.synthetic that draws it (imported lazily, as the engine is).
SYNTH_VALIDATION_SETS = {"hard": "hard_validation_lines", "struck": "struck_validation_lines",
                         "archive": "archive_validation_lines", "neighbours": "neighbour_validation_lines"}
SYNTH_SPLITS = ("train", "val", *SYNTH_VALIDATION_SETS)


@runtime_checkable
class LineDataset(Protocol):
    """What `open_dataset` returns: lines by index. The file readers return a list (every line
    read up front); `synth:` returns `hwr.datasets.synthetic.SyntheticLines`, which renders a
    line when it is indexed, so index it, never iterate it blindly, and ask `known_lines` for
    the lines when they are already in memory."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> LineSample: ...


def known_lines(dataset: LineDataset) -> list[LineSample] | None:
    """The lines themselves when they are in memory already (texts and ids known for free);
    None for lines rendered on demand, whose texts are known only by rendering them."""
    return dataset if isinstance(dataset, list) else None


def open_dataset(
    spec: PathLike,
    skip_bad: bool = False,
    split_file: PathLike | None = None,
    report: SkipReport | None = None,
    confined_to: PathLike | None = None,
) -> LineDataset:
    """Read the data set a spec names (see the module doc); bad entries raise or are skipped.

    `split_file` (ids to keep) applies to IAM, whose split files list form or line ids.
    `confined_to`: every file the data set uses must lie in this folder (an upload, unpacked, read
    by a server): one outside raises OutsideFolder, before it is opened, whatever `skip_bad`.
    """
    fmt, location = split_spec(str(spec))
    if fmt == "synth":
        if split_file is not None:  # silently ignored, the whole set would have been scored
            raise DatasetError(split_file, "split files apply to IAM data sets only, not synth")
        return _synthetic(location)
    path = Path(location)
    if fmt is None:
        fmt, path = detect_format(path)
    if split_file is not None and fmt != "iam":
        raise DatasetError(split_file, f"split files apply to IAM data sets only, not {fmt}")
    if fmt == "iam":
        lines = read_iam(path, split_file=split_file, skip_bad=skip_bad, report=report)
    elif fmt == "pairs":
        lines = read_pairs(path, skip_bad=skip_bad, report=report)
    else:  # these two name their images: checked before each is looked for
        reader: Callable[..., list[LineSample]] = {"manifest": read_manifest, "pagexml": read_pagexml}[fmt]
        lines = reader(path, skip_bad=skip_bad, report=report, confined_to=confined_to)
    if confined_to is not None:  # IAM's and pairs' files are found inside it; a symbolic link may lead out
        for line in lines:
            for file in line.files:
                check_within(file, confined_to, line.where)
    return lines


def split_spec(spec: str) -> tuple[str | None, str]:
    """`fmt:location` -> (fmt, location); a plain path -> (None, path)."""
    prefix, sep, rest = spec.partition(":")
    # Only known prefixes count, so a Windows drive ("C:\\data") stays a path.
    if sep and prefix in FORMATS:
        return prefix, rest
    return None, spec


def detect_format(path: Path) -> tuple[str, Path]:
    """The format of a data set on disk, and the path its reader takes."""
    if not path.exists():
        raise DatasetError(path, "no such file or folder")
    if special := special_file_kind(path):
        raise DatasetError(path, f"is {special}, not a data set file or folder")
    if path.is_file():
        return _file_format(path)
    if (path / LINES_TXT).is_file():
        return "iam", path
    # Pairs win over PAGE: a pairs folder may also hold stray XML, never the reverse. PAGE XML
    # beside them is named, not silently left unread.
    if _contains(path, f"*{GT_SUFFIX}"):
        _warn_page_xml_unread(path)
        return "pairs", path
    if _contains(path, XML_PATTERN):
        return "pagexml", path
    raise DatasetError(
        path,
        f"cannot tell the data set format: no {LINES_TXT} (IAM), no *{GT_SUFFIX} (pairs), "
        f"no *.xml (PAGE); name it explicitly, e.g. pairs:{path}",
    )


def _file_format(path: Path) -> tuple[str, Path]:
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        return "manifest", path
    if suffix == ".xml":
        return "pagexml", path
    if path.name == LINES_TXT.name and path.parent.name == LINES_TXT.parent.name:
        return "iam", path.parent.parent  # ascii/lines.txt given: the IAM root is two up
    raise DatasetError(path, "cannot tell the data set format of this file: expected .tsv (manifest) or .xml (PAGE)")


def _warn_page_xml_unread(folder: Path, shown: int = 3) -> None:
    """Warn when a folder read as pairs also holds PAGE XML (an export of both kinds): its
    lines are not read, and the way to read them is `pagexml:`."""
    pages = [xml for xml in sorted(folder.rglob(XML_PATTERN)) if looks_like_page(xml)]
    if pages:
        log.warning("%s: read as line images with %s transcriptions; its %d PAGE XML file(s) (%s) are not read "
                    "(score them with pagexml:%s)", folder, GT_SUFFIX, len(pages), name_some(map(str, pages), shown),
                    folder)


def looks_like_page(xml: Path) -> bool:
    """Whether an XML file's opening names PAGE's root element (PcGts): stray XML (notes, ALTO
    outputs) is not PAGE."""
    try:
        with xml.open("rb") as f:
            return PAGE_ROOT.encode() in f.read(4096)
    except OSError:
        return False


def _contains(folder: Path, pattern: str) -> bool:
    return next(iter(folder.rglob(pattern)), None) is not None


def _synthetic(location: str) -> LineDataset:
    """`val:500[:seed]` -> that many lines from the synthetic engine."""
    parts = location.split(":")
    try:
        if len(parts) not in (2, 3) or not parts[0]:
            raise ValueError
        split, count = parts[0], int(parts[1])
        seed = int(parts[2]) if len(parts) == 3 else 0
        if count <= 0 or seed < 0:
            raise ValueError
    except ValueError:
        raise DatasetError(f"synth:{location}", "expected synth:<split>:<count>[:<seed>] with a count above 0 and "
                           "a seed of 0 or more, e.g. synth:val:500") from None
    if split not in SYNTH_SPLITS:  # had failed only when a line was rendered (in a loader process)
        raise DatasetError(f"synth:{location}", f"unknown split {split!r}; expected one of {', '.join(SYNTH_SPLITS)}")
    try:
        # Imported lazily: the engine pulls in fonts and rendering that plain readers never need.
        synthetic = importlib.import_module("hwr.datasets.synthetic")
    except ImportError as exc:
        raise DatasetError(f"synth:{location}", f"the synthetic engine is unavailable ({exc})") from None
    if split in SYNTH_VALIDATION_SETS:
        lines = getattr(synthetic, SYNTH_VALIDATION_SETS[split])
        return lines(count, **({"seed": seed} if len(parts) == 3 else {}))
    # Lazy: lines are rendered when indexed (in DataLoader workers during training), so a
    # spec of millions of lines costs nothing up front. Index it; never iterate it blindly.
    return synthetic.SyntheticLines(count, split=split, seed=seed)
