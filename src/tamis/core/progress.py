"""Progress bars that the CLI's ``-q`` and a library argument both silence."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

__all__ = ["progress", "set_progress_enabled", "progress_enabled"]

T = TypeVar("T")
_ENABLED = True


def set_progress_enabled(enabled: bool) -> None:
    """Switch progress bars on or off process-wide (the CLI's ``-q`` does this)."""
    global _ENABLED
    _ENABLED = enabled


def progress_enabled() -> bool:
    """Whether progress bars are currently shown by default."""
    return _ENABLED


def progress(
    iterable: Iterable[T] | None = None,
    desc: str = "",
    total: int | None = None,
    enabled: bool | None = None,
    **kwargs: Any,
) -> Any:
    """Wrap ``iterable`` in a progress bar.

    Args:
        iterable: What to iterate; ``None`` for a manually updated bar.
        desc: Label shown left of the bar.
        total: Number of steps when ``iterable`` has no length.
        enabled: ``False`` silences this bar; ``None`` follows the process default.
        **kwargs: Passed to ``tqdm``.

    Returns:
        A tqdm iterator (a no-op wrapper when disabled).
    """
    show = _ENABLED if enabled is None else enabled and _ENABLED
    return tqdm(
        iterable, desc=desc, total=total, disable=not show, leave=False, **kwargs
    )
