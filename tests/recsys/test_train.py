"""Trainer: resume is bit-exact, early stopping looks only at validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import tamis.recsys.train as train_mod
from tamis.core.runs import Run
from tamis.recsys.config import EvalConfig, RecTrainConfig, TrainConfig
from tamis.recsys.data import SequentialSplit, leave_one_out, planted_sequences
from tamis.recsys.models import build_model

ARGS = {"hidden": 16, "inner": 32, "max_len": 8, "dropout": 0.3, "attn_dropout": 0.3}


def _train(split: SequentialSplit, run: Run, epochs: int, resume: bool = False):  # noqa: ANN202
    torch.manual_seed(123)
    model = build_model("sasrec", split.n_users, split.n_items, ARGS)
    result = train_mod.fit_model(
        model,
        split,
        TrainConfig(epochs=epochs, batch_size=32, patience=50),
        EvalConfig(ks=[10]),
        run=run,
        resume=resume,
        seed=5,
    )
    return model, result


def test_resume_continues_bit_for_bit(tmp_path: Path) -> None:
    planted_split = leave_one_out(planted_sequences(40, 15, follow=0.9, seed=2))
    cfg = RecTrainConfig()
    straight = Run.create(tmp_path, "a", cfg, seed=1, path=tmp_path / "a")
    model_a, res_a = _train(planted_split, straight, 3)

    broken = Run.create(tmp_path, "b", cfg, seed=1, path=tmp_path / "b")
    _train(planted_split, broken, 2)
    torch.manual_seed(999)  # a resumed process starts from other random state
    model_b, res_b = _train(planted_split, broken, 3, resume=True)

    losses_a = [h["loss"] for h in res_a.history]
    losses_b = [h["loss"] for h in res_b.history]
    assert losses_a == losses_b
    for (k, va), vb in zip(
        model_a.state_dict().items(), model_b.state_dict().values(), strict=True
    ):
        assert torch.equal(va, vb), k
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3


def test_early_stopping_never_looks_at_test(
    monkeypatch: pytest.MonkeyPatch, planted_split: SequentialSplit
) -> None:
    seen = []
    real = train_mod.evaluate

    def spy(model, samples, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.append(samples is planted_split.valid)
        return real(model, samples, *args, **kwargs)

    monkeypatch.setattr(train_mod, "evaluate", spy)
    model = build_model("bpr", planted_split.n_users, planted_split.n_items, {})
    result = train_mod.fit_model(
        model,
        planted_split,
        TrainConfig(epochs=30, batch_size=64, patience=2, lr=1e-4),
        objective_args={"loss": "bpr"},
    )
    assert seen and all(seen)
    assert result.best_epoch == max(
        range(1, len(result.history) + 1),
        key=lambda e: (result.history[e - 1]["valid_ndcg@10"], -e),
    )
    if result.stopped_early:
        assert result.epochs_run - result.best_epoch == 2
