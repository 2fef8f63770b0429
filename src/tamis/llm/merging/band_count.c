/*
 * Counting pass of the exact TIES threshold selection, for all experts at once.
 *
 * For each expert k and each element i, with a = |float(model_k[i]) - float(base[i])|
 * computed in IEEE float32 (no contraction, no fast-math):
 *   at_lo[k]  = #{i : a >= lo[k]}
 *   above[k]  = #{i : a >  hi[k]}
 *   band[k]   = the values a with lo[k] <= a <= hi[k], in index order
 * NaN compares false everywhere, so it is never counted and never in a band.
 * This is what tamis.llm.merging.selection.count_band computes, in one pass
 * over the inputs instead of one pass per operation.
 *
 * Each band[k] must have room for n floats. The base block is walked in
 * chunks that stay in the L1 cache while every expert is compared with it.
 * With AVX2 and F16C, eight lanes are compared per step and the few band
 * values are picked out of the comparison masks; otherwise (or with
 * -DTAMIS_NO_SIMD) a scalar loop gives the same result.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX2__) && defined(__F16C__) && !defined(TAMIS_NO_SIMD)
#include <immintrin.h>
#define TAMIS_SIMD 1
#endif

#define TAMIS_CHUNK 4096

int tamis_band_abi(void) { return 1; }

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
#define TAMIS_SIMD_STEPS(LOAD8)                                                  \
    for (; i + 8 <= end; i += 8) {                                               \
        __m256 a = _mm256_andnot_ps(                                             \
            sign, _mm256_sub_ps(LOAD8(mk + i), LOAD8(base + i)));                \
        unsigned ge = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a, l, _CMP_GE_OQ)); \
        unsigned gt = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(a, h, _CMP_GT_OQ)); \
        cl += __builtin_popcount(ge);                                            \
        ch += __builtin_popcount(gt);                                            \
        unsigned in = ge & ~gt;                                                  \
        if (in) {                                                                \
            float lanes[8];                                                      \
            _mm256_storeu_ps(lanes, a);                                          \
            while (in) {                                                         \
                out[nb++] = lanes[__builtin_ctz(in)];                            \
                in &= in - 1;                                                    \
            }                                                                    \
        }                                                                        \
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
