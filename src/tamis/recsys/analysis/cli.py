"""``tamis rec collab``: the collaborative-information study from the command line."""

from __future__ import annotations

from pathlib import Path

import click

from tamis.cli_common import fail_on_errors
from tamis.recsys.analysis.config import CollabConfig

__all__ = ["collab"]


def _study_config(
    path: Path, overrides: tuple[str, ...], out: Path | None
) -> CollabConfig:
    """A ``rec-collab`` config from a rec-collab or a rec-train YAML file."""
    from tamis.core.config import (
        apply_overrides,
        from_dict,
        load_any,
        read_yaml,
        to_dict,
    )

    kind = read_yaml(path).get("kind")
    if kind == "rec-collab":
        config = load_any(path, overrides)
    else:
        source = load_any(path)
        if not hasattr(source, "data") or not hasattr(source, "split"):
            raise ValueError(
                f"{path}: kind {kind!r} has no data and split sections; expected "
                "a rec-collab or rec-train config"
            )
        base = CollabConfig(data=source.data, split=source.split, seed=source.seed)
        config = from_dict(CollabConfig, apply_overrides(to_dict(base), overrides))
    if out is not None:
        config.out = str(out)
    return config


@click.command("collab")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option(
    "--runs",
    "runs",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A rec-train run directory whose model is broken down (repeatable).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Parent folder of the run directory (overrides the config's out).",
)
def collab(
    config: Path, overrides: tuple[str, ...], runs: tuple[Path, ...], out: Path | None
) -> None:
    """Collaborative-information study of CONFIG's data (arXiv:2511.06905).

    CONFIG is a rec-collab config, or a rec-train config whose data and split
    are used. OVERRIDES are key=value pairs of the rec-collab schema, e.g.
    study.max_hops=4 study.window=1.
    """
    from tamis.recsys.analysis.run import run_collab

    with fail_on_errors():
        cfg = _study_config(config, overrides, out)
        results = run_collab(cfg, extra_runs=runs)
    typing = results["test_typing"]
    click.echo(
        f"{results['dataset']['name']}: {results['dataset']['n_training_items']} "
        f"items, {results['dataset']['n_edges']} edges; "
        f"{typing['share_0hop']:.1%} of test targets are 0-hop"
    )
    for name, model in results["models"].items():
        share = model["shares"]["pairs"][results["labels"][1]]
        click.echo(f"  {name}: {share:.1%} of top-K pairs are 0-hop")
    click.echo(f"run: {results['run_dir']}")
