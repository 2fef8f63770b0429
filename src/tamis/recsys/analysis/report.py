"""HTML report of collaborative-information studies (tables and plots)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tamis.core.report import Report

__all__ = ["build_report", "write_report"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _hop_label(d: int) -> str:
    return f"{d - 1}-hop (d={d})"


def _pair_section(report: Report, result: dict[str, Any]) -> None:
    hist = result["pair_histogram"]
    total = hist["total"] or 1
    kind = "exact" if hist["exact"] else f"estimated from {hist['n_sources']} sources"
    report.heading("Item pairs by shortest-path length", 3)
    report.text(
        f"{total:,} unordered pairs of training items ({kind}); hop cap "
        f"H = {result['settings']['max_hops']}."
    )
    rows = [[_hop_label(int(d)), c, c / total] for d, c in hist["pairs"].items()]
    rows.append(["beyond H or unconnected", hist["beyond"], hist["beyond"] / total])
    report.table(["relation", "pairs", "share"], rows)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3))
    names = [r[0].split(" ")[0] for r in rows[:-1]] + ["beyond"]
    ax.bar(names, [max(float(r[1]), 0.0) for r in rows], color="#4477aa")
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.8)  # keep single pairs visible on the log axis
    ax.set_ylabel("pairs")
    ax.set_title(f"{result['dataset']['name']}: pairs by relation")
    report.figure(fig, "Pairs per relation type (log scale).")


def _multiplicity_section(report: Report, result: dict[str, Any]) -> None:
    mult = result["multiplicity"]
    if not mult.get("pairs"):
        return
    report.heading("Co-occurrence multiplicity (0-hop pairs)", 3)
    report.table(
        ["pairs", "once", "twice", "three times", "share once", "mean c", "max c"],
        [
            [
                mult["pairs"],
                mult["once"],
                mult["twice"],
                mult["three_times"],
                mult["share_once"],
                mult["mean"],
                mult["max"],
            ]
        ],
    )
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3))
    xs = [int(c) for c in mult["histogram"]]
    ax.loglog(xs, list(mult["histogram"].values()), "o", ms=3, color="#aa3377")
    ax.set_xlabel("co-occurrence count c_ij")
    ax.set_ylabel("pairs")
    report.figure(fig, "Number of direct pairs per co-occurrence count (log-log).")


def _redundancy_section(report: Report, result: dict[str, Any]) -> None:
    red = result.get("redundancy") or {}
    rows = [
        [
            key,
            v["pairs"],
            v["mean_paths"],
            v["median_paths"],
            v["p90_paths"],
            v["max_paths"],
            v.get("mean_cooccurrence", ""),
        ]
        for key, v in red.items()
        if key.startswith("d=")
    ]
    if not rows:
        return
    report.heading("Redundancy: shortest paths per (input item, target) pair", 3)
    report.text(f"Measured for the test samples of {red['n_targets']} targets.")
    report.table(
        ["distance", "pairs", "mean paths", "median", "p90", "max", "mean c_ij"],
        rows,
    )


def _typing_section(report: Report, result: dict[str, Any]) -> None:
    typing = result["test_typing"]
    n = typing["n_samples"] or 1
    report.heading("Test samples by relation to their sequence", 3)
    report.text(
        f"{typing['n_samples']:,} test samples; {typing['share_0hop']:.1%} have a "
        f"0-hop relation to some input item ({typing['share_0hop_of_typed']:.1%} "
        "excluding repeats and cold targets)."
    )
    rows = [
        [k, v, v / n, typing["pure_counts"].get(f"pure {k}", "")]
        for k, v in typing["counts"].items()
    ]
    report.table(["type", "samples", "share", "pure samples"], rows)


def _model_section(report: Report, result: dict[str, Any]) -> None:
    models = result.get("models") or {}
    if not models:
        return
    labels = result["labels"]
    k = result["settings"]["share_k"]
    report.heading(f"Models: relation types in the top-{k}", 3)
    for view in ("pairs", "items"):
        rows = [
            [name, *(m["shares"][view].get(lab, 0.0) for lab in labels)]
            for name, m in models.items()
        ]
        what = (
            "(list item, input item) pairs"
            if view == "pairs"
            else "list items by their closest input item"
        )
        report.text(f"Share of {what}:")
        report.table(["model", *labels], rows)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3))
    bottom = [0.0] * len(models)
    cmap = plt.get_cmap("viridis", len(labels))
    for i, lab in enumerate(labels):
        vals = [m["shares"]["pairs"].get(lab, 0.0) for m in models.values()]
        ax.bar(list(models), vals, bottom=bottom, label=lab, color=cmap(i))
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel("share of pairs")
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    report.figure(fig, f"Relation types between top-{k} items and input items.")

    ks = result["settings"]["ks"]
    report.heading("Models: accuracy by the target's relation type", 3)
    metrics = [f"{m}@{kk}" for kk in ks for m in ("HR", "NDCG")]
    rows = []
    for name, m in models.items():
        for subset, row in m["accuracy"].items():
            rows.append([name, subset, row["n"], *(row[x] for x in metrics)])
    report.table(["model", "subset", "n", *metrics], rows)
    main = f"NDCG@{ks[-1]}"
    subsets = [
        s
        for s in ("all", "direct", "no-direct")
        if any(s in m["accuracy"] for m in models.values())
    ]
    fig, ax = plt.subplots(figsize=(7, 3))
    width = 0.8 / max(len(models), 1)
    for i, (name, m) in enumerate(models.items()):
        vals = [m["accuracy"].get(s, {}).get(main, 0.0) or 0.0 for s in subsets]
        ax.bar([j + i * width for j in range(len(subsets))], vals, width, label=name)
    ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(subsets))])
    ax.set_xticklabels(subsets)
    ax.set_ylabel(main)
    ax.legend(fontsize=7)
    report.figure(fig, f"{main} on all, direct (0-hop) and no-direct test samples.")


def build_report(results: Sequence[dict[str, Any]], title: str) -> Report:
    """A report with one section per study result.

    Args:
        results: Outputs of :func:`tamis.recsys.analysis.run_study`.
        title: Report title.

    Returns:
        The assembled :class:`~tamis.core.report.Report`.
    """
    report = Report(title)
    report.text(
        "Collaborative relations typed by shortest-path length in the global "
        "item co-occurrence graph of the training sequences (Zhang et al., "
        "arXiv:2511.06905). d = 1 is a 0-hop (direct) relation."
    )
    for result in results:
        ds = result["dataset"]
        report.heading(f"{ds['name']}", 2)
        report.table(
            [
                "items",
                "training items",
                "sequences",
                "interactions",
                "edges",
                "test samples",
                "seconds",
            ],
            [
                [
                    ds["n_items"],
                    ds["n_training_items"],
                    ds["n_train_sequences"],
                    ds["n_train_interactions"],
                    ds["n_edges"],
                    ds["n_test_samples"],
                    result["seconds"]["total"],
                ]
            ],
        )
        _pair_section(report, result)
        _multiplicity_section(report, result)
        _redundancy_section(report, result)
        _typing_section(report, result)
        _model_section(report, result)
    return report


def write_report(
    results: Sequence[dict[str, Any]], path: str | Path, title: str = ""
) -> Path:
    """Write the HTML report of ``results`` to ``path`` (atomically)."""
    name = title or "Collaborative-information study"
    return build_report(results, name).write(path)
