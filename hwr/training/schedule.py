"""Optimizer and learning-rate schedule of a training run.

Every schedule starts with a linear warmup, stepped per training step. After it:
- cosine: decay to 5% of the peak LR over --max-steps (or --max-minutes, whichever runs out
  first, so a time-boxed run still ends on a small LR);
- plateau: torch's ReduceLROnPlateau on the validation CER, stepped per validation;
- constant: the peak LR.
"""
from __future__ import annotations

import math

import torch

from hwr.errors import ConfigError
from hwr.training.checkpoint import TrainerState


def make_optimizer(net: torch.nn.Module, cfg) -> torch.optim.Optimizer:
    params = [p for p in net.parameters() if p.requires_grad]
    # On a GPU, Adam's fused kernel updates every parameter in a few launches and takes the loss
    # scaler's inf check as a tensor: the AMP step then never waits for the GPU to say whether
    # to skip (the plain optimizer reads that flag on the host every step).
    fused = {"fused": True} if params and all(p.is_cuda for p in params) else {}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, **fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}")  # TrainConfig's checks make this unreachable


class LRSchedule:
    """Warmup (+ cosine) as a per-step LambdaLR; for `plateau`, a ReduceLROnPlateau after warmup.

    Both write the optimizer's LR, so once warmup is over the LambdaLR is no longer stepped under
    `plateau`: it would overwrite each reduction with the peak LR at the next step. The reduced
    LR itself lives in the optimizer's param groups, which checkpoints already save.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg, state: TrainerState):
        self.cfg = cfg
        self.warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: self.factor(step, state))
        self.plateau = None
        if cfg.schedule == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience)

    def factor(self, step: int, state: TrainerState) -> float:
        cfg = self.cfg
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule != "cosine":
            return 1.0
        progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
        if cfg.max_minutes > 0:
            progress = max(progress, state.elapsed_seconds / (cfg.max_minutes * 60))
        progress = min(1.0, progress)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    def in_warmup(self) -> bool:
        return self.warmup.last_epoch < self.cfg.warmup_steps

    def step(self) -> None:
        """After each training step."""
        if self.plateau is None or self.in_warmup():
            self.warmup.step()

    def validated(self, cer: float) -> None:
        """After each validation: the plateau schedule counts validations without a better CER."""
        if self.plateau is not None and not self.in_warmup():
            self.plateau.step(cer)

    def state_dict(self) -> dict:
        return {"warmup": self.warmup.state_dict(),
                "plateau": self.plateau.state_dict() if self.plateau is not None else None}

    def load_state_dict(self, saved: dict) -> None:
        if "warmup" not in saved:  # checkpoints before plateau existed hold the LambdaLR's state alone
            saved = {"warmup": saved, "plateau": None}
        self.warmup.load_state_dict(saved["warmup"])
        if self.plateau is not None and saved.get("plateau"):
            self.plateau.load_state_dict(saved["plateau"])
