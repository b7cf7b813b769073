"""What the language models and the beam decoder call a token and a word.

Decoder tokens are the charset's symbols under names that survive whitespace-separated files
(KenLM's ARPA, flashlight's lexicon): the space becomes "|", the word separator (flashlight's
"silence"), and the few symbols that would clash get bracketed names.

Words for the word LM: letter runs (with inner apostrophes: "don't", "A's") are words, and
every other non-space character - digit, punctuation mark - is a word of its own. Handwriting
attaches punctuation to words ("end."), so the lexicon decoder must be able to read "end" then
"." with no separator between; numbers become digit sequences whose statistics the n-gram
learns instead of an endless list of numerals.
"""
from __future__ import annotations

import gzip
import logging
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from hwr.errors import ConfigError, MissingFileError, counted, name_some
from hwr.fileio import GZIP_MAGIC, atomic_write_gzip_by_suffix, open_maybe_gzipped
from hwr.recognition.charset import Charset, normalize_text

log = logging.getLogger("hwr.recognition.lexicon")

SPACE_TOKEN = "|"
BLANK_TOKEN = "<blank>"
UNK_WORD = "<unk>"
# The unknown-word path's lexicon word. Not "<unk>" itself: flashlight never emits trie
# words labelled with the decoder's unk index. KenLM scores any word it lacks as <unk>.
OOV_WORD = "<oov>"
# Symbols whose own name would collide with the space token or with ARPA's markup.
_RENAMED = {" ": SPACE_TOKEN, "|": "<pipe>", "\\": "<backslash>"}
# The most tokens a lexicon word may be spelled with: no line is long enough to hold a longer
# word, and flashlight builds its trie by recursion, a level per token, so a damaged entry of
# some 100000 tokens overflows the stack and kills the process (a segmentation fault).
MAX_SPELLING_TOKENS = 1000
# Letters of any script (not only A-Z: "café" had been split into "caf" and "é").
_WORD_RE = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*|\S")


def token_name(symbol: str) -> str:
    return _RENAMED.get(symbol, symbol)


def decoder_tokens(charset: Charset) -> list[str]:
    """Token names in label-id order (index 0 is the CTC blank)."""
    return [BLANK_TOKEN] + [token_name(s) for s in charset.symbols]


def char_tokens(text: str) -> list[str]:
    """A line as character-LM tokens (spaces collapsed, one "|" between words)."""
    return [token_name(ch) for ch in " ".join(normalize_text(text).split())]


def words(text: str) -> list[str]:
    """A line as word-LM words: letter words with apostrophes, and single other characters
    (NFC first: a decomposed accent is no letter, and would split its word)."""
    return _WORD_RE.findall(normalize_text(text))


def spelling(word: str) -> str:
    """A word's lexicon entry spelling: its tokens, space-separated (no trailing separator, so
    punctuation can follow a word directly)."""
    return " ".join(token_name(ch) for ch in word)


def write_lexicon(path: str | Path, vocabulary: Iterable[str], charset: Charset) -> Path:
    """Write a flashlight lexicon: one `word<TAB>spelling` line per readable word, plus the
    unknown-word path: <oov> spelled as every single symbol, so an out-of-vocabulary word can
    still be read, letter by letter, each letter paying the LM's <unk> cost."""
    path = Path(path)
    lines, unwritable = [], []
    # NFC, as the model writes: a word list saved decomposed (macOS) had been spelled with
    # combining accents, which the model never writes, and then dropped by read_lexicon.
    for word in sorted({normalize_text(word) for word in vocabulary}):
        if word.startswith("<") and word.endswith(">") and len(word) > 1:
            continue  # <s>, </s>, <unk>: LM markup, not readable words
        if not word or " " in word:
            continue
        if charset.missing_chars(word):
            unwritable.append(word)  # only a word list's (the LM's own words lost such characters)
        else:
            lines.append(f"{word}\t{spelling(word)}")
    if unwritable:
        log.warning("%s: left out %s the model cannot write: %s", path, counted(len(unwritable), "word"),
                    name_some(unwritable, 5, sep=", "))
    lines += [f"{OOV_WORD}\t{token_name(s)}" for s in charset.symbols if s != " "]
    atomic_write_gzip_by_suffix(path, ("\n".join(lines) + "\n").encode("utf-8"))
    return path


def read_lexicon(path: str | Path, charset: Charset) -> list[str]:
    """The entries of a lexicon file (plain or gzipped, `word<TAB>spelling` per line) that the
    model can spell, as lines flashlight reads.

    flashlight stops at a malformed line with a RuntimeError that names neither file nor line,
    and at a spelling token the model lacks with a ValueError naming only the token; here a
    malformed file is a ConfigError naming file and line. Entries the model cannot spell are
    dropped with a warning, not refused: one lexicon may serve models of different charsets."""
    text = _read_text(path, "lexicon")
    spellable = set(decoder_tokens(charset)) - {BLANK_TOKEN}
    entries, dropped = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise ConfigError(f"{path}:{number}: expected a word and its spelling (word<TAB>s p e l l i n g), "
                              f"got {line.strip()[:60]!r}")
        if len(fields) - 1 > MAX_SPELLING_TOKENS:
            raise ConfigError(f"{path}:{number}: {fields[0][:30]!r} is spelled with {len(fields) - 1} tokens, more "
                              f"than any word has (at most {MAX_SPELLING_TOKENS}); the file is damaged")
        fields = [normalize_text(field) for field in fields]  # as the model writes (write_lexicon)
        if set(fields[1:]) <= spellable:
            entries.append(f"{fields[0]}\t{' '.join(fields[1:])}")
        else:
            dropped.append(fields[0])
    if dropped:
        log.warning("%s: left out %s the model cannot write: %s", path,
                    counted(len(dropped), "word"), name_some(dropped, 5, sep=", "))
    if not entries:
        why = " the model can write" if dropped else ""
        raise ConfigError(f"{path}: the lexicon has no words{why}")
    if not any(entry.startswith(OOV_WORD + "\t") for entry in entries):
        # Without the unknown-word path a word search can only write the lexicon's words: any
        # other word comes out as the nearest of them, in silence.
        log.warning("%s: no %s entries (the unknown-word path `hwr lm build --unit word` writes): only its %s "
                    "can be read, any other word becomes one of them; fine for a closed list", path, OOV_WORD,
                    counted(len(entries), "word"))
    return entries


def _read_text(path: str | Path, kind: str) -> str:
    """A UTF-8 text file, gunzipped when it starts with gzip's magic bytes, or an error naming it."""
    try:
        data = Path(path).read_bytes()
        if data.startswith(GZIP_MAGIC):
            data = gzip.decompress(data)
    except (EOFError, gzip.BadGzipFile, zlib.error):
        raise ConfigError(f"{path}: not a complete gzip file (truncated or damaged {kind})") from None
    except OSError as exc:
        raise MissingFileError(f"{path}: cannot read the {kind} file ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")  # a Windows editor's byte order mark is not the first word's
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the {kind} is not UTF-8 text ({exc.reason}); save it as UTF-8") from None


def read_corpus_lines(paths: Iterable[str | Path], split: str | None = None, modulo: int = 20) -> Iterator[str]:
    """Non-empty lines of text files; `split` keeps the synthetic engine's held-out rule
    (line index % modulo == 0 is validation text), so an LM built from "train" never saw the
    validation lines. A gzipped file (by its magic bytes, as the LMs hwr writes) is read
    unzipped: it had been refused as "not UTF-8 text"."""
    for path in paths:
        try:
            # utf-8-sig: a byte-order mark (Notepad's) is no part of the first line's first word.
            with open_maybe_gzipped(path, "rt", encoding="utf-8-sig") as f:
                for i, line in enumerate(f):
                    if split == "train" and i % modulo == 0 or split == "val" and i % modulo:
                        continue
                    line = " ".join(line.split())
                    if line:
                        yield line
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8") from None
        except (EOFError, gzip.BadGzipFile, zlib.error):
            raise ConfigError(f"{path}: not a complete gzip file (truncated or damaged text)") from None
        except OSError as exc:
            raise MissingFileError(f"{path}: cannot read the text file ({exc.strerror or exc})") from None

