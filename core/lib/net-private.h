/*
 * net-private.h - what listener.c, conn.c and tls.c share: the listener
 * and connection structs, the per-process network state (struct ma_net)
 * and the TLS context. Never seen by plugins or by the rest of the core
 * (they use conn.h and the ma_net_* functions in core-private.h).
 */
#ifndef MA_NET_PRIVATE_H
#define MA_NET_PRIVATE_H

#include <ev.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "core-private.h"

/* Flush bound after ma_conn_close(): a client that does not read its
 * final reply does not keep the fd for longer than this. */
#define MA_CONN_CLOSE_FLUSH_SECS 5.0
/* Shutdown is shorter: the daemon is waiting for us. */
#define MA_CONN_SHUTDOWN_FLUSH_SECS 2.0
/* A TLS handshake must finish within this (or the idle timeout if that
 * is shorter): half-open handshakes are a cheap way to hold slots. */
#define MA_TLS_HANDSHAKE_SECS 30.0
/* Longest session id we hand out (base32 chars + NUL). */
#define MA_SID_LEN 13
/* Buckets of the per-IP connection count table. */
#define MA_NET_IP_BUCKETS 1024

/* The functions below are shared by conn.c, listener.c and tls.c only.
 * They match the ma_* export pattern of libmailaccess.map, so hide them
 * explicitly: plugins must not call them. ma_net_describe() is the one
 * the daemon uses and stays visible. */
#pragma GCC visibility push(hidden)

enum ma_tls_mode {
	MA_TLS_NONE = 0,
	MA_TLS_STARTTLS,
	MA_TLS_IMPLICIT,
};

/* ---- tls.c ---- */

/* One loaded `tls { }` section. Refcounted: a SIGHUP reload swaps in a new
 * one while running sessions keep the credentials they started with. */
struct ma_tls_domain {
	char *name;	/* lowercase; "*.example.org" matches one label */
	gnutls_certificate_credentials_t creds;
};

struct ma_tls_ctx {
	unsigned refcount;
	gnutls_certificate_credentials_t creds;	/* default (no/unknown SNI) */
	gnutls_priority_t priority;
	gnutls_dh_params_t dh;
	struct ma_tls_domain *domains;
	unsigned n_domains;
};

/* Loads the `tls` section. NULL with *error_r (malloc'd) on failure. */
struct ma_tls_ctx *ma_tls_ctx_load(const struct ma_config_section *tls,
				   char **error_r);
void ma_tls_ctx_ref(struct ma_tls_ctx *ctx);
void ma_tls_ctx_unref(struct ma_tls_ctx **ctx);

struct ma_conn;
/* Creates the server session on conn->fd and starts the handshake.
 * -1 on failure (conn closed). */
int ma_tls_begin(struct ma_conn *conn);
/* Drives the handshake; 1 done, 0 needs I/O (watchers set), -1 error
 * (conn closing). */
int ma_tls_handshake_step(struct ma_conn *conn);
/* Like recv(2)/send(2) on the TLS session: >0 bytes, 0 EOF (recv only),
 * -1 with errno EAGAIN, or -2 fatal (already logged). */
ssize_t ma_tls_recv(struct ma_conn *conn, void *buf, size_t len);
ssize_t ma_tls_send(struct ma_conn *conn, const void *buf, size_t len);
/* Bytes gnutls has decrypted and buffered (the fd will not fire). */
size_t ma_tls_pending(struct ma_conn *conn);
/* Last gnutls operation waited to write (1) or to read (0). */
int ma_tls_direction(struct ma_conn *conn);
/* Best-effort close_notify, then frees the session. */
void ma_tls_end(struct ma_conn *conn, bool send_bye);

/* ---- listener.c ---- */

struct ma_listener;

struct ma_listen_sock {
	ev_io io;
	int fd;
	struct ma_listener *listener;
	char *addr_text;	/* "127.0.0.1:110", "[::1]:110", or a UNIX path */
	char *unix_path;	/* UNIX socket: unlinked at deinit if still ours */
	dev_t unix_dev;
	ino_t unix_ino;
	/* Unlink unix_path at deinit. False in child processes (the master
	 * owns the file) and for a socket inherited at a reload until the
	 * new generation is committed (ma_net_socks_free). */
	bool owns_path;
	bool inherited;		/* in a ma_net_socks: dup()ed by the new net */
};

/* Bound sockets handed from one generation to the next (master, SIGHUP). */
struct ma_net_socks {
	struct ma_listen_sock **socks;
	unsigned n;
};

struct ma_listener {
	struct ma_net *net;
	char *name;
	const char *protocol;
	const struct ma_protocol_ops *ops;
	const struct ma_config_section *proto_config;
	enum ma_tls_mode tls;
	bool allow_plaintext_auth;
};

struct ma_ip_count {
	struct ma_ip_count *next;
	unsigned char addr[16];
	unsigned count;
};

struct ma_net {
	struct ma_core *core;
	struct ev_loop *loop;

	struct ma_listener **listeners;
	unsigned n_listeners;
	struct ma_listen_sock **socks;
	unsigned n_socks;
	bool started, shutting_down;
	bool listeners_closed;	/* ma_net_close_listeners(): never again */
	unsigned workers;	/* top-level `workers`, resolved (0 = single) */
	struct ma_net_socks *inherit;	/* during ma_net_init_inherit() */
	ev_timer accept_retry;	/* after EMFILE: pause accepting briefly */

	/* limits */
	unsigned max_connections;
	unsigned max_connections_per_ip;
	double idle_timeout;
	size_t max_line;
	size_t output_high;	/* output_buffer: stop producing above */
	size_t output_low;	/* high / 4: on_output_drained below */
	size_t output_max;	/* hard cap: 4 x high */

	struct ma_tls_ctx *tls;
	const struct ma_config_section *tls_section;

	/* open conns (not yet finalized) */
	struct ma_conn *conns;
	unsigned n_conns;
	struct ma_ip_count *ip_buckets[MA_NET_IP_BUCKETS];

	/* conns with work for the next loop turn */
	struct ma_conn *dirty;
	ev_prepare prepare;
	ev_idle idle;		/* keeps the loop spinning while dirty */

	/* refusal logging is rate limited to one line per second */
	double refuse_log_at;
	unsigned refuse_suppressed;
};

/* ---- conn.c ---- */

struct ma_conn_timer {
	ev_timer timer;
	struct ma_conn_timer *next, *prev;
	struct ma_conn *conn;
	void (*cb)(struct ma_conn *conn, void *ctx);
	void *ctx;
};

enum ma_tls_state {
	MA_CONN_TLS_OFF = 0,
	MA_CONN_TLS_WAIT_FLUSH,	/* STARTTLS: flushing the plaintext reply */
	MA_CONN_TLS_HANDSHAKE,
	MA_CONN_TLS_ON,
};

struct ma_conn {
	struct ma_net *net;
	struct ma_listener *listener;
	const struct ma_protocol_ops *ops;
	struct ma_conn *next, *prev;		/* net->conns */
	struct ma_conn *dirty_next;
	unsigned refcount;

	int fd;
	ev_io rio, wio;
	ev_timer timer;		/* idle, handshake and close-flush deadline */
	double last_activity, started, hs_started, close_started;
	double idle_timeout;	/* ma_conn_set_idle_timeout(); 0 = the listener's */
	struct ma_conn_timer *timers;	/* ma_conn_after() */

	struct ma_arena *arena;
	struct ma_buf in, out;
	uint64_t bytes_in, bytes_out;

	char sid[MA_SID_LEN];
	char remote_ip[INET6_ADDRSTRLEN];
	char local_ip[INET6_ADDRSTRLEN];
	unsigned remote_port, local_port;
	unsigned char ip_key[16];
	bool remote_loopback, local_loopback;

	void *session;
	void **slots;
	unsigned n_slots;
	char *user;
	char *summary;

	/* TLS */
	enum ma_tls_state tls_state;
	gnutls_session_t tls;
	struct ma_tls_ctx *tls_ctx;
	char *sni;
	size_t tls_send_pending;	/* size of a send that got EAGAIN */

	/* state */
	bool dirty;
	bool connected;		/* on_connect was called */
	bool paused;		/* by the plugin */
	bool blocked;		/* output over high-water */
	bool want_drain;
	bool input_again;	/* deliver buffered input next turn */
	bool read_again;	/* TLS has buffered records to read */
	bool read_eof;		/* client half-closed; input still buffered */
	bool closing;		/* ma_conn_close() done, flushing */
	bool finalized;		/* fd closed, on_close called */
	bool write_failed;
	bool in_flush;
	enum ma_close_reason close_reason;
	char *close_text;

	/* limits (conn.c + auth.c) */
	struct ma_anvil_ref *anvil;	/* counted by the anvil; NULL if not */
	bool admit_wait;	/* waiting for the anvil's answer: no I/O */
	bool throttled;		/* command bucket empty: input paused */
	bool throttle_logged;	/* one log line per session */
	bool bucket_init;
	double tokens, tokens_at;	/* commands_per_second bucket */
};

/* Accepted socket -> conn (listener.c calls it). */
struct ma_conn *ma_conn_create(struct ma_listener *l, int fd,
			       const struct sockaddr_storage *remote);
void ma_conn_close_with(struct ma_conn *conn, enum ma_close_reason reason,
			const char *text);
/* Closes at once: no flush (shutdown deadline, deinit). */
void ma_conn_finalize(struct ma_conn *conn);
/* Recomputes which watchers should run. */
void ma_conn_update_io(struct ma_conn *conn);
/* Handshake done: implicit -> on_connect, STARTTLS -> on_tls_ready. */
void ma_conn_tls_ready(struct ma_conn *conn);
void ma_conn_mark_dirty(struct ma_conn *conn);
void ma_net_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents);
void ma_net_idle_cb(struct ev_loop *loop, ev_idle *w, int revents);

/* listener.c: per-IP counting */
void ma_net_ip_release(struct ma_net *net, const unsigned char key[16]);

#pragma GCC visibility pop

/* listener.c: "127.0.0.1:110 (pop3), ..." for the daemon's start line. */
size_t ma_net_describe(const struct ma_core *core, char *buf, size_t size);

#endif
