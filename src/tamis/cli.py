"""The ``tamis`` command line. Thin: parse, build, run, write; nothing else."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path

import click

from tamis import __version__
from tamis.cli_common import call_runner, fail_on_errors
from tamis.core.progress import set_progress_enabled

#: Domain command groups: (name, module with a ``group`` click.Group, help).
DOMAINS = (
    ("rec", "tamis.recsys.cli", "Recommendation: data, models, methods, analysis."),
    ("llm", "tamis.llm.cli", "LLM post-training: fine-tuning, merging, selection."),
    ("screen", "tamis.screening.cli", "Virtual screening: training, screening, sites."),
)


class LazyGroup(click.Group):
    """Root group that imports a domain's commands only when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *(d[0] for d in DOMAINS)])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        for domain, module, _ in DOMAINS:
            if name == domain:
                return importlib.import_module(module).group
        return super().get_command(ctx, name)


def _configure_logging(verbose: int, quiet: int) -> None:
    level = logging.INFO - 10 * verbose + 10 * quiet
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("tamis")
    root.handlers[:] = [handler]
    root.setLevel(max(logging.DEBUG, min(level, logging.CRITICAL)))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tamis")
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.option("-q", "--quiet", count=True, help="Less output; no progress bars.")
def cli(verbose: int, quiet: int) -> None:
    """tamis: research methods for recommendation, LLM post-training and
    virtual screening."""
    _configure_logging(verbose, quiet)
    set_progress_enabled(quiet == 0)
    if quiet:
        # Hugging Face libraries draw their own bars; their switch is this variable.
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"


@cli.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs/demo"),
    show_default=True,
    help="Folder for the demo's run directories.",
)
@click.option(
    "--only", multiple=True, help="Run only these domains (rec, llm, screen)."
)
def demo(out: Path, only: tuple[str, ...]) -> None:
    """Run every domain end to end on small generated data, offline."""
    from tamis.demo import run_demo

    with fail_on_errors():
        summary = run_demo(out, only=only or None)
    for name, info in summary.items():
        click.echo(f"{name}: {info['status']} in {info['seconds']:.1f} s")
        for key, value in info.get("outputs", {}).items():
            click.echo(f"  {key}: {value}")
    click.echo(f"summary: {out / 'demo-summary.json'}")
    if any(info["status"] == "failed" for info in summary.values()):
        raise SystemExit(1)


@cli.command()
@click.argument(
    "run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
def resume(run_dir: Path) -> None:
    """Continue a killed or interrupted run from its last checkpoint."""
    from tamis.core.runs import Run

    with fail_on_errors():
        run = Run.open(run_dir)
        config = run.load_config()
        call_runner(config, run_dir=run_dir, resume=True)
    click.echo(f"run: {run_dir}")


@cli.command("configs")
def list_configs() -> None:
    """List the registered config kinds and their runners."""
    from tamis.core.config import registered_kinds

    for kind, cls in sorted(registered_kinds().items()):
        click.echo(f"{kind:24s} {cls.__module__}.{cls.__name__}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="tamis")
