/*
 * lg-conn.c - ma-loadgen's connections: non-blocking connect (optionally
 * from one of several source addresses), implicit TLS through GnuTLS
 * without certificate checks, reading and writing.
 *
 * Reading: when no partial line is pending, data is read into one shared
 * 256 kB scratch buffer and parsed in place; only an unfinished line is
 * copied into the connection's own buffer. So a 10 MB RETR or a big
 * literal costs no copy, and 10,000 idle connections hold no buffers.
 * Writing: commands are appended to the output buffer and flushed once
 * per loop turn from an ev_prepare watcher (one send per connection per
 * turn).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "lg.h"

#define LG_SCRATCH (256 * 1024)
/* A line longer than this (SEARCH over 100k messages is ~600 kB) ends the
   session with an error: the server is confused or we are. */
#define LG_LINE_MAX (16 * 1024 * 1024)

static char lg_scratch[LG_SCRATCH];
static struct lg_conn **lg_dirty;
static int lg_n_dirty, lg_max_dirty;
static struct ev_prepare lg_prepare;
static unsigned lg_src_rr;

static void lg_conn_fail_io(struct lg_conn *c, const char *why)
{
	lg_op_fail(c, why);
}

static int lg_buf_reserve(struct lg_buf *b, size_t want, size_t max)
{
	if (b->size - b->used >= want)
		return 0;
	if (b->off) {
		memmove(b->data, b->data + b->off, b->used - b->off);
		b->used -= b->off;
		b->off = 0;
		if (b->size - b->used >= want)
			return 0;
	}
	size_t ns = b->size ? b->size : 4096;
	while (ns - b->used < want)
		ns *= 2;
	if (ns > max)
		return -1;
	char *d = realloc(b->data, ns);
	if (!d) {
		fprintf(stderr, "ma-loadgen: out of memory\n");
		exit(1);
	}
	b->data = d;
	b->size = ns;
	return 0;
}

static void lg_prepare_cb(struct ev_loop *loop, struct ev_prepare *w, int revents)
{
	/* lg_flush() of one connection may fail and close it: that never
	   adds to the list, so walking it by index is safe. */
	for (int i = 0; i < lg_n_dirty; i++) {
		struct lg_conn *c = lg_dirty[i];
		c->dirty = false;
		if (c->cstate == LG_C_OPEN)
			lg_flush(c);
	}
	lg_n_dirty = 0;
}

void lg_conn_global_init(int max_conns)
{
	lg_max_dirty = max_conns;
	lg_dirty = calloc((size_t)max_conns, sizeof(*lg_dirty));
	if (!lg_dirty) {
		fprintf(stderr, "ma-loadgen: out of memory\n");
		exit(1);
	}
	ev_prepare_init(&lg_prepare, lg_prepare_cb);
	ev_prepare_start(lg.loop, &lg_prepare);
	ev_unref(lg.loop);
}

int lg_tls_global_init(void)
{
	const char *err = NULL;

	if (gnutls_global_init() < 0 ||
	    gnutls_certificate_allocate_credentials(&lg.cred) < 0 ||
	    gnutls_priority_init(&lg.prio, "NORMAL", &err) < 0) {
		fprintf(stderr, "ma-loadgen: GnuTLS init failed\n");
		return -1;
	}
	return 0;
}

void lg_raise_nofile(long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if ((long)rl.rlim_cur >= want)
		return;
	if ((long)rl.rlim_max < want) {
		struct rlimit r2 = { (rlim_t)want, (rlim_t)want };
		if (setrlimit(RLIMIT_NOFILE, &r2) == 0)
			return;	/* root may raise the hard limit too */
	}
	rl.rlim_cur = (long)rl.rlim_max < want ? rl.rlim_max : (rlim_t)want;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	if ((long)rl.rlim_cur < want)
		fprintf(stderr, "ma-loadgen: warning: RLIMIT_NOFILE is %ld, "
			"fewer than the %ld descriptors wanted\n",
			(long)rl.rlim_cur, want);
}

static void lg_open(struct lg_conn *c)
{
	c->cstate = LG_C_OPEN;
	ev_io_stop(lg.loop, &c->wio);
	ev_io_start(lg.loop, &c->rio);
	c->proto->connected(c);
}

static void lg_handshake(struct lg_conn *c)
{
	int r = gnutls_handshake(c->tls);

	if (r == GNUTLS_E_SUCCESS) {
		lg_open(c);
		return;
	}
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
		if (gnutls_record_get_direction(c->tls)) {
			ev_io_stop(lg.loop, &c->rio);
			ev_io_start(lg.loop, &c->wio);
		} else {
			ev_io_stop(lg.loop, &c->wio);
			ev_io_start(lg.loop, &c->rio);
		}
		return;
	}
	if (!gnutls_error_is_fatal(r))
		return;
	lg_conn_fail_io(c, gnutls_strerror(r));
}

static void lg_tcp_connected(struct lg_conn *c)
{
	if (!lg.o.tls) {
		lg_open(c);
		return;
	}
	if (gnutls_init(&c->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK) < 0 ||
	    gnutls_priority_set(c->tls, lg.prio) < 0 ||
	    gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, lg.cred) < 0) {
		lg_conn_fail_io(c, "TLS session setup failed");
		return;
	}
	gnutls_transport_set_int(c->tls, c->fd);
	c->cstate = LG_C_HANDSHAKE;
	lg_handshake(c);
}

/* Feed n new bytes at p (the scratch buffer or the tail of c->in). */
static int lg_consume(struct lg_conn *c, char *p, size_t n)
{
	if (lg.phase == LG_MEASURE)
		lg.bytes += n;
	if (p == lg_scratch) {
		long used = c->proto->feed(c, p, n);
		if (used < 0)
			return -1;
		size_t left = n - (size_t)used;
		if (left) {
			if (lg_buf_reserve(&c->in, left, LG_LINE_MAX) < 0) {
				lg_conn_fail_io(c, "response line too long");
				return -1;
			}
			memcpy(c->in.data, p + used, left);
			c->in.used = left;
		}
		return 0;
	}
	c->in.used += n;
	long used = c->proto->feed(c, c->in.data, c->in.used);
	if (used < 0)
		return -1;
	size_t left = c->in.used - (size_t)used;
	if (left && used)
		memmove(c->in.data, c->in.data + used, left);
	c->in.used = left;
	/* Give back a big buffer once the long line is done. */
	if (!left && c->in.size > 65536) {
		free(c->in.data);
		c->in.data = NULL;
		c->in.size = 0;
	}
	return 0;
}

static void lg_read(struct lg_conn *c)
{
	for (;;) {
		char *dst;
		size_t cap;
		ssize_t n;

		if (c->in.used) {
			size_t want = c->in.used < 65536 ? 16384 : c->in.used;
			if (lg_buf_reserve(&c->in, want, LG_LINE_MAX) < 0) {
				lg_conn_fail_io(c, "response line too long");
				return;
			}
			dst = c->in.data + c->in.used;
			cap = c->in.size - c->in.used;
		} else {
			dst = lg_scratch;
			cap = sizeof(lg_scratch);
		}
		if (c->tls) {
			n = gnutls_record_recv(c->tls, dst, cap);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				return;
			if (n == GNUTLS_E_PREMATURE_TERMINATION)
				n = 0;
			if (n < 0) {
				lg_conn_fail_io(c, gnutls_strerror((int)n));
				return;
			}
		} else {
			n = recv(c->fd, dst, cap, 0);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return;
				lg_conn_fail_io(c, strerror(errno));
				return;
			}
		}
		if (n == 0) {
			c->proto->eof(c);
			return;
		}
		if (lg_consume(c, dst, (size_t)n) < 0)
			return;
		if (c->cstate != LG_C_OPEN)
			return;
		/* Plain sockets: the fd fires again if more is there. TLS:
		   buffered records would not wake us, drain them now. */
		if (!c->tls || gnutls_record_check_pending(c->tls) == 0)
			return;
	}
}

static void lg_rio_cb(struct ev_loop *loop, struct ev_io *w, int revents)
{
	struct lg_conn *c = w->data;

	if (c->cstate == LG_C_HANDSHAKE)
		lg_handshake(c);
	else if (c->cstate == LG_C_OPEN)
		lg_read(c);
}

static void lg_wio_cb(struct ev_loop *loop, struct ev_io *w, int revents)
{
	struct lg_conn *c = w->data;

	if (c->cstate == LG_C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			lg_conn_fail_io(c, strerror(err));
			return;
		}
		ev_io_stop(lg.loop, &c->wio);
		lg_tcp_connected(c);
	} else if (c->cstate == LG_C_HANDSHAKE) {
		lg_handshake(c);
	} else if (c->cstate == LG_C_OPEN) {
		lg_flush(c);
	}
}

static void lg_tmo_cb(struct ev_loop *loop, struct ev_timer *w, int revents)
{
	struct lg_conn *c = w->data;

	ev_timer_stop(loop, w);
	lg_op_fail(c, "timeout");
}

static void lg_sleep_cb(struct ev_loop *loop, struct ev_timer *w, int revents)
{
	struct lg_conn *c = w->data;

	if (c->reconnecting) {
		c->reconnecting = false;
		if (lg.phase != LG_DONE && lg_may_issue())
			lg_conn_start(c);
		return;
	}
	c->proto->wake(c);
}

void lg_conn_init(struct lg_conn *c, int id, const struct lg_proto *proto)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->id = id;
	c->proto = proto;
	c->rng = 0x2545f4914f6cdd1dull ^ ((uint64_t)(id + 1) * 0x9e3779b97f4a7c15ull)
		^ lg.o.seed;
	ev_init(&c->rio, lg_rio_cb);
	ev_init(&c->wio, lg_wio_cb);
	ev_init(&c->tmo, lg_tmo_cb);
	ev_init(&c->sleep, lg_sleep_cb);
	c->rio.data = c->wio.data = c->tmo.data = c->sleep.data = c;
}

int lg_conn_start(struct lg_conn *c)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int one = 1;

	c->conn_start = lg_now();
	c->in.used = c->in.off = 0;
	c->out.used = c->out.off = 0;
	c->tls_pending = 0;
	c->state = 0;
	c->lit_left = 0;
	c->resp_cont = false;
	c->was_established = false;
	lg_op_begin(c, LG_OP_CONNECT);

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		lg_conn_fail_io(c, strerror(errno));
		return -1;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (lg.o.n_source_ips) {
		struct sockaddr_in src = { .sin_family = AF_INET };
		src.sin_addr = lg.o.source_ips[lg_src_rr++ % (unsigned)lg.o.n_source_ips];
#ifdef IP_BIND_ADDRESS_NO_PORT
		/* Pick the port at connect(), per destination: else bind()
		   caps us at one connection per port per source address. */
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
		if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
			lg_conn_fail_io(c, strerror(errno));
			return -1;
		}
	}
	ev_io_set(&c->rio, c->fd, EV_READ);
	ev_io_set(&c->wio, c->fd, EV_WRITE);
	sa.sin_port = htons((uint16_t)lg.o.port);
	inet_pton(AF_INET, lg.o.host, &sa.sin_addr);
	c->cstate = LG_C_CONNECTING;
	lg_timeout_start(c);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		lg_tcp_connected(c);
		return 0;
	}
	if (errno != EINPROGRESS) {
		lg_conn_fail_io(c, strerror(errno));
		return -1;
	}
	ev_io_start(lg.loop, &c->wio);
	return 0;
}

void lg_conn_close(struct lg_conn *c)
{
	ev_io_stop(lg.loop, &c->rio);
	ev_io_stop(lg.loop, &c->wio);
	ev_timer_stop(lg.loop, &c->tmo);
	ev_timer_stop(lg.loop, &c->sleep);
	c->reconnecting = false;
	if (c->tls) {
		gnutls_deinit(c->tls);
		c->tls = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->cstate = LG_C_CLOSED;
	c->in.used = c->in.off = 0;
	c->out.used = c->out.off = 0;
	c->tls_pending = 0;
	c->op = LG_OP_NONE;
	if (c->in.size > 65536) {
		free(c->in.data);
		c->in.data = NULL;
		c->in.size = 0;
	}
	if (c->out.size > 65536) {
		free(c->out.data);
		c->out.data = NULL;
		c->out.size = 0;
	}
}

void lg_conn_reconnect(struct lg_conn *c, double delay)
{
	lg_conn_close(c);
	if (lg.phase == LG_DONE || !lg_may_issue())
		return;
	c->reconnecting = true;
	ev_timer_set(&c->sleep, delay, 0);
	ev_timer_start(lg.loop, &c->sleep);
}

static void lg_mark_dirty(struct lg_conn *c)
{
	if (c->dirty || lg_n_dirty >= lg_max_dirty)
		return;
	c->dirty = true;
	lg_dirty[lg_n_dirty++] = c;
}

char *lg_send_reserve(struct lg_conn *c, size_t n)
{
	if (lg_buf_reserve(&c->out, n, (size_t)1 << 40) < 0)
		return NULL;
	char *p = c->out.data + c->out.used;
	c->out.used += n;
	lg_mark_dirty(c);
	return p;
}

void lg_send(struct lg_conn *c, const void *p, size_t n)
{
	memcpy(lg_send_reserve(c, n), p, n);
}

void lg_sends(struct lg_conn *c, const char *s)
{
	lg_send(c, s, strlen(s));
}

/* 1 all sent, 0 waiting for the socket, -1 failed (c was closed). */
int lg_flush(struct lg_conn *c)
{
	struct lg_buf *b = &c->out;

	while (b->off < b->used) {
		ssize_t r;
		if (c->tls) {
			if (c->tls_pending)
				r = gnutls_record_send(c->tls, NULL, 0);
			else
				r = gnutls_record_send(c->tls, b->data + b->off,
						       b->used - b->off);
			if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
				if (!c->tls_pending)
					c->tls_pending = b->used - b->off;
				ev_io_start(lg.loop, &c->wio);
				return 0;
			}
			if (r < 0) {
				lg_conn_fail_io(c, gnutls_strerror((int)r));
				return -1;
			}
			c->tls_pending = 0;
		} else {
			r = send(c->fd, b->data + b->off, b->used - b->off, MSG_NOSIGNAL);
			if (r < 0) {
				if (errno == EAGAIN || errno == EINTR) {
					ev_io_start(lg.loop, &c->wio);
					return 0;
				}
				lg_conn_fail_io(c, strerror(errno));
				return -1;
			}
		}
		b->off += (size_t)r;
	}
	b->off = b->used = 0;
	ev_io_stop(lg.loop, &c->wio);
	return 1;
}

void lg_sleep(struct lg_conn *c, double secs)
{
	ev_timer_stop(lg.loop, &c->sleep);
	ev_timer_set(&c->sleep, secs, 0);
	ev_timer_start(lg.loop, &c->sleep);
}

void lg_timeout_start(struct lg_conn *c)
{
	c->tmo.repeat = lg.o.timeout;
	ev_timer_again(lg.loop, &c->tmo);
}

void lg_timeout_stop(struct lg_conn *c)
{
	ev_timer_stop(lg.loop, &c->tmo);
}
