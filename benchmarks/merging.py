"""Model-merging benchmark: quality of Sens-Merging on SmolLM2 experts, and the
speed and memory of the streaming merge engine against mergekit and the I/O bound.

Parts (``--parts``, comma-separated; each writes its own JSON file):

- ``speed``: three synthetic ~1B-parameter fp16 Llama-shaped experts plus a base
  are generated under ``--work``; streaming merges (``--speed-methods``, TIES
  at density 0.5 with the eager kernels, ``compile: false``; ``ties+compile``
  with ``compile: true``, the C kernels where a C compiler is present, else
  torch.compile) with tamis
  are timed in fresh processes with ``--threads``
  worker threads, with peak RSS and CPU seconds, each between two
  measurements of the I/O bound (read every input of that method once, write
  one output once and fsync) in the same cache state (cold: the inputs are
  evicted from the page cache with posix_fadvise first; warm: read once
  before). Each row also has the engine's own seconds (from the output's
  ``tamis_merge.json``: inputs opened to output renamed), and ``startup_s`` is
  the fastest of three ``tamis -q llm merge --help`` runs, the start-up every
  merge command pays. An in-process profile of the merge's phases on two decoder blocks
  gives the compute cost per parameter. The generated models are deleted
  afterwards unless ``--keep``. -> ``results/merging_speed.json``
- ``profile``: only that profile, on the models a ``speed --keep`` run left,
  written into ``results/merging_speed.json`` next to its merges.
- ``quality`` and ``quality-tiny``: the Sens-Merging quality studies, which live
  in ``merging_quality.py``; these part names dispatch to it, passing on the
  options this script does not know.
- ``mergekit``: the same TIES merge of the three experts with tamis and with
  mergekit 0.1.5 (installed into its own virtualenv under ``--work``), wall time
  and peak RSS of each, in fresh processes; tamis with its default kernels
  (``compile: auto``). -> ``results/merging_mergekit.json``

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
SHARED_NOTE = "2-core CPU machine; each timing records the load average around it"

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


def io_bound(inputs: list[Path], out_bytes: int, cache: str, probe: Path) -> dict:
    """Seconds to read ``inputs`` once and write ``out_bytes`` once (fsync)."""
    if cache == "cold":
        evict(inputs)
    else:
        read_all(inputs)  # warm the page cache first
    read_s = read_all(inputs)
    write_s = write_once(probe, out_bytes)
    return {"read_s": read_s, "write_s": write_s, "total_s": read_s + write_s}


def ms_dtype(models: list[Any], name: str) -> Any:
    """Storage dtype of tensor ``name`` in the experts."""
    return models[0].specs[name].dtype


def compute_profile(
    base: Path, experts: list[Path], threads: int, blocks: tuple[int, ...] = (3, 4)
) -> dict[str, Any]:
    """Per-parameter cost of each phase of the merge, inputs in memory.

    Runs the engine's own pieces (read, TIES thresholds, fused kernels) with
    ``threads`` workers on the tensors of a few decoder blocks, after one warm
    read, and reports wall and CPU nanoseconds per parameter.
    """
    import zlib

    import torch

    from tamis.llm.merging import MERGE_METHODS, MergeParams
    from tamis.llm.merging.engine import MergePlan, _Pool, _Streamer
    from tamis.llm.merging.io import SafetensorsSource
    from tamis.llm.merging.selection import sample_size

    torch.set_num_threads(1)
    src = SafetensorsSource(base)
    models = [SafetensorsSource(e) for e in experts]
    names = [n for n in src.names() if any(f"layers.{b}." in n for b in blocks)]
    params = MergeParams(scaling=1.0, weights=[1.0] * 3, densities=[0.5] * 3)
    pool = _Pool(threads)
    rows: dict[str, dict[str, float]] = {}
    total = sum(src.specs[n].numel for n in names)

    def timed(label: str, fn: Any) -> None:
        w, c = time.perf_counter(), time.process_time()
        fn()
        w, c = time.perf_counter() - w, time.process_time() - c
        rows[label] = {
            "wall_ns_per_param": w / total * 1e9,
            "cpu_ns_per_param": c / total * 1e9,
        }

    def streamer(method: str) -> Any:
        plan = MergePlan(method=method, base=base, models=experts, params=params)
        return _Streamer(plan, MERGE_METHODS.get(method), src, models, None, pool)

    ties = streamer("ties")
    for n in names:  # warm the page cache
        ties.read(n)
    data: dict[str, Any] = {}
    timed(
        "read (page cache -> memory)",
        lambda: data.update({n: ties.read(n) for n in names}),
    )
    stats: dict[str, Any] = {}

    def thresholds() -> None:
        for n in names:
            b, ms = data[n]
            k = b.numel()
            gen = torch.Generator().manual_seed(zlib.crc32(n.encode()))
            idx = torch.randint(k, (sample_size(k),), generator=gen)
            stats[n] = {
                "thresholds": ties.thresholds(
                    n,
                    k,
                    params,
                    lambda b=b, ms=ms, idx=idx: (b[idx], [m[idx] for m in ms]),
                    lambda b=b, ms=ms: iter([(b, ms)]),
                )
            }

    timed("ties thresholds (sample + counting pass)", thresholds)
    for method in ("ties", "task_arithmetic", "linear"):
        st = streamer(method)

        def combine(st: Any = st, method: str = method) -> None:
            for n in names:
                b, ms = data[n]
                out = torch.empty(b.numel(), dtype=b.dtype)
                st.combine(n, params, stats.get(n, {}), b, ms, out, 0)

        timed(f"{method} fused kernel", combine)

    # The same TIES phases with the compiled kernels (compile time excluded).
    from tamis.llm.merging.compiled import CompiledTies

    w = time.perf_counter()
    ties.compiled = CompiledTies(
        len(models), src.specs[names[0]].dtype, ms_dtype(models, names[0])
    )
    compile_s = time.perf_counter() - w
    eager_stats = dict(stats)
    timed("ties thresholds, compiled", thresholds)
    if stats != eager_stats:
        raise RuntimeError("compiled thresholds differ from the eager ones")

    def compiled_combine() -> None:
        for n in names:
            b, ms = data[n]
            out = torch.empty(b.numel(), dtype=b.dtype)
            ties.combine(n, params, stats[n], b, ms, out, 0)

    timed("ties fused kernel, compiled", compiled_combine)

    # The same TIES phases with the C kernels (build time excluded).
    from tamis.llm.merging.native import load_native

    w = time.perf_counter()
    ties.compiled, ties.native = None, load_native()
    native_s = time.perf_counter() - w
    timed("ties thresholds, native", thresholds)
    if stats != eager_stats:
        raise RuntimeError("native thresholds differ from the eager ones")
    timed("ties fused kernel, native", compiled_combine)
    pool.close()
    rows["native build or load seconds (not per parameter)"] = {"seconds": native_s}
    rows["compile seconds (not per parameter)"] = {"seconds": compile_s}
    return {"threads": threads, "parameters": total, "tensors": names, "phases": rows}


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
    all_inputs = [f for d in [base, *experts] for f in model_files(d)]
    out_bytes = sum(f.stat().st_size for f in model_files(base))
    print(f"models ready in {gen_seconds:.0f} s")

    results: dict[str, Any] = {
        "models": {
            "config": SYNTH,
            "dtype": "float16",
            "input_bytes": sum(f.stat().st_size for f in all_inputs),
        },
        "parameters_per_model": out_bytes // 2,
        "threads": args.threads,
        "timing": "fresh process per merge, normal priority, under the shared "
        "timing lock; I/O bound measured just before and just after each merge",
        "runs": [],
    }
    out_json = HERE / "results/merging_speed.json"
    out = work / "merged"
    # What every merge command pays before merging: Python, torch, the CLI.
    results["startup_s"] = min(
        measure([str(ROOT / ".venv/bin/tamis"), "-q", "llm", "merge", "--help"])[
            "seconds"
        ]
        for _ in range(3)
    )
    for entry in args.speed_methods.split(","):
        # "ties+compile": the same merge with the compiled kernels.
        method, _, option = entry.partition("+")
        # Plain "ties" is the eager kernels (compile: false), "ties+compile"
        # the C ones (compile: true, torch.compile where C cannot be built).
        extra = {"compile": option == "compile"}
        # Linear merges full weights: it never reads the base.
        dirs = experts if method == "linear" else [base, *experts]
        inputs = [f for d in dirs for f in model_files(d)]
        cfg = merge_yaml(
            work / f"{entry}.yaml", method, base, experts, out, extra=extra
        )
        for cache in args.speed_caches.split(","):
            load_before = os.getloadavg()
            before = io_bound(inputs, out_bytes, cache, work / "io-probe.bin")
            if cache == "cold":
                evict(inputs)
            else:
                read_all(inputs)
            run = measure(
                [str(ROOT / ".venv/bin/tamis"), "-q", "llm", "merge", str(cfg)],
                env=thread_env(args),
            )
            # The engine's own clock: from opening the inputs to the output
            # renamed into place (the command adds Python and torch start-up).
            engine_s = json.loads((out / "tamis_merge.json").read_text())["seconds"]
            shutil.rmtree(out, ignore_errors=True)
            after = io_bound(inputs, out_bytes, cache, work / "io-probe.bin")
            load_after = os.getloadavg()
            bound = (before["total_s"] + after["total_s"]) / 2
            row = {
                "tool": "tamis",
                "threads": args.threads,
                "method": method,
                "compiled_kernels": option == "compile",
                "density": 0.5 if method == "ties" else None,
                "cache": cache,
                "input_bytes": sum(f.stat().st_size for f in inputs),
                "output_bytes": out_bytes,
                "seconds": run["seconds"],
                "cpu_seconds": run["cpu_seconds"],
                "peak_rss_mb": run["peak_rss_mb"],
                "io_bound_before": before,
                "io_bound_after": after,
                "io_bound_s": bound,
                "ratio_to_io_bound": run["seconds"] / bound,
                "engine_seconds": engine_s,
                "engine_ratio_to_io_bound": engine_s / bound,
                "ratio_range": [
                    run["seconds"] / max(before["total_s"], after["total_s"]),
                    run["seconds"] / min(before["total_s"], after["total_s"]),
                ],
                "load_average_before": load_before,
                "load_average_after": load_after,
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            print(json.dumps(row), flush=True)
            results["runs"].append(row)
            write_json(out_json, results)
    if not args.profile and out_json.is_file():
        # Keep the last profile (its date says when it was measured).
        previous = json.loads(out_json.read_text())
        if "compute_profile" in previous and "compute_profile" not in results:
            results["compute_profile"] = {
                **previous["compute_profile"],
                "measured_by": previous.get("command"),
                "measured_on": previous.get("date"),
            }
    if args.profile:
        load_before = os.getloadavg()
        results["compute_profile"] = compute_profile(base, experts, args.threads)
        results["compute_profile"]["load_average_before"] = load_before
        results["compute_profile"]["load_average_after"] = os.getloadavg()
        print(json.dumps(results["compute_profile"]["phases"], indent=1))
    if not args.keep:
        shutil.rmtree(work)
        results["deleted_after"] = True
    write_json(out_json, results)


def part_profile(args: argparse.Namespace) -> None:
    """The compute profile alone, on the models kept by ``--parts speed --keep``."""
    work = args.work / "synthetic"
    base, experts = work / "base", [work / f"expert{i}" for i in range(3)]
    missing = [d for d in (base, *experts) if not (d / "model.safetensors").is_file()]
    if missing:
        raise SystemExit(
            f"profile: no generated model in {missing[0]}; run "
            "--parts speed --keep first"
        )
    out_json = HERE / "results/merging_speed.json"
    results = json.loads(out_json.read_text()) if out_json.is_file() else {}
    load_before = os.getloadavg()
    profile = compute_profile(base, experts, args.threads)
    profile["load_average_before"] = load_before
    profile["load_average_after"] = os.getloadavg()
    profile["measured_by"] = "python " + " ".join(sys.argv)
    profile["measured_on"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    results["compute_profile"] = profile
    print(json.dumps(profile["phases"], indent=1))
    write_json(out_json, results)


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
            "threads": "per run (rows without it: 1)",
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
                "threads": args.threads,
                **run,
                "load_1min": os.getloadavg()[0],
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            print(json.dumps(row), flush=True)
            results["runs"].append(row)
            write_json(out_json, results)
    if (work / "out-mergekit").is_dir():
        results["agreement"] = compare_outputs(
            work / "out-tamis", work / "out-mergekit"
        )
    elif out_json.is_file():  # mergekit not rerun and its output gone
        results["agreement"] = json.loads(out_json.read_text()).get("agreement")
    for tool in ("tamis", "mergekit"):
        rows = [r for r in results["runs"] if r["tool"] == tool]
        results[f"{tool}_best"] = {
            "seconds": min(r["seconds"] for r in rows),
            "cpu_seconds": min(r["cpu_seconds"] for r in rows),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
        }
    write_json(out_json, results)


QUALITY_PARTS = ("quality", "quality-tiny")


def run_quality_part(part: str, args: argparse.Namespace, rest: list[str]) -> None:
    """Run a quality part with ``merging_quality.py`` (same data and work dirs)."""
    sys.path.insert(0, str(HERE))
    import merging_quality

    merging_quality.main(
        ["--data-dir", str(args.data_dir), "--work", str(args.work)]
        + ["--parts", part, *rest]
    )


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
        "--profile", action="store_true", help="speed: also profile the phases"
    )
    parser.add_argument("--reps", type=int, default=2, help="repeats per tool")
    parser.add_argument("--tools", default="tamis,mergekit", help="tools to (re)run")
    args, rest = parser.parse_known_args()
    parts = args.parts.split(",")
    if rest and not set(parts) & set(QUALITY_PARTS):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.work.mkdir(parents=True, exist_ok=True)
    (HERE / "results").mkdir(exist_ok=True)
    for part in parts:
        if part in QUALITY_PARTS:
            run_quality_part(part, args, rest)
        else:
            parts_by_name = {
                "speed": part_speed,
                "profile": part_profile,
                "mergekit": part_mergekit,
            }
            parts_by_name[part](args)


if __name__ == "__main__":
    main()
