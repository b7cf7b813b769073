"""PAGE XML (2013/2019 and older): one LineSample per transcribed TextLine, cut from its page.

Each line image is the bounding box of the TextLine's Coords polygon, with everything outside
the polygon painted white, so ascenders and descenders of the neighbouring lines that reach
into the box do not become phantom ink. Tags are matched by local name, so every PAGE schema
version (and a missing namespace) reads the same; a namespace that is not PRImA's PAGE one is
an error, not a guess.

Lines are cut eagerly, because a LineSample holds pixels, not a page reference: a folder of
N pages keeps roughly N pages' worth of line pixels in memory. `iter_pagexml` streams them.
"""
from __future__ import annotations

import math
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path, PurePosixPath, PureWindowsPath

import cv2
import numpy as np

from hwr.datasets.errors import (
    DatasetError,
    PathLike,
    SkipReport,
    check_within,
    log,
    read_lines,
    report_or_raise,
    unique_ids,
    visible_files,
)
from hwr.documents.orientation import turned
from hwr.documents.pages import PDF_SUFFIX, PageRef, count_pages, load_page, pdf_dpi_for_size
from hwr.documents.writers.pagexml import IMAGE_PATH_ITEM, PAGE_NUMBER_ITEM
from hwr.errors import counted
from hwr.fileio import file_in_any_unicode_form, is_dir
from hwr.recognition.charset import normalize_text
from hwr.recognition.imaging import ImageError, check_image_file, readable_gray
from hwr.records import LineSample, document_page_number

PAGE_ROOT = "PcGts"
INT32_MIN, INT32_MAX = np.iinfo(np.int32).min, np.iinfo(np.int32).max
# Every PAGE version's namespace: .../pagecontent/2010-03-19, 2013-07-15, 2019-07-15, ...
PAGE_NAMESPACE = "http://schema.primaresearch.org/PAGE/gts/pagecontent/"


def read_pagexml(path: PathLike, skip_bad: bool = False, report: SkipReport | None = None,
                 confined_to: PathLike | None = None) -> list[LineSample]:
    """Line samples of one PAGE XML file, or of every PAGE file under a folder (sorted).
    `confined_to`: a page image outside this folder raises OutsideFolder (an upload's)."""
    return read_lines(lambda seen: iter_pagexml(path, skip_bad, seen, confined_to), path,
                      "no transcribed TextLine in any PAGE XML file", report)


def iter_pagexml(path: PathLike, skip_bad: bool = False, report: SkipReport | None = None,
                 confined_to: PathLike | None = None) -> Iterator[LineSample]:
    """Like `read_pagexml`, but yields lines page by page to bound memory."""
    path = Path(path)
    if path.is_dir():
        xmls = [(xml, xml.relative_to(path).with_suffix("").as_posix()) for xml in _xml_files(path)]
    elif path.is_file():
        xmls = [(path, path.stem)]
    else:
        raise DatasetError(path, "no such file or folder")
    yield from unique_ids(_iter_pages(xmls, path.is_dir(), skip_bad, report, confined_to), skip_bad, report)


# Any case: exports from Windows tools name pages `0001.XML`, and a folder mixing both cases had
# had its upper-case pages left unread in silence.
XML_PATTERN = "*.[xX][mM][lL]"


def _xml_files(folder: Path) -> list[Path]:
    """The XML files of a folder and its subfolders outside hidden trees, sorted."""
    return [path for path in visible_files(folder) if path.match(XML_PATTERN)]


def _iter_pages(
    xmls: list[tuple[Path, str]], in_folder: bool, skip_bad: bool, report: SkipReport | None,
    confined_to: PathLike | None = None,
) -> Iterator[LineSample]:
    for xml, page_id in xmls:
        try:
            root = parse_page_root(xml, in_folder)
            if root is not None:
                yield from _page_lines(xml, page_id, root, skip_bad, report, confined_to)
        except DatasetError as error:
            report_or_raise(error, skip_bad, report)


def parse_page_root(xml: Path, in_folder: bool) -> ET.Element | None:
    """A PAGE XML file's root element; None for other XML met in a folder (exports carry METS
    and document XML beside the pages: Transkribus' mets.xml, doc.xml, metadata.xml), which
    named alone is an error. Bad XML and a foreign namespace raise a DatasetError naming it."""
    root = _parse_xml(xml)
    if local_name(root.tag) != PAGE_ROOT:
        if in_folder:
            return None
        raise DatasetError(xml, f"not a PAGE XML file (root {local_name(root.tag)}, expected {PAGE_ROOT})")
    _check_namespace(xml, root)
    return root


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _check_namespace(xml: Path, root: ET.Element) -> None:
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if namespace and not namespace.startswith(PAGE_NAMESPACE):
        raise DatasetError(xml, f"unknown PAGE namespace {namespace!r} (expected {PAGE_NAMESPACE}<version>)")


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if local_name(child.tag) == name]


def _descendants(element: ET.Element, name: str) -> list[ET.Element]:
    return [el for el in element.iter() if local_name(el.tag) == name]


# ReadingOrder children that name regions: groups (whose own regionRef comes first) and refs.
_ORDER_GROUPS = ("OrderedGroup", "UnorderedGroup", "OrderedGroupIndexed", "UnorderedGroupIndexed")
_ORDER_REFS = ("RegionRef", "RegionRefIndexed")


def region_order(page_el: ET.Element) -> list[str]:
    """Region ids in the page's ReadingOrder (empty when it has none).

    Ordered groups sort their members by `index`; unordered ones keep file order."""
    order: list[str] = []

    def visit(element: ET.Element) -> None:
        if element.get("regionRef"):
            order.append(element.get("regionRef"))
        members = [c for c in element if local_name(c.tag) in _ORDER_GROUPS + _ORDER_REFS]
        if local_name(element.tag).startswith("OrderedGroup"):
            members.sort(key=_index_rank)
        for member in members:
            visit(member)

    for reading_order in _children(page_el, "ReadingOrder"):
        for group in reading_order:
            visit(group)
    return order


def reading_order_lines(page_el: ET.Element) -> list[tuple[str, ET.Element]]:
    """(id, TextLine) pairs of a Page in reading order: regions as the ReadingOrder ranks them
    (a line counts under its nearest ranked enclosing region), lines of regions it does not
    name after them, in file order. Exports do not always store regions in reading order, and
    a page's text joined in file order would cost every line of a swapped pair.

    A TextLine without an id gets `line@N` (N: its position in the file): `@` cannot occur in
    an XML ID, so it never clashes with a real id such as `line1`. So does every later TextLine
    of an id the page already gave one (`l0@5`): an export that numbers each region's lines
    from l0 again had lost all its lines but the first of each id, as duplicates."""
    order = region_order(page_el)
    rank = {region: i for i, region in reversed(list(enumerate(order)))}  # a region named twice: first place
    parent = {child: el for el in page_el.iter() for child in el}
    ranked, seen = [], set()
    for index, line_el in enumerate(_descendants(page_el, "TextLine"), start=1):
        ancestor, line_rank = parent.get(line_el), len(order)
        while ancestor is not None:
            if ancestor.get("id") in rank:
                line_rank = rank[ancestor.get("id")]
                break
            ancestor = parent.get(ancestor)
        given = line_el.get("id")
        ranked.append((line_rank, index, f"{given or 'line'}@{index}" if not given or given in seen else given,
                       line_el))
        seen.add(given)
    return [(line_id, line_el) for _, _, line_id, line_el in sorted(ranked, key=lambda r: r[:2])]


def _parse_xml(xml: Path) -> ET.Element:
    try:
        return ET.parse(xml).getroot()
    except ET.ParseError as exc:
        raise DatasetError(xml, f"not well-formed XML ({exc.msg})", exc.position[0]) from None
    except OSError as exc:
        raise DatasetError(xml, f"cannot read file ({exc.strerror or exc})") from None


def _page_lines(
    xml: Path, page_id: str, root: ET.Element, skip_bad: bool, report: SkipReport | None,
    confined_to: PathLike | None = None,
) -> Iterator[LineSample]:
    page_el = _descendants(root, "Page")
    if not page_el:
        raise DatasetError(xml, "no Page element")
    transcribed, untranscribed = [], []
    for line_id, line_el in reading_order_lines(page_el[0]):
        text = line_text(line_el)
        if text is None:
            untranscribed.append(line_id)
        else:
            transcribed.append((line_id, line_el, text))
    _note_untranscribed(xml, untranscribed, report)
    if not transcribed:
        return  # nothing to cut: spare decoding a page image that may be large or absent
    try:
        image_path = resolve_page_image(xml, page_el[0].get("imageFilename", ""), root, confined_to)
        # Lines are cut white outside their polygon: from a page in light ink that white would
        # be a blot once each line is inverted, so the page is turned to dark ink first.
        gray = readable_gray(load_page_image(xml, page_el[0], page_image_ref(xml, root, image_path)))
    except DatasetError as error:
        if not skip_bad:
            raise
        # Every line of the page is lost with its image: each counted, not the page as one
        # (the log, with no report to count them, says it once for the page).
        if report is None:
            log.warning("skipped %d transcribed line(s) of %s: %s", len(transcribed), xml, error.reason)
        else:
            for line_id, _, _ in transcribed:
                report.add_error(DatasetError(xml, f"TextLine {line_id!r}: {error.reason}",
                                              image_missing=error.image_missing))
        return
    turn = page_turn(page_el[0])
    for line_id, line_el, text in transcribed:
        try:
            yield _cut_line(xml, page_id, line_id, line_el, text, gray, image_path, turn)
        except DatasetError as error:
            report_or_raise(error, skip_bad, report)


def _note_untranscribed(xml: Path, line_ids: list[str], report: SkipReport | None) -> None:
    # Segmented-but-untranscribed lines are normal in PAGE (work in progress), so they are
    # always skipped, never an error; the report or the log still says which.
    if not line_ids:
        return
    if report is not None:
        for line_id in line_ids:
            report.add(xml, None, f"TextLine {line_id!r} has no text", untranscribed=True)
    else:
        log.info("%s: %d TextLines without text skipped", xml, len(line_ids))


def resolve_page_image(xml: Path, filename: str, root: ET.Element | None = None,
                       confined_to: PathLike | None = None) -> Path:
    """The page image, relative to the XML; Transkribus exports keep XML in `page/` below it;
    hwr's outputs written apart from the scans give its path in a MetadataItem (IMAGE_PATH_ITEM).
    `confined_to`: a place to look outside this folder raises OutsideFolder, before any is looked at."""
    if not filename:
        raise DatasetError(xml, "Page has no imageFilename")
    names = _image_names(filename, confined_to is None)
    candidates = [xml.parent / name for name in names]
    if xml.parent.name == "page":
        candidates += [xml.parent.parent / name for name in names]
    given = _metadata_value(root, IMAGE_PATH_ITEM) if root is not None else None
    if given:
        candidates += [xml.parent / name for name in _image_names(given, confined_to is None)]
    candidates = list(dict.fromkeys(candidates))  # an absolute name joins every folder as itself
    for candidate in candidates:
        check_within(candidate, confined_to, xml)
    for candidate in candidates:
        found = file_in_any_unicode_form(candidate)
        if found is not None:
            return found
    folders = [str(c) for c in candidates if is_dir(c)]
    if folders:
        raise DatasetError(xml, f"page image {filename!r} names a folder ({', '.join(folders)}), not an image")
    raise DatasetError(xml, f"page image {filename!r} not found (looked for {', '.join(map(str, candidates))})"
                            f"{_other_case_hint(candidates)}", image_missing=True)


def _image_names(filename: str, absolute_ok: bool) -> list[str]:
    """The names an imageFilename may stand for: a `file://` URI's path, and the file name of any
    URI beside the XML (exports that point at where the scans were, or at a server); else the
    name itself, and decoded when percent-encoded (`my%20page.png`). Absolute paths only where
    the reader may look anywhere (not in an upload)."""
    parsed = urllib.parse.urlsplit(filename)
    if parsed.scheme in ("file", "http", "https"):
        path = urllib.parse.unquote(parsed.path)
        names = ([path] if parsed.scheme == "file" and absolute_ok else []) + [PurePosixPath(path).name]
    else:
        # Byte for byte too: hwr writes a name that is not UTF-8 so (writers.common.file_name_in_xml).
        names = [filename, urllib.parse.unquote(filename), urllib.parse.unquote(filename, errors="surrogateescape")]
        if "\\" in filename:  # written on Windows: "imgs\\p.png" as that path; "C:\\scans\\p.png" by its name, as
            windows = PureWindowsPath(filename)  # file:// URIs are (a relative one's name could be another page)
            names.append(windows.name if windows.anchor else windows.as_posix())
    return [name for i, name in enumerate(names) if name and name not in names[:i]]


def _other_case_hint(candidates: list[Path]) -> str:
    """"; X is there (the names differ in case)" when a file beside a candidate differs from it
    only in case: found on a Windows or macOS disk, not on this one."""
    for candidate in candidates:
        try:
            same = [p for p in candidate.parent.iterdir()
                    if p.name.lower() == candidate.name.lower() and p.name != candidate.name]
        except OSError:
            continue
        if same:
            return f"; {same[0]} is there (the names differ in case)"
    return ""


def page_image_ref(xml: Path, root: ET.Element, image_path: Path) -> PageRef:
    """The page of `image_path` that the PAGE file describes: the whole image, or, in a file of
    several pages (a PDF, a multi-page TIFF), the page that the file's MetadataItem "page" (hwr
    writes one) or its own name (`ledger#p3.xml`, as hwr names them) gives. Without either the
    first page would be cut silently against another page's polygons: a DatasetError instead."""
    try:
        pages = count_pages(image_path).pages
    except ImageError as exc:
        raise DatasetError(xml, f"page image unusable: {exc}") from None
    if pages == 1:
        return _at_declared_dpi(root, PageRef(xml.stem, image_path, label=str(image_path)))
    number = _declared_page_number(xml, root) or document_page_number(xml.stem)
    if number is None:
        raise DatasetError(xml, f"page image {image_path} has {pages} pages and the XML does not say which one it "
                                f"describes (a Metadata/MetadataItem name=\"{PAGE_NUMBER_ITEM}\" value=\"N\", or "
                                "an XML file named <name>#pN.xml, as hwr transcribe writes them)")
    if number > pages:
        raise DatasetError(xml, f"describes page {number} of {image_path}, which has {counted(pages, 'page')}")
    return _at_declared_dpi(root, PageRef(xml.stem, image_path, number - 1, pages, label=str(image_path)))


def _at_declared_dpi(root: ET.Element, page: PageRef) -> PageRef:
    """A PDF page drawn at the resolution its PAGE file's declared size says (hwr transcribe
    --dpi 150 writes 150 dpi coordinates; drawn at the default 300 the page was refused as
    twice the declared size). Other pages, and a size no dpi gives, are left as they are: the
    size check names the mismatch."""
    page_el = _descendants(root, "Page")
    if page.path.suffix.lower() != PDF_SUFFIX or not page_el:
        return page
    declared = [_number(page_el[0].get(name, "")) for name in ("imageWidth", "imageHeight")]
    # Whole numbers only ("40" or "40.0", as _check_declared_size takes them); "²" is refused too.
    if not all(n is not None and math.isfinite(n) and n == int(n) > 0 for n in declared):
        return page
    return replace(page, dpi=pdf_dpi_for_size(page.path, page.index, (int(declared[0]), int(declared[1]))))


def _metadata_value(root: ET.Element, name: str) -> str | None:
    for item in _descendants(root, "MetadataItem"):
        if item.get("name") == name:
            return item.get("value", "")
    return None


def _declared_page_number(xml: Path, root: ET.Element) -> int | None:
    for item in _descendants(root, "MetadataItem"):
        if item.get("name") == PAGE_NUMBER_ITEM:
            value = item.get("value", "")
            if not value.isdecimal() or int(value) < 1:
                raise DatasetError(xml, f"MetadataItem {PAGE_NUMBER_ITEM!r} must be a page number from 1, "
                                        f"got {value!r}")
            return int(value)
    return None


def load_page_image(xml: Path, page_el: ET.Element, page: PageRef) -> np.ndarray:
    """The page image as grayscale, refused (DatasetError) when its size is not the one the XML declares."""
    try:
        gray = load_page(page)
    except ImageError as exc:
        raise DatasetError(xml, f"page image unusable: {exc}") from None
    _check_declared_size(xml, page_el, page.source, (gray.shape[1], gray.shape[0]))
    return gray


def check_page_image(xml: Path, page_el: ET.Element, page: PageRef) -> tuple[int, int]:
    """`load_page_image`'s checks from the image file's header alone, for a caller that reads
    the pixels later anyway (hwr eval --pages: decoding a scan twice doubled its reading). A
    page of a PDF or a multi-page TIFF has no header of its own to read: it is loaded.
    Returns the page's (width, height)."""
    if page.count > 1 or page.path.suffix.lower() == PDF_SUFFIX:
        return _loaded_size(xml, page_el, page)
    try:
        size = check_image_file(page.path)
    except ImageError as exc:
        raise DatasetError(xml, f"page image unusable: {exc}") from None
    declared = [_number(page_el.get(side) or "") for side in ("imageWidth", "imageHeight")]
    if declared == [float(size[1]), float(size[0])] and size[0] != size[1]:
        # A quarter turn from the header's size: a PNG's EXIF orientation may sit after its
        # pixels, where the header does not reach (hwr's own PAGE XML of such a photo had been
        # refused). Loading it turns it as reading does, and checks the size turned.
        return _loaded_size(xml, page_el, page)
    _check_declared_size(xml, page_el, page.source, size)
    return size


def _loaded_size(xml: Path, page_el: ET.Element, page: PageRef) -> tuple[int, int]:
    gray = load_page_image(xml, page_el, page)
    return gray.shape[1], gray.shape[0]


def _check_declared_size(xml: Path, page_el: ET.Element, image: str, size: tuple[int, int]) -> None:
    declared = (page_el.get("imageWidth"), page_el.get("imageHeight"))
    actual = (str(size[0]), str(size[1]))
    # Coordinates refer to the declared size; a mismatch (a rescaled or EXIF-rotated copy of
    # the scan) would cut every line from the wrong place without any visible error. Compared
    # as numbers: a tool that writes "600.0" declares the 600 pixels the image has.
    if all(declared) and [_number(value) for value in declared] != [float(n) for n in size]:
        raise DatasetError(
            xml, f"page image {image} is {actual[0]}x{actual[1]} but the XML declares {declared[0]}x{declared[1]}"
        )


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def line_text(line_el: ET.Element) -> str | None:
    """The TextLine's own transcription (lowest TextEquiv index wins, as PAGE specifies; its
    Unicode, else its PlainText). A TextLine with no TextEquiv of its own whose Words all have
    one (OCR-D's tools write word-level text only) reads as its words joined by spaces: such
    exports had read as "no transcribed TextLine" with no reason given (a probe helper)."""
    equivs = _children(line_el, "TextEquiv")
    if equivs:
        return _equiv_text(equivs)
    words = [_equiv_text(_children(word, "TextEquiv")) for word in _children(line_el, "Word")]
    return normalize_text(" ".join(words)) if words and all(words) else None


def _equiv_text(equivs: list[ET.Element]) -> str | None:
    if not equivs:
        return None
    # An indexed TextEquiv before any without an index (which had counted as index 0 and won over
    # index="1"); among equals the first in the file.
    best = min(equivs, key=_index_rank)
    holder = _children(best, "Unicode") or _children(best, "PlainText")
    # One line holds one line of text: an editor's line break inside <Unicode> is a space, as
    # a reader sees it (a "\n" in a line's reference could never be read). Markup inside it
    # (invalid PAGE, `the <b>end</b>`) keeps its text: `.text` alone had cut the line at the tag.
    parts = "".join(holder[0].itertext()).splitlines() if holder else []
    text = " ".join(part.strip() for part in parts if part.strip())
    return normalize_text(text) if text else None


def _index_rank(element: ET.Element) -> tuple[int, int]:
    """Sorts by the `index` attribute, elements without one (or with no number) after those with."""
    try:
        return 0, int(element.get("index", ""))
    except ValueError:  # no index, or one that is no number
        return 1, 0


def line_polygon(line_el: ET.Element) -> np.ndarray:
    """Coords as an (N, 2) int32 array: `points="x,y x,y"` (2013+) or Point children (2010);
    ValueError saying what is wrong when they are missing or malformed."""
    coords = _children(line_el, "Coords")
    if not coords:  # "at least 3 points" said nothing to the user of a baseline-only export
        baseline = " (only a Baseline)" if _children(line_el, "Baseline") else ""
        raise ValueError(f"has no Coords{baseline}; lines are placed on the page by their Coords polygon, so "
                         "export the lines with their polygons")
    points = coords[0].get("points")
    if points is None:
        points = " ".join(f"{p.get('x')},{p.get('y')}" for p in _children(coords[0], "Point"))
    return parse_points(points)


def parse_points(points: str) -> np.ndarray:
    try:
        xy = np.array([[float(v) for v in pair.split(",")] for pair in points.split()], np.float64)
    except ValueError:  # a non-number, or pairs of uneven length
        xy = None
    if xy is None or xy.ndim != 2 or xy.shape[1] != 2 or not np.isfinite(xy).all():
        raise ValueError(f"malformed Coords points {points!r}")
    # Casting a float beyond int32 is undefined (1e12 came out as -2**31, moving the line to the
    # page's far corner with only a RuntimeWarning); clipped, it is just a point off the page.
    return np.round(np.clip(xy, INT32_MIN, INT32_MAX)).astype(np.int32)


def page_turn(page_el: ET.Element) -> int:
    """The quarter turn clockwise that makes the page's text upright, from Page/@orientation
    (PAGE's clockwise correction, which hwr transcribe writes for a page scanned sideways or
    upside down); 0 when absent, unreadable, or a skew correction of under 45 degrees (the lines'
    own crops hold a skewed line well enough)."""
    try:
        degrees = float(page_el.get("orientation", "0"))
    except ValueError:
        return 0
    return 0 if not math.isfinite(degrees) else round(degrees / 90.0) % 4 * 90


def _cut_line(
    xml: Path, page_id: str, line_id: str, line_el: ET.Element, text: str, gray: np.ndarray, image_path: Path,
    turn: int = 0,
) -> LineSample:
    try:
        polygon = line_polygon(line_el)
    except ValueError as exc:
        raise DatasetError(xml, f"TextLine {line_id!r}: {exc}") from None
    problem = unusable_line_polygon(polygon, gray.shape[1], gray.shape[0])
    if problem:
        raise DatasetError(xml, f"TextLine {line_id!r}: {problem}")
    crop, bbox = crop_polygon(gray, polygon)
    crop = turned(crop, turn)  # upright, as the page's text reads
    meta = {"page": page_id, "line": line_id, "page_image": str(image_path), "bbox": bbox, "file": f"{xml}#{line_id}"}
    return LineSample(id=f"{page_id}/{line_id}", text=text, image=crop, meta=meta)


MIN_POLYGON_SIDE = 2  # pixels; a line box thinner than this holds no readable ink
MIN_POLYGON_AREA = 4  # square pixels


def unusable_line_polygon(polygon: np.ndarray, width: int, height: int) -> str:
    """Why a TextLine's polygon (`line_polygon`) cannot be a line on a width x height page ("" when
    it can): the one rule for cutting training lines and for scoring line detection."""
    if len(polygon) < 3:
        return "Coords need at least 3 points"
    degenerate = degenerate_polygon(polygon)
    if degenerate:
        return degenerate
    (x0, y0), (x1, y1) = polygon.min(axis=0), polygon.max(axis=0)
    if x1 < 0 or y1 < 0 or x0 >= width or y0 >= height:
        return "polygon lies outside the page image"
    # Judged again as the page holds it: a polygon that only touches the page's edge (x from
    # -100 to 0) was cut as a 1-pixel strip and scored as a line read wrong.
    on_page = clipped_to_page(polygon, width, height)
    if len(on_page) < 3:
        return "polygon lies outside the page image"
    problem = degenerate_polygon(on_page)
    if problem:
        return f"polygon barely reaches onto the page image: {problem}"
    # Mostly off the page, but within a few pages' size of it: the crop held a sliver of the
    # page, often no ink at all, and was trained on under the whole line's text (a probe
    # helper); the XML was drawn on another image, or on this one at another size. A point far
    # beyond (100000 px, 1e12) is a typo: that line is held to the page, as it always was.
    whole, held = polygon_area(polygon), polygon_area(on_page)
    near = np.all((polygon >= -OFF_PAGE_REACH * np.array([width, height]))
                  & (polygon <= (1 + OFF_PAGE_REACH) * np.array([width, height])))
    if near and whole > 0 and held < MIN_ON_PAGE * whole:
        return (f"polygon lies mostly outside the page image ({held / whole:.0%} of it on the {width} x {height} "
                "page): is the image the one it was drawn on, at that size?")
    return ""


MIN_ON_PAGE = 0.5  # share of a TextLine polygon's area on the page image for it to be a line of it
OFF_PAGE_REACH = 3.0  # page sizes beyond its sides that a line drawn elsewhere reaches; further, a typo


def polygon_area(polygon: np.ndarray) -> float:
    """The area a polygon encloses (shoelace; a self-crossing one's loops count as they turn)."""
    return abs(float(cv2.contourArea(np.asarray(polygon, np.float32).reshape(-1, 1, 2))))


def clipped_to_page(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    """The part of a polygon on the width x height page (pixel centres 0..width-1, 0..height-1),
    float64 points; fewer than 3 when none. Sutherland-Hodgman against the page's four sides: a
    line polygon may be concave, the page never is. Moving each point onto the page instead
    (polygon_on_page) flattened a band across a corner into a line, and kept a band wholly
    off the page beyond a corner."""
    points = [(float(x), float(y)) for x, y in polygon]
    for axis, limit, keep_below in ((0, 0.0, False), (0, width - 1.0, True), (1, 0.0, False),
                                    (1, height - 1.0, True)):
        def inside(p, axis=axis, limit=limit, keep_below=keep_below) -> bool:
            return p[axis] <= limit if keep_below else p[axis] >= limit

        clipped = []
        for k, current in enumerate(points):
            previous = points[k - 1]
            if inside(current) != inside(previous):
                t = (limit - previous[axis]) / (current[axis] - previous[axis])
                clipped.append((previous[0] + t * (current[0] - previous[0]),
                                previous[1] + t * (current[1] - previous[1])))
            if inside(current):
                clipped.append(current)
        points = clipped
        if not points:
            break
    return np.array(points, np.float64).reshape(-1, 2)


def degenerate_polygon(polygon: np.ndarray) -> str:
    """Why a line polygon encloses no line ("" when it does): points on one straight line
    (a baseline pasted as Coords) would otherwise be scored as a 1-pixel-high crop."""
    width, height = np.ptp(polygon.astype(np.int64), axis=0)  # int32 wraps for points clipped at its limits
    area = enclosed_area(polygon)
    if min(width, height) < MIN_POLYGON_SIDE or area < MIN_POLYGON_AREA:
        return f"degenerate polygon ({width}x{height} px box, area {area:g} px^2): it encloses no line"
    return ""


RASTER_SIDE = 2048  # pixels; a self-intersecting polygon is measured on a grid at most this wide


def enclosed_area(polygon: np.ndarray) -> float:
    """Square pixels a polygon encloses. The shoelace sum (cv2.contourArea) where it says there
    are some; its lobes cancel for a self-intersecting polygon, though, and editors export those
    (a bowtie, where a line's two ends were dragged past each other, sums to 0 while enclosing a
    line). Then the pixels filling it, as `crop_polygon` fills them, less its outline are counted:
    a baseline traced out and back is all outline and still encloses nothing."""
    area = abs(cv2.contourArea(polygon.astype(np.float32)))
    if area >= MIN_POLYGON_AREA:
        return area
    points = polygon.astype(np.float64)
    points -= points.min(axis=0)
    scale = min(1.0, RASTER_SIDE / max(float(points.max()), 1.0))  # a point at int32's limit stays measurable
    grid_points = np.round(points * scale).astype(np.int32)
    width, height = grid_points.max(axis=0) + 1
    filled = np.zeros((height, width), np.uint8)
    cv2.fillPoly(filled, [grid_points], 1)
    outline = np.zeros_like(filled)
    cv2.polylines(outline, [grid_points], True, 1)
    return max(area, np.count_nonzero(filled & (outline == 0)) / scale**2)


def polygon_on_page(polygon: np.ndarray, width: int, height: int) -> np.ndarray:
    """A line polygon with its points moved onto the width x height page. One point far off the
    page (a typo, a unit mix-up, 1e12 clipped to int32's limit by parse_points) would otherwise size
    a crop or a mask by itself: a mask of 37 GiB, or a box whose right edge wrapped round to -2**31."""
    return np.clip(polygon, 0, [width - 1, height - 1]).astype(polygon.dtype)


def crop_polygon(gray: np.ndarray, polygon: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Bounding-box crop of a polygon, white outside it, and the box (x0, y0, x1, y1 exclusive).
    The polygon reaches onto the page (`unusable_line_polygon` says when it does not); the crop
    keeps the page's pixels, the polygon held to the page (`polygon_on_page`)."""
    height, width = gray.shape
    polygon = polygon_on_page(polygon, width, height)
    x0, y0 = polygon.min(axis=0)
    x1, y1 = polygon.max(axis=0) + 1
    crop = gray[y0:y1, x0:x1].copy()
    mask = np.zeros(crop.shape, np.uint8)
    cv2.fillPoly(mask, [polygon - np.array([x0, y0], np.int32)], 255)
    crop[mask == 0] = 255
    return crop, (int(x0), int(y0), int(x1), int(y1))
