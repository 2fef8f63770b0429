"""The streaming per-tensor merge engine, and the same merge in memory.

For each tensor of the base model the engine reads the matching tensors of the
experts, forms task vectors in float32, calls the method's pure combine function
and writes the result straight into its place in the output shards. Tensors
larger than ``chunk_numel`` elements are processed in blocks of rows; methods
that need a whole-tensor statistic (the TIES threshold) get it from a first
pass over the blocks. Peak memory is therefore a few blocks, not whole models.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from tamis.core.io import fsync_dir
from tamis.core.progress import progress
from tamis.llm.merging.base import MERGE_METHODS, MergeMethod, MergeParams
from tamis.llm.merging.coefficients import LayerCoefficients
from tamis.llm.merging.io import (
    SafetensorsSource,
    ShardedWriter,
    TensorSpec,
    copy_non_weight_files,
)

__all__ = ["MergePlan", "merge_state_dicts", "merge_tensor", "run_merge"]

log = logging.getLogger(__name__)


@dataclass
class MergePlan:
    """Everything one merge needs, resolved.

    Attributes:
        method: Registered method name (``linear``, ``task_arithmetic``, ...).
        base: Base model directory (None only for ``linear``).
        models: Expert model directories, in order.
        params: Method hyper-parameters, one weight/density/drop rate per expert.
        coefficients: Optional per-layer Sens-Merging coefficients.
        output: Output directory (must not exist unless ``overwrite``).
        dtype: Output dtype; None keeps each tensor's input dtype.
        chunk_numel: Tensors with more elements than this are processed in
            row blocks of about ``block_numel`` elements.
        block_numel: Size of those blocks (bounds peak memory for big tensors).
        max_shard_bytes: Largest output shard.
        copy_tokenizer: Copy config/tokenizer files from the base (or first model).
        overwrite: Replace an existing output directory.
    """

    method: str
    base: Path | None
    models: list[Path]
    params: MergeParams
    coefficients: LayerCoefficients | None = None
    output: Path = Path("merged")
    dtype: torch.dtype | None = None
    chunk_numel: int = 1 << 24
    block_numel: int = 1 << 22
    max_shard_bytes: int = 2 * 1024**3
    copy_tokenizer: bool = True
    overwrite: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _params_for(
    name: str, params: MergeParams, coefficients: LayerCoefficients | None
) -> MergeParams:
    # Sens-Merging scales each expert's weight by K * sigma_i^l of the group.
    if coefficients is None:
        return params
    factors = coefficients.factors(name)
    weights = [w * f for w, f in zip(params.weights, factors, strict=True)]
    return replace(params, weights=weights)


def merge_tensor(
    method: MergeMethod,
    name: str,
    base: torch.Tensor | None,
    models: Sequence[torch.Tensor],
    params: MergeParams,
    coefficients: LayerCoefficients | None = None,
) -> torch.Tensor:
    """Merge one whole tensor in memory (fp32 maths, cast to the base dtype).

    Args:
        method: The merge method.
        name: Tensor name (selects the coefficient group and DARE's stream).
        base: Base tensor (None for ``linear``).
        models: The experts' tensors.
        params: Hyper-parameters.
        coefficients: Optional Sens-Merging coefficients.

    Returns:
        The merged tensor in the dtype of ``base`` (or of the first model).
    """
    ref = base if base is not None else models[0]
    if not ref.is_floating_point():
        return ref.clone()
    params = _params_for(name, params, coefficients)
    if not method.uses_base:
        fp = [m.to(torch.float32) for m in models]
        return method.combine(None, fp, params, {}, name, 0).to(ref.dtype)
    b = base.to(torch.float32)
    deltas = [m.to(torch.float32) - b for m in models]  # task vectors
    stats = method.statistic(name, deltas, params) if method.statistic else {}
    return method.combine(b, deltas, params, stats, name, 0).to(ref.dtype)


def merge_state_dicts(
    method_name: str,
    base: Mapping[str, torch.Tensor] | None,
    models: Sequence[Mapping[str, torch.Tensor]],
    params: MergeParams,
    coefficients: LayerCoefficients | None = None,
) -> dict[str, torch.Tensor]:
    """In-memory merge of whole state dicts (the reference for the engine)."""
    method = MERGE_METHODS.get(method_name)
    names = list(base) if base is not None else list(models[0])
    out = {}
    for name in names:
        b = base[name] if base is not None and method.uses_base else None
        out[name] = merge_tensor(
            method, name, b, [m[name] for m in models], params, coefficients
        )
    return out


# Streaming.


def _row_blocks(
    spec: TensorSpec, chunk_numel: int, block_numel: int
) -> list[tuple[int, int] | None]:
    if not spec.shape or spec.numel <= chunk_numel:
        return [None]
    row = spec.numel // spec.shape[0]
    step = max(1, min(block_numel, chunk_numel) // max(row, 1))
    return [(r, min(r + step, spec.shape[0])) for r in range(0, spec.shape[0], step)]


def _check_inputs(
    base: SafetensorsSource | None, models: Sequence[SafetensorsSource]
) -> list[TensorSpec]:
    ref = base if base is not None else models[0]
    for src in models:
        for name in ref.names():
            if name not in src.specs:
                raise ValueError(f"{src.model_dir}: tensor {name!r} is missing")
            if src.specs[name].shape != ref.specs[name].shape:
                raise ValueError(
                    f"{src.model_dir}: tensor {name!r} has shape "
                    f"{src.specs[name].shape}, expected {ref.specs[name].shape}"
                )
    return [ref.specs[n] for n in ref.names()]


def _stream_tensor(
    plan: MergePlan,
    method: MergeMethod,
    spec: TensorSpec,
    out_dtype: torch.dtype,
    base: SafetensorsSource | None,
    models: Sequence[SafetensorsSource],
    writer: ShardedWriter,
) -> None:
    name = spec.name
    ref = base if base is not None else models[0]
    if not spec.dtype.is_floating_point:
        writer.write(name, ref.read(name).to(out_dtype))
        return
    params = _params_for(name, plan.params, plan.coefficients)
    blocks = _row_blocks(spec, plan.chunk_numel, plan.block_numel)
    row = spec.numel // spec.shape[0] if spec.shape else spec.numel

    def read_block(rows: tuple[int, int] | None) -> tuple[Any, list[torch.Tensor]]:
        b = base.read(name, rows).to(torch.float32) if method.uses_base else None
        out = []
        for m in models:
            # Each read is a fresh tensor, so the task vector can replace it in
            # place: one float32 copy per model instead of two.
            x = m.read(name, rows).to(torch.float32)
            out.append(x.sub_(b) if b is not None else x)
        return b, out

    # A tensor small enough is read once and merged whole.
    if blocks == [None]:
        b, deltas = read_block(None)
        stats = method.statistic(name, deltas, params) if method.statistic else {}
        merged = method.combine(b, deltas, params, stats, name, 0)
        writer.write(name, merged.to(out_dtype))
        return

    # A large one: whole-tensor statistic from a pass over its blocks first.
    stats: dict[str, Any] = {}
    if method.statistic is not None:

        def expert_blocks(i: int) -> Iterator[torch.Tensor]:
            for rows in blocks:
                b = base.read(name, rows).to(torch.float32)
                yield models[i].read(name, rows).to(torch.float32) - b

        stats = method.chunked_statistic(name, expert_blocks, spec.numel, params)

    # Combine block by block and write each in place.
    for rows in blocks:
        b, deltas = read_block(rows)
        merged = method.combine(b, deltas, params, stats, name, rows[0] * row)
        writer.write(name, merged.to(out_dtype), rows[0])


def run_merge(plan: MergePlan) -> dict[str, Any]:
    """Run a streaming merge into ``plan.output`` (assembled, then renamed).

    Returns:
        A summary: tensors, parameters, bytes written, seconds, output files.

    Raises:
        FileExistsError: If the output exists and ``overwrite`` is false.
        ValueError: If the inputs do not match.
    """
    start = time.perf_counter()
    method = MERGE_METHODS.get(plan.method)
    if method.uses_base and plan.base is None:
        raise ValueError(f"merge method {plan.method!r} needs a base model")
    out = Path(plan.output)
    if out.exists() and not plan.overwrite:
        raise FileExistsError(f"{out}: output exists (set overwrite: true)")
    base = SafetensorsSource(plan.base) if method.uses_base else None
    models = [SafetensorsSource(m) for m in plan.models]
    specs = _check_inputs(base, models)
    out_specs = [
        TensorSpec(
            s.name,
            s.shape,
            plan.dtype if s.dtype.is_floating_point and plan.dtype else s.dtype,
        )
        for s in specs
    ]

    # Assemble in a temporary sibling, rename into place at the end.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        writer = ShardedWriter(tmp, out_specs, plan.max_shard_bytes)
        try:
            for spec, out_spec in progress(
                list(zip(specs, out_specs, strict=True)), desc="merge", total=len(specs)
            ):
                _stream_tensor(plan, method, spec, out_spec.dtype, base, models, writer)
        finally:
            writer.close()
        copied = []
        if plan.copy_tokenizer:
            src = plan.base if plan.base is not None else plan.models[0]
            copied = copy_non_weight_files(src, tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - start
    summary = {
        "method": plan.method,
        "tensors": len(specs),
        "parameters": sum(s.numel for s in specs),
        "bytes_written": sum(s.nbytes for s in out_specs),
        "seconds": seconds,
        "files": [f.name for f in writer.files],
        "copied": copied,
        "output": str(out),
    }
    log.info("merged %d tensors in %.1f s -> %s", len(specs), seconds, out)
    return summary
