"""hwr adapt: the adapt/held-out split, the never-worse rule, the model folder it writes, the
augmentation of real crops and the command line.

Runs on a tiny untrained CRNN for a few steps: it checks what adapt does with weights and
files, not how much it helps a hand (bench/bench_adapt.py measures that).
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from hwr.datasets import DatasetError
from hwr.errors import ConfigError
from hwr.recognition.charset import Charset
from hwr.recognition.decode import make_decoder
from hwr.recognition.imaging import pixels_digest
from hwr.recognition.model import ADAPT_HISTORY_FILE, MODEL_CARD_FILE, Recognizer, load_model
from hwr.records import LineSample, Recognition
from hwr.scoring.metrics import ErrorCounts
from hwr.training import adapt as adapt_module
from hwr.training.adapt import AdaptConfig, adapt, budget_for
from hwr.training.adapt_data import (
    MAX_WORK_HEIGHT,
    MAX_WORK_WIDTH,
    READING_OF,
    SOURCE_DIGEST,
    WHOLE_READING,
    AdaptLines,
    at_most,
    augment_real_line,
    check_charset,
    check_texts,
    cut_words,
    ink_of,
    loaded,
    pseudo_labelled,
    real_line_config,
    recombine,
    sample_whole_images,
    split_lines,
    unlabeled_lines,
    without_repeats,
)

from helpers import LINE_TEXTS, make_untrained_model, page_image, render_line

REPO = Path(__file__).resolve().parents[2]


def samples(n: int, pages: int | None = None) -> list[LineSample]:
    return [LineSample(id=f"l{i:03d}", text=LINE_TEXTS[i % len(LINE_TEXTS)], image=render_line("x"),
                       meta={"page": f"p{i % pages}"} if pages else {}) for i in range(n)]


def write_pairs(folder: Path, n: int = 20, pages: int = 0) -> Path:
    for i in range(n):
        sub = folder / f"page{i % pages}" if pages else folder
        sub.mkdir(parents=True, exist_ok=True)
        text = LINE_TEXTS[i % len(LINE_TEXTS)]
        # Another margin each time a text comes round again: no two lines are copies (adapt
        # uses a repeated line once).
        Image.fromarray(render_line(text, pad=8 + i // len(LINE_TEXTS))).save(sub / f"l{i:03d}.png")
        (sub / f"l{i:03d}.gt.txt").write_text(text + "\n", encoding="utf-8")
    return folder


def quick(tmp_path: Path, model: Path, **overrides) -> AdaptConfig:
    """A few steps, no rehearsal fonts to load, no loader processes: seconds, not minutes."""
    settings = dict(model=str(model), out=str(tmp_path / "adapted"), minutes=1.0, max_steps=4, val_every=2,
                    batch_size=4, rehearsal=0.0, workers=0, threads=1, check_lines=4)
    return AdaptConfig(**{**settings, **overrides})


def fake_cer(base: Path, before: float, after: float):
    """held_out_counts that reads `before` for the base model and `after` for any other."""
    def counts(recognizer, lines, batch_size=16):
        cer = before if Path(recognizer.path).resolve() == base.resolve() else after
        return ErrorCounts(char_errors=round(cer * 1000), chars=1000, lines=len(lines))
    return counts


# --- split -------------------------------------------------------------------------------------

def test_split_is_deterministic_and_independent_of_input_order():
    lines = samples(30)
    a = split_lines(lines, 0.2, 4, seed=3)
    b = split_lines(list(reversed(lines)), 0.2, 4, seed=3)
    assert [s.id for s in a.held_out] == [s.id for s in b.held_out]
    assert len(a.held_out) == 6 and len(a.adapt) == 24 and a.by == "line"
    assert {s.id for s in a.held_out} != {s.id for s in split_lines(lines, 0.2, 4, seed=4).held_out}


def test_split_holds_out_whole_pages_when_lines_name_their_page():
    split = split_lines(samples(40, pages=8), 0.2, 4, seed=1)
    assert split.by == "page"
    held_pages = {s.meta["page"] for s in split.held_out}
    assert held_pages and not held_pages & {s.meta["page"] for s in split.adapt}
    assert len(split.held_out) == 5 * len(held_pages)


def test_a_line_whose_page_is_unknown_is_adapted_on_and_the_rest_still_split_by_page():
    """One such line had turned the whole split to random lines: held-out lines then shared
    pages with the lines learnt from, and the "after" CER read pages the model had seen."""
    stray = LineSample(id="zz-stray", text="a stray line", image=render_line("x"), meta={})
    split = split_lines(samples(40, pages=8) + [stray], 0.2, 4, seed=1)
    assert split.by == "page" and stray in split.adapt
    held_pages = {s.meta["page"] for s in split.held_out}
    assert held_pages and not held_pages & {s.meta.get("page") for s in split.adapt}


def test_split_falls_back_to_lines_when_one_page_holds_everything():
    split = split_lines(samples(20, pages=1), 0.2, 4, seed=1)
    assert split.by == "line" and len(split.held_out) == 4


def test_split_refuses_too_few_lines():
    with pytest.raises(ConfigError, match="at least 6"):
        split_lines(samples(5), 0.2, 4, seed=1)


def test_a_line_given_twice_is_used_once_so_it_cannot_be_both_learned_and_held_out(tmp_path, caplog):
    data = write_pairs(tmp_path / "hand", n=20, pages=4)
    lines = adapt_module.open_lines([str(data), str(data)], skip_bad=False)  # the folder named twice
    assert len(lines) == 20 and "20 line(s) given more than once" in caplog.text
    lines = adapt_module.open_lines([str(data), str(data / "page2")], skip_bad=False)
    assert len(lines) == 20
    split = split_lines(lines, 0.2, 4, seed=1)
    held = {(s.text, s.image.tobytes()) for s in split.held_out}
    assert not held & {(s.text, s.image.tobytes()) for s in split.adapt}
    # The same pixels under another text are another line (a corrected transcription is not).
    same_pixels = [LineSample("a", "one", render_line("x")), LineSample("b", "two", render_line("x"))]
    assert len(without_repeats(same_pixels)) == 2


# --- budget and augmentation -------------------------------------------------------------------

def test_fewer_lines_get_more_passes_each():
    cfg = AdaptConfig()
    small, large = budget_for(20, cfg), budget_for(200, cfg)
    real_per_step = cfg.batch_size * (1 - cfg.rehearsal)
    assert small.max_steps * real_per_step / 20 > large.max_steps * real_per_step / 200
    assert not small.freeze_conv and not large.freeze_conv
    # The recurrent layers alone take a larger rate than the whole network.
    assert budget_for(20, AdaptConfig(freeze_conv=True)).lr > small.lr
    given = budget_for(20, AdaptConfig(max_steps=7, lr=1e-5, freeze_conv=True))
    assert (given.max_steps, given.lr, given.freeze_conv) == (7, 1e-5, True)


def test_more_lines_take_a_larger_rate():
    """The issue asks for the LR from the data size: 16 lines read best at 5e-4, 40 and 160 at 1e-3
    (bench_adapt.py; hwr.training.adapt, LR_FEW_LINES)."""
    rates = [budget_for(lines, AdaptConfig()).lr for lines in (4, 16, 25, 40, 160, 2000)]
    assert rates[0] == rates[1] == pytest.approx(5e-4) and rates[3] == rates[4] == rates[5] == pytest.approx(1e-3)
    assert 5e-4 < rates[2] < 1e-3
    assert {budget_for(lines, AdaptConfig(freeze_conv=True)).lr for lines in (4, 40, 2000)} == {1e-3}


def test_augmented_real_line_keeps_the_ink_and_varies_it_reproducibly():
    gray = render_line("hello world", size=32)
    cfg = real_line_config()
    a = augment_real_line(gray, np.random.default_rng(5), cfg)
    b = augment_real_line(gray, np.random.default_rng(5), cfg)
    c = augment_real_line(gray, np.random.default_rng(6), cfg)
    assert a.dtype == np.uint8 and a.ndim == 2
    assert np.array_equal(a, b) and not (a.shape == c.shape and np.array_equal(a, c))
    dark = np.count_nonzero(a < 128)
    assert 0.3 < dark / np.count_nonzero(gray < 128) < 3.0  # ink neither vanished nor smeared


def test_a_line_wider_than_the_warp_takes_is_shrunk_whole_not_a_traceback():
    gray = np.full((16, 34_000), 255, np.uint8)  # a strip as wide as no warp (cv2.remap) takes
    gray[4:12, ::11] = 0
    out = augment_real_line(gray, np.random.default_rng(0), real_line_config())
    assert out.dtype == np.uint8 and np.count_nonzero(out < 128) > 0
    assert at_most(gray).shape == (8, MAX_WORK_WIDTH)  # its proportions kept
    assert at_most(np.zeros((300, 600), np.uint8)).shape == (MAX_WORK_HEIGHT, 224)


def test_adapt_lines_mix_user_lines_and_rehearsal_lines_by_index():
    lines = samples(6)
    stream = AdaptLines(lines, size=40, rehearsal=0.5, augment_prob=1.0, seed=2, charset=None)
    first = [stream[i] for i in range(40)]
    again = [stream[i] for i in range(40)]
    user = [s for s in first if "#aug" in s.id]
    assert 8 < len(user) < 32  # about half of each kind
    assert all(s.text in LINE_TEXTS for s in user)
    assert [s.text for s in first] == [s.text for s in again]


def test_ink_is_found_against_the_paper_around_it_not_shadows_or_grain():
    rng = np.random.default_rng(0)
    h, w = 60, 300
    shadow = np.linspace(150, 245, w, dtype=np.float32)[None, :].repeat(h, 0)  # a phone photo's dark edge
    gray = shadow + rng.normal(0, 6, (h, w))
    gray[20:40, 30:33] -= 120  # two strokes, one in the shadow and one in the light
    gray[20:40, 250:253] -= 120
    coverage = ink_of(np.clip(gray, 0, 255).astype(np.uint8))
    assert coverage[25:35, 30:33].min() > 127 and coverage[25:35, 250:253].min() > 127
    paper = coverage.copy()
    paper[18:42, 28:35] = paper[18:42, 248:255] = 0
    assert np.count_nonzero(paper) < 0.01 * paper.size


SHIPPED = REPO / "models" / "hwr-en-small"


@pytest.mark.skipif(not (SHIPPED / "model.safetensors").is_file(), reason="needs the shipped model")
def test_words_are_cut_in_the_gaps_where_the_model_aligns_the_spaces():
    text = "the quick brown fox jumps"
    gray = render_line(text, size=32)
    [words] = cut_words(Recognizer.load(SHIPPED, device="cpu"), [LineSample("l", text, gray)])
    assert [w.text for w in words] == text.split()
    assert sum(w.coverage.shape[1] for w in words) == gray.shape[1]  # the pieces tile the line
    ink_columns = np.count_nonzero(gray < 128, axis=0)
    x = 0
    for word in words[:-1]:
        x += word.coverage.shape[1]
        assert ink_columns[x] == 0, f"cut after {word.text!r} at x={x} goes through ink"


def test_recombined_lines_are_the_users_words_in_new_orders(tmp_path):
    texts = ["the cat sat", "on a mat today"]
    # Any network aligns a text it is given; an untrained one just puts the cuts anywhere.
    untrained = Recognizer.load(make_untrained_model(tmp_path / "tiny"), device="cpu")
    words = cut_words(untrained, [LineSample(str(k), t, render_line(t)) for k, t in enumerate(texts)])
    cfg = real_line_config()
    made = [recombine(words, np.random.default_rng(seed), cfg) for seed in range(12)]
    vocabulary = {w for t in texts for w in t.split()}
    for image, text in made:
        assert image.dtype == np.uint8 and np.count_nonzero(image < 128) > 0
        assert set(text.split()) <= vocabulary and len(text.split()) in (3, 4)
    assert len({text for _, text in made}) > 6  # new lines, not the two old ones
    image, text = recombine(words, np.random.default_rng(3), cfg)
    assert text == made[3][1] and np.array_equal(image, made[3][0])
    stream = AdaptLines(samples(4), size=20, rehearsal=0.0, augment_prob=1.0, seed=2, charset=None,
                        words=words, recombine=1.0)
    assert all(stream[i].id.startswith("words#") for i in range(20))
    wide = [[replace(w, coverage=np.tile(w.coverage, (1, 250))) for w in line] for line in words]
    for seed in range(6):  # words from lines too wide to warp side by side
        image, text = recombine(wide, np.random.default_rng(seed), cfg)
        # Shrunk to fit, the strokes go faint but stay darker than the paper.
        assert image.shape[1] < 32_767 and np.count_nonzero(image < np.median(image) - 40) > 0


# --- the run ---------------------------------------------------------------------------------------

def test_adapted_model_folder_is_complete_and_loads(tmp_path, monkeypatch):
    base = make_untrained_model(tmp_path / "base")
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer(base, before=0.5, after=0.2))
    result = adapt([str(write_pairs(tmp_path / "pairs", 20, pages=5))], quick(tmp_path, base))
    out = tmp_path / "adapted"
    assert result.improved and result.split_by == "page" and result.adapt_lines + result.held_out_lines == 20
    # Read beside the base model by default: its weights, unchanged, in beside/.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", "model.safetensors", MODEL_CARD_FILE, ADAPT_HISTORY_FILE, "beside"])
    recognizer = Recognizer.load(out)
    assert result.beside and recognizer.beside is not None
    assert len(recognizer.recognize([render_line("the cat sat")])) == 1
    adapted = recognizer.config.training["adapted"]
    assert adapted["before_cer"] == 0.5 and adapted["after_cer"] == 0.2 and adapted["adapted_weights_kept"]
    card = (out / MODEL_CARD_FILE).read_text(encoding="utf-8")
    for fact in ("`base`", "20 labelled lines", "50.00%", "20.00%", "minutes", "the adapted weights"):
        assert fact in card
    # This ASCII model is read by default with the LM search: the card says how that reads too.
    assert (result.read_before, result.read_after) == (0.5, 0.2) and adapted["read_after"] == 0.2
    assert "Read as `hwr transcribe` reads by default (a beam search with the shipped character LM; what the run " \
           "chose the weights by): 50.00% before, 20.00% after" in card
    history = [json.loads(line) for line in (out / ADAPT_HISTORY_FILE).read_text().splitlines()]
    assert history and history[-1]["step"] == result.steps <= 4


def test_never_ships_a_model_worse_than_the_base(tmp_path, monkeypatch):
    base = make_untrained_model(tmp_path / "base")
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer(base, before=0.3, after=0.4))
    result = adapt([str(write_pairs(tmp_path / "pairs"))], quick(tmp_path, base, lr=0.05))
    out = tmp_path / "adapted"
    assert not result.improved and result.shipped_cer == 0.3
    assert (out / "model.safetensors").read_bytes() == (base / "model.safetensors").read_bytes()
    assert "base model's weights unchanged" in (out / MODEL_CARD_FILE).read_text(encoding="utf-8")
    # Whatever blend read best, none of the change is kept, and nothing says a blend was.
    monkeypatch.setattr(adapt_module, "choose_mix", lambda *args: (0.5, 0.35, 0.5))
    result = adapt([str(write_pairs(tmp_path / "pairs"))], quick(tmp_path, base, lr=0.05, overwrite=True))
    assert not result.improved and result.mix == 0.0
    assert "change kept" not in (out / MODEL_CARD_FILE).read_text(encoding="utf-8")
    assert Recognizer.load(out).config.training["adapted"]["mix"] == 0.0


def fake_cer_by_reading(base: Path, greedy: tuple[float, float], search: tuple[float, float]):
    """held_out_counts reading (before, after) CERs for the base and any other model: `greedy`
    read greedily, `search` with any other decoder."""
    def counts(recognizer, lines, batch_size=16):
        before, after = greedy if recognizer.decoder.name == "greedy" else search
        cer = before if Path(recognizer.path).resolve() == base.resolve() else after
        return ErrorCounts(char_errors=round(cer * 1000), chars=1000, lines=len(lines))
    return counts


def test_the_default_reading_decides_whether_the_adapted_weights_are_kept(tmp_path, monkeypatch):
    base = make_untrained_model(tmp_path / "base")
    pairs = str(write_pairs(tmp_path / "pairs"))
    # Better read greedily, worse as the commands read (the LM search): the base weights stay.
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer_by_reading(base, (0.5, 0.2), (0.1, 0.12)))
    result = adapt([pairs], quick(tmp_path, base))
    assert not result.improved and (result.after_cer, result.read_after) == (0.2, 0.12)
    assert (tmp_path / "adapted" / "model.safetensors").read_bytes() == (base / "model.safetensors").read_bytes()
    # Worse greedily, better with the search: the adapted weights are kept.
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer_by_reading(base, (0.2, 0.25), (0.1, 0.08)))
    assert adapt([pairs], quick(tmp_path, base, overwrite=True)).improved
    # A tie with the search goes to the greedy figures.
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer_by_reading(base, (0.2, 0.15), (0.1, 0.1)))
    assert adapt([pairs], quick(tmp_path, base, overwrite=True)).improved
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer_by_reading(base, (0.2, 0.2), (0.1, 0.1)))
    assert not adapt([pairs], quick(tmp_path, base, overwrite=True)).improved


def test_beside_keeps_the_base_model_in_the_folder_and_a_later_run_without_it_removes_it(tmp_path, monkeypatch):
    base = make_untrained_model(tmp_path / "base")
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer(base, before=0.5, after=0.2))
    result = adapt([str(write_pairs(tmp_path / "pairs"))], quick(tmp_path, base, beside=True))
    out = tmp_path / "adapted"
    assert result.beside and (out / "beside" / "model.safetensors").read_bytes() == \
        (base / "model.safetensors").read_bytes()
    assert Recognizer.load(out).beside is not None
    assert "`beside/` holds `base` unchanged" in (out / MODEL_CARD_FILE).read_text(encoding="utf-8")
    # Into the same folder without --beside: the old base copy must not pair with the new weights.
    result = adapt([str(write_pairs(tmp_path / "pairs"))], quick(tmp_path, base, overwrite=True, beside=False))
    assert not result.beside and not (out / "beside").exists() and Recognizer.load(out).beside is None


def test_adapting_a_pair_again_keeps_the_model_it_started_from_beside(tmp_path, monkeypatch):
    base = make_untrained_model(tmp_path / "base")
    original = (base / "model.safetensors").read_bytes()
    pairs = str(write_pairs(tmp_path / "pairs"))
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer(base, before=0.5, after=0.2))
    adapt([pairs], quick(tmp_path, base, beside=True))
    pair = tmp_path / "adapted"
    # More corrected lines later: the pair adapted again, --beside. The new network is read beside
    # the original model, not beside the first adaptation (a pair of pairs is no model).
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer(pair, before=0.5, after=0.2))
    again = adapt([pairs], quick(tmp_path, pair, beside=True, out=str(tmp_path / "again"), lr=0.01))
    assert again.improved and again.beside
    assert (tmp_path / "again" / "beside" / "model.safetensors").read_bytes() == original
    assert (tmp_path / "again" / "model.safetensors").read_bytes() != (pair / "model.safetensors").read_bytes()
    card = (tmp_path / "again" / MODEL_CARD_FILE).read_text(encoding="utf-8")
    assert "holds the model `adapted` was adapted from" in card
    loaded = Recognizer.load(tmp_path / "again")
    assert loaded.beside is not None and loaded.beside.state_dict().keys() == loaded.net.state_dict().keys()
    # When the pair stays better, the output is the pair as it was: both networks.
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer(pair, before=0.2, after=0.5))
    kept = adapt([pairs], quick(tmp_path, pair, out=str(tmp_path / "kept")))
    assert not kept.improved
    assert (tmp_path / "kept" / "beside" / "model.safetensors").read_bytes() == original
    assert (tmp_path / "kept" / "model.safetensors").read_bytes() == (pair / "model.safetensors").read_bytes()


def test_beside_is_not_written_when_the_base_weights_are_kept(tmp_path, monkeypatch):
    base = make_untrained_model(tmp_path / "base")
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer(base, before=0.3, after=0.4))
    result = adapt([str(write_pairs(tmp_path / "pairs"))], quick(tmp_path, base, beside=True))
    assert not result.improved and not result.beside and not (tmp_path / "adapted" / "beside").exists()


def test_freeze_conv_trains_only_the_recurrent_and_output_layers(tmp_path, monkeypatch):
    base = make_untrained_model(tmp_path / "base")
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer(base, before=0.5, after=0.2))
    adapt([str(write_pairs(tmp_path / "pairs"))], quick(tmp_path, base, freeze_conv=True, lr=0.01))
    before = load_file(str(base / "model.safetensors"))
    after = load_file(str(tmp_path / "adapted" / "model.safetensors"))
    conv = [k for k in before if k.startswith("blocks.") and k.endswith("conv.weight")]
    assert conv and all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in conv)
    assert not np.array_equal(before["output.weight"].numpy(), after["output.weight"].numpy())


def test_adapted_weights_are_blended_back_until_other_hands_stay_within_the_limit(tmp_path, monkeypatch):
    base = Recognizer(*load_model(make_untrained_model(tmp_path / "base", seed=0)))
    adapted = Recognizer(*load_model(make_untrained_model(tmp_path / "adapted", seed=1)))
    name = next(k for k, v in base.net.state_dict().items() if v.is_floating_point() and v.numel() > 8)
    origin, full = base.net.state_dict()[name].clone(), adapted.net.state_dict()[name].clone()

    def counts(recognizer, lines, batch_size=16):
        # How far the weights moved from the base model's: more reads the hand better and
        # forgets more of the others (max_forgetting 0.1 allows 0.055 here: mix 0.5 at most).
        moved = float(((recognizer.net.state_dict()[name] - origin) / (full - origin)).mean())
        cer = 0.2 - 0.1 * moved if lines == ["hand"] else 0.05 + 0.008 * moved
        return ErrorCounts(char_errors=round(cer * 100000), chars=100000, lines=1)

    monkeypatch.setattr(adapt_module, "held_out_counts", counts)
    mix, held, others = adapt_module.choose_mix(base.net.state_dict(), adapted, ["hand"], ["other"], 0.05, 0.1)
    assert mix == 0.5 and held == pytest.approx(0.15, abs=1e-4) and others == pytest.approx(0.054, abs=1e-4)
    assert torch.allclose(adapted.net.state_dict()[name], origin + 0.5 * (full - origin))
    # No check lines: the adapted weights as trained.
    assert adapt_module.choose_mix(base.net.state_dict(), adapted, ["hand"], [], None, 0.1)[0] == 1.0


def test_the_blend_keeping_most_of_the_change_wins_when_the_held_out_lines_cannot_tell_them_apart():
    def blend(mix, errors):
        return (mix, ErrorCounts(char_errors=errors, chars=360, lines=10), 0.05)

    # Half the change 2 errors ahead of all of it (of ~30: sqrt is 5.4): noise, all of it is kept.
    assert adapt_module.most_change_within_noise([blend(1.0, 31), blend(0.75, 30), blend(0.5, 29),
                                                  blend(0.25, 39)])[0] == 1.0
    # 10 errors ahead is more than noise: half the change is kept.
    assert adapt_module.most_change_within_noise([blend(1.0, 39), blend(0.75, 35), blend(0.5, 29)])[0] == 0.5
    # Among the close ones, the most change: 0.75 (31) is within sqrt(29) of 0.5, 1.0 (39) is not.
    assert adapt_module.most_change_within_noise([blend(1.0, 39), blend(0.75, 31), blend(0.5, 29)])[0] == 0.75
    # Never one no better than the base model (here 31 errors) when a closer blend beats it.
    assert adapt_module.most_change_within_noise([blend(1.0, 32), blend(0.75, 30), blend(0.5, 29)],
                                                 before=31 / 360)[0] == 0.75


def test_the_card_says_why_a_blend_was_kept():
    def card_line(mix, others_after):
        result = adapt_module.AdaptResult(Path("out"), "base", 0.2, 0.1, True, 40, 10, "line", 100, 1.0, [],
                                          mix=mix, others_before=0.05, others_after=others_after)
        return adapt_module._others_rows(result, AdaptConfig(max_forgetting=0.1))

    assert "kept at" not in card_line(1.0, 0.054)
    assert "kept at 50%: the blend that kept them within the limit and read the held-out lines best, within" in \
        card_line(0.5, 0.054)
    assert "kept at 25%: no blend kept them within 10%: the one that forgot least" in card_line(0.25, 0.06)


def test_a_spawned_loader_process_prepares_the_lines(tmp_path):
    """--workers 1: the loader process starts with spawn (this process already runs OpenCV
    and torch threads, which a forked copy could hang in)."""
    base = make_untrained_model(tmp_path / "base")
    cfg = quick(tmp_path, base, workers=1, recombine=0.5, minutes=10.0)
    result = adapt([str(write_pairs(tmp_path / "pairs"))], cfg)
    assert result.steps == 4 and (tmp_path / "adapted" / "model.safetensors").is_file()


def test_refuses_to_overwrite_a_folder_or_the_base_model(tmp_path):
    base = make_untrained_model(tmp_path / "base")
    data = [str(write_pairs(tmp_path / "pairs"))]
    with pytest.raises(ConfigError, match="base model itself"):
        adapt(data, quick(tmp_path, base, out=str(base)))
    (tmp_path / "adapted").mkdir()
    (tmp_path / "adapted" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        adapt(data, quick(tmp_path, base))


def test_an_out_that_cannot_be_made_is_refused_before_the_lines_are_read(tmp_path, monkeypatch):
    base = make_untrained_model(tmp_path / "base")
    (tmp_path / "notes.txt").write_text("mine")
    # Nothing is read: the data set named does not even exist.
    with pytest.raises(ConfigError, match=r"--out .*notes.txt/model: .*notes.txt is a file, not a folder"):
        adapt([str(tmp_path / "absent")], quick(tmp_path, base, out=str(tmp_path / "notes.txt" / "model")))
    monkeypatch.setattr("os.access", lambda path, mode: Path(path) != tmp_path)  # root may write anywhere
    with pytest.raises(ConfigError, match=r"--out .*new/model: the folder .* is not writable"):
        adapt([str(tmp_path / "absent")], quick(tmp_path, base, out=str(tmp_path / "new" / "model")))
    assert not (tmp_path / "new").exists()


def test_a_padded_line_is_adapted_on_without_its_padding(tmp_path):
    """Distorted by the augmentation, a flat pad is flat no longer, and normalisation would leave
    it in: the lines are taken out of their padding as they are loaded."""
    import cv2

    folder = write_pairs(tmp_path / "pairs", 1)
    line = np.asarray(Image.open(folder / "l000.png").convert("L"))
    line = np.clip(line.astype(int) - 40, 0, 255).astype(np.uint8)  # gray paper, as a scan's
    cv2.imwrite(str(folder / "l000.png"), cv2.copyMakeBorder(line, 30, 30, 20, 200, cv2.BORDER_CONSTANT, value=0))
    (kept,) = loaded([LineSample("l000", LINE_TEXTS[0], str(folder / "l000.png"))])
    assert np.array_equal(kept.image, line)
    # --unlabeled finds copies of a labelled line by the pixels of its file.
    assert kept.meta[SOURCE_DIGEST] == pixels_digest(np.asarray(Image.open(folder / "l000.png")))
    # A negative (light ink on a dark ground), padded, is adapted on as the line in dark ink.
    cv2.imwrite(str(folder / "l000.png"), 255 - cv2.copyMakeBorder(line, 30, 30, 20, 200, cv2.BORDER_CONSTANT, value=0))
    (kept,) = loaded([LineSample("l000", LINE_TEXTS[0], str(folder / "l000.png"))])
    assert np.array_equal(kept.image, line)


def test_an_unlabeled_padded_negative_is_learnt_from_as_the_line_in_dark_ink(tmp_path):
    """Pseudo-labelled lines go into the augmentation as the labelled ones do: out of their
    padding and in dark ink (they had gone in as given, pad and all)."""
    import cv2

    folder = tmp_path / "rest"
    folder.mkdir()
    line = np.clip(render_line("one line alone").astype(int) - 40, 0, 255).astype(np.uint8)
    padded = 255 - cv2.copyMakeBorder(line, 30, 30, 20, 200, cv2.BORDER_CONSTANT, value=0)
    Image.fromarray(padded).save(folder / "negative.png")
    Image.fromarray(line).save(folder / "plain.png")
    negative, plain = unlabeled_lines([str(folder)], skip_bad=False, seed=1)
    assert np.array_equal(negative.image, line) and negative.meta[SOURCE_DIGEST] == pixels_digest(padded)
    assert np.array_equal(plain.image, line) and SOURCE_DIGEST not in plain.meta


def test_unusable_lines_are_named_and_left_out_only_with_skip_bad(tmp_path, caplog):
    folder = write_pairs(tmp_path / "pairs", 3)
    (folder / "l001.png").write_bytes(b"")
    lines = [LineSample(f"l{i:03d}", LINE_TEXTS[i], str(folder / f"l{i:03d}.png")) for i in range(4)]
    (folder / "l003.png").write_text("not a picture")
    with pytest.raises(ConfigError, match=r"2 line images cannot be read: .*l001\.png: file is empty.*l003\.png"):
        loaded(lines)  # every bad file at once, so one round of fixes is enough
    with caplog.at_level("WARNING"):
        kept = loaded(lines, skip_bad=True)
    assert [s.id for s in kept] == ["l000", "l002"] and "l001.png" in caplog.text and "l003.png" in caplog.text
    kept[1] = replace(kept[1], text="  ")  # an inked line transcribed as nothing
    with pytest.raises(ConfigError, match=r"l002\.png: empty transcription"):
        check_texts(kept, skip_bad=False)
    assert [s.id for s in check_texts(kept, skip_bad=True)] == ["l000"]
    strange = [LineSample("l000", "the cat", kept[0].image), replace(kept[1], id="l009", text="naïve ☃")]
    with pytest.raises(ConfigError, match="l002.png"):  # the file the user can open, not only an id
        check_charset(strange, Charset(), skip_bad=False)
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert [s.id for s in check_charset(strange, Charset(), skip_bad=True)] == ["l000"]
    assert "l002.png" in caplog.text
    # A phone keyboard's quotes and an accent are learnt as the model writes them, not left out.
    typed = [replace(kept[0], text="it\u2019s \u201cna\u00efve\u201d \u2013 caf\u00e9\tno")]
    assert [s.text for s in check_charset(typed, Charset(), skip_bad=False)] == ['it\'s "naive" - cafe no']


def test_a_budget_smaller_than_the_work_around_training_is_said(tmp_path, caplog):
    base = make_untrained_model(tmp_path / "base")
    with caplog.at_level("WARNING"):
        result = adapt([str(write_pairs(tmp_path / "pairs", 20))], quick(tmp_path, base, minutes=0.001))
    assert "--minutes 0.001 is less than reading and checking the lines takes" in caplog.text
    assert result.steps >= 1


def test_entries_skip_bad_left_out_while_reading_are_counted_where_the_user_watches(tmp_path, caplog):
    """The Teach tab (skip_bad) counted the lines left out for their text or length only: a
    damaged image or a transcription that cannot be read went to the server's log alone."""
    base = make_untrained_model(tmp_path / "base")
    folder = write_pairs(tmp_path / "pairs", 20)
    (folder / "l003.png").write_text("not a picture")
    (folder / "l005.gt.txt").write_bytes(b"caf\xe9\n")
    updates = []
    with caplog.at_level("WARNING"):
        adapt([str(folder)], quick(tmp_path, base, skip_bad=True), on_progress=updates.append)
    before = next(u for u in updates if u.get("phase") == "before")
    assert before["left_out"]["unreadable"] == 2 and before["adapt_lines"] + before["held_out_lines"] == 18
    assert before["unreadable"].startswith("l005.gt.txt:1: not valid UTF-8")
    assert "l003.png" in caplog.text and "l005.gt.txt" in caplog.text  # the command line's log still says so


def test_too_few_usable_lines_are_refused_saying_why_the_others_were_left_out(tmp_path):
    """"needs at least 6 labelled lines, got 0" had been all the Teach tab showed; the reasons
    went to the server's log (a probe helper)."""
    base = make_untrained_model(tmp_path / "base")
    folder = write_pairs(tmp_path / "pairs", 6)
    (folder / "l000.png").write_text("not a picture")
    (folder / "l001.gt.txt").write_text(" \n")
    (folder / "l002.gt.txt").write_text("caf\u00e9 \u263a\n")
    with pytest.raises(ConfigError) as refused:
        adapt([str(folder)], quick(tmp_path, base, skip_bad=True))
    message = str(refused.value)
    assert message.startswith("adaptation needs at least 6 labelled lines, got 3: left out 1 unusable entries "
                              "(first: l000.png"), message
    assert "1 with an empty transcription; 1 with characters the base model cannot write" in message, message


def test_an_interrupted_run_leaves_no_half_model_and_no_false_resume_hint(tmp_path, monkeypatch, caplog):
    base = make_untrained_model(tmp_path / "base")

    def interrupted(*args, **kwargs):
        (tmp_path / "adapted" / adapt_module.RUN_DIR / "last").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(adapt_module, "_train", interrupted)
    with pytest.raises(KeyboardInterrupt), caplog.at_level("ERROR"):
        adapt([str(write_pairs(tmp_path / "pairs"))], quick(tmp_path, base))
    assert not (tmp_path / "adapted").exists()
    assert "no model written" in caplog.text and "--resume" not in caplog.text


def test_a_run_that_fails_after_training_leaves_no_checkpoints(tmp_path, monkeypatch, caplog):
    """The forgetting check or the model's writing failing after the steps left <out>/.adapt-run
    (whole checkpoints) on the disk."""
    base = make_untrained_model(tmp_path / "base")

    def failing_check(*args, **kwargs):
        raise RuntimeError("the check lines could not be read")

    monkeypatch.setattr(adapt_module, "choose_mix", failing_check)
    with pytest.raises(RuntimeError), caplog.at_level("ERROR"):
        adapt([str(write_pairs(tmp_path / "pairs"))], quick(tmp_path, base))
    assert not (tmp_path / "adapted").exists() and "no model written" in caplog.text


def test_rejects_shares_out_of_range_and_counts_below_one():
    with pytest.raises(ConfigError, match="--rehearsal"):
        AdaptConfig(rehearsal=1.0)
    with pytest.raises(ConfigError, match="--pseudo-keep"):
        AdaptConfig(pseudo_keep=1.5)
    with pytest.raises(ConfigError, match="--min-held-out must be at least 1, got 0"):
        AdaptConfig(min_held_out=0)


# --- self-training on uncorrected lines ---------------------------------------------------

class FixedReader:
    """A recognizer that reads line k as readings[k]: (text, character confidences)."""

    def __init__(self, readings):
        self.readings = readings

    def recognize(self, images, batch_size=16):
        return [Recognition(text, float(np.mean(confs)) if confs else 1.0, list(confs))
                for text, confs in self.readings[: len(list(images))]]


def test_pseudo_labels_are_the_surest_readings_ranked_by_their_line_confidence():
    lines = samples(6)
    reader = FixedReader([("sure", [0.99, 0.98]), ("one doubt", [1.0] * 6 + [0.5]), ("fair", [0.9, 0.9]),
                          ("", []), ("good", [0.97, 0.95]), ("low", [0.6, 0.7])])
    kept = pseudo_labelled(reader, lines, keep=0.5)
    # Three of six: the line with one doubtful letter ranks above "fair" by its mean (0.93 against 0.9).
    assert [(s.id, s.text) for s in kept] == [("l000", "sure"), ("l001", "one doubt"), ("l004", "good")]
    assert all(s.meta["pseudo_label"] and s.image is lines[int(s.id[1:])].image for s in kept)
    assert [s.text for s in pseudo_labelled(reader, lines, keep=1.0)] == ["sure", "one doubt", "fair", "good", "low"]
    assert pseudo_labelled(reader, lines, keep=0.0) == [] and pseudo_labelled(reader, [], keep=1.0) == []


def test_an_image_read_both_ways_counts_as_its_surer_reading_only():
    """Auto mode's images cut into lines (unlabeled_lines) come whole and cut; pseudo_labelled
    learns from one reading of each, the surer (hwr.documents.reading_choice)."""
    def of(image: str, whole: bool = False) -> dict:
        return {READING_OF: image, **({WHOLE_READING: True} if whole else {})}

    lines = [replace(s, meta={**s.meta, **meta}) for s, meta in
             zip(samples(7), [of("a.png", True), of("a.png"), of("a.png"), of("b.png", True), of("b.png"),
                              of("b.png"), {}])]
    reader = FixedReader([("the line read whole", [0.95] * 19), ("thc li", [0.6] * 6), ("ne rcad", [0.5] * 7),
                          ("amn", [0.3] * 3), ("Dear Anna,", [0.97] * 10), ("thank you", [0.93] * 9),
                          ("a line", [0.9] * 6)])
    kept = pseudo_labelled(reader, lines, keep=1.0)
    assert [(s.id, s.text) for s in kept] == [("l000", "the line read whole"), ("l004", "Dear Anna,"),
                                              ("l005", "thank you"), ("l006", "a line")]
    # The share kept is of the readings left: 2 of 4, the surest.
    assert [s.id for s in pseudo_labelled(reader, lines, keep=0.5)] == ["l000", "l004"]
    # A group that lost its whole reading to the sample past MAX_UNLABELED keeps its lines.
    assert [s.id for s in pseudo_labelled(FixedReader(reader.readings[1:]), lines[1:], keep=1.0)] == \
        ["l001", "l002", "l004", "l005", "l006"]


def test_adapt_lines_draw_pseudo_lines_by_their_share_always_distorted():
    lines = samples(6)
    pseudo = [replace(s, id=f"u{k}", text="unread line") for k, s in enumerate(samples(4))]
    plain = AdaptLines(lines, size=200, rehearsal=0.0, augment_prob=0.5, seed=3, charset=None)
    mixed = AdaptLines(lines, size=200, rehearsal=0.0, augment_prob=0.5, seed=3, charset=None, pseudo=pseudo,
                       pseudo_share=0.5)
    drawn = [mixed[i] for i in range(200)]
    from_pseudo = [s for s in drawn if s.text == "unread line"]
    assert 60 < len(from_pseudo) < 140 and all("#aug" in s.id for s in from_pseudo)
    assert [s.text for s in drawn] == [mixed[i].text for i in range(200)]
    # Without pseudo lines (or with a share of 0) the stream is the one adapt drew before.
    off = AdaptLines(lines, size=200, rehearsal=0.0, augment_prob=0.5, seed=3, charset=None, pseudo=pseudo,
                     pseudo_share=0.0)
    assert [plain[i].id for i in range(50)] == [off[i].id for i in range(50)]


def test_unreadable_unlabeled_lines_are_named_and_left_out_only_with_skip_bad(tmp_path):
    folder = tmp_path / "rest"
    folder.mkdir()
    Image.fromarray(render_line("the cat sat")).save(folder / "a.png")
    (folder / "b.png").write_bytes(b"not a png")
    (folder / "c.pdf").write_bytes(b"%PDF-1.4")  # cut short: no page can be read
    with pytest.raises(ConfigError, match="2 --unlabeled images cannot be read: .*b.png.*c.pdf|c.pdf.*b.png"):
        unlabeled_lines([str(folder)], skip_bad=False, seed=1)
    kept = unlabeled_lines([str(folder)], skip_bad=True, seed=1)
    assert [Path(s.meta["file"]).name for s in kept] == ["a.png"] and kept[0].image.dtype == np.uint8
    # A mistyped path is an error even with skip_bad: self-training would be off without a word.
    with pytest.raises(ConfigError, match="no such file or folder: .*nowhere"):
        unlabeled_lines([str(folder), str(tmp_path / "nowhere")], skip_bad=True, seed=1)


def test_past_the_limit_a_seeded_sample_of_unlabeled_lines_is_read(tmp_path):
    for k in range(6):
        Image.fromarray(render_line("a line", pad=5 + k)).save(tmp_path / f"l{k}.png")
    names = [[Path(s.meta["file"]).name for s in unlabeled_lines([str(tmp_path)], False, seed, limit=3)]
             for seed in (1, 1, 2)]
    assert len(names[0]) == 3 and names[0] == names[1] == sorted(names[0]) and names[0] != names[2]


def test_past_the_limit_an_image_read_both_ways_is_sampled_with_all_its_readings_or_none():
    pixels = np.zeros((4, 4), np.uint8)
    lines = [LineSample(f"p{k}.png", "", pixels, {READING_OF: f"p{k}", WHOLE_READING: True}) for k in range(5)]
    lines += [LineSample(f"p{k}.png#l00{i}", "", pixels, {READING_OF: f"p{k}"}) for k in range(5) for i in (1, 2)]
    lines += [LineSample(f"line{k}.png", "", pixels, {}) for k in range(6)]
    samples = {seed: sample_whole_images(lines, 8, seed) for seed in range(6)}
    for kept in samples.values():
        images = [s.meta[READING_OF] for s in kept if READING_OF in s.meta]
        assert all(images.count(image) == 3 for image in images) and 6 <= len(kept) <= 8
    assert samples[0] == sample_whole_images(lines, 8, 0) and len({str(k) for k in samples.values()}) > 1


def test_unlabeled_pages_are_cut_into_their_lines_as_transcribe_cuts_them(tmp_path):
    folder = tmp_path / "rest"
    folder.mkdir()
    page_image(["first line of a page", "second line of it", "and a third"]).save(folder / "page.png")
    page_image(["a page in a PDF", "its second line"]).save(folder / "scan.pdf")
    Image.fromarray(render_line("one line alone")).save(folder / "line.png")
    # By default an image is one line image; a PDF's pages are always cut into lines.
    names = [Path(s.meta["file"]).name for s in unlabeled_lines([str(folder)], skip_bad=False, seed=1)]
    assert names == ["line.png", "page.png", "scan.pdf#l001", "scan.pdf#l002"]
    # Auto mode, as hwr transcribe: an image cut into lines comes both ways, whole and cut, for
    # pseudo_labelled to keep the surer reading of (test_an_image_read_both_ways_...).
    lines = unlabeled_lines([str(folder)], skip_bad=False, seed=1, mode="auto")
    names = [Path(s.meta["file"]).name for s in lines]
    assert names == ["line.png", "page.png", "page.png#l001", "page.png#l002", "page.png#l003", "scan.pdf#l001",
                     "scan.pdf#l002"]
    assert [bool(s.meta.get(WHOLE_READING)) for s in lines] == [False, True, False, False, False, False, False]
    assert [s.meta.get(READING_OF, "-") for s in lines] == ["-"] + ["page"] * 4 + ["-", "-"]
    assert all(s.image.dtype == np.uint8 and s.text == "" for s in lines)
    first = next(s for s in lines if s.id.endswith("page.png#l001"))
    assert first.image.shape[0] < 2 * render_line("first line of a page").shape[0]  # a line, not the page
    # The pages the labelled lines were cut from are left out: their lines may be the held-out ones.
    kept = unlabeled_lines([str(folder)], skip_bad=False, seed=1, labelled_pages=frozenset({folder / "page.png"}),
                           mode="page")
    assert not any("page.png" in s.id for s in kept) and len(kept) == 3


def test_a_page_the_segmenter_fails_on_is_named_and_the_rest_still_read_with_skip_bad(tmp_path, monkeypatch):
    import hwr.documents.prepare as prepare

    for name in ("a.png", "b.png"):
        Image.fromarray(render_line("the cat sat")).save(tmp_path / name)
    real = prepare.layout_page

    def failing(gray, mode, page_id, *args, **kwargs):
        if page_id == "b":
            raise ValueError("the segmenter broke")
        return real(gray, mode, page_id, *args, **kwargs)

    monkeypatch.setattr(prepare, "layout_page", failing)
    with pytest.raises(ConfigError, match="b.png: ValueError: the segmenter broke"):
        unlabeled_lines([str(tmp_path)], skip_bad=False, seed=1)
    assert [Path(s.id).name for s in unlabeled_lines([str(tmp_path)], skip_bad=True, seed=1)] == ["a.png"]


def test_the_page_images_of_labelled_page_xml_lines_are_not_read_as_unlabeled(tmp_path, monkeypatch):
    export = write_page_export(tmp_path / "export")
    base = Recognizer(*load_model(make_untrained_model(tmp_path / "base")))
    labelled = adapt_module.open_lines([str(export)], skip_bad=False)
    read = []
    monkeypatch.setattr(adapt_module, "pseudo_labelled", lambda r, lines, keep: read.extend(lines) or lines)
    cfg = AdaptConfig(unlabeled=[str(export)])
    with pytest.raises(ConfigError, match="no --unlabeled line is left"):  # both pages left out: nothing read
        adapt_module.read_unlabeled(base, cfg, labelled)
    assert read == []
    page_image(["another page of the hand", "not corrected yet"]).save(export / "page9.png")
    adapt_module.read_unlabeled(base, replace(cfg, unlabeled_mode="page"), labelled)
    assert sorted(Path(s.meta["page_image"]).name for s in read) == ["page9.png", "page9.png"]


def test_an_image_whose_whole_reading_is_a_labelled_line_leaves_out_its_cut_lines_too(tmp_path, monkeypatch):
    """In auto mode an image cut into lines comes whole and cut; when the whole image is a
    labelled line (perhaps a held-out one), its pieces are that line too and are not learnt from;
    also when it is tall enough to be read whole from a reduced copy (prepare.WHOLE_READING_MAX_HEIGHT)."""
    from hwr.documents.prepare import WHOLE_READING_MAX_HEIGHT

    folder = tmp_path / "rest"
    folder.mkdir()
    tall = page_image(["a labelled line", "cut in two"])
    tall = tall.resize((tall.width * 3, tall.height * 3))
    assert tall.height > WHOLE_READING_MAX_HEIGHT
    tall.save(folder / "labelled.png")
    page_image(["another image of", "the same hand"]).save(folder / "other.png")
    labelled = [LineSample("l1", "a labelled line cut in two", np.asarray(Image.open(folder / "labelled.png")))]
    read = []
    monkeypatch.setattr(adapt_module, "pseudo_labelled", lambda r, lines, keep: read.extend(lines) or lines)
    base = Recognizer(*load_model(make_untrained_model(tmp_path / "base")))
    adapt_module.read_unlabeled(base, AdaptConfig(unlabeled=[str(folder)], unlabeled_mode="auto"), labelled)
    assert sorted(Path(s.id).name for s in read) == ["other.png", "other.png#l001", "other.png#l002"]


def test_unlabeled_lines_also_given_with_text_are_left_out_and_the_card_counts_the_rest(tmp_path, monkeypatch):
    base = make_untrained_model(tmp_path / "base")
    pairs = write_pairs(tmp_path / "pairs", 20)
    rest = tmp_path / "rest"
    rest.mkdir()
    # A padded line is loaded without its pad (hwr.recognition.fill), and is still known by its file's pixels.
    padded = np.pad(np.asarray(Image.open(pairs / "l007.png").convert("L")) // 2 + 60, 30)
    Image.fromarray(padded).save(pairs / "l007.png")
    for name in ("l000.png", "l007.png", "l013.png"):  # a collection folder holds the corrected lines too
        (rest / name).write_bytes((pairs / name).read_bytes())
    for k in range(6):
        Image.fromarray(render_line("new line", pad=5 + k)).save(rest / f"new{k}.png")
    given = []

    def read_all(recognizer, lines, keep):
        given.extend(lines)
        return [replace(s, text="new line") for s in lines]

    streams = []

    def spy(*args, **kwargs):
        streams.append(kwargs)
        return AdaptLines(*args, **kwargs)

    monkeypatch.setattr(adapt_module, "pseudo_labelled", read_all)
    monkeypatch.setattr(adapt_module, "AdaptLines", spy)
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer(base, before=0.5, after=0.2))
    result = adapt([str(pairs)], quick(tmp_path, base, unlabeled=[str(rest)], pseudo_share=0.4, pseudo_rounds=1))
    assert sorted(Path(s.meta["file"]).name for s in given) == [f"new{k}.png" for k in range(6)]
    assert result.pseudo_lines == 6
    # The training stream draws them at the share asked for.
    assert [len(k["pseudo"]) for k in streams] == [6] and streams[0]["pseudo_share"] == 0.4
    card = (tmp_path / "adapted" / MODEL_CARD_FILE).read_text(encoding="utf-8")
    assert "also 6 uncorrected lines of the hand as the base model read them" in card
    assert Recognizer.load(tmp_path / "adapted").config.training["adapted"]["pseudo_lines"] == 6
    # Nothing left to learn from is said, not run as if self-training were on.
    monkeypatch.setattr(adapt_module, "pseudo_labelled", lambda recognizer, lines, keep: [])
    with pytest.raises(ConfigError, match="no --unlabeled line is left to learn from: 9 read, 3 of them copies"):
        adapt([str(pairs)], quick(tmp_path, base, out=str(tmp_path / "again"), unlabeled=[str(rest)]))


def _base_pairs_and_uncorrected(tmp_path: Path) -> tuple[Path, Path, Path]:
    """An untrained model, 20 labelled pairs and a folder of 6 uncorrected lines."""
    base = make_untrained_model(tmp_path / "base")
    pairs = write_pairs(tmp_path / "pairs", 20)
    rest = tmp_path / "rest"
    rest.mkdir()
    for k in range(6):
        Image.fromarray(render_line("new line", pad=5 + k)).save(rest / f"new{k}.png")
    return base, pairs, rest


def test_by_default_a_second_self_training_round_reads_the_lines_with_the_first_rounds_model_and_trains_on(
        tmp_path, monkeypatch):
    base, pairs, rest = _base_pairs_and_uncorrected(tmp_path)
    readers, inits = [], []

    def read_all(recognizer, lines, keep):
        readers.append(recognizer)
        return [replace(s, text="new line") for s in lines]

    real_train = adapt_module._train

    def spy_train(base_dir, *args, **kwargs):
        inits.append(Path(base_dir))
        return real_train(base_dir, *args, **kwargs)

    decoders = []

    def spy_decoder(name, charset):
        decoders.append(make_decoder(name, charset))
        return decoders[-1]

    monkeypatch.setattr(adapt_module, "pseudo_labelled", read_all)
    monkeypatch.setattr(adapt_module, "_train", spy_train)
    monkeypatch.setattr(adapt_module, "make_decoder", spy_decoder)
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer(base, before=0.5, after=0.2))
    result = adapt([str(pairs)], quick(tmp_path, base, unlabeled=[str(rest)], beside=True))
    # Two rounds by default. Round 1 reads with the base model; round 2 with round 1's weights beside the base network,
    # and trains on from those weights.
    assert len(readers) == 2 and readers[0].beside is None and readers[1].beside is readers[0].net
    # Both read as the commands read by default, with one decoder built once.
    assert readers[0].decoder is readers[1].decoder is decoders[0] and len(decoders) == 1
    assert inits[0] == base and inits[1].name == "round-1"
    assert not torch.equal(next(iter(readers[1].net.state_dict().values())),
                           next(iter(readers[0].net.state_dict().values())))
    rounds = [h.get("round", 1) for h in result.history]
    assert rounds[0] == 1 and rounds[-1] == 2 and result.steps == 8  # 4 steps a round
    assert [h["step"] for h in result.history] == sorted(h["step"] for h in result.history)
    card = (tmp_path / "adapted" / MODEL_CARD_FILE).read_text(encoding="utf-8")
    assert "as the model adapted in the round before (2 rounds of self-training" in card
    assert not (tmp_path / "adapted" / ".adapt-run").exists()
    # Without --unlabeled there is nothing to read again: one round.
    inits.clear()
    adapt([str(pairs)], quick(tmp_path, base, out=str(tmp_path / "plain")))
    assert inits == [base]


class RecordedBar:
    """tqdm as a terminal shows it: the label and each "minutes left" it was given."""

    bars: list[RecordedBar] = []

    def __init__(self, *args, desc="", **kwargs):
        self.desc, self.left, self.disable = desc, [], False
        RecordedBar.bars.append(self)

    def update(self, n=1):
        pass

    def set_postfix(self, **postfix):
        self.left.append(float(postfix["left"].split()[0]))

    def close(self):
        pass

    @staticmethod
    def write(text, **kwargs):
        pass


def test_each_self_training_rounds_bar_names_its_round_and_counts_down_the_whole_runs_minutes(tmp_path, monkeypatch):
    """Each round had started a bar of its own, labelled "train", whose minutes left were the round's."""
    import hwr.training.train as train_module

    base, pairs, rest = _base_pairs_and_uncorrected(tmp_path)
    made = []
    real_progress = adapt_module._progress

    def spy_progress(*args):
        made.append(real_progress(*args))
        return made[-1]

    monkeypatch.setattr(train_module, "tqdm", RecordedBar)
    monkeypatch.setattr(adapt_module, "_progress", spy_progress)
    monkeypatch.setattr(RecordedBar, "bars", [])
    adapt([str(pairs)], quick(tmp_path, base, unlabeled=[str(rest)], minutes=3.0))
    assert [bar.desc for bar in RecordedBar.bars] == ["adapt, round 1 of 2", "adapt, round 2 of 2"]
    first, second = made
    # Round 1 is followed by round 2 and the checks; round 2 by the checks alone.
    assert first.after_seconds > second.after_seconds > 0
    for bar, progress in zip(RecordedBar.bars, made, strict=True):
        assert bar.left and all(left >= progress.after_seconds / 60 - 0.05 for left in bar.left)
    assert RecordedBar.bars[0].left[0] > 1.0  # of the run's 3 minutes, not of round 1's share of them
    # Without --unlabeled: one run, labelled "adapt".
    RecordedBar.bars.clear()
    adapt([str(pairs)], quick(tmp_path, base, out=str(tmp_path / "plain")))
    assert [bar.desc for bar in RecordedBar.bars] == ["adapt"]


def test_finish_early_ends_training_at_the_next_step_skips_the_rounds_left_and_still_writes_the_model(
        tmp_path, monkeypatch):
    """The web app's "Finish now": the weights so far are checked and written, as when the
    minutes run out; the self-training rounds still to come are not started."""
    import threading

    base, pairs, rest = _base_pairs_and_uncorrected(tmp_path)
    finish, inits = threading.Event(), []
    real_train = adapt_module._train

    def pressed_during_training(base_dir, *args, **kwargs):
        inits.append(base_dir)
        finish.set()
        return real_train(base_dir, *args, **kwargs)

    monkeypatch.setattr(adapt_module, "pseudo_labelled", lambda recognizer, lines, keep: [
        replace(s, text="new line") for s in lines])
    monkeypatch.setattr(adapt_module, "_train", pressed_during_training)
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer(base, before=0.5, after=0.2))
    result = adapt([str(pairs)], quick(tmp_path, base, unlabeled=[str(rest)]), finish_early=finish)
    assert len(inits) == 1 and result.steps == 1 and result.history[-1]["step"] == 1
    assert result.improved and Recognizer.load(tmp_path / "adapted", device="cpu") is not None


@pytest.mark.slow
def test_cli_adapts_and_reports_before_and_after(tmp_path):
    base = make_untrained_model(tmp_path / "base")
    data = write_pairs(tmp_path / "pairs")
    run = subprocess.run([sys.executable, "-m", "hwr", "adapt", str(data), "--model", str(base), "--out",
                          str(tmp_path / "adapted"), "--max-steps", "2", "--val-every", "2", "--rehearsal", "0",
                          "--workers", "0", "--batch-size", "4", "--check-lines", "4"], capture_output=True,
                         text=True, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "held-out CER" in run.stdout and (tmp_path / "adapted" / "model.safetensors").is_file()
    assert "other hands (synthetic check lines)" in run.stdout  # the forgetting check


def test_lines_confined_to_an_upload_may_not_name_a_scan_elsewhere(tmp_path):
    """The web app's Teach tab: a PAGE XML in an uploaded zip naming an image elsewhere on the
    server (an absolute path) had been read and trained on (a probe helper); the Evaluate tab
    already refused it."""
    from hwr.datasets import OutsideFolder

    upload = write_page_export(tmp_path / "upload", pages=1)
    elsewhere = tmp_path / "private"
    elsewhere.mkdir()
    (upload / "page0.png").rename(elsewhere / "scan.png")
    xml = upload / "page0.xml"
    xml.write_text(xml.read_text(encoding="utf-8").replace('imageFilename="page0.png"',
                                                           f'imageFilename="{elsewhere / "scan.png"}"'),
                   encoding="utf-8")
    assert len(adapt_module.open_lines([str(upload)], skip_bad=True)) == 5  # hwr adapt may look anywhere
    with pytest.raises(OutsideFolder):
        adapt_module.open_lines([str(upload)], skip_bad=True, confined_to=upload)


def test_a_line_with_more_text_than_its_image_has_frames_for_is_left_out(untrained_model, caplog):
    """A paragraph's text pasted into one TextLine: held out, it made the before/after figures
    noise (a probe helper); CTC cannot learn it either."""
    from hwr.training.adapt_data import check_lengths

    base = Recognizer.load(untrained_model, device="cpu")
    image = render_line("a short line")
    lines = [LineSample("ok", "a short line", image), LineSample("para", " ".join(["paragraph"] * 60), image)]
    with pytest.raises(ConfigError, match="para.*more characters than the network reads"):
        check_lengths(lines, base, skip_bad=False)
    with caplog.at_level("WARNING"):
        assert [s.id for s in check_lengths(lines, base, skip_bad=True)] == ["ok"]
    assert "para" in caplog.text


def test_a_line_too_thin_to_read_is_named_and_left_out_with_skip_bad_not_a_crash(untrained_model, caplog):
    """A PAGE XML polygon a few pixels tall gives a crop of fewer rows than a line has: the
    recognizer refuses it, and adapt had stopped there even with --skip-bad."""
    from hwr.training.adapt_data import check_lengths

    base = Recognizer.load(untrained_model, device="cpu")
    image = render_line("a short line")
    lines = [LineSample("ok", "a short line", image), LineSample("sliver", "a short line", image[20:23])]
    with pytest.raises(ConfigError, match="sliver: 3 px high: too thin to hold a line of writing"):
        check_lengths(lines, base, skip_bad=False)
    with caplog.at_level("WARNING"):
        assert [s.id for s in check_lengths(lines, base, skip_bad=True)] == ["ok"]
    assert "sliver" in caplog.text


def write_page_export(folder: Path, pages: int = 2, lines_per_page: int = 5) -> Path:
    """PAGE XML + page images as eScriptorium or Transkribus export them: one image per page,
    each TextLine a polygon with its text."""
    folder.mkdir(parents=True)
    for p in range(pages):
        crops = [render_line(LINE_TEXTS[(p * lines_per_page + i) % len(LINE_TEXTS)]) for i in range(lines_per_page)]
        width, height = max(c.shape[1] for c in crops), sum(c.shape[0] for c in crops)
        page = np.full((height, width), 255, np.uint8)
        text_lines, y = [], 0
        for i, crop in enumerate(crops):
            page[y: y + crop.shape[0], : crop.shape[1]] = crop
            x1, y1 = crop.shape[1] - 1, y + crop.shape[0] - 1
            points = f"0,{y} {x1},{y} {x1},{y1} 0,{y1}"
            text = LINE_TEXTS[(p * lines_per_page + i) % len(LINE_TEXTS)]
            text_lines.append(f'<TextLine id="l{i}"><Coords points="{points}"/>'
                              f"<TextEquiv><Unicode>{text}</Unicode></TextEquiv></TextLine>")
            y += crop.shape[0]
        Image.fromarray(page).save(folder / f"page{p}.png")
        (folder / f"page{p}.xml").write_text(
            '<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15">'
            f'<Page imageFilename="page{p}.png" imageWidth="{width}" imageHeight="{height}">'
            f'<TextRegion id="r"><Coords points="0,0 {width - 1},0 {width - 1},{height - 1} 0,{height - 1}"/>'
            + "".join(text_lines) + "</TextRegion></Page></PcGts>", encoding="utf-8")
    return folder


def test_page_xml_exports_are_cut_by_polygon_and_held_out_by_page(tmp_path):
    lines = adapt_module.open_lines([str(write_page_export(tmp_path / "export"))], skip_bad=False)
    assert len(lines) == 10 and all(isinstance(s.image, np.ndarray) for s in lines)
    assert lines[0].image.shape == render_line(lines[0].text).shape  # the polygon's crop
    split = split_lines(lines, 0.2, 4, seed=1)
    assert split.by == "page" and len({s.meta["page"] for s in split.held_out}) == 1


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_a_failure_while_the_model_is_written_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    """Written file by file, a full disk while `beside/` was copied left the new weights and
    config without their `beside/`: a folder that loaded and read the adapted network alone."""
    import shutil

    base = make_untrained_model(tmp_path / "base")
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer(base, before=0.5, after=0.2))
    pairs = str(write_pairs(tmp_path / "pairs"))
    adapt([pairs], quick(tmp_path, base, beside=False))
    out = tmp_path / "adapted"
    earlier = _files(out)
    copy = shutil.copyfile

    def full_disk(source, target, *args, **kwargs):
        if Path(target).parent.name == "beside":
            raise OSError(28, "No space left on device")
        return copy(source, target, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    with pytest.raises(OSError, match="No space left"):
        adapt([pairs], quick(tmp_path, base, beside=True, overwrite=True, seed=2))
    assert _files(out) == earlier and sorted(p.name for p in out.iterdir()) == sorted(earlier)
    assert not list(tmp_path.glob(".adapted.*"))  # no staging folder left beside it


def test_overwrite_keeps_files_that_are_not_a_models_and_a_folder_set_aside_is_put_back(tmp_path, monkeypatch):
    base = make_untrained_model(tmp_path / "base")
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer(base, before=0.5, after=0.2))
    pairs = str(write_pairs(tmp_path / "pairs"))
    adapt([pairs], quick(tmp_path, base))
    out = tmp_path / "adapted"
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"holds files that are not a model's \(notes\.txt\)"):
        adapt([pairs], quick(tmp_path, base, overwrite=True))
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    (out / "notes.txt").unlink()
    earlier = _files(out)
    out.rename(tmp_path / ".adapted.previous")  # a run killed between the two renames of its swap
    adapt_module._check_out(out, base, overwrite=True)
    assert _files(out) == earlier


def test_with_keep_best_a_round_that_reads_no_better_keeps_the_round_befores_weights(tmp_path, monkeypatch):
    """Each round's run counts its best from nothing: round 2 at a held-out CER of 0.6 replaced
    round 1's best weights at 0.3."""
    base, pairs, rest = _base_pairs_and_uncorrected(tmp_path)
    real_train = adapt_module._train
    calls, round_one = [], {}

    def scripted_train(base_dir, *args, **kwargs):
        if calls:  # round 2 starts from round 1's best weights, its curve kept for the UI
            round_one.update(load_file(str(Path(base_dir) / "model.safetensors")))
            earlier = (Path(args[4]) / adapt_module.EARLIER_ROUNDS_FILE).read_text(encoding="utf-8").splitlines()
            assert json.loads(earlier[-1]) == {"steps": 4} and json.loads(earlier[0])["step"] == 2
            # Round 1's curve is only there: the UI had drawn it twice until round 2's first validation.
            assert not (Path(args[4]) / "history.jsonl").exists()
        calls.append(base_dir)
        state = real_train(base_dir, *args, **kwargs)
        state.best_cer, state.best_step = (0.3, 2) if len(calls) == 1 else (0.6, 4)
        return state

    monkeypatch.setattr(adapt_module, "pseudo_labelled", lambda recognizer, lines, keep: [
        replace(s, text="new line") for s in lines])
    monkeypatch.setattr(adapt_module, "_train", scripted_train)
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer(base, before=0.5, after=0.2))
    result = adapt([str(pairs)], quick(tmp_path, base, unlabeled=[str(rest)], keep="best", patience=0))
    assert len(calls) == 2
    kept = load_file(str(tmp_path / "adapted" / "model.safetensors"))
    # (blended at 1.0 with the base: equal to rounding)
    assert result.mix == 1.0 and all(torch.allclose(kept[name], value, atol=1e-6) for name, value in round_one.items())


def test_a_folder_another_adapt_is_writing_is_refused_and_a_failed_run_leaves_no_claim(tmp_path, monkeypatch):
    """A second hwr adapt into the same --out took the folder over and deleted the first run's
    scratch folder in the middle of its training."""
    base = make_untrained_model(tmp_path / "base")
    monkeypatch.setattr(adapt_module, "held_out_counts", fake_cer(base, before=0.5, after=0.2))
    pairs = str(write_pairs(tmp_path / "pairs"))
    out = tmp_path / "adapted"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / adapt_module.RUN_OWNER).write_text(str(other.pid), encoding="utf-8")
        with pytest.raises(ConfigError, match=rf"another hwr adapt \(process {other.pid}\) is writing its model"):
            adapt([pairs], quick(tmp_path, base))
    finally:
        other.kill()
        other.wait()
    # A claim whose process is gone is no claim; the run takes the folder and its model replaces it.
    adapt([pairs], quick(tmp_path, base))
    assert not (out / adapt_module.RUN_OWNER).exists() and (out / "model.safetensors").is_file()
    # A run that fails before any model is written leaves no claim, nor a folder it made.
    with pytest.raises(DatasetError, match="no such file or folder"):
        adapt([str(tmp_path / "no-such-data")], quick(tmp_path, base, out=str(tmp_path / "new")))
    assert not (tmp_path / "new").exists()
