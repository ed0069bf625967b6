/*
 * Internal to src/batch: request records (record.c) — allocation, the id
 * table, the queue list, the final status and delivery to on_done. The
 * list and table operations are inline: they run once or twice per request
 * with b->mu held.
 */
#ifndef AP_BATCH_RECORD_H
#define AP_BATCH_RECORD_H

#include "batch/batch_internal.h"

#include <stdlib.h>

/* ---- lists --------------------------------------------------------------- */

static inline void list_push(rlist *l, rec *r)
{
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

static inline void list_remove(rlist *l, rec *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->prev = r->next = NULL;
}

/* Append to a singly linked batch / delivery list (through r->link). */
static inline void rl_append(rlist *l, rec *r)
{
    r->link = NULL;
    if (l->tail)
        l->tail->link = r;
    else
        l->head = r;
    l->tail = r;
}

/* ---- id table (queued and running requests) ------------------------------ */

static inline size_t slot_of(const ap_batcher *b, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & b->tmask;
}

static inline void table_insert(ap_batcher *b, rec *r)
{
    size_t s = slot_of(b, r->id);
    r->hnext = b->table[s];
    b->table[s] = r;
}

static inline rec *table_find(const ap_batcher *b, uint64_t id)
{
    for (rec *r = b->table[slot_of(b, id)]; r; r = r->hnext)
        if (r->id == id)
            return r;
    return NULL;
}

static inline void table_remove(ap_batcher *b, rec *r)
{
    rec **p = &b->table[slot_of(b, r->id)];
    while (*p != r)
        p = &(*p)->hnext;
    *p = r->hnext;
    r->hnext = NULL;
}

/* ---- records ------------------------------------------------------------- */

static inline void queue_remove(ap_batcher *b, rec *r)
{
    list_remove(&b->q, r);
    b->qlen--;
    b->qrows -= r->nrows;
}

/*
 * Decide a request's final status (b->mu held; it is already out of the
 * queue / its batch) and count it. It leaves the id table now, so nobody
 * can reach it (cancel) while its callback runs.
 */
static inline void finalize_locked(ap_batcher *b, rec *r, int status)
{
    r->status = status;
    r->state = ST_FINISHING;
    switch (status) {
    case AP_OK: b->st.completed++; break;
    case AP_ETIMEDOUT: b->st.timed_out++; break;
    case AP_ECANCELLED: b->st.cancelled++; break;
    default: b->st.failed++; break;
    }
    table_remove(b, r);
}

static inline void rec_free(rec *r)
{
    free(r->msg);
    free(r);
}

/* A zeroed record for nrows rows of ncols inputs (copied from X) and nout
 * outputs each; NULL on no memory. */
rec *ap__rec_new(const double *X, size_t nrows, size_t ncols, size_t nout);

/* What ap__rec_deliver ends: the caller's b->active count, its b->runners count. */
enum { END_NONE = 0, END_ACTIVE = 1, END_RUNNER = 2 };

/*
 * Deliver finalized requests (no lock held): release their model
 * references, call each on_done, free the records. end_job: the END_*
 * counts the caller holds, dropped afterwards under b->mu (waking a
 * shutdown waiting for them).
 */
void ap__rec_deliver(ap_batcher *b, rec *list, int end_job);

/*
 * r is QUEUED (b->mu held): take it out of the queue, finish it with status
 * (AP_ECANCELLED, AP_ETIMEDOUT) and deliver it on this thread. Returns with
 * b->mu released.
 */
void ap__rec_abort_queued_locked(ap_batcher *b, rec *r, int status);

#endif
