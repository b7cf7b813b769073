"""Reading a user's lexicon file (`read_lexicon`): a malformed file is an error naming file and
line, words the model cannot spell are left out with a warning. Not tested here: how flashlight
searches with the entries (tests/recognition/test_beam.py)."""
import gzip
import logging

import pytest

from hwr.errors import ConfigError
from hwr.recognition.charset import Charset
from hwr.recognition.lexicon import read_lexicon, write_lexicon

CHARSET = Charset("abcehst ")


def test_a_written_lexicon_reads_back_plain_or_gzipped(tmp_path):
    for name in ("lexicon.txt", "lexicon.txt.gz"):
        entries = read_lexicon(write_lexicon(tmp_path / name, ["the", "cat"], CHARSET), CHARSET)
        assert "cat\tc a t" in entries and "the\tt h e" in entries


@pytest.mark.parametrize(("data", "message"), [
    (b"the\tt h e\njustoneword\n", r"lex:2: expected a word and its spelling .* got 'justoneword'"),
    ("caf\xe9\tc a f \xe9\n".encode("latin-1"), r"lex: the lexicon is not UTF-8 text .*save it as UTF-8"),
    (gzip.compress(b"the\tt h e\n" * 100, mtime=0)[:20], r"lex: not a complete gzip file"),
    (b"\n  \n", r"lex: the lexicon has no words$"),
    # flashlight's trie recursed a level per token: the stack overflowed (a segmentation fault).
    (b"the\tt h e\nlong\t" + b" ".join([b"a"] * 100_000) + b"\n",
     r"lex:2: 'long' is spelled with 100000 tokens, more than any word has \(at most 1000\)"),
])
def test_a_malformed_lexicon_is_an_error_naming_the_file(tmp_path, data, message):
    path = tmp_path / "lex"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=message):
        read_lexicon(path, CHARSET)


def test_words_the_model_cannot_spell_are_left_out_with_a_warning(tmp_path, caplog):
    path = tmp_path / "lex"
    path.write_text("café\tc a f é\ncat\tc a t\nnaïve\tn a ï v e\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="hwr.recognition.lexicon"):
        assert read_lexicon(path, CHARSET) == ["cat\tc a t"]
    assert "left out 2 words the model cannot write: café, naïve" in caplog.text
    path.write_text("café\tc a f é\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="lex: the lexicon has no words the model can write"):
        read_lexicon(path, CHARSET)


def test_a_lexicon_without_the_unknown_word_path_is_read_with_a_warning(tmp_path, caplog):
    path = tmp_path / "lex"
    path.write_text("cat\tc a t\nthe\tt h e\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="hwr.recognition.lexicon"):
        assert read_lexicon(path, CHARSET) == ["cat\tc a t", "the\tt h e"]
    assert "lex: no <oov> entries" in caplog.text and "only its 2 words can be read" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hwr.recognition.lexicon"):
        read_lexicon(write_lexicon(tmp_path / "full.txt", ["cat"], CHARSET), CHARSET)
    assert "<oov>" not in caplog.text


def test_a_byte_order_mark_is_not_part_of_the_first_word(tmp_path):
    path = tmp_path / "lex"
    path.write_bytes("\ufeffcat\tc a t\n".encode("utf-8"))
    assert read_lexicon(path, CHARSET)[0] == "cat\tc a t"


def test_accented_words_are_words_and_decomposed_ones_are_spelled_as_the_model_writes(tmp_path, caplog):
    """Words of a list saved decomposed (NFD) had been spelled with combining accents and then
    dropped as unwritable; a corpus's "café" had been split into "caf" and "é"."""
    import unicodedata

    from hwr.recognition.lexicon import char_tokens, words

    accented = Charset("abcefé ")
    nfd = unicodedata.normalize("NFD", "bébé café")
    assert words(nfd) == ["bébé", "café"] and words("l'été, 42") == ["l'été", ",", "4", "2"]
    assert char_tokens(nfd)[:4] == ["b", "é", "b", "é"]
    with caplog.at_level(logging.WARNING):
        entries = read_lexicon(write_lexicon(tmp_path / "lex.txt", nfd.split(), accented), accented)
    assert "bébé\tb é b é" in entries and "café\tc a f é" in entries and "cannot write" not in caplog.text


def test_words_of_a_list_the_model_cannot_write_are_named_when_the_lexicon_is_written(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="hwr.recognition.lexicon"):
        entries = read_lexicon(write_lexicon(tmp_path / "lex.txt", ["cat", "café", "naïve", "<unk>"], CHARSET),
                               CHARSET)
    assert "cat\tc a t" in entries and "lex.txt: left out 2 words the model cannot write: café, naïve" in caplog.text


def test_a_byte_order_mark_is_no_part_of_a_corpus_or_word_lists_first_line(tmp_path):
    from hwr.recognition.lexicon import read_corpus_lines

    (tmp_path / "words.txt").write_bytes("\ufeffzebra\r\nquokka\n".encode("utf-8"))
    assert list(read_corpus_lines([tmp_path / "words.txt"])) == ["zebra", "quokka"]


def test_a_gzipped_corpus_is_read_unzipped_and_a_truncated_one_named(tmp_path):
    """A .gz corpus had been refused as "not UTF-8 text; save it as UTF-8"."""
    from hwr.recognition.lexicon import read_corpus_lines

    zipped = gzip.compress("\ufeffthe cat\n\non the mat\n".encode("utf-8"))
    (tmp_path / "c.txt.gz").write_bytes(zipped)
    assert list(read_corpus_lines([tmp_path / "c.txt.gz"])) == ["the cat", "on the mat"]
    (tmp_path / "cut.txt.gz").write_bytes(zipped[:-12])
    with pytest.raises(ConfigError, match=r"cut\.txt\.gz: not a complete gzip file"):
        list(read_corpus_lines([tmp_path / "cut.txt.gz"]))


def test_lm_build_names_a_corpus_that_is_a_link_leading_nowhere(tmp_path, capsys):
    """A link loop had been "text file not found": the user sees the file in a listing."""
    from hwr.cli import main

    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert main(["lm", "build", str(tmp_path / "a"), "--out", str(tmp_path / "o.arpa")]) == 2
    assert "a: is a symbolic link that leads nowhere" in capsys.readouterr().err


def test_lm_build_puts_every_word_of_a_word_list_in_the_lexicon_whatever_the_split(tmp_path, caplog):
    """--split train held out every 20th row of the word lists too, in silence; rows of two
    words were dropped in silence (a probe helper)."""
    from hwr.cli import main

    (tmp_path / "corpus.txt").write_text("the cat sat\non the mat\n", encoding="utf-8")
    listed = [f"word{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(40)]
    (tmp_path / "words.txt").write_text("\n".join(listed + ["New York"]) + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert main(["lm", "build", str(tmp_path / "corpus.txt"), "--unit", "word", "--order", "2", "--out",
                     str(tmp_path / "w.arpa"), "--lexicon", str(tmp_path / "lex.txt"), "--words",
                     str(tmp_path / "words.txt"), "--split", "train"]) == 0
    lexicon = {row.split("\t")[0] for row in (tmp_path / "lex.txt").read_text().splitlines()}
    assert set(listed) <= lexicon and "York" not in lexicon
    assert "--words: left out 1 row holding a space (a lexicon entry is one word): 'New York'" in caplog.text
