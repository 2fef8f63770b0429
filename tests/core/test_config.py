"""Typed configuration: round trip, overrides, and every kind of bad value."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import yaml

from tamis.core.config import (
    ConfigError,
    apply_overrides,
    dump_yaml,
    from_dict,
    load_config,
    param,
    register_config,
)


@dataclass
class Optim:
    lr: float = param(1e-3, "learning rate", gt=0)
    betas: list[float] = param(factory=lambda: [0.9, 0.999], help="Adam betas")


@dataclass
class Model:
    name: str = param("sasrec", "model name", choices=["sasrec", "gru4rec"])
    layers: int = param(2, "number of layers", ge=1, le=12)
    dropout: float = param(0.5, "dropout rate", ge=0, lt=1)


@register_config("test-train")
@dataclass
class TrainCfg:
    data: Path = param(help="data folder")
    seed: int = param(0, "random seed", ge=0)
    loss: Literal["ce", "bpr"] = param("ce", "training loss")
    device: str | None = param(None, "device or null for auto")
    deterministic: bool = param(False, "deterministic kernels")
    model: Model = param(factory=Model, help="model settings")
    optim: Optim = param(factory=Optim, help="optimiser settings")
    tags: dict[str, str] = param(factory=dict, help="free-form tags")

    def validate(self) -> None:
        if self.model.name == "gru4rec" and self.loss == "bpr":
            raise ValueError("gru4rec with loss bpr is not supported")


def test_round_trip_yaml_object_yaml(tmp_path: Path) -> None:
    cfg = from_dict(TrainCfg, {"data": "d", "model": {"layers": 3}, "tags": {"a": "b"}})
    text = dump_yaml(cfg)
    assert yaml.safe_load(text)["kind"] == "test-train"
    path = tmp_path / "c.yaml"
    path.write_text(text)
    again = load_config(TrainCfg, path)
    assert again == cfg
    assert dump_yaml(again) == text


def test_defaults_and_nested_values() -> None:
    cfg = from_dict(TrainCfg, {"data": "x"})
    assert cfg.model.layers == 2 and cfg.optim.betas == [0.9, 0.999]
    assert isinstance(cfg.data, Path)


def test_overrides_with_dots_and_yaml_scalars(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("kind: test-train\ndata: d\nmodel: {layers: 2}\n")
    cfg = load_config(
        TrainCfg,
        path,
        [
            "model.layers=4",
            "optim.lr=3e-4",
            "deterministic=true",
            "device=cpu",
            "optim.betas=[0.8, 0.9]",
            "tags.note=hello",
        ],
    )
    assert cfg.model.layers == 4
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.deterministic is True and cfg.device == "cpu"
    assert cfg.optim.betas == [0.8, 0.9] and cfg.tags == {"note": "hello"}


def test_int_is_accepted_for_float_but_not_the_reverse() -> None:
    assert from_dict(TrainCfg, {"data": "d", "optim": {"lr": 1}}).optim.lr == 1.0
    with pytest.raises(
        ConfigError, match=r"model\.layers: got 2\.5, expected an integer"
    ):
        from_dict(TrainCfg, {"data": "d", "model": {"layers": 2.5}})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"data": "d", "epochs": 3}, r"epochs: unknown key; expected one of: .*seed"),
        ({"data": "d", "model": {"width": 3}}, r"model\.width: unknown key"),
        ({"data": "d", "seed": "one"}, r"seed: got 'one', expected an integer"),
        (
            {"data": "d", "deterministic": "yes"},
            r"deterministic: got 'yes', expected true",
        ),
        ({"data": "d", "seed": -1}, r"seed: got -1, expected a value >= 0"),
        (
            {"data": "d", "optim": {"lr": 0}},
            r"optim\.lr: got 0\.0, expected a value > 0",
        ),
        ({"data": "d", "model": {"dropout": 1.0}}, r"model\.dropout: got 1\.0, .* < 1"),
        ({"data": "d", "model": {"layers": 13}}, r"model\.layers: got 13, .* <= 12"),
        (
            {"data": "d", "model": {"name": "bert"}},
            r"model\.name: got 'bert', expected one of",
        ),
        (
            {"data": "d", "loss": "mse"},
            r"loss: got 'mse', expected one of \['ce', 'bpr'\]",
        ),
        ({"data": "d", "model": 3}, r"model: got 3, expected a mapping"),
        (
            {"data": "d", "optim": {"betas": 0.9}},
            r"optim\.betas: got 0\.9, expected a list",
        ),
        ({"data": "d", "optim": {"betas": [0.9, "x"]}}, r"optim\.betas\[1\]: got 'x'"),
        ({"seed": 1}, r"data: required key is missing"),
        ({"data": "d", "kind": "other"}, r"kind: got 'other', expected 'test-train'"),
        ({"data": "d", "model": {"name": "gru4rec"}, "loss": "bpr"}, r"not supported"),
    ],
)
def test_bad_values_name_key_value_and_expectation(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(TrainCfg, data)


def test_errors_from_files_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("data: d\nseed: -3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: seed: got -3"):
        load_config(TrainCfg, path)
    path.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML"):
        load_config(TrainCfg, path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(TrainCfg, tmp_path / "missing.yaml")


def test_override_errors() -> None:
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["model.layers"])
    with pytest.raises(ConfigError, match="seed is a value, not a section"):
        apply_overrides({"seed": 1}, ["seed.x=2"])
    original = {"model": {"layers": 1}}
    apply_overrides(original, ["model.layers=5"])
    assert original == {"model": {"layers": 1}}, "overrides must not mutate the input"
