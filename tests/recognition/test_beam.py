"""Beam search with n-gram LMs on hand-built posteriors: the LM must flip an ambiguous
character to the dictionary word, and an out-of-vocabulary word must still be read."""
import pytest
import torch

from hwr.errors import ConfigError
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
