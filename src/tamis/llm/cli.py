"""``tamis llm``: the command group of this domain."""

from __future__ import annotations

import click


@click.group(name="llm")
def group() -> None:
    """Commands of the llm domain."""
