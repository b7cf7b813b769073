"""What users upload: friendly errors, guarded zip extraction and per-request work folders.

Nothing here imports gradio, so the guards are plain functions the tests call directly.
"""
from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import stat
import struct
import tempfile
import threading
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

log = logging.getLogger("ui.uploads")

_DRIVE = re.compile(r"[A-Za-z]:")
# Folders that archivers add beside the real content; never data.
_JUNK_PARTS = {"__MACOSX", ".DS_Store"}


class UploadError(ValueError):
    """An upload cannot be used; the message is shown to the user as is."""


def display_name(path: str | Path) -> str:
    """The name the user knows: gradio stores uploads as <cache>/<hash>/<original name>."""
    return Path(path).name


@dataclass
class ZipLimits:
    max_bytes: int = 1 << 30  # total unpacked size
    max_files: int = 20000


# What reading a member whose data is damaged raises: a bad CRC, a broken deflate stream, a
# member cut short; and what a member zipfile cannot unpack raises (RuntimeError, its subclass
# NotImplementedError included): a password, strong encryption, or a compression it lacks
# (Deflate64, which Windows uses for large zips).
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError)
_UNREADABLE = (RuntimeError,)


def _why_unreadable(exc: Exception) -> str:
    if "encrypt" in str(exc):
        return "password-protected; unpack it and zip it again without a password"
    if isinstance(exc, NotImplementedError):
        return f"packed in a way this server cannot unpack ({exc}); zip it again (plain deflate, no password)"
    return f"cannot be unpacked ({exc})"


def extract_zip(archive: str | Path, dest: Path, limits: ZipLimits = ZipLimits(),
                damaged: dict[str, str] | None = None) -> list[Path]:
    """Unpack a user's zip into dest; refuse bombs, path traversal and links. Returns the files.

    A member whose data is damaged refuses the whole archive, unless `damaged` is given (a zip
    of pages, each read on its own): then it is left out and named there (its path in the zip
    -> why), and the other members are unpacked. So is a name the archive holds twice: refused
    with the archive, or (`damaged` given) its last copy unpacked, as unzip and zipfile keep it,
    and the earlier ones named under `earlier_copies(path)`."""
    name = display_name(archive)
    if not zipfile.is_zipfile(archive):
        raise UploadError(f"{name} is not a zip file")
    declared = _declared_entries(archive)
    if declared is not None and declared > 2 * limits.max_files:
        # Refused from the zip's last bytes: ZipFile reads every entry of its index into memory
        # first (an 18 MB zip of 200,000 empty entries: 115 MB, seconds), several uploads at once.
        # Twice the limit: the entries count folders and macOS's junk, which the limit does not.
        raise UploadError(f"{name} holds {declared} entries; at most {limits.max_files} files are accepted")
    try:
        with zipfile.ZipFile(archive) as zf:
            files = []
            for info in _checked_members(zf, name, limits, damaged):
                try:
                    files.append(_extract_member(zf, info, dest))
                except (*_DAMAGED, *_UNREADABLE, _MemberRefused) as exc:
                    if damaged is None:
                        if isinstance(exc, _DAMAGED):
                            raise
                        why = f": {exc}" if isinstance(exc, _MemberRefused) else f" is {_why_unreadable(exc)}"
                        raise UploadError(f"{name}: {info.filename}{why}") from None
                    if isinstance(exc, _DAMAGED):
                        why = f"damaged in {name} ({exc})"
                    elif isinstance(exc, _MemberRefused):  # a name the disk refuses: this member's alone
                        why = f"{exc} (in {name})"
                    else:
                        why = f"{_why_unreadable(exc)} (in {name})"
                    _remove_partial(dest.joinpath(*_member_path(info).parts))
                    damaged[_member_path(info).as_posix()] = why
            return files
    except _DAMAGED as exc:
        raise UploadError(f"{name} is a corrupt zip file ({exc})") from None
    except OSError as exc:  # _SERVERS_FAULT: a full or read-only disk
        raise UploadError(f"{name}: the server cannot unpack it now ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        # The zip says its names are UTF-8 and one is not (an old archiver's Latin-1 name).
        raise UploadError(f"{name}: a file name in it is not the UTF-8 the zip declares; zip it again") from None


NESTED_ZIP = "a zip inside a zip is not unpacked: upload it on its own, or unpack it into the outer zip"


def extract_data_zip(archive: str | Path, dest: Path, limits: ZipLimits = ZipLimits()) -> list[Path]:
    """extract_zip for an upload read as one data set (the Evaluate and Teach tabs): a zip inside
    it is refused by name, since the data set readers would pass over it and its lines would be
    left out of the report or the training without a word."""
    files = extract_zip(archive, dest, limits)
    nested = sorted((path.relative_to(dest).as_posix() for path in files if path.suffix.lower() == ".zip"),
                    key=PurePosixPath)
    if nested:
        more = f" (and {len(nested) - 1} more)" if len(nested) > 1 else ""
        raise UploadError(f"{display_name(archive)}: {nested[0]}{more}: {NESTED_ZIP}")
    return files


def _declared_entries(archive: str | Path) -> int | None:
    """The number of entries a zip's end record declares (folders included), read without its
    index; None when it cannot be read (ZipFile then says what is wrong). zipfile's own reader
    of that record (private, unchanged since Python 2.6: it also finds a ZIP64 record)."""
    try:
        with open(archive, "rb") as fp:
            record = zipfile._EndRecData(fp)
    except (OSError, ValueError, struct.error):
        return None
    return int(record[zipfile._ECD_ENTRIES_TOTAL]) if record else None


EARLIER_COPIES = " (earlier copies)"


def earlier_copies(member: str) -> str:
    """The key under which extract_zip names the earlier copies of a path a zip holds twice
    (`member` + EARLIER_COPIES)."""
    return member + EARLIER_COPIES


def _checked_members(zf: zipfile.ZipFile, name: str, limits: ZipLimits,
                     damaged: dict[str, str] | None) -> list[zipfile.ZipInfo]:
    members = [info for info in zf.infolist() if not info.is_dir() and not _is_junk(info.filename)]
    if not members:
        raise UploadError(f"{name} is empty")
    if len(members) > limits.max_files:
        raise UploadError(f"{name} holds {len(members)} files; at most {limits.max_files} are accepted")
    # file_size is what the archive claims; _extract_member enforces it while copying, so a
    # forged header cannot unpack more than declared.
    total = sum(info.file_size for info in members)
    if total > limits.max_bytes:
        raise UploadError(f"{name} unpacks to {total / 2**20:.0f} MB; at most {limits.max_bytes / 2**20:.0f} MB "
                          "are accepted")
    last: dict[str, zipfile.ZipInfo] = {}
    copies: Counter[str] = Counter()
    for info in members:
        if _is_link(info):
            raise UploadError(f"{name}: {info.filename} is a symbolic link; links are not accepted")
        if _unsafe_path(info.filename):
            raise UploadError(f"{name}: {info.filename} points outside the archive")
        if not _member_path(info).parts:
            raise UploadError(f"{name}: {info.filename!r} names no file")
        key = _member_path(info).as_posix()
        if key in last and damaged is None:
            raise UploadError(f"{name}: {info.filename} is in the archive twice")
        last[key] = info
        copies[key] += 1
    for key, count in copies.items():
        if count > 1:
            # Both copies cannot be one file on disk: the last is read, the user told of the rest.
            damaged[earlier_copies(key)] = (f"{name} holds {key} {count} times; only its last copy was read "
                                            "(rename the others to read them)")
    return [info for info in members if last[_member_path(info).as_posix()] is info]


def _is_junk(filename: str) -> bool:
    return any(part in _JUNK_PARTS or part.startswith("._") for part in PurePosixPath(filename).parts)


def _is_link(info: zipfile.ZipInfo) -> bool:
    # Unix zips keep the file mode in the high 16 bits of external_attr.
    return stat.S_ISLNK(info.external_attr >> 16)


def _unsafe_path(filename: str) -> bool:
    path = PurePosixPath(filename.replace("\\", "/"))
    # A drive letter ("C:/x.png") points outside; a colon in a name ("10:30.png") does not.
    return path.is_absolute() or ".." in path.parts or bool(path.parts and _DRIVE.match(path.parts[0]))


def _member_path(info: zipfile.ZipInfo) -> PurePosixPath:
    return PurePosixPath(*[p for p in PurePosixPath(info.filename.replace("\\", "/")).parts if p != "."])


# A full or read-only disk is the server's trouble, not a member's: no row per member for it.
_SERVERS_FAULT = {errno.ENOSPC, errno.EROFS, errno.EDQUOT}


class _MemberRefused(Exception):
    """One member of a zip could not be unpacked; the message says why, without its name."""


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path) -> Path:
    target = dest.joinpath(*_member_path(info).parts)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(target, "wb") as out:
            copied = 0
            while chunk := src.read(1 << 20):
                copied += len(chunk)
                if copied > info.file_size:
                    raise _MemberRefused("unpacks to more than its declared size")
                out.write(chunk)
    except OSError as exc:
        if exc.errno in _SERVERS_FAULT:  # not this member's: the whole upload fails, as before
            raise
        # A file and a folder of one name ("a" and "a/b.png"), a name too long for the disk, "."...
        raise _MemberRefused(f"cannot be unpacked ({exc.strerror or exc})") from None
    return target


def _remove_partial(target: Path) -> None:
    """Remove what a member that failed had copied: none at all where its name could not be made."""
    try:
        target.unlink(missing_ok=True)
    except OSError:  # too long a name, or a file where its folder must go
        pass


class WorkDirs:
    """Per-request folders under one private temporary root, removed when old and at close.

    Outputs must outlive the request (gradio serves the downloads afterwards), so each is
    swept once it was last used more than max_age_s ago; gradio's own copies go with its
    delete_cache. A folder in use (`using`: a batch that runs for hours) is never swept, and
    its hour starts when the work ends.
    """

    def __init__(self, max_age_s: float = 3600.0):
        self.root = Path(tempfile.mkdtemp(prefix="hwr-ui-"))
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._active: set[Path] = set()

    def new(self, prefix: str, held: bool = False) -> Path:
        """A new folder; `held`: kept from the sweep until `release`d (work that outlives its
        request, like a Teach run's thread)."""
        self.sweep()
        folder = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=self.root))
        if held:
            with self._lock:
                self._active.add(folder)
        return folder

    def release(self, folder: Path) -> None:
        """A held folder is swept again once it is max_age_s old, counted from now."""
        with self._lock:
            self._active.discard(folder)
        with suppress(OSError):
            os.utime(folder)  # a folder's mtime changes only when its own entries do

    @contextmanager
    def using(self, prefix: str) -> Iterator[Path]:
        """A new folder, kept from the sweep while the work runs and for max_age_s after."""
        folder = self.new(prefix, held=True)
        try:
            yield folder
        finally:
            self.release(folder)

    def sweep(self) -> None:
        cutoff = time.time() - self.max_age_s
        with self._lock:
            for folder in self.root.iterdir() if self.root.exists() else ():
                if folder in self._active:
                    continue
                try:
                    if folder.stat().st_mtime < cutoff:
                        shutil.rmtree(folder, ignore_errors=True)
                except FileNotFoundError:
                    pass  # another request swept it first

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
