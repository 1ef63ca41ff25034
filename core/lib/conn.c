/*
 * conn.c - one client connection: bounded input and output buffers, the
 * read/write watchers, corked output flushed once per loop turn (from the
 * net's ev_prepare watcher), backpressure, the idle timeout, STARTTLS
 * sequencing, closing with a bounded flush, refcounting, one-shot timers,
 * and the per-session summary log line. Everything in conn.h plus the
 * ma_conn_ref/unref/is_closed/after of core-private.h.
 *
 * Limits: a new conn asks the anvil (auth.c: in-process, or the auth
 * process) before any TLS or greeting and does no I/O until it answers;
 * its count is released at finalize. ma_conn_command_allowed() is a token
 * bucket per conn (limits.commands_per_second, burst 5 x rate): when it is
 * empty, input pauses (our own flag, independent of the plugin's pause)
 * and on_input runs again once a token is back.
 *
 * Callbacks into the protocol plugin only happen from event callbacks and
 * from the prepare watcher, never from inside a function the plugin called
 * (ma_conn_close() only marks the conn; the fd is closed and on_close()
 * called on the next loop turn), so a plugin never sees its session freed
 * under its feet.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net-private.h"

/* Bytes per read(2)/record: a TLS record holds at most 16k of payload. */
#define MA_CONN_IO_CHUNK 16384
/* An empty output buffer larger than this is freed, not kept. */
#define MA_CONN_OUT_KEEP 4096
/* on_input calls per conn per loop turn before others get a turn. */
#define MA_CONN_INPUT_ROUNDS 64
/* Rounds of the dirty list per prepare before yielding to I/O. */
#define MA_NET_DIRTY_ROUNDS 8
/* Caps for strings the plugin hands us for the log line. */
#define MA_CONN_USER_MAX 256
#define MA_CONN_SUMMARY_MAX 512
/* Slots are allocated by ma_core_alloc_slot(): a handful per process. */
#define MA_CONN_SLOTS_MAX 1024

static const char *const conn_reason_names[] = {
	[MA_CLOSE_NORMAL] = "normal",
	[MA_CLOSE_EOF] = "eof",
	[MA_CLOSE_ERROR] = "error",
	[MA_CLOSE_TLS_ERROR] = "tls_error",
	[MA_CLOSE_TIMEOUT] = "timeout",
	[MA_CLOSE_SHUTDOWN] = "shutdown",
	[MA_CLOSE_LIMIT] = "limit",
};

static void conn_flush(struct ma_conn *conn);
static void conn_deliver(struct ma_conn *conn);
static void conn_check_eof(struct ma_conn *conn);
static void conn_timer_arm(struct ma_conn *conn);

static bool conn_addr_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;
		const uint8_t *a = sin6->sin6_addr.s6_addr;

		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return true;
		/* ::ffff:127.x.y.z */
		return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && a[12] == 127;
	}
	return false;
}

static void conn_addr_text(const struct sockaddr_storage *ss, char *ip,
			   size_t iplen, unsigned *port_r)
{
	ip[0] = '\0';
	*port_r = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;
		inet_ntop(AF_INET, &sin->sin_addr, ip, (socklen_t)iplen);
		*port_r = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, (socklen_t)iplen);
		*port_r = ntohs(sin6->sin6_port);
	}
}

static void conn_make_sid(char *sid)
{
	static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
	uint64_t r;

	/* 60 random bits: unique enough to find one session in a log. */
	ma_random(&r, sizeof(r));
	for (unsigned i = 0; i < MA_SID_LEN - 1; i++) {
		sid[i] = b32[r & 31];
		r >>= 5;
	}
	sid[MA_SID_LEN - 1] = '\0';
}

/* ---- watchers ---- */

void ma_conn_update_io(struct ma_conn *conn)
{
	struct ev_loop *loop = conn->net->loop;
	bool want_read = false, want_write = false;

	if (conn->finalized || conn->fd < 0)
		return;
	switch (conn->tls_state) {
	case MA_CONN_TLS_HANDSHAKE:
		if (ma_tls_direction(conn) == 1)
			want_write = true;
		else
			want_read = true;
		break;
	case MA_CONN_TLS_WAIT_FLUSH:
		want_write = ma_buf_len(&conn->out) > 0;
		break;
	case MA_CONN_TLS_OFF:
	case MA_CONN_TLS_ON:
		want_write = ma_buf_len(&conn->out) > 0 || conn->tls_send_pending > 0;
		want_read = !conn->closing && !conn->paused && !conn->blocked &&
			!conn->throttled && !conn->read_eof &&
			ma_buf_len(&conn->in) < conn->in.max;
		break;
	}
	if (conn->admit_wait)
		want_read = want_write = false;
	if (conn->closing && conn->tls_state == MA_CONN_TLS_HANDSHAKE)
		want_read = want_write = false;
	if (want_write && conn->write_failed)
		want_write = false;

	if (want_read && !ev_is_active(&conn->rio))
		ev_io_start(loop, &conn->rio);
	else if (!want_read && ev_is_active(&conn->rio))
		ev_io_stop(loop, &conn->rio);
	if (want_write && !ev_is_active(&conn->wio))
		ev_io_start(loop, &conn->wio);
	else if (!want_write && ev_is_active(&conn->wio))
		ev_io_stop(loop, &conn->wio);
}

void ma_conn_mark_dirty(struct ma_conn *conn)
{
	struct ma_net *net = conn->net;

	if (conn->dirty || conn->finalized)
		return;
	conn->dirty = true;
	conn->refcount++;	/* the dirty list holds a ref */
	conn->dirty_next = net->dirty;
	net->dirty = conn;
	if (!ev_is_active(&net->idle) && !ev_is_active(&net->prepare))
		ev_idle_start(net->loop, &net->idle);
}

/* ---- connect ---- */

static void conn_connect(struct ma_conn *conn)
{
	int ret;

	conn->connected = true;
	conn_timer_arm(conn);
	ma_conn_ref(conn);
	ret = conn->ops->on_connect(conn);
	if (ret < 0 && !conn->closing)
		ma_conn_close_with(conn, MA_CLOSE_NORMAL, "refused by protocol");
	ma_conn_update_io(conn);
	ma_conn_unref(conn);
}

void ma_conn_tls_ready(struct ma_conn *conn)
{
	conn->tls_state = MA_CONN_TLS_ON;
	conn->last_activity = ev_now(conn->net->loop);
	if (ma_tls_pending(conn) > 0) {
		/* The first command came with the Finished message. */
		conn->read_again = true;
		ma_conn_mark_dirty(conn);
	}
	if (!conn->connected) {
		conn_connect(conn);	/* implicit TLS */
		return;
	}
	conn_timer_arm(conn);
	ma_conn_ref(conn);
	if (conn->ops->on_tls_ready != NULL && !conn->closing)
		conn->ops->on_tls_ready(conn);
	/* STARTTLS paused input inside the core, not the plugin's pause. */
	if (ma_buf_len(&conn->in) > 0) {
		conn->input_again = true;
		ma_conn_mark_dirty(conn);
	}
	ma_conn_update_io(conn);
	ma_conn_unref(conn);
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents);
static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents);

/* Admitted: TLS handshake (implicit TLS) or the protocol's greeting. */
static void conn_start(struct ma_conn *conn)
{
	if (conn->listener->tls == MA_TLS_IMPLICIT)
		(void)ma_tls_begin(conn);
	else
		conn_connect(conn);
}

struct ma_conn *ma_conn_create(struct ma_listener *l, int fd,
			       const struct sockaddr_storage *remote)
{
	struct ma_net *net = l->net;
	struct ma_conn *conn = ma_malloc0(sizeof(*conn));
	struct sockaddr_storage local;
	socklen_t sl = sizeof(local);
	int one = 1;

	conn->net = net;
	conn->listener = l;
	conn->ops = l->ops;
	conn->fd = fd;
	conn->refcount = 1;	/* dropped by ma_conn_finalize() */
	conn->arena = ma_arena_create(0);
	ma_buf_init(&conn->in, net->max_line);
	ma_buf_init(&conn->out, net->output_max);
	conn_make_sid(conn->sid);

	conn_addr_text(remote, conn->remote_ip, sizeof(conn->remote_ip),
		       &conn->remote_port);
	conn->remote_loopback = conn_addr_is_loopback(remote);
	memset(&local, 0, sizeof(local));
	if (remote->ss_family == AF_UNIX) {
		/* A UNIX socket peer is on this host by definition: it is
		 * "unix" in logs and counts as loopback (plaintext auth). */
		snprintf(conn->remote_ip, sizeof(conn->remote_ip), "unix");
		snprintf(conn->local_ip, sizeof(conn->local_ip), "unix");
		conn->remote_loopback = conn->local_loopback = true;
	} else if (getsockname(fd, (struct sockaddr *)&local, &sl) == 0) {
		conn_addr_text(&local, conn->local_ip, sizeof(conn->local_ip),
			       &conn->local_port);
		conn->local_loopback = conn_addr_is_loopback(&local);
	}
	memset(conn->ip_key, 0, sizeof(conn->ip_key));
	if (remote->ss_family == AF_INET) {
		conn->ip_key[10] = conn->ip_key[11] = 0xff;
		memcpy(conn->ip_key + 12,
		       &((const struct sockaddr_in *)(const void *)remote)->sin_addr, 4);
	} else if (remote->ss_family == AF_INET6) {
		memcpy(conn->ip_key,
		       &((const struct sockaddr_in6 *)(const void *)remote)->sin6_addr, 16);
	}
	/* We cork ourselves (one flush per loop turn); Nagle would only add
	 * latency to every reply. */
	if (remote->ss_family != AF_UNIX)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	ev_io_init(&conn->rio, conn_read_cb, fd, EV_READ);
	conn->rio.data = conn;
	ev_io_init(&conn->wio, conn_write_cb, fd, EV_WRITE);
	conn->wio.data = conn;
	ev_timer_init(&conn->timer, conn_timer_cb, net->idle_timeout, 0.);
	conn->timer.data = conn;
	conn->started = conn->last_activity = ev_now(net->loop);

	conn->next = net->conns;
	if (net->conns != NULL)
		net->conns->prev = conn;
	net->conns = conn;
	net->n_conns++;

	ma_conn_ref(conn);
	/* The anvil first: a refused client costs no handshake. */
	int admit = ma_auth_conn_admit(conn, conn->ip_key,
				       remote->ss_family != AF_UNIX, &conn->anvil);
	if (admit < 0) {
		ma_conn_close_with(conn, MA_CLOSE_LIMIT, "connection limit");
	} else if (admit == 0) {
		conn->admit_wait = true;
		conn_timer_arm(conn);	/* the idle timeout bounds the wait */
		ma_conn_update_io(conn);
	} else {
		conn_start(conn);
	}
	ma_conn_unref(conn);
	return conn;
}

void ma_conn_admitted(struct ma_conn *conn, bool ok)
{
	if (!conn->admit_wait || conn->closing || conn->finalized)
		return;
	conn->admit_wait = false;
	ma_conn_ref(conn);
	if (!ok)
		ma_conn_close_with(conn, MA_CLOSE_LIMIT, "connection limit");
	else
		conn_start(conn);
	ma_conn_update_io(conn);
	ma_conn_unref(conn);
}

struct ma_anvil_ref *ma_conn_anvil_ref(const struct ma_conn *conn)
{
	return conn->anvil;
}

const char *ma_conn_protocol_name(const struct ma_conn *conn)
{
	return conn->ops->name != NULL ? conn->ops->name : conn->listener->protocol;
}

/* ---- timers ---- */

static double conn_deadline(const struct ma_conn *conn)
{
	double idle = conn->idle_timeout > 0 ? conn->idle_timeout
					     : conn->net->idle_timeout;

	if (conn->closing)
		return conn->close_started + MA_CONN_CLOSE_FLUSH_SECS;
	if (conn->tls_state == MA_CONN_TLS_HANDSHAKE) {
		double hs = idle < MA_TLS_HANDSHAKE_SECS ? idle : MA_TLS_HANDSHAKE_SECS;
		return conn->hs_started + hs;
	}
	return conn->last_activity + idle;
}

static void conn_timer_arm(struct ma_conn *conn)
{
	struct ev_loop *loop = conn->net->loop;
	double after = conn_deadline(conn) - ev_now(loop);

	if (conn->finalized)
		return;
	ev_timer_stop(loop, &conn->timer);
	ev_timer_set(&conn->timer, after > 0.001 ? after : 0.001, 0.);
	ev_timer_start(loop, &conn->timer);
}

void ma_conn_set_idle_timeout(struct ma_conn *conn, double seconds)
{
	conn->idle_timeout = seconds > 0 ? seconds : 0;
	if (!conn->closing && !conn->finalized)
		conn_timer_arm(conn);
}

static void conn_write_final_line(struct ma_conn *conn, const char *line)
{
	size_t len;

	if (line == NULL || conn->closing)
		return;
	len = strnlen(line, 4096);
	(void)ma_conn_write(conn, line, len);
	if (len == 0 || line[len - 1] != '\n')
		(void)ma_conn_write(conn, "\r\n", 2);
}

static void conn_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ma_conn *conn = w->data;
	double now = ev_now(loop);

	(void)revents;
	if (conn->finalized)
		return;
	if (conn->closing) {
		/* Flush bound reached: the client does not read. */
		ma_conn_finalize(conn);
		return;
	}
	/* The deadline moves with activity; re-arm lazily (libev's "be
	 * smart about timeouts"). */
	if (now < conn_deadline(conn) - 0.0005) {
		conn_timer_arm(conn);
		return;
	}
	ma_conn_ref(conn);
	if (conn->tls_state == MA_CONN_TLS_HANDSHAKE) {
		ma_conn_log(conn, MA_LOG_INFO, "TLS handshake timed out");
		ma_conn_close_with(conn, MA_CLOSE_TIMEOUT, "tls handshake timeout");
	} else {
		const char *line = NULL;

		if (conn->connected && conn->ops->on_timeout != NULL)
			line = conn->ops->on_timeout(conn);
		conn_write_final_line(conn, line);
		ma_conn_close_with(conn, MA_CLOSE_TIMEOUT, "idle");
	}
	ma_conn_unref(conn);
}

static void conn_after_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ma_conn_timer *t = w->data;
	struct ma_conn *conn = t->conn;

	(void)loop;
	(void)revents;
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		conn->timers = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	if (!ma_conn_is_closed(conn))
		t->cb(conn, t->ctx);
	free(t);
	ma_conn_unref(conn);
}

void ma_conn_after(struct ma_conn *conn, double seconds,
		   void (*cb)(struct ma_conn *conn, void *ctx), void *ctx)
{
	struct ma_conn_timer *t;

	if (ma_conn_is_closed(conn))
		return;
	t = ma_malloc0(sizeof(*t));
	t->conn = conn;
	t->cb = cb;
	t->ctx = ctx;
	ev_timer_init(&t->timer, conn_after_cb, seconds > 0 ? seconds : 0., 0.);
	t->timer.data = t;
	t->next = conn->timers;
	if (conn->timers != NULL)
		conn->timers->prev = t;
	conn->timers = t;
	ma_conn_ref(conn);
	ev_timer_start(conn->net->loop, &t->timer);
}

/* ---- reading ---- */

static void conn_read(struct ma_conn *conn)
{
	bool eof = false, tls = conn->tls_state == MA_CONN_TLS_ON;
	size_t got = 0;

	if (conn->closing || (conn->tls_state != MA_CONN_TLS_OFF && !tls))
		return;
	conn->read_again = false;
	for (;;) {
		size_t room = conn->in.max - ma_buf_len(&conn->in);
		size_t chunk = room < MA_CONN_IO_CHUNK ? room : MA_CONN_IO_CHUNK;
		unsigned char *p;
		ssize_t n;

		if (chunk == 0)
			break;
		p = ma_buf_reserve(&conn->in, chunk);
		if (p == NULL)
			break;
		if (tls) {
			n = ma_tls_recv(conn, p, chunk);
			if (n == -2)
				return;	/* closed with MA_CLOSE_TLS_ERROR */
		} else {
			n = recv(conn->fd, p, chunk, 0);
		}
		if (n > 0) {
			ma_buf_commit(&conn->in, (size_t)n);
			got += (size_t)n;
			conn->bytes_in += (uint64_t)n;
			/* A short plain read means the socket is empty. */
			if (!tls && (size_t)n < chunk)
				break;
			continue;
		}
		if (n == 0) {
			eof = true;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		ma_conn_log(conn, MA_LOG_DEBUG, "read: %s", strerror(errno));
		ma_conn_close_with(conn, MA_CLOSE_ERROR, "read error");
		return;
	}
	if (got > 0)
		conn->last_activity = ev_now(conn->net->loop);
	/* Records gnutls already decrypted do not make the fd readable. */
	if (tls && !eof && ma_tls_pending(conn) > 0)
		conn->read_again = true;
	if (eof)
		conn->read_eof = true;
	if (got > 0)
		conn_deliver(conn);
	conn_check_eof(conn);
	if (conn->read_again && !conn->closing &&
	    ma_buf_len(&conn->in) < conn->in.max && !conn->paused && !conn->blocked)
		ma_conn_mark_dirty(conn);
	ma_conn_update_io(conn);
}

static bool conn_may_deliver(const struct ma_conn *conn)
{
	/* Not while over the output high-water mark either: pipelined
	 * commands wait until the client reads its replies. */
	return !conn->closing && !conn->finalized && !conn->paused &&
	       !conn->blocked && !conn->throttled && conn->connected &&
	       (conn->tls_state == MA_CONN_TLS_OFF || conn->tls_state == MA_CONN_TLS_ON);
}

/* The client half-closed. Commands it sent before (a pipelined
 * "DELE 1 / QUIT") still run: close only once the protocol has taken
 * everything it can, i.e. the buffer is empty or it is not waiting. */
static void conn_check_eof(struct ma_conn *conn)
{
	if (!conn->read_eof || conn->closing || conn->finalized ||
	    conn->input_again)
		return;
	if (ma_buf_len(&conn->in) == 0 || conn_may_deliver(conn))
		ma_conn_close_with(conn, MA_CLOSE_EOF, NULL);
}

static void conn_deliver(struct ma_conn *conn)
{
	ma_conn_ref(conn);
	for (unsigned round = 0; ; round++) {
		size_t before, after;

		if (!conn_may_deliver(conn) || ma_buf_len(&conn->in) == 0)
			break;
		if (round == MA_CONN_INPUT_ROUNDS) {
			/* Fairness: continue on the next loop turn. */
			conn->input_again = true;
			ma_conn_mark_dirty(conn);
			break;
		}
		before = ma_buf_len(&conn->in);
		conn->ops->on_input(conn);
		after = ma_buf_len(&conn->in);
		if (!conn_may_deliver(conn))
			break;
		if (after >= conn->in.max && after == before) {
			/* Full and the protocol cannot make progress: a line
			 * longer than max_line. */
			ma_conn_log(conn, MA_LOG_INFO,
				    "input line longer than %zu bytes", conn->in.max);
			ma_conn_close_with(conn, MA_CLOSE_LIMIT, "input line too long");
			break;
		}
		/* Nothing consumed: the rest is an incomplete command. */
		if (after == before || after == 0)
			break;
	}
	/* A session waiting for its client keeps no input buffer (it is
	 * max_line bytes): the next read allocates one again. Thousands of
	 * idle IMAP sessions are the common case. */
	if (!conn->finalized && ma_buf_len(&conn->in) == 0 && conn->in.size > 0)
		ma_buf_free(&conn->in);
	conn_check_eof(conn);
	ma_conn_update_io(conn);
	ma_conn_unref(conn);
}

static void conn_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ma_conn *conn = w->data;

	(void)loop;
	(void)revents;
	ma_conn_ref(conn);
	if (conn->tls_state == MA_CONN_TLS_HANDSHAKE) {
		if (ma_tls_handshake_step(conn) == 0)
			ma_conn_update_io(conn);
	} else {
		conn_read(conn);
	}
	ma_conn_unref(conn);
}

/* ---- writing ---- */

static void conn_flush(struct ma_conn *conn)
{
	size_t before = ma_buf_len(&conn->out);

	if (conn->finalized || conn->write_failed || conn->in_flush ||
	    conn->tls_state == MA_CONN_TLS_HANDSHAKE)
		return;
	conn->in_flush = true;
	while (ma_buf_len(&conn->out) > 0) {
		const unsigned char *p = ma_buf_ptr(&conn->out);
		size_t len = ma_buf_len(&conn->out);
		ssize_t n;

		if (conn->tls_state == MA_CONN_TLS_ON) {
			size_t chunk = conn->tls_send_pending;

			/* gnutls wants the same size again after EAGAIN. */
			if (chunk == 0 || chunk > len)
				chunk = len < MA_CONN_IO_CHUNK ? len : MA_CONN_IO_CHUNK;
			n = ma_tls_send(conn, p, chunk);
			if (n == -1) {
				conn->tls_send_pending = chunk;
				break;
			}
			if (n == -2) {
				conn->write_failed = true;
				break;
			}
			conn->tls_send_pending = 0;
		} else {
			n = send(conn->fd, p, len, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				ma_conn_log(conn, MA_LOG_DEBUG, "write: %s",
					    strerror(errno));
				conn->write_failed = true;
				ma_conn_close_with(conn, MA_CLOSE_ERROR, "write error");
				break;
			}
		}
		ma_buf_consume(&conn->out, (size_t)n);
		conn->bytes_out += (uint64_t)n;
	}
	conn->in_flush = false;
	if (ma_buf_len(&conn->out) < before)
		conn->last_activity = ev_now(conn->net->loop);
	if (ma_buf_len(&conn->out) == 0) {
		/* Reuse a small buffer from the start; give a big one (a
		 * FETCH of a large message grew it) back, so an idle
		 * session does not keep it. */
		if (conn->out.size > MA_CONN_OUT_KEEP)
			ma_buf_free(&conn->out);
		else
			ma_buf_clear(&conn->out);
	}

	if (!conn->closing && ma_buf_len(&conn->out) <= conn->net->output_low &&
	    (conn->blocked || conn->want_drain)) {
		conn->blocked = false;
		conn->want_drain = false;
		if (ma_buf_len(&conn->in) > 0) {
			conn->input_again = true;
			ma_conn_mark_dirty(conn);
		}
		if (conn->connected && conn->ops->on_output_drained != NULL) {
			ma_conn_ref(conn);
			conn->ops->on_output_drained(conn);
			ma_conn_unref(conn);
		}
	}
	if (conn->tls_state == MA_CONN_TLS_WAIT_FLUSH && !conn->closing &&
	    !conn->write_failed && ma_buf_len(&conn->out) == 0) {
		/* The plaintext "begin TLS" reply is out: handshake now. */
		(void)ma_tls_begin(conn);
	}
	ma_conn_update_io(conn);
}

static void conn_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ma_conn *conn = w->data;

	(void)loop;
	(void)revents;
	ma_conn_ref(conn);
	if (conn->tls_state == MA_CONN_TLS_HANDSHAKE) {
		if (ma_tls_handshake_step(conn) == 0)
			ma_conn_update_io(conn);
	} else {
		conn_flush(conn);
		if (conn->closing && !conn->finalized &&
		    (ma_buf_len(&conn->out) == 0 || conn->write_failed))
			ma_conn_finalize(conn);
	}
	ma_conn_unref(conn);
}

/* ---- the once-per-turn work ---- */

static void conn_process(struct ma_conn *conn)
{
	if (conn->finalized)
		return;
	if (conn->read_again && !conn->closing && !conn->paused && !conn->blocked)
		conn_read(conn);
	if (conn->input_again) {
		conn->input_again = false;
		conn_deliver(conn);
	}
	conn_flush(conn);
	if (conn->closing && !conn->finalized &&
	    (ma_buf_len(&conn->out) == 0 || conn->write_failed ||
	     conn->tls_state == MA_CONN_TLS_HANDSHAKE))
		ma_conn_finalize(conn);
}

void ma_net_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct ma_net *net = w->data;

	(void)revents;
	for (unsigned round = 0; round < MA_NET_DIRTY_ROUNDS && net->dirty != NULL;
	     round++) {
		struct ma_conn *list = net->dirty;

		net->dirty = NULL;
		while (list != NULL) {
			struct ma_conn *conn = list;

			list = conn->dirty_next;
			conn->dirty_next = NULL;
			conn->dirty = false;
			conn_process(conn);
			ma_conn_unref(conn);
		}
	}
	/* Work left (a protocol producing as fast as the socket takes it):
	 * do not block in poll, come back after the I/O. */
	if (net->dirty != NULL) {
		if (!ev_is_active(&net->idle))
			ev_idle_start(loop, &net->idle);
	} else if (ev_is_active(&net->idle)) {
		ev_idle_stop(loop, &net->idle);
	}
}

void ma_net_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct ma_net *net = w->data;

	(void)revents;
	/* Only here to keep poll from blocking; when the net has not been
	 * started (no prepare watcher), do the work here. */
	if (!ev_is_active(&net->prepare))
		ma_net_prepare_cb(loop, &net->prepare, 0);
	if (net->dirty == NULL)
		ev_idle_stop(loop, w);
}

/* ---- closing ---- */

void ma_conn_close_with(struct ma_conn *conn, enum ma_close_reason reason,
			const char *text)
{
	if (conn->closing || conn->finalized)
		return;
	conn->closing = true;
	conn->close_reason = reason;
	if (text != NULL)
		conn->close_text = strndup(text, 200);
	conn->close_started = ev_now(conn->net->loop);
	conn->paused = true;
	conn_timer_arm(conn);
	ma_conn_update_io(conn);
	ma_conn_mark_dirty(conn);
}

void ma_conn_close(struct ma_conn *conn, const char *reason)
{
	ma_conn_close_with(conn, MA_CLOSE_NORMAL, reason);
}

static void conn_log_summary(struct ma_conn *conn)
{
	double dur = ev_now(conn->net->loop) - conn->started;
	unsigned r = conn->close_reason;
	const char *kind = r < sizeof(conn_reason_names) / sizeof(conn_reason_names[0]) ?
		conn_reason_names[r] : "?";

	if (!ma_log_enabled(MA_LOG_INFO))
		return;
	ma_info("session end sid=%s proto=%s listener=%s ip=%s port=%u user=%s "
		"tls=%s in=%llu out=%llu duration=%.3fs reason=%s%s%s%s%s%s",
		conn->sid, conn->ops->name != NULL ? conn->ops->name : conn->listener->protocol,
		conn->listener->name, conn->remote_ip, conn->remote_port,
		conn->user != NULL ? conn->user : "-",
		conn->tls_state == MA_CONN_TLS_ON ? "yes" : "no",
		(unsigned long long)conn->bytes_in,
		(unsigned long long)conn->bytes_out, dur < 0 ? 0. : dur, kind,
		conn->close_text != NULL ? "(" : "",
		conn->close_text != NULL ? conn->close_text : "",
		conn->close_text != NULL ? ")" : "",
		conn->summary != NULL ? " summary=" : "",
		conn->summary != NULL ? conn->summary : "");
}

void ma_conn_finalize(struct ma_conn *conn)
{
	struct ma_net *net = conn->net;
	struct ev_loop *loop = net->loop;

	if (conn->finalized)
		return;
	ma_conn_ref(conn);
	if (!conn->closing) {
		conn->closing = true;
		conn->close_reason = MA_CLOSE_SHUTDOWN;
		conn->close_started = ev_now(loop);
	}
	conn->finalized = true;
	ev_io_stop(loop, &conn->rio);
	ev_io_stop(loop, &conn->wio);
	ev_timer_stop(loop, &conn->timer);
	while (conn->timers != NULL) {
		struct ma_conn_timer *t = conn->timers;

		conn->timers = t->next;
		ev_timer_stop(loop, &t->timer);
		free(t);
		ma_conn_unref(conn);
	}
	if (conn->tls != NULL)
		ma_tls_end(conn, conn->tls_state == MA_CONN_TLS_ON &&
			   !conn->write_failed);
	if (conn->fd >= 0)
		close(conn->fd);
	conn->fd = -1;
	ma_net_ip_release(net, conn->ip_key);
	ma_auth_conn_release(net->core, &conn->anvil);
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		net->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	conn->next = conn->prev = NULL;
	net->n_conns--;

	conn_log_summary(conn);
	if (conn->connected)
		conn->ops->on_close(conn, conn->close_reason);
	ma_conn_unref(conn);	/* the net's reference */
	ma_conn_unref(conn);
}

/* ---- refcount ---- */

void ma_conn_ref(struct ma_conn *conn)
{
	conn->refcount++;
}

void ma_conn_unref(struct ma_conn *conn)
{
	if (conn == NULL || --conn->refcount > 0)
		return;
	/* Input may have held a password (AUTH PLAIN, PASS). */
	ma_buf_wipe(&conn->in);
	ma_buf_free(&conn->in);
	ma_buf_free(&conn->out);
	ma_arena_destroy(&conn->arena);
	ma_tls_ctx_unref(&conn->tls_ctx);
	free(conn->slots);
	free(conn->user);
	free(conn->summary);
	free(conn->sni);
	free(conn->close_text);
	free(conn);
}

bool ma_conn_is_closed(const struct ma_conn *conn)
{
	return conn->closing || conn->finalized;
}

/* ---- input API ---- */

const unsigned char *ma_conn_input(struct ma_conn *conn, size_t *len_r)
{
	*len_r = ma_buf_len(&conn->in);
	return ma_buf_ptr(&conn->in);
}

void ma_conn_input_consume(struct ma_conn *conn, size_t n)
{
	size_t len = ma_buf_len(&conn->in);

	ma_buf_consume(&conn->in, n < len ? n : len);
}

void ma_conn_pause_input(struct ma_conn *conn)
{
	if (conn->closing)
		return;
	conn->paused = true;
	ma_conn_update_io(conn);
}

void ma_conn_resume_input(struct ma_conn *conn)
{
	if (conn->closing || !conn->paused)
		return;
	conn->paused = false;
	if (ma_buf_len(&conn->in) > 0)
		conn->input_again = true;
	if (conn->tls_state == MA_CONN_TLS_ON && ma_tls_pending(conn) > 0)
		conn->read_again = true;
	if (conn->input_again || conn->read_again)
		ma_conn_mark_dirty(conn);
	ma_conn_update_io(conn);
}

void ma_conn_input_clear(struct ma_conn *conn)
{
	ma_buf_clear(&conn->in);
	ma_conn_update_io(conn);
}

/* ---- commands per second ---- */

static void conn_throttle_end(struct ma_conn *conn, void *ctx)
{
	(void)ctx;
	conn->throttled = false;
	if (ma_buf_len(&conn->in) > 0)
		conn->input_again = true;
	if (conn->tls_state == MA_CONN_TLS_ON && ma_tls_pending(conn) > 0)
		conn->read_again = true;
	if (conn->input_again || conn->read_again)
		ma_conn_mark_dirty(conn);
	ma_conn_update_io(conn);
}

bool ma_conn_command_allowed(struct ma_conn *conn)
{
	unsigned rate = ma_auth_commands_per_second(conn->net->core);
	double now = ev_now(conn->net->loop), burst = rate * 5.0;

	if (rate == 0 || conn->closing || conn->finalized)
		return true;
	if (!conn->bucket_init) {
		conn->bucket_init = true;
		conn->tokens = burst;
		conn->tokens_at = now;
	}
	if (now > conn->tokens_at) {
		conn->tokens += (now - conn->tokens_at) * rate;
		if (conn->tokens > burst)
			conn->tokens = burst;
		conn->tokens_at = now;
	}
	if (!conn->throttled && conn->tokens >= 1.0) {
		conn->tokens -= 1.0;
		return true;
	}
	if (!conn->throttled) {
		conn->throttled = true;
		if (!conn->throttle_logged) {
			conn->throttle_logged = true;
			ma_conn_log(conn, MA_LOG_NOTICE,
				    "commands_per_second reached (%u per second, burst %.0f): "
				    "input paused until the bucket refills", rate, burst);
		}
		/* Until one token is back. */
		ma_conn_after(conn, (1.0 - conn->tokens) / rate + 0.0005,
			      conn_throttle_end, NULL);
		ma_conn_update_io(conn);
	}
	return false;
}

/* ---- output API ---- */

int ma_conn_write(struct ma_conn *conn, const void *data, size_t len)
{
	if (conn->closing || conn->finalized)
		return -1;
	if (len == 0)
		return 0;
	if (ma_buf_append(&conn->out, data, len) < 0) {
		ma_conn_log(conn, MA_LOG_WARNING,
			    "output buffer limit (%zu bytes) exceeded", conn->out.max);
		ma_conn_close_with(conn, MA_CLOSE_LIMIT, "output buffer full");
		return -1;
	}
	if (!conn->blocked && ma_buf_len(&conn->out) > conn->net->output_high) {
		/* Backpressure: a client that does not read stops being
		 * read from, so it cannot make us queue more. */
		conn->blocked = true;
		ma_conn_update_io(conn);
	}
	ma_conn_mark_dirty(conn);
	return 0;
}

int ma_conn_printf(struct ma_conn *conn, const char *fmt, ...)
{
	char stackbuf[1024], *heap = NULL;
	va_list ap;
	int n, ret;

	va_start(ap, fmt);
	n = vsnprintf(stackbuf, sizeof(stackbuf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(stackbuf))
		return ma_conn_write(conn, stackbuf, (size_t)n);
	va_start(ap, fmt);
	n = vasprintf(&heap, fmt, ap);
	va_end(ap);
	if (n < 0)
		ma_oom();
	ret = ma_conn_write(conn, heap, (size_t)n);
	free(heap);
	return ret;
}

size_t ma_conn_output_pending(const struct ma_conn *conn)
{
	return ma_buf_len(&conn->out);
}

bool ma_conn_output_full(const struct ma_conn *conn)
{
	return ma_buf_len(&conn->out) > conn->net->output_high;
}

void ma_conn_want_drain(struct ma_conn *conn)
{
	if (conn->closing)
		return;
	conn->want_drain = true;
	ma_conn_mark_dirty(conn);
}

/* ---- TLS API ---- */

bool ma_conn_is_tls(const struct ma_conn *conn)
{
	return conn->tls_state == MA_CONN_TLS_ON;
}

bool ma_conn_starttls_available(const struct ma_conn *conn)
{
	return conn->listener->tls == MA_TLS_STARTTLS &&
	       conn->tls_state == MA_CONN_TLS_OFF && conn->net->tls != NULL &&
	       !conn->closing;
}

int ma_conn_starttls(struct ma_conn *conn)
{
	if (!ma_conn_starttls_available(conn))
		return -1;
	/* RFC 2595 section 4 / RFC 3207 section 4.2: nothing the client sent
	 * before the handshake may be acted on after it. */
	if (ma_buf_len(&conn->in) > 0)
		ma_conn_log(conn, MA_LOG_INFO,
			    "dropped %zu bytes sent after STARTTLS before the handshake",
			    ma_buf_len(&conn->in));
	ma_buf_wipe(&conn->in);
	ma_buf_clear(&conn->in);
	conn->input_again = false;
	conn->tls_state = MA_CONN_TLS_WAIT_FLUSH;
	ma_conn_update_io(conn);
	ma_conn_mark_dirty(conn);
	return 0;
}

const char *ma_conn_tls_sni(const struct ma_conn *conn)
{
	return conn->sni;
}

bool ma_conn_plaintext_auth_allowed(const struct ma_conn *conn)
{
	if (conn->tls_state == MA_CONN_TLS_ON || conn->listener->allow_plaintext_auth)
		return true;
	/* Loopback never leaves the host: nobody can sniff it. */
	return conn->local_loopback && conn->remote_loopback;
}

/* ---- identity ---- */

struct ma_core *ma_conn_core(const struct ma_conn *conn)
{
	return conn->net->core;
}

const struct ma_config_section *ma_conn_protocol_config(const struct ma_conn *conn)
{
	return conn->listener->proto_config;
}

struct ma_arena *ma_conn_arena(struct ma_conn *conn)
{
	return conn->arena;
}

const char *ma_conn_id(const struct ma_conn *conn)
{
	return conn->sid;
}

const char *ma_conn_remote_ip(const struct ma_conn *conn)
{
	return conn->remote_ip;
}

unsigned ma_conn_remote_port(const struct ma_conn *conn)
{
	return conn->remote_port;
}

const char *ma_conn_local_ip(const struct ma_conn *conn)
{
	return conn->local_ip;
}

unsigned ma_conn_local_port(const struct ma_conn *conn)
{
	return conn->local_port;
}

bool ma_conn_is_loopback(const struct ma_conn *conn)
{
	return conn->remote_loopback;
}

const char *ma_conn_listener_name(const struct ma_conn *conn)
{
	return conn->listener->name;
}

void ma_conn_set_session(struct ma_conn *conn, void *session)
{
	conn->session = session;
}

void *ma_conn_session(const struct ma_conn *conn)
{
	return conn->session;
}

void ma_conn_ctx_set(struct ma_conn *conn, unsigned slot, void *data)
{
	if (slot >= MA_CONN_SLOTS_MAX)
		return;
	if (slot >= conn->n_slots) {
		unsigned n = slot + 1;

		conn->slots = ma_realloc(conn->slots, n * sizeof(*conn->slots));
		memset(conn->slots + conn->n_slots, 0,
		       (n - conn->n_slots) * sizeof(*conn->slots));
		conn->n_slots = n;
	}
	conn->slots[slot] = data;
}

void *ma_conn_ctx_get(const struct ma_conn *conn, unsigned slot)
{
	return slot < conn->n_slots ? conn->slots[slot] : NULL;
}

/* Log-safe copy: printable ASCII only, bounded. */
static char *conn_log_strdup(const char *s, size_t max)
{
	size_t len = strnlen(s, max);
	char *d = ma_malloc0(len + 1);

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		d[i] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	return d;
}

void ma_conn_set_user(struct ma_conn *conn, const char *user)
{
	free(conn->user);
	conn->user = user != NULL ? conn_log_strdup(user, MA_CONN_USER_MAX) : NULL;
}

const char *ma_conn_user(const struct ma_conn *conn)
{
	return conn->user;
}

void ma_conn_set_summary(struct ma_conn *conn, const char *text)
{
	free(conn->summary);
	conn->summary = text != NULL ? conn_log_strdup(text, MA_CONN_SUMMARY_MAX) : NULL;
}

void ma_conn_log(struct ma_conn *conn, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!ma_log_enabled((enum ma_log_level)level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ma_log((enum ma_log_level)level, "sid=%s ip=%s user=%s: %s", conn->sid,
	       conn->remote_ip, conn->user != NULL ? conn->user : "-", msg);
}
