"""Data-parallel training under torchrun: one process group, rank-0 logging and writing.

`python -m cmer_edge.finetune ...` runs as one process; `torchrun --nproc_per_node N [--nnodes M
--node_rank R --rdzv_endpoint HOST:PORT] -m cmer_edge.finetune ...` runs N x M ranks with
DistributedDataParallel (gloo on CPU, NCCL on CUDA). Every rank builds the same global batches (same
seed) and takes its share of each; the loss is a sum over the rank's share divided by the global batch
size, times the world size (DDP averages gradients), so shards of unequal size give exactly the
gradient one process would compute on the whole batch.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("cmer_edge")


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def share(self, batch: np.ndarray) -> np.ndarray:
        """This rank's part of a global batch (ranks past the batch's end get an empty part)."""
        return batch[self.rank::self.world]

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def wrap(self, module):
        """`module` under DistributedDataParallel when there is more than one rank."""
        if not self.active:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.device.startswith("cuda") else None
        return DistributedDataParallel(module, device_ids=ids)

    def all_sum(self, value: float) -> float:
        if not self.active:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item())

    def close(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.destroy_process_group()


def init_distributed() -> Distributed:
    """The process group torchrun describes in the environment, or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        backend, device = "nccl", f"cuda:{local_rank}"
    else:
        backend, device = "gloo", "cpu"
    dist.init_process_group(backend=backend)
    ctx = Distributed(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank, device=device)
    if not ctx.is_main:
        logging.getLogger("cmer_edge").setLevel(logging.WARNING)  # rank-0 logging
    log.info("distributed: %d ranks (%s)", ctx.world, backend)
    return ctx
