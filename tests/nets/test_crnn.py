import pytest
import torch

from hwr.nets import build_network, count_parameters, make_config


def _net(preset="tiny", **overrides):
    torch.manual_seed(0)
    cfg = make_config("crnn", preset, **overrides)
    return build_network("crnn", cfg, 20).eval(), cfg


def test_output_shape_and_lengths():
    net, cfg = _net()
    images = torch.rand(3, 1, cfg.line_height, 120)
    logits, lengths = net(images, torch.tensor([120, 80, 33]))
    assert logits.shape == (60, 3, 20)
    assert lengths.tolist() == [60, 40, 16]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_padding_never_changes_a_lines_output(cell):
    """A line alone and the same line in a wider padded batch give the same scores."""
    net, cfg = _net(rnn_cell=cell)
    short = torch.rand(1, 1, cfg.line_height, 47)
    wide = torch.rand(1, 1, cfg.line_height, 130)
    batch = torch.zeros(2, 1, cfg.line_height, 130)
    batch[0, :, :, :47] = short[0]
    batch[1] = wide[0]
    alone, n_alone = net(short, torch.tensor([47]))
    together, n_together = net(batch, torch.tensor([47, 130]))
    n = int(n_alone[0])
    assert int(n_together[0]) == n
    assert torch.allclose(alone[:n, 0], together[:n, 0], atol=1e-5)


def test_presets_build_with_expected_sizes():
    small = build_network("crnn", make_config("crnn", "small"), 96)
    big = build_network("crnn", make_config("crnn", "puigcerver2017"), 96)
    assert 1_000_000 < count_parameters(small) < 5_000_000
    assert count_parameters(big) > count_parameters(small)
    assert make_config("crnn", "puigcerver2017").line_height == 128


def test_unknown_preset_and_setting():
    with pytest.raises(ValueError, match="preset"):
        make_config("crnn", "nope")
    with pytest.raises(ValueError, match="no setting"):
        make_config("crnn", None, bogus=1)
    with pytest.raises(ValueError, match="unknown architecture"):
        make_config("transformer")
