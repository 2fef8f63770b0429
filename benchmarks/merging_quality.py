"""Quality of Sens-Merging on merged experts.

Parts (``--parts``, comma-separated; each writes its own JSON file):

- ``quality``: three LoRA experts of SmolLM2-135M-Instruct (merged into full
  weights), Sens-Merging's measuring pass, then task arithmetic, TIES and DARE
  with uniform and Sens-Merging coefficients and each scaling alone; lambda and
  T chosen on validation data; DARE over 3 seeds; test scores per task.
  -> ``results/merging_quality.json``
- ``quality-tiny``: the same study on tiny byte-level models and generated
  skills, over several seeds. -> ``results/merging_quality_tiny.json``

Every expert, coefficient file and evaluation is cached under ``--work`` so an
interrupted run resumes where it stopped.

Usage: ``python benchmarks/merging_quality.py --data-dir ../shared/data``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
SHARED_NOTE = "timings on a shared 2-core CPU machine (other jobs running); they vary"


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` with the command line and date, atomically."""
    payload = {
        "command": " ".join([Path(PY).name, *sys.argv]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine_note": SHARED_NOTE,
        **payload,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    os.replace(tmp, path)
    print(f"wrote {path}")


# Part "quality": SmolLM2 LoRA experts, Sens-Merging vs uniform merges.

TASKS = ("gsm8k", "sst2", "qa")
QA_FILES = ("dbert", "dbidaf", "droberta")


def quality_tasks(data: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Train / calibration / validation / test examples of the three skills."""
    import random

    from tamis.llm.tasks import Task, load_task

    llm = data / "llm"
    gsm_train = load_task("gsm8k", llm / "gsm8k/train.jsonl").examples
    gsm_test = load_task("gsm8k", llm / "gsm8k/test.jsonl").examples
    sst_train = load_task("sst2", llm / "sst-2/clean/train.tsv").examples
    sst_dev = load_task("sst2", llm / "sst-2/clean/dev.tsv").examples
    sst_test = load_task("sst2", llm / "sst-2/clean/test.tsv").examples
    qa: list[Any] = []
    for name in QA_FILES:
        path = (
            llm
            / f"self-instruct/t0-50k/adversarial_qa_{name}_answer_the_following_q.jsonl"
        )
        qa += load_task("jsonl", path).examples
    random.Random(0).shuffle(qa)
    nv, nt = args.n_val, args.n_test
    splits = {
        "gsm8k": (
            "exact_number",
            gsm_train[nv:],
            gsm_train[:nv],
            gsm_test[: args.n_test_gsm8k],
        ),
        "sst2": ("choice", sst_train, sst_dev[:nv], sst_test[:nt]),
        "qa": ("exact_match", qa[nv + nt :], qa[:nv], qa[nv : nv + nt]),
    }
    out = {}
    for name, (metric, train, val, test) in splits.items():
        out[name] = {
            "train": train,
            "calibration": train[-args.n_calib :],  # disjoint from val and test
            "val": val,
            "test": Task(name, metric, list(test)),
        }
    return out


def finetune_expert(
    base_dir: Path, task: str, train: list[Any], out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """LoRA-fine-tune SmolLM2 on one skill (reused when the expert exists)."""
    from tamis.core.runs import Run
    from tamis.llm.config import FinetuneConfig, TaskSpec
    from tamis.llm.finetune import _wrap_lora, finetune
    from tamis.llm.models import load_model, load_tokenizer, save_model

    info = out / "tamis_finetune.json"
    if info.is_file():
        return json.loads(info.read_text())
    cfg = FinetuneConfig(
        model=str(base_dir),
        task=TaskSpec(name="jsonl", path=Path("unused")),
        output=out,
        method="lora",
        steps=args.ft_steps,
        batch_size=4,
        max_length=256,
        lr=args.ft_lr,
        warmup_steps=max(1, args.ft_steps // 10),
        seed=0,
    )
    run = Run.create(args.work / "runs", f"finetune-{task}", cfg, 0)
    tokenizer = load_tokenizer(base_dir)
    model = _wrap_lora(load_model(base_dir), cfg)
    summary = finetune(model, tokenizer, train[: args.n_train], cfg, run)
    save_model(model.merge_and_unload(), out, tokenizer)
    summary |= {"task": task, "train_examples": min(len(train), args.n_train)}
    summary |= {"lora_r": cfg.lora_r, "lr": cfg.lr, "batch_size": 4, "max_length": 256}
    info.write_text(json.dumps(summary, indent=2))
    print(f"expert {task}: {json.dumps(summary)}")
    return summary


class Evaluator:
    """Loads states, merges in memory, scores; caches every result on disk."""

    def __init__(
        self,
        base_dir: Path,
        expert_dirs: list[Path],
        cache: Path,
        max_new_tokens: int = 96,
        batch_size: int = 8,
    ) -> None:
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        from safetensors.torch import load_file

        from tamis.llm.models import load_model, load_tokenizer

        self.base_state = load_file(str(base_dir / "model.safetensors"))
        self.expert_states = [
            load_file(str(d / "model.safetensors")) for d in expert_dirs
        ]
        self.model = load_model(base_dir)
        self.tokenizer = load_tokenizer(base_dir)
        self.cache_path = cache
        self.cache = json.loads(cache.read_text()) if cache.is_file() else {}

    def _save(self) -> None:
        tmp = self.cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.cache, indent=1))
        os.replace(tmp, self.cache_path)

    def load(self, state: dict[str, Any]) -> None:
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"lm_head.weight"}:
            raise RuntimeError(f"state mismatch: {missing[:3]} {unexpected[:3]}")
        self.model.tie_weights()

    def merged(self, method: str, params: Any, coefficients: Any) -> dict[str, Any]:
        from tamis.llm.merging import merge_state_dicts

        return merge_state_dicts(
            method, self.base_state, self.expert_states, params, coefficients
        )

    def score(self, key: str, state_fn: Any, kind: str, data: dict[str, Any]) -> Any:
        """Validation loss (kind=val) or test accuracies (kind=test), cached."""
        from tamis.llm.evaluate import evaluate_model
        from tamis.llm.tasks import answer_loss

        full = f"{kind}:{key}"
        if full in self.cache:
            return self.cache[full]
        t = time.perf_counter()
        self.load(state_fn())
        if kind == "val":
            losses = {
                n: answer_loss(self.model, self.tokenizer, d["val"], self.batch_size)
                for n, d in data.items()
            }
            result: Any = {
                "losses": losses,
                "mean_loss": sum(losses.values()) / len(losses),
            }
        else:
            tasks = [d["test"] for d in data.values()]
            result = evaluate_model(
                self.model, self.tokenizer, tasks, self.batch_size, self.max_new_tokens
            )
        result["seconds"] = time.perf_counter() - t
        self.cache[full] = result
        self._save()
        print(f"{full}: {json.dumps(result)[:300]}", flush=True)
        return result


def sens_coefficients(
    measured: Any, variant: str, transform: str, temperature: float
) -> Any:
    """sigma for a variant (full, alpha, tau) from the stored measurements."""
    import torch

    from tamis.llm.merging import LayerCoefficients
    from tamis.llm.merging.sens import cross_task_scaling, layer_scaling, sens_sigma

    k, g = len(measured.models), len(measured.groups)
    alpha = layer_scaling(torch.tensor(measured.extra["sensitivity"]), "l2")
    tau = cross_task_scaling(torch.tensor(measured.extra["logit_distances"]), transform)
    sigma = sens_sigma(
        alpha if variant in ("full", "alpha") else None,
        tau if variant in ("full", "tau") else None,
        temperature,
        k,
        g,
    )
    return LayerCoefficients(measured.groups, measured.models, sigma.tolist())


def part_quality(args: argparse.Namespace) -> None:
    import torch

    from tamis.llm.merging import LayerCoefficients
    from tamis.llm.merging.sens_measure import SensSettings, measure
    from tamis.llm.models import load_model, load_tokenizer
    from tamis.text.models import packaged_smollm2_dir

    torch.manual_seed(0)
    work = args.work / "quality"
    work.mkdir(parents=True, exist_ok=True)
    data = quality_tasks(args.data_dir, args)
    base_dir = packaged_smollm2_dir()
    results: dict[str, Any] = {
        "setup": {
            "base": "SmolLM2-135M-Instruct (packaged GGUF, dequantised to fp32)",
            "experts": "LoRA on all linear layers, merged into full fp32 weights",
            "splits": {
                n: {
                    k: len(v) if isinstance(v, list) else len(v.examples)
                    for k, v in d.items()
                }
                for n, d in data.items()
            },
            "finetune": {
                "steps": args.ft_steps,
                "lr": args.ft_lr,
                "train_cap": args.n_train,
            },
            "selection": "lambda, T: lowest mean answer-token loss on validation",
            "test_generation": "greedy, at most 96 new tokens",
        }
    }
    out_json = HERE / "results/merging_quality.json"

    # 1. Experts.
    experts = []
    for name in TASKS:
        d = work / f"expert-{name}"
        results.setdefault("experts", {})[name] = finetune_expert(
            base_dir, name, data[name]["train"], d, args
        )
        experts.append(d)
    write_json(out_json, results)

    # 2. Sens-Merging measuring pass (once; variants are recomputed from it).
    coef_file = work / "sens-measured.json"
    if not coef_file.is_file():
        t = time.perf_counter()
        models = [load_model(d) for d in experts]
        calib = [data[n]["calibration"] for n in TASKS]
        measured = measure(
            models, load_tokenizer(base_dir), calib, SensSettings(), list(TASKS)
        )
        measured.extra["seconds"] = time.perf_counter() - t
        measured.save(coef_file)
        del models
    measured = LayerCoefficients.load(coef_file)
    results["sens_measure"] = {
        "seconds": measured.extra.get("seconds"),
        "calibration_samples": args.n_calib,
        "groups": measured.groups,
        "sensitivity": measured.extra["sensitivity"],
        "logit_distances": measured.extra["logit_distances"],
        "alpha_l2": measured.extra["alpha"],
    }
    from tamis.llm.merging.sens import cross_task_scaling, layer_scaling

    results["sens_measure"]["tau_by_transform"] = {
        t: cross_task_scaling(
            torch.tensor(measured.extra["logit_distances"]), t
        ).tolist()
        for t in ("raw", "neg", "inv", "exp_neg")
    }
    results["sens_measure"]["alpha_softmax"] = layer_scaling(
        torch.tensor(measured.extra["sensitivity"]), "softmax"
    ).tolist()
    write_json(out_json, results)

    ev = Evaluator(base_dir, experts, work / "scores.json")

    # 3. Bounds: the base and each expert on every task.
    results["bounds"] = {"base": ev.score("base", lambda: ev.base_state, "test", data)}
    for i, name in enumerate(TASKS):
        results["bounds"][f"expert-{name}"] = ev.score(
            f"expert-{name}", lambda i=i: ev.expert_states[i], "test", data
        )
    write_json(out_json, results)

    # 4. Validation search, then test, per method and variant.
    results["merges"] = merge_study(ev, measured, data, args)
    write_json(out_json, results)


def merge_study(
    ev: Evaluator, measured: Any, data: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    """TA, TIES and DARE with uniform and Sens-Merging coefficients and ablations.

    lambda (and T) are chosen by the mean validation answer loss; the chosen
    setting is scored on test (DARE once per seed).
    """
    from tamis.llm.merging import MergeParams

    lambdas = [float(x) for x in args.lambdas.split(",")]
    temps = [float(x) for x in args.temperatures.split(",")]
    methods = {
        "task_arithmetic": {},
        "ties": {"density": 0.5},
        "dare_linear": {"drop": 0.5},
    }
    variants = [("uniform", "inv")] + [(v, "inv") for v in ("full", "alpha", "tau")]
    variants += [("full", t) for t in args.extra_transforms.split(",") if t]
    merges: dict[str, Any] = {}
    for method, opts in methods.items():
        for variant, transform in variants:
            label = f"{method}/{variant}" + (
                f"/{transform}" if variant in ("full", "tau") else ""
            )
            if label in merges:
                continue

            def params(lam: float, seed: int = 0, opts: dict = opts) -> Any:
                return MergeParams(
                    scaling=lam,
                    weights=[1.0] * 3,
                    densities=[opts.get("density", 1.0)] * 3,
                    drop_rates=[opts.get("drop", 0.0)] * 3,
                    seed=seed,
                )

            grid = (
                [(lam, None) for lam in lambdas]
                if variant == "uniform"
                else [(lam, t) for lam in lambdas for t in temps]
            )
            val = {}
            for lam, temp in grid:
                coef = (
                    None
                    if temp is None
                    else sens_coefficients(measured, variant, transform, temp)
                )
                key = f"{label}/lam={lam}/T={temp}"
                val[key] = ev.score(
                    key,
                    lambda lam=lam, coef=coef, m=method: ev.merged(
                        m, params(lam), coef
                    ),
                    "val",
                    data,
                )["mean_loss"]
            best = min(val, key=val.get)
            lam = float(best.split("/lam=")[1].split("/")[0])
            temp_s = best.split("/T=")[1]
            temp = None if temp_s == "None" else float(temp_s)
            coef = (
                None
                if temp is None
                else sens_coefficients(measured, variant, transform, temp)
            )
            seeds = range(args.dare_seeds) if method.startswith("dare") else [0]
            tests = [
                ev.score(
                    f"{label}/lam={lam}/T={temp}/seed={s}",
                    lambda s=s, m=method, lam=lam, c=coef: ev.merged(
                        m, params(lam, s), c
                    ),
                    "test",
                    data,
                )
                for s in seeds
            ]
            merges[label] = {
                "lambda": lam,
                "temperature": temp,
                "validation_mean_loss": val,
                "test": tests,
                "test_mean_accuracy": {
                    name: sum(t["tasks"][name]["accuracy"] for t in tests) / len(tests)
                    for name in data
                },
            }
    return merges


# Part "quality-tiny": the same study on tiny byte-level models and generated skills.


def ci95(values: list[float]) -> dict[str, float]:
    """Mean and half-width of a 95% t-interval."""
    import statistics

    t975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31}
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return {"mean": mean, "ci95": float("nan"), "n": n}
    half = t975.get(n - 1, 2.0) * statistics.stdev(values) / n**0.5
    return {"mean": mean, "ci95": half, "n": n}


def part_quality_tiny(args: argparse.Namespace) -> None:
    import torch

    from tamis.llm.demo import train_full
    from tamis.llm.merging import LayerCoefficients
    from tamis.llm.merging.sens_measure import SensSettings, measure
    from tamis.llm.models import (
        ByteTokenizer,
        load_model,
        save_model,
        tiny_llama,
        tiny_llama_config,
    )
    from tamis.llm.synthetic import SKILLS, skill_tasks

    torch.set_num_threads(1)  # tiny models: a second thread only spin-waits
    out_json = HERE / "results/merging_quality_tiny.json"
    results: dict[str, Any] = {
        "setup": {
            "model": "random Llama, byte tokens, hidden 64, 2 blocks, ~0.1M params",
            "skills": "add (a+b, a,b<50), reverse (3-6 letters), recall (48-key table)",
            "base": f"pre-trained {args.tiny_base_steps} steps on the mixture",
            "experts": f"full fine-tuning, {args.tiny_expert_steps} steps per skill",
            "calibration": "16 training samples per skill",
            "selection": "lambda, T: lowest mean answer-token loss on validation",
            "metric": "exact match of a greedy generation (8 new tokens), 96 tests",
        },
        "per_seed": {},
    }
    for seed in range(args.tiny_seeds):
        work = args.work / f"quality-tiny/seed{seed}"
        work.mkdir(parents=True, exist_ok=True)
        tasks = skill_tasks(seed=seed, n_train=1200, n_val=32, n_test=96)
        data = {
            s: {"val": tasks[s]["val"].examples, "test": tasks[s]["test"]}
            for s in SKILLS
        }
        t = time.perf_counter()
        base = work / "base"
        if not (base / "config.json").is_file():
            config = tiny_llama_config(
                hidden_size=64, num_layers=2, intermediate_size=128
            )
            rnd = save_model(
                tiny_llama(config, seed=seed), work / "random", ByteTokenizer()
            )
            mixture = [e for s in SKILLS for e in tasks[s]["train"].examples]
            train_full(
                rnd, mixture, base, args.tiny_base_steps, work / "runs", seed=seed
            )
        experts = []
        for i, s in enumerate(SKILLS):
            d = work / f"expert-{s}"
            if not (d / "config.json").is_file():
                train_full(
                    base,
                    tasks[s]["train"].examples,
                    d,
                    args.tiny_expert_steps,
                    work / "runs",
                    lr=1e-3,
                    seed=seed * 10 + i,
                )
            experts.append(d)
        train_s = time.perf_counter() - t
        coef_file = work / "sens-measured.json"
        if not coef_file.is_file():
            models = [load_model(d) for d in experts]
            calib = [tasks[s]["train"].examples[:16] for s in SKILLS]
            measured = measure(
                models, ByteTokenizer(), calib, SensSettings(), list(SKILLS)
            )
            measured.save(coef_file)
        measured = LayerCoefficients.load(coef_file)
        ev = Evaluator(
            base, experts, work / "scores.json", max_new_tokens=8, batch_size=64
        )
        bounds = {"base": ev.score("base", lambda e=ev: e.base_state, "test", data)}
        for i, s in enumerate(SKILLS):
            bounds[f"expert-{s}"] = ev.score(
                f"expert-{s}", lambda i=i, e=ev: e.expert_states[i], "test", data
            )
        merges = merge_study(ev, measured, data, args)
        results["per_seed"][seed] = {
            "train_seconds": train_s,
            "groups": measured.groups,
            "alpha_l2": measured.extra["alpha"],
            "logit_distances": measured.extra["logit_distances"],
            "bounds": {
                k: {n: v["tasks"][n]["accuracy"] for n in SKILLS}
                for k, v in bounds.items()
            },
            "merges": {
                k: {
                    "lambda": v["lambda"],
                    "temperature": v["temperature"],
                    **v["test_mean_accuracy"],
                }
                for k, v in merges.items()
            },
        }
        results["summary"] = summarise_seeds(results["per_seed"], SKILLS)
        write_json(out_json, results)


def summarise_seeds(
    per_seed: dict[Any, Any], skills: tuple[str, ...]
) -> dict[str, Any]:
    """Mean +- 95% CI over seeds of every model's per-skill and mean accuracy."""
    rows: dict[str, dict[str, list[float]]] = {}
    for run in per_seed.values():
        for name, acc in [*run["bounds"].items(), *run["merges"].items()]:
            row = rows.setdefault(name, {s: [] for s in (*skills, "mean")})
            for s in skills:
                row[s].append(acc[s])
            row["mean"].append(sum(acc[s] for s in skills) / len(skills))
    return {name: {k: ci95(v) for k, v in row.items()} for name, row in rows.items()}


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the quality study."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared/data")
    parser.add_argument("--work", type=Path, default=ROOT / "bench-work/merging")
    parser.add_argument("--parts", default="quality")
    parser.add_argument(
        "--ft-steps", type=int, default=60, help="LoRA steps per expert"
    )
    parser.add_argument("--ft-lr", type=float, default=5e-4)
    parser.add_argument("--n-train", type=int, default=2000, help="train examples cap")
    parser.add_argument("--n-calib", type=int, default=16, help="calibration samples")
    parser.add_argument("--n-val", type=int, default=32)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--n-test-gsm8k", type=int, default=30)
    parser.add_argument("--lambdas", default="0.5,1.0,1.5")
    parser.add_argument("--temperatures", default="0.1,1,4")
    parser.add_argument("--extra-transforms", default="raw,neg,exp_neg")
    parser.add_argument("--dare-seeds", type=int, default=3)
    parser.add_argument("--tiny-seeds", type=int, default=5)
    parser.add_argument("--tiny-base-steps", type=int, default=600)
    parser.add_argument("--tiny-expert-steps", type=int, default=300)
    return parser


PARTS = {"quality": part_quality, "quality-tiny": part_quality_tiny}


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    (HERE / "results").mkdir(exist_ok=True)
    for part in args.parts.split(","):
        PARTS[part](args)


if __name__ == "__main__":
    main()
