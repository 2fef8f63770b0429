"""The streaming engine against the in-memory merge, and its file handling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tamis.llm.merging import (
    LayerCoefficients,
    MergeParams,
    MergePlan,
    merge_state_dicts,
    parameter_group,
    run_merge,
)
from tamis.llm.merging.io import SafetensorsSource, weight_files
from tamis.llm.models import load_model, load_tokenizer


def _state(model_dir: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in weight_files(model_dir):
        out.update(load_file(str(f)))
    return out


def _coefficients(base: Path, k: int) -> LayerCoefficients:
    names = SafetensorsSource(base).names()
    groups = list(dict.fromkeys(parameter_group(n) for n in names))
    gen = torch.Generator().manual_seed(7)
    sigma = torch.softmax(torch.randn(k, len(groups), generator=gen), dim=0)
    return LayerCoefficients(groups, [f"m{i}" for i in range(k)], sigma.tolist())


@pytest.mark.parametrize(
    "method", ["linear", "task_arithmetic", "ties", "dare_linear", "dare_ties"]
)
@pytest.mark.parametrize("with_coefficients", [False, True])
@pytest.mark.parametrize("kernels", [False, "auto"])  # eager; C where it builds
def test_streaming_equals_in_memory_bit_for_bit(
    tiny_models: dict,
    tmp_path: Path,
    method: str,
    with_coefficients: bool,
    kernels: bool | str,
) -> None:
    base, experts = tiny_models["base"], tiny_models["experts"]
    params = MergeParams(
        scaling=0.6,
        weights=[1.0, 0.5, 1.5],
        densities=[0.3, 0.5, 0.9],
        drop_rates=[0.2, 0.4, 0.1],
        seed=11,
    )
    coefficients = (
        _coefficients(base, 3) if with_coefficients and method != "linear" else None
    )
    plan = MergePlan(
        method=method,
        base=base,
        models=list(experts),
        params=params,
        coefficients=coefficients,
        output=tmp_path / "merged",
        chunk_numel=1500,  # forces row blocks on every matrix
        max_shard_bytes=40_000,  # forces several shards
        compile=kernels,
    )
    summary = run_merge(plan)
    assert len(summary["files"]) > 1
    if not kernels:
        assert summary["kernels"] == "eager"
    streamed = _state(tmp_path / "merged")
    reference = merge_state_dicts(
        method, _state(base), [_state(e) for e in experts], params, coefficients
    )
    assert streamed.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(streamed[name], tensor), name


def test_merged_directory_loads_with_config_and_tokenizer(
    tiny_models: dict, tmp_path: Path
) -> None:
    out = tmp_path / "soup"
    plan = MergePlan(
        method="linear",
        base=None,
        models=[tiny_models["base"]],
        params=MergeParams(weights=[1.0]),
        output=out,
        max_shard_bytes=30_000,
    )
    run_merge(plan)
    assert (out / "model.safetensors.index.json").is_file()
    assert (out / "config.json").is_file()
    load_tokenizer(out)
    merged, base = load_model(out), load_model(tiny_models["base"])
    for (n, a), (_, b) in zip(
        merged.state_dict().items(), base.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), n


def test_output_dtype_conversion(tiny_models: dict, tmp_path: Path) -> None:
    plan = MergePlan(
        method="task_arithmetic",
        base=tiny_models["base"],
        models=list(tiny_models["experts"]),
        params=MergeParams(weights=[1.0] * 3),
        output=tmp_path / "half",
        dtype=torch.bfloat16,
    )
    run_merge(plan)
    state = _state(tmp_path / "half")
    assert all(t.dtype == torch.bfloat16 for t in state.values())


def test_existing_output_is_refused(tiny_models: dict, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    plan = MergePlan(
        method="task_arithmetic",
        base=tiny_models["base"],
        models=list(tiny_models["experts"][:1]),
        params=MergeParams(weights=[1.0]),
        output=tmp_path / "out",
    )
    with pytest.raises(FileExistsError, match="overwrite"):
        run_merge(plan)


def test_shape_mismatch_names_the_tensor(tiny_models: dict, tmp_path: Path) -> None:
    odd = tmp_path / "odd"
    odd.mkdir()
    state = _state(tiny_models["base"])
    name = "model.norm.weight"
    state[name] = torch.zeros(state[name].numel() + 1)
    save_file(state, str(odd / "model.safetensors"))
    plan = MergePlan(
        method="task_arithmetic",
        base=tiny_models["base"],
        models=[odd],
        params=MergeParams(weights=[1.0]),
        output=tmp_path / "out",
    )
    with pytest.raises(ValueError, match="model.norm.weight"):
        run_merge(plan)
    assert not (tmp_path / "out").exists()


def test_missing_group_in_coefficients(tiny_models: dict, tmp_path: Path) -> None:
    coefficients = LayerCoefficients(["model.layers.0"], ["a"], [[1.0]])
    plan = MergePlan(
        method="task_arithmetic",
        base=tiny_models["base"],
        models=list(tiny_models["experts"][:1]),
        params=MergeParams(weights=[1.0]),
        coefficients=coefficients,
        output=tmp_path / "out",
    )
    with pytest.raises(KeyError, match="no Sens-Merging coefficients"):
        run_merge(plan)


def test_coefficients_file_round_trip_and_validation(tmp_path: Path) -> None:
    c = LayerCoefficients(
        ["m.layers.0", "m.layers.1"], ["a", "b"], [[0.25, 0.5], [0.75, 0.5]]
    )
    c.save(tmp_path / "c.json")
    back = LayerCoefficients.load(tmp_path / "c.json")
    assert back.sigma == c.sigma
    assert back.factors("m.layers.1.mlp.weight") == [1.0, 1.0]
    bad = json.loads((tmp_path / "c.json").read_text())
    bad["sigma"] = [[0.3, 0.5], [0.3, 0.5]]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="sums to"):
        LayerCoefficients.load(tmp_path / "bad.json")
