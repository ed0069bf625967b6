/*
 * XGBoost objectives: which are supported, the transform each applies to
 * the margins (transform.c computes it), and base_score, stored as a
 * probability / mean, turned into the margin XGBoost starts from: its
 * ProbToMargin in float, -logf(1/b - 1) for binary:logistic and
 * reg:logistic, logf(b) for poisson/gamma/tweedie, b otherwise
 * (binary:logitraw included: checked against the library).
 */
#include "forest/xgb_load.h"
#include "common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const xgb_objective objectives[] = {
    {"binary:logistic", PTM_LOGIT, AP_TF_SIGMOID},
    {"reg:logistic", PTM_LOGIT, AP_TF_SIGMOID},
    {"binary:logitraw", PTM_IDENTITY, AP_TF_IDENTITY}, /* 1.7: base_score taken as a margin */
    {"reg:squarederror", PTM_IDENTITY, AP_TF_IDENTITY},
    {"reg:linear", PTM_IDENTITY, AP_TF_IDENTITY},
    {"reg:squaredlogerror", PTM_IDENTITY, AP_TF_IDENTITY},
    {"reg:pseudohubererror", PTM_IDENTITY, AP_TF_IDENTITY},
    {"reg:absoluteerror", PTM_IDENTITY, AP_TF_IDENTITY},
    {"reg:quantileerror", PTM_IDENTITY, AP_TF_IDENTITY},
    {"count:poisson", PTM_LOG, AP_TF_EXP},
    {"reg:gamma", PTM_LOG, AP_TF_EXP},
    {"reg:tweedie", PTM_LOG, AP_TF_EXP},
    {"multi:softprob", PTM_IDENTITY, AP_TF_SOFTMAX},
    {"multi:softmax", PTM_IDENTITY, AP_TF_ARGMAX},
    {"rank:pairwise", PTM_IDENTITY, AP_TF_IDENTITY},
    {"rank:ndcg", PTM_IDENTITY, AP_TF_IDENTITY},
    {"rank:map", PTM_IDENTITY, AP_TF_IDENTITY},
};

const xgb_objective *ap__xgb_objective(const char *s, size_t sn)
{
    for (size_t k = 0; k < sizeof objectives / sizeof objectives[0]; k++)
        if (strlen(objectives[k].name) == sn && !memcmp(objectives[k].name, s, sn))
            return &objectives[k];
    return NULL;
}

/* base_score: "5E-1" (1.x/2.x), "[5E-1]" or "[a,b,c]" (3.x), or a number. */
static int parse_base_score(xgb_ld *L, const void *v, float *vals, int G, int *count)
{
    const char *s;
    size_t n;
    double x;
    int is_int;
    *count = 0;
    if (L->o->number(v, &x, &is_int) == 0) {
        if (ap__xgb_to_float(x, &vals[0]) != 0)
            goto bad;
        *count = 1;
        return AP_OK;
    }
    if (L->o->string(v, &s, &n) != 0)
        goto bad;
    char *tmp = malloc(n + 1);
    if (!tmp)
        return ap__error_set(L->err, AP_ENOMEM, "%s: out of memory", L->name);
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *p = tmp;
    int rc = AP_OK, list = 0;
    while (*p == ' ')
        p++;
    if (*p == '[') {
        list = 1;
        p++;
    }
    for (;;) {
        while (*p == ' ')
            p++;
        if (list && *p == ']' && *count == 0)
            break; /* "[]" */
        char *end;
        /* strtof: the decimal rounds straight to float, as XGBoost reads it */
        float f = strtof(p, &end);
        if (end == p || !isfinite(f) || *count >= G) {
            rc = -1;
            break;
        }
        vals[(*count)++] = f;
        p = end;
        while (*p == ' ')
            p++;
        if (list && *p == ',') {
            p++;
            continue;
        }
        if (list && *p == ']')
            p++;
        else if (list)
            rc = -1;
        break;
    }
    while (rc == 0 && *p == ' ')
        p++;
    if (rc == 0 && (*p || *count == 0))
        rc = -1;
    free(tmp);
    if (rc == 0)
        return AP_OK;
bad:
    return ap__error_set(L->err, AP_EFORMAT,
                        "%s: learner_model_param.base_score: expected a number, or a list of 1 "
                        "or %d numbers",
                        L->name, G);
}

int ap__xgb_base_margin(xgb_ld *L, const void *lmp, const xgb_objective *obj)
{
    ap_forest_ir *ir = L->ir;
    const int G = ir->num_groups;
    int rc;
    const void *bs = L->o->member(lmp, "base_score");
    if (!bs)
        return ap__error_set(L->err, AP_EFORMAT, "%s: learner_model_param: missing base_score",
                            L->name);
    float *bv = malloc((size_t)G * sizeof *bv);
    ir->base_score = malloc((size_t)G * sizeof *ir->base_score);
    if (!bv || !ir->base_score) {
        free(bv);
        return ap__error_set(L->err, AP_ENOMEM, "%s: out of memory", L->name);
    }
    int nb;
    rc = parse_base_score(L, bs, bv, G, &nb);
    if (rc == AP_OK && nb != 1 && nb != G)
        rc = ap__error_set(L->err, AP_EFORMAT,
                          "%s: base_score has %d values for %d outputs", L->name, nb, G);
    for (int g = 0; rc == AP_OK && g < G; g++) {
        float b = bv[nb == 1 ? 0 : g], m = b;
        if (obj->prob_to_margin == PTM_LOGIT) {
            if (!(b > 0.0f && b < 1.0f))
                rc = ap__error_set(L->err, AP_EFORMAT,
                                  "%s: base_score %.9g must be in (0, 1) for %s", L->name, b,
                                  obj->name);
            m = -logf(1.0f / b - 1.0f);
        } else if (obj->prob_to_margin == PTM_LOG) {
            if (!(b > 0.0f))
                rc = ap__error_set(L->err, AP_EFORMAT, "%s: base_score %.9g must be > 0 for %s",
                                  L->name, b, obj->name);
            m = logf(b);
        }
        ir->base_score[g] = m;
    }
    free(bv);
    return rc;
}
