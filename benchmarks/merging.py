"""Model-merging benchmark: quality of Sens-Merging on SmolLM2 experts, and the
speed and memory of the streaming merge engine against mergekit and the I/O bound.

Parts (``--parts``, comma-separated; each writes its own JSON file):

- ``speed``: three synthetic ~1B-parameter fp16 Llama-shaped experts plus a base
  are generated under ``--work``; a streaming TIES merge (density 0.5) with
  tamis is timed in a fresh process with its peak RSS, next to the time to read
  every input once and write one output once (cold: the inputs are evicted
  from the page cache with posix_fadvise first; warm: cached). The generated
  models are deleted afterwards. -> ``results/merging_speed.json``
- ``quality``: three LoRA experts of SmolLM2-135M-Instruct (merged into full
  weights) on GSM8K (math), SST-2 (sentiment) and extractive QA from the T0
  pairs; Sens-Merging's measuring pass; task arithmetic, TIES and DARE with
  uniform and Sens-Merging coefficients and each scaling alone; lambda and T
  chosen on validation loss; DARE over 3 seeds; test accuracy per task.
  -> ``results/merging_quality.json``
- ``mergekit``: the same TIES merge of the three experts with tamis and with
  mergekit 0.1.5 (installed into its own virtualenv under ``--work``), wall time
  and peak RSS of each, in fresh processes. -> ``results/merging_mergekit.json``

All timings are taken on a shared 2-core CPU machine and vary with its load.

Usage: ``python benchmarks/merging.py --data-dir ../shared/data --parts speed``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
SHARED_NOTE = "timings on a shared 2-core CPU machine (other jobs running); they vary"

# A Llama-shaped model of about 1.0B parameters (20 blocks, untied head).
SYNTH = {
    "vocab_size": 32000,
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 20,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
}


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


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``cmd`` in a fresh process; wall seconds and peak RSS (MiB).

    A small launcher process waits for the command and reports the largest
    resident set of its children, so each measurement starts from zero.
    """
    launcher = (
        "import resource, subprocess, sys, time, json\n"
        "t = time.perf_counter()\n"
        "rc = subprocess.run(sys.argv[1:]).returncode\n"
        "s = time.perf_counter() - t\n"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "out = {'rc': rc, 'seconds': s, 'peak_rss_mb': u.ru_maxrss / 1024,\n"
        "       'cpu_seconds': u.ru_utime + u.ru_stime}\n"
        "print('MEASURE ' + json.dumps(out))\n"
    )
    proc = subprocess.run(
        [PY, "-c", launcher, *cmd],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("MEASURE ")]
    if not lines:
        raise RuntimeError(f"measurement failed: {proc.stderr[-2000:]}")
    result = json.loads(lines[-1][len("MEASURE ") :])
    if result["rc"] != 0:
        raise RuntimeError(
            f"{cmd[:3]} failed (rc {result['rc']}): {proc.stderr[-3000:]}"
        )
    return result


def thread_env(args: argparse.Namespace) -> dict[str, str]:
    """Environment fixing the number of compute threads of a child process."""
    n = str(args.threads)
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}


def evict(paths: list[Path]) -> None:
    """Drop these files' pages from the page cache (only ours)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def model_files(model_dir: Path) -> list[Path]:
    return sorted(model_dir.glob("*.safetensors"))


def read_all(paths: list[Path]) -> float:
    """Seconds to read every byte of ``paths`` once (64 MiB reads)."""
    buf = bytearray(64 << 20)
    t = time.perf_counter()
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass
    return time.perf_counter() - t


def write_once(path: Path, nbytes: int) -> float:
    """Seconds to write ``nbytes`` to a new file and fsync it."""
    block = os.urandom(1 << 20) * 64  # 64 MiB
    t = time.perf_counter()
    with open(path, "wb", buffering=0) as fh:
        left = nbytes
        while left > 0:
            n = min(left, len(block))
            fh.write(memoryview(block)[:n])
            left -= n
        os.fsync(fh.fileno())
    seconds = time.perf_counter() - t
    path.unlink()
    return seconds


# Part "speed": synthetic 1B models.


def generate_synthetic(out: Path, seed: int, base: Path | None) -> None:
    """One fp16 model: random base weights, or base + small noise (an expert)."""
    import torch
    from transformers import LlamaConfig

    from tamis.llm.merging.io import SafetensorsSource, ShardedWriter, TensorSpec

    if (out / "model.safetensors").is_file():
        return
    cfg = LlamaConfig(**SYNTH, tie_word_embeddings=False, torch_dtype="float16")
    h, i, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    kv = h // cfg.num_attention_heads * cfg.num_key_value_heads
    shapes = {"model.embed_tokens.weight": (v, h)}
    for layer in range(cfg.num_hidden_layers):
        p = f"model.layers.{layer}."
        shapes |= {
            p + "input_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (h, h),
            p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h),
            p + "self_attn.o_proj.weight": (h, h),
            p + "post_attention_layernorm.weight": (h,),
            p + "mlp.gate_proj.weight": (i, h),
            p + "mlp.up_proj.weight": (i, h),
            p + "mlp.down_proj.weight": (h, i),
        }
    shapes |= {"model.norm.weight": (h,), "lm_head.weight": (v, h)}
    specs = [TensorSpec(n, s, torch.float16) for n, s in shapes.items()]
    tmp = out.with_name(out.name + ".tmp")
    writer = ShardedWriter(tmp, specs, 1 << 40)
    gen = torch.Generator().manual_seed(seed)
    src = SafetensorsSource(base) if base is not None else None
    for spec in specs:
        noise = torch.randn(spec.shape, generator=gen)
        if src is None:
            tensor = noise * 0.02
        else:
            tensor = src.read(spec.name).float() + noise * 0.002
        writer.write(spec.name, tensor.to(torch.float16))
        del noise, tensor
    writer.close()
    cfg.save_pretrained(tmp)
    os.replace(tmp, out)


def merge_yaml(
    path: Path,
    method: str,
    base: Path,
    experts: list[Path],
    out: Path,
    density: float = 0.5,
    extra: dict[str, Any] | None = None,
) -> Path:
    """An ``llm-merge`` config file for tamis."""
    import yaml

    cfg = {
        "kind": "llm-merge",
        "method": method,
        "base_model": str(base),
        "models": [{"model": str(e), "weight": 1.0} for e in experts],
        "parameters": {"scaling": 1.0, "density": density},
        "output": str(out),
        "overwrite": True,
        **(extra or {}),
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def part_speed(args: argparse.Namespace) -> None:
    work = args.work / "synthetic"
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    base = work / "base"
    generate_synthetic(base, 0, None)
    experts = [work / f"expert{i}" for i in range(3)]
    for k, e in enumerate(experts):
        generate_synthetic(e, k + 1, base)
    gen_seconds = time.perf_counter() - t
    inputs = [f for d in [base, *experts] for f in model_files(d)]
    in_bytes = sum(f.stat().st_size for f in inputs)
    out_bytes = sum(f.stat().st_size for f in model_files(base))
    print(f"generated 4 models ({in_bytes / 1e9:.2f} GB) in {gen_seconds:.0f} s")

    results: dict[str, Any] = {
        "models": {"config": SYNTH, "dtype": "float16", "input_bytes": in_bytes},
        "parameters_per_model": out_bytes // 2,
        "runs": [],
    }
    out = work / "merged"
    for method in args.speed_methods.split(","):
        cfg = merge_yaml(work / f"{method}.yaml", method, base, experts, out)
        for cache in args.speed_caches.split(","):
            if cache == "cold":
                evict(inputs)
            # I/O bound: read all inputs once + write the output once.
            read_s = read_all(inputs)
            if cache == "cold":
                evict(inputs)
            write_s = write_once(work / "io-probe.bin", out_bytes)
            if cache == "cold":
                evict(inputs)
            else:
                read_all(inputs)
            run = measure(
                [str(ROOT / ".venv/bin/tamis"), "-q", "llm", "merge", str(cfg)]
            )
            row = {
                "tool": "tamis",
                "threads": args.threads,
                "method": method,
                "density": 0.5,
                "cache": cache,
                "seconds": run["seconds"],
                "peak_rss_mb": run["peak_rss_mb"],
                "cpu_seconds": run["cpu_seconds"],
                "load_average_1min_after": os.getloadavg()[0],
                "read_inputs_s": read_s,
                "write_output_s": write_s,
                "io_bound_s": read_s + write_s,
                "ratio_to_io_bound": run["seconds"] / (read_s + write_s),
            }
            print(json.dumps(row))
            results["runs"].append(row)
            shutil.rmtree(out, ignore_errors=True)
            write_json(HERE / "results/merging_speed.json", results)
    if not args.keep:
        shutil.rmtree(work)
        results["deleted_after"] = True
    write_json(HERE / "results/merging_speed.json", results)


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


# Part "mergekit": the same TIES merge with tamis and mergekit 0.1.5.

MERGEKIT = "mergekit==0.1.5"


def mergekit_venv(work: Path) -> Path:
    """mergekit in its own virtualenv (torch 2.13.0 first); reused when present."""
    venv = work.parent / "mergekit-venv"
    exe = venv / "bin/mergekit-yaml"
    if exe.is_file():
        return exe
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin/pip"), "install", "-q"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run([*pip, MERGEKIT], check=True)
    return exe


def smollm2_family(work: Path, n_experts: int = 3) -> tuple[Path, list[Path]]:
    """SmolLM2-135M in bf16 and experts = base + a random rank-8 update per matrix.

    For timing and memory only the shapes and dtypes matter; the updates mimic
    merged LoRA adapters (rank 8 on every 2-D weight).
    """
    import torch

    from tamis.llm.merging.io import (
        SafetensorsSource,
        ShardedWriter,
        TensorSpec,
        copy_non_weight_files,
    )
    from tamis.text.models import packaged_smollm2_dir

    src_dir = packaged_smollm2_dir()
    src = SafetensorsSource(src_dir)
    dirs = [work / "smollm2-bf16"] + [
        work / f"smollm2-expert{i}" for i in range(n_experts)
    ]
    for k, out in enumerate(dirs):
        if (out / "model.safetensors").is_file():
            continue
        specs = [TensorSpec(n, src.specs[n].shape, torch.bfloat16) for n in src.names()]
        tmp = out.with_name(out.name + ".tmp")
        writer = ShardedWriter(tmp, specs, 1 << 40)
        gen = torch.Generator().manual_seed(k)
        for spec in specs:
            t = src.read(spec.name).float()
            if k > 0 and t.ndim == 2:
                a = torch.randn(t.shape[0], 8, generator=gen) * 0.01
                b = torch.randn(8, t.shape[1], generator=gen) * 0.01
                t = t + a @ b
            writer.write(spec.name, t.to(torch.bfloat16))
        writer.close()
        copy_non_weight_files(src_dir, tmp)
        cfg = json.loads((tmp / "config.json").read_text())
        cfg["torch_dtype"] = "bfloat16"
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
        os.replace(tmp, out)
    return dirs[0], dirs[1:]


def compare_outputs(a: Path, b: Path) -> dict[str, Any]:
    """How close two merged models are (same algorithm, two implementations)."""

    from tamis.llm.merging.io import SafetensorsSource

    sa, sb = SafetensorsSource(a), SafetensorsSource(b)
    equal = total = 0
    worst = 0.0
    for name in sa.names():
        if name not in sb.specs:
            continue
        x, y = sa.read(name).float(), sb.read(name).float()
        equal += int((x == y).sum())
        total += x.numel()
        worst = max(worst, float((x - y).abs().max()))
    return {
        "identical_fraction": equal / total,
        "max_abs_diff": worst,
        "compared": total,
    }


def part_mergekit(args: argparse.Namespace) -> None:
    import yaml

    work = args.work / "mergekit"
    work.mkdir(parents=True, exist_ok=True)
    exe = mergekit_venv(args.work)
    base, experts = smollm2_family(work)
    mk_cfg = work / "mergekit-ties.yml"
    mk_cfg.write_text(
        yaml.safe_dump(
            {
                "merge_method": "ties",
                "base_model": str(base),
                "models": [
                    {"model": str(e), "parameters": {"weight": 1.0, "density": 0.5}}
                    for e in experts
                ],
                "parameters": {"normalize": True},
                "dtype": "bfloat16",
            },
            sort_keys=False,
        )
    )
    tamis_cfg = merge_yaml(
        work / "tamis-ties.yaml", "ties", base, experts, work / "out-tamis"
    )
    results: dict[str, Any] = {
        "setup": {
            "models": "SmolLM2-135M bf16 base + 3 experts (random rank-8 updates)",
            "merge": "TIES, density 0.5, weights 1, lambda 1, bf16 output",
            "mergekit": MERGEKIT,
            "threads": args.threads,
        },
        "runs": [],
    }
    out_json = HERE / "results/merging_mergekit.json"
    tools = args.tools.split(",")
    if out_json.is_file() and tools != ["tamis", "mergekit"]:
        # Keep earlier rows of the tools not rerun now.
        old = json.loads(out_json.read_text())
        results["runs"] = [r for r in old["runs"] if r["tool"] not in tools]
    for rep in range(args.reps):
        for tool in tools:
            out = work / f"out-{tool}"
            shutil.rmtree(out, ignore_errors=True)
            if tool == "tamis":
                cmd = [
                    str(ROOT / ".venv/bin/tamis"),
                    "-q",
                    "llm",
                    "merge",
                    str(tamis_cfg),
                ]
            else:
                cmd = [str(exe), str(mk_cfg), str(out)]
            run = measure(cmd, env=thread_env(args))
            row = {
                "tool": tool,
                "rep": rep,
                **run,
                "load_1min": os.getloadavg()[0],
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            print(json.dumps(row), flush=True)
            results["runs"].append(row)
            write_json(out_json, results)
    results["agreement"] = compare_outputs(work / "out-tamis", work / "out-mergekit")
    for tool in ("tamis", "mergekit"):
        rows = [r for r in results["runs"] if r["tool"] == tool]
        results[f"{tool}_best"] = {
            "seconds": min(r["seconds"] for r in rows),
            "cpu_seconds": min(r["cpu_seconds"] for r in rows),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
        }
    write_json(out_json, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared/data")
    parser.add_argument("--work", type=Path, default=ROOT / "bench-work/merging")
    parser.add_argument("--parts", default="speed,quality,mergekit")
    parser.add_argument("--speed-methods", default="ties")
    parser.add_argument("--speed-caches", default="cold")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 avoids spin-waits)"
    )
    parser.add_argument("--keep", action="store_true", help="keep generated models")
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
    parser.add_argument("--reps", type=int, default=2, help="repeats per tool")
    parser.add_argument("--tools", default="tamis,mergekit", help="tools to (re)run")
    parser.add_argument("--tiny-base-steps", type=int, default=600)
    parser.add_argument("--tiny-expert-steps", type=int, default=300)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    (HERE / "results").mkdir(exist_ok=True)
    for part in args.parts.split(","):
        parts = {
            "speed": part_speed,
            "quality": part_quality,
            "quality-tiny": part_quality_tiny,
            "mergekit": part_mergekit,
        }
        parts[part](args)


if __name__ == "__main__":
    main()
