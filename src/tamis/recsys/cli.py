"""``tamis rec``: train, evaluate and query recommenders.

Commands defined by other recsys packages (``collab`` from the analysis
package, ``semantics`` from the semantic package) are attached lazily when
those packages are present.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import click

from tamis.cli_common import fail_on_errors, run_logging

#: Extra commands: (name, "module:attribute").
EXTRA_COMMANDS = (
    ("collab", "tamis.recsys.analysis.cli:collab"),
    ("semantics", "tamis.recsys.semantic.cli:semantics"),
)


class _RecGroup(click.Group):
    """Group that also lists the commands of optional recsys packages."""

    def _extra(self, name: str) -> click.Command | None:
        for cmd_name, target in EXTRA_COMMANDS:
            if cmd_name != name:
                continue
            module, _, attr = target.partition(":")
            try:
                return getattr(importlib.import_module(module), attr)
            except ModuleNotFoundError as err:
                if err.name is None or not module.startswith(err.name):
                    raise
                return None
        return None

    def list_commands(self, ctx: click.Context) -> list[str]:
        extra = [n for n, _ in EXTRA_COMMANDS if self._extra(n) is not None]
        return sorted({*super().list_commands(ctx), *extra})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return super().get_command(ctx, name) or self._extra(name)


@click.group(name="rec", cls=_RecGroup)
def group() -> None:
    """Recommendation: train, evaluate and query models; analyses."""


@group.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Exact run directory (default: <out>/<name>-<time>).",
)
def train(config: Path, overrides: tuple[str, ...], run_dir: Path | None) -> None:
    """Train and evaluate a model: CONFIG is a rec-train YAML, then key=value."""
    from tamis.core.config import load_config
    from tamis.core.runs import Run
    from tamis.recsys.config import RecTrainConfig
    from tamis.recsys.train import run_training

    with fail_on_errors():
        cfg = load_config(RecTrainConfig, config, overrides)
        results = _train_logged(cfg, run_dir, run_training, Run)
    test = results.get("test", {})
    shown = {k: round(v, 4) for k, v in test.items() if "@" in k}
    click.echo(f"test: {json.dumps(shown)}")
    click.echo(f"run: {results['run_dir']}")


def _train_logged(cfg, run_dir, run_training, run_cls) -> dict:  # noqa: ANN001
    """Set up distribution and the run directory, then train with run.log attached."""
    import datetime as dt
    import logging

    import torch.distributed as dist

    from tamis.core.device import resolve_device
    from tamis.core.distributed import init_from_env, is_main_process

    device = resolve_device(cfg.device)
    distributed = init_from_env(getattr(device, "type", str(device)))
    if run_dir is None:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        run_dir = Path(cfg.out) / f"{cfg.name}-{stamp}"
    if distributed:
        # Every rank of a torchrun job uses rank zero's directory.
        shared = [str(run_dir)]
        dist.broadcast_object_list(shared, src=0)
        run_dir = Path(shared[0])
        if not is_main_process():
            logging.getLogger("tamis").setLevel(logging.WARNING)
    run = run_cls.create(run_dir.parent, cfg.name, cfg, cfg.seed, path=run_dir)
    if not is_main_process():
        results = run_training(cfg, run_dir=run_dir, run=run)
    else:
        with run_logging(run):
            results = run_training(cfg, run_dir=run_dir, run=run)
    results["run_dir"] = str(run_dir)
    return results


@group.command()
@click.argument(
    "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--mask-history/--no-mask-history",
    default=None,
    help="Override the run's history-masking switch.",
)
@click.option("--part", type=click.Choice(["test", "valid"]), default="test")
@click.option("--batch-size", type=int, default=None, help="Scoring batch size.")
def evaluate(
    run_dir: Path, mask_history: bool | None, part: str, batch_size: int | None
) -> None:
    """Re-evaluate a finished run's selected model (full ranking)."""
    from tamis.core.io import atomic_write_json
    from tamis.recsys.evaluate import evaluate as run_eval
    from tamis.recsys.train import load_run, model_max_len

    with fail_on_errors():
        cfg, split, model = load_run(run_dir)
        mask = cfg.eval.mask_history if mask_history is None else mask_history
        metrics, _ = run_eval(
            model,
            getattr(split, part),
            cfg.eval.ks,
            mask,
            batch_size or cfg.eval.batch_size,
            model_max_len(model),
        )
    out = {"part": part, "mask_history": mask, **metrics}
    name = f"evaluation-{part}-{'masked' if mask else 'unmasked'}.json"
    atomic_write_json(run_dir / name, out)
    for key, value in metrics.items():
        click.echo(f"{key}: {value:.4f}")
    click.echo(f"written: {run_dir / name}")


@group.command()
@click.argument(
    "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option("--user", "users", multiple=True, required=True, help="Raw user id.")
@click.option("-k", "--top", default=10, show_default=True, help="List length.")
@click.option(
    "--include-seen", is_flag=True, help="Allow items the user already interacted with."
)
def recommend(
    run_dir: Path, users: tuple[str, ...], top: int, include_seen: bool
) -> None:
    """Top-K items for users of a run, after their full known history."""
    import torch

    from tamis.recsys.data import left_pad
    from tamis.recsys.train import load_run, model_max_len

    with fail_on_errors():
        _, split, model = load_run(run_dir)
        data = split.data
        missing = [u for u in users if u not in data.user_index]
        if missing:
            raise ValueError(f"--user: unknown user id(s) {missing[:5]}")
        dense = [data.user_index[u] for u in users]
        starts = data.offsets[dense]
        ends = data.offsets[[d + 1 for d in dense]]
        seq = left_pad(data.item, starts, ends, model_max_len(model))
        batch = {"user": torch.tensor(dense), "seq": torch.from_numpy(seq)}
        if not model.sequential:
            batch["seq"] = torch.from_numpy(left_pad(data.item, starts, ends, 10_000))
        lists = model.recommend(batch, top, exclude_history=not include_seen)
    for raw, row in zip(users, lists.tolist(), strict=True):
        click.echo(f"{raw}\t" + " ".join(str(data.item_ids[i]) for i in row))
