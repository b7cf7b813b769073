"""The hwr web app (Gradio): Transcribe, Batch, Evaluate and Model tabs.

Every action is also a named API endpoint (`/transcribe`, `/export`, `/batch`, `/evaluate`,
`/model_info`, `/benchmark`), so scripts drive the same code with `gradio_client`.
The app makes no network call of its own: telemetry is off (see `hwr/__init__.py`), fonts are
the system's, and only `--share` opens a tunnel.
"""
from __future__ import annotations

import contextvars
import functools
import html
import logging
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image, UnidentifiedImageError

import hwr  # noqa: F401  - sets GRADIO_ANALYTICS_ENABLED/HF_HUB_DISABLE_TELEMETRY before gradio loads
from hwr.documents.pages import PDF_SUFFIX
from hwr.errors import HwrError, describe_os_error, is_users_os_error
from hwr.recognition.decode import decoder_options
from hwr.recognition.imaging import ImageError
from hwr.scoring.evaluate import evaluate, write_lines_csv

from . import batch as batch_logic
from . import evaluation, model_info
from .collection import page_key
from .config import UIConfig
from .models import ModelRegistry, decoder_names
from .pages import (
    LAYOUTS,
    apply_corrections,
    export_page,
    first_page,
    mean_confidence,
    page_from_dict,
    page_to_dict,
    transcribe_image,
)
from .render import CONFIDENCE_CSS, confidence_html, draw_lines
from .teach import Teacher, build_teach_tab, register_adapted_models, stream_friendly, teaching_allowed
from .uploads import UploadError, WorkDirs, ZipLimits, display_name

log = logging.getLogger("ui.app")

# System fonts only: the page loads no font files at all (a theme's GoogleFont would go to
# fonts.googleapis.com); generic families stay last, unquoted, as the fallback.
THEME_FONTS = ["Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"]
THEME_MONO = ["SFMono-Regular", "Menlo", "Consolas", "DejaVu Sans Mono", "monospace"]
# Gradio's cache (its copies of uploads and outputs): swept hourly of files over an hour old.
CACHE_SWEEP = (3600, 3600)
# The events that read with a network (transcribe, batch, evaluate, benchmark) share one
# concurrency group: --concurrency jobs at once in all, not that many of each kind.
WORK_GROUP = "hwr-work"
LAYOUT_HELP = ("auto: a single line, unless two or more text lines are found on it; then it is read both as "
               "a page and as a line, and the surer reading is kept")


@dataclass
class AppContext:
    config: UIConfig
    registry: ModelRegistry
    work: WorkDirs
    teacher: Teacher | None = None  # the Teach tab's collection and adaptation (loopback servers only)

    @property
    def zip_limits(self) -> ZipLimits:
        return ZipLimits(self.config.max_zip_mb << 20, self.config.max_zip_files)


# --- Errors the user can act on ------------------------------------------------------------

# HwrError: every error hwr raises about the user's own files and settings (the CLI's exit 2);
# adapt's "these lines cannot be used" is a ConfigError, and the Teach tab must show it too.
FRIENDLY_ERRORS = (HwrError, UploadError)


def friendly(fn):
    """Turn expected failures into a readable message and unexpected ones into a logged one."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except ImageError as exc:
            name = display_name(exc.source)
            # Pillow's messages may quote the server-side upload path; the user knows the name.
            raise _error(f"{name}: {exc.reason.replace(exc.source, name)}") from None
        except FRIENDLY_ERRORS as exc:
            raise _error(str(exc)) from None
        except MemoryError:
            raise _error("the server ran out of memory; try a smaller image or fewer files") from None
        except Exception as exc:
            if is_users_os_error(exc):  # a full disk or a folder's permissions: say which file
                raise _error(describe_os_error(exc)) from None
            # The server keeps running (gradio isolates events); the user gets a message, the
            # log the traceback.
            log.exception("%s failed", fn.__name__)
            raise _error("something went wrong on the server; the details are in its log") from None

    return wrapper


def _error(message: str) -> gr.Error:
    # gr.Error renders HTML: file names and texts from uploads must not become markup.
    # Quotes stay as they are (API clients read the message too, and a quote in text is no
    # markup); <, > and & are escaped.
    return gr.Error(html.escape(message, quote=False), print_exception=False)


class PageImage(gr.Image):
    """gr.Image whose unreadable uploads give a friendly message instead of a stack trace."""

    is_template = True  # rendered by gr.Image's front end

    def preprocess(self, payload):
        path = getattr(payload, "path", None)
        if self.type == "filepath" and path and Path(path).suffix.lower() == PDF_SUFFIX:
            # Read by first_page as the Batch tab reads it; gradio's own check opens every upload
            # with Pillow, which had refused a scanned PDF as "not a readable image".
            return str(path)
        try:
            return super().preprocess(payload)
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError) as exc:
            name = getattr(payload, "orig_name", None) or "the upload"
            reason = "not a readable image" if isinstance(exc, UnidentifiedImageError) else f"unreadable image ({exc})"
            raise _error(f"{name}: {reason}") from None


def _require(value, what: str):
    if value is None or value == [] or value == "":
        raise UploadError(f"no {what} given: upload one first")
    return value


# --- Transcribe ------------------------------------------------------------------------------

def transcribe(ctx: AppContext, image: str, model: str, decoder: str, layout: str):
    """Image file -> outlined page, coloured lines, editable text, downloads, page JSON, status."""
    gray, more = first_page(_require(image, "image"))
    recognizer = ctx.registry.get(model, decoder)
    start = time.perf_counter()
    page, used = transcribe_image(recognizer, gray, layout, page_id=Path(display_name(image)).stem,
                                  source=display_name(image))
    seconds = time.perf_counter() - start
    files = export_page(page, ctx.work.new("transcribe"), Path(display_name(image)).stem)
    status = _status(page, used, seconds) + (f" · page 1 of {more}: the Batch tab reads them all" if more else "")
    return (draw_lines(gray, page), confidence_html(page), page.text, [str(f) for f in files],
            page_to_dict(page, page_key(gray)), status)


def _status(page, layout: str, seconds: float) -> str:
    conf = mean_confidence(page)
    conf_text = f" · mean confidence {conf:.0%}" if conf is not None else ""
    turn_text = f" · page turned {page.orientation}° clockwise to read" if page.orientation else ""
    return f"{len(page.lines)} line(s) read as {layout}{turn_text} in {seconds:.2f} s{conf_text}"


def export(ctx: AppContext, page_json: dict, corrected: str):
    """The last page with the user's corrected text -> fresh downloads."""
    page = apply_corrections(page_from_dict(_require(page_json, "transcription")), corrected or "")
    files = export_page(page, ctx.work.new("export"), page.id or "page")
    return [str(f) for f in files]


def _transcribe_tab(ctx: AppContext, model, decoder) -> None:
    samples = [[str(p)] for p in model_info.sample_lines() + model_info.sample_pages()]
    with gr.Tab("Transcribe", id="transcribe"):
        with gr.Row():
            with gr.Column(scale=1):
                image = PageImage(type="filepath", image_mode=None, sources=["upload", "clipboard", "webcam"],
                                  label="Handwriting: a line or a whole page", elem_id="hwr-input")
                layout = gr.Radio(list(LAYOUTS), value="auto", label="Read as", info=LAYOUT_HELP)
                button = gr.Button("Transcribe", variant="primary", elem_id="hwr-transcribe")
                if samples:
                    gr.Examples(samples, inputs=[image], label="Examples (synthetic, held-out fonts)")
            with gr.Column(scale=1):
                # No label badge: it would sit on the top-left corner, over line 1's number.
                gr.Markdown("**Detected lines**")
                outlined = gr.Image(label="Detected lines", show_label=False, format="png", interactive=False,
                                    elem_id="hwr-outlined")
                status = gr.Markdown(label="status", elem_id="hwr-status")
                lines_html = gr.HTML(label="Lines by confidence", elem_id="hwr-lines")
        corrected = gr.Textbox(label="Text (edit to correct, one line per detected line)", lines=6,
                               interactive=True, elem_id="hwr-text")
        with gr.Row():
            refresh = gr.Button("Apply corrections to downloads", size="sm")
            if ctx.teacher is not None:
                save = gr.Button("Save as training lines", size="sm", elem_id="hwr-save-lines")
        saved = gr.Markdown(elem_id="hwr-saved")
        downloads = gr.File(label="Downloads (txt, JSON, PAGE XML, ALTO)", file_count="multiple",
                            interactive=False, elem_id="hwr-downloads")
        with gr.Accordion("Page data (JSON)", open=False):
            page_json = gr.JSON(label="page")

    def run(image, model, decoder, layout):
        return transcribe(ctx, image, model, decoder, layout)

    def redo_downloads(page_json, corrected):
        return export(ctx, page_json, corrected)

    button.click(friendly(run), [image, model, decoder, layout],
                 [outlined, lines_html, corrected, downloads, page_json, status], api_name="transcribe",
                 concurrency_id=WORK_GROUP)
    refresh.click(friendly(redo_downloads), [page_json, corrected], [downloads], api_name="export")
    if ctx.teacher is not None:
        save.click(friendly(ctx.teacher.save_transcription), [image, page_json, corrected], [saved],
                   api_name="save_lines")


# --- Batch -------------------------------------------------------------------------------------

def run_batch(ctx: AppContext, files: list[str], model: str, decoder: str, layout: str, progress=None,
              stop: threading.Event | None = None):
    """Files and zips -> results table, zip of outputs, summary line, and the rows themselves
    (the pages as read, which the user may correct and save as training lines). `stop`: see
    batch_logic.run_batch."""
    recognizer = ctx.registry.get(model, decoder)
    with ctx.work.using("batch") as work:  # a batch may run for hours: never swept meanwhile
        try:
            inputs = batch_logic.collect_inputs(_require(files, "files"), work / "in", ctx.zip_limits)
            rows = batch_logic.run_batch(recognizer, inputs, layout, work / "out", _file_progress(progress),
                                         stop=stop)
        finally:
            if ctx.teacher is None:
                shutil.rmtree(work / "in", ignore_errors=True)  # the uploads' unpacked copies
            # With teaching on they stay until the work folder is swept (an hour): a page read
            # from a zip is loaded again from them when the user corrects it.
        archive = batch_logic.zip_outputs(rows, work / "out", work / "hwr-batch.zip")
    failed = sum(1 for r in rows if r.error)
    summary = f"{len(rows) - failed} of {len(rows)} images read" + (f"; {failed} failed (see the error column)"
                                                                     if failed else "")
    return [r.cells() for r in rows], str(archive), summary, rows


def stoppable(fn, *args, outputs: int = 1, poll_s: float = 0.5):
    """`fn(*args, stop=event)` in a thread, as a generator for gradio: it yields "no change" (to
    each of its `outputs`) while the work runs, then its result. Gradio closes the generator when
    the user cancels or leaves the page, which sets `stop` (a plain function ran on to the end,
    outside the queue's count, as gradio cannot stop a thread). The thread runs in this request's
    context: gradio's progress bar reaches the page from it."""
    stop = threading.Event()
    outcome: dict = {}

    def work():
        try:
            outcome["result"] = fn(*args, stop=stop)
        except BaseException as exc:  # noqa: BLE001 - raised again in the request below
            outcome["error"] = exc

    thread = threading.Thread(target=contextvars.copy_context().run, args=(work,), name="hwr-batch", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(poll_s)
            if thread.is_alive():
                yield gr.skip() if outputs == 1 else (gr.skip(),) * outputs
    finally:
        stop.set()
    if "error" in outcome:
        raise outcome["error"]
    yield outcome["result"]


def show_batch_page(rows: list[batch_logic.BatchRow], name: str):
    """One page of the last batch, to correct: its lines outlined, and its text as read."""
    row = batch_logic.find_row(rows, _require(name, "page"))
    return draw_lines(row.image(), row.page), row.page.text


def save_batch_page(ctx: AppContext, rows: list[batch_logic.BatchRow], name: str, corrected: str) -> str:
    row = batch_logic.find_row(rows, _require(name, "page"))
    return ctx.teacher.save_page(row.image(), row.page, corrected, row.name)


def _file_progress(progress):
    """gradio's progress bar as the (done, total, name) callback the batch logic reports to."""
    if progress is None:
        return None
    return lambda done, total, name: progress((done, total), desc=f"reading {name}")


def _batch_tab(ctx: AppContext, model, decoder) -> None:
    with gr.Tab("Batch", id="batch"):
        # No file_types: gradio would refuse the whole batch for one odd file; each file's row
        # says instead whether it could be read.
        files = gr.File(label="Images, PDFs, or zips of them", file_count="multiple", elem_id="hwr-batch-files")
        layout = gr.Radio(list(LAYOUTS), value="auto", label="Read as", info=LAYOUT_HELP)
        button = gr.Button("Transcribe all", variant="primary")
        summary = gr.Markdown(label="summary")
        table = gr.Dataframe(headers=batch_logic.TABLE_HEADERS, interactive=False, wrap=True, label="Results",
                             column_widths=batch_logic.COLUMN_WIDTHS)
        archive = gr.File(label="All outputs (zip)", interactive=False)
        rows = gr.State([])
        if ctx.teacher is not None:
            with gr.Accordion("Correct a page and save it as training lines", open=False):
                # Custom values: the choices are the last batch's pages, which the browser learns
                # after the run; find_row checks the name against the batch itself.
                pick = gr.Dropdown([], label="Page", info="a page of the last batch", allow_custom_value=True,
                                   elem_id="hwr-batch-pick")
                with gr.Row():
                    outlined = gr.Image(label="Detected lines", interactive=False, format="png")
                    corrected = gr.Textbox(label="Text (edit to correct, one line per detected line)", lines=8,
                                           interactive=True, elem_id="hwr-batch-text")
                save = gr.Button("Save as training lines", size="sm", elem_id="hwr-batch-save")
                saved = gr.Markdown(elem_id="hwr-batch-saved")

    def run(files, model, decoder, layout, progress=gr.Progress()):
        yield from stoppable(run_batch, ctx, files, model, decoder, layout, progress, outputs=4)

    event = button.click(stream_friendly(run, friendly), [files, model, decoder, layout],
                         [table, archive, summary, rows], api_name="batch", concurrency_id=WORK_GROUP)
    if ctx.teacher is None:
        return

    def offer(read_rows):
        return gr.update(choices=[r.name for r in read_rows if r.correctable], value=None)

    def save_lines(read_rows, name, text):
        return save_batch_page(ctx, read_rows, name, text)

    event.then(offer, [rows], [pick], api_name=False)
    pick.input(friendly(show_batch_page), [rows, pick], [outlined, corrected], api_name="batch_page")
    save.click(friendly(save_lines), [rows, pick, corrected], [saved], api_name="save_batch_lines")


# --- Evaluate ----------------------------------------------------------------------------------

def run_evaluation(ctx: AppContext, archive: str, model: str, decoder: str, progress=None):
    """Zipped labelled data set -> summary, CER by length, lines worst first, per-line CSV, and
    the skipped entries' CSV (shown only when some were skipped)."""
    recognizer = ctx.registry.get(model, decoder)
    with ctx.work.using("evaluate") as work:
        try:
            samples, skipped = evaluation.open_uploaded_dataset(_require(archive, "zip file"), work / "in",
                                                                ctx.zip_limits)
            counter = _Counter(len(samples), progress)
            report = evaluate(recognizer, samples, ctx.config.batch_size, skip_bad=True, progress=counter)
            table = evaluation.lines_table_html(report, samples)
            summary = evaluation.summary_markdown(report, skipped, work / "in" / "dataset")
            skipped_path = work / "hwr-eval-skipped.csv"
            listed = evaluation.write_skipped_csv(report, skipped, work / "in" / "dataset", skipped_path)
        finally:
            shutil.rmtree(work / "in", ignore_errors=True)
        csv_path = work / "hwr-eval-lines.csv"
        write_lines_csv(report, csv_path)
    # A path or None, not a visibility update: API clients would get gradio's update dict.
    return summary, evaluation.cer_by_length(report), table, str(csv_path), str(skipped_path) if listed else None


class _Counter:
    """hwr.scoring.evaluate reports lines done per batch; gradio's progress wants (done, total)."""

    def __init__(self, total: int, progress):
        self.total, self.done, self.progress = total, 0, progress

    def __call__(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress((self.done, self.total), desc="recognising lines")


def _evaluate_tab(ctx: AppContext, model, decoder) -> None:
    example = model_info.samples_dir() / "eval-lines.zip"
    with gr.Tab("Evaluate", id="evaluate"):
        gr.Markdown("Upload a zip of an IAM-style data set: the IAM layout (`ascii/lines.txt` + `lines/`) "
                    "or line images with a `.gt.txt` transcription beside each.")
        archive = gr.File(label="Data set (zip)", file_types=[".zip"])
        if example.is_file():
            gr.Examples([[str(example)]], inputs=[archive], label="Example (6 synthetic lines)")
        button = gr.Button("Evaluate", variant="primary")
        summary = gr.Markdown(label="summary")
        # y from zero: vega would start the axis near the lowest bar and exaggerate differences.
        plot = gr.BarPlot(x="length", y="CER", title="CER by line length (characters)", y_axis_format=".0%",
                          y_lim=[0, None], sort=None, tooltip=["length", "CER", "lines"], label="CER by line length")
        table = gr.HTML(label="Lines, worst first")
        csv_file = gr.File(label="Per-line results (CSV)", interactive=False)
        skipped_file = gr.File(label="Skipped entries (CSV, when any were skipped)", interactive=False)

    def run(archive, model, decoder, progress=gr.Progress()):
        return run_evaluation(ctx, archive, model, decoder, progress)

    button.click(friendly(run), [archive, model, decoder], [summary, plot, table, csv_file, skipped_file],
                 api_name="evaluate", concurrency_id=WORK_GROUP)


# --- Model ---------------------------------------------------------------------------------------

def describe_model(ctx: AppContext, model: str, decoder: str):
    recognizer = ctx.registry.get(model, decoder)
    return model_info.model_card(recognizer), model_info.model_facts(recognizer)


def benchmark(ctx: AppContext, model: str, decoder: str) -> dict:
    return model_info.measure_speed(ctx.registry.get(model, decoder))


def _model_tab(ctx: AppContext, demo: gr.Blocks, model, decoder) -> None:
    with gr.Tab("Model", id="model"):
        with gr.Row():
            with gr.Column(scale=2):
                card = gr.Markdown(label="model card")
            with gr.Column(scale=1):
                facts = gr.JSON(label="Model")
                button = gr.Button("Measure speed")
                speed = gr.JSON(label="Speed on the shipped samples (this machine)")

    def show(model, decoder):
        return describe_model(ctx, model, decoder)

    def measure(model, decoder):
        return benchmark(ctx, model, decoder)

    demo.load(friendly(show), [model, decoder], [card, facts], api_name="model_info")
    model.change(friendly(show), [model, decoder], [card, facts], api_name=False)
    button.click(friendly(measure), [model, decoder], [speed], api_name="benchmark",
                 concurrency_id=WORK_GROUP)


# --- The app -------------------------------------------------------------------------------------

def build_app(config: UIConfig | None = None, registry: ModelRegistry | None = None) -> gr.Blocks:
    """The Blocks app with its queue set up; `launch_app` serves it."""
    config = config or UIConfig()
    registry = registry or ModelRegistry(config.model, config.device, decoder_options(config), config.search_workers,
                                         config.width_variants, config.width_variants_below)
    ctx = AppContext(config, registry, WorkDirs())
    if teaching_allowed(config.host, config.share):
        ctx.teacher = Teacher(ctx.registry, ctx.work, ctx.zip_limits)
        register_adapted_models(ctx.registry)
    with gr.Blocks(title="hwr: handwriting recognition", analytics_enabled=False, delete_cache=CACHE_SWEEP) as demo:
        gr.Markdown("## hwr: handwriting text recognition")
        with gr.Accordion("Model and decoder", open=False):
            with gr.Row():
                model = gr.Dropdown(ctx.registry.labels, value=ctx.registry.default_label, label="Model",
                                    info="models this server was started with, and those adapted on Teach")
                # Listed afresh on opening: a model adapted since appears, one deleted since is gone.
                model.focus(lambda: gr.update(choices=ctx.registry.labels), None, [model], api_name=False)
                decoder = gr.Dropdown(decoder_names(), value=config.decoder, label="Decoder",
                                      info="auto: a search with the English character LM (about a quarter fewer "
                                           "errors); greedy: fastest")
        with gr.Tabs():
            _transcribe_tab(ctx, model, decoder)
            _batch_tab(ctx, model, decoder)
            _evaluate_tab(ctx, model, decoder)
            _model_tab(ctx, demo, model, decoder)
            if ctx.teacher is not None:
                build_teach_tab(ctx.teacher, model, friendly)
    demo.hwr_context = ctx  # for launch_app's cleanup and for tests
    return demo.queue(default_concurrency_limit=config.concurrency, max_size=config.queue_size)


def launch_app(demo: gr.Blocks, config: UIConfig, block: bool = True) -> str:
    """Serve the app; returns its local URL (at once when block=False, after shutdown otherwise)."""
    try:
        demo.launch(server_name=config.host, server_port=config.port, share=config.share,
                    prevent_thread_lock=not block, max_file_size=f"{config.max_upload_mb}mb", ssr_mode=False,
                    theme=gr.themes.Default(font=THEME_FONTS, font_mono=THEME_MONO),
                    css=CONFIDENCE_CSS + evaluation.EVAL_CSS, quiet=not block,
                    # The examples live outside the working directory when hwr is installed.
                    allowed_paths=[str(model_info.samples_dir())])
    finally:
        if block:
            close_app(demo)
    return demo.local_url


def close_app(demo: gr.Blocks) -> None:
    """Stop the server and remove this app's work folders."""
    demo.close()
    demo.hwr_context.work.close()


def serve(config: UIConfig) -> None:
    """`hwr ui`: build and serve until interrupted (Ctrl-C, or SIGTERM from a service manager)."""
    # SIGTERM would end the process without cleanup; as KeyboardInterrupt it takes the same
    # way out as Ctrl-C: gradio stops its server, then launch_app removes the work folders.
    signal.signal(signal.SIGTERM, _interrupt)
    # gradio checks its own port with httpx at start; at INFO those requests read like traffic.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    launch_app(build_app(config), config, block=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
