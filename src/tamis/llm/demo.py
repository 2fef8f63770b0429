"""LLM demo: tiny experts, Sens-Merging coefficients, a TIES merge, evaluation.

Offline and small: a random byte-level Llama (about 0.1M parameters) is briefly
pre-trained on a mixture of three generated skills, one expert per skill is
fine-tuned from it, Sens-Merging measures per-layer coefficients, and the
streaming engine merges the experts with TIES with uniform and with Sens-Merging
coefficients. Every model is scored on every skill by exact match.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tamis.core.report import Report
from tamis.core.runs import Run
from tamis.llm.config import FinetuneConfig, TaskSpec
from tamis.llm.finetune import finetune
from tamis.llm.merging import LayerCoefficients, MergeParams, MergePlan, run_merge
from tamis.llm.merging.sens_measure import SensSettings, measure
from tamis.llm.models import (
    ByteTokenizer,
    load_model,
    save_model,
    tiny_llama,
    tiny_llama_config,
)
from tamis.llm.synthetic import SKILLS, skill_tasks
from tamis.llm.tasks import Example, evaluate_task

__all__ = ["DemoConfig", "run_demo", "train_full"]

log = logging.getLogger(__name__)


def train_full(
    model_dir: Path,
    examples: list[Example],
    out: Path,
    steps: int,
    run_root: Path,
    lr: float = 3e-3,
    batch_size: int = 32,
    seed: int = 0,
) -> Path:
    """Fully fine-tune the model in ``model_dir`` on ``examples`` into ``out``."""
    config = FinetuneConfig(
        model=str(model_dir),
        task=TaskSpec(name="jsonl", path=Path("generated")),
        output=out,
        method="full",
        steps=steps,
        batch_size=batch_size,
        max_length=32,
        lr=lr,
        warmup_steps=max(1, steps // 10),
        checkpoint_every=steps + 1,
        seed=seed,
    )
    run = Run.create(run_root, f"train-{out.name}", config, seed)
    model = load_model(model_dir)
    summary = finetune(model, ByteTokenizer(), examples, config, run)
    save_model(model, out, ByteTokenizer())
    run.write_results(summary)
    return out


def _scores(model_dir: Path, tests: dict[str, Any]) -> dict[str, float]:
    model = load_model(model_dir)
    tok = ByteTokenizer()
    return {
        skill: evaluate_task(model, tok, task, batch_size=64, max_new_tokens=8)[
            "accuracy"
        ]
        for skill, task in tests.items()
    }


def run_demo(out: Path) -> dict[str, str]:
    """Run the demo under ``out``; returns name -> output path.

    The tiny models run on one torch thread: at this size a second thread only
    adds synchronisation, and on a busy machine its spin-waits cost 10-30x.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(Path(out))
    finally:
        torch.set_num_threads(threads)


def _run(out: Path) -> dict[str, str]:
    start = time.perf_counter()
    cfg = DemoConfig()
    run = Run.create(out, "llm-demo", cfg, seed=0)
    work = run.path / "models"
    data = skill_tasks(seed=0, n_train=1200, n_val=32, n_test=96)
    tests = {s: data[s]["test"] for s in SKILLS}

    # 1. A random tiny Llama, pre-trained briefly on the mixture of skills.
    config = tiny_llama_config(hidden_size=64, num_layers=2, intermediate_size=128)
    random_dir = save_model(
        tiny_llama(config, seed=0), work / "random", ByteTokenizer()
    )
    mixture = [e for s in SKILLS for e in data[s]["train"].examples]
    base = train_full(
        random_dir, mixture, work / "base", cfg.base_steps, run.path / "train"
    )

    # 2. One expert per skill.
    experts = [
        train_full(
            base,
            data[s]["train"].examples,
            work / f"expert-{s}",
            cfg.expert_steps,
            run.path / "train",
            lr=2e-3,
            seed=i,
        )
        for i, s in enumerate(SKILLS)
    ]

    # 3. Sens-Merging coefficients from 16 calibration samples per skill.
    calibration = [data[s]["train"].examples[: cfg.calibration_samples] for s in SKILLS]
    models = [load_model(e) for e in experts]
    coefficients = measure(
        models,
        ByteTokenizer(),
        calibration,
        SensSettings(temperature=cfg.temperature),
        list(SKILLS),
    )
    coef_file = coefficients.save(run.path / "sens-coefficients.json")

    # 4. TIES merges through the streaming engine: uniform vs Sens-Merging.
    params = MergeParams(scaling=1.0, weights=[1.0] * 3, densities=[cfg.density] * 3)
    merged = {}
    for name, coef in (
        ("ties-uniform", None),
        ("ties-sens", LayerCoefficients.load(coef_file)),
    ):
        plan = MergePlan(
            "ties", base, experts, params, coef, work / name, overwrite=True
        )
        merged[name] = Path(run_merge(plan)["output"])

    # 5. Every model on every skill.
    table = {"base": _scores(base, tests)}
    for s, e in zip(SKILLS, experts, strict=True):
        table[f"expert-{s}"] = _scores(e, tests)
    for name, path in merged.items():
        table[name] = _scores(path, tests)
    for row in table.values():
        row["mean"] = sum(row[s] for s in SKILLS) / len(SKILLS)

    results = {
        "exact_match": table,
        "sigma": coefficients.sigma,
        "groups": coefficients.groups,
        "tau": coefficients.extra["tau"],
        "seconds": time.perf_counter() - start,
        "note": "tiny random Llama on generated skills; a smoke-scale demonstration",
    }
    run.write_results(results)
    report_path = _report(run.path, table, coefficients)
    return {
        "run": str(run.path),
        "results": str(run.path / "results.json"),
        "report": str(report_path),
    }


def _report(path: Path, table: dict[str, dict[str, float]], coef: Any) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = Report("tamis LLM demo: Sens-Merging + TIES on tiny experts")
    report.text("Exact match on held-out generated examples of each skill.")
    header = ["model", *SKILLS, "mean"]
    rows = [
        [name, *(f"{row[c]:.3f}" for c in header[1:])] for name, row in table.items()
    ]
    report.table(header, rows)
    fig, ax = plt.subplots(figsize=(6, 3))
    sigma = torch.tensor(coef.sigma)
    for i, skill in enumerate(SKILLS):
        ax.plot(sigma[i].numpy(), marker="o", label=skill)
    ax.set_xticks(range(len(coef.groups)), coef.groups, rotation=30, fontsize=6)
    ax.set_ylabel("sigma")
    ax.legend()
    fig.tight_layout()
    report.figure(fig)
    plt.close(fig)
    return report.write(path / "report.html")


@dataclass
class DemoConfig:
    """Settings of the demo, recorded in its run directory."""

    base_steps: int = 250
    expert_steps: int = 250
    density: float = 0.5
    temperature: float = 0.2
    calibration_samples: int = 16
