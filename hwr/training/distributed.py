"""PyTorch's own distributed engine for hwr: DDP training and sharded batch work under torchrun.

`torchrun --nproc-per-node N -m hwr train ...` (or `hwr train --nproc N`) sets RANK, WORLD_SIZE
and LOCAL_RANK; everything here is a no-op in a plain single process. NCCL joins GPUs, gloo
joins CPU processes.
"""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from hwr.ranks import DistContext, context_from_env

GPU_BACKENDS = "cpu:gloo,cuda:nccl"


def init_distributed(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun describes; pick this rank's GPU."""
    ctx = context_from_env()
    if not ctx.enabled:
        return ctx, device
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # NCCL carries CUDA tensors only; the counters the ranks agree on (validation counts, the
        # time limit, a stop asked for: all_reduce_sums) are CPU tensors and go through gloo.
        dist.init_process_group(GPU_BACKENDS if device.type == "cuda" else "gloo")
    return ctx, device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def all_reduce_sums(values: Sequence[float], ctx: DistContext) -> list[float]:
    """Sum counters over ranks (float64 keeps integer counts exact)."""
    if not ctx.enabled:
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


# What gloo and NCCL say when another process of the group died in the middle of a collective.
PEER_LOST = ("Connection reset by peer", "Connection closed by peer", "Broken pipe", "NCCL communicator was aborted",
             "remote process exited")


def lost_a_peer(exc: BaseException) -> bool:
    """Whether `exc` is a collective failing because another process of the group is gone."""
    return any(words in str(exc) for words in PEER_LOST)


def shard(items: Sequence, ctx: DistContext) -> list:
    """Every `world_size`-th item starting at `rank`: each item on exactly one rank, no padding.

    Unlike DistributedSampler (which pads with duplicates to equal lengths), this keeps a
    validation CER exact and a sharded transcription free of double work.
    """
    return list(items[ctx.rank :: ctx.world_size])


class ShardedBatchSampler(Sampler[list[int]]):
    """Each rank takes its share of every global batch, so N processes with per-process batch
    B see the same lines per step as one process with batch N*B (and the same data order)."""

    def __init__(self, global_batches: Sampler[list[int]], ctx: DistContext):
        self.global_batches = global_batches
        self.ctx = ctx

    def set_epoch(self, epoch: int) -> None:
        self.global_batches.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.global_batches)

    def __iter__(self):
        for batch in self.global_batches:
            # A tail batch too small to give every rank a line is dropped: a rank without a
            # batch would skip the step and leave the others waiting in all-reduce.
            if len(batch) >= self.ctx.world_size:
                yield batch[self.ctx.rank :: self.ctx.world_size]


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """`hwr train --nproc N ...` -> the equivalent torchrun command on this machine."""
    return [sys.executable, "-m", "hwr.training.launch", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "hwr", *argv]


def relaunch_with_torchrun(nproc: int, argv: Sequence[str]) -> int:
    return subprocess.call(torchrun_command(nproc, argv))
