"""Per-layer, per-model merge coefficients (Sens-Merging's output) as a file.

The file is JSON: ``groups`` (parameter-group names), ``models`` (expert names in
merge order), ``sigma`` (K x G, each column summing to 1) and the measured
``alpha``/``tau`` with the settings that produced them. The engine multiplies
expert i's weight on a tensor of group l by ``K * sigma[i][l]``, so uniform
sigma = 1/K leaves the base method unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tamis.core.io import atomic_write_json

__all__ = ["LayerCoefficients", "parameter_group"]


def parameter_group(name: str) -> str:
    """Group of a parameter: the first three dotted components of its name.

    Each decoder block (``model.layers.3``) is one group; the embeddings, final
    norm and LM head (``model.embed_tokens.weight``, ``lm_head.weight``) are
    groups of their own.
    """
    return ".".join(name.split(".")[:3])


@dataclass
class LayerCoefficients:
    """sigma_i^l for K models and G parameter groups.

    Attributes:
        groups: G group names.
        models: K model names, in merge order.
        sigma: K x G coefficients; each group's column sums to 1.
        extra: Measured quantities and settings kept for reports.
    """

    groups: list[str]
    models: list[str]
    sigma: list[list[float]]
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.sigma) != len(self.models):
            raise ValueError(
                f"sigma has {len(self.sigma)} rows, expected {len(self.models)}"
            )
        for i, row in enumerate(self.sigma):
            if len(row) != len(self.groups):
                raise ValueError(
                    f"sigma[{i}] has {len(row)} entries, expected {len(self.groups)}"
                )
        for g, name in enumerate(self.groups):
            total = sum(row[g] for row in self.sigma)
            if abs(total - 1.0) > 1e-4:
                raise ValueError(f"sigma of group {name!r} sums to {total}, not 1")
        self._column = {g: i for i, g in enumerate(self.groups)}

    def factors(self, tensor_name: str) -> list[float]:
        """``K * sigma_i^l`` for the group of ``tensor_name``, one per model.

        Raises:
            KeyError: If the tensor's group has no coefficients.
        """
        group = parameter_group(tensor_name)
        if group not in self._column:
            raise KeyError(
                f"no Sens-Merging coefficients for group {group!r} "
                f"(tensor {tensor_name!r}); the file covers {len(self.groups)} groups"
            )
        col = self._column[group]
        k = len(self.models)
        return [k * row[col] for row in self.sigma]

    @classmethod
    def uniform(cls, groups: Sequence[str], models: Sequence[str]) -> LayerCoefficients:
        """sigma = 1/K everywhere (reduces every method to its plain form)."""
        k = len(models)
        return cls(list(groups), list(models), [[1.0 / k] * len(groups)] * k)

    def save(self, path: str | Path) -> Path:
        """Write the coefficients file atomically."""
        payload = {
            "format": "tamis-layer-coefficients/1",
            "groups": self.groups,
            "models": self.models,
            "sigma": self.sigma,
            **self.extra,
        }
        return atomic_write_json(path, payload)

    @classmethod
    def load(cls, path: str | Path) -> LayerCoefficients:
        """Read a coefficients file.

        Raises:
            FileNotFoundError: If it does not exist.
            ValueError: If it is not a valid coefficients file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: coefficients file not found")
        try:
            data = json.loads(path.read_text())
            groups, models, sigma = data["groups"], data["models"], data["sigma"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a coefficients file ({err})") from None
        extra = {
            k: v
            for k, v in data.items()
            if k not in {"groups", "models", "sigma", "format"}
        }
        try:
            return cls(list(groups), list(models), sigma, extra)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
