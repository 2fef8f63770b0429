"""SRA-CL side by side with SASRec, CL4SRec and GRU4Rec on real item text.

Data: Amazon Industrial & Scientific (item text: title, categories, brand) and
MovieLens-100K (titles, year, genres), leave-one-out, full ranking over all
items, early stopping on validation NDCG@10. Variants: SASRec, CL4SRec,
SRA-CL, SRA-CL without the user term, SRA-CL without the item term, GRU4Rec,
GRU4Rec + SRA-CL; several seeds; mean and std of HR/NDCG at 10 and 20, the
relative change against the best baseline, and SRA-CL's seconds per training
epoch relative to plain SASRec's.

The machine this was written for has 2 shared CPU cores, so the defaults are
small (user subsample, truncated histories, few epochs); every reduction is
written into the JSON. User descriptions are LLM-free (the mean of the MiniLM
vectors of each prefix's recent item texts): generating SmolLM2 summaries for
tens of thousands of prefixes would take hours on this CPU.

Usage::

    python benchmarks/sracl.py --data-dir ../shared/data [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tamis.core.io import atomic_write_json
from tamis.core.runs import seed_everything
from tamis.recsys.config import DataConfig, EvalConfig, TrainConfig
from tamis.recsys.data.load import load_data
from tamis.recsys.data.splits import leave_one_out
from tamis.recsys.models.base import build_model
from tamis.recsys.train import final_results, fit_model

HERE = Path(__file__).resolve().parent
log = logging.getLogger("sracl-bench")

#: name -> (backbone, objective, objective overrides)
VARIANTS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "SASRec": ("sasrec", "next-item", {}),
    "CL4SRec": ("sasrec", "cl4srec", {}),
    "SRA-CL": ("sasrec", "sra-cl", {}),
    "SRA-CL w/o user": ("sasrec", "sra-cl", {"alpha": 0.0}),
    "SRA-CL w/o item": ("sasrec", "sra-cl", {"beta": 0.0}),
    "GRU4Rec": ("gru4rec", "next-item", {}),
    "GRU4Rec+SRA-CL": ("gru4rec", "sra-cl", {}),
    "SRA-CL (memory)": ("sasrec", "sra-cl", {"neighbour_encoding": "memory"}),
    "SRA-CL (batch)": ("sasrec", "sra-cl", {"neighbour_encoding": "batch"}),
    "SRA-CL (batch, one call)": (
        "sasrec",
        "sra-cl",
        {"neighbour_encoding": "batch", "length_groups": 1},
    ),
    "GRU4Rec+SRA-CL (batch)": ("gru4rec", "sra-cl", {"neighbour_encoding": "batch"}),
    "GRU4Rec+SRA-CL (memory)": (
        "gru4rec",
        "sra-cl",
        {"neighbour_encoding": "memory"},
    ),
    "SRA-CL (no-grad nb)": ("sasrec", "sra-cl", {"neighbour_encoding": "batch-nograd"}),
    "SRA-CL (4 sampled nb)": ("sasrec", "sra-cl", {"neighbour_sample": 4}),
}
BASELINES = {"sasrec": ("SASRec", "CL4SRec"), "gru4rec": ("GRU4Rec",)}
METRICS = ("hr@20", "ndcg@20", "hr@10", "ndcg@10")


def load(name: str, data_dir: Path, args: argparse.Namespace) -> Any:
    """Read one data set and apply the benchmark's size reductions."""
    if name == "scientific":
        cfg = DataConfig(
            format="presplit",
            path=str(data_dir / "recsys/scientific"),
            name="Scientific",
        )
    else:
        cfg = DataConfig(
            format="atomic", path=str(data_dir / "recsys/ml-100k"), name="ml-100k"
        )
    data = load_data(cfg)
    if args.max_users and data.n_users > args.max_users:
        rng = np.random.default_rng(12345)
        keep = np.zeros(data.n_users, dtype=bool)
        keep[rng.choice(data.n_users, args.max_users, replace=False)] = True
        data = data.subset(keep[data.user])
    if args.max_history:
        # Each user's most recent interactions only (rows are in event order).
        pos_from_end = np.repeat(data.offsets[1:], np.diff(data.offsets)) - np.arange(
            data.n_interactions
        )
        data = data.subset(pos_from_end <= args.max_history)
    return data


def semantics_args(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """The semantic-pipeline settings shared by every SRA-CL variant."""
    return {
        "cache_dir": str(args.cache_dir / name),
        "encoder": args.encoder,
        "encoder_max_tokens": args.encoder_max_tokens,
        "summary": "template",
        "prefix_embedding": "item-mean",
        "summary_items": 10,
        "k": 10,
        "item_k": 10,
    }


def run_one(
    data: Any,
    split: Any,
    variant: str,
    seed: int,
    sem: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Train one variant with one seed; test metrics with and without masking."""
    backbone, method, overrides = VARIANTS[variant]
    model_args: dict[str, Any] = {"max_len": args.max_len, "hidden": args.hidden}
    if backbone == "sasrec":
        model_args.update({"layers": 2, "heads": 2, "inner": 4 * args.hidden})
    method_args: dict[str, Any] = {}
    if method == "cl4srec":
        method_args = {"weight": 0.1, "seed": seed}
    elif method == "sra-cl":
        method_args = {
            "alpha": 0.1,
            "beta": 0.1,
            "temperature": 1.0,
            "substitution_rate": 0.2,
            "seed": seed,
            "neighbour_encoding": args.neighbour_encoding,
            "semantics": sem,
        }
        method_args.update(overrides)
    seed_everything(seed)
    model = build_model(backbone, data.n_users, data.n_items, model_args)
    train = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=1e-3,
        patience=args.patience,
        valid_metric="ndcg@10",
    )
    t0 = time.perf_counter()
    result = fit_model(
        model,
        split,
        train,
        EvalConfig(ks=[10, 20]),
        method,
        method_args,
        seed=seed,
    )
    fit_seconds = time.perf_counter() - t0
    out: dict[str, Any] = {
        "variant": variant,
        "seed": seed,
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "train_seconds_per_epoch": float(
            np.mean([h["train_seconds"] for h in result.history])
        ),
        "train_cpu_seconds_per_epoch": float(
            np.mean([h.get("train_cpu_seconds", np.nan) for h in result.history])
        ),
        "fit_seconds": fit_seconds,
        "loadavg_after": list(os.getloadavg()),
    }
    for mask in (False, True):
        res = final_results(model, split, EvalConfig(ks=[10, 20], mask_history=mask))
        key = "masked" if mask else "unmasked"
        out[f"test_{key}"] = {m: res["test"][m] for m in METRICS}
        out[f"valid_{key}"] = {m: res["valid"][m] for m in METRICS}
    if method == "sra-cl":
        last = result.history[-1]
        out["unique_neighbours_per_batch"] = last.get("unique_neighbours")
    return out


def paired_p(
    runs: list[dict[str, Any]], variant: str, base: str, key: str, metric: str
) -> float | None:
    """Two-sided paired t-test p-value over the seeds both variants ran."""
    from scipy.stats import ttest_rel

    a = {r["seed"]: r[key][metric] for r in runs if r["variant"] == variant}
    b = {r["seed"]: r[key][metric] for r in runs if r["variant"] == base}
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    p = float(ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)
    return None if np.isnan(p) else p


def summarise(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Mean/std per variant, relative change vs the best baseline, time ratio."""
    table: dict[str, Any] = {}
    for variant in VARIANTS:
        rows = [r for r in runs if r["variant"] == variant]
        if not rows:
            continue
        stats = {}
        for m in METRICS:
            vals = np.array([r[key][m] for r in rows])
            stats[m] = {"mean": float(vals.mean()), "std": float(vals.std(ddof=0))}
        stats["seeds"] = [r["seed"] for r in rows]
        stats["sec_per_epoch"] = float(
            np.mean([r["train_seconds_per_epoch"] for r in rows])
        )
        cpu = [r.get("train_cpu_seconds_per_epoch") for r in rows]
        if all(c is not None for c in cpu):
            stats["cpu_sec_per_epoch"] = float(np.mean(cpu))
        table[variant] = stats
    for variant, stats in table.items():
        backbone = VARIANTS[variant][0]
        bases = [b for b in BASELINES[backbone] if b in table and b != variant]
        if VARIANTS[variant][1] != "sra-cl" or not bases:
            continue
        rel, pvalues = {}, {}
        for m in METRICS:
            best_name = max(bases, key=lambda b: table[b][m]["mean"])
            best = table[best_name][m]["mean"]
            rel[m] = 100.0 * (stats[m]["mean"] - best) / best if best > 0 else None
            pvalues[m] = paired_p(runs, variant, best_name, key, m)
        stats["rel_change_vs_best_baseline_pct"] = rel
        stats["paired_t_p_vs_best_baseline"] = pvalues
        stats["best_baseline_pool"] = bases
        plain = "SASRec" if backbone == "sasrec" else "GRU4Rec"
        if plain in table:
            stats["time_ratio_vs_plain"] = (
                stats["sec_per_epoch"] / table[plain]["sec_per_epoch"]
            )
            if "cpu_sec_per_epoch" in stats and "cpu_sec_per_epoch" in table[plain]:
                stats["cpu_time_ratio_vs_plain"] = (
                    stats["cpu_sec_per_epoch"] / table[plain]["cpu_sec_per_epoch"]
                )
    return table


def print_table(name: str, table: dict[str, Any]) -> None:
    """Print one data set's table (test, history not masked)."""
    sys.stdout.write(f"\n{name} (test, full ranking, history not masked)\n")
    sys.stdout.write(
        f"{'variant':18s}"
        + "".join(f"{m:>17s}" for m in METRICS)
        + f"{'s/epoch':>9s}{'x plain':>8s}{'vs best':>9s}\n"
    )
    for variant, s in table.items():
        cells = "".join(f"{s[m]['mean']:>10.4f}±{s[m]['std']:.4f}" for m in METRICS)
        ratio = s.get("time_ratio_vs_plain")
        rel = s.get("rel_change_vs_best_baseline_pct", {}).get("ndcg@20")
        sys.stdout.write(
            f"{variant:18s}{cells}{s['sec_per_epoch']:>9.1f}"
            f"{(f'{ratio:.2f}' if ratio else '-'):>8s}"
            f"{(f'{rel:+.1f}%' if rel is not None else '-'):>9s}\n"
        )


def markdown(paths: list[Path]) -> str:
    """Markdown tables (test, history not masked) of result JSONs.

    Runs of the same data set from several files are pooled before the
    summary, so a variant run separately is compared with the same baselines.
    """
    runs: dict[str, list[dict[str, Any]]] = {}
    data: dict[str, Any] = {}
    for path in paths:
        report = json.loads(path.read_text())
        for name, rows in report["runs"].items():
            runs.setdefault(name, []).extend(rows)
            data[name] = report["data"][name]
    lines = []
    for name, rows in runs.items():
        info = data[name]
        lines += [
            f"**{name}** ({info['users']} users, {info['items']} items, "
            f"{info['training_samples']} training samples)",
            "",
            "| variant | seeds | HR@20 | NDCG@20 | HR@10 | NDCG@10 | best epochs "
            "| s/epoch | x plain | vs best baseline (HR@20 / NDCG@20 / HR@10 / "
            "NDCG@10; paired t-test p of NDCG@20) |",
            "|---" * 10 + "|",
        ]
        for variant, st in summarise(rows, "test_unmasked").items():
            mine = [r for r in rows if r["variant"] == variant]
            cells = [f"{st[m]['mean']:.4f} ± {st[m]['std']:.4f}" for m in METRICS]
            best = ", ".join(str(r["best_epoch"]) for r in mine)
            ratio = st.get("time_ratio_vs_plain")
            cpu = st.get("cpu_time_ratio_vs_plain")
            rel = st.get("rel_change_vs_best_baseline_pct")
            rel_s = " / ".join(f"{rel[m]:+.1f}%" for m in METRICS) if rel else "-"
            p = st.get("paired_t_p_vs_best_baseline", {}).get("ndcg@20")
            rel_s += f" (p = {p:.2f})" if p is not None else ""
            lines.append(
                f"| {variant} | {len(mine)} | "
                + " | ".join(cells)
                + f" | {best} | {st['sec_per_epoch']:.1f} | "
                + (f"{ratio:.2f}" if ratio else "-")
                + (f" (CPU {cpu:.2f})" if cpu else "")
                + f" | {rel_s} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    """Parse options, run every (seed, data set, variant), write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir", type=Path, default=HERE.parent / ".." / "shared" / "data"
    )
    parser.add_argument("--datasets", nargs="+", default=["scientific", "ml-100k"])
    parser.add_argument(
        "--variants", nargs="+", default=[v for v in VARIANTS if "(" not in v]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--max-users",
        type=int,
        default=400,
        help="random user subsample per data set (0 = all)",
    )
    parser.add_argument(
        "--max-history",
        type=int,
        default=12,
        help="keep each user's last N interactions (0 = all)",
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=20)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--encoder-max-tokens", type=int, default=32)
    parser.add_argument(
        "--neighbour-encoding",
        default="batch",
        choices=["batch", "batch-nograd", "memory"],
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=HERE.parent / "bench-work" / "sracl-cache"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--machine-note",
        default="2-core CPU; other jobs may have shared it (see loadavg_start/end)",
        help="load conditions of the timings, recorded in the JSON",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sracl.json")
    parser.add_argument(
        "--tables-from",
        type=Path,
        nargs="+",
        help="print Markdown tables of existing result JSONs (runs of one data set "
        "pooled across files) and exit",
    )
    args = parser.parse_args()
    if args.tables_from:
        sys.stdout.write(markdown(args.tables_from) + "\n")
        return 0
    if not args.data_dir.is_dir():
        parser.error(f"--data-dir {args.data_dir}: no such folder")
    bad = [v for v in args.variants if v not in VARIANTS]
    if bad:
        parser.error(f"unknown variants {bad}; known: {list(VARIANTS)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("tamis.recsys.train").setLevel(logging.WARNING)
    from tamis.core.progress import set_progress_enabled

    set_progress_enabled(False)
    torch.set_num_threads(args.threads)

    started = dt.datetime.now(dt.UTC)
    report: dict[str, Any] = {
        "benchmark": "sracl",
        "command": shlex.join(["python", *sys.argv]),
        "date": started.isoformat(timespec="seconds"),
        "loadavg_start": list(os.getloadavg()),
        "threads": args.threads,
        "machine": args.machine_note,
        "protocol": {
            "split": "leave-one-out; training samples = every prefix of the "
            "training positions; validation = second-to-last item, test = last",
            "ranking": "full ranking over all items; test reported with the "
            "history not masked (as the public SRA-CL code) and masked",
            "early_stopping": f"validation NDCG@10, patience {args.patience}, at "
            f"most {args.epochs} epochs (capped for CPU time)",
            "loss": "full-softmax cross-entropy for every model",
            "backbones": f"SASRec 2 layers, 2 heads, hidden {args.hidden}, "
            f"dropout 0.5; GRU4Rec hidden {args.hidden}; max length {args.max_len}",
            "sra_cl": "alpha=beta=0.1, tau=1, k=10 neighbour prefixes, item k=10, "
            "substitution rate 0.2, attention synthesis, neighbour encoding "
            f"'{args.neighbour_encoding}' (the 'SRA-CL (memory)' row: neighbours "
            "read from a memory of each sample's last anchor encoding)",
            "cl4srec": "lambda=0.1, tau=1, crop 0.6 / mask 0.3 / reorder 0.6",
            "semantics": "items: MiniLM-L6-v2 on item text (title, categories, "
            f"brand / title, year, genres) truncated to {args.encoder_max_tokens} "
            "tokens; user prefixes: LLM-free (mean of the item vectors of the 10 "
            "most recent items; no LLM summaries: SmolLM2 generation for every "
            "training prefix is hours of CPU here); same-user prefixes excluded; "
            "pool = training prefixes only",
            "reductions": {
                "max_users": args.max_users,
                "max_history": args.max_history,
                "epochs": args.epochs,
            },
        },
        "data": {},
        "runs": {},
        "tables": {},
    }

    # Data and semantics (built once per data set, cached across seeds).
    loaded = {}
    for name in args.datasets:
        data = load(name, args.data_dir, args)
        split = leave_one_out(data)
        loaded[name] = (data, split, semantics_args(name, args))
        report["data"][name] = {
            **data.summary(),
            "training_samples": len(split.training_samples()),
        }
        report["runs"][name] = []
        log.info("%s: %s", name, report["data"][name])

    for seed in args.seeds:
        for name in args.datasets:
            data, split, sem = loaded[name]
            for variant in args.variants:
                log.info("%s / %s / seed %d", name, variant, seed)
                row = run_one(data, split, variant, seed, sem, args)
                log.info(
                    "  test %s, %.1f s/epoch",
                    row["test_unmasked"],
                    row["train_seconds_per_epoch"],
                )
                report["runs"][name].append(row)
                report["tables"][name] = {
                    key: summarise(report["runs"][name], f"test_{key}")
                    for key in ("unmasked", "masked")
                }
                report["finished"] = dt.datetime.now(dt.UTC).isoformat(
                    timespec="seconds"
                )
                report["loadavg_end"] = list(os.getloadavg())
                atomic_write_json(args.out, report)

    for name in args.datasets:
        print_table(name, report["tables"][name]["unmasked"])
        for variant, s in report["tables"][name]["unmasked"].items():
            if "time_ratio_vs_plain" in s:
                cpu = s.get("cpu_time_ratio_vs_plain")
                sys.stdout.write(
                    f"time ratio {name} {variant}: "
                    f"{s['time_ratio_vs_plain']:.2f}x plain (wall)"
                    + (f", {cpu:.2f}x (CPU time)" if cpu else "")
                    + "\n"
                )
    sys.stdout.write(f"\nwrote {args.out}\n")
    json.dumps(report)  # the JSON is already on disk; fail loudly if not serialisable
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
