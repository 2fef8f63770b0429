"""Typed configuration: dataclasses loaded from YAML with ``key=value`` overrides.

Every configurable component declares a dataclass whose fields carry a help string
and, where it matters, a range or a set of choices in ``field(metadata=...)``::

    @dataclass
    class Optim:
        lr: float = param(1e-3, "learning rate of AdamW", gt=0)

Loading validates once: unknown keys, wrong types and out-of-range values raise
:class:`ConfigError` naming the dotted key, the value found and what was expected.
Top-level configs carry a ``kind`` string registered with :func:`register_config`,
so a YAML file says which schema it follows and ``tamis resume`` can rebuild it.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import yaml

__all__ = [
    "ConfigError",
    "param",
    "load_config",
    "from_dict",
    "to_dict",
    "dump_yaml",
    "apply_overrides",
    "register_config",
    "config_class",
    "load_any",
    "registered_kinds",
]

T = TypeVar("T")
_MISSING = dataclasses.MISSING
_KINDS: dict[str, type] = {}
_FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
#: Modules that register the shipped config kinds; imported on demand.
DOMAIN_MODULES = ("tamis.recsys.config", "tamis.llm.config", "tamis.screening.config")


class ConfigError(ValueError):
    """A configuration value that does not match its schema."""


def param(
    default: Any = _MISSING,
    help: str = "",
    *,
    factory: Callable[[], Any] | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Iterable[Any] | None = None,
) -> Any:
    """Declare a config field with its help text and constraints.

    Args:
        default: Default value; omit for a required field.
        help: One-line description shown in docs and errors.
        factory: Default factory for mutable defaults (lists, nested configs).
        ge: Inclusive lower bound.
        gt: Exclusive lower bound.
        le: Inclusive upper bound.
        lt: Exclusive upper bound.
        choices: Allowed values.

    Returns:
        A ``dataclasses.field`` carrying the metadata.
    """
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt}
    meta["choices"] = tuple(choices) if choices is not None else None
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def register_config(
    kind: str, runner: str | None = None
) -> Callable[[type[T]], type[T]]:
    """Register a top-level config dataclass under ``kind``.

    Args:
        kind: Name written as ``kind:`` in YAML files.
        runner: ``"module:function"`` that runs a config of this kind; it is called
            as ``runner(config, run_dir=..., resume=...)`` by ``tamis resume``.

    Returns:
        A class decorator.
    """

    def wrap(cls: type[T]) -> type[T]:
        if kind in _KINDS and _KINDS[kind] is not cls:
            raise ValueError(f"config kind {kind!r} is already registered")
        cls.__config_kind__ = kind  # type: ignore[attr-defined]
        cls.__config_runner__ = runner  # type: ignore[attr-defined]
        _KINDS[kind] = cls
        return cls

    return wrap


def _import_domains() -> None:
    for name in DOMAIN_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            # A domain that is not built (or whose extra is absent) simply
            # contributes no kinds; any other import error is a real bug.
            if err.name is None or not name.startswith(err.name):
                raise


def registered_kinds() -> dict[str, type]:
    """All registered config kinds, importing the domain modules first."""
    _import_domains()
    return dict(_KINDS)


def config_class(kind: str) -> type:
    """Return the dataclass registered for ``kind``.

    Raises:
        ConfigError: If ``kind`` is unknown; the message lists the known kinds.
    """
    kinds = registered_kinds()
    if kind not in kinds:
        known = ", ".join(sorted(kinds)) or "none"
        raise ConfigError(f"kind: unknown config kind {kind!r}; known kinds: {known}")
    return kinds[kind]


# ---------------------------------------------------------------------------
# Conversion and validation


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp`` and convert where lossless."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in get_args(tp):
            try:
                return _convert(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{key}: got {value!r}, expected {_type_name(tp)}") from None
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(
                f"{key}: got {value!r}, expected one of {list(get_args(tp))}"
            )
        return value
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{key}: got {value!r}, expected null")
        return None
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: got {value!r}, expected a list")
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: got {value!r}, expected a mapping")
        _, val_tp = get_args(tp) or (str, Any)
        return {str(k): _convert(v, val_tp, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: got {value!r}, expected a mapping")
        return _build(tp, value, key + ".")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: got {value!r}, expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: got {value!r}, expected an integer")
        return value
    if tp is float:
        if isinstance(value, str) and _FLOAT_RE.match(value.strip()):
            # PyYAML (YAML 1.1) reads exponents without a dot, like 3e-4, as str.
            return float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: got {value!r}, expected a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: got {value!r}, expected a string")
        return value
    if tp is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{key}: got {value!r}, expected a path")
        return Path(value)
    raise TypeError(f"{key}: unsupported annotation {tp!r} in a config dataclass")


def _check_constraints(value: Any, meta: Mapping[str, Any], key: str) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{key}: got {value!r}, expected one of {list(choices)}")
    bounds = [
        ("ge", lambda v, b: v >= b, ">="),
        ("gt", lambda v, b: v > b, ">"),
        ("le", lambda v, b: v <= b, "<="),
        ("lt", lambda v, b: v < b, "<"),
    ]
    for name, ok, sign in bounds:
        bound = meta.get(name)
        if (
            bound is not None
            and isinstance(value, int | float)
            and not ok(value, bound)
        ):
            raise ConfigError(f"{key}: got {value!r}, expected a value {sign} {bound}")


def _build(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields and k != "kind"]
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(
            f"{prefix}{unknown[0]}: unknown key; expected one of: {known}"
        )
    kwargs = {}
    for name, f in fields.items():
        key = prefix + name
        if name in data:
            value = _convert(data[name], hints[name], key)
        elif f.default is not _MISSING:
            value = f.default
        elif f.default_factory is not _MISSING:
            value = f.default_factory()
        else:
            raise ConfigError(
                f"{key}: required key is missing ({f.metadata.get('help', '')})"
            )
        _check_constraints(value, f.metadata, key)
        kwargs[name] = value
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError:
            raise
        except ValueError as err:
            raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {err}") from None
    return obj


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build and validate a config dataclass from a plain mapping.

    Args:
        cls: The dataclass type.
        data: Nested mapping, as read from YAML.

    Returns:
        The validated instance.

    Raises:
        ConfigError: On unknown keys, wrong types, missing keys or bad values.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"top level: got {type(data).__name__}, expected a mapping")
    kind = getattr(cls, "__config_kind__", None)
    if kind is not None and "kind" in data and data["kind"] != kind:
        raise ConfigError(f"kind: got {data['kind']!r}, expected {kind!r}")
    return _build(cls, data)


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass, with ``kind`` first when set."""
    out: dict[str, Any] = {}
    kind = getattr(type(obj), "__config_kind__", None)
    if kind is not None:
        out["kind"] = kind
    for f in dataclasses.fields(obj):
        out[f.name] = _plain(getattr(obj, f.name))
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {
            f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def dump_yaml(obj: Any) -> str:
    """YAML text of a config dataclass; :func:`load_config` reads it back."""
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


def _parse_scalar(text: str) -> Any:
    # YAML's scalar rules: 3 -> int, 1e-3 -> float, true -> bool, [1, 2] -> list.
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides to a nested mapping (returns a copy).

    Raises:
        ConfigError: If an override has no ``=`` or walks into a non-mapping.
    """
    out = _deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, _, raw = item.partition("=")
        parts = key.strip().split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                path = ".".join(parts[: i + 1])
                raise ConfigError(f"{key}: {path} is a value, not a section")
            node = child
        node[parts[-1]] = _parse_scalar(raw)
    return out


def _deepcopy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deepcopy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deepcopy(v) for v in data]
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = ()
) -> T:
    """Load ``cls`` from a YAML file (optional) plus ``key=value`` overrides.

    Raises:
        ConfigError: With the file name prefixed, for any validation failure.
    """
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides)
    try:
        return from_dict(cls, data)
    except ConfigError as err:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{err}") from None


def load_any(path: str | Path, overrides: Iterable[str] = ()) -> Any:
    """Load a YAML config whose ``kind`` names its registered schema."""
    data = read_yaml(path)
    kind = data.get("kind")
    if kind is None:
        raise ConfigError(f"{path}: kind: required key is missing")
    cls = config_class(kind)
    return load_config(cls, path, overrides)
