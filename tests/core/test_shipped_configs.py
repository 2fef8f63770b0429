"""Every YAML file shipped under configs/ loads and validates."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from tamis.core.config import dump_yaml, load_any, registered_kinds

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


@pytest.mark.parametrize(
    "path", CONFIGS, ids=[str(p.relative_to(ROOT)) for p in CONFIGS]
)
def test_shipped_config_loads(path: Path) -> None:
    cfg = load_any(path)
    again = dump_yaml(cfg)
    assert again.startswith("kind: "), "a reloaded config names its kind first"


def test_every_registered_runner_resolves_to_a_function() -> None:
    for kind, cls in registered_kinds().items():
        runner = getattr(cls, "__config_runner__", None)
        if runner is not None:
            module, sep, func = runner.partition(":")
            assert sep and module.startswith("tamis."), f"{kind}: bad runner {runner!r}"
            target = getattr(importlib.import_module(module), func, None)
            assert callable(target), f"{kind}: runner {runner!r} is not importable"
