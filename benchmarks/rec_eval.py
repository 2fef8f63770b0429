"""Full-ranking evaluation speed, against the evaluator of another git revision.

Times validation passes (every item a candidate, metrics from exact target
ranks) of untrained BPR (history masked), GRU4Rec and SASRec (not masked) on
Beauty or ML-100K. With ``--compare-to REV`` the ``tamis.recsys.evaluate``
module of that git revision is loaded beside the current one and the two are
timed in alternation in one process, so that both see the same machine load;
the JSON reports each pass and the median ratio. Ranks of both evaluators are
compared too: they must be identical.

Ranking cost does not depend on training, so untrained models time the same
work as trained ones.

Usage:
    python benchmarks/rec_eval.py --data-dir ../shared/data --compare-to HEAD~1
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from tamis.core.io import atomic_write_json
from tamis.core.progress import set_progress_enabled
from tamis.core.runs import seed_everything
from tamis.recsys.models import build_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rec_tamis import GRU4REC, SASREC, load  # noqa: E402  (the shared settings)

ROOT = Path(__file__).resolve().parents[1]
MODEL_ARGS = {"bpr": {"hidden": 64}, "gru4rec": GRU4REC, "sasrec": SASREC}
MASKED = {"bpr": True, "gru4rec": False, "sasrec": False}


def evaluator_at(rev: str) -> ModuleType:
    """``tamis.recsys.evaluate`` as it was at git revision ``rev``."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:src/tamis/recsys/evaluate.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = ModuleType("evaluate_at_rev")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:evaluate.py", "exec"), module.__dict__)
    return module


def main() -> None:
    """Parse arguments, time the passes, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, default=ROOT.parent / "shared" / "data"
    )
    parser.add_argument("--datasets", nargs="+", default=["beauty"])
    parser.add_argument(
        "--models", nargs="+", default=list(MODEL_ARGS), choices=list(MODEL_ARGS)
    )
    parser.add_argument("--compare-to", default="", help="git revision to time too")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--topk", type=int, default=0, help="top-K lists per pass")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="load conditions, for the JSON")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/rec_eval.json"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_progress_enabled(False)
    from tamis.recsys import evaluate as current

    sides = {"current": current}
    if args.compare_to:
        sides[args.compare_to] = evaluator_at(args.compare_to)
    report: dict = {
        "command": " ".join(["python", *sys.argv]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "note": args.note,
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_start": os.getloadavg(),
            "torch": torch.__version__,
        },
        "topk": args.topk,
        "batch_size": args.batch_size,
        "results": {},
    }
    for name in args.datasets:
        split = load(name, args.data_dir)
        for model_name in args.models:
            seed_everything(args.seed)
            model = build_model(
                model_name, split.n_users, split.n_items, MODEL_ARGS[model_name]
            )
            seconds: dict[str, list[float]] = {side: [] for side in sides}
            ranks: dict[str, np.ndarray] = {}
            for rep in range(args.reps + 1):  # the first round warms up
                for side, module in sides.items():
                    result = module.rank_targets(
                        model,
                        split.valid,
                        50,
                        args.batch_size,
                        MASKED[model_name],
                        args.topk,
                    )
                    ranks[side] = result.ranks
                    if rep:
                        seconds[side].append(result.seconds)
            entry: dict = {
                "users": len(split.valid),
                "items": split.n_items,
                "history_masked": MASKED[model_name],
                "seconds": seconds,
                "median_seconds": {s: statistics.median(v) for s, v in seconds.items()},
            }
            if args.compare_to:
                now = statistics.median(seconds["current"])
                before = statistics.median(seconds[args.compare_to])
                entry["speedup_median"] = before / now  # > 1: current is faster
                entry["ranks_identical"] = bool(
                    np.array_equal(ranks["current"], ranks[args.compare_to])
                )
            report["results"][f"{name}/{model_name}"] = entry
            print(
                f"{name}/{model_name}: "
                + ", ".join(
                    f"{s} {m:.3f} s" for s, m in entry["median_seconds"].items()
                )
                + (f", x{entry['speedup_median']:.2f}" if args.compare_to else ""),
                flush=True,
            )
    report["machine"]["load_average_end"] = os.getloadavg()
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
