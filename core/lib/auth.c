/*
 * auth.c - the auth framework: runs the configured auth sources' verify()
 * on the thread pool for a connection, slows down and locks out repeated
 * failures, and calls the protocol back on the loop.
 *
 * Owns: the auth thread pool's creation, the failure table (per remote IP
 * and per user), the `limits` keys auth_fail_delay, auth_fail_max_delay,
 * auth_fail_lockout, auth_fail_window, auth_threads, auth_max_pending, and
 * the synchronous helpers mailaccessctl uses.
 *
 * Every request holds a conn ref from ma_auth_verify() to its callback. The
 * callback (and any failure delay) runs from our own ev_timer rather than
 * ma_conn_after(): that timer fires even when the conn closed in between,
 * so the request is always freed and the ref always dropped; we just skip
 * the protocol's callback then (conn.h: never called for a closed conn).
 * The failure table is touched only on the loop thread, so it needs no lock.
 */
#include "core-private.h"

#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Longest password we pass to a source: RFC 4616 asks for 255 octets;
 * passphrases get room, a megabyte of junk does not. */
#define AUTH_PASSWORD_MAX 1024
/* Failure table: fixed size so a spray of random user names cannot grow
 * memory; an entry is found within AUTH_FAIL_PROBES slots of its hash, and
 * the least recently failed of those is evicted when all are in use. */
#define AUTH_FAIL_SLOTS 4096
#define AUTH_FAIL_PROBES 8
#define AUTH_FAIL_KEY_MAX (MA_AUTH_USER_MAX + 8)

struct auth_fail_entry {
	char key[AUTH_FAIL_KEY_MAX];	/* "ip:..." or "user:..."; "" = free */
	unsigned count;
	double last;			/* ev_now() of the last failure */
};

struct auth_request {
	struct auth_request *prev, *next;	/* auth state's live list */
	struct ma_auth_state *state;
	struct ma_conn *conn;
	ma_auth_callback *cb;
	void *cb_ctx;
	ev_timer timer;
	bool timer_armed;

	enum ma_auth_status status;
	bool lookup;			/* ma_auth_lookup(): no password */
	const char *source;		/* plugin name that answered */
	char user[MA_AUTH_USER_MAX];
	char user_r[MA_AUTH_USER_MAX];
	char password[AUTH_PASSWORD_MAX + 1];
	char ip[64];
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

/* ---------- requests ---------- */

static void auth_request_free(struct auth_request *req)
{
	struct ma_auth_state *st = req->state;
	if (req->timer_armed)
		ev_timer_stop(st->core->loop, &req->timer);
	if (req->prev != NULL)
		req->prev->next = req->next;
	else
		st->requests = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
	ma_wipe(req->password, sizeof(req->password));
	ma_conn_unref(req->conn);
	free(req);
}

static void auth_deliver_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct auth_request *req = w->data;
	req->timer_armed = false;
	if (!ma_conn_is_closed(req->conn))
		req->cb(req->conn, req->status,
			req->status == MA_AUTH_OK ? req->user_r : NULL,
			req->cb_ctx);
	auth_request_free(req);
}

/* Calls the protocol back after `delay` seconds (0: next loop turn). */
static void auth_finish(struct auth_request *req, enum ma_auth_status status,
			double delay)
{
	req->status = status;
	ma_wipe(req->password, sizeof(req->password));
	ev_timer_init(&req->timer, auth_deliver_cb, delay, 0.);
	req->timer.data = req;
	ev_timer_start(req->state->core->loop, &req->timer);
	req->timer_armed = true;
}

static void auth_work(void *ctx)
{
	struct auth_request *req = ctx;
	req->status = auth_run_sources(req->state->core, req->user,
				       req->lookup ? NULL : req->password,
				       !req->lookup, req->user_r,
				       &req->source);
	ma_wipe(req->password, sizeof(req->password));
}

static void auth_done(void *ctx)
{
	struct auth_request *req = ctx;
	struct ma_auth_state *st = req->state;
	double now = ev_now(st->core->loop);
	char ubuf[MA_AUTH_USER_MAX];

	if (req->lookup) {
		/* Delivery lookups: no failure table, no delay. */
		if (req->status == MA_AUTH_TEMPFAIL)
			ma_conn_log(req->conn, MA_LOG_WARNING,
				    "user lookup temporary failure user=%s source=%s",
				    auth_log_safe(req->user, ubuf, sizeof(ubuf)),
				    req->source);
		auth_finish(req, req->status == MA_AUTH_OK ||
			    req->status == MA_AUTH_TEMPFAIL ? req->status :
			    MA_AUTH_FAIL, 0);
		return;
	}
	switch (req->status) {
	case MA_AUTH_OK:
		/* The user got in: forget their failures (the IP's stay, so
		 * one good account does not reset a spray from that IP). */
		auth_fail_clear(st, "user", req->user, now);
		ma_conn_log(req->conn, MA_LOG_INFO, "auth ok user=%s ip=%s source=%s",
			    auth_log_safe(req->user_r, ubuf, sizeof(ubuf)),
			    req->ip, req->source);
		auth_finish(req, MA_AUTH_OK, 0);
		return;
	case MA_AUTH_TEMPFAIL:
		ma_conn_log(req->conn, MA_LOG_WARNING,
			    "auth temporary failure user=%s ip=%s source=%s",
			    auth_log_safe(req->user, ubuf, sizeof(ubuf)),
			    req->ip, req->source);
		auth_finish(req, MA_AUTH_TEMPFAIL, 0);
		return;
	default:
		break;
	}
	unsigned n_ip = auth_fail_record(st, "ip", req->ip, now);
	unsigned n_user = auth_fail_record(st, "user", req->user, now);
	unsigned n = n_ip > n_user ? n_ip : n_user;
	double delay = auth_fail_delay(st, n);
	ma_conn_log(req->conn, MA_LOG_NOTICE,
		    "auth failed user=%s ip=%s (%u failures, delay %gs)",
		    auth_log_safe(req->user, ubuf, sizeof(ubuf)), req->ip, n,
		    delay);
	auth_finish(req, MA_AUTH_FAIL, delay);
}

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

void ma_auth_verify(struct ma_conn *conn, const char *user,
		    const char *password, ma_auth_callback *cb, void *ctx)
{
	struct ma_core *core = ma_conn_core(conn);
	struct ma_auth_state *st = core->auth;
	struct auth_request *req = ma_malloc0(sizeof(*req));
	char ubuf[MA_AUTH_USER_MAX];

	req->state = st;
	req->conn = conn;
	ma_conn_ref(conn);
	req->cb = cb;
	req->cb_ctx = ctx;
	req->source = "-";
	req->next = st->requests;
	if (st->requests != NULL)
		st->requests->prev = req;
	st->requests = req;

	const char *ip = ma_conn_remote_ip(conn);
	snprintf(req->ip, sizeof(req->ip), "%s", ip != NULL ? ip : "-");
	size_t ulen = user != NULL ? strlen(user) : 0;
	size_t plen = password != NULL ? strlen(password) : 0;
	if (ulen > 0 && ulen < sizeof(req->user))
		memcpy(req->user, user, ulen);
	else if (ulen > 0)
		memcpy(req->user, user, sizeof(req->user) - 1);
	double now = ev_now(core->loop);

	/* Lockout first: a locked-out client learns nothing about the
	 * password, and costs us no hashing. */
	unsigned n_ip = auth_fail_count(st, "ip", req->ip, now);
	unsigned n_user = auth_fail_count(st, "user", req->user, now);
	if (n_ip >= st->fail_lockout || n_user >= st->fail_lockout) {
		ma_conn_log(conn, MA_LOG_NOTICE,
			    "auth refused: too many failures ip=%s user=%s (%u/%u)",
			    req->ip, auth_log_safe(req->user, ubuf, sizeof(ubuf)),
			    n_ip, n_user);
		auth_finish(req, MA_AUTH_DELAYED, st->fail_delay);
		return;
	}
	/* Over-long names and passwords can match nothing: count them as
	 * plain failures, without bothering a source. */
	if (ulen == 0 || ulen >= sizeof(req->user) || plen == 0 ||
	    plen > AUTH_PASSWORD_MAX) {
		req->status = MA_AUTH_FAIL;
		auth_done(req);
		return;
	}
	memcpy(req->password, password, plen);
	if (ma_threadpool_try_submit(ma_auth_pool(core), auth_work, auth_done,
				     req) < 0) {
		ma_conn_log(conn, MA_LOG_WARNING,
			    "auth temporary failure: too many pending checks ip=%s",
			    req->ip);
		auth_finish(req, MA_AUTH_TEMPFAIL, 0);
	}
}

void ma_auth_lookup(struct ma_conn *conn, const char *user,
		    ma_auth_callback *cb, void *ctx)
{
	struct ma_core *core = ma_conn_core(conn);
	struct ma_auth_state *st = core->auth;
	struct auth_request *req = ma_malloc0(sizeof(*req));
	size_t ulen = user != NULL ? strlen(user) : 0;

	req->state = st;
	req->conn = conn;
	ma_conn_ref(conn);
	req->cb = cb;
	req->cb_ctx = ctx;
	req->lookup = true;
	req->source = "-";
	req->next = st->requests;
	if (st->requests != NULL)
		st->requests->prev = req;
	st->requests = req;
	const char *ip = ma_conn_remote_ip(conn);
	snprintf(req->ip, sizeof(req->ip), "%s", ip != NULL ? ip : "-");
	/* Names that cannot exist: answer without bothering a source. */
	if (ulen == 0 || ulen >= sizeof(req->user)) {
		auth_finish(req, MA_AUTH_FAIL, 0);
		return;
	}
	memcpy(req->user, user, ulen);
	if (ma_threadpool_try_submit(ma_auth_pool(core), auth_work, auth_done,
				     req) < 0) {
		ma_conn_log(conn, MA_LOG_WARNING,
			    "user lookup temporary failure: too many pending checks");
		auth_finish(req, MA_AUTH_TEMPFAIL, 0);
	}
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
	st->core = core;
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
			       &max_pending, error_r) < 0)) {
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
	while (st->requests != NULL)
		auth_request_free(st->requests);
	free(st->fails);
	free(st);
	core->auth = NULL;
}
