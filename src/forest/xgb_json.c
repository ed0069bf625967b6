/*
 * The JSON side of xgb_doc.h: XGBoost's JSON model parsed by jansson and
 * read through the xgb_doc_ops view, after XGBoost's bare NaN / Infinity
 * tokens (which jansson rejects) are turned into null.
 */
#include "forest/xgb_doc.h"
#include "common/error.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const void *j_member(const void *obj, const char *key)
{
    return json_is_object((const json_t *)obj) ? json_object_get(obj, key) : NULL;
}

static int j_kind(const void *p)
{
    switch (json_typeof((const json_t *)p)) {
    case JSON_OBJECT: return XV_OBJ;
    case JSON_ARRAY: return XV_ARR;
    case JSON_STRING: return XV_STR;
    case JSON_INTEGER: return XV_INT;
    case JSON_REAL: return XV_REAL;
    case JSON_TRUE: case JSON_FALSE: return XV_BOOL;
    default: return XV_NULL;
    }
}

static size_t j_length(const void *p) { return json_array_size(p); }

static const void *j_element(const void *p, size_t i) { return json_array_get(p, i); }

static int j_number(const void *p, double *x, int *is_int)
{
    const json_t *v = p;
    if (json_is_integer(v)) {
        *x = (double)json_integer_value(v);
        *is_int = 1;
        return 0;
    }
    if (json_is_real(v)) {
        *x = json_real_value(v);
        *is_int = 0;
        return 0;
    }
    return -1;
}

static int j_number_at(const void *p, size_t i, double *x, int *is_int)
{
    const json_t *v = json_array_get(p, i);
    return v ? j_number(v, x, is_int) : -1;
}

static int j_string(const void *p, const char **s, size_t *n)
{
    if (!json_is_string((const json_t *)p))
        return -1;
    *s = json_string_value(p);
    *n = json_string_length(p);
    return 0;
}

static int j_boolean(const void *p, int *b)
{
    if (!json_is_boolean((const json_t *)p))
        return -1;
    *b = json_is_true((const json_t *)p);
    return 0;
}

static const void *j_next_member(const void *obj, const void *it, const char **key,
                                 size_t *klen, const void **val)
{
    /* jansson's iterator API takes non-const objects; it only reads them */
    json_t *o = (json_t *)obj;
    if (!json_is_object(o))
        return NULL;
    void *i = it ? json_object_iter_next(o, (void *)it) : json_object_iter(o);
    if (i) {
        *key = json_object_iter_key(i);
        *klen = json_object_iter_key_len(i);
        *val = json_object_iter_value(i);
    }
    return i;
}

const xgb_doc_ops ap__xgb_json_ops = {j_member, j_kind,   j_length,  j_element,    j_number_at,
                                     j_number, j_string, j_boolean, j_next_member};

static int is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.';
}

/*
 * XGBoost's JSON writer emits bare NaN / Infinity / -Infinity tokens (every
 * categorical split has split_condition NaN), which jansson rejects. Copy the
 * text with those tokens, outside strings, turned into null; the walker then
 * refuses a null wherever a number is needed. At most 4/3 of the input.
 */
static char *nonfinite_to_null(const char *buf, size_t len, size_t *outlen)
{
    static const char *const toks[] = {"-Infinity", "Infinity", "-NaN", "NaN"};
    char *out = malloc(len + len / 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            out[o++] = c;
            if (c == '\\' && i + 1 < len)
                out[o++] = buf[++i];
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if ((c == 'N' || c == 'I' || c == '-') && (i == 0 || !is_word(buf[i - 1]))) {
            size_t k;
            for (k = 0; k < sizeof toks / sizeof toks[0]; k++) {
                size_t tl = strlen(toks[k]);
                if (len - i >= tl && !memcmp(buf + i, toks[k], tl) &&
                    (i + tl == len || !is_word(buf[i + tl]))) {
                    memcpy(out + o, "null", 4);
                    o += 4;
                    i += tl - 1;
                    break;
                }
            }
            if (k < sizeof toks / sizeof toks[0])
                continue;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

int ap__xgb_json_parse(const char *buf, size_t len, const char *name, struct json_t **root,
                      ap_error *err)
{
    size_t clen;
    char *clean = nonfinite_to_null(buf, len, &clen);
    if (!clean)
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    json_error_t jerr;
    *root = json_loadb(clean, clen, JSON_REJECT_DUPLICATES, &jerr);
    free(clean);
    if (!*root)
        return ap__error_set(err, AP_EFORMAT, "%s: JSON line %d column %d: %s", name, jerr.line,
                            jerr.column, jerr.text);
    return AP_OK;
}

void ap__xgb_json_free(struct json_t *root)
{
    json_decref(root);
}
