import numpy as np
import pytest
import torch

from hwr.recognition.align import align_labels, char_extents, min_frames, word_boxes, word_spans
from hwr.recognition.charset import Charset
from hwr.recognition.decode import GreedyDecoder
from hwr.recognition.imaging import LineGeometry, NormalizeConfig, normalize_line, normalize_line_with_geometry
from hwr.records import Recognition

CS = Charset("ab ")


def log_probs(frames, sure=0.9):
    """(T, C) log-probs putting `sure` on the given label per frame."""
    probs = torch.full((len(frames), len(CS)), (1 - sure) / (len(CS) - 1))
    for t, label in enumerate(frames):
        probs[t, label] = sure
    return probs.log()


def test_forced_alignment_finds_the_spikes_and_confidences():
    a, b = CS.encode("ab")
    lp = log_probs([0, a, a, 0, 0, b, 0, 0])
    aligned = align_labels(lp, [a, b])
    assert [(x.first, x.last) for x in aligned] == [(1, 2), (5, 5)]
    assert all(x.confidence == pytest.approx(0.9, rel=1e-5) for x in aligned)


def test_forced_alignment_places_text_the_network_doubts():
    # The network reads "aa" but the transcript (say, from the LM) says "ab": the second
    # label still gets a span, with the network's low posterior as its confidence.
    a, b = CS.encode("ab")
    aligned = align_labels(log_probs([a, 0, a, 0]), [a, b])
    assert len(aligned) == 2 and aligned[1].confidence < 0.1


def test_too_short_lines_and_empty_transcripts():
    a = CS.encode("a")[0]
    assert min_frames([a, a]) == 3
    assert align_labels(log_probs([a, a]), [a, a]) is None
    assert align_labels(log_probs([0, 0]), []) == []


def test_spans_and_confidences_are_torchaudios_merge_of_the_forced_path():
    """Runs of one label on the forced path, doubled letters and letters with no blank between
    them included, each with its best frame's posterior (as greedy decoding takes it)."""
    from torchaudio.functional import forced_align, merge_tokens

    rng = np.random.default_rng(0)
    for labels in ([1, 1, 2], [1, 2, 1, 2, 3], [2], [3, 3, 3]):
        lp = torch.from_numpy(rng.normal(0, 2, (14, len(CS)))).float().log_softmax(-1)
        path, _ = forced_align(lp.unsqueeze(0), torch.tensor([labels], dtype=torch.int32), blank=0)
        spans = merge_tokens(path[0], torch.zeros(path.shape[1]), blank=0)
        expected = [(s.token, s.start, s.end - 1, lp[s.start : s.end, s.token].max().exp().item()) for s in spans]
        got = [(a.label, a.first, a.last, a.confidence) for a in align_labels(lp, labels)]
        assert got == expected and [a[0] for a in got] == labels


def test_char_extents_tile_the_line_between_spikes():
    assert char_extents([(2, 2), (6, 7)], frame_width=4) == [(8.0, 18.0), (18.0, 32.0)]
    assert char_extents([], 4) == []


def test_word_spans_ignore_extra_spaces():
    assert word_spans(" ab  a b ") == [(1, 2), (5, 5), (7, 7)]


def test_word_boxes_map_to_source_pixels_with_min_confidence():
    rec = Recognition("ab a", 0.8, [0.9, 0.5, 0.9, 0.7], [(1, 1), (3, 3), (5, 5), (7, 7)], frame_width=4)
    geometry = LineGeometry(x_offset=100, x_scale=0.5)
    boxes = word_boxes(rec, geometry)
    assert [b.text for b in boxes] == ["ab", "a"]
    # edges (frames): 1, 2.5, 4.5 (the space runs 4.5..6.5), 6.5, 8; "ab" is frames 1..4.5,
    # x 4..18 on the network input -> 100 + x / 0.5 in the source
    assert (boxes[0].x0, boxes[0].x1) == (108.0, 136.0)
    assert boxes[0].confidence == 0.5 and boxes[1].confidence == 0.7


def test_greedy_frames_give_word_boxes():
    a, b, sp = CS.encode("ab ")
    lp = log_probs([0, a, 0, b, 0, sp, 0, a, 0]).unsqueeze(1)
    rec = GreedyDecoder(CS).decode(lp, torch.tensor([9]), frame_width=2)[0]
    boxes = word_boxes(rec)
    assert [b.text for b in boxes] == ["ab", "a"]
    assert boxes[0].x1 <= boxes[1].x0


def test_geometry_maps_normalised_x_back_to_the_source():
    img = np.full((60, 300), 255, np.uint8)
    img[20:40, 50:250] = 0  # ink box x 50..250, height 20
    config = NormalizeConfig(line_height=24, margin=0.1)
    out, geometry = normalize_line_with_geometry(img, config)
    assert np.array_equal(out, normalize_line(img, config))
    # margin = 2 px: crop x 48..252 (204 px wide) and y 18..42 (24 px) -> scale 1.0
    assert (geometry.x_offset, geometry.y_offset) == (48.0, 18.0)
    assert geometry.x_scale == pytest.approx(out.shape[1] / 204)
    assert geometry.to_source_x(out.shape[1]) == pytest.approx(252.0)
