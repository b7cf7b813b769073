"""What the synthetic writer writes: corpus lines, word salads, and the digit and symbol
patterns that corpora under-represent (dates, prices, times, phone numbers, abbreviations,
punctuation-heavy strings), all reduced to the model charset.

Validation text is held out deterministically: in each corpus file, every line whose 0-based
index is divisible by `SynthConfig.val_text_modulo` (20) belongs to the "val" split, all
others to "train". Word lists are split the same way, so validation lines use unseen words too.
"""
from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hwr.recognition.charset import Charset, normalize_text
from hwr.synth.config import SynthConfig

CORPUS_FILES = {"fortunes": "fortunes.txt", "web-bible": "web-bible.txt"}
WORDS_FILE = "words-american.txt"
# Running text mixes the two prose corpora in this ratio.
CORPUS_WEIGHTS = {"fortunes": 0.55, "web-bible": 0.45}

_WHITESPACE = re.compile(r"\s+")

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ABBREVIATIONS = (
    "Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "St.", "Ave.", "Rd.", "No.", "Nos.", "vs.", "etc.",
    "e.g.", "i.e.", "cf.", "approx.", "dept.", "Fig.", "p.", "pp.", "vol.", "ch.", "Jan.",
    "Feb.", "Aug.", "Sept.", "Oct.", "Nov.", "Dec.", "Mon.", "Tue.", "Fri.", "a.m.", "p.m.",
    "U.S.", "U.K.", "USA", "UN", "NATO", "BBC", "Ltd.", "Inc.", "Co.", "Jr.", "Sr.", "Ph.D.",
    "M.D.", "B.A.", "kg", "km", "cm", "mm", "ml", "lb", "oz", "ft", "mph", "FAQ", "ASAP",
    "RSVP", "P.S.", "N.B.", "ref.", "tel.", "min.", "max.", "Capt.", "Gen.", "Gov.", "Rev.",
)
# Pairs that wrap a word, and marks that follow or precede one.
WRAPPERS = (("(", ")"), ("[", "]"), ("{", "}"), ('"', '"'), ("'", "'"), ("<", ">"), ("`", "'"),
            ("*", "*"), ("_", "_"), ("|", "|"))
TRAILING = (",", ".", ";", ":", "!", "?", "...", "!?", "?!", "'s", "%", ")", "--")
LEADING = ("#", "@", "$", "~", "^", "&", "+", "-", "=", "/", "\\", "(")
JOINERS = ("-", "/", "\\", "+", "=", "&", "|", "~", "^", "_", "*", ":", "@", "<", ">")


def clean_text(text: str, charset: Charset, max_chars: int | None = None) -> str:
    """NFC, drop characters outside the charset, collapse whitespace, strip, and cut at a word
    boundary to at most max_chars (a single over-long word is cut hard)."""
    text = normalize_text(text)
    allowed = _allowed_chars(charset)
    if not allowed.issuperset(text):
        text = "".join(ch if ch in allowed or ch.isspace() else "" for ch in text)
    if " " not in charset:
        text = _WHITESPACE.sub("", text)
    text = _WHITESPACE.sub(" ", text).strip()
    if max_chars is not None and len(text) > max_chars:
        cut = text.rfind(" ", 0, max_chars + 1)
        text = (text[:cut] if cut > 0 else text[:max_chars]).strip()
    return text


_ALLOWED_CACHE: dict[tuple[str, ...], frozenset[str]] = {}


def _allowed_chars(charset: Charset) -> frozenset[str]:
    key = tuple(charset.symbols)
    if key not in _ALLOWED_CACHE:
        _ALLOWED_CACHE[key] = frozenset(key)
    return _ALLOWED_CACHE[key]


def split_lines(lines: list[str], split: str, modulo: int) -> list[str]:
    """The held-out rule: index % modulo == 0 is validation text."""
    if split == "val":
        return lines[::modulo]
    return [line for i, line in enumerate(lines) if i % modulo]


@functools.lru_cache(maxsize=16)
def read_corpus(path: Path, symbols: tuple[str, ...], split: str, modulo: int) -> list[str]:
    """One split of a corpus file, cleaned like clean_text but in bulk (250k lines load well
    under a second, once per process: samplers in one process share the result)."""
    raw = normalize_text(Path(path).read_text(encoding="utf-8"))
    allowed = set(symbols)
    drop = {ord(ch): None for ch in set(raw) if ch not in allowed and not ch.isspace()}
    lines = raw.translate(drop).splitlines()
    if " " not in allowed:
        return [t for t in ("".join(t.split()) for t in split_lines(lines, split, modulo)) if t]
    return [t for t in (" ".join(t.split()) for t in split_lines(lines, split, modulo)) if t]


class TextSampler:
    """Draws (text, kind) pairs for one split; corpora load lazily, once per process."""

    def __init__(self, charset: Charset, split: str = "train", config: SynthConfig | None = None):
        if split not in ("train", "val"):
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'val'")
        self.charset = charset
        self.split = split
        self.config = config or SynthConfig()
        self._corpora: dict[str, list[str]] | None = None
        self._words: list[str] | None = None
        self._letter_words: list[str] | None = None
        self._kind_tables: dict = {}
        self._generators: dict[str, Callable[[np.random.Generator], str]] = {
            "corpus": self._corpus_text,
            "words": self._word_text,
            "number": lambda rng: self._with_context(rng, _number(rng)),
            "date": lambda rng: self._with_context(rng, _date(rng)),
            "price": lambda rng: self._with_context(rng, _price(rng)),
            "time": lambda rng: self._with_context(rng, _time(rng)),
            "phone": lambda rng: self._with_context(rng, _phone(rng)),
            "abbreviation": self._abbreviation_text,
            "punctuation": self._punctuation_text,
            "digits": self.digit_string,
            "letters": self.letter_words,
        }

    def __getstate__(self) -> dict:
        # Corpora are reloaded in each DataLoader worker rather than pickled (tens of MB).
        state = self.__dict__.copy()
        state["_corpora"] = None
        state["_words"] = None
        state["_letter_words"] = None
        del state["_generators"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["charset"], state["split"], state["config"])

    # --- corpora --------------------------------------------------------------------------
    def _load(self) -> None:
        root = self.config.resolved_data_dir() / "corpus"
        args = (tuple(self.charset.symbols), self.split, self.config.val_text_modulo)
        self._corpora = {key: read_corpus(root / name, *args) for key, name in CORPUS_FILES.items()}
        self._words = [w for w in read_corpus(root / WORDS_FILE, *args) if " " not in w]

    @property
    def corpora(self) -> dict[str, list[str]]:
        if self._corpora is None:
            self._load()
        return self._corpora

    @property
    def words(self) -> list[str]:
        if self._words is None:
            self._load()
        return self._words

    # --- sampling -------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator, kinds: tuple[str, ...] | None = None) -> tuple[str, str]:
        """A clean label within the charset, and its kind; retries the rare empty result."""
        names, cumulative = self._kind_table(kinds)
        for _ in range(20):
            kind = names[min(int(np.searchsorted(cumulative, rng.random(), side="right")), len(names) - 1)]
            text = clean_text(self._generators[kind](rng), self.charset, self.config.max_chars)
            # Too-short texts are retried (they would skew the length distribution), except
            # digit strings, where a lone "7" is a real field value.
            if len(text) >= self.config.min_chars or (text and kind == "digits"):
                return text, kind
        # A charset this unusual (no letters, no digits) still gets something drawable.
        symbols = [s for s in self.charset.symbols if not s.isspace()]
        return "".join(rng.choice(symbols, size=self.config.min_chars)), "symbols"

    def _kind_table(self, kinds: tuple[str, ...] | None) -> tuple[list[str], np.ndarray]:
        """Kind names and their cumulative probabilities (computed once per kinds tuple)."""
        key = tuple(kinds) if kinds else None
        if key not in self._kind_tables:
            weights = self.config.kind_weights
            if key:
                # Forced kinds keep their relative weights; one weighted 0 still gets drawn.
                names = [k for k in key if k in self._generators]
                p = np.array([weights.get(k, 0.0) or 1.0 for k in names], dtype=np.float64)
            else:
                names = [k for k, w in weights.items() if k in self._generators and w > 0]
                p = np.array([weights[k] for k in names], dtype=np.float64)
            if not names:
                raise ValueError(f"no known text kind among {key or list(weights)}")
            self._kind_tables[key] = (names, np.cumsum(p) / p.sum())
        return self._kind_tables[key]

    def target_length(self, rng: np.random.Generator) -> int:
        cfg = self.config
        if rng.random() < cfg.line_length_uniform_prob:
            return int(rng.integers(cfg.min_chars, cfg.max_chars + 1))
        n = round(rng.normal(cfg.line_length_mean, cfg.line_length_std))
        return min(max(n, cfg.min_chars), cfg.max_chars)

    def _recase(self, rng: np.random.Generator, text: str) -> str:
        cfg = self.config
        u = rng.random()
        if u < cfg.upper_prob:
            return text.upper()
        if u < cfg.upper_prob + cfg.title_prob:
            return string.capwords(text)
        if u < cfg.upper_prob + cfg.title_prob + cfg.lower_prob:
            return text.lower()
        return text

    def _random_words(self, rng: np.random.Generator, n_chars: int, words: list[str] | None = None) -> str:
        """Words drawn at random (from `words`, else the whole word list) until n_chars are reached."""
        words = self.words if words is None else words
        out: list[str] = []
        length = -1
        while length < n_chars:
            w = words[rng.integers(len(words))]
            out.append(w)
            length += len(w) + 1
        return " ".join(out)

    def _corpus_text(self, rng: np.random.Generator) -> str:
        key = "fortunes" if rng.random() < CORPUS_WEIGHTS["fortunes"] else "web-bible"
        lines = self.corpora[key]
        target = self.target_length(rng)
        i = int(rng.integers(len(lines)))
        text = lines[i]
        # Corpus lines are wrapped paragraphs; continuing into the next line gives long lines.
        while len(text) < target and i + 1 < len(lines):
            i += 1
            text = f"{text} {lines[i]}"
        words = text.split(" ")
        if len(text) > target and len(words) > 1 and rng.random() < 0.5:
            # Start mid-sentence sometimes: real lines begin wherever the previous one broke.
            words = words[int(rng.integers(0, max(1, len(words) // 3))):]
        return self._recase(rng, clean_text(" ".join(words), self.charset, target))

    def _word_text(self, rng: np.random.Generator) -> str:
        return self._recase(rng, self._random_words(rng, self.target_length(rng)))

    def _with_context(self, rng: np.random.Generator, entity: str) -> str:
        """An entity alone (a form field) or inside running words (a sentence)."""
        if rng.random() >= self.config.entity_context_prob:
            return entity
        room = max(0, self.target_length(rng) - len(entity))
        before = int(rng.integers(0, room + 1))
        parts = []
        if before > 1:
            parts.append(self._random_words(rng, before))
        parts.append(entity)
        if room - before > 1:
            parts.append(self._random_words(rng, room - before))
        return " ".join(parts)

    def _abbreviation_text(self, rng: np.random.Generator) -> str:
        words = self._random_words(rng, self.target_length(rng)).split(" ")
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(0, len(words) + 1))
            words.insert(pos, ABBREVIATIONS[rng.integers(len(ABBREVIATIONS))])
        return " ".join(words)

    def _punctuation_text(self, rng: np.random.Generator) -> str:
        """Words decorated with every ASCII symbol, so rare marks get enough examples."""
        words = self._random_words(rng, max(5, self.target_length(rng) - 8)).split(" ")
        out = []
        for w in words:
            u = rng.random()
            if u < 0.2:
                a, b = WRAPPERS[rng.integers(len(WRAPPERS))]
                w = f"{a}{w}{b}"
            elif u < 0.45:
                w = w + TRAILING[rng.integers(len(TRAILING))]
            elif u < 0.6:
                w = LEADING[rng.integers(len(LEADING))] + w
            elif u < 0.7 and out:
                w = out.pop() + JOINERS[rng.integers(len(JOINERS))] + w
            out.append(w)
        return " ".join(out)

    def letter_words(self, rng: np.random.Generator) -> str:
        """Words written only with the letters real EMNIST samples exist for (letters.py), e.g.
        "bread will not stand": hand-printed lines by real writers. Shorter than running text."""
        if self._letter_words is None:
            from hwr.synth.letters import EMNIST_LETTERS

            self._letter_words = [w for w in self.words if len(w) > 1 and EMNIST_LETTERS.issuperset(w)]
        target = min(self.target_length(rng), 40)
        out = self._random_words(rng, target, self._letter_words).split(" ")
        u = rng.random()
        if u < 0.1:
            out = [w.upper() for w in out]
        elif u < 0.25:
            out[0] = out[0][:1].upper() + out[0][1:]
        return " ".join(out)

    def digit_string(self, rng: np.random.Generator) -> str:
        """Groups of digits, e.g. '4071 2983' (what forms, accounts and codes look like)."""
        cfg = self.config
        n_groups = int(rng.integers(cfg.digit_string_groups[0], cfg.digit_string_groups[1] + 1))
        lo, hi = cfg.digit_group_length
        groups = ["".join(rng.choice(list(string.digits), size=int(rng.integers(lo, hi + 1))))
                  for _ in range(n_groups)]
        return " ".join(groups)


# --- entity generators: each returns one token-ish string --------------------------------
def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, size=n))


def _number(rng: np.random.Generator) -> str:
    u = rng.random()
    if u < 0.3:
        return str(int(rng.integers(0, 10_000)))
    if u < 0.5:
        return f"{int(rng.integers(1000, 10_000_000)):,}"
    if u < 0.65:
        return f"{rng.uniform(0, 1000):.{int(rng.integers(1, 4))}f}"
    if u < 0.75:
        return f"{int(rng.integers(-999, 0))}"
    if u < 0.85:
        return f"{rng.uniform(0, 100):.{int(rng.integers(0, 2))}f}%"
    n = int(rng.integers(1, 200))
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _date(rng: np.random.Generator) -> str:
    y = int(rng.integers(1850, 2040))
    m = int(rng.integers(1, 13))
    d = int(rng.integers(1, 29))
    month = MONTHS[m - 1]
    formats = (
        f"{d:02d}/{m:02d}/{y}", f"{m}/{d}/{y % 100:02d}", f"{y}-{m:02d}-{d:02d}", f"{d}.{m}.{y}",
        f"{d} {month} {y}", f"{month} {d}, {y}", f"{month[:3]}. {d}", f"{d}-{month[:3]}-{y}",
        f"{WEEKDAYS[rng.integers(7)]}, {d} {month}", f"{WEEKDAYS[rng.integers(7)][:3]} {m}/{d}",
    )
    return formats[rng.integers(len(formats))]


def _price(rng: np.random.Generator) -> str:
    amount = float(rng.choice([rng.uniform(0, 20), rng.uniform(0, 500), rng.uniform(0, 50_000)]))
    plain = f"{amount:.2f}"
    grouped = f"{amount:,.2f}"
    formats = (f"${plain}", f"${grouped}", f"{plain} USD", f"EUR {grouped}", f"-${plain}",
               f"(${grouped})", f"${int(amount)}", f"{int(amount)}.-", f"Total: ${grouped}",
               f"@ ${plain} each", f"{plain} GBP")
    return formats[rng.integers(len(formats))]


def _time(rng: np.random.Generator) -> str:
    h24 = int(rng.integers(0, 24))
    h12 = h24 % 12 or 12
    mi = int(rng.integers(0, 60))
    s = int(rng.integers(0, 60))
    ampm = "am" if h24 < 12 else "pm"
    formats = (f"{h24:02d}:{mi:02d}", f"{h12}:{mi:02d} {ampm}", f"{h12}:{mi:02d}{ampm.upper()}",
               f"{h24}:{mi:02d}:{s:02d}", f"{h12} {'a.m.' if h24 < 12 else 'p.m.'}", f"{h24}h{mi:02d}",
               f"at {h12}:{mi:02d}", f"{h12}:{mi:02d}-{(h12 % 12) + 1}:{mi:02d}")
    return formats[rng.integers(len(formats))]


def _phone(rng: np.random.Generator) -> str:
    formats = (
        f"({_digits(rng, 3)}) {_digits(rng, 3)}-{_digits(rng, 4)}",
        f"+1 {_digits(rng, 3)} {_digits(rng, 3)} {_digits(rng, 4)}",
        f"{_digits(rng, 3)}-{_digits(rng, 4)}",
        f"+44 {_digits(rng, 2)} {_digits(rng, 4)} {_digits(rng, 4)}",
        f"0{_digits(rng, 3)} {_digits(rng, 6)}",
        f"Tel. {_digits(rng, 3)}.{_digits(rng, 3)}.{_digits(rng, 4)}",
        f"ext. {_digits(rng, 4)}",
    )
    return formats[rng.integers(len(formats))]
