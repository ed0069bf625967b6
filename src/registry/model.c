/*
 * A loaded version: its lifetime (refcount, free) and what it says about
 * itself (description, features read, input names). Depends only on the
 * model structs (model.h); never on the registry catalog.
 */
#include "registry/model.h"
#include "alphapulse/features.h"

#include <stdlib.h>
#include <string.h>

/* ---- lifetime ----------------------------------------------------------- */

void ap__model_free_now(ap_model *m)
{
    if (!m)
        return;
    if (m->ops)
        m->ops->free(m->impl);
    ap__version_spec_free(&m->spec);
    free(m->members);
    free(m);
}

void ap_model_release(ap_model *m)
{
    if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        ap__model_free_now(m);
}

void ap_model_retain(ap_model *m)
{
    if (m)
        atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

/* ---- description -------------------------------------------------------- */

void ap_model_describe(const ap_model *m, ap_model_info *out)
{
    memset(out, 0, sizeof *out);
    int ens = m->man.kind == AP_MODEL_ENSEMBLE;
    out->name = m->man.name;
    out->kind = m->man.kind;
    out->kind_name = ap__model_kind_name(m->man.kind);
    out->target = m->man.target;
    out->format = ens ? "ensemble" : m->spec.format;
    out->file = m->spec.file;
    out->version = m->version;
    out->num_inputs = m->spec.num_inputs;
    out->num_outputs = m->num_outputs;
    out->num_trees = ens ? 0 : m->desc.num_trees;
    out->pipeline_steps = m->spec.pipeline ? ap__pipeline_num_steps(m->spec.pipeline) : 0;
    out->pipeline = m->describe;
    out->confidence = ap__confidence_name(m->spec.confidence);
    out->output_index = m->spec.output_index;
    out->max_batch_size = m->man.max_batch_size;
    out->max_queue_delay_us = m->man.max_queue_delay_us;
    out->min_bars = m->man.min_bars;
    out->precision = ap_precision_name(m->precision);
    out->precision_requested = ap_precision_name(m->man.precision);
    out->precision_note = m->precision_note;
    out->node_bytes = m->node_bytes;
    out->model_bytes_full = m->bytes_full;
    out->model_bytes_reduced = m->bytes_reduced;
    out->precision_deviation = m->precision_deviation;
    out->device = m->device;
    out->device_requested = ap_device_name(m->man.device);
    out->gpu_min_batch_rows = m->gpu_min_rows;
}

int ap_model_features_used(const ap_model *m, unsigned char *used)
{
    int F = ap_feature_count();
    memset(used, 0, (size_t)F);
    if (m->man.kind == AP_MODEL_ENSEMBLE) {
        unsigned char sub[AP_FEATURE_COUNT];
        for (int k = 0; k < m->spec.num_inputs; k++) {
            ap_model *mm = ap__entry_acquire(m->members[k]);
            if (!mm)
                continue;
            ap_model_features_used(mm, sub);
            ap_model_release(mm);
            for (int j = 0; j < F; j++)
                used[j] |= sub[j];
        }
    } else if (m->man.kind != AP_MODEL_RAW && m->spec.feature_idx) {
        for (int j = 0; j < m->spec.num_inputs; j++)
            used[m->spec.feature_idx[j]] = 1;
    }
    int n = 0;
    for (int j = 0; j < F; j++)
        n += used[j];
    return n;
}

const char *ap_model_input_name(const ap_model *m, int i)
{
    if (!m->spec.inputs || i < 0 || i >= m->spec.num_inputs)
        return NULL;
    return m->spec.inputs[i];
}
