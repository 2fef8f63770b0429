"""The TIES counting pass as a small C kernel, built on first use.

:func:`tamis.llm.merging.selection.count_band` makes about seven numpy passes
over each block and expert; ``band_count.c`` (next to this module) does the
same work in one pass over the base and all experts, eight lanes at a time
where the CPU has AVX2 and F16C. It gives exactly the same counts and band
values (tested against ``count_band``).

The library is compiled with the system C compiler (``$CC`` or ``cc``) for the
machine it runs on and cached under ``<tamis cache>/native/``, keyed by the
source, the compiler and the CPU, so a later process loads it in milliseconds.
It is written to a temporary file and renamed into place, so concurrent
processes never load half a library. Without a C compiler :func:`load_band_kernel`
raises and the caller keeps its other kernels.
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

import torch

from tamis.llm.merging.selection import BandCount, Bracket

log = logging.getLogger(__name__)

__all__ = ["NativeBand", "NativeBuildError", "load_band_kernel"]

SOURCE = Path(__file__).with_name("band_count.c")
FLAGS = ("-O3", "-march=native", "-fPIC", "-shared", "-fno-fast-math")

_SYMBOLS = {
    torch.float32: "tamis_band_f32",
    torch.float16: "tamis_band_f16",
    torch.bfloat16: "tamis_band_bf16",
}

_lock = threading.Lock()
_loaded: dict[Path, NativeBand] = {}


class NativeBuildError(RuntimeError):
    """The C kernel could not be compiled or loaded."""


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
    return cache / "native" / f"band_count-{digest.hexdigest()[:16]}.so"


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


def load_band_kernel(
    cache: str | Path | None = None, flags: Sequence[str] = FLAGS
) -> NativeBand:
    """The compiled counting kernel, built once per machine and cached.

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
            log.info("building the native TIES counting kernel -> %s", path)
            _build(cc, path, flags)
        try:
            lib = ctypes.CDLL(str(path))
            abi = lib.tamis_band_abi()
        except (OSError, AttributeError) as err:
            raise NativeBuildError(f"{path}: cannot load ({err})") from err
        if abi != 1:
            raise NativeBuildError(f"{path}: unexpected ABI {abi}, expected 1")
        kernel = NativeBand(lib)
        _loaded[path] = kernel
        return kernel


class NativeBand:
    """The loaded kernel (see the module docstring)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self._fns = {}
        p = ctypes.c_void_p
        for dtype, symbol in _SYMBOLS.items():
            fn = getattr(lib, symbol)
            fn.restype = ctypes.c_int
            fn.argtypes = [p, p, ctypes.c_int, ctypes.c_int64, p, p, p, p, p, p]
            self._fns[dtype] = fn

    def fits(self, base: torch.Tensor, models: Sequence[torch.Tensor]) -> bool:
        """Whether these blocks can go through the kernel (one supported dtype)."""
        return (
            base.dtype in self._fns
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
    ) -> list[BandCount]:
        """``count_band(|model_k - base|, bracket_k)`` for every k, in one pass.

        Args:
            base: (L,) base block (contiguous, CPU).
            models: K (L,) expert blocks of the base's dtype.
            brackets: K brackets.

        Returns:
            K band counts, as :func:`~tamis.llm.merging.selection.count_band`.
        """
        if not self.fits(base, models):
            raise ValueError(
                "count_bands: blocks must be contiguous CPU tensors of one dtype "
                f"among {sorted(str(d) for d in self._fns)} and one length"
            )
        if len(models) != len(brackets):
            raise ValueError(
                f"count_bands: {len(models)} blocks but {len(brackets)} brackets"
            )
        k, n = len(models), base.numel()
        bands = [torch.empty(n, dtype=torch.float32) for _ in range(k)]
        ptrs = (ctypes.c_void_p * k)(*[m.data_ptr() for m in models])
        band_ptrs = (ctypes.c_void_p * k)(*[b.data_ptr() for b in bands])
        lo = (ctypes.c_float * k)(*[b.lo for b in brackets])
        hi = (ctypes.c_float * k)(*[b.hi for b in brackets])
        at_lo = (ctypes.c_int64 * k)()
        above = (ctypes.c_int64 * k)()
        nband = (ctypes.c_int64 * k)()
        # ctypes releases the GIL for the call, so worker threads run in parallel.
        self._fns[base.dtype](
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
