"""``tamis screen``: the command group of this domain."""

from __future__ import annotations

import click


@click.group(name="screen")
def group() -> None:
    """Commands of the screening domain."""
