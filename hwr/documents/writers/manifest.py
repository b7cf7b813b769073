"""The record of the outputs hwr wrote in an output folder.

PAGE and ALTO name hwr as their creator and so does JSON's first key (OWN_MARKS in
hwr.documents.writers), but a text file carries no mark of its writer, and a PAGE XML that hwr
wrote and someone corrected by hand still carries hwr's: without a record, `--output-dir scans`
could not tell a transcription someone typed into scans/page.txt, or their corrections of
hwr's page.xml, from hwr's own earlier output, and would replace it. The folder's
`.hwr-outputs.jsonl` lists each file hwr wrote there with the SHA-256 of what it wrote: the
file is hwr's while it still holds that; an edit since makes it the user's. Each record also
names the output's origin (the input page it was read from and a digest of the reading
settings), so that --resume skips a page only when its outputs are this input's, read this way:
a second folder of scans with the same file names, or a run interrupted after it had replaced
part of a folder read with other settings, must not pass for done.

Append-only, one JSON object a line, each appended in one write with O_APPEND: the ranks of a
torchrun batch writing into one folder never lose each other's records (a whole-file
rewrite, however atomic, would), and a line torn by a crash is skipped when read. A record is
appended before its output is renamed into place, so a crash between the two leaves a record
of content that is not on disk, never an output of hwr's that hwr would refuse to replace.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from hwr.records import DOCUMENT_PAGE_SUFFIX

MANIFEST_NAME = ".hwr-outputs.jsonl"


def content_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class OutputManifest:
    """What hwr recorded writing in `folder` (read once, when made) and the records it adds."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / MANIFEST_NAME
        self._digests: dict[str, set[str]] = {}
        self._origins: dict[str, dict | None] = {}  # name -> the origin of its latest record
        self._latest: dict[str, str] = {}  # name -> the digest of its latest record
        self._ends_torn = False  # the last line lacks its newline (a crash mid-append)
        self._read()

    def _read(self) -> None:
        # The records of output folders this one is inside, or that are inside it, first (their
        # names put relative to this one), then its own: `--output-dir out/box1` after `--output-dir
        # out` (or the other way round) had found no record of a PAGE XML hwr wrote and someone
        # corrected since, took its hwr mark for hwr's, and replaced the correction.
        here = Path(os.path.abspath(self.folder))
        for other in self._related(here):
            self._read_file(other, other.parent)
        self._read_file(self.path, here, own=True)

    def _related(self, here: Path) -> list[Path]:
        enclosing = [parent / MANIFEST_NAME for parent in reversed(here.parents)
                     if (parent / MANIFEST_NAME).is_file()]
        try:
            enclosed = sorted(p for p in here.rglob(MANIFEST_NAME) if p.parent != here and p.is_file())
        except OSError:
            enclosed = []
        return enclosing + enclosed

    def _read_file(self, path: Path, base: Path, own: bool = False) -> None:
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return
        if own:
            self._ends_torn = bool(text) and not text.endswith("\n")
        for row in text.splitlines():
            try:
                record = json.loads(row)
                name = record["name"] if own else self._name_from(base, record["name"])
                if name is None:
                    continue  # another part of an enclosing folder
                self._digests.setdefault(name, set()).add(record["sha256"])
                self._origins[name] = record.get("origin")
                self._latest[name] = record["sha256"]
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash: its output may be refused, never wrongly replaced

    def _name_from(self, base: Path, name: str) -> str | None:
        """A name another folder's record gives relative to `base`, as this folder names it; None
        outside this folder."""
        relative = os.path.relpath(base / name, os.path.abspath(self.folder))
        return None if Path(relative).parts[:1] == ("..",) else Path(relative).as_posix()

    def name_of(self, path: str | Path) -> str:
        """`path` as the manifest names it: relative to the folder, with forward slashes."""
        return Path(os.path.relpath(path, self.folder)).as_posix()

    def knows(self, path: str | Path) -> bool:
        """Whether hwr ever recorded writing a file at `path` (whatever it holds now)."""
        return self.name_of(path) in self._digests

    def wrote(self, path: str | Path, data: bytes) -> bool:
        """Whether `data` (the file's content now) is what hwr recorded writing at `path`."""
        return content_digest(data) in self._digests.get(self.name_of(path), ())

    def holds_latest(self, path: str | Path, data: bytes) -> bool:
        """Whether `data` (the file's content now) is what the latest record of `path` says was
        written: a record is appended before its output is renamed into place, so a write that
        failed (a full disk) or was killed left the earlier reading behind the later record. True
        when there is no record."""
        latest = self._latest.get(self.name_of(path))
        return latest is None or latest == content_digest(data)

    def origin_of(self, path: str | Path) -> dict | None:
        """The origin recorded with the latest output written at `path`: {"source", "settings"},
        or None (no record, or one written before origins were recorded)."""
        return self._origins.get(self.name_of(path))

    def names_read_from(self, files: set[str]) -> list[str]:
        """The outputs whose latest record says they were read from one of `files` or a page of
        it (`files`: source identities without their `#p<N>`)."""
        return [name for name, origin in self._origins.items()
                if origin and DOCUMENT_PAGE_SUFFIX.sub("", origin.get("source", "")) in files]

    def record(self, path: str | Path, data: bytes, origin: dict | None = None) -> None:
        """Add that hwr writes `data` at `path` (before it is written; nothing when known), read
        from `origin` (see origin_of)."""
        name, digest = self.name_of(path), content_digest(data)
        if self._latest.get(name) == digest and self._origins.get(name) == origin:
            return
        line = json.dumps({"name": name, "sha256": digest, **({"origin": origin} if origin else {})}) + "\n"
        if self._ends_torn:  # the torn line must not swallow this record
            line, self._ends_torn = "\n" + line, False
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
        self._digests.setdefault(name, set()).add(digest)
        self._origins[name] = origin
        self._latest[name] = digest
