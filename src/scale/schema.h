/*
 * The stream schema of docs/SCALE_OUT.md, in one place: key names, the
 * partition hash, a bar entry's fields and their parser, entry ids.
 *
 *   ap:bars:{p}    XADD ... symbol S timeframe TF t MS open O high H low L
 *                  close C volume V          (p = ap__scale_partition(S, P))
 *   ap:signals     symbol timeframe bar_time_ms model version prediction
 *                  confidence node
 *   ap:bars:dead   partition id reason node + the entry's own fields
 *   ap:sig:{S}/{TF}/{MS}/{MODEL}   a published signal (SET NX PX dedup_ttl_ms)
 *   ap:lease:{p}   the owner's node name (SET NX PX lease_ms)
 *   ap:nodes       sorted set: node -> heartbeat expiry (ms since 1970)
 *   ap:partitions  P, set by the first node or publisher; the others check it
 *   group ap:workers on every ap:bars:{p}; consumer name = node name
 */
#ifndef AP_SCALE_SCHEMA_H
#define AP_SCALE_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "alphapulse.h"

#define AP_SCALE_GROUP "ap:workers"
#define AP_SCALE_SIGNALS "ap:signals"
#define AP_SCALE_DEAD "ap:bars:dead"
#define AP_SCALE_NODES "ap:nodes"
#define AP_SCALE_PARTITIONS "ap:partitions"
#define AP_SCALE_BAR_FIELDS 8

/* FNV-1a (32 bits) of the symbol's bytes, mod P: every timeframe of a
   symbol (so its roll-ups) lands in one partition. */
uint32_t ap__scale_partition(const char *symbol, uint32_t P);

/* A bar entry's fields, checked: exactly symbol, timeframe, t, open, high,
   low, close, volume (any order, each once); t is integer epoch ms;
   prices and volume are finite decimal numbers (strtod, whole field), prices
   at most 1e15 and volume at most 1e18, then ap_bar_check's rules. */
typedef struct ap_scale_bar {
    char symbol[AP_SYMBOL_MAX];
    char timeframe[16];
    int64_t tf_s;
    ap_bar bar; /* t in us */
} ap_scale_bar;

/* fields: n strings (name, value, name, value ...) with lengths. AP_EINVAL
   with the reason (it goes to the dead-letter stream). */
int ap__scale_bar_parse(const char *const *f, const size_t *len, size_t n, ap_scale_bar *out,
                        ap_error *err);

/* Stream ids "MS-SEQ": parse (0 on success) and compare. */
typedef struct ap_scale_id {
    uint64_t ms, seq;
} ap_scale_id;
int ap__scale_id_parse(const char *s, ap_scale_id *id);
int ap__scale_id_cmp(ap_scale_id a, ap_scale_id b);

#endif
