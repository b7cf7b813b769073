"""The CUDA-only training paths: mixed precision (AMP with a gradient scaler) and SyncBatchNorm.

Marked `gpu`: skipped without a CUDA device (tests/conftest.py). Not tested here: speed, and
SyncBatchNorm across several GPUs in separate processes (NCCL refuses two ranks on one device;
that needs a machine with two GPUs, see the last test)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from hwr.recognition.model import Recognizer
from hwr.training.train import TrainConfig, train

pytestmark = pytest.mark.gpu


def _cfg(pairs_dir, tmp_path, **overrides) -> TrainConfig:
    base = dict(train=str(pairs_dir), val=str(pairs_dir), out=str(tmp_path / "run"), preset="tiny",
                max_steps=6, val_every=3, batch_size=4, workers=0, device="cuda", warmup_steps=1, lr=3e-3)
    base.update(overrides)
    return TrainConfig(**base)


def test_amp_training_scales_the_loss_and_saves_the_scaler(pairs_dir, tmp_path):
    state = train(_cfg(pairs_dir, tmp_path, amp=True))
    assert state.step == 6 and all(math.isfinite(h["train_loss"]) for h in state.history)
    saved = json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text())
    assert saved["scaler"] is not None and saved["scaler"]["scale"] > 0  # the GradScaler ran and is resumable
    # The fp16-trained weights are saved as float32 and read back on the CPU like any other model.
    recognizer = Recognizer.load(tmp_path / "run" / "best", device="cpu")
    assert all(p.dtype == torch.float32 for p in recognizer.net.parameters())

    resumed = train(_cfg(pairs_dir, tmp_path, amp=True, resume=True, max_steps=9))
    assert resumed.step == 9


def test_without_amp_on_cuda_no_scaler_is_saved(pairs_dir, tmp_path):
    train(_cfg(pairs_dir, tmp_path, amp=False, max_steps=3))
    saved = json.loads((tmp_path / "run" / "last" / "trainer_state.json").read_text())
    assert saved["scaler"] is None


def test_sync_batchnorm_converts_every_batchnorm_and_trains_on_cuda(tmp_path, monkeypatch):
    """`_distribute` with --sync-batchnorm: a one-process NCCL group stands in for torchrun; the
    context claims two ranks so that the DDP branch runs (DDP itself works on any group size)."""
    import torch.distributed as dist

    from hwr.recognition.charset import Charset
    from hwr.recognition.nets import build_network, make_config
    from hwr.training.distributed import DistContext
    from hwr.training.train import _distribute

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        device = torch.device("cuda", 0)
        net = build_network("crnn", make_config("crnn", "tiny"), len(Charset())).to(device)
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
        wrapped = _distribute(net, _cfg(tmp_path, tmp_path, sync_batchnorm=True), device, DistContext(0, 2, 0))
        assert isinstance(wrapped, torch.nn.parallel.DistributedDataParallel)
        norms = [m for m in wrapped.module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert norms and all(isinstance(m, torch.nn.SyncBatchNorm) for m in norms)
        images = torch.rand(4, 1, net.config.line_height, 128, device=device)
        logits, lengths = wrapped(images, torch.tensor([128, 100, 80, 64], device=device))
        logits.float().sum().backward()  # SyncBatchNorm's all-reduce runs in forward and backward
        assert all(p.grad is not None for p in wrapped.parameters() if p.requires_grad)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs: one NCCL rank per device")
def test_two_gpu_processes_train_with_sync_batchnorm(pairs_dir, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_rank_main, args=(2, _free_port(), str(pairs_dir), str(tmp_path)), nprocs=2, join=True)
    history = (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    assert [json.loads(row)["step"] for row in history] == [3, 6]


def _rank_main(rank, world, port, pairs_dir, out):
    import os

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cfg = TrainConfig(train=pairs_dir, val=pairs_dir, out=f"{out}/run", preset="tiny", max_steps=6, val_every=3,
                      batch_size=4, workers=0, device="cuda", warmup_steps=1, sync_batchnorm=True)
    train(cfg)


def _free_port() -> int:
    from helpers import free_port

    return free_port()


def test_on_cuda_adam_updates_with_its_fused_kernel():
    """The fused kernel takes the AMP scaler's inf flag as a tensor: no host sync per step."""
    from types import SimpleNamespace

    from hwr.training.schedule import make_optimizer

    cfg = SimpleNamespace(optimizer="adamw", lr=1e-3, weight_decay=0.01)
    assert make_optimizer(torch.nn.Linear(2, 2).cuda(), cfg).defaults["fused"]
    assert not make_optimizer(torch.nn.Linear(2, 2), cfg).defaults["fused"]  # CPU parameters: the plain one
