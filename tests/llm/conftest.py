"""Tiny random Llama models saved as model directories, for the LLM tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tamis.llm.models import ByteTokenizer, save_model, tiny_llama, tiny_llama_config


def perturbed_expert(base_dir: Path, out: Path, seed: int, scale: float = 0.02) -> Path:
    """Copy of the base model with Gaussian noise added to every weight."""
    from tamis.llm.models import load_model

    model = load_model(base_dir)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return save_model(model, out, ByteTokenizer())


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> object:
    """Tiny models run faster on one torch thread (no spin-waits on a busy host)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A tiny base and three perturbed experts, as directories."""
    root = tmp_path_factory.mktemp("tiny")
    config = tiny_llama_config(hidden_size=32, num_layers=2, intermediate_size=64)
    base = save_model(tiny_llama(config, seed=0), root / "base", ByteTokenizer())
    experts = [
        perturbed_expert(base, root / f"expert{i}", seed=i + 1) for i in range(3)
    ]
    return {"base": base, "experts": experts, "root": root}
