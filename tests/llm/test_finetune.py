"""Fine-tuning: learning, bit-exact resume, LoRA merged into full weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tamis.core.runs import Run
from tamis.llm.config import FinetuneConfig, TaskSpec
from tamis.llm.finetune import _wrap_lora, finetune, learning_rate
from tamis.llm.models import (
    ByteTokenizer,
    load_model,
    save_model,
    tiny_llama,
    tiny_llama_config,
)
from tamis.llm.tasks import Example, answer_loss


@pytest.fixture()
def tiny_dir(tmp_path: Path) -> Path:
    model = tiny_llama(tiny_llama_config(hidden_size=32, intermediate_size=64), seed=0)
    return save_model(model, tmp_path / "base", ByteTokenizer())


# A deterministic map the model must learn: prompt "xN=" -> answer "N" reversed.
EXAMPLES = [Example(f"x{n}=", str(n)[::-1], str(n)[::-1]) for n in range(10, 40)]


def _config(tmp_path: Path, model: Path, **kw: object) -> FinetuneConfig:
    base = {
        "model": str(model),
        "task": TaskSpec(name="jsonl", path=Path("unused")),
        "output": tmp_path / "expert",
        "method": "full",
        "steps": 6,
        "batch_size": 4,
        "max_length": 16,
        "lr": 3e-3,
        "warmup_steps": 1,
        "checkpoint_every": 3,
        "log_every": 1,
        "runs_root": tmp_path / "runs",
    }
    base.update(kw)
    return FinetuneConfig(**base)


def test_learning_rate_schedule() -> None:
    assert learning_rate(0, 1.0, 4, 100) == pytest.approx(0.25)
    assert learning_rate(3, 1.0, 4, 100) == pytest.approx(1.0)
    assert learning_rate(100, 1.0, 4, 100) == pytest.approx(0.1)


def test_full_finetune_lowers_the_loss(tiny_dir: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path, tiny_dir, steps=60, checkpoint_every=100)
    model = load_model(tiny_dir)
    tok = ByteTokenizer()
    before = answer_loss(model, tok, EXAMPLES)
    finetune(model, tok, EXAMPLES, cfg, Run.create(cfg.runs_root, "t", cfg, 0))
    assert answer_loss(model, tok, EXAMPLES) < 0.6 * before


def test_resume_is_bit_exact(tiny_dir: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path, tiny_dir)
    tok = ByteTokenizer()

    # Uninterrupted run: 6 steps, checkpoint at step 3.
    full = load_model(tiny_dir)
    run = Run.create(cfg.runs_root, "full", cfg, 0)
    finetune(full, tok, EXAMPLES, cfg, run)

    # Resume from the step-3 checkpoint in a fresh process state.
    torch.manual_seed(1234)
    resumed = load_model(tiny_dir)
    summary = finetune(resumed, tok, EXAMPLES, cfg, Run.open(run.path), resume=True)
    assert summary["resumed_from"] == 3
    for (n, a), (_, b) in zip(
        full.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), n
    steps = [
        int(line.split('"step": ')[1].split(",")[0])
        for line in (run.path / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_lora_merges_into_full_weights(tiny_dir: Path, tmp_path: Path) -> None:
    cfg = _config(tmp_path, tiny_dir, method="lora", lora_r=2, lora_alpha=4.0, lr=1e-2)
    model = _wrap_lora(load_model(tiny_dir), cfg)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    finetune(
        model, ByteTokenizer(), EXAMPLES, cfg, Run.create(cfg.runs_root, "l", cfg, 0)
    )

    # W' = W + (alpha / r) * B @ A for an adapted projection.
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    expected = layer.base_layer.weight + (4.0 / 2) * (b @ a)
    merged = model.merge_and_unload()
    assert torch.allclose(
        merged.model.layers[0].self_attn.q_proj.weight, expected, atol=1e-6
    )
    base = load_model(tiny_dir)
    assert not torch.equal(
        merged.model.layers[0].self_attn.q_proj.weight,
        base.model.layers[0].self_attn.q_proj.weight,
    )
