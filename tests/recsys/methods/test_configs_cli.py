"""Shipped SRA-CL / CL4SRec configs and the ``tamis rec semantics`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tamis.core.config import ConfigError, load_any
from tamis.recsys.semantic.cli import semantics

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "configs/recsys").glob("sracl*.yaml"))
    + sorted((ROOT / "configs/recsys").glob("cl4srec*.yaml")),
    ids=lambda p: p.name,
)
def test_shipped_configs_load_and_validate_method_args(path):
    cfg = load_any(path)
    assert cfg.method in ("sra-cl", "cl4srec")


def test_bad_method_args_name_the_field(tmp_path):
    data = yaml.safe_load((ROOT / "configs/recsys/sracl-scientific.yaml").read_text())
    data["method_args"]["semantics"]["summary"] = "poem"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="summary"):
        load_any(path)


def test_semantics_command_builds_the_cache(tmp_path):
    config = {
        "kind": "rec-train",
        "data": {"format": "synthetic", "synthetic_users": 30, "synthetic_items": 20},
        "model": "sasrec",
        "model_args": {"hidden": 8, "heads": 1, "inner": 16, "max_len": 6},
        "method": "sra-cl",
        "method_args": {
            "semantics": {
                "encoder": "tfidf:8",
                "cache_dir": str(tmp_path / "c"),
                "k": 3,
            }
        },
    }
    path = tmp_path / "sracl.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(semantics, [str(path), "--examples", "1"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output[: result.output.index("\n}") + 2])
    assert info["exclude_same_user"] is True and info["k"] == 3
    assert info["same_user_neighbour_share"] == 0.0
    assert Path(info["folder"], "semantics.safetensors").is_file()
    assert "~ " in result.output  # neighbour examples

    config["method"] = "next-item"
    config["method_args"] = {}
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(semantics, [str(path)])
    assert result.exit_code != 0 and "needs method: sra-cl" in result.output
