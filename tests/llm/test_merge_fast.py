"""The fast paths of the streaming merge against the reference maths.

Exact selection of the TIES threshold (sampled bracket + counting pass) against
a full sort, and the fused block kernels against the pure functions, bit for
bit, on data with ties, exact zeros, signed zeros and negative weights.
"""

from __future__ import annotations

import logging
import math
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tamis.llm.merging import MERGE_METHODS, MergeParams, MergePlan, run_merge
from tamis.llm.merging.base import Workspace
from tamis.llm.merging.engine import _Budget, merge_state_dicts
from tamis.llm.merging.io import ShardedWriter, TensorSpec, weight_files
from tamis.llm.merging.selection import (
    Bracket,
    bracket_from_sample,
    count_band,
    kth_largest,
    resolve_bracket,
    sample_size,
)
from tamis.llm.merging.ties import keep_count, magnitude_threshold


def _sorted_kth(values: torch.Tensor, k: int) -> float:
    # Reference: the k-th entry of a full descending sort.
    return float(torch.sort(values.flatten(), descending=True).values[k - 1])


def _select(values: torch.Tensor, k: int, block: int, sample: int) -> float | None:
    gen = torch.Generator().manual_seed(3)
    flat = values.flatten()
    idx = torch.randint(flat.numel(), (sample,), generator=gen)
    bracket = bracket_from_sample(flat[idx], flat.numel(), k)
    parts = [
        count_band(flat[s : s + block], bracket) for s in range(0, flat.numel(), block)
    ]
    return resolve_bracket(bracket, parts)


def _tied_magnitudes(n: int, levels: int, seed: int) -> torch.Tensor:
    # Few distinct values, many exact zeros: the hard case for selection.
    gen = torch.Generator().manual_seed(seed)
    a = torch.randint(0, levels, (n,), generator=gen).to(torch.float32) / levels
    a[torch.rand(n, generator=gen) < 0.2] = 0.0
    return a


@pytest.mark.parametrize("levels", [3, 50, 100_000])
@pytest.mark.parametrize("density", [0.001, 0.1, 0.5, 0.9, 1.0])
def test_sampled_selection_equals_full_sort(levels: int, density: float) -> None:
    a = _tied_magnitudes(20_011, levels, seed=levels)
    k = keep_count(a.numel(), density)
    got = _select(a, k, block=1_000, sample=sample_size(a.numel()))
    assert got == _sorted_kth(a, k)


def test_selection_on_continuous_data_and_odd_blocks() -> None:
    gen = torch.Generator().manual_seed(5)
    a = torch.randn(30_001, generator=gen).abs()
    for k in (1, 2, 777, 15_000, 30_000, 30_001):
        assert _select(a, k, block=4_099, sample=5_000) == _sorted_kth(a, k)


def test_all_equal_magnitudes() -> None:
    a = torch.full((5_000,), 0.25)
    assert _select(a, 1_234, block=700, sample=4_096) == 0.25
    zeros = torch.zeros(5_000)
    assert _select(zeros, 2_500, block=700, sample=4_096) == 0.0


def test_a_missed_bracket_is_reported_not_guessed() -> None:
    a = torch.arange(1, 101, dtype=torch.float32)
    # The 10th largest is 91; a bracket above it must give None.
    wrong = Bracket(n=100, k=10, lo=95.0, hi=99.0)
    assert resolve_bracket(wrong, [count_band(a, wrong)]) is None
    right = Bracket(n=100, k=10, lo=80.0, hi=95.0)
    assert (
        resolve_bracket(right, [count_band(a[:50], right), count_band(a[50:], right)])
        == 91.0
    )


def test_bracket_from_sample_brackets_the_true_value() -> None:
    gen = torch.Generator().manual_seed(9)
    a = torch.randn(200_000, generator=gen).abs()
    k = 60_000
    true = _sorted_kth(a, k)
    idx = torch.randint(a.numel(), (sample_size(a.numel()),), generator=gen)
    br = bracket_from_sample(a[idx], a.numel(), k)
    assert br.lo <= true <= br.hi
    # Narrow: about 2 z sqrt(p (1 - p) / m) of the values fall inside.
    m, p = idx.numel(), k / a.numel()
    width = 2 * (4.5 * (p * (1 - p) / m) ** 0.5 + 1 / m)
    inside = int(((a >= br.lo) & (a <= br.hi)).sum())
    assert inside < 1.5 * width * a.numel()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_kth_largest_is_the_kth_of_the_descending_sort(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(3)
    v = (torch.randn(1001, generator=gen) * 0.01).to(torch.float16).float().abs()
    v[::97] = v[5]  # ties
    v[3], v[10], v[20] = math.inf, math.nan, 0.0
    v = v.to(dtype)
    # NaN counts as the largest value, as in torch.sort.
    desc = torch.sort(v, descending=False, stable=True).values.flip(0)
    for k in (1, 2, 3, 50, 500, 999, 1000, 1001):
        got, want = kth_largest(v, k), float(desc[k - 1])
        assert got == want or (math.isnan(got) and math.isnan(want)), k


def test_kth_largest_bounds() -> None:
    v = torch.tensor([3.0, 1.0, 2.0])
    assert kth_largest(v, 1) == 3.0 and kth_largest(v, 3) == 1.0
    with pytest.raises(ValueError, match="k"):
        kth_largest(v, 4)


# Fused kernels against the reference combine functions.


def _inputs(n: int, k: int, dtype: torch.dtype, seed: int) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    base = (torch.randn(n, generator=gen) * 0.02).to(dtype)
    base[:7] = -0.0  # signed zeros in the base
    models = []
    for i in range(k):
        m = (base.float() + torch.randn(n, generator=gen) * 0.002).to(dtype)
        m[i * 11 : i * 11 + 40] = base[i * 11 : i * 11 + 40]  # zero deltas
        models.append(m)
    models[-1][100:160] = models[0][100:160]  # cross-expert ties
    return base, models


def _reference(method: str, base, models, params, stats) -> torch.Tensor:
    combine = MERGE_METHODS.get(method).combine
    if method == "linear":
        return combine(None, [m.float() for m in models], params, stats, "w", 0)
    b = base.float()
    return combine(b, [m.float() - b for m in models], params, stats, "w", 0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("method", ["linear", "task_arithmetic", "ties"])
@pytest.mark.parametrize(
    "weights,scaling",
    [([1.0, 1.0, 1.0], 1.0), ([0.7, -0.4, 1.3], 0.45), ([1.0, 0.0, 2.0], -0.8)],
)
def test_kernels_equal_reference_bit_for_bit(
    dtype: torch.dtype, method: str, weights: list[float], scaling: float
) -> None:
    base, models = _inputs(3_001, 3, dtype, seed=4)
    params = MergeParams(
        scaling=scaling, weights=weights, densities=[0.2, 0.5, 1.0], normalize=True
    )
    stats = {}
    if method == "ties":
        b = base.float()
        stats = {
            "thresholds": [
                magnitude_threshold(m.float() - b, rho)
                for m, rho in zip(models, params.densities, strict=True)
            ]
        }
        stats["thresholds"][1] = float("inf")  # an expert trimmed away entirely
    if method == "linear" and sum(weights) == 0:
        return
    ref = _reference(method, base, models, params, stats).to(dtype)
    kernel = MERGE_METHODS.get(method).kernel
    ws = Workspace()
    out = torch.empty_like(base)
    for s in range(0, base.numel(), 512):  # odd-sized blocks, one workspace
        e = min(s + 512, base.numel())
        b = base[s:e] if method != "linear" else None
        out[s:e].copy_(kernel(b, [m[s:e] for m in models], params, stats, ws))
    # Bits, not values: signed zeros must match too.
    assert torch.equal(out.view(torch.uint8), ref.view(torch.uint8))


def test_ties_kernel_zero_threshold_keeps_everything() -> None:
    base, models = _inputs(1_000, 2, torch.float32, seed=8)
    params = MergeParams(scaling=1.0, weights=[1.0, 1.0], densities=[1.0, 1.0])
    stats = {"thresholds": [0.0, 0.0]}
    ref = _reference("ties", base, models, params, stats)
    got = MERGE_METHODS.get("ties").kernel(base, models, params, stats, Workspace())
    assert torch.equal(got.view(torch.int32), ref.view(torch.int32))


# The engine's whole-tensor path: many blocks, two workers, small prefetch.


def _state(model_dir: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in weight_files(model_dir):
        out.update(load_file(str(f)))
    return out


@pytest.mark.parametrize("method", ["linear", "task_arithmetic", "ties", "dare_ties"])
@pytest.mark.parametrize("kernels", [False, "auto"])
def test_threaded_block_engine_equals_in_memory(
    tiny_models: dict, tmp_path: Path, method: str, kernels: bool | str
) -> None:
    base, experts = tiny_models["base"], tiny_models["experts"]
    params = MergeParams(
        scaling=0.9,
        weights=[1.0, 0.6, 1.2],
        densities=[0.2, 0.5, 0.8],
        drop_rates=[0.3, 0.3, 0.3],
        seed=2,
    )
    plan = MergePlan(
        method=method,
        base=base,
        models=list(experts),
        params=params,
        output=tmp_path / "merged",
        threads=2,
        kernel_block=300,  # many blocks per tensor, ragged last block
        prefetch_bytes=1,  # reader holds two tensors at a time
        write_queue_bytes=1,
        flush_bytes=1,  # background flush after every write
        compile=kernels,
    )
    summary = run_merge(plan)
    assert summary["threads"] == 2
    streamed = _state(tmp_path / "merged")
    reference = merge_state_dicts(
        method, _state(base), [_state(e) for e in experts], params
    )
    for name, tensor in reference.items():
        assert torch.equal(streamed[name].view(torch.uint8), tensor.view(torch.uint8))


def test_engine_restores_torch_threads_and_the_collector(
    tiny_models: dict, tmp_path: Path
) -> None:
    import gc

    before = torch.get_num_threads()
    frozen = gc.get_freeze_count()
    plan = MergePlan(
        method="task_arithmetic",
        base=tiny_models["base"],
        models=list(tiny_models["experts"]),
        params=MergeParams(scaling=1.0, weights=[1.0] * 3),
        output=tmp_path / "m",
        threads=2,
    )
    run_merge(plan)
    assert torch.get_num_threads() == before
    assert gc.get_freeze_count() == frozen  # the merge's freeze was undone


def _ties_plan(
    tiny_models: dict, tmp_path: Path, params: MergeParams, **options: object
) -> MergePlan:
    """A two-thread TIES merge of the tiny models into ``tmp_path / merged``.

    The eager kernels unless ``options`` set ``compile``.
    """
    options = {"compile": False, **options}
    return MergePlan(
        method="ties",
        base=tiny_models["base"],
        models=list(tiny_models["experts"]),
        params=params,
        output=tmp_path / "merged",
        threads=2,
        **options,  # type: ignore[arg-type]
    )


def test_engine_falls_back_to_exact_selection_on_a_miss(
    tiny_models: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tamis.llm.merging.engine as engine

    def missing(sample: torch.Tensor, n: int, k: int, z: float = 4.5) -> Bracket:
        return Bracket(n=n, k=k, lo=1e30, hi=2e30)  # above every magnitude

    monkeypatch.setattr(engine, "bracket_from_sample", missing)
    base, experts = tiny_models["base"], tiny_models["experts"]
    params = MergeParams(scaling=1.0, weights=[1.0] * 3, densities=[0.3, 0.5, 0.7])
    summary = run_merge(_ties_plan(tiny_models, tmp_path, params, kernel_block=256))
    assert summary["threshold_fallbacks"] > 0
    streamed = _state(tmp_path / "merged")
    reference = merge_state_dicts(
        "ties", _state(base), [_state(e) for e in experts], params
    )
    for name, tensor in reference.items():
        assert torch.equal(streamed[name], tensor), name


def test_budget_admits_two_items_whatever_their_size() -> None:
    budget = _Budget(limit=10, min_items=2)
    assert budget.acquire(100) and budget.acquire(100)  # double buffering
    third = threading.Thread(target=budget.acquire, args=(100,), daemon=True)
    third.start()
    third.join(0.2)
    assert third.is_alive()  # a third big item waits for a release
    budget.release(100)
    third.join(2.0)
    assert not third.is_alive() and budget.items == 2


def test_writer_with_background_flush_writes_the_same_bytes(tmp_path: Path) -> None:
    specs = [TensorSpec(f"t{i}", (7, 5), torch.float16) for i in range(4)]
    data = {s.name: torch.randn(s.shape).to(torch.float16) for s in specs}
    for flush in (0, 1, 100):
        writer = ShardedWriter(tmp_path / str(flush), specs, 150, flush_bytes=flush)
        for s in specs:  # rows in two blocks, out of order
            writer.write(s.name, data[s.name][4:], 4)
            writer.write(s.name, data[s.name][:4], 0)
        writer.close()
    files = [sorted(p.name for p in (tmp_path / str(f)).iterdir()) for f in (0, 1, 100)]
    assert files[0] == files[1] == files[2] and len(files[0]) > 2  # sharded
    for name in files[0]:
        ref = (tmp_path / "0" / name).read_bytes()
        assert (tmp_path / "1" / name).read_bytes() == ref
        assert (tmp_path / "100" / name).read_bytes() == ref
    loaded = _state(tmp_path / "1")
    assert all(torch.equal(loaded[k], v) for k, v in data.items())


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler")
@pytest.mark.parametrize("native", [True, False])
def test_compiled_ties_kernels_equal_in_memory_bit_for_bit(
    tiny_models: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    from tamis.llm.merging import engine
    from tamis.llm.merging.compiled import CompiledTies
    from tamis.llm.merging.native import NativeBuildError, NativeTies

    monkeypatch.setenv("TAMIS_CACHE", str(tmp_path / "cache"))
    if not native:  # no C kernels: the torch.compile ones run instead

        def unavailable() -> NativeTies:
            raise NativeBuildError("switched off by the test")

        monkeypatch.setattr(engine, "load_native", unavailable)
    owner = NativeTies if native else CompiledTies
    fns = ("ties", "count_bands") if native else ("kernel", "count_band")
    calls = dict.fromkeys(fns, 0)
    for fn in fns:
        original = getattr(owner, fn)

        def counted(
            *args: object, _fn: str = fn, _orig: object = original, **kw: object
        ) -> object:
            calls[_fn] += 1
            return _orig(*args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(owner, fn, counted)
    base, experts = tiny_models["base"], tiny_models["experts"]
    params = MergeParams(
        scaling=0.7, weights=[1.0, 0.6, 1.3], densities=[0.2, 0.5, 0.9]
    )
    plan = _ties_plan(tiny_models, tmp_path, params, compile=True, compile_wait=True)
    summary = run_merge(plan)
    assert summary["compiled_kernels"]
    assert summary["kernels"] == ("native" if native else "torch.compile")
    assert all(calls[fn] > 0 for fn in fns)  # the compiled code ran
    streamed = _state(tmp_path / "merged")
    reference = merge_state_dicts(
        "ties", _state(base), [_state(e) for e in experts], params
    )
    for name, tensor in reference.items():
        assert torch.equal(streamed[name].view(torch.uint8), tensor.view(torch.uint8))


@pytest.mark.parametrize("ahead_wanted", [1, 2, "all"])
def test_reader_asks_for_each_tensor_once_and_ahead_of_its_read(
    tiny_models: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ahead_wanted: int | str,
) -> None:
    from tamis.llm.merging.io import SafetensorsSource

    events: list[tuple[str, str]] = []
    advise, map_flat = SafetensorsSource.advise, SafetensorsSource.map_flat

    def advised(self: SafetensorsSource, name: str) -> None:
        events.append(("advise", name))
        advise(self, name)

    def mapped(self: SafetensorsSource, name: str) -> torch.Tensor:
        events.append(("map", name))
        return map_flat(self, name)

    monkeypatch.setattr(SafetensorsSource, "advise", advised)
    monkeypatch.setattr(SafetensorsSource, "map_flat", mapped)
    params = MergeParams(scaling=1.0, weights=[1.0] * 3, densities=[0.5] * 3)
    sources = 4  # the base and three experts
    base = SafetensorsSource(tiny_models["base"])

    def merge(readahead: int) -> list[str]:
        events.clear()
        plan = _ties_plan(
            tiny_models, tmp_path, params, readahead_bytes=readahead, overwrite=True
        )
        run_merge(plan)
        return list(dict.fromkeys(n for e, n in events if e == "map"))

    names = merge(0)
    if ahead_wanted == "all":
        readahead = 1 << 40
    else:  # exactly the input bytes of the next `ahead_wanted` tensors
        readahead = sources * sum(
            base.specs[n].nbytes for n in names[1 : 1 + int(ahead_wanted)]
        )
    assert merge(readahead) == names
    advised_names = [n for e, n in events if e == "advise"]
    # Every tensor after the first is advised once per source, before its map.
    assert sorted(advised_names) == sorted(names[1:] * sources)
    for name in names[1:]:
        assert events.index(("advise", name)) < events.index(("map", name))
    first_map = events.index(("map", names[0]))
    ahead = sum(1 for e, _ in events[:first_map] if e == "advise") // sources
    assert ahead == (len(names) - 1 if ahead_wanted == "all" else ahead_wanted)


@pytest.mark.parametrize("where", ["reader", "sampler"])
def test_an_error_in_a_stage_thread_fails_the_merge_cleanly(
    tiny_models: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    import tamis.llm.merging.engine as engine
    from tamis.llm.merging.io import SafetensorsSource

    calls = {"n": 0}

    def fail_on_third(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(f"{where} failed on purpose")
            return original(*args, **kwargs)

        return wrapper

    if where == "reader":
        target, attr = SafetensorsSource, "map_flat"
    else:
        target, attr = engine._Streamer, "presample"
    monkeypatch.setattr(target, attr, fail_on_third(getattr(target, attr)))
    params = MergeParams(scaling=1.0, weights=[1.0] * 3, densities=[0.5] * 3)
    before = set(threading.enumerate())
    with pytest.raises(OSError, match=f"{where} failed on purpose"):
        run_merge(_ties_plan(tiny_models, tmp_path, params))
    # No output and no half-assembled temporary directory are left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    # The stage threads have ended.
    left = [t for t in threading.enumerate() if t not in before]
    assert not [t for t in left if t.name.startswith("merge-")]


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
@pytest.mark.parametrize("builds", [True, False])
def test_auto_kernels_are_the_c_ones_where_they_build_else_eager(
    tiny_models: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    builds: bool,
) -> None:
    from tamis.llm.merging import engine
    from tamis.llm.merging.native import NativeBuildError, NativeTies

    monkeypatch.setenv("TAMIS_CACHE", str(tmp_path / "cache"))
    if not builds:

        def unavailable() -> NativeTies:
            raise NativeBuildError("no compiler in this test")

        monkeypatch.setattr(engine, "load_native", unavailable)

    def no_torch_compile(*args: object) -> None:
        raise AssertionError("auto must not try torch.compile")

    monkeypatch.setattr(engine, "_compile_ties", no_torch_compile)
    params = MergeParams(scaling=0.8, weights=[1.0, 0.7, 1.1], densities=[0.4] * 3)
    plan = _ties_plan(tiny_models, tmp_path, params, compile="auto")
    with caplog.at_level(logging.INFO, logger="tamis.llm.merging.engine"):
        summary = run_merge(plan)
    assert summary["kernels"] == ("native" if builds else "eager")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    streamed = _state(tmp_path / "merged")
    reference = merge_state_dicts(
        "ties",
        _state(tiny_models["base"]),
        [_state(e) for e in tiny_models["experts"]],
        params,
    )
    for name, tensor in reference.items():
        assert torch.equal(streamed[name].view(torch.uint8), tensor.view(torch.uint8))


@pytest.mark.parametrize(
    ("value", "ok"), [("auto", True), (True, True), (False, True), ("yes", False)]
)
def test_merge_config_compile_values(value: object, ok: bool) -> None:
    from tamis.core.config import ConfigError, from_dict
    from tamis.llm.config import MergeConfig

    data = {
        "method": "ties",
        "output": "o",
        "base_model": "b",
        "models": [{"model": "m"}],
    }
    if ok:
        assert from_dict(MergeConfig, {**data, "compile": value}).compile == value
        assert from_dict(MergeConfig, data).compile == "auto"
    else:
        with pytest.raises(ConfigError, match="compile"):
            from_dict(MergeConfig, {**data, "compile": value})


def test_engine_rejects_an_unknown_compile_value(
    tiny_models: dict, tmp_path: Path
) -> None:
    params = MergeParams(scaling=1.0, weights=[1.0] * 3, densities=[0.5] * 3)
    with pytest.raises(ValueError, match="compile: got 'sometimes'"):
        run_merge(_ties_plan(tiny_models, tmp_path, params, compile="sometimes"))


def test_whole_tensor_samples_are_drawn_once_each_by_the_sampler_thread(
    tiny_models: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tamis.llm.merging.engine as engine
    from tamis.llm.merging.io import SafetensorsSource

    draws: list[tuple[str, str]] = []
    whole_sample = engine._whole_sample

    def recorded(spec: TensorSpec, base: torch.Tensor, models: list) -> Callable:
        draw = whole_sample(spec, base, models)

        def sample() -> tuple[torch.Tensor, list[torch.Tensor]]:
            draws.append((spec.name, threading.current_thread().name))
            return draw()

        return sample

    monkeypatch.setattr(engine, "_whole_sample", recorded)
    params = MergeParams(scaling=1.0, weights=[1.0] * 3, densities=[0.5] * 3)
    run_merge(_ties_plan(tiny_models, tmp_path, params))
    specs = SafetensorsSource(tiny_models["base"]).specs.values()
    whole = [s.name for s in specs if s.dtype.is_floating_point]
    # One draw per tensor, none of them on the merging thread.
    assert sorted(name for name, _ in draws) == sorted(whole)
    assert {thread for _, thread in draws} == {"merge-sampler"}
