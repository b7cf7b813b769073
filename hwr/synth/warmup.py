"""Fill a FontBank's glyph caches before rendering starts, on several processes at once.

A rendering process rasterises each (font, grid size, character) glyph, and thins it to the
skeleton the pens redraw, the first time a line needs it: about 1.3 ms each. The training fonts
are drawn as some 40,000 such glyphs, and a fresh process keeps meeting new ones for tens of
thousands of lines (`bench/bench_synth.py`, one core: 113 lines/s over the first 8,000 lines,
180 lines/s after 30,000, when 0.2 glyphs a line are still new). A GPU stage lasts minutes and
its loader workers start fresh, so they would render at the cold rate for most of it. Warmed
here before they fork, every worker inherits all glyphs (copy-on-write) and renders at the warm
rate from its first line. The glyphs are the same bytes either way: FreeType rasterises a glyph
alike in any process, and the cache only decides when.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from hwr.interrupts import (
    exit_with_parent,
    quiet_workers_context,
    stop_workers_now,
    unguarded_main_note,
    workers_reran_main,
)
from hwr.synth.fonts import FontBank

log = logging.getLogger(__name__)


def prepare_font(bank: FontBank, name: str, x_height_range: tuple[float, float]) -> None:
    """Rasterise every character the font can draw at every grid size lines of it are drawn at
    (`FontBank.drawn_sizes`), with the skeleton, join anchors and pen width that go with them."""
    chars = sorted(ch for ch in bank.charset_chars - bank.coverage()[name] if not ch.isspace())
    for size in bank.drawn_sizes(name, x_height_range):
        bank.stroke_width(name, size)
        for ch in chars:
            if bank.glyph(name, size, ch).mask.size:
                bank.skeleton(name, size, ch)
            if "a" <= ch <= "z":  # the letters hands join (render._joinable)
                bank.anchors(name, size, ch)


def warm_font_bank(bank: FontBank, x_height_range: tuple[float, float], processes: int = 1) -> int:
    """Prepare every font of the bank (`prepare_font`); with processes > 1 the fonts are shared
    out among that many fresh processes and their glyphs gathered here. Returns the number of
    glyphs cached."""
    start = time.monotonic()
    names = bank.names
    if processes <= 1 or len(names) <= 1:
        for name in names:
            prepare_font(bank, name, x_height_range)
    else:
        jobs = [(bank.fonts_dir, name, sorted(bank.charset_chars), bank.size_step, bank.max_font_px, x_height_range)
                for name in names]
        # Spawned, not forked: the caller may already run OpenCV or torch thread pools, which a
        # forked child can hang in.
        pool = ProcessPoolExecutor(min(processes, len(names)), mp_context=quiet_workers_context("spawn"),
                                   initializer=exit_with_parent)
        try:
            for cached in pool.map(_prepared_alone, jobs):
                bank.absorb(cached)
        except BrokenProcessPool:
            if not workers_reran_main(pool):
                stop_workers_now(pool)
                raise
            # The main script, run again in each process, started this warm-up there too (it has
            # no __main__ guard): the fonts are prepared here instead, those done already at once.
            log.warning("warming the glyph cache in this process: %s", unguarded_main_note())
            stop_workers_now(pool)
            for name in names:
                prepare_font(bank, name, x_height_range)
        except BaseException:
            stop_workers_now(pool)  # a Ctrl-C: not after every font queued is rasterised
            raise
        pool.shutdown()
    glyphs = bank.cached_glyphs
    log.info("glyph cache warmed: %d glyphs of %d fonts in %.1f s (%d processes)", glyphs, len(names),
             time.monotonic() - start, max(1, processes))
    return glyphs


def _prepared_alone(job: tuple[Path, str, list[str], float, int, tuple[float, float]]) -> dict:
    fonts_dir, name, chars, size_step, max_font_px, x_height_range = job
    bank = FontBank(fonts_dir, [name], chars, size_step, max_font_px)
    prepare_font(bank, name, x_height_range)
    return bank.cached_of(name)
