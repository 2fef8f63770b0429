"""The streaming per-tensor merge engine, and the same merge in memory.

The in-memory merge (:func:`merge_state_dicts`) applies each method's reference
maths to whole float32 task vectors. The streaming engine (:func:`run_merge`)
produces the same bytes with bounded memory and both CPU cores:

- a **reader thread** maps (or, with ``mmap: false``, reads) the next tensors
  of the base and the experts, prefetch bounded by ``prefetch_bytes``, while
  the current one is merged; for TIES a **sampler thread** then draws each
  tensor's threshold brackets; a **writer thread** writes finished tensors
  into their place in the pre-laid-out output shards;
- the merge itself runs in **cache-sized flat blocks** (``kernel_block``
  elements) on ``threads`` worker threads, each with one torch thread and its
  own reusable buffers (no OpenMP barriers to spin on a busy machine), through
  each method's fused block kernel, which is bit for bit equal to its
  reference maths;
- TIES's magnitude thresholds come from an exact sampled-bracket selection
  (:mod:`tamis.llm.merging.selection`) in one counting pass, with an exact
  radix selection as the fallback;
- by default (``compile: auto``) TIES's counting pass and merge kernel run in
  C (:mod:`tamis.llm.merging.native`, built with the system C compiler) where
  that can be built; with ``compile: true``, where it cannot, as
  ``torch.compile`` kernels (:mod:`tamis.llm.merging.compiled`); all give the
  eager kernels' bytes;
- tensors above ``chunk_numel`` elements are never held whole: they are read
  in row groups of about ``block_numel`` elements, once for the threshold and
  once for the merge.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import queue
import shutil
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from tamis.core.io import fsync_dir
from tamis.core.progress import progress
from tamis.llm.merging.base import MERGE_METHODS, MergeMethod, MergeParams, Workspace
from tamis.llm.merging.coefficients import LayerCoefficients
from tamis.llm.merging.compiled import COMPILED_BLOCK, CompiledTies
from tamis.llm.merging.io import (
    SafetensorsSource,
    ShardedWriter,
    TensorSpec,
    copy_non_weight_files,
)
from tamis.llm.merging.native import (
    NATIVE_DTYPES,
    NativeBuildError,
    NativeTies,
    load_native,
)
from tamis.llm.merging.selection import (
    Bracket,
    bracket_from_sample,
    count_band,
    resolve_bracket,
    sample_size,
)
from tamis.llm.merging.ties import keep_count, magnitude_threshold_blocks

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
        threads: Worker threads (None: ``torch.get_num_threads()``).
        kernel_block: Elements per block of the merge kernels (cache-sized).
        prefetch_bytes: Input bytes the reader may hold ahead (a tensor larger
            than this is still read, alone).
        readahead_bytes: Input bytes beyond the current tensor that the
            kernel is asked to read into the page cache in the background
            (``posix_fadvise(WILLNEED)``; page cache, not this process's
            memory), so that cold reads overlap the merge.
        write_queue_bytes: Output bytes waiting for the writer thread.
        mmap: Map whole tensors (pages faulted in by the reader thread, no
            copy) instead of reading them into buffers.
        flush_bytes: Output bytes after which a background thread flushes a
            shard to disk, so that writing overlaps the merge (0 = flush only
            at the end).
        compile: Which TIES kernels run (all give the same bytes). ``True``:
            the C kernels of :mod:`~tamis.llm.merging.native` (built in about
            a second, then cached), or where they cannot be built those of
            :mod:`~tamis.llm.merging.compiled` (a few seconds of
            ``torch.compile``, overlapped with the merge: blocks merged before
            they are ready use the eager kernels). ``"auto"``: the C kernels
            where they can be built, else the eager ones, without trying
            ``torch.compile``. ``False``: the eager kernels.
        compile_wait: Wait for the ``torch.compile`` kernels before merging, so
            that every eligible block uses them.
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
    threads: int | None = None
    kernel_block: int = 1 << 16
    prefetch_bytes: int = 128 * 1024**2
    readahead_bytes: int = 512 * 1024**2
    write_queue_bytes: int = 64 * 1024**2
    mmap: bool = True
    flush_bytes: int = 128 * 1024**2
    compile: bool | str = "auto"
    compile_wait: bool = False


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


class _Budget:
    """Bytes in flight between threads.

    Up to ``min_items`` items are always let through whatever their size:
    with 2, the reader can fetch the next tensor while the current one is
    merged even when a single tensor is larger than the limit (double
    buffering), so peak memory is at most two of the largest tensors.
    """

    def __init__(self, limit: int, min_items: int = 1) -> None:
        self.limit = limit
        self.min_items = min_items
        self.used = 0
        self.items = 0
        self._cond = threading.Condition()
        self.closed = False

    def acquire(self, n: int) -> bool:
        with self._cond:
            while (
                not self.closed
                and self.items >= self.min_items
                and self.used + n > self.limit
            ):
                self._cond.wait()
            self.used += n
            self.items += 1
            return not self.closed

    def release(self, n: int) -> None:
        with self._cond:
            self.used -= n
            self.items -= 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class _Pool:
    """Worker threads with one torch thread and one :class:`Workspace` each."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._local = threading.local()
        self._executor = (
            ThreadPoolExecutor(
                threads, initializer=torch.set_num_threads, initargs=(1,)
            )
            if threads > 1
            else None
        )

    def ws(self) -> Workspace:
        ws = getattr(self._local, "ws", None)
        if ws is None:
            ws = self._local.ws = Workspace()
        return ws

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if self._executor is None or len(items) < 2:
            return [fn(item) for item in items]
        return list(self._executor.map(fn, items))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)


class _Recycler:
    """Free read buffers kept by size for reuse (fresh memory costs page faults).

    Args:
        limit: Most bytes kept free.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = 0
        self._free: dict[int, list[torch.Tensor]] = {}
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> torch.Tensor:
        """A uint8 buffer of ``nbytes`` (contents undefined)."""
        with self._lock:
            free = self._free.get(nbytes)
            if free:
                self.kept -= nbytes
                return free.pop()
        return torch.empty(nbytes, dtype=torch.uint8)

    def give(self, tensors: Sequence[torch.Tensor | None]) -> None:
        """Return buffers obtained from :meth:`take` (as any dtype view)."""
        with self._lock:
            for t in tensors:
                if t is None:
                    continue
                raw = t.reshape(-1).view(torch.uint8)
                if self.kept + raw.numel() <= self.limit:
                    self._free.setdefault(raw.numel(), []).append(raw)
                    self.kept += raw.numel()


def _whole_sample(
    spec: TensorSpec, base: torch.Tensor, models: Sequence[torch.Tensor]
) -> Callable[[], tuple[torch.Tensor, list[torch.Tensor]]]:
    """Draws the sample of a whole tensor's elements (seeded by its name)."""

    def sample() -> tuple[torch.Tensor, list[torch.Tensor]]:
        n = spec.numel
        gen = torch.Generator().manual_seed(zlib.crc32(spec.name.encode()))
        idx = torch.randint(n, (sample_size(n),), generator=gen)
        return base[idx], [m[idx] for m in models]

    return sample


def _flat_blocks(n: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, n)) for s in range(0, n, size)]


class _Streamer:
    """State of one streaming merge (see the module docstring)."""

    def __init__(
        self,
        plan: MergePlan,
        method: MergeMethod,
        base: SafetensorsSource | None,
        models: Sequence[SafetensorsSource],
        writer: ShardedWriter,
        pool: _Pool,
    ) -> None:
        self.plan = plan
        self.method = method
        self.base = base
        self.models = models
        self.writer = writer
        self.pool = pool
        self.fallbacks = 0  # thresholds that needed the exact radix fallback
        self.compiled: CompiledTies | None = None
        self.native: NativeTies | None = None  # the C TIES kernels
        self.buffers = _Recycler(plan.prefetch_bytes)
        self.out_buffers = _Recycler(plan.write_queue_bytes)

    # Reading.

    def chunked(self, spec: TensorSpec) -> bool:
        return _row_blocks(spec, self.plan.chunk_numel, self.plan.block_numel) != [None]

    def sources(self) -> list[SafetensorsSource]:
        use = self.base if self.method.uses_base else None
        return ([use] if use is not None else []) + list(self.models)

    def read(
        self, name: str, rows: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        flats = [src.read_flat(name, rows, self.buffers.take) for src in self.sources()]
        if self.method.uses_base:
            return flats[0], flats[1:]
        return None, flats

    def map(self, name: str) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """The whole tensor of every source, memory-mapped (see ``map_flat``)."""
        flats = [src.map_flat(name) for src in self.sources()]
        if self.method.uses_base:
            return flats[0], flats[1:]
        return None, flats

    def input_bytes(self, spec: TensorSpec) -> int:
        return spec.nbytes * len(self.sources())

    # Merging.

    def block_size(self, base: torch.Tensor, models: Sequence[torch.Tensor]) -> int:
        """Elements per work block.

        The eager kernels work on cache-sized blocks; the compiled and native
        ones (which walk a block in cache-sized pieces themselves) on about
        ``COMPILED_BLOCK`` elements, at least one block per thread.
        """
        native, compiled = self.native, self.compiled
        if native is not None and native.fits(base, models):
            block = COMPILED_BLOCK
        elif compiled is not None and compiled.fits(base, models):
            block = compiled.block
        else:
            return self.plan.kernel_block
        n = base.numel()
        pieces = max(-(-n // block), self.pool.threads)
        return max(1, -(-n // pieces))

    def brackets(
        self,
        n: int,
        params: MergeParams,
        sample: Callable[[], tuple[torch.Tensor, list[torch.Tensor]]],
    ) -> dict[int, Bracket]:
        """Sampled brackets of the TIES thresholds of the experts that keep any."""
        ks = [keep_count(n, rho) for rho in params.densities]
        todo = [i for i, k in enumerate(ks) if k > 0]
        if not todo:
            return {}
        sb, sms = sample()
        sb32 = sb.to(torch.float32)
        return {
            i: bracket_from_sample(sms[i].to(torch.float32).sub_(sb32).abs_(), n, ks[i])
            for i in todo
        }

    def presample(
        self, spec: TensorSpec, base: torch.Tensor | None, models: list[torch.Tensor]
    ) -> dict[int, Bracket] | None:
        """The brackets of a whole tensor, drawn ahead by the sampler thread.

        Drawing the sample and selecting in it takes milliseconds per tensor;
        done here it overlaps the merge of the tensors before this one instead
        of holding up the workers. The draw is the one :meth:`merge_whole`
        would make (same seed), so results do not depend on where it runs.
        """
        if not self.method.magnitude_thresholds or base is None:
            return None
        params = _params_for(spec.name, self.plan.params, self.plan.coefficients)
        return self.brackets(spec.numel, params, _whole_sample(spec, base, models))

    def thresholds(
        self,
        name: str,
        n: int,
        params: MergeParams,
        sample: Callable[[], tuple[torch.Tensor, list[torch.Tensor]]],
        groups: Callable[[], Iterator[tuple[torch.Tensor, list[torch.Tensor]]]],
        brackets: dict[int, Bracket] | None = None,
    ) -> list[float]:
        """Exact TIES thresholds: sampled bracket, one counting pass, fallback.

        ``brackets`` (from :meth:`presample`) saves drawing the sample here.
        """
        ks = [keep_count(n, rho) for rho in params.densities]
        out: list[float | None] = [math.inf if k == 0 else None for k in ks]
        todo = [i for i, k in enumerate(ks) if k > 0]
        if not todo:
            return [math.inf] * len(ks)
        if brackets is None:
            brackets = self.brackets(n, params, sample)

        def count(args: tuple[torch.Tensor, list[torch.Tensor], int, int]) -> dict:
            base, models, s, e = args
            ws = self.pool.ws()
            m = e - s
            keys = list(brackets)
            blocks = [models[i][s:e] for i in keys]
            native, compiled = self.native, self.compiled
            if native is not None and native.fits(base[s:e], blocks):
                scratch = [ws.get(f"band{j}", m) for j in range(len(keys))]
                counts = native.count_bands(
                    base[s:e], blocks, list(brackets.values()), scratch
                )
                return dict(zip(keys, counts, strict=True))
            if compiled is not None and compiled.fits(base[s:e], blocks):
                return {
                    i: compiled.count_band(base[s:e], models[i][s:e], br)
                    for i, br in brackets.items()
                }
            b = ws.get("b", m).copy_(base[s:e])
            x = ws.get("x0", m)
            a = ws.get("u", m)
            parts = {}
            for i, br in brackets.items():
                x.copy_(models[i][s:e]).sub_(b)
                parts[i] = count_band(torch.abs(x, out=a), br)
            return parts

        parts: dict[int, list] = {i: [] for i in todo}
        for base, models in groups():
            size = self.block_size(base, models)
            jobs = [(base, models, s, e) for s, e in _flat_blocks(base.numel(), size)]
            for res in self.pool.map(count, jobs):
                for i, p in res.items():
                    parts[i].append(p)
        for i in todo:
            out[i] = resolve_bracket(brackets[i], parts[i])
            if out[i] is None:  # the sample missed: exact radix selection

                def deltas(i: int = i) -> Iterator[torch.Tensor]:
                    for base, models in groups():
                        yield models[i].to(torch.float32) - base.to(torch.float32)

                self.fallbacks += 1
                out[i] = magnitude_threshold_blocks(deltas, n, params.densities[i])
        return [float(t) for t in out]  # type: ignore[arg-type]

    def statistic(
        self,
        spec: TensorSpec,
        params: MergeParams,
        sample: Callable[[], tuple[torch.Tensor, list[torch.Tensor]]],
        groups: Callable[[], Iterator[tuple[torch.Tensor, list[torch.Tensor]]]],
        brackets: dict[int, Bracket] | None = None,
    ) -> dict[str, Any]:
        method = self.method
        if method.magnitude_thresholds:
            return {
                "thresholds": self.thresholds(
                    spec.name, spec.numel, params, sample, groups, brackets
                )
            }
        if method.statistic is None:
            return {}
        # Any other statistic: the method's own block-wise form.

        def expert_blocks(i: int) -> Iterator[torch.Tensor]:
            for base, models in groups():
                yield models[i].to(torch.float32) - base.to(torch.float32)

        return method.chunked_statistic(spec.name, expert_blocks, spec.numel, params)

    def combine(
        self,
        name: str,
        params: MergeParams,
        stats: dict[str, Any],
        base: torch.Tensor | None,
        models: list[torch.Tensor],
        out: torch.Tensor,
        offset: int,
    ) -> None:
        """Merge flat inputs into the flat ``out`` block by block (in workers)."""
        method = self.method
        kernel = method.kernel

        def work(span: tuple[int, int]) -> None:
            s, e = span
            b = base[s:e] if base is not None else None
            ms = [m[s:e] for m in models]
            native, compiled = self.native, self.compiled
            if native is not None and b is not None and native.fits(b, ms):
                # Stored straight into the output when its dtype allows.
                direct = native.writes(out[s:e])
                res = native.ties(
                    b,
                    ms,
                    params.weights,
                    stats["thresholds"],
                    params.scaling,
                    out=out[s:e] if direct else self.pool.ws().get("native", e - s),
                )
                if direct:
                    return
            elif compiled is not None and b is not None and compiled.fits(b, ms):
                res = compiled.kernel(
                    b, ms, params.weights, stats["thresholds"], params.scaling
                )
            elif kernel is not None:
                res = kernel(b, ms, params, stats, self.pool.ws())
            elif b is None:
                fp = [m.to(torch.float32, copy=True) for m in ms]
                res = method.combine(None, fp, params, stats, name, offset + s)
            else:
                # Out of place: for float32 inputs .to() returns the (read-only,
                # memory-mapped) input itself.
                b32 = b.to(torch.float32)
                deltas = [torch.sub(m.to(torch.float32), b32) for m in ms]
                res = method.combine(b32, deltas, params, stats, name, offset + s)
            out[s:e].copy_(res)

        size = self.plan.kernel_block
        if base is not None:
            size = self.block_size(base, models)
        self.pool.map(work, _flat_blocks(out.numel(), size))

    def merge_whole(
        self,
        spec: TensorSpec,
        out_dtype: torch.dtype,
        base: torch.Tensor | None,
        models: list[torch.Tensor],
        brackets: dict[int, Bracket] | None = None,
    ) -> torch.Tensor:
        """Merge one tensor held whole (flat inputs) into a flat output.

        ``brackets``: TIES brackets drawn ahead (:meth:`presample`), if any.
        """
        name = spec.name
        params = _params_for(name, self.plan.params, self.plan.coefficients)
        stats: dict[str, Any] = {}
        if self.method.statistic is not None and base is not None:
            stats = self.statistic(
                spec,
                params,
                _whole_sample(spec, base, models),
                lambda: iter([(base, models)]),
                brackets,
            )
        itemsize = torch.empty((), dtype=out_dtype).element_size()
        out = self.out_buffers.take(spec.numel * itemsize).view(out_dtype)
        self.combine(name, params, stats, base, models, out, 0)
        return out

    def merge_chunked(self, spec: TensorSpec, out_dtype: torch.dtype) -> None:
        """Merge a tensor too large to hold: row groups, read twice."""
        name, n = spec.name, spec.numel
        params = _params_for(name, self.plan.params, self.plan.coefficients)
        groups_rows = _row_blocks(spec, self.plan.chunk_numel, self.plan.block_numel)
        row = n // spec.shape[0]

        def groups() -> Iterator[tuple[torch.Tensor, list[torch.Tensor]]]:
            for rows in groups_rows:
                yield self.read(name, rows)  # type: ignore[misc]

        def sample() -> tuple[torch.Tensor, list[torch.Tensor]]:
            # Whole rows drawn at random (reading scattered elements would
            # be random I/O); enough rows for about sample_size(n) values.
            gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            nrows = spec.shape[0]
            want = min(nrows, max(64, -(-sample_size(n) // row)))
            picked = torch.randperm(nrows, generator=gen)[:want].sort().values
            rows = [self.read(name, (int(r), int(r) + 1)) for r in picked]
            b = torch.cat([r[0] for r in rows])  # type: ignore[misc]
            ms = [torch.cat([r[1][i] for r in rows]) for i in range(len(self.models))]
            return b, ms

        # Let the kernel read the whole tensor ahead (page cache, not this
        # process's memory) while the first row groups are processed.
        for src in self.sources():
            src.advise(name)
        stats: dict[str, Any] = {}
        if self.method.statistic is not None and self.method.uses_base:
            stats = self.statistic(spec, params, sample, groups)
        for rows in groups_rows:
            base, models = self.read(name, rows)  # type: ignore[misc]
            ref = base if base is not None else models[0]
            out = torch.empty(ref.numel(), dtype=out_dtype)
            self.combine(name, params, stats, base, models, out, rows[0] * row)
            self.writer.write(name, out, rows[0])


def _stream_all(
    streamer: _Streamer, specs: Sequence[TensorSpec], out_specs: Sequence[TensorSpec]
) -> None:
    """Reader -> sampler -> merge (this thread + workers) -> writer thread."""
    plan = streamer.plan
    budget = _Budget(plan.prefetch_bytes, min_items=2)
    write_budget = _Budget(plan.write_queue_bytes)
    staged: queue.Queue = queue.Queue()  # read, brackets not yet drawn
    inbox: queue.Queue = queue.Queue()
    outbox: queue.Queue = queue.Queue()
    errors: list[BaseException] = []

    def whole(spec: TensorSpec) -> bool:
        return spec.dtype.is_floating_point and not streamer.chunked(spec)

    def reader() -> None:
        try:
            wanted = [s for s in specs if whole(s)]
            advised = 0  # wanted[:advised] have been handed to the kernel
            for j, spec in enumerate(wanted):
                # Let the kernel read the next tensors while this one is merged:
                # at least the next one, and as many as fit in readahead_bytes.
                ahead = 0
                for k in range(j + 1, len(wanted)):
                    ahead += streamer.input_bytes(wanted[k])
                    if k > j + 1 and ahead > plan.readahead_bytes:
                        break
                    if k >= advised:
                        for src in streamer.sources():
                            src.advise(wanted[k].name)
                        advised = k + 1
                if not budget.acquire(streamer.input_bytes(spec)):
                    return
                if plan.mmap:
                    staged.put((spec, streamer.map(spec.name)))
                else:
                    staged.put((spec, streamer.read(spec.name)))
        except BaseException as err:  # handed to the merging thread
            staged.put((None, err))
        finally:
            staged.put(None)

    def sampler() -> None:
        # Draws the TIES brackets of each tensor the reader has read, so that
        # neither the reads nor the merge wait for the draws.
        while True:
            item = staged.get()
            if item is None:
                return
            spec, data = item
            if spec is None:
                inbox.put((None, data))
                return
            try:
                brackets = streamer.presample(spec, *data)
            except BaseException as err:
                inbox.put((None, err))
                return
            inbox.put((spec.name, (*data, brackets)))
            del item, data

    def write_loop() -> None:
        while True:
            item = outbox.get()
            if item is None:
                return
            name, tensor = item
            try:
                if not errors:
                    streamer.writer.write(name, tensor)
                    streamer.out_buffers.give([tensor])
            except BaseException as err:
                errors.append(err)
            finally:
                write_budget.release(tensor.numel() * tensor.element_size())

    threads = [
        threading.Thread(target=reader, name="merge-reader", daemon=True),
        threading.Thread(target=sampler, name="merge-sampler", daemon=True),
        threading.Thread(target=write_loop, name="merge-writer", daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        for spec, out_spec in progress(
            list(zip(specs, out_specs, strict=True)), desc="merge", total=len(specs)
        ):
            if errors:
                raise errors[0]
            if not spec.dtype.is_floating_point:
                ref = streamer.base if streamer.base is not None else streamer.models[0]
                out = ref.read_flat(spec.name).to(out_spec.dtype)
            elif not whole(spec):
                streamer.merge_chunked(spec, out_spec.dtype)
                continue
            else:
                name, data = inbox.get()
                if name is None:
                    raise data
                if name != spec.name:  # pragma: no cover - ordering bug
                    raise RuntimeError(f"reader sent {name}, expected {spec.name}")
                out = streamer.merge_whole(spec, out_spec.dtype, *data)
                if not plan.mmap:
                    streamer.buffers.give([data[0], *data[1]])
                del data
                budget.release(streamer.input_bytes(spec))
            nbytes = out.numel() * out.element_size()
            write_budget.acquire(nbytes)
            outbox.put((spec.name, out))
            del out
    finally:
        budget.close()
        outbox.put(None)
        for t in threads:
            t.join()
    if errors:
        raise errors[0]


def _load_native(
    plan: MergePlan,
    base: SafetensorsSource | None,
    models: Sequence[SafetensorsSource],
    specs: Sequence[TensorSpec],
) -> NativeTies | None:
    """The C TIES kernels, or None (logged; with ``compile: true``
    torch.compile is tried instead, with ``auto`` the eager kernels run)."""
    if plan.method != "ties" or base is None:
        return None
    first = next((s for s in specs if s.dtype.is_floating_point), None)
    if first is None:
        return None
    dtypes = {src.specs[first.name].dtype for src in (base, *models)}
    if len(dtypes) != 1 or not dtypes <= set(NATIVE_DTYPES):
        log.info("compile: no native TIES kernels for input dtypes %s", dtypes)
        return None
    t = time.perf_counter()
    try:
        native = load_native()
    except NativeBuildError as err:
        if plan.compile == "auto":
            log.info("no native TIES kernels (%s); eager kernels", err)
        else:
            log.warning(
                "compile: no native TIES kernels (%s); trying torch.compile", err
            )
        return None
    log.info("compile: native TIES kernels ready in %.2f s", time.perf_counter() - t)
    return native


def _compile_ties(
    plan: MergePlan,
    base: SafetensorsSource | None,
    models: Sequence[SafetensorsSource],
    specs: Sequence[TensorSpec],
) -> CompiledTies | None:
    """Compiled TIES kernels for the inputs' dtypes, or None (eager kernels)."""
    if plan.method != "ties" or base is None:
        log.info(
            "compile: only the TIES kernels are compiled; %s runs eagerly", plan.method
        )
        return None
    first = next((s for s in specs if s.dtype.is_floating_point), None)
    if first is None:
        return None
    t = time.perf_counter()
    try:
        compiled = CompiledTies(
            len(models),
            base.specs[first.name].dtype,
            models[0].specs[first.name].dtype,
        )
    except Exception as err:  # no C++ compiler, unsupported platform, ...
        log.warning("compile: failed (%s); using the eager kernels", err)
        return None
    compiled.seconds = time.perf_counter() - t
    log.info("compile: TIES kernels ready in %.1f s", compiled.seconds)
    return compiled


def run_merge(plan: MergePlan) -> dict[str, Any]:
    """Run a streaming merge into ``plan.output`` (assembled, then renamed).

    Returns:
        A summary: tensors, parameters, bytes written, seconds, output files,
        worker threads and how many TIES thresholds needed the fallback.

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
    if plan.compile not in (True, False, "auto"):
        raise ValueError(f"compile: got {plan.compile!r}, expected true, false or auto")
    threads = plan.threads or torch.get_num_threads()
    if threads < 1:
        raise ValueError(f"threads: got {threads}, expected at least 1")

    # Assemble in a temporary sibling, rename into place at the end.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # parallelism comes from the worker threads
    try:
        writer = ShardedWriter(tmp, out_specs, plan.max_shard_bytes, plan.flush_bytes)
        pool = _Pool(threads)
        try:
            streamer = _Streamer(plan, method, base, models, writer, pool)
            compiler = None
            if plan.compile:  # True or "auto"
                # The C kernels build in about a second (then cached).
                streamer.native = _load_native(plan, base, models, specs)
            if plan.compile is True and streamer.native is None:
                # torch.compile takes seconds: compile in the background; blocks
                # merged before the kernels are ready use the eager ones (the
                # results are the same).
                def build() -> None:
                    streamer.compiled = _compile_ties(plan, base, models, specs)

                compiler = threading.Thread(target=build, name="merge-compile")
                compiler.start()
                if plan.compile_wait:
                    compiler.join()
            # The collector would otherwise walk every object of the imported
            # libraries each time the merge's allocations trigger a full
            # collection (seconds over a large merge); objects that exist now
            # are left out of collections until the merge ends.
            gc.freeze()
            try:
                _stream_all(streamer, specs, out_specs)
            finally:
                gc.unfreeze()
                if compiler is not None:
                    compiler.join()
        finally:
            pool.close()
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
    finally:
        torch.set_num_threads(torch_threads)
    seconds = time.perf_counter() - start
    summary = {
        "method": plan.method,
        "tensors": len(specs),
        "parameters": sum(s.numel for s in specs),
        "bytes_written": sum(s.nbytes for s in out_specs),
        "seconds": seconds,
        "threads": threads,
        "threshold_fallbacks": streamer.fallbacks,
        "compiled_kernels": streamer.compiled is not None
        or streamer.native is not None,
        "kernels": "native"
        if streamer.native is not None
        else "torch.compile"
        if streamer.compiled is not None
        else "eager",
        "compile_seconds": streamer.compiled.seconds if streamer.compiled else 0.0,
        "files": [f.name for f in writer.files],
        "copied": copied,
        "output": str(out),
    }
    log.info("merged %d tensors in %.1f s -> %s", len(specs), seconds, out)
    return summary
