/* A series store for the tests of tests/series (after cmocka.h). */
#ifndef AP_TEST_STORE_FIXTURE_H
#define AP_TEST_STORE_FIXTURE_H

#include "alphapulse.h"

static inline ap_series_store *mkstore(size_t max_series, size_t history)
{
    ap_series_config c = {.max_series = max_series, .history = history};
    ap_series_store *st;
    ap_error err;
    if (ap_series_store_new(&c, &st, &err) != AP_OK)
        fail_msg("%s", err.msg);
    return st;
}

#endif
