"""Sens-Merging: coefficient maths and the measuring pass on a tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from tamis.llm.merging.coefficients import LayerCoefficients, parameter_group
from tamis.llm.merging.sens import (
    cross_task_scaling,
    layer_scaling,
    sens_sigma,
    transform_distances,
)
from tamis.llm.merging.sens_measure import (
    SensSettings,
    layer_sensitivity,
    logit_distances,
    measure,
)
from tamis.llm.models import ByteTokenizer, tiny_llama, tiny_llama_config
from tamis.llm.tasks import Example, encode_pair, pad_batch


def test_parameter_groups() -> None:
    assert parameter_group("model.layers.3.mlp.up_proj.weight") == "model.layers.3"
    assert parameter_group("model.embed_tokens.weight") == "model.embed_tokens.weight"
    assert parameter_group("lm_head.weight") == "lm_head.weight"
    assert parameter_group("model.norm.weight") == "model.norm.weight"


def test_tau_transform_raw() -> None:
    g = torch.tensor([1.0, 2.0, 5.0])
    assert torch.allclose(transform_distances(g, "raw"), g.double())


def test_tau_transform_neg_reflects_within_range() -> None:
    g = torch.tensor([1.0, 2.0, 5.0])
    # max + min - g = 6 - g
    assert torch.allclose(
        transform_distances(g, "neg"), torch.tensor([5.0, 4.0, 1.0]).double()
    )


def test_tau_transform_inv() -> None:
    g = torch.tensor([1.0, 2.0, 5.0])
    assert torch.allclose(
        transform_distances(g, "inv"), torch.tensor([1.0, 0.5, 0.2]).double()
    )


def test_tau_transform_exp_neg() -> None:
    g = torch.tensor([1.0, 2.0, 6.0])  # mean 3
    expected = torch.tensor([math.exp(-1 / 3), math.exp(-2 / 3), math.exp(-2.0)])
    assert torch.allclose(transform_distances(g, "exp_neg"), expected.double())


def test_tau_transform_unknown() -> None:
    with pytest.raises(ValueError, match="tau_transform"):
        transform_distances(torch.ones(2), "square")


@pytest.mark.parametrize("transform", ["raw", "neg", "inv", "exp_neg"])
def test_cross_task_scaling_sums_to_one_and_orders(transform: str) -> None:
    # Expert 0 is closest to the others (smallest row sum), expert 2 farthest.
    g = torch.tensor([[0.0, 1.0, 1.0], [2.0, 0.0, 2.0], [3.0, 3.0, 0.0]])
    tau = cross_task_scaling(g, transform)
    assert float(tau.sum()) == pytest.approx(1.0)
    assert torch.all(tau > 0)
    if transform == "raw":  # larger distance -> larger tau
        assert tau[0] < tau[1] < tau[2]
        assert torch.allclose(tau, torch.tensor([2.0, 4.0, 6.0]).double() / 12)
    else:  # better alignment -> larger tau
        assert tau[0] > tau[1] > tau[2]


def test_cross_task_scaling_ignores_diagonal() -> None:
    g = torch.tensor([[9.0, 1.0], [1.0, 9.0]])
    assert torch.allclose(
        cross_task_scaling(g, "raw"), torch.tensor([0.5, 0.5]).double()
    )


def test_layer_scaling_l2_and_softmax() -> None:
    s = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    l2 = layer_scaling(s, "l2")
    assert torch.allclose(l2, torch.tensor([[0.6, 0.8], [1.0, 0.0]]).double())
    sm = layer_scaling(s, "softmax")
    assert torch.allclose(sm.sum(dim=1), torch.ones(2).double())
    assert torch.allclose(sm[0], torch.softmax(torch.tensor([0.6, 0.8]).double(), 0))


@pytest.mark.parametrize("use_alpha", [True, False])
@pytest.mark.parametrize("use_tau", [True, False])
def test_sigma_sums_to_one_per_layer(use_alpha: bool, use_tau: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    alpha = layer_scaling(torch.rand(4, 7, generator=gen), "l2") if use_alpha else None
    tau = (
        cross_task_scaling(torch.rand(4, 4, generator=gen), "inv") if use_tau else None
    )
    sigma = sens_sigma(alpha, tau, 0.5, 4, 7)
    assert sigma.shape == (4, 7)
    assert torch.allclose(sigma.sum(dim=0), torch.ones(7).double())
    if not use_alpha and not use_tau:
        assert torch.equal(sigma, torch.full((4, 7), 0.25, dtype=torch.float64))


def test_sigma_temperature_limits() -> None:
    alpha = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).double()
    tau = torch.tensor([0.5, 0.5]).double()
    hot = sens_sigma(alpha, tau, 1e6, 2, 2)
    assert torch.allclose(hot, torch.full((2, 2), 0.5).double(), atol=1e-6)
    cold = sens_sigma(alpha, tau, 1e-3, 2, 2)
    assert torch.allclose(cold, torch.eye(2).double(), atol=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        sens_sigma(alpha, tau, 0.0, 2, 2)


def test_uniform_sigma_gives_unit_factors() -> None:
    sigma = sens_sigma(None, None, 2.0, 3, 2)
    c = LayerCoefficients(
        ["model.layers.0", "model.layers.1"], ["a", "b", "c"], sigma.tolist()
    )
    assert c.factors("model.layers.1.mlp.up_proj.weight") == [1.0, 1.0, 1.0]


# The measuring pass on a tiny model.


@pytest.fixture(scope="module")
def tiny_pair() -> tuple:
    config = tiny_llama_config(hidden_size=32, num_layers=2, intermediate_size=64)
    return tiny_llama(config, seed=1), tiny_llama(config, seed=2)


EXAMPLES = [Example("ab", "cd", "cd"), Example("xyz", "q", "q")]


def test_layer_sensitivity_matches_manual_sum(tiny_pair: tuple) -> None:
    model = tiny_pair[0]
    tok = ByteTokenizer()
    groups, s = layer_sensitivity(model, tok, EXAMPLES)
    manual = torch.zeros(len(groups), dtype=torch.float64)
    for e in EXAMPLES:
        model.zero_grad()
        batch = pad_batch([encode_pair(tok, e.prompt, e.target, 64)], tok.pad_token_id)
        model(**batch).loss.backward()
        for n, p in model.named_parameters():
            manual[groups.index(parameter_group(n))] += float(
                (p.detach() * p.grad).abs().sum()
            )
    assert torch.allclose(s, manual / len(EXAMPLES), rtol=1e-6)
    assert groups[0] == "model.embed_tokens.weight" and "model.layers.1" in groups
    assert torch.all(s > 0)


def test_sensitivity_on_delta_is_zero_for_the_base_itself(tiny_pair: tuple) -> None:
    model = tiny_pair[0]
    base_state = {n: p.detach().clone() for n, p in model.named_parameters()}
    _, s = layer_sensitivity(model, ByteTokenizer(), EXAMPLES, base_state)
    assert torch.equal(s, torch.zeros_like(s))


def test_logit_distances(tiny_pair: tuple) -> None:
    a, b = tiny_pair
    tok = ByteTokenizer()
    same = logit_distances([a, a], tok, [EXAMPLES, EXAMPLES])
    assert torch.equal(same, torch.zeros(2, 2, dtype=torch.float64))
    g = logit_distances([a, b], tok, [EXAMPLES[:1], EXAMPLES[1:]])
    ids = torch.tensor([encode_pair(tok, "ab", "cd", 64)[0]])
    with torch.no_grad():
        expected = torch.linalg.vector_norm(a(ids).logits[0] - b(ids).logits[0], dim=-1)
    assert g[1, 0] == pytest.approx(float(expected.mean()), rel=1e-5)
    assert g[0, 0] == 0 and g[1, 1] == 0


@pytest.mark.parametrize("transform", ["raw", "neg", "inv", "exp_neg"])
def test_measure_writes_valid_coefficients(
    tiny_pair: tuple, transform: str, tmp_path
) -> None:
    settings = SensSettings(tau_transform=transform, temperature=0.5, max_length=32)
    c = measure(
        list(tiny_pair),
        ByteTokenizer(),
        [EXAMPLES[:1], EXAMPLES[1:]],
        settings,
        ["a", "b"],
    )
    c.save(tmp_path / "c.json")
    back = LayerCoefficients.load(tmp_path / "c.json")
    sigma = torch.tensor(back.sigma, dtype=torch.float64)
    assert torch.allclose(sigma.sum(dim=0), torch.ones(sigma.shape[1]).double())
    assert back.extra["settings"]["tau_transform"] == transform
    tau = torch.tensor(back.extra["tau"], dtype=torch.float64)
    g = torch.tensor(back.extra["logit_distances"], dtype=torch.float64)
    assert torch.allclose(tau, cross_task_scaling(g, transform))
