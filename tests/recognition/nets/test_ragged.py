import pytest
import torch

from hwr.recognition.nets import build_network, make_config
from hwr.recognition.nets.ragged import recurrence_segments, run_in_segments, width_groups

# A page-like batch: mostly similar widths and a long tail, the case the plans are for.
PAGE_WIDTHS = [769, 770, 774, 776, 788, 835, 840, 876, 890, 1011, 1018, 1035, 1039, 1166, 1449, 1714]


def test_width_groups_partition_the_batch_in_width_order():
    widths = PAGE_WIDTHS[::-1]  # any input order
    groups = width_groups(widths)
    assert sorted(i for g in groups for i in g) == list(range(len(widths)))
    flat = [widths[i] for g in groups for i in g]
    assert flat == sorted(widths)
    assert len(groups) > 1
    # The widest lines no longer make the ~770 px ones pay for their 1,714 px.
    assert min(widths[i] for i in groups[-1]) > 1400


def test_width_groups_keep_similar_widths_and_cheap_batches_together():
    assert width_groups([400, 402, 405, 410, 399, 401]) == [[4, 0, 5, 1, 2, 3]]
    assert len(width_groups(PAGE_WIDTHS, call_cost=1e9)) == 1
    assert width_groups([]) == []
    large = width_groups(LARGE_BATCH)
    assert [LARGE_BATCH[i] for g in large for i in g] == sorted(LARGE_BATCH) and 1 < len(large) <= 48


def _covered(segments, lengths):
    """Each line (ordered longest first) must be run at every one of its valid steps."""
    ordered = sorted(lengths, reverse=True)
    for line, length in enumerate(ordered):
        steps = [t for first, end, active in segments if line < active for t in range(first, end)]
        assert steps[:length] == list(range(length))


LARGE_BATCH = [(37 * i) % 431 + 1 for i in range(300)]  # more lengths than cut candidates


@pytest.mark.parametrize("lengths", [[w // 4 for w in PAGE_WIDTHS], [5, 5, 5], [1], [40, 1, 1, 1, 39], LARGE_BATCH])
def test_recurrence_segments_cover_every_valid_step_once(lengths):
    segments = recurrence_segments(lengths)
    assert segments[0][0] == 0 and segments[-1][1] == max(lengths)
    assert all(a[1] == b[0] for a, b in zip(segments, segments[1:]))  # contiguous
    assert [active for _, _, active in segments] == sorted((a for _, _, a in segments), reverse=True)
    _covered(segments, lengths)


def test_recurrence_segments_split_only_where_padding_is_worth_a_call():
    assert recurrence_segments([30, 30, 29]) == [(0, 30, 3)]
    page = recurrence_segments([w // 4 for w in PAGE_WIDTHS])
    assert len(page) > 1 and page[-1][2] < len(PAGE_WIDTHS)
    assert len(recurrence_segments([w // 4 for w in PAGE_WIDTHS], call_cost=1e9)) == 1


@pytest.mark.parametrize("cell, kernel", [("lstm", torch.lstm), ("gru", torch.gru)])
def test_run_in_segments_is_one_padded_call_on_valid_steps(cell, kernel):
    torch.manual_seed(0)
    rnn = getattr(torch.nn, cell.upper())(6, 5)
    weights = [rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0]
    lengths = [40, 33, 7, 2]  # longest first, as the callers order them
    inputs = torch.randn(45, 4, 6)  # 5 steps of padding past the longest line

    def call(x, state):
        return kernel(x, state if cell == "lstm" else state[0], weights, True, 1, 0.0, False, False, False)

    h0 = torch.zeros(1, 4, 5)
    state = (h0, h0) if cell == "lstm" else (h0,)
    whole = call(inputs, state)[0]
    with torch.no_grad():
        segmented = run_in_segments(call, inputs, state, recurrence_segments(lengths, call_cost=1))
    assert segmented.shape == whole.shape
    for line, length in enumerate(lengths):
        assert torch.allclose(segmented[:length, line], whole[:length, line], atol=1e-6)
    assert not segmented[40:].any()  # steps no line reaches come out as zeros


def _ragged_batch(cfg, widths):
    torch.manual_seed(1)
    images = torch.zeros(len(widths), 1, cfg.line_height, max(widths))
    for i, w in enumerate(widths):
        images[i, :, :, :w] = torch.rand(1, cfg.line_height, w)
    return images, torch.tensor(widths)


def test_network_output_is_the_same_in_width_groups_and_segments():
    """The ragged plans change the schedule, not a single score: each line of a page-like
    batch reads as it does alone."""
    torch.manual_seed(0)
    cfg = make_config("crnn", "small")
    net = build_network("crnn", cfg, 20).eval()
    widths = [w // 4 for w in PAGE_WIDTHS[::3]] + [5, 9]  # down to one frame
    images, widths_t = _ragged_batch(cfg, widths)
    assert len(width_groups(widths)) > 1
    with torch.no_grad():
        together, lengths = net(images, widths_t)
        grouped, _ = net.convolve_in_width_groups(images, widths_t)
        whole, _ = net.convolve(images, widths_t)
        for i, w in enumerate(widths):
            alone, n = net(images[i : i + 1, :, :, :w], widths_t[i : i + 1])
            assert int(n[0]) == int(lengths[i])
            assert torch.allclose(alone[: int(n[0]), 0], together[: int(n[0]), i], atol=1e-5)
    assert grouped.shape == whole.shape
    frames = widths_t // net.width_factor
    for i in range(len(widths)):
        assert torch.allclose(grouped[: frames[i], i], whole[: frames[i], i], atol=1e-5)


def test_a_group_of_lines_narrower_than_the_pooling_still_convolves():
    """Alone, a 3 px line pools down to no columns; grouped, it must still get what the
    whole padded batch gives it."""
    torch.manual_seed(0)
    cfg = make_config("crnn", "small")
    net = build_network("crnn", cfg, 20).eval()
    images, widths = _ragged_batch(cfg, [2, 3, 1650, 1700])
    assert len(width_groups(widths.tolist())) == 2
    with torch.no_grad():
        grouped, frames = net.convolve_in_width_groups(images, widths)
        whole, whole_frames = net.convolve(images, widths)
    assert frames.tolist() == whole_frames.tolist()
    assert torch.allclose(grouped, whole, atol=1e-5)
