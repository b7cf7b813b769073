"""Which process of a torchrun job this is, from the environment torchrun sets (RANK,
WORLD_SIZE, LOCAL_RANK); a plain single process is rank 0 of 1.

Torch-free: the page pipeline shards pages by it, and `hwr transcribe --help` should not wait
seconds for torch to import. Joining the process group is hwr.training.distributed's.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def context_from_env() -> DistContext:
    return DistContext(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                       int(os.environ.get("LOCAL_RANK", 0)))
