/*
 * The LightGBM objective line ("binary sigmoid:1", "multiclass num_class:3",
 * "regression sqrt", ...): which objectives are supported, the output
 * transform each means (transform.c computes it) and the parameters each
 * may carry; anything else is refused.
 */
#include "forest/lgb_load.h"
#include "common/error.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* LightGBM reads the objective's parameters (sigmoid:X) with Common::Atof, its
   own fast and not correctly rounded parser, rather than the precise one used
   for tree arrays. Reproduce it so an unusual sigmoid matches bit for bit. */
static double lgb_pow(double base, int power)
{
    if (power == 0)
        return 1.0;
    if (power % 2 == 0)
        return lgb_pow(base * base, power / 2);
    if (power % 3 == 0)
        return lgb_pow(base * base * base, power / 3);
    return base * lgb_pow(base, power - 1);
}

/* Only plain decimal numbers ([+-]digits[.digits][e[+-]digits]); 0 otherwise. */
static int lgb_atof(const char *p, const char *end, double *out)
{
    double sign = 1.0, value = 0.0, scale = 1.0;
    int frac = 0, digits = 0;
    if (p < end && (*p == '-' || *p == '+'))
        sign = *p++ == '-' ? -1.0 : 1.0;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++)
        value = value * 10.0 + (*p - '0');
    if (p < end && *p == '.') {
        double right = 0.0;
        int nn = 0;
        for (p++; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
            right = (*p - '0') + right * 10.0;
            if (nn < 400) /* lgb_pow(10, >=309) is inf already */
                nn++;
        }
        value += right / lgb_pow(10.0, nn);
    }
    if (!digits)
        return 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        uint32_t expon = 0;
        p++;
        if (p < end && (*p == '-' || *p == '+'))
            frac = *p++ == '-';
        for (; p < end && *p >= '0' && *p <= '9'; p++)
            expon = expon > 1000 ? expon : expon * 10 + (uint32_t)(*p - '0');
        if (expon > 308)
            expon = 308;
        while (expon >= 50) {
            scale *= 1E50;
            expon -= 50;
        }
        while (expon >= 8) {
            scale *= 1E8;
            expon -= 8;
        }
        while (expon > 0) {
            scale *= 10.0;
            expon -= 1;
        }
    }
    if (p != end)
        return 0;
    *out = sign * (frac ? (value / scale) : (value * scale));
    return 1;
}

/* The tokens after the name are the ones each objective's ToString writes
   (LightGBM src/objective); any other token, or one twice, is refused. */
enum {
    OBJ_SQRT = 1,       /* "sqrt": output sign(x) x^2 (RegressionL2loss and the subclasses
                           that keep its ConvertOutput) */
    OBJ_SIGMOID = 2,    /* needs sigmoid:X */
    OBJ_NUM_CLASS = 4,  /* needs num_class:K equal to the header's num_class */
    OBJ_ONE_OUTPUT = 8  /* one tree per iteration */
};

static const struct lgb_objective {
    const char *name;
    ap_transform tf;
    unsigned flags;
} lgb_objectives[] = {
    /* names as LightGBM's ObjectiveFunction::ToString writes them */
    {"regression", AP_TF_IDENTITY, OBJ_SQRT | OBJ_ONE_OUTPUT},
    {"regression_l1", AP_TF_IDENTITY, OBJ_SQRT | OBJ_ONE_OUTPUT},
    /* huber: LightGBM turns sqrt off (RegressionHuberLoss), never writes it */
    {"huber", AP_TF_IDENTITY, OBJ_ONE_OUTPUT},
    {"fair", AP_TF_IDENTITY, OBJ_SQRT | OBJ_ONE_OUTPUT},
    {"quantile", AP_TF_IDENTITY, OBJ_SQRT | OBJ_ONE_OUTPUT},
    {"mape", AP_TF_IDENTITY, OBJ_SQRT | OBJ_ONE_OUTPUT},
    {"poisson", AP_TF_EXP, OBJ_ONE_OUTPUT},
    {"gamma", AP_TF_EXP, OBJ_ONE_OUTPUT},
    {"tweedie", AP_TF_EXP, OBJ_ONE_OUTPUT},
    {"binary", AP_TF_SIGMOID, OBJ_SIGMOID | OBJ_ONE_OUTPUT},
    {"multiclass", AP_TF_SOFTMAX, OBJ_NUM_CLASS},
    {"multiclassova", AP_TF_SIGMOID, OBJ_NUM_CLASS | OBJ_SIGMOID},
    /* cross_entropy is 1/(1+exp(-x)): the sigmoid with scale 1 (-1*x == -x) */
    {"cross_entropy", AP_TF_SIGMOID, OBJ_ONE_OUTPUT},
    {"cross_entropy_lambda", AP_TF_LOG1P_EXP, OBJ_ONE_OUTPUT},
    {"lambdarank", AP_TF_IDENTITY, OBJ_ONE_OUTPUT},
    {"rank_xendcg", AP_TF_IDENTITY, OBJ_ONE_OUTPUT},
    /* a model trained with a custom objective has no output conversion */
    {"custom", AP_TF_IDENTITY, 0},
};

int ap__lgb_parse_objective(lgb_span v, int num_class, const char *name, ap_forest_ir *ir,
                           ap_error *err)
{
    lgb_tokens t = lgb_tokens_of(v);
    lgb_span tok;
    if (!lgb_next_token(&t, &tok))
        return ap__error_set(err, AP_EFORMAT, "%s:%ld: empty objective", name, v.line);
    const struct lgb_objective *obj = NULL;
    for (size_t i = 0; i < sizeof lgb_objectives / sizeof lgb_objectives[0]; i++)
        if (lgb_span_eq(tok, lgb_objectives[i].name))
            obj = &lgb_objectives[i];
    if (!obj)
        return ap__error_set(err, AP_EUNSUPPORTED, "%s:%ld: unknown LightGBM objective " TOKFMT,
                            name, v.line, TOKARG(tok));
    ir->transform = obj->tf;
    ir->sigmoid_scale = 1.0;
    int have_sigmoid = 0, have_nc = 0, use_sqrt = 0;
    while (lgb_next_token(&t, &tok)) {
        int *seen = NULL;
        if (lgb_span_eq(tok, "sqrt") && (obj->flags & OBJ_SQRT)) {
            seen = &use_sqrt;
        } else if (lgb_span_starts(tok, "sigmoid:") && (obj->flags & OBJ_SIGMOID)) {
            seen = &have_sigmoid;
            if (!lgb_atof(tok.p + 8, tok.p + tok.n, &ir->sigmoid_scale) ||
                !isfinite(ir->sigmoid_scale) || ir->sigmoid_scale <= 0)
                return ap__error_set(err, AP_EFORMAT,
                                    "%s:%ld: objective: bad sigmoid " TOKFMT
                                    " (a positive number)",
                                    name, v.line, TOKARG(tok));
        } else if (lgb_span_starts(tok, "num_class:") && (obj->flags & OBJ_NUM_CLASS)) {
            long long k;
            lgb_span num = {tok.p + 10, tok.n - 10, v.line};
            seen = &have_nc;
            if (!ap__lgb_tok_llong(num, &k) || k != num_class)
                return ap__error_set(err, AP_EFORMAT,
                                    "%s:%ld: objective " TOKFMT " disagrees with num_class=%d",
                                    name, v.line, TOKARG(tok), num_class);
        } else {
            /* not a parameter LightGBM writes for this objective: it may
               mean something to a version we do not know */
            return ap__error_set(err, AP_EUNSUPPORTED,
                                "%s:%ld: objective %s: unknown parameter " TOKFMT
                                " (refusing rather than ignoring it)",
                                name, v.line, obj->name, TOKARG(tok));
        }
        if (*seen)
            return ap__error_set(err, AP_EFORMAT, "%s:%ld: objective: " TOKFMT " given twice",
                                name, v.line, TOKARG(tok));
        *seen = 1;
    }
    if ((obj->flags & OBJ_SIGMOID) && !have_sigmoid)
        return ap__error_set(err, AP_EFORMAT, "%s:%ld: objective %s without sigmoid:X", name,
                            v.line, obj->name);
    if ((obj->flags & OBJ_NUM_CLASS) && !have_nc)
        return ap__error_set(err, AP_EFORMAT, "%s:%ld: objective %s without num_class:K", name,
                            v.line, obj->name);
    if ((obj->flags & OBJ_ONE_OUTPUT) && num_class != 1)
        return ap__error_set(err, AP_EFORMAT, "%s:%ld: objective %s with num_class=%d (expected 1)",
                            name, v.line, obj->name, num_class);
    if (use_sqrt && (obj->flags & OBJ_SQRT))
        ir->transform = AP_TF_SQUARE_SIGNED;
    /* the whole objective line when it fits (e.g. "binary sigmoid:1"), else its name */
    if (v.n < sizeof ir->objective)
        snprintf(ir->objective, sizeof ir->objective, "%.*s", (int)v.n, v.p);
    else
        snprintf(ir->objective, sizeof ir->objective, "%s", obj->name);
    return AP_OK;
}
