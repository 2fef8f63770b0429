"""Small helpers over torch.distributed: rank queries that work without it."""

from __future__ import annotations

import os

import torch.distributed as dist

__all__ = ["rank", "world_size", "is_main_process", "init_from_env"]


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def is_main_process() -> bool:
    """True on rank zero: the only rank that logs and writes results."""
    return rank() == 0


def init_from_env(device_type: str = "cpu") -> bool:
    """Initialise the default process group when launched by ``torchrun``.

    Uses NCCL for CUDA devices and gloo otherwise.

    Returns:
        True when a process group is (now) initialised.
    """
    if not dist.is_available() or "WORLD_SIZE" not in os.environ:
        return False
    if int(os.environ["WORLD_SIZE"]) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return True
