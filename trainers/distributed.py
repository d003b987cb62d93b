"""Where a training process runs: the device, and under ``torchrun`` (WORLD_SIZE > 1) its rank in
the process group (NCCL on GPUs, gloo on CPU) and the DistributedDataParallel wrapper."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from rtstyle.engine import resolve_device


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, net: nn.Module) -> nn.Module:
        """The module the loop trains through: ``net`` itself, or DDP around it."""
        if self.world_size <= 1:
            return net
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(net, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def close(self) -> None:
        if self.world_size > 1:
            import torch.distributed as tdist

            tdist.destroy_process_group()


def setup(requested: str) -> Dist:
    """Resolve the device; under torchrun join the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(requested)
    if world <= 1:
        return Dist(device=device)
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), device)
