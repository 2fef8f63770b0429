"""A toy training process for the kill-and-resume tests (run as a subprocess).

Usage: python toy_train.py RUN_DIR STEPS [--resume] [--sleep SECONDS]

It trains a small MLP with dropout on shuffled synthetic data, so that the model,
the AdamW state, the global torch RNG (dropout) and a named generator (shuffling)
must all be restored for a resumed run to match an uninterrupted one bit for bit.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from tamis.core.checkpoint import (
    capture_training_state,
    latest_checkpoint,
    restore_training_state,
    save_checkpoint,
)
from tamis.core.config import param
from tamis.core.runs import Run


@dataclass
class ToyConfig:
    steps: int = param(40, "training steps", ge=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("steps", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--sleep", type=float, default=0.0)
    args = parser.parse_args()

    if args.resume:
        run = Run.open(args.run_dir)
    else:
        run = Run.create(
            args.run_dir.parent, "toy", ToyConfig(args.steps), seed=7, path=args.run_dir
        )
    torch.manual_seed(run.seed)
    x = torch.randn(64, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(64, 1)
    model = torch.nn.Sequential(
        torch.nn.Linear(8, 16),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.3),
        torch.nn.Linear(16, 1),
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    shuffle = torch.Generator().manual_seed(1)
    noise = np.random.default_rng(3)
    gens = {"shuffle": shuffle, "noise": noise}

    start = 0
    if args.resume:
        ckpt = latest_checkpoint(run.checkpoint_dir)
        if ckpt is not None:
            restore_training_state(ckpt, model, opt, gens)
            start = ckpt.state["next_step"]
            run.metrics.truncate_after(start - 1)

    for step in range(start, args.steps):
        idx = torch.randperm(64, generator=shuffle)[:16]
        jitter = torch.from_numpy(noise.normal(0, 0.01, size=(16, 1))).float()
        loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx] + jitter)
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.log_metrics(step, loss=loss.item())
        tensors, state = capture_training_state(model, opt, gens)
        state["next_step"] = step + 1
        save_checkpoint(run.checkpoint_dir, step, tensors, state)
        print(f"step {step}", flush=True)
        if args.sleep:
            time.sleep(args.sleep)

    final = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(final, str(run.path / "final.safetensors"))
    run.write_results({"steps": args.steps})
    print("done", flush=True)


if __name__ == "__main__":
    sys.exit(main())
