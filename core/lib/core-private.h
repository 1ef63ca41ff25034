/*
 * core-private.h - what the parts of libmailaccess (and the two programs
 * built on it) share with each other and never with plugins. Not installed.
 *
 * Owners: core.c (base: config, plugins), conn.c/listener.c/tls.c (network),
 * auth.c/sasl.c/threadpool.c (auth), store.c/store-kv.c (store).
 */
#ifndef MA_CORE_PRIVATE_H
#define MA_CORE_PRIVATE_H

#include <mailaccess/mailaccess.h>

#include <sys/types.h>

struct ma_threadpool;
struct ma_auth_state;
struct ma_changebus;
struct ma_net;
struct ma_bus_ipc;

struct ma_core {
	struct ma_config *config;
	const char *config_path;
	unsigned flags;			/* enum ma_core_flags */
	struct ev_loop *loop;
	char *plugin_dir;
	char *state_dir;

	struct ma_loaded_plugin **plugins;	/* every loaded plugin */
	unsigned n_plugins;
	/* Auth sources in config order (subset of plugins; same plugin may
	 * not appear twice). */
	struct ma_loaded_plugin **auth_sources;
	unsigned n_auth_sources;
	struct ma_loaded_plugin *store_plugin;

	struct ma_store *store;		/* store.c */
	struct ma_auth_state *auth;	/* auth.c */
	struct ma_changebus *bus;	/* store.c */
	struct ma_net *net;		/* listener.c: listeners, conns, TLS creds */
	struct ma_bus_ipc *bus_ipc;	/* changebus-ipc.c */
	struct ma_threadpool *pool;	/* threadpool.c; created by auth.c */

	unsigned next_slot;
};

/* ---- store.c ---- */
/* Creates the configured store from the loaded store plugin (its ctx from
 * init()); kv backends are wrapped by store-kv.c. */
struct ma_store *ma_store_create(struct ma_core *core,
				 struct ma_loaded_plugin *backend,
				 char **error_r);
void ma_store_destroy(struct ma_store **store);
void ma_changebus_init(struct ma_core *core);
void ma_changebus_deinit(struct ma_core *core);
/* Deliver to this process's subscribers only (what arrives from other
 * processes); ma_changebus_publish() does this plus the send below. */
void ma_changebus_publish_local(struct ma_core *core, const char *user,
				const char *mailbox);

/* ---- changebus-ipc.c: the bus between processes ---- */
/* Bind <state_dir>/bus/<pid>.sock and feed it into the local bus (daemon
 * processes, after privileges are dropped). */
int ma_changebus_ipc_listen(struct ma_core *core, char **error_r);
void ma_changebus_ipc_close(struct ma_core *core);
/* Send (user, mailbox) to every other listening process. Any thread. */
void ma_changebus_ipc_send(struct ma_core *core, const char *user,
			   const char *mailbox);
/* The master, when a worker died: remove that pid's socket file. */
void ma_changebus_ipc_forget(struct ma_core *core, pid_t pid);

/* ---- store-kv.c: the mail level on top of a kv table ---- */
const struct ma_store_ops *ma_store_kv_mail_ops(void);
/* The ctx to pass to ma_store_kv_mail_ops()'s user_open(). */
void *ma_store_kv_ctx_create(const struct ma_kv_ops *kv, void *kv_ctx);
void ma_store_kv_ctx_destroy(void *ctx);

/* ---- auth.c (also starts the thread pool) ---- */
int ma_auth_init(struct ma_core *core, char **error_r);
void ma_auth_deinit(struct ma_core *core);
/* The process's thread pool, started on first use (threads do not survive
 * fork, so it is made by the process that uses it, on core->loop). Loop
 * thread only. */
struct ma_threadpool *ma_auth_pool(struct ma_core *core);
/* The conn slot sasl.c keeps its one exchange object in (reused by every
 * AUTH on a conn, so repeated AUTH commands do not grow the conn arena). */
unsigned ma_auth_sasl_slot(struct ma_core *core);

/* ---- authd.c: the auth process (password checks, failure table) and the
 * anvil (server-wide counts: connections per IP and in total, sessions per
 * user). The master binds the socket; the auth process serves it; workers
 * connect to it. Without an auth process (workers = 0, mailaccessctl,
 * unit tests) auth.c checks in-process and the counts are per process. */
/* Master, before forking anything: bind <state_dir>/auth.sock
 * (SOCK_SEQPACKET, mode 0600, chowned to uid/gid unless uid is (uid_t)-1)
 * and listen. Returns the listening fd, which the master keeps open across
 * auth process restarts, or -1 with *error_r. */
int ma_authd_listen(struct ma_core *core, uid_t uid, gid_t gid, char **error_r);
/* In the forked auth process (still root, for PAM/shadow): serve workers
 * on listen_fd with core->loop until SIGTERM. Returns the exit code. */
int ma_authd_run(struct ma_core *core, int listen_fd);
/* In a worker, after fork + privilege drop, before ma_net_start(): use the
 * auth process for checks, failure tables and the server-wide counts;
 * (re)connects as needed. */
int ma_auth_use_authd(struct ma_core *core, char **error_r);
/* The anvil, conn side (conn.c). A new conn asks before the protocol
 * greets: 1 admitted now, -1 refused now (logged with the limit's name;
 * close it), 0 asked the auth process: ma_conn_admitted() follows from the
 * loop unless the conn closed. *ref_r (NULL if nothing is counted) goes
 * back to ma_auth_conn_release() when the conn is finalized. count_ip:
 * counts against max_connections_per_ip (not for UNIX socket peers). */
struct ma_anvil_ref;
int ma_auth_conn_admit(struct ma_conn *conn, const unsigned char ip_key[16],
		       bool count_ip, struct ma_anvil_ref **ref_r);
void ma_auth_conn_release(struct ma_core *core, struct ma_anvil_ref **ref);
/* For tests and stats: connected to the auth process now; conns this
 * process counts itself (in-process anvil). */
bool ma_auth_authd_connected(const struct ma_core *core);
unsigned ma_auth_local_conn_count(const struct ma_core *core);
/* limits.commands_per_second (0 = off), read by ma_auth_init(). */
unsigned ma_auth_commands_per_second(const struct ma_core *core);
/* conn.c, for auth.c: the admission answer; the conn's anvil handle (the
 * session of a login is counted on it); the protocol's name for logs. */
void ma_conn_admitted(struct ma_conn *conn, bool ok);
struct ma_anvil_ref *ma_conn_anvil_ref(const struct ma_conn *conn);
const char *ma_conn_protocol_name(const struct ma_conn *conn);

/* ---- threadpool.c ---- */
/* work() runs on a pool thread; done() runs afterwards on the loop. */
struct ma_threadpool *ma_threadpool_create(struct ev_loop *loop,
					   unsigned threads);
void ma_threadpool_submit(struct ma_threadpool *pool,
			  void (*work)(void *ctx), void (*done)(void *ctx),
			  void *ctx);
/* Runs queued jobs to the end, joins the threads, then runs the pending
 * done() callbacks on the calling (loop) thread. */
void ma_threadpool_destroy(struct ma_threadpool **pool);
/* Like submit, but refuses (-1, nothing queued, no callback) when more than
 * max_pending jobs wait for a thread: the caller answers TEMPFAIL. */
int ma_threadpool_try_submit(struct ma_threadpool *pool,
			     void (*work)(void *ctx), void (*done)(void *ctx),
			     void *ctx);
/* Bound for try_submit (default 1024). */
void ma_threadpool_set_max_pending(struct ma_threadpool *pool, unsigned max);

/* ---- conn.c / listener.c / tls.c ---- */
/* Reads `listener`, `tls` and `limits` sections, binds sockets (may need
 * root, before privileges are dropped). */
int ma_net_init(struct ma_core *core, char **error_r);
/* Starts accepting on the core's loop. */
int ma_net_start(struct ma_core *core, char **error_r);
/* Stops accepting; asks every conn to end politely (on_shutdown line). */
void ma_net_shutdown(struct ma_core *core);
/* Number of open connections. */
unsigned ma_net_conn_count(const struct ma_core *core);
/* Frees listeners, conns, TLS credentials. */
void ma_net_deinit(struct ma_core *core);
/* Reload TLS certificates (SIGHUP). */
int ma_net_reload_tls(struct ma_core *core, char **error_r);
/* Top-level `workers`, checked by ma_net_init(): "auto" (default) is the
 * number of online CPUs (1..64), 0 is the single-process mode. */
unsigned ma_net_workers(const struct ma_core *core);
/* Closes the listening sockets at once (a draining worker, a worker whose
 * master died, the auth process); open conns go on. Idempotent. */
void ma_net_close_listeners(struct ma_core *core);
/* In a child process: the master owns the UNIX socket files, so this
 * process's deinit must never unlink them. */
void ma_net_disown_paths(struct ma_core *core);
/* Master reload (SIGHUP). ma_net_take_sockets() moves the bound listening
 * sockets out of a core's net (before that core is destroyed);
 * ma_net_init_inherit() is ma_net_init() that dup()s a socket from `old`
 * whose address (or UNIX path) matches instead of binding a new one;
 * ma_net_socks_free() closes what is left of `old`, unlinking the files of
 * dropped UNIX listeners and handing the others to committed_core's net
 * (NULL: nothing to hand over, e.g. at exit). After a failed
 * ma_net_init_inherit() keep `old` for the next try. */
struct ma_net_socks;
struct ma_net_socks *ma_net_take_sockets(struct ma_core *core);
int ma_net_init_inherit(struct ma_core *core, struct ma_net_socks *old,
			char **error_r);
void ma_net_socks_free(struct ma_net_socks **old, struct ma_core *committed_core);

/* Keep a conn alive across an async operation. After close the conn is
 * no longer usable (ma_conn_is_closed()) but its memory stays until the
 * last unref. */
void ma_conn_ref(struct ma_conn *conn);
void ma_conn_unref(struct ma_conn *conn);
bool ma_conn_is_closed(const struct ma_conn *conn);
/* Arm a one-shot timer on the conn's loop (auth failure delay); fires
 * cb unless the conn closed first. */
void ma_conn_after(struct ma_conn *conn, double seconds,
		   void (*cb)(struct ma_conn *conn, void *ctx), void *ctx);

#endif
