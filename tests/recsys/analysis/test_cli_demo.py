"""``tamis rec collab`` and the demo, end to end on generated data."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tamis.recsys.analysis import planted_cluster_sequences
from tamis.recsys.analysis.cli import collab
from tamis.recsys.analysis.demo import run_demo, write_sequences


@pytest.fixture()
def data_file(tmp_path):
    seqs = planted_cluster_sequences(80, 4, 150, 4, 8, 0.05, seed=5)
    return write_sequences(seqs, tmp_path / "seqs.txt")


def _config(tmp_path, data_file, kind="rec-collab"):
    path = tmp_path / f"{kind}.yaml"
    lines = [
        f"kind: {kind}",
        f"out: {tmp_path / 'runs'}",
        "data:",
        "  format: sequences",
        f"  path: {data_file}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_collab_command_writes_results_and_report(tmp_path, data_file):
    from tamis.recsys.config import DataConfig, RecTrainConfig
    from tamis.recsys.train import run_training

    cfg = _config(tmp_path, data_file)
    data = DataConfig(format="sequences", path=str(data_file))
    train_cfg = RecTrainConfig(out=str(tmp_path), model="pop", data=data)
    run_training(train_cfg, run_dir=tmp_path / "pop-run")
    result = CliRunner().invoke(
        collab,
        [str(cfg), "study.max_hops=4", "--runs", str(tmp_path / "pop-run")],
    )
    assert result.exit_code == 0, result.output
    assert "of test targets are 0-hop" in result.output
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["settings"]["max_hops"] == 4
    assert list(results["models"]) == ["pop (pop-run)"]
    pop = results["models"]["pop (pop-run)"]
    assert pop["accuracy"]["all"]["n"] == results["test_typing"]["n_samples"]
    assert (run_dir / "report.html").stat().st_size > 1000


def test_collab_command_accepts_a_rec_train_config(tmp_path, data_file):
    cfg = _config(tmp_path, data_file, kind="rec-train")
    result = CliRunner().invoke(
        collab, [str(cfg), "study.window=1", "--out", str(tmp_path / "w")]
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = list((tmp_path / "w").iterdir())
    results = json.loads((run_dir / "results.json").read_text())
    assert results["settings"]["window"] == 1


def test_collab_command_reports_bad_overrides(tmp_path, data_file):
    cfg = _config(tmp_path, data_file)
    result = CliRunner().invoke(collab, [str(cfg), "study.max_hops=0"])
    assert result.exit_code != 0
    assert "max_hops" in result.output


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    outputs = run_demo(tmp_path)
    results = json.loads(open(outputs["results"]).read())
    assert set(results["models"]) == {"pop (pop)", "itemknn (itemknn)"}
    # Item-KNN recommends co-occurring items: more 0-hop pairs than Pop.
    shares = {k: v["shares"]["pairs"]["0-hop"] for k, v in results["models"].items()}
    assert shares["itemknn (itemknn)"] > shares["pop (pop)"]


def test_collab_command_refuses_a_run_on_other_data(tmp_path, data_file):
    from tamis.recsys.config import DataConfig, RecTrainConfig
    from tamis.recsys.train import run_training

    other = write_sequences(
        planted_cluster_sequences(50, 2, 90, 4, 8, 0.1, seed=9), tmp_path / "o.txt"
    )
    data = DataConfig(format="sequences", path=str(other))
    run_training(
        RecTrainConfig(out=str(tmp_path), model="pop", data=data),
        run_dir=tmp_path / "other-run",
    )
    cfg = _config(tmp_path, data_file)
    result = CliRunner().invoke(
        collab, [str(cfg), "--runs", str(tmp_path / "other-run")]
    )
    assert result.exit_code != 0
    assert "differ from the study's" in result.output
