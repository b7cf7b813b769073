"""Teach tab logic without a browser: saving a corrected transcription, naming and offering
adapted models, where teaching is allowed, and the adapt controls' starting values.

Not tested here: the adaptation itself (tests/training/test_adapt.py) and the tab's widgets at
work (tests/test_ui_browser.py).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from hwr.recognition.model import ModelConfig, load_model, read_model_config, save_model
from hwr.training.adapt import AdaptConfig
from hwr_ui.collection import Collection, page_key
from hwr_ui.models import ModelRegistry
from hwr_ui.pages import page_to_dict, transcribe_image
from hwr_ui.teach import (
    Teacher,
    build_teach_tab,
    label_of_folder,
    model_label,
    register_adapted_models,
    teaching_allowed,
)
from hwr_ui.uploads import UploadError, WorkDirs, ZipLimits

from helpers import make_untrained_model, render_line


@pytest.fixture
def teacher(tmp_path, untrained_model):
    registry = ModelRegistry(str(untrained_model))
    work = WorkDirs()
    yield Teacher(registry, work, ZipLimits(), Collection(tmp_path / "collection"), tmp_path / "models")
    work.close()


def test_saving_a_transcription_stores_the_corrected_text(teacher, tmp_path):
    image = tmp_path / "note.png"
    Image.fromarray(render_line("the cat sat")).save(image)
    recognizer = teacher.registry.get(None)
    page, _ = transcribe_image(recognizer, render_line("the cat sat"), "line", page_id="note")
    message = teacher.save_transcription(str(image), page_to_dict(page), "the cat sat\n")
    assert "Saved 1 line." in message and "1 training line(s) on 1 page(s)" in message
    assert [line.text for line in teacher.collection.lines()] == ["the cat sat"]
    again = teacher.save_transcription(str(image), page_to_dict(page), "the cat sat down\n")
    assert "replacing the earlier save of this page" in again and "1 training line(s) on 1 page(s)" in again
    assert [line.text for line in teacher.collection.lines()] == ["the cat sat down"]
    with pytest.raises(UploadError, match="transcribe an image first"):
        teacher.save_transcription(str(image), None, "x")


def test_a_corrected_batch_page_joins_the_collection(teacher, tmp_path):
    from hwr_ui.batch import collect_inputs, find_row, run_batch

    Image.fromarray(render_line("a page of the batch")).save(tmp_path / "letter.png")
    inputs = collect_inputs([tmp_path / "letter.png"], tmp_path / "work", ZipLimits())
    rows = run_batch(teacher.registry.get(None), inputs, "line", tmp_path / "out")
    row = find_row(rows, "letter.png")
    message = teacher.save_page(row.image(), row.page, "a page of the batch", row.name)
    assert "Saved 1 line." in message
    [line] = teacher.collection.lines()
    assert line.text == "a page of the batch" and line.page.endswith("letter")
    with pytest.raises(UploadError, match="2 lines but 1 lines were detected"):
        teacher.save_page(row.image(), row.page, "two\nlines", row.name)


def test_removing_unknown_lines_is_a_readable_error(teacher):
    with pytest.raises(UploadError, match="no saved line or page"):
        teacher.remove("00001-x/l001")
    with pytest.raises(UploadError, match="name the lines"):
        teacher.remove(" , ")


def test_adapting_an_empty_collection_says_what_to_do_first(teacher):
    with pytest.raises(UploadError, match="collection is empty"):
        next(teacher.run("My saved lines", None, teacher.registry.default_label, 0.1, "x"))


def test_new_model_folders_never_replace_an_earlier_one(teacher):
    first = teacher.new_model_folder("my hand!")
    first.mkdir(parents=True)
    assert first.name == "my-hand" and teacher.new_model_folder("my hand!").name == "my-hand-2"


def test_models_adapted_earlier_are_offered_with_their_figures(tmp_path, untrained_model):
    net, config = load_model(untrained_model)
    adapted = {"before_cer": 0.2, "after_cer": 0.08, "adapted_weights_kept": True}
    save_model(tmp_path / "models" / "mine", net, ModelConfig(config.arch, config.net, config.charset,
                                                              config.normalize, {"adapted": adapted}))
    make_untrained_model(tmp_path / "models" / "plain")  # not adapted: not offered as one
    # A copy being written, or set aside by a swap a kill interrupted: not offered.
    shutil.copytree(tmp_path / "models" / "mine", tmp_path / "models" / ".mine.saving-123")
    registry = ModelRegistry(str(untrained_model))
    register_adapted_models(registry, tmp_path / "models")
    assert not any(".mine" in lbl for lbl in registry.labels)
    label = model_label("mine", 0.2, 0.08, True)
    assert label == "mine (adapted: held-out CER 20.0% → 8.0%)" == label_of_folder(tmp_path / "models" / "mine")
    assert registry.path(label) == tmp_path / "models" / "mine"
    assert not any(lbl.startswith("plain") for lbl in registry.labels)
    assert read_model_config(registry.path(label)).training["adapted"]["after_cer"] == 0.08


def test_teaching_is_offered_on_loopback_servers_only():
    assert teaching_allowed("127.0.0.1") and teaching_allowed("localhost")
    assert not teaching_allowed("0.0.0.0")
    assert not teaching_allowed("127.0.0.1", share=True)  # a --share link reaches it from anywhere


def test_lines_left_out_are_said_in_the_tab_with_the_characters_why():
    """Saved lines with characters the model cannot write had been left out with a line in the
    server's log only: the tab said "5 lines to learn from" of 14 saved (a probe helper)."""
    from hwr_ui.teach import Progress

    progress = Progress()
    progress.update({"phase": "before", "before_cer": 0.3, "adapt_lines": 5, "held_out_lines": 4, "split_by": "random",
                     "left_out": {"unwritable": 4, "too_long": 1, "empty": 0}, "unwritable": "\u2603\u4e2d"})
    assert progress.lines == ("5 lines to learn from, 4 held out (by random); left out: 4 with characters the model "
                              "cannot write (\u2603 \u4e2d), 1 with more text than their image holds")
    progress.update({"phase": "before", "before_cer": 0.3, "adapt_lines": 5, "held_out_lines": 4, "split_by": "page",
                     "left_out": {"unwritable": 0, "too_long": 0, "empty": 0}, "unwritable": ""})
    assert progress.lines == "5 lines to learn from, 4 held out (by page)"
    progress.update({"phase": "before", "before_cer": 0.3, "adapt_lines": 5, "held_out_lines": 4, "split_by": "page",
                     "left_out": {"unreadable": 2, "empty": 3}, "unreadable": "p.xml:4: TextLine l1 has no Coords"})
    assert progress.lines == ("5 lines to learn from, 4 held out (by page); left out: 3 with no text, 2 that could "
                              "not be read (p.xml:4: TextLine l1 has no Coords, ...)")


def test_the_finished_message_gives_both_figures_and_the_other_hands_check(tmp_path):
    from hwr.training.adapt import AdaptResult
    from hwr_ui.teach import Progress, finished_text

    result = AdaptResult(tmp_path / "m", "base", 0.2, 0.1, True, 40, 10, "page", 300, 4.5, [], mix=0.75,
                         others_before=0.05, others_after=0.054)
    text = finished_text(Progress(result=result))
    assert "20.0% → 10.0%" in text and "5.0% → 5.4%" in text and "75% of the change kept" in text
    unchanged = AdaptResult(tmp_path / "m", "base", 0.2, 0.25, False, 40, 10, "page", 300, 4.5, [],
                            others_before=0.05, others_after=0.05)
    assert "keeps the base model's weights" in finished_text(Progress(result=unchanged))
    assert "beside" not in text
    paired = AdaptResult(tmp_path / "m", "base", 0.2, 0.1, True, 40, 10, "page", 300, 4.5, [], beside=True)
    assert "Read beside the base model" in finished_text(Progress(result=paired))
    # Kept by the search, not the greedy figures: the verdict says which reading judged.
    searched = AdaptResult(tmp_path / "m", "base", 0.2, 0.1, False, 40, 10, "page", 300, 4.5, [], read_before=0.08,
                           read_after=0.09)
    text = finished_text(Progress(result=searched))
    assert "8.0% → 9.0%" in text and "did not read the held-out lines better as transcriptions read them" in text


def test_an_adapted_folder_with_unusable_figures_is_skipped_and_the_app_still_starts(tmp_path, untrained_model):
    net, config = load_model(untrained_model)
    for name, adapted in [("no-figure", {"before_cer": None, "after_cer": 0.1, "adapted_weights_kept": True}),
                          ("no-keys", {"steps": 3}),
                          ("good", {"before_cer": 0.2, "after_cer": 0.1, "adapted_weights_kept": True}),
                          # Kept or refused by the LM search: the label gives the figures that decided.
                          ("searched", {"before_cer": 0.2, "after_cer": 0.1, "adapted_weights_kept": False,
                                        "read_before": 0.05, "read_after": 0.06})]:
        save_model(tmp_path / "models" / name, net, ModelConfig(config.arch, config.net, config.charset,
                                                                config.normalize, {"adapted": adapted}))
    # Weights cut short (a disk that filled while it was written): left off, as under models/.
    shutil.copytree(tmp_path / "models" / "good", tmp_path / "models" / "short")
    weights = tmp_path / "models" / "short" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64])
    # A folder named in Latin-1: offered, its name shown with escapes (the page cannot carry it).
    latin1 = tmp_path / "models" / os.fsdecode(b"caf\xe9")
    shutil.copytree(tmp_path / "models" / "good", latin1)
    registry = ModelRegistry(str(untrained_model))
    register_adapted_models(registry, tmp_path / "models")  # used to raise TypeError/KeyError
    adapted = [label for label in registry.labels if "adapted" in label]
    assert adapted == [model_label("caf\\udce9", 0.2, 0.1, True), model_label("good", 0.2, 0.1, True),
                       model_label("searched", 0.05, 0.06, False)]
    assert "6.0% was no better than 5.0%" in adapted[2]
    assert registry.path(adapted[0]) == latin1


def test_a_half_written_history_line_waits_for_the_next_poll(tmp_path):
    from hwr_ui.teach import Progress

    (tmp_path / "history.jsonl").write_text('{"step": 10, "val_cer": 0.5}\n{"step": 20, "val_c', encoding="utf-8")
    progress = Progress()
    progress.read_curve(tmp_path)  # used to raise JSONDecodeError, ending the page's progress
    assert progress.curve == [{"step": 10, "held-out CER": 0.5}]
    (tmp_path / "history.jsonl").unlink()
    progress.read_curve(tmp_path)  # removed at the end of the run: the curve read so far stays
    assert progress.curve == [{"step": 10, "held-out CER": 0.5}]


def test_the_curve_goes_on_across_self_training_rounds(tmp_path):
    """Each round's run starts its history.jsonl again at step 0: round 2 was drawn over round 1."""
    from hwr_ui.teach import Progress

    (tmp_path / "earlier-rounds.jsonl").write_text('{"step": 40, "val_cer": 0.4}\n{"step": 80, "val_cer": 0.3}\n'
                                                   '{"steps": 90}\n', encoding="utf-8")
    (tmp_path / "history.jsonl").write_text('{"step": 40, "val_cer": 0.25}\n', encoding="utf-8")
    progress = Progress()
    progress.read_curve(tmp_path)
    assert [c["step"] for c in progress.curve] == [40, 80, 130]


@pytest.mark.parametrize("minutes", [None, "", 0, -1, float("nan"), float("inf"), 241, "1e6"])
def test_minutes_that_are_not_a_positive_number_within_the_boxs_bound_are_a_readable_error(teacher, minutes):
    """The box holds 0.1 to 240; API clients had no bound, and a run could hold the server for days."""
    with pytest.raises(UploadError, match="minutes must be a number above 0 and at most 240"):
        next(teacher.run("My saved lines", None, teacher.registry.default_label, minutes, "x"))
    assert not teacher._busy.locked()


def _save_one_line(teacher) -> None:
    teacher.collection.save_lines([("l001", render_line("the cat sat"), "the cat sat")], "note")


def test_a_closed_page_does_not_lose_the_adapted_model_nor_allow_a_second_run(teacher, monkeypatch):
    """The request that polls ends when its browser tab closes; the run goes on. It used to
    free the server for a second run at once and never offer the model the run then wrote."""
    import threading
    import time

    from hwr.training.adapt import AdaptResult
    from hwr_ui import teach

    release = threading.Event()

    def slow_adapt(data, cfg, on_progress=None, confined_to=None, finish_early=None):
        release.wait(10)
        shutil.copytree(cfg.model, cfg.out, dirs_exist_ok=True)  # the model folder a run writes
        history = [{"step": 5, "val_cer": 0.2}]
        return AdaptResult(Path(cfg.out), cfg.model, 0.3, 0.2, True, 4, 2, "page", 5, 0.1, history)

    monkeypatch.setattr(teach, "adapt", slow_adapt)
    monkeypatch.setattr(teach, "POLL_S", 0.01)
    _save_one_line(teacher)
    stream = teacher.run("My saved lines", None, teacher.registry.default_label, 1, "mine")
    assert next(stream).result is None
    stream.close()  # the tab was closed
    with pytest.raises(UploadError, match="already running"):
        next(teacher.run("My saved lines", None, teacher.registry.default_label, 1, "other"))
    release.set()
    deadline = time.monotonic() + 10
    while teacher._busy.locked() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not teacher._busy.locked()
    assert teacher.registry.path(model_label("mine", 0.3, 0.2, True)) == teacher.models_root / "mine"


def test_finish_now_ends_the_running_adaptation_which_still_offers_its_model(teacher, monkeypatch):
    """An adaptation could not be stopped from the page: the run took all its minutes."""
    import time

    from hwr.training.adapt import AdaptResult
    from hwr_ui import teach

    seen = {}

    def adapt_until_asked(data, cfg, on_progress=None, confined_to=None, finish_early=None):
        seen["asked"] = finish_early.wait(10)  # training ends at its next step once set
        shutil.copytree(cfg.model, cfg.out, dirs_exist_ok=True)
        history = [{"step": 5, "val_cer": 0.2}]
        return AdaptResult(Path(cfg.out), cfg.model, 0.3, 0.2, True, 4, 2, "page", 5, 0.1, history)

    monkeypatch.setattr(teach, "adapt", adapt_until_asked)
    monkeypatch.setattr(teach, "POLL_S", 0.01)
    with pytest.raises(UploadError, match="no adaptation is running"):
        teacher.finish_now()
    _save_one_line(teacher)
    [other] = teacher.collection.save_lines([("l002", render_line("a dog ran"), "a dog ran")], "other")
    stream = teacher.run("My saved lines", None, teacher.registry.default_label, 240, "mine")
    assert next(stream).status().startswith("Adapting")
    # Lines removed meanwhile: the run read them when it started, and the message says it goes on with them.
    assert "goes on with the lines as they were when it started" in teacher.remove(other.id)
    started = time.monotonic()
    assert teacher.finish_now().startswith("Finishing")
    last = list(stream)[-1]
    assert seen["asked"] and time.monotonic() - started < 10
    assert last.result is not None and last.error is None
    assert teacher.registry.path(model_label("mine", 0.3, 0.2, True)) == teacher.models_root / "mine"
    with pytest.raises(UploadError, match="no adaptation is running"):  # nothing left to finish
        teacher.finish_now()


def test_a_run_that_fails_after_training_leaves_no_checkpoints_nor_takes_the_name(teacher, monkeypatch):
    import time

    from hwr_ui import teach

    def failing_adapt(data, cfg, on_progress=None, confined_to=None, finish_early=None):
        (Path(cfg.out) / teach.RUN_DIR / "last").mkdir(parents=True)  # what training leaves
        raise RuntimeError("the forgetting check failed")

    monkeypatch.setattr(teach, "adapt", failing_adapt)
    monkeypatch.setattr(teach, "POLL_S", 0.01)
    _save_one_line(teacher)
    last = list(teacher.run("My saved lines", None, teacher.registry.default_label, 1, "mine"))[-1]
    deadline = time.monotonic() + 10
    while teacher._busy.locked() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(last.error, RuntimeError) and not (teacher.models_root / "mine").exists()
    assert teacher.new_model_folder("mine").name == "mine"  # the next run may take the name


def test_a_zip_that_cannot_be_used_leaves_no_unpacked_files(teacher, tmp_path):
    from hwr_ui.teach import ZIP_SOURCE

    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UploadError):
        next(teacher.run(ZIP_SOURCE, str(tmp_path / "bad.zip"), teacher.registry.default_label, 1, "x"))
    assert not any(teacher.work.root.iterdir()) and not teacher._busy.locked()


def test_a_zip_inside_an_uploaded_zip_is_refused_by_name_for_either_use(teacher, tmp_path):
    import zipfile

    from hwr_ui.teach import ZIP_SOURCE

    with zipfile.ZipFile(tmp_path / "inner.zip", "w") as z:
        z.writestr("l.gt.txt", "a line")
    with zipfile.ZipFile(tmp_path / "outer.zip", "w") as z:
        z.write(tmp_path / "inner.zip", "pages/inner.zip")
    with pytest.raises(UploadError, match="outer.zip: pages/inner.zip: a zip inside a zip is not unpacked"):
        next(teacher.run(ZIP_SOURCE, str(tmp_path / "outer.zip"), teacher.registry.default_label, 1, "x"))
    with pytest.raises(UploadError, match="outer.zip: pages/inner.zip: a zip inside a zip"):
        teacher.unlabeled_inputs([str(tmp_path / "outer.zip")], tmp_path / "work")
    assert not any(teacher.work.root.iterdir()) and not teacher._busy.locked()


def test_an_uploaded_zip_is_read_confined_to_its_unpacked_folder(teacher, tmp_path, monkeypatch):
    import zipfile

    from hwr_ui.teach import ZIP_SOURCE

    Image.fromarray(render_line("a line")).save(tmp_path / "l.png")
    with zipfile.ZipFile(tmp_path / "lines.zip", "w") as z:
        z.write(tmp_path / "l.png", "lines/l.png")
        z.writestr("lines/l.gt.txt", "a line\n")
    spec, work, confined_to = teacher.data_for(ZIP_SOURCE, str(tmp_path / "lines.zip"))
    assert confined_to == work / "data" and Path(spec).is_relative_to(confined_to)
    teacher._drop(work)
    # And a run hands that folder to adapt (a review: only the saved lines' route was checked).
    from hwr.training.adapt import AdaptResult
    from hwr_ui import teach

    handed = []

    def fake_adapt(data, cfg, on_progress=None, confined_to=None, finish_early=None):
        handed.append((Path(data[0]), confined_to))
        shutil.copytree(cfg.model, cfg.out, dirs_exist_ok=True)
        return AdaptResult(Path(cfg.out), cfg.model, 0.3, 0.2, True, 1, 1, "random", 5, 0.1, [])

    monkeypatch.setattr(teach, "adapt", fake_adapt)
    monkeypatch.setattr(teach, "POLL_S", 0.01)
    last = list(teacher.run(ZIP_SOURCE, str(tmp_path / "lines.zip"), teacher.registry.default_label, 1, "z"))[-1]
    assert last.error is None
    [(data, confined_to)] = handed
    assert confined_to.name == "data" and data.is_relative_to(confined_to)


def test_uploaded_uncorrected_pages_are_self_trained_on_and_their_unpacked_zips_removed(teacher, tmp_path,
                                                                                           monkeypatch):
    import time
    import zipfile

    from hwr.training.adapt import AdaptResult
    from hwr_ui import teach

    seen = []

    def fake_adapt(data, cfg, on_progress=None, confined_to=None, finish_early=None):
        seen.append((cfg, [sorted(p.name for p in Path(u).iterdir()) if Path(u).is_dir() else Path(u).name
                           for u in cfg.unlabeled]))
        # The saved lines are read confined to the collection (a zip upload's to its unpacked folder).
        assert Path(data[0]) == confined_to == teacher.collection.lines_dir
        shutil.copytree(cfg.model, cfg.out, dirs_exist_ok=True)
        history = [{"step": 5, "val_cer": 0.2}]
        return AdaptResult(Path(cfg.out), cfg.model, 0.3, 0.2, True, 4, 2, "page", 5, 0.1, history)

    monkeypatch.setattr(teach, "adapt", fake_adapt)
    monkeypatch.setattr(teach, "POLL_S", 0.01)
    _save_one_line(teacher)
    Image.fromarray(render_line("a page")).save(tmp_path / "scan.png")
    with zipfile.ZipFile(tmp_path / "more.zip", "w") as z:
        z.writestr("p1.png", (tmp_path / "scan.png").read_bytes())
    last = list(teacher.run("My saved lines", None, teacher.registry.default_label, 1, "mine",
                            unlabeled=[str(tmp_path / "scan.png"), str(tmp_path / "more.zip")]))[-1]
    assert last.error is None and last.result is not None
    cfg, given = seen[0]
    assert given == ["scan.png", ["p1.png"]] and cfg.unlabeled_mode == "auto"
    deadline = time.monotonic() + 10
    while teacher._busy.locked() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(teacher.work.root.iterdir())  # the unpacked zip is gone with the run
    # A zip that cannot be used: a readable error, nothing left unpacked, the server free.
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(UploadError):
        next(teacher.run("My saved lines", None, teacher.registry.default_label, 1, "x",
                         unlabeled=[str(tmp_path / "bad.zip")]))
    assert not any(teacher.work.root.iterdir()) and not teacher._busy.locked()


def test_saving_a_transcription_with_another_image_in_its_place_is_refused(teacher, tmp_path):
    note, other = tmp_path / "note.png", tmp_path / "other.png"
    Image.fromarray(render_line("the cat sat")).save(note)
    Image.fromarray(render_line("a different and longer line")).save(other)
    page, _ = transcribe_image(teacher.registry.get(None), render_line("the cat sat"), "line", page_id="note",
                               source="note.png")
    with pytest.raises(UploadError, match="other.png is not the image that was transcribed"):
        teacher.save_transcription(str(other), page_to_dict(page), "the cat sat")
    assert teacher.collection.count() == 0  # its crops used to be saved under the note's text
    assert "Saved 1 line." in teacher.save_transcription(str(note), page_to_dict(page), "the cat sat")


def test_a_second_webcam_shot_of_the_same_name_and_size_is_not_saved_under_the_first_ones_text(teacher,
                                                                                               tmp_path):
    """The browser names every webcam capture and pasted image "image.png"; two shots of one
    camera share a name and a size, so only their pixels tell them apart."""
    first, second = tmp_path / "one" / "image.png", tmp_path / "two" / "image.png"
    shot = render_line("the cat sat")
    for path, pixels in ((first, shot), (second, 255 - shot)):
        path.parent.mkdir()
        Image.fromarray(pixels).save(path)
    page, _ = transcribe_image(teacher.registry.get(None), shot, "line", page_id="image", source="image.png")
    transcribed = page_to_dict(page, page_key(shot))
    with pytest.raises(UploadError, match="image.png is not the image that was transcribed"):
        teacher.save_transcription(str(second), transcribed, "the cat sat")
    assert teacher.collection.count() == 0
    assert "Saved 1 line." in teacher.save_transcription(str(first), transcribed, "the cat sat")


def test_the_adapt_controls_start_at_hwr_adapts_own_defaults(teacher):
    import gradio as gr

    with gr.Blocks() as tab:
        build_teach_tab(teacher, gr.Dropdown(["base"]), friendly=lambda fn: fn)
    controls = {block.elem_id: block for block in tab.blocks.values() if getattr(block, "elem_id", None)}
    assert controls["hwr-adapt-minutes"].value == AdaptConfig.minutes
    assert controls["hwr-adapt-beside"].value is AdaptConfig.beside


def test_what_an_adaptation_stopped_with_the_server_left_is_removed_at_the_next_start(tmp_path, untrained_model):
    """The run's thread died with the server, its clean-up unrun: the folder (checkpoints and the
    claim) stayed, hid nothing useful, and took its name from the next run."""
    import os

    from hwr.training.adapt import RUN_DIR, RUN_OWNER

    models = tmp_path / "models"
    dead = models / "my-hand"
    (dead / RUN_DIR).mkdir(parents=True)
    (dead / RUN_OWNER).write_text("999999999", encoding="utf-8")  # no such process
    running = models / "running"
    (running / RUN_DIR).mkdir(parents=True)
    (running / RUN_OWNER).write_text(str(os.getppid()), encoding="utf-8")  # a process that runs
    other = models / "notes"
    other.mkdir()
    (other / "readme.txt").write_text("mine")
    register_adapted_models(ModelRegistry(str(untrained_model)), models)
    assert not dead.exists() and running.exists() and other.exists()


def test_a_pdf_transcribed_on_the_transcribe_tab_is_saved_from_its_first_page(teacher, tmp_path):
    """Its box now passes a PDF on (Pillow's check had refused it), and saving read the file as
    an image, which a PDF is not (a probe helper)."""
    from gradio.components.image import ImageData

    from hwr_ui.app import PageImage
    from hwr_ui.pages import first_page

    pdf = tmp_path / "scan.pdf"
    Image.fromarray(render_line("the cat sat")).convert("RGB").save(pdf, resolution=150)
    box = PageImage(type="filepath", image_mode=None, render=False)
    assert box.preprocess(ImageData(path=str(pdf), orig_name="scan.pdf")) == str(pdf)
    gray = first_page(str(pdf))[0]
    page, _ = transcribe_image(teacher.registry.get(None), gray, "line", page_id="scan", source="scan.pdf")
    assert "Saved 1 line." in teacher.save_transcription(str(pdf), page_to_dict(page, page_key(gray)), "the cat sat")


def test_an_adapt_error_names_the_upload_not_the_servers_copy_of_it(teacher, tmp_path, monkeypatch):
    """The message had been full of /tmp/hwr-ui-.../teach-.../data/... paths (a probe helper)."""
    import zipfile

    from hwr.datasets import DatasetError
    from hwr_ui import teach
    from hwr_ui.teach import ZIP_SOURCE

    with zipfile.ZipFile(tmp_path / "mine.zip", "w") as z:
        z.writestr("lines/l.gt.txt", "a line\n")

    def failing(data, cfg, on_progress=None, confined_to=None, finish_early=None):
        raise DatasetError(Path(confined_to) / "lines" / "l.gt.txt", "no image beside it")

    monkeypatch.setattr(teach, "adapt", failing)
    monkeypatch.setattr(teach, "POLL_S", 0.01)
    last = list(teacher.run(ZIP_SOURCE, str(tmp_path / "mine.zip"), teacher.registry.default_label, 1, "z"))[-1]
    assert isinstance(last.error, UploadError) and str(last.error) == "mine.zip: lines/l.gt.txt: no image beside it"
