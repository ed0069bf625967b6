/*
 * Reading a CSV of bars: header `timestamp,open,high,low,close,volume`
 * (exactly these names, in this order), one bar per line. Shared by the CLI
 * and the fuzz target so that what is fuzzed is what runs.
 */
#ifndef AP_SERIES_BARS_CSV_H
#define AP_SERIES_BARS_CSV_H

#include "alphapulse/features.h"
#include "common/csv.h"

typedef struct ap_bars_csv {
    ap_csv csv;
    const char *ts_field; /* the timestamp field as written (valid until the next read) */
} ap_bars_csv;

/* Open path ("-" = stdin) and check the header. */
int ap__bars_csv_open(ap_bars_csv *r, const char *path, ap_error *err);
/* Next bar: 1 with *bar set, 0 at end, < 0 with the line number and reason. */
int ap__bars_csv_next(ap_bars_csv *r, ap_bar *bar, ap_error *err);
void ap__bars_csv_close(ap_bars_csv *r);

#endif
