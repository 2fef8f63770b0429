"""Sens-Merging's measuring pass: run the experts, write per-layer coefficients.

Two measurements feed :mod:`tamis.llm.merging.sens`:

1. per-layer sensitivities of each expert on its own task's calibration data,
   one backward pass per sample (the loss covers the answer tokens only);
2. the logit distance between every pair of experts on each expert's data.

The result is a :class:`~tamis.llm.merging.coefficients.LayerCoefficients` file
that the merge engine applies on top of any base method. Expert models are held
in memory together during the distance pass (K models at a time).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tamis.core.progress import progress
from tamis.llm.merging.coefficients import LayerCoefficients, parameter_group
from tamis.llm.merging.sens import (
    cross_task_scaling,
    group_sums,
    layer_scaling,
    sens_sigma,
)
from tamis.llm.tasks import Example, encode_pair, pad_batch

__all__ = ["SensSettings", "layer_sensitivity", "logit_distances", "measure"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SensSettings:
    """Switches of the measuring pass (see :mod:`tamis.llm.merging.sens`)."""

    sensitivity_on: str = "theta"
    layer_norm: str = "l2"
    tau_transform: str = "inv"
    temperature: float = 2.0
    use_alpha: bool = True
    use_tau: bool = True
    max_length: int = 256


def parameter_groups(model: Any) -> tuple[list[str], dict[str, str]]:
    """Group names in model order and the parameter -> group map."""
    group_of = {n: parameter_group(n) for n, _ in model.named_parameters()}
    return list(dict.fromkeys(group_of.values())), group_of


def layer_sensitivity(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    base_state: dict[str, torch.Tensor] | None = None,
    max_length: int = 256,
) -> tuple[list[str], torch.Tensor]:
    """Mean over samples of ``sum_{j in l} |w_j * dL/dtheta_j|`` per group.

    Args:
        model: The expert (a causal LM).
        tokenizer: Its tokenizer.
        examples: Calibration samples of the expert's own task.
        base_state: Base weights; when given, ``w = theta - theta_base``
            (``sensitivity_on=delta``), else ``w = theta``.
        max_length: Token budget per sample.

    Returns:
        (group names, (G,) float64 mean sensitivities).
    """
    groups, group_of = parameter_groups(model)
    params = dict(model.named_parameters())
    for p in params.values():
        p.requires_grad_(True)
    weights = {
        n: (p.detach() - base_state[n].to(p.dtype))
        if base_state is not None
        else p.detach()
        for n, p in params.items()
    }
    total = torch.zeros(len(groups), dtype=torch.float64)
    model.eval()  # no dropout: the sensitivity of the deployed model
    for example in progress(examples, desc="sensitivity"):
        batch = pad_batch(
            [encode_pair(tokenizer, example.prompt, example.target, max_length)],
            tokenizer.pad_token_id,
        )
        model.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        per_param = {
            n: (weights[n] * p.grad).abs().sum()
            for n, p in params.items()
            if p.grad is not None
        }
        total += group_sums(per_param, groups, group_of)
    model.zero_grad(set_to_none=True)
    return groups, total / max(len(examples), 1)


@torch.no_grad()
def logit_distances(
    models: Sequence[Any],
    tokenizer: Any,
    task_examples: Sequence[Sequence[Example]],
    max_length: int = 256,
) -> torch.Tensor:
    """``g_ij``: mean L2 distance between the logits of experts i and j on task j.

    Args:
        models: K experts.
        tokenizer: Their shared tokenizer.
        task_examples: K calibration sets; set j belongs to expert j's task.
        max_length: Token budget per sample.

    Returns:
        (K, K) float64 distances (zero diagonal).
    """
    k = len(models)
    dist = torch.zeros((k, k), dtype=torch.float64)
    for j in range(k):
        for example in progress(task_examples[j], desc=f"logits task {j}"):
            ids, _ = encode_pair(tokenizer, example.prompt, example.target, max_length)
            input_ids = torch.tensor([ids])  # (1, L)
            ref = models[j](input_ids=input_ids).logits[0].float()  # (L, V)
            for i in range(k):
                if i != j:
                    other = models[i](input_ids=input_ids).logits[0].float()
                    per_token = torch.linalg.vector_norm(other - ref, dim=-1)  # (L,)
                    dist[i, j] += float(per_token.mean())
        dist[:, j] /= max(len(task_examples[j]), 1)
    return dist


def measure(
    experts: Sequence[Any],
    tokenizer: Any,
    calibration: Sequence[Sequence[Example]],
    settings: SensSettings,
    model_names: Sequence[str],
    base_state: dict[str, torch.Tensor] | None = None,
) -> LayerCoefficients:
    """Run both measurements and combine them into sigma.

    Args:
        experts: K loaded experts (same architecture).
        tokenizer: Shared tokenizer.
        calibration: K calibration sets, set i from expert i's task.
        settings: Switches.
        model_names: K names stored in the file (normally the directories).
        base_state: Base weights, needed for ``sensitivity_on=delta``.

    Returns:
        The coefficients, with alpha, tau, distances and settings in ``extra``.
    """
    if len(experts) != len(calibration):
        raise ValueError(
            f"{len(experts)} experts but {len(calibration)} calibration sets"
        )
    if settings.sensitivity_on == "delta" and base_state is None:
        raise ValueError("sensitivity_on=delta needs the base model's weights")
    k = len(experts)
    groups, _ = parameter_groups(experts[0])

    # Step 1: per-layer sensitivities -> alpha.
    alpha = None
    sensitivity = torch.zeros((k, len(groups)), dtype=torch.float64)
    if settings.use_alpha:
        delta_base = base_state if settings.sensitivity_on == "delta" else None
        for i, (model, data) in enumerate(zip(experts, calibration, strict=True)):
            log.info("sensitivity of expert %d on %d samples", i, len(data))
            _, sensitivity[i] = layer_sensitivity(
                model, tokenizer, data, delta_base, settings.max_length
            )
        alpha = layer_scaling(sensitivity, settings.layer_norm)

    # Step 2: cross-task logit distances -> tau.
    tau = None
    distances = torch.zeros((k, k), dtype=torch.float64)
    if settings.use_tau:
        distances = logit_distances(
            experts, tokenizer, calibration, settings.max_length
        )
        tau = cross_task_scaling(distances, settings.tau_transform)

    # Step 3: temperature softmax over experts.
    sigma = sens_sigma(alpha, tau, settings.temperature, k, len(groups))
    extra = {
        "alpha": alpha.tolist() if alpha is not None else None,
        "tau": tau.tolist() if tau is not None else None,
        "sensitivity": sensitivity.tolist(),
        "logit_distances": distances.tolist(),
        "settings": {
            **settings.__dict__,
            "calibration_samples": [len(c) for c in calibration],
        },
    }
    return LayerCoefficients(groups, list(model_names), sigma.tolist(), extra)
