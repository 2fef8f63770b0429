"""Score a model on tasks: accuracy and number of samples per task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tamis.core.runs import Run
from tamis.llm.config import EvaluateConfig, TaskSpec
from tamis.llm.models import load_model, load_tokenizer, resolve_model_dir
from tamis.llm.tasks import Task, evaluate_task, load_task

__all__ = ["evaluate_model", "run_evaluate", "task_from_spec"]


def task_from_spec(spec: TaskSpec) -> Task:
    """Load the slice of a task that ``spec`` names."""
    task = load_task(spec.name, spec.path)
    stop = None if spec.limit is None else spec.start + spec.limit
    sliced = task.subset(spec.start, stop)
    if not sliced.examples:
        raise ValueError(f"{spec.path}: no examples after start={spec.start}")
    return sliced


def evaluate_model(
    model: Any, tokenizer: Any, tasks: list[Task], batch_size: int, max_new_tokens: int
) -> dict[str, Any]:
    """Per-task results and their unweighted mean accuracy."""
    per_task = {
        t.name: evaluate_task(model, tokenizer, t, batch_size, max_new_tokens)
        for t in tasks
    }
    mean = sum(r["accuracy"] for r in per_task.values()) / len(per_task)
    return {"tasks": per_task, "mean_accuracy": mean}


def run_evaluate(
    config: EvaluateConfig, run_dir: Path | None = None, resume: bool = False
) -> dict[str, Any]:
    """Runner of ``llm-evaluate`` configs."""
    run = Run.create(config.runs_root, "evaluate", config, config.seed, path=run_dir)
    model_dir = resolve_model_dir(config.model)
    model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    tasks = [task_from_spec(s) for s in config.tasks]
    results = evaluate_model(
        model, tokenizer, tasks, config.batch_size, config.max_new_tokens
    )
    results["model"] = str(model_dir)
    run.write_results(results)
    results["run_dir"] = str(run.path)
    return results
