"""Checks of the files a beam search reads (an ARPA or KenLM language model, a lexicon),
so that what KenLM and flashlight would report as "End of file", a C++ exception or nothing at
all (an LM of the wrong unit loads and scores every token as <unk>) is an error naming the file.
"""
from __future__ import annotations

import re
import zlib
from pathlib import Path

from hwr.errors import ConfigError, MissingFileError
from hwr.fileio import is_gzipped, open_maybe_gzipped, special_file_kind
from hwr.recognition.charset import Charset
from hwr.recognition.lexicon import SPACE_TOKEN, UNK_WORD, decoder_tokens
from hwr.recognition.lm import BOS, EOS, KENLM_MAX_ORDER, arpa_counts, arpa_unigrams

KIND_NAMES = {"lm": "language model", "lexicon": "lexicon"}


def check_readable_file(path: str, kind: str) -> None:
    """An error naming `path` unless it is a non-empty file this process can read: KenLM and
    flashlight report a folder, an empty or an unreadable file as "End of file" or worse."""
    kind = KIND_NAMES.get(kind, kind)
    if Path(path).is_dir():
        raise ConfigError(f"{path}: is a folder, not a {kind} file")
    if special := special_file_kind(path):
        raise ConfigError(f"{path}: is {special}, not a {kind} file")
    if not Path(path).is_file():
        raise MissingFileError(f"{path}: {kind} file not found")
    try:
        with open(path, "rb") as f:
            empty = not f.read(1)
    except OSError as exc:
        raise MissingFileError(f"{path}: cannot read the {kind} file ({exc.strerror or exc})") from None
    if empty:
        raise ConfigError(f"{path}: the {kind} file is empty")


# Deflate packs at most about 1032 bytes into one: the most a gzipped file can unpack to, per byte.
DEFLATE_MAX_RATIO = 1032
# The shortest line an n-gram can take: a probability, a separator, a word, a newline ("0 a").
MIN_NGRAM_LINE_BYTES = 4


def check_arpa_counts(path: str) -> None:
    """ConfigError naming the file when its ARPA header declares an n-gram count that no file of
    its size could hold. KenLM sizes its tables from the header before it reads an n-gram: a
    negative count crashes the whole process (a segmentation fault, no message), an enormous one
    fails with advice about pruning."""
    counts = arpa_counts(path)
    if not counts:
        return  # not ARPA text: KenLM checks it
    ratio = DEFLATE_MAX_RATIO if is_gzipped(path) else 1
    most = Path(path).stat().st_size * ratio // MIN_NGRAM_LINE_BYTES
    for order, count in sorted(counts.items()):
        if count < 0:
            raise ConfigError(f"{path}: the header's 'ngram {order}={count}' is a negative count; the file is damaged")
        if count > most:
            raise ConfigError(f"{path}: the header's 'ngram {order}={count}' is more n-grams than a file of its "
                              f"size can hold (at most {most}); the file is damaged")
    # Every n-gram of every order takes its own line: their sum is bounded too (six orders that
    # each pass alone had KenLM size 18 GB of tables from a 2 MB gzip).
    total = sum(counts.values())
    if total > most:
        raise ConfigError(f"{path}: the header declares {total} n-grams in all, more than a file of its size can "
                          f"hold (at most {most}); the file is damaged")


UTF8_BOM = b"\xef\xbb\xbf"


def check_arpa_start(path: str) -> None:
    """ConfigError when an LM file (plain or gzipped) opens with a UTF-8 byte order mark, as
    Windows editors save text: KenLM does not skip it, and would call the file no ARPA file."""
    try:
        with open_maybe_gzipped(path) as f:
            start = f.read(len(UTF8_BOM))
    except (OSError, EOFError, zlib.error):
        return  # damaged: KenLM's own message says where
    if start == UTF8_BOM:
        raise ConfigError(f"{path}: the language model starts with a byte order mark (an editor's UTF-8 "
                          "signature) before \\data\\; save it without one")


def check_lm_unit(path: str, mode: str, charset: Charset) -> None:
    """ConfigError when an ARPA LM's words are of the other unit than the mode reads: KenLM would
    load it and score every character (or every word) as <unk>, which reads, in silence, about
    as if there were no LM at all."""
    vocabulary = arpa_unigrams(path)
    if vocabulary is None:
        return  # not ARPA text: KenLM checks it
    words = [w for w in vocabulary if w not in (BOS, EOS, UNK_WORD)]
    tokens = set(decoder_tokens(charset))
    # Characters, whether or not the model writes them all: a model of part of the LM's
    # characters (English text learnt with --charset data) reads with it as well.
    chars = sum(len(w) == 1 or w in tokens for w in words)
    if mode == "char" and chars < len(words) / 2:
        raise ConfigError(f"{path}: only {chars} of the LM's {len(words)} words are single characters: "
                          "a word LM? character mode needs a character LM (hwr lm build --unit char)")
    # A character LM built from one word per line has no word separator, and had been read in
    # word mode as every word unknown. Without the separator only ASCII characters tell: a word
    # LM of CJK text may well hold single-character words only.
    single = words and all(len(w) == 1 or w in tokens for w in words)
    if mode == "word" and single and (SPACE_TOKEN in words or all(w.isascii() for w in words)):
        between = f", with {SPACE_TOKEN!r} between words" if SPACE_TOKEN in words else ""
        raise ConfigError(f"{path}: every word of the LM is a single character{between}: a character LM? word "
                          "mode needs a word LM (hwr lm build --unit word)")


# KenLM's errors open with a C++ source location and signature ("... threw
# FormatLoadException."); the line after it says what is wrong, then " Byte: N" where.
_KENLM_LOCATION = re.compile(r"^.* threw [\w:]+(?: because .*)?\.$")
_KENLM_BYTE = re.compile(r"\s*Byte: \d+$")


def kenlm_reason(exc: Exception) -> str:
    """A KenLM load failure in one line, without the C++ location and build instructions."""
    # KenLM quotes the first line of a file that is no LM: any bytes, not always UTF-8 (then
    # pybind11 fails on the message itself), so the quote is left out.
    if isinstance(exc, UnicodeDecodeError) or "first non-empty line was" in str(exc):
        return "not an ARPA file (it does not begin with \\data\\) nor a KenLM binary model"
    lines = [line for line in str(exc).splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if _KENLM_LOCATION.match(line)]
    detail = lines[starts[0] + 1] if starts and starts[0] + 1 < len(lines) else (lines[0] if lines else repr(exc))
    # The order message goes on with how to recompile KenLM: of no use to a user of the wheel.
    detail = " ".join(_KENLM_BYTE.sub("", detail.split(".  ")[0]).split())
    if "zlib encountered an error code -5" in detail:  # Z_BUF_ERROR: the stream ends before its end
        detail = "the gzipped file is cut short (truncated)"
    if "KenLM was compiled to support up to" in detail:
        detail += f" (rebuild it with `hwr lm build --order {KENLM_MAX_ORDER}` or lower)"
    return detail
