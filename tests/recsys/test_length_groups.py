"""Length-grouped encoding: the same outputs, losses, gradients and updates."""

from __future__ import annotations

import pytest
import torch

from tamis.core.config import ConfigError
from tamis.recsys.config import EvalConfig, TrainConfig
from tamis.recsys.data import leave_one_out, planted_sequences
from tamis.recsys.models import build_model
from tamis.recsys.models.layers import length_groups
from tamis.recsys.objectives import build_objective
from tamis.recsys.train import fit_model

N_ITEMS = 40
MODELS = {
    "sasrec": {"hidden": 16, "inner": 32, "max_len": 20, "heads": 2},
    "gru4rec": {"hidden": 16, "gru_hidden": 24, "max_len": 20},
}


def _batch(seed: int = 0, b: int = 24, width: int = 20) -> dict[str, torch.Tensor]:
    """Left-padded histories of lengths 1..width, ids + 1, with targets."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (b,), generator=gen)
    lengths[0] = width  # the batch width is reached
    seq = torch.randint(1, N_ITEMS + 1, (b, width), generator=gen)
    pad = torch.arange(width)[None, :] < (width - lengths)[:, None]
    return {
        "user": torch.arange(b),
        "seq": seq.masked_fill(pad, 0),  # (B, L)
        "target": torch.randint(0, N_ITEMS, (b,), generator=gen),
    }


def _pair(name: str, groups: list[int]):  # noqa: ANN202
    """The same model (same weights) without and with length groups, no dropout."""
    args = {**MODELS[name], "dropout": 0.0}
    if name == "sasrec":
        args["attn_dropout"] = 0.0
    torch.manual_seed(3)
    plain = build_model(name, 10, N_ITEMS, {**args, "length_groups": []})
    grouped = build_model(name, 10, N_ITEMS, {**args, "length_groups": groups})
    grouped.load_state_dict(plain.state_dict())
    return plain, grouped


def test_length_groups_partition_rows_into_smallest_width() -> None:
    seq = _batch()["seq"]
    lengths = (seq > 0).sum(1)
    groups = length_groups(seq, [4, 8, 16])
    rows = torch.cat([r for r, _ in groups])
    assert sorted(rows.tolist()) == list(range(len(seq)))  # each row once
    bounds = [0, 4, 8, 16, 20]
    for r, width in groups:
        lo = bounds[bounds.index(width) - 1]
        assert ((lengths[r] > lo) & (lengths[r] <= width)).all()
    # Widths at or above the batch width collapse into the batch width.
    assert [w for _, w in length_groups(seq[:, -6:], [4, 8, 16])] == [4, 6]


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_grouped_loss_and_gradients_equal_whole_batch(name: str) -> None:
    plain, grouped = _pair(name, [4, 8, 16])
    batch = _batch()
    grads, losses, outs = [], [], []
    for model in (plain, grouped):
        model.train()
        objective = build_objective("next-item", {"loss": "ce"}, model, None)
        outs.append(model.encode(batch["seq"]).detach())  # (B, D)
        loss, _ = objective(model, batch)
        loss.backward()
        losses.append(loss.detach())
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-6, atol=1e-7)
    for key in grads[0]:
        torch.testing.assert_close(
            grads[0][key], grads[1][key], rtol=1e-4, atol=1e-6, msg=key
        )


@pytest.mark.parametrize("name", ["sasrec", "gru4rec"])
def test_grouped_training_steps_match(name: str) -> None:
    """Three epochs of the trainer (same batches, one step each) agree."""
    split = leave_one_out(planted_sequences(60, N_ITEMS, follow=0.9, seed=4))
    models = _pair(name, [2, 4, 8])
    results = []
    for model in models:
        results.append(
            fit_model(
                model,
                split,
                TrainConfig(epochs=3, batch_size=32, patience=10, eval_every=3),
                EvalConfig(ks=[10]),
                seed=7,
            )
        )
    losses = [[h["loss"] for h in r.history] for r in results]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for (key, a), b in zip(
        models[0].state_dict().items(), models[1].state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=key)


def test_length_groups_default_on_and_validated() -> None:
    model = build_model("sasrec", 5, 10, {})
    assert model.config.length_groups == [8, 16, 32]
    with pytest.raises((ValueError, ConfigError), match="length_groups"):
        build_model("gru4rec", 5, 10, {"length_groups": [0, 8]})
