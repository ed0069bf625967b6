/* IEEE half <-> float, exact (see half.h). */
#include "dense/half.h"

#include <string.h>

float ap__half_to_float(uint16_t h)
{
    uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    if (e == 0x1f) {
        /* inf, or NaN: payload kept, quiet bit set */
        u = s | 0x7f800000u | (m << 13) | (m ? 0x00400000u : 0);
    } else if (e) {
        u = s | ((e + 112) << 23) | (m << 13);  /* rebias 15 -> 127 */
    } else if (!m) {
        u = s;
    } else {
        /* subnormal m * 2^-24: normalise so the leading bit is bit 10 */
        uint32_t sh = 0;
        while (!(m & 0x400u)) {
            m <<= 1;
            sh++;
        }
        u = s | ((113 - sh) << 23) | ((m & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t ap__half_from_float(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint16_t s = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)                         /* NaN: quiet, top payload bits */
        return (uint16_t)(s | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u)                        /* >= 65520 (the tie rounds up): inf */
        return (uint16_t)(s | 0x7c00u);
    if (a >= 0x38800000u) {                      /* >= 2^-14: a normal half */
        uint32_t r = a - (112u << 23);           /* rebias 127 -> 15 */
        r += 0x0fffu + ((r >> 13) & 1u);         /* nearest, ties to even (may carry) */
        return (uint16_t)(s | (r >> 13));
    }
    uint32_t e = a >> 23;
    if (e < 102)                                 /* < 2^-25 (and float subnormals): 0 */
        return s;
    /* a subnormal half: q units of 2^-24; m * 2^(e - 150) = (m >> sh) units */
    uint32_t m = (a & 0x7fffffu) | 0x800000u, sh = 126 - e;   /* 14 .. 24 */
    uint32_t q = m >> sh, rem = m & ((1u << sh) - 1), halfway = 1u << (sh - 1);
    if (rem > halfway || (rem == halfway && (q & 1u)))
        q++;                                     /* 0x400 is the smallest normal: right */
    return (uint16_t)(s | q);
}
