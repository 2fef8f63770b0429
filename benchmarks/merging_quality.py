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
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
SHARED_NOTE = "2-core CPU machine; the load average is recorded at the start and end"


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

TASKS = ("sst2", "offenseval", "gsm8k")
SCORE_NAMES = {
    "sst2": "accuracy",
    "offenseval": "accuracy",
    "gsm8k": "reference-solution token accuracy (teacher forced)",
}


def quality_tasks(data: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Train / calibration / validation / test examples of the three skills.

    Validation comes from each dataset's dev split (GSM8K: held-out training
    questions), test from its test split; both are shuffled with a fixed seed
    before the first n are taken. Calibration samples are the last training
    examples, which the experts never train on.
    """
    import random

    from tamis.llm.tasks import load_task

    llm = data / "llm"

    def shuffled(name: str, path: Path) -> list[Any]:
        examples = list(load_task(name, path).examples)
        random.Random(0).shuffle(examples)
        return examples

    sources = {
        "sst2": [llm / f"sst-2/clean/{s}.tsv" for s in ("train", "dev", "test")],
        "offenseval": [
            llm / f"offenseval/clean/{s}.tsv" for s in ("train", "dev", "test")
        ],
    }
    splits = {}
    for name, (train, dev, test) in sources.items():
        splits[name] = (
            shuffled(name, train),
            shuffled(name, dev)[: args.n_val],
            shuffled(name, test)[: args.n_test],
        )
    gsm_train = shuffled("gsm8k", llm / "gsm8k/train.jsonl")
    splits["gsm8k"] = (
        gsm_train[args.n_val_gsm8k :],
        gsm_train[: args.n_val_gsm8k],
        shuffled("gsm8k", llm / "gsm8k/test.jsonl")[: args.n_test_gsm8k],
    )
    out = {}
    for name in TASKS:
        train, val, test = splits[name]
        if len(train) < args.n_train + args.n_calib:
            raise ValueError(f"{name}: only {len(train)} training examples")
        out[name] = {
            "train": train[: args.n_train],
            "calibration": train[-args.n_calib :],
            "val": val,
            "test": test,
        }
    return out


def finetune_expert(
    base_dir: Path, task: str, train: list[Any], out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """LoRA-fine-tune SmolLM2 on one skill (reused when the expert exists).

    The run directory is fixed, so an interrupted fine-tuning resumes from its
    last checkpoint.
    """
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
        batch_size=args.ft_batch,
        max_length=args.max_length,
        lr=args.ft_lr,
        warmup_steps=max(1, args.ft_steps // 10),
        checkpoint_every=10,
        seed=0,
    )
    run_dir = args.work / "quality/runs" / f"finetune-{task}"
    resume = (run_dir / "run.json").is_file()
    if resume:
        run = Run.open(run_dir)
    else:
        run = Run.create(run_dir.parent, f"finetune-{task}", cfg, 0, path=run_dir)
    tokenizer = load_tokenizer(base_dir)
    model = _wrap_lora(load_model(base_dir), cfg)
    summary = finetune(model, tokenizer, train, cfg, run, resume=resume)
    save_model(model.merge_and_unload(), out, tokenizer)
    summary |= {"task": task, "train_examples": len(train)}
    summary |= {
        "lora_r": cfg.lora_r,
        "lora_alpha": cfg.lora_alpha,
        "lr": cfg.lr,
        "batch_size": cfg.batch_size,
        "max_length": cfg.max_length,
        "seconds_per_step": summary["seconds"]
        / max(1, cfg.steps - summary["resumed_from"]),
    }
    info.write_text(json.dumps(summary, indent=2))
    print(f"expert {task}: {json.dumps(summary)}", flush=True)
    return summary


def score_tasks(
    model: Any,
    tokenizer: Any,
    sets: dict[str, list[Any]],
    batch_size: int,
    max_length: int,
) -> dict[str, Any]:
    """Per-example scores of one model on every task's examples.

    Choice tasks: correct (0/1) and the gold label's log-likelihood. GSM8K: the
    fraction of reference-solution tokens that are the model's argmax under
    teacher forcing, and the solution's log-likelihood per token.
    """
    import torch

    from tamis.llm.tasks import choice_logprobs, target_token_stats

    out: dict[str, Any] = {}
    for name, examples in sets.items():
        if examples[0].choices:
            scores = choice_logprobs(model, tokenizer, examples, batch_size, max_length)
            per = [
                float(int(torch.argmax(s)) == e.label)
                for s, e in zip(scores, examples, strict=True)
            ]
            nll = [-float(s[e.label]) for s, e in zip(scores, examples, strict=True)]
            loss = sum(nll) / len(nll)
        else:
            stats = target_token_stats(
                model, tokenizer, examples, batch_size, max_length
            )
            per = (stats[:, 2] / stats[:, 1]).tolist()
            loss = float(-stats[:, 0].sum() / stats[:, 1].sum())
            nll = (-stats[:, 0] / stats[:, 1]).tolist()
        out[name] = {
            "n": len(examples),
            "score": sum(per) / len(per),
            "loss": loss,
            "per_example": [round(x, 5) for x in per],
            "nll_per_example": [round(x, 4) for x in nll],
        }
    return out


class Evaluator:
    """Loads states, merges in memory, scores; caches every result on disk."""

    def __init__(
        self,
        base_dir: Path,
        expert_dirs: list[Path],
        cache: Path,
        max_new_tokens: int = 96,
        batch_size: int = 8,
        max_length: int = 512,
    ) -> None:
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.max_length = max_length
        self.cached_only = False
        from safetensors.torch import load_file

        from tamis.llm.models import load_model, load_tokenizer

        self.base_state = load_file(str(base_dir / "model.safetensors"))
        self.expert_states = [
            load_file(str(d / "model.safetensors")) for d in expert_dirs
        ]
        self.model = load_model(base_dir)
        self.tokenizer = load_tokenizer(base_dir)
        self.cache_path = cache
        # Parallel workers each write their own cache; every one of them is read.
        self.cache = {}
        for other in sorted(cache.parent.glob("scores*.json")):
            if other != cache:
                self.cache |= json.loads(other.read_text())
        if cache.is_file():
            self.cache |= json.loads(cache.read_text())

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

    def score_examples(self, key: str, state_fn: Any, sets: dict[str, Any]) -> Any:
        """Per-example scores (see :func:`score_tasks`) of one state, cached."""
        if key in self.cache:
            return self.cache[key]
        if self.cached_only:
            raise LookupError(f"{key}: not scored yet")
        t = time.perf_counter()
        self.load(state_fn())
        load_s = time.perf_counter() - t
        result = score_tasks(
            self.model, self.tokenizer, sets, self.batch_size, self.max_length
        )
        result = {
            "tasks": result,
            "mean_score": sum(r["score"] for r in result.values()) / len(result),
            "mean_loss": sum(r["loss"] for r in result.values()) / len(result),
            "merge_seconds": load_s,
            "seconds": time.perf_counter() - t,
            "loadavg": os.getloadavg()[0],
        }
        self.cache[key] = result
        self._save()
        brief = {n: round(r["score"], 4) for n, r in result["tasks"].items()}
        print(
            f"{key}: {brief} loss={result['mean_loss']:.4f} ({result['seconds']:.0f}s)",
            flush=True,
        )
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


def sens_spread(measured: Any, variant: str, transform: str) -> float:
    """Median over layers of max_i - min_i of alpha_i^l * tau_i (the softmax logits).

    Read off log sigma at T = 1, whose differences between experts equal the
    differences of the logits. Temperatures are set relative to it.
    """
    import statistics

    sigma = sens_coefficients(measured, variant, transform, 1.0).sigma  # (K, G)
    spreads = [
        math.log(max(col)) - math.log(min(col)) for col in zip(*sigma, strict=True)
    ]
    return statistics.median(spreads)


def part_quality(args: argparse.Namespace) -> None:
    import torch

    from tamis.llm.merging import LayerCoefficients
    from tamis.llm.merging.sens import cross_task_scaling, layer_scaling
    from tamis.llm.merging.sens_measure import SensSettings, measure
    from tamis.llm.models import load_model, load_tokenizer
    from tamis.text.models import packaged_smollm2_dir

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    work = args.work / "quality"
    work.mkdir(parents=True, exist_ok=True)
    data = quality_tasks(args.data_dir, args)
    base_dir = packaged_smollm2_dir()
    results: dict[str, Any] = {
        "setup": {
            "base": "SmolLM2-135M-Instruct (packaged GGUF, dequantised to fp32)",
            "experts": "LoRA (r=8, alpha=16) on all linear layers of the blocks, "
            "merged into full fp32 weights",
            "tasks": {n: SCORE_NAMES[n] for n in TASKS},
            "splits": {n: {k: len(v) for k, v in d.items()} for n, d in data.items()},
            "finetune": {
                "steps": args.ft_steps,
                "batch_size": args.ft_batch,
                "lr": args.ft_lr,
                "max_length": args.max_length,
            },
            "selection": "lambda, T: lowest mean (over tasks) validation NLL of the "
            "gold answer; DARE selected with mask seed 0",
            "lambdas": args.lambdas,
            "temperature_factors": args.temperature_factors,
            "torch_threads": args.threads,
            "loadavg_start": os.getloadavg(),
        }
    }
    out_json = HERE / "results" / args.out

    # 1. Experts (``--expert-tasks`` trains only those, for parallel workers).
    if args.expert_tasks:
        for name in args.expert_tasks.split(","):
            finetune_expert(
                base_dir, name, data[name]["train"], work / f"expert-{name}", args
            )
        return
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
        settings = SensSettings(max_length=args.max_length)
        measured = measure(
            models, load_tokenizer(base_dir), calib, settings, list(TASKS)
        )
        measured.extra["seconds"] = time.perf_counter() - t
        measured.save(coef_file)
        del models
    measured = LayerCoefficients.load(coef_file)
    distances = torch.tensor(measured.extra["logit_distances"])
    results["sens_measure"] = {
        "seconds": measured.extra.get("seconds"),
        "calibration_samples": args.n_calib,
        "groups": measured.groups,
        "sensitivity": measured.extra["sensitivity"],
        "logit_distances": measured.extra["logit_distances"],
        "alpha_l2": measured.extra["alpha"],
        "tau_by_transform": {
            t: cross_task_scaling(distances, t).tolist()
            for t in ("raw", "neg", "inv", "exp_neg")
        },
        "alpha_softmax": layer_scaling(
            torch.tensor(measured.extra["sensitivity"]), "softmax"
        ).tolist(),
    }
    # How far the published temperatures (T = 2-6) move sigma from 1/K here.
    for temp in (2.0, 6.0):
        sig = sens_coefficients(measured, "full", "inv", temp).sigma
        results["sens_measure"][f"max_abs_sigma_minus_third_at_T{temp:g}"] = max(
            abs(x - 1 / len(TASKS)) for row in sig for x in row
        )
    write_json(out_json, results)

    ev = Evaluator(
        base_dir,
        experts,
        work / args.cache_name,
        batch_size=args.eval_batch,
        max_length=args.max_length,
    )

    # 3. References: the base and each expert on every task.
    tests = {n: d["test"] for n, d in data.items()}
    results["references"] = {}
    if not args.no_references:
        results["references"]["base"] = ev.score_examples(
            "test:base", lambda: ev.base_state, tests
        )
        for i, name in enumerate(TASKS):
            results["references"][f"expert-{name}"] = ev.score_examples(
                f"test:expert-{name}", lambda i=i: ev.expert_states[i], tests
            )
    results["table"] = quality_table(results)
    write_json(out_json, results)

    # 4. Validation search, then test, per method and variant (most important first).
    results["merges"] = {}
    ev.cached_only = args.cached_only
    for label, merge in merge_study_smol(ev, measured, data, args):
        results["merges"][label] = merge
        results["table"] = quality_table(results)
        results["paired"] = paired_differences(results)
        results["table_markdown"] = table_markdown(results["table"])
        results["loadavg_last"] = os.getloadavg()
        write_json(out_json, results)
    print(table_markdown(results["table"]))


def merge_jobs(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(method, variant, tau transform) in the order they are run."""
    methods = ("task_arithmetic", "ties", "dare_linear")
    jobs = [(m, v, "inv") for m in methods for v in ("uniform", "full")]
    for m in methods:
        jobs += [(m, "alpha", "inv"), (m, "tau", "inv")]
    jobs += [(m, "full", "raw") for m in methods]
    if args.jobs:
        wanted = set(args.jobs.split(","))
        jobs = [j for j in jobs if job_label(*j) in wanted]
    return jobs


def job_label(method: str, variant: str, transform: str) -> str:
    return f"{method}/{variant}" + (
        f"/{transform}" if variant in ("full", "tau") else ""
    )


METHOD_OPTIONS = {
    "task_arithmetic": {},
    "ties": {"density": 0.5},
    "dare_linear": {"drop": 0.5},
}


def merge_study_smol(
    ev: Evaluator, measured: Any, data: dict[str, Any], args: argparse.Namespace
) -> Any:
    """Yield (label, result) per merge: validation grid, then test of the best.

    lambda and T minimise the mean validation NLL of the gold answers. T is
    set relative to each variant's logit spread (the median over layers of
    max - min of alpha * tau), so the grid spans the same range of sigma for
    every variant: T = spread / factor.
    """
    vals = {n: d["val"] for n, d in data.items()}
    tests = {n: d["test"] for n, d in data.items()}
    for method, variant, transform in merge_jobs(args):
        label = job_label(method, variant, transform)
        try:
            yield (
                label,
                merge_one(ev, measured, method, variant, transform, args, vals, tests),
            )
        except LookupError as err:
            print(f"{label}: skipped ({err})", flush=True)


def merge_one(
    ev: Evaluator,
    measured: Any,
    method: str,
    variant: str,
    transform: str,
    args: argparse.Namespace,
    vals: dict[str, Any],
    tests: dict[str, Any],
) -> dict[str, Any]:
    """Validation grid of one (method, variant), then the test of its best setting."""
    from tamis.llm.merging import MergeParams

    label = job_label(method, variant, transform)
    opts = METHOD_OPTIONS[method]

    def params(lam: float, seed: int = 0, opts: dict = opts) -> Any:
        return MergeParams(
            scaling=lam,
            weights=[1.0] * len(TASKS),
            densities=[opts.get("density", 1.0)] * len(TASKS),
            drop_rates=[opts.get("drop", 0.0)] * len(TASKS),
            seed=seed,
        )

    spread = None if variant == "uniform" else sens_spread(measured, variant, transform)
    factors = [float(x) for x in args.temperature_factors.split(",")]
    lambdas = [float(x) for x in args.lambdas.split(",")]
    temps = [None] if spread is None else [spread / f for f in factors]
    grid = [(lam, temp) for temp in temps for lam in lambdas]

    # theta = theta_base + lambda * merged task vector for every method here, so
    # each (T, seed) is merged once at lambda = 1 and rescaled for the others.
    unit: dict[tuple[Any, int], dict[str, Any]] = {}

    def state(lam: float, temp: Any, seed: int, coef: Any) -> dict[str, Any]:
        if (temp, seed) not in unit:
            if len(unit) >= 2:
                unit.pop(next(iter(unit)))
            unit[(temp, seed)] = ev.merged(method, params(1.0, seed), coef)
        one = unit[(temp, seed)]
        return {n: b + lam * (one[n] - b) for n, b in ev.base_state.items()}

    val = {}
    for lam, temp in grid:
        coef = (
            None
            if temp is None
            else sens_coefficients(measured, variant, transform, temp)
        )
        key = f"val:{label}/lam={lam}/T={temp}"
        val[(lam, temp)] = ev.score_examples(
            key,
            lambda lam=lam, t=temp, c=coef: state(lam, t, 0, c),
            vals,
        )
    lam, temp = min(val, key=lambda k: val[k]["mean_loss"])
    coef = (
        None if temp is None else sens_coefficients(measured, variant, transform, temp)
    )
    seeds = range(args.dare_seeds) if method.startswith("dare") else [0]
    runs = [
        ev.score_examples(
            f"test:{label}/lam={lam}/T={temp}/seed={s}",
            lambda s=s: state(lam, temp, s, coef),
            tests,
        )
        for s in seeds
    ]
    return {
        "lambda": lam,
        "temperature": temp,
        "logit_spread": spread,
        "sigma_range": None
        if coef is None
        else [min(min(r) for r in coef.sigma), max(max(r) for r in coef.sigma)],
        "validation": {
            f"lam={k[0]}/T={k[1]}": {
                "mean_loss": v["mean_loss"],
                "mean_score": v["mean_score"],
                **{n: v["tasks"][n]["score"] for n in TASKS},
            }
            for k, v in val.items()
        },
        "test": runs,
    }


def _strip(run: dict[str, Any]) -> dict[str, Any]:
    return {n: r["per_example"] for n, r in run["tasks"].items()}


def row_examples(results: dict[str, Any], name: str) -> dict[str, list[float]]:
    """Per-example scores of a table row (DARE: mean over its mask seeds)."""
    if name in results.get("references", {}):
        return _strip(results["references"][name])
    runs = [_strip(r) for r in results["merges"][name]["test"]]
    return {
        n: [sum(v) / len(v) for v in zip(*(r[n] for r in runs), strict=True)]
        for n in runs[0]
    }


def mean_interval(values: list[float]) -> dict[str, float]:
    """Mean with a normal-approximation 95% interval over examples."""
    import statistics

    n = len(values)
    mean = statistics.fmean(values)
    half = 1.96 * statistics.stdev(values) / n**0.5 if n > 1 else float("nan")
    return {
        "mean": mean,
        "lo": mean - half,
        "hi": mean + half,
        "n": n,
        "var_mean": (half / 1.96) ** 2,
    }


def wilson(successes: float, n: int) -> dict[str, float]:
    """Wilson 95% interval of a binomial proportion."""
    z = 1.96
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {
        "mean": p,
        "lo": centre - half,
        "hi": centre + half,
        "n": n,
        "var_mean": p * (1 - p) / n,
    }


def quality_table(results: dict[str, Any]) -> dict[str, Any]:
    """Per-task test score with 95% interval and the average over tasks, per row.

    Binary per-example scores (one model, a choice task) get a Wilson interval;
    otherwise (GSM8K token accuracy, DARE averaged over seeds) a normal interval
    over examples. The average's interval combines the tasks' variances.
    """
    names = list(results.get("references", {})) + list(results.get("merges", {}))
    table = {}
    for name in names:
        per = row_examples(results, name)
        row = {}
        for task, values in per.items():
            binary = all(v in (0.0, 1.0) for v in values)
            row[task] = (
                wilson(sum(values), len(values)) if binary else mean_interval(values)
            )
        mean = sum(r["mean"] for r in row.values()) / len(row)
        half = 1.96 * math.sqrt(sum(r["var_mean"] for r in row.values())) / len(row)
        row["average"] = {"mean": mean, "lo": mean - half, "hi": mean + half}
        if name in results.get("merges", {}):
            merge = results["merges"][name]
            row["lambda"], row["temperature"] = merge["lambda"], merge["temperature"]
            if len(merge["test"]) > 1:
                avgs = [r["mean_score"] for r in merge["test"]]
                row["average_over_seeds"] = {
                    "min": min(avgs),
                    "max": max(avgs),
                    "n": len(avgs),
                }
        table[name] = row
    return table


def paired_differences(results: dict[str, Any]) -> dict[str, Any]:
    """Sens-Merging variant minus the uniform merge of the same method, per task.

    Differences are taken example by example on the same test items, with a
    normal 95% interval; the average combines the tasks.
    """
    out = {}
    for name in results.get("merges", {}):
        method, variant = name.split("/")[:2]
        uniform = f"{method}/uniform"
        if variant == "uniform" or uniform not in results["merges"]:
            continue
        a, b = row_examples(results, name), row_examples(results, uniform)
        row = {
            task: mean_interval([x - y for x, y in zip(a[task], b[task], strict=True)])
            for task in a
        }
        mean = sum(r["mean"] for r in row.values()) / len(row)
        half = 1.96 * math.sqrt(sum(r["var_mean"] for r in row.values())) / len(row)
        row["average"] = {"mean": mean, "lo": mean - half, "hi": mean + half}
        out[f"{name} - {uniform}"] = row
    return out


def table_markdown(table: dict[str, Any]) -> str:
    """The table as Markdown: score [95% interval] per task and on average."""
    cols = [*TASKS, "average"]
    lines = [
        "| model | " + " | ".join(cols) + " | lambda | T |",
        "|---" * (len(cols) + 3) + "|",
    ]
    for name, row in table.items():
        cells = [
            f"{row[c]['mean']:.3f} [{row[c]['lo']:.3f}, {row[c]['hi']:.3f}]"
            for c in cols
        ]
        lam = row.get("lambda", "")
        temp = row.get("temperature")
        temp_s = "" if temp is None else f"{temp:.3g}"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {lam} | {temp_s} |")
    return "\n".join(lines)


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
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument(
        "--ft-steps", type=int, default=40, help="LoRA steps per expert"
    )
    parser.add_argument("--ft-batch", type=int, default=8)
    parser.add_argument("--ft-lr", type=float, default=1e-3)
    parser.add_argument("--max-length", type=int, default=128, help="tokens per sample")
    parser.add_argument("--n-train", type=int, default=2000, help="train examples cap")
    parser.add_argument("--n-calib", type=int, default=16, help="calibration samples")
    parser.add_argument("--n-val", type=int, default=32)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--n-val-gsm8k", type=int, default=32)
    parser.add_argument("--n-test-gsm8k", type=int, default=30)
    parser.add_argument("--eval-batch", type=int, default=16)
    parser.add_argument("--lambdas", default="0.5,1.0,1.5")
    parser.add_argument(
        "--temperature-factors",
        default="1,3",
        help="SmolLM2 study: T = logit spread / factor",
    )
    parser.add_argument("--temperatures", default="0.1,1,4", help="tiny study")
    parser.add_argument("--extra-transforms", default="raw,neg,exp_neg")
    parser.add_argument("--jobs", default="", help="only these merge labels")
    parser.add_argument(
        "--expert-tasks", default="", help="only fine-tune these experts, then stop"
    )
    parser.add_argument(
        "--cache-name", default="scores.json", help="this worker's score cache"
    )
    parser.add_argument("--no-references", action="store_true")
    parser.add_argument(
        "--cached-only", action="store_true", help="table from cached scores only"
    )
    parser.add_argument("--out", default="merging_quality.json", help="results file")
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
