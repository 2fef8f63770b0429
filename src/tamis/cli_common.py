"""Pieces shared by the domain command groups: config arguments, run logging."""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from tamis.core.config import ConfigError
from tamis.core.runs import Run

__all__ = ["run_logging", "fail_on_errors", "call_runner"]


@contextlib.contextmanager
def run_logging(run: Run) -> Iterator[None]:
    """Copy the ``tamis`` logger's records into ``run.log`` while the block runs.

    On an exception the run is marked ``failed`` and the error is logged before it
    propagates, so a run directory always says how it ended.
    """
    handler = logging.FileHandler(run.log_file, encoding="utf-8")
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setLevel(logging.DEBUG)
    logger = logging.getLogger("tamis")
    logger.addHandler(handler)
    try:
        yield
    except BaseException as err:
        logger.error("run failed: %s: %s", type(err).__name__, err)
        run.set_status("failed")
        raise
    finally:
        logger.removeHandler(handler)
        handler.close()


@contextlib.contextmanager
def fail_on_errors() -> Iterator[None]:
    """Turn user errors (bad config, bad data files) into a clean CLI error."""
    try:
        yield
    except (ConfigError, ValueError, FileNotFoundError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise click.ClickException(str(msg)) from err


def call_runner(config: Any, run_dir: Path | None, resume: bool) -> Any:
    """Call the runner registered with ``config``'s kind."""
    target = getattr(type(config), "__config_runner__", None)
    if not target:
        kind = getattr(type(config), "__config_kind__", type(config).__name__)
        raise click.ClickException(f"config kind {kind!r} has no runner to resume")
    module, _, func = target.partition(":")
    runner = getattr(importlib.import_module(module), func)
    return runner(config, run_dir=run_dir, resume=resume)
