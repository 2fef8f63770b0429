"""``tamis rec`` end to end on generated data, and torchrun data parallelism."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from tamis.cli import cli

CONFIG = """kind: rec-train
name: tiny
seed: 3
device: cpu
data:
  format: synthetic
  synthetic_users: 60
  synthetic_items: 20
model: sasrec
model_args: {hidden: 16, inner: 32, max_len: 8, dropout: 0.0, attn_dropout: 0.0}
train: {epochs: 2, batch_size: 32, patience: 5}
eval: {ks: [5, 10], mask_history: true, batch_size: 64}
"""


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(CONFIG)
    return path


def test_train_evaluate_recommend(tmp_path: Path) -> None:
    runner = CliRunner()
    run_dir = tmp_path / "run"
    res = runner.invoke(
        cli,
        [
            "-q",
            "rec",
            "train",
            str(_config(tmp_path)),
            "train.epochs=2",
            f"out={tmp_path}",
            "--run-dir",
            str(run_dir),
        ],
    )
    assert res.exit_code == 0, res.output
    results = json.loads((run_dir / "results.json").read_text())
    assert results["mask_history"] is True
    assert results["length_groups"] == [8, 16, 32]  # the exact grouping, on
    assert results["epochs_run"] == 2 and 0 <= results["test"]["hr@10"] <= 1
    assert (run_dir / "best_model.safetensors").is_file()
    assert (run_dir / "run.log").is_file()

    res = runner.invoke(cli, ["-q", "rec", "evaluate", str(run_dir)])
    assert res.exit_code == 0, res.output
    again = json.loads((run_dir / "evaluation-test-masked.json").read_text())
    assert again["ndcg@10"] == pytest.approx(results["test"]["ndcg@10"])

    res = runner.invoke(
        cli, ["-q", "rec", "recommend", str(run_dir), "--user", "u0", "-k", "3"]
    )
    assert res.exit_code == 0, res.output
    user, items = res.output.strip().split("\t")
    assert user == "u0" and len(items.split()) == 3

    res = runner.invoke(
        cli, ["-q", "rec", "recommend", str(run_dir), "--user", "nobody"]
    )
    assert res.exit_code != 0 and "unknown user" in res.output


def test_bad_config_value_is_a_clean_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        cli, ["rec", "train", str(_config(tmp_path)), "model_args.heads=3"]
    )
    assert res.exit_code != 0
    assert "model_args" in res.output and "heads" in res.output


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
    reason="torchrun not installed",
)
def test_two_cpu_processes_match_one(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["rec", "train", str(cfg), f"out={tmp_path}", "--run-dir"]
    single = [sys.executable, "-m", "tamis", "-q", *common, str(tmp_path / "one")]
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    multi = [
        torchrun,
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "tamis",
        "-q",
        *common,
        str(tmp_path / "two"),
    ]
    for cmd in (single, multi):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    one = load_file(str(tmp_path / "one" / "best_model.safetensors"))
    two = load_file(str(tmp_path / "two" / "best_model.safetensors"))
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-4), key
    res_two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert res_two["world_size"] == 2
