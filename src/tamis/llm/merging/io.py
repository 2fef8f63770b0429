"""Lazy safetensors reading and a streaming, sharded safetensors writer.

The reader takes each tensor's byte range from the file header and reads it
with ``os.pread`` into memory of its own (no memory map), so the pages of the
inputs never count towards the process's resident memory and reads release
the interpreter lock (a reader thread can prefetch while others compute).
The writer lays out every shard's header from the tensor shapes in advance and
then writes each block of rows at its final byte offset, so an output tensor
never has to exist whole in memory.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import queue
import shutil
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from tamis.core.io import atomic_write_json, fsync_dir

__all__ = [
    "SafetensorsSource",
    "ShardedWriter",
    "TensorSpec",
    "weight_files",
    "copy_non_weight_files",
]

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def dtype_name(dtype: torch.dtype) -> str:
    """safetensors' name of a torch dtype (``F16``, ``BF16``, ...)."""
    if dtype not in _NAMES:
        raise ValueError(f"dtype {dtype} is not supported by the merge engine")
    return _NAMES[dtype]


def weight_files(model_dir: str | Path) -> list[Path]:
    """The safetensors files of a Hugging Face model directory.

    Raises:
        FileNotFoundError: If the directory or its weights are missing.
        ValueError: If the shard index is malformed or names a missing file.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: model directory not found")
    index = model_dir / INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{index}: malformed shard index ({err})") from None
        files = [model_dir / f for f in sorted(set(weight_map.values()))]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{index}: names missing shard {missing[0]}")
        return files
    if (model_dir / SINGLE).is_file():
        return [model_dir / SINGLE]
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(
            f"{model_dir}: no safetensors weights (expected {SINGLE} or {INDEX})"
        )
    return files


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one tensor."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * torch.empty((), dtype=self.dtype).element_size()


class SafetensorsSource:
    """Read tensors, or blocks of their rows, from a model directory on demand.

    Args:
        model_dir: A directory with ``model.safetensors`` or sharded files.

    Raises:
        FileNotFoundError: If the weights are missing.
        ValueError: If a file is not a readable safetensors file.
    """

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = Path(model_dir)
        self._file: dict[str, Path] = {}
        self._start: dict[str, int] = {}  # absolute byte offset of the data
        self.specs: dict[str, TensorSpec] = {}
        for path in weight_files(self.model_dir):
            data_start, ranges = _header_offsets(path)
            try:
                with safe_open(str(path), framework="pt") as fh:
                    for name in fh.keys():  # noqa: SIM118 - safe_open is no dict
                        sl = fh.get_slice(name)
                        dtype = _DTYPES.get(sl.get_dtype())
                        if dtype is None:
                            raise ValueError(
                                f"{path}: {name}: unsupported dtype {sl.get_dtype()}"
                            )
                        spec = TensorSpec(name, tuple(sl.get_shape()), dtype)
                        begin, end = ranges[name]
                        if end - begin != spec.nbytes:
                            raise ValueError(
                                f"{path}: {name}: {end - begin} bytes for shape "
                                f"{spec.shape} {sl.get_dtype()}"
                            )
                        self.specs[name] = spec
                        self._file[name] = path
                        self._start[name] = data_start + begin
            except ValueError:
                raise
            except Exception as err:  # safetensors raises its own error types
                raise ValueError(
                    f"{path}: not a readable safetensors file: {err}"
                ) from None

    def names(self) -> list[str]:
        """Tensor names in file order, then name order."""
        return sorted(self.specs, key=lambda n: (str(self._file[n]), n))

    def byte_range(
        self, name: str, rows: tuple[int, int] | None = None
    ) -> tuple[Path, int, int]:
        """File, absolute offset and length of tensor ``name`` (or of its rows)."""
        if name not in self.specs:
            raise KeyError(f"{self.model_dir}: has no tensor {name!r}")
        spec = self.specs[name]
        start = self._start[name]
        if rows is None or not spec.shape:
            return self._file[name], start, spec.nbytes
        row_bytes = spec.nbytes // spec.shape[0]
        return (
            self._file[name],
            start + rows[0] * row_bytes,
            (rows[1] - rows[0]) * (row_bytes),
        )

    def read_flat(
        self,
        name: str,
        rows: tuple[int, int] | None = None,
        alloc: Callable[[int], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Tensor ``name`` (or rows ``[r0, r1)``) as a 1-D tensor.

        Args:
            name: Tensor name.
            rows: Optional row range.
            alloc: Optional ``alloc(nbytes) -> uint8 tensor`` for the memory
                (default: a fresh tensor).
        """
        path, offset, length = self.byte_range(name, rows)
        if alloc is None:
            raw = torch.empty(length, dtype=torch.uint8)
        else:
            raw = alloc(length)
        _pread_into(path, raw, offset)
        return raw.view(self.specs[name].dtype)

    def map_flat(self, name: str) -> torch.Tensor:
        """Tensor ``name`` as a read-only 1-D view of a memory map of its bytes.

        The pages are faulted in by ``mmap`` itself (``MAP_POPULATE``, in the
        calling thread), so later reads cost no copy and no page faults; the
        mapping is released with the returned tensor object, so views of it
        must not outlive it. Falls back to a copy
        (:meth:`read_flat`) where the data is not aligned for its dtype.
        """
        path, offset, length = self.byte_range(name)
        dtype = self.specs[name].dtype
        size = self.specs[name].nbytes // max(self.specs[name].numel, 1)
        if length == 0 or offset % size:
            return self.read_flat(name)
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        fd = os.open(path, os.O_RDONLY)
        try:
            mm = mmap.mmap(
                fd,
                length + offset - start,
                flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
                prot=mmap.PROT_READ,
                offset=start,
            )
        finally:
            os.close(fd)
        with warnings.catch_warnings():
            # The view is never written; torch warns about read-only buffers.
            warnings.simplefilter("ignore", UserWarning)
            flat = torch.frombuffer(
                mm, dtype=dtype, count=self.specs[name].numel, offset=offset - start
            )
        # frombuffer does not keep the map alive: the tensor object must (views
        # of it are only valid while it lives).
        flat._tamis_mmap = mm  # type: ignore[attr-defined]
        return flat

    def read(self, name: str, rows: tuple[int, int] | None = None) -> torch.Tensor:
        """The tensor ``name`` (or rows ``[r0, r1)`` of it) in its stored dtype."""
        spec = self.specs.get(name)
        if spec is None:
            raise KeyError(f"{self.model_dir}: has no tensor {name!r}")
        flat = self.read_flat(name, rows)
        if rows is None or not spec.shape:
            return flat.view(spec.shape)
        return flat.view(rows[1] - rows[0], *spec.shape[1:])

    def advise(self, name: str) -> None:
        """Ask the kernel to start reading tensor ``name`` into the page cache."""
        path, offset, length = self.byte_range(name)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)


def _header_offsets(path: Path) -> tuple[int, dict[str, tuple[int, int]]]:
    # safetensors layout: u64 little-endian header size, JSON header, data.
    try:
        with open(path, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(size))
        ranges = {
            name: (int(v["data_offsets"][0]), int(v["data_offsets"][1]))
            for name, v in header.items()
            if name != "__metadata__"
        }
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a readable safetensors file: {err}") from None
    return 8 + size, ranges


def _pread_into(path: Path, out: torch.Tensor, offset: int) -> None:
    # Fill the uint8 tensor ``out`` from ``path`` at ``offset`` (loops over
    # short reads; os.preadv releases the interpreter lock).
    view = memoryview(out.numpy())
    fd = os.open(path, os.O_RDONLY)
    try:
        done = 0
        while done < len(view):
            got = os.preadv(fd, [view[done:]], offset + done)
            if got <= 0:
                raise ValueError(f"{path}: file ends inside a tensor")
            done += got
    finally:
        os.close(fd)


class ShardedWriter:
    """Write a model's tensors into pre-laid-out safetensors shards.

    Args:
        out_dir: Directory receiving the shards (created).
        specs: Output tensors in write order.
        max_shard_bytes: Largest shard size; a tensor larger than this gets a
            shard of its own.
        flush_bytes: When positive, a background thread flushes a shard to
            disk (``fdatasync``) each time this many bytes have been written
            to it, so that the disk writes overlap the merge instead of all
            waiting for the final ``fsync`` in :meth:`close`. 0 = only there.
    """

    def __init__(
        self,
        out_dir: str | Path,
        specs: Sequence[TensorSpec],
        max_shard_bytes: int,
        flush_bytes: int = 0,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)

        # Assign tensors to shards in order.
        shards: list[list[TensorSpec]] = [[]]
        size = 0
        for spec in specs:
            if shards[-1] and size + spec.nbytes > max_shard_bytes:
                shards.append([])
                size = 0
            shards[-1].append(spec)
            size += spec.nbytes
        n = len(shards)
        names = (
            [SINGLE]
            if n == 1
            else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
        )

        # Write each shard's header now; data offsets are then fixed.
        self._where: dict[str, tuple[int, int, TensorSpec]] = {}  # fd, start, spec
        self._fds: list[int] = []
        self.files = [self.out_dir / name for name in names]
        for path, shard in zip(self.files, shards, strict=True):
            header: dict[str, object] = {"__metadata__": {"format": "pt"}}
            offset = 0
            for spec in shard:
                header[spec.name] = {
                    "dtype": dtype_name(spec.dtype),
                    "shape": list(spec.shape),
                    "data_offsets": [offset, offset + spec.nbytes],
                }
                offset += spec.nbytes
            raw = json.dumps(header, separators=(",", ":")).encode()
            raw += b" " * (-len(raw) % 8)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            os.pwrite(fd, len(raw).to_bytes(8, "little") + raw, 0)
            os.ftruncate(fd, 8 + len(raw) + offset)
            self._fds.append(fd)
            start = 8 + len(raw)
            for spec in shard:
                self._where[spec.name] = (fd, start, spec)
                start += spec.nbytes
        self._weight_map = {
            spec.name: path.name
            for path, shard in zip(self.files, shards, strict=True)
            for spec in shard
        }
        self.flush_bytes = flush_bytes
        self._dirty = dict.fromkeys(self._fds, 0)
        self._lock = threading.Lock()
        self._flushes: queue.Queue = queue.Queue()
        self._flush_error: list[BaseException] = []
        self._flusher: threading.Thread | None = None
        if flush_bytes > 0:
            self._flusher = threading.Thread(
                target=self._flush_loop, name="merge-flusher", daemon=True
            )
            self._flusher.start()

    def _flush_loop(self) -> None:
        # fdatasync releases the interpreter lock; errors surface in close().
        while (fd := self._flushes.get()) is not None:
            try:
                if not self._flush_error:
                    os.fdatasync(fd)
            except OSError as err:
                self._flush_error.append(err)

    def write(self, name: str, block: torch.Tensor, first_row: int = 0) -> None:
        """Write ``block`` (rows ``first_row ..`` of tensor ``name``) in place."""
        fd, start, spec = self._where[name]
        if block.dtype != spec.dtype:
            raise ValueError(
                f"{name}: block dtype {block.dtype}, expected {spec.dtype}"
            )
        row_bytes = spec.nbytes // spec.shape[0] if spec.shape else spec.nbytes
        data = block.contiguous().reshape(-1).view(torch.uint8).numpy()
        os.pwrite(fd, memoryview(data), start + first_row * row_bytes)
        if self._flusher is not None:
            with self._lock:
                self._dirty[fd] += data.nbytes
                due = self._dirty[fd] >= self.flush_bytes
                if due:
                    self._dirty[fd] = 0
            if due:
                self._flushes.put(fd)

    def close(self) -> None:
        """Flush the shards to disk and write the index for sharded output."""
        if self._flusher is not None:
            self._flushes.put(None)
            self._flusher.join()
            self._flusher = None
        try:
            if self._flush_error:
                raise self._flush_error[0]
            for fd in self._fds:
                os.fsync(fd)
        finally:
            for fd in self._fds:
                os.close(fd)
            self._fds = []
        if len(self.files) > 1:
            total = sum(s.nbytes for _, _, s in self._where.values())
            atomic_write_json(
                self.out_dir / INDEX,
                {"metadata": {"total_size": total}, "weight_map": self._weight_map},
            )
        fsync_dir(self.out_dir)


def copy_non_weight_files(src: str | Path, dst: str | Path) -> list[str]:
    """Copy config, tokenizer and other small files (not the weights).

    Returns:
        Names of the copied files.
    """
    copied = []
    for path in sorted(Path(src).iterdir()):
        skip = path.suffix in {".safetensors", ".bin", ".pt", ".gguf"}
        if path.is_file() and not skip and path.name != INDEX:
            shutil.copy2(path, Path(dst) / path.name)
            copied.append(path.name)
    return copied
