/*
 * The two TIES kernels of the streaming engine in C (see native.py).
 *
 * Everything is computed in IEEE float32 exactly as the eager torch kernels do
 * (tamis.llm.merging.selection.count_band and tamis.llm.merging.ties.ties_block),
 * in the same order: build with -ffp-contract=off and without -ffast-math, so
 * that no multiply-add is fused into a differently rounded one.
 *
 * tamis_band_*: the counting pass of the exact threshold selection. For each
 * expert k and each element i, with a = |float(model_k[i]) - float(base[i])|:
 *   at_lo[k] = #{i : a >= lo[k]},  above[k] = #{i : a > hi[k]},
 *   band[k]  = the values a with lo[k] <= a <= hi[k], in index order
 * (each band[k] must have room for n floats). NaN compares false everywhere.
 *
 * tamis_ties_*: base + scaling * (TIES merge of the K task vectors), computed in
 * float32 and stored in the output dtype (rounded to nearest even, as torch).
 *
 * Both read each input once. The counting pass walks the base in chunks that
 * stay in the L1 cache while every expert is compared with it, and appends the
 * band values of eight lanes at a time by a table-driven left-pack (no
 * branch); the merge takes eight elements of every expert at a time, with the
 * task vectors in registers for up to eight experts. With AVX2 and F16C eight
 * lanes go per step; otherwise (or with -DTAMIS_NO_SIMD) a scalar loop gives
 * the same result.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX2__) && defined(__F16C__) && !defined(TAMIS_NO_SIMD)
#include <immintrin.h>
#define TAMIS_SIMD 1
#endif

#define TAMIS_CHUNK 4096

int tamis_native_abi(void) { return 3; }

/* IEEE binary16 to binary32, exact for every value (subnormals, inf, NaN). */
static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1fu) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        /* Subnormal: normalise the mantissa. */
        exp = 113u;
        while ((man & 0x400u) == 0) {
            man <<= 1;
            exp--;
        }
        bits = sign | (exp << 23) | ((man & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline float f32_load(const float *p) { return *p; }
static inline float f16_load(const uint16_t *p) { return half_to_float(*p); }
static inline float bf16_load(const uint16_t *p) { return bf16_to_float(*p); }

/* binary32 to binary16, rounding to nearest even (as torch's conversion). */
static inline uint16_t float_to_half(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520: inf */
    if (ax < 0x38800000u) {
        /* Below 2^-14: a subnormal half, round(|f| * 2^24) (exact scaling; 1024
           becomes the smallest normal, whose encoding is the same number). */
        float v;
        memcpy(&v, &ax, sizeof v);
        return (uint16_t)(sign | (uint32_t)nearbyintf(v * 16777216.0f));
    }
    uint32_t h = ((ax >> 23) - 112u) << 10 | ((ax & 0x7fffffu) >> 13);
    uint32_t rest = ax & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

/* binary32 to bfloat16, rounding to nearest even; NaN stays NaN. */
static inline uint16_t float_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* Output dtypes of the TIES kernel. */
enum { TAMIS_OUT_F32 = 0, TAMIS_OUT_F16 = 1, TAMIS_OUT_BF16 = 2 };

static inline void store1(void *out, int kind, int64_t i, float v) {
    if (kind == TAMIS_OUT_F16) {
        ((uint16_t *)out)[i] = float_to_half(v);
    } else if (kind == TAMIS_OUT_BF16) {
        ((uint16_t *)out)[i] = float_to_bf16(v);
    } else {
        ((float *)out)[i] = v;
    }
}

#ifdef TAMIS_SIMD
static inline __m256 f32_load8(const float *p) { return _mm256_loadu_ps(p); }
static inline __m256 f16_load8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
static inline __m256 bf16_load8(const uint16_t *p) {
    __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}
#endif

#ifdef TAMIS_SIMD
/* tamis_pack[m]: the lanes whose bit is set in m, in order, then zeros. */
static int32_t tamis_pack[256][8];

__attribute__((constructor)) static void tamis_pack_init(void) {
    for (int m = 0; m < 256; m++) {
        int j = 0;
        for (int lane = 0; lane < 8; lane++)
            if (m >> lane & 1) tamis_pack[m][j++] = lane;
        while (j < 8) tamis_pack[m][j++] = 0;
    }
}

#define TAMIS_SIMD_STEPS(LOAD8)                                                  \
    for (; i + 8 <= end; i += 8) {                                               \
        __m256 a = _mm256_andnot_ps(                                             \
            sign, _mm256_sub_ps(LOAD8(mk + i), LOAD8(base + i)));                \
        unsigned ge = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a, l, _CMP_GE_OQ)); \
        unsigned gt = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a, h, _CMP_GT_OQ)); \
        cl += __builtin_popcount(ge);                                            \
        ch += __builtin_popcount(gt);                                            \
        unsigned in = ge & ~gt;                                                  \
        /* Left-pack the lanes in the band and store all eight: only the     \
           first popcount(in) count, the rest is overwritten next. No branch \
           to mispredict; nb <= i, so the store stays below out + i + 8. */  \
        __m256i perm = _mm256_loadu_si256((const __m256i *)tamis_pack[in]);     \
        _mm256_storeu_ps(out + nb, _mm256_permutevar8x32_ps(a, perm));           \
        nb += __builtin_popcount(in);                                            \
    }
#define TAMIS_SIMD_SETUP                                                         \
    const __m256 sign = _mm256_set1_ps(-0.0f);                                   \
    const __m256 l = _mm256_set1_ps(lo[k]);                                      \
    const __m256 h = _mm256_set1_ps(hi[k]);
#else
#define TAMIS_SIMD_STEPS(LOAD8)
#define TAMIS_SIMD_SETUP
#endif

#define TAMIS_BAND(NAME, T, LOAD, LOAD8)                                         \
    int NAME(const T *base, const T *const *models, int n_models, int64_t n,    \
             const float *lo, const float *hi, int64_t *at_lo, int64_t *above,  \
             float *const *band, int64_t *nband) {                               \
        for (int k = 0; k < n_models; k++) {                                     \
            at_lo[k] = 0;                                                        \
            above[k] = 0;                                                        \
            nband[k] = 0;                                                        \
        }                                                                        \
        for (int64_t start = 0; start < n; start += TAMIS_CHUNK) {               \
            int64_t end = start + TAMIS_CHUNK < n ? start + TAMIS_CHUNK : n;     \
            for (int k = 0; k < n_models; k++) {                                 \
                const T *mk = models[k];                                         \
                float *out = band[k];                                            \
                int64_t cl = at_lo[k], ch = above[k], nb = nband[k];             \
                int64_t i = start;                                               \
                TAMIS_SIMD_SETUP                                                 \
                TAMIS_SIMD_STEPS(LOAD8)                                          \
                for (; i < end; i++) {                                           \
                    float a = fabsf(LOAD(mk + i) - LOAD(base + i));              \
                    cl += a >= lo[k];                                            \
                    ch += a > hi[k];                                             \
                    if (a >= lo[k] && a <= hi[k]) out[nb++] = a;                 \
                }                                                                \
                at_lo[k] = cl;                                                   \
                above[k] = ch;                                                   \
                nband[k] = nb;                                                   \
            }                                                                    \
        }                                                                        \
        return 0;                                                                \
    }

TAMIS_BAND(tamis_band_f32, float, f32_load, f32_load8)
TAMIS_BAND(tamis_band_f16, uint16_t, f16_load, f16_load8)
TAMIS_BAND(tamis_band_bf16, uint16_t, bf16_load, bf16_load8)

/*
 * TIES merge of one block, as ties_block: for each expert k,
 *   x_k = float(model_k) - float(base), zeroed where trim[k] and
 *         -below[k] <= x_k <= below[k] (torch.hardshrink at below[k], the float
 *         just below the magnitude threshold), then times weight[k];
 *   s   = sign(x_0 + x_1 + ...) in {-1, 0, 1} (0 for NaN, as torch.sign);
 *   u_k = x_k * s, or 0 where that is negative (NaN kept, as torch.clamp);
 *   out = ((u_0 + u_1 + ...) / max(#{u_k > 0}, 1) * s + 0) * scaling + float(base),
 * stored as float32, float16 or bfloat16 (out_kind; rounding to nearest even).
 * Returns -1 if the scratch memory cannot be allocated.
 */
#define TAMIS_TIES_LANES 8

#ifdef TAMIS_SIMD
/* Eight lanes per step: the same operations in the same order as the scalar
 * loop below. Inlined with K a constant up to eight (see TAMIS_TIES_BLOCKS),
 * the loops over the experts unroll and the task vectors stay in registers;
 * more experts keep theirs in `heap` (K vectors, 32-byte aligned).
 * Returns the index after the last full group of eight. */
#define TAMIS_TIES_REG(NAME, T, LOAD8)                                           \
    static inline __attribute__((always_inline)) int64_t NAME(                  \
        const T *base, const T *const *models, const int K, int64_t n,          \
        const int *trim, const float *below, const float *weight,               \
        float scaling, int out_kind, void *out, __m256 *heap) {                  \
        const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);     \
        const __m256 sc = _mm256_set1_ps(scaling);                               \
        __m256 local[8];                                                         \
        __m256 *xs = K <= 8 ? local : heap;                                      \
        int64_t i = 0;                                                           \
        for (; i + 8 <= n; i += 8) {                                             \
            __m256 b = LOAD8(base + i);                                          \
            __m256 elected = zero;                                               \
            for (int k = 0; k < K; k++) {                                        \
                __m256 x = _mm256_sub_ps(LOAD8(models[k] + i), b);               \
                if (trim[k]) {                                                   \
                    __m256 lb = _mm256_set1_ps(below[k]);                        \
                    __m256 small = _mm256_and_ps(                                \
                        _mm256_cmp_ps(x, _mm256_sub_ps(zero, lb), _CMP_GE_OQ),   \
                        _mm256_cmp_ps(x, lb, _CMP_LE_OQ));                       \
                    x = _mm256_andnot_ps(small, x);                              \
                }                                                                \
                x = _mm256_mul_ps(x, _mm256_set1_ps(weight[k]));                 \
                elected = k == 0 ? x : _mm256_add_ps(elected, x);                \
                xs[k] = x;                                                       \
            }                                                                    \
            __m256 s = _mm256_sub_ps(                                            \
                _mm256_and_ps(_mm256_cmp_ps(elected, zero, _CMP_GT_OQ), one),    \
                _mm256_and_ps(_mm256_cmp_ps(elected, zero, _CMP_LT_OQ), one));   \
            __m256 total = zero, count = zero;                                   \
            for (int k = 0; k < K; k++) {                                        \
                __m256 v = _mm256_mul_ps(xs[k], s);                              \
                __m256 u = _mm256_andnot_ps(_mm256_cmp_ps(v, zero, _CMP_LT_OQ), v); \
                total = k == 0 ? u : _mm256_add_ps(total, u);                    \
                count = _mm256_add_ps(                                           \
                    count, _mm256_and_ps(_mm256_cmp_ps(u, zero, _CMP_GT_OQ), one)); \
            }                                                                    \
            __m256 merged = _mm256_div_ps(total, _mm256_max_ps(count, one));     \
            merged = _mm256_add_ps(_mm256_mul_ps(merged, s), zero);              \
            merged = _mm256_add_ps(_mm256_mul_ps(merged, sc), b);                \
            if (out_kind == TAMIS_OUT_F32) {                                     \
                _mm256_storeu_ps((float *)out + i, merged);                      \
            } else if (out_kind == TAMIS_OUT_F16) {                              \
                _mm_storeu_si128((__m128i *)((uint16_t *)out + i),               \
                                 _mm256_cvtps_ph(merged, _MM_FROUND_TO_NEAREST_INT)); \
            } else {                                                             \
                float lanes[8];                                                  \
                _mm256_storeu_ps(lanes, merged);                                 \
                for (int j = 0; j < 8; j++) store1(out, out_kind, i + j, lanes[j]); \
            }                                                                    \
        }                                                                        \
        return i;                                                                \
    }

TAMIS_TIES_REG(ties_reg_f32, float, f32_load8)
TAMIS_TIES_REG(ties_reg_f16, uint16_t, f16_load8)
TAMIS_TIES_REG(ties_reg_bf16, uint16_t, bf16_load8)

#define TAMIS_TIES_CALL(REG, K)                                                  \
    i0 = REG(base, models, K, n, trim, below, weight, scaling, out_kind, out, \
             (__m256 *)xs)
#define TAMIS_TIES_BLOCKS(REG)                                                   \
    switch (n_models) {                                                          \
    case 1: TAMIS_TIES_CALL(REG, 1); break;                                      \
    case 2: TAMIS_TIES_CALL(REG, 2); break;                                      \
    case 3: TAMIS_TIES_CALL(REG, 3); break;                                      \
    case 4: TAMIS_TIES_CALL(REG, 4); break;                                      \
    case 5: TAMIS_TIES_CALL(REG, 5); break;                                      \
    case 6: TAMIS_TIES_CALL(REG, 6); break;                                      \
    case 7: TAMIS_TIES_CALL(REG, 7); break;                                      \
    case 8: TAMIS_TIES_CALL(REG, 8); break;                                      \
    default: TAMIS_TIES_CALL(REG, n_models); break;                              \
    }
#else
#define TAMIS_TIES_BLOCKS(REG)
#endif

#define TAMIS_TIES(NAME, T, LOAD, REG)                                    \
    int NAME(const T *base, const T *const *models, int n_models, int64_t n,    \
             const int *trim, const float *below, const float *weight,          \
             float scaling, int out_kind, void *out) {                           \
        /* Eight lanes of every expert's task vector (heap of the SIMD loop, \
           first lanes only in the scalar one), 32-byte aligned. */          \
        float *xs = aligned_alloc(32, sizeof(float) * TAMIS_TIES_LANES *         \
                                          (size_t)n_models);                     \
        if (xs == NULL) return -1;                                               \
        int64_t i0 = 0;                                                          \
        TAMIS_TIES_BLOCKS(REG)                                                   \
        for (int64_t i = i0; i < n; i++) {                                       \
            float b = LOAD(base + i), elected = 0.0f;                            \
            for (int k = 0; k < n_models; k++) {                                 \
                float x = LOAD(models[k] + i) - b;                               \
                if (trim[k] && x >= -below[k] && x <= below[k]) x = 0.0f;        \
                x = x * weight[k];                                               \
                elected = k == 0 ? x : elected + x;                              \
                xs[k] = x;                                                       \
            }                                                                    \
            float s = (float)(elected > 0.0f) - (float)(elected < 0.0f);         \
            float total = 0.0f, count = 0.0f;                                    \
            for (int k = 0; k < n_models; k++) {                                 \
                float v = xs[k] * s;                                             \
                float u = v < 0.0f ? 0.0f : v;                                   \
                total = k == 0 ? u : total + u;                                  \
                count = count + (float)(u > 0.0f);                               \
            }                                                                    \
            float merged = total / (count > 1.0f ? count : 1.0f);                \
            merged = merged * s + 0.0f;                                          \
            store1(out, out_kind, i, merged * scaling + b);                      \
        }                                                                        \
        free(xs);                                                                \
        return 0;                                                                \
    }

TAMIS_TIES(tamis_ties_f32, float, f32_load, ties_reg_f32)
TAMIS_TIES(tamis_ties_f16, uint16_t, f16_load, ties_reg_f16)
TAMIS_TIES(tamis_ties_bf16, uint16_t, bf16_load, ties_reg_bf16)
