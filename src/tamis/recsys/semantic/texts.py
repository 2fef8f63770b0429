"""Texts that describe items and users, for the semantic side of SRA-CL.

Item text comes from a data set's side information (title, categories, brand,
attributes, genres ...). A user prefix is described either by an LLM-written
preference summary (prompted with the titles of its items, as in SRA-CL,
arXiv:2503.04162) or, without any LLM, by the texts of its most recent items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "item_texts",
    "item_titles",
    "template_summary",
    "summary_prompt",
    "SUMMARY_SYSTEM",
]

#: Feature names that hold an item's name; the first one present is its title.
TITLE_KEYS = ("title", "movie_title", "name", "text")
#: Feature names that are never part of an item's text.
SKIP_KEYS = ("item_id", "release_year_raw")

SUMMARY_SYSTEM = (
    "You analyse shopping and viewing histories. Answer with one short paragraph "
    "and nothing else."
)


def _as_text(value: Any, sep: str = ", ") -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, Sequence):
        return sep.join(str(v).strip() for v in value if str(v).strip())
    return str(value).strip()


def item_texts(
    item_features: Mapping[str, Sequence[Any]],
    item_ids: Sequence[Any],
    fields: Sequence[str] | None = None,
) -> list[str]:
    """One description per item from its side information.

    The title (the first of ``title``, ``movie_title``, ``name``, ``text`` that the
    item has) comes first; every other field follows as ``"field: value"``;
    list-valued fields are joined by commas (a tokenised title by spaces). An
    item with no side information is described by its raw id, so that every
    item gets a (weak) text.

    Args:
        item_features: Feature name -> one value per item (dense id order).
        item_ids: Raw id of each item, (n_items,).
        fields: Features to use, in order (default: all, title first).

    Returns:
        ``n_items`` strings.

    Raises:
        ValueError: If a named field is missing or has the wrong length.
    """
    n = len(item_ids)
    names = list(fields) if fields is not None else _default_fields(item_features)
    for name in names:
        if name not in item_features:
            known = ", ".join(sorted(item_features)) or "none"
            raise ValueError(f"item text field {name!r} not in item features ({known})")
        if len(item_features[name]) != n:
            raise ValueError(
                f"item feature {name!r} has {len(item_features[name])} values, "
                f"expected {n}"
            )
    title_key = next((k for k in TITLE_KEYS if k in names), None)
    texts = []
    for i in range(n):
        parts = []
        for name in names:
            # Token lists (a tokenised title) join with spaces, others with commas.
            value = _as_text(item_features[name][i], " " if name == title_key else ", ")
            if value:
                parts.append(value if name == title_key else f"{name}: {value}")
        texts.append(". ".join(parts) if parts else f"item {item_ids[i]}")
    return texts


def _default_fields(item_features: Mapping[str, Sequence[Any]]) -> list[str]:
    names = [k for k in item_features if k not in SKIP_KEYS]
    titles = [k for k in TITLE_KEYS if k in names][:1]
    return titles + [k for k in names if k not in titles]


def item_titles(texts: Sequence[str], max_chars: int = 80) -> list[str]:
    """Short item names for prompts: the first sentence of each text, clipped."""
    out = []
    for text in texts:
        head = text.split(". ", 1)[0].strip()
        out.append(head if len(head) <= max_chars else head[: max_chars - 1] + "…")
    return out


def template_summary(texts: Sequence[str], max_items: int = 10) -> str:
    """LLM-free description of a user prefix: its most recent item texts.

    Args:
        texts: Texts of the prefix's items, oldest first.
        max_items: How many of the most recent items to keep.

    Returns:
        ``"Interacted with: <newest>; <older>; ..."`` (newest first, since
        sentence encoders truncate long inputs from the end).
    """
    recent = list(texts)[-max_items:][::-1]
    return "Interacted with: " + "; ".join(recent)


def summary_prompt(titles: Sequence[str], max_items: int = 20, words: int = 100) -> str:
    """The prompt that asks an LLM for a preference summary of a prefix.

    Args:
        titles: Titles of the prefix's items, oldest first.
        max_items: How many of the most recent titles to list.
        words: Upper bound on the summary's length in words.
    """
    listed = "\n".join(f"- {t}" for t in list(titles)[-max_items:])
    return (
        "A user interacted with these items, oldest first:\n"
        f"{listed}\n"
        f"In at most {words} words, summarise this user's preferences: the kinds "
        "of items, themes and attributes they like."
    )
