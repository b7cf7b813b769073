"""hwr.synth.capture: each capture condition is reproducible, keeps the label's ink, and looks
like its name. Not tested: how close they come to real whiteboard captures or phone photos."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from hwr.synth import LineSynthesizer, SynthConfig
from hwr.synth.capture import CONDITIONS, perspective, photo_rules, uneven_light

FAST = dict(min_chars=5, max_chars=30)


@pytest.fixture(scope="module")
def synth() -> LineSynthesizer:
    return LineSynthesizer(SynthConfig(**FAST), seed=11)


@pytest.mark.parametrize("condition", CONDITIONS)
def test_each_condition_is_a_pure_function_of_seed_split_and_index(synth, condition):
    other = LineSynthesizer(SynthConfig(**FAST), seed=11)
    for i in range(2):
        a, b = synth.render(synth.rng(i), condition), other.render(other.rng(i), condition)
        assert a.condition == b.condition == condition
        assert a.text == b.text and a.ink_box == b.ink_box and np.array_equal(a.image, b.image)
        x0, y0, x1, y1 = a.ink_box
        h, w = a.image.shape
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        # The box holds real ink: dark pixels, well below the paper around them.
        assert a.image[y0:y1, x0:x1].min() < np.median(a.image) - 40


def test_sample_meta_names_the_condition_and_weights_draw_them_all():
    synth = LineSynthesizer(SynthConfig(condition_weights={c: 1.0 for c in CONDITIONS}, **FAST), seed=2)
    seen = {synth.sample(i).meta["condition"] for i in range(40)}
    assert seen == set(CONDITIONS)
    with pytest.raises(ValueError, match="whitebord"):
        SynthConfig(condition_weights={"whitebord": 1.0})
    with pytest.raises(ValueError, match="condition"):
        synth.render(synth.rng(0), "scan")


def test_whiteboard_is_black_on_white_small_in_a_wide_frame(synth):
    for i in range(4):
        line = synth.render(synth.rng(i), "whiteboard")
        image = line.image
        x0, y0, x1, y1 = line.ink_box
        assert set(np.unique(image)) <= {0, 255}
        outside = image.copy()
        outside[y0:y1, x0:x1] = 255
        assert outside.min() == 255  # nothing but the text is drawn
        assert (y1 - y0) <= 0.65 * image.shape[0]
        # Thin strokes: most ink pixels lie within 2 px of paper.
        ink = (image == 0).astype(np.uint8)
        depth = cv2.distanceTransform(ink, cv2.DIST_L2, 3)
        assert np.median(depth[ink > 0]) <= 2.0


def test_binarised_lines_hold_only_black_and_white(synth):
    line = synth.render(synth.rng(1), "binarised")
    assert set(np.unique(line.image)) <= {0, 255}
    x0, y0, x1, y1 = line.ink_box
    assert (line.image[y0:y1, x0:x1] == 0).mean() > 0.03


def test_lowres_lines_lose_detail_but_keep_their_size(synth):
    for i in range(3):
        sharp = synth.render(synth.rng(i), "paper")
        soft = synth.render(synth.rng(i), "lowres")
        assert soft.image.shape == sharp.image.shape and soft.text == sharp.text
        if sharp.ink_box[3] - sharp.ink_box[1] > 45:  # otherwise already low resolution
            assert cv2.Laplacian(soft.image, cv2.CV_64F).var() < cv2.Laplacian(sharp.image, cv2.CV_64F).var()


def test_photo_light_tilt_and_squared_paper():
    cfg = SynthConfig(photo_squared_prob=1.0, photo_shadow_prob=1.0)
    rng = np.random.default_rng(0)
    flat = np.full((60, 400), 200.0, np.float32)
    uneven_light(flat, rng, cfg)
    assert flat.max() - flat.min() > 20
    rows, cols = photo_rules((60, 400), 40.0, 20.0, rng, cfg)
    assert cols and any(0 <= y < 60 for y in rows)
    gray = np.full((60, 400), 200.0, np.float32)
    gray[20:40, 50:350] = 30.0
    warped, box, moved = perspective(gray, (50, 20, 350, 40), [(50.0, 40.0), (350.0, 40.0)], 20.0, rng, cfg)
    x0, y0, x1, y1 = box
    dark = warped < 115
    assert dark.sum() > 0 and not dark[:y0].any() and not dark[y1:].any()
    assert not dark[:, :x0].any() and not dark[:, x1:].any()
    assert moved != [(50.0, 40.0), (350.0, 40.0)]


def _fine_texture(gray: np.ndarray) -> float:
    """Mean absolute difference from a 5 x 5 local mean: grain, not the paper's broad shading."""
    image = gray.astype(np.float32)
    return float(np.abs(image - cv2.blur(image, (5, 5))).mean())


def test_archive_leaves_are_grainy(synth):
    grainy, smooth = [], []
    for i in range(6):
        plain = synth.render(synth.rng(i), "paper")
        old = synth.render(synth.rng(i), "archive")
        grainy.append(_fine_texture(old.image[: max(3, old.ink_box[1])]))
        smooth.append(_fine_texture(plain.image[: max(3, plain.ink_box[1])]))
    # The paper above the writing: grainier on old leaves (on the whole: a leaf whose faded
    # strokes leave no room for grain has none).
    assert np.mean(grainy) > np.mean(smooth)


def test_show_through_darkens_the_paper_with_the_mirrored_writing():
    from hwr.synth.capture import show_through

    cfg = SynthConfig(archive_show_depth_range=(30.0, 30.0), archive_show_blur_range=(0.05, 0.05))
    ink = np.zeros((60, 300), np.uint8)
    ink[20:40, 10:60] = 255  # writing at the left end of the front
    paper = np.full(ink.shape, 220.0, np.float32)
    show_through(paper, ink, 20.0, np.random.default_rng(1), cfg)
    assert paper.max() <= 220.0 and 220.0 - paper.min() > 15.0
    # Mirrored: the back's writing shows towards the right end, whatever the offset (< 0.3 width).
    dark_columns = np.flatnonzero((220.0 - paper).max(axis=0) > 10.0)
    assert dark_columns.size and dark_columns.mean() > 150


def test_grain_and_scan_noise_stay_below_a_third_of_the_strokes_contrast():
    from hwr.synth.capture import grain

    cfg = SynthConfig(archive_noise_range=(40.0, 40.0))
    for seed in range(6):
        flat = np.full((80, 400), 200.0, np.float32)
        noisy = grain(flat.copy(), 45.0, np.random.default_rng(seed), cfg)
        # (45 / 3)^2 - 9^2 (the scan's noise at most): 12 gray levels of grain at most.
        assert noisy.std() <= 12.0 * 1.05
        assert grain(flat.copy(), 27.0, np.random.default_rng(seed), cfg).std() == 0.0  # no room left
        assert grain(flat.copy(), 300.0, np.random.default_rng(seed), cfg).std() > 30.0


def test_an_old_leaf_measures_its_strokes_against_the_paper_under_them():
    """A stain under the writing: against the paper's base tone the strokes looked 80 levels
    deep, and grain fit for that hid them; against the stain they are 30 deep."""
    from hwr.synth.capture import after_ink

    cfg = SynthConfig(archive_noise_range=(40.0, 40.0), archive_show_prob=0.0)
    ink = np.zeros((60, 400), np.uint8)
    ink[20:40, 20:200] = 255
    paper = np.full(ink.shape, 200.0, np.float32)
    paper[:, :220] = 150.0  # the stain
    gray = paper.copy()
    gray[ink > 0] = 120.0
    out = after_ink(gray.copy(), paper, ink, 20.0, np.random.default_rng(3), cfg)
    plain = out[:, 300:] - 200.0  # paper away from the stain and the writing
    assert plain.std() <= np.sqrt((30.0 / 3) ** 2 - 9.0 ** 2) * 1.1 + 0.5
    # The back shows at most half the front's depth: 15 levels, whatever its drawn 35.
    back = after_ink(gray.copy(), paper, ink, 20.0, np.random.default_rng(3),
                     SynthConfig(archive_noise_range=(0.0, 0.0), archive_show_prob=1.0,
                                 archive_show_depth_range=(35.0, 35.0)))
    assert (gray - back).max() <= 15.0 + 1e-3 and (gray - back).max() > 5.0


def test_faded_ink_keeps_every_stroke_but_lighter():
    from hwr.synth.capture import fade

    ink = np.zeros((40, 200), np.uint8)
    ink[10:30, 20:180] = 255
    faded = fade(ink, np.random.default_rng(0), SynthConfig())
    assert faded.dtype == np.float32 and (faded[ink == 0] == 0).all()
    assert 0.25 * 255 <= faded[ink > 0].min() and faded[ink > 0].mean() < 0.95 * 255


def test_validation_lines_keep_the_conditions_they_were_drawn_with_before_archive_leaves():
    """Adding a weight moves every boundary of the draw: synth:val:N would have changed a third
    of its lines' conditions, and stages' validation CERs would no longer compare."""
    from hwr.synth.config import TRAIN_CONDITION_WEIGHTS, VAL_CONDITION_WEIGHTS

    assert VAL_CONDITION_WEIGHTS == {"paper": 0.58, "whiteboard": 0.14, "binarised": 0.08, "lowres": 0.08,
                                     "photo": 0.12}
    train = LineSynthesizer(SynthConfig(**FAST), split="train", seed=1)
    val = LineSynthesizer(SynthConfig(**FAST), split="val", seed=1)
    assert train.condition_weights == TRAIN_CONDITION_WEIGHTS and val.condition_weights == VAL_CONDITION_WEIGHTS
    assert "archive" not in {val.sample(i).meta["condition"] for i in range(60)}
    forced = LineSynthesizer(SynthConfig(condition_weights={"archive": 1.0}, **FAST), split="val", seed=1)
    assert forced.sample(0).meta["condition"] == "archive"
