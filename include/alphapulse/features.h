/*
 * alphapulse: streaming bars and the alphapulse-v1 features.
 *
 * Three layers, each usable on its own:
 *   - names:    the 101 feature names of alphapulse-v1 in their contract order;
 *   - ap_features: the incremental engine of ONE series. Push a bar, get the
 *     101-vector of that bar in O(1) amortised time. A bar with the same
 *     timestamp as the last one replaces it (a still-forming bar);
 *   - ap_series_store: many named series (symbol, timeframe), each with a
 *     bounded ring of bars, its own engine, optional roll-up of 1m bars into
 *     5m/15m/1h/4h/1d, and a lock-free copy-out of the latest vector.
 *
 * Times are int64 epoch MICROSECONDS, UTC.
 */
#ifndef ALPHAPULSE_FEATURES_H
#define ALPHAPULSE_FEATURES_H

#include "alphapulse/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- names -------------------------------------------------------------- */

#define AP_FEATURE_COUNT 101

/* Number of features in alphapulse-v1 (101). */
AP_API int ap_feature_count(void);
/* Name of feature i (0-based, spec order), NULL when out of range. */
AP_API const char *ap_feature_name(int i);
/* Index of a feature name, or -1 when the name is not a feature. */
AP_API int ap_feature_index(const char *name);
/*
 * Resolve n names into idx[0..n-1]. On an unknown name returns AP_ENOTFOUND
 * with a message naming it (and its position in the list); idx is then
 * partially filled.
 */
AP_API int ap_feature_resolve(const char *const *names, size_t n, int *idx, ap_error *err);

/* ---- bars and timestamps ------------------------------------------------ */

typedef struct ap_bar {
    int64_t t; /* bar open time, epoch microseconds UTC */
    double open, high, low, close, volume;
} ap_bar;

/*
 * Check one bar's values: prices finite and > 0, volume finite and >= 0,
 * high >= low. AP_EINVAL with the offending field named otherwise. An open or
 * close outside [low, high] is accepted (real feeds have such bars).
 */
AP_API int ap_bar_check(const ap_bar *bar, ap_error *err);

/*
 * Parse a timestamp into epoch microseconds UTC. Accepted:
 *   - a plain number [-]digits[.digits]: epoch SECONDS when its magnitude is
 *     below 1e11 (year 5138), epoch MILLISECONDS otherwise (so millisecond
 *     times before 1973-03-03 would be misread: write them as ISO instead);
 *   - ISO-8601: YYYY-MM-DD, or YYYY-MM-DD{T| }HH:MM[:SS[.frac]] optionally
 *     followed by Z or an offset +HH:MM / -HH:MM (converted to UTC).
 * Fractional digits past microseconds are truncated. Surrounding spaces are
 * allowed. AP_EFORMAT (with the reason) otherwise.
 */
AP_API int ap_parse_timestamp(const char *s, int64_t *t_us, ap_error *err);

/* Write t_us as ISO-8601 UTC ("2004-08-19T13:45:00Z", with ".ffffff" when
   not a whole second) into buf (32 bytes suffice); returns buf. */
AP_API char *ap_format_timestamp(int64_t t_us, char *buf, size_t size);

/* ---- one series: the incremental engine --------------------------------- */

typedef struct ap_features ap_features;

AP_API int ap_features_new(ap_features **out, ap_error *err);
AP_API void ap_features_free(ap_features *f);
/* Forget every bar: back to the state of a new engine. */
AP_API void ap_features_reset(ap_features *f);

/*
 * Push a bar and write its 101 features into out (may be NULL).
 * bar->t greater than the last bar's: a new bar. Equal: the still-forming
 * last bar is replaced (features are those of the history with this bar in
 * place of the previous version). Older, or invalid values: AP_EINVAL and
 * nothing changes.
 */
AP_API int ap_features_push(ap_features *f, const ap_bar *bar, double *out, ap_error *err);
/* Number of distinct bars seen. */
AP_API uint64_t ap_features_bars(const ap_features *f);

/*
 * A whole series at once: a new engine is pushed bars[0..n-1] in order and
 * out receives n * AP_FEATURE_COUNT doubles, row i being what
 * ap_features_push wrote for bar i (so a repeated time gives the row of the
 * replaced bar). On a bad bar: AP_EINVAL "bar I: reason" (I 0-based); the
 * rows before it are filled, the rest are not.
 */
AP_API int ap_features_compute(const ap_bar *bars, size_t n, double *out, ap_error *err);

/* ---- many series: the store --------------------------------------------- */

typedef struct ap_series_store ap_series_store;
typedef struct ap_series ap_series;

#define AP_SYMBOL_MAX 64             /* symbol length limit, bytes incl. NUL */
#define AP_SERIES_MAX_HISTORY (1u << 24)
#define AP_SERIES_MAX_COUNT (1u << 22)

/*
 * A bar closed: a bar with a later start arrived in its series (for a
 * rolled-up series: a base bar past the bucket's end), so its values and
 * features are final. The pointers are valid during the call only.
 */
typedef struct ap_bar_closed {
    const ap_series *series;
    int64_t t;              /* the closed bar's start, us since 1970 */
    const double *features; /* AP_FEATURE_COUNT values: the vector published for it */
    uint64_t bars;          /* bars the series had while it was the latest */
} ap_bar_closed;
/* Called on the appending thread with the roll-up family's writer mutex
   held, before the new bar is stored: it must be short, must not block,
   and must not append to the store. */
typedef void (*ap_series_close_fn)(void *ctx, const ap_bar_closed *c);

typedef struct ap_series_config {
    size_t max_series; /* capacity of the store (roll-up series count too) */
    size_t history;    /* bars kept per series, >= 1 */
    ap_series_close_fn on_close; /* optional: told of every bar that closes */
    void *close_ctx;
} ap_series_config;

/* Open a series with roll-up: see ap_series_open. */
#define AP_SERIES_ROLLUP 1u

AP_API int ap_series_store_new(const ap_series_config *cfg, ap_series_store **out, ap_error *err);
AP_API void ap_series_store_free(ap_series_store *st);
/* Number of series in the store. */
AP_API size_t ap_series_store_count(const ap_series_store *st);

/*
 * Find or create the series (symbol, timeframe in seconds). With
 * AP_SERIES_ROLLUP on creation, the series also maintains every standard
 * timeframe above its own that is a multiple of it, among 5m, 15m, 1h, 4h, 1d
 * (UTC-aligned buckets); those are separate series, found with
 * ap_series_find, and only the base series may be appended to. A coarser
 * timeframe that already exists as a series (fed on its own, or rolled up
 * from another base) is not rolled into: it keeps its own feed. So GOOG/1d
 * posted first, then GOOG/1m, gives a 1m base rolling up into 5m, 15m, 1h
 * and 4h, while 1d stays the series fed directly. Safe to call from several
 * threads (creation takes a mutex; lookups never do); the store refuses more
 * than max_series live series (ap_series_delete frees room).
 */
AP_API int ap_series_open(ap_series_store *st, const char *symbol, int64_t timeframe_s,
                   unsigned flags, ap_series **out, ap_error *err);
/* O(1) lookup without locking; NULL when absent. Safe concurrently with open. */
AP_API ap_series *ap_series_find(const ap_series_store *st, const char *symbol, int64_t timeframe_s);

/*
 * Append a bar, from any thread (appends to one roll-up family serialise on
 * its base's writer mutex). Rules of ap_features_push, and: a bar starts in
 * 1970 or later; a new bar starts at least one timeframe after the last
 * bar's start (an equal time replaces the forming bar; larger gaps and
 * unaligned times are fine). On a roll-up series the derived buckets are
 * updated too (bucket bar: open of the first bar, max high, min low, close
 * of the last, sum of volumes; its time is the bucket start). On error
 * nothing stored in any of these series changes.
 */
AP_API int ap_series_append(ap_series *s, const ap_bar *bar, ap_error *err);

/*
 * Copy the latest feature vector (AP_FEATURE_COUNT doubles) and its bar time
 * (t may be NULL) out of the series, consistently, from any thread, without
 * blocking the writer. AP_ENOTFOUND when the series has no bar yet.
 */
AP_API int ap_series_latest(const ap_series *s, double *out, int64_t *t, ap_error *err);

/*
 * Drop a base series and its roll-ups (a rolled-up series alone: AP_ECONFLICT
 * naming its base; unknown: AP_ENOTFOUND). Pointers other threads hold stay
 * valid: append and latest on them answer AP_ENOTFOUND "was deleted".
 * Opening the key again starts it afresh. A deleted key keeps its table
 * slot (about 1 KB) until the store is freed: the store holds at most
 * 2 x max_series keys, live or deleted.
 */
AP_API int ap_series_delete(ap_series_store *st, const char *symbol, int64_t timeframe_s,
                     ap_error *err);

/* A consistent snapshot of a series' counts, safe while others append. */
typedef struct ap_series_info_t {
    size_t length;            /* bars held */
    uint64_t total;           /* bars ever appended */
    int64_t last_t;           /* last bar's time (0 when none) */
    int64_t timeframe_s;
    int deleted;
    int rolled_up;            /* 1: fed by the base series of base_timeframe_s */
    int64_t base_timeframe_s;
} ap_series_info_t;
AP_API int ap_series_info(const ap_series *s, ap_series_info_t *out);

/* Bars held (<= history) and bars ever appended. Not locked: for the
   series' only writer, or when nothing appends (else ap_series_info). */
AP_API size_t ap_series_length(const ap_series *s);
AP_API uint64_t ap_series_total(const ap_series *s);
/* Bar `back` bars before the latest (0 = latest). AP_ERANGE past the history. */
AP_API int ap_series_bar(const ap_series *s, size_t back, ap_bar *out, ap_error *err);
AP_API const char *ap_series_symbol(const ap_series *s);
AP_API int64_t ap_series_timeframe(const ap_series *s);

/* Call fn(ctx, series) for every live series of the store (roll-ups too),
   in table order, without locking: series created meanwhile may or may not
   be seen; a series deleted meanwhile may still be passed (its calls then
   say it was deleted). fn returns nonzero to stop. Returns the calls made. */
typedef int (*ap_series_visit_fn)(void *ctx, const ap_series *s);
AP_API size_t ap_series_store_list(const ap_series_store *st, ap_series_visit_fn fn, void *ctx);
/* Copy the latest min(n, held) bars, oldest first, into out under the
   family's writer mutex (safe while others append); returns how many. */
AP_API size_t ap_series_tail(const ap_series *s, size_t n, ap_bar *out);

/* "1m","5m","15m","1h","4h","1d" (any N followed by s/m/h/d) -> seconds. */
AP_API int ap_timeframe_parse(const char *s, int64_t *seconds, ap_error *err);

#ifdef __cplusplus
}
#endif
#endif
