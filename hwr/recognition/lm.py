"""N-gram language models in ARPA format: interpolated modified Kneser-Ney estimation.

The beam-search decoder (flashlight's, through torchaudio) reads ARPA files with KenLM, but
KenLM's estimator `lmplz` is a C++ tool that is not on PyPI, and no maintained Python package
here writes ARPA files. So this module is a small estimator of its own, following Chen &
Goodman (1998, "An empirical study of smoothing techniques for language modeling", sec. 3.4)
as KenLM's `lmplz` implements it (Heafield et al. 2013):

- orders below the highest use continuation counts (how many distinct words precede an
  n-gram) instead of raw counts, except n-grams that start with <s>, which nothing precedes;
- three discounts per order, D1, D2, D3+, from the count-of-counts n1..n4;
- every order is interpolated with the next lower one; unigrams with the uniform
  distribution, which is what gives <unk> its probability;
- the ARPA back-off weight of a context is its interpolation weight gamma(h), recomputed after
  count pruning so that every conditional distribution still sums to one.

Tokens are interned as single Unicode characters, so an n-gram is a short `str` and counting
millions of them is a `Counter` over string slices rather than over tuples.
"""
from __future__ import annotations

import logging
import math
import re
import sys
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

from hwr.config_args import check_fields, setting
from hwr.errors import ConfigError
from hwr.fileio import atomic_write_gzip_by_suffix, open_maybe_gzipped
from hwr.recognition.charset import normalize_text

log = logging.getLogger("hwr.recognition.lm")
T = TypeVar("T")

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
# ARPA's stand-in for log10(0): <s> is a context, never a prediction.
LOG_ZERO = -99.0
# The orders the beam decoder can read: KenLM as flashlight-text's wheels build it stores at most
# 6-grams (KENLM_MAX_ORDER at compile time) and its probing model needs at least bigrams.
KENLM_MIN_ORDER, KENLM_MAX_ORDER = 2, 6
# Interned token ids start in the supplementary planes, clear of the surrogate range.
_CODE_BASE = 0x10000


@dataclass
class NgramModel:
    """An estimated model: per order, n-gram -> (log10 prob, log10 back-off weight).

    N-gram keys are tuples of tokens; orders run 1..order.
    """

    order: int
    ngrams: list[dict[tuple[str, ...], tuple[float, float]]] = field(default_factory=list)

    def logprob(self, word: str, context: Sequence[str] = ()) -> float:
        """log10 P(word | context) as a back-off ARPA reader (KenLM) computes it."""
        context = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        backoff = 0.0
        while True:
            entry = self.ngrams[len(context)].get(context + (word,))
            if entry is not None:
                return backoff + entry[0]
            if not context:
                return backoff + self.ngrams[0][(UNK,)][0]
            bow = self.ngrams[len(context) - 1].get(context)
            backoff += bow[1] if bow else 0.0
            context = context[1:]

    def vocabulary(self) -> list[str]:
        return [g[0] for g in self.ngrams[0]]

    def write_arpa(self, path: str | Path) -> Path:
        path = Path(path)
        lines = ["", "\\data\\"]
        lines += [f"ngram {n + 1}={len(table)}" for n, table in enumerate(self.ngrams)]
        for n, table in enumerate(self.ngrams):
            lines += ["", f"\\{n + 1}-grams:"]
            highest = n + 1 == self.order
            for gram, (logp, bow) in sorted(table.items()):
                text = f"{logp:.6f}\t{' '.join(gram)}"
                lines.append(text if highest else f"{text}\t{bow:.6f}")
        lines += ["", "\\end\\", ""]
        # KenLM reads gzipped ARPA directly; the shipped models use that to stay small.
        atomic_write_gzip_by_suffix(path, "\n".join(lines).encode("utf-8"))
        return path


def arpa_unigrams(path: str | Path) -> list[str] | None:
    """The words of an ARPA file's 1-gram section (plain or gzipped), read no further; None when
    the file does not start as ARPA text (a KenLM binary model: KenLM reads and checks it)."""

    def unigrams(lines: Iterator[str]) -> list[str] | None:
        if not any(line == "\\1-grams:" for line in lines):
            return None
        words = []
        for line in lines:
            if not line or line.startswith("\\"):
                return words
            fields = line.split()
            if len(fields) >= 2:
                words.append(fields[1])
        return words

    return _read_arpa(path, unigrams)


_COUNT_LINE = re.compile(r"ngram\s+(\d+)\s*=\s*([-+]?\d+)")


def arpa_counts(path: str | Path) -> dict[int, int] | None:
    """The n-gram counts an ARPA file's header declares (order -> count); None when the file
    does not start as ARPA text. Header lines that are not whole numbers are left to KenLM,
    whose message for them is clear."""

    def counts(lines: Iterator[str]) -> dict[int, int]:
        declared = {}
        for line in lines:
            if line.startswith("\\"):
                break
            match = _COUNT_LINE.fullmatch(line)
            if match:
                declared[int(match[1])] = int(match[2])
        return declared

    return _read_arpa(path, counts)


def _read_arpa(path: str | Path, read: Callable[[Iterator[str]], T]) -> T | None:
    """`read` of an ARPA file's stripped lines after its \\data\\ line (plain or gzipped); None
    when the file does not start as ARPA text or is damaged before `read` is done with it
    (KenLM's own message says where)."""
    try:
        with open_maybe_gzipped(path, "rt", encoding="utf-8", errors="replace") as f:
            lines = (line.strip() for line in f)
            if next((line for line in lines if line), None) != "\\data\\":
                return None
            return read(lines)
    except (OSError, EOFError, zlib.error):
        return None


class _Interner:
    """Token <-> one-character code, so n-grams are str slices."""

    def __init__(self):
        self.codes: dict[str, str] = {}
        self.tokens: list[str] = []

    def encode(self, tokens: Iterable[str]) -> str:
        out = []
        for tok in tokens:
            code = self.codes.get(tok)
            if code is None:
                if _CODE_BASE + len(self.tokens) > sys.maxunicode:
                    raise ConfigError(f"the corpus holds more than {sys.maxunicode - _CODE_BASE + 1} distinct tokens, "
                                      "the most hwr lm build counts; build from a smaller corpus")
                code = chr(_CODE_BASE + len(self.tokens))
                self.codes[tok] = code
                self.tokens.append(tok)
            out.append(code)
        return "".join(out)

    def decode(self, gram: str) -> tuple[str, ...]:
        return tuple(self.tokens[ord(c) - _CODE_BASE] for c in gram)


def count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> tuple[list[Counter], _Interner]:
    """Raw counts of every n-gram, orders 1..order, over sentences padded with <s> ... </s>."""
    interner = _Interner()
    bos, eos = interner.encode([BOS]), interner.encode([EOS])
    counts = [Counter() for _ in range(order)]
    for sentence in sentences:
        s = bos + interner.encode(sentence) + eos
        for n in range(1, order + 1):
            counts[n - 1].update(s[i : i + n] for i in range(len(s) - n + 1))
    return counts, interner


def adjusted_counts(raw: list[Counter], bos: str) -> list[Counter]:
    """Kneser-Ney counts: continuation counts N1+(. w) below the highest order, except for
    n-grams starting with <s> (nothing can precede them, so their raw count stands)."""
    order = len(raw)
    adjusted = [Counter() for _ in range(order)]
    adjusted[-1] = raw[-1]
    for n in range(order - 1, 0, -1):
        cont = Counter(gram[1:] for gram in raw[n])
        table = adjusted[n - 1]
        for gram, c in raw[n - 1].items():
            table[gram] = c if gram[0] == bos else cont.get(gram, 0)
    return adjusted


def discounts(counts: Counter) -> tuple[float, float, float]:
    """Modified KN discounts D1, D2, D3+ (Chen & Goodman eq. 26) from counts-of-counts.

    Tiny corpora can lack some count-of-counts; then the estimate falls back to the plain KN
    discount Y (or 0.5), kept within [0, k] so no discounted count turns negative."""
    n = Counter(min(c, 5) for c in counts.values() if c > 0)
    n1, n2, n3, n4 = (n.get(k, 0) for k in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2) if n1 and n2 else 0.5
    out = []
    for k, (below, above) in enumerate(((n1, n2), (n2, n3), (n3, n4)), start=1):
        d = k - (k + 1) * y * above / below if below else y
        out.append(min(d, float(k)) if d > 0 else y)
    return tuple(out)  # type: ignore[return-value]


def _discount(c: int, d: tuple[float, float, float]) -> float:
    return d[min(c, 3) - 1]


def _context_stats(counts: Counter, d: tuple[float, float, float]) -> dict[str, tuple[float, float]]:
    """Per context h: (total count c(h .), gamma(h) = discounted mass / c(h .))."""
    total: dict[str, float] = defaultdict(float)
    mass: dict[str, float] = defaultdict(float)
    for gram, c in counts.items():
        if c > 0:
            total[gram[:-1]] += c
            mass[gram[:-1]] += _discount(c, d)
    return {h: (total[h], mass[h] / total[h]) for h in total}


def interpolated_probs(adjusted: list[Counter], bos: str,
                       unk: str) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """Interpolated KN probabilities P(w | h) for every counted n-gram, and gamma(h) per context."""
    probs: list[dict[str, float]] = []
    gammas: list[dict[str, float]] = []
    for n, counts in enumerate(adjusted):
        table: dict[str, float] = {}
        if n == 0:
            # <s> is never predicted; <unk> has count 0 and lives on the uniform share alone.
            predicted = Counter({g: c for g, c in counts.items() if g != bos})
            d = discounts(predicted)
            total = sum(predicted.values())
            gamma = sum(_discount(c, d) for c in predicted.values() if c > 0) / total
            uniform = gamma / (len(predicted) + (unk not in predicted))
            for g, c in predicted.items():
                table[g] = (c - _discount(c, d)) / total + uniform if c > 0 else uniform
            table.setdefault(unk, uniform)
            gammas.append({"": gamma})
        else:
            d = discounts(counts)
            stats = _context_stats(counts, d)
            lower = probs[n - 1]
            for g, c in counts.items():
                if c <= 0:
                    continue
                total, gamma = stats[g[:-1]]
                table[g] = (c - _discount(c, d)) / total + gamma * lower[g[1:]]
            gammas.append({h: gamma for h, (_, gamma) in stats.items()})
        probs.append(table)
    return probs, gammas


def prune(probs: list[dict[str, float]], raw: list[Counter], min_counts: Sequence[int]) -> None:
    """Drop n-grams (order >= 2) seen fewer than min_counts[n-1] times, in place.

    min_counts must not decrease with the order: then every kept n-gram's prefix and suffix
    have counts at least as high and are kept too, as the ARPA format requires."""
    if any(b < a for a, b in zip(min_counts, min_counts[1:])):
        raise ConfigError(f"min_counts must be non-decreasing with the order, got {list(min_counts)}")
    for n in range(1, len(probs)):
        threshold = min_counts[n] if n < len(min_counts) else min_counts[-1]
        if threshold > 1:
            counts = raw[n]
            for g in [g for g in probs[n] if counts.get(g, 0) < threshold]:
                del probs[n][g]


def backoff_weights(probs: list[dict[str, float]]) -> list[dict[str, float]]:
    """ARPA back-off weight of every context that is itself a stored n-gram:
    bow(h) = (1 - sum_{w kept after h} P(w|h)) / (1 - sum_{same w} P(w|h')).

    Without pruning this equals gamma(h); with pruning it renormalises what was removed."""
    weights: list[dict[str, float]] = [dict() for _ in probs]
    for n in range(1, len(probs)):
        seen: dict[str, float] = defaultdict(float)
        lower: dict[str, float] = defaultdict(float)
        for g, p in probs[n].items():
            seen[g[:-1]] += p
            lower[g[:-1]] += probs[n - 1][g[1:]]
        for h in seen:
            left, right = max(1.0 - seen[h], 1e-12), max(1.0 - lower[h], 1e-12)
            weights[n - 1][h] = left / right
    return weights


def estimate(sentences: Iterable[Sequence[str]], order: int, min_counts: Sequence[int] = (1,)) -> NgramModel:
    """Estimate an interpolated modified-KN model of the given order from token sequences."""
    if order < 1:
        raise ConfigError(f"order must be >= 1, got {order}")
    raw, interner = count_ngrams(sentences, order)
    bos, unk = interner.encode([BOS]), interner.encode([UNK])
    if sum(raw[0].values()) <= raw[0].get(bos, 0):
        raise ConfigError("no text to estimate a language model from")
    probs, _ = interpolated_probs(adjusted_counts(raw, bos), bos, unk)
    prune(probs, raw, list(min_counts))
    bows = backoff_weights(probs)
    model = NgramModel(order)
    for n, table in enumerate(probs):
        entries = {}
        for g, p in table.items():
            entries[interner.decode(g)] = (math.log10(p), math.log10(bows[n].get(g, 1.0)))
        if n == 0:
            entries[(BOS,)] = (LOG_ZERO, math.log10(bows[0].get(bos, 1.0)))
        model.ngrams.append(entries)
    return model


def build_arpa(sentences: Iterable[Sequence[str]], out: str | Path, order: int,
               min_counts: Sequence[int] = (1,)) -> NgramModel:
    """Estimate and write an ARPA file; returns the model (for inspection or tests)."""
    model = estimate(sentences, order, min_counts)
    model.write_arpa(out)
    return model


def corpus_sentences(lines: Iterable[str], unit: str, charset=None,
                     dropped: Counter | None = None) -> Iterator[list[str]]:
    """Text lines -> LM token sequences: characters ("|" for spaces) or words (hwr.recognition.lexicon).

    Characters the model's charset cannot write are dropped first (counted in `dropped`): an LM
    over symbols the network never outputs only wastes probability mass."""
    from hwr.recognition.lexicon import char_tokens, words

    if unit not in ("char", "word"):
        raise ConfigError(f"unit must be 'char' or 'word', got {unit!r}")
    split = char_tokens if unit == "char" else words
    for line in lines:
        line = normalize_text(line)  # NFC, as the charset's symbols: a decomposed "é" is the model's "é"
        if charset is not None and charset.missing_chars(line):
            if dropped is not None:
                dropped.update(ch for ch in line if ch not in charset and not ch.isspace())
            line = "".join(ch for ch in line if ch in charset or ch.isspace())
        tokens = split(line)
        if tokens:
            yield tokens


@dataclass
class LMBuildConfig:
    """Settings of `hwr lm build` (CLI flags and --config files read these); the corpus files
    are the command's positional arguments."""

    out: str = setting(help="ARPA file to write (.arpa.gz: gzipped)")
    order: int = setting(6, help=f"n-gram order, {KENLM_MIN_ORDER} to {KENLM_MAX_ORDER} (what the beam decoder's "
                                 "KenLM reads)")
    unit: Literal["char", "word"] = setting("char", help="character or word n-grams")
    min_counts: str = setting("1", help="count cut-offs per order, e.g. 1,2,3 (non-decreasing)")
    split: Literal["all", "train"] = setting("all", help="train: skip the synthetic validation lines "
                                                         "(index % 20 == 0)")
    lexicon: str | None = setting(None, help="also write a word lexicon (word unit) of the LM's words to this file")
    model: str | None = setting(None, help="the model that will read with this LM (folder or shipped name): the LM "
                                           "keeps the characters it writes (default: printable ASCII, as the "
                                           "shipped models write)")
    words: list[str] = setting(default_factory=list, help="word-list files whose words join the lexicon")

    def __post_init__(self) -> None:
        check_fields(self)
        # Refused here, not when a decoder first loads the file KenLM cannot read.
        if not KENLM_MIN_ORDER <= self.order <= KENLM_MAX_ORDER:
            raise ConfigError(f"--order must be from {KENLM_MIN_ORDER} to {KENLM_MAX_ORDER} (the beam decoder's "
                              f"KenLM reads bigrams up to {KENLM_MAX_ORDER}-grams), got {self.order}")

    def cutoffs(self) -> list[int]:
        try:
            counts = [int(c) for c in self.min_counts.split(",")]
        except ValueError:
            raise ConfigError(f"--min-counts: expected comma-separated integers, got {self.min_counts!r}") from None
        if any(c < 1 for c in counts):
            raise ConfigError(f"--min-counts: each cut-off must be at least 1 (1 keeps every n-gram), "
                              f"got {self.min_counts}")
        if counts[0] > 1:  # prune() keeps every word (as KenLM's lmplz does): a unigram cut-off did nothing
            raise ConfigError(f"--min-counts: the first cut-off (words, or characters) must be 1: every one is "
                              f"kept, so that any text can be scored; got {self.min_counts}")
        if len(counts) > self.order:
            raise ConfigError(f"--min-counts: {len(counts)} cut-offs for an order-{self.order} LM; give at most "
                              f"one per order")
        if any(b < a for a, b in zip(counts, counts[1:])):
            raise ConfigError(f"--min-counts must be non-decreasing with the order, got {self.min_counts}")
        return counts


def build_lm(corpora: Sequence[str | Path], out: str | Path, order: int, unit: str = "char",
             min_counts: Sequence[int] = (1,), split: str | None = None, charset=None) -> NgramModel:
    """The `hwr lm build` pipeline: text files -> token sequences -> ARPA file at `out`.

    split="train" skips the synthetic engine's validation lines (index % 20 == 0)."""
    from hwr.recognition.lexicon import read_corpus_lines

    dropped: Counter = Counter()
    sentences = corpus_sentences(read_corpus_lines(corpora, split), unit, charset, dropped)
    try:
        model = build_arpa(sentences, out, order, min_counts)
        if dropped:
            # Said, not done in silence: "café" becomes "caf" in every n-gram, which a user with
            # a model of other characters must know (hwr lm build --model names that model).
            common = ", ".join(f"{ch!r} x{n}" for ch, n in dropped.most_common(8))
            log.warning("%d characters the model cannot write were left out of the LM (%s%s); a model that writes "
                        "them: --model", sum(dropped.values()), common, ", ..." if len(dropped) > 8 else "")
        return model
    except ConfigError as exc:
        if "no text" not in str(exc):
            raise
        # Name the files, and say why: empty, or every character outside what the model writes.
        why = " after dropping the characters the model cannot write" if charset is not None and dropped else ""
        raise ConfigError(f"{', '.join(map(str, corpora))}: no text to estimate a language model from{why}") from None
