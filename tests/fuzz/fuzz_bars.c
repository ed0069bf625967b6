/*
 * libFuzzer target: a bar CSV (header, timestamps in every accepted spelling,
 * numbers) read with the CLI's reader, each bar pushed into a bare engine and
 * appended to a roll-up series in a store, the latest vector copied out.
 * Rejected rows must leave everything consistent: the engine and the store
 * must agree bit for bit on every accepted bar.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alphapulse.h"
#include "series/bars_csv.h"

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
    ap_bars_csv rd;
    if (ap_bars_csv_open(&rd, path, &err) == 0) {
        ap_features *eng = NULL;
        ap_series_store *st = NULL;
        ap_series *s = NULL;
        ap_series_config cfg = {.max_series = 8, .history = 3};
        if (ap_features_new(&eng, &err) || ap_series_store_new(&cfg, &st, &err) ||
            ap_series_open(st, "F", 60, AP_SERIES_ROLLUP, &s, &err))
            abort();
        ap_bar bar;
        double a[AP_FEATURE_COUNT], b[AP_FEATURE_COUNT];
        int r;
        while ((r = ap_bars_csv_next(&rd, &bar, &err)) == 1) {
            int re = ap_features_push(eng, &bar, a, &err);
            int rs = ap_series_append(s, &bar, &err);
            if (re != rs)
                abort(); /* engine and store must accept/reject alike */
            if (re == 0) {
                int64_t t;
                if (ap_series_latest(s, b, &t, &err) || t != bar.t || memcmp(a, b, sizeof a))
                    abort();
            }
            ap_series *d = ap_series_find(st, "F", 86400);
            if (!d || (ap_series_total(s) > 0 && ap_series_latest(d, b, NULL, &err)))
                abort();
        }
        ap_series_store_free(st);
        ap_features_free(eng);
        ap_bars_csv_close(&rd);
    }
    close(fd);
    return 0;
}
