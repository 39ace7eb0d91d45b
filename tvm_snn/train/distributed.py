"""The process group of a ``torchrun`` launch: NCCL on GPUs, gloo on CPU.

:func:`distributed_session` reads the variables ``torchrun`` sets
(``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), initializes the default process
group when there are several processes, and destroys it on exit (only if it
created it). A single process gets a session of world size 1 and no group.
"""

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

WORLD_SIZE_VAR = "WORLD_SIZE"
RANK_VAR = "RANK"
LOCAL_RANK_VAR = "LOCAL_RANK"
GPU_BACKEND = "nccl"
CPU_BACKEND = "gloo"
ROOT_RANK = 0


@dataclass(frozen=True)
class Session:
    """Where this process stands in the launch.

    Attributes
    ----------
    rank, world : int
        This process's rank and the number of processes.
    device : torch.device
        ``cuda:LOCAL_RANK`` when CUDA is available, else CPU.
    """

    rank: int
    world: int
    device: torch.device

    @property
    def distributed(self):
        """Whether there are several processes."""
        return self.world > 1

    @property
    def is_root(self):
        """Whether this is rank 0 (which writes files and prints)."""
        return self.rank == ROOT_RANK


def _default_device(local_rank):
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


@contextlib.contextmanager
def distributed_session():
    """Yield the :class:`Session` of this process, with a process group if launched by torchrun."""
    local_rank = int(os.environ.get(LOCAL_RANK_VAR, "0"))
    device = _default_device(local_rank)
    if dist.is_available() and dist.is_initialized():
        yield Session(dist.get_rank(), dist.get_world_size(), device)
        return
    world = int(os.environ.get(WORLD_SIZE_VAR, "1"))
    if world <= 1:
        yield Session(0, 1, device)
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(GPU_BACKEND if device.type == "cuda" else CPU_BACKEND)
    try:
        yield Session(dist.get_rank(), dist.get_world_size(), device)
    finally:
        dist.destroy_process_group()


def all_sum(values, session):
    """Sum a list of numbers over all processes; returns floats."""
    tensor = torch.tensor(values, dtype=torch.float64, device=session.device)
    if session.distributed:
        dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_buffers(model, session):
    """Copy every buffer (batch-norm statistics, SNN state) from rank 0 to all ranks."""
    if not session.distributed:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, ROOT_RANK)


def gather_objects(value, session):
    """Return ``[value of rank 0, value of rank 1, ...]``."""
    if not session.distributed:
        return [value]
    gathered = [None] * session.world
    dist.all_gather_object(gathered, value)
    return gathered


def barrier(session):
    """Wait for every process."""
    if session.distributed:
        dist.barrier()
