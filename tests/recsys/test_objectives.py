"""Objective maths and the objective registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tamis.recsys.objectives import (
    OBJECTIVES,
    bce_loss,
    bpr_loss,
    build_objective,
    get_objective,
    next_item_cross_entropy,
    sample_negatives,
)


def test_cross_entropy_is_the_full_softmax() -> None:
    torch.manual_seed(0)
    q, items = torch.randn(4, 3), torch.randn(6, 3)
    target = torch.tensor([0, 5, 2, 2])
    logits = q @ items.T
    manual = -(logits.log_softmax(-1)[torch.arange(4), target]).mean()
    assert torch.allclose(next_item_cross_entropy(q, items, target), manual)


def test_pairwise_losses_closed_forms() -> None:
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0])
    assert torch.isclose(
        bpr_loss(pos, neg),
        -(F.logsigmoid(torch.tensor(2.0)) + F.logsigmoid(torch.tensor(0.0))) / 2,
    )
    assert torch.isclose(
        bce_loss(torch.tensor([0.0]), torch.tensor([0.0])),
        torch.tensor(2 * 0.6931471805599453),
    )


def test_negatives_never_hit_the_target() -> None:
    torch.manual_seed(0)
    target = torch.randint(0, 5, (10_000,))
    neg = sample_negatives(target, 5)
    assert not (neg == target).any()
    assert set(neg.tolist()) == set(range(5))


def test_registry_and_argument_validation(planted_split) -> None:  # noqa: ANN001
    assert "next-item" in OBJECTIVES
    with pytest.raises(KeyError, match="unknown training objective"):
        get_objective("no-such-objective")
    from tamis.core.config import ConfigError
    from tamis.recsys.models import build_model

    model = build_model("bpr", planted_split.n_users, planted_split.n_items, {})
    with pytest.raises(ConfigError, match="method_args.loss"):
        build_objective("next-item", {"loss": "hinge"}, model, planted_split)
    obj = build_objective("next-item", {"loss": "bpr", "l2": 0.1}, model, planted_split)
    batch = {
        "user": torch.tensor([0, 1]),
        "target": torch.tensor([1, 2]),
        "seq": torch.zeros(2, 3, dtype=torch.long),
        "sample": torch.tensor([0, 1]),
    }
    loss, logs = obj(model, batch)
    assert loss.ndim == 0 and loss > logs["loss_main"]
