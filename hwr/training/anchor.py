"""Elastic weight consolidation for `hwr adapt`: learn one hand, keep what the others need.

Kirkpatrick et al. (PNAS 2017): the diagonal of the Fisher information, estimated from the
base model's loss gradients on lines it already reads (synthetic lines in the training fonts),
says how much each weight matters to reading them. After every optimizer step each weight is
pulled back towards its base value in proportion to that importance, so the weights other
hands rely on stay near where they were and the rest are free to learn the user's hand.

The pull is applied to the weights directly, outside the loss (as AdamW decouples its weight
decay): as a loss term, Adam's per-weight gradient scaling would divide the importance back out.
Blending the finished weights towards the base model (`adapt.choose_mix`) shrinks every change
alike; the anchor shrinks the changes that cost other hands and leaves the others.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

import torch

from hwr.training.batches import LineBatch

log = logging.getLogger("hwr.training.anchor")


def fisher_diagonal(net: torch.nn.Module, batches: Iterable[LineBatch]) -> dict[str, torch.Tensor]:
    """Each trainable weight's mean squared gradient of the CTC loss over `batches` (the
    empirical Fisher, one gradient per batch), read in inference mode (no dropout, running
    normalisation statistics) so that estimating it changes nothing in the network."""
    from hwr.training.train import ctc_loss

    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    params = {name: p for name, p in net.named_parameters() if p.requires_grad}
    fisher = {name: torch.zeros_like(p) for name, p in params.items()}
    count = 0
    try:
        for batch in batches:
            if len(batch) == 0:
                continue
            net.zero_grad(set_to_none=True)
            loss, _ = ctc_loss(net, batch, device, amp=False)
            loss.backward()
            for name, p in params.items():
                if p.grad is not None:
                    fisher[name].add_(p.grad.detach().square())
            count += 1
    finally:
        net.zero_grad(set_to_none=True)
        net.train(was_training)
    if not count:
        raise ValueError("no lines to estimate the weights' importance from")
    return {name: f / count for name, f in fisher.items()}


class WeightAnchor:
    """Pulls a network's weights towards fixed values, each by its own share per step.

    share = min(1, strength x importance / mean importance): with strength 0.01 a weight of
    average importance keeps 99% of its distance from the base value per step (about 1/e
    after 100 steps of no gradient), ten times as important a weight 90%, and the least
    important ones are barely held.
    """

    def __init__(self, net: torch.nn.Module, base: dict[str, torch.Tensor], fisher: dict[str, torch.Tensor],
                 strength: float):
        if strength < 0:
            raise ValueError(f"anchor strength must be >= 0, got {strength}")
        named = dict(net.named_parameters())
        missing = sorted(set(fisher) - set(named))
        if missing:
            raise ValueError(f"anchor: the network has no weights {missing[:3]}")
        total = sum(float(f.sum()) for f in fisher.values())
        size = sum(f.numel() for f in fisher.values())
        mean = total / max(1, size)
        self.pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for name, importance in fisher.items():
            p = named[name]
            if not p.requires_grad:
                continue
            share = (importance * (strength / mean)).clamp_(max=1.0) if mean > 0 else torch.zeros_like(importance)
            self.pairs.append((p, base[name].to(p.device, p.dtype), share.to(p.device, p.dtype)))

    @torch.no_grad()
    def pull(self, step: int | None = None) -> None:
        """One step's pull: w <- w - share * (w - base). (`step`: the training loop's on_step.)"""
        for p, base, share in self.pairs:
            p.sub_(share * (p - base))
