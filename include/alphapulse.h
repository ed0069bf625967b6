/*
 * alphapulse — real-time inference engine for trading signals.
 *
 * The one public header. Each module has its own section header under
 * include/alphapulse/; this file pulls them all in. Conventions, as in every
 * ap_* call:
 *   - functions return 0 (AP_OK) on success or a negative ap_status;
 *   - on failure they fill the caller-owned ap_error (may be NULL) with a
 *     message that names the file / field / row at fault;
 *   - nothing is printed from inside the library;
 *   - every object has one owner; ap_X_free(NULL) is a no-op.
 */
#ifndef ALPHAPULSE_H
#define ALPHAPULSE_H

#include "alphapulse/common.h"
#include "alphapulse/forest.h"
#include "alphapulse/features.h"
#include "alphapulse/batch.h"
#include "alphapulse/registry.h"
#include "alphapulse/onnx.h"

#endif
