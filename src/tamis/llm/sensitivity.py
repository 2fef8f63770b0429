"""Runner of Sens-Merging's measuring pass (``tamis llm sensitivity``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tamis.core.runs import Run
from tamis.llm.config import SensitivityConfig
from tamis.llm.evaluate import task_from_spec
from tamis.llm.merging.sens_measure import SensSettings, measure
from tamis.llm.models import load_model, load_tokenizer, resolve_model_dir

__all__ = ["run_sensitivity"]


def run_sensitivity(
    config: SensitivityConfig, run_dir: Path | None = None, resume: bool = False
) -> dict[str, Any]:
    """Measure sensitivities and logit distances; write the coefficients file."""
    run = Run.create(config.runs_root, "sensitivity", config, config.seed, path=run_dir)
    dirs = [resolve_model_dir(e) for e in config.experts]
    tokenizer = load_tokenizer(dirs[0])
    experts = [load_model(d) for d in dirs]
    calibration = []
    for spec in config.calibration:
        task = task_from_spec(spec)
        calibration.append(task.examples[: config.num_samples])
    base_state = None
    if config.sensitivity_on == "delta":
        base = load_model(resolve_model_dir(config.base_model))
        base_state = {n: p.detach().clone() for n, p in base.named_parameters()}
        del base
    settings = SensSettings(
        sensitivity_on=config.sensitivity_on,
        layer_norm=config.layer_norm,
        tau_transform=config.tau_transform,
        temperature=config.temperature,
        use_alpha=config.use_alpha,
        use_tau=config.use_tau,
        max_length=config.max_length,
    )
    torch.manual_seed(config.seed)
    coefficients = measure(
        experts, tokenizer, calibration, settings, [str(d) for d in dirs], base_state
    )
    coefficients.save(config.output)
    results = {
        "coefficients": str(config.output),
        "groups": len(coefficients.groups),
        "tau": coefficients.extra["tau"],
        "sigma_min": min(min(r) for r in coefficients.sigma),
        "sigma_max": max(max(r) for r in coefficients.sigma),
    }
    run.write_results(results)
    results["run_dir"] = str(run.path)
    return results
