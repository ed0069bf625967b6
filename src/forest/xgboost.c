/*
 * XGBoost model loader (JSON via jansson, UBJSON via ubjson.c), reproducing
 * XGBoost 1.7's CPU predictor bit for bit. This file walks the model
 * document: learner, objective, booster (gbtree or dart), feature names,
 * dart weights and the trees in order; xgb_load.h lists the files that do
 * the rest (objectives and base score, one tree, allowed keys, typed fields).
 *
 *  - base_score is stored as a probability / mean; the margin is the
 *    objective's ProbToMargin in float (xgb_objective.c).
 *  - leaves add in float, tree order, from that margin; dart adds
 *    weight_drop[i] * leaf (checked against the library: not (base+leaf-base)*w).
 *  - splits, categorical ones included, are mapped onto the IR's rules in
 *    xgb_tree.c; the output transform is transform.c's ap__transform_xgboost.
 */
#include "forest/forest_internal.h"
#include "forest/xgb_load.h"
#include "common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the model ---- */

/* A weight_drop list: absent or [] means unit weights (*w = NULL); else one
   finite float per tree (XGBoost indexes it by tree, so a shorter list would
   be read past its end, and a longer one is not what was trained). */
static int read_weights(xgb_ld *L, const void *v, long ntrees, const char *where, float **w,
                        size_t *n)
{
    *w = NULL;
    *n = 0;
    if (!v)
        return AP_OK;
    if (L->o->kind(v) != XV_ARR)
        return ap__error_set(L->err, AP_EFORMAT, "%s: %s: expected array, found %s", L->name, where,
                            ap__xgb_kind_name(L->o->kind(v)));
    size_t len = L->o->length(v);
    if (len == 0)
        return AP_OK;
    if (len != (size_t)ntrees)
        return ap__error_set(L->err, AP_EFORMAT,
                            "%s: %s has %zu weights but the model has %ld trees", L->name, where,
                            len, ntrees);
    /* len == ntrees <= AP_IR_MAX_TREES: bounded */
    float *f = malloc(len * sizeof *f);
    if (!f)
        return ap__error_set(L->err, AP_ENOMEM, "%s: out of memory", L->name);
    for (size_t i = 0; i < len; i++) {
        double x;
        int is_int;
        if (L->o->number_at(v, i, &x, &is_int) != 0 || ap__xgb_to_float(x, &f[i]) != 0) {
            free(f);
            return ap__error_set(L->err, AP_EFORMAT, "%s: %s[%zu] (tree %zu) is not a finite float",
                                L->name, where, i, i);
        }
    }
    *w = f;
    *n = len;
    return AP_OK;
}

static int load_doc(xgb_ld *L, const void *root)
{
    ap_forest_ir *ir = L->ir;
    const void *learner, *lmp, *obj, *objname, *gb, *gbname, *model, *gmp, *trees, *tinfo;
    int rc;
    if (L->o->kind(root) != XV_OBJ)
        return ap__error_set(L->err, AP_EFORMAT, "%s: top level is not an object", L->name);
    if ((rc = ap__xgb_need(L, root, "learner", XV_OBJ, "model", &learner)) != AP_OK ||
        (rc = ap__xgb_need(L, learner, "learner_model_param", XV_OBJ, "learner", &lmp)) != AP_OK ||
        (rc = ap__xgb_need(L, learner, "objective", XV_OBJ, "learner", &obj)) != AP_OK ||
        (rc = ap__xgb_need(L, obj, "name", XV_STR, "learner.objective", &objname)) != AP_OK ||
        (rc = ap__xgb_need(L, learner, "gradient_booster", XV_OBJ, "learner", &gb)) != AP_OK ||
        (rc = ap__xgb_need(L, gb, "name", XV_STR, "learner.gradient_booster", &gbname)) != AP_OK)
        return rc;

    const char *s;
    size_t sn;
    L->o->string(objname, &s, &sn);
    const xgb_objective *objective = ap__xgb_objective(s, sn);
    if (!objective)
        return ap__error_set(L->err, AP_EUNSUPPORTED, "%s: objective '%.*s' is not supported",
                            L->name, (int)(sn > 64 ? 64 : sn), s);
    snprintf(ir->objective, sizeof ir->objective, "%s", objective->name);
    snprintf(ir->source, sizeof ir->source, "xgboost");
    ir->precision = AP_PREC_F32;
    ir->transform = objective->transform;
    ir->sigmoid_scale = 1.0;

    /*
     * The booster. XGBoost 1.x writes gbtree as {name: "gbtree", model} and
     * dart as {name: "dart", gbtree: {name: "gbtree", model}, weight_drop}.
     * 3.x writes both as {name: "gbtree", model: {..., weight_drop}}, the
     * weights inside the model and only when there are any, and still reads
     * the dart form: the model's weight_drop first, then the one beside
     * gbtree, which replaces it (GBTree::LoadModel). Both are accepted; when
     * both are present they must agree.
     */
    const void *wd_outer = NULL;
    L->o->string(gbname, &s, &sn);
    if (sn == 6 && !memcmp(s, "gbtree", 6)) {
        if ((rc = ap__xgb_need(L, gb, "model", XV_OBJ, "learner.gradient_booster", &model)) != AP_OK)
            return rc;
        /* 3.x would read a weight_drop here too, 1.x ignores it: ambiguous */
        if (L->o->member(gb, "weight_drop"))
            return ap__error_set(L->err, AP_EUNSUPPORTED,
                                "%s: learner.gradient_booster.weight_drop beside a gbtree model "
                                "(XGBoost 1.x ignores it, 3.x applies it; refusing rather "
                                "than guessing)",
                                L->name);
        if ((rc = ap__xgb_check_keys(L, gb, "learner.gradient_booster", XGB_KEYS_GBTREE)) != AP_OK)
            return rc;
        L->model_where = "learner.gradient_booster.model";
    } else if (sn == 4 && !memcmp(s, "dart", 4)) {
        const void *inner, *iname;
        if ((rc = ap__xgb_need(L, gb, "gbtree", XV_OBJ, "learner.gradient_booster", &inner)) !=
                AP_OK ||
            (rc = ap__xgb_need(L, inner, "name", XV_STR, "learner.gradient_booster.gbtree",
                              &iname)) != AP_OK ||
            (rc = ap__xgb_need(L, inner, "model", XV_OBJ, "learner.gradient_booster.gbtree",
                              &model)) != AP_OK)
            return rc;
        L->o->string(iname, &s, &sn);
        if (!(sn == 6 && !memcmp(s, "gbtree", 6)))
            return ap__error_set(L->err, AP_EUNSUPPORTED,
                                "%s: learner.gradient_booster.gbtree.name is '%.*s' (expected "
                                "gbtree)",
                                L->name, (int)(sn > 64 ? 64 : sn), s);
        if ((rc = ap__xgb_check_keys(L, gb, "learner.gradient_booster", XGB_KEYS_DART)) != AP_OK ||
            (rc = ap__xgb_check_keys(L, inner, "learner.gradient_booster.gbtree",
                                    XGB_KEYS_GBTREE)) != AP_OK)
            return rc;
        wd_outer = L->o->member(gb, "weight_drop");
        L->model_where = "learner.gradient_booster.gbtree.model";
    } else {
        return ap__error_set(L->err, AP_EUNSUPPORTED,
                            "%s: booster '%.*s' is not supported (gbtree and dart are)", L->name,
                            (int)(sn > 64 ? 64 : sn), s);
    }
    if ((rc = ap__xgb_check_keys(L, root, "the top level", XGB_KEYS_ROOT)) != AP_OK ||
        (rc = ap__xgb_check_keys(L, learner, "learner", XGB_KEYS_LEARNER)) != AP_OK ||
        (rc = ap__xgb_check_keys(L, lmp, "learner.learner_model_param", XGB_KEYS_LMP)) != AP_OK ||
        (rc = ap__xgb_check_keys(L, obj, "learner.objective", XGB_KEYS_OBJECTIVE)) != AP_OK ||
        (rc = ap__xgb_check_keys(L, model, L->model_where, XGB_KEYS_MODEL)) != AP_OK)
        return rc;

    long nfeat, nclass, ntarget, ntrees, slv;
    if ((rc = ap__xgb_int_field(L, lmp, "num_feature", "learner_model_param", 1, AP_IR_MAX_FEATURES,
                               0, 1, &nfeat)) != AP_OK ||
        (rc = ap__xgb_int_field(L, lmp, "num_class", "learner_model_param", 0, AP_IR_MAX_GROUPS, 0,
                               0, &nclass)) != AP_OK ||
        (rc = ap__xgb_int_field(L, lmp, "num_target", "learner_model_param", 1, AP_IR_MAX_GROUPS, 1,
                               0, &ntarget)) != AP_OK)
        return rc;
    if (nclass > 0 && ntarget > 1)
        return ap__error_set(L->err, AP_EFORMAT, "%s: both num_class (%ld) and num_target (%ld) set",
                            L->name, nclass, ntarget);
    if ((objective->transform == AP_TF_SOFTMAX || objective->transform == AP_TF_ARGMAX) &&
        nclass < 1)
        return ap__error_set(L->err, AP_EFORMAT, "%s: objective %s needs num_class >= 1", L->name,
                            objective->name);
    int G = nclass > 0 ? (int)nclass : (int)ntarget;
    ir->num_features = (int32_t)nfeat;
    ir->num_groups = G;

    /* base score, as a margin */
    if ((rc = ap__xgb_base_margin(L, lmp, objective)) != AP_OK)
        return rc;

    /* feature names (optional) */
    const void *fn = L->o->member(learner, "feature_names");
    if (fn && L->o->kind(fn) != XV_ARR)
        return ap__error_set(L->err, AP_EFORMAT, "%s: learner.feature_names is not an array",
                            L->name);
    size_t nfn = fn ? L->o->length(fn) : 0;
    if (nfn && nfn != (size_t)nfeat)
        return ap__error_set(L->err, AP_EFORMAT,
                            "%s: learner.feature_names has %zu names but num_feature is %ld",
                            L->name, nfn, nfeat);
    if (nfn) {
        ir->feature_names = calloc((size_t)nfeat, sizeof *ir->feature_names);
        if (!ir->feature_names)
            return ap__error_set(L->err, AP_ENOMEM, "%s: out of memory", L->name);
        for (size_t k = 0; k < nfn; k++) {
            const void *e = L->o->element(fn, k);
            if (!e || L->o->string(e, &s, &sn) != 0)
                return ap__error_set(L->err, AP_EFORMAT,
                                    "%s: learner.feature_names[%zu] is not a string", L->name, k);
            if (memchr(s, '\0', sn))
                return ap__error_set(L->err, AP_EFORMAT,
                                    "%s: learner.feature_names[%zu] contains a NUL byte", L->name,
                                    k);
            ir->feature_names[k] = strndup(s, sn);
            if (!ir->feature_names[k])
                return ap__error_set(L->err, AP_ENOMEM, "%s: out of memory", L->name);
        }
    }

    if ((rc = ap__xgb_need(L, model, "gbtree_model_param", XV_OBJ, "model", &gmp)) != AP_OK ||
        (rc = ap__xgb_int_field(L, gmp, "num_trees", "gbtree_model_param", 0, AP_IR_MAX_TREES, 0, 1,
                               &ntrees)) != AP_OK ||
        (rc = ap__xgb_int_field(L, gmp, "size_leaf_vector", "gbtree_model_param", 0, INT32_MAX, 0, 0,
                               &slv)) != AP_OK ||
        (rc = ap__xgb_need(L, model, "trees", XV_ARR, "model", &trees)) != AP_OK ||
        (rc = ap__xgb_need(L, model, "tree_info", XV_ARR, "model", &tinfo)) != AP_OK)
        return rc;
    if (slv > 1)
        return ap__error_set(L->err, AP_EUNSUPPORTED,
                            "%s: vector leaves (size_leaf_vector %ld) are not supported", L->name,
                            slv);
    char where[96];
    snprintf(where, sizeof where, "%s.gbtree_model_param", L->model_where);
    if ((rc = ap__xgb_check_keys(L, gmp, where, XGB_KEYS_GMP)) != AP_OK)
        return rc;
    if (L->o->length(trees) != (size_t)ntrees || L->o->length(tinfo) != (size_t)ntrees)
        return ap__error_set(L->err, AP_EFORMAT,
                            "%s: num_trees is %ld but trees has %zu, tree_info %zu entries",
                            L->name, ntrees, L->o->length(trees), L->o->length(tinfo));
    const void *cats = L->o->member(model, "cats");
    if (cats && (rc = ap__xgb_check_cats(L, cats)) != AP_OK)
        return rc;

    /* dart tree weights: inside the model (3.x) and/or beside gbtree (1.x
       dart); the outer list is what XGBoost 3.x ends up with, so two lists
       that differ cannot both be honoured: refused */
    float *wm = NULL, *wo = NULL;
    size_t nwm = 0, nwo = 0;
    snprintf(where, sizeof where, "%s.weight_drop", L->model_where);
    rc = read_weights(L, L->o->member(model, "weight_drop"), ntrees, where, &wm, &nwm);
    if (rc == AP_OK)
        rc = read_weights(L, wd_outer, ntrees, "learner.gradient_booster.weight_drop", &wo, &nwo);
    if (rc == AP_OK && wd_outer && L->o->member(model, "weight_drop") &&
        (nwm != nwo || (nwm && memcmp(wm, wo, nwm * sizeof *wm) != 0)))
        rc = ap__error_set(L->err, AP_EFORMAT,
                          "%s: %s and learner.gradient_booster.weight_drop differ (XGBoost 3.x "
                          "would use the second, 1.x only knows it; refusing rather than "
                          "guessing)",
                          L->name, where);
    const float *wdrop = wo ? wo : wm;

    xgb_tree_scratch sc = {0};
    for (long ti = 0; ti < ntrees && rc == AP_OK; ti++) {
        double g;
        int is_int;
        if (L->o->number_at(tinfo, (size_t)ti, &g, &is_int) != 0 || !is_int || g < 0 ||
            g >= G) {
            rc = ap__error_set(L->err, AP_EFORMAT,
                              "%s: tree %ld: tree_info group is not an integer in [0, %d)",
                              L->name, ti, G);
            break;
        }
        rc = ap__xgb_load_tree(L, (int)ti, L->o->element(trees, (size_t)ti), (int32_t)g,
                              wdrop ? wdrop[ti] : 1.0, &sc);
    }
    free(wm);
    free(wo);
    ap__xgb_tree_scratch_free(&sc);
    return rc;
}

int ap__xgboost_load_json(const char *buf, size_t len, const char *name, ap_forest_ir *ir,
                         ap_error *err)
{
    struct json_t *root;
    int rc = ap__xgb_json_parse(buf, len, name, &root, err);
    if (rc != AP_OK)
        return rc;
    xgb_ld L = {&ap__xgb_json_ops, name, err, ir, "learner.gradient_booster.model"};
    rc = load_doc(&L, root);
    ap__xgb_json_free(root);
    return rc;
}

int ap__xgboost_load_ubj(const unsigned char *buf, size_t len, const char *name, ap_forest_ir *ir,
                        ap_error *err)
{
    ubj_val *root;
    int rc = ap__ubj_parse(buf, len, name, &root, err);
    if (rc != AP_OK)
        return rc;
    xgb_ld L = {&ap__ubj_ops, name, err, ir, "learner.gradient_booster.model"};
    rc = load_doc(&L, root);
    ap__ubj_free(root);
    return rc;
}
