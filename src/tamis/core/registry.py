"""Name -> implementation registries, with display names and paper references."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Entry", "Registry"]

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered implementation.

    Attributes:
        name: Key used in configs and on the command line.
        obj: The class or function.
        display_name: Human-readable name for reports.
        paper: Reference (arXiv id or venue) of the method, empty for utilities.
    """

    name: str
    obj: T
    display_name: str
    paper: str


class Registry(Generic[T]):
    """A named set of implementations of one kind (models, merge methods, ...).

    Example:
        >>> MERGERS = Registry("merge method")
        >>> @MERGERS.register("ties", "TIES-Merging", paper="arXiv:2306.01708")
        ... def ties(task_vectors, density): ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self, name: str, display_name: str | None = None, paper: str = ""
    ) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``."""

        def wrap(obj: T) -> T:
            self.add(name, obj, display_name, paper)
            return obj

        return wrap

    def add(
        self, name: str, obj: T, display_name: str | None = None, paper: str = ""
    ) -> None:
        """Register ``obj`` under ``name``; a second, different object is an error."""
        if name in self._entries and self._entries[name].obj is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = Entry(name, obj, display_name or name, paper)

    def entry(self, name: str) -> Entry[T]:
        """The entry for ``name``.

        Raises:
            KeyError: If unknown; the message lists the known names.
        """
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none registered"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}")
        return self._entries[name]

    def get(self, name: str) -> T:
        """The implementation registered under ``name``."""
        return self.entry(name).obj

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the implementation registered under ``name``."""
        return self.get(name)(*args, **kwargs)  # type: ignore[operator]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)
