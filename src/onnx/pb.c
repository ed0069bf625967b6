/*
 * Reading a serialized ONNX ModelProto safely.
 *
 * protobuf-c's unpack trusts its input in two ways we cannot afford with a
 * hostile file: it recurses once per nested message (GraphProto inside an
 * attribute inside a node inside a graph ...: a few bytes per level, enough
 * to exhaust the stack), and it allocates what the wire says (an empty
 * repeated message costs 2 bytes on the wire and ~100 bytes unpacked). So:
 *   1. walk the wire format first with the generated descriptors, refusing
 *      nesting deeper than MAX_DEPTH, bad lengths and groups;
 *   2. unpack with an allocator that refuses past a budget proportional to
 *      the file size.
 * protobuf-c validates everything else (wire types, UTF-8 strings, enums).
 */
#include "onnx/onnx_internal.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32
/* Unpacked size budget: packed varints grow at most 8x (1 byte -> int64),
   strings and messages carry a fixed overhead each. */
#define BUDGET_BASE ((size_t)64 << 20)
#define BUDGET_PER_BYTE 12

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return -1;
        uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

/* Check one message's bytes; recurse into fields the descriptor says are
   messages. Returns NULL or a static description of the problem. */
static const char *walk(const uint8_t *p, const uint8_t *end,
                        const ProtobufCMessageDescriptor *d, int depth)
{
    if (depth > MAX_DEPTH)
        return "messages nested too deeply";
    while (p < end) {
        uint64_t tag, v;
        if (read_varint(&p, end, &tag))
            return "truncated field tag";
        uint32_t field = (uint32_t)(tag >> 3);
        if (field == 0 || tag >> 3 > 0x1fffffff)
            return "invalid field number";
        switch (tag & 7) {
        case 0:
            if (read_varint(&p, end, &v))
                return "truncated varint";
            break;
        case 1:
            if (end - p < 8)
                return "truncated fixed64";
            p += 8;
            break;
        case 5:
            if (end - p < 4)
                return "truncated fixed32";
            p += 4;
            break;
        case 2: {
            if (read_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return "length-delimited field runs past its message";
            const ProtobufCFieldDescriptor *fd =
                d ? protobuf_c_message_descriptor_get_field(d, field) : NULL;
            if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE) {
                const char *why = walk(p, p + v, fd->descriptor, depth + 1);
                if (why)
                    return why;
            }
            p += v;
            break;
        }
        default:
            return "unsupported wire type (groups)";
        }
    }
    return NULL;
}

typedef struct budget {
    size_t left;
} budget;

static void *budget_alloc(void *data, size_t size)
{
    budget *b = data;
    if (size > b->left)
        return NULL;
    b->left -= size;
    return malloc(size ? size : 1);
}

static void budget_free(void *data, void *p)
{
    (void)data;
    free(p);
}

int ap__onnx_pb_parse(const uint8_t *buf, size_t len, const char *name, Onnx__ModelProto **out,
                     ap_error *err)
{
    *out = NULL;
    if (len == 0)
        return ap__error_set(err, AP_EFORMAT, "%s: empty ONNX file", name);
    if (len > AP_ONNX_MAX_FILE)
        return ap__error_set(err, AP_ERANGE, "%s: ONNX file larger than %zu bytes", name,
                            (size_t)AP_ONNX_MAX_FILE);
    const char *why = walk(buf, buf + len, &onnx__model_proto__descriptor, 0);
    if (why)
        return ap__error_set(err, AP_EFORMAT, "%s: not a valid ONNX protobuf: %s", name, why);
    budget b = {BUDGET_BASE + BUDGET_PER_BYTE * len};
    ProtobufCAllocator a = {budget_alloc, budget_free, &b};
    Onnx__ModelProto *m = onnx__model_proto__unpack(&a, len, buf);
    if (!m) {
        if (b.left < BUDGET_BASE / 2)
            return ap__error_set(err, AP_ERANGE, "%s: ONNX file expands past its memory budget",
                                name);
        return ap__error_set(err, AP_EFORMAT,
                            "%s: not a valid ONNX protobuf (bad field types or encoding)", name);
    }
    *out = m;
    return AP_OK;
}

void ap__onnx_pb_free(Onnx__ModelProto *m)
{
    if (m)
        onnx__model_proto__free_unpacked(m, NULL);
}

/* ---- attributes ---- */

const Onnx__AttributeProto *ap__onnx_attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name))
            return n->attribute[i];
    return NULL;
}

static const char *node_label(const Onnx__NodeProto *n)
{
    return n->name && n->name[0] ? n->name : (n->op_type ? n->op_type : "?");
}

static int wrong_type(const Onnx__NodeProto *n, const char *attr, const char *want,
                      const char *name, ap_error *err)
{
    return ap__error_set(err, AP_EFORMAT, "%s: node '%s' (%s): attribute %s must be %s", name,
                        node_label(n), n->op_type ? n->op_type : "?", attr, want);
}

int ap__onnx_attr_int(const Onnx__NodeProto *n, const char *attr, int64_t *v, const char *name,
                     ap_error *err)
{
    const Onnx__AttributeProto *a = ap__onnx_attr(n, attr);
    if (!a)
        return AP_OK;
    if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)
        return wrong_type(n, attr, "an int", name, err);
    *v = a->i;
    return AP_OK;
}

int ap__onnx_attr_float(const Onnx__NodeProto *n, const char *attr, float *v, const char *name,
                       ap_error *err)
{
    const Onnx__AttributeProto *a = ap__onnx_attr(n, attr);
    if (!a)
        return AP_OK;
    if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT)
        return wrong_type(n, attr, "a float", name, err);
    *v = a->f;
    return AP_OK;
}

int ap__onnx_attr_string(const Onnx__NodeProto *n, const char *attr, char *buf, size_t size,
                        const char *name, ap_error *err)
{
    const Onnx__AttributeProto *a = ap__onnx_attr(n, attr);
    if (!a)
        return AP_OK;
    if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING || a->s.len >= size ||
        (a->s.len && memchr(a->s.data, 0, a->s.len)))
        return wrong_type(n, attr, "a short string", name, err);
    if (a->s.len)
        memcpy(buf, a->s.data, a->s.len);
    buf[a->s.len] = '\0';
    return AP_OK;
}

int ap__onnx_attr_ints(const Onnx__NodeProto *n, const char *attr, const int64_t **v, size_t *len,
                      const char *name, ap_error *err)
{
    *v = NULL;
    *len = 0;
    const Onnx__AttributeProto *a = ap__onnx_attr(n, attr);
    if (!a)
        return AP_OK;
    if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS)
        return wrong_type(n, attr, "a list of ints", name, err);
    *v = a->ints;
    *len = a->n_ints;
    return AP_OK;
}

int ap__onnx_attr_strings(const Onnx__NodeProto *n, const char *attr, const ProtobufCBinaryData **v,
                         size_t *len, const char *name, ap_error *err)
{
    *v = NULL;
    *len = 0;
    const Onnx__AttributeProto *a = ap__onnx_attr(n, attr);
    if (!a)
        return AP_OK;
    if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS)
        return wrong_type(n, attr, "a list of strings", name, err);
    *v = a->strings;
    *len = a->n_strings;
    return AP_OK;
}

int ap__onnx_attr_reals(const Onnx__NodeProto *n, const char *attr, double **out, size_t *len,
                       int *is_double, const char *name, ap_error *err)
{
    *out = NULL;
    *len = 0;
    if (is_double)
        *is_double = 0;
    char tname[96];
    snprintf(tname, sizeof tname, "%s_as_tensor", attr);
    const Onnx__AttributeProto *t = ap__onnx_attr(n, tname);
    if (t && ap__onnx_attr(n, attr))
        /* which one would count? ONNX Runtime refuses both as well */
        return ap__error_set(err, AP_EFORMAT, "%s: node '%s' (%s): both %s and %s are given",
                            name, node_label(n), n->op_type ? n->op_type : "?", attr, tname);
    if (t) {
        if (t->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR || !t->t)
            return wrong_type(n, tname, "a tensor", name, err);
        int64_t dims[4];
        int nd;
        if (t->t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE &&
            t->t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
            return wrong_type(n, tname, "a float or double tensor", name, err);
        if (is_double)
            *is_double = t->t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
        return ap__onnx_tensor_values(t->t, out, len, dims, &nd, name, err);
    }
    const Onnx__AttributeProto *a = ap__onnx_attr(n, attr);
    if (!a)
        return AP_OK;
    if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS)
        return wrong_type(n, attr, "a list of floats", name, err);
    double *v = malloc((a->n_floats ? a->n_floats : 1) * sizeof *v);
    if (!v)
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    for (size_t i = 0; i < a->n_floats; i++)
        v[i] = a->floats[i];
    *out = v;
    *len = a->n_floats;
    return AP_OK;
}

/* ---- tensors ---- */

int ap__onnx_tensor_values(const Onnx__TensorProto *t, double **vals, size_t *count,
                          int64_t dims[4], int *ndims, const char *name, ap_error *err)
{
    *vals = NULL;
    *count = 0;
    const char *tn = t->name ? t->name : "(unnamed)";
    if (t->n_dims > 4)
        return ap__error_set(err, AP_EFORMAT, "%s: tensor '%s' has %zu dimensions (at most 4)",
                            name, tn, t->n_dims);
    if (t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL || t->n_external_data)
        return ap__error_set(err, AP_EFORMAT, "%s: tensor '%s' uses external data (unsupported)",
                            name, tn);
    uint64_t n = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || t->dims[i] > (1 << 28))
            return ap__error_set(err, AP_EFORMAT, "%s: tensor '%s': bad dimension %lld", name, tn,
                                (long long)t->dims[i]);
        dims[i] = t->dims[i];
        n *= (uint64_t)t->dims[i];
        if (n > (1u << 28))
            return ap__error_set(err, AP_ERANGE, "%s: tensor '%s' too large", name, tn);
    }
    *ndims = (int)t->n_dims;
    size_t esz;
    size_t have;
    switch (t->data_type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
        esz = 4;
        have = t->n_float_data;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
        esz = 8;
        have = t->n_double_data;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
        esz = 8;
        have = t->n_int64_data;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
        esz = 4;
        have = t->n_int32_data;
        break;
    default:
        return ap__error_set(err, AP_EFORMAT, "%s: tensor '%s': element type %d unsupported",
                            name, tn, (int)t->data_type);
    }
    int raw = t->has_raw_data;
    if (raw ? t->raw_data.len != n * esz : have != n)
        return ap__error_set(err, AP_EFORMAT,
                            "%s: tensor '%s': holds %zu values, its dimensions say %llu", name, tn,
                            raw ? t->raw_data.len / esz : have, (unsigned long long)n);
    double *v = malloc((n ? n : 1) * sizeof *v);
    if (!v)
        return ap__error_set(err, AP_ENOMEM, "%s: out of memory", name);
    const uint8_t *rd = t->raw_data.data;
    for (size_t i = 0; i < n; i++) {
        /* raw_data is little-endian; so is every machine we build for */
        switch (t->data_type) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: {
            float f;
            if (raw)
                memcpy(&f, rd + 4 * i, 4);
            else
                f = t->float_data[i];
            v[i] = f;
            break;
        }
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
            if (raw)
                memcpy(&v[i], rd + 8 * i, 8);
            else
                v[i] = t->double_data[i];
            break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: {
            int64_t x;
            if (raw)
                memcpy(&x, rd + 8 * i, 8);
            else
                x = t->int64_data[i];
            v[i] = (double)x;
            break;
        }
        default: {
            int32_t x;
            if (raw)
                memcpy(&x, rd + 4 * i, 4);
            else
                x = t->int32_data[i];
            v[i] = x;
        }
        }
    }
    *vals = v;
    *count = n;
    return AP_OK;
}
