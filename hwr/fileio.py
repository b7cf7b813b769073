"""Atomic file writes: every output hwr writes appears whole or not at all.

Write to a temp file beside the target (same file system, so the rename is atomic; named per
process, so parallel writers never share one), then `os.replace` it into place; a write that
fails removes its temp file.

`check_output_file` / `check_output_dir` test an output path before a command does its work,
so a path that can never be written is a clear error up front, not a traceback after the work.
"""
from __future__ import annotations

import errno
import glob
import gzip
import hashlib
import os
import re
import shutil
import stat
import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hwr.errors import ConfigError, NotReplaced

try:
    import fcntl  # folder_held's lock
except ImportError:  # Windows
    fcntl = None

# The longest file name (bytes) of common file systems (ext4, XFS, tmpfs, APFS, NTFS in UTF-16 units).
NAME_MAX = 255
TEMP_SUFFIX = ".hwr.tmp"  # after the writing process's id


def _temp_path(path: Path) -> Path:
    """The temp file beside `path`: `.<name>.<pid>.hwr.tmp`, or, for a name too near the file
    system's limit to take that prefix and suffix (a page id from a long scan file name), a
    digest of the name instead; either way unique per target and process. The "hwr" marks it
    as ours: `remove_stale_temp_files` must never take another program's `.x.<pid>.tmp`."""
    suffix = f".{os.getpid()}{TEMP_SUFFIX}"
    name = f".{path.name}{suffix}"
    if len(os.fsencode(name)) > NAME_MAX:
        name = f".{hashlib.sha256(os.fsencode(path.name)).hexdigest()[:32]}{suffix}"
    return path.with_name(name)


_TEMP_NAME = re.compile(r"^\..+\.([0-9]+)\.hwr\.tmp$")


def remove_stale_temp_files(folder: str | Path) -> int:
    """Remove the temp files (`_temp_path`) that processes no longer running left in `folder`
    and below: a write killed between writing and renaming (SIGKILL, a power cut) leaves one,
    and no later run would ever take it up. A live process's are kept (a run writing there now).
    An output there that is a symbolic link is written in its target's folder (`written_path`):
    that folder's temp files of the target are removed too, and no other file of that folder.
    Returns how many were removed."""
    folder = Path(folder)
    candidates = list(folder.rglob(f".*{TEMP_SUFFIX}"))
    root = folder.resolve()
    for target in _link_targets(folder):
        if not target.is_relative_to(root):  # within it, the sweep above found them
            candidates += [path for path in target.parent.glob(f".*{TEMP_SUFFIX}")
                           if _temp_name_of(path.name) in _temp_stems(target)]
    return _remove_if_stale(candidates)


def _remove_stale_temps_of(path: Path) -> None:
    """Before `path` is written: remove the temp files of `path` that dead processes left beside
    it. A report killed while being written (--json, eval's reports, errors.tsv) left its
    `.name.PID.hwr.tmp` for good, as no run sweeps a report's folder (it may be the user's home).
    Only `path`'s own (the folder may be shared with other hosts, whose process ids mean nothing
    here), and the folder is listed once per process: a batch writes thousands of pages into one."""
    folder = os.fspath(path.parent)
    with _STALE_LOCK:
        if folder not in _STALE_BY_TARGET:
            _STALE_BY_TARGET[folder] = _temp_files_by_target(path.parent)
            while len(_STALE_BY_TARGET) > 256:  # a server's work folders, one per request: the oldest go
                del _STALE_BY_TARGET[next(iter(_STALE_BY_TARGET))]
        found = [temp for stem in _temp_stems(path) for temp in _STALE_BY_TARGET[folder].pop(stem, [])]
    _remove_if_stale(found)


def _temp_files_by_target(folder: Path) -> dict[str, list[Path]]:
    """Other processes' temp files in `folder`, by what `_temp_name_of` gives for them."""
    mine = f".{os.getpid()}{TEMP_SUFFIX}"
    found: dict[str, list[Path]] = {}
    try:
        for temp in folder.glob(f".*{TEMP_SUFFIX}"):
            if not temp.name.endswith(mine):
                found.setdefault(_temp_name_of(temp.name), []).append(temp)
    except OSError:
        pass  # an unlistable folder: the write itself says what is wrong
    return found


# Per folder written into by this process (the latest 256), the temp files other processes had
# left there when it was first written into (_remove_stale_temps_of).
_STALE_BY_TARGET: dict[str, dict[str, list[Path]]] = {}
_STALE_LOCK = threading.Lock()


def _remove_if_stale(candidates) -> int:
    removed = 0
    for path in dict.fromkeys(candidates):
        match = _TEMP_NAME.match(path.name)
        if not match or not path.is_file() or process_runs(int(match.group(1))):
            continue
        try:
            path.unlink()
            removed += 1
        except OSError:
            pass  # not ours to remove after all (permissions): left as it was
    return removed


def _link_targets(folder: Path) -> list[Path]:
    """Where the symbolic links in `folder` and below lead (resolved; loops left out)."""
    targets = []
    for path in folder.rglob("*"):
        if path.is_symlink():
            try:
                targets.append(written_path(path))
            except OSError:
                pass  # a loop: nothing was written through it
    return targets


def _temp_name_of(name: str) -> str:
    """The part of a temp file's name that names its target: `.<this>.<pid>.hwr.tmp`."""
    return name[1:].rsplit(".", 3)[0]


def _temp_stems(target: Path) -> set[str]:
    """What `_temp_name_of` gives for the temp files of `target`: its name, or its digest."""
    return {target.name, hashlib.sha256(os.fsencode(target.name)).hexdigest()[:32]}


@contextmanager
def utf8_named(path: str | Path) -> Iterator[str]:
    """`path` as a name that libraries taking UTF-8 names only (safetensors' Rust core) can open.

    A folder named in Latin-1 on Linux (an old archive's `modèle`) reaches Python as a
    surrogate-escaped str that safetensors refuses ("not valid UTF-8"), and the model was
    called corrupt. Such a file is opened here and named by its descriptor instead."""
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        yield name
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        proxy = f"/proc/self/fd/{fd}"
        if not os.path.exists(proxy):  # not Linux: no name to give it
            raise OSError(errno.EINVAL, "its path is not valid UTF-8; rename the folder", name)
        yield proxy
    finally:
        os.close(fd)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def process_runs(pid: int) -> bool:
    """Whether a process of this id runs (another user's counts: it cannot be signalled, but runs)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; or no pid at all: left alone
        return True
    return True


# --- folders written as one unit -------------------------------------------------------------
# A folder whose files must pair (a model's weights with its config and card, a checkpoint's
# weights with its optimizer state) is written whole into a staging folder beside it, then
# swapped in with two renames (`written_whole`); `recover_folder` undoes a kill between them.

def staging_folder(directory: Path) -> Path:
    """Where this process writes `directory` before `swap_in_folder` (same file system, per process)."""
    return directory.with_name(f".{directory.name}.saving-{os.getpid()}")


def previous_folder(directory: Path) -> Path:
    return directory.with_name(f".{directory.name}.previous")


def swap_in_folder(staging: Path, directory: Path) -> None:
    """`staging`, complete, becomes `directory`; the folder that was there is removed."""
    previous = previous_folder(directory)
    if directory.exists():
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(directory, previous)
    os.replace(staging, directory)
    shutil.rmtree(previous, ignore_errors=True)


@contextmanager
def written_whole(directory: str | Path) -> Iterator[Path]:
    """Write `directory` as one unit: the block writes into the (new, empty) staging folder it
    is given, which replaces `directory` when the block ends, and is removed if the block raises.
    The staging folder is flocked while it is written, so that `recover_folder` in another run
    tells a live write from a dead one by the kernel's lock rather than by a process id (a
    dead run's id reused by another process had kept its folder forever; on a shared file
    system another host's live write had looked dead)."""
    directory = Path(directory)
    staging = staging_folder(directory)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    handle = _lock(staging)
    try:
        try:
            yield staging
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        swap_in_folder(staging, directory)
    finally:
        if handle is not None:
            os.close(handle)  # releases the lock


def _try_flock(handle: int) -> bool | None:
    """Take the kernel's exclusive flock on an open file or folder without waiting: True when
    taken, False when another open of it holds the lock (in this process or another), None
    where the file system has no flock (some network mounts)."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    return True


def held_here(file) -> bool:
    """Take the kernel's exclusive flock on an open file for as long as it stays open: False when
    another holds it (another run, or another open in this one). True where there is no flock
    (Windows, some network mounts): nothing is held there."""
    return fcntl is None or _try_flock(file.fileno()) is not False


def _lock(folder: Path) -> int | None:
    """An open handle of `folder` holding its flock; None where there is no flock (Windows,
    some network mounts): nothing is held. (Held by another is impossible: `written_whole`
    made the folder just now.)"""
    if fcntl is None:
        return None
    handle = os.open(folder, os.O_RDONLY)
    if _try_flock(handle):
        return handle
    os.close(handle)
    return None


def _is_locked(folder: Path) -> bool | None:
    """Whether a process holds `folder`'s flock (another open of it in this process counts);
    None where that cannot be told (no flock, the folder gone or unreadable)."""
    if fcntl is None:
        return None
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return None
    try:
        taken = _try_flock(handle)
    finally:
        os.close(handle)  # releases the lock if this took it
    return None if taken is None else not taken


@contextmanager
def folder_held(folder: str | Path, refusal: str) -> Iterator[None]:
    """This process alone writes into `folder` for the block: ConfigError(`folder`: `refusal`)
    when another holds it. Two transcribes into one output folder had each rewritten its
    settings record, so it could name the model of the run that wrote none of the pages. The
    lock is the kernel's (flock on the folder itself): a killed run leaves no stale claim, and
    no file is added to the folder. Holds nest within one thread; another thread of this process
    is refused as another process is. Where there is no flock (Windows), nothing is held."""
    if fcntl is None:
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(folder)
    thread = threading.get_ident()
    with _HELD_LOCK:
        if key in _HELD and _HELD[key].thread != thread:  # another thread's run (the UI serves several)
            raise ConfigError(f"{folder}: {refusal}")
        if key in _HELD:  # held further up this thread's call (the CLI, then its batch): held already
            _HELD[key].holds += 1
            handle = None
        else:
            handle = os.open(folder, os.O_RDONLY)
            # None: a file system without flock (some network mounts): not held, as on Windows.
            if _try_flock(handle) is False:
                os.close(handle)
                raise ConfigError(f"{folder}: {refusal}")
            _HELD[key] = _Hold(thread, 1, handle)
    try:
        yield
    finally:
        with _HELD_LOCK:
            hold = _HELD.get(key)
            if hold is not None:  # (a forked child forgot the holds it inherited: _forget_holds)
                hold.holds -= 1
                if not hold.holds:
                    del _HELD[key]
        if handle is not None and hold is not None:
            os.close(handle)  # releases the lock


def held_elsewhere(folder: str | Path, levels: int = 2) -> Path | None:
    """The first of `folder` and the `levels` folders above it that another run holds
    (folder_held) now, or None (_is_locked: its lock is taken and let go at once to ask)."""
    folder = Path(os.path.realpath(folder))
    for candidate in (folder, *folder.parents[:levels]):
        with _HELD_LOCK:
            if os.fspath(candidate) in _HELD:
                continue  # this process's own hold
        if _is_locked(candidate):
            return candidate
    return None


@dataclass
class _Hold:
    thread: int  # the thread holding the folder
    holds: int  # how many of its holds are open (they nest)
    handle: int  # the open folder carrying the flock


# The folders this process holds (folder_held), by real path.
_HELD: dict[str, _Hold] = {}
_HELD_LOCK = threading.Lock()


def _forget_holds() -> None:
    """In a forked child (a training's data-loader workers): close the inherited handles of the
    held folders. A flock lasts while any copy of its handle is open, so a worker outliving a
    killed training had kept its --out refused to the rerun; the parent's own handle still
    holds the lock."""
    global _HELD_LOCK
    _HELD_LOCK = threading.Lock()  # another thread of the parent may have held it at the fork
    for hold in _HELD.values():
        try:
            os.close(hold.handle)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_holds)


def check_folder_can_be_swapped(directory: Path, option: str) -> None:
    """ConfigError naming `option` unless `swap_in_folder` can put a new `directory` in place:
    its staging folder is made, and the old one moved aside, in the folder above it. Checked
    before the work: a writable --out under a folder that is not had failed at the end, naming
    a hidden staging path."""
    parent = Path(os.path.abspath(directory)).parent
    existing = next(p for p in (parent, *parent.parents) if p.exists())
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {directory}: the folder above it, {existing}, is not writable (the new folder "
                          "is written beside the old one and swapped in)")


def recover_folder(directory: Path) -> bool:
    """Put back the folder a kill between swap_in_folder's two renames left aside (True when it
    did), and drop staging folders of writes that never finished (their process is gone)."""
    directory = Path(directory)
    previous = previous_folder(directory)
    restored = not directory.exists() and previous.is_dir()
    if restored:
        os.replace(previous, directory)
    for staging in directory.parent.glob(f".{glob.escape(directory.name)}.saving-*"):
        if not _writer_runs(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return restored


def _writer_runs(staging: Path) -> bool:
    """Whether a run still writes `staging`: two runs writing the same folder (a train and an
    average into one --out) must not remove each other's half-written staging folder.
    `written_whole` holds the folder's flock while it writes, so a folder nobody holds is a
    dead write's, unless it was made in the last STAGING_GRACE_S (between its mkdir and its
    lock). Where locks cannot be told, the process that named it (its pid ends the name) must
    run, and this process's own is a write it gave up on (each write clears its staging folder
    first). Not a pid: a foreign folder, left alone."""
    pid = staging.name.rpartition(".saving-")[2]
    if not pid.isdigit():
        return True
    locked = _is_locked(staging)
    if locked is not None:
        return locked or _changed_within(staging, STAGING_GRACE_S)
    return int(pid) != os.getpid() and process_runs(int(pid))


# A staging folder unlocked and untouched this long is a dead write's: `written_whole` locks
# its folder microseconds after making it.
STAGING_GRACE_S = 10.0


def _changed_within(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime < seconds
    except OSError:  # gone meanwhile: nothing to remove
        return True


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """The temp path to write `path` through, for a writer that wants a file name of its own
    (zipfile, a plotting library): renamed to `path` when the block ends, removed when it
    raises, so a reader never finds a half-written file at `path`. A symbolic link at `path` is
    written through, as `open` writes: the file it leads to is replaced, the link stays."""
    given = Path(path)
    special = special_file_kind(given)
    if special:  # the rename would put a plain file where a pipe or a device node was
        raise NotReplaced(errno.EEXIST, f"is {special}, not a file, and is not replaced", os.fspath(given))
    path = written_path(given)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps_of(path)
    tmp = _temp_path(path)
    try:
        yield tmp
        _flush_to_disk(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise naming_file(exc, given, instead_of=tmp)  # the user never sees the temp name
        raise


def written_path(path: Path) -> Path:
    """The file a write to `path` lands in: `path`, or the file a symbolic link there leads to
    (followed to its end, made if missing). Renamed onto the link, an output had replaced it with
    a plain file: a link into a shared or versioned folder silently stopped leading to the output."""
    if not path.is_symlink():
        return path
    try:
        target = path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a loop, before Python 3.13
        target = None
    if target is None or target.is_symlink():  # from 3.13 a loop resolves to a link of it
        raise OSError(errno.ELOOP, "is a symbolic link that leads round in a loop", os.fspath(path))
    return target


def _flush_to_disk(path: Path) -> None:
    """The file's data on the disk before a rename makes it the output. After a power cut a new
    file renamed into place can otherwise be there but empty (file systems may store the rename
    before the data), and `hwr transcribe --resume`, which takes an existing output as a page
    done, would skip that page for good."""
    with open(path, "rb+") as written:
        os.fsync(written.fileno())


def naming_file(exc: OSError, path: str | Path, instead_of: str | Path | None = None) -> OSError:
    """`exc`, or the same error naming `path` when it names no file (a failed write() or
    flush() does not) or names `instead_of` (a temp file), so a message can say which file
    could not be written. An error about some other file (a writer's input) is left as it is."""
    names_other = exc.filename is not None and (
        instead_of is None or os.fspath(exc.filename) != os.fspath(instead_of))
    if exc.errno is None or names_other:
        return exc
    return OSError(exc.errno, exc.strerror, os.fspath(path))  # the errno's subclass, e.g. PermissionError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


# Lone surrogates (Python's stand-ins for a file name's bytes that are not UTF-8, such as a
# Latin-1 "café" from an old archive) are written as \udcXX escapes: strict UTF-8 would raise
# and stop a batch over one name, and in JSON the escape reads back as the very same name.
TEXT_ERRORS = "backslashreplace"


def utf8_bytes(text: str) -> bytes:
    """`text` as UTF-8, a file name's undecodable bytes escaped (TEXT_ERRORS), never an error."""
    return text.encode("utf-8", TEXT_ERRORS)


# Control characters a file name may hold (ESC, BEL, DEL, C1) drive the terminal they are
# printed on (an ESC sequence can rewrite the screen): messages and lists write them \xNN.
# Bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069) reorder what follows
# them on the screen, and line and paragraph separators (U+2028, U+2029) break a line: \uXXXX.
_LAYOUT_CHARS = "\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROL_CHARS = re.compile(f"[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f{_LAYOUT_CHARS}]")


def _hex_escaped(pattern: re.Pattern, text: str) -> str:
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}",
                       text)


def escape_controls(text: str) -> str:
    """`text` with its control characters but tab, newline and carriage return written \\xNN, and
    its bidirectional overrides and line separators \\uXXXX (`_LAYOUT_CHARS`)."""
    return _hex_escaped(_CONTROL_CHARS, text)


# Every control character, tab, newline and carriage return too: in a line's text (a reference
# or a reading, printed on one line) each is an error of the data, shown rather than obeyed.
LINE_CONTROL_CHARS = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_LAYOUT_CHARS}]")


def escape_line_controls(text: str) -> str:
    """A line's text with every control character written \\xNN (layout characters \\uXXXX), so a
    printed reference shows its stray tab or carriage return and an ESC sequence cannot drive
    the terminal."""
    return _hex_escaped(LINE_CONTROL_CHARS, text)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, utf8_bytes(text))


# The first bytes of every gzip stream: readers of files that may be gzipped (LMs, lexicons)
# sniff them rather than trust a ".gz" suffix.
GZIP_MAGIC = b"\x1f\x8b"


def is_gzipped(path: str | Path) -> bool:
    with open(path, "rb") as f:
        return f.read(len(GZIP_MAGIC)) == GZIP_MAGIC


def open_maybe_gzipped(path: str | Path, mode: str = "rb", **kwargs):
    """`open`, or `gzip.open` for a file that starts as a gzip stream (whatever its name)."""
    return (gzip.open if is_gzipped(path) else open)(path, mode, **kwargs)


def atomic_write_gzip_by_suffix(path: str | Path, data: bytes) -> None:
    """Gzipped when `path` ends in .gz (reproducibly: no timestamp), as is otherwise."""
    atomic_write_bytes(path, gzip.compress(data, mtime=0) if Path(path).suffix == ".gz" else data)


def _looked_up(check, path: str | Path) -> bool:
    try:
        return check(Path(path))
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return False
        raise  # a permission error, say, is the user's to see, with its own cause


def is_file(path: str | Path) -> bool:
    """Path.is_file, but False for a name too long for the file system: from Python 3.11
    pathlib raises OSError (ENAMETOOLONG) for a name over 255 bytes, and one such line of a
    list file or manifest stopped the whole batch, --skip-bad or not. Such a name names no
    file; the input is then reported as one, with the rest read. Other errors still raise."""
    return _looked_up(Path.is_file, path)


def is_dir(path: str | Path) -> bool:
    """Path.is_dir, False for a name too long for the file system (as `is_file`)."""
    return _looked_up(Path.is_dir, path)


def exists(path: str | Path) -> bool:
    """Path.exists, False for a name too long for the file system (as `is_file`)."""
    return _looked_up(Path.exists, path)


def not_found_reason(path: str | Path) -> str:
    """Why a name does not exist: "not found", or, for a symbolic link whose target cannot be
    reached (a loop, a target moved away), that it is such a link: the link itself shows in a
    listing, and "not found" sent the user looking for a file they could see."""
    if os.path.islink(path):
        return "is a symbolic link that leads nowhere (a loop, or its target is gone)"
    return "not found"


def special_file_kind(path: str | Path) -> str | None:
    """"a pipe", "a socket" or "a device" when `path` is one (it exists, and is neither a
    regular file nor a folder), else None: such a name was reported as "not found", a file the
    user can see in a listing."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return None


def file_in_any_unicode_form(path: Path) -> Path | None:
    """`path` when it is a file, else the file of its folder whose name differs from it only in
    Unicode form (NFC against NFD: macOS and some zip tools write "é" as "e" + a combining
    accent, most other tools and XML files as one character), else None. Both look alike in
    every listing, so a plain "not found" would name a file the user can see."""
    if is_file(path):
        return path
    wanted = unicodedata.normalize("NFC", path.name)
    if wanted.isascii():
        return None  # an ASCII name has one form only
    return next((entry for entry in _names_in_nfc(path.parent).get(wanted, ()) if entry.is_file()), None)


def _names_in_nfc(folder: Path) -> dict[str, list[Path]]:
    """The folder's entries by their names in NFC, listed once while the folder is unchanged (its
    modification time): a list file of 4,000 rows naming decomposed files had listed their
    folder 4,000 times (45 s against 0.35 s)."""
    try:
        info = folder.stat()
    except OSError:
        return {}
    key = (os.fspath(folder), info.st_dev, info.st_ino, info.st_mtime_ns)
    with _NFC_LOCK:
        names = _NFC_NAMES.get(key)
    if names is None:
        names = {}
        try:
            for entry in folder.iterdir():
                names.setdefault(unicodedata.normalize("NFC", entry.name), []).append(entry)
        except OSError:
            return {}
        with _NFC_LOCK:
            _NFC_NAMES[key] = names
            while len(_NFC_NAMES) > 16:  # the folders being read now; not every folder ever read
                del _NFC_NAMES[next(iter(_NFC_NAMES))]
    return names


_NFC_NAMES: dict[tuple, dict[str, list[Path]]] = {}  # _names_in_nfc's listings, oldest first
_NFC_LOCK = threading.Lock()


def check_output_dir(path: str | Path | None, option: str) -> None:
    """ConfigError naming `option` unless `path` is, or can be made, a writable folder (made here)."""
    if not path:
        return
    problem = _folder_problem(Path(path), of_a_file=False)
    if problem:
        raise ConfigError(f"{option} {path}: {problem}")


def _folder_problem(path: Path, of_a_file: bool) -> str | None:
    """Why `path` is not, and cannot be made, a writable folder (made here); None when it is
    one. `of_a_file`: the folder is named, as the message is about a file in it."""
    named = f" {path}" if of_a_file else ""
    if path.exists() and not path.is_dir():
        kind = "a file" if path.is_file() else special_file_kind(path) or "no folder"
        return f"{path} is {kind}, not a folder" if of_a_file else f"is {kind}, not a folder"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the folder{named} ({exc.strerror or exc})"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"the folder{named} is not writable"
    return None


def check_folder_can_be_made(path: str | Path, option: str) -> None:
    """ConfigError naming `option` unless `path` is a writable folder or one can be made there.
    Nothing is made, so a command that fails before writing leaves no empty folder behind;
    checked before the work, so it is not lost to an unwritable output at the end."""
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: the folder {existing} is not writable")


def check_output_file(path: str | Path | None, option: str) -> None:
    """ConfigError naming `option` unless a file can be written at `path` (its folder is made here)."""
    if not path:
        return
    if str(path) == "-":
        # The Unix habit for standard output: it had made a file named "-" (a probe helper).
        raise ConfigError(f"{option} -: standard output is not written to; give a file name (e.g. {option} out.json "
                          "and read it after)")
    path = Path(path)
    if len(os.fsencode(path.name)) > NAME_MAX:
        raise ConfigError(f"{option} {path}: the file name is too long ({len(os.fsencode(path.name))} bytes; "
                          f"file systems take at most {NAME_MAX})")
    if path.is_dir():
        raise ConfigError(f"{option} {path}: is a folder; give a file name")
    special = special_file_kind(path)
    if special:
        # Outputs are written whole beside their name and renamed into place: the rename would
        # put a plain file where the pipe or device was (a reader on the pipe waited for ever).
        raise ConfigError(f"{option} {path}: is {special}, not a file; give a file name")
    try:
        written = written_path(path)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: {exc.strerror}") from None
    problem = _folder_problem(written.parent, of_a_file=True)
    if problem:
        raise ConfigError(f"{option} {path}: {problem}")
    if written.exists() and not os.access(written, os.W_OK):
        raise ConfigError(f"{option} {path}: the file is not writable")
    _check_files_can_be_made(written.parent, f"{option} {path}")


def _check_files_can_be_made(folder: Path, named: str) -> None:
    """ConfigError unless a file can be created in `folder`: a folder may let its permissions say
    yes and still refuse (/proc, /sys, a read-only bind mount), which only a write shows. The
    probe is a temp file of hwr's kind (`_temp_path`), removed at once."""
    probe = _temp_path(folder / "write-probe")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process of ours is probing: a file was made there
    except OSError as exc:
        raise ConfigError(f"{named}: no file can be written in {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    probe.unlink(missing_ok=True)


def check_distinct_outputs(outputs: list[tuple[str, str | Path | None]],
                           inputs: list[str | Path] = (), inputs_of: str = "") -> None:
    """ConfigError naming the option when an output path is one of the command's input files
    (writing it would destroy the input in silence) or the same file as another output (one
    would replace the other). outputs: (option, path) pairs; unset paths are ignored.
    inputs_of: what the inputs were read for, named in the message ("the data set gt/")."""
    def key(path: str | Path) -> Path:
        try:
            return Path(path).expanduser().resolve()
        except (OSError, RuntimeError):  # a symbolic link loop: check_output_file names it
            return Path(path).expanduser().absolute()

    given = {key(p): str(p) for p in inputs if p and Path(p).is_file()}
    seen: dict[Path, str] = {}
    for option, path in outputs:
        if not path:
            continue
        target = key(path)
        if target in given:
            of = f" of {inputs_of}" if inputs_of else ""
            raise ConfigError(f"{option} {path}: is one of the input files{of}; writing it would destroy that input")
        if target in seen:
            raise ConfigError(f"{option} {path}: is also the {seen[target]} file; give each output its own name")
        seen[target] = option
