/*
 * The HTTP front: libmicrohttpd glue, one event loop per HTTP thread, and
 * the connection guard. Everything above this file (server.c, the handlers)
 * sees a request only through ap_srv_io, so the fuzz target drives the same
 * code without sockets.
 *
 * Event loops. Each HTTP thread runs its own libmicrohttpd daemon in
 * external-epoll mode on the shared (non-blocking) listening socket; the
 * thread waits on an epoll set holding the daemon's epoll fd and a wake-up
 * eventfd, then calls MHD_run. A pass of MHD_run handles every connection
 * that is ready. The first prediction of a pass runs at once (caller runs);
 * later ones are deferred (ap_batch_submit_opts.defer) and, when the pass is
 * over, the thread runs what queued (ap__service_pass_end): the requests
 * that arrived together become one batch, on this thread, with no hand-off
 * to another thread. Their connections are parked, not suspended
 * (suspend/resume costs two epoll_ctl calls each): libmicrohttpd calls the
 * handler again on the next pass, which finds the answer. A request whose
 * batch may run on another thread is suspended and resumed by the
 * completion; MHD drops its inter-thread channel in external-epoll mode, so
 * mhd_resume wakes the owning loop itself (its eventfd).
 *
 * The connection guard (bounded request reception). libmicrohttpd's
 * connection timeout is an idle timeout: a client sending one byte a second
 * keeps its connection for ever. Here every connection has a record
 * (socket context, this loop's thread only) with a state:
 *   RECV  request bytes are arriving: since the accept, or since the first
 *         byte after the previous request was answered;
 *   BUSY  the request is complete (handler, inference, response);
 *   AWAIT keep-alive, between requests (the idle timeout applies).
 * A request's headers and body must arrive within request_timeout of the
 * start of RECV; past it the guard, ticking every SRV_TICK_NS, shuts the
 * socket down (libmicrohttpd then closes the connection on its next pass).
 * An AWAIT connection moves to RECV at the first tick that finds data
 * received on the socket after the previous request ended (TCP_INFO
 * tcpi_last_data_recv), so an idle keep-alive connection is not mistaken
 * for a slow one. Reserve: libmicrohttpd accepts up to max_connections +
 * reserve_connections; a connection accepted while max_connections are
 * already open is a reserve connection: it gets SRV_RESERVE_TIMEOUT_NS for
 * its request and may only ask for health, readiness and metrics (anything
 * else is answered 503 and closed), so health checks still get through when
 * slow or idle clients hold every ordinary slot.
 *
 * Request arrival. A request's time of arrival, from which its deadline
 * runs, is when its last byte reached the socket (now - TCP_INFO
 * tcpi_last_data_recv, millisecond resolution), not when this thread got to
 * it: under overload requests wait in the socket, and that wait counts.
 */
#include "server/http.h"
#include "server/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"
#include "common/clock.h"

#define SRV_TICK_NS 250000000ull          /* connection guard period */
#define SRV_RESERVE_TIMEOUT_NS 1000000000ull /* request time of a reserve connection */

enum { CR_RECV, CR_BUSY, CR_AWAIT, CR_DEAD };

typedef struct loop loop;

typedef struct conn_rec {
    struct conn_rec *prev, *next;
    loop *L; /* the loop that owns the connection (set once) */
    struct MHD_Connection *c;
    int fd;
    int state;
    int reserve;
    uint64_t since_ns; /* start of the current state */
} conn_rec;

struct loop {
    ap_srv_http *h;
    int index;
    struct MHD_Daemon *d;
    pthread_t th;
    int started;
    int epfd, wake_fd;
    atomic_int woken; /* the wake fd was written since the loop last looked */
    int again;        /* this thread resumed a connection: run MHD again at once */
    atomic_int stop, quiesce, quiesced;
    conn_rec *conns;
    ap_service_pass pass;
    uint64_t next_tick;
};

struct ap_srv_http {
    ap_server *s;
    int listen_fd, port;
    int nloops;
    loop *loops;
    uint64_t request_timeout_ns;
    long max_connections;
    char *tls_cert, *tls_key; /* PEM text; NULL: plain HTTP */
};


/* ---- the transport for server.c ---------------------------------------------- */

static const char *mhd_header(void *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

typedef struct hcount {
    const char *name;
    unsigned n;
} hcount;

static enum MHD_Result count_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    hcount *hc = cls;
    if (key && !strcasecmp(key, hc->name))
        hc->n++;
    return MHD_YES;
}

static unsigned mhd_header_count(void *conn, const char *name)
{
    hcount hc = {name, 0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, count_one, &hc);
    return hc.n;
}

static enum MHD_Result mhd_respond(void *conn, unsigned code, jbuf *body, const char *ctype,
                                   int close, const char *const *headers)
{
    struct MHD_Response *resp;
    if (body->failed) {
        static const char oom[] = "{\"error\": \"out of memory writing the response\"}";
        code = MHD_HTTP_INTERNAL_SERVER_ERROR;
        resp = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom,
                                               MHD_RESPMEM_PERSISTENT);
        ctype = NULL;
    } else if (body->heap) { /* hand the heap buffer over instead of copying it */
        resp = MHD_create_response_from_buffer(body->len, body->p, MHD_RESPMEM_MUST_FREE);
        if (resp)
            body->heap = 0, body->p = NULL;
    } else {
        resp = MHD_create_response_from_buffer(body->len, body->p, MHD_RESPMEM_MUST_COPY);
    }
    ap__jb_free(body);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            ctype ? ctype : "application/json");
    if (close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    for (; headers && headers[0] && headers[1]; headers += 2)
        MHD_add_response_header(resp, headers[0], headers[1]);
    enum MHD_Result ret = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return ret;
}

static conn_rec *rec_of(struct MHD_Connection *c);
static void wake(loop *L);

static void mhd_suspend(void *conn) { MHD_suspend_connection(conn); }

/* libmicrohttpd has no wake-up of its own in external-loop mode (it drops
   its inter-thread channel): a resume must wake the loop that owns the
   connection, or, on that loop's own thread, make it run again at once. */
static void mhd_resume(void *conn)
{
    /* the loop is read before the resume: once resumed, the owning loop may
       finish the connection and free its record (and conn) at once */
    conn_rec *cr = rec_of(conn);
    loop *L = cr ? cr->L : NULL;
    MHD_resume_connection(conn);
    if (!L)
        return;
    if (pthread_equal(pthread_self(), L->th))
        L->again = 1;
    else if (!atomic_exchange(&L->woken, 1))
        wake(L);
}

static const char *mhd_query(void *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
}

static unsigned mhd_query_count(void *conn)
{
    int n = MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, NULL, NULL);
    return n > 0 ? (unsigned)n : 0;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    ap_srv_body_source *src = cls;
    long n = src->read(src->ctx, buf, max);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

static void stream_done(void *cls)
{
    ap_srv_body_source *src = cls;
    src->done(src->ctx);
    free(src);
}

/* An event stream: chunked, never cached or buffered by a proxy. A read
   that finds nothing suspends the connection from inside the reader
   (libmicrohttpd's way for a body that is not ready: returning 0 without a
   suspend would spin). */
static enum MHD_Result mhd_stream(void *conn, unsigned code, const char *ctype,
                                  const ap_srv_body_source *src)
{
    ap_srv_body_source *own = malloc(sizeof *own);
    if (!own) {
        src->done(src->ctx);
        return MHD_NO;
    }
    *own = *src;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, own, stream_done);
    if (!resp) {
        stream_done(own);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    enum MHD_Result ret = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp); /* the connection holds it now, or it is freed (done) */
    return ret;
}

static const ap_srv_io mhd_io = {mhd_header, mhd_header_count, mhd_respond, mhd_suspend,
                                 mhd_resume, mhd_query, mhd_query_count, mhd_stream};

/* ---- connection records --------------------------------------------------------- */

static conn_rec *rec_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* When the last byte arrived on fd (monotonic ns), or now when unknown. */
static uint64_t last_data_ns(int fd, uint64_t now)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_last_data_recv) + sizeof ti.tcpi_last_data_recv)
        return now;
    uint64_t ago = (uint64_t)ti.tcpi_last_data_recv * 1000000u;
    return ago < now ? now - ago : now;
}

static uint64_t limit_of(const ap_srv_http *h, const conn_rec *cr)
{
    if (cr->reserve && h->request_timeout_ns > SRV_RESERVE_TIMEOUT_NS)
        return SRV_RESERVE_TIMEOUT_NS;
    return h->request_timeout_ns;
}

static void notify_conn(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    loop *L = cls;
    ap_srv_http *h = L->h;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_rec *cr = calloc(1, sizeof *cr);
        long open = atomic_fetch_add(&h->s->conn.open, 1) + 1;
        if (!cr) { /* no guard for this one: it still has the idle timeout */
            *socket_context = NULL;
            return;
        }
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        cr->c = c;
        cr->L = L;
        cr->fd = ci ? ci->connect_fd : -1;
        cr->state = CR_RECV;
        cr->since_ns = ap__clock_ns();
        cr->reserve = open > h->max_connections;
        if (cr->reserve)
            atomic_fetch_add_explicit(&h->s->conn.reserve_used, 1, memory_order_relaxed);
        cr->next = L->conns;
        if (L->conns)
            L->conns->prev = cr;
        L->conns = cr;
        *socket_context = cr;
        return;
    }
    conn_rec *cr = *socket_context;
    atomic_fetch_sub(&h->s->conn.open, 1);
    if (!cr)
        return;
    if (cr->prev)
        cr->prev->next = cr->next;
    else
        L->conns = cr->next;
    if (cr->next)
        cr->next->prev = cr->prev;
    free(cr);
    *socket_context = NULL;
}

/* The guard's tick: move AWAIT connections that received bytes to RECV, shut
   down those whose request is taking too long. */
static void guard_tick(loop *L, uint64_t now)
{
    ap_srv_http *h = L->h;
    for (conn_rec *cr = L->conns; cr; cr = cr->next) {
        if (cr->state == CR_AWAIT && cr->fd >= 0 && last_data_ns(cr->fd, now) > cr->since_ns) {
            cr->state = CR_RECV;
            cr->since_ns = now;
        }
        if (cr->state == CR_RECV && cr->fd >= 0 && now - cr->since_ns > limit_of(h, cr)) {
            /* libmicrohttpd owns the fd and closes it on its next pass; this
               thread is the only one running that daemon, so the fd is ours
               to shut down until then */
            shutdown(cr->fd, SHUT_RDWR);
            cr->state = CR_DEAD;
            atomic_fetch_add_explicit(&h->s->conn.timed_out, 1, memory_order_relaxed);
        }
    }
}

/* ---- libmicrohttpd callbacks ------------------------------------------------------ */

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    ap_server *s = cls;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    ap__srv_log(s, "http: %s", msg);
}

static enum MHD_Result ahc(void *cls, struct MHD_Connection *conn, const char *url,
                           const char *method, const char *version, const char *upload_data,
                           size_t *upload_data_size, void **con_cls)
{
    loop *L = cls;
    ap_srv_http *h = L->h;
    ap_srv_req *r = *con_cls;
    if (!r) {
        conn_rec *cr = rec_of(conn);
        uint64_t now = ap__clock_ns();
        if (cr && cr->state == CR_AWAIT) { /* a pipelined request: in our buffer already */
            cr->state = CR_RECV;
            cr->since_ns = now;
        }
        r = ap__srv_req_begin(h->s, &mhd_io, conn, &L->pass, method, url,
                             last_data_ns(cr ? cr->fd : -1, now), cr && cr->reserve);
        if (!r)
            return MHD_NO;
        *con_cls = r;
        if (cr && cr->state == CR_RECV && now - cr->since_ns > limit_of(h, cr)) {
            atomic_fetch_add_explicit(&h->s->conn.timed_out, 1, memory_order_relaxed);
            return ap__srv_req_refuse(r, MHD_HTTP_REQUEST_TIMEOUT,
                                     "request headers took more than %.3g s to arrive",
                                     (double)limit_of(h, cr) / 1e9);
        }
        if (cr && cr->reserve && !ap__srv_req_reserve_ok(r)) {
            atomic_fetch_add_explicit(&h->s->conn.reserve_refused, 1, memory_order_relaxed);
            return ap__srv_req_refuse(r, MHD_HTTP_SERVICE_UNAVAILABLE,
                                     "server is at max_connections (%ld); the reserve "
                                     "connections answer health checks and metrics only",
                                     h->max_connections);
        }
        return ap__srv_req_headers(r);
    }
    if (ap__srv_req_waiting(r))
        return ap__srv_req_resumed(r);
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        ap__srv_req_body(r, upload_data, n);
        return MHD_YES;
    }
    conn_rec *cr = rec_of(conn);
    if (cr && cr->state == CR_RECV)
        cr->state = CR_BUSY;
    return ap__srv_req_complete(r);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    conn_rec *cr = rec_of(conn);
    if (cr && cr->state != CR_DEAD) {
        cr->state = CR_AWAIT;
        cr->since_ns = ap__clock_ns();
    }
    ap_srv_req *r = *con_cls;
    *con_cls = NULL;
    if (r)
        ap__srv_req_free(r);
}

/* ---- event loops ---------------------------------------------------------------------- */

static void wake(loop *L)
{
    uint64_t one = 1;
    ssize_t w = write(L->wake_fd, &one, sizeof one);
    (void)w; /* EAGAIN: the counter is non-zero, the loop wakes anyway */
}

static void *loop_main(void *arg)
{
    loop *L = arg;
    ap_server *s = L->h->s;
    L->next_tick = ap__clock_ns() + SRV_TICK_NS;
    while (!atomic_load(&L->stop)) {
        if (atomic_load(&L->quiesce) && !atomic_load(&L->quiesced)) {
            MHD_quiesce_daemon(L->d); /* returns the shared socket: closed by stop */
            atomic_store(&L->quiesced, 1);
        }
        uint64_t now = ap__clock_ns();
        int64_t ms = now >= L->next_tick ? 0 : (int64_t)((L->next_tick - now) / 1000000u) + 1;
        MHD_UNSIGNED_LONG_LONG to;
        if (MHD_get_timeout(L->d, &to) == MHD_YES && (int64_t)to < ms)
            ms = (int64_t)to;
        /* a resume written to the wake fd after this store wakes the wait
           below; one before it left the fd readable */
        atomic_store(&L->woken, 0);
        if (L->again)
            ms = 0;
        struct epoll_event ev[2];
        /* after resuming connections itself the loop runs MHD again at once */
        int n = ms == 0 && L->again ? 0 : epoll_wait(L->epfd, ev, 2, (int)ms);
        for (int i = 0; i < n; i++)
            if (ev[i].data.u32 == 1) {
                uint64_t v;
                ssize_t rd = read(L->wake_fd, &v, sizeof v);
                (void)rd;
            }
        L->again = 0;
        MHD_run(L->d);
        /* the batch of this pass: everything deferred runs together */
        ap__service_pass_end(s->svc, &L->pass);
        now = ap__clock_ns();
        if (now >= L->next_tick) {
            guard_tick(L, now);
            L->next_tick = now + SRV_TICK_NS;
        }
    }
    return NULL;
}

/* ---- life cycle ----------------------------------------------------------------------- */

static int bind_listen(ap_srv_http *h, const ap_server_config *cfg, ap_error *err)
{
    ap_srv_listener L;
    int rc = ap__srv_listen(cfg->host, cfg->port, "port", &L, err);
    if (rc)
        return rc;
    int fd = L.fd, loopback = L.loopback;
    /* anyone who reaches a non-loopback port could load models and write
       bars: not without tokens, unless asked for in so many words */
    if (!loopback && !h->s->auth) {
        if (!cfg->allow_insecure) {
            close(fd);
            return ap__error_set(err, AP_EINVAL, "refusing to listen on %s (not a loopback "
                                "address) without auth_tokens_file: anyone who reaches it could "
                                "load and unload models and write bars; set auth_tokens_file, or "
                                "allow_insecure = true to serve it open anyway", cfg->host);
        }
        ap__srv_log(h->s, "WARNING: listening on %s without authentication (allow_insecure = "
                   "true): anyone who reaches it may load models and write bars", cfg->host);
    }
    h->port = L.port;
    h->listen_fd = fd;
    return AP_OK;
}

static int loop_init(ap_srv_http *h, loop *L, unsigned limit, ap_error *err)
{
    ap_server *s = h->s;
    const ap_server_config *cfg = &s->cfg;
    L->h = h;
    L->pass.immediate = 1; /* the first prediction of a pass runs at once */
    L->epfd = L->wake_fd = -1;
    /* TURBO: read/write/accept optimistically before asking epoll */
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                     MHD_USE_ERROR_LOG | (h->tls_cert ? MHD_USE_TLS : 0);
    /* with TLS the two PEM options come first; without, the list ends there */
    L->d = MHD_start_daemon(
        flags, 0, NULL, NULL, ahc, L, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s,
        MHD_OPTION_LISTEN_SOCKET, h->listen_fd, MHD_OPTION_CONNECTION_LIMIT, limit,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout,
        MHD_OPTION_NOTIFY_COMPLETED, completed, L, MHD_OPTION_NOTIFY_CONNECTION, notify_conn,
        L, h->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, h->tls_cert,
        MHD_OPTION_HTTPS_MEM_KEY, h->tls_key, MHD_OPTION_END);
    if (!L->d)
        return ap__error_set(err, AP_EIO, "cannot start the HTTP daemon on %s:%d", cfg->host,
                            h->port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(L->d, MHD_DAEMON_INFO_EPOLL_FD);
    L->epfd = epoll_create1(EPOLL_CLOEXEC);
    L->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event e1 = {.events = EPOLLIN, .data.u32 = 0};
    struct epoll_event e2 = {.events = EPOLLIN, .data.u32 = 1};
    if (!di || L->epfd < 0 || L->wake_fd < 0 ||
        epoll_ctl(L->epfd, EPOLL_CTL_ADD, di->epoll_fd, &e1) ||
        epoll_ctl(L->epfd, EPOLL_CTL_ADD, L->wake_fd, &e2))
        return ap__error_set(err, AP_EIO, "HTTP event loop: %s", strerror(errno));
    return AP_OK;
}

static void loops_down(ap_srv_http *h)
{
    for (int i = 0; i < h->nloops; i++) {
        loop *L = &h->loops[i];
        if (L->started) {
            atomic_store(&L->stop, 1);
            wake(L);
            pthread_join(L->th, NULL);
            L->started = 0;
        }
    }
    for (int i = 0; i < h->nloops; i++) {
        loop *L = &h->loops[i];
        if (L->d) {
            /* every daemon shares the listening socket: quiesce each (it
               hands the socket back) so that no stop closes it */
            if (!atomic_load(&L->quiesced)) {
                MHD_quiesce_daemon(L->d);
                atomic_store(&L->quiesced, 1);
            }
            MHD_stop_daemon(L->d);
            L->d = NULL;
        }
        if (L->epfd >= 0)
            close(L->epfd);
        if (L->wake_fd >= 0)
            close(L->wake_fd);
        L->epfd = L->wake_fd = -1;
    }
}

int ap__srv_http_start(ap_server *s, ap_srv_http **out, ap_error *err)
{
    const ap_server_config *cfg = &s->cfg;
    ap_srv_http *h = calloc(1, sizeof *h);
    if (!h)
        return ap__error_set(err, AP_ENOMEM, "server: out of memory");
    h->s = s;
    h->listen_fd = -1;
    h->request_timeout_ns = (uint64_t)(cfg->request_timeout * 1e9);
    h->max_connections = cfg->max_connections;
    h->nloops = cfg->http_threads;
    h->loops = calloc((size_t)h->nloops, sizeof *h->loops);
    int rc = h->loops ? AP_OK : ap__error_set(err, AP_ENOMEM, "server: out of memory");
    if (rc == AP_OK && cfg->tls_cert_file[0]) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
            rc = ap__error_set(err, AP_EUNSUPPORTED, "tls_cert_file: this libmicrohttpd was "
                               "built without TLS (GnuTLS)");
        else if ((rc = ap__srv_read_pem(cfg->tls_cert_file, "tls_cert_file", &h->tls_cert,
                                        err)) == AP_OK)
            rc = ap__srv_read_pem(cfg->tls_key_file, "tls_key_file", &h->tls_key, err);
    }
    if (rc == AP_OK)
        rc = bind_listen(h, cfg, err);
    /* each daemon takes its share of the connections (ordinary + reserve);
       a daemon at its limit stops accepting and the others take the rest */
    long total = (long)cfg->max_connections + cfg->reserve_connections;
    unsigned per = (unsigned)((total + h->nloops - 1) / h->nloops);
    for (int i = 0; rc == AP_OK && i < h->nloops; i++) {
        h->loops[i].index = i;
        rc = loop_init(h, &h->loops[i], per, err);
    }
    /* published before the threads start: their handlers read s->http */
    *out = rc == AP_OK ? h : NULL;
    for (int i = 0; rc == AP_OK && i < h->nloops; i++) {
        loop *L = &h->loops[i];
        if (pthread_create(&L->th, NULL, loop_main, L))
            rc = ap__error_set(err, AP_EIO, "cannot start HTTP thread %d", i);
        else
            L->started = 1;
    }
    if (rc) {
        ap__srv_http_free(h); /* joins the threads that started */
        *out = NULL;
        return rc;
    }
    return AP_OK;
}

int ap__srv_http_port(const ap_srv_http *h) { return h->port; }

void ap__srv_http_quiesce(ap_srv_http *h)
{
    if (!h)
        return;
    for (int i = 0; i < h->nloops; i++) {
        atomic_store(&h->loops[i].quiesce, 1);
        wake(&h->loops[i]);
    }
    for (int i = 0; i < h->nloops; i++)
        while (h->loops[i].started && !atomic_load(&h->loops[i].quiesced))
            usleep(1000);
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    h->listen_fd = -1;
}

void ap__srv_http_stop(ap_srv_http *h)
{
    if (h)
        loops_down(h);
}

void ap__srv_http_free(ap_srv_http *h)
{
    if (!h)
        return;
    if (h->loops)
        loops_down(h);
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    free(h->loops);
    free(h->tls_cert);
    free(h->tls_key);
    free(h);
}

