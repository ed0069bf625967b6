/* Timestamps of bar files: epoch seconds / milliseconds or ISO-8601, to epoch µs UTC. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alphapulse/features.h"
#include "common/error.h"

/* Below this magnitude a plain number is epoch seconds (1e11 s is the year
   5138), from it on milliseconds (1e11 ms is 1973-03-03). */
#define SECONDS_LIMIT 1e11

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Exactly n digits at *p; advances. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

/* Fraction ".ddd" at *p (the '.' already consumed) to microseconds, truncated. */
static int fraction_us(const char **p, int64_t *us)
{
    const char *s = *p;
    int64_t v = 0;
    int n = 0;
    if (!is_digit(*s))
        return -1;
    for (; is_digit(*s); s++, n++) {
        if (n >= 18)
            return -1; /* absurdly long: refuse rather than loop over it */
        if (n < 6)
            v = v * 10 + (*s - '0');
    }
    for (; n < 6; n++)
        v *= 10;
    *us = v;
    *p = s;
    return 0;
}

static int parse_number(const char *s, const char *end, int64_t *t_us)
{
    const char *p = s;
    int neg = 0;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (!is_digit(*p))
        return -1;
    int64_t ip = 0;
    int nd = 0;
    for (; is_digit(*p); p++) {
        if (++nd > 15)
            return -1; /* > 1e15 ms is past the year 33000 */
        ip = ip * 10 + (*p - '0');
    }
    int64_t frac = 0; /* in millionths of the unit */
    if (*p == '.') {
        p++;
        if (fraction_us(&p, &frac))
            return -1;
    }
    if (p != end)
        return -1;
    int64_t v;
    if ((double)ip < SECONDS_LIMIT)
        v = ip * 1000000 + frac;
    else
        v = ip * 1000 + frac / 1000;
    *t_us = neg ? -v : v;
    return 0;
}

static int parse_iso(const char *s, const char *end, int64_t *t_us, const char **why)
{
    const char *p = s;
    int y, mo, d, hh = 0, mi = 0, ss = 0;
    int64_t frac = 0;
    *why = "expected YYYY-MM-DD";
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d))
        return -1;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    *why = "month or day out of range";
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap))
        return -1;
    int64_t off_s = 0;
    if (p != end) {
        *why = "expected T or a space and HH:MM[:SS[.frac]] after the date";
        if (*p != 'T' && *p != ' ')
            return -1;
        p++;
        if (digits(&p, 2, &hh) || *p++ != ':' || digits(&p, 2, &mi))
            return -1;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &ss))
                return -1;
            if (*p == '.') {
                p++;
                *why = "bad fractional seconds";
                if (fraction_us(&p, &frac))
                    return -1;
            }
        }
        *why = "hour, minute or second out of range";
        if (hh > 23 || mi > 59 || ss > 59)
            return -1;
        if (p != end) {
            *why = "expected Z, +HH:MM or -HH:MM after the time";
            if (*p == 'Z' && p + 1 == end) {
                p++;
            } else if (*p == '+' || *p == '-') {
                int sign = *p++ == '-' ? -1 : 1, oh, om;
                if (digits(&p, 2, &oh))
                    return -1;
                if (*p == ':')
                    p++;
                if (digits(&p, 2, &om) || p != end || oh > 23 || om > 59)
                    return -1;
                off_s = sign * (oh * 3600 + om * 60);
            } else {
                return -1;
            }
        }
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss - off_s;
    *t_us = secs * 1000000 + frac;
    return 0;
}

int ap_parse_timestamp(const char *s, int64_t *t_us, ap_error *err)
{
    while (*s == ' ' || *s == '\t')
        s++;
    const char *end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end == s)
        return ap__error_set(err, AP_EFORMAT, "empty timestamp");
    int n = (int)(end - s);
    /* an ISO date has '-' at position 4; a number never does */
    if (n >= 10 && s[4] == '-' && is_digit(s[0])) {
        const char *why;
        if (parse_iso(s, end, t_us, &why))
            return ap__error_set(err, AP_EFORMAT, "bad timestamp '%.*s': %s", n > 64 ? 64 : n, s,
                                why);
        return AP_OK;
    }
    if (parse_number(s, end, t_us))
        return ap__error_set(err, AP_EFORMAT,
                            "bad timestamp '%.*s': expected epoch seconds/milliseconds or an "
                            "ISO-8601 date/time",
                            n > 64 ? 64 : n, s);
    return AP_OK;
}

/* The civil date of day z since 1970-01-01 (proleptic Gregorian; H. Hinnant's
   civil_from_days). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static char *put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + n;
}

char *ap_format_timestamp(int64_t t_us, char *buf, size_t size)
{
    int64_t us = t_us % 1000000, secs = t_us / 1000000;
    if (us < 0) {
        us += 1000000;
        secs--;
    }
    /* years 0..9999 without gmtime_r and printf (the answers of a batch
       format thousands): the same text as the general path below */
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400), y;
    unsigned mo, d, sod = (unsigned)(secs - days * 86400);
    civil_from_days(days, &y, &mo, &d);
    if (y >= 0 && y <= 9999 && size >= 32) {
        char *p = put_digits(buf, (unsigned)y, 4);
        *p++ = '-';
        p = put_digits(p, mo, 2);
        *p++ = '-';
        p = put_digits(p, d, 2);
        *p++ = 'T';
        p = put_digits(p, sod / 3600, 2);
        *p++ = ':';
        p = put_digits(p, sod / 60 % 60, 2);
        *p++ = ':';
        p = put_digits(p, sod % 60, 2);
        if (us) {
            *p++ = '.';
            p = put_digits(p, (unsigned)us, 6);
        }
        *p++ = 'Z';
        *p = 0;
        return buf;
    }
    time_t tt = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&tt, &tm)) {
        snprintf(buf, size, "%lld us", (long long)t_us);
        return buf;
    }
    char frac[16] = "";
    if (us)
        snprintf(frac, sizeof frac, ".%06lld", (long long)us);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    return buf;
}
