"""Trainer and experiment runner for recommenders.

:func:`fit_model` trains a neural recommender with mini-batch AdamW on a
split's leak-free training samples, validates every ``eval_every`` epochs with
full ranking and stops early on the validation metric (never on test). With a
:class:`~tamis.core.runs.Run` it logs ``metrics.jsonl``, checkpoints every
validated epoch through :mod:`tamis.core.checkpoint` and resumes bit for bit.

Data parallelism: launched by ``torchrun``, each rank takes its slice of every
global batch (``batch_size`` is global) and gradients are combined with one
``all_reduce`` per step, weighted by shard size, so a step equals the
single-process step on the whole batch up to floating-point summation order.

:func:`run_training` is the runner of the ``rec-train`` config kind, used by
``tamis rec train`` and ``tamis resume``; :func:`load_run` rebuilds the split
and the best model of a finished run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn

from tamis.core.checkpoint import (
    capture_training_state,
    latest_checkpoint,
    restore_training_state,
    save_checkpoint,
)
from tamis.core.device import resolve_device
from tamis.core.distributed import init_from_env, is_main_process, rank, world_size
from tamis.core.io import atomic_write
from tamis.core.progress import progress
from tamis.core.runs import Run
from tamis.recsys.config import EvalConfig, RecTrainConfig, TrainConfig
from tamis.recsys.data import SequentialSplit, load_data, make_split
from tamis.recsys.evaluate import evaluate
from tamis.recsys.models import Recommender, build_model
from tamis.recsys.objectives import Objective, build_objective

__all__ = [
    "TrainResult",
    "fit_model",
    "run_training",
    "load_run",
    "model_max_len",
    "save_weights",
]

log = logging.getLogger(__name__)
BEST = "best_model.safetensors"


@dataclass
class TrainResult:
    """Outcome of :func:`fit_model`.

    Attributes:
        best_epoch: Epoch (1-based) with the best validation metric.
        best_metric: That metric's value.
        epochs_run: Epochs trained in total (including resumed ones).
        history: One dict per validated epoch (loss, metrics, timings).
        stopped_early: Whether patience ran out before ``epochs``.
        stopped_by_budget: Whether ``time_budget_s`` ended training.
        objective_info: What the training objective reports about itself, e.g.
            which semantic summaries and encoder SRA-CL used.
    """

    best_epoch: int = 0
    best_metric: float = float("-inf")
    epochs_run: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    stopped_by_budget: bool = False
    objective_info: dict[str, Any] = field(default_factory=dict)


def model_max_len(model: nn.Module, default: int = 50) -> int:
    """History length a model reads (its ``config.max_len`` or ``default``)."""
    return int(getattr(getattr(model, "config", None), "max_len", default))


def save_weights(module: nn.Module, path: Path) -> None:
    """Write a module's state dict as safetensors, atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))


def _all_reduce_grads(params: list[nn.Parameter], weight: float, total: float) -> None:
    """Replace each grad by the shard-size-weighted mean over ranks."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads]) * weight
    dist.all_reduce(flat)
    flat /= total
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(g).clone()
        offset += n


def _adamw(
    params: list[nn.Parameter], train: TrainConfig, device: torch.device
) -> torch.optim.Optimizer:
    """AdamW, fused into one kernel where torch supports it (CPU and CUDA)."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(
        params, lr=train.lr, weight_decay=train.weight_decay, fused=fused
    )


def _epoch_order(seed: int, epoch: int, n: int) -> tuple[torch.Tensor, torch.Generator]:
    """Epoch order (a function of seed and epoch only) and its generator."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen), gen


class _Batches:
    """Global batches of training samples; each rank gets its slice.

    Every batch's ``seq`` is cut to the longest history in it: inputs are
    left-padded and padding is masked, so dropping all-padding columns leaves
    every model output unchanged while saving the work on them.
    """

    def __init__(
        self,
        split: SequentialSplit,
        min_prefix: int,
        max_len: int,
        histories: bool = True,
    ) -> None:
        samples = split.training_samples(min_prefix)
        if len(samples) == 0:
            raise ValueError("training: the split has no training samples")
        self.n, self.max_len = len(samples), max_len
        self.user = torch.from_numpy(samples.users)
        self.target = torch.from_numpy(samples.targets)
        # Models that ignore the history (BPR, LightGCN) get an all-padding
        # (b, 1) ``seq``: the (S, L) matrix would only cost memory.
        if histories:
            self.seq = torch.from_numpy(samples.padded(max_len))  # (S, L)
            lengths = np.minimum(samples.lengths, max_len)
        else:
            self.max_len = 1
            self.seq = torch.zeros(1, 1, dtype=torch.int64).expand(self.n, 1)
            lengths = np.zeros(self.n, dtype=np.int64)
        self.length = torch.from_numpy(lengths)  # (S,)

    def batch_indices(
        self, order: torch.Tensor, batch_size: int, bucket: bool, gen: torch.Generator
    ) -> list[torch.Tensor]:
        """Split an epoch order into global batches.

        With ``bucket``, each run of 50 consecutive batches is re-sorted by
        history length before cutting (so a batch holds similar lengths and
        little padding), and the batches are then shuffled.
        """
        if not bucket:
            return list(order.split(batch_size))
        out = []
        for chunk in order.split(batch_size * 50):
            by_len = chunk[torch.argsort(self.length[chunk], stable=True)]
            out.extend(by_len.split(batch_size))
        perm = torch.randperm(len(out), generator=gen)
        return [out[i] for i in perm]

    def make(
        self, idx: torch.Tensor, device: torch.device
    ) -> tuple[dict[str, torch.Tensor], int]:
        """This rank's part of global batch ``idx`` and its size."""
        shard = idx.tensor_split(world_size())[rank()]
        width = int(self.length[shard].max()) if len(shard) else 1
        width = max(width, 1)
        batch = {
            "user": self.user[shard].to(device),
            "seq": self.seq[shard, self.max_len - width :].to(device),  # (b, w)
            "target": self.target[shard].to(device),
            "sample": shard.to(device),
        }
        return batch, len(shard)


def _train_epoch(
    objective: Objective,
    model: Recommender,
    params: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    batches: _Batches,
    steps: list[torch.Tensor],
    device: torch.device,
) -> dict[str, Any]:
    """One optimisation pass; returns mean loss, logs and timings."""
    t0, c0 = time.perf_counter(), time.process_time()
    total_loss, total_n = 0.0, 0
    logs_sum: dict[str, float] = {}
    for idx in progress(steps, desc="training"):
        batch, n_local = batches.make(idx, device)
        if n_local == 0:  # a rank with an empty shard still joins the all-reduce
            loss, logs = sum(p.sum() * 0.0 for p in params), {}
        else:
            loss, logs = objective(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if world_size() > 1:
            _all_reduce_grads(params, float(n_local), float(len(idx)))
        optimizer.step()
        total_loss += float(loss.detach()) * n_local
        total_n += n_local
        for k, v in logs.items():
            logs_sum[k] = logs_sum.get(k, 0.0) + v * n_local
    return {
        "loss": total_loss / max(total_n, 1),
        "train_seconds": time.perf_counter() - t0,
        # CPU time of this process (all threads): robust to a busy machine.
        "train_cpu_seconds": time.process_time() - c0,
        **{k: v / max(total_n, 1) for k, v in logs_sum.items()},
    }


def _checkpoint(
    run: Run,
    modules: nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
    keep: int,
) -> None:
    """Save model, objective, optimizer, RNGs and early-stopping state (rank 0)."""
    if not is_main_process():
        return
    tensors, state = capture_training_state(modules, optimizer)
    state["trainer"] = trainer_state
    save_checkpoint(run.checkpoint_dir, trainer_state["epoch"], tensors, state, keep)


def _resume(
    run: Run,
    modules: nn.Module,
    optimizer: torch.optim.Optimizer,
    result: TrainResult,
) -> tuple[int, int, dict[str, torch.Tensor]] | None:
    """Restore the latest checkpoint; ``(epoch, bad_epochs, best weights)``."""
    ckpt = latest_checkpoint(run.checkpoint_dir)
    if ckpt is None:
        return None
    restore_training_state(ckpt, modules, optimizer)
    st = ckpt.state["trainer"]
    result.best_epoch, result.best_metric = st["best_epoch"], st["best_metric"]
    result.history, result.epochs_run = st["history"], st["epoch"]
    model = modules["model"]
    best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if (run.path / BEST).is_file():
        best = load_file(str(run.path / BEST))
    run.metrics.truncate_after(st["epoch"])
    log.info("resumed from %s (epoch %d)", ckpt.path, st["epoch"])
    return st["epoch"], st["bad_epochs"], best


def fit_model(
    model: Recommender,
    split: SequentialSplit,
    train: TrainConfig | None = None,
    evaluation: EvalConfig | None = None,
    objective: str | Objective = "next-item",
    objective_args: dict[str, Any] | None = None,
    run: Run | None = None,
    resume: bool = False,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> TrainResult:
    """Train ``model`` on ``split`` with early stopping on validation.

    Args:
        model: A trainable recommender (``prepare`` is called first).
        split: The data split; training uses only its training samples.
        train: Trainer settings (defaults of :class:`TrainConfig`).
        evaluation: Validation settings (defaults of :class:`EvalConfig`).
        objective: Objective name (built with ``objective_args``) or instance.
        objective_args: Arguments of a named objective.
        run: Run directory for metrics and checkpoints (optional).
        resume: Continue from the run's latest checkpoint.
        device: Training device.
        seed: Seed of the per-epoch sample order.

    Returns:
        A :class:`TrainResult`; the model holds the best validated weights.
    """
    train = train or TrainConfig()
    evaluation = evaluation or EvalConfig()
    device = torch.device(device)
    model.prepare(split)
    model.to(device)
    if isinstance(objective, str):
        objective = build_objective(objective, objective_args or {}, model, split)
    objective.to(device)
    modules = nn.ModuleDict({"model": model, "objective": objective})
    params = [p for p in modules.parameters() if p.requires_grad]
    optimizer = _adamw(params, train, device)
    if world_size() > 1:
        for p in modules.parameters():  # identical starting point on every rank
            dist.broadcast(p.data, src=0)

    max_len = model_max_len(model)
    seq_model = model.sequential
    batches = _Batches(split, 1 if seq_model else 0, max_len, histories=seq_model)
    result = TrainResult(objective_info=dict(getattr(objective, "semantics_info", {})))
    bad_epochs, start_epoch = 0, 0
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    # Resume: restore weights, optimizer, RNGs and the early-stopping state.
    if resume and run is not None:
        restored = _resume(run, modules, optimizer, result)
        if restored is not None:
            start_epoch, bad_epochs, best_state = restored

    clock = time.perf_counter()
    for epoch in range(start_epoch, train.epochs):
        if bad_epochs >= train.patience:
            result.stopped_early = True
            break
        if train.time_budget_s and time.perf_counter() - clock > train.time_budget_s:
            result.stopped_by_budget = True
            log.info(
                "time budget of %.0f s spent after %d epochs",
                train.time_budget_s,
                epoch,
            )
            break

        # One pass over the shuffled training samples.
        modules.train()
        objective.on_epoch_start(epoch)
        order, gen = _epoch_order(seed, epoch, batches.n)
        steps = batches.batch_indices(
            order, train.batch_size, train.bucket_by_length, gen
        )
        record = _train_epoch(
            objective, model, params, optimizer, batches, steps, device
        )
        record = {"epoch": epoch + 1, **record}

        # Validate, keep the best weights, count epochs without improvement.
        if (epoch + 1) % train.eval_every == 0 or epoch + 1 == train.epochs:
            metrics, _ = evaluate(
                model,
                split.valid,
                evaluation.ks,
                evaluation.mask_history,
                evaluation.batch_size,
                max_len,
                device,
                topk=0,
            )
            value = metrics[train.valid_metric]
            record.update({f"valid_{k}": v for k, v in metrics.items()})
            if value > result.best_metric:
                result.best_metric, result.best_epoch = value, epoch + 1
                best_state = {
                    k: v.detach().clone() for k, v in model.state_dict().items()
                }
                bad_epochs = 0
                if run is not None and is_main_process():
                    save_weights(model, run.path / BEST)
            else:
                bad_epochs += train.eval_every
            log.info(
                "epoch %d: loss %.4f, valid %s %.4f (best %.4f @ %d), %.1f s",
                epoch + 1,
                record["loss"],
                train.valid_metric,
                value,
                result.best_metric,
                result.best_epoch,
                record["train_seconds"],
            )
        result.history.append(record)
        result.epochs_run = epoch + 1

        # Metrics line and checkpoint of this epoch.
        if run is not None:
            run.log_metrics(epoch + 1, **record)
            trainer_state = {
                "epoch": epoch + 1,
                "bad_epochs": bad_epochs,
                "best_epoch": result.best_epoch,
                "best_metric": result.best_metric,
                "history": result.history,
            }
            _checkpoint(run, modules, optimizer, trainer_state, train.keep_checkpoints)
    if bad_epochs >= train.patience:
        result.stopped_early = True

    model.load_state_dict(best_state)
    return result


# ---------------------------------------------------------------------------
# Runner of the rec-train config kind


def build_split(config: RecTrainConfig) -> SequentialSplit:
    """Read, filter and split the data described by ``config``."""
    data = load_data(config.data, seed=config.seed)
    return make_split(data, config.split.method, tuple(config.split.ratios))


def run_training(
    config: RecTrainConfig,
    run_dir: Path | None = None,
    resume: bool = False,
    run: Run | None = None,
) -> dict[str, Any]:
    """Run one experiment: data, split, model, training, test evaluation.

    Writes ``best_model.safetensors`` (the selected weights), ``metrics.jsonl``
    and ``results.json`` (test and validation metrics of the selected model,
    the history-masking switch, timings, data and split sizes).

    Args:
        config: The experiment.
        run_dir: Existing run directory (resume) or exact path for a new one.
        resume: Continue from the latest checkpoint in ``run_dir``.
        run: An already created run (the CLI creates it to attach its log).

    Returns:
        The results dict written to ``results.json``.
    """
    device = resolve_device(config.device)
    init_from_env(device.type if isinstance(device, torch.device) else str(device))
    if run is not None:
        pass
    elif resume and run_dir is not None:
        run = Run.open(run_dir)
    else:
        run = Run.create(
            config.out,
            config.name,
            config,
            config.seed,
            device=str(device),
            path=run_dir,
        )
    torch.manual_seed(config.seed)
    split = build_split(config)
    model = build_model(config.model, split.n_users, split.n_items, config.model_args)
    log.info("model %s, split %s", config.model, split.summary())

    t0 = time.perf_counter()
    if model.trainable:
        train_result = fit_model(
            model,
            split,
            config.train,
            config.eval,
            config.method,
            config.method_args,
            run=run,
            resume=resume,
            device=device,
            seed=config.seed,
        )
    else:
        model.fit(split)
        train_result = None
        if is_main_process():
            save_weights(model, run.path / BEST)
    fit_seconds = time.perf_counter() - t0

    # Final evaluation of the selected model on validation and test.
    results = final_results(model, split, config.eval, device)
    results.update(
        {
            "model": config.model,
            "method": config.method,
            "data": split.data.summary(),
            "split": split.summary(),
            "fit_seconds": fit_seconds,
            "world_size": world_size(),
            # Exact length-grouped encoding of sequential models (config switch).
            "length_groups": list(getattr(model.config, "length_groups", None) or []),
        }
    )
    if train_result is not None:
        epochs = [h["train_seconds"] for h in train_result.history]
        results.update(
            {
                "best_epoch": train_result.best_epoch,
                "best_valid_metric": {
                    config.train.valid_metric: train_result.best_metric
                },
                "epochs_run": train_result.epochs_run,
                "stopped_early": train_result.stopped_early,
                "stopped_by_budget": train_result.stopped_by_budget,
                "train_seconds_per_epoch": float(np.mean(epochs)) if epochs else None,
            }
        )
        if train_result.objective_info:
            results["objective_info"] = train_result.objective_info
    run.write_results(results)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    return results


def final_results(
    model: Recommender, split: SequentialSplit, cfg: EvalConfig, device: Any = "cpu"
) -> dict[str, Any]:
    """Validation and test metrics of ``model`` under ``cfg``."""
    max_len = model_max_len(model)
    out: dict[str, Any] = {"mask_history": cfg.mask_history, "ks": list(cfg.ks)}
    for part in ("valid", "test"):
        samples = getattr(split, part)
        if len(samples) == 0:
            continue
        metrics, _ = evaluate(
            model, samples, cfg.ks, cfg.mask_history, cfg.batch_size, max_len, device
        )
        out[part] = metrics
    return out


def load_run(
    run_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[RecTrainConfig, SequentialSplit, Recommender]:
    """Rebuild a finished run's config, split and selected model.

    The data is re-read from the paths in ``config.yaml`` and re-split (both are
    deterministic); the weights come from ``best_model.safetensors``.
    Non-neural models are refitted on the training part.

    Raises:
        FileNotFoundError: If the run has no saved model.
    """
    run = Run.open(run_dir)
    config = run.load_config()
    if not isinstance(config, RecTrainConfig):
        raise ValueError(f"{run_dir}: not a rec-train run (kind {type(config)})")
    split = build_split(config)
    model = build_model(config.model, split.n_users, split.n_items, config.model_args)
    weights = Path(run_dir) / BEST
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: no saved model in this run")
    if model.trainable:
        model.prepare(split)
        model.load_state_dict(load_file(str(weights)))
    else:
        model.fit(split)
    model.to(device)
    model.eval()
    return config, split, model
