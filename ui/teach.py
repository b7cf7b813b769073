"""Teach tab logic: save corrected lines to the user's collection, adapt a model to them
(hwr.training.adapt) with live progress, and offer the adapted model in the model dropdown.

Teaching writes to this machine's disk and trains for minutes, so it is offered only when the
app listens on the loopback address (the default 127.0.0.1): a server opened to other
machines (--host 0.0.0.0) reads, but does not learn. Nothing here makes a network call.
"""
from __future__ import annotations

import json
import logging
import math
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hwr.errors import HwrError, counted
from hwr.recognition.model import ADAPT_HISTORY_FILE, CONFIG_FILE, read_model_config
from hwr.records import Page
from hwr.training.adapt import (
    EARLIER_ROUNDS_FILE,
    RUN_DIR,
    AdaptConfig,
    AdaptResult,
    abandoned_run,
    adapt,
    deciding_cers,
)

from .collection import Collection, page_key, user_data_dir
from .evaluation import dataset_root, relative_to_upload
from .models import ModelRegistry, shown_name, usable_model
from .pages import IMAGE_KEY, apply_corrections, first_page, page_from_dict
from .uploads import UploadError, WorkDirs, ZipLimits, display_name, extract_data_zip

log = logging.getLogger("ui.teach")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
COLLECTION_SOURCE, ZIP_SOURCE = "My saved lines", "A zip (PAGE XML + images, or image + .gt.txt pairs)"
POLL_S = 1.0  # how often the progress display reads the run's held-out curve
CURVE_COLUMNS = ["step", "held-out CER", "model"]
MAX_MINUTES = 240  # the Minutes box's bound, held for API clients too: one run cannot take the server for days


def teaching_allowed(host: str, share: bool = False) -> bool:
    """Teaching (saving lines, training on this machine) only for a server this machine alone
    reaches: on a loopback address, and with no --share tunnel (which opens it to the internet
    whatever the address)."""
    return host in LOOPBACK_HOSTS and not share


def adapted_models_dir() -> Path:
    return user_data_dir() / "models"


def model_label(name: str, before: float, after: float, improved: bool) -> str:
    """The dropdown label of an adapted model carries its held-out before/after figures (as read
    by the reading that kept or refused its weights: `AdaptResult.deciding_cers`)."""
    if improved:
        return f"{name} (adapted: held-out CER {before:.1%} → {after:.1%})"
    return f"{name} (adapted, unchanged: {after:.1%} was no better than {before:.1%})"


def label_of_folder(folder: Path) -> str | None:
    """The label of a model adapted earlier (config.json's training.adapted), else None."""
    try:
        adapted = read_model_config(folder).training.get("adapted")
        if not adapted:
            return None
        before, after = deciding_cers(float(adapted["before_cer"]), float(adapted["after_cer"]),
                                      _figure(adapted.get("read_before")), _figure(adapted.get("read_after")))
        return model_label(shown_name(folder.name), before, after, bool(adapted["adapted_weights_kept"]))
    except Exception:  # a half-written, hand-edited or foreign folder is simply not offered
        # (this runs as the app starts: one bad folder must not keep the server from starting)
        log.warning("%s: not offered as an adapted model (its config.json has no usable figures)", folder)
        return None


def _figure(value) -> float | None:
    return None if value is None else float(value)


def register_adapted_models(registry: ModelRegistry, root: Path | None = None) -> None:
    """Offer the models adapted in earlier sessions too."""
    root = root or adapted_models_dir()
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        if folder.name.startswith("."):
            continue  # a model being written or set aside (hwr.fileio.swap_in_folder)
        if abandoned_run(folder):  # a run's leftovers, which would only take its name from the next run
            log.info("%s: removing what an unfinished adaptation left", folder)
            _remove(folder)
            continue
        label = label_of_folder(folder) if (folder / CONFIG_FILE).is_file() else None
        if label and usable_model(folder):  # weights cut short: left off, as discover_models does
            registry.add(label, folder)


@dataclass
class Progress:
    """What the page shows while adapting, read from adapt's updates and its run's history."""

    started: float = field(default_factory=time.monotonic)
    minutes: float = 5.0
    before: float | None = None
    lines: str = ""
    curve: list[dict] = field(default_factory=list)
    result: AdaptResult | None = None
    error: BaseException | None = None
    finishing: bool = False  # "Finish now" was pressed: training ends at its next step

    def update(self, info: dict) -> None:
        if info.get("phase") == "before":
            self.before = info["before_cer"]
            self.lines = (f"{info['adapt_lines']} lines to learn from, {info['held_out_lines']} held out "
                          f"(by {info['split_by']})")
            left_out, chars = info.get("left_out") or {}, " ".join(info.get("unwritable", ""))
            why = [f"{n} {what}" for n, what in (
                (left_out.get("unwritable"), f"with characters the model cannot write ({chars})"),
                (left_out.get("too_long"), "with more text than their image holds"),
                (left_out.get("empty"), "with no text"),
                (left_out.get("unreadable"), f"that could not be read ({info.get('unreadable', '')}"
                                             f"{', ...' if left_out.get('unreadable', 0) > 1 else ''})")) if n]
            if why:
                self.lines += "; left out: " + ", ".join(why)

    def read_curve(self, run_dir: Path) -> None:
        """The held-out curve so far: the earlier self-training rounds', then the current round's
        steps counted on from theirs (each round's history.jsonl starts again from step 0)."""
        earlier_file, history = run_dir / EARLIER_ROUNDS_FILE, run_dir / "history.jsonl"
        earlier, offset = _earlier_rounds(earlier_file)
        current = [{**r, "step": r["step"] + offset} for r in _complete_rows(history)] if history.is_file() else []
        if earlier or current:
            self.curve = [{"step": r["step"], "held-out CER": r["val_cer"]} for r in earlier + current]

    def status(self) -> str:
        elapsed = (time.monotonic() - self.started) / 60
        parts = [f"{elapsed:.1f} of {self.minutes:g} min ({max(0.0, self.minutes - elapsed):.1f} left)"]
        if self.lines:
            parts.append(self.lines)
        if self.before is not None:
            parts.append(f"held-out CER before: {self.before:.1%}")
        if self.curve:
            last = self.curve[-1]
            best = min(c["held-out CER"] for c in self.curve)
            parts.append(f"step {last['step']}: {last['held-out CER']:.1%} (best {best:.1%})")
        if self.finishing:
            return ("Finishing: training stops at its next step (after one step, if the lines are still being "
                    "read); the weights so far are checked on the held-out lines and written… " + " · ".join(parts))
        return "Adapting… " + " · ".join(parts)

    def frame(self) -> pd.DataFrame:
        rows = [{"step": 0, "held-out CER": self.before, "model": "base"}] if self.before is not None else []
        rows += [{**c, "model": "adapted"} for c in self.curve]
        return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def _earlier_rounds(path: Path) -> tuple[list[dict], int]:
    """The curve rows of the self-training rounds done and the steps they took (none, 0: no
    such rounds). The file is written whole, once a round is over."""
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return [r for r in rows if "val_cer" in r], int(rows[-1]["steps"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return [], 0


def _complete_rows(history: Path) -> list[dict]:
    """The rows of a history.jsonl that training is still appending to: a line caught half
    written (or the file removed at the end of the run) is read on the next poll instead."""
    try:
        text = history.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "step" in row and "val_cer" in row:
            rows.append(row)
    return rows


class Teacher:
    """The Teach tab's state on the server: the collection, and one adaptation at a time."""

    def __init__(self, registry: ModelRegistry, work: WorkDirs, limits: ZipLimits,
                 collection: Collection | None = None, models_root: Path | None = None):
        self.registry, self.work, self.limits = registry, work, limits
        self.collection = collection or Collection()
        self.models_root = models_root or adapted_models_dir()
        self._busy = threading.Lock()
        # The running adaptation's "finish now" signal and progress (None between runs).
        self._running: tuple[threading.Event, Progress] | None = None

    # --- the collection ---------------------------------------------------------------------

    def save_transcription(self, image: str, page_json: dict, corrected: str) -> str:
        """The transcribed page's line crops with the (corrected) text -> the collection."""
        if not image or not page_json:
            raise UploadError("transcribe an image first, then correct its text and save it")
        # A PDF's first page, as the Transcribe tab read it (first_page).
        gray, page, name = first_page(image)[0], page_from_dict(page_json), display_name(image)
        # The text belongs to the image that was transcribed: another image put in its place
        # since would be cut by those lines' polygons and saved under their text. Its pixels
        # tell, where the transcription kept their digest; else its size and name.
        expected_key = page_json.get(IMAGE_KEY)
        if (gray.shape != (page.height, page.width) or (page.source and page.source != name)
                or (expected_key and expected_key != page_key(gray))):
            raise UploadError(f"{name} is not the image that was transcribed ({page.source or 'another image'}); "
                              "transcribe it first, then correct its text and save it")
        return self.save_page(gray, page, corrected, name)

    def save_page(self, gray, page: Page, corrected: str, name: str) -> str:
        """A page as read (its lines' polygons) with the user's corrected text -> the collection."""
        key = page_key(gray)
        replacing = self.collection.saved_pages(key)
        saved = self.collection.save_page(gray, apply_corrections(page, corrected or ""), name, key)
        if not saved:
            raise UploadError("no line with text to save: type the text of each line first")
        again = f", replacing the earlier save of this page ({', '.join(replacing)})" if replacing else ""
        return f"Saved {counted(len(saved), 'line')}{again}. {self.summary()}"

    def summary(self) -> str:
        lines = self.collection.lines()
        pages = len({line.page for line in lines})
        return f"Your collection: {len(lines)} training line(s) on {pages} page(s), in {self.collection.lines_dir}."

    def table(self) -> list[list[str]]:
        return [[line.id, line.text] for line in self.collection.lines()]

    def remove(self, ids_text: str) -> str:
        ids = [i.strip() for i in re.split(r"[,\n]", ids_text or "") if i.strip()]
        if not ids:
            raise UploadError("name the lines (page/line) or pages to remove, separated by commas")
        try:
            removed = self.collection.remove(ids)
        except KeyError as exc:
            raise UploadError(str(exc.args[0])) from None
        # The run read every line's pixels when it started (adapt.open_lines): it goes on with them.
        running = (" The adaptation running now goes on with the lines as they were when it started."
                   if self._running is not None else "")
        return f"Removed {removed} line(s). {self.summary()}{running}"

    # --- adaptation ---------------------------------------------------------------------------

    def data_for(self, source: str, archive: str | None) -> tuple[str, Path | None, Path]:
        """(data set spec, work folder to remove after, the folder every file it uses must lie
        in) for the chosen source: an upload's PAGE XML or manifest naming a file elsewhere on
        the server (an absolute path, ../) is refused, as the Evaluate tab refuses it."""
        if source == ZIP_SOURCE:
            if not archive:
                raise UploadError("upload a zip of PAGE XML + page images, or of line images with .gt.txt files")
            work = self.work.new("teach", held=True)
            try:
                extract_data_zip(archive, work / "data", self.limits)
                return str(dataset_root(work / "data", display_name(archive))), work, work / "data"
            except BaseException:
                self._drop(work)  # a refused zip's unpacked part would sit on the disk for an hour
                raise
        self.collection.repair()
        if self.collection.count() == 0:
            raise UploadError("your collection is empty: save corrected lines from the Transcribe tab first")
        return str(self.collection.lines_dir), None, self.collection.lines_dir

    def new_model_folder(self, name: str) -> Path:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", name or "").strip("-.")[:60] or "my-hand"
        folder, k = self.models_root / stem, 2
        while folder.exists():
            folder, k = self.models_root / f"{stem}-{k}", k + 1
        return folder

    def unlabeled_inputs(self, files: list[str], work: Path) -> list[str]:
        """Uploaded uncorrected pages or lines of the hand (images, PDFs, TIFFs, zips of them) as
        `hwr adapt --unlabeled` inputs: zips unpacked into the run's work folder."""
        inputs = []
        for k, upload in enumerate(files):
            if Path(upload).suffix.lower() == ".zip":
                extract_data_zip(upload, work / f"unlabeled-{k}", self.limits)
                inputs.append(str(work / f"unlabeled-{k}"))
            else:
                inputs.append(str(upload))
        return inputs

    def run(self, source: str, archive: str | None, base_label: str, minutes: float, name: str,
            unlabeled: list[str] | None = None, **overrides):
        """Adapt in a worker thread; yields Progress while it runs, last the finished one
        (its `result` set, and the new model registered) or one with `error` set. `unlabeled`:
        uploaded uncorrected pages of the hand to self-train on, read as the Transcribe tab reads
        (auto: an image where the segmenter finds two lines or more is read both as those lines and
        whole, and the surer reading is learnt from)."""
        minutes = _checked_minutes(minutes)
        if not self._busy.acquire(blocking=False):
            raise UploadError("an adaptation is already running on this server; wait for it to finish")
        try:
            spec, work, confined_to = self.data_for(source, archive)
            try:
                if unlabeled:
                    work = work or self.work.new("teach", held=True)
                    overrides = {"unlabeled": self.unlabeled_inputs(unlabeled, work), "unlabeled_mode": "auto",
                                 **overrides}
                out = self.new_model_folder(name)
                cfg = AdaptConfig(model=str(self.registry.path(base_label)), out=str(out), minutes=minutes,
                                  skip_bad=True, **overrides)
            except BaseException:
                self._drop(work)
                raise
            progress, finish = Progress(minutes=cfg.minutes), threading.Event()
            data_name = display_name(archive) if source == ZIP_SOURCE and archive else "your saved lines"
            thread = threading.Thread(target=self._adapt,
                                      args=(spec, cfg, progress, work, confined_to, data_name, finish), daemon=True)
            self._running = finish, progress
            thread.start()
        except BaseException:
            self._running = None
            self._busy.release()
            raise
        # From here the worker thread owns the lock and the work folder.
        while True:
            thread.join(POLL_S)
            if not thread.is_alive():
                break
            progress.read_curve(out / RUN_DIR)
            yield progress
        yield progress

    def finish_now(self) -> str:
        """End the running adaptation's training at its next step, as its minutes running out
        would: the weights so far are still checked and kept only where they read better."""
        running = self._running
        if running is None:
            raise UploadError("no adaptation is running")
        finish, progress = running
        finish.set()
        progress.finishing = True
        return progress.status()

    def _adapt(self, spec: str, cfg: AdaptConfig, progress: Progress, work: Path | None, confined_to: Path,
               data_name: str, finish: threading.Event | None = None) -> None:
        """The worker thread: adapt, offer the new model, tidy up, free the server for the next
        run. All of it here, not in the request that polls: that request ends early when its
        browser tab is closed, while the run goes on to write the model."""
        try:
            r = adapt([spec], cfg, on_progress=progress.update, confined_to=confined_to, finish_early=finish)
            self.registry.add(model_label(r.out.name, *r.deciding_cers, r.improved), r.out)
            progress.curve = [{"step": h["step"], "held-out CER": h["val_cer"]} for h in r.history]
            progress.result = r  # last: the polling request takes a result as "registered"
        except BaseException as exc:  # reported on the page by the polling request
            progress.error = _in_the_users_words(exc, confined_to, data_name)
            _remove_unfinished(Path(cfg.out))
        finally:
            self._running = None
            self._drop(work)
            self._busy.release()

    def _drop(self, work: Path | None) -> None:
        """Remove a run's work folder, held from the sweeps while the run needed it (the second
        round reads the uncorrected pages unpacked there, hours in with a long budget)."""
        _remove(work)
        if work is not None:
            self.work.release(work)


def _in_the_users_words(exc: BaseException, folder: Path, data_name: str) -> BaseException:
    """A user error whose message names the server's copy of the data (an upload unpacked in a
    temporary folder, the collection's folder) by the name the user knows it by."""
    if not isinstance(exc, (HwrError, UploadError)) or str(folder) not in str(exc):
        return exc
    return UploadError(f"{data_name}: {relative_to_upload(str(exc), folder, top=data_name)}")


def _checked_minutes(minutes) -> float:
    """The Minutes box (None when emptied; any number through the API) as a usable budget."""
    try:
        value = float(minutes)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value <= 0 or value > MAX_MINUTES:
        raise UploadError(f"minutes must be a number above 0 and at most {MAX_MINUTES}, got {minutes!r}")
    return value


def _remove_unfinished(out: Path) -> None:
    """A failed run's model folder (a new one, named for this run), unless it holds a whole
    model: its training checkpoints would stay on the disk and take the name from the next run."""
    if (out / CONFIG_FILE).is_file():
        _remove(out / RUN_DIR)
    else:
        _remove(out)


def _remove(work: Path | None) -> None:
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)


def finished_text(progress: Progress) -> str:
    r = progress.result
    if r is None:
        return ""
    # The run keeps the weights by the default reading (the search when there is one): say which.
    reading = "" if r.read_before is None else " as transcriptions read them (the language-model search)"
    verdict = (f"The adapted model reads the held-out lines better{reading}; it is selected in the model menu."
               if r.improved else f"Adapting did not read the held-out lines better{reading}, so the new model "
                                  "keeps the base model's weights (try more lines or more minutes).")
    others = ("" if r.others_before is None or not r.improved else
              f" Other hands (synthetic check lines): {r.others_before:.1%} → {r.others_after:.1%}"
              f"{'' if r.mix == 1.0 else f', with {r.mix:.0%} of the change kept to spare them'}.")
    paired = (" Read beside the base model: each line the new model is unsure of is read by both, and keeps "
              "the surer reading." if r.beside else "")
    searched = ("" if r.read_before is None else
                f" Read with the language-model search (the default decoder): {r.read_before:.1%} → "
                f"{r.read_after:.1%}.")
    return (f"**Held-out CER {r.before_cer:.1%} → {r.after_cer:.1%}** on {r.held_out_lines} held-out lines "
            f"({r.adapt_lines} learned from, {r.steps} steps, {r.minutes:.1f} min).{paired}{searched}{others} "
            f"{verdict} "
            f"Saved in `{r.out}`; its card is on the Model tab. History: `{ADAPT_HISTORY_FILE}`.")


# --- the tab ---------------------------------------------------------------------------------------

def build_teach_tab(teacher: Teacher, model_dropdown, friendly) -> None:
    """The Teach tab: the collection, the data source, base model, minutes, Adapt with a live
    held-out CER curve; the adapted model is added to (and selected in) `model_dropdown`."""
    import gradio as gr

    with gr.Tab("Teach", id="teach") as tab:
        gr.Markdown("Teach the model your handwriting: correct transcriptions on the Transcribe tab and "
                    "**Save as training lines**, then adapt a model to them here. Part of the lines is held "
                    "out to measure the CER before and after; a model that reads them no better is not used.")
        summary = gr.Markdown(teacher.summary(), elem_id="hwr-collection")
        with gr.Accordion("Saved lines", open=False):
            table = gr.Dataframe(value=teacher.table(), headers=["line", "text"], interactive=False, wrap=True,
                                 label="Saved training lines")
            with gr.Row():
                remove_ids = gr.Textbox(label="Remove lines or pages (ids from the table, comma-separated)",
                                        scale=4)
                remove = gr.Button("Remove", size="sm", scale=1)
        source = gr.Radio([COLLECTION_SOURCE, ZIP_SOURCE], value=COLLECTION_SOURCE, label="Learn from")
        archive = gr.File(label="Zip of labelled pages or lines", file_types=[".zip"], visible=False)
        with gr.Row():
            base = gr.Dropdown(teacher.registry.labels, value=teacher.registry.default_label, label="Base model")
            minutes = gr.Number(value=AdaptConfig.minutes, minimum=0.1, maximum=MAX_MINUTES, label="Minutes",
                                elem_id="hwr-adapt-minutes")
            name = gr.Textbox(value="my-hand", label="Name of the new model", elem_id="hwr-adapt-name")
        beside = gr.Checkbox(value=AdaptConfig.beside, label="Read beside the base model", elem_id="hwr-adapt-beside",
                             info="Keeps the base model next to the new one, which also reads each line the new "
                                  "one is unsure of, and keeps the surer reading: more of your hand is learnt at the "
                                  "same cost to other writing, and reading takes about 1.5 times as long.")
        with gr.Accordion("Also learn from uncorrected pages (optional)", open=False):
            gr.Markdown("Pages or lines of the same hand that no one has corrected (images, PDFs, TIFFs, or a zip "
                        "of them). The base model reads them, and the half it reads most surely is learnt from as "
                        "read: with 50 corrected lines and a few hundred uncorrected ones (and *Read beside*), "
                        "the error on a badly read synthetic hand about halved in the project's measurements.")
            unlabeled = gr.File(label="Uncorrected pages of the same hand", file_count="multiple",
                                file_types=["image", ".pdf", ".tif", ".tiff", ".zip"], elem_id="hwr-adapt-unlabeled")
        with gr.Row():
            button = gr.Button("Adapt", variant="primary", elem_id="hwr-adapt", scale=4)
            finish = gr.Button("Finish now", size="sm", elem_id="hwr-adapt-finish", scale=1)
        status = gr.Markdown(elem_id="hwr-adapt-status")
        # One series from the base model's point at step 0 through each evaluation, so the
        # first point already draws a line.
        curve = gr.LinePlot(x="step", y="held-out CER", title="Held-out CER (step 0: the base model)",
                            y_lim=[0, None], y_axis_format=".0%", label="Held-out CER")

    def refresh():
        return teacher.summary(), teacher.table()

    def drop(ids_text):
        message = teacher.remove(ids_text)
        return message, teacher.table()

    def run(source, archive, base_label, minutes, name, read_beside, uncorrected):
        for progress in teacher.run(source, archive, base_label, minutes, name, unlabeled=uncorrected or None,
                                    beside=bool(read_beside)):
            if progress.error is not None:
                raise progress.error
            if progress.result is None:
                yield progress.status(), progress.frame(), gr.skip(), gr.skip(), gr.skip()
                continue
            labels = teacher.registry.labels
            new = next(label for label, path in teacher.registry.choices.items() if path == progress.result.out)
            yield (finished_text(progress), progress.frame(), gr.update(choices=labels, value=new),
                   gr.update(choices=labels), teacher.summary())

    source.change(lambda chosen: gr.update(visible=chosen == ZIP_SOURCE), [source], [archive], api_name=False)
    # Lines are saved on the Transcribe tab: opening this tab shows the collection as it is now.
    tab.select(refresh, None, [summary, table], api_name=False)
    remove.click(friendly(drop), [remove_ids], [summary, table], api_name="remove_lines")
    # No queue: the click must reach the server while the Adapt request still streams.
    finish.click(friendly(teacher.finish_now), None, [status], api_name="finish_adapt", queue=False)
    button.click(stream_friendly(run, friendly), [source, archive, base, minutes, name, beside, unlabeled],
                 [status, curve, model_dropdown, base, summary], api_name="adapt")
    return summary, table


def stream_friendly(generator_fn, friendly):
    """`friendly` for a generator: each step's expected failures become a readable message."""
    import functools

    @functools.wraps(generator_fn)
    def wrapper(*args, **kwargs):  # kwargs: gradio's progress=gr.Progress()
        stream = generator_fn(*args, **kwargs)
        step = friendly(lambda: next(stream, StopIteration))
        try:
            while (value := step()) is not StopIteration:
                yield value
        finally:  # gradio closes this generator when the user cancels: the inner one's clean-up runs now
            stream.close()

    return wrapper
