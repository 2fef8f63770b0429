"""Run directories: every command that trains or evaluates writes one.

Layout::

    <run>/config.yaml      resolved configuration (reloadable with its kind)
    <run>/run.json         kind, seed, deterministic switch, status, timestamps
    <run>/env.json         versions of Python and libraries, device, threads
    <run>/metrics.jsonl    one JSON object per logged step
    <run>/results.json     final results (atomic write)
    <run>/run.log          log records of the run (attached by the CLI)
    <run>/checkpoints/     see :mod:`tamis.core.checkpoint`
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import random
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from tamis.core.config import dump_yaml, load_any
from tamis.core.distributed import is_main_process, world_size
from tamis.core.io import atomic_write_json, atomic_write_text

__all__ = ["Run", "MetricLogger", "JsonlMetricLogger", "seed_everything", "environment"]


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; optionally force deterministic kernels.

    Args:
        seed: The seed.
        deterministic: Ask torch for deterministic algorithms (errors where an op
            has none) and disable cuDNN autotuning.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def environment(device: str | None = None) -> dict[str, Any]:
    """Versions and hardware facts recorded with every run."""
    pkgs = [
        "tamis",
        "torch",
        "numpy",
        "scipy",
        "transformers",
        "peft",
        "rdkit",
        "faiss-cpu",
        "sentence-transformers",
        "safetensors",
    ]
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {p: v for p in pkgs if (v := _version(p)) is not None},
        "device": device,
        "cuda_available": torch.cuda.is_available(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "world_size": world_size(),
    }
    if torch.cuda.is_available():
        env["cuda_device"] = torch.cuda.get_device_name(0)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        if commit.returncode == 0:
            env["git_commit"] = commit.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return env


class MetricLogger(Protocol):
    """Where per-step metrics go."""

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Record ``metrics`` at ``step``."""


class JsonlMetricLogger:
    """Appends one JSON object per call to a ``.jsonl`` file (rank zero only)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Append ``{"step": step, **metrics}`` and flush."""
        if not is_main_process():
            return
        record = {"step": int(step), **metrics}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=float) + "\n")

    def truncate_after(self, step: int) -> None:
        """Drop records logged after ``step`` (used when resuming)."""
        if not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        keep = []
        for line in lines:
            try:
                if json.loads(line)["step"] <= step:
                    keep.append(line)
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut by a kill is dropped
        atomic_write_text(self.path, "".join(x + "\n" for x in keep))


@dataclass
class Run:
    """A run directory and the writers into it.

    Attributes:
        path: The directory.
        seed: Seed used for the run.
        metrics: The metric logger (``metrics.jsonl``).
    """

    path: Path
    seed: int
    metrics: JsonlMetricLogger

    @classmethod
    def create(
        cls,
        root: str | Path,
        name: str,
        config: Any,
        seed: int,
        deterministic: bool = False,
        device: str | None = None,
        path: str | Path | None = None,
    ) -> Run:
        """Create a new run directory, seed everything and record the setup.

        Args:
            root: Parent folder of run directories.
            name: Prefix of the directory name (a timestamp is appended).
            config: The resolved config dataclass (written as ``config.yaml``).
            seed: Seed for Python, NumPy and torch.
            deterministic: Deterministic-algorithms switch.
            device: Device string recorded in ``env.json``.
            path: Exact directory to use instead of ``root/name-<time>``.
        """
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        run_dir = Path(path) if path is not None else Path(root) / f"{name}-{stamp}"
        run_dir.mkdir(parents=True, exist_ok=True)
        seed_everything(seed, deterministic)
        if is_main_process():
            atomic_write_text(run_dir / "config.yaml", dump_yaml(config))
            atomic_write_json(run_dir / "env.json", environment(device))
            atomic_write_json(
                run_dir / "run.json",
                {
                    "kind": getattr(type(config), "__config_kind__", None),
                    "seed": seed,
                    "deterministic": deterministic,
                    "status": "running",
                    "created": dt.datetime.now().isoformat(timespec="seconds"),
                },
            )
        return cls(run_dir, seed, JsonlMetricLogger(run_dir / "metrics.jsonl"))

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """Open an existing run directory (for resume, evaluate, report).

        Raises:
            FileNotFoundError: If ``path`` has no ``run.json``.
        """
        path = Path(path)
        info_file = path / "run.json"
        if not info_file.is_file():
            raise FileNotFoundError(f"{path}: not a run directory (run.json missing)")
        info = json.loads(info_file.read_text())
        return cls(path, int(info["seed"]), JsonlMetricLogger(path / "metrics.jsonl"))

    @property
    def info(self) -> dict[str, Any]:
        """Contents of ``run.json``."""
        return json.loads((self.path / "run.json").read_text())

    @property
    def checkpoint_dir(self) -> Path:
        """Folder of this run's checkpoints."""
        return self.path / "checkpoints"

    @property
    def log_file(self) -> Path:
        """The run's log file."""
        return self.path / "run.log"

    def load_config(self) -> Any:
        """Rebuild the resolved config dataclass from ``config.yaml``."""
        return load_any(self.path / "config.yaml")

    def log_metrics(self, step: int, **metrics: Any) -> None:
        """Append one line to ``metrics.jsonl``."""
        self.metrics.log(step, metrics)

    def write_results(self, results: dict[str, Any], status: str = "finished") -> Path:
        """Write ``results.json`` atomically and mark the run's status."""
        out = self.path / "results.json"
        if is_main_process():
            atomic_write_json(out, results)
            self.set_status(status)
        return out

    def set_status(self, status: str) -> None:
        """Update ``run.json``'s status (running, finished, failed)."""
        if not is_main_process():
            return
        info = self.info
        info["status"] = status
        info["updated"] = dt.datetime.now().isoformat(timespec="seconds")
        atomic_write_json(self.path / "run.json", info)

    def read_results(self) -> dict[str, Any]:
        """Contents of ``results.json``."""
        return json.loads((self.path / "results.json").read_text())
