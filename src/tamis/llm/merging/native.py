"""The two TIES kernels of the streaming engine in C, built on first use.

``ties_native.c`` (next to this module) holds

- the **counting pass** of the exact threshold selection, for all experts in
  one pass over the base and the experts: what
  :func:`tamis.llm.merging.selection.count_band` does in about seven numpy
  passes per block and expert;
- the **TIES merge** of a block: what :func:`tamis.llm.merging.ties.ties_block`
  does in a dozen torch passes.

Both do the same float32 operations in the same order as the torch code and
give bit for bit the same results (tested, with ties, zeros, subnormals, inf
and NaN), eight lanes at a time where the CPU has AVX2 and F16C.

The library is compiled with the system C compiler (``$CC`` or ``cc``) for the
machine it runs on, in about a second, and cached under
``<tamis cache>/native/``, keyed by the source, the flags, the compiler and the
CPU, so a later process only loads it. It is written to a temporary file and
renamed into place, so concurrent processes never load half a library. Without
a C compiler :func:`load_native` raises and the caller keeps its other kernels.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tamis.llm.merging.selection import BandCount, Bracket

log = logging.getLogger(__name__)

__all__ = ["NATIVE_DTYPES", "NativeBuildError", "NativeTies", "load_native"]

SOURCE = Path(__file__).with_name("ties_native.c")
# No contraction of a * b + c into a differently rounded fused multiply-add.
FLAGS = (
    "-O3",
    "-march=native",
    "-fPIC",
    "-shared",
    "-fno-fast-math",
    "-ffp-contract=off",
)
ABI = 3

_SUFFIX = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
#: Input dtypes the kernels take (the base and every expert in one of them).
NATIVE_DTYPES = tuple(_SUFFIX)
_OUT_KIND = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}  # ties_native.c

_lock = threading.Lock()
_loaded: dict[Path, NativeTies] = {}


class NativeBuildError(RuntimeError):
    """The C kernels could not be compiled or loaded."""


def _cpu_signature() -> str:
    # -march=native code must not be reused on another CPU.
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("flags", "Features", "model name")):
                    flags += line
    except OSError:
        pass
    return platform.machine() + platform.processor() + flags


def _compiler() -> str:
    cc = os.environ.get("CC") or "cc"
    path = shutil.which(cc)
    if path is None:
        raise NativeBuildError(f"no C compiler: {cc!r} is not on PATH (set $CC)")
    return path


def _library_path(cache: Path, cc: str, flags: Sequence[str]) -> Path:
    try:
        version = subprocess.run(
            [cc, "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise NativeBuildError(f"{cc} --version failed: {err}") from err
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(flags).encode(), version.encode()):
        digest.update(part)
    digest.update(_cpu_signature().encode())
    return cache / "native" / f"ties_native-{digest.hexdigest()[:16]}.so"


def _build(cc: str, target: Path, flags: Sequence[str]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        res = subprocess.run(
            [cc, *flags, "-o", tmp, str(SOURCE), "-lm"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if res.returncode != 0:
            raise NativeBuildError(
                f"{cc} failed to compile {SOURCE.name} "
                f"(exit {res.returncode}): {res.stderr.strip()[:2000]}"
            )
        os.replace(tmp, target)
    except (OSError, subprocess.SubprocessError) as err:
        raise NativeBuildError(f"{cc} failed to compile {SOURCE.name}: {err}") from err
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_native(
    cache: str | Path | None = None, flags: Sequence[str] = FLAGS
) -> NativeTies:
    """The compiled kernels, built once per machine and cached.

    Args:
        cache: Cache root (default :func:`tamis.text.models.tamis_cache_dir`).
        flags: Compiler flags (``-DTAMIS_NO_SIMD`` added builds the scalar loop).

    Raises:
        NativeBuildError: No C compiler, or it failed, or the library does not load.
    """
    if cache is None:
        from tamis.text.models import tamis_cache_dir

        cache = tamis_cache_dir()
    cc = _compiler()
    path = _library_path(Path(cache), cc, flags)
    with _lock:
        if path in _loaded:
            return _loaded[path]
        if not path.exists():
            log.info("building the native TIES kernels -> %s", path)
            _build(cc, path, flags)
        try:
            lib = ctypes.CDLL(str(path))
            abi = lib.tamis_native_abi()
        except (OSError, AttributeError) as err:
            raise NativeBuildError(f"{path}: cannot load ({err})") from err
        if abi != ABI:
            raise NativeBuildError(f"{path}: unexpected ABI {abi}, expected {ABI}")
        kernel = NativeTies(lib)
        _loaded[path] = kernel
        return kernel


class NativeTies:
    """The loaded kernels (see the module docstring)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        p, i64 = ctypes.c_void_p, ctypes.c_int64
        self._band = {}
        self._ties = {}
        for dtype, suffix in _SUFFIX.items():
            band = getattr(lib, f"tamis_band_{suffix}")
            band.restype = ctypes.c_int
            band.argtypes = [p, p, ctypes.c_int, i64, p, p, p, p, p, p]
            self._band[dtype] = band
            ties = getattr(lib, f"tamis_ties_{suffix}")
            ties.restype = ctypes.c_int
            ties.argtypes = [
                p,
                p,
                ctypes.c_int,
                i64,
                p,
                p,
                p,
                ctypes.c_float,
                ctypes.c_int,
                p,
            ]
            self._ties[dtype] = ties

    def fits(self, base: torch.Tensor, models: Sequence[torch.Tensor]) -> bool:
        """Whether these blocks can go through the kernel (one supported dtype)."""
        return (
            base.dtype in self._band
            and base.is_contiguous()
            and base.device.type == "cpu"
            and all(
                m.dtype == base.dtype
                and m.is_contiguous()
                and m.device.type == "cpu"
                and m.numel() == base.numel()
                for m in models
            )
        )

    def count_bands(
        self,
        base: torch.Tensor,
        models: Sequence[torch.Tensor],
        brackets: Sequence[Bracket],
        scratch: Sequence[torch.Tensor] | None = None,
    ) -> list[BandCount]:
        """``count_band(|model_k - base|, bracket_k)`` for every k, in one pass.

        Args:
            base: (L,) base block (contiguous, CPU).
            models: K (L,) expert blocks of the base's dtype.
            brackets: K brackets.
            scratch: Optional K reusable float32 buffers of at least L elements
                for the band values (fresh ones are allocated otherwise).

        Returns:
            K band counts, as :func:`~tamis.llm.merging.selection.count_band`.
        """
        if not self.fits(base, models):
            raise ValueError(
                "count_bands: blocks must be contiguous CPU tensors of one dtype "
                f"among {sorted(str(d) for d in self._band)} and one length"
            )
        if len(models) != len(brackets):
            raise ValueError(
                f"count_bands: {len(models)} blocks but {len(brackets)} brackets"
            )
        k, n = len(models), base.numel()
        if scratch is None:
            bands = [torch.empty(n, dtype=torch.float32) for _ in range(k)]
        else:
            if len(scratch) != k or any(
                b.dtype != torch.float32 or b.numel() < n or not b.is_contiguous()
                for b in scratch
            ):
                raise ValueError(
                    f"count_bands: scratch must be {k} contiguous float32 buffers "
                    f"of at least {n} elements"
                )
            bands = list(scratch)
        ptrs = (ctypes.c_void_p * k)(*[m.data_ptr() for m in models])
        band_ptrs = (ctypes.c_void_p * k)(*[b.data_ptr() for b in bands])
        lo = (ctypes.c_float * k)(*[b.lo for b in brackets])
        hi = (ctypes.c_float * k)(*[b.hi for b in brackets])
        at_lo = (ctypes.c_int64 * k)()
        above = (ctypes.c_int64 * k)()
        nband = (ctypes.c_int64 * k)()
        # ctypes releases the GIL for the call, so worker threads run in parallel.
        self._band[base.dtype](
            base.data_ptr(), ptrs, k, n, lo, hi, at_lo, above, band_ptrs, nband
        )
        out = []
        for j, br in enumerate(brackets):
            if br.lo == br.hi:
                band = None
            else:
                band = bands[j][: nband[j]].clone()
            out.append(BandCount(int(at_lo[j]), int(above[j]), band))
        return out

    def writes(self, out: torch.Tensor) -> bool:
        """Whether :meth:`ties` can store its result into ``out`` directly."""
        return (
            out.dtype in _OUT_KIND and out.is_contiguous() and out.device.type == "cpu"
        )

    def ties(
        self,
        base: torch.Tensor,
        models: Sequence[torch.Tensor],
        weights: Sequence[float],
        thresholds: Sequence[float],
        scaling: float,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``base + scaling * ties_merge(...)`` of one block, as ``ties_block``.

        Args:
            base: (L,) base block (contiguous, CPU).
            models: K (L,) expert blocks of the base's dtype.
            weights: K weights.
            thresholds: K magnitude thresholds (no trimming where ``<= 0``).
            scaling: The global scaling lambda.
            out: Optional (L,) contiguous output of dtype float32, float16 or
                bfloat16 (rounded to nearest even, as torch's conversion).

        Returns:
            (L,) merged block: ``out``, or a new float32 tensor.
        """
        if not self.fits(base, models):
            raise ValueError(
                "ties: blocks must be contiguous CPU tensors of one dtype "
                f"among {sorted(str(d) for d in self._ties)} and one length"
            )
        k, n = len(models), base.numel()
        if not k or not len(weights) == len(thresholds) == k:
            raise ValueError(
                f"ties: {k} blocks, {len(weights)} weights, "
                f"{len(thresholds)} thresholds"
            )
        if out is None:
            out = torch.empty(n, dtype=torch.float32)
        if out.dtype not in _OUT_KIND or out.numel() != n or not out.is_contiguous():
            raise ValueError(
                f"ties: out must be a contiguous ({n},) float32, float16 or "
                f"bfloat16 tensor, got {out.dtype} of {out.numel()} elements"
            )
        ptrs = (ctypes.c_void_p * k)(*[m.data_ptr() for m in models])
        trim = (ctypes.c_int * k)(*[int(t > 0) for t in thresholds])
        # torch.hardshrink keeps |x| > lambda: lambda is the float just below t.
        below = (ctypes.c_float * k)(
            *[
                float(np.nextafter(np.float32(t), np.float32(0))) if t > 0 else 0.0
                for t in thresholds
            ]
        )
        w = (ctypes.c_float * k)(*weights)
        rc = self._ties[base.dtype](
            base.data_ptr(),
            ptrs,
            k,
            n,
            trim,
            below,
            w,
            scaling,
            _OUT_KIND[out.dtype],
            out.data_ptr(),
        )
        if rc != 0:
            raise MemoryError("ties: the native kernel could not allocate scratch")
        return out
