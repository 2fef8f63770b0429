"""Registry lookups, run directories, seeding, reports and progress switches."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from tamis.core.config import param, register_config
from tamis.core.io import atomic_write_json
from tamis.core.progress import progress, set_progress_enabled
from tamis.core.registry import Registry
from tamis.core.report import Report
from tamis.core.runs import Run, seed_everything


def test_registry_lists_known_names_on_unknown_lookup() -> None:
    reg: Registry = Registry("merge method")
    reg.register("ties", "TIES-Merging", paper="arXiv:2306.01708")(lambda: 1)
    reg.register("dare", "DARE")(lambda: 2)
    assert reg.names() == ["dare", "ties"]
    assert reg.entry("ties").paper == "arXiv:2306.01708"
    assert reg.build("dare") == 2
    with pytest.raises(
        KeyError, match="unknown merge method 'slerp'; known: dare, ties"
    ):
        reg.get("slerp")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("ties")(lambda: 3)


@register_config("test-run")
@dataclass
class RunCfg:
    width: int = param(4, "a width", ge=1)


def test_run_directory_records_config_seed_env_metrics_results(tmp_path: Path) -> None:
    run = Run.create(tmp_path, "demo", RunCfg(width=8), seed=11, device="cpu")
    for name in ("config.yaml", "run.json", "env.json"):
        assert (run.path / name).is_file()
    info = json.loads((run.path / "run.json").read_text())
    assert info["seed"] == 11 and info["kind"] == "test-run"
    assert info["status"] == "running"
    env = json.loads((run.path / "env.json").read_text())
    assert env["device"] == "cpu" and "torch" in env["packages"]
    run.log_metrics(0, loss=1.5)
    run.log_metrics(1, loss=1.25)
    run.write_results({"ndcg@10": 0.5})
    lines = [
        json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()
    ]
    assert lines == [{"step": 0, "loss": 1.5}, {"step": 1, "loss": 1.25}]
    again = Run.open(run.path)
    assert again.seed == 11 and again.read_results() == {"ndcg@10": 0.5}
    assert again.info["status"] == "finished"
    assert again.load_config() == RunCfg(width=8)
    again.metrics.truncate_after(0)
    assert len((run.path / "metrics.jsonl").read_text().splitlines()) == 1


def test_seed_everything_covers_python_numpy_torch() -> None:
    def draw() -> tuple:
        return random.random(), np.random.rand(), torch.rand(1).item()

    seed_everything(5)
    first = draw()
    seed_everything(5)
    assert draw() == first
    seed_everything(5, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    seed_everything(5)
    assert not torch.are_deterministic_algorithms_enabled()


def test_atomic_json_refuses_nan_and_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(ValueError):
        atomic_write_json(path, {"a": float("nan")})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_report_embeds_tables_and_figures(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = Report("Title <&>")
    report.text("a & b")
    report.table(["metric", "value"], [["NDCG@10", 0.123456]])
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    report.figure(fig, "a line")
    html = report.write(tmp_path / "r.html").read_text()
    assert "Title &lt;&amp;&gt;" in html and "a &amp; b" in html
    assert "<td>0.1235</td>" in html and "data:image/png;base64," in html


def test_progress_can_be_silenced_globally_and_per_call() -> None:
    set_progress_enabled(False)
    try:
        assert progress(range(3)).disable
    finally:
        set_progress_enabled(True)
    assert progress(range(3), enabled=False).disable
