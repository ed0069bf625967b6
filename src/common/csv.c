/*
 * Reading files whole or line by line: the streaming CSV reader, numeric
 * rows under a header (ap_csv_rows), strict number parsing, and bounded
 * reads of small regular files (see csv.h).
 */
#include "common/csv.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int ap__csv_open(ap_csv *csv, const char *path, ap_error *err)
{
    memset(csv, 0, sizeof *csv);
    snprintf(csv->path, sizeof csv->path, "%s", path);
    if (strcmp(path, "-") == 0) {
        csv->fp = stdin;
    } else {
        csv->fp = fopen(path, "rb");
        if (!csv->fp)
            return ap__error_set(err, AP_EIO, "%s: cannot open: %s", path, strerror(errno));
        csv->owns_fp = 1;
    }
    csv->cap = 4096;
    csv->buf = malloc(csv->cap);
    csv->fields_cap = 64;
    csv->fields = malloc(csv->fields_cap * sizeof *csv->fields);
    if (!csv->buf || !csv->fields) {
        ap__csv_close(csv);
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", path);
    }
    return AP_OK;
}

void ap__csv_close(ap_csv *csv)
{
    if (csv->owns_fp && csv->fp)
        fclose(csv->fp);
    free(csv->buf);
    free(csv->fields);
    memset(csv, 0, sizeof *csv);
}

/* Read one physical line into csv->buf (without the newline). 1, 0 at EOF, <0 error. */
static int read_line(ap_csv *csv, size_t *len_out, ap_error *err)
{
    size_t len = 0;
    int c;
    int any = 0;
    while ((c = getc(csv->fp)) != EOF) {
        any = 1;
        if (c == '\n')
            break;
        if (c == '\0')
            return ap__error_set(err, AP_EFORMAT, "%s:%ld: NUL byte in line", csv->path,
                                csv->line + 1);
        if (len + 1 >= csv->cap) {
            if (csv->cap >= AP_CSV_MAX_LINE)
                return ap__error_set(err, AP_ERANGE, "%s:%ld: line longer than %u bytes",
                                    csv->path, csv->line + 1, AP_CSV_MAX_LINE);
            size_t ncap = csv->cap * 2;
            char *nb = realloc(csv->buf, ncap);
            if (!nb)
                return ap__error_set(err, AP_ENOMEM, "%s: out of memory", csv->path);
            csv->buf = nb;
            csv->cap = ncap;
        }
        csv->buf[len++] = (char)c;
    }
    if (ferror(csv->fp))
        return ap__error_set(err, AP_EIO, "%s:%ld: read error", csv->path, csv->line + 1);
    if (!any)
        return 0;
    if (len > 0 && csv->buf[len - 1] == '\r')
        len--;
    csv->buf[len] = '\0';
    csv->line++;
    *len_out = len;
    return 1;
}

int ap__csv_next(ap_csv *csv, ap_error *err)
{
    for (;;) {
        size_t len = 0;
        int rc = read_line(csv, &len, err);
        if (rc <= 0)
            return rc;
        if (len == 0)
            continue; /* skip blank lines */
        csv->nfields = 0;
        char *p = csv->buf;
        for (;;) {
            if (csv->nfields == csv->fields_cap) {
                if (csv->fields_cap >= AP_CSV_MAX_FIELDS)
                    return ap__error_set(err, AP_ERANGE, "%s:%ld: more than %u fields",
                                        csv->path, csv->line, AP_CSV_MAX_FIELDS);
                size_t ncap = csv->fields_cap * 2;
                char **nf = realloc(csv->fields, ncap * sizeof *nf);
                if (!nf)
                    return ap__error_set(err, AP_ENOMEM, "%s: out of memory", csv->path);
                csv->fields = nf;
                csv->fields_cap = ncap;
            }
            csv->fields[csv->nfields++] = p;
            char *comma = strchr(p, ',');
            if (strchr(p, '"') && (!comma || strchr(p, '"') < comma))
                return ap__error_set(err, AP_EFORMAT,
                                    "%s:%ld: field %zu: quoted fields are not supported",
                                    csv->path, csv->line, csv->nfields);
            if (!comma)
                break;
            *comma = '\0';
            p = comma + 1;
        }
        return 1;
    }
}

/* ---- numeric rows under a header ---------------------------------------- */

int ap__csv_rows_open(ap_csv_rows *r, const char *path, int width, size_t chunk,
                     ap_error *err)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    r->width = width;
    r->chunk = chunk;
    r->col_of = malloc((size_t)width * sizeof *r->col_of);
    r->X = malloc(chunk * (size_t)width * sizeof *r->X);
    if (!r->col_of || !r->X) {
        ap__csv_rows_close(r);
        return ap__error_set(err, AP_ENOMEM, "out of memory");
    }
    int rc = ap__csv_open(&r->csv, path, err);
    if (rc != AP_OK) {
        ap__csv_rows_close(r);
        return rc;
    }
    int got = ap__csv_next(&r->csv, err);
    if (got <= 0) {
        rc = got < 0 ? got
                     : ap__error_set(err, AP_EFORMAT, "%s: empty file (expected a header row)",
                                    path);
        ap__csv_rows_close(r);
        return rc;
    }
    r->ncols = r->csv.nfields;
    return AP_OK;
}

int ap__csv_rows_next(ap_csv_rows *r, size_t *n, ap_error *err)
{
    ap_csv *csv = &r->csv;
    const size_t w = (size_t)r->width;
    *n = 0;
    while (!r->eof && *n < r->chunk) {
        int got = ap__csv_next(csv, err);
        if (got < 0)
            return got;
        if (got == 0) {
            r->eof = 1;
            break;
        }
        if (csv->nfields != r->ncols)
            return ap__error_set(err, AP_EFORMAT, "%s:%ld: %zu fields, header has %zu", r->path,
                                csv->line, csv->nfields, r->ncols);
        double *row = r->X + *n * w;
        for (size_t i = 0; i < w; i++) {
            const char *field = csv->fields[r->col_of[i]];
            if (ap__parse_double(field, &row[i]) != AP_OK)
                return ap__error_set(err, AP_EFORMAT, "%s:%ld: column %d: '%s' is not a number",
                                    r->path, csv->line, r->col_of[i] + 1, field);
        }
        (*n)++;
    }
    return AP_OK;
}

void ap__csv_rows_close(ap_csv_rows *r)
{
    ap__csv_close(&r->csv); /* a zeroed ap_csv closes as a no-op */
    free(r->col_of);
    free(r->X);
    memset(r, 0, sizeof *r);
}

int ap__parse_double(const char *s, double *out)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || (n == 3 && (strncmp(s, "nan", 3) == 0 || strncmp(s, "NaN", 3) == 0 ||
                              strncmp(s, "NAN", 3) == 0))) {
        *out = NAN;
        return AP_OK;
    }
    char tmp[128];
    if (n >= sizeof tmp)
        return AP_EFORMAT;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (end == tmp || *end != '\0')
        return AP_EFORMAT;
    /* strtod accepts "nan(...)", "inf", hex; we accept inf/-inf explicitly, which is
       what Python/pandas write, and leave range errors (denormal underflow) alone. */
    if (errno == ERANGE && isinf(v))
        return AP_EFORMAT;
    *out = v;
    return AP_OK;
}

int ap__read_file(const char *path, size_t max, char **out, size_t *len, ap_error *err)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; then only a
       regular file is read (a device such as /dev/zero never ends) */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return ap__error_set(err, AP_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ap__error_set(err, AP_EIO, "%s: not a regular file (%s)", path,
                            S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISDIR(st.st_mode) ? "a folder"
                            : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                        : "not a plain file");
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        close(fd);
        return ap__error_set(err, AP_ENOMEM, "%s: cannot open: %s", path, strerror(errno));
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(fp);
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                free(buf);
                fclose(fp);
                return ap__error_set(err, AP_ERANGE, "%s: file larger than %zu bytes", path, max);
            }
            size_t ncap = cap * 2 > max ? max : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                fclose(fp);
                return ap__error_set(err, AP_ENOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t r = fread(buf + n, 1, cap - n, fp);
        n += r;
        if (r == 0)
            break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        return ap__error_set(err, AP_EIO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return AP_OK;
}
