"""Causal language models as Hugging Face directories: load, save, tiny configs.

A model directory holds ``config.json``, safetensors weights and a tokenizer:
either a Hugging Face tokenizer or tamis's byte-level tokenizer
(``tamis_tokenizer.json``), which lets tests and demos use tiny random
Llama-architecture models without any download.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Protocol

import torch

from tamis.core.io import atomic_write_json, fsync_dir
from tamis.llm.merging.io import weight_files
from tamis.text.models import ModelNotFoundError, packaged_smollm2_dir

__all__ = [
    "ByteTokenizer",
    "HFTokenizer",
    "Tokenizer",
    "check_model_dir",
    "load_model",
    "load_tokenizer",
    "resolve_model_dir",
    "save_model",
    "tiny_llama",
    "tiny_llama_config",
]

log = logging.getLogger(__name__)
BYTE_TOKENIZER_FILE = "tamis_tokenizer.json"
#: Names accepted in place of a directory.
PACKAGED = {
    "smollm2": packaged_smollm2_dir,
    "smollm2-135m-instruct": packaged_smollm2_dir,
}


class Tokenizer(Protocol):
    """What tasks and training need from a tokenizer."""

    eos_token_id: int
    pad_token_id: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def save(self, directory: Path) -> None: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens 0-255, plus end-of-sequence (256) and padding (257)."""

    vocab_size = 258
    eos_token_id = 256
    pad_token_id = 257

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens)."""
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids``; special tokens are dropped."""
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def save(self, directory: Path) -> None:
        """Write ``tamis_tokenizer.json``."""
        atomic_write_json(Path(directory) / BYTE_TOKENIZER_FILE, {"type": "byte"})


class HFTokenizer:
    """A Hugging Face tokenizer behind the :class:`Tokenizer` interface."""

    def __init__(self, hf: Any) -> None:
        self.hf = hf
        self.eos_token_id = int(hf.eos_token_id)
        pad = hf.pad_token_id
        self.pad_token_id = int(pad if pad is not None else hf.eos_token_id)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        return list(self.hf(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids`` with special tokens skipped."""
        return self.hf.decode(ids, skip_special_tokens=True)

    def save(self, directory: Path) -> None:
        """Write the tokenizer files into ``directory``."""
        self.hf.save_pretrained(directory)


def resolve_model_dir(spec: str | Path) -> Path:
    """A model directory from a path or a packaged name (``smollm2``).

    Raises:
        ModelNotFoundError: If a packaged model is not installed.
    """
    if isinstance(spec, str) and spec.lower() in PACKAGED:
        return PACKAGED[spec.lower()]()
    return Path(spec)


def check_model_dir(path: str | Path) -> Path:
    """Check that ``path`` is a readable model directory and return it.

    Raises:
        ModelNotFoundError: If the directory, its config or its weights are missing.
        ValueError: If ``config.json`` is not valid JSON or a weight file is corrupt.
    """
    path = resolve_model_dir(path)
    if not path.is_dir():
        raise ModelNotFoundError(f"{path}: model directory not found")
    config = path / "config.json"
    if not config.is_file():
        raise ModelNotFoundError(f"{path}: no config.json; not a model directory")
    try:
        json.loads(config.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{config}: invalid JSON at line {err.lineno}") from None
    try:
        files = weight_files(path)
    except FileNotFoundError as err:
        raise ModelNotFoundError(str(err)) from None
    from safetensors import safe_open

    for f in files:
        try:
            with safe_open(str(f), framework="pt") as fh:
                fh.keys()
        except Exception as err:  # safetensors raises its own error types
            raise ValueError(f"{f}: corrupt safetensors file ({err})") from None
    return path


def load_model(
    path: str | Path, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> Any:
    """Load a causal LM (``AutoModelForCausalLM``) from a model directory.

    Raises:
        ModelNotFoundError: If the directory is incomplete.
        ValueError: If it cannot be loaded.
    """
    from transformers import AutoModelForCausalLM

    path = check_model_dir(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, RuntimeError, ValueError) as err:
        raise ValueError(f"{path}: cannot load the model: {err}") from None
    return model.to(device).eval()


def load_tokenizer(path: str | Path) -> Tokenizer:
    """The tokenizer stored in a model directory.

    Raises:
        ModelNotFoundError: If the directory has no tokenizer.
    """
    path = resolve_model_dir(path)
    if (path / BYTE_TOKENIZER_FILE).is_file():
        return ByteTokenizer()
    if (path / "tokenizer.json").is_file() or (
        path / "tokenizer_config.json"
    ).is_file():
        from transformers import AutoTokenizer

        return HFTokenizer(AutoTokenizer.from_pretrained(path))
    raise ModelNotFoundError(
        f"{path}: no tokenizer (expected tokenizer.json or {BYTE_TOKENIZER_FILE})"
    )


def save_model(
    model: Any, path: str | Path, tokenizer: Tokenizer | None = None
) -> Path:
    """Save a model (safetensors) and its tokenizer, atomically.

    The directory is assembled under a temporary sibling and renamed into place;
    an existing directory at ``path`` is replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def tiny_llama_config(
    vocab_size: int = ByteTokenizer.vocab_size,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    max_positions: int = 256,
) -> Any:
    """A small Llama-architecture config (random weights, no download).

    Returns:
        A ``transformers.LlamaConfig``.
    """
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=ByteTokenizer.eos_token_id,
        pad_token_id=ByteTokenizer.pad_token_id,
    )


def tiny_llama(config: Any | None = None, seed: int = 0) -> Any:
    """A randomly initialised ``LlamaForCausalLM`` (fp32, eval mode)."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(config or tiny_llama_config()).eval()
