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


def test_negatives_avoid_the_users_training_items() -> None:
    torch.manual_seed(1)
    n_items = 8
    seen = {0: {1, 2, 3, 4, 5}, 1: {6}}  # user -> training items
    seen_keys = torch.tensor(
        sorted(u * n_items + i for u, s in seen.items() for i in s)
    )
    user = torch.tensor([0, 1] * 2000)
    target = torch.tensor([1, 6] * 2000)
    neg = sample_negatives(target, n_items, user, seen_keys)
    for u, items in seen.items():
        drawn = set(neg[user == u].tolist())
        assert not drawn & items, (u, drawn & items)
        assert drawn == set(range(n_items)) - items  # still uniform over the rest


def test_next_item_objective_excludes_seen_items_only_when_asked(planted_split) -> None:  # noqa: ANN001
    from tamis.recsys.models import build_model

    model = build_model("bpr", planted_split.n_users, planted_split.n_items, {})
    on = build_objective("next-item", {"loss": "bpr"}, model, planted_split)
    off = build_objective(
        "next-item", {"loss": "bpr", "exclude_seen": False}, model, planted_split
    )
    assert len(on.seen_keys) == planted_split.train_matrix().nnz
    assert len(off.seen_keys) == 0
    assert "seen_keys" not in on.state_dict()  # derived from the split, not saved
