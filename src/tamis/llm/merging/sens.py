"""Sens-Merging: sensitivity-guided per-layer coefficients for task-vector merging.

Reference: Liu, Wu, He, Han, Yuan and Song, *Sens-Merging: Sensitivity-Guided
Parameter Balancing for Merging Large Language Models*, Findings of ACL 2025,
arXiv:2502.12420.

Notation (K experts, G parameter groups):

- layer sensitivity ``s_i^l = mean_x sum_{j in l} |theta_{i,j} * dL_i(x)/dtheta_{i,j}|``
  over calibration samples x of expert i's own task (``sensitivity_on=delta``
  uses the task vector instead of theta);
- task-specific scaling ``alpha_i = s_i / ||s_i||_2`` (``layer_norm=l2``) or
  ``softmax(s_i / ||s_i||_2)`` over layers (``layer_norm=softmax``);
- logit distance ``g_ij = mean ||f_i(x) - f_j(x)||_2`` over x in task j's data
  and its token positions; ``tau_i = transform(sum_{j != i} g_ij)``,
  L1-normalised over i. The direction of the transfer term is ambiguous in the
  sources, so ``tau_transform`` picks it: ``raw`` (g, as in the public
  re-implementation: larger distance, larger tau), ``neg`` (g reflected within
  its range, ``max g + min g - g``), ``inv`` (1/g) or ``exp_neg`` (exp(-g/mean g));
- ``sigma_i^l = softmax_i(alpha_i^l * tau_i / T)`` with temperature T; the merge
  uses ``K * sigma_i^l`` as the expert's weight on group l, so uniform sigma
  gives back the base method exactly.

This module holds the maths as pure functions; the measuring pass that runs the
models is :mod:`tamis.llm.merging.sens_measure`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "LAYER_NORMS",
    "TAU_TRANSFORMS",
    "cross_task_scaling",
    "layer_scaling",
    "sens_sigma",
    "transform_distances",
]

TAU_TRANSFORMS = ("raw", "neg", "inv", "exp_neg")
LAYER_NORMS = ("l2", "softmax")


def layer_scaling(sensitivity: torch.Tensor, layer_norm: str = "l2") -> torch.Tensor:
    """alpha from per-layer sensitivities.

    Args:
        sensitivity: (K, G) non-negative ``s_i^l``.
        layer_norm: ``l2`` (divide each row by its L2 norm) or ``softmax``
            (softmax over layers of the L2-normalised row).

    Returns:
        (K, G) alpha.
    """
    if layer_norm not in LAYER_NORMS:
        raise ValueError(
            f"layer_norm: got {layer_norm!r}, expected one of {LAYER_NORMS}"
        )
    s = sensitivity.to(torch.float64)
    norm = torch.linalg.vector_norm(s, dim=1, keepdim=True).clamp(min=1e-300)
    alpha = s / norm  # (K, G)
    if layer_norm == "softmax":
        alpha = torch.softmax(alpha, dim=1)
    return alpha


def transform_distances(
    totals: torch.Tensor, tau_transform: str = "inv"
) -> torch.Tensor:
    """Map summed logit distances ``sum_{j != i} g_ij`` to positive scores.

    Args:
        totals: (K,) positive distances.
        tau_transform: ``raw``, ``neg``, ``inv`` or ``exp_neg``.

    Returns:
        (K,) positive, un-normalised scores.
    """
    g = totals.to(torch.float64)
    if tau_transform == "raw":
        return g
    if tau_transform == "neg":
        # -g shifted back into [min g, max g]: the order reverses, values stay > 0.
        return g.max() + g.min() - g
    if tau_transform == "inv":
        return 1.0 / g.clamp(min=1e-300)
    if tau_transform == "exp_neg":
        return torch.exp(-g / g.mean().clamp(min=1e-300))
    raise ValueError(
        f"tau_transform: got {tau_transform!r}, expected one of {TAU_TRANSFORMS}"
    )


def cross_task_scaling(
    distances: torch.Tensor, tau_transform: str = "inv"
) -> torch.Tensor:
    """tau from the matrix of logit distances.

    Args:
        distances: (K, K) ``g_ij``; the diagonal is ignored.
        tau_transform: See :func:`transform_distances`.

    Returns:
        (K,) tau, summing to 1.
    """
    k = distances.shape[0]
    if distances.shape != (k, k):
        raise ValueError(
            f"distances: got shape {tuple(distances.shape)}, expected (K, K)"
        )
    off = distances.to(torch.float64) * (1 - torch.eye(k, dtype=torch.float64))
    scores = transform_distances(off.sum(dim=1), tau_transform)
    return scores / scores.sum()


def sens_sigma(
    alpha: torch.Tensor | None,
    tau: torch.Tensor | None,
    temperature: float,
    num_models: int,
    num_groups: int,
) -> torch.Tensor:
    """sigma = softmax over models of ``alpha * tau / T``.

    A scaling switched off (None) is replaced by its uniform value: ``1/K`` for
    tau, and the L2-normalised constant ``1/sqrt(G)`` for alpha, so each
    ablation keeps the other factor's scale.

    Args:
        alpha: (K, G) task-specific scaling, or None.
        tau: (K,) cross-task scaling, or None.
        temperature: T > 0.
        num_models: K.
        num_groups: G.

    Returns:
        (K, G) sigma; every column sums to 1.
    """
    if temperature <= 0:
        raise ValueError(f"temperature: got {temperature}, expected > 0")
    k, g = num_models, num_groups
    if alpha is None:
        alpha = torch.full((k, g), 1.0 / g**0.5, dtype=torch.float64)
    if tau is None:
        tau = torch.full((k,), 1.0 / k, dtype=torch.float64)
    logits = alpha.to(torch.float64) * tau.to(torch.float64)[:, None] / temperature
    return torch.softmax(logits, dim=0)  # (K, G)


def group_sums(
    values: dict[str, torch.Tensor], groups: Sequence[str], group_of: dict[str, str]
) -> torch.Tensor:
    """Sum of each parameter's values inside each group.

    Args:
        values: Parameter name -> scalar tensor (already summed over entries).
        groups: Group names, in output order.
        group_of: Parameter name -> group name.

    Returns:
        (G,) float64 sums.
    """
    index = {g: i for i, g in enumerate(groups)}
    out = torch.zeros(len(groups), dtype=torch.float64)
    for name, v in values.items():
        out[index[group_of[name]]] += float(v)
    return out
