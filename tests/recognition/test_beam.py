"""Beam search with n-gram LMs on hand-built posteriors: the LM must flip an ambiguous
character to the dictionary word, and an out-of-vocabulary word must still be read."""
import gzip
import os
import re
import subprocess
import sys

import pytest
import torch

from hwr.errors import ConfigError, MissingFileError
from hwr.recognition.charset import Charset
from hwr.recognition.decode import BeamDecoder, make_decoder
from hwr.recognition.lexicon import write_lexicon
from hwr.recognition.lm import build_lm

pytest.importorskip("flashlight.lib.text.decoder")

CHARSET = Charset("abcdehlostxyz ")
CORPUS = "the cat sat\nthe hat\nthe cat\na cat sat on the hat\nthe cat ate\n" * 3


def posteriors(frames, charset=CHARSET, floor=0.01):
    """(T, 1, C) log-probs; each frame is a dict symbol -> probability ('' is the blank),
    the rest of the mass is spread over the other classes."""
    lp = torch.full((len(frames), 1, len(charset)), floor)
    for t, frame in enumerate(frames):
        for sym, prob in frame.items():
            lp[t, 0, 0 if sym == "" else charset.encode(sym)[0]] = prob
    return (lp / lp.sum(-1, keepdim=True)).log()


def spell(text, doubt=None):
    """Frames spelling `text` with a blank between characters; `doubt` maps a position to
    {symbol: prob} for an ambiguous character."""
    frames = [{"": 0.9}]
    for k, ch in enumerate(text):
        frames.append((doubt or {}).get(k, {ch: 0.9}))
        frames.append({"": 0.9})
    return frames


@pytest.fixture(scope="module")
def lm_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    corpus = root / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    char_lm = root / "char.arpa"
    word_lm = root / "word.arpa"
    build_lm([corpus], char_lm, order=4, unit="char")
    model = build_lm([corpus], word_lm, order=2, unit="word")
    lexicon = write_lexicon(root / "lexicon.txt", model.vocabulary(), CHARSET)
    return str(char_lm), str(word_lm), str(lexicon)


def decode(decoder, frames):
    lp = posteriors(frames)
    return decoder.decode(lp, torch.tensor([lp.shape[0]]))[0]


# "the cet": the network slightly prefers "e" over "a" in the second word.
AMBIGUOUS = spell("the cet", doubt={5: {"e": 0.5, "a": 0.4}})


def test_no_lm_beam_reads_what_the_network_prefers(lm_files):
    rec = decode(BeamDecoder(CHARSET, mode="char", lm="none"), AMBIGUOUS)
    assert rec.text == "the cet"


def test_loading_an_lm_leaves_stderr_to_hwr(lm_files):
    """KenLM wrote a hint, the file's path and a progress bar to stderr on every load. In a
    process of its own, as a command loads its model: one thread."""
    char_lm, _, _ = lm_files
    script = ("import sys; from hwr.recognition.charset import Charset; from hwr.recognition.decode import BeamDecoder;"
              "BeamDecoder(Charset(), mode='char', lm=sys.argv[1], lm_weight=1.0); print('loaded', file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", script, char_lm], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "loaded\n"


def test_char_lm_flips_ambiguous_character(lm_files):
    char_lm, _, _ = lm_files
    rec = decode(BeamDecoder(CHARSET, mode="char", lm=char_lm, lm_weight=1.0), AMBIGUOUS)
    assert rec.text == "the cat"
    # Confidence of the flipped character is the network's (low) posterior for it.
    assert rec.char_confidences[5] == pytest.approx(0.4, abs=0.02)
    assert min(rec.char_confidences) == rec.char_confidences[5]
    assert len(rec.char_frames) == len(rec.text)


def test_word_lm_flips_ambiguous_character(lm_files):
    _, word_lm, lexicon = lm_files
    decoder = make_decoder("beam-word", CHARSET, lm=word_lm, lexicon=lexicon, lm_weight=1.0, word_score=0.0)
    rec = decode(decoder, AMBIGUOUS)
    assert rec.text == "the cat"


def test_word_mode_reads_out_of_vocabulary_words(lm_files):
    _, word_lm, lexicon = lm_files
    decoder = BeamDecoder(CHARSET, lm=word_lm, lexicon=lexicon, lm_weight=1.0, word_score=0.0)
    assert decoder.mode == "word"
    assert decode(decoder, spell("the zyx cat")).text == "the zyx cat"


def test_a_large_lexicon_is_announced_before_its_slow_build(lm_files, monkeypatch, caplog):
    import logging

    from hwr.recognition import decode as decode_module

    _, word_lm, lexicon = lm_files
    monkeypatch.setattr(decode_module, "LARGE_LEXICON_WORDS", 3)
    with caplog.at_level(logging.INFO, logger="hwr.recognition.decode"):
        decoder = BeamDecoder(CHARSET, lm=word_lm, lexicon=lexicon, lm_weight=1.0, word_score=0.0)
        assert decode(decoder, spell("the cat")).text == "the cat"
    said = [r.getMessage() for r in caplog.records if "building the word search" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"{lexicon}: building the word search over ")
    monkeypatch.setattr(decode_module, "LARGE_LEXICON_WORDS", 10**9)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hwr.recognition.decode"):
        decode(BeamDecoder(CHARSET, lm=word_lm, lexicon=lexicon, lm_weight=1.0, word_score=0.0), spell("the cat"))
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]  # a small one builds in silence


def test_batch_with_lengths_and_empty_line(lm_files):
    char_lm, _, _ = lm_files
    a, b = posteriors(spell("the hat")), posteriors([{"": 0.95}] * 4)
    b = torch.cat([b, torch.zeros(a.shape[0] - b.shape[0], 1, len(CHARSET))])
    recs = BeamDecoder(CHARSET, lm=char_lm).decode(torch.cat([a, b], dim=1), torch.tensor([a.shape[0], 4]))
    assert recs[0].text == "the hat"
    assert recs[1].text == "" and recs[1].confidence > 0.8


def test_greedy_rejects_beam_options_and_unknown_names():
    with pytest.raises(ValueError):
        make_decoder("greedy", CHARSET, lm_weight=1.0)
    with pytest.raises(ValueError):
        make_decoder("viterbi", CHARSET)
    with pytest.raises(FileNotFoundError):
        BeamDecoder(CHARSET, lm="/nonexistent.arpa")


def test_blank_penalty_recovers_characters_that_barely_lose_to_the_blank():
    frames = spell("the cat", doubt={4: {"c": 0.4, "": 0.5}})
    plain = BeamDecoder(CHARSET, lm="none", blank_penalty=0.0)
    assert decode(plain, frames).text == "the at"
    rec = decode(BeamDecoder(CHARSET, lm="none", blank_penalty=0.5), frames)
    assert rec.text == "the cat"
    # Confidences still come from the untouched posteriors.
    assert rec.char_confidences[4] == pytest.approx(0.4, abs=0.02)


@pytest.mark.parametrize(("option", "value", "flag"), [
    ("beam_size", 0, "--beam-size must be at least 1"), ("beam_size", -3, "--beam-size must be at least 1"),
    ("lm_weight", float("nan"), "--lm-weight must be a finite number"),
    ("blank_penalty", float("inf"), "--blank-penalty must be a finite number"),
    ("word_score", float("-inf"), "--word-score must be a finite number")])
def test_a_beam_of_nothing_or_a_weight_that_is_no_number_is_refused_naming_the_flag(option, value, flag):
    with pytest.raises(ConfigError, match=flag):
        make_decoder("beam", CHARSET, lm="none", **{option: value})


# --- Files KenLM and flashlight cannot read: an error naming the file, never their own ---------

def _not_arpa_files(root, char_lm):
    """name -> (file, words the error must say): the ways a user's --lm goes wrong."""
    arpa = open(char_lm, "rb").read()
    cases = {
        "folder": b"", "empty": b"", "text": b"hello world\nno header\n",
        "text.gz": gzip.compress(b"hello world\nno header\n"),
        "truncated.gz": gzip.compress(arpa)[: len(gzip.compress(arpa)) // 2],
        "cut.arpa": arpa[: len(arpa) // 2] + b"-",
        "binary": bytes(range(255, -1, -1)) * 8,
    }
    files = {}
    for name, data in cases.items():
        path = root / name
        if name == "folder":
            path.mkdir()
        else:
            path.write_bytes(data)
        files[name] = path
    return files


@pytest.mark.parametrize(("name", "reason"), [
    ("folder", "is a folder, not a language model file"), ("empty", "the language model file is empty"),
    ("text", "not an ARPA file (it does not begin with \\data\\)"), ("text.gz", "not an ARPA file"),
    ("truncated.gz", "cannot load the language model: the gzipped file is cut short (truncated)"),
    ("cut.arpa", "cannot load the language model: "), ("binary", "not an ARPA file")])
def test_an_lm_file_kenlm_cannot_read_is_a_config_error_naming_it(lm_files, tmp_path, name, reason):
    path = _not_arpa_files(tmp_path, lm_files[0])[name]
    with pytest.raises(ConfigError, match=re.escape(reason)) as caught:
        BeamDecoder(CHARSET, mode="char", lm=str(path))
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message and ".cc:" not in message


def test_an_lm_of_an_order_kenlm_cannot_hold_names_the_order_and_the_way_out(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS, encoding="utf-8")
    build_lm([corpus], tmp_path / "7gram.arpa", order=7, unit="char")  # the library estimator can
    with pytest.raises(ConfigError, match=r"7gram.arpa: .*order 7 .* up to 6 \(rebuild it with `hwr lm build "
                                          r"--order 6` or lower\)$"):
        BeamDecoder(CHARSET, mode="char", lm=str(tmp_path / "7gram.arpa"))


def test_an_lm_header_of_impossible_counts_is_refused_before_kenlm_sizes_its_tables(tmp_path):
    from bad_inputs import arpa_with_count

    BeamDecoder(CHARSET, mode="char", lm=str(arpa_with_count(tmp_path / "whole.arpa", 2, "2")))  # the file is an LM
    # KenLM blamed pruning for this one (and crashed on a negative count: tests/recognition/test_lm_files.py).
    huge = arpa_with_count(tmp_path / "huge.arpa", 2, str(2**64 - 1))
    with pytest.raises(ConfigError, match=r"huge.arpa: the header's 'ngram 2=\d+' is more n-grams than"):
        BeamDecoder(CHARSET, mode="char", lm=str(huge))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files without read permission")
def test_an_lm_without_read_permission_is_a_user_error_naming_it(lm_files, tmp_path):
    locked = tmp_path / "locked.arpa"
    locked.write_bytes(open(lm_files[0], "rb").read())
    locked.chmod(0)
    with pytest.raises(MissingFileError, match="locked.arpa: cannot read the language model file"):
        BeamDecoder(CHARSET, mode="char", lm=str(locked))


def test_a_word_lm_in_char_mode_and_a_char_lm_in_word_mode_are_refused_by_unit(lm_files):
    char_lm, word_lm, lexicon = lm_files
    # Both load in KenLM; each would score every token as <unk>: an LM in name only.
    with pytest.raises(ConfigError, match=r"word.arpa: only \d+ of the LM's \d+ words .*--unit char"):
        BeamDecoder(CHARSET, mode="char", lm=word_lm)
    with pytest.raises(ConfigError, match=r"char.arpa: every word of the LM is a single character.*--unit word"):
        BeamDecoder(CHARSET, mode="word", lm=char_lm, lexicon=lexicon)


def test_a_char_lm_of_one_word_per_line_is_refused_in_word_mode_too(lm_files, tmp_path):
    """Built from a word list (one word a line) a character LM has no word separator, and word
    mode had read with it as if every word were unknown (a probe helper)."""
    _, _, lexicon = lm_files
    words = tmp_path / "words.txt"
    words.write_text("\n".join(CORPUS.split()) + "\n", encoding="utf-8")
    char_lm = tmp_path / "words-char.arpa"
    build_lm([words], char_lm, order=3, unit="char")
    with pytest.raises(ConfigError, match=r"words-char.arpa: every word of the LM is a single character: a "
                                          r"character LM\? word mode needs a word LM"):
        BeamDecoder(CHARSET, mode="word", lm=str(char_lm), lexicon=lexicon)


def test_search_settings_that_do_nothing_or_that_flashlight_cannot_take_are_refused(lm_files):
    """--word-score in the character search and --lm-weight without an LM had been ignored; a
    beam of 2**31 was a traceback from flashlight; a weight of 1e30 read every line as garbage."""
    char_lm, _, _ = lm_files
    with pytest.raises(ConfigError, match="--word-score is for the word search"):
        BeamDecoder(CHARSET, mode="char", lm=char_lm, word_score=2.0)
    with pytest.raises(ConfigError, match="--lm-weight weighs a language model's scores, and --lm none"):
        BeamDecoder(CHARSET, mode="char", lm="none", lm_weight=1.0)
    with pytest.raises(ConfigError, match="--beam-size must be at most 2147483647, got 2147483648"):
        BeamDecoder(CHARSET, mode="char", lm=char_lm, beam_size=2**31)
    with pytest.raises(ConfigError, match="--lm-weight must be between -1000 and 1000, got 1e\\+30"):
        BeamDecoder(CHARSET, mode="char", lm=char_lm, lm_weight=1e30)
    assert BeamDecoder(CHARSET, mode="char", lm=char_lm, beam_size=2**31 - 1, lm_weight=1000.0).options.beam_size \
        == 2**31 - 1
