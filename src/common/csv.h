/*
 * A small streaming CSV reader: one line at a time, fields split on ','.
 * Quoting is not supported (our CSVs are numeric with a plain header); a
 * field containing '"' is reported as an error rather than misread.
 * Limits are explicit so hostile files cannot make us allocate without bound.
 */
#ifndef AP_COMMON_CSV_H
#define AP_COMMON_CSV_H

#include <stdio.h>
#include "alphapulse/common.h"

#define AP_CSV_MAX_LINE (1u << 20)   /* 1 MiB per line */
#define AP_CSV_MAX_FIELDS 65536

typedef struct ap_csv {
    FILE *fp;
    int owns_fp;
    char path[256];   /* for messages */
    long line;        /* 1-based number of the line last returned */
    char *buf;        /* current line, fields point into it */
    size_t cap;
    char **fields;
    size_t nfields;
    size_t fields_cap;
} ap_csv;

/* Open path ("-" = stdin). */
int ap_csv_open(ap_csv *csv, const char *path, ap_error *err);
/* Read the next non-empty line. Returns 1 with fields set, 0 at EOF, <0 on error. */
int ap_csv_next(ap_csv *csv, ap_error *err);
void ap_csv_close(ap_csv *csv);

/*
 * Parse a numeric field strictly: the whole field (surrounding spaces
 * allowed) must be a number. Empty, "nan", "NaN", "NAN" give NaN.
 * Returns 0 or AP_EFORMAT.
 */
int ap_parse_double(const char *s, double *out);

/* Read a whole regular file into a malloc'd buffer (NUL-terminated), at most max
   bytes. FIFOs, devices and folders are refused (opened without blocking). */
int ap_read_file(const char *path, size_t max, char **out, size_t *len, ap_error *err);

#endif
