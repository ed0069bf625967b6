/*
 * libFuzzer target: a bar CSV (header, timestamps in every accepted spelling,
 * numbers) read with the CLI's reader, each bar pushed into a bare engine and
 * appended to a roll-up series in a store, the latest vector copied out.
 * Rejected rows must leave everything consistent: the engine and the store
 * must agree bit for bit on every accepted bar. The store has two rules of
 * its own (a bar starts in 1970 or later, and at least one timeframe after
 * the last one unless it replaces it): a bar breaking them must be refused
 * by the store and is not given to the engine. Then the series is deleted
 * (held pointers answer "deleted"), opened again, and fed the file again:
 * it must behave as a new series.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alphapulse.h"
#include "series/bars_csv.h"

#define TF_S 60

static void feed(const char *path, ap_series_store *st, ap_series *s)
{
    ap_error err = {0};
    ap_bars_csv rd;
    if (ap__bars_csv_open(&rd, path, &err) != 0)
        return;
    ap_features *eng = NULL;
    if (ap_features_new(&eng, &err))
        abort();
    ap_bar bar;
    double a[AP_FEATURE_COUNT], b[AP_FEATURE_COUNT];
    int64_t last = 0;
    int any = 0, r;
    while ((r = ap__bars_csv_next(&rd, &bar, &err)) == 1) {
        int spaced = bar.t >= 0 &&
                     (!any || bar.t == last || (bar.t > last && bar.t - last >= TF_S * 1000000LL));
        if (!spaced) {
            if (ap_series_append(s, &bar, &err) == 0)
                abort(); /* the store's own rules */
            continue;
        }
        int re = ap_features_push(eng, &bar, a, &err);
        int rs = ap_series_append(s, &bar, &err);
        if (re != rs)
            abort(); /* engine and store must accept/reject alike */
        if (re == 0) {
            int64_t t;
            if (ap_series_latest(s, b, &t, &err) || t != bar.t || memcmp(a, b, sizeof a))
                abort();
            last = bar.t;
            any = 1;
        }
        ap_series *d = ap_series_find(st, "F", 86400);
        if (!d || (ap_series_total(s) > 0 && ap_series_latest(d, b, NULL, &err)))
            abort();
    }
    ap_features_free(eng);
    ap__bars_csv_close(&rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz_bars", 0);
    if (fd < 0)
        return 0;
    if (size && write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ap_error err = {0};
    ap_series_store *st = NULL;
    ap_series *s = NULL, *s2 = NULL;
    ap_series_config cfg = {.max_series = 8, .history = 3};
    if (ap_series_store_new(&cfg, &st, &err) ||
        ap_series_open(st, "F", TF_S, AP_SERIES_ROLLUP, &s, &err))
        abort();
    feed(path, st, s);
    ap_series *d = ap_series_find(st, "F", 86400);
    if (ap_series_delete(st, "F", TF_S, &err) || ap_series_find(st, "F", TF_S) ||
        ap_series_find(st, "F", 86400) || ap_series_store_count(st) != 0)
        abort();
    double v[AP_FEATURE_COUNT];
    ap_bar one = {1700000000LL * 1000000, 1, 1, 1, 1, 1};
    if (ap_series_latest(s, v, NULL, &err) != AP_ENOTFOUND ||
        ap_series_latest(d, v, NULL, &err) != AP_ENOTFOUND ||
        ap_series_append(s, &one, &err) != AP_ENOTFOUND)
        abort();
    if (ap_series_open(st, "F", TF_S, AP_SERIES_ROLLUP, &s2, &err) || s2 != s ||
        ap_series_total(s2) != 0 || ap_series_find(st, "F", 86400) != d)
        abort();
    feed(path, st, s2);
    ap_series_store_free(st);
    close(fd);
    return 0;
}
