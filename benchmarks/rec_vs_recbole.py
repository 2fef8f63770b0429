"""tamis against RecBole 1.2.1: same data, protocol, hyperparameters and epochs.

For SASRec, GRU4Rec and BPR on Amazon Beauty and MovieLens-100K this script
trains each model with both libraries for the same small number of epochs under
leave-one-out, full-ranking evaluation, and records NDCG@10 and HR@10 (valid
and test), seconds per training epoch, seconds per full-ranking evaluation
pass, and peak resident memory.

Protocol shared by both sides:

* data: ``Beauty.txt`` (one user per line, items in time order) and
  ``ml-100k.inter`` (all 100,000 ratings, no filtering), both written once as
  RecBole atomic files with a unique, order-preserving ``timestamp`` column so
  that ties in time are broken the same way (original line order);
* split: leave-one-out per user (last item test, second last validation);
  sequential models train on every prefix of the training part, at most the
  last 50 items as input;
* evaluation: full ranking over all items; sequential models do **not** mask
  the user's history (RecBole's behaviour for sequential models), BPR does;
* training: Adam(W) with no weight decay, learning rate 1e-3, the same batch
  sizes, a fixed number of epochs, no early stopping; the model after the
  last epoch is evaluated once on validation and once on test.

Each (side, dataset, model, seed) run is a separate process, so peak RSS
(``ru_maxrss``) is per run; its JSON is cached under the work folder and the
script resumes by skipping runs already done. RecBole is installed by the
script in its own virtualenv (``torch==2.13.0`` first, then ``recbole==1.2.1``
with ``setuptools<81``, ``numpy<2``, ``pandas<3``); the worker sets
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` and switches anomaly detection off after
importing RecBole's models (``sine.py`` switches it on at import).

Usage::

    python benchmarks/rec_vs_recbole.py --data-dir ../shared/data \
        [--sides recbole tamis] [--datasets beauty ml-100k] \
        [--models sasrec gru4rec bpr] [--epochs 1] [--bpr-epochs 20] \
        [--seeds 0 1 2] [--sasrec-seeds 0] [--threads 1] [--summarise-only]

Runs use one torch thread by default: on a machine loaded by other jobs,
two OpenMP threads spin-wait at every barrier and an epoch can cost many times
its single-thread CPU time, whichever library runs it.

Only the Python standard library is imported at module level: the same file
runs as the RecBole worker inside RecBole's virtualenv.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NAME = "rec_vs_recbole"

DATASETS = ("beauty", "ml-100k")
MODELS = ("sasrec", "gru4rec", "bpr")
SEQUENTIAL = {"sasrec", "gru4rec"}

# Hyperparameters shared by both sides (RecBole names on the left).
HYPER = {
    "sasrec": {
        "n_layers": 2,
        "n_heads": 2,
        "hidden_size": 64,
        "inner_size": 256,
        "hidden_dropout_prob": 0.5,
        "attn_dropout_prob": 0.5,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "initializer_range": 0.02,
        "loss_type": "CE",
    },
    "gru4rec": {
        "embedding_size": 64,
        "hidden_size": 128,
        "num_layers": 1,
        "dropout_prob": 0.3,
        "loss_type": "CE",
    },
    "bpr": {"embedding_size": 64},
}
TRAIN_BATCH = {"sasrec": 256, "gru4rec": 256, "bpr": 2048}
EVAL_BATCH = 2048
LEARNING_RATE = 1e-3
MAX_LEN = 50
# Training details of each side, recorded in the JSON. The two agree on every
# point that changes the update: Adam without weight decay is AdamW with
# weight decay 0; RecBole's tables carry one extra padding row (id 0), which
# only changes the Xavier standard deviation by under 0.1% on these data.
SETTINGS = {
    "tamis": {
        "optimizer": "torch.optim.AdamW(lr=1e-3, weight_decay=0.0, fused=True)",
        "bpr_init": "xavier_normal_ on user (n_users, 64) and item (n_items, 64) "
        "tables",
        "bpr_loss": "mean of -logsigmoid(pos - neg)",
        "bpr_negatives": "1 per positive, uniform over items outside the user's "
        "training interactions (redrawn until outside, at most 20 rounds)",
        "bpr_l2": 0.0,
        "sasrec_init": "normal(0, 0.02) on linear and embedding weights, "
        "zero biases, LayerNorm (1, 0)",
        "gru4rec_init": "xavier_normal_ item table; GRU xavier_uniform_ input "
        "and recurrent weights (model_args recurrent_init: xavier_uniform), "
        "no GRU bias, default nn.Linear output layer",
        "sequence_encoding": "each batch split by history length into padded "
        "widths 8/16/32/50 (exact: same outputs and gradients as the whole "
        "batch; model_args length_groups)",
        "grad_clipping": None,
    },
    "recbole": {
        "optimizer": "torch.optim.Adam(lr=1e-3, weight_decay=0.0) (learner: adam)",
        "bpr_init": "xavier_normal_ on user (n_users + 1, 64) and item "
        "(n_items + 1, 64) tables (row 0 is padding)",
        "bpr_loss": "BPRLoss: mean of -log(1e-10 + sigmoid(pos - neg))",
        "bpr_negatives": "1 per positive, uniform over items outside the user's "
        "training interactions (train_neg_sample_args uniform, sample_num 1)",
        "bpr_l2": 0.0,
        "sasrec_init": "normal(0, initializer_range=0.02), zero biases, "
        "LayerNorm (1, 0)",
        "gru4rec_init": "xavier_normal_ item table; GRU xavier_uniform_ input "
        "and recurrent weights, no GRU bias, default nn.Linear output layer",
        "sequence_encoding": "every batch padded to MAX_ITEM_LIST_LENGTH 50",
        "grad_clipping": None,
    },
}
RECBOLE_PINS = [
    "recbole==1.2.1",
    "setuptools<81",
    "numpy<2",
    "pandas<3",
    "psutil",
]


def log(message: str) -> None:
    """Progress line on stderr (this is a script, not library code)."""
    sys.stderr.write(f"[{datetime.now(UTC):%H:%M:%S}] {message}\n")
    sys.stderr.flush()


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------
# Data: both datasets as RecBole atomic files
# ---------------------------------------------------------------------------


def convert_beauty(src: Path, dst: Path) -> int:
    """Write ``Beauty.txt`` (``uid i1 i2 ...``) as an atomic ``.inter`` file.

    The timestamp is the global line/position counter, which keeps each
    user's order and makes every timestamp unique.
    """
    rows = 0
    tmp = dst.with_suffix(".tmp")
    with src.open() as fin, tmp.open("w") as fout:
        fout.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for line_no, line in enumerate(fin, 1):
            parts = line.split()
            if len(parts) < 2:
                raise ValueError(f"{src}:{line_no}: expected 'uid item item ...'")
            for item in parts[1:]:
                fout.write(f"{parts[0]}\t{item}\t{rows}\n")
                rows += 1
    tmp.replace(dst)
    return rows


def convert_ml100k(src: Path, dst: Path) -> int:
    """Rewrite ``ml-100k.inter`` with unique, order-preserving timestamps.

    Rows are sorted by (user, timestamp, original line) and the timestamp is
    replaced by the row position, so equal timestamps are ordered the same way
    by every reader.
    """
    with src.open() as fin:
        header = fin.readline().rstrip("\n").split("\t")
        names = [h.split(":")[0] for h in header]
        try:
            u, i, t = (names.index(c) for c in ("user_id", "item_id", "timestamp"))
        except ValueError:
            raise ValueError(
                f"{src}: header {header} lacks user/item/timestamp"
            ) from None
        rows = []
        for line_no, line in enumerate(fin, 2):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != len(header):
                raise ValueError(f"{src}:{line_no}: expected {len(header)} fields")
            rows.append((int(parts[u]), float(parts[t]), line_no, parts[u], parts[i]))
    rows.sort()
    tmp = dst.with_suffix(".tmp")
    with tmp.open("w") as fout:
        fout.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for pos, (_, _, _, user, item) in enumerate(rows):
            fout.write(f"{user}\t{item}\t{pos}\n")
    tmp.replace(dst)
    return len(rows)


def prepare_data(data_dir: Path, work: Path) -> dict[str, Path]:
    """Convert both datasets once; return dataset name -> ``.inter`` path."""
    sources = {
        "beauty": (data_dir / "recsys" / "beauty" / "Beauty.txt", convert_beauty),
        "ml-100k": (data_dir / "recsys" / "ml-100k" / "ml-100k.inter", convert_ml100k),
    }
    out = {}
    for name, (src, convert) in sources.items():
        if not src.is_file():
            raise FileNotFoundError(f"{src}: dataset file not found (--data-dir)")
        dst = work / "atomic" / name / f"{name}.inter"
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.is_file():
            rows = convert(src, dst)
            log(f"wrote {dst} ({rows} interactions)")
        out[name] = dst
    return out


# ---------------------------------------------------------------------------
# RecBole: virtualenv and worker
# ---------------------------------------------------------------------------


def ensure_recbole_venv(venv: Path) -> Path:
    """Create RecBole's virtualenv if needed and return its python."""
    python = venv / "bin" / "python"
    stamp = venv / ".recbole-1.2.1-installed"
    if stamp.is_file():
        return python
    log(f"creating {venv} (torch==2.13.0, then recbole==1.2.1)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    # torch first: an unpinned torch would pull a multi-GB CUDA build.
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, *RECBOLE_PINS], check=True)
    stamp.write_text("ok\n")
    return python


def recbole_config(spec: dict) -> dict:
    """RecBole configuration for one run (see the module docstring)."""
    model = spec["model"]
    config = {
        "data_path": spec["atomic_dir"],
        "checkpoint_dir": spec["scratch"],
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "seed": spec["seed"],
        "reproducibility": True,
        "use_gpu": False,
        "device": "cpu",
        "worker": 0,
        "state": "WARNING",
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "log_wandb": False,
        "epochs": spec["epochs"],
        "learner": "adam",
        "learning_rate": LEARNING_RATE,
        "weight_decay": 0.0,
        "train_batch_size": TRAIN_BATCH[model],
        "eval_batch_size": EVAL_BATCH,
        "metrics": ["Hit", "NDCG"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "group_by": "user",
            "mode": "full",
        },
        **HYPER[model],
    }
    if model in SEQUENTIAL:
        config["train_neg_sample_args"] = None
        config["MAX_ITEM_LIST_LENGTH"] = MAX_LEN
    else:
        config["train_neg_sample_args"] = {
            "distribution": "uniform",
            "sample_num": 1,
        }
    return config


def recbole_worker(spec: dict) -> dict:
    """One RecBole run inside RecBole's virtualenv; returns the measurements."""
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    import torch

    torch.set_num_threads(spec["threads"])
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    name = {"sasrec": "SASRec", "gru4rec": "GRU4Rec", "bpr": "BPR"}[spec["model"]]
    config = Config(
        model=name, dataset=spec["dataset"], config_dict=recbole_config(spec)
    )
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)

    # Data: dataset object and the three loaders.
    start = time.perf_counter()
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    data_seconds = time.perf_counter() - start

    # Model and trainer; get_model imports sine.py, which turns anomaly
    # detection on for the whole process, so turn it off afterwards.
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    torch.autograd.set_detect_anomaly(False)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    # Fixed number of epochs, no early stopping.
    epoch_seconds, epoch_cpu, losses = [], [], []
    for epoch in range(spec["epochs"]):
        start, cpu = time.perf_counter(), time.process_time()
        loss = trainer._train_epoch(train_data, epoch, show_progress=False)
        epoch_seconds.append(time.perf_counter() - start)
        epoch_cpu.append(time.process_time() - cpu)
        losses.append(float(loss if not isinstance(loss, tuple) else sum(loss)))
        log(
            f"recbole {name} {spec['dataset']} epoch {epoch}: "
            f"{epoch_seconds[-1]:.1f} s, loss {losses[-1]:.2f}"
        )

    # One validation and one test pass with the last model.
    start, cpu = time.perf_counter(), time.process_time()
    valid = trainer.evaluate(valid_data, load_best_model=False, show_progress=False)
    valid_seconds, valid_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    test = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    test_seconds = time.perf_counter() - start
    return {
        "n_users": int(dataset.user_num - 1),
        "n_items": int(dataset.item_num - 1),
        "n_train_samples": len(train_data.dataset),
        "data_seconds": data_seconds,
        "epoch_seconds": epoch_seconds,
        "epoch_cpu_seconds": epoch_cpu,
        "train_loss": losses,
        "valid_eval_cpu_seconds": valid_cpu,
        "valid": {"ndcg@10": float(valid["ndcg@10"]), "hr@10": float(valid["hit@10"])},
        "test": {"ndcg@10": float(test["ndcg@10"]), "hr@10": float(test["hit@10"])},
        "valid_eval_seconds": valid_seconds,
        "test_eval_seconds": test_seconds,
        "history_masked": spec["model"] not in SEQUENTIAL,
        "library_version": _version("recbole"),
        "torch_version": torch.__version__,
    }


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


# ---------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------


def run_one(side: str, python: Path, spec: dict, cache: Path) -> dict | None:
    """Run one measurement in a fresh process; cache and return its JSON."""
    if cache.is_file():
        return json.loads(cache.read_text())
    cache.parent.mkdir(parents=True, exist_ok=True)
    spec_file = cache.with_suffix(".spec.json")
    spec_file.write_text(json.dumps(spec))
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), PYTHONUNBUFFERED="1")
    cmd = [
        str(python),
        str(Path(__file__).resolve()),
        "--worker",
        side,
        "--spec",
        str(spec_file),
    ]
    log(f"start {side} {spec['dataset']} {spec['model']} seed {spec['seed']}")
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, env=env, cwd=spec["scratch"], text=True, stdout=subprocess.PIPE
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        log(
            f"FAILED {side} {spec['dataset']} {spec['model']} seed {spec['seed']} "
            f"(exit {proc.returncode}); see stderr above"
        )
        return None
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(
        side=side,
        dataset=spec["dataset"],
        model=spec["model"],
        seed=spec["seed"],
        epochs=spec["epochs"],
        wall_seconds=wall,
    )
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(cache)
    log(
        f"done {side} {spec['dataset']} {spec['model']} seed {spec['seed']}: "
        f"test NDCG@10 {result['test']['ndcg@10']:.4f}, "
        f"epoch {sum(result['epoch_seconds']) / len(result['epoch_seconds']):.1f} s, "
        f"eval {result['valid_eval_seconds']:.1f} s, "
        f"peak {result['peak_rss_mb']:.0f} MiB"
    )
    return result


def worker_main(side: str, spec_file: Path) -> int:
    """Entry point of a worker process: print one JSON line on stdout."""
    spec = json.loads(spec_file.read_text())
    load_start = os.getloadavg()[0]
    if side == "recbole":
        result = recbole_worker(spec)
    else:
        sys.path.insert(0, str(REPO / "src"))
        result = tamis_worker(spec)
    result["peak_rss_mb"] = peak_rss_mb()
    result["load_average_1min"] = [load_start, os.getloadavg()[0]]  # start, end
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


def tamis_model_args(model: str) -> dict:
    """The shared hyperparameters under tamis' argument names."""
    h = HYPER[model]
    if model == "sasrec":
        return {
            "hidden": h["hidden_size"],
            "layers": h["n_layers"],
            "heads": h["n_heads"],
            "inner": h["inner_size"],
            "dropout": h["hidden_dropout_prob"],
            "attn_dropout": h["attn_dropout_prob"],
            "max_len": MAX_LEN,
            "layer_norm_eps": h["layer_norm_eps"],
            "init_std": h["initializer_range"],
        }
    if model == "gru4rec":
        return {
            "hidden": h["embedding_size"],
            "gru_hidden": h["hidden_size"],
            "layers": h["num_layers"],
            "dropout": h["dropout_prob"],
            "max_len": MAX_LEN,
            "recurrent_init": "xavier_uniform",  # RecBole's GRU4Rec init
        }
    return {"hidden": h["embedding_size"]}


def _tamis_revision() -> str:
    """Commit of this checkout, flagged when recsys sources differ from it."""
    git = ["git", "-C", str(REPO)]
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "src/tamis/recsys"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"tamis {head}" + (" + uncommitted recsys changes" if dirty else "")


def tamis_worker(spec: dict) -> dict:
    """One tamis run (same protocol as :func:`recbole_worker`)."""
    import torch

    torch.set_num_threads(spec["threads"])
    from tamis.core.progress import set_progress_enabled
    from tamis.core.runs import seed_everything
    from tamis.recsys.config import DataConfig, EvalConfig, TrainConfig
    from tamis.recsys.data import load_data, make_split
    from tamis.recsys.evaluate import evaluate
    from tamis.recsys.models import build_model
    from tamis.recsys.train import fit_model

    model_name, masked = spec["model"], spec["model"] not in SEQUENTIAL
    set_progress_enabled(False)  # RecBole runs with show_progress=False too
    seed_everything(spec["seed"])

    # Data: the same atomic file RecBole reads, leave-one-out split.
    start = time.perf_counter()
    data_cfg = DataConfig(
        format="atomic",
        path=str(Path(spec["atomic_dir"]) / spec["dataset"]),
        name=spec["dataset"],
        rating_field="",
    )
    data = load_data(data_cfg, seed=spec["seed"])
    split = make_split(data, "leave-one-out")
    data_seconds = time.perf_counter() - start

    # Fixed number of epochs: validation only after the last one, no early stop.
    model = build_model(
        model_name, data.n_users, data.n_items, tamis_model_args(model_name)
    )
    train_cfg = TrainConfig(
        epochs=spec["epochs"],
        batch_size=TRAIN_BATCH[model_name],
        lr=LEARNING_RATE,
        weight_decay=0.0,
        patience=spec["epochs"] + 1,
        eval_every=spec["epochs"],
    )
    eval_cfg = EvalConfig(ks=[10], mask_history=masked, batch_size=EVAL_BATCH)
    loss = "ce" if model_name in SEQUENTIAL else "bpr"
    fit_cpu = time.process_time()
    result = fit_model(
        model,
        split,
        train_cfg,
        eval_cfg,
        "next-item",
        {"loss": loss},
        seed=spec["seed"],
    )
    fit_cpu = time.process_time() - fit_cpu
    epoch_seconds = [float(r["train_seconds"]) for r in result.history]
    losses = [float(r["loss"]) for r in result.history]
    for epoch, (sec, value) in enumerate(zip(epoch_seconds, losses, strict=True)):
        log(
            f"tamis {model_name} {spec['dataset']} epoch {epoch}: {sec:.1f} s, "
            f"loss {value:.4f}"
        )

    # One validation and one test pass with the last model, timed.
    out = {}
    for part, samples in (("valid", split.valid), ("test", split.test)):
        start, cpu = time.perf_counter(), time.process_time()
        metrics, _ = evaluate(model, samples, [10], masked, EVAL_BATCH, MAX_LEN)
        out[f"{part}_eval_seconds"] = time.perf_counter() - start
        out[f"{part}_eval_cpu_seconds"] = time.process_time() - cpu
        out[part] = {"ndcg@10": metrics["ndcg@10"], "hr@10": metrics["hr@10"]}
    return {
        "n_users": int(data.n_users),
        "n_items": int(data.n_items),
        "n_train_samples": len(split.training_samples(1 if not masked else 0)),
        "data_seconds": data_seconds,
        "epoch_seconds": epoch_seconds,
        # The trainer reports wall time per epoch only; its CPU time per epoch
        # is the CPU time of the whole fit (epochs + one validation pass)
        # minus the CPU time of a separately timed validation pass.
        "epoch_cpu_seconds": [
            (fit_cpu - out["valid_eval_cpu_seconds"]) / len(epoch_seconds)
        ]
        * len(epoch_seconds),
        "train_loss": losses,
        **out,
        "history_masked": masked,
        "length_groups": list(getattr(model.config, "length_groups", None) or []),
        "library_version": _tamis_revision(),
        "torch_version": torch.__version__,
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _std(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    m = sum(values) / len(values)
    return (sum((v - m) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def side_summary(runs: list[dict]) -> dict:
    """Aggregate the runs of one side for one (dataset, model)."""
    epochs = [s for r in runs for s in r["epoch_seconds"]]
    out = {
        "seeds": sorted(r["seed"] for r in runs),
        "epochs": runs[0]["epochs"],
        "train_epoch_seconds_mean": _mean(epochs),
        "train_epoch_seconds_min": min(epochs),
        "train_epoch_cpu_seconds_mean": _mean(
            [s for r in runs for s in r.get("epoch_cpu_seconds", [])]
        ),
        "valid_eval_cpu_seconds_mean": _mean(
            [r["valid_eval_cpu_seconds"] for r in runs if "valid_eval_cpu_seconds" in r]
        ),
        "valid_eval_seconds_mean": _mean([r["valid_eval_seconds"] for r in runs]),
        "test_eval_seconds_mean": _mean([r["test_eval_seconds"] for r in runs]),
        "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs),
        "data_seconds_mean": _mean([r["data_seconds"] for r in runs]),
        "history_masked": runs[0]["history_masked"],
    }
    for part in ("valid", "test"):
        for metric in ("ndcg@10", "hr@10"):
            values = [r[part][metric] for r in runs]
            out[f"{part}_{metric}_mean"] = _mean(values)
            out[f"{part}_{metric}_std"] = _std(values)
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def compare(t: dict, r: dict) -> dict:
    """Ratios and target checks of tamis (``t``) against RecBole (``r``)."""
    train_ratio = t["train_epoch_seconds_mean"] / r["train_epoch_seconds_mean"]
    eval_speedup = r["valid_eval_seconds_mean"] / t["valid_eval_seconds_mean"]
    memory_ratio = t["peak_rss_mb_max"] / r["peak_rss_mb_max"]
    out = {
        "train_epoch_ratio_tamis_over_recbole": train_ratio,
        "train_epoch_cpu_ratio_tamis_over_recbole": _ratio(
            t["train_epoch_cpu_seconds_mean"], r["train_epoch_cpu_seconds_mean"]
        ),
        "eval_cpu_speedup_recbole_over_tamis": _ratio(
            r["valid_eval_cpu_seconds_mean"], t["valid_eval_cpu_seconds_mean"]
        ),
        "eval_speedup_recbole_over_tamis": eval_speedup,
        "peak_rss_ratio_tamis_over_recbole": memory_ratio,
        "target_train_epoch_ratio_le_0.3": train_ratio <= 0.3,
        "target_eval_speedup_ge_5": eval_speedup >= 5.0,
        "target_peak_rss_not_higher": memory_ratio <= 1.0,
    }
    # Accuracy: the difference of means against two standard errors.
    for metric in ("ndcg@10", "hr@10"):
        diff = t[f"test_{metric}_mean"] - r[f"test_{metric}_mean"]
        st, sr = t[f"test_{metric}_std"], r[f"test_{metric}_std"]
        nt, nr = len(t["seeds"]), len(r["seeds"])
        out[f"test_{metric}_diff_tamis_minus_recbole"] = diff
        if st is None or sr is None:
            out[f"test_{metric}_within_noise"] = None
        else:
            noise = 2.0 * (st**2 / nt + sr**2 / nr) ** 0.5
            out[f"test_{metric}_two_se"] = noise
            out[f"test_{metric}_within_noise"] = diff >= -noise
    return out


def summarise(runs: list[dict]) -> dict:
    """Group runs by dataset and model and compare the two sides."""
    table = {}
    for dataset in DATASETS:
        for model in MODELS:
            group = {
                side: [
                    r
                    for r in runs
                    if r["side"] == side
                    and r["dataset"] == dataset
                    and r["model"] == model
                ]
                for side in ("tamis", "recbole")
            }
            entry = {s: side_summary(g) for s, g in group.items() if g}
            if "tamis" in entry and "recbole" in entry:
                entry["comparison"] = compare(entry["tamis"], entry["recbole"])
            if entry:
                table[f"{dataset}/{model}"] = entry
    return table


def print_table(table: dict) -> None:
    """Human-readable figures on stdout."""
    head = (
        f"{'dataset/model':18} {'side':8} {'seeds':>5} {'test NDCG@10':>16} "
        f"{'test HR@10':>16} {'epoch s':>8} {'ep cpu':>7} {'eval s':>7} "
        f"{'ev cpu':>7} {'peak MiB':>9}"
    )
    sys.stdout.write(head + "\n" + "-" * len(head) + "\n")

    def num(value: float | None, fmt: str) -> str:
        return format(value, fmt) if value is not None else "-"

    for key, entry in table.items():
        for side in ("tamis", "recbole"):
            if side not in entry:
                continue
            s = entry[side]
            nd, hr = s["test_ndcg@10_mean"], s["test_hr@10_mean"]
            nds, hrs = s["test_ndcg@10_std"] or 0.0, s["test_hr@10_std"] or 0.0
            sys.stdout.write(
                f"{key:18} {side:8} {len(s['seeds']):5d} {nd:8.4f}±{nds:.4f} "
                f"{hr:8.4f}±{hrs:.4f} {s['train_epoch_seconds_mean']:8.1f} "
                f"{num(s['train_epoch_cpu_seconds_mean'], '7.1f'):>7} "
                f"{s['valid_eval_seconds_mean']:7.2f} "
                f"{num(s['valid_eval_cpu_seconds_mean'], '7.2f'):>7} "
                f"{s['peak_rss_mb_max']:9.0f}\n"
            )
        if "comparison" in entry:
            c = entry["comparison"]
            sys.stdout.write(
                f"{'':18} tamis/RecBole epoch time "
                f"{c['train_epoch_ratio_tamis_over_recbole']:.2f} (CPU "
                f"{num(c['train_epoch_cpu_ratio_tamis_over_recbole'], '.2f')}), "
                f"eval speed-up {c['eval_speedup_recbole_over_tamis']:.1f}x (CPU "
                f"{num(c['eval_cpu_speedup_recbole_over_tamis'], '.1f')}x), "
                f"peak memory ratio {c['peak_rss_ratio_tamis_over_recbole']:.2f}\n"
            )


def run_plan(args: argparse.Namespace) -> list[tuple[int, str, str]]:
    """(seed, dataset, model) in the order they run.

    The first seed of every model comes first (BPR and GRU4Rec, then SASRec,
    the most expensive), then the further seeds, so an interrupted benchmark
    still covers every model. The two sides of one (seed, dataset, model) run
    back to back, under similar load.
    """
    cheap = [
        (d, m)
        for d, m in [
            ("ml-100k", "bpr"),
            ("beauty", "bpr"),
            ("ml-100k", "gru4rec"),
            ("beauty", "gru4rec"),
        ]
        if d in args.datasets and m in args.models
    ]
    sasrec = [d for d in ("ml-100k", "beauty") if d in args.datasets]
    if "sasrec" not in args.models:
        sasrec = []
    first_cheap, first_sasrec = args.seeds[0], args.sasrec_seeds[0]
    plan = [(first_cheap, d, m) for d, m in cheap]
    plan += [(first_sasrec, d, "sasrec") for d in sasrec]
    plan += [(seed, d, m) for seed in args.seeds[1:] for d, m in cheap]
    plan += [(seed, d, "sasrec") for seed in args.sasrec_seeds[1:] for d in sasrec]
    return plan


def main() -> int:
    """Parse arguments, run what is missing, write the JSON table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir", type=Path, default=REPO / ".." / "shared" / "data"
    )
    parser.add_argument("--work-dir", type=Path, default=REPO / "bench-work" / NAME)
    parser.add_argument(
        "--venv", type=Path, default=REPO / "bench-work" / "recbole-venv"
    )
    parser.add_argument(
        "--sides", nargs="+", default=["recbole", "tamis"], choices=["recbole", "tamis"]
    )
    parser.add_argument(
        "--datasets", nargs="+", default=list(DATASETS), choices=DATASETS
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument(
        "--epochs", type=int, default=1, help="epochs of SASRec and GRU4Rec"
    )
    parser.add_argument(
        "--bpr-epochs", type=int, default=20, help="epochs of BPR (cheap epochs)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--sasrec-seeds",
        type=int,
        nargs="+",
        default=[0],
        help="seeds of SASRec (the most expensive model; its runs come last)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per run (1 avoids OpenMP spin-waiting on a loaded machine)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / f"{NAME}.json")
    parser.add_argument(
        "--machine-note",
        default="other jobs may have shared the machine",
        help="load conditions of the timings, recorded in the JSON",
    )
    parser.add_argument(
        "--summarise-only",
        action="store_true",
        help="only rebuild the JSON from cached runs",
    )
    parser.add_argument(
        "--worker", choices=["recbole", "tamis"], help=argparse.SUPPRESS
    )
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker_main(args.worker, args.spec)

    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    cache_dir = work / "runs"
    command = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])
    commands_log = work / "commands.txt"
    if not args.summarise_only:
        with commands_log.open("a") as fh:
            fh.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} {command}\n")
        inter = prepare_data(args.data_dir.resolve(), work)
        pythons = {"tamis": Path(sys.executable)}
        if "recbole" in args.sides:
            pythons["recbole"] = ensure_recbole_venv(args.venv.resolve())
        for seed, dataset, model in run_plan(args):
            for side in args.sides:
                scratch = work / "scratch" / side
                scratch.mkdir(parents=True, exist_ok=True)
                epochs = args.bpr_epochs if model == "bpr" else args.epochs
                spec = {
                    "dataset": dataset,
                    "model": model,
                    "seed": seed,
                    "epochs": epochs,
                    "threads": args.threads,
                    "inter": str(inter[dataset]),
                    "atomic_dir": str(inter[dataset].parent.parent),
                    "scratch": str(scratch),
                }
                tag = f"{side}-{dataset}-{model}-e{epochs}-s{seed}"
                run_one(side, pythons[side], spec, cache_dir / f"{tag}.json")

    runs = [
        json.loads(p.read_text())
        for p in sorted(cache_dir.glob("*-e*-s*.json"))
        if not p.name.endswith(".spec.json")
    ]
    wanted = {m: args.bpr_epochs if m == "bpr" else args.epochs for m in MODELS}
    runs = [r for r in runs if r["epochs"] == wanted[r["model"]]]
    table = summarise(runs)
    print_table(table)
    report = {
        "benchmark": NAME,
        "command": command,
        "measurement_commands": (
            commands_log.read_text().splitlines() if commands_log.is_file() else []
        ),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU; "
            f"{args.threads} torch threads per run; {args.machine_note}"
        ),
        "load_average_end": list(os.getloadavg()),
        "protocol": {
            "split": "leave-one-out per user (last = test, second last = valid)",
            "ranking": "full ranking over all items",
            "history_masking": "off for SASRec/GRU4Rec (RecBole's behaviour), "
            "on for BPR",
            "epochs": wanted,
            "seeds": {"bpr_gru4rec": args.seeds, "sasrec": args.sasrec_seeds},
            "torch_threads_per_run": args.threads,
            "early_stopping": False,
            "evaluated_model": "after the last epoch",
            "max_sequence_length": MAX_LEN,
            "learning_rate": LEARNING_RATE,
            "train_batch_size": TRAIN_BATCH,
            "eval_batch_size": EVAL_BATCH,
            "hyperparameters": HYPER,
            "settings_by_side": SETTINGS,
            "data": "Beauty.txt (5-core) and ml-100k.inter (all ratings), "
            "converted to atomic files with unique order-preserving "
            "timestamps",
            "train_epoch_seconds": "wall time of one pass over the training "
            "data, measured around each library's "
            "epoch function",
            "eval_seconds": "wall time of one full-ranking pass over all "
            "validation users (and separately test users)",
            "peak_rss_mb": "ru_maxrss of the run's own process (data loading, "
            "training and evaluation)",
        },
        "targets": {
            "accuracy": "test NDCG@10/HR@10 of tamis not below RecBole's by "
            "more than two standard errors over seeds",
            "train_epoch_ratio": "<= 0.3",
            "eval_speedup": ">= 5",
            "peak_rss": "tamis <= RecBole",
        },
        "summary": table,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(args.out)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
