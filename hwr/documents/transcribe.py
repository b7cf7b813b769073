"""Batch transcription of line images: inputs -> Recognizer -> text / JSON outputs.

One unreadable file never stops the batch: it is reported (and listed in the JSON output)
and the rest goes on.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from hwr.documents import pages
from hwr.recognition.imaging import ImageError
from hwr.fileio import atomic_write_bytes
from hwr.recognition.model import Recognizer, RecognizerSettings
from hwr.documents.pipeline import BatchConfig

log = logging.getLogger("hwr.documents.transcribe")


@dataclass
class LineTranscription:
    source: str
    text: str
    confidence: float
    char_confidences: list[float] = field(default_factory=list)
    # Word boxes from CTC alignment: {"text", "confidence", "x0", "x1"} in source-image pixels.
    words: list[dict] = field(default_factory=list)


@dataclass
class TranscriptionResult:
    lines: list[LineTranscription] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)  # {"source": ..., "error": ...}

    def to_json(self) -> str:
        return json.dumps({"lines": [asdict(l) for l in self.lines], "failures": self.failures},
                          indent=1, ensure_ascii=False)


def expand_inputs(inputs: Iterable[str]) -> list[Path]:
    """Line image files from paths, folders (recursive), globs and list files, as
    `hwr.documents.pages.expand_inputs` finds them; missing paths are kept so they get reported."""
    return [path for path, _ in pages.expand_inputs(inputs)]


def transcribe_lines(recognizer: Recognizer, paths: list[Path], batch_size: int = 16) -> TranscriptionResult:
    result = TranscriptionResult()
    for start in range(0, len(paths), batch_size):
        chunk, lines, geometries = [], [], []
        for path in paths[start : start + batch_size]:
            try:
                line, geometry = recognizer.preprocess_with_geometry(path)
                lines.append(line)
                geometries.append(geometry)
                chunk.append(path)
            except ImageError as exc:
                log.error("%s", exc)
                result.failures.append({"source": str(path), "error": exc.reason})
        for path, rec in zip(chunk, recognizer.recognize_normalized(lines, batch_size, geometries)):
            result.lines.append(LineTranscription(str(path), rec.text, rec.confidence, rec.char_confidences,
                                                  [asdict(w) for w in rec.words]))
    return result


def write_text_outputs(result: TranscriptionResult, output_dir: Path) -> None:
    """One `<stem>.txt` per input image, written atomically."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for line in result.lines:
        atomic_write_bytes(output_dir / (Path(line.source).stem + ".txt"), (line.text + "\n").encode("utf-8"))


@dataclass
class TranscribeConfig(RecognizerSettings):
    """Settings of `hwr transcribe` (CLI flags and --config files read these defaults)."""

    json: str | None = None  # write texts and confidences here
    output_dir: str | None = None  # write one <stem>.txt per image here (pages: one file per --format)
    # Pages (hwr.documents.pipeline): line = every input is one line image; page = every input is a page
    # to segment; auto = PDFs, multi-page TIFFs and images where the segmenter finds 2+ lines
    # are pages, other images are line images.
    # The page settings take their defaults from hwr.documents.pipeline.BatchConfig, their one source.
    mode: str = BatchConfig.mode
    format: str = ",".join(BatchConfig().formats)  # page outputs, comma-separated: txt,json,pagexml,alto
    resume: bool = BatchConfig.resume  # skip pages whose outputs all exist in --output-dir
    errors: str | None = BatchConfig.errors  # failed pages (TSV); default <output-dir>/errors.tsv
    dpi: int = BatchConfig.dpi  # PDF rasterisation
    workers: int = BatchConfig.workers  # page loading/segmentation threads
    processes: bool = BatchConfig.processes  # workers as processes (many-core hosts)
    progress: bool = BatchConfig.progress  # progress bar on stderr
