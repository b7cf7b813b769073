"""The project's own error types: what `hwr` reports as a user error (message, exit 2).

Every error caused by the user's input, files or settings derives from `HwrError` (data sets:
`hwr.datasets.DatasetError`, models: `hwr.recognition.model.ModelError`, images:
`hwr.recognition.imaging.ImageError`, settings: `ConfigError`). The CLI catches `HwrError`,
and the `OSError`s of the user's disk and permissions (`is_users_os_error`), so a bug that
raises a plain `ValueError` still shows its traceback.
"""
from __future__ import annotations

import errno
import os


class HwrError(Exception):
    """A problem with the user's input, files or settings; the message says which."""


class ConfigError(HwrError, ValueError):
    """A setting (command-line flag, config file entry or config field) has an unusable value."""


class MissingFileError(HwrError, FileNotFoundError):
    """A file that a setting names (an LM, a lexicon, a charset file) does not exist."""


# A full or read-only file system: every later write fails as this one did, so a batch stops
# at the first instead of recording each later page as failed.
FILE_SYSTEM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
# The user (or an administrator) fixes these, not a programmer: a message, not a traceback.
USERS_OS_ERRNOS = FILE_SYSTEM_ERRNOS | {errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO, errno.ENAMETOOLONG}
# Errnos only a write raises, and what they mean in the user's words.
WRITE_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                errno.EROFS: "the file system is read-only",
                errno.EFBIG: "the file is larger than the file system allows"}


class NotReplaced(FileExistsError):
    """hwr refuses to replace what stands at an output's path (a pipe, a device): its own reason
    says it all (fileio.atomic_output), where the OS's "File exists" of a file in a folder's
    place does not. A class, not a reason's words: Windows words "File exists" otherwise."""


def fails_every_write(exc: BaseException) -> bool:
    """Whether `exc` says the output file system is full or read-only (not one file's fault)."""
    return isinstance(exc, OSError) and exc.errno in FILE_SYSTEM_ERRNOS


def is_users_os_error(exc: BaseException) -> bool:
    """Whether `exc` is an OSError of the user's disk or permissions, reported as a message."""
    return isinstance(exc, OSError) and exc.errno in USERS_OS_ERRNOS


def describe_os_error(exc: OSError) -> str:
    """"cannot write out/a.txt: the disk is full (No space left on device)", "x.png: Permission
    denied": the file and the OS's reason, in one line."""
    reason = exc.strerror or str(exc)
    name = exc.filename if exc.filename is not None else "a file"
    if exc.errno in WRITE_ERRNOS:
        return f"cannot write {name}: {WRITE_ERRNOS[exc.errno]} ({reason})"
    if exc.errno == errno.ENOTDIR or (exc.errno == errno.EEXIST and not isinstance(exc, NotReplaced)
                                      and exc.filename is not None and os.path.lexists(exc.filename)
                                      and not os.path.isdir(exc.filename)):
        # makedirs meeting a file where a folder should be says only "File exists".
        return f"cannot write {name}: a file stands where a folder is needed ({reason})"
    if isinstance(exc, NotReplaced):
        return f"cannot write {name}: it {reason}"
    return f"{name}: {reason}"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """"1 line", "3 lines": a count with its noun in the right number (`plural` when not noun + "s")."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def name_some(items, limit: int, sep: str = "; ") -> str:
    """The first `limit` items joined, then how many more: "a; b; c; and 2 more". Messages name
    a few bad files so the user can start, without a screenful for a large data set."""
    items = [str(item) for item in items]
    more = f"{sep}and {len(items) - limit} more" if len(items) > limit else ""
    return sep.join(items[:limit]) + more


def where_not_utf8(exc: UnicodeDecodeError) -> str:
    """Where a file failed to decode as UTF-8, in the words every such message uses: the line and
    the byte's value ("line 2, byte 0xe9"), not an offset."""
    line_no = exc.object[: exc.start].count(b"\n") + 1
    return f"line {line_no}, byte {exc.object[exc.start]:#04x}"
