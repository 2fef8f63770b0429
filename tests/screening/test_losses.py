"""InfoNCE and binding-site losses on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from tamis.screening.losses import binding_site_loss, duplicate_mask, symmetric_info_nce


def test_info_nce_known_2x2() -> None:
    # Orthogonal unit vectors: s = I / tau, so each softmax puts
    # e^{1/tau} / (e^{1/tau} + 1) on the positive.
    p = torch.eye(2)
    tau = 0.5
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    loss = symmetric_info_nce(p, p.clone(), tau)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_asymmetric_case_averages_both_directions() -> None:
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    lig = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    s = p @ lig.T  # [[1, 1], [0, 0]]
    row = -(torch.log_softmax(s, 1).diagonal()).mean()
    col = -(torch.log_softmax(s, 0).diagonal()).mean()
    assert symmetric_info_nce(p, lig, 1.0).item() == pytest.approx(
        0.5 * (row + col).item()
    )


def test_duplicates_are_masked_out_of_negatives() -> None:
    keys_p = ["A", "A", "B"]
    keys_l = ["x", "y", "x"]
    mask = duplicate_mask(keys_p, keys_l)
    expected = torch.tensor([[0, 1, 1], [1, 0, 0], [1, 0, 0]], dtype=torch.bool)
    assert torch.equal(mask, expected)
    # With everything but the diagonal masked, the loss is exactly zero.
    emb = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    full = ~torch.eye(3, dtype=torch.bool)
    assert symmetric_info_nce(emb, emb, 0.1, full).item() == pytest.approx(0.0)


def test_binding_site_loss_ignores_invalid_positions() -> None:
    probs = torch.tensor([[0.9, 0.2, 0.5]])
    labels = torch.tensor([[1.0, 0.0, 1.0]])
    valid = torch.tensor([[True, True, False]])
    expected = -(math.log(0.9) + math.log(0.8)) / 2
    assert binding_site_loss(probs, labels, valid).item() == pytest.approx(
        expected, rel=1e-5
    )
