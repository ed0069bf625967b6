/*
 * Bounds-checked UBJSON reader (the subset of draft 12 that XGBoost writes,
 * plus what any conforming writer may use: optimized '$'/'#' containers,
 * uncounted containers, no-op 'N'). Values point into the input buffer.
 */
#include "forest/xgb_doc.h"
#include "common/error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UBJ_MAX_DEPTH 64

struct ubj_val {
    uint8_t type;                  /* '{' '[' 'S' 'C' 'Z' 'T' 'F' or a numeric marker */
    uint8_t elem;                  /* packed numeric array: its element marker, else 0 */
    size_t n;                      /* container: elements; string: bytes */
    const unsigned char *p;        /* string bytes, number bytes or packed elements */
    const unsigned char *key;      /* name of this member inside its object */
    size_t keylen;
    ubj_val *kids;                 /* elements of a container that is not packed */
};

typedef struct ubj_parser {
    const unsigned char *buf;
    size_t len, pos;
    const char *name;
    ap_error *err;
} ubj_parser;

static size_t num_size(uint8_t m)
{
    switch (m) {
    case 'i': case 'U': return 1;
    case 'I': return 2;
    case 'l': case 'd': return 4;
    case 'L': case 'D': return 8;
    default: return 0;
    }
}

static int fail(ubj_parser *ps, int code, const char *what)
{
    return ap__error_set(ps->err, code, "%s: UBJSON byte %zu: %s", ps->name, ps->pos, what);
}

static uint64_t be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Decode a number with marker m at p. */
static void decode(uint8_t m, const unsigned char *p, double *x, int *is_int)
{
    *is_int = 1;
    switch (m) {
    case 'i': *x = (int8_t)p[0]; break;
    case 'U': *x = p[0]; break;
    case 'I': *x = (int16_t)be(p, 2); break;
    case 'l': *x = (int32_t)be(p, 4); break;
    case 'L': *x = (double)(int64_t)be(p, 8); break;
    case 'd': {
        uint32_t u = (uint32_t)be(p, 4);
        float f;
        memcpy(&f, &u, sizeof f);
        *x = f;
        *is_int = 0;
        break;
    }
    default: { /* 'D' */
        uint64_t u = be(p, 8);
        double d;
        memcpy(&d, &u, sizeof d);
        *x = d;
        *is_int = 0;
        break;
    }
    }
}

static int next_byte(ubj_parser *ps, uint8_t *b)
{
    if (ps->pos >= ps->len)
        return fail(ps, AP_EFORMAT, "truncated (unexpected end of data)");
    *b = ps->buf[ps->pos++];
    return AP_OK;
}

/* A marker, skipping no-ops. */
static int next_marker(ubj_parser *ps, uint8_t *m)
{
    int rc;
    do
        rc = next_byte(ps, m);
    while (rc == AP_OK && *m == 'N');
    return rc;
}

/* A length/count: an integer with its own marker, >= 0. */
static int read_count(ubj_parser *ps, size_t *out)
{
    uint8_t m = 0;
    int rc = next_byte(ps, &m);
    if (rc != AP_OK)
        return rc;
    size_t sz = num_size(m);
    if (sz == 0 || m == 'd' || m == 'D')
        return fail(ps, AP_EFORMAT, "length or count is not an integer");
    if (ps->len - ps->pos < sz)
        return fail(ps, AP_EFORMAT, "truncated (unexpected end of data)");
    double x;
    int is_int;
    decode(m, ps->buf + ps->pos, &x, &is_int);
    ps->pos += sz;
    if (x < 0)
        return fail(ps, AP_EFORMAT, "negative length or count");
    if (x > (double)(ps->len - ps->pos))
        return fail(ps, AP_EFORMAT, "length or count larger than the remaining data");
    *out = (size_t)x;
    return AP_OK;
}

static int parse_value(ubj_parser *ps, uint8_t type, ubj_val *v, int depth);

static int parse_container(ubj_parser *ps, int is_obj, ubj_val *v, int depth)
{
    if (depth >= UBJ_MAX_DEPTH)
        return fail(ps, AP_EFORMAT, "nesting deeper than 64 levels");
    uint8_t etype = 0;
    size_t count = 0;
    int counted = 0;
    if (ps->pos < ps->len && ps->buf[ps->pos] == '$') {
        ps->pos++;
        int rc = next_byte(ps, &etype);
        if (rc != AP_OK)
            return rc;
        if (etype == 'Z' || etype == 'T' || etype == 'F' || etype == 'N')
            /* elements without payload: a count would allocate without bound */
            return fail(ps, AP_EUNSUPPORTED, "typed container of null/boolean/no-op elements");
        if (ps->pos >= ps->len || ps->buf[ps->pos] != '#')
            return fail(ps, AP_EFORMAT, "typed container without a count ('$' needs '#')");
    }
    if (ps->pos < ps->len && ps->buf[ps->pos] == '#') {
        ps->pos++;
        int rc = read_count(ps, &count);
        if (rc != AP_OK)
            return rc;
        counted = 1;
    }
    size_t esz = num_size(etype);
    if (counted && !is_obj && esz) {
        /* packed numeric array: read in place */
        if (count > (ps->len - ps->pos) / esz)
            return fail(ps, AP_EFORMAT, "typed array larger than the remaining data");
        v->elem = etype;
        v->n = count;
        v->p = ps->buf + ps->pos;
        ps->pos += count * esz;
        return AP_OK;
    }
    size_t cap = 0;
    if (counted) {
        /* every element takes at least one byte (read_count checked the bound) */
        if (count) {
            v->kids = calloc(count, sizeof *v->kids);
            if (!v->kids)
                return fail(ps, AP_ENOMEM, "out of memory");
        }
        cap = count;
    }
    for (size_t i = 0;; i++) {
        if (counted && i == count)
            break;
        uint8_t m = 0;
        if (!counted || !etype || is_obj) {
            int rc = next_marker(ps, &m);
            if (rc != AP_OK)
                return rc;
            if (!counted && m == (is_obj ? '}' : ']'))
                break;
        }
        if (!counted && i == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            ubj_val *nk = realloc(v->kids, ncap * sizeof *nk);
            if (!nk)
                return fail(ps, AP_ENOMEM, "out of memory");
            memset(nk + cap, 0, (ncap - cap) * sizeof *nk);
            v->kids = nk;
            cap = ncap;
        }
        ubj_val *k = &v->kids[i];
        v->n = i + 1; /* so ap__ubj_free sees what is filled */
        if (is_obj) {
            /* key: m is the marker of its length */
            ps->pos--;
            size_t kl;
            int rc = read_count(ps, &kl);
            if (rc != AP_OK)
                return rc;
            k->key = ps->buf + ps->pos;
            k->keylen = kl;
            ps->pos += kl;
            if (etype)
                m = etype;
            else if ((rc = next_marker(ps, &m)) != AP_OK)
                return rc;
        } else if (etype) {
            m = etype;
        }
        int rc = parse_value(ps, m, k, depth + 1);
        if (rc != AP_OK)
            return rc;
    }
    return AP_OK;
}

static int parse_value(ubj_parser *ps, uint8_t type, ubj_val *v, int depth)
{
    v->type = type;
    size_t sz = num_size(type);
    if (sz) {
        if (ps->len - ps->pos < sz)
            return fail(ps, AP_EFORMAT, "truncated number");
        v->p = ps->buf + ps->pos;
        ps->pos += sz;
        return AP_OK;
    }
    switch (type) {
    case 'Z': case 'T': case 'F':
        return AP_OK;
    case 'C':
        if (ps->pos >= ps->len)
            return fail(ps, AP_EFORMAT, "truncated char");
        v->p = ps->buf + ps->pos++;
        v->n = 1;
        return AP_OK;
    case 'S': {
        int rc = read_count(ps, &v->n);
        if (rc != AP_OK)
            return rc;
        v->p = ps->buf + ps->pos;
        ps->pos += v->n;
        return AP_OK;
    }
    case '[':
        return parse_container(ps, 0, v, depth);
    case '{':
        return parse_container(ps, 1, v, depth);
    case 'H':
        return fail(ps, AP_EUNSUPPORTED, "high-precision numbers are not supported");
    default: {
        char what[64];
        snprintf(what, sizeof what, "unknown type marker 0x%02x", type);
        ps->pos--;
        return fail(ps, AP_EFORMAT, what);
    }
    }
}

static void free_kids(ubj_val *v)
{
    if (!v->kids)
        return;
    for (size_t i = 0; i < v->n; i++)
        free_kids(&v->kids[i]);
    free(v->kids);
}

void ap__ubj_free(ubj_val *root)
{
    if (!root)
        return;
    free_kids(root);
    free(root);
}

int ap__ubj_parse(const unsigned char *buf, size_t len, const char *name, ubj_val **root,
                 ap_error *err)
{
    ubj_parser ps = {buf, len, 0, name, err};
    *root = NULL;
    ubj_val *v = calloc(1, sizeof *v);
    if (!v)
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    uint8_t m = 0;
    int rc = next_marker(&ps, &m);
    if (rc == AP_OK)
        rc = parse_value(&ps, m, v, 0);
    while (rc == AP_OK && ps.pos < len && buf[ps.pos] == 'N')
        ps.pos++;
    if (rc == AP_OK && ps.pos != len)
        rc = fail(&ps, AP_EFORMAT, "trailing data after the document");
    if (rc != AP_OK) {
        ap__ubj_free(v);
        return rc;
    }
    *root = v;
    return AP_OK;
}

/* ---- the xgb_doc_ops view ---- */

static const void *u_member(const void *obj, const char *key)
{
    const ubj_val *o = obj;
    if (!o || o->type != '{' || !o->kids)
        return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < o->n; i++)
        if (o->kids[i].keylen == kl && !memcmp(o->kids[i].key, key, kl))
            return &o->kids[i];
    return NULL;
}

static int u_kind(const void *p)
{
    const ubj_val *v = p;
    switch (v->type) {
    case '{': return XV_OBJ;
    case '[': return XV_ARR;
    case 'S': case 'C': return XV_STR;
    case 'T': case 'F': return XV_BOOL;
    case 'd': case 'D': return XV_REAL;
    case 'Z': return XV_NULL;
    default: return XV_INT;
    }
}

static size_t u_length(const void *p)
{
    const ubj_val *v = p;
    return v->type == '[' ? v->n : 0;
}

static const void *u_element(const void *p, size_t i)
{
    const ubj_val *v = p;
    return (v->type == '[' && v->kids && i < v->n) ? &v->kids[i] : NULL;
}

static int u_number(const void *p, double *x, int *is_int)
{
    const ubj_val *v = p;
    if (!num_size(v->type))
        return -1;
    decode(v->type, v->p, x, is_int);
    return 0;
}

static int u_number_at(const void *p, size_t i, double *x, int *is_int)
{
    const ubj_val *v = p;
    if (v->type != '[' || i >= v->n)
        return -1;
    if (v->elem) {
        decode(v->elem, v->p + i * num_size(v->elem), x, is_int);
        return 0;
    }
    return u_number(&v->kids[i], x, is_int);
}

static int u_string(const void *p, const char **s, size_t *n)
{
    const ubj_val *v = p;
    if (v->type != 'S' && v->type != 'C')
        return -1;
    *s = (const char *)v->p;
    *n = v->n;
    return 0;
}

static int u_boolean(const void *p, int *b)
{
    const ubj_val *v = p;
    if (v->type != 'T' && v->type != 'F')
        return -1;
    *b = v->type == 'T';
    return 0;
}

static const void *u_next_member(const void *obj, const void *it, const char **key,
                                 size_t *klen, const void **val)
{
    const ubj_val *o = obj, *k = it;
    if (!o || o->type != '{' || !o->kids || o->n == 0)
        return NULL;
    k = k ? k + 1 : o->kids;
    if (k >= o->kids + o->n)
        return NULL;
    *key = (const char *)k->key;
    *klen = k->keylen;
    *val = k;
    return k;
}

const xgb_doc_ops ap__ubj_ops = {u_member,    u_kind,   u_length, u_element,    u_number_at,
                                u_number,    u_string, u_boolean, u_next_member};
