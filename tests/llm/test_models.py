"""Model directories: save/load round trip and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tamis.llm.models import (
    ByteTokenizer,
    check_model_dir,
    load_model,
    load_tokenizer,
    save_model,
    tiny_llama,
    tiny_llama_config,
)
from tamis.text.models import ModelNotFoundError


def test_round_trip(tmp_path: Path) -> None:
    model = tiny_llama(tiny_llama_config(hidden_size=32, intermediate_size=64), seed=3)
    save_model(model, tmp_path / "m", ByteTokenizer())
    back = load_model(tmp_path / "m")
    for (n, a), (_, b) in zip(
        model.state_dict().items(), back.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), n
    assert isinstance(load_tokenizer(tmp_path / "m"), ByteTokenizer)


def test_tiny_config_is_llama() -> None:
    config = tiny_llama_config(num_layers=3)
    assert config.model_type == "llama" and config.num_hidden_layers == 3
    assert config.vocab_size == ByteTokenizer.vocab_size


def test_byte_tokenizer() -> None:
    tok = ByteTokenizer()
    ids = tok.encode("hé")
    assert ids == list("hé".encode())
    assert tok.decode([*ids, tok.eos_token_id, tok.pad_token_id]) == "hé"


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not found"):
        check_model_dir(tmp_path / "nope")


def test_missing_config_and_weights(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelNotFoundError, match="config.json"):
        check_model_dir(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{}")
    with pytest.raises(ModelNotFoundError, match="safetensors"):
        check_model_dir(tmp_path / "m")


def test_corrupt_config_and_weights(tmp_path: Path) -> None:
    model = tiny_llama(tiny_llama_config(hidden_size=32, intermediate_size=64))
    d = save_model(model, tmp_path / "m", ByteTokenizer())
    weights = d / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="corrupt safetensors"):
        check_model_dir(d)
    (d / "config.json").write_text('{"a": 1,\n oops}')
    with pytest.raises(ValueError, match="config.json: invalid JSON at line 2"):
        check_model_dir(d)


def test_missing_tokenizer(tmp_path: Path) -> None:
    model = tiny_llama(tiny_llama_config(hidden_size=32, intermediate_size=64))
    d = save_model(model, tmp_path / "m")
    with pytest.raises(ModelNotFoundError, match="no tokenizer"):
        load_tokenizer(d)
    assert json.loads((d / "config.json").read_text())["model_type"] == "llama"
