/*
 * The series store: named (symbol, timeframe) series, each a bounded ring of
 * bars with its own feature engine, roll-up of a base series into coarser
 * UTC-aligned timeframes, and a seqlock'd copy of the latest feature vector.
 *
 * Lookup is a small open-addressing table (linear probing, load <= 1/2) of
 * fixed capacity chosen at creation, written by us rather than hsearch_r:
 * hsearch_r keys are bare NUL-terminated strings (ours are symbol +
 * timeframe), it cannot be resized or iterated, and, above all, it gives no
 * guarantee for a lookup running while another thread inserts. Here slots
 * are only ever filled (never moved or emptied, the table never rehashes), and
 * a slot is published with a release store, so lookups need no lock at all;
 * creations serialise on a mutex.
 *
 * Concurrency model: the store owns the single-writer rule. Every series has
 * a writer mutex; ap_series_append takes the base series' mutex, and the
 * base writes its roll-up children under it, so appends from any number of
 * threads serialise per roll-up family (one uncontended mutex per append,
 * ~20 ns against ~250 ns of features). Deleting or reviving a series takes
 * the store mutex, then the base's writer mutex, then the child's. Any
 * number of readers call ap_series_latest, which never blocks the writer.
 *
 * Deletion (ap_series_delete): lookups are lock-free and other threads may
 * hold an ap_series pointer, so a deleted series stays in its slot as a
 * tombstone (about 1 KB): its bar ring and feature engine are freed, it is
 * marked dead (find() skips it, append and latest on a held pointer say it
 * was deleted), and its published vector reads as empty. Opening the same
 * key again revives it in place; a new key takes a new slot. max_series
 * counts live series; the table has 4 slots per max_series so live series
 * plus tombstones (at most 2 x max_series keys) keep it half empty. The published vector is a
 * seqlock in C11 atomics: the writer makes the sequence odd, stores each value
 * with release ordering (a reader that sees one new value therefore also sees
 * the odd sequence), then makes it even with release; a reader loads the
 * sequence (acquire), the values (acquire), the sequence again, and retries if
 * the two differ or are odd. All shared words are atomics, so there is no data
 * race in the C11 sense (and TSan agrees), and on x86 every one of those
 * loads/stores is a plain mov.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alphapulse/features.h"
#include "common/error.h"

#define MAX_CHILDREN 5
static const int64_t rollup_tfs[MAX_CHILDREN] = {300, 900, 3600, 14400, 86400};

typedef struct rollup_state {
    ap_series *s;
    int has_before; /* the forming bucket held bars before the base's last bar */
    ap_bar before;  /* that bucket without the base's last bar */
} rollup_state;

struct ap_series {
    char symbol[AP_SYMBOL_MAX];
    const ap_series_store *st; /* its store (the close hook) */
    int64_t tf;
    uint64_t hash;
    pthread_mutex_t wmu; /* writer mutex (a child is written under its base's) */
    atomic_int dead;     /* deleted: a tombstone (written under wmu) */
    ap_features *eng;
    ap_bar *bars; /* ring of `cap` bars; the latest at (total - 1) % cap */
    size_t cap;
    uint64_t total;
    ap_series *parent; /* set on a roll-up series: only the parent appends */
    int nchild;
    rollup_state child[MAX_CHILDREN];
    /* published latest vector (seqlock, see the top of the file) */
    _Atomic uint64_t seq;
    _Atomic int64_t pub_t;
    _Atomic uint64_t pub[AP_FEATURE_COUNT];
};

struct ap_series_store {
    size_t history, max_series;
    ap_series_close_fn on_close;
    void *close_ctx;
    _Atomic size_t count; /* live series */
    size_t keys;          /* slots taken: live series and tombstones (under lock) */
    size_t mask;
    _Atomic(ap_series *) *slots;
    pthread_mutex_t lock;
};

/* FNV-1a over the symbol, then the timeframe mixed in (splitmix64 finaliser
   so that symbols differing only in their last byte spread over the table). */
static uint64_t key_hash(const char *symbol, int64_t tf)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)symbol; *p; p++) {
        h ^= *p;
        h *= 1099511628211ull;
    }
    h ^= (uint64_t)tf * 0x9E3779B97F4A7C15ull;
    h ^= h >> 30;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 27;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 31;
    return h;
}

int ap_series_store_new(const ap_series_config *cfg, ap_series_store **out, ap_error *err)
{
    if (!cfg || cfg->history < 1 || cfg->history > AP_SERIES_MAX_HISTORY)
        return ap__error_set(err, AP_ERANGE, "series store: history must be 1..%u bars",
                            AP_SERIES_MAX_HISTORY);
    if (cfg->max_series < 1 || cfg->max_series > AP_SERIES_MAX_COUNT)
        return ap__error_set(err, AP_ERANGE, "series store: max_series must be 1..%u",
                            AP_SERIES_MAX_COUNT);
    ap_series_store *st = calloc(1, sizeof *st);
    if (!st)
        return ap__error_set(err, AP_ENOMEM, "series store: out of memory");
    size_t cap = 16;
    while (cap < 4 * cfg->max_series)
        cap *= 2;
    st->slots = calloc(cap, sizeof *st->slots);
    if (!st->slots) {
        free(st);
        return ap__error_set(err, AP_ENOMEM, "series store: out of memory for %zu slots", cap);
    }
    st->mask = cap - 1;
    st->history = cfg->history;
    st->max_series = cfg->max_series;
    st->on_close = cfg->on_close;
    st->close_ctx = cfg->close_ctx;
    pthread_mutex_init(&st->lock, NULL);
    *out = st;
    return AP_OK;
}

static void series_free(ap_series *s)
{
    if (!s)
        return;
    ap_features_free(s->eng);
    free(s->bars);
    pthread_mutex_destroy(&s->wmu);
    free(s);
}

/* Published time of an empty (deleted) series: readers see "no bar". */
#define PUB_NONE INT64_MIN

void ap_series_store_free(ap_series_store *st)
{
    if (!st)
        return;
    for (size_t i = 0; i <= st->mask; i++)
        series_free(atomic_load_explicit(&st->slots[i], memory_order_relaxed));
    free(st->slots);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

size_t ap_series_store_count(const ap_series_store *st)
{
    return atomic_load_explicit(&((ap_series_store *)st)->count, memory_order_acquire);
}

/* Slot holding the key, or the empty slot where it would go. */
static size_t probe(const ap_series_store *st, const char *symbol, int64_t tf, uint64_t h)
{
    ap_series_store *mst = (ap_series_store *)st;
    for (size_t i = h & st->mask;; i = (i + 1) & st->mask) {
        ap_series *s = atomic_load_explicit(&mst->slots[i], memory_order_acquire);
        if (!s || (s->hash == h && s->tf == tf && !strcmp(s->symbol, symbol)))
            return i;
    }
}

/* The series of the key, live or a tombstone. */
static ap_series *find_any(const ap_series_store *st, const char *symbol, int64_t tf)
{
    size_t i = probe(st, symbol, tf, key_hash(symbol, tf));
    return atomic_load_explicit(&((ap_series_store *)st)->slots[i], memory_order_acquire);
}

ap_series *ap_series_find(const ap_series_store *st, const char *symbol, int64_t tf)
{
    if (!st || !symbol)
        return NULL;
    ap_series *s = find_any(st, symbol, tf);
    return s && !atomic_load_explicit(&s->dead, memory_order_acquire) ? s : NULL;
}

static int series_new(const ap_series_store *st, const char *symbol, int64_t tf, ap_series **out,
                      ap_error *err)
{
    ap_series *s = calloc(1, sizeof *s);
    if (!s)
        return ap__error_set(err, AP_ENOMEM, "series %s/%llds: out of memory", symbol,
                            (long long)tf);
    s->bars = malloc(st->history * sizeof *s->bars);
    if (!s->bars || ap_features_new(&s->eng, err)) {
        series_free(s);
        return ap__error_set(err, AP_ENOMEM, "series %s/%llds: out of memory for %zu bars", symbol,
                            (long long)tf, st->history);
    }
    snprintf(s->symbol, sizeof s->symbol, "%s", symbol);
    s->tf = tf;
    s->hash = key_hash(symbol, tf);
    s->st = st;
    s->cap = st->history;
    pthread_mutex_init(&s->wmu, NULL);
    *out = s;
    return AP_OK;
}

/* Bring a tombstone back (store lock and its wmu held): fresh ring and engine. */
static int revive(const ap_series_store *st, ap_series *s, ap_error *err)
{
    s->bars = malloc(st->history * sizeof *s->bars);
    if (!s->bars || ap_features_new(&s->eng, err)) {
        free(s->bars);
        s->bars = NULL;
        return ap__error_set(err, AP_ENOMEM, "series %s/%llds: out of memory for %zu bars",
                            s->symbol, (long long)s->tf, st->history);
    }
    s->cap = st->history;
    s->total = 0;
    s->parent = NULL;
    s->nchild = 0;
    atomic_store_explicit(&s->dead, 0, memory_order_release);
    return AP_OK;
}

static void insert(ap_series_store *st, ap_series *s)
{
    size_t i = probe(st, s->symbol, s->tf, s->hash);
    if (!atomic_load_explicit(&st->slots[i], memory_order_relaxed)) {
        atomic_store_explicit(&st->slots[i], s, memory_order_release);
        st->keys++;
    }
    atomic_fetch_add_explicit(&st->count, 1, memory_order_release);
}

static int open_locked(ap_series_store *st, const char *symbol, int64_t tf, unsigned flags,
                       ap_series **out, ap_error *err)
{
    ap_series *s = ap_series_find(st, symbol, tf);
    int rollup = (flags & AP_SERIES_ROLLUP) != 0;
    if (s) {
        if (rollup && !s->nchild && s->parent == NULL) {
            int any = 0;
            for (int i = 0; i < MAX_CHILDREN; i++)
                any |= rollup_tfs[i] > tf && rollup_tfs[i] % tf == 0 &&
                       !ap_series_find(st, symbol, rollup_tfs[i]);
            if (any)
                return ap__error_set(err, AP_EINVAL,
                                    "series %s/%llds exists without roll-up; roll-up is chosen "
                                    "when a series is created (delete it to choose again)",
                                    symbol, (long long)tf);
        }
        *out = s;
        return AP_OK;
    }
    /* roll up into every standard coarser multiple that is not a live series
       already: one that exists (fed on its own, or rolled up from another
       base) keeps its feed */
    int64_t kids[MAX_CHILDREN];
    int nk = 0;
    for (int i = 0; rollup && i < MAX_CHILDREN; i++)
        if (rollup_tfs[i] > tf && rollup_tfs[i] % tf == 0 &&
            !ap_series_find(st, symbol, rollup_tfs[i]))
            kids[nk++] = rollup_tfs[i];
    size_t count = atomic_load_explicit(&st->count, memory_order_relaxed);
    if (count + 1 + (size_t)nk > st->max_series)
        return ap__error_set(err, AP_EFULL,
                            "series store is full (%zu series, room for %zu): cannot add %s/%llds",
                            count, st->max_series, symbol, (long long)tf);
    ap_series *all[1 + MAX_CHILDREN] = {0};
    int reused[1 + MAX_CHILDREN] = {0};
    size_t fresh = 0;
    for (int i = 0; i <= nk; i++) {
        int64_t t = i ? kids[i - 1] : tf;
        all[i] = find_any(st, symbol, t); /* a tombstone of this key, if any */
        reused[i] = all[i] != NULL;
        fresh += !reused[i];
    }
    if (st->keys + fresh > 2 * st->max_series)
        return ap__error_set(err, AP_EFULL,
                            "series store: %zu keys used (live and deleted series; room for "
                            "%zu): cannot add %s/%llds (a deleted series keeps its slot until "
                            "restart; re-create a deleted one instead)",
                            st->keys, 2 * st->max_series, symbol, (long long)tf);
    int rc = AP_OK;
    for (int i = 0; i <= nk && rc == AP_OK; i++)
        if (!reused[i])
            rc = series_new(st, symbol, i ? kids[i - 1] : tf, &all[i], err);
    /* tombstones: the base's mutex first, then the children's */
    for (int i = 0; i <= nk && rc == AP_OK; i++)
        if (reused[i]) {
            pthread_mutex_lock(&all[i]->wmu);
            rc = revive(st, all[i], err);
            if (rc)
                pthread_mutex_unlock(&all[i]->wmu);
        }
    if (rc) {
        for (int i = 0; i <= nk; i++)
            if (!reused[i])
                series_free(all[i]);
        /* revived ones that succeeded go back to being tombstones */
        for (int i = 0; i <= nk; i++)
            if (reused[i] && !atomic_load(&all[i]->dead) && all[i]->bars) {
                ap_features_free(all[i]->eng);
                free(all[i]->bars);
                all[i]->eng = NULL;
                all[i]->bars = NULL;
                atomic_store(&all[i]->dead, 1);
                pthread_mutex_unlock(&all[i]->wmu);
            }
        return rc;
    }
    s = all[0];
    s->nchild = nk;
    for (int i = 0; i < nk; i++) {
        s->child[i].s = all[i + 1];
        s->child[i].has_before = 0;
        all[i + 1]->parent = s;
    }
    for (int i = nk; i >= 0; i--)
        if (reused[i])
            pthread_mutex_unlock(&all[i]->wmu);
    for (int i = 0; i <= nk; i++)
        insert(st, all[i]);
    *out = s;
    return AP_OK;
}

int ap_series_open(ap_series_store *st, const char *symbol, int64_t tf, unsigned flags,
                   ap_series **out, ap_error *err)
{
    if (!symbol || !*symbol || strlen(symbol) >= AP_SYMBOL_MAX)
        return ap__error_set(err, AP_EINVAL, "series: symbol must be 1..%d bytes",
                            AP_SYMBOL_MAX - 1);
    if (tf < 1 || tf > 366 * 86400)
        return ap__error_set(err, AP_EINVAL, "series %s: timeframe %lld s is not 1 s..366 days",
                            symbol, (long long)tf);
    if (flags & ~AP_SERIES_ROLLUP)
        return ap__error_set(err, AP_EINVAL, "series %s: unknown flags 0x%x", symbol, flags);
    pthread_mutex_lock(&st->lock);
    int rc = open_locked(st, symbol, tf, flags, out, err);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* ---- appending ---------------------------------------------------------- */

static void publish(ap_series *s, const double *v, int64_t t)
{
    uint64_t q = atomic_load_explicit(&s->seq, memory_order_relaxed);
    atomic_store_explicit(&s->seq, q + 1, memory_order_relaxed);
    for (int i = 0; i < AP_FEATURE_COUNT; i++) {
        uint64_t bits;
        memcpy(&bits, &v[i], sizeof bits);
        atomic_store_explicit(&s->pub[i], bits, memory_order_release);
    }
    atomic_store_explicit(&s->pub_t, t, memory_order_release);
    atomic_store_explicit(&s->seq, q + 2, memory_order_release);
}

/* Tell the store's hook that the latest bar of s closes: the next bar
   (starting at t_next) is about to be committed. The vector published for
   the closing bar is read back here (the writer's mutex is held: nothing
   else writes it). */
static void tell_closed(ap_series *s, int64_t t_next)
{
    const ap_series_store *st = s->st;
    if (!st->on_close || s->total == 0)
        return;
    const ap_bar *last = &s->bars[(s->total - 1) % s->cap];
    if (t_next <= last->t)
        return; /* an update of the forming bar */
    double v[AP_FEATURE_COUNT];
    for (int i = 0; i < AP_FEATURE_COUNT; i++) {
        uint64_t bits = atomic_load_explicit(&s->pub[i], memory_order_relaxed);
        memcpy(&v[i], &bits, sizeof bits);
    }
    ap_bar_closed c = {s, last->t, v, s->total};
    st->on_close(st->close_ctx, &c);
}

/* Push into the engine (already validated), keep the bar, publish. */
static void commit(ap_series *s, const ap_bar *b)
{
    double v[AP_FEATURE_COUNT];
    int update = s->total > 0 && b->t == s->bars[(s->total - 1) % s->cap].t;
    /* cannot fail: the bar and its time were checked by the caller */
    ap_features_push(s->eng, b, v, NULL);
    if (!update)
        s->total++;
    s->bars[(s->total - 1) % s->cap] = *b;
    publish(s, v, b->t);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return q * b > a ? q - 1 : q;
}

static int append_locked(ap_series *s, const ap_bar *b, ap_error *err);

int ap_series_append(ap_series *s, const ap_bar *b, ap_error *err)
{
    pthread_mutex_lock(&s->wmu);
    int rc = append_locked(s, b, err);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

static int append_locked(ap_series *s, const ap_bar *b, ap_error *err)
{
    if (atomic_load_explicit(&s->dead, memory_order_relaxed))
        return ap__error_set(err, AP_ENOTFOUND, "series %s/%llds was deleted", s->symbol,
                            (long long)s->tf);
    if (s->parent)
        return ap__error_set(err, AP_EINVAL,
                            "series %s/%llds is rolled up from %s/%llds: append to that one",
                            s->symbol, (long long)s->tf, s->parent->symbol,
                            (long long)s->parent->tf);
    int rc = ap_bar_check(b, err);
    if (rc)
        return ap__error_prefix(err, "series %s/%llds: ", s->symbol, (long long)s->tf);
    char ta[40], tb[40];
    if (b->t < 0)
        return ap__error_set(err, AP_EINVAL, "series %s/%llds: bar time %s is before 1970",
                            s->symbol, (long long)s->tf, ap_format_timestamp(b->t, ta, sizeof ta));
    const ap_bar *last = s->total ? &s->bars[(s->total - 1) % s->cap] : NULL;
    if (last && b->t < last->t)
        return ap__error_set(err, AP_EINVAL,
                            "series %s/%llds: bar time %s is older than the last bar's (%s)",
                            s->symbol, (long long)s->tf, ap_format_timestamp(b->t, ta, sizeof ta),
                            ap_format_timestamp(last->t, tb, sizeof tb));
    /* a bar covers [t, t + timeframe): the next one cannot start inside it
       (gaps are fine: weekends, holidays; alignment is not required: FX bars
       move with daylight saving time) */
    if (last && b->t > last->t && b->t - last->t < s->tf * 1000000)
        return ap__error_set(err, AP_EINVAL,
                            "series %s/%llds: bar time %s starts %.6g s after the last bar (%s), "
                            "less than the timeframe (%lld s): wrong timeframe or a duplicate "
                            "feed?", s->symbol, (long long)s->tf,
                            ap_format_timestamp(b->t, ta, sizeof ta),
                            (double)(b->t - last->t) / 1e6,
                            ap_format_timestamp(last->t, tb, sizeof tb), (long long)s->tf);
    int update = last && b->t == last->t;

    /* roll-up: build every bucket bar first, so that a bad one changes nothing */
    ap_bar kb[MAX_CHILDREN];
    rollup_state kr[MAX_CHILDREN];
    for (int i = 0; i < s->nchild; i++) {
        rollup_state r = s->child[i];
        ap_series *c = r.s;
        int64_t len = c->tf * 1000000;
        int64_t start = floor_div(b->t, len) * len;
        if (!update) {
            const ap_bar *cl = c->total ? &c->bars[(c->total - 1) % c->cap] : NULL;
            r.has_before = cl && cl->t == start;
            if (r.has_before)
                r.before = *cl;
        }
        ap_bar k = *b;
        k.t = start;
        if (r.has_before) {
            k.open = r.before.open;
            k.high = fmax(r.before.high, b->high);
            k.low = fmin(r.before.low, b->low);
            k.volume = r.before.volume + b->volume;
        }
        rc = ap_bar_check(&k, err);
        if (rc)
            return ap__error_prefix(err, "series %s/%llds (rolled up from %llds): ", c->symbol,
                                   (long long)c->tf, (long long)s->tf);
        kb[i] = k;
        kr[i] = r;
    }
    tell_closed(s, b->t);
    commit(s, b);
    for (int i = 0; i < s->nchild; i++) {
        s->child[i] = kr[i];
        tell_closed(kr[i].s, kb[i].t);
        commit(kr[i].s, &kb[i]);
    }
    return AP_OK;
}

/* ---- reading ------------------------------------------------------------ */

int ap_series_latest(const ap_series *cs, double *out, int64_t *t, ap_error *err)
{
    ap_series *s = (ap_series *)cs; /* atomics are loaded, never stored, here */
    for (unsigned spins = 0;; spins++) {
        uint64_t q1 = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (q1 == 0)
            return ap__error_set(err, AP_ENOTFOUND, "series %s/%llds has no bar yet", s->symbol,
                                (long long)s->tf);
        if (!(q1 & 1) && atomic_load_explicit(&s->pub_t, memory_order_acquire) == PUB_NONE &&
            atomic_load_explicit(&s->seq, memory_order_relaxed) == q1)
            return ap__error_set(err, AP_ENOTFOUND, "series %s/%llds %s", s->symbol,
                                (long long)s->tf,
                                atomic_load(&s->dead) ? "was deleted" : "has no bar yet");
        if (!(q1 & 1)) {
            for (int i = 0; i < AP_FEATURE_COUNT; i++) {
                uint64_t bits = atomic_load_explicit(&s->pub[i], memory_order_acquire);
                memcpy(&out[i], &bits, sizeof bits);
            }
            int64_t tt = atomic_load_explicit(&s->pub_t, memory_order_acquire);
            if (atomic_load_explicit(&s->seq, memory_order_relaxed) == q1) {
                if (t)
                    *t = tt;
                return AP_OK;
            }
        }
        if (spins > 64) /* the writer was descheduled mid-update: let it run */
            sched_yield();
    }
}

/* Publish "no bar" (the writer's mutex held): the sequence goes on
   counting, so a reader never takes a torn vector for a whole one. */
static void publish_empty(ap_series *s)
{
    uint64_t q = atomic_load_explicit(&s->seq, memory_order_relaxed);
    if (q == 0)
        return; /* never published: already empty */
    atomic_store_explicit(&s->seq, q + 1, memory_order_relaxed);
    atomic_store_explicit(&s->pub_t, PUB_NONE, memory_order_release);
    atomic_store_explicit(&s->seq, q + 2, memory_order_release);
}

/* Make s a tombstone (its writer mutex held). */
static void entomb(ap_series *s)
{
    atomic_store_explicit(&s->dead, 1, memory_order_release);
    publish_empty(s);
    ap_features_free(s->eng);
    free(s->bars);
    s->eng = NULL;
    s->bars = NULL;
    s->total = 0;
    s->parent = NULL;
    s->nchild = 0;
}

int ap_series_delete(ap_series_store *st, const char *symbol, int64_t tf, ap_error *err)
{
    if (!st || !symbol)
        return ap__error_set(err, AP_EINVAL, "ap_series_delete: store and symbol are required");
    pthread_mutex_lock(&st->lock);
    ap_series *s = ap_series_find(st, symbol, tf);
    int rc = AP_OK;
    if (!s) {
        rc = ap__error_set(err, AP_ENOTFOUND, "unknown series %s/%llds", symbol, (long long)tf);
    } else if (s->parent) {
        rc = ap__error_set(err, AP_ECONFLICT,
                          "series %s/%llds is rolled up from %s/%llds: delete that one (its "
                          "roll-ups go with it)", symbol, (long long)tf, s->parent->symbol,
                          (long long)s->parent->tf);
    } else {
        pthread_mutex_lock(&s->wmu);
        int nk = s->nchild;
        ap_series *kids[MAX_CHILDREN];
        for (int i = 0; i < nk; i++)
            kids[i] = s->child[i].s;
        for (int i = 0; i < nk; i++) {
            pthread_mutex_lock(&kids[i]->wmu);
            entomb(kids[i]);
            pthread_mutex_unlock(&kids[i]->wmu);
        }
        entomb(s);
        pthread_mutex_unlock(&s->wmu);
        atomic_fetch_sub_explicit(&st->count, (size_t)nk + 1, memory_order_release);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* Lock s's family (its mutex is the base's; a child's parent changes only
   under the store lock and the child's mutex: look, lock, check again).
   Returns the parent, locked too (NULL: s is a base): unlock s, then it. */
static ap_series *family_lock(ap_series *s)
{
    for (;;) {
        pthread_mutex_lock(&s->wmu);
        ap_series *p = s->parent;
        if (!p)
            return NULL;
        pthread_mutex_unlock(&s->wmu);
        pthread_mutex_lock(&p->wmu);
        pthread_mutex_lock(&s->wmu);
        if (s->parent == p)
            return p;
        pthread_mutex_unlock(&s->wmu);
        pthread_mutex_unlock(&p->wmu);
    }
}

int ap_series_info(const ap_series *cs, ap_series_info_t *out)
{
    ap_series *s = (ap_series *)cs, *p = family_lock(s);
    memset(out, 0, sizeof *out);
    out->length = ap_series_length(s);
    out->total = s->total;
    out->last_t = s->total ? s->bars[(s->total - 1) % s->cap].t : 0;
    out->deleted = atomic_load(&s->dead);
    out->timeframe_s = s->tf;
    out->rolled_up = p != NULL;
    out->base_timeframe_s = p ? p->tf : 0;
    pthread_mutex_unlock(&s->wmu);
    if (p)
        pthread_mutex_unlock(&p->wmu);
    return AP_OK;
}

size_t ap_series_tail(const ap_series *cs, size_t n, ap_bar *out)
{
    ap_series *s = (ap_series *)cs, *p = family_lock(s);
    size_t held = s->bars ? ap_series_length(s) : 0;
    n = n < held ? n : held;
    for (size_t i = 0; i < n; i++)
        out[i] = s->bars[(s->total - n + i) % s->cap];
    pthread_mutex_unlock(&s->wmu);
    if (p)
        pthread_mutex_unlock(&p->wmu);
    return n;
}

size_t ap_series_store_list(const ap_series_store *st, ap_series_visit_fn fn, void *ctx)
{
    ap_series_store *mst = (ap_series_store *)st;
    size_t calls = 0;
    for (size_t i = 0; i <= st->mask; i++) {
        ap_series *s = atomic_load_explicit(&mst->slots[i], memory_order_acquire);
        if (s && !atomic_load_explicit(&s->dead, memory_order_acquire) && (calls++, fn(ctx, s)))
            break;
    }
    return calls;
}

size_t ap_series_length(const ap_series *s)
{
    return s->total < s->cap ? (size_t)s->total : s->cap;
}

uint64_t ap_series_total(const ap_series *s)
{
    return s->total;
}

int ap_series_bar(const ap_series *s, size_t back, ap_bar *out, ap_error *err)
{
    if (back >= ap_series_length(s))
        return ap__error_set(err, AP_ERANGE, "series %s/%llds: bar %zu back is not held (%zu held)",
                            s->symbol, (long long)s->tf, back, ap_series_length(s));
    *out = s->bars[(s->total - 1 - back) % s->cap];
    return AP_OK;
}

const char *ap_series_symbol(const ap_series *s)
{
    return s->symbol;
}

int64_t ap_series_timeframe(const ap_series *s)
{
    return s->tf;
}

int ap_timeframe_parse(const char *str, int64_t *seconds, ap_error *err)
{
    const char *p = str;
    int64_t n = 0;
    int nd = 0;
    while (*p >= '0' && *p <= '9' && nd < 9) {
        n = n * 10 + (*p++ - '0');
        nd++;
    }
    int64_t unit = 0;
    switch (*p) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: break;
    }
    if (!nd || !unit || p[1] != '\0' || n < 1 || n * unit > 366 * 86400)
        return ap__error_set(err, AP_EINVAL,
                            "bad timeframe '%.32s': expected N followed by s, m, h or d "
                            "(e.g. 1m, 4h, 1d), at most 366 days",
                            str);
    *seconds = n * unit;
    return AP_OK;
}
