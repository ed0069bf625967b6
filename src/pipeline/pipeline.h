/*
 * Pipeline: the fitted preprocessing a model applies before its predictor,
 * restated from scikit-learn so that served rows get the transform the model
 * was trained on. Steps, in the order declared:
 *
 *   fillna          NaN -> value (one value, or one per column)      SimpleImputer / fillna
 *   select          keep columns [c0, c1, ...] of the current row    column selection
 *   standard_scaler x -> (x - mean[j]) / scale[j]                     StandardScaler
 *   pca             y[k] = sum_j (x[j] - mean[j]) * components[k][j]  PCA.transform
 *
 * Parsed from the "pipeline" array of a version.json (docs/MODEL_REPOSITORY.md).
 * A parsed pipeline is immutable; running it allocates nothing.
 */
#ifndef AP_PIPELINE_PIPELINE_H
#define AP_PIPELINE_PIPELINE_H

#include <jansson.h>
#include <stddef.h>
#include "alphapulse/common.h"

typedef struct ap_pipeline ap_pipeline;

/* Bounds on hostile manifests: steps, and doubles in one step's parameters. */
#define AP_PIPELINE_MAX_STEPS 64
#define AP_PIPELINE_MAX_PARAMS (1 << 24)
#define AP_PIPELINE_MAX_WIDTH (1 << 20)

/* Parse `steps` (a JSON array, or NULL for an empty pipeline) for rows of
   in_width columns. Every width is checked against the step before; the
   message names `what` (e.g. "reversal/2/version.json") and the step. */
int ap__pipeline_parse(const json_t *steps, int in_width, const char *what, ap_pipeline **out,
                      ap_error *err);
void ap__pipeline_free(ap_pipeline *p);

int ap__pipeline_num_steps(const ap_pipeline *p);
int ap__pipeline_in_width(const ap_pipeline *p);
int ap__pipeline_out_width(const ap_pipeline *p);
/* Widest row at any stage (input included): the scratch a run needs per row. */
int ap__pipeline_max_width(const ap_pipeline *p);
/* 1 when output column j is input column j, transformed (no select, no pca):
   then the predictor's own feature names can be checked against the inputs. */
int ap__pipeline_keeps_columns(const ap_pipeline *p);
/* One-line summary, e.g. "fillna(0) -> standard_scaler(12) -> pca(12->5)". */
const char *ap__pipeline_describe(const ap_pipeline *p);

/*
 * Run nrows rows. a holds the input rows (nrows * in_width, packed); a and b
 * each have room for nrows * max_width doubles and are both overwritten.
 * Returns a or b: the one holding the nrows * out_width result rows.
 */
double *ap__pipeline_run(const ap_pipeline *p, double *a, double *b, size_t nrows);

/* Shared by the manifest parsers: a JSON array of finite numbers (of length
   want, or any length 1..max when want < 0) into a malloc'd array; messages
   name `what` and `field`. */
int ap__json_doubles(const json_t *arr, int want, int max, const char *what, const char *field,
                    double **out, int *n, ap_error *err);

#endif
