/*
 * alphapulse publish --redis URL --bars SYMBOL/TF=FILE.csv[,...] [--rate N]
 *                    [--partitions P] [--maxlen N]
 *   the producer side (docs/SCALE_OUT.md): the bars of each CSV file into
 *   ap:bars:{hash(SYMBOL) mod P}, merged in bar-time order (a tie keeps the
 *   order of --bars), XADD MAXLEN ~ maxlen, pipelined. --rate: bars per
 *   second in all (0: as fast as Redis takes them). P is ap:partitions when
 *   set (a different --partitions is an error), else --partitions (8),
 *   which is then stored there. A lost connection is retried with backoff
 *   from the first bar Redis did not confirm (at least once: a bar sent
 *   just before the loss may be there twice; its second copy replaces the
 *   identical forming bar, docs/SCALE_OUT.md).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "common/clock.h"
#include "scale/redis.h"
#include "scale/schema.h"
#include "series/bars_csv.h"

#define PIPE 256

typedef struct src {
    char symbol[AP_SYMBOL_MAX], tf[16];
    ap_bar *bars;
    size_t n, next;
    uint32_t p;
} src;

static void usage(FILE *fp)
{
    fprintf(fp, "usage: alphapulse publish --redis redis://HOST:PORT[/DB] "
                "--bars SYMBOL/TF=FILE.csv[,...]\n"
                "                          [--rate BARS_PER_S] [--partitions P] [--maxlen N]\n");
}

static int load(src *s, const char *spec, size_t len)
{
    char buf[2048];
    if (len >= sizeof buf)
        return fprintf(stderr, "alphapulse publish: --bars item too long\n"), -1;
    memcpy(buf, spec, len);
    buf[len] = 0;
    char *eq = strchr(buf, '='), *sl = NULL;
    if (eq)
        *eq = 0;
    if (!eq || !(sl = strrchr(buf, '/')) || sl == buf || !sl[1])
        return fprintf(stderr, "alphapulse publish: '%s' is not SYMBOL/TF=FILE.csv\n", spec), -1;
    *sl = 0;
    ap_error err;
    int64_t tf;
    if (strlen(buf) >= sizeof s->symbol || strlen(sl + 1) >= sizeof s->tf ||
        ap_timeframe_parse(sl + 1, &tf, &err) != AP_OK)
        return fprintf(stderr, "alphapulse publish: '%s': bad symbol or timeframe\n", spec), -1;
    memcpy(s->symbol, buf, strlen(buf) + 1); /* lengths checked above */
    memcpy(s->tf, sl + 1, strlen(sl + 1) + 1);
    ap_bars_csv r;
    if (ap__bars_csv_open(&r, eq + 1, &err) != AP_OK)
        return fprintf(stderr, "alphapulse publish: %s\n", err.msg), -1;
    size_t cap = 0;
    ap_bar b;
    int rc;
    while ((rc = ap__bars_csv_next(&r, &b, &err)) == 1) {
        if (s->n == cap) {
            cap = cap ? 2 * cap : 1024;
            ap_bar *nb = realloc(s->bars, cap * sizeof *nb);
            if (!nb) {
                rc = -1;
                snprintf(err.msg, sizeof err.msg, "out of memory");
                break;
            }
            s->bars = nb;
        }
        s->bars[s->n++] = b;
    }
    ap__bars_csv_close(&r);
    if (rc < 0)
        return fprintf(stderr, "alphapulse publish: %s: %s\n", eq + 1, err.msg), -1;
    return 0;
}

/* Partition count: ap:partitions, else want (stored there). */
static int partitions(ap_rconn *c, int want, int given, uint32_t *P)
{
    redisReply *r = ap__rconn_cmdf(c, "SET " AP_SCALE_PARTITIONS " %d NX", want);
    if (r)
        freeReplyObject(r);
    r = ap__rconn_cmdf(c, "GET " AP_SCALE_PARTITIONS);
    if (!r || r->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "alphapulse publish: cannot read %s\n", AP_SCALE_PARTITIONS);
        if (r)
            freeReplyObject(r);
        return -1;
    }
    *P = (uint32_t)strtoul(r->str, NULL, 10);
    freeReplyObject(r);
    if (given && *P != (uint32_t)want) {
        fprintf(stderr, "alphapulse publish: --partitions %d but %s is %u: every node and "
                        "publisher must use the same count\n", want, AP_SCALE_PARTITIONS, *P);
        return -1;
    }
    return *P ? 0 : -1;
}

typedef struct msg {
    char key[24], t[24], f[5][32];
    const char *argv[22];
    size_t lens[22];
    int argc;
} msg;

static void fill(msg *m, const src *s, const ap_bar *b, const char *maxlen)
{
    snprintf(m->key, sizeof m->key, "ap:bars:%u", s->p);
    snprintf(m->t, sizeof m->t, "%" PRId64, b->t / 1000);
    const double v[5] = {b->open, b->high, b->low, b->close, b->volume};
    for (int k = 0; k < 5; k++)
        snprintf(m->f[k], sizeof m->f[k], "%.17g", v[k]);
    const char *a[] = {"XADD", m->key, "MAXLEN", "~", maxlen, "*", "symbol", s->symbol,
                       "timeframe", s->tf, "t", m->t, "open", m->f[0], "high", m->f[1], "low",
                       m->f[2], "close", m->f[3], "volume", m->f[4]};
    int skip = !strcmp(maxlen, "0") ? 3 : 0, n = 0;
    for (int i = 0; i < 22; i++) {
        if (skip && i >= 2 && i < 5)
            continue;
        m->argv[n] = a[i];
        m->lens[n++] = strlen(a[i]);
    }
    m->argc = n;
}

int ap_cmd_publish(int argc, char **argv)
{
    const char *url = NULL, *bars = NULL;
    double rate = 0;
    int want = 8, given = 0;
    long long maxlen = 1000000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return usage(stdout), 0;
        if (!v) {
            fprintf(stderr, "alphapulse publish: '%s' needs a value\n", a);
            return 2;
        }
        char *end = NULL;
        if (!strcmp(a, "--redis"))
            url = v;
        else if (!strcmp(a, "--bars"))
            bars = v;
        else if (!strcmp(a, "--rate") && ((rate = strtod(v, &end)) >= 0) && !*end)
            ;
        else if (!strcmp(a, "--partitions") && (want = (int)strtol(v, &end, 10)) >= 1 &&
                 want <= 4096 && !*end)
            given = 1;
        else if (!strcmp(a, "--maxlen") && (maxlen = strtoll(v, &end, 10)) >= 0 && !*end)
            ;
        else {
            fprintf(stderr, "alphapulse publish: bad option or value: %s %s\n", a, v);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!url || !bars) {
        usage(stderr);
        return 2;
    }
    ap_redis_url u;
    ap_error err;
    if (ap__redis_url_parse(url, &u, &err) != AP_OK) {
        fprintf(stderr, "alphapulse publish: %s\n", err.msg);
        return 2;
    }
    size_t ns = 1;
    for (const char *p = bars; *p; p++)
        ns += *p == ',';
    src *s = calloc(ns, sizeof *s);
    int rc = s ? 0 : 1;
    size_t k = 0;
    for (const char *p = bars; !rc && k < ns; k++) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        rc = load(&s[k], p, len) ? 2 : 0;
        p = e ? e + 1 : p + len;
    }
    ap_rconn c;
    ap__rconn_init(&c, &u, NULL, NULL, 5.0);
    uint32_t P = 0;
    if (!rc && (!ap__rconn_ready(&c) || partitions(&c, want, given, &P)))
        rc = 1;
    for (size_t i = 0; !rc && i < ns; i++)
        s[i].p = ap__scale_partition(s[i].symbol, P);
    char ml[24];
    snprintf(ml, sizeof ml, "%lld", maxlen);
    msg *m = calloc(PIPE, sizeof *m);
    redisReply **rep = calloc(PIPE, sizeof *rep);
    int *ac = calloc(PIPE, sizeof *ac);
    const char ***av = calloc(PIPE, sizeof *av);
    size_t **al = calloc(PIPE, sizeof *al);
    if (!m || !rep || !ac || !av || !al)
        rc = 1;
    uint64_t sent = 0, t0 = ap__clock_ns();
    while (!rc) {
        size_t n = 0;
        src *from[PIPE];
        while (n < PIPE) { /* the next bars in time order */
            src *best = NULL;
            for (size_t i = 0; i < ns; i++)
                if (s[i].next < s[i].n &&
                    (!best || s[i].bars[s[i].next].t < best->bars[best->next].t))
                    best = &s[i];
            if (!best)
                break;
            fill(&m[n], best, &best->bars[best->next++], ml);
            from[n++] = best;
            if (rate > 0 && n >= (size_t)(rate / 20 + 1))
                break;
        }
        if (!n)
            break;
        for (size_t i = 0; i < n; i++)
            ac[i] = m[i].argc, av[i] = m[i].argv, al[i] = m[i].lens;
        size_t ok = 0;
        while (ok < n) { /* resend from the first one not confirmed */
            if (!ap__rconn_ready(&c))
                break;
            size_t got = ap__rconn_pipe(&c, n - ok, ac + ok, av + ok, al + ok, rep);
            for (size_t i = 0; i < got; i++) {
                if (rep[i]->type == REDIS_REPLY_ERROR) {
                    fprintf(stderr, "alphapulse publish: XADD %s: %s\n", m[ok + i].key,
                            rep[i]->str);
                    rc = 1;
                }
                freeReplyObject(rep[i]);
            }
            ok += got;
            if (got < n - ok + got)
                fprintf(stderr, "alphapulse publish: connection lost (%s); retrying\n",
                        c.last_error);
        }
        (void)from;
        sent += n;
        if (rate > 0) { /* pace: sent bars at `rate` per second */
            double due = (double)sent / rate, el = (double)(ap__clock_ns() - t0) / 1e9;
            if (due > el)
                nanosleep(&(struct timespec){(time_t)(due - el),
                                             (long)((due - el - (double)(time_t)(due - el)) * 1e9)},
                          NULL);
        }
    }
    if (!rc)
        fprintf(stderr, "alphapulse publish: %llu bars into %u partitions in %.2f s\n",
                (unsigned long long)sent, P, (double)(ap__clock_ns() - t0) / 1e9);
    ap__rconn_close(&c);
    for (size_t i = 0; s && i < ns; i++)
        free(s[i].bars);
    free(s);
    free(m);
    free(rep);
    free(ac);
    free(av);
    free(al);
    return rc;
}
