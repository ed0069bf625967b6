/*
 * The two JSON documents of a model folder (docs/MODEL_REPOSITORY.md):
 *   <name>/manifest.json    what the model is, for as long as it is served
 *   <name>/<N>/version.json what one trained version is made of
 * Parsers take a buffer (no file access) so the fuzz target reaches them
 * directly. They are strict: unknown keys, wrong types, bad sizes and
 * unknown names are errors naming `what` and the field.
 */
#ifndef AP_REGISTRY_MANIFEST_H
#define AP_REGISTRY_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include "alphapulse/registry.h"
#include "pipeline/pipeline.h"

#define AP_MODEL_NAME_MAX 64
#define AP_MANIFEST_MAX_BYTES ((size_t)64 << 20)
#define AP_MAX_MEMBERS 64
#define AP_MAX_MODEL_INPUTS (1 << 20)

enum { AP_CONF_MAX_PROBABILITY = 0, AP_CONF_MARGIN, AP_CONF_MEMBER_STD };
enum { AP_COMBINE_LOGISTIC = 0, AP_COMBINE_WEIGHTED_MEAN };

typedef struct ap_manifest {
    char name[AP_MODEL_NAME_MAX + 1];
    ap_model_kind kind;
    char target[AP_MODEL_NAME_MAX + 1];
    uint32_t pinned_version;      /* 0: serve the highest version number */
    int max_batch_size;
    uint32_t max_queue_delay_us;
    uint32_t min_bars;            /* predictions refused on series with fewer bars (0: none) */
    ap_precision precision;       /* "precision": AUTO (default), FULL or REDUCED */
    double precision_tolerance;   /* "precision_tolerance": > 0, finite (default 1e-3) */
    ap_device device;             /* "device": AUTO (default), CPU or GPU (docs/GPU.md) */
} ap_manifest;

/* The default of precision_tolerance: absolute, on the predictor's outputs. */
#define AP_PRECISION_TOLERANCE_DEFAULT 1e-3

typedef struct ap_version_spec {
    char format[32];              /* "" for ensembles */
    char file[256];               /* model file inside the version folder; "" for ensembles */
    int num_inputs;               /* features, input width, or members */
    char **inputs;                /* feature or member names; NULL for raw models */
    int *feature_idx;             /* pattern/regime: index of each input in alphapulse-v1 */
    ap_pipeline *pipeline;        /* not for ensembles */
    int output_index;             /* -1 for ensembles */
    int confidence;               /* AP_CONF_* */
    int combiner;                 /* ensembles: AP_COMBINE_* */
    double *coef;                 /* ensembles: num_inputs coefficients or weights */
    double intercept;
} ap_version_spec;

/* A valid model name: 1..64 of [A-Za-z0-9_.-], not starting with '.'. */
int ap__model_name_ok(const char *name);
const char *ap__model_kind_name(ap_model_kind kind);
const char *ap__confidence_name(int confidence);

int ap__manifest_parse(const char *buf, size_t len, const char *what, ap_manifest *out,
                      ap_error *err);
int ap__version_spec_parse(const char *buf, size_t len, ap_model_kind kind, const char *what,
                          ap_version_spec *out, ap_error *err);
void ap__version_spec_free(ap_version_spec *s);

#endif
