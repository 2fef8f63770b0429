"""Full and LoRA fine-tuning of a causal LM on one task, producing an expert.

Batches are drawn with a seeded generator that is saved in every checkpoint
with the trainable weights, the optimizer and the global RNGs, so a resumed run
continues bit for bit. LoRA adapters are merged into the full weights at the
end, so the expert directory is a plain model ready for task-vector merging.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from tamis.core.checkpoint import (
    capture_training_state,
    latest_checkpoint,
    restore_training_state,
    save_checkpoint,
)
from tamis.core.progress import progress
from tamis.core.runs import Run
from tamis.llm.config import FinetuneConfig
from tamis.llm.models import load_model, load_tokenizer, resolve_model_dir, save_model
from tamis.llm.tasks import Example, encode_pair, load_task, pad_batch

__all__ = ["finetune", "learning_rate", "run_finetune"]

log = logging.getLogger(__name__)


def learning_rate(step: int, peak: float, warmup: int, total: int) -> float:
    """Linear warm-up to ``peak`` then cosine decay to 10% of it."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress_frac = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_frac))))


def _wrap_lora(model: Any, config: FinetuneConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_targets),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def _trainable(model: Any) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _save(
    run: Run, step: int, model: Any, optimizer: Any, gen: torch.Generator
) -> None:
    tensors, state = capture_training_state(None, optimizer, {"batches": gen})
    for name, p in _trainable(model).items():
        tensors[f"train.{name}"] = p.detach()
    save_checkpoint(run.checkpoint_dir, step, tensors, {**state, "step": step})


def _restore(run: Run, model: Any, optimizer: Any, gen: torch.Generator) -> int:
    ckpt = latest_checkpoint(run.checkpoint_dir)
    if ckpt is None:
        return 0
    restore_training_state(ckpt, None, optimizer, {"batches": gen})
    with torch.no_grad():
        for name, p in _trainable(model).items():
            p.copy_(ckpt.tensors[f"train.{name}"])
    run.metrics.truncate_after(ckpt.step)
    log.info("resumed from %s (step %d)", ckpt.path, ckpt.step)
    return ckpt.step


def finetune(
    model: Any,
    tokenizer: Any,
    examples: list[Example],
    config: FinetuneConfig,
    run: Run,
    resume: bool = False,
) -> dict[str, Any]:
    """Train ``model`` in place on ``examples`` (already LoRA-wrapped if asked).

    Returns:
        Summary with the mean loss of the last logged window and the step count.
    """
    params = list(_trainable(model).values())
    optimizer = torch.optim.AdamW(
        params, lr=config.lr, weight_decay=config.weight_decay
    )
    gen = torch.Generator().manual_seed(config.seed)
    start = _restore(run, model, optimizer, gen) if resume else 0
    encoded = [
        encode_pair(tokenizer, e.prompt, e.target, config.max_length) for e in examples
    ]

    model.train()
    window: list[float] = []
    last_loss = float("nan")
    t0 = time.perf_counter()
    for step in progress(
        range(start, config.steps), desc="finetune", total=config.steps - start
    ):
        # Sample a batch, take one AdamW step at the scheduled learning rate.
        idx = torch.randint(len(encoded), (config.batch_size,), generator=gen).tolist()
        batch = pad_batch([encoded[i] for i in idx], tokenizer.pad_token_id)
        lr = learning_rate(step, config.lr, config.warmup_steps, config.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        window.append(loss.item())

        # Log and checkpoint.
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            last_loss = sum(window) / len(window)
            run.log_metrics(done, loss=last_loss, lr=lr)
            window = []
        if done % config.checkpoint_every == 0 and done < config.steps:
            _save(run, done, model, optimizer, gen)
    model.eval()
    return {
        "steps": config.steps,
        "resumed_from": start,
        "final_loss": last_loss,
        "seconds": time.perf_counter() - t0,
    }


def run_finetune(
    config: FinetuneConfig, run_dir: Path | None = None, resume: bool = False
) -> dict[str, Any]:
    """Runner of ``llm-finetune`` configs: train, merge LoRA, save the expert."""
    if resume and run_dir is not None:
        run = Run.open(run_dir)
    else:
        run = Run.create(
            config.runs_root, "finetune", config, config.seed, path=run_dir
        )
    model_dir = resolve_model_dir(config.model)
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir)
    spec = config.task
    task = load_task(spec.name, spec.path)
    examples = task.subset(
        spec.start, None if spec.limit is None else spec.start + spec.limit
    ).examples
    if not examples:
        raise ValueError(f"{spec.path}: no examples after start={spec.start}")
    if config.method == "lora":
        model = _wrap_lora(model, config)

    summary = finetune(model, tokenizer, examples, config, run, resume)
    if config.method == "lora":
        model = model.merge_and_unload()  # full weights: W + (alpha / r) * B @ A
    save_model(model, config.output, tokenizer)
    results = {
        **summary,
        "method": config.method,
        "task": spec.name,
        "train_examples": len(examples),
        "expert_dir": str(config.output),
    }
    run.write_results(results)
    results["run_dir"] = str(run.path)
    return results
