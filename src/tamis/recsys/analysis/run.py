"""Runner of the ``rec-collab`` kind: data, model runs, study, results, report."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tamis.cli_common import run_logging
from tamis.core.runs import Run
from tamis.recsys.analysis.config import CollabConfig
from tamis.recsys.analysis.report import write_report
from tamis.recsys.analysis.study import CollabData, ModelPredictions, run_study

__all__ = ["predictions_from_model", "predictions_from_run", "run_collab"]

log = logging.getLogger(__name__)


def predictions_from_model(
    model: Any,
    split: Any,
    name: str,
    topk: int = 20,
    mask_history: bool = False,
    device: Any = "cpu",
) -> ModelPredictions:
    """Rank every test target of ``split`` with a fitted recommender.

    Args:
        model: A fitted :class:`tamis.recsys.models.Recommender`.
        split: The :class:`tamis.recsys.data.SequentialSplit` it was fitted on.
        name: Model name in tables.
        topk: Length of the kept lists.
        mask_history: Remove history items from the candidates.
        device: Where to score.

    Returns:
        :class:`ModelPredictions` aligned with ``split.test``.
    """
    from tamis.recsys.evaluate import rank_targets
    from tamis.recsys.train import model_max_len

    result = rank_targets(
        model, split.test, model_max_len(model), 1024, mask_history, topk, device
    )
    return ModelPredictions(name, result.ranks, result.topk)


def _check_aligned(run_dir: Path, split: Any, reference: Any) -> None:
    """The run's test samples must be the study's test samples."""
    same = (
        split.n_items == reference.n_items
        and len(split.test) == len(reference.test)
        and np.array_equal(split.test.targets, reference.test.targets)
        and np.array_equal(split.test.users, reference.test.users)
    )
    if not same:
        raise ValueError(
            f"{run_dir}: its data/split differ from the study's "
            f"({split.n_items} items, {len(split.test)} test samples vs "
            f"{reference.n_items} items, {len(reference.test)} test samples); "
            "use the same data and split settings"
        )


def predictions_from_run(
    run_dir: str | Path, reference_split: Any, topk: int = 20
) -> ModelPredictions:
    """Reload a finished ``rec-train`` run's selected model and rank the test set.

    Args:
        run_dir: The run directory (with ``best_model.safetensors``).
        reference_split: The study's split; the run's must match it.
        topk: Length of the kept lists.

    Returns:
        :class:`ModelPredictions` named after the run's model.

    Raises:
        ValueError: If the run's test samples are not the study's.
    """
    from tamis.recsys.train import load_run

    run_dir = Path(run_dir)
    config, split, model = load_run(run_dir)
    _check_aligned(run_dir, split, reference_split)
    name = f"{config.model} ({run_dir.name})"
    return predictions_from_model(model, split, name, topk, config.eval.mask_history)


def run_collab(
    config: CollabConfig,
    run_dir: Path | None = None,
    resume: bool = False,
    extra_runs: Sequence[str | Path] = (),
) -> dict[str, Any]:
    """Run one study and write ``results.json`` (and ``report.html``).

    The study is a single pass with no checkpoints; ``resume`` reruns it in the
    same run directory.

    Args:
        config: The study.
        run_dir: Existing (resume) or exact path of the run directory.
        resume: Reuse ``run_dir`` instead of creating a new one.
        extra_runs: More ``rec-train`` run directories besides ``config.runs``.

    Returns:
        The results written to ``results.json``, plus ``run_dir``.
    """
    from tamis.recsys.data import make_split
    from tamis.recsys.data.load import load_data

    runs = [*config.runs, *map(str, extra_runs)]
    config = replace(config, runs=runs)
    if resume and run_dir is not None:
        run = Run.open(run_dir)
    else:
        run = Run.create(config.out, config.name, config, config.seed, path=run_dir)
    with run_logging(run):
        data = load_data(config.data, seed=config.seed)
        split = make_split(data, config.split.method, tuple(config.split.ratios))
        models = []
        for path in runs:
            log.info("ranking the test set with the model of %s", path)
            topk = max(max(config.study.ks), config.study.share_k)
            models.append(predictions_from_run(path, split, topk))
        results = run_study(CollabData.from_split(split), config.study, models)
        results["runs"] = runs
        run.write_results(results)
        if config.report:
            write_report([results], run.path / "report.html")
    log.info("collab study written to %s", run.path)
    return {**results, "run_dir": str(run.path)}
