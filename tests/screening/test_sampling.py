"""Bilateral data sampling: each switch and its count."""

from __future__ import annotations

import numpy as np
import pytest

from tamis.screening.data.activity import ActivityTable, read_activity
from tamis.screening.data.sampling import (
    SamplingOptions,
    build_pairs,
    cluster_weights,
    greedy_clusters,
    homologous_to,
    noisy_pairs,
    pains_mask,
)

SEQ_A = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQ"
SEQ_B = "GSHMWRLLPEEELVQVNGDLLRWHQTAKEAFYRNVLPGTNMEEIRKVCSYLLTPEGHIYKKD"


def test_clusters_and_weights() -> None:
    mutant = SEQ_A[:10] + "W" + SEQ_A[11:]
    clusters = greedy_clusters({"a": SEQ_A, "a2": mutant, "b": SEQ_B}, 0.4)
    assert clusters["a"] == clusters["a2"] != clusters["b"]
    w = cluster_weights(clusters, alpha=0.5)
    assert w["a"] == pytest.approx(1 / np.sqrt(2)) and w["b"] == 1.0
    assert homologous_to({"a2": mutant, "b": SEQ_B}, [SEQ_A]) == {"a2"}


def test_noise_and_pains() -> None:
    table = ActivityTable(
        ["CCO"] * 3,
        ["l1", "l1", "l2"],
        ["p", "p", "p"],
        {"p": SEQ_A},
        np.array([8.0, 5.0, 8.0]),
        "t",
    )
    assert noisy_pairs(table, 1.0) == {("l1", "p")}
    assert noisy_pairs(table, 2.0) == set()
    mask = pains_mask(["S=C1SC(=Cc2ccccc2)C(=O)N1", "CCO"])
    assert mask.tolist() == [True, False]


def test_every_switch_is_counted(synthetic) -> None:
    table = read_activity(synthetic.activity)
    full = build_pairs(table, SamplingOptions(max_partners=12))
    rep = full.report
    assert rep.noisy_removed == 1
    # The generated frequent hitter binds all 18 proteins.
    assert rep.promiscuous_ligands >= 1 and rep.promiscuous_pairs_removed >= 18
    assert rep.pains_ligands == 1 and rep.pains_pairs_removed == 1
    assert rep.final_pairs == len(full) and full.weights.sum() == pytest.approx(1.0)
    off = build_pairs(
        table,
        SamplingOptions(
            homology_weighting=False,
            redundancy_removal=False,
            noise_filter=False,
            promiscuity_filter=False,
            pains_filter=False,
        ),
    )
    assert off.report.noisy_removed == off.report.pains_ligands == 0
    assert len(off) > len(full)
    # Uniform weights per protein without homology weighting.
    excluded = build_pairs(table, SamplingOptions(), exclude_proteins={"P00"})
    assert excluded.report.excluded_pairs > 0 and "P00" not in excluded.sequences


def test_semiglobal_identity_and_diagonal_prefilter() -> None:
    from tamis.screening.data.align import sequence_identity
    from tamis.screening.data.sampling import diagonal_hits

    rng = np.random.default_rng(0)
    letters = list("ACDEFGHIKLMNPQRSTVWY")
    long = "".join(rng.choice(letters, 600))
    short = "".join(rng.choice(letters, 120))
    # A random short sequence is not spread over a long one (free end gaps).
    assert sequence_identity(short, long) < 0.3
    domain = long[200:320]
    assert sequence_identity(domain, long) == 1.0
    assert diagonal_hits(domain, long) >= 100
    assert diagonal_hits(short, long) < 8


def test_stage1_exclusion_from_fasta(synthetic, tmp_path) -> None:
    from tamis.core.config import from_dict
    from tamis.screening.config import TrainConfig
    from tamis.screening.train import stage1_exclusions, stage1_table

    table = read_activity(synthetic.activity)
    fasta = tmp_path / "targets.fasta"
    fasta.write_text(f">t0 test target\n{table.sequences['P00']}\n>other\nMKV\n")
    cfg = from_dict(
        TrainConfig,
        {
            "stage1": {
                "activity": [str(synthetic.activity)],
                "exclude_fasta": str(fasta),
                "exclude_targets": ["t0"],
            }
        },
    )
    assert "P00" in stage1_exclusions(cfg, stage1_table(cfg))
    bad = from_dict(
        TrainConfig,
        {
            "stage1": {
                "activity": [str(synthetic.activity)],
                "exclude_fasta": str(fasta),
                "exclude_targets": ["nope"],
            }
        },
    )
    with pytest.raises(ValueError, match="nope"):
        stage1_exclusions(bad, table)
