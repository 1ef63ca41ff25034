/*
 * authd.c - the auth process: serves the workers' password checks, user
 * lookups and server-wide counts (the anvil) on <state_dir>/auth.sock.
 *
 * Owns: binding the socket (ma_authd_listen(), in the master), the auth
 * process's loop (ma_authd_run()): accepting workers, reading and
 * validating their messages (authd-private.h; a malformed message closes
 * that worker's connection with a log line), running checks through
 * auth.c's check engine (the same failure table code as in-process, here
 * shared by every worker) and answering with status, canonical user and
 * the delay the worker applies (we hold no timer per request), counting
 * conns and sessions per worker connection so a worker that dies takes its
 * counts with it. The worker side is in auth.c.
 *
 * Runs as root (PAM, shadow); the socket is 0600 and owned by the mail
 * user, so only workers (and root) can talk to us. Everything a worker
 * sends is bounded: fixed-size messages, at most AUTHD_CLIENT_CHECKS
 * checks in flight per worker, AUTHD_CLIENT_OUT_MAX queued replies (a
 * worker that does not read is dropped), AUTHD_CLIENTS_MAX workers.
 */
#include "authd-private.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define AUTHD_CLIENTS_MAX 1024
/* A worker keeps at most 4096 requests in flight (auth.c). */
#define AUTHD_CLIENT_CHECKS 4096
#define AUTHD_CLIENT_OUT_MAX 16384
#define AUTHD_BACKLOG 128

struct authd_server;

struct authd_reply_out {
	struct authd_reply_out *next;
	struct authd_reply msg;
};

struct authd_client {
	struct authd_client *prev, *next;
	struct authd_server *srv;
	int fd;
	ev_io rio, wio;
	unsigned refs;			/* the server's + one per check */
	bool closed;
	long pid;			/* SO_PEERCRED, then HELLO */
	struct ma_anvil_client *anvil;
	unsigned n_checks;
	struct authd_reply_out *out_head, *out_tail;
	unsigned n_out;
};

struct authd_server {
	struct ma_core *core;
	int listen_fd;
	ev_io lio;
	ev_signal sigterm;
	struct authd_client *clients;
	unsigned n_clients;
};

/* A check in flight for a worker. */
struct authd_pending {
	struct authd_client *client;
	uint32_t id;
	uint64_t conn_id;
	bool lookup;
	char ip[AUTHD_IP_MAX];
	char sid[AUTHD_SID_MAX];
};

static char *authd_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *authd_strdupf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		ma_oom();
	va_end(ap);
	return s;
}

/* ---------- the socket (master) ---------- */

int ma_authd_listen(struct ma_core *core, uid_t uid, gid_t gid, char **error_r)
{
	struct sockaddr_un sun;
	struct stat st;
	char *path = authd_strdupf("%s/%s", core->state_dir != NULL ?
				   core->state_dir : ".", AUTHD_SOCKET_NAME);
	int fd = -1;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		*error_r = authd_strdupf("auth socket path too long: %s", path);
		goto fail;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	/* A socket left by a server that died: remove it if nobody answers.
	 * Never remove anything that is not a socket. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			*error_r = authd_strdupf("%s exists and is not a socket", path);
			goto fail;
		}
		int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int ret = probe < 0 ? -1 : connect(probe, (struct sockaddr *)&sun, sizeof(sun));
		int saved = errno;
		if (probe >= 0)
			close(probe);
		if (ret == 0 || (saved != ECONNREFUSED && saved != ENOENT)) {
			*error_r = authd_strdupf("%s: in use by another auth process", path);
			goto fail;
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			*error_r = authd_strdupf("unlink %s: %s", path, strerror(errno));
			goto fail;
		}
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = authd_strdupf("auth socket: %s", strerror(errno));
		goto fail;
	}
	/* Created 0600 from the start: no window where others may connect. */
	mode_t old = umask(0177);
	int bret = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	int saved = errno;
	umask(old);
	if (bret < 0) {
		*error_r = authd_strdupf("bind %s: %s", path, strerror(saved));
		goto fail;
	}
	if (chmod(path, 0600) < 0 ||
	    (uid != (uid_t)-1 && chown(path, uid, gid) < 0)) {
		*error_r = authd_strdupf("chmod/chown %s: %s", path, strerror(errno));
		(void)unlink(path);
		goto fail;
	}
	if (listen(fd, AUTHD_BACKLOG) < 0) {
		*error_r = authd_strdupf("listen %s: %s", path, strerror(errno));
		(void)unlink(path);
		goto fail;
	}
	free(path);
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	free(path);
	return -1;
}

/* ---------- clients ---------- */

static void authd_client_close(struct authd_client *c, const char *why);

static void authd_client_unref(struct authd_client *c)
{
	if (--c->refs > 0)
		return;
	while (c->out_head != NULL) {
		struct authd_reply_out *o = c->out_head;
		c->out_head = o->next;
		free(o);
	}
	free(c);
}

static void authd_client_send(struct authd_client *c, const struct authd_reply *r)
{
	if (c->closed)
		return;
	if (c->out_head == NULL) {
		ssize_t n = send(c->fd, r, sizeof(*r), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == (ssize_t)sizeof(*r))
			return;
		if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
			       errno != ENOBUFS && errno != EINTR)) {
			authd_client_close(c, n >= 0 ? "short send" : strerror(errno));
			return;
		}
	}
	if (c->n_out >= AUTHD_CLIENT_OUT_MAX) {
		authd_client_close(c, "reply queue full (worker not reading)");
		return;
	}
	struct authd_reply_out *o = ma_malloc0(sizeof(*o));
	o->msg = *r;
	if (c->out_tail != NULL)
		c->out_tail->next = o;
	else
		c->out_head = o;
	c->out_tail = o;
	c->n_out++;
	if (!ev_is_active(&c->wio))
		ev_io_start(c->srv->core->loop, &c->wio);
}

static void authd_client_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct authd_client *c = w->data;

	(void)revents;
	while (c->out_head != NULL) {
		struct authd_reply_out *o = c->out_head;
		ssize_t n = send(c->fd, &o->msg, sizeof(o->msg),
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
			      errno == ENOBUFS || errno == EINTR))
			return;
		if (n != (ssize_t)sizeof(o->msg)) {
			authd_client_close(c, n < 0 ? strerror(errno) : "short send");
			return;
		}
		c->out_head = o->next;
		if (c->out_head == NULL)
			c->out_tail = NULL;
		c->n_out--;
		free(o);
	}
	ev_io_stop(loop, w);
}

static void authd_reply_init(struct authd_reply *r, uint32_t id)
{
	memset(r, 0, sizeof(*r));
	r->hdr.version = AUTHD_PROTO_VERSION;
	r->hdr.type = AUTHD_REPLY;
	r->hdr.id = id;
}

static void authd_check_done(struct auth_check *chk, void *ctx)
{
	struct authd_pending *p = ctx;
	struct authd_client *c = p->client;
	enum ma_auth_status status = ma_auth_check_status(chk);
	struct authd_reply r;
	double delay = ma_auth_check_delay(chk);

	c->n_checks--;
	authd_reply_init(&r, p->id);
	if (status == MA_AUTH_OK)
		snprintf(r.user, sizeof(r.user), "%s", ma_auth_check_user(chk));
	snprintf(r.source, sizeof(r.source), "%s", ma_auth_check_source(chk));
	/* A login is a session of its user, counted on the worker's conn in
	 * the same step, so two workers cannot both let the 51st in. */
	if (!c->closed && status == MA_AUTH_OK && !p->lookup && p->conn_id != 0) {
		unsigned count, max;
		enum authd_limit lim = ma_anvil_session_add(c->anvil, p->conn_id,
							    r.user, false,
							    &count, &max);
		if (lim != AUTHD_LIMIT_NONE) {
			status = MA_AUTH_TEMPFAIL;
			r.limit = lim;
			r.count = count;
			r.max = max;
		}
	}
	r.status = status;
	r.delay_ms = delay <= 0 ? 0 : delay > 3600 ? 3600000 :
		(uint32_t)(delay * 1000 + 0.5);
	authd_client_send(c, &r);
	free(p);
	authd_client_unref(c);
}

static void authd_handle(struct authd_client *c, unsigned char *buf)
{
	struct authd_server *srv = c->srv;
	struct authd_hdr hdr;
	struct authd_reply r;

	memcpy(&hdr, buf, sizeof(hdr));
	switch (hdr.type) {
	case AUTHD_HELLO: {
		struct authd_hello h;
		memcpy(&h, buf, sizeof(h));
		c->pid = (long)h.pid;
		ma_debug("auth: worker pid=%ld said hello", c->pid);
		return;
	}
	case AUTHD_VERIFY:
	case AUTHD_LOOKUP: {
		struct authd_check_req *m = (struct authd_check_req *)(void *)buf;
		if (c->n_checks >= AUTHD_CLIENT_CHECKS) {
			authd_reply_init(&r, hdr.id);
			r.status = MA_AUTH_TEMPFAIL;
			ma_warning("sid=%s ip=%s user=-: auth temporary failure: worker "
				   "pid=%ld has %u checks in flight", m->sid, m->ip,
				   c->pid, c->n_checks);
			authd_client_send(c, &r);
			return;
		}
		struct authd_pending *p = ma_malloc0(sizeof(*p));
		p->client = c;
		p->id = hdr.id;
		p->conn_id = m->conn_id;
		p->lookup = hdr.type == AUTHD_LOOKUP;
		c->refs++;
		c->n_checks++;
		ma_auth_check_start(srv->core, p->lookup, m->user,
				    p->lookup ? NULL : m->password, m->ip, m->sid,
				    m->protocol, authd_check_done, p);
		return;
	}
	case AUTHD_CONN_ADD:
	case AUTHD_CONN_DEL:
	case AUTHD_SESSION_ADD: {
		struct authd_conn_req m;
		unsigned count = 0, max = 0;
		enum authd_limit lim = AUTHD_LIMIT_NONE;
		memcpy(&m, buf, sizeof(m));
		if (hdr.type == AUTHD_CONN_DEL) {
			ma_anvil_conn_del(c->anvil, m.conn_id);
			return;
		}
		if (hdr.type == AUTHD_CONN_ADD)
			lim = ma_anvil_conn_add(c->anvil, m.conn_id, m.ip_key,
						m.flags, &count, &max);
		else
			lim = ma_anvil_session_add(c->anvil, m.conn_id, m.user,
						   (m.flags & AUTHD_CONN_FORCE) != 0,
						   &count, &max);
		if (hdr.id == 0)
			return;		/* re-registration: no answer wanted */
		authd_reply_init(&r, hdr.id);
		r.status = lim == AUTHD_LIMIT_NONE ? MA_AUTH_OK : MA_AUTH_FAIL;
		r.limit = lim;
		r.count = count;
		r.max = max;
		authd_client_send(c, &r);
		return;
	}
	default:
		return;		/* validated: cannot happen */
	}
}

static void authd_client_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct authd_client *c = w->data;
	union {
		unsigned char b[AUTHD_MSG_MAX];
		uint64_t align;
	} u;
	unsigned char *buf = u.b;

	(void)loop;
	(void)revents;
	c->refs++;
	/* Bounded per callback: one busy worker does not starve others. */
	for (unsigned i = 0; i < 256 && !c->closed; i++) {
		ssize_t n = recv(c->fd, buf, sizeof(u.b), MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				authd_client_close(c, strerror(errno));
			break;
		}
		if (n == 0) {
			authd_client_close(c, "closed by the worker");
			break;
		}
		const char *bad = authd_msg_validate(buf, (size_t)n, true);
		if (bad != NULL) {
			ma_error("auth: worker pid=%ld sent a bad message (%s, %zd bytes); "
				 "closing its connection", c->pid, bad, n);
			authd_client_close(c, "protocol error");
			break;
		}
		authd_handle(c, buf);
	}
	ma_wipe(u.b, sizeof(u.b));	/* passwords */
	authd_client_unref(c);
}

static void authd_client_close(struct authd_client *c, const char *why)
{
	struct authd_server *srv = c->srv;
	struct ev_loop *loop = srv->core->loop;
	unsigned sessions = 0, conns;

	if (c->closed)
		return;
	c->closed = true;
	ev_io_stop(loop, &c->rio);
	ev_io_stop(loop, &c->wio);
	close(c->fd);
	c->fd = -1;
	conns = ma_anvil_client_destroy(&c->anvil, &sessions);
	ma_info("auth: worker pid=%ld disconnected (%s): released %u connections, "
		"%u sessions", c->pid, why, conns, sessions);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		srv->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	srv->n_clients--;
	authd_client_unref(c);	/* the server's; checks hold their own */
}

static void authd_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct authd_server *srv = w->data;

	(void)revents;
	for (unsigned i = 0; i < 64; i++) {
		int fd = accept4(srv->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				ma_error("auth: accept: %s", strerror(errno));
			return;
		}
		if (srv->n_clients >= AUTHD_CLIENTS_MAX) {
			ma_error("auth: %u worker connections already; refusing another",
				 srv->n_clients);
			close(fd);
			continue;
		}
		struct authd_client *c = ma_malloc0(sizeof(*c));
		struct ucred cred;
		socklen_t cl = sizeof(cred);
		c->srv = srv;
		c->fd = fd;
		c->refs = 1;
		c->pid = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 ?
			(long)cred.pid : -1;
		c->anvil = ma_anvil_client_create(ma_auth_anvil(srv->core));
		ev_io_init(&c->rio, authd_client_read_cb, fd, EV_READ);
		c->rio.data = c;
		ev_io_init(&c->wio, authd_client_write_cb, fd, EV_WRITE);
		c->wio.data = c;
		ev_io_start(loop, &c->rio);
		c->next = srv->clients;
		if (srv->clients != NULL)
			srv->clients->prev = c;
		srv->clients = c;
		srv->n_clients++;
		ma_info("auth: worker pid=%ld connected", c->pid);
	}
}

static void authd_sigterm_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ALL);
}

int ma_authd_run(struct ma_core *core, int listen_fd)
{
	struct ev_loop *loop = core->loop;
	struct authd_server srv;

	if (core->auth == NULL || ma_auth_anvil(core) == NULL) {
		ma_error("auth: auth framework not initialised");
		return 70;	/* EX_SOFTWARE */
	}
	memset(&srv, 0, sizeof(srv));
	srv.core = core;
	srv.listen_fd = listen_fd;
	int fl = fcntl(listen_fd, F_GETFL);
	if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		ma_error("auth: listening socket: %s", strerror(errno));
		return 71;	/* EX_OSERR */
	}
	signal(SIGPIPE, SIG_IGN);
	ev_io_init(&srv.lio, authd_accept_cb, listen_fd, EV_READ);
	srv.lio.data = &srv;
	ev_io_start(loop, &srv.lio);
	ev_signal_init(&srv.sigterm, authd_sigterm_cb, SIGTERM);
	ev_signal_start(loop, &srv.sigterm);
	ma_info("auth: process pid=%ld serving workers", (long)getpid());

	ev_run(loop, 0);

	ev_io_stop(loop, &srv.lio);
	ev_signal_stop(loop, &srv.sigterm);
	/* Mark every worker closed first, then let running checks finish:
	 * their done() sees a closed client and only frees. */
	while (srv.clients != NULL)
		authd_client_close(srv.clients, "auth process stopping");
	ma_auth_pool_stop(core);
	ma_info("auth: process pid=%ld stopped", (long)getpid());
	return 0;
}
