"""The user's lines for `hwr adapt`: the adapt/held-out split, writer-like augmentation of real
crops, and the training stream that mixes them with synthetic rehearsal lines.

Not tested here: how much each augmentation helps (bench/bench_adapt.py measures the whole).
"""
from __future__ import annotations

import glob
import hashlib
import logging
import random
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from hwr.datasets import SkipReport
from hwr.errors import ConfigError, name_some
from hwr.fileio import utf8_bytes
from hwr.recognition.charset import Charset
from hwr.recognition.imaging import ImageError, load_gray, pixels_digest, readable_gray, readable_line
from hwr.records import LineSample
from hwr.synth import augment
from hwr.synth.config import SynthConfig
from hwr.synth.render import InkLine
from hwr.training.batches import ctc_frames

log = logging.getLogger("hwr.training.adapt_data")

# Which metadata field says which page or form a line came from, by reader: PAGE XML gives
# `page`, IAM `form`; pairs in sub-folders carry the folder in their id ("page-3/l004").
GROUP_FIELDS = ("page", "form")


def line_group(sample: LineSample) -> str | None:
    """The page or form a line belongs to, when the data says so."""
    for name in GROUP_FIELDS:
        if sample.meta.get(name):
            return str(sample.meta[name])
    folder, sep, _ = sample.id.rpartition("/")
    return folder if sep else None


@dataclass
class Split:
    adapt: list[LineSample]
    held_out: list[LineSample]
    by: str  # "page" (whole pages or forms held out) or "line" (random lines)


def split_lines(samples: list[LineSample], held_out_share: float, min_held_out: int, seed: int) -> Split:
    """Hold out whole pages (or forms) when the lines say which page they come from, so the
    held-out CER measures pages the model has not seen; otherwise random lines.

    Deterministic for a seed and independent of the input order (lines are sorted by id
    first). Lines whose page is not known stay on the adapting side: one such line among pages
    had turned the whole split to random lines, held-out lines sharing pages with the lines
    learnt from. Falls back to lines when fewer than two pages are known, or when whole pages
    would hold out more than twice the wanted share, or fewer lines than wanted.
    """
    if len(samples) < min_held_out + 2:
        raise ConfigError(f"adaptation needs at least {min_held_out + 2} labelled lines, got {len(samples)}")
    ordered = sorted(samples, key=lambda s: s.id)
    wanted = max(min_held_out, round(held_out_share * len(ordered)))
    groups: dict[str, list[LineSample]] = {}
    for sample in ordered:
        groups.setdefault(line_group(sample) or "", []).append(sample)
    unknown_page = groups.pop("", [])
    if len(groups) >= 2:
        names = sorted(groups)
        random.Random(seed).shuffle(names)
        chosen: set[str] = set()
        for name in names:
            if sum(len(groups[n]) for n in chosen) >= wanted:
                break
            chosen.add(name)
        taken = sum(len(groups[n]) for n in chosen)
        if wanted <= taken <= 2 * wanted and taken <= len(ordered) - 2:
            if unknown_page:
                log.info("%d lines whose page is not known are all adapted on (the held-out lines are whole pages)",
                         len(unknown_page))
            return Split([s for s in ordered if (line_group(s) or "") not in chosen],
                         [s for s in ordered if (line_group(s) or "") in chosen], "page")
    picked = set(random.Random(seed).sample(range(len(ordered)), wanted))
    return Split([s for i, s in enumerate(ordered) if i not in picked],
                 [s for i, s in enumerate(ordered) if i in picked], "line")


def without_repeats(samples: list[LineSample]) -> list[LineSample]:
    """Each line once: the first of lines with the same pixels and text (a folder named twice,
    a page exported twice). A repeat could land on both sides of the split, and the held-out
    CER, by which adapt keeps or refuses its weights, would then read lines it trained on."""
    seen: dict[tuple[str, str], str] = {}
    kept, repeats = [], []
    for sample in samples:
        key = (pixels_digest(sample.image), sample.text)
        if key in seen:
            repeats.append(f"{sample.id} (as {seen[key]})")
            continue
        seen[key] = sample.id
        kept.append(sample)
    if repeats:
        log.warning("%d line(s) given more than once, each used once: %s", len(repeats), name_some(repeats, 3))
    return kept


def augmentable(source: np.ndarray) -> tuple[np.ndarray, dict]:
    """A line image's pixels as the augmentation and the word cutter take them, and the meta
    that names its file's pixels when they differ (SOURCE_DIGEST: --unlabeled finds copies of a
    labelled line by them). A data set's padding or a polygon's mask (hwr.recognition.fill) goes
    before the line is distorted and cut into words: distorted, a fill is no longer flat and is
    left in, and its edges are taken for ink (the word cutter's x-height and baseline too). So
    does light ink's polarity, which the cutter and the augmentation take for dark."""
    pixels = readable_line(source)[0]
    return pixels, ({SOURCE_DIGEST: pixels_digest(source)} if pixels is not source else {})


def loaded(samples: list[LineSample], skip_bad: bool = False, report: SkipReport | None = None) -> list[LineSample]:
    """The lines with their pixels in memory (uint8 gray): the augmentation reworks them every
    step, so each file is decoded once, not once per use. Unreadable images are named all at
    once: a ConfigError, or with skip_bad a warning (and an entry in `report`), and those lines
    are left out."""
    out, failed = [], []
    for s in samples:
        try:
            pixels, known_by = augmentable(load_gray(s.image))
        except ImageError as exc:
            failed.append(s.with_row(str(exc)))
            if report is not None:
                report.add(s.where, None, str(exc).removeprefix(f"{s.where}: "))
            continue
        named = {**s.meta, "file": s.where, **known_by}  # messages about it still name its file
        out.append(replace(s, image=pixels, meta=named))
    if failed and not skip_bad:
        raise ConfigError(f"{len(failed)} line images cannot be read: {name_some(failed, 5)} (fix or remove "
                          "them, or use --skip-bad to leave them out)")
    if failed:
        log.warning("left out %d line images that cannot be read: %s", len(failed), "; ".join(failed))
    return out


def _left_out(bad: list[LineSample], why: str, skip_bad: bool) -> None:
    """Raise naming the lines (a few), or with skip_bad warn naming them all."""
    if not bad:
        return
    names = ", ".join(s.where for s in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    if not skip_bad:
        raise ConfigError(f"{names}: {why} (use --skip-bad to leave such lines out)")
    log.warning("left out %d lines: %s: %s", len(bad), why, ", ".join(s.where for s in bad))


def check_texts(samples: list[LineSample], skip_bad: bool) -> list[LineSample]:
    """Lines with text: an empty transcription of an inked line would teach the model to read
    nothing there (raise, or drop them with skip_bad)."""
    empty = [s for s in samples if not s.text.strip()]
    _left_out(empty, "empty transcription", skip_bad)
    return [s for s in samples if s.text.strip()]


def check_charset(samples: list[LineSample], charset: Charset, skip_bad: bool) -> list[LineSample]:
    """Lines the base model can learn: its charset is fixed, so a line with other characters
    would teach it nothing right (raise, or drop them with skip_bad, naming them). A character
    with a look-alike the model writes is written so first (Charset.folded: ’ as ', é as e): a
    phone's keyboard corrects every apostrophe to ’, and those lines had been left out."""
    folded = [replace(s, text=charset.folded(s.text)) for s in samples]
    changed = Counter(ch for s, f in zip(samples, folded) if s.text != f.text
                      for ch in charset.missing_chars(s.text) - charset.missing_chars(f.text))
    if changed:
        log.info("characters the base model writes otherwise, learnt as it writes them: %s",
                 ", ".join(f"{ch!r} x{n}" for ch, n in changed.most_common()))
    samples = folded
    report = charset.coverage((s.where, s.text) for s in samples)
    if report.ok:
        return samples
    if not skip_bad:
        raise ConfigError(f"the base model cannot write every character of these lines: {report.summary()} "
                         "(use --skip-bad to leave those lines out)")
    bad = [s for s in samples if charset.missing_chars(s.text)]
    _left_out(bad, f"characters the base model cannot write ({report.summary()})", skip_bad)
    return [s for s in samples if not charset.missing_chars(s.text)]


def check_lengths(samples: list[LineSample], base, skip_bad: bool) -> list[LineSample]:
    """Lines whose text the base network (`base`, a Recognizer) has frames enough for in its line
    image: CTC cannot align more characters than that, so such a line teaches nothing, and
    held out it reads as noise in the before/after figures (a paragraph's text pasted into one
    TextLine, 400 words on a 760-px crop, was held out and kept weights on a 0.0005 change; a
    probe helper). Raise, or drop them with skip_bad, naming them; so with a line image the
    network cannot read at all (fewer rows than a line has: a PAGE XML polygon a few pixels tall)."""
    unreadable: dict[int, str] = {}
    widths = []
    for sample in samples:
        try:
            widths.append(base.preprocess(sample.image).shape[1])
        except ImageError as exc:
            unreadable[id(sample)] = exc.reason
    for reason in sorted(set(unreadable.values())):
        _left_out([s for s in samples if unreadable.get(id(s)) == reason], reason, skip_bad)
    samples = [s for s in samples if id(s) not in unreadable]
    frames = base.net.frame_counts(torch.tensor(widths, dtype=torch.long)).tolist() if samples else []
    charset = base.charset
    short = [s for s, have in zip(samples, frames) if have < ctc_frames(charset.encode(s.text))]
    _left_out(short, "more characters than the network reads in the line image (a paragraph's text in one line?)",
              skip_bad)
    left_out = {id(s) for s in short}
    return [s for s in samples if id(s) not in left_out]


# --- augmentation of real crops -----------------------------------------------------------

def real_line_config() -> SynthConfig:
    """The synthetic engine's writer geometry, centred on the writer's own hand: a real line
    already has its writer's slant, so it varies around it (mean 0) and less than a font's."""
    return replace(SynthConfig(), slant_mean=0.0, slant_std=0.07, slant_max=0.25, rotation_std_deg=0.8,
                   rotation_max_deg=2.0, elastic_prob=0.8, elastic_amplitude_range=(0.02, 0.07),
                   thicken_prob=0.25, thin_prob=0.2, stain_prob=0.0, ruled_prob=0.0)


def ink_of(gray: np.ndarray) -> np.ndarray:
    """Ink coverage (uint8, 0 = paper) of a dark-on-light line, against the paper around each
    stroke: a max filter wider than any stroke sees the paper under it, so shadows, stains and
    light gradients stay paper (a cut-out word would otherwise carry its patch of shadow)."""
    g = gray.astype(np.float32)
    k = max(3, (gray.shape[0] // 3) | 1)
    paper = cv2.blur(cv2.dilate(g, np.ones((k, k), np.uint8)), (k, k))
    contrast = paper - g
    # The max filter also picks the brightest grain of the paper: what most pixels (paper)
    # differ by is that grain, not ink.
    contrast -= float(np.percentile(contrast, 60))
    depth = max(float(np.percentile(contrast, 99.5)), 40.0)  # the darkest strokes are full ink
    coverage = np.clip(contrast / depth, 0.0, 1.0)
    coverage[coverage < 0.2] = 0.0  # paper texture is not ink: warping it would smear it
    return (coverage * 255).astype(np.uint8)


def core_band(coverage: np.ndarray) -> tuple[float, float]:
    """(x-height, baseline y) from the row profile: the rows where most of the ink sits."""
    rows = np.count_nonzero(coverage > 127, axis=1).astype(np.float32)
    h = coverage.shape[0]
    if rows.max() <= 0:
        return 0.4 * h, 0.75 * h
    dense = np.flatnonzero(rows >= 0.4 * rows.max())
    x_height = float(np.clip(dense[-1] - dense[0] + 1, 0.15 * h, 0.8 * h))
    return x_height, float(dense[-1])


# The network reads lines a few dozen pixels high: distorting a 200-pixel scan at full size
# would cost most of a training step's time for detail the network never sees.
MAX_WORK_HEIGHT = 112


# px: the writer warp (cv2.remap) takes images under 32,767 px wide, and a line image 34,000 px
# wide stopped `hwr adapt` with a traceback. Wider than this at MAX_WORK_HEIGHT, a line is
# squeezed for the network anyway (NormalizeConfig.max_width at its line height).
MAX_WORK_WIDTH = 16384


def at_most(gray: np.ndarray, max_height: int = MAX_WORK_HEIGHT, max_width: int = MAX_WORK_WIDTH) -> np.ndarray:
    """The line scaled down, keeping its proportions, to at most max_height by max_width pixels."""
    height, width = gray.shape
    scale = min(max_height / height, max_width / width)
    if scale >= 1.0:
        return gray
    size = (max(1, min(max_width, round(width * scale))), max(1, min(max_height, round(height * scale))))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def augment_real_line(gray: np.ndarray, rng: np.random.Generator, cfg: SynthConfig,
                      max_height: int = MAX_WORK_HEIGHT) -> np.ndarray:
    """One writer-like variant of a real line crop: pen width, slant, rotation and elastic
    warp from the synthetic engine, then paper, pen and scan. The letter shapes stay the
    writer's; the variation stands in for the lines the writer did not write."""
    gray = at_most(gray, max_height)
    coverage = ink_of(gray)
    if not coverage.any():
        return gray
    return redraw(coverage, *core_band(coverage), rng, cfg)


def redraw(coverage: np.ndarray, x_height: float, baseline_y: float, rng: np.random.Generator,
           cfg: SynthConfig) -> np.ndarray:
    """Ink coverage (0 = paper) -> a gray line with the engine's writer geometry, paper and scan."""
    w = coverage.shape[1]
    line = InkLine(ink=coverage, baseline=[(0.0, baseline_y), (float(w), baseline_y)], x_height=x_height,
                   text="", font="real", kind="real", scale=float(rng.uniform(0.85, 1.15)))
    line.ink = augment.adjust_stroke_width(line.ink, rng, cfg)
    line = augment.warp_line(line, rng, cfg)
    line, _ = augment.crop_with_margins(line, rng, cfg)
    paper, level = augment.make_paper(line.ink.shape, rng, cfg)
    ink_gray, _ = augment.apply_ink(paper, level, line.ink, rng, cfg)
    return augment.scan(ink_gray, rng, cfg)


# --- new lines from the user's words ---------------------------------------------------------

@dataclass
class WordPiece:
    """One word cut from a user's line: its ink coverage strip (the line's full height, from
    the middle of the space before it to the middle of the space after it), and the line's
    x-height and baseline, which place it beside words from other lines."""

    coverage: np.ndarray
    text: str
    x_height: float
    baseline: float


def cut_words(recognizer, samples: list[LineSample]) -> list[list[WordPiece]]:
    """Each line's words, cut where the base model's forced alignment of the true text puts
    the middle of each space (the model need not read the line right: the alignment only has to
    find where the spaces fall, and it is told what the text is). Lines that cannot be aligned
    (too short for their text) give no words."""
    from hwr.recognition.align import align_labels, char_extents
    from hwr.recognition.charset import normalize_text

    cut = []
    for sample in samples:
        gray = at_most(sample.image)
        text = normalize_text(sample.text)
        line, geometry = recognizer.preprocess_with_geometry(gray)
        log_probs, lengths = recognizer.log_probs([line])
        aligned = align_labels(log_probs[: int(lengths[0]), 0], recognizer.charset.encode(text))
        coverage = ink_of(gray)
        if not aligned or len(aligned) != len(text) or not coverage.any():
            cut.append([])
            continue
        frame_width = line.shape[1] / int(lengths[0])
        extents = char_extents([(a.first, a.last) for a in aligned], frame_width)
        x_height, baseline = core_band(coverage)
        words, start, begin = [], 0, 0
        for k, ch in enumerate(text + " "):
            if ch != " ":
                continue
            end = coverage.shape[1] if k == len(text) else int(round(geometry.to_source_x(sum(extents[k]) / 2)))
            if k > start and end > begin:
                words.append(WordPiece(coverage[:, begin:end], text[start:k], x_height, baseline))
            start, begin = k + 1, max(begin, end)
        cut.append(words)
    return cut


def recombine(pieces: list[list[WordPiece]], rng: np.random.Generator, cfg: SynthConfig) -> tuple[np.ndarray, str]:
    """A line the user never wrote: as many words as one of their lines has, each drawn from
    any of their lines, scaled to one x-height and set on one baseline, then redrawn with the
    writer geometry. The network sees the hand's letters in new orders and contexts, so it
    learns the letters rather than the few lines' texts by heart."""
    lines = [words for words in pieces if words]
    count = len(lines[int(rng.integers(len(lines)))])
    every = [w for words in lines for w in words]
    chosen = [every[int(i)] for i in rng.integers(len(every), size=count)]
    x_height = chosen[0].x_height
    placed = []
    for word in chosen:
        # Lines of one collection share a size; the clamp keeps a bad estimate from blowing one up.
        scale = float(np.clip(x_height / max(word.x_height, 1.0), 0.75, 1.33))
        h, w = word.coverage.shape
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        placed.append((cv2.resize(word.coverage, size, interpolation=cv2.INTER_AREA), word.baseline * scale))
    above = max(b for _, b in placed)
    below = max(img.shape[0] - b for img, b in placed)
    canvas = np.zeros((int(np.ceil(above + below)) + 1, sum(img.shape[1] for img, _ in placed)), np.uint8)
    x = 0
    for img, baseline in placed:
        y = int(round(above - baseline))
        canvas[y:y + img.shape[0], x:x + img.shape[1]] = np.maximum(canvas[y:y + img.shape[0], x:x + img.shape[1]], img)
        x += img.shape[1]
    # Words from the widest lines, side by side, can pass what the warp takes.
    fitted = at_most(canvas, max_height=canvas.shape[0])
    shrink = fitted.shape[1] / canvas.shape[1]
    return redraw(fitted, x_height * shrink, above * shrink, rng, cfg), " ".join(word.text for word in chosen)


# --- lines without transcriptions: self-training -------------------------------------------

# Unlabeled lines read at most (a seeded sample past it): ~20 s of reading on 2 cores.
MAX_UNLABELED = 2000
# Meta keys of an image read both ways in auto mode: the image's page id on the whole reading and
# on each of its cut lines, and True on the whole one.
READING_OF = "reading_of"
WHOLE_READING = "whole_reading"
# pixels_digest of the image a line came from, where its pixels differ: a whole reading's (reduced
# from it), and a labelled or unlabeled line image's (augmentable: in dark ink, without pepper or
# a fill); --unlabeled finds copies of labelled lines by it.
SOURCE_DIGEST = "source_digest"


def unlabeled_lines(inputs: list[str], skip_bad: bool, seed: int, limit: int = MAX_UNLABELED,
                    labelled_pages: frozenset[Path] = frozenset(), mode: str = "line") -> list[LineSample]:
    """Lines of the hand with no transcription, pixels loaded: the pages of PDFs and multi-page
    TIFFs cut into lines as `hwr transcribe` cuts them, and each image read as `mode` says
    (hwr.documents.prepare.layout_page): "line", one line image; "page", a page cut into lines;
    "auto", as `hwr transcribe` reads it: one line image, unless the segmenter finds two lines or
    more; then both its cut lines and the image whole are returned (meta READING_OF names the
    image, WHOLE_READING marks the whole one), and `pseudo_labelled` keeps the surer reading
    (the segmenter cuts 18% of 400 `sacramento` line images into pieces). "line" stays the
    default: on line images auto mode learnt as well but no better (README, "Adapt").
    Inputs are files, folders, list files or patterns, as `hwr transcribe` takes them;
    unreadable ones are treated as `loaded` treats them.

    A path that does not exist is an error even with skip_bad (a typo would otherwise leave
    self-training silently off). A page in `labelled_pages` (the page images the labelled lines
    were cut from) is left out: its corrected lines may be the held-out ones, and cut again they
    would not be recognised as copies. Files are read in a seeded order until `limit` lines are
    found, and past it a seeded sample of those is kept: reading is part of the run's minutes, and
    thousands of lines would leave none for training."""
    from hwr.documents.linegeom import cut_line
    from hwr.documents.pages import expand_inputs, load_page, page_refs
    from hwr.documents.prepare import failure_reason, layout_page, reads_both_ways, whole_reading_image

    missing = [str(i) for i in inputs if not Path(i).exists() and not glob.has_magic(str(i))]
    if missing:
        raise ConfigError(f"--unlabeled: no such file or folder: {name_some(missing, 5)}")
    try:
        found = [path for path, _ in expand_inputs(inputs)]
    except ImageError as exc:  # a folder or list file that cannot be read, or holds nothing
        raise ConfigError(str(exc)) from exc
    if labelled_pages:  # each file's path resolved once, and only when there is something to match
        labelled = {_resolved(p) for p in labelled_pages}
        given = [(p, _resolved(p) in labelled) for p in found]
        left_out = [p for p, known in given if known]
        if left_out:
            log.info("--unlabeled: left out %d pages whose corrected lines are given too: %s", len(left_out),
                     name_some([str(p) for p in left_out], 3))
        found = [p for p, known in given if not known]
    random.Random(seed).shuffle(found)
    lines, failed = [], []
    for ref in page_refs(found):
        if len(lines) >= limit:
            break
        try:
            gray = load_page(ref)
            readable = readable_gray(gray)  # segmented so; the digests stay the image's own
            page, is_line = layout_page(readable, "page" if ref.is_document_page else mode, ref.page_id, ref.source,
                                        ref.is_document_page)
        except Exception as exc:  # noqa: BLE001 - one unusable page never stops the rest (as in hwr transcribe)
            failed.append(str(exc) if isinstance(exc, ImageError) else f"{ref.source}: {failure_reason(exc)}")
            continue
        if is_line:  # learnt from as the labelled lines are (`loaded`): dark ink, out of a fill
            pixels, known_by = augmentable(gray)
            lines.append(LineSample(ref.source, "", pixels, {"file": ref.source, **known_by}))
            continue
        read_whole_too = reads_both_ways(mode, ref.is_document_page, is_line)
        if read_whole_too:  # read whole as hwr transcribe reads it: a page-sized image from a reduced copy
            # The digest of the image itself: the reduced copy's would not match a labelled copy of it.
            lines.append(LineSample(ref.source, "", whole_reading_image(gray)[0],
                                    {"file": ref.source, READING_OF: ref.page_id, WHOLE_READING: True,
                                     SOURCE_DIGEST: pixels_digest(gray)}))
        for line in page.lines:
            where = f"{ref.source}#{line.id}"
            meta = {"file": where, "page_image": str(ref.path), **({READING_OF: ref.page_id} if read_whole_too else {})}
            lines.append(LineSample(where, "", cut_line(readable, line, turn=page.orientation), meta))
    if failed and not skip_bad:
        raise ConfigError(f"{len(failed)} --unlabeled images cannot be read: {name_some(failed, 5)} (fix or remove "
                          "them, or use --skip-bad to leave them out)")
    if failed:
        log.warning("left out %d --unlabeled images that cannot be read: %s", len(failed), "; ".join(failed))
    if len(lines) > limit:
        lines = sample_whole_images(lines, limit, seed)
    return sorted(lines, key=lambda s: s.id)


def sample_whole_images(lines: list[LineSample], limit: int, seed: int) -> list[LineSample]:
    """A seeded sample of about `limit` lines that keeps an image read both ways whole: all of
    its readings or none (its whole reading alone, unweighed, might be a page squeezed flat; its
    cut lines alone, the fragments the second reading exists to avoid)."""
    units: dict[str, list[LineSample]] = {}
    for sample in lines:
        units.setdefault(sample.meta.get(READING_OF, sample.id), []).append(sample)
    order = list(units.values())
    random.Random(seed).shuffle(order)
    kept: list[LineSample] = []
    for unit in order:
        if kept and len(kept) + len(unit) > limit:
            continue
        kept.extend(unit)
    log.info("%d unlabeled lines: reading %d of them (a seeded sample)", len(lines), len(kept))
    return kept


def keep_surer_readings(samples: list[LineSample], recognitions: list) -> tuple[list[LineSample], list]:
    """Of each image read both ways (meta READING_OF), only the surer reading's samples and
    recognitions (hwr.documents.reading_choice): its cut lines or the image whole. An image
    with readings of one kind only here keeps them as they are."""
    from hwr.documents.reading_choice import whole_reading_wins

    groups: dict[str, list[int]] = {}
    for k, sample in enumerate(samples):
        if READING_OF in sample.meta:
            groups.setdefault(sample.meta[READING_OF], []).append(k)
    dropped, read_whole = set(), 0
    for members in groups.values():
        wholes = [k for k in members if samples[k].meta.get(WHOLE_READING)]
        cut = [k for k in members if not samples[k].meta.get(WHOLE_READING)]
        if not wholes or not cut:
            continue
        whole_wins = whole_reading_wins([recognitions[k] for k in cut], recognitions[wholes[0]])
        dropped.update(cut if whole_wins else wholes)
        read_whole += whole_wins
    if groups:
        log.info("%d unlabeled images read both ways (as lines and whole): %d of them read whole", len(groups),
                 read_whole)
    kept = [k for k in range(len(samples)) if k not in dropped]
    return [samples[k] for k in kept], [recognitions[k] for k in kept]


def _resolved(path: Path) -> Path:
    try:
        return Path(path).resolve()
    except OSError:  # a symlink loop: compared as given
        return Path(path)


def pseudo_labelled(recognizer, samples: list[LineSample], keep: float, batch_size: int = 16
                    ) -> list[LineSample]:
    """The share `keep` of the lines that the recognizer reads most surely, labelled with what
    it reads (self-training: the model learns the hand from many more of its lines than were
    corrected). Ranked by the line's confidence (its characters' mean), not its least sure
    character: on 400 uncorrected lines of each of five validation hands, the surest half by
    the mean carried fewer wrong characters for all five with the LM search's readings (4.5%
    against 7.8% on the hand read worst), and for the four measured with greedy readings.
    Lines read as empty are never kept. An image read both ways (unlabeled_lines, auto mode)
    counts as the reading `keep_surer_readings` keeps."""
    if not samples or keep <= 0:
        return []
    samples, read = keep_surer_readings(samples, recognizer.recognize([s.image for s in samples], batch_size))
    surest = [(r.confidence, k) for k, r in enumerate(read) if r.text.strip()]
    surest.sort(key=lambda pair: (-pair[0], pair[1]))
    kept = sorted(k for _, k in surest[: max(1, round(keep * len(samples)))])
    return [replace(samples[k], text=read[k].text, meta={**samples[k].meta, "pseudo_label": True}) for k in kept]


class AdaptLines(Dataset):
    """The training stream: `size` lines, each a pure function of (seed, index) - a synthetic
    rehearsal line with probability `rehearsal`, else a new line recombined from the user's
    words with probability `recombine`, else one of the user's lines, augmented with
    probability `augment_prob` (a share stays as written, so the model also sees the real
    paper and pen).

    Rehearsal (replaying the base model's kind of data, as in continual learning) keeps the
    model reading other hands and text while it learns this one. With `pseudo` lines (the
    hand's uncorrected lines labelled by the base model, pseudo_labelled), a share
    `pseudo_share` of the lines that are not rehearsal is one of them (drawn before the
    recombination, so the share is what it says), always augmented: the label was
    read from the clean line, and the network learns it under distortion (as Noisy Student
    training does), not the line as the base model already saw it.
    """

    def __init__(self, lines: list[LineSample], size: int, rehearsal: float, augment_prob: float, seed: int,
                 charset: Charset, synth_split: str = "train", words: list[list[WordPiece]] | None = None,
                 recombine: float = 0.0, pseudo: list[LineSample] | None = None, pseudo_share: float = 0.0):
        if not lines:
            raise ValueError("no lines to adapt on")
        self.lines, self.size, self.rehearsal, self.augment_prob, self.seed = lines, size, rehearsal, augment_prob, seed
        # Recombining needs two words at least, or every "new" line would be an old one.
        self.words = words if words and sum(len(w) for w in words) >= 2 else None
        self.recombine = recombine
        self.pseudo, self.pseudo_share = (pseudo, pseudo_share) if pseudo and pseudo_share > 0 else (None, 0.0)
        self.config = real_line_config()
        self.synthetic = None
        if rehearsal > 0:
            from hwr.datasets.synthetic import SyntheticLines

            self.synthetic = SyntheticLines(size, split=synth_split, charset=charset, seed=seed)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> LineSample:
        rng = np.random.default_rng([self.seed, 20, int(index)])
        if self.synthetic is not None and rng.random() < self.rehearsal:
            return self.synthetic[index]
        if self.pseudo is not None and rng.random() < self.pseudo_share:
            return self._augmented(self.pseudo[int(rng.integers(len(self.pseudo)))], index, rng)
        if self.words is not None and rng.random() < self.recombine:
            image, text = recombine(self.words, rng, self.config)
            return LineSample(id=f"words#{index}", text=text, image=image, meta={})
        line = self.lines[int(rng.integers(len(self.lines)))]
        if rng.random() >= self.augment_prob:
            return line
        return self._augmented(line, index, rng)

    def _augmented(self, line: LineSample, index: int, rng: np.random.Generator) -> LineSample:
        image = augment_real_line(line.image, rng, self.config)
        return LineSample(id=f"{line.id}#aug{index}", text=line.text, image=image, meta=line.meta)


def lines_fingerprint(samples: list[LineSample]) -> str:
    """A short digest of the lines' ids and texts: names the data a model was adapted on."""
    digest = hashlib.sha256()
    for s in sorted(samples, key=lambda s: s.id):
        digest.update(utf8_bytes(f"{s.id}\t{s.text}\n"))  # an id from a file name may not be UTF-8
    return digest.hexdigest()[:12]
