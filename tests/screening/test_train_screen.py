"""Training, resume, screening, index and CLI on tiny generated data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from tamis.cli import cli
from tamis.core.runs import Run
from tamis.screening.index import LigandIndex
from tamis.screening.screen import Screener, pocket_from_files
from tamis.screening.train import (
    Trainer,
    load_trained,
    run_training,
    stage1_pairs,
    stage2_items,
)

from .conftest import tiny_config


@pytest.mark.slow
def test_resume_is_bit_exact(synthetic, tmp_path: Path) -> None:
    # One run straight through; one killed after 4 of 6 steps and resumed.
    straight = run_training(tiny_config(synthetic, tmp_path / "a"))
    cfg = tiny_config(synthetic, tmp_path / "b")
    run = Run.create(cfg.out, cfg.name, cfg, cfg.seed)
    partial = tiny_config(
        synthetic,
        tmp_path / "b",
        stage2={
            "complexes": [str(synthetic.complexes)],
            "steps": 1,
            "pockets_per_batch": 4,
            "probes": 2,
        },
    )
    Trainer(partial, run, stage1_pairs(partial), stage2_items(partial)).fit()
    resumed = run_training(cfg, run_dir=run.path, resume=True)
    a = load_file(str(straight / "model.safetensors"))
    b = load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [
        json.loads(x)["step"]
        for x in (resumed / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_training_results_and_model_roundtrip(trained_run: Path) -> None:
    results = json.loads((trained_run / "results.json").read_text())
    assert results["stage1_sampling"]["final_pairs"] == results["stage1_pairs"] > 0
    assert len(results["stage2_pockets"]) == 6
    assert "loss_bsp" in results["last"]["stage2"]
    assert results["temperature"] == pytest.approx(1 / 14)
    model = load_trained(trained_run)
    assert not model.training


def test_screen_file_ranks_and_skips(trained_run: Path, synthetic) -> None:
    screener = Screener(load_trained(trained_run), batch_size=7)
    target = synthetic.targets[0]
    pocket = pocket_from_files(target / "receptor.pdb", target / "crystal_ligand.sdf")
    ranking, skipped = screener.screen_file(pocket, synthetic.library, seed=0)
    assert skipped == 1 and len(ranking.names) == 40
    assert np.all(np.diff(ranking.scores) <= 1e-7)
    # The same library through an index gives the same scores.
    emb, names, smiles = screener.encode_library(
        __import__("tamis.screening.data.ligands", fromlist=["x"]).LigandReader(
            synthetic.library
        )
    )
    index = LigandIndex(emb.shape[1])
    index.add(emb, names, smiles)
    p = screener.encode_pockets([pocket])
    top_scores, top_idx = index.search(p, 5)
    brute = emb @ p[0]
    np.testing.assert_allclose(top_scores[0], np.sort(brute)[::-1][:5], rtol=1e-5)
    np.testing.assert_allclose(index.score_all(p)[0], brute, rtol=1e-5)


def test_index_save_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(20, 8)).astype(np.float32)
    index = LigandIndex(8)
    index.add(emb, [f"m{i}" for i in range(20)], ["C"] * 20)
    index.save(tmp_path / "idx")
    again = LigandIndex.load(tmp_path / "idx")
    assert again.names == index.names and len(again) == 20
    with pytest.raises(ValueError, match="expected"):
        index.add(emb[:, :4], ["a"] * 20, ["C"] * 20)
    with pytest.raises(FileNotFoundError, match="ligands.json"):
        LigandIndex.load(tmp_path)


def test_cli_run_index_sites_evaluate(
    trained_run: Path, synthetic, tmp_path: Path
) -> None:
    runner = CliRunner()
    target = synthetic.targets[0]
    out = tmp_path / "ranked.csv"
    res = runner.invoke(
        cli,
        [
            "-q",
            "screen",
            "run",
            "--model",
            str(trained_run),
            "--receptor",
            str(target / "receptor.pdb"),
            "--ligand-ref",
            str(target / "crystal_ligand.sdf"),
            "--library",
            str(synthetic.library),
            "--out",
            str(out),
            "--seed",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 40 and rows[0]["rank"] == "1"

    idx = tmp_path / "idx"
    res = runner.invoke(
        cli,
        [
            "-q",
            "screen",
            "index",
            "--model",
            str(trained_run),
            "--library",
            str(synthetic.library),
            "--out",
            str(idx),
        ],
    )
    assert res.exit_code == 0, res.output
    out2 = tmp_path / "ranked2.csv"
    res = runner.invoke(
        cli,
        [
            "-q",
            "screen",
            "run",
            "--model",
            str(trained_run),
            "--receptor",
            str(target / "receptor.pdb"),
            "--ligand-ref",
            str(target / "crystal_ligand.sdf"),
            "--index",
            str(idx),
            "--out",
            str(out2),
            "--seed",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    rows2 = list(csv.DictReader(out2.open()))
    assert [r["name"] for r in rows2] == [r["name"] for r in rows]

    sites = tmp_path / "sites.csv"
    res = runner.invoke(
        cli,
        [
            "-q",
            "screen",
            "sites",
            "--model",
            str(trained_run),
            "--receptor",
            str(target / "receptor.pdb"),
            "--probes",
            str(target / "actives_final.ism"),
            "--ligand-ref",
            str(target / "crystal_ligand.sdf"),
            "--out",
            str(sites),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "auroc" in res.output
    assert len(list(csv.DictReader(sites.open()))) == 60

    res = runner.invoke(
        cli,
        [
            "-q",
            "screen",
            "evaluate",
            *map(str, synthetic.targets),
            "--model",
            str(trained_run),
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "ecfp4: auroc" in res.output and "model: auroc" in res.output


def test_cli_errors_name_the_problem(
    trained_run: Path, tmp_path: Path, synthetic
) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.pdb"
    bad.write_text("HEADER nothing here\n")
    res = runner.invoke(
        cli,
        [
            "screen",
            "run",
            "--model",
            str(trained_run),
            "--receptor",
            str(bad),
            "--ligand-ref",
            str(synthetic.targets[0] / "crystal_ligand.sdf"),
            "--library",
            str(synthetic.library),
            "--out",
            str(tmp_path / "x.csv"),
        ],
    )
    assert res.exit_code != 0 and "bad.pdb" in res.output
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kind: screen-train\nmodel:\n  esm_hidden: 30\n  esm_heads: 4\n")
    res = runner.invoke(cli, ["screen", "train", str(cfg)])
    assert res.exit_code != 0 and "esm_hidden" in res.output


def test_prefetch_and_packed_paths_encode_identically(
    trained_run: Path, synthetic
) -> None:
    from tamis.screening.data.ligands import LigandReader
    from tamis.screening.encoders.ligand import PackedGraphs, featurize

    model = load_trained(trained_run)
    # Chunks of 7 over 40 readable molecules: the last chunk is partial.
    ahead = Screener(model, batch_size=7, prefetch=True)
    serial = Screener(model, batch_size=7, prefetch=False)
    reader = LigandReader(synthetic.library)
    a, names_a, smiles_a = ahead.encode_library(reader)
    b, names_b, smiles_b = serial.encode_library(LigandReader(synthetic.library))
    assert reader.n_skipped == 1 and len(names_a) == 40
    assert names_a == names_b and smiles_a == smiles_b
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    records = list(LigandReader(synthetic.library))
    packed = PackedGraphs.from_graphs([featurize(r.mol, False) for r in records])
    np.testing.assert_allclose(serial.encode_packed(packed), b, rtol=1e-5, atol=1e-6)
