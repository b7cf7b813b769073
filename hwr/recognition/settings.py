"""What every command that reads images shares: which model, device and decoder to read with
(`RecognizerSettings`, the base of `hwr transcribe`'s, `hwr eval`'s and `hwr ui`'s settings),
and the widths a doubtful line is read at again (hwr.recognition.width_variants reads them).

Torch-free, as the settings of every command are meant to be: `hwr transcribe --help` and a
mistyped flag answer at once, not after torch's few seconds of import. The model and the
decoder are imported when the settings load a recognizer or check a decoder's numbers.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hwr.config_args import check_at_least, setting
from hwr.errors import ConfigError

if TYPE_CHECKING:
    from hwr.recognition.model import Recognizer

MIN_FACTOR, MAX_FACTOR = 0.5, 3.0  # beyond these a line is no longer its writer's letters
# What the commands (hwr transcribe, hwr eval, hwr ui) read with unless told otherwise; the library's
# Recognizer reads with none unless asked, as it reads greedily unless asked. Measured with
# bench/bench_width_variants.py on the standard harder set (hwr-en-small stage 23): greedy 5.02% ->
# 4.53%, with the search 3.49% -> 3.04%, at 5-22% fewer lines/s.
DEFAULT_WIDTH_VARIANTS = (1.3,)
# Lines read as normalised with a greedy line confidence below this are read again at the other
# widths: on seed 7 of the harder set (hwr-en-small stage 23, factor 1.3) re-reading the 21% of
# lines below 0.95 read better than re-reading every line (greedy 4.65% against 4.69%, with the
# search 3.23% against 3.30%; plain 5.07% and 3.66%): a line read surely stays as it was read.
# 0.9 re-read 7% (4.77%, 3.32%), 0.98 47% (4.69%, 3.25%).
DOUBTFUL_BELOW = 0.95


def check_reread_below(value: float, flag: str = "--width-variants-below") -> float:
    """The confidence under which lines are read again, or a ConfigError naming the flag."""
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{flag} must be a positive number (above 1: every line), got {value}")
    return float(value)


def check_width_factors(factors: Sequence[float], flag: str = "--width-variants") -> tuple[float, ...]:
    """The extra width factors as a tuple, or a ConfigError naming the flag: each finite, within
    [MIN_FACTOR, MAX_FACTOR], not 1 (the line as normalised is always read) and not repeated."""
    for factor in factors:
        if not math.isfinite(factor) or not MIN_FACTOR <= factor <= MAX_FACTOR:
            raise ConfigError(f"{flag}: each factor must be between {MIN_FACTOR} and {MAX_FACTOR}, got {factor}")
        if factor == 1.0:
            raise ConfigError(f"{flag}: the line as normalised (factor 1) is always read; give only the other widths")
    if len(set(factors)) != len(factors):
        raise ConfigError(f"{flag}: a factor is given twice: {list(factors)}")
    return tuple(float(f) for f in factors)


@dataclass
class RecognizerSettings:
    """Which model, device and decoder to read with: the settings every command that reads
    images shares (`hwr transcribe`, `hwr eval`, the UI), declared once."""

    model: str | None = setting(None, help="model directory or shipped model name; default: the shipped model")
    device: str = setting("auto", help="cpu, cuda, cuda:N or auto")
    decoder: str = setting(
        "auto",
        help="auto: beam search with the shipped English character LM for a model of printable ASCII (the "
             "shipped ones), else greedy; greedy: the network's best path, about 1.5 times the lines/s on a "
             "CPU and many times on a GPU; beam (char LM; word LM when --lexicon is given), beam-char, beam-word")
    # Beam decoding (hwr.recognition.decode.BeamDecoder); None: the tuned default of the decoder's mode.
    lm: str | None = setting(
        None,
        help="ARPA (or .arpa.gz) LM for beam decoding, 'none' for no LM; unset: the shipped one")
    lexicon: str | None = setting(None, help="word lexicon for word mode; unset: the shipped one")
    beam_size: int | None = setting(None, help="beam width; unset: the mode's tuned default")
    lm_weight: float | None = setting(None, help="weight of the LM's log10 scores; unset: the mode's tuned default")
    word_score: float | None = setting(None, help="score added per word in word mode; unset: the tuned default")
    sil_score: float | None = setting(None, help="score added per word separator; unset: the tuned default")
    blank_penalty: float | None = setting(
        None,
        help="subtracted from the blank's log-posterior during beam search; unset: the tuned default")
    batch_size: int = setting(16, help="lines per batch through the network")
    width_variants: list[float] = setting(
        default_factory=lambda: list(DEFAULT_WIDTH_VARIANTS),
        help="also read a doubtful line stretched sideways by these factors and keep the reading the network is "
             "surest of (cramped hands read better stretched); give the flag alone for none")
    width_variants_below: float = setting(
        DOUBTFUL_BELOW,
        help="the greedy line confidence below which a line is read at the --width-variants too (above 1: every "
             "line)")
    search_workers: int | None = setting(
        None,
        help="processes that run the beam search while the network reads the next batches (each loads torch "
             "and the LM); 0: in the reading process; unset: 0 on a CPU, on a GPU half the CPU cores (at most 8)")

    def __post_init__(self) -> None:
        # The torch-free checks first: a bad width or worker count is told without torch's import.
        check_width_factors(self.width_variants)
        check_reread_below(self.width_variants_below)
        if self.search_workers is not None:
            check_at_least(self, 0, "search_workers")
        from hwr.recognition.decode import check_decoder_settings

        check_decoder_settings(self)

    def files_read(self, *models: str | None) -> list[Path]:
        """The files reading with these settings may open, which no output may be: the model's
        (and those of `models` given, e.g. --compare's; `model_files`), the --lm and --lexicon
        files, and the shipped LMs and lexicon where those are unset."""
        from hwr.recognition.decode import DEFAULT_FILES, default_lm_dir
        from hwr.recognition.model import model_files

        files = [file for model in (self.model, *(m for m in models if m)) for file in model_files(model)]
        files += [Path(p) for p in (self.lm, self.lexicon) if p and p != "none"]
        shipped = {name for mode in DEFAULT_FILES.values() for kind, name in mode.items()
                   if name and getattr(self, kind) is None}
        return files + [default_lm_dir() / name for name in sorted(shipped)]

    def load_recognizer(self, model: str | None = None, decoder: str | None = None) -> Recognizer:
        """`model` (default: these settings'), read with `decoder` (default: these settings');
        with `decoder` named (one of two readings: `hwr eval --compare-decoder`) only the search
        settings that decoder uses are passed (usable_options: none for greedy)."""
        from hwr.recognition.decode import decoder_options, usable_options
        from hwr.recognition.model import Recognizer

        options = decoder_options(self) if decoder is None else usable_options(decoder, decoder_options(self))
        return Recognizer.load(model or self.model, device=self.device, decoder=decoder or self.decoder,
                               search_workers=self.search_workers, width_variants=self.width_variants,
                               width_variants_below=self.width_variants_below, **options)
