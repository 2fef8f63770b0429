"""``tamis llm`` commands end to end on tiny generated data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file

from tamis.cli import cli
from tamis.core.config import load_any
from tamis.llm.merging import LayerCoefficients


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture()
def pairs(tmp_path: Path) -> Path:
    rows = [{"prompt": f"k{i}=", "completion": f"v{i % 3}"} for i in range(12)]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_merge_sensitivity_evaluate_finetune(
    tiny_models: dict, tmp_path: Path, pairs: Path
) -> None:
    runner = CliRunner()
    experts = [str(e) for e in tiny_models["experts"]]

    # Sensitivity -> coefficients file.
    sens = _write(
        tmp_path / "sens.yaml",
        {
            "kind": "llm-sensitivity",
            "experts": experts,
            "calibration": [{"name": "jsonl", "path": str(pairs), "limit": 2}] * 3,
            "output": str(tmp_path / "coef.json"),
            "num_samples": 2,
            "runs_root": str(tmp_path / "runs"),
        },
    )
    result = runner.invoke(
        cli, ["-q", "llm", "sensitivity", str(sens), "tau_transform=raw"]
    )
    assert result.exit_code == 0, result.output
    coef = LayerCoefficients.load(tmp_path / "coef.json")
    assert coef.extra["settings"]["tau_transform"] == "raw"

    # Merge with the coefficients.
    merge = _write(
        tmp_path / "merge.yaml",
        {
            "kind": "llm-merge",
            "method": "ties",
            "base_model": str(tiny_models["base"]),
            "models": [{"model": e} for e in experts],
            "parameters": {"density": 0.5, "scaling": 0.8},
            "coefficients": str(tmp_path / "coef.json"),
            "output": str(tmp_path / "merged"),
        },
    )
    result = runner.invoke(cli, ["-q", "llm", "merge", str(merge)])
    assert result.exit_code == 0, result.output
    assert load_file(str(tmp_path / "merged/model.safetensors"))
    assert (
        json.loads((tmp_path / "merged/tamis_merge.json").read_text())["method"]
        == "ties"
    )

    # Evaluate the merged model.
    ev = _write(
        tmp_path / "eval.yaml",
        {
            "kind": "llm-evaluate",
            "model": str(tmp_path / "merged"),
            "tasks": [{"name": "jsonl", "path": str(pairs), "limit": 4}],
            "max_new_tokens": 3,
            "runs_root": str(tmp_path / "runs"),
        },
    )
    result = runner.invoke(cli, ["-q", "llm", "evaluate", str(ev)])
    assert result.exit_code == 0, result.output
    assert "pairs: accuracy" in result.output and "(n=4" in result.output

    # Fine-tune (full) on the pairs.
    ft = _write(
        tmp_path / "ft.yaml",
        {
            "kind": "llm-finetune",
            "model": str(tiny_models["base"]),
            "task": {"name": "jsonl", "path": str(pairs)},
            "output": str(tmp_path / "expert"),
            "method": "full",
            "steps": 3,
            "max_length": 16,
            "runs_root": str(tmp_path / "runs"),
        },
    )
    result = runner.invoke(cli, ["-q", "llm", "finetune", str(ft)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "expert/config.json").is_file()


def test_bad_merge_config_is_a_clean_error(tmp_path: Path) -> None:
    merge = _write(
        tmp_path / "merge.yaml",
        {
            "kind": "llm-merge",
            "method": "ties",
            "models": [{"model": "x"}],
            "output": "o",
        },
    )
    result = CliRunner().invoke(cli, ["llm", "merge", str(merge)])
    assert result.exit_code != 0
    assert "base_model: required by method 'ties'" in result.output
    bad = _write(
        tmp_path / "bad.yaml", {"kind": "llm-merge", "method": "soup", "output": "o"}
    )
    result = CliRunner().invoke(cli, ["llm", "merge", str(bad)])
    assert "method: got 'soup'" in result.output


def test_shipped_llm_configs_load() -> None:
    root = Path(__file__).resolve().parents[2] / "configs/llm"
    files = sorted(root.glob("*.yaml"))
    assert len(files) >= 4
    for f in files:
        load_any(f)
