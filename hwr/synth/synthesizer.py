"""LineSynthesizer: label -> writer -> ink -> paper -> scan, one reproducible line per index.

Every sample is a pure function of (seed, split, index): it draws from a fresh
`np.random.default_rng([seed, split_id, stream, index])`, so DataLoader workers, reruns and
exports reproduce the same pixels and labels in any order.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import cv2
import numpy as np

from hwr.recognition.charset import Charset
from hwr.records import LineSample
from hwr.synth import augment, capture
from hwr.synth.allographs import sample_allographs
from hwr.synth.config import SynthConfig, default_condition_weights
from hwr.synth.digits import DIGITS_FILE, EMNIST_DIGITS_FILE, MnistDigits
from hwr.synth.fonts import FontBank, fonts_for_split
from hwr.synth.hand import Proportions
from hwr.synth.letters import LETTERS_FILE, EmnistLetters
from hwr.synth.neighbours import add_neighbours
from hwr.synth.page import SynthPage, render_page
from hwr.synth.pens import Pen, ink_for
from hwr.synth.render import InkLine, WriterStyle, layout_line, sample_style
from hwr.synth.strike import STRUCK_LABEL, choose_strike
from hwr.synth.text import TextSampler, clean_text

log = logging.getLogger(__name__)

SPLIT_IDS = {"train": 0, "val": 1}
LINE_STREAM = 0
PAGE_STREAM = 1


@dataclass
class RenderedLine:
    """A finished line image with everything known about how it was drawn."""

    image: np.ndarray  # uint8 gray, dark ink on light paper
    text: str
    font: str
    kind: str
    ink_box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of the ink in `image`
    baseline: list[tuple[float, float]]
    x_height: float
    ink: str  # the ink colour (SynthConfig.pen_weights): black, blue or pencil
    pen: str  # the pen model that drew the strokes (pens.PENS) or "font"
    condition: str = "paper"  # how the line was captured (capture.CONDITIONS)
    struck: bool = False  # one word is crossed out and labelled `#` (strike.py)
    neighbours: bool = False  # tails of the lines above/below in the crop (neighbours.py)


class LineSynthesizer:
    """Synthetic handwritten lines of one split ("train" fonts/text/digits or held-out "val").

    kinds: restrict the text kinds (e.g. ("digits",) for MNIST digit-string lines); None uses
    SynthConfig.kind_weights.
    """

    def __init__(self, config: SynthConfig | None = None, split: str = "train",
                 charset: Charset | None = None, seed: int = 0, kinds: tuple[str, ...] | None = None):
        if split not in SPLIT_IDS:
            raise ValueError(f"unknown split {split!r}; expected one of {list(SPLIT_IDS)}")
        self.config = config or SynthConfig()
        self.split = split
        self.charset = charset or Charset()
        self.seed = int(seed)
        self.kinds = tuple(kinds) if kinds else None
        chosen = self.config.condition_weights
        self.condition_weights = default_condition_weights(split) if chosen is None else chosen
        data_dir = self.config.resolved_data_dir()
        self.texts = TextSampler(self.charset, split, self.config)
        self.fonts = FontBank(data_dir / "fonts", fonts_for_split(data_dir / "fonts", split),
                              self.charset.symbols, self.config.font_size_step, self.config.max_font_px)
        emnist_digits = data_dir / EMNIST_DIGITS_FILE
        self.digits = MnistDigits(data_dir / DIGITS_FILE, split, emnist_digits if emnist_digits.is_file() else None)
        self.letters = EmnistLetters(data_dir / LETTERS_FILE, split)
        self._warned: set[str] = set()

    def warm(self, processes: int = 1) -> int:
        """Do now what the first lines would do one by one: rasterise the glyphs of every font
        (hwr.synth.warmup; returns the number cached) and load the real digits and letters
        (cropping them takes a second; each one's pen is measured when first drawn). Worth it before forking
        loader workers, which then inherit all of it."""
        from hwr.synth.warmup import warm_font_bank

        glyphs = warm_font_bank(self.fonts, self.config.x_height_range, processes)
        if self.digits.path.is_file():
            self.digits.crops
        if self.letters.available:
            self.letters.chars
        return glyphs

    def rng(self, index: int, stream: int = LINE_STREAM) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLIT_IDS[self.split], stream, int(index)])

    def sample_id(self, index: int) -> str:
        """The id `sample(index)` gets, without rendering it (an export resumed skips lines by id)."""
        return f"synth-{self.split}-{self.seed}-{index:08d}"

    def sample(self, index: int) -> LineSample:
        line = self.render(self.rng(index))
        return LineSample(
            id=self.sample_id(index),
            text=line.text,
            image=line.image,
            meta={"font": line.font, "kind": line.kind, "x_height": round(line.x_height, 1),
                  "pen": line.pen, "ink": line.ink, "condition": line.condition, "split": self.split,
                  "struck": line.struck, "neighbours": line.neighbours, "seed": self.seed, "index": int(index)},
        )

    def render(self, rng: np.random.Generator, condition: str | None = None) -> RenderedLine:
        """One complete line: write it, crop with margins, then capture it (capture.py).

        condition: force a capture condition; None draws one from SynthConfig.condition_weights.
        """
        cfg = self.config
        if condition is None:
            condition = capture.choose_condition(rng, self.condition_weights)
        elif condition not in capture.CONDITIONS:
            raise ValueError(f"unknown capture condition {condition!r}; expected one of {list(capture.CONDITIONS)}")
        # A whiteboard capture is a pen-tip trace: thin uniform strokes, whatever the font's pen.
        pen = "ballpoint" if condition == "whiteboard" else None
        line, box = augment.crop_with_margins(self.write_line(rng, pen=pen), rng, cfg)
        # Tails of the lines above and below, in training lines only unless the config says so.
        # Drawn from a child generator: the line's own stream stays where it was, so the rest
        # of the line (ink, paper, scan) is drawn as without them and synth:neighbours pairs
        # with synth:hard line for line.
        if condition != "whiteboard" and (self.split == "train" or cfg.neighbour_validation):
            child = rng.spawn(1)[0]
            if child.random() < cfg.neighbour_prob:
                line, box = add_neighbours(line, box, child, cfg, self._write_neighbour)
        if condition == "whiteboard":
            image, framed = capture.whiteboard(line.ink, box, line.x_height, rng, cfg,
                                               thin_already=line.pen == "ballpoint")
            dx, dy = framed[0] - box[0], framed[1] - box[1]
            line = replace(line, baseline=[(x + dx, y + dy) for x, y in line.baseline])
            return self._finished(line, image, framed, "black", condition)
        if condition == "photo":
            image, box, ink, baseline = self._photograph(line, box, rng)
            return self._finished(replace(line, baseline=baseline), image, box, ink, condition)
        if condition == "archive":
            image, ink = self._archived(line, rng)
            return self._finished(line, image, box, ink, condition)
        rules = None
        if rng.random() < cfg.ruled_prob:
            # Writers sit their words on the printed rule; neighbouring rules show in margins.
            pitch = float(rng.uniform(*cfg.ruled_pitch_range)) * line.x_height
            base = self._baseline_y(line) + rng.normal(0.0, 0.05) * line.x_height
            rules = [base + k * pitch for k in range(-3, 4)]
        paper, paper_level = augment.make_paper(line.ink.shape, rng, cfg, rules)
        gray, ink = augment.apply_ink(paper, paper_level, line.ink, rng, cfg, ink_for(line.pen))
        image = augment.scan(gray, rng, cfg)
        if condition == "binarised":
            image = capture.binarise(image, line.x_height, rng, cfg)
        elif condition == "lowres":
            image = capture.lowres(image, box, rng, cfg)
        return self._finished(line, image, box, ink, condition)

    def _photograph(self, line: InkLine, box: tuple[int, int, int, int],
                    rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int], str, list]:
        """A phone photo of the line on ruled or squared paper."""
        cfg = self.config
        rows, cols = capture.photo_rules(line.ink.shape, self._baseline_y(line), line.x_height, rng, cfg)
        paper, paper_level = augment.make_paper(line.ink.shape, rng, cfg, rows)
        capture.draw_columns(paper, cols, paper_level, rng)
        gray, ink = augment.apply_ink(paper, paper_level, line.ink, rng, cfg, ink_for(line.pen))
        capture.uneven_light(gray, rng, cfg)
        gray, box, baseline = capture.perspective(gray, box, line.baseline, line.x_height, rng, cfg)
        gray = cv2.scaleAdd(augment.noise_field(gray.shape, rng), float(rng.uniform(*cfg.noise_std_range)), gray)
        image = np.clip(gray, 0, 255, out=gray).astype(np.uint8)
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(*cfg.photo_blur_sigma_range)))
        quality = int(rng.integers(cfg.photo_jpeg_quality_range[0], cfg.photo_jpeg_quality_range[1] + 1))
        return capture.jpeg(image, quality), box, ink, baseline

    def _archived(self, line: InkLine, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        """A scan of an old leaf: aged paper, the back showing through, faded ink, heavy grain."""
        cfg = self.config
        paper, paper_level = augment.make_paper(line.ink.shape, rng, cfg)
        gray, ink = capture.archive_leaf(paper, paper_level, line.ink, line.x_height, ink_for(line.pen), rng, rng, cfg)
        return augment.scan(gray, rng, cfg), ink

    def _write_neighbour(self, rng: np.random.Generator, line: InkLine) -> InkLine:
        """Another line in the font (when it covers the text), x-height and pen of `line`. The
        x-height is the line's as drawn, its writer's band already in it: the neighbour's band
        is 1 (Proportions(1, 1)), or the two lines' letters would differ in size by up to 1.3x."""
        return self.write_line(rng, font=line.font, x_height=line.x_height, pen=line.pen,
                               proportions=Proportions(1.0, 1.0))

    @staticmethod
    def _baseline_y(line: InkLine) -> float:
        (_, y0), (_, y1) = line.baseline
        return (y0 + y1) / 2

    @staticmethod
    def _finished(line: InkLine, image: np.ndarray, box: tuple[int, int, int, int], ink: str,
                  condition: str) -> RenderedLine:
        return RenderedLine(image, line.text, line.font, line.kind, box, line.baseline, line.x_height, ink,
                            line.pen, condition, line.struck, line.neighbours)

    def write_line(self, rng: np.random.Generator, font: str | None = None,
                   x_height: float | None = None, pen: Pen | str | None = None,
                   proportions: Proportions | None = None, stroke_change: int | None = None) -> InkLine:
        """Text and writer, then glyph layout, pen width and warp: the line's ink alone.

        font, x_height, proportions, pen, stroke_change: keep one writer across the lines of a
        page (font is used whenever it covers the line's text; proportions:
        hand.writer_proportions; pen: a pen model, pens.PENS or pens.FONT_PEN for the font's own
        strokes, or one writer's pen, pens.writer_pen; stroke_change: augment.draw_stroke_change).
        """
        preferred = font
        font, text = None, ""
        while not text:  # only a charset of symbols no font has could loop more than once
            text, kind = self.texts.sample(rng, self.kinds)
            real_letters = kind == "letters" and self.letters.available and self.letters.chars.issuperset(
                text.replace(" ", ""))
            if kind != "digits" and not real_letters:
                font, text = self.choose_font(rng, text, preferred)
        style: WriterStyle = sample_style(rng, self.config, self.fonts, font, any(c.isdigit() for c in text),
                                          x_height, pen, proportions)
        style.real_letters = font is None and kind == "letters"
        if style.hand is not None and (self.split == "train" or self.config.allograph_validation):
            style.allographs = sample_allographs(rng, self.config, self.fonts, font, style.hand.x_height,
                                                 0.0 if style.pen else style.pen_width)
        # Struck-out words in training lines, and in validation lines only for the struck set:
        # synth:val and synth:hard keep every line they had. Only for a charset that can write
        # their label (a model of --charset data from text without "#" could not learn it).
        strike = None
        if font is not None and (self.split == "train" or self.config.strike_validation) and \
                STRUCK_LABEL in self.charset.symbols:
            strike = choose_strike(rng, text.split(" "), self.config.struck_word_prob)
        line = layout_line(text, style, self.config, self.fonts, self.digits, rng, kind, self.letters, strike)
        if stroke_change is None:
            stroke_change = augment.draw_stroke_change(rng, self.config)
        line.ink = augment.change_stroke_width(line.ink, stroke_change, self.config)
        return augment.warp_line(line, rng, self.config)

    def sample_page(self, index: int, n_lines: int | None = None, archive: bool = False) -> SynthPage:
        """A page of several lines by one writer, reproducible from (seed, split, index);
        archive: on an old leaf (page.render_page)."""
        page_id = f"synth-{self.split}-{self.seed}-p{index:06d}"
        return render_page(self.rng(index, PAGE_STREAM), n_lines, synthesizer=self, page_id=page_id, archive=archive)

    def choose_font(self, rng: np.random.Generator, text: str, preferred: str | None = None) -> tuple[str, str]:
        """A random font of the split that can draw every character of `text`.

        If the first draw lacks a character, draw among the fonts that have it; if no font
        has them all, use the font that lacks the fewest and drop those characters from the
        label (saying so once per character set).
        """
        coverage = self.fonts.coverage()
        names = self.fonts.names
        font = preferred if preferred in coverage else names[int(rng.integers(len(names)))]
        if not (coverage[font] & set(text)):
            return font, text
        lacking = frozenset(ch for ch in set(text) if any(ch in coverage[n] for n in names))
        candidates = self.fonts.fonts_covering(lacking)
        if candidates:
            return candidates[int(rng.integers(len(candidates)))], text
        font = min(names, key=lambda n: len(coverage[n] & lacking))
        dropped = coverage[font] & lacking
        key = "".join(sorted(dropped))
        if key not in self._warned:
            self._warned.add(key)
            log.warning("no %s font draws all of %r: dropped from synthetic labels", self.split, key)
        return font, clean_text("".join(ch for ch in text if ch not in dropped), self.charset)
