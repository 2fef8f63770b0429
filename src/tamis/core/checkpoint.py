"""Checkpoints: tensors as safetensors, state as JSON, replaced atomically.

A checkpoint is a directory ``ckpt-<step>`` holding ``tensors.safetensors`` and
``state.json``. It is assembled under a temporary name and renamed into place, so a
process killed at any instant leaves either the previous checkpoints or the new
one, never a half-written one. ``state.json`` records the SHA-256 and size of the
tensor file; a truncated or altered file is refused with :class:`CheckpointError`
and :func:`latest_checkpoint` falls back to the newest intact one. Nothing is ever
unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tamis.core.io import atomic_write_text, fsync_dir

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "capture_training_state",
    "restore_training_state",
]

log = logging.getLogger(__name__)
TENSORS = "tensors.safetensors"
STATE = "state.json"
FORMAT = "tamis-checkpoint/1"
_CKPT_RE = re.compile(r"^ckpt-(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, tampered with or malformed."""


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        path: Its directory.
        step: Training step (or any monotone counter) it was taken at.
        tensors: Name -> tensor.
        state: JSON state saved beside the tensors.
    """

    path: Path
    step: int
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(
    directory: str | Path,
    step: int,
    tensors: Mapping[str, torch.Tensor],
    state: Mapping[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write checkpoint ``step`` under ``directory`` atomically.

    Args:
        directory: Folder holding the ``ckpt-*`` directories.
        step: Counter used for ordering; must not go backwards.
        tensors: Tensors to store (moved to CPU, made contiguous).
        state: JSON-serialisable state (no NaN).
        keep: Number of most recent checkpoints to keep (>= 1).

    Returns:
        The checkpoint directory.
    """
    if keep < 1:
        raise ValueError(f"keep: got {keep}, expected >= 1")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"ckpt-{step:09d}"

    # Assemble the checkpoint in a temporary sibling directory.
    tmp = Path(tempfile.mkdtemp(prefix=f".ckpt-{step:09d}.", dir=directory))
    try:
        cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        save_file(cpu, str(tmp / TENSORS))
        meta = {
            "format": FORMAT,
            "step": int(step),
            "tensors_sha256": _sha256(tmp / TENSORS),
            "tensors_bytes": (tmp / TENSORS).stat().st_size,
            "state": dict(state or {}),
        }
        (tmp / STATE).write_text(json.dumps(meta, allow_nan=False))
        for name in (TENSORS, STATE):
            with open(tmp / name, "rb+") as fh:
                os.fsync(fh.fileno())

        # Swap it into place; an older checkpoint of the same step is replaced.
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(directory / "latest", final.name + "\n")

    # Prune: keep the newest ``keep`` checkpoints.
    for old in _list_checkpoints(directory)[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoint directories, newest first."""
    found = []
    for p in directory.iterdir() if directory.is_dir() else []:
        m = _CKPT_RE.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found, reverse=True)]


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load and verify one checkpoint directory.

    Raises:
        CheckpointError: If a file is missing, its checksum or size does not match,
            or the state is not valid JSON of the expected format.
    """
    path = Path(path)
    state_file, tensor_file = path / STATE, path / TENSORS
    if not state_file.is_file() or not tensor_file.is_file():
        raise CheckpointError(
            f"{path}: not a checkpoint ({STATE} or {TENSORS} missing)"
        )
    try:
        meta = json.loads(state_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{state_file}: corrupt state file ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{state_file}: expected format {FORMAT!r}")
    size = tensor_file.stat().st_size
    if size != meta.get("tensors_bytes"):
        raise CheckpointError(
            f"{tensor_file}: size {size} bytes, expected {meta.get('tensors_bytes')} "
            "(truncated or replaced)"
        )
    if _sha256(tensor_file) != meta.get("tensors_sha256"):
        raise CheckpointError(f"{tensor_file}: checksum mismatch (file was altered)")
    try:
        tensors = load_file(str(tensor_file))
    except Exception as err:  # safetensors raises several error types
        raise CheckpointError(f"{tensor_file}: unreadable tensors ({err})") from None
    return Checkpoint(path, int(meta["step"]), tensors, meta.get("state", {}))


def latest_checkpoint(directory: str | Path) -> Checkpoint | None:
    """Newest intact checkpoint under ``directory``, or ``None`` if there is none.

    Damaged checkpoints are skipped with a warning naming them.
    """
    for path in _list_checkpoints(Path(directory)):
        try:
            return load_checkpoint(path)
        except CheckpointError as err:
            log.warning("skipping damaged checkpoint: %s", err)
    return None


# ---------------------------------------------------------------------------
# Training state: model, optimizer and every random generator in play.


def capture_training_state(
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    generators: Mapping[str, torch.Generator | np.random.Generator] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten a training state into (tensors, JSON state) for :func:`save_checkpoint`.

    Captures the model's state dict, the optimizer (tensor entries as tensors,
    the rest as JSON), the global Python / NumPy / torch RNGs and any extra
    named generators, so a resumed run continues bit for bit.
    """
    tensors: dict[str, torch.Tensor] = {}
    state: dict[str, Any] = {}
    if model is not None:
        for k, v in model.state_dict().items():
            tensors[f"model.{k}"] = v
    if optimizer is not None:
        opt = optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for idx, slots in opt["state"].items():
            for name, value in slots.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim.{idx}.{name}"] = value
                else:
                    scalars.setdefault(str(idx), {})[name] = value
        state["optim"] = {"param_groups": opt["param_groups"], "scalars": scalars}

    # Random generators: global ones, then named ones.
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    state["rng"] = {
        "python": _to_json(random.getstate()),
        "numpy": {
            "keys": np_state[1].tolist(),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "named_numpy": {},
    }
    for name, gen in (generators or {}).items():
        if isinstance(gen, torch.Generator):
            tensors[f"rng.named.{name}"] = gen.get_state()
        else:
            state["rng"]["named_numpy"][name] = gen.bit_generator.state
    return tensors, state


def restore_training_state(
    ckpt: Checkpoint,
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    generators: Mapping[str, torch.Generator | np.random.Generator] | None = None,
) -> None:
    """Inverse of :func:`capture_training_state`, in place."""
    t, s = ckpt.tensors, ckpt.state
    if model is not None:
        sd = {k[len("model.") :]: v for k, v in t.items() if k.startswith("model.")}
        model.load_state_dict(sd)
    if optimizer is not None:
        opt_state: dict[int, dict[str, Any]] = {}
        for k, v in t.items():
            if k.startswith("optim."):
                _, idx, name = k.split(".", 2)
                opt_state.setdefault(int(idx), {})[name] = v
        for idx, slots in s["optim"]["scalars"].items():
            opt_state.setdefault(int(idx), {}).update(slots)
        optimizer.load_state_dict(
            {"state": opt_state, "param_groups": s["optim"]["param_groups"]}
        )

    torch.set_rng_state(t["rng.torch"])
    cuda = sorted(k for k in t if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t[k] for k in cuda])
    random.setstate(_from_json(s["rng"]["python"]))
    n = s["rng"]["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np.array(n["keys"], dtype=np.uint32),
            n["pos"],
            n["has_gauss"],
            n["gauss"],
        )
    )
    for name, gen in (generators or {}).items():
        if isinstance(gen, torch.Generator):
            gen.set_state(t[f"rng.named.{name}"])
        else:
            gen.bit_generator.state = s["rng"]["named_numpy"][name]


def _to_json(obj: Any) -> Any:
    if isinstance(obj, tuple | list):
        return [_to_json(v) for v in obj]
    return obj


def _from_json(obj: Any) -> Any:
    if isinstance(obj, list):
        return tuple(_from_json(v) for v in obj)
    return obj
