import math

import pytest
import torch

from hwr.recognition.charset import Charset
from hwr.recognition.decode import GreedyDecoder, greedy_line_confidence


def _log_probs(frames, num_classes, sure=0.9):
    """(T, 1, C) log-probs where frame t puts `sure` mass on label frames[t]."""
    t = len(frames)
    probs = torch.full((t, 1, num_classes), (1 - sure) / (num_classes - 1))
    for i, label in enumerate(frames):
        probs[i, 0, label] = sure
    return probs.log()


def test_greedy_collapses_repeats_and_drops_blanks():
    cs = Charset("ab")
    a, b = cs.encode("a")[0], cs.encode("b")[0]
    lp = _log_probs([0, a, a, 0, a, b, b, 0], len(cs))
    rec = GreedyDecoder(cs).decode(lp, torch.tensor([8]))[0]
    assert rec.text == "aab"
    assert rec.char_frames == [(1, 2), (4, 4), (5, 6)]
    assert all(math.isclose(c, 0.9, rel_tol=1e-5) for c in rec.char_confidences)
    assert math.isclose(rec.confidence, 0.9, rel_tol=1e-5)


def test_lengths_limit_decoding_and_confidence_reflects_doubt():
    cs = Charset("ab")
    a = cs.encode("a")[0]
    lp = torch.cat([_log_probs([a, 0], len(cs), sure=0.5), _log_probs([a, a], len(cs))], dim=1)
    recs = GreedyDecoder(cs).decode(lp, torch.tensor([2, 1]))
    assert recs[0].text == "a" and recs[1].text == "a"
    assert recs[0].confidence < 0.6 < recs[1].confidence


def test_empty_line():
    cs = Charset("ab")
    rec = GreedyDecoder(cs).decode(_log_probs([0, 0, 0], len(cs)), torch.tensor([3]))[0]
    assert rec.text == "" and rec.char_confidences == [] and rec.confidence > 0.8


def test_decoder_registry_and_options_from_configs():
    from hwr.documents.transcribe import TranscribeConfig
    from hwr.recognition.decode import DECODERS, BeamDecoder, decoder_options, make_decoder

    assert {"greedy", "beam", "beam-char", "beam-word"} <= set(DECODERS)
    assert decoder_options(TranscribeConfig()) == {}
    cfg = TranscribeConfig(decoder="beam", lm="none", beam_size=7)
    assert decoder_options(cfg) == {"lm": "none", "beam_size": 7}
    dec = make_decoder(cfg.decoder, Charset("ab "), **decoder_options(cfg))
    assert isinstance(dec, BeamDecoder) and dec.mode == "char" and dec.options.beam_size == 7


def test_plain_beam_search_agrees_with_greedy_on_clear_posteriors():
    from hwr.recognition.decode import make_decoder

    cs = Charset("ab ")
    a, b, sp = cs.encode("ab ")
    lp = _log_probs([0, a, a, 0, b, sp, 0, b, a, 0], len(cs))
    greedy = GreedyDecoder(cs).decode(lp, torch.tensor([10]))[0]
    beam = make_decoder("beam-char", cs, lm="none").decode(lp, torch.tensor([10]))[0]
    assert beam.text == greedy.text == "ab ba"
    assert beam.char_frames == greedy.char_frames
    assert beam.char_confidences == greedy.char_confidences


def test_auto_searches_with_the_shipped_lm_for_an_ascii_model_and_reads_other_charsets_greedily():
    from hwr.documents.transcribe import TranscribeConfig
    from hwr.recognition.decode import BeamDecoder, make_decoder

    assert TranscribeConfig().decoder == "auto"  # what every command reads with unless told
    ascii_model = make_decoder("auto", Charset())
    assert isinstance(ascii_model, BeamDecoder) and ascii_model.mode == "char"
    assert ascii_model.lm_path and ascii_model.lm_path.endswith("char-6gram.arpa.gz")
    # A model trained with --charset data on English text writes a sorted part of ASCII: searched too.
    part = make_decoder("auto", Charset.from_texts(["The cat sat on the mat, 42"]))
    assert isinstance(part, BeamDecoder) and part.lm_path == ascii_model.lm_path
    # An English LM would pull a model of other characters towards English spellings.
    other = make_decoder("auto", Charset("abcäöü "))
    assert isinstance(other, GreedyDecoder)
    # Beam options given ask for the search whatever the charset (an LM of the user's own).
    asked = make_decoder("auto", Charset("abcäöü "), lm="none", beam_size=4)
    assert isinstance(asked, BeamDecoder) and asked.options.beam_size == 4


def test_decoders_describe_how_they_read_for_reports():
    from hwr.recognition.decode import describe_decoding, make_decoder

    assert GreedyDecoder(Charset("ab")).describe() == {"decoder": "greedy"}
    beam = make_decoder("beam-char", Charset(), lm_weight=0.7).describe()
    assert beam["decoder"] == "beam" and beam["mode"] == "char" and beam["lm"] == "char-6gram.arpa.gz"
    assert beam["lm_weight"] == 0.7 and beam["lexicon"] is None
    assert describe_decoding(beam) == "beam search (char mode, char-6gram.arpa.gz, LM weight 0.7, beam 16)"
    assert describe_decoding({"decoder": "greedy"}) == "greedy"


def test_auto_reads_greedily_with_a_warning_when_the_shipped_lm_is_missing_and_beam_still_fails(
        tmp_path, monkeypatch, caplog):
    import logging

    from hwr.errors import MissingFileError
    from hwr.recognition.decode import make_decoder

    monkeypatch.setenv("HWR_DATA_DIR", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="hwr.recognition.decode"):
        assert isinstance(make_decoder("auto", Charset()), GreedyDecoder)
    assert "char-6gram.arpa.gz: the shipped language model is missing; greedy decoding" in caplog.text
    with pytest.raises(MissingFileError, match="char-6gram.arpa.gz: shipped language model file not found"):
        make_decoder("beam", Charset())


@pytest.mark.parametrize(("settings", "message"), [
    ({"decoder": "nosuch"}, "unknown decoder 'nosuch'"), ({"lm_weight": float("nan")}, "--lm-weight must be"),
    ({"beam_size": 0}, "--beam-size must be at least 1"), ({"sil_score": float("inf")}, "--sil-score must be")])
def test_the_ui_refuses_unusable_decoder_settings_when_it_starts_not_per_request(settings, message):
    from hwr.errors import ConfigError
    from hwr.ui_cli import UIConfig

    with pytest.raises(ConfigError, match=message):
        UIConfig(**settings)


def test_runs_of_sure_blanks_are_cut_to_one_frame_and_the_rest_kept_within_each_length():
    from hwr.recognition.decode import squeeze_sure_blanks

    cs = Charset("ab")
    a = cs.encode("a")[0]
    sure, unsure = 0.9999, 0.9
    # Line 0: blank blank a blank(unsure) blank blank a | padding; line 1: two frames.
    frames = [(0, sure), (0, sure), (a, sure), (0, unsure), (0, sure), (0, sure), (a, sure), (0, sure)]
    line0 = torch.cat([_log_probs([label], len(cs), p) for label, p in frames])
    line1 = torch.cat([_log_probs([0], len(cs), sure), _log_probs([0], len(cs), sure)] +
                      [_log_probs([0], len(cs), sure)] * 6)
    emissions = torch.cat([line0, line1], dim=1).transpose(0, 1).contiguous()  # (N, T, C)
    squeezed, lengths = squeeze_sure_blanks(emissions, torch.tensor([7, 2], dtype=torch.int32))
    assert lengths.tolist() == [5, 1]  # the padding frame of line 0 is not counted
    kept = [0, 2, 3, 4, 6]  # the second sure blank of each run goes; the unsure one stays
    assert torch.equal(squeezed[0, :5], emissions[0, kept])
    assert torch.equal(squeezed[1, :1], emissions[1, :1])


def test_the_beam_search_reads_a_doubled_letter_across_a_squeezed_run_of_blanks():
    from hwr.recognition.decode import make_decoder

    cs = Charset("ab ")
    a, b = cs.encode("ab")
    lp = _log_probs([0, a, 0, 0, 0, 0, a, 0, 0, b, 0], len(cs), sure=0.9999)
    beam = make_decoder("beam-char", cs, lm="none").decode(lp, torch.tensor([11]))[0]
    assert beam.text == "aab"
    assert beam.char_frames == [(1, 1), (6, 6), (9, 9)]  # frames of the whole line, not the squeezed one


def _greedy_by_frames(labels, probs):
    """Best-path decoding frame by frame, as written in the CTC papers: the reference the
    vectorised runs must match (text ids, each character's best frame and its first/last frame)."""
    ids, confs, spans, prev = [], [], [], 0
    for t, (label, p) in enumerate(zip(labels, probs)):
        if label != 0 and label == prev:
            confs[-1], spans[-1] = max(confs[-1], p), (spans[-1][0], t)
        elif label != 0:
            ids.append(label), confs.append(p), spans.append((t, t))
        prev = label
    return ids, confs, spans


def test_greedy_runs_match_frame_by_frame_decoding_on_random_posteriors():
    cs = Charset("abc")
    generator = torch.Generator().manual_seed(3)
    # Few classes and peaked scores: long runs, repeats across blanks, lines of only blanks.
    log_probs = (torch.randn(40, 12, len(cs), generator=generator) * 3).log_softmax(-1)
    lengths = torch.randint(0, 41, (12,), generator=generator)
    best_logp, best = log_probs.max(dim=2)
    for n, rec in enumerate(GreedyDecoder(cs).decode(log_probs, lengths, frame_width=4.0)):
        frames = int(lengths[n])
        ids, confs, spans = _greedy_by_frames(best[:frames, n].tolist(), best_logp[:frames, n].exp().tolist())
        assert rec.text == cs.decode(ids)
        assert rec.char_frames == spans and rec.frame_width == 4.0
        assert rec.char_confidences == pytest.approx(confs, rel=1e-6)


def test_greedy_start_defers_the_host_half_and_reads_as_decode():
    cs = Charset("ab")
    a, b = cs.encode("a")[0], cs.encode("b")[0]
    lp = _log_probs([a, 0, b, b], len(cs))
    finish = GreedyDecoder(cs).start(lp, torch.tensor([4]))
    assert callable(finish) and finish()[0].text == GreedyDecoder(cs).decode(lp, torch.tensor([4]))[0].text == "ab"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_greedy_on_cuda_copies_the_best_path_to_the_host_and_reads_as_the_cpu():
    cs = Charset("abc")
    log_probs = (torch.randn(50, 64, len(cs), generator=torch.Generator().manual_seed(5)) * 3).log_softmax(-1)
    lengths = torch.randint(1, 51, (64,), generator=torch.Generator().manual_seed(6))
    expected = GreedyDecoder(cs).decode(log_probs, lengths)
    finish = GreedyDecoder(cs).start(log_probs.cuda(), lengths.cuda())
    got = finish()
    assert [r.text for r in got] == [r.text for r in expected]
    assert [r.char_frames for r in got] == [r.char_frames for r in expected]


def test_line_confidence_on_the_device_is_greedy_decodings_line_confidence():
    cs = Charset("abc")
    log_probs = (torch.randn(40, 32, len(cs), generator=torch.Generator().manual_seed(7)) * 3).log_softmax(-1)
    lengths = torch.randint(0, 41, (32,), generator=torch.Generator().manual_seed(8))
    lengths[0], lengths[1] = 0, 40  # an empty line, a full one
    expected = [r.confidence for r in GreedyDecoder(cs).decode(log_probs, lengths)]
    assert greedy_line_confidence(log_probs, lengths).tolist() == pytest.approx(expected, abs=1e-6)


def test_beam_settings_that_would_read_nothing_or_be_ignored_are_refused():
    from hwr.errors import ConfigError
    from hwr.recognition.decode import BeamOptions, make_decoder

    with pytest.raises(ConfigError, match="--beam-threshold must be at least 0"):
        BeamOptions(beam_threshold=-1.0)  # every hypothesis dropped: "" for every line
    with pytest.raises(ConfigError, match="--lexicon is for the word search"):
        make_decoder("beam-char", Charset(), lexicon="/nonexistent.txt")
