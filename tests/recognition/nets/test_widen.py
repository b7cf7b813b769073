"""hwr.recognition.nets.widen: a wider CRNN that starts with the narrow one's scores."""
import pytest
import torch

from hwr.recognition.nets.crnn import CRNN, CRNNConfig
from hwr.recognition.nets.widen import widen_crnn, widening_problem

NARROW = dict(line_height=32, conv_channels=[6, 8], pool_blocks=[0], height_pool_blocks=[1], rnn_hidden=10,
              rnn_layers=2, dropout=0.0)


def _trained_looking(config: CRNNConfig, classes: int = 12) -> CRNN:
    """A CRNN whose BatchNorm carries statistics and affine weights far from their defaults,
    as a trained one does (defaults would hide a channel copied with the wrong statistics)."""
    torch.manual_seed(0)
    net = CRNN(config, classes)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.normal_()
            module.bias.data.normal_()
    return net


def _scores(net: CRNN) -> torch.Tensor:
    torch.manual_seed(1)
    images, widths = torch.rand(3, 1, 32, 80), torch.tensor([80, 61, 23])
    return net.eval()(images, widths)[0]


@pytest.mark.parametrize("wide", [
    dict(conv_channels=[12, 16], rnn_hidden=20),  # doubled
    dict(conv_channels=[7, 19], rnn_hidden=13),  # uneven: some units copied twice or more, some not at all
    dict(conv_channels=[6, 8], rnn_hidden=31),  # only the recurrent layers grow
])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_wider_network_gives_the_same_scores(wide, cell):
    narrow = _trained_looking(CRNNConfig(**NARROW, rnn_cell=cell))
    target = CRNN(CRNNConfig(**{**NARROW, **wide, "rnn_cell": cell}), 12)
    before = _scores(target)
    widen_crnn(narrow, target)
    assert torch.allclose(_scores(target), _scores(narrow), atol=1e-5)
    assert not torch.allclose(before, _scores(narrow), atol=1e-2)  # the check can fail


def test_copies_of_a_unit_part_ways_in_training():
    """Each copy is read with its own random share, so the copies' gradients differ: a
    symmetric split would leave them copies for ever."""
    narrow = _trained_looking(CRNNConfig(**NARROW))
    wide = CRNN(CRNNConfig(**{**NARROW, "conv_channels": [12, 16], "rnn_hidden": 20}), 12)
    widen_crnn(narrow, wide)
    hidden = 10
    rows = wide.rnn.weight_hh_l0  # unit j and the later unit that copies it have equal rows
    copy_of = {j: [k for k in range(hidden, 2 * hidden) if torch.equal(rows[k], rows[j])] for j in range(hidden)}
    assert all(len(c) == 1 for c in copy_of.values())
    wide.train()
    images, widths = torch.rand(4, 1, 32, 80), torch.tensor([80, 70, 60, 50])
    wide(images, widths)[0].square().mean().backward()
    grads = wide.rnn.weight_hh_l0.grad
    assert all(not torch.allclose(grads[j], grads[c[0]]) for j, c in copy_of.items())


def test_what_cannot_be_widened_is_named():
    narrow = CRNN(CRNNConfig(**NARROW), 12)
    deeper = CRNN(CRNNConfig(**{**NARROW, "rnn_layers": 3}), 12)
    narrower = CRNN(CRNNConfig(**{**NARROW, "rnn_hidden": 8}), 12)
    assert "rnn_layers" in widening_problem(narrow, deeper)
    assert "narrower" in widening_problem(narrow, narrower)
    assert "classes" in widening_problem(narrow, CRNN(CRNNConfig(**NARROW), 13))
    with pytest.raises(ValueError, match="rnn_layers"):
        widen_crnn(narrow, deeper)
