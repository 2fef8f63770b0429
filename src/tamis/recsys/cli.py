"""``tamis rec``: the command group of this domain."""

from __future__ import annotations

import click


@click.group(name="rec")
def group() -> None:
    """Commands of the recsys domain."""
