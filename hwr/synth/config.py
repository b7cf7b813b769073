"""Every knob of the synthetic handwriting engine, with its default: the one source of defaults.

Sizes are in pixels of the rendered line or in multiples of the line's x-height (the height of
a lowercase "x"), which is what a writer's hand scales with; probabilities are per line unless
a name says per word.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path


def default_data_dir() -> Path:
    from hwr.assets import data_dir  # one resolver for checkouts and installed copies

    return data_dir()


# Mostly scans of paper, but every way a real line reaches the model is seen often enough to
# learn (capture.py): the team's real-pen sets were whiteboard captures and phone photos.
# Training lines also come as archive leaves (faded ink, show-through, grain), what archivists
# bring. Validation lines keep the weights they were drawn with before archive leaves existed:
# a new weight moves every boundary of the draw, and synth:val:N must keep every line it had
# (so stages' validation CERs compare); synth:archive:N measures the archive look instead.
TRAIN_CONDITION_WEIGHTS = {"paper": 0.52, "whiteboard": 0.14, "binarised": 0.08, "lowres": 0.08, "photo": 0.12,
                           "archive": 0.06}
VAL_CONDITION_WEIGHTS = {"paper": 0.58, "whiteboard": 0.14, "binarised": 0.08, "lowres": 0.08, "photo": 0.12}


def default_condition_weights(split: str) -> dict[str, float]:
    """The capture conditions' weights of a split's lines when the config names none."""
    return dict(TRAIN_CONDITION_WEIGHTS if split == "train" else VAL_CONDITION_WEIGHTS)


def _default_kind_weights() -> dict[str, float]:
    # Mostly running text, as on real pages; the rest teaches the model the digit and symbol
    # patterns (dates, prices, phone numbers) that corpora under-represent.
    return {
        "corpus": 0.46,
        "words": 0.12,
        "number": 0.04,
        "date": 0.04,
        "price": 0.04,
        "time": 0.03,
        "phone": 0.03,
        "abbreviation": 0.05,
        "punctuation": 0.07,
        "digits": 0.12,  # real MNIST digit strings, e.g. "4071 2983"
        "letters": 0.05,  # real EMNIST letters, words of the 21 letters it has (letters.py)
    }


@dataclass
class SynthConfig:
    """Probabilities and ranges of every text, layout and degradation choice."""

    data_dir: str | None = None  # None: $HWR_DATA_DIR or the repository's data/

    # --- text ---------------------------------------------------------------------------
    kind_weights: dict[str, float] = field(default_factory=_default_kind_weights)
    min_chars: int = 5
    max_chars: int = 80
    # Target length of a running-text line ~ N(mean, std) clipped to [min_chars, max_chars]
    # (IAM lines average about 40 characters); a share is uniform to cover the extremes.
    line_length_mean: float = 42.0
    line_length_std: float = 16.0
    line_length_uniform_prob: float = 0.2
    # Capitalisation variants of running text.
    upper_prob: float = 0.05
    title_prob: float = 0.04
    lower_prob: float = 0.04
    # Entity kinds (dates, prices, ...) are embedded in running words this often.
    entity_context_prob: float = 0.6
    # Every line index % val_text_modulo == 0 of each corpus file is validation text.
    val_text_modulo: int = 20

    # --- writer: size and layout ----------------------------------------------------------
    # x-height 18-36 px gives lines about 60-120 px from ascender to descender (2.5-3.5 x).
    x_height_range: tuple[float, float] = (18.0, 36.0)
    max_font_px: int = 160
    # Glyphs are cached at font sizes on a geometric grid of this ratio (few sizes per font keep
    # the cache small and warm); the remaining scale (at most half a step) is applied to the
    # whole line by the slant/rotation warp, which resamples it anyway.
    font_size_step: float = 1.25
    word_size_jitter_prob: float = 0.4  # words drawn at their own size (one resize each)
    word_size_jitter: float = 0.06  # std of the log scale of such a word
    word_baseline_jitter: float = 0.05  # std of the per-word baseline offset, x-heights
    baseline_walk: float = 0.03  # std of the per-word random-walk step of the baseline
    letter_spacing_prob: float = 0.35
    letter_spacing_range: tuple[float, float] = (-0.03, 0.12)  # extra advance per char, x-h
    word_gap_scale_range: tuple[float, float] = (0.8, 1.7)  # times the font's space advance
    word_gap_jitter: float = 0.15  # std of the per-gap scale factor
    # Tight-spacing fonts make spaces invisible; the label has a space, so the ink must show
    # a gap: at least this many x-heights between the ink of neighbouring words.
    min_word_gap: float = 0.5

    # --- writer: every letter its own (hand.py) -----------------------------------------------
    # Share of lines whose glyphs are varied per instance (the rest keep the font's exact shapes).
    instance_prob: float = 0.95
    # A line's writer multiplies every per-instance spread below by a draw from this range.
    instance_variability_range: tuple[float, float] = (0.4, 1.6)
    instance_rotation_std_deg: float = 1.8
    instance_shear_std: float = 0.05  # tan of the slant angle
    instance_scale_std: float = 0.06  # std of the log x and y scales, each on its own
    instance_offset_std: float = 0.04  # vertical offset from the baseline, x-heights
    instance_advance_std: float = 0.05  # extra advance after a glyph, x-heights
    # A bow of the instance's strokes: sideways displacement at one x-height above or below its
    # centre (and up/down at one x-height to either side), std in x-heights.
    instance_bend_std: float = 0.03
    # The line warp evaluates the instance maps on a grid this many x-heights apart (or
    # warp_grid_px if finer, 4 px at least): about two nodes per letter.
    instance_grid: float = 0.4
    # A glyph's pen changes by one pixel when |z| > this, z ~ N(0, 1) (1.5: about 13% of glyphs).
    instance_stroke_z: float = 1.5
    word_slant_std: float = 0.06  # each word's own slant on top of the line's (tan of the angle)
    word_squeeze_std: float = 0.07  # std of the log horizontal scale of a word
    # Each writer's letter width against the font's: std of its log, and the widths kept
    # (hand.writer_width). Asymmetric: fonts are drawn generously wide, hands often cramped.
    writer_width_std: float = 0.14
    writer_width_range: tuple[float, float] = (0.68, 1.3)
    # Each writer's x-height against the font's ascenders (hand.writer_band): small letters with
    # tall loops, or large ones with stubby ascenders. Std of its log; 0 = off (no draw).
    writer_band_std: float = 0.12
    writer_band_range: tuple[float, float] = (0.75, 1.3)
    # Joins: a share of writers connect neighbouring lowercase letters inside words.
    join_line_prob: float = 0.4
    join_prob_range: tuple[float, float] = (0.2, 0.8)  # per letter pair, for such a writer
    join_max_gap: float = 0.8  # letters further apart than this (x-heights) are never joined
    join_break_prob: float = 0.15  # a join stops short of the next letter
    # Struck-out words (strike.py): the share of training lines (font lines of two words or
    # more) with one word crossed out and transcribed `#`, as IAM does. Validation lines are
    # struck only when strike_validation says so (the struck set, struck_validation_config),
    # so synth:val and synth:hard stay the same from one stage to the next.
    struck_word_prob: float = 0.03
    strike_validation: bool = False
    # Breaks: a share of writers leave small gaps in strokes (pen skips, lifts).
    break_line_prob: float = 0.25
    break_glyph_prob: float = 0.12
    # Allographs (allographs.py): a share of writers draw a few lowercase letters in two forms,
    # the second from another font of the split, each instance one or the other. Training
    # lines only (allograph_validation: validation lines too), so synth:val and synth:hard stay.
    allograph_line_prob: float = 0.3
    allograph_letter_prob: float = 0.3  # per lowercase letter, for such a writer
    allograph_share_range: tuple[float, float] = (0.3, 0.7)  # instances drawn in the second form
    allograph_validation: bool = False

    # --- pens (pens.py): re-stroke the font's glyphs along their centre lines --------------
    # Share of font lines redrawn with a pen model. 0.3 until stage 18; lines re-stroked by a pen read
    # half again as badly as the fonts' own strokes (stage 17: 4.45% vs 2.97%), and people write with pens.
    restroke_prob: float = 0.5
    restroke_pens: dict[str, float] = field(default_factory=lambda: {
        "ballpoint": 0.3, "marker": 0.15, "pencil": 0.15, "nib": 0.15, "pressure": 0.25})
    # Stroke width of each pen, x-heights (nib and pressure: the widest).
    pen_width_ranges: dict[str, tuple[float, float]] = field(default_factory=lambda: {
        "ballpoint": (0.06, 0.11), "marker": (0.15, 0.25), "pencil": (0.06, 0.1), "nib": (0.16, 0.3),
        "pressure": (0.08, 0.15)})
    nib_angle_range_deg: tuple[float, float] = (15.0, 50.0)  # the nib's edge against the baseline
    restroke_jitter_range: tuple[float, float] = (0.0, 0.04)  # skeleton displacement std, x-heights

    # --- writer: real digits ------------------------------------------------------------
    inline_mnist_prob: float = 0.3  # a line with digits draws all of them from MNIST
    mnist_height_range: tuple[float, float] = (0.85, 1.15)  # digit height / font cap height
    digit_string_groups: tuple[int, int] = (1, 5)
    digit_group_length: tuple[int, int] = (1, 6)
    digit_spacing_range: tuple[float, float] = (0.0, 0.25)  # gap between digits, x-heights
    # Pen width of digit-only lines, x-heights (inline digits match the font's pen instead).
    digit_stroke_range: tuple[float, float] = (0.12, 0.22)

    # --- geometry -------------------------------------------------------------------------
    slant_mean: float = 0.08  # shear (tan of slant angle); handwriting leans right on average
    slant_std: float = 0.15
    slant_max: float = 0.45
    rotation_std_deg: float = 1.0
    rotation_max_deg: float = 3.0
    elastic_prob: float = 0.75
    elastic_amplitude_range: tuple[float, float] = (0.02, 0.1)  # displacement std, x-heights
    elastic_cell: float = 1.2  # correlation length of the distortion, x-heights
    warp_grid_px: int = 8  # the warp map is computed on this grid and interpolated

    # --- strokes and ink ------------------------------------------------------------------
    thicken_prob: float = 0.3
    thin_prob: float = 0.2
    # Thinning is undone when it would erase more than this share of the ink (thin fonts,
    # dots): a glyph that vanishes would make the label lie.
    thin_max_loss: float = 0.45
    ink_opacity_range: tuple[float, float] = (0.85, 1.0)
    # Pen types by weight: (probability, gray level range of the ink on white paper).
    pen_weights: dict[str, float] = field(
        default_factory=lambda: {"black": 0.45, "blue": 0.35, "pencil": 0.2}
    )
    pen_levels: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"black": (10.0, 60.0), "blue": (50.0, 105.0), "pencil": (80.0, 135.0)}
    )
    min_contrast: float = 60.0  # paper minus ink gray level, at least

    # --- paper ----------------------------------------------------------------------------
    paper_level_range: tuple[float, float] = (190.0, 252.0)
    gradient_prob: float = 0.4
    gradient_amplitude: float = 30.0
    stain_prob: float = 0.12
    stain_strength_range: tuple[float, float] = (8.0, 40.0)
    ruled_prob: float = 0.15
    ruled_level_range: tuple[float, float] = (140.0, 210.0)
    ruled_pitch_range: tuple[float, float] = (2.8, 3.6)  # distance between rules, x-heights
    noise_std_range: tuple[float, float] = (1.0, 9.0)
    speck_prob: float = 0.15

    # --- scan -----------------------------------------------------------------------------
    blur_prob: float = 0.6
    blur_sigma_range: tuple[float, float] = (0.3, 1.1)
    jpeg_prob: float = 0.3
    jpeg_quality_range: tuple[int, int] = (30, 90)
    # Margins around the ink box, in x-heights; the crop never cuts ink.
    margin_x_range: tuple[float, float] = (0.1, 1.5)
    margin_y_range: tuple[float, float] = (0.05, 0.6)
    min_margin_px: int = 2

    # --- pages ----------------------------------------------------------------------------
    page_lines_range: tuple[int, int] = (4, 12)
    page_line_pitch_range: tuple[float, float] = (2.8, 4.0)  # baseline to baseline, x-heights
    page_min_line_gap_px: int = 4
    page_indent_prob: float = 0.25
    page_indent_range: tuple[float, float] = (1.0, 5.0)  # x-heights
    page_left_jitter: float = 0.3  # std of each line's left edge, x-heights
    page_margin_range: tuple[float, float] = (0.03, 0.1)  # fraction of the page width
    page_skew_std_deg: float = 0.6
    page_skew_max_deg: float = 1.5
    page_ruled_prob: float = 0.3
    page_polygon_pad_px: int = 3

    # --- capture condition (capture.py), one per line, in meta["condition"] -----------------
    # None: by split (default_condition_weights).
    condition_weights: dict[str, float] | None = None
    # whiteboard: stroke width in x-heights (uniform, thin), and the blank frame around the text,
    # in multiples of the text's height on each side.
    whiteboard_stroke_range: tuple[float, float] = (0.06, 0.12)
    whiteboard_frame_x: tuple[float, float] = (0.2, 3.0)
    whiteboard_frame_y: tuple[float, float] = (0.3, 1.0)
    # binarised: the adaptive threshold's neighbourhood (x-heights) and offset (gray levels).
    binarise_block: float = 1.5
    binarise_offset_range: tuple[float, float] = (14.0, 30.0)
    # lowres: the writing (ink box height) shrinks to this many pixels before blowing up again.
    lowres_text_px: tuple[float, float] = (30.0, 40.0)
    # photo: squared instead of ruled paper this often; grid pitch in x-heights; the light's
    # multiplier range across the line; a shadow this often; corner shifts up to this many
    # x-heights; JPEG quality.
    photo_squared_prob: float = 0.4
    photo_square_pitch_range: tuple[float, float] = (1.4, 2.4)
    photo_light_range: tuple[float, float] = (0.6, 1.05)
    photo_shadow_prob: float = 0.3
    photo_tilt: float = 0.35
    photo_jpeg_quality_range: tuple[int, int] = (35, 85)
    photo_blur_sigma_range: tuple[float, float] = (0.4, 1.2)
    # archive: how far the paper's base level falls (gray levels) and its blotches' depth; how
    # often the back's writing shows through, how dark (gray levels at full coverage) and how
    # soft (x-heights); the ink's remaining coverage; the grain's spread (gray levels).
    archive_darken_range: tuple[float, float] = (0.0, 45.0)
    archive_blotch_range: tuple[float, float] = (3.0, 12.0)
    archive_show_prob: float = 0.7
    archive_show_depth_range: tuple[float, float] = (10.0, 35.0)
    archive_show_blur_range: tuple[float, float] = (0.03, 0.12)
    archive_fade_range: tuple[float, float] = (0.55, 0.9)
    archive_noise_range: tuple[float, float] = (8.0, 26.0)

    # --- neighbouring lines (neighbours.py): tails of the lines above/below in the crop ------
    # Share of training lines (not whiteboard captures, whose frame is blank) cut as from a page
    # by a bounding box; validation lines only when neighbour_validation says so (synth:val and
    # synth:hard keep every line they had; synth:neighbours:N measures the look).
    neighbour_prob: float = 0.15
    neighbour_validation: bool = False
    neighbour_sides: dict[str, float] = field(default_factory=lambda: {"above": 0.5, "below": 0.3, "both": 0.2})
    neighbour_pitch_range: tuple[float, float] = (2.6, 3.6)  # baseline to baseline, x-heights
    # How far the crop reaches beyond the line's own ink box, x-heights.
    neighbour_reach_range: tuple[float, float] = (0.3, 1.0)
    # The line's own band, x-heights above and below its baseline (or its ink box, if that is
    # taller), where no neighbour ink may go, with a clearance around it. Fonts' ascenders reach
    # 1.74 x-heights (the median of the training fonts), descenders 0.86.
    neighbour_own_band: tuple[float, float] = (1.9, 0.9)
    neighbour_clearance: float = 0.15

    def __post_init__(self) -> None:
        from hwr.synth.capture import check_weights  # capture and pens import this module
        from hwr.synth.pens import PENS

        if self.condition_weights is not None:
            check_weights(self.condition_weights)
        unknown = sorted((set(self.restroke_pens) | set(self.pen_width_ranges)) - set(PENS))
        if unknown:
            raise ValueError(f"unknown pen(s) {unknown}; expected some of {list(PENS)}")
        odd_sides = sorted(set(self.neighbour_sides) - {"above", "below", "both"})
        if odd_sides:
            raise ValueError(f"unknown neighbour side(s) {odd_sides}; expected some of above, below, both")

    def resolved_data_dir(self) -> Path:
        return Path(self.data_dir) if self.data_dir else default_data_dir()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SynthConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for name, value in known.items():
            # JSON turns tuples into lists; keep the declared tuple type.
            if isinstance(value, list):
                known[name] = tuple(value)
        return cls(**known)


HARD_SEED = 19  # the harder validation set is always these lines


def hard_validation_config() -> SynthConfig:
    """The harder validation set (issue 19): what people's pens look like, not font renderings.

    Validation fonts, text, digits and letters only (split "val"); every line varied per
    instance; half re-stroked by a pen model; every capture condition equally often; real
    EMNIST letters and MNIST/EMNIST digits by held-out writers in a quarter of the lines.
    """
    return SynthConfig(
        kind_weights={"corpus": 0.5, "words": 0.15, "letters": 0.15, "digits": 0.1, "date": 0.03,
                      "number": 0.03, "punctuation": 0.04},
        condition_weights={c: 1.0 for c in ("paper", "whiteboard", "binarised", "lowres", "photo")},
        instance_prob=1.0,
        instance_variability_range=(0.8, 1.6),
        join_line_prob=0.5,
        break_line_prob=0.3,
        restroke_prob=0.5,
    )


def neighbour_validation_config() -> SynthConfig:
    """The neighbours set: the harder set's writing, every line but the whiteboard captures cut
    with the tails of the lines above and below (neighbours.py)."""
    return replace(hard_validation_config(), neighbour_prob=1.0, neighbour_validation=True)


def struck_validation_config() -> SynthConfig:
    """The struck validation set: the harder set with one word crossed out in half of its font
    lines of two words or more. The strike draws from a child generator (strike.py), so with
    the same seed every unstruck line is the harder set's line, pixel for pixel, and the two
    sets differ only by the strikes."""
    return replace(hard_validation_config(), struck_word_prob=0.5, strike_validation=True)

