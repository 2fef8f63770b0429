"""The C counting kernel gives exactly what ``selection.count_band`` gives."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from tamis.llm.merging.native import (
    FLAGS,
    NativeBand,
    NativeBuildError,
    load_band_kernel,
)
from tamis.llm.merging.selection import Bracket, count_band

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")

DTYPES = [torch.float16, torch.bfloat16, torch.float32]


@pytest.fixture(scope="module", params=["simd", "scalar"])
def kernel(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    flags = FLAGS if request.param == "simd" else (*FLAGS, "-DTAMIS_NO_SIMD")
    return load_band_kernel(tmp_path_factory.mktemp("native"), flags=flags)


def _reference(base: torch.Tensor, model: torch.Tensor, br: Bracket):
    return count_band((model.to(torch.float32) - base.to(torch.float32)).abs(), br)


def _same(a, b) -> None:
    assert (a.at_least_lo, a.above_hi) == (b.at_least_lo, b.above_hi)
    if b.band is None:
        assert a.band is None
    else:
        assert a.band is not None
        assert torch.equal(a.band.view(torch.int32), b.band.view(torch.int32))


def _awkward(n: int, dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
    # Base and three experts with exact ties, zeros, subnormals, inf and NaN.
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(n, generator=gen) * 0.02
    out = [base]
    for _ in range(3):
        m = base + torch.randn(n, generator=gen) * 1e-3
        m[torch.rand(n, generator=gen) < 0.1] = 0.0
        same = torch.rand(n, generator=gen) < 0.1
        m[same] = base[same]
        m[torch.rand(n, generator=gen) < 0.02] = 3e-6  # fp16 subnormal
        out.append(m)
    out = [t.to(dtype) for t in out]
    out[1][5 % n] = math.inf
    out[2][7 % n] = math.nan
    out[0][11 % n] = math.nan
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 8, 4096, 4097, 10_003])
def test_counts_and_bands_equal_count_band(
    kernel: NativeBand, dtype: torch.dtype, n: int
) -> None:
    base, *models = _awkward(n, dtype, seed=n)
    a = (models[0].float() - base.float()).abs()
    finite = a[a.isfinite()]
    mid = float(finite.median()) if finite.numel() else 0.0
    brackets = [
        Bracket(n=n, k=1, lo=mid * 0.5, hi=mid * 2.0),
        Bracket(n=n, k=1, lo=0.0, hi=math.inf),
        Bracket(n=n, k=1, lo=mid, hi=mid),  # lo == hi: no band returned
    ]
    got = kernel.count_bands(base, models, brackets)
    for g, m, br in zip(got, models, brackets, strict=True):
        _same(g, _reference(base, m, br))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_every_16_bit_pattern_converts_exactly(
    kernel: NativeBand, dtype: torch.dtype
) -> None:
    # With a zero base and an open bracket the band is |model| in float32:
    # every one of the 65,536 bit patterns (subnormals, inf, NaN) is checked.
    model = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16)
    model = model.view(dtype)
    base = torch.zeros_like(model)
    br = Bracket(n=model.numel(), k=1, lo=0.0, hi=math.inf)
    (got,) = kernel.count_bands(base, [model], [br])
    want = model.to(torch.float32).abs()
    want = want[~want.isnan()]
    assert got.band is not None
    assert torch.equal(got.band.view(torch.int32), want.view(torch.int32))
    assert got.at_least_lo == want.numel() and got.above_hi == 0


def test_rejects_mixed_dtypes_and_mismatched_brackets(kernel: NativeBand) -> None:
    base = torch.zeros(16, dtype=torch.float16)
    br = Bracket(n=16, k=1, lo=0.0, hi=1.0)
    assert not kernel.fits(base, [torch.zeros(16, dtype=torch.float32)])
    with pytest.raises(ValueError, match="one dtype"):
        kernel.count_bands(base, [torch.zeros(16, dtype=torch.float32)], [br])
    with pytest.raises(ValueError, match="1 blocks but 2 brackets"):
        kernel.count_bands(base, [torch.zeros(16, dtype=torch.float16)], [br, br])


def test_missing_compiler_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-here")
    with pytest.raises(NativeBuildError, match="no-such-compiler-here"):
        load_band_kernel(tmp_path)


def test_compiler_errors_are_reported(tmp_path: Path) -> None:
    with pytest.raises(NativeBuildError, match="failed to compile"):
        load_band_kernel(tmp_path, flags=(*FLAGS, "-DTAMIS_BAND_ABI_TEST", "-xnone-"))
    assert not list((tmp_path / "native").glob("*.so"))  # nothing half-written
