"""Elastic weight consolidation for hwr adapt: the importance estimate and the pull."""
from __future__ import annotations

import pytest
import torch

from hwr.recognition.charset import Charset
from hwr.recognition.imaging import NormalizeConfig
from hwr.recognition.model import load_model
from hwr.records import LineSample
from hwr.training.anchor import WeightAnchor, fisher_diagonal
from hwr.training.batches import EncodedLines, collate_lines
from hwr.training.train import ctc_loss

from helpers import LINE_TEXTS, make_untrained_model, render_line


def line_batches(config, n_batches: int = 2, size: int = 3):
    samples = [LineSample(f"l{i}", LINE_TEXTS[i], render_line(LINE_TEXTS[i])) for i in range(n_batches * size)]
    encoded = EncodedLines(samples, Charset(config.charset), NormalizeConfig.from_dict(config.normalize))
    return [collate_lines([encoded[i] for i in range(k, k + size)]) for k in range(0, len(samples), size)]


def test_importance_is_the_mean_squared_gradient_and_leaves_the_network_as_it_was(tmp_path):
    torch.manual_seed(0)
    net, config = load_model(make_untrained_model(tmp_path / "m"))
    net.train()
    batches = line_batches(config)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    fisher = fisher_diagonal(net, batches)
    assert net.training
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())  # running statistics too
    assert all(p.grad is None for p in net.parameters())
    # By hand, in inference mode: the mean over the batches of each gradient squared.
    net.eval()
    expected = {name: torch.zeros_like(p) for name, p in net.named_parameters()}
    for batch in batches:
        net.zero_grad()
        ctc_loss(net, batch, torch.device("cpu"), amp=False)[0].backward()
        for name, p in net.named_parameters():
            expected[name] += p.grad.square() / len(batches)
    assert fisher.keys() == expected.keys()
    for name in fisher:
        assert torch.allclose(fisher[name], expected[name], rtol=1e-4, atol=1e-12), name
    assert sum(float(f.sum()) for f in fisher.values()) > 0


def test_importance_needs_lines():
    with pytest.raises(ValueError, match="no lines"):
        fisher_diagonal(torch.nn.Linear(2, 2), [])


def test_pull_moves_each_weight_back_by_its_share_of_the_importance():
    layer = torch.nn.Linear(2, 2, bias=False)
    base = torch.zeros(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
    # Mean importance 1: strength 0.5 pulls a weight of importance 1 half way, importance 3
    # all the way (the share is capped at 1), importance 0 not at all.
    importance = torch.tensor([[0.0, 1.0], [0.0, 3.0]])
    anchor = WeightAnchor(layer, {"weight": base}, {"weight": importance}, strength=0.5)
    anchor.pull()
    assert torch.allclose(layer.weight, torch.tensor([[1.0, 0.5], [1.0, 0.0]]))
    anchor.pull()
    assert torch.allclose(layer.weight, torch.tensor([[1.0, 0.25], [1.0, 0.0]]))


def test_frozen_weights_are_left_alone_and_unknown_names_refused():
    layer = torch.nn.Linear(2, 2)
    layer.bias.requires_grad_(False)
    before = layer.bias.detach().clone()
    zeros = {"weight": torch.zeros(2, 2), "bias": torch.zeros(2)}
    ones = {"weight": torch.ones(2, 2), "bias": torch.ones(2)}
    WeightAnchor(layer, zeros, ones, strength=1.0).pull()
    assert torch.equal(layer.bias, before) and torch.count_nonzero(layer.weight) == 0
    with pytest.raises(ValueError, match="no weights"):
        WeightAnchor(layer, zeros, {"rnn.weight": torch.ones(1)}, strength=0.1)
    with pytest.raises(ValueError, match=">= 0"):
        WeightAnchor(layer, zeros, ones, strength=-1.0)
