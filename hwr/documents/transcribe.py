"""What `hwr transcribe` reports for line images (JSON), and its settings.

The transcription itself, in every mode, is hwr.documents.pipeline.run_batch: one batch path
for the CLI, the UI and the page scorer, with one failure record (hwr.records.FailedInput).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from hwr.documents.pipeline import BatchConfig
from hwr.recognition.model import RecognizerSettings
from hwr.records import FailedInput


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
    """The `--json` output: every line image read, and every input that failed."""

    lines: list[LineTranscription] = field(default_factory=list)
    failures: list[FailedInput] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"lines": [asdict(line) for line in self.lines],
                           "failures": [asdict(f) for f in self.failures]},
                          indent=1, ensure_ascii=False)


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
    workers: int = BatchConfig.workers  # page workers (load, segment, cut, normalise); 0: in one process
    processes: bool = BatchConfig.processes  # workers as torch-free processes (many-core and GPU hosts)
    progress: bool = BatchConfig.progress  # progress bar on stderr
