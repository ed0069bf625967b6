/* PLACEHOLDER: XGBoost JSON / UBJSON loader (being written). */
#include "forest/forest_internal.h"
#include "common/error.h"

int ap_xgboost_load_json(const char *buf, size_t len, const char *name, ap_forest_ir *ir,
                         ap_error *err)
{
    (void)buf; (void)len; (void)ir;
    return ap_error_set(err, AP_EUNSUPPORTED, "%s: XGBoost JSON loader not built yet", name);
}

int ap_xgboost_load_ubj(const unsigned char *buf, size_t len, const char *name, ap_forest_ir *ir,
                        ap_error *err)
{
    (void)buf; (void)len; (void)ir;
    return ap_error_set(err, AP_EUNSUPPORTED, "%s: XGBoost UBJSON loader not built yet", name);
}

void ap_xgboost_transform(const ap_forest_ir *ir, const double *m, double *out)
{
    for (int g = 0; g < ir->num_groups; g++)
        out[g] = m[g];
}
