"""Readers for the interaction formats met in recommendation research.

Every reader returns an :class:`~tamis.recsys.data.dataset.InteractionData` and
fails on a malformed line with a ``ValueError`` that names the file, the line
number and what was expected. Side tables (item text, categories, attributes)
are joined by raw item id; ids that match no interaction are counted in the
dataset's ``report`` rather than dropped silently.

Formats:

* RecBole atomic files: ``<name>.inter`` (+ optional ``.item``) with
  ``field:type`` headers (:func:`read_atomic`).
* Sequence text, one user per line ``uid i1 i2 ...`` in time order
  (:func:`read_sequences`), as in the S3-Rec / CL4SRec releases.
* Pair text, ``uid iid`` per line in time order (:func:`read_pairs`).
* RecBole sequential pre-split files ``user_id item_id_list target`` with an
  item text file (:func:`read_presplit`).
* Session click logs in CSV joined with an item side table (:func:`read_sessions`).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tamis.recsys.data.dataset import InteractionData

__all__ = [
    "read_atomic",
    "read_sequences",
    "read_pairs",
    "read_presplit",
    "read_sessions",
    "read_item_attributes",
    "read_item_text",
]

log = logging.getLogger(__name__)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-empty lines with 1-based line numbers; a missing file is an error."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield lineno, line


def _number(text: str, path: Path, lineno: int, field: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"{path}:{lineno}: field {field!r}: expected a number, found {text!r}"
        ) from None


# ---------------------------------------------------------------------------
# RecBole atomic files


def _atomic_header(path: Path, line: str) -> list[tuple[str, str]]:
    """Parse ``name:type`` header cells."""
    fields = []
    for cell in line.split("\t"):
        name, sep, ftype = cell.partition(":")
        if not sep or ftype not in {"token", "token_seq", "float", "float_seq"}:
            raise ValueError(
                f"{path}:1: header cell {cell!r}: expected name:type with type "
                "token, token_seq, float or float_seq"
            )
        fields.append((name, ftype))
    return fields


def _atomic_rows(path: Path) -> tuple[list[tuple[str, str]], list[list[Any]]]:
    """Read an atomic file into typed columns (lists per field)."""
    lines = _lines(path)
    try:
        _, head = next(lines)
    except StopIteration:
        raise ValueError(f"{path}: empty file, expected a field:type header") from None
    fields = _atomic_header(path, head)
    cols: list[list[Any]] = [[] for _ in fields]
    for lineno, line in lines:
        cells = line.split("\t")
        if len(cells) != len(fields):
            raise ValueError(
                f"{path}:{lineno}: expected {len(fields)} tab-separated fields, "
                f"found {len(cells)}"
            )
        for col, (name, ftype), cell in zip(cols, fields, cells, strict=True):
            if ftype == "token":
                col.append(cell)
            elif ftype == "token_seq":
                col.append(cell.split())
            elif ftype == "float":
                col.append(_number(cell, path, lineno, name))
            else:
                col.append([_number(c, path, lineno, name) for c in cell.split()])
    return fields, cols


def read_atomic(
    directory: str | Path,
    name: str,
    user_field: str = "user_id",
    item_field: str = "item_id",
    time_field: str | None = "timestamp",
    rating_field: str | None = "rating",
) -> InteractionData:
    """Read RecBole atomic files ``<directory>/<name>.inter`` and ``.item``.

    Every column of the ``.item`` file other than the item id becomes an item
    feature named after the column (``token_seq`` values as lists of tokens).

    Args:
        directory: Folder with the atomic files.
        name: Data set name (file prefix).
        user_field: Column of user ids.
        item_field: Column of item ids.
        time_field: Column of timestamps (``None`` or absent: file order).
        rating_field: Column of ratings (``None`` or absent: no ratings).

    Returns:
        The dataset.
    """
    directory = Path(directory)
    inter = directory / f"{name}.inter"
    fields, cols = _atomic_rows(inter)
    names = [f for f, _ in fields]
    for need in (user_field, item_field):
        if need not in names:
            raise ValueError(f"{inter}:1: required column {need!r} not in header")
    col = dict(zip(names, cols, strict=True))
    ts = col.get(time_field) if time_field else None
    rating = col.get(rating_field) if rating_field else None

    # Optional item side table.
    features: dict[str, dict[str, Any]] = {}
    item_file = directory / f"{name}.item"
    if item_file.is_file():
        ifields, icols = _atomic_rows(item_file)
        inames = [f for f, _ in ifields]
        if item_field not in inames:
            raise ValueError(f"{item_file}:1: required column {item_field!r} missing")
        keys = icols[inames.index(item_field)]
        for fname, values in zip(inames, icols, strict=True):
            if fname != item_field:
                features[fname] = dict(zip(keys, values, strict=True))
    return InteractionData.from_raw(
        col[user_field], col[item_field], ts, rating, features, name=name
    )


# ---------------------------------------------------------------------------
# Plain text sequences


def read_sequences(
    path: str | Path, item_attributes: str | Path | None = None, name: str = ""
) -> InteractionData:
    """Read ``uid i1 i2 ...`` lines (one user per line, items in time order).

    Args:
        path: The text file.
        item_attributes: Optional JSON file item id -> list of attribute ids
            (the ``*_item2attributes.json`` of the S3-Rec releases).
        name: Data set name (default: the file stem).
    """
    path = Path(path)
    users: list[str] = []
    items: list[str] = []
    for lineno, line in _lines(path):
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(
                f"{path}:{lineno}: expected 'user item1 item2 ...', found "
                f"{len(parts)} field(s)"
            )
        users.extend([parts[0]] * (len(parts) - 1))
        items.extend(parts[1:])
    return _with_attributes(users, items, None, item_attributes, name or path.stem)


def read_pairs(
    path: str | Path, item_attributes: str | Path | None = None, name: str = ""
) -> InteractionData:
    """Read ``uid iid [timestamp]`` lines in time order (one interaction a line)."""
    path = Path(path)
    users, items, times = [], [], []
    for lineno, line in _lines(path):
        parts = line.split()
        if len(parts) not in (2, 3):
            raise ValueError(
                f"{path}:{lineno}: expected 'user item' or 'user item timestamp', "
                f"found {len(parts)} fields"
            )
        users.append(parts[0])
        items.append(parts[1])
        if len(parts) == 3:
            times.append(_number(parts[2], path, lineno, "timestamp"))
    if times and len(times) != len(users):
        raise ValueError(f"{path}: some lines have a timestamp and others do not")
    return _with_attributes(
        users, items, times or None, item_attributes, name or path.stem
    )


def read_item_attributes(path: str | Path) -> dict[str, list[str]]:
    """Read a JSON object item id -> list of attribute ids (as strings)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object item -> attribute list")
    out = {}
    for key, value in raw.items():
        if not isinstance(value, list):
            raise ValueError(
                f"{path}: item {key!r}: expected a list of attribute ids, "
                f"found {type(value).__name__}"
            )
        out[str(key)] = [str(v) for v in value]
    return out


def _with_attributes(
    users: Sequence[str],
    items: Sequence[str],
    times: Sequence[float] | None,
    attributes: str | Path | None,
    name: str,
) -> InteractionData:
    features = {}
    if attributes is not None:
        features["attributes"] = read_item_attributes(attributes)
    return InteractionData.from_raw(users, items, times, None, features, name=name)


# ---------------------------------------------------------------------------
# RecBole pre-split sequential files


def read_item_text(path: str | Path) -> dict[str, str]:
    """Read ``item_id<TAB>text`` lines; an optional ``field:type`` header is skipped."""
    path = Path(path)
    out = {}
    for lineno, line in _lines(path):
        key, sep, text = line.partition("\t")
        if lineno == 1 and ":" in key and ":" in text.split("\t")[0]:
            continue  # atomic header
        if not sep:
            raise ValueError(f"{path}:{lineno}: expected 'item<TAB>text'")
        out[key] = text.strip()
    return out


def read_presplit(directory: str | Path, name: str) -> InteractionData:
    """Read RecBole pre-split ``<name>.{train,valid,test}.inter`` into one dataset.

    The files hold ``user_id  item_id_list  item_id`` rows (the list is
    space-separated). Each user's full sequence is rebuilt from the test row
    (input list + target), so a leave-one-out split of the result reproduces
    the files' validation and test targets; inputs the producer truncated stay
    truncated. ``<name>.text`` (item text, keyed by the raw ids of
    ``<name>.item2index`` when that file exists) becomes the ``text`` feature.

    Raises:
        ValueError: On malformed lines, or if a validation target disagrees with
            the test input (the files do not describe one leave-one-out split).
    """
    directory = Path(directory)
    rows = {
        part: _presplit_rows(directory / f"{name}.{part}.inter")
        for part in ("valid", "test")
    }
    users, items = [], []
    for user, (hist, target) in rows["test"].items():
        seq = [*hist, target]
        if user in rows["valid"]:
            vhist, vtarget = rows["valid"][user]
            if not hist or hist[-1] != vtarget:
                raise ValueError(
                    f"{directory / f'{name}.test.inter'}: user {user!r}: test input "
                    f"does not end with the validation target {vtarget!r}"
                )
        users.extend([user] * len(seq))
        items.extend(seq)

    # Item text, joined through item2index when the text is keyed by raw ids.
    features: dict[str, dict[str, Any]] = {}
    text_file = directory / f"{name}.text"
    if text_file.is_file():
        text = read_item_text(text_file)
        index_file = directory / f"{name}.item2index"
        if index_file.is_file():
            mapping = {}
            for lineno, line in _lines(index_file):
                parts = line.split()
                if len(parts) != 2:
                    raise ValueError(f"{index_file}:{lineno}: expected 'raw_id index'")
                mapping[parts[0]] = parts[1]
            text = {mapping.get(k, f"?{k}"): v for k, v in text.items()}
        features["text"] = text
    return InteractionData.from_raw(users, items, None, None, features, name=name)


def _presplit_rows(path: Path) -> dict[str, tuple[list[str], str]]:
    out: dict[str, tuple[list[str], str]] = {}
    lines = _lines(path)
    for lineno, line in lines:
        cells = line.split("\t")
        if lineno == 1 and ":" in cells[0]:
            continue  # header
        if len(cells) != 3:
            raise ValueError(
                f"{path}:{lineno}: expected 3 tab-separated fields "
                f"(user, item list, target), found {len(cells)}"
            )
        out[cells[0]] = (cells[1].split(), cells[2].strip())
    return out


# ---------------------------------------------------------------------------
# Session logs


def read_sessions(
    path: str | Path,
    sep: str = ";",
    session_col: str = "session_id",
    item_col: str = "item_id",
    time_col: str | None = "timeframe",
    item_table: str | Path | None = None,
    item_table_sep: str = ";",
    item_key_col: str = "itemId",
    item_value_cols: Sequence[str] = ("categoryId",),
    name: str = "",
) -> InteractionData:
    """Read a session click log (CSV with a header) joined with an item table.

    Sessions play the role of users. Rows are ordered by (session, time), file
    order breaking ties. Each ``item_value_cols`` column of the item table
    becomes an item feature holding the list of values given for the item
    (several rows per item accumulate).

    Args:
        path: The click log.
        sep: Column separator of the log.
        session_col: Session id column.
        item_col: Item id column.
        time_col: Time column (numeric) or ``None``.
        item_table: Optional CSV of item side information.
        item_table_sep: Its separator.
        item_key_col: Its item id column.
        item_value_cols: Its feature columns.
        name: Data set name (default: the file stem).
    """
    path = Path(path)
    users, items, times = [], [], []
    for lineno, row in _csv_rows(path, sep, [session_col, item_col, time_col]):
        users.append(row[session_col])
        items.append(row[item_col])
        if time_col:
            times.append(_number(row[time_col], path, lineno, time_col))
    features: dict[str, dict[str, Any]] = {}
    if item_table is not None:
        table = Path(item_table)
        wanted = [item_key_col, *item_value_cols]
        for col in item_value_cols:
            features[col] = {}
        for _, row in _csv_rows(table, item_table_sep, wanted):
            for col in item_value_cols:
                features[col].setdefault(row[item_key_col], []).append(row[col])
    return InteractionData.from_raw(
        users, items, times or None, None, features, name=name or path.stem
    )


def _csv_rows(
    path: Path, sep: str, required: Sequence[str | None]
) -> Iterator[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter=sep)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file, expected a header line")
        for col in required:
            if col is not None and col not in header:
                raise ValueError(f"{path}:1: column {col!r} not in header {header}")
        for row in reader:
            lineno = reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(
                    f"{path}:{lineno}: expected {len(header)} fields separated by "
                    f"{sep!r}, found {len(row)}"
                )
            yield lineno, dict(zip(header, row, strict=True))
