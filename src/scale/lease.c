/*
 * The lease thread: heartbeat, leases and balance, every lease_ms / 3.
 *
 *   ZADD ap:nodes NOW+lease_ms NODE; ZREMRANGEBYSCORE ap:nodes -inf NOW;
 *   ZCARD -> N live nodes; each node aims at ceil(P / N) partitions.
 *   renew:   EVAL "if GET lease == NODE then PEXPIRE lease ms"  (else: LOST)
 *   acquire: SET ap:lease:{p} NODE NX PX lease_ms, scanning from
 *            hash(NODE) mod P, while below the aim
 *   give up: beyond the aim, the highest owned partitions go (RELEASE: the
 *            consumer finishes its batch and drops their series; then
 *            EVAL "if GET lease == NODE then DEL lease")
 * A node waits one round after its first heartbeat before acquiring, so
 * that nodes starting together see each other first. Times are the nodes'
 * clocks (ms since 1970): nodes of one desk are assumed within a fraction
 * of lease_ms of each other. Stopping gives every lease back and leaves
 * ap:nodes, so that a clean restart is taken over at once.
 */
#include "scale/scale_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"

static const char renew_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
static const char release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) else return 0 end";

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void lease_key(char *buf, size_t size, uint32_t p)
{
    snprintf(buf, size, "ap:lease:%u", p);
}

/* 1: still ours (renewed / released), 0: not ours, -1: no answer. */
static int lease_eval(ap_worker *w, ap_rconn *c, const char *lua, uint32_t p)
{
    char key[32];
    lease_key(key, sizeof key, p);
    redisReply *r = ap__rconn_cmdf(c, "EVAL %s 1 %s %s %d", lua, key, w->node, w->cfg.lease_ms);
    int rc = !r ? -1 : r->type == REDIS_REPLY_INTEGER ? r->integer == 1 : -1;
    if (r)
        freeReplyObject(r);
    return rc;
}

static int heartbeat(ap_worker *w, ap_rconn *c)
{
    long long now = now_ms();
    redisReply *r = ap__rconn_cmdf(c, "ZADD " AP_SCALE_NODES " %lld %s",
                                   now + w->cfg.lease_ms, w->node);
    if (!r)
        return -1;
    freeReplyObject(r);
    if (!(r = ap__rconn_cmdf(c, "ZREMRANGEBYSCORE " AP_SCALE_NODES " -inf %lld", now)))
        return -1;
    freeReplyObject(r);
    if (!(r = ap__rconn_cmdf(c, "ZCARD " AP_SCALE_NODES)))
        return -1;
    int n = r->type == REDIS_REPLY_INTEGER && r->integer > 0 ? (int)r->integer : 1;
    freeReplyObject(r);
    return n;
}

/* XINFO GROUPS of an owned partition: its lag and pending count. */
static void sample(ap_worker *w, ap_rconn *c, uint32_t p)
{
    redisReply *r = ap__rconn_cmdf(c, "XINFO GROUPS ap:bars:%u", p);
    if (!r)
        return;
    long long lag = -1, pending = -1;
    for (size_t g = 0; r->type == REDIS_REPLY_ARRAY && g < r->elements; g++) {
        redisReply *e = r->element[g];
        int ours = 0;
        long long l = -1, pe = -1;
        for (size_t i = 0; e->type == REDIS_REPLY_ARRAY && i + 1 < e->elements; i += 2) {
            const char *k = e->element[i]->str;
            redisReply *v = e->element[i + 1];
            if (!k)
                continue;
            if (!strcmp(k, "name") && v->str)
                ours = !strcmp(v->str, AP_SCALE_GROUP);
            else if (!strcmp(k, "lag") && v->type == REDIS_REPLY_INTEGER)
                l = v->integer;
            else if (!strcmp(k, "pending") && v->type == REDIS_REPLY_INTEGER)
                pe = v->integer;
        }
        if (ours)
            lag = l, pending = pe;
    }
    freeReplyObject(r);
    pthread_mutex_lock(&w->mu);
    w->parts[p].lag = lag;
    w->parts[p].pending = pending;
    pthread_mutex_unlock(&w->mu);
}

static void round_once(ap_worker *w, ap_rconn *c, int may_acquire)
{
    int nodes = heartbeat(w, c);
    if (nodes < 0)
        return;
    uint32_t aim = (w->P + (uint32_t)nodes - 1) / (uint32_t)nodes, owned = 0;
    for (uint32_t p = 0; p < w->P; p++) {
        pthread_mutex_lock(&w->mu);
        int st = w->parts[p].state;
        pthread_mutex_unlock(&w->mu);
        if (st == P_IDLE || st == P_LOST)
            continue;
        uint64_t sent = ap__clock_ns();
        int ours = lease_eval(w, c, st == P_DROPPED ? release_lua : renew_lua, p);
        if (ours < 0)
            return; /* no answer: nothing is decided on a half-seen round */
        pthread_mutex_lock(&w->mu);
        if (st == P_DROPPED)
            w->parts[p].state = P_IDLE;
        else if (!ours) {
            w->parts[p].state = P_LOST;
            atomic_fetch_add(&w->n.lost, 1);
            ap__worker_log(w, "partition %u: the lease was lost (expired or taken)", p);
        } else {
            w->parts[p].valid_ns = sent + (uint64_t)w->cfg.lease_ms * 1000000u;
            owned += st != P_RELEASE;
        }
        pthread_mutex_unlock(&w->mu);
        if (ours && st == P_ACTIVE)
            sample(w, c, p);
    }
    pthread_mutex_lock(&w->mu);
    w->live_nodes = nodes;
    for (uint32_t p = w->P; p-- > 0 && owned > aim;)
        if (w->parts[p].state == P_ACTIVE || w->parts[p].state == P_ACQUIRED) {
            w->parts[p].state = P_RELEASE;
            owned--;
            atomic_fetch_add(&w->n.releases, 1);
        }
    pthread_mutex_unlock(&w->mu);
    if (!may_acquire)
        return;
    uint32_t start = ap__scale_partition(w->node, w->P);
    for (uint32_t i = 0; i < w->P && owned < aim; i++) {
        uint32_t p = (start + i) % w->P;
        pthread_mutex_lock(&w->mu);
        int st = w->parts[p].state;
        pthread_mutex_unlock(&w->mu);
        if (st != P_IDLE)
            continue;
        char key[32];
        lease_key(key, sizeof key, p);
        uint64_t sent = ap__clock_ns();
        redisReply *r = ap__rconn_cmdf(c, "SET %s %s NX PX %d", key, w->node, w->cfg.lease_ms);
        if (!r)
            return;
        int won = r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
        if (won) {
            pthread_mutex_lock(&w->mu);
            w->parts[p].state = P_ACQUIRED;
            w->parts[p].lease_t_ns = ap__clock_ns();
            w->parts[p].valid_ns = sent + (uint64_t)w->cfg.lease_ms * 1000000u;
            pthread_mutex_unlock(&w->mu);
            owned++;
        }
    }
}

static void give_back(ap_worker *w, ap_rconn *c)
{
    for (uint32_t p = 0; p < w->P; p++)
        if (w->parts[p].state != P_IDLE && w->parts[p].state != P_LOST)
            lease_eval(w, c, release_lua, p);
    redisReply *r = ap__rconn_cmdf(c, "ZREM " AP_SCALE_NODES " %s", w->node);
    if (r)
        freeReplyObject(r);
}

void *ap__scale_lease_main(void *arg)
{
    ap_worker *w = arg;
    ap_rconn c;
    ap__rconn_init(&c, &w->url, &w->stop, &w->n.reconnects, 2.0);
    long tick_ms = w->cfg.lease_ms / 3;
    int rounds = 0;
    while (!atomic_load(&w->stop)) {
        if (ap__rconn_ready(&c))
            round_once(w, &c, rounds++ > 0);
        for (long slept = 0; slept < tick_ms && !atomic_load(&w->stop); slept += 10)
            nanosleep(&(struct timespec){0, 10000000L}, NULL);
    }
    /* the consumer has stopped: nothing of ours is in flight */
    if (c.c)
        give_back(w, &c);
    ap__rconn_close(&c);
    return NULL;
}
