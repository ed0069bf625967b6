/* Internal helpers for filling an ap_error. */
#ifndef AP_COMMON_ERROR_H
#define AP_COMMON_ERROR_H

#include "alphapulse/common.h"

#if defined(__GNUC__)
#define AP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define AP_PRINTF(a, b)
#endif

/* Fill err (may be NULL) with code and a formatted message; returns code. */
int ap__error_set(ap_error *err, int code, const char *fmt, ...) AP_PRINTF(3, 4);

/* Prepend a context prefix ("file.json: ") to an already-set message. */
int ap__error_prefix(ap_error *err, const char *fmt, ...) AP_PRINTF(2, 3);

#endif
