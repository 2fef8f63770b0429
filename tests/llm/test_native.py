"""The C TIES kernels give exactly what the eager torch kernels give."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from tamis.llm.merging.base import MergeParams, Workspace
from tamis.llm.merging.native import (
    FLAGS,
    NativeBuildError,
    NativeTies,
    load_native,
)
from tamis.llm.merging.selection import Bracket, count_band
from tamis.llm.merging.ties import ties_block

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")

DTYPES = [torch.float16, torch.bfloat16, torch.float32]


@pytest.fixture(scope="module", params=["simd", "scalar"])
def kernel(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    flags = FLAGS if request.param == "simd" else (*FLAGS, "-DTAMIS_NO_SIMD")
    return load_native(tmp_path_factory.mktemp("native"), flags=flags)


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
    kernel: NativeTies, dtype: torch.dtype, n: int
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


@pytest.mark.parametrize("n", [8, 9, 4096, 4103])
def test_band_writes_stay_inside_n_elements_of_the_scratch(
    kernel: NativeTies, n: int
) -> None:
    # Every value in the band (the most the kernel ever stores), scratch
    # buffers of exactly n elements followed by sentinels.
    base, *models = (t.to(torch.float16) for t in torch.randn(4, n).unbind())
    full = Bracket(n=n, k=1, lo=0.0, hi=math.inf)
    buffers = [torch.full((n + 16,), -7.0) for _ in models]
    got = kernel.count_bands(base, models, [full] * 3, [b[:n] for b in buffers])
    for g, m, buf in zip(got, models, buffers, strict=True):
        _same(g, _reference(base, m, full))
        assert g.band is not None and g.band.numel() == n
        assert torch.equal(buf[n:], torch.full((16,), -7.0))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_every_16_bit_pattern_converts_exactly(
    kernel: NativeTies, dtype: torch.dtype
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


def test_rejects_mixed_dtypes_and_mismatched_brackets(kernel: NativeTies) -> None:
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
        load_native(tmp_path)


def test_compiler_errors_are_reported(tmp_path: Path) -> None:
    with pytest.raises(NativeBuildError, match="failed to compile"):
        load_native(tmp_path, flags=(*FLAGS, "-xnone-"))
    assert not list((tmp_path / "native").glob("*.so"))  # nothing half-written


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    # Bit for bit (so +0 and -0 differ); NaN payloads are not compared.
    nan = a.isnan()
    return torch.equal(nan, b.isnan()) and torch.equal(
        a[~nan].view(torch.int32), b[~nan].view(torch.int32)
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 9, 4096, 10_003])
@pytest.mark.parametrize(
    ("weights", "thresholds", "scaling"),
    [
        ([1.0, 1.0, 1.0], [1e-3, 5e-4, 2e-3], 1.0),
        ([1.0, 0.6, 1.3], [0.0, 1e-3, math.inf], 0.7),  # no trim, trim all
        ([0.5, 2.0, -1.0], [3e-6, 3e-6, 3e-6], -0.3),  # at the subnormals
    ],
)
def test_ties_kernel_equals_ties_block(
    kernel: NativeTies,
    dtype: torch.dtype,
    n: int,
    weights: list[float],
    thresholds: list[float],
    scaling: float,
) -> None:
    base, *models = _awkward(n, dtype, seed=n + 1)
    thresholds = [float(torch.tensor(t, dtype=torch.float32)) for t in thresholds]
    params = MergeParams(scaling=scaling, weights=weights, densities=[0.5] * 3)
    want = ties_block(base, models, params, {"thresholds": thresholds}, Workspace())
    got = kernel.ties(base, models, weights, thresholds, scaling)
    assert _same_bits(got, want)


@pytest.mark.parametrize("k", range(1, 11))
def test_ties_kernel_with_one_expert_and_many(kernel: NativeTies, k: int) -> None:
    # Each expert count has its own unrolled loop (up to eight), then a general
    # one; distinct experts, so that signs disagree and counts vary.
    gen = torch.Generator().manual_seed(5 + k)
    base = torch.randn(777, generator=gen).half()
    for _ in range(2):
        models = [
            (base.float() + torch.randn(777, generator=gen) * 0.01).half()
            for _ in range(k)
        ]
        models[0][:5] = base[:5]  # zero task vector entries
        params = MergeParams(scaling=0.9, weights=[1.0] * k, densities=[0.5] * k)
        thresholds = [0.004] * k
        want = ties_block(base, models, params, {"thresholds": thresholds}, Workspace())
        out = torch.empty(777)
        got = kernel.ties(base, models, params.weights, thresholds, 0.9, out=out)
        assert got.data_ptr() == out.data_ptr()
        assert _same_bits(got, want)


def test_ties_kernel_rejects_bad_arguments(kernel: NativeTies) -> None:
    base = torch.zeros(16, dtype=torch.float16)
    m = torch.zeros(16, dtype=torch.float16)
    with pytest.raises(ValueError, match="1 blocks, 2 weights"):
        kernel.ties(base, [m], [1.0, 1.0], [0.1], 1.0)
    with pytest.raises(ValueError, match="contiguous \\(16,\\) float32"):
        kernel.ties(base, [m], [1.0], [0.1], 1.0, out=torch.empty(8))
    with pytest.raises(ValueError, match="got torch.int32"):
        kernel.ties(base, [m], [1.0], [0.1], 1.0, out=torch.empty(16).int())
    with pytest.raises(ValueError, match="one dtype"):
        kernel.ties(base, [m.float()], [1.0], [0.1], 1.0)


@pytest.mark.parametrize("out_dtype", [torch.float16, torch.bfloat16])
def test_ties_kernel_rounds_its_output_like_torch(
    kernel: NativeTies, out_dtype: torch.dtype
) -> None:
    # Results spread over every binade of the output dtype, with its
    # subnormals, overflow and exact halfway cases: the fused store must round
    # as torch's float32 -> 16-bit conversion does.
    gen = torch.Generator().manual_seed(2)
    n = 200_003
    mags = torch.exp2(torch.empty(n).uniform_(-30, 18, generator=gen))
    base = (mags * torch.randn(n, generator=gen).sign()).to(torch.float32)
    halfway = torch.arange(4096, dtype=torch.int32) << 12 | 0x1000  # f16 ties
    base[: halfway.numel()] = (halfway + 0x38800000).view(torch.float32)
    base[-3:] = torch.tensor([65519.0, 65520.0, -65536.0])
    model = torch.zeros(n)
    want = ties_block(
        base,
        [model],
        MergeParams(scaling=0.0, weights=[1.0], densities=[1.0]),
        {"thresholds": [0.0]},
        Workspace(),
    ).to(out_dtype)
    out = torch.empty(n, dtype=out_dtype)
    kernel.ties(base, [model], [1.0], [0.0], 0.0, out=out)
    assert _same_bits(out.float(), want.float())
    assert torch.equal(out.view(torch.int16), want.view(torch.int16))
