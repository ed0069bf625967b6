/*
 * run.c: the native plan (plan.h) on rows. Rows go through in blocks that
 * fit one stack scratch of AP_PLAN_SCRATCH doubles (at most 256 rows), each
 * block slot by slot as the stages compiled them: float slots compute in
 * float (as ONNX Runtime's float kernels), double slots in double. A plan
 * that is one tree ensemble on the input skips the scratch.
 */
#include "onnx/plan.h"
#include "forest/ir.h"

#include <math.h>
#include <string.h>

/* elementwise operators on float tensors: in float, as ORT */
static float act(int kind, float x)
{
    switch (kind) {
    case ACT_RELU: return x > 0 ? x : 0;
    case ACT_SIGMOID: return ap__onnx_logistic(x);
    case ACT_EXP: return expf(x);
    case ACT_SOFTPLUS: return ap__onnx_softplus(x);
    case ACT_ABS: return fabsf(x);
    case ACT_NEG: return -x;
    default: return tanhf(x);
    }
}

/* ... and on double tensors, in double */
static double act_d(int kind, double x)
{
    switch (kind) {
    case ACT_RELU: return x > 0 ? x : 0;
    case ACT_SIGMOID: return ap__onnx_logistic_d(x);
    case ACT_EXP: return exp(x);
    case ACT_SOFTPLUS: return ap__onnx_softplus_d(x);
    case ACT_ABS: return fabs(x);
    case ACT_NEG: return -x;
    default: return tanh(x);
    }
}

static float binop(int op, float a, float b)
{
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    default: return a / b;
    }
}

static double binop_d(int op, double a, double b)
{
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    default: return a / b;
    }
}

static void run_stage(const ap_onnx_plan *p, const stage *s, double *sc, size_t nb, float *xf)
{
    const int wi = s->in >= 0 ? p->width[s->in] : 0, wo = p->width[s->out];
    double *in = s->in >= 0 ? sc + (size_t)p->off[s->in] * nb : NULL;
    double *out = sc + (size_t)p->off[s->out] * nb;
    switch (s->kind) {
    case ST_TREES:
        ap__onnx_trees_run(s->trees, in, nb, out);
        return;
    case ST_DENSE:
        ap__dense_forward(&s->dense, in, nb, out, xf);
        return;
    case ST_LINCLS: {
        ap__dense_forward(&s->dense, in, nb, out + (s->binary ? nb : 0), xf);
        float v[AP_PLAN_MAX_WIDTH];
        for (size_t r = 0; r < nb; r++) {
            if (s->binary) {
                /* one score for two classes, as ORT's LinearClassifier */
                float sc1 = (float)out[nb + r];
                float pr = s->post == AP_POST_LOGISTIC ? ap__onnx_logistic(sc1)
                        : s->post == AP_POST_PROBIT ? ap__onnx_probit(sc1) : sc1;
                out[r * 2] = s->post == AP_POST_NONE ? -pr : 1.0f - pr;
                out[r * 2 + 1] = pr;
                continue;
            }
            double *o = out + r * (size_t)wo;
            if (!s->sub && wo == 1) {
                /* LinearRegressor with one target: ORT applies only PROBIT */
                if (s->post == AP_POST_PROBIT)
                    o[0] = ap__onnx_probit((float)o[0]);
                continue;
            }
            for (int k = 0; k < wo; k++)
                v[k] = (float)o[k];
            switch (s->post) {
            case AP_POST_LOGISTIC:
                for (int k = 0; k < wo; k++)
                    v[k] = ap__onnx_logistic(v[k]);
                break;
            case AP_POST_SOFTMAX: ap__onnx_softmax(v, wo); break;
            case AP_POST_SOFTMAX_ZERO: ap__onnx_softmax_zero(v, wo); break;
            case AP_POST_PROBIT:
                for (int k = 0; k < wo; k++)
                    v[k] = ap__onnx_probit(v[k]);
                break;
            default: break;
            }
            for (int k = 0; k < wo; k++)
                o[k] = v[k];
        }
        return;
    }
    default:
        break;
    }
    for (size_t r = 0; r < nb; r++) {
        const double *x = in ? in + r * (size_t)wi : NULL;
        double *y = out + r * (size_t)wo;
        switch (s->kind) {
        case ST_SCALER:
            for (int k = 0; k < wo; k++)
                y[k] = ((float)x[k] - s->c[s->nc == 1 ? 0 : k]) * s->c2[s->nc2 == 1 ? 0 : k];
            break;
        case ST_NORM: {
            float a = 0;
            if (s->sub == NORM_MAX) {
                a = (float)x[0];
                for (int k = 1; k < wo; k++)
                    a = (float)x[k] > a ? (float)x[k] : a;
            } else {
                for (int k = 0; k < wo; k++)
                    a += s->sub == NORM_L1 ? fabsf((float)x[k]) : (float)x[k] * (float)x[k];
                if (s->sub == NORM_L2)
                    a = sqrtf(a);
            }
            for (int k = 0; k < wo; k++)
                y[k] = a != 0 ? (float)x[k] / a : (float)x[k];
            break;
        }
        case ST_ACT:
            if (p->dbl[s->in]) {
                for (int k = 0; k < wo; k++)
                    y[k] = x[k];
                if (s->sub == ACT_SOFTMAX)
                    ap__onnx_softmax_d(y, wo);
                else
                    for (int k = 0; k < wo; k++)
                        y[k] = act_d(s->sub, y[k]);
            } else if (s->sub == ACT_SOFTMAX) {
                float v[AP_PLAN_MAX_WIDTH];
                for (int k = 0; k < wo; k++)
                    v[k] = (float)x[k];
                ap__onnx_softmax(v, wo);
                for (int k = 0; k < wo; k++)
                    y[k] = v[k];
            } else {
                for (int k = 0; k < wo; k++)
                    y[k] = act(s->sub, (float)x[k]);
            }
            break;
        case ST_CAST:
            /* to float rounds; to double, float values are already exact */
            for (int k = 0; k < wo; k++)
                y[k] = p->dbl[s->out] ? x[k] : ap__ir_round_f32(x[k]);
            break;
        case ST_CONCAT: {
            int col = 0;
            for (int i = 0; i < s->nins; i++) {
                int w = p->width[s->ins[i]];
                memcpy(y + col, sc + (size_t)p->off[s->ins[i]] * nb + r * (size_t)w,
                       (size_t)w * sizeof *y);
                col += w;
            }
            break;
        }
        case ST_BINC:
            for (int k = 0; k < wo; k++) {
                double cv = s->cd[s->nc == 1 ? 0 : k];
                double a = s->const_left ? cv : x[k], b = s->const_left ? x[k] : cv;
                y[k] = p->dbl[s->in] ? binop_d(s->sub, a, b)
                                     : binop(s->sub, (float)a, (float)b);
            }
            break;
        case ST_BIN2: {
            const double *x2 = sc + (size_t)p->off[s->in2] * nb + r * (size_t)wo;
            for (int k = 0; k < wo; k++)
                y[k] = p->dbl[s->in] ? binop_d(s->sub, x[k], x2[k])
                                     : binop(s->sub, (float)x[k], (float)x2[k]);
            break;
        }
        default:
            break;
        }
    }
}

void ap__onnx_plan_run(const ap_onnx_plan *p, const double *X, size_t nrows, double *out)
{
    if (p->direct_trees) {
        ap__onnx_trees_run(p->st[0].trees, X, nrows, out);
        return;
    }
    double sc[AP_PLAN_SCRATCH];
    float xf[AP_PLAN_MAX_WIDTH];
    size_t block = AP_PLAN_SCRATCH / (size_t)p->row_width;
    if (block > 256)
        block = 256;
    for (size_t r0 = 0; r0 < nrows; r0 += block) {
        size_t nb = nrows - r0 < block ? nrows - r0 : block;
        double *in = sc + (size_t)p->off[p->in_slot] * nb;
        const double *Xb = X + r0 * (size_t)p->nf;
        for (size_t i = 0; i < nb * (size_t)p->nf; i++)
            in[i] = p->f64 ? Xb[i] : ap__ir_round_f32(Xb[i]);
        for (int i = 0; i < p->nst; i++)
            run_stage(p, &p->st[i], sc, nb, xf);
        memcpy(out + r0 * (size_t)p->nout, sc + (size_t)p->off[p->out_slot] * nb,
               nb * (size_t)p->nout * sizeof *out);
    }
}
