"""The user's own training lines: a local collection of line crops with corrected text.

The collection is a folder of image + `.gt.txt` pairs, one sub-folder per saved page
(`<root>/lines/00007-letter/l003.png` beside `l003.gt.txt`), so `hwr adapt <root>/lines` reads
it as it is and holds out whole pages. It lives under the user's data directory
($HWR_USER_DIR, else $XDG_DATA_HOME/hwr, else ~/.local/share/hwr), never in the web server's
temporary folders.

Every file appears whole or not at all (written under a hidden temporary name, then renamed;
hidden files are invisible to the pairs reader), and a pair counts only once its text exists:
the image is renamed into place first, its `.gt.txt` last.

Saving a page again (more of its lines corrected, say) replaces its earlier save: each page
folder records a digest of the page image it was cut from (`page.sha256`). Two copies of one
page would let `hwr adapt` learn a line from one copy and hold it out in the other, so its
"after" figure would flatter the adapted model.
"""
from __future__ import annotations

import io
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hwr.datasets.errors import visible_files
from hwr.datasets.pagexml import crop_polygon
from hwr.datasets.pairs import gt_path  # the reader adapt uses: its file names
from hwr.documents.orientation import turned
from hwr.fileio import atomic_write_bytes
from hwr.recognition.image_formats import IMAGE_SUFFIXES
from hwr.recognition.imaging import pixels_digest, readable_gray
from hwr.records import Page

IMAGE_SUFFIX = ".png"
LINES_DIR = "lines"
PAGE_NAME_CHARS = 40  # of the page's name kept in its folder name
PAGE_KEY_FILE = "page.sha256"  # the digest of the page image a folder's lines were cut from


def page_key(gray: np.ndarray) -> str:
    """A digest of a page image's pixels: the same page saved again has the same key."""
    return pixels_digest(gray)


def user_data_dir() -> Path:
    """Where hwr keeps what a user makes: the collection, adapted models."""
    explicit = os.environ.get("HWR_USER_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "hwr"


@dataclass
class SavedLine:
    id: str  # "<page folder>/<line>", as the pairs reader names it
    text: str
    image: Path
    page: str


class Collection:
    """Saved training lines under `root` (default: <user data dir>/collection)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else user_data_dir() / "collection"
        # Two UI requests saving at once (a double click) are saved one after the other: each
        # gets its own page folder, and a save of the same page replaces the other.
        self._lock = threading.RLock()

    @property
    def lines_dir(self) -> Path:
        return self.root / LINES_DIR

    def save_page(self, gray: np.ndarray, page: Page, name: str, key: str | None = None) -> list[SavedLine]:
        """Each line of a transcribed page, cut from the page image by its polygon (white
        outside it, as the PAGE XML reader cuts lines), with its text. Lines whose text is
        empty teach nothing and are skipped. key: the image's `page_key`, when known already."""
        crops = []
        # Cut from the page in dark ink (as it was read): the white outside a polygon would be a
        # blot in a line of light ink once the line is inverted. The key stays the image's own.
        readable = readable_gray(gray)
        for line in page.lines:
            text = line.recognition.text if line.recognition is not None else line.text
            cut = crop_polygon(readable, np.asarray(line.polygon, np.int32)) if len(line.polygon) >= 3 else None
            if text.strip() and cut is not None:  # upright, as the line was read on a page read turned
                crops.append((line.id, turned(cut[0], page.orientation), text.strip()))
        return self.save_lines(crops, name, key or page_key(gray))

    def save_lines(self, crops: list[tuple[str, np.ndarray, str]], name: str, key: str | None = None
                   ) -> list[SavedLine]:
        """(line id, uint8 gray crop, text) triples as one new page folder. key: the page's
        `page_key`; earlier saves of that page are removed once this one is complete."""
        if not crops:
            return []
        with self._lock:
            return self._save_lines(crops, name, key)

    def _save_lines(self, crops: list[tuple[str, np.ndarray, str]], name: str, key: str | None) -> list[SavedLine]:
        earlier = self.saved_pages(key) if key else []
        folder = self._new_page_folder(name)
        saved, stems = [], set()
        try:
            # The key first: a save killed midway is then one of the page's earlier saves, which
            # the next save of the page replaces (written last, a half-saved page had stayed
            # beside the whole one, its lines on both sides of adapt's held-out split).
            if key:
                atomic_write_bytes(folder / PAGE_KEY_FILE, key.encode("ascii"))
            for line_id, image, text in crops:
                stem = _unique(_slug(line_id, 20, keep_suffix=True) or "line", stems)
                image_file = folder / f"{stem}{IMAGE_SUFFIX}"
                atomic_write_bytes(image_file, _png(image))
                atomic_write_bytes(gt_path(image_file), (text + "\n").encode("utf-8"))
                saved.append(SavedLine(f"{folder.name}/{stem}", text, image_file, folder.name))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # a failed save (a full disk) leaves nothing
            raise
        for old in earlier:
            shutil.rmtree(self.lines_dir / old, ignore_errors=True)
        return saved

    def saved_pages(self, key: str) -> list[str]:
        """The page folders holding lines cut from the page image with this `page_key`."""
        if not self.lines_dir.is_dir():
            return []
        return sorted(path.parent.name for path in self.lines_dir.glob(f"*/{PAGE_KEY_FILE}")
                      if path.is_file() and path.read_bytes().strip() == key.encode("ascii"))

    def lines(self) -> list[SavedLine]:
        """Every complete saved line (image and text), by page folder and line."""
        if not self.lines_dir.is_dir():
            return []
        # The lines adapt will read: those the pairs reader finds (any folder depth, any image
        # type, hidden folders left out), so a line added or moved by hand is listed and can be
        # removed, and a hidden copy is neither listed nor learned from.
        found = []
        for image in visible_files(self.lines_dir):
            gt = gt_path(image)
            if image.suffix.lower() in IMAGE_SUFFIXES and gt.is_file():
                # A text edited by hand into another encoding shows its bad bytes as U+FFFD,
                # so the line is listed (and can be removed) instead of breaking the list,
                # the count and every removal; adapt names the file and leaves it out.
                text = gt.read_bytes().decode("utf-8-sig", errors="replace").strip()
                line_id = image.relative_to(self.lines_dir).with_suffix("").as_posix()
                found.append(SavedLine(line_id, text, image, image.parent.relative_to(self.lines_dir).as_posix()))
        return found

    def count(self) -> int:
        return len(self.lines())

    def pages(self) -> int:
        return len({line.page for line in self.lines()})

    def remove(self, ids: list[str]) -> int:
        """Delete saved lines by id ("<page>/<line>", or "<page>" for all its lines); returns
        how many lines went. Unknown ids are an error naming them, so a typo deletes nothing."""
        with self._lock:  # not halfway through a save's page
            return self._remove(ids)

    def _remove(self, ids: list[str]) -> int:
        by_id = {line.id: line for line in self.lines()}
        pages = {line.page for line in by_id.values()}
        unknown = [i for i in ids if i not in by_id and i not in pages]
        if unknown:
            raise KeyError(f"no saved line or page {', '.join(unknown)} in {self.lines_dir}")
        doomed = [line for line in by_id.values() if line.id in ids or line.page in ids]
        for line in doomed:
            # Text first, the reverse of saving: an interruption leaves an image without text,
            # which `repair` removes.
            gt_path(line.image).unlink(missing_ok=True)
            line.image.unlink(missing_ok=True)
        for page in {line.image.parent for line in doomed}:
            if all(path.name == PAGE_KEY_FILE for path in page.iterdir()):
                (page / PAGE_KEY_FILE).unlink(missing_ok=True)
                page.rmdir()
        return len(doomed)

    def repair(self) -> int:
        """Remove what an interrupted save left (an image without its text, temporary files),
        so the folder reads as a clean pairs data set; returns the files removed."""
        with self._lock:  # a save under way has an image without its text yet: not an orphan
            return self._repair()

    def _repair(self) -> int:
        removed = 0
        if not self.lines_dir.is_dir():
            return 0
        for path in self.lines_dir.glob("*/*"):
            if not path.is_file():
                continue  # a save writes files only; a folder is the user's, and unlink would fail on it
            orphan = path.suffix == IMAGE_SUFFIX and not gt_path(path).is_file()
            if path.name.startswith(".") or orphan:
                path.unlink()
                removed += 1
        return removed

    def _new_page_folder(self, name: str) -> Path:
        with self._lock:
            self.lines_dir.mkdir(parents=True, exist_ok=True)
            numbers = [int(p.name.split("-", 1)[0]) for p in self.lines_dir.iterdir()
                       if p.is_dir() and p.name.split("-", 1)[0].isdigit()]
            number = max(numbers, default=0) + 1
            while True:
                folder = self.lines_dir / f"{number:05d}-{_slug(name, PAGE_NAME_CHARS) or 'page'}"
                try:
                    folder.mkdir()  # atomic: another process saving at once gets the next number
                    return folder
                except FileExistsError:
                    number += 1


def _unique(stem: str, used: set[str]) -> str:
    """`stem`, or `stem-2`, `stem-3`...: two line ids that slug alike ("α" and "β", "r1/l1" and
    "r1-l1") had been saved to one file, the second line over the first."""
    unique, number = stem, 1
    while unique.lower() in used:  # case-insensitive file systems (macOS, Windows) too
        number += 1
        unique = f"{stem}-{number}"
    used.add(unique.lower())
    return unique


def _slug(text: str, limit: int, keep_suffix: bool = False) -> str:
    """A file-name-safe part: a page keeps its name without the extension, a line its id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text if keep_suffix else Path(text).stem).strip("-.")[:limit]


def _png(gray: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(gray, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
