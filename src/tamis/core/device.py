"""Device selection: never hard-code CUDA; pick what the machine has."""

from __future__ import annotations

import torch

__all__ = ["resolve_device"]


def resolve_device(name: str = "auto") -> torch.device:
    """Turn a config string into a torch device.

    Args:
        name: ``"auto"`` (CUDA, then Apple MPS, then CPU), or any torch device
            string such as ``"cpu"``, ``"cuda"``, ``"cuda:1"``.

    Returns:
        The device.

    Raises:
        ValueError: If the requested accelerator is not available here.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device
