/*
 * auth.c - the auth framework: runs the configured auth sources' verify()
 * on the thread pool, slows down and locks out repeated failures, counts
 * connections and sessions (the anvil), and calls the protocol back on the
 * loop. Two modes, one logic:
 * - in-process (workers = 0, mailaccessctl, unit tests): the check engine
 *   below and the anvil run in this process;
 * - with an auth process (ma_auth_use_authd(), in a worker): requests go
 *   over <state_dir>/auth.sock to authd.c, which runs the same check
 *   engine (ma_auth_check_start()) and the same anvil; the reply carries
 *   the status, the canonical user and the delay that this process applies
 *   with its own timer before calling the protocol back.
 *
 * Owns: the check engine and the failure table (per remote IP and per
 * user), the auth thread pool's creation, the worker side of the auth
 * socket (non-blocking, requests matched by id, bounded in flight, backoff
 * reconnect, re-registration of live conns and sessions), the `limits`
 * keys auth_fail_delay, auth_fail_max_delay, auth_fail_lockout,
 * auth_fail_window, auth_threads, auth_max_pending, max_sessions_per_user,
 * commands_per_second (read here, used by conn.c), and the synchronous
 * helpers mailaccessctl uses.
 *
 * Every request holds a conn ref from ma_auth_verify() to its callback. The
 * callback (and any failure delay) runs from our own ev_timer rather than
 * ma_conn_after(): that timer fires even when the conn closed in between,
 * so the request is always freed and the ref always dropped; we just skip
 * the protocol's callback then (conn.h: never called for a closed conn).
 * The failure table and the anvil are touched only on the loop thread, so
 * they need no lock.
 */
#include "authd-private.h"

#include <errno.h>
#include <ev.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Longest password we pass to a source: RFC 4616 asks for 255 octets;
 * passphrases get room, a megabyte of junk does not. */
#define AUTH_PASSWORD_MAX AUTHD_PASSWORD_MAX
/* Failure table: fixed size so a spray of random user names cannot grow
 * memory; an entry is found within AUTH_FAIL_PROBES slots of its hash, and
 * the least recently failed of those is evicted when all are in use. */
#define AUTH_FAIL_SLOTS 4096
#define AUTH_FAIL_PROBES 8
#define AUTH_FAIL_KEY_MAX (MA_AUTH_USER_MAX + 8)
/* Requests waiting for the auth process, per worker (a power of 2: the id's
 * low bits are the slot). Beyond it: logins TEMPFAIL, new conns are
 * admitted and counted unchecked. */
#define AUTHD_INFLIGHT_MAX 4096
/* Reconnect backoff to the auth process. */
#define AUTHD_RECONNECT_MIN 0.05
#define AUTHD_RECONNECT_MAX 5.0

struct auth_fail_entry {
	char key[AUTH_FAIL_KEY_MAX];	/* "ip:..." or "user:..."; "" = free */
	unsigned count;
	double last;			/* ev_now() of the last failure */
};

/* One check through the engine (in either process). */
struct auth_check {
	struct ma_auth_state *state;
	auth_check_done_fn *done;
	void *done_ctx;
	bool lookup;
	enum ma_auth_status status;
	double delay;
	const char *source;		/* plugin name that answered */
	char user[MA_AUTH_USER_MAX];
	char user_r[MA_AUTH_USER_MAX];
	char password[AUTH_PASSWORD_MAX + 1];
	char ip[AUTHD_IP_MAX];
	char sid[AUTHD_SID_MAX];
	char protocol[AUTHD_PROTO_NAME_MAX];
};

/* A conn counted by the anvil (conn.c keeps the pointer). */
struct ma_anvil_ref {
	struct ma_anvil_ref *prev, *next;	/* state's refs */
	uint64_t id;
	unsigned char ip_key[16];
	bool count_ip;
	char ip[AUTHD_IP_MAX];
	char sid[AUTHD_SID_MAX];
	char user[MA_AUTH_USER_MAX];	/* logged-in session, "" if none */
};

enum auth_req_kind { REQ_VERIFY, REQ_LOOKUP, REQ_ADMIT };

struct auth_request {
	struct auth_request *prev, *next;	/* auth state's live list */
	struct ma_auth_state *state;
	struct ma_conn *conn;
	enum auth_req_kind kind;
	ma_auth_callback *cb;
	void *cb_ctx;
	ev_timer timer;
	bool timer_armed;
	uint32_t authd_id;		/* in flight at the auth process; 0 = not */

	enum ma_auth_status status;
	char user[MA_AUTH_USER_MAX];
	char user_r[MA_AUTH_USER_MAX];
};

/* A message waiting for the auth socket to take it. */
struct authd_out {
	struct authd_out *next;
	size_t len;
	unsigned char data[];
};

struct ma_auth_state {
	struct ma_core *core;
	double fail_delay, fail_max_delay, fail_window;
	unsigned fail_lockout;
	struct auth_request *requests;	/* every live request */
	struct auth_fail_entry *fails;	/* AUTH_FAIL_SLOTS */
	unsigned threads, max_pending;	/* for the pool */
	pid_t pool_pid;			/* process that made core->pool */
	unsigned sasl_slot;		/* sasl.c's per-conn object ... */
	bool have_sasl_slot;		/* ... allocated on first AUTH */
	unsigned commands_per_second;	/* conn.c's bucket; 0 = off */

	/* the anvil: in-process (local_client), or the auth process's */
	struct ma_anvil *anvil;
	struct ma_anvil_client *local_client;
	struct ma_anvil_ref *refs;	/* conns counted by this process */
	unsigned n_refs;
	uint64_t next_conn_id;
	double limit_log_at[AUTHD_LIMIT_COUNT];
	unsigned limit_suppressed[AUTHD_LIMIT_COUNT];

	/* worker side of the auth socket */
	bool use_authd;
	char *authd_path;
	int authd_fd;
	ev_io authd_rio, authd_wio;
	ev_timer authd_retry;
	double authd_backoff;
	bool authd_down_logged;
	struct authd_out *out_head, *out_tail;
	unsigned n_out;
	struct auth_request *inflight[AUTHD_INFLIGHT_MAX];
	unsigned n_inflight;
	uint32_t next_gen;
};

/* ---------- helpers ---------- */

/* A copy safe for one log line: no control characters (a user name comes
 * from the client), bounded. */
static const char *auth_log_safe(const char *s, char *buf, size_t size)
{
	size_t i = 0;
	for (; s[i] != '\0' && i + 1 < size; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[i] = (c < 0x20 || c == 0x7f || c == ' ') ? '?' : (char)c;
	}
	buf[i] = '\0';
	return buf;
}

static const struct ma_auth_ops *auth_source_ops(const struct ma_loaded_plugin *p)
{
	const struct ma_auth_ops *ops = p->desc->ops;
	if (ops == NULL || ops->struct_size <
	    offsetof(struct ma_auth_ops, lookup) + sizeof(ops->lookup))
		return NULL;
	return ops;
}

/* Runs the sources in order. Any thread. */
static enum ma_auth_status
auth_run_sources(struct ma_core *core, const char *user, const char *password,
		 bool verify, char *user_r, const char **source_r)
{
	enum ma_auth_status st = MA_AUTH_FAIL;
	bool any = false;

	*source_r = "-";
	if (user[0] == '\0')
		return MA_AUTH_FAIL;
	for (unsigned i = 0; i < core->n_auth_sources; i++) {
		const struct ma_loaded_plugin *p = core->auth_sources[i];
		const struct ma_auth_ops *ops = auth_source_ops(p);
		if (ops == NULL)
			continue;
		user_r[0] = '\0';
		if (verify)
			st = ops->verify == NULL ? MA_AUTH_UNKNOWN_USER :
				ops->verify(p->ctx, user, password, user_r);
		else
			st = ops->lookup == NULL ? MA_AUTH_UNKNOWN_USER :
				ops->lookup(p->ctx, user, user_r);
		any = true;
		*source_r = p->desc->name;
		if (st != MA_AUTH_UNKNOWN_USER)
			break;
	}
	if (!any)
		return MA_AUTH_TEMPFAIL;	/* nothing configured */
	if (st == MA_AUTH_UNKNOWN_USER || st == MA_AUTH_DELAYED)
		st = MA_AUTH_FAIL;
	if (st == MA_AUTH_OK) {
		user_r[MA_AUTH_USER_MAX - 1] = '\0';
		if (user_r[0] == '\0')
			snprintf(user_r, MA_AUTH_USER_MAX, "%s", user);
	}
	return st;
}

/* ---------- failure table (loop thread only) ---------- */

static uint32_t auth_hash(const char *s)
{
	uint32_t h = 2166136261u;	/* FNV-1a */
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

static void auth_fail_key(char *key, const char *kind, const char *value)
{
	size_t n = (size_t)snprintf(key, AUTH_FAIL_KEY_MAX, "%s:%s", kind, value);
	if (n >= AUTH_FAIL_KEY_MAX)
		n = AUTH_FAIL_KEY_MAX - 1;
	/* User names compare case-insensitively for counting, so "Bob" and
	 * "bob" share one counter. */
	for (size_t i = 0; i < n; i++)
		if (key[i] >= 'A' && key[i] <= 'Z')
			key[i] = (char)(key[i] - 'A' + 'a');
}

static bool auth_fail_live(const struct ma_auth_state *st,
			   const struct auth_fail_entry *e, double now)
{
	return e->key[0] != '\0' && e->count > 0 &&
		now - e->last <= st->fail_window;
}

/* Finds key; with create, makes room for it. NULL if absent. */
static struct auth_fail_entry *
auth_fail_find(struct ma_auth_state *st, const char *key, double now,
	       bool create)
{
	uint32_t h = auth_hash(key);
	struct auth_fail_entry *victim = NULL;

	for (unsigned i = 0; i < AUTH_FAIL_PROBES; i++) {
		struct auth_fail_entry *e =
			&st->fails[(h + i) % AUTH_FAIL_SLOTS];
		if (strcmp(e->key, key) == 0) {
			if (!auth_fail_live(st, e, now))
				e->count = 0;	/* expired */
			return e;
		}
		if (!auth_fail_live(st, e, now)) {
			if (victim == NULL || auth_fail_live(st, victim, now))
				victim = e;
		} else if (victim == NULL ||
			   (auth_fail_live(st, victim, now) &&
			    e->last < victim->last)) {
			victim = e;
		}
	}
	if (!create)
		return NULL;
	snprintf(victim->key, sizeof(victim->key), "%s", key);
	victim->count = 0;
	victim->last = now;
	return victim;
}

static unsigned auth_fail_count(struct ma_auth_state *st, const char *kind,
				const char *value, double now)
{
	char key[AUTH_FAIL_KEY_MAX];
	auth_fail_key(key, kind, value);
	struct auth_fail_entry *e = auth_fail_find(st, key, now, false);
	return e == NULL ? 0 : e->count;
}

static unsigned auth_fail_record(struct ma_auth_state *st, const char *kind,
				 const char *value, double now)
{
	char key[AUTH_FAIL_KEY_MAX];
	auth_fail_key(key, kind, value);
	struct auth_fail_entry *e = auth_fail_find(st, key, now, true);
	if (e->count < 1000000)
		e->count++;
	e->last = now;
	return e->count;
}

static void auth_fail_clear(struct ma_auth_state *st, const char *kind,
			    const char *value, double now)
{
	char key[AUTH_FAIL_KEY_MAX];
	auth_fail_key(key, kind, value);
	struct auth_fail_entry *e = auth_fail_find(st, key, now, false);
	if (e != NULL) {
		e->count = 0;
		e->key[0] = '\0';
	}
}

/* min(max, delay * 2^(n-1)) */
static double auth_fail_delay(const struct ma_auth_state *st, unsigned n)
{
	double d = st->fail_delay;
	for (unsigned i = 1; i < n && d < st->fail_max_delay; i++)
		d *= 2;
	return d > st->fail_max_delay ? st->fail_max_delay : d;
}

/* ---------- the pool, the SASL slot ---------- */

unsigned ma_auth_sasl_slot(struct ma_core *core)
{
	/* No auth state: an impossible slot; sasl.c then allocates anew. */
	if (core == NULL || core->auth == NULL)
		return UINT32_MAX;
	/* Lazily, so plugins' slot numbers do not depend on us. */
	if (!core->auth->have_sasl_slot) {
		core->auth->sasl_slot = ma_core_alloc_slot(core);
		core->auth->have_sasl_slot = true;
	}
	return core->auth->sasl_slot;
}

struct ma_threadpool *ma_auth_pool(struct ma_core *core)
{
	struct ma_auth_state *st = core->auth;
	if (core->pool != NULL && st->pool_pid != getpid()) {
		/* Forked after the pool started: its threads are gone in this
		 * process. Abandon it (its memory is the parent's copy). */
		core->pool = NULL;
	}
	if (core->pool == NULL) {
		core->pool = ma_threadpool_create(core->loop, st->threads);
		ma_threadpool_set_max_pending(core->pool, st->max_pending);
		st->pool_pid = getpid();
	}
	return core->pool;
}

void ma_auth_pool_stop(struct ma_core *core)
{
	struct ma_auth_state *st = core->auth;
	/* A pool inherited over fork() has no threads here: leave it. */
	if (st != NULL && core->pool != NULL && st->pool_pid != getpid())
		core->pool = NULL;
	ma_threadpool_destroy(&core->pool);
}

/* ---------- the check engine (both modes) ---------- */

static void auth_check_log(const struct auth_check *chk, int level,
			   const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void auth_check_log(const struct auth_check *chk, int level,
			   const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	if (!ma_log_enabled((enum ma_log_level)level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* The same prefix as ma_conn_log(), so one grep finds a session's
	 * lines in the worker's and the auth process's output. */
	ma_log((enum ma_log_level)level, "sid=%s ip=%s user=-: %s",
	       chk->sid[0] != '\0' ? chk->sid : "-", chk->ip, msg);
}

static void auth_check_finish(struct auth_check *chk,
			      enum ma_auth_status status, double delay)
{
	chk->status = status;
	chk->delay = delay;
	ma_wipe(chk->password, sizeof(chk->password));
	if (status != MA_AUTH_OK)
		chk->user_r[0] = '\0';
	chk->done(chk, chk->done_ctx);
	ma_wipe(chk, sizeof(*chk));
	free(chk);
}

static void auth_check_work(void *ctx)
{
	struct auth_check *chk = ctx;
	chk->status = auth_run_sources(chk->state->core, chk->user,
				       chk->lookup ? NULL : chk->password,
				       !chk->lookup, chk->user_r, &chk->source);
	ma_wipe(chk->password, sizeof(chk->password));
}

/* Loop thread: the sources answered (or the input was invalid). */
static void auth_check_result(void *ctx)
{
	struct auth_check *chk = ctx;
	struct ma_auth_state *st = chk->state;
	double now = ev_now(st->core->loop);
	char ubuf[MA_AUTH_USER_MAX];

	if (chk->lookup) {
		/* Delivery lookups: no failure table, no delay. */
		if (chk->status == MA_AUTH_TEMPFAIL)
			auth_check_log(chk, MA_LOG_WARNING,
				       "user lookup temporary failure user=%s source=%s",
				       auth_log_safe(chk->user, ubuf, sizeof(ubuf)),
				       chk->source);
		auth_check_finish(chk, chk->status == MA_AUTH_OK ||
				  chk->status == MA_AUTH_TEMPFAIL ? chk->status :
				  MA_AUTH_FAIL, 0);
		return;
	}
	switch (chk->status) {
	case MA_AUTH_OK:
		/* The user got in: forget their failures (the IP's stay, so
		 * one good account does not reset a spray from that IP). */
		auth_fail_clear(st, "user", chk->user, now);
		auth_check_log(chk, MA_LOG_INFO, "auth ok user=%s ip=%s source=%s proto=%s",
			       auth_log_safe(chk->user_r, ubuf, sizeof(ubuf)),
			       chk->ip, chk->source,
			       chk->protocol[0] != '\0' ? chk->protocol : "-");
		auth_check_finish(chk, MA_AUTH_OK, 0);
		return;
	case MA_AUTH_TEMPFAIL:
		auth_check_log(chk, MA_LOG_WARNING,
			       "auth temporary failure user=%s ip=%s source=%s",
			       auth_log_safe(chk->user, ubuf, sizeof(ubuf)),
			       chk->ip, chk->source);
		auth_check_finish(chk, MA_AUTH_TEMPFAIL, 0);
		return;
	default:
		break;
	}
	unsigned n_ip = auth_fail_record(st, "ip", chk->ip, now);
	unsigned n_user = auth_fail_record(st, "user", chk->user, now);
	unsigned n = n_ip > n_user ? n_ip : n_user;
	double delay = auth_fail_delay(st, n);
	auth_check_log(chk, MA_LOG_NOTICE,
		       "auth failed user=%s ip=%s proto=%s (%u failures, delay %gs)",
		       auth_log_safe(chk->user, ubuf, sizeof(ubuf)), chk->ip,
		       chk->protocol[0] != '\0' ? chk->protocol : "-", n, delay);
	auth_check_finish(chk, MA_AUTH_FAIL, delay);
}

static void auth_copy(char *dst, size_t size, const char *src)
{
	size_t n = src != NULL ? strnlen(src, size - 1) : 0;
	if (n > 0)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

void ma_auth_check_start(struct ma_core *core, bool lookup, const char *user,
			 const char *password, const char *ip, const char *sid,
			 const char *protocol, auth_check_done_fn *done,
			 void *ctx)
{
	struct ma_auth_state *st = core->auth;
	struct auth_check *chk = ma_malloc0(sizeof(*chk));
	size_t ulen = user != NULL ? strnlen(user, MA_AUTH_USER_MAX) : 0;
	size_t plen = password != NULL ? strnlen(password, AUTH_PASSWORD_MAX + 1) : 0;
	char ubuf[MA_AUTH_USER_MAX];

	chk->state = st;
	chk->done = done;
	chk->done_ctx = ctx;
	chk->lookup = lookup;
	chk->source = "-";
	auth_copy(chk->user, sizeof(chk->user), user);
	auth_copy(chk->ip, sizeof(chk->ip), ip != NULL && *ip != '\0' ? ip : "-");
	auth_copy(chk->sid, sizeof(chk->sid), sid);
	auth_copy(chk->protocol, sizeof(chk->protocol), protocol);

	if (lookup) {
		/* Names that cannot exist: answer without bothering a source. */
		if (ulen == 0 || ulen >= MA_AUTH_USER_MAX) {
			auth_check_finish(chk, MA_AUTH_FAIL, 0);
			return;
		}
	} else {
		double now = ev_now(core->loop);
		/* Lockout first: a locked-out client learns nothing about
		 * the password, and costs us no hashing. */
		unsigned n_ip = auth_fail_count(st, "ip", chk->ip, now);
		unsigned n_user = auth_fail_count(st, "user", chk->user, now);
		if (n_ip >= st->fail_lockout || n_user >= st->fail_lockout) {
			auth_check_log(chk, MA_LOG_NOTICE,
				       "auth refused: too many failures ip=%s user=%s (%u/%u)",
				       chk->ip,
				       auth_log_safe(chk->user, ubuf, sizeof(ubuf)),
				       n_ip, n_user);
			auth_check_finish(chk, MA_AUTH_DELAYED, st->fail_delay);
			return;
		}
		/* Over-long names and passwords can match nothing: count
		 * them as plain failures, without bothering a source. */
		if (ulen == 0 || ulen >= MA_AUTH_USER_MAX || plen == 0 ||
		    plen > AUTH_PASSWORD_MAX) {
			chk->status = MA_AUTH_FAIL;
			auth_check_result(chk);
			return;
		}
		memcpy(chk->password, password, plen);
	}
	if (ma_threadpool_try_submit(ma_auth_pool(core), auth_check_work,
				     auth_check_result, chk) < 0) {
		auth_check_log(chk, MA_LOG_WARNING, "%s temporary failure: too many pending checks ip=%s",
			       lookup ? "user lookup" : "auth", chk->ip);
		auth_check_finish(chk, MA_AUTH_TEMPFAIL, 0);
	}
}

enum ma_auth_status ma_auth_check_status(const struct auth_check *chk)
{
	return chk->status;
}

double ma_auth_check_delay(const struct auth_check *chk)
{
	return chk->delay;
}

const char *ma_auth_check_user(const struct auth_check *chk)
{
	return chk->user_r;
}

const char *ma_auth_check_source(const struct auth_check *chk)
{
	return chk->source;
}

struct ma_anvil *ma_auth_anvil(struct ma_core *core)
{
	return core->auth != NULL ? core->auth->anvil : NULL;
}

/* Connection refusals can come in floods: one line per limit per second,
 * with the number suppressed in between. Session refusals are per login
 * and always logged. */
void ma_auth_log_limit(const char *sid, const char *ip, const char *user,
		       enum authd_limit limit, unsigned count, unsigned max)
{
	static double next_at[AUTHD_LIMIT_COUNT];
	static unsigned suppressed[AUTHD_LIMIT_COUNT];
	char ubuf[MA_AUTH_USER_MAX];

	if (limit <= AUTHD_LIMIT_NONE || limit >= AUTHD_LIMIT_COUNT)
		return;
	if (limit != AUTHD_LIMIT_MAX_SESSIONS_PER_USER) {
		double now = ev_time();
		if (now < next_at[limit]) {
			suppressed[limit]++;
			return;
		}
		next_at[limit] = now + 1.0;
		/* "reason=NAME" as listener.c's per-process refusal says it. */
		ma_notice("sid=%s ip=%s user=-: connection refused reason=%s (%u of %u, server-wide)%s",
			  sid, ip, authd_limit_name(limit), count, max,
			  suppressed[limit] > 0 ? " (more refusals suppressed)" : "");
		suppressed[limit] = 0;
		return;
	}
	ma_notice("sid=%s ip=%s user=-: login refused: max_sessions_per_user reached "
		  "user=%s (%u of %u sessions), temporary failure",
		  sid, ip, auth_log_safe(user, ubuf, sizeof(ubuf)), count, max);
}

/* ---------- requests (the protocol side) ---------- */

static void authd_inflight_del(struct ma_auth_state *st,
			       struct auth_request *req);

static struct auth_request *auth_request_new(struct ma_conn *conn,
					     enum auth_req_kind kind,
					     ma_auth_callback *cb, void *ctx)
{
	struct ma_auth_state *st = ma_conn_core(conn)->auth;
	struct auth_request *req = ma_malloc0(sizeof(*req));

	req->state = st;
	req->conn = conn;
	ma_conn_ref(conn);
	req->kind = kind;
	req->cb = cb;
	req->cb_ctx = ctx;
	req->next = st->requests;
	if (st->requests != NULL)
		st->requests->prev = req;
	st->requests = req;
	return req;
}

static void auth_request_free(struct auth_request *req)
{
	struct ma_auth_state *st = req->state;
	if (req->timer_armed)
		ev_timer_stop(st->core->loop, &req->timer);
	if (req->authd_id != 0)
		authd_inflight_del(st, req);
	if (req->prev != NULL)
		req->prev->next = req->next;
	else
		st->requests = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
	ma_conn_unref(req->conn);
	free(req);
}

static void auth_deliver_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct auth_request *req = w->data;
	req->timer_armed = false;
	if (!ma_conn_is_closed(req->conn)) {
		if (req->kind == REQ_ADMIT)
			ma_conn_admitted(req->conn, req->status == MA_AUTH_OK);
		else
			req->cb(req->conn, req->status,
				req->status == MA_AUTH_OK ? req->user_r : NULL,
				req->cb_ctx);
	}
	auth_request_free(req);
}

/* Calls the protocol back after `delay` seconds (0: next loop turn). */
static void auth_finish(struct auth_request *req, enum ma_auth_status status,
			double delay)
{
	if (req->authd_id != 0)
		authd_inflight_del(req->state, req);
	req->status = status;
	if (status != MA_AUTH_OK)
		req->user_r[0] = '\0';
	if (req->timer_armed)
		ev_timer_stop(req->state->core->loop, &req->timer);
	ev_timer_init(&req->timer, auth_deliver_cb, delay > 0 ? delay : 0., 0.);
	req->timer.data = req;
	ev_timer_start(req->state->core->loop, &req->timer);
	req->timer_armed = true;
}

/* In-process: a login counts as a session of its user. */
static enum ma_auth_status auth_session_local(struct auth_request *req)
{
	struct ma_auth_state *st = req->state;
	struct ma_anvil_ref *ref = ma_conn_anvil_ref(req->conn);
	unsigned count, max;

	if (ref == NULL || st->local_client == NULL)
		return MA_AUTH_OK;
	enum authd_limit lim = ma_anvil_session_add(st->local_client, ref->id,
						    req->user_r, false,
						    &count, &max);
	if (lim != AUTHD_LIMIT_NONE) {
		ma_auth_log_limit(ref->sid, ref->ip, req->user_r, lim, count, max);
		return MA_AUTH_TEMPFAIL;
	}
	auth_copy(ref->user, sizeof(ref->user), req->user_r);
	return MA_AUTH_OK;
}

static void auth_local_done(struct auth_check *chk, void *ctx)
{
	struct auth_request *req = ctx;
	enum ma_auth_status status = chk->status;

	if (status == MA_AUTH_OK) {
		auth_copy(req->user_r, sizeof(req->user_r), chk->user_r);
		if (req->kind == REQ_VERIFY)
			status = auth_session_local(req);
	}
	auth_finish(req, status, chk->delay);
}

static void authd_check(struct auth_request *req, const char *user,
			const char *password);

static const char *auth_conn_protocol(struct ma_conn *conn)
{
	const char *p = ma_conn_protocol_name(conn);
	return p != NULL ? p : "-";
}

void ma_auth_verify(struct ma_conn *conn, const char *user,
		    const char *password, ma_auth_callback *cb, void *ctx)
{
	struct ma_core *core = ma_conn_core(conn);
	struct auth_request *req = auth_request_new(conn, REQ_VERIFY, cb, ctx);

	auth_copy(req->user, sizeof(req->user), user);
	if (core->auth->use_authd) {
		authd_check(req, user, password);
		return;
	}
	ma_auth_check_start(core, false, user, password, ma_conn_remote_ip(conn),
			    ma_conn_id(conn), auth_conn_protocol(conn),
			    auth_local_done, req);
}

void ma_auth_lookup(struct ma_conn *conn, const char *user,
		    ma_auth_callback *cb, void *ctx)
{
	struct ma_core *core = ma_conn_core(conn);
	struct auth_request *req = auth_request_new(conn, REQ_LOOKUP, cb, ctx);

	auth_copy(req->user, sizeof(req->user), user);
	if (core->auth->use_authd) {
		authd_check(req, user, NULL);
		return;
	}
	ma_auth_check_start(core, true, user, NULL, ma_conn_remote_ip(conn),
			    ma_conn_id(conn), auth_conn_protocol(conn),
			    auth_local_done, req);
}

/* ---------- worker side of the auth socket ---------- */

static void authd_disconnect(struct ma_auth_state *st, const char *why);
static void authd_schedule_retry(struct ma_auth_state *st);

/* Our watchers must not keep a worker's ev_run() alive at shutdown. */
static void authd_io_start(struct ma_auth_state *st, ev_io *w)
{
	if (ev_is_active(w))
		return;
	ev_io_start(st->core->loop, w);
	ev_unref(st->core->loop);
}

static void authd_io_stop(struct ma_auth_state *st, ev_io *w)
{
	if (!ev_is_active(w))
		return;
	ev_ref(st->core->loop);
	ev_io_stop(st->core->loop, w);
}

static uint32_t authd_inflight_add(struct ma_auth_state *st,
				   struct auth_request *req)
{
	for (unsigned i = 0; i < AUTHD_INFLIGHT_MAX; i++) {
		unsigned slot = (st->next_gen + i) % AUTHD_INFLIGHT_MAX;
		if (st->inflight[slot] != NULL)
			continue;
		uint32_t gen = ++st->next_gen;
		uint32_t id = (gen << 12) | slot;
		if (id == 0)
			id = (++st->next_gen << 12) | slot;
		st->inflight[slot] = req;
		st->n_inflight++;
		req->authd_id = id;
		return id;
	}
	return 0;
}

static void authd_inflight_del(struct ma_auth_state *st,
			       struct auth_request *req)
{
	unsigned slot = req->authd_id % AUTHD_INFLIGHT_MAX;
	if (st->inflight[slot] == req) {
		st->inflight[slot] = NULL;
		st->n_inflight--;
	}
	req->authd_id = 0;
}

static void authd_out_free(struct authd_out *o)
{
	ma_wipe(o->data, o->len);	/* may hold a password */
	free(o);
}

/* Queue bound: every request in flight, every counted conn twice
 * (re-registration of conn and session) and room for the deletes. */
static unsigned authd_out_max(const struct ma_auth_state *st)
{
	return AUTHD_INFLIGHT_MAX + 2 * st->n_refs + 1024;
}

/* Sends one message or queues it. -1: not sent and the connection is
 * gone (in-flight requests already answered). */
static int authd_send(struct ma_auth_state *st, const void *msg, size_t len)
{
	if (st->authd_fd < 0)
		return -1;
	if (st->out_head == NULL) {
		ssize_t n = send(st->authd_fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == (ssize_t)len)
			return 0;
		if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
			       errno != ENOBUFS && errno != EINTR)) {
			authd_disconnect(st, n >= 0 ? "short send" : strerror(errno));
			return -1;
		}
	}
	if (st->n_out >= authd_out_max(st)) {
		authd_disconnect(st, "send queue full (auth process not reading)");
		return -1;
	}
	struct authd_out *o = ma_malloc0(sizeof(*o) + len);
	o->len = len;
	memcpy(o->data, msg, len);
	if (st->out_tail != NULL)
		st->out_tail->next = o;
	else
		st->out_head = o;
	st->out_tail = o;
	st->n_out++;
	authd_io_start(st, &st->authd_wio);
	return 0;
}

static void authd_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ma_auth_state *st = w->data;

	(void)loop;
	(void)revents;
	while (st->out_head != NULL) {
		struct authd_out *o = st->out_head;
		ssize_t n = send(st->authd_fd, o->data, o->len,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
			      errno == ENOBUFS || errno == EINTR))
			return;
		if (n != (ssize_t)o->len) {
			authd_disconnect(st, n < 0 ? strerror(errno) : "short send");
			return;
		}
		st->out_head = o->next;
		if (st->out_head == NULL)
			st->out_tail = NULL;
		st->n_out--;
		authd_out_free(o);
	}
	authd_io_stop(st, &st->authd_wio);
}

static void authd_hdr_init(struct authd_hdr *hdr, unsigned type, uint32_t id)
{
	hdr->version = AUTHD_PROTO_VERSION;
	hdr->type = (uint16_t)type;
	hdr->id = id;
}

static void authd_conn_msg(struct authd_conn_req *m, unsigned type,
			   uint32_t id, const struct ma_anvil_ref *ref,
			   unsigned flags)
{
	memset(m, 0, sizeof(*m));
	authd_hdr_init(&m->hdr, type, id);
	m->conn_id = ref->id;
	m->flags = flags | (ref->count_ip ? AUTHD_CONN_COUNT_IP : 0);
	memcpy(m->ip_key, ref->ip_key, 16);
	auth_copy(m->ip, sizeof(m->ip), ref->ip);
	auth_copy(m->sid, sizeof(m->sid), ref->sid);
	if (type == AUTHD_SESSION_ADD)
		auth_copy(m->user, sizeof(m->user), ref->user);
}

static void authd_check(struct auth_request *req, const char *user,
			const char *password)
{
	struct ma_auth_state *st = req->state;
	struct ma_conn *conn = req->conn;
	bool lookup = req->kind == REQ_LOOKUP;

	if (st->authd_fd < 0) {
		ma_conn_log(conn, MA_LOG_WARNING,
			    "%s temporary failure: auth process unavailable",
			    lookup ? "user lookup" : "auth");
		auth_finish(req, MA_AUTH_TEMPFAIL, 0);
		return;
	}
	uint32_t id = authd_inflight_add(st, req);
	if (id == 0) {
		ma_conn_log(conn, MA_LOG_WARNING,
			    "%s temporary failure: %u requests already waiting for the auth process",
			    lookup ? "user lookup" : "auth", AUTHD_INFLIGHT_MAX);
		auth_finish(req, MA_AUTH_TEMPFAIL, 0);
		return;
	}
	struct authd_check_req *m = ma_malloc0(sizeof(*m));
	struct ma_anvil_ref *ref = ma_conn_anvil_ref(conn);
	size_t ulen = user != NULL ? strnlen(user, MA_AUTH_USER_MAX) : 0;
	size_t plen = password != NULL ? strnlen(password, AUTH_PASSWORD_MAX + 1) : 0;

	authd_hdr_init(&m->hdr, lookup ? AUTHD_LOOKUP : AUTHD_VERIFY, id);
	m->conn_id = ref != NULL ? ref->id : 0;
	auth_copy(m->user, sizeof(m->user), user);
	/* An over-long name or password cannot match: an empty password
	 * makes the auth process count it as a plain failure. */
	if (!lookup && ulen < MA_AUTH_USER_MAX && plen <= AUTH_PASSWORD_MAX &&
	    plen > 0)
		memcpy(m->password, password, plen);
	auth_copy(m->ip, sizeof(m->ip), ma_conn_remote_ip(conn));
	auth_copy(m->sid, sizeof(m->sid), ma_conn_id(conn));
	auth_copy(m->protocol, sizeof(m->protocol), auth_conn_protocol(conn));
	(void)authd_send(st, m, sizeof(*m));
	ma_wipe(m, sizeof(*m));
	free(m);
}

static void authd_handle_reply(struct ma_auth_state *st,
			       const struct authd_reply *r)
{
	unsigned slot = r->hdr.id % AUTHD_INFLIGHT_MAX;
	struct auth_request *req = st->inflight[slot];

	if (r->hdr.id == 0 || req == NULL || req->authd_id != r->hdr.id)
		return;		/* a re-registration, or a request freed */
	authd_inflight_del(st, req);
	struct ma_anvil_ref *ref = ma_conn_is_closed(req->conn) ? NULL :
		ma_conn_anvil_ref(req->conn);
	enum ma_auth_status status = (enum ma_auth_status)r->status;

	if (r->limit != AUTHD_LIMIT_NONE)
		ma_auth_log_limit(ma_conn_id(req->conn), ma_conn_remote_ip(req->conn),
				  r->user[0] != '\0' ? r->user : req->user,
				  (enum authd_limit)r->limit, r->count, r->max);
	switch (req->kind) {
	case REQ_ADMIT:
		auth_finish(req, status == MA_AUTH_OK ? MA_AUTH_OK : MA_AUTH_FAIL, 0);
		return;
	case REQ_VERIFY:
		if (status == MA_AUTH_OK && ref != NULL)
			auth_copy(ref->user, sizeof(ref->user), r->user);
		/* fall through */
	case REQ_LOOKUP:
		if (status == MA_AUTH_OK)
			auth_copy(req->user_r, sizeof(req->user_r), r->user);
		auth_finish(req, status, r->delay_ms / 1000.0);
		return;
	}
}

static void authd_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ma_auth_state *st = w->data;
	unsigned char buf[AUTHD_MSG_MAX];

	(void)loop;
	(void)revents;
	/* Bounded per callback, so replies cannot starve the clients. */
	for (unsigned i = 0; i < 256 && st->authd_fd >= 0; i++) {
		ssize_t n = recv(st->authd_fd, buf, sizeof(buf),
				 MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				authd_disconnect(st, strerror(errno));
			return;
		}
		if (n == 0) {
			authd_disconnect(st, "auth process closed the connection");
			return;
		}
		const char *bad = authd_msg_validate(buf, (size_t)n, false);
		if (bad != NULL) {
			ma_error("auth process sent a bad message (%s, %zd bytes)",
				 bad, n);
			authd_disconnect(st, "protocol error");
			return;
		}
		struct authd_reply r;
		memcpy(&r, buf, sizeof(r));
		authd_handle_reply(st, &r);
	}
}

static void authd_disconnect(struct ma_auth_state *st, const char *why)
{
	unsigned failed = 0;

	if (st->authd_fd < 0)
		return;
	authd_io_stop(st, &st->authd_rio);
	authd_io_stop(st, &st->authd_wio);
	close(st->authd_fd);
	st->authd_fd = -1;
	while (st->out_head != NULL) {
		struct authd_out *o = st->out_head;
		st->out_head = o->next;
		authd_out_free(o);
	}
	st->out_tail = NULL;
	st->n_out = 0;
	for (unsigned i = 0; i < AUTHD_INFLIGHT_MAX && st->n_inflight > 0; i++) {
		struct auth_request *req = st->inflight[i];
		if (req == NULL)
			continue;
		authd_inflight_del(st, req);
		failed++;
		if (req->kind == REQ_ADMIT) {
			/* Fail open: the per-process limits still hold, and
			 * the conn is counted when we reconnect. */
			auth_finish(req, MA_AUTH_OK, 0);
			continue;
		}
		ma_conn_log(req->conn, MA_LOG_WARNING,
			    "%s temporary failure: auth process unavailable",
			    req->kind == REQ_LOOKUP ? "user lookup" : "auth");
		auth_finish(req, MA_AUTH_TEMPFAIL, 0);
	}
	ma_warning("lost the connection to the auth process (%s); %u pending "
		   "requests answered as temporary failures; reconnecting", why,
		   failed);
	st->authd_backoff = AUTHD_RECONNECT_MIN;
	st->authd_down_logged = false;
	authd_schedule_retry(st);
}

static int authd_connect(struct ma_auth_state *st)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	auth_copy(sun.sun_path, sizeof(sun.sun_path), st->authd_path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (!st->authd_down_logged)
			ma_warning("cannot connect to the auth process at %s: %s "
				   "(logins fail temporarily; retrying)",
				   st->authd_path, strerror(errno));
		st->authd_down_logged = true;
		if (fd >= 0)
			close(fd);
		return -1;
	}
	st->authd_fd = fd;
	ev_io_set(&st->authd_rio, fd, EV_READ);
	ev_io_set(&st->authd_wio, fd, EV_WRITE);
	authd_io_start(st, &st->authd_rio);

	struct authd_hello h;
	memset(&h, 0, sizeof(h));
	authd_hdr_init(&h.hdr, AUTHD_HELLO, 0);
	h.pid = (uint32_t)getpid();
	if (authd_send(st, &h, sizeof(h)) < 0)
		return -1;
	/* Re-register what is open here: the auth process may be new. */
	unsigned conns = 0, sessions = 0;
	for (struct ma_anvil_ref *ref = st->refs; ref != NULL; ref = ref->next) {
		struct authd_conn_req m;
		authd_conn_msg(&m, AUTHD_CONN_ADD, 0, ref, AUTHD_CONN_FORCE);
		if (authd_send(st, &m, sizeof(m)) < 0)
			return -1;
		conns++;
		if (ref->user[0] == '\0')
			continue;
		authd_conn_msg(&m, AUTHD_SESSION_ADD, 0, ref, AUTHD_CONN_FORCE);
		if (authd_send(st, &m, sizeof(m)) < 0)
			return -1;
		sessions++;
	}
	ma_info("connected to the auth process at %s (re-registered %u "
		"connections, %u sessions)", st->authd_path, conns, sessions);
	st->authd_backoff = AUTHD_RECONNECT_MIN;
	st->authd_down_logged = false;
	return 0;
}

static void authd_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct ma_auth_state *st = w->data;

	(void)revents;
	ev_ref(loop);	/* balance the unref of authd_schedule_retry() */
	if (st->authd_fd >= 0 || authd_connect(st) == 0)
		return;
	st->authd_backoff *= 2;
	if (st->authd_backoff > AUTHD_RECONNECT_MAX)
		st->authd_backoff = AUTHD_RECONNECT_MAX;
	authd_schedule_retry(st);
}

static void authd_schedule_retry(struct ma_auth_state *st)
{
	struct ev_loop *loop = st->core->loop;
	if (ev_is_active(&st->authd_retry))
		return;
	ev_timer_set(&st->authd_retry, st->authd_backoff, 0.);
	ev_timer_start(loop, &st->authd_retry);
	ev_unref(loop);
}

int ma_auth_use_authd(struct ma_core *core, char **error_r)
{
	struct ma_auth_state *st = core->auth;

	if (st == NULL) {
		*error_r = ma_strdup("auth not initialised");
		return -1;
	}
	if (st->use_authd)
		return 0;
	free(st->authd_path);
	if (asprintf(&st->authd_path, "%s/%s", core->state_dir != NULL ?
		     core->state_dir : ".", AUTHD_SOCKET_NAME) < 0)
		ma_oom();
	if (strlen(st->authd_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		if (asprintf(error_r, "auth socket path too long: %s",
			     st->authd_path) < 0)
			ma_oom();
		return -1;
	}
	st->use_authd = true;
	st->authd_backoff = AUTHD_RECONNECT_MIN;
	if (authd_connect(st) < 0)
		authd_schedule_retry(st);
	return 0;
}

/* ---------- the anvil, worker side (conn.c) ---------- */

static void auth_ref_unlink(struct ma_auth_state *st, struct ma_anvil_ref *ref)
{
	if (ref->prev != NULL)
		ref->prev->next = ref->next;
	else
		st->refs = ref->next;
	if (ref->next != NULL)
		ref->next->prev = ref->prev;
	st->n_refs--;
	free(ref);
}

int ma_auth_conn_admit(struct ma_conn *conn, const unsigned char ip_key[16],
		       bool count_ip, struct ma_anvil_ref **ref_r)
{
	struct ma_auth_state *st = ma_conn_core(conn)->auth;
	unsigned count, max;

	*ref_r = NULL;
	if (st == NULL)
		return 1;
	struct ma_anvil_ref *ref = ma_malloc0(sizeof(*ref));
	ref->id = ++st->next_conn_id;
	memcpy(ref->ip_key, ip_key, 16);
	ref->count_ip = count_ip;
	auth_copy(ref->ip, sizeof(ref->ip), ma_conn_remote_ip(conn));
	auth_copy(ref->sid, sizeof(ref->sid), ma_conn_id(conn));
	ref->next = st->refs;
	if (st->refs != NULL)
		st->refs->prev = ref;
	st->refs = ref;
	st->n_refs++;

	if (!st->use_authd) {
		enum authd_limit lim = ma_anvil_conn_add(st->local_client, ref->id,
			ip_key, count_ip ? AUTHD_CONN_COUNT_IP : 0, &count, &max);
		if (lim != AUTHD_LIMIT_NONE) {
			ma_auth_log_limit(ref->sid, ref->ip, NULL, lim, count, max);
			auth_ref_unlink(st, ref);
			return -1;
		}
		*ref_r = ref;
		return 1;
	}
	*ref_r = ref;
	if (st->authd_fd < 0)
		return 1;	/* fail open; counted when we reconnect */
	struct auth_request *req = auth_request_new(conn, REQ_ADMIT, NULL, NULL);
	uint32_t id = authd_inflight_add(st, req);
	struct authd_conn_req m;
	if (id == 0) {
		/* Too many in flight: count it unchecked (no reply). */
		auth_request_free(req);
		authd_conn_msg(&m, AUTHD_CONN_ADD, 0, ref, AUTHD_CONN_FORCE);
		(void)authd_send(st, &m, sizeof(m));
		return 1;
	}
	authd_conn_msg(&m, AUTHD_CONN_ADD, id, ref, 0);
	(void)authd_send(st, &m, sizeof(m));
	return 0;	/* even if the send failed: the request was answered */
}

void ma_auth_conn_release(struct ma_core *core, struct ma_anvil_ref **refp)
{
	struct ma_auth_state *st = core->auth;
	struct ma_anvil_ref *ref = *refp;

	if (ref == NULL || st == NULL)
		return;
	*refp = NULL;
	if (!st->use_authd) {
		ma_anvil_conn_del(st->local_client, ref->id);
	} else if (st->authd_fd >= 0) {
		struct authd_conn_req m;
		authd_conn_msg(&m, AUTHD_CONN_DEL, 0, ref, 0);
		(void)authd_send(st, &m, sizeof(m));
	}
	auth_ref_unlink(st, ref);
}

bool ma_auth_authd_connected(const struct ma_core *core)
{
	return core->auth != NULL && core->auth->authd_fd >= 0;
}

unsigned ma_auth_local_conn_count(const struct ma_core *core)
{
	return core->auth != NULL && core->auth->anvil != NULL ?
		ma_anvil_conn_count(core->auth->anvil, NULL) : 0;
}

unsigned ma_auth_commands_per_second(const struct ma_core *core)
{
	return core->auth != NULL ? core->auth->commands_per_second : 200;
}

/* ---------- synchronous, for mailaccessctl ---------- */

enum ma_auth_status ma_auth_verify_sync(struct ma_core *core, const char *user,
					const char *password, char *user_r)
{
	const char *source;
	if (user == NULL || password == NULL ||
	    strlen(user) >= MA_AUTH_USER_MAX ||
	    strlen(password) > AUTH_PASSWORD_MAX || password[0] == '\0')
		return MA_AUTH_FAIL;
	return auth_run_sources(core, user, password, true, user_r, &source);
}

enum ma_auth_status ma_auth_lookup_sync(struct ma_core *core, const char *user,
					char *user_r)
{
	const char *source;
	if (user == NULL || strlen(user) >= MA_AUTH_USER_MAX)
		return MA_AUTH_FAIL;
	return auth_run_sources(core, user, NULL, false, user_r, &source);
}

/* ---------- init ---------- */

int ma_auth_init(struct ma_core *core, char **error_r)
{
	const struct ma_config_section *limits = NULL;
	if (core->config != NULL)
		limits = ma_config_child(ma_config_root(core->config), "limits");

	struct ma_auth_state *st = ma_malloc0(sizeof(*st));
	uint64_t lockout = 20, threads = 4, max_pending = 1024;
	/* max_connections(_per_ip) are listener.c's keys too (its per-process
	 * check at accept); same defaults, read again for the anvil. */
	uint64_t max_conn = 10000, max_per_ip = 100, max_per_user = 50;
	uint64_t cps = 200;
	st->core = core;
	st->authd_fd = -1;
	st->fail_delay = 1;
	st->fail_max_delay = 15;
	st->fail_window = 300;
	if (limits != NULL && (
	    ma_config_get_seconds(limits, "auth_fail_delay", 1, &st->fail_delay,
				  error_r) < 0 ||
	    ma_config_get_seconds(limits, "auth_fail_max_delay", 15,
				  &st->fail_max_delay, error_r) < 0 ||
	    ma_config_get_seconds(limits, "auth_fail_window", 300,
				  &st->fail_window, error_r) < 0 ||
	    ma_config_get_uint(limits, "auth_fail_lockout", 20, 1000000,
			       &lockout, error_r) < 0 ||
	    ma_config_get_uint(limits, "auth_threads", 4, 64, &threads,
			       error_r) < 0 ||
	    ma_config_get_uint(limits, "auth_max_pending", 1024, 1000000,
			       &max_pending, error_r) < 0 ||
	    ma_config_get_uint(limits, "max_connections", 10000, 1000000,
			       &max_conn, error_r) < 0 ||
	    ma_config_get_uint(limits, "max_connections_per_ip", 100, 1000000,
			       &max_per_ip, error_r) < 0 ||
	    ma_config_get_uint(limits, "max_sessions_per_user", 50, 1000000,
			       &max_per_user, error_r) < 0 ||
	    ma_config_get_uint(limits, "commands_per_second", 200, 1000000,
			       &cps, error_r) < 0)) {
		free(st);
		return -1;
	}
	if (st->fail_max_delay < st->fail_delay)
		st->fail_max_delay = st->fail_delay;
	/* 0 turns the lockout off. */
	st->fail_lockout = lockout == 0 ? UINT32_MAX : (unsigned)lockout;
	if (threads == 0)
		threads = 1;
	if (max_pending == 0)
		max_pending = 1;
	st->fails = ma_malloc0(sizeof(*st->fails) * AUTH_FAIL_SLOTS);
	/* 0 = no limit, as for the lockout. */
	st->anvil = ma_anvil_create(max_conn == 0 ? UINT32_MAX : (unsigned)max_conn,
				    max_per_ip == 0 ? UINT32_MAX : (unsigned)max_per_ip,
				    max_per_user == 0 ? UINT32_MAX : (unsigned)max_per_user);
	st->local_client = ma_anvil_client_create(st->anvil);
	st->commands_per_second = (unsigned)cps;
	ev_io_init(&st->authd_rio, authd_read_cb, -1, EV_READ);
	st->authd_rio.data = st;
	ev_io_init(&st->authd_wio, authd_write_cb, -1, EV_WRITE);
	st->authd_wio.data = st;
	ev_timer_init(&st->authd_retry, authd_retry_cb, 1., 0.);
	st->authd_retry.data = st;
	core->auth = st;

	/* The pool itself starts with the first check: threads do not
	 * survive fork(), so it must be made in the process (and on the loop)
	 * that uses it, and mailaccessctl, checking synchronously, never
	 * starts one. */
	st->threads = (unsigned)threads;
	st->max_pending = (unsigned)max_pending;
	return 0;
}

void ma_auth_deinit(struct ma_core *core)
{
	struct ma_auth_state *st = core->auth;
	/* A pool inherited over fork() has no threads here: leave it. */
	if (st != NULL && core->pool != NULL && st->pool_pid != getpid())
		core->pool = NULL;
	/* Finishes running checks; their done() arms timers we cancel now. */
	ma_threadpool_destroy(&core->pool);
	if (st == NULL)
		return;
	if (st->authd_fd >= 0) {
		authd_io_stop(st, &st->authd_rio);
		authd_io_stop(st, &st->authd_wio);
		close(st->authd_fd);
		st->authd_fd = -1;
	}
	if (ev_is_active(&st->authd_retry)) {
		ev_ref(core->loop);
		ev_timer_stop(core->loop, &st->authd_retry);
	}
	while (st->out_head != NULL) {
		struct authd_out *o = st->out_head;
		st->out_head = o->next;
		authd_out_free(o);
	}
	while (st->requests != NULL)
		auth_request_free(st->requests);
	/* Conns still holding a ref (none after ma_net_deinit) keep a
	 * dangling pointer: the net is torn down before us. */
	while (st->refs != NULL)
		auth_ref_unlink(st, st->refs);
	ma_anvil_client_destroy(&st->local_client, NULL);
	ma_anvil_destroy(&st->anvil);
	free(st->authd_path);
	free(st->fails);
	free(st);
	core->auth = NULL;
}
