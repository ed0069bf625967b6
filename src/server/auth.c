/*
 * Bearer tokens, roles and the per-token rate limit (auth.h). The tokens
 * are compared in constant time against every entry (no early exit), so
 * the time of a check says nothing about how much of a guess was right.
 */
#include "server/auth.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "server/routes.h"

#define TOKEN_MIN 16
#define TOKEN_MAX 256
#define TOKENS_MAX 4096

typedef struct entry {
    char *tok;
    size_t len;
    int role;
    char name[64];
    pthread_mutex_t mu; /* the bucket */
    double bucket;
    uint64_t last_ns;
} entry;

typedef struct table {
    entry *e;
    int n;
} table;

struct ap_srv_auth {
    char path[1024];
    double rps;
    pthread_rwlock_t lock; /* readers: checks; writer: the swap of a reload */
    table t;
};

int ap__auth_ct_equal(const char *a, size_t na, const char *b, size_t nb)
{
    /* time depends on nb only: every byte of b is read, a is read up to na */
    unsigned diff = na != nb;
    for (size_t i = 0; i < nb; i++) {
        unsigned char x = i < na ? (unsigned char)a[i] : 0;
        diff |= x ^ (unsigned char)b[i];
    }
    return diff == 0;
}

const char *ap__auth_role_name(int role)
{
    static const char *const names[] = {"public", "read", "predict", "ingest", "admin"};
    return role >= 0 && role <= ROLE_ADMIN ? names[role] : "?";
}

static int role_parse(const char *s)
{
    for (int r = ROLE_READ; r <= ROLE_ADMIN; r++)
        if (!strcmp(s, ap__auth_role_name(r)))
            return r;
    return -1;
}

static void table_free(table *t)
{
    for (int i = 0; i < t->n; i++) {
        free(t->e[i].tok);
        pthread_mutex_destroy(&t->e[i].mu);
    }
    free(t->e);
    t->e = NULL;
    t->n = 0;
}

/* Read path into t; nothing of t is kept on failure. */
static int table_load(const char *path, double rps, table *t, ap_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return ap__error_set(err, AP_EIO, "auth_tokens_file %s: %s", path, strerror(errno));
    table nt = {0};
    int cap = 0, rc = AP_OK, lineno = 0;
    char line[1024];
    while (rc == AP_OK && fgets(line, sizeof line, f)) {
        lineno++;
        size_t ll = strlen(line);
        if (ll == sizeof line - 1 && line[ll - 1] != '\n') {
            rc = ap__error_set(err, AP_EINVAL, "%s:%d: line too long", path, lineno);
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *save, *tok = strtok_r(line, " \t\r\n", &save);
        if (!tok)
            continue;
        char *role = strtok_r(NULL, " \t\r\n", &save), *name = strtok_r(NULL, " \t\r\n", &save);
        char *extra = strtok_r(NULL, " \t\r\n", &save);
        size_t tl = strlen(tok);
        int r = role ? role_parse(role) : -1;
        int printable = 1;
        for (size_t i = 0; i < tl; i++)
            printable &= tok[i] > 0x20 && tok[i] < 0x7f;
        if (!role || extra)
            rc = ap__error_set(err, AP_EINVAL, "%s:%d: expected TOKEN ROLE [NAME]", path,
                               lineno);
        else if (tl < TOKEN_MIN || tl > TOKEN_MAX || !printable)
            rc = ap__error_set(err, AP_EINVAL, "%s:%d: a token is %d..%d printable characters "
                               "(this one has %zu): a short token can be guessed", path, lineno,
                               TOKEN_MIN, TOKEN_MAX, tl);
        else if (r < 0)
            rc = ap__error_set(err, AP_EINVAL, "%s:%d: unknown role '%.32s' (read, predict, "
                               "ingest or admin)", path, lineno, role);
        else if (name && strlen(name) >= sizeof nt.e->name)
            rc = ap__error_set(err, AP_EINVAL, "%s:%d: name longer than %zu characters", path,
                               lineno, sizeof nt.e->name - 1);
        else if (nt.n == TOKENS_MAX)
            rc = ap__error_set(err, AP_ERANGE, "%s:%d: more than %d tokens", path, lineno,
                               TOKENS_MAX);
        if (rc)
            break;
        for (int i = 0; i < nt.n && !rc; i++)
            if (ap__auth_ct_equal(tok, tl, nt.e[i].tok, nt.e[i].len))
                rc = ap__error_set(err, AP_EINVAL, "%s:%d: the same token as '%s'", path,
                                   lineno, nt.e[i].name);
        if (rc)
            break;
        if (nt.n == cap) {
            cap = cap ? 2 * cap : 8;
            entry *ne = realloc(nt.e, (size_t)cap * sizeof *ne);
            if (!ne) {
                rc = ap__error_set(err, AP_ENOMEM, "auth: out of memory");
                break;
            }
            nt.e = ne;
        }
        entry *e = &nt.e[nt.n];
        memset(e, 0, sizeof *e);
        if (!(e->tok = strdup(tok))) {
            rc = ap__error_set(err, AP_ENOMEM, "auth: out of memory");
            break;
        }
        e->len = tl;
        e->role = r;
        if (name)
            snprintf(e->name, sizeof e->name, "%s", name);
        else
            snprintf(e->name, sizeof e->name, "line-%d", lineno);
        pthread_mutex_init(&e->mu, NULL);
        e->bucket = rps > 1 ? rps : 1; /* a full bucket: one second's worth */
        nt.n++;
    }
    if (rc == AP_OK && ferror(f))
        rc = ap__error_set(err, AP_EIO, "auth_tokens_file %s: read error", path);
    fclose(f);
    if (rc == AP_OK && nt.n == 0)
        rc = ap__error_set(err, AP_EINVAL, "auth_tokens_file %s has no token (TOKEN ROLE "
                           "[NAME] per line)", path);
    if (rc) {
        table_free(&nt);
        return rc;
    }
    *t = nt;
    return AP_OK;
}

int ap__auth_open(const char *path, double rps, ap_srv_auth **out, ap_error *err)
{
    ap_srv_auth *a = calloc(1, sizeof *a);
    if (!a)
        return ap__error_set(err, AP_ENOMEM, "auth: out of memory");
    snprintf(a->path, sizeof a->path, "%s", path);
    a->rps = rps;
    int rc = table_load(path, rps, &a->t, err);
    if (rc) {
        free(a);
        return rc;
    }
    pthread_rwlock_init(&a->lock, NULL);
    *out = a;
    return AP_OK;
}

int ap__auth_reload(ap_srv_auth *a, int *count, ap_error *err)
{
    table nt;
    int rc = table_load(a->path, a->rps, &nt, err);
    if (rc)
        return rc;
    pthread_rwlock_wrlock(&a->lock);
    table old = a->t;
    a->t = nt;
    pthread_rwlock_unlock(&a->lock);
    table_free(&old);
    *count = nt.n;
    return AP_OK;
}

void ap__auth_free(ap_srv_auth *a)
{
    if (!a)
        return;
    table_free(&a->t);
    pthread_rwlock_destroy(&a->lock);
    free(a);
}

int ap__auth_count(ap_srv_auth *a)
{
    pthread_rwlock_rdlock(&a->lock);
    int n = a->t.n;
    pthread_rwlock_unlock(&a->lock);
    return n;
}

/* Take one request from e's bucket; 0, or the seconds to wait. */
static int take(entry *e, double rps, uint64_t now_ns)
{
    if (rps <= 0)
        return 0;
    double cap = rps > 1 ? rps : 1;
    pthread_mutex_lock(&e->mu);
    if (e->last_ns && now_ns > e->last_ns)
        e->bucket = fmin(cap, e->bucket + (double)(now_ns - e->last_ns) / 1e9 * rps);
    e->last_ns = now_ns;
    int wait = 0;
    if (e->bucket >= 1)
        e->bucket -= 1;
    else
        wait = (int)ceil((1 - e->bucket) / rps);
    pthread_mutex_unlock(&e->mu);
    return wait;
}

int ap__auth_check(ap_srv_auth *a, const char *header, int role, uint64_t now_ns, char *name,
                  size_t size, int *retry_s)
{
    if (name && size)
        name[0] = 0;
    *retry_s = 0;
    if (!header)
        return AP_AUTH_MISSING;
    while (*header == ' ' || *header == '\t')
        header++;
    if (strncasecmp(header, "Bearer", 6) || (header[6] != ' ' && header[6] != '\t'))
        return AP_AUTH_INVALID;
    const char *t = header + 7;
    while (*t == ' ' || *t == '\t')
        t++;
    size_t n = strlen(t);
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    if (n > TOKEN_MAX)
        return AP_AUTH_INVALID;
    pthread_rwlock_rdlock(&a->lock);
    int hit = -1;
    for (int i = 0; i < a->t.n; i++) /* every entry, whatever matched */
        if (ap__auth_ct_equal(t, n, a->t.e[i].tok, a->t.e[i].len))
            hit = i;
    int rc = AP_AUTH_INVALID;
    if (hit >= 0) {
        entry *e = &a->t.e[hit];
        if (name)
            snprintf(name, size, "%s", e->name);
        if (e->role < role)
            rc = AP_AUTH_FORBIDDEN;
        else if ((*retry_s = take(e, a->rps, now_ns)) > 0)
            rc = AP_AUTH_LIMITED;
        else
            rc = AP_AUTH_OK;
    }
    pthread_rwlock_unlock(&a->lock);
    return rc;
}
