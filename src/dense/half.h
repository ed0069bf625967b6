/*
 * IEEE 754 binary16 ("half") <-> binary32, exactly, in portable C: the
 * reference the F16C instructions are checked against (tests/dense) and the
 * conversion the dense kernel's scalar path uses.
 *
 * half -> float is exact (every half is a float): subnormal halves become
 * normal floats, +-0 / +-inf keep their sign, NaN keeps its payload with
 * the quiet bit set (what VCVTPH2PS returns).
 * float -> half rounds to nearest, ties to even (VCVTPS2PH with
 * _MM_FROUND_TO_NEAREST_INT): |f| >= 65520 becomes inf (65504 is the
 * largest half), |f| <= 2^-25 becomes +-0, NaN a quiet NaN keeping the top
 * 10 payload bits.
 */
#ifndef AP_DENSE_HALF_H
#define AP_DENSE_HALF_H

#include <stdint.h>
#include <string.h>

#define AP_HALF_MAX 65504.0f

float ap__half_to_float(uint16_t h);
uint16_t ap__half_from_float(float f);

/* ap__half_to_float for kernels: normal halves inline (exponent rebiased
   in place), the rest (0, subnormal, inf, NaN) through the function */
static inline float ap__half_to_float_fast(uint16_t h)
{
    uint32_t e = h & 0x7c00u;
    if (e && e != 0x7c00u) {
        uint32_t u = ((uint32_t)(h & 0x8000u) << 16) | (((uint32_t)(h & 0x7fffu) << 13) + (112u << 23));
        float f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    return ap__half_to_float(h);
}

#endif
