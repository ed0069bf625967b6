/*
 * The objective transforms of both libraries, bit for bit: what turns a
 * row's margins into its outputs (sigmoid, softmax, argmax, exp, ...).
 * XGBoost computes in float, LightGBM in double; each function reproduces
 * its library's own formula (checked against the libraries). Which
 * transform a model uses is decided by its loader (ir->transform); the
 * margins arrive here with base score and averaging already applied.
 */
#include "forest/transform.h"

#include <math.h>
#include <string.h>

/* ---- XGBoost: 1.7's PredTransform, in float ---- */

void ap__transform_xgboost(const ap_forest_ir *ir, const double *m, double *out)
{
    int G = ir->num_groups;
    switch (ir->transform) {
    case AP_TF_SIGMOID:
        for (int g = 0; g < G; g++) {
            /* common::Sigmoid: x = std::min(-x, 88.7f); 1 / (expf(x) + 1 + 1e-16f).
               The clamp keeps expf finite, so very negative margins give
               ~3.0e-39, not 0 (checked against the library). */
            float nx = -(float)m[g];
            if (88.7f < nx)
                nx = 88.7f;
            float den = expf(nx) + 1.0f + 1e-16f;
            out[g] = 1.0f / den;
        }
        break;
    case AP_TF_EXP:
        for (int g = 0; g < G; g++)
            out[g] = expf((float)m[g]);
        break;
    case AP_TF_SOFTMAX: {
        /* common::Softmax: float max and exps, but the sum in double, cast
           to float for the divisions (checked: a float sum differs). */
        float wmax = (float)m[0];
        for (int g = 1; g < G; g++)
            wmax = fmaxf((float)m[g], wmax);
        double wsum = 0.0;
        for (int g = 0; g < G; g++) {
            float e = expf((float)m[g] - wmax);
            out[g] = e;
            wsum += e;
        }
        for (int g = 0; g < G; g++)
            out[g] = (float)out[g] / (float)wsum;
        break;
    }
    case AP_TF_ARGMAX: {
        /* FindMaxIndex: the first maximum */
        int best = 0;
        for (int g = 1; g < G; g++)
            if ((float)m[g] > (float)m[best])
                best = g;
        out[0] = best;
        break;
    }
    default:
        for (int g = 0; g < G; g++)
            out[g] = (float)m[g];
        break;
    }
}

/* ---- LightGBM ---- */

/*
 * LightGBM's ObjectiveFunction::ConvertOutput, in double:
 *   sigmoid (binary, multiclassova per class, cross_entropy):
 *       1.0 / (1.0 + exp(-sigmoid * x))
 *   softmax (Common::Softmax): m = max; e_i = exp(x_i - m); e_i / sum(e)
 *   exp (poisson, gamma, tweedie); regression sqrt: Sign(x) * x * x
 *   cross_entropy_lambda: SafeLog(1.0 + exp(x)) = log(1.0 + exp(x)) -- the
 *       library's own formula, which is not log1p(exp(x)) to the last bit.
 */
void ap__transform_lightgbm(const ap_forest_ir *ir, const double *m, double *out)
{
    int G = ir->num_groups;
    switch (ir->transform) {
    case AP_TF_SIGMOID:
        for (int g = 0; g < G; g++)
            out[g] = 1.0 / (1.0 + exp(-ir->sigmoid_scale * m[g]));
        break;
    case AP_TF_SOFTMAX: {
        double wmax = m[0];
        for (int g = 1; g < G; g++)
            wmax = m[g] < wmax ? wmax : m[g]; /* std::max(m[g], wmax) */
        double wsum = 0.0;
        for (int g = 0; g < G; g++) {
            out[g] = exp(m[g] - wmax);
            wsum += out[g];
        }
        for (int g = 0; g < G; g++)
            out[g] /= wsum;
        break;
    }
    case AP_TF_EXP:
        for (int g = 0; g < G; g++)
            out[g] = exp(m[g]);
        break;
    case AP_TF_LOG1P_EXP:
        for (int g = 0; g < G; g++)
            out[g] = log(1.0 + exp(m[g]));
        break;
    case AP_TF_SQUARE_SIGNED:
        for (int g = 0; g < G; g++)
            out[g] = (double)((m[g] > 0) - (m[g] < 0)) * m[g] * m[g];
        break;
    default:
        for (int g = 0; g < G; g++)
            out[g] = m[g];
        break;
    }
}

void ap__transform_rows(const ap_forest_ir *ir, const double *count, const void *acc, int nb,
                        int raw, double *out, int nout)
{
    const int32_t G = ir->num_groups;
    double m[AP_IR_MAX_GROUPS_ROW];
    for (int r = 0; r < nb; r++) {
        for (int32_t g = 0; g < G; g++) {
            if (ir->precision == AP_PREC_F32) {
                m[g] = (double)((const float *)acc)[r * G + g];
            } else {
                /* LightGBM averages only the transformed output (ir.h) */
                double s = ((const double *)acc)[r * G + g];
                if (ir->average_output && !raw && count[g] > 0)
                    s /= count[g];
                m[g] = s + ir->base_score[g];
            }
        }
        double *o = out + (size_t)r * nout;
        if (raw)
            memcpy(o, m, (size_t)G * sizeof *m);
        else if (ir->precision == AP_PREC_F32)
            ap__transform_xgboost(ir, m, o);
        else
            ap__transform_lightgbm(ir, m, o);
    }
}
