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
int ap__csv_open(ap_csv *csv, const char *path, ap_error *err);
/* Read the next non-empty line. Returns 1 with fields set, 0 at EOF, <0 on error. */
int ap__csv_next(ap_csv *csv, ap_error *err);
void ap__csv_close(ap_csv *csv);

/*
 * Numeric rows under a header, a chunk at a time (the CLI's predict and
 * check-repo). open reads the header (an empty file is an error); the caller
 * then fills col_of[0..width) with the column of each value, looking at the
 * header in rows.csv.fields; next parses up to `chunk` rows into X. Every
 * row must have the header's number of fields and numbers in the columns
 * read. Messages name the file as given (path is not copied: keep it alive).
 */
typedef struct ap_csv_rows {
    ap_csv csv;
    const char *path;
    size_t ncols;     /* fields of the header */
    int width;        /* values per row */
    int *col_of;      /* col_of[i]: CSV column of value i (filled by the caller) */
    size_t chunk;     /* most rows per next */
    double *X;        /* chunk * width values, row-major */
    int eof;
} ap_csv_rows;

int ap__csv_rows_open(ap_csv_rows *r, const char *path, int width, size_t chunk,
                     ap_error *err);
/* *n rows are in r->X; *n == 0 at the end of the file. AP_OK or an error. */
int ap__csv_rows_next(ap_csv_rows *r, size_t *n, ap_error *err);
void ap__csv_rows_close(ap_csv_rows *r);

/*
 * Parse a numeric field strictly: the whole field (surrounding spaces
 * allowed) must be a number. Empty, "nan", "NaN", "NAN" give NaN.
 * Returns 0 or AP_EFORMAT.
 */
int ap__parse_double(const char *s, double *out);

/* Read a whole regular file into a malloc'd buffer (NUL-terminated), at most max
   bytes. FIFOs, devices and folders are refused (opened without blocking). */
int ap__read_file(const char *path, size_t max, char **out, size_t *len, ap_error *err);

#endif
