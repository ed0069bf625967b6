#include "series/bars_csv.h"

#include <string.h>

#include "common/error.h"

static const char *const columns[6] = {"timestamp", "open", "high", "low", "close", "volume"};

/* Strip surrounding spaces in place (header names only). */
static const char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

int ap__bars_csv_open(ap_bars_csv *r, const char *path, ap_error *err)
{
    memset(r, 0, sizeof *r);
    int rc = ap__csv_open(&r->csv, path, err);
    if (rc)
        return rc;
    rc = ap__csv_next(&r->csv, err);
    if (rc == 0)
        rc = ap__error_set(err, AP_EFORMAT, "%s: empty file (expected a header %s,%s,%s,%s,%s,%s)",
                          path, columns[0], columns[1], columns[2], columns[3], columns[4],
                          columns[5]);
    if (rc < 0) {
        ap__csv_close(&r->csv);
        return rc;
    }
    /* a UTF-8 byte order mark is what spreadsheet exports often start with */
    char *first = r->csv.fields[0];
    if (!strncmp(first, "\xEF\xBB\xBF", 3))
        r->csv.fields[0] = first + 3;
    if (r->csv.nfields != 6) {
        rc = ap__error_set(err, AP_EFORMAT,
                          "%s:%ld: header has %zu columns, expected 6: %s,%s,%s,%s,%s,%s", path,
                          r->csv.line, r->csv.nfields, columns[0], columns[1], columns[2],
                          columns[3], columns[4], columns[5]);
        ap__csv_close(&r->csv);
        return rc;
    }
    for (int i = 0; i < 6; i++) {
        const char *name = trim(r->csv.fields[i]);
        if (strcmp(name, columns[i])) {
            rc = ap__error_set(err, AP_EFORMAT,
                              "%s:%ld: header column %d is '%.40s', expected '%s' "
                              "(header must be %s,%s,%s,%s,%s,%s)",
                              path, r->csv.line, i + 1, name, columns[i], columns[0],
                              columns[1], columns[2], columns[3], columns[4], columns[5]);
            ap__csv_close(&r->csv);
            return rc;
        }
    }
    return AP_OK;
}

int ap__bars_csv_next(ap_bars_csv *r, ap_bar *bar, ap_error *err)
{
    int rc = ap__csv_next(&r->csv, err);
    if (rc <= 0)
        return rc;
    const char *path = r->csv.path;
    long line = r->csv.line;
    if (r->csv.nfields != 6)
        return ap__error_set(err, AP_EFORMAT, "%s:%ld: %zu fields, expected 6", path, line,
                            r->csv.nfields);
    rc = ap_parse_timestamp(r->csv.fields[0], &bar->t, err);
    if (rc)
        return ap__error_prefix(err, "%s:%ld: ", path, line);
    double *v[5] = {&bar->open, &bar->high, &bar->low, &bar->close, &bar->volume};
    for (int i = 0; i < 5; i++)
        if (ap__parse_double(r->csv.fields[i + 1], v[i]))
            return ap__error_set(err, AP_EFORMAT, "%s:%ld: %s '%.40s' is not a number", path,
                                line, columns[i + 1], r->csv.fields[i + 1]);
    r->ts_field = r->csv.fields[0];
    return 1;
}

void ap__bars_csv_close(ap_bars_csv *r)
{
    ap__csv_close(&r->csv);
}
