/*
 * listener.c - the network side of the core: reads the `listener NAME`,
 * `tls` and (its part of) `limits` sections, binds the sockets, accepts
 * connections and enforces the connection limits (total and per client
 * IP), and stops everything at shutdown.
 *
 * Owns struct ma_net (core->net). Connections themselves live in conn.c,
 * TLS in tls.c.
 *
 * Decisions (the admin-visible ones are in the config reference):
 * - address: numeric IPv4/IPv6 literals (or "localhost"), comma or space
 *   separated. IPv6 sockets are IPV6_V6ONLY, so "::" is IPv6 only: list
 *   "0.0.0.0, ::" for both families, the same on every system.
 * - limits: max_line (8k) is the input buffer's hard size; a line that
 *   fills it without the protocol consuming anything closes the conn
 *   (MA_CLOSE_LIMIT). output_buffer (256k) is the high-water mark; the
 *   hard cap is 4 x output_buffer (1M by default): past it a write fails
 *   and the conn closes. Low-water (on_output_drained) is output_buffer/4.
 * - A connection over max_connections or max_connections_per_ip is
 *   accepted and closed at once without a word (no protocol is involved
 *   yet); refusals are logged at most once per second.
 * - With MA_CORE_CHECK_ONLY nothing is bound (the daemon may be running)
 *   but every value, and the TLS certificates, are still checked.
 * - UNIX sockets (`path = /run/mailaccess/lmtp` instead of address/port,
 *   for an MTA on the same host: LMTP): `mode` (octal, default 0660),
 *   optional `user`/`group` owning the socket (set while still root). A
 *   leftover socket file is removed at bind only if nobody answers on it
 *   (a second daemon must not steal a live socket) and only if it is a
 *   socket (never a regular file a typo points at). Such connections
 *   report remote_ip "unix", count as loopback and are not subject to
 *   max_connections_per_ip (they all share one "address").
 * - Processes (docs/processes.md): the master binds, workers inherit the
 *   listening fds over fork() and all accept on them. The UNIX socket
 *   files belong to the master (children call ma_net_disown_paths()). At a
 *   reload the master builds a new net with ma_net_init_inherit(), which
 *   dup()s the already-bound socket of a listener whose address/port (or
 *   path) did not change: connections waiting in the backlog are not lost
 *   and no root is needed to keep a port below 1024.
 * - `workers` (top level) is read here, so `config check` knows it too.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net-private.h"

/* Fallback when the listen() backlog is not tunable: SOMAXCONN is clamped
 * by the kernel to net.core.somaxconn anyway. */
#define MA_LISTEN_BACKLOG 511

static char *net_strerror_dup(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static char *net_strerror_dup(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		ma_oom();
	va_end(ap);
	return s;
}

/* ---- per-IP connection counts ---- */

static unsigned net_ip_hash(const unsigned char key[16])
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (unsigned i = 0; i < 16; i++) {
		h ^= key[i];
		h *= 16777619u;
	}
	return h % MA_NET_IP_BUCKETS;
}

/* Returns the count after adding one; does not add past `limit`
 * (returns limit + 1 then). */
static unsigned net_ip_acquire(struct ma_net *net, const unsigned char key[16],
			       unsigned limit)
{
	unsigned h = net_ip_hash(key);
	struct ma_ip_count *c;

	for (c = net->ip_buckets[h]; c != NULL; c = c->next) {
		if (memcmp(c->addr, key, 16) == 0)
			break;
	}
	if (c == NULL) {
		c = ma_malloc0(sizeof(*c));
		memcpy(c->addr, key, 16);
		c->next = net->ip_buckets[h];
		net->ip_buckets[h] = c;
	}
	if (c->count >= limit)
		return limit + 1;
	return ++c->count;
}

void ma_net_ip_release(struct ma_net *net, const unsigned char key[16])
{
	unsigned h = net_ip_hash(key);
	struct ma_ip_count **pp, *c;

	for (pp = &net->ip_buckets[h]; (c = *pp) != NULL; pp = &c->next) {
		if (memcmp(c->addr, key, 16) != 0)
			continue;
		if (c->count > 0)
			c->count--;
		if (c->count == 0) {
			*pp = c->next;
			free(c);
		}
		return;
	}
}

static void net_ip_key(const struct sockaddr_storage *ss, unsigned char key[16])
{
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;
		/* v4-mapped, so one client counts once on v4 and v6 sockets */
		key[10] = 0xff;
		key[11] = 0xff;
		memcpy(key + 12, &sin->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;
		memcpy(key, &sin6->sin6_addr, 16);
	}
}

/* ---- accepting ---- */

static void net_log_refusal(struct ma_net *net, const char *what,
			    const struct sockaddr_storage *ss,
			    const struct ma_listen_sock *ls)
{
	double now = ev_now(net->loop);
	char ip[INET6_ADDRSTRLEN] = "?";

	/* One line per second at most: a flood must not flood the log. */
	if (now < net->refuse_log_at) {
		net->refuse_suppressed++;
		return;
	}
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)ss)->sin_addr,
			  ip, sizeof(ip));
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr,
			  ip, sizeof(ip));
	ma_notice("connection refused listener=%s ip=%s reason=%s%s",
		  ls->listener->name, ip, what,
		  net->refuse_suppressed > 0 ? " (more refusals suppressed)" : "");
	net->refuse_suppressed = 0;
	net->refuse_log_at = now + 1.0;
}

static void net_accept_pause(struct ma_net *net)
{
	for (unsigned i = 0; i < net->n_socks; i++)
		ev_io_stop(net->loop, &net->socks[i]->io);
	ev_timer_set(&net->accept_retry, 1.0, 0.);
	ev_timer_start(net->loop, &net->accept_retry);
}

static void net_accept_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ma_net *net = w->data;

	(void)revents;
	if (net->shutting_down || net->listeners_closed)
		return;
	for (unsigned i = 0; i < net->n_socks; i++)
		ev_io_start(loop, &net->socks[i]->io);
}

static void net_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ma_listen_sock *ls = (struct ma_listen_sock *)w;
	struct ma_net *net = ls->listener->net;

	(void)loop;
	(void)revents;
	/* Accept until EAGAIN, but bounded so one busy listener cannot
	 * starve the connections already open. */
	for (unsigned n = 0; n < 256 && !net->shutting_down && ls->fd >= 0; n++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		unsigned char key[16];
		int fd;

		fd = accept4(ls->fd, (struct sockaddr *)&ss, &sl,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Listen fd stays readable: pause or spin. */
				ma_error("accept on %s: %s (pausing accepts 1s)",
					 ls->addr_text, strerror(errno));
				net_accept_pause(net);
				return;
			}
			ma_error("accept on %s: %s", ls->addr_text,
				 strerror(errno));
			return;
		}
		if (net->n_conns >= net->max_connections) {
			net_log_refusal(net, "max_connections", &ss, ls);
			close(fd);
			continue;
		}
		/* UNIX peers have no address to count by (the local MTA). */
		if (ss.ss_family == AF_UNIX) {
			(void)ma_conn_create(ls->listener, fd, &ss);
			continue;
		}
		net_ip_key(&ss, key);
		if (net_ip_acquire(net, key, net->max_connections_per_ip) >
		    net->max_connections_per_ip) {
			net_log_refusal(net, "max_connections_per_ip", &ss, ls);
			close(fd);
			continue;
		}
		/* conn owns the fd and the IP slot from here on */
		(void)ma_conn_create(ls->listener, fd, &ss);
	}
}

/* ---- config ---- */

static int net_read_limits(struct ma_net *net, const struct ma_config_section *root,
			   char **error_r)
{
	const struct ma_config_section *lim = ma_config_child(root, "limits");
	uint64_t u;
	double d;

	net->max_connections = 10000;
	net->max_connections_per_ip = 100;
	net->idle_timeout = 600;
	net->max_line = 8192;
	net->output_high = 256 * 1024;
	if (lim != NULL) {
		if (ma_config_get_uint(lim, "max_connections", 10000, 1000000,
				       &u, error_r) < 0)
			return -1;
		net->max_connections = (unsigned)u;
		if (ma_config_get_uint(lim, "max_connections_per_ip", 100, 1000000,
				       &u, error_r) < 0)
			return -1;
		net->max_connections_per_ip = (unsigned)u;
		if (ma_config_get_seconds(lim, "idle_timeout", 600, &d, error_r) < 0)
			return -1;
		if (d < 0.001 || d > 86400 * 7) {
			*error_r = net_strerror_dup("%s: idle_timeout: must be between 1ms and 7d",
						    ma_config_where(lim, "idle_timeout"));
			return -1;
		}
		net->idle_timeout = d;
		if (ma_config_get_size(lim, "max_line", 8192, &u, error_r) < 0)
			return -1;
		/* 512 is RFC 1939's POP3 line; 1M keeps one conn's input sane. */
		if (u < 512 || u > 1024 * 1024) {
			*error_r = net_strerror_dup("%s: max_line: must be between 512 and 1M",
						    ma_config_where(lim, "max_line"));
			return -1;
		}
		net->max_line = (size_t)u;
		if (ma_config_get_size(lim, "output_buffer", 256 * 1024, &u, error_r) < 0)
			return -1;
		if (u < 4096 || u > 64 * 1024 * 1024) {
			*error_r = net_strerror_dup("%s: output_buffer: must be between 4k and 64M",
						    ma_config_where(lim, "output_buffer"));
			return -1;
		}
		net->output_high = (size_t)u;
	}
	if (net->max_connections == 0 || net->max_connections_per_ip == 0) {
		*error_r = net_strerror_dup("%s: max_connections and max_connections_per_ip must be > 0",
					    lim != NULL ? ma_config_section_where(lim) : "limits");
		return -1;
	}
	net->output_low = net->output_high / 4;
	/* Hard cap: a protocol that ignores ma_conn_output_full() gets 4x the
	 * high-water mark before the conn is closed with MA_CLOSE_LIMIT. */
	net->output_max = net->output_high * 4;
	return 0;
}

/* Top-level `workers`: "auto" (default: one per online CPU), or 0..64. */
#define MA_NET_WORKERS_MAX 64
static int net_read_workers(struct ma_net *net, const struct ma_config_section *root,
			    char **error_r)
{
	const char *v = ma_config_get(root, "workers", "auto");
	unsigned long n = 0;
	char *end = NULL;

	if (strcasecmp(v, "auto") == 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		net->workers = cpus < 1 ? 1 : cpus > MA_NET_WORKERS_MAX ?
			MA_NET_WORKERS_MAX : (unsigned)cpus;
		return 0;
	}
	errno = 0;
	if (*v >= '0' && *v <= '9')
		n = strtoul(v, &end, 10);
	if (end == NULL || end == v || *end != '\0' || errno != 0 ||
	    n > MA_NET_WORKERS_MAX) {
		*error_r = net_strerror_dup("%s: workers: expected auto or a number from 0 to %d (got '%s')",
					    ma_config_where(root, "workers"),
					    MA_NET_WORKERS_MAX, v);
		return -1;
	}
	net->workers = (unsigned)n;
	return 0;
}

/* Reload: a bound socket of the previous generation with this address,
 * dup()ed; -1 if there is none (bind a new one). */
static int net_inherit_inet(struct ma_net *net, const struct sockaddr *sa)
{
	for (unsigned i = 0; net->inherit != NULL && i < net->inherit->n; i++) {
		struct ma_listen_sock *old = net->inherit->socks[i];
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		bool same = false;

		if (old->unix_path != NULL || old->inherited || old->fd < 0 ||
		    getsockname(old->fd, (struct sockaddr *)&ss, &sl) < 0 ||
		    ss.ss_family != sa->sa_family)
			continue;
		if (sa->sa_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)sa, *b = (const void *)&ss;
			same = a->sin_port == b->sin_port &&
			       a->sin_addr.s_addr == b->sin_addr.s_addr;
		} else if (sa->sa_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const void *)sa, *b = (const void *)&ss;
			same = a->sin6_port == b->sin6_port &&
			       memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0 &&
			       a->sin6_scope_id == b->sin6_scope_id;
		}
		if (!same)
			continue;
		int fd = fcntl(old->fd, F_DUPFD_CLOEXEC, 0);
		if (fd >= 0)
			old->inherited = true;
		return fd;
	}
	return -1;
}

static int net_inherit_unix(struct ma_net *net, const char *path)
{
	for (unsigned i = 0; net->inherit != NULL && i < net->inherit->n; i++) {
		struct ma_listen_sock *old = net->inherit->socks[i];
		struct stat st;

		if (old->unix_path == NULL || old->inherited || old->fd < 0 ||
		    strcmp(old->unix_path, path) != 0)
			continue;
		/* Only if the file is still the one we bound. */
		if (lstat(path, &st) < 0 || st.st_dev != old->unix_dev ||
		    st.st_ino != old->unix_ino)
			return -1;
		int fd = fcntl(old->fd, F_DUPFD_CLOEXEC, 0);
		if (fd >= 0)
			old->inherited = true;
		return fd;
	}
	return -1;
}

static void net_add_sock(struct ma_net *net, struct ma_listen_sock *ls)
{
	ev_io_init(&ls->io, net_accept_cb, ls->fd, EV_READ);
	net->socks = ma_realloc(net->socks, sizeof(*net->socks) * (net->n_socks + 1));
	net->socks[net->n_socks++] = ls;
}

static int net_bind_one(struct ma_net *net, struct ma_listener *l,
			const char *addr, unsigned port, bool check_only,
			const char *where, char **error_r)
{
	struct addrinfo hints, *res = NULL;
	char portstr[16];
	int err, fd = -1, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%u", port);
	err = getaddrinfo(addr, portstr, &hints, &res);
	if (err != 0 || res == NULL) {
		*error_r = net_strerror_dup("%s: listener %s: bad address '%s': %s",
					    where, l->name, addr, gai_strerror(err));
		return -1;
	}
	if (check_only) {
		freeaddrinfo(res);
		return 0;
	}
	fd = net_inherit_inet(net, res->ai_addr);
	if (fd >= 0)
		goto have_fd;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* Restart without waiting for TIME_WAIT to clear. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	/* "::" means IPv6 only; list 0.0.0.0 too for both, so the two
	 * families are configured the same way on every system. */
	if (res->ai_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0)
		goto fail;
	if (listen(fd, MA_LISTEN_BACKLOG) < 0)
		goto fail;
have_fd:;
	struct ma_listen_sock *ls = ma_malloc0(sizeof(*ls));
	ls->fd = fd;
	ls->listener = l;
	ls->addr_text = net_strerror_dup(res->ai_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
					 addr, port);
	net_add_sock(net, ls);
	freeaddrinfo(res);
	return 0;
fail:
	*error_r = net_strerror_dup("%s: listener %s: %s port %u: %s", where,
				    l->name, addr, port, strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return -1;
}

/* A socket file left by a daemon that died: remove it, but only if it is
 * a socket and nobody accepts on it. 0 = path free now, -1 = error. */
static int net_unix_clear_stale(const char *path, const struct sockaddr_un *sun,
				char **error_r, const char *where,
				const char *name)
{
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		*error_r = net_strerror_dup("%s: listener %s: %s exists and is not a socket",
					    where, name, path);
		return -1;
	}
	/* Non-blocking: a live daemon with a full backlog answers EAGAIN
	 * instead of blocking us; only ECONNREFUSED means nobody is there. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	ret = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	int saved = errno;
	close(fd);
	if (ret == 0 || saved != ECONNREFUSED) {
		*error_r = net_strerror_dup("%s: listener %s: %s: in use by another process",
					    where, name, path);
		return -1;
	}
	if (unlink(path) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

static void net_add_unix_sock(struct ma_net *net, struct ma_listener *l, int fd,
			      const char *path, const struct stat *st, bool owns_path)
{
	struct ma_listen_sock *ls = ma_malloc0(sizeof(*ls));

	ls->fd = fd;
	ls->listener = l;
	ls->addr_text = ma_strdup(path);
	ls->unix_path = ma_strdup(path);
	ls->unix_dev = st->st_dev;
	ls->unix_ino = st->st_ino;
	ls->owns_path = owns_path;
	net_add_sock(net, ls);
}

static int net_bind_unix(struct ma_net *net, struct ma_listener *l,
			 const struct ma_config_section *s, const char *path,
			 bool check_only, char **error_r)
{
	const char *where = ma_config_where(s, "path");
	const char *modestr = ma_config_get(s, "mode", "0660");
	const char *user = ma_config_get(s, "user", NULL);
	const char *group = ma_config_get(s, "group", NULL);
	struct sockaddr_un sun;
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	unsigned long mode;
	char *end = NULL;
	struct stat st;
	int fd = -1;

	if (ma_config_get(s, "address", NULL) != NULL ||
	    ma_config_get(s, "port", NULL) != NULL) {
		*error_r = net_strerror_dup("%s: listener %s: path and address/port exclude each other",
					    where, l->name);
		return -1;
	}
	if (path[0] != '/' || strlen(path) >= sizeof(sun.sun_path)) {
		*error_r = net_strerror_dup("%s: listener %s: path must be absolute and shorter than %zu bytes",
					    where, l->name, sizeof(sun.sun_path));
		return -1;
	}
	errno = 0;
	mode = strtoul(modestr, &end, 8);
	if (errno != 0 || end == modestr || *end != '\0' || mode > 0777) {
		*error_r = net_strerror_dup("%s: listener %s: mode must be octal like 0660",
					    ma_config_where(s, "mode"), l->name);
		return -1;
	}
	if (user != NULL) {
		struct passwd *pw = getpwnam(user);

		if (pw == NULL) {
			*error_r = net_strerror_dup("%s: listener %s: unknown user '%s'",
						    ma_config_where(s, "user"), l->name, user);
			return -1;
		}
		uid = pw->pw_uid;
	}
	if (group != NULL) {
		struct group *gr = getgrnam(group);

		if (gr == NULL) {
			*error_r = net_strerror_dup("%s: listener %s: unknown group '%s'",
						    ma_config_where(s, "group"), l->name, group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (check_only)
		return 0;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = net_inherit_unix(net, path);
	if (fd >= 0) {
		/* Same socket: apply this generation's mode and owner. */
		bool inherited_ok = chmod(path, (mode_t)mode) == 0 &&
			((uid == (uid_t)-1 && gid == (gid_t)-1) ||
			 chown(path, uid, gid) == 0) && stat(path, &st) == 0;
		if (!inherited_ok) {
			*error_r = net_strerror_dup("%s: listener %s: %s: %s", where,
						    l->name, path, strerror(errno));
			close(fd);
			return -1;
		}
		/* The old generation owns the file until the new one is
		 * committed (ma_net_socks_free). */
		net_add_unix_sock(net, l, fd, path, &st, false);
		return 0;
	}
	if (net_unix_clear_stale(path, &sun, error_r, where, l->name) < 0) {
		if (*error_r != NULL)
			return -1;
		goto fail;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&sun, sizeof(sun)) < 0)
		goto fail;
	/* chmod/chown the path (not fchmod: on Linux the socket inode's
	 * permissions are what connect(2) checks). */
	if (chmod(path, (mode_t)mode) < 0)
		goto fail_unlink;
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(path, uid, gid) < 0)
		goto fail_unlink;
	if (stat(path, &st) < 0)
		goto fail_unlink;
	if (listen(fd, MA_LISTEN_BACKLOG) < 0)
		goto fail_unlink;
	net_add_unix_sock(net, l, fd, path, &st, true);
	return 0;
fail_unlink:
	*error_r = net_strerror_dup("%s: listener %s: %s: %s", where, l->name,
				    path, strerror(errno));
	(void)unlink(path);
	close(fd);
	return -1;
fail:
	*error_r = net_strerror_dup("%s: listener %s: %s: %s", where, l->name,
				    path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static int net_read_listener(struct ma_net *net, const struct ma_config_section *s,
			     char **error_r)
{
	static const char *const tls_modes[] = { "none", "starttls", "implicit", NULL };
	const struct ma_config_section *root = ma_config_root(net->core->config);
	const struct ma_loaded_plugin *p;
	struct ma_listener *l;
	const char *label = ma_config_section_label(s);
	const char *addrs;
	bool check_only = (net->core->flags & MA_CORE_CHECK_ONLY) != 0;
	unsigned mode;
	uint64_t port;

	if (label == NULL || *label == '\0') {
		*error_r = net_strerror_dup("%s: listener needs a name (listener NAME { ... })",
					    ma_config_section_where(s));
		return -1;
	}
	l = ma_malloc0(sizeof(*l));
	l->net = net;
	l->name = ma_strdup(label);
	net->listeners = ma_realloc(net->listeners,
				    sizeof(*net->listeners) * (net->n_listeners + 1));
	net->listeners[net->n_listeners++] = l;

	l->protocol = ma_config_get(s, "protocol", NULL);
	if (l->protocol == NULL) {
		*error_r = net_strerror_dup("%s: listener %s: protocol missing",
					    ma_config_section_where(s), label);
		return -1;
	}
	p = ma_core_find_plugin(net->core, MA_PLUGIN_PROTOCOL, l->protocol);
	if (p == NULL || p->desc == NULL || p->desc->ops == NULL) {
		*error_r = net_strerror_dup("%s: listener %s: protocol '%s' is not loaded",
					    ma_config_where(s, "protocol"), label, l->protocol);
		return -1;
	}
	l->ops = p->desc->ops;
	if (l->ops->struct_size < sizeof(struct ma_protocol_ops) ||
	    l->ops->on_connect == NULL || l->ops->on_input == NULL ||
	    l->ops->on_close == NULL) {
		*error_r = net_strerror_dup("%s: listener %s: protocol plugin '%s' has an incomplete ops table",
					    ma_config_where(s, "protocol"), label, l->protocol);
		return -1;
	}
	l->proto_config = ma_config_child(root, l->protocol);

	if (ma_config_get_enum(s, "tls", tls_modes, 0, &mode, error_r) < 0)
		return -1;
	l->tls = (enum ma_tls_mode)mode;
	if (ma_config_get_bool(s, "allow_plaintext_auth", false,
			       &l->allow_plaintext_auth, error_r) < 0)
		return -1;
	const char *path = ma_config_get(s, "path", NULL);
	if (path != NULL)
		return net_bind_unix(net, l, s, path, check_only, error_r);
	if (ma_config_get_uint(s, "port", 0, 65535, &port, error_r) < 0)
		return -1;
	if (port == 0) {
		*error_r = net_strerror_dup("%s: listener %s: port missing",
					    ma_config_where(s, "port"), label);
		return -1;
	}
	addrs = ma_config_get(s, "address", "127.0.0.1");
	/* "127.0.0.1, ::1": comma (and/or space) separated */
	char *copy = ma_strdup(addrs), *save = NULL, *tok;
	unsigned n = 0;
	for (tok = strtok_r(copy, ", \t", &save); tok != NULL;
	     tok = strtok_r(NULL, ", \t", &save)) {
		if (strcasecmp(tok, "localhost") == 0)
			tok = "127.0.0.1";
		if (strlen(tok) > 2 && tok[0] == '[' && tok[strlen(tok) - 1] == ']') {
			tok[strlen(tok) - 1] = '\0';
			tok++;
		}
		if (net_bind_one(net, l, tok, (unsigned)port, check_only,
				 ma_config_where(s, "address"), error_r) < 0) {
			free(copy);
			return -1;
		}
		n++;
	}
	free(copy);
	if (n == 0) {
		*error_r = net_strerror_dup("%s: listener %s: address is empty",
					    ma_config_where(s, "address"), label);
		return -1;
	}
	return 0;
}

static int net_init(struct ma_core *core, struct ma_net_socks *inherit,
		    char **error_r);

int ma_net_init(struct ma_core *core, char **error_r)
{
	return net_init(core, NULL, error_r);
}

int ma_net_init_inherit(struct ma_core *core, struct ma_net_socks *old,
			char **error_r)
{
	for (unsigned i = 0; old != NULL && i < old->n; i++)
		old->socks[i]->inherited = false;
	return net_init(core, old, error_r);
}

static int net_init(struct ma_core *core, struct ma_net_socks *inherit,
		    char **error_r)
{
	const struct ma_config_section *root, *s;
	struct ma_net *net;
	bool need_tls = false;
	int ret = -1;

	*error_r = NULL;
	if (core->net != NULL) {
		*error_r = ma_strdup("network already initialised");
		return -1;
	}
	net = ma_malloc0(sizeof(*net));
	net->core = core;
	net->loop = core->loop != NULL ? core->loop : ma_core_loop(core);
	core->net = net;
	ev_prepare_init(&net->prepare, ma_net_prepare_cb);
	net->prepare.data = net;
	ev_idle_init(&net->idle, ma_net_idle_cb);
	net->idle.data = net;
	ev_timer_init(&net->accept_retry, net_accept_retry_cb, 1.0, 0.);
	net->accept_retry.data = net;

	net->inherit = inherit;
	root = ma_config_root(core->config);
	if (net_read_limits(net, root, error_r) < 0 ||
	    net_read_workers(net, root, error_r) < 0)
		goto out;
	for (s = ma_config_next_child(root, "listener", NULL); s != NULL;
	     s = ma_config_next_child(root, "listener", s)) {
		if (net_read_listener(net, s, error_r) < 0)
			goto out;
		if (net->listeners[net->n_listeners - 1]->tls != MA_TLS_NONE)
			need_tls = true;
	}
	net->tls_section = ma_config_child(root, "tls");
	if (net->tls_section != NULL) {
		net->tls = ma_tls_ctx_load(net->tls_section, error_r);
		if (net->tls == NULL)
			goto out;
	} else if (need_tls) {
		*error_r = ma_strdup("a listener uses tls but there is no tls { cert key } section");
		goto out;
	}
	ret = 0;
out:
	net->inherit = NULL;
	return ret;
}

unsigned ma_net_workers(const struct ma_core *core)
{
	return core->net != NULL ? core->net->workers : 0;
}

int ma_net_start(struct ma_core *core, char **error_r)
{
	struct ma_net *net = core->net;

	if (net == NULL) {
		*error_r = ma_strdup("ma_net_init was not called");
		return -1;
	}
	if (net->started)
		return 0;
	net->started = true;
	ev_prepare_start(net->loop, &net->prepare);
	for (unsigned i = 0; i < net->n_socks; i++)
		ev_io_start(net->loop, &net->socks[i]->io);
	return 0;
}

static void net_close_listeners(struct ma_net *net)
{
	net->listeners_closed = true;
	for (unsigned i = 0; i < net->n_socks; i++) {
		struct ma_listen_sock *ls = net->socks[i];

		ev_io_stop(net->loop, &ls->io);
		if (ls->fd >= 0)
			close(ls->fd);
		ls->fd = -1;
	}
	ev_timer_stop(net->loop, &net->accept_retry);
}

void ma_net_close_listeners(struct ma_core *core)
{
	if (core->net != NULL && !core->net->listeners_closed)
		net_close_listeners(core->net);
}

void ma_net_disown_paths(struct ma_core *core)
{
	for (unsigned i = 0; core->net != NULL && i < core->net->n_socks; i++)
		core->net->socks[i]->owns_path = false;
}

/* Closes ls's fd and, if it owns its UNIX socket file and the file is
 * still the one it bound, unlinks it; frees ls. */
static void net_sock_free(struct ma_listen_sock *ls, bool check_only)
{
	struct stat st;

	if (ls->fd >= 0)
		close(ls->fd);
	/* Best effort: after dropping privileges the directory may not be
	 * writable; a newer daemon may have replaced the file. */
	if (ls->unix_path != NULL && ls->owns_path && !check_only &&
	    lstat(ls->unix_path, &st) == 0 && st.st_dev == ls->unix_dev &&
	    st.st_ino == ls->unix_ino)
		(void)unlink(ls->unix_path);
	free(ls->unix_path);
	free(ls->addr_text);
	free(ls);
}

struct ma_net_socks *ma_net_take_sockets(struct ma_core *core)
{
	struct ma_net *net = core->net;
	struct ma_net_socks *socks = ma_malloc0(sizeof(*socks));

	if (net == NULL)
		return socks;
	for (unsigned i = 0; i < net->n_socks; i++) {
		ev_io_stop(net->loop, &net->socks[i]->io);
		net->socks[i]->listener = NULL;	/* dies with the core */
	}
	socks->socks = net->socks;
	socks->n = net->n_socks;
	net->socks = NULL;
	net->n_socks = 0;
	return socks;
}

void ma_net_socks_free(struct ma_net_socks **oldp, struct ma_core *committed)
{
	struct ma_net_socks *old = *oldp;

	if (old == NULL)
		return;
	*oldp = NULL;
	for (unsigned i = 0; i < old->n; i++) {
		struct ma_listen_sock *ls = old->socks[i];

		/* A UNIX socket the new generation took over: its file is
		 * the new net's to remove now. */
		if (ls->inherited && ls->unix_path != NULL && ls->owns_path &&
		    committed != NULL && committed->net != NULL) {
			for (unsigned j = 0; j < committed->net->n_socks; j++) {
				struct ma_listen_sock *n = committed->net->socks[j];

				if (n->unix_path != NULL &&
				    strcmp(n->unix_path, ls->unix_path) == 0 &&
				    n->unix_dev == ls->unix_dev &&
				    n->unix_ino == ls->unix_ino) {
					n->owns_path = true;
					ls->owns_path = false;
				}
			}
		}
		if (ls->inherited && committed != NULL)
			ls->owns_path = false;
		net_sock_free(ls, false);
	}
	free(old->socks);
	free(old);
}

void ma_net_shutdown(struct ma_core *core)
{
	struct ma_net *net = core->net;
	struct ma_conn *c, *next;

	if (net == NULL || net->shutting_down)
		return;
	net->shutting_down = true;
	net_close_listeners(net);
	for (c = net->conns; c != NULL; c = next) {
		next = c->next;
		ma_conn_ref(c);
		if (!c->closing) {
			const char *line = NULL;

			if (c->connected && c->ops->on_shutdown != NULL)
				line = c->ops->on_shutdown(c);
			if (line != NULL && !c->closing) {
				size_t len = strlen(line);

				(void)ma_conn_write(c, line, len);
				if (len == 0 || line[len - 1] != '\n')
					(void)ma_conn_write(c, "\r\n", 2);
			}
			ma_conn_close_with(c, MA_CLOSE_SHUTDOWN, "shutdown");
		}
		/* Shorter flush bound than a normal close. */
		if (!c->finalized && c->closing) {
			ev_timer_stop(net->loop, &c->timer);
			ev_timer_set(&c->timer, MA_CONN_SHUTDOWN_FLUSH_SECS, 0.);
			ev_timer_start(net->loop, &c->timer);
			c->close_started = ev_now(net->loop) -
				(MA_CONN_CLOSE_FLUSH_SECS - MA_CONN_SHUTDOWN_FLUSH_SECS);
		}
		next = c->next;
		ma_conn_unref(c);
	}
}

unsigned ma_net_conn_count(const struct ma_core *core)
{
	return core->net == NULL ? 0 : core->net->n_conns;
}

void ma_net_deinit(struct ma_core *core)
{
	struct ma_net *net = core->net;

	if (net == NULL)
		return;
	net->shutting_down = true;
	net_close_listeners(net);
	while (net->conns != NULL)
		ma_conn_finalize(net->conns);
	/* The dirty list holds refs: drop them, the conns are finalized. */
	while (net->dirty != NULL) {
		struct ma_conn *c = net->dirty;

		net->dirty = c->dirty_next;
		c->dirty_next = NULL;
		c->dirty = false;
		ma_conn_unref(c);
	}
	ev_prepare_stop(net->loop, &net->prepare);
	ev_idle_stop(net->loop, &net->idle);
	for (unsigned i = 0; i < net->n_socks; i++) {
		/* fd already closed by net_close_listeners() */
		net_sock_free(net->socks[i],
			      (net->core->flags & MA_CORE_CHECK_ONLY) != 0);
	}
	free(net->socks);
	for (unsigned i = 0; i < net->n_listeners; i++) {
		free(net->listeners[i]->name);
		free(net->listeners[i]);
	}
	free(net->listeners);
	for (unsigned i = 0; i < MA_NET_IP_BUCKETS; i++) {
		while (net->ip_buckets[i] != NULL) {
			struct ma_ip_count *c = net->ip_buckets[i];

			net->ip_buckets[i] = c->next;
			free(c);
		}
	}
	ma_tls_ctx_unref(&net->tls);
	free(net);
	core->net = NULL;
}

int ma_net_reload_tls(struct ma_core *core, char **error_r)
{
	struct ma_net *net = core->net;
	struct ma_tls_ctx *ctx;

	*error_r = NULL;
	if (net == NULL || net->tls_section == NULL)
		return 0;
	/* The config tree is immutable, so a reload re-reads the same file
	 * names: that is what cert renewal (same paths, new files) needs. */
	ctx = ma_tls_ctx_load(net->tls_section, error_r);
	if (ctx == NULL)
		return -1;
	ma_tls_ctx_unref(&net->tls);
	net->tls = ctx;
	ma_info("TLS certificates reloaded");
	return 0;
}

size_t ma_net_describe(const struct ma_core *core, char *buf, size_t size)
{
	const struct ma_net *net = core->net;
	size_t pos = 0;

	if (size == 0)
		return 0;
	buf[0] = '\0';
	for (unsigned i = 0; net != NULL && i < net->n_socks && pos < size; i++) {
		int n = snprintf(buf + pos, size - pos, "%s%s (%s)",
				 i > 0 ? ", " : "", net->socks[i]->addr_text,
				 net->socks[i]->listener->name);
		if (n < 0)
			break;
		pos += (size_t)n;
	}
	return pos < size ? pos : size - 1;
}
