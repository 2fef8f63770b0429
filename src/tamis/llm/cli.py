"""``tamis llm``: fine-tune, evaluate, measure Sens-Merging coefficients, merge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from tamis.cli_common import fail_on_errors, run_logging
from tamis.core.config import load_config
from tamis.core.runs import Run

_CONFIG = click.argument(
    "config", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
_OVERRIDES = click.argument("overrides", nargs=-1)


def _echo(result: dict[str, Any]) -> None:
    click.echo(json.dumps(result, indent=2, default=str))


@click.group(name="llm")
def group() -> None:
    """LLM post-training: fine-tuning, evaluation, model merging."""


@group.command()
@_CONFIG
@_OVERRIDES
@click.option("--run-dir", type=click.Path(path_type=Path), help="Exact run directory.")
@click.option("--resume", is_flag=True, help="Continue the run in --run-dir.")
def finetune(
    config: Path, overrides: tuple[str, ...], run_dir: Path | None, resume: bool
) -> None:
    """Fine-tune (full or LoRA) on one task and save an expert directory.

    CONFIG is an llm-finetune YAML file; OVERRIDES are key=value pairs.
    """
    from tamis.llm.config import FinetuneConfig
    from tamis.llm.finetune import run_finetune

    with fail_on_errors():
        if resume and run_dir is None:
            raise click.UsageError("--resume needs --run-dir")
        cfg = load_config(FinetuneConfig, config, overrides)
        if resume:
            with run_logging(Run.open(run_dir)):
                _echo(run_finetune(cfg, run_dir=run_dir, resume=True))
        else:
            _echo(run_finetune(cfg, run_dir=run_dir))


@group.command()
@_CONFIG
@_OVERRIDES
def evaluate(config: Path, overrides: tuple[str, ...]) -> None:
    """Accuracy and number of samples of a model on each task of CONFIG."""
    from tamis.llm.config import EvaluateConfig
    from tamis.llm.evaluate import run_evaluate

    with fail_on_errors():
        result = run_evaluate(load_config(EvaluateConfig, config, overrides))
    for name, r in result["tasks"].items():
        click.echo(f"{name}: accuracy {r['accuracy']:.4f} (n={r['n']}, {r['metric']})")
    click.echo(f"mean accuracy {result['mean_accuracy']:.4f}; run {result['run_dir']}")


@group.command()
@_CONFIG
@_OVERRIDES
def sensitivity(config: Path, overrides: tuple[str, ...]) -> None:
    """Measure Sens-Merging's per-layer coefficients into a JSON file."""
    from tamis.llm.config import SensitivityConfig
    from tamis.llm.sensitivity import run_sensitivity

    with fail_on_errors():
        _echo(run_sensitivity(load_config(SensitivityConfig, config, overrides)))


@group.command()
@_CONFIG
@_OVERRIDES
def merge(config: Path, overrides: tuple[str, ...]) -> None:
    """Merge models as CONFIG (an llm-merge YAML file) describes."""
    from tamis.llm.config import MergeConfig
    from tamis.llm.merge import run_merge_config

    with fail_on_errors():
        _echo(run_merge_config(load_config(MergeConfig, config, overrides)))


@group.command()
def methods() -> None:
    """List the registered merge methods and their papers."""
    from tamis.llm.merging import MERGE_METHODS

    for entry in MERGE_METHODS:
        click.echo(f"{entry.name:16s} {entry.display_name} ({entry.paper})")
