/* PLACEHOLDER engine: delegates to the IR reference predictor until the
   compiled engine lands. (Allocates in ap_forest_ir_predict_ref.) */
#include "forest/forest_internal.h"
#include "common/error.h"

#include <stdlib.h>

struct ap_engine {
    const ap_forest_ir *ir;
};

int ap_engine_compile(const ap_forest_ir *ir, ap_engine **out, ap_error *err)
{
    ap_engine *e = malloc(sizeof *e);
    if (!e)
        return ap_error_set(err, AP_ENOMEM, "out of memory");
    e->ir = ir;
    *out = e;
    return AP_OK;
}

void ap_engine_free(ap_engine *e) { free(e); }

void ap_engine_predict(const ap_engine *e, const double *X, size_t nrows, double *out,
                       unsigned flags)
{
    int raw = (flags & AP_PREDICT_RAW) != 0;
    int nout = raw ? e->ir->num_groups : ap_forest_ir_num_outputs(e->ir);
    for (size_t r = 0; r < nrows; r++)
        ap_forest_ir_predict_ref(e->ir, X + r * (size_t)e->ir->num_features, raw,
                                 out + r * (size_t)nout);
}
