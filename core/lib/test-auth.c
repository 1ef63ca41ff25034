/*
 * test-auth.c - the auth framework and the thread pool: ma_auth_verify()
 * through real pool threads and a real libev loop, with fake auth sources
 * and a fake conn (this file includes auth.c and defines the few ma_conn_*
 * functions it calls; the executable's definitions win).
 *
 * Checks: OK with the canonical name and never a callback from inside the
 * call; source order (UNKNOWN_USER falls through, all unknown = FAIL);
 * growing failure delay per IP and user; lockout (DELAYED, no source
 * call); success forgets the user's failures; no callback for a closed
 * conn, yet the ref is dropped; TEMPFAIL when the pool queue is full;
 * shutdown with checks in flight; the sync helpers; the pool alone.
 */
#include "auth.c"
#include "anvil.c"	/* auth.c uses the anvil (hidden in the library) */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
		failures++; \
	} \
} while (0)

/* ---- fake conn ---- */
struct ma_conn {
	struct ma_core *core;
	const char *ip;
	int refs;
	bool closed;
};

struct ma_core *ma_conn_core(const struct ma_conn *conn) { return conn->core; }
const char *ma_conn_remote_ip(const struct ma_conn *conn) { return conn->ip; }
void ma_conn_ref(struct ma_conn *conn) { conn->refs++; }
void ma_conn_unref(struct ma_conn *conn) { conn->refs--; }
bool ma_conn_is_closed(const struct ma_conn *conn) { return conn->closed; }
const char *ma_conn_id(const struct ma_conn *conn) { (void)conn; return "testsid"; }
const char *ma_conn_protocol_name(const struct ma_conn *conn) { (void)conn; return "test"; }
struct ma_anvil_ref *ma_conn_anvil_ref(const struct ma_conn *conn) { (void)conn; return NULL; }
void ma_conn_log(struct ma_conn *conn, int level, const char *fmt, ...)
{
	(void)conn;
	va_list ap;
	va_start(ap, fmt);
	ma_vlog(level, fmt, ap);
	va_end(ap);
}

/* ---- fake sources ---- */
static atomic_int src1_calls, src2_calls;
static atomic_int block_release;	/* blocking source waits for this */

/* source 1 knows alice (pw "a") and "tempfail" */
static enum ma_auth_status src1_verify(void *ctx, const char *user,
				       const char *pw, char *user_r)
{
	(void)ctx;
	src1_calls++;
	if (strcmp(user, "block") == 0) {
		while (!block_release)
			usleep(1000);
		return MA_AUTH_FAIL;
	}
	if (strcmp(user, "tempfail") == 0)
		return MA_AUTH_TEMPFAIL;
	if (strcasecmp(user, "alice") != 0)
		return MA_AUTH_UNKNOWN_USER;
	if (strcmp(pw, "a") != 0)
		return MA_AUTH_FAIL;
	strcpy(user_r, "alice");
	return MA_AUTH_OK;
}

static enum ma_auth_status src1_lookup(void *ctx, const char *user, char *user_r)
{
	(void)ctx;
	if (strcasecmp(user, "alice") != 0)
		return MA_AUTH_UNKNOWN_USER;
	strcpy(user_r, "alice");
	return MA_AUTH_OK;
}

/* source 2 knows bob (pw "b") */
static enum ma_auth_status src2_verify(void *ctx, const char *user,
				       const char *pw, char *user_r)
{
	(void)ctx;
	src2_calls++;
	if (strcmp(user, "bob") != 0)
		return MA_AUTH_UNKNOWN_USER;
	if (strcmp(pw, "b") != 0)
		return MA_AUTH_FAIL;
	strcpy(user_r, "bob");
	return MA_AUTH_OK;
}

static const struct ma_auth_ops src1_ops = {
	.struct_size = sizeof(struct ma_auth_ops),
	.verify = src1_verify, .lookup = src1_lookup,
};
static const struct ma_auth_ops src2_ops = {
	.struct_size = sizeof(struct ma_auth_ops),
	.verify = src2_verify,
};
static const struct ma_plugin src1_desc = {
	MA_PLUGIN_INIT(MA_PLUGIN_AUTH, "one", "1"), .ops = &src1_ops,
};
static const struct ma_plugin src2_desc = {
	MA_PLUGIN_INIT(MA_PLUGIN_AUTH, "two", "1"), .ops = &src2_ops,
};

/* ---- callback recording ---- */
struct result {
	int calls;
	enum ma_auth_status status;
	char user[MA_AUTH_USER_MAX];
	double at;
};

static struct ev_loop *loop;

static void result_cb(struct ma_conn *conn, enum ma_auth_status status,
		      const char *user, void *ctx)
{
	(void)conn;
	struct result *r = ctx;
	r->calls++;
	r->status = status;
	snprintf(r->user, sizeof(r->user), "%s", user != NULL ? user : "");
	r->at = ev_time();
}

/* Verifies and runs the loop until the callback came; returns seconds. */
static double run_verify(struct ma_conn *conn, const char *user,
			 const char *pw, struct result *r)
{
	memset(r, 0, sizeof(*r));
	double start = ev_time();
	ma_auth_verify(conn, user, pw, result_cb, r);
	CHECK(r->calls == 0);	/* never from inside the call */
	while (r->calls == 0)
		ev_run(loop, EVRUN_ONCE);
	return r->at - start;
}

/* ---- the pool on its own ---- */
static atomic_int pool_work_count;
static int pool_done_count;
static pthread_t loop_thread;

static void pool_work(void *ctx)
{
	int *n = ctx;
	*n *= 2;
	usleep(100);
	pool_work_count++;
}

static void pool_done(void *ctx)
{
	int *n = ctx;
	CHECK(pthread_equal(pthread_self(), loop_thread));
	CHECK(*n % 2 == 0);
	pool_done_count++;
}

static void test_pool_alone(void)
{
	struct ev_loop *l = ev_loop_new(0);
	struct ma_threadpool *pool = ma_threadpool_create(l, 3);
	int jobs[50];

	loop_thread = pthread_self();
	/* idle pool: ev_run returns at once */
	ev_run(l, 0);
	for (int i = 0; i < 50; i++) {
		jobs[i] = i;
		ma_threadpool_submit(pool, pool_work, pool_done, &jobs[i]);
	}
	/* the pool keeps the loop alive until every done() ran */
	ev_run(l, 0);
	CHECK(pool_work_count == 50);
	CHECK(pool_done_count == 50);

	/* bounded: with 1 slot and a blocked worker, try_submit refuses */
	ma_threadpool_set_max_pending(pool, 1);
	int more[10];
	int accepted = 0;
	for (int i = 0; i < 10; i++) {
		more[i] = i;
		if (ma_threadpool_try_submit(pool, pool_work, pool_done,
					     &more[i]) == 0)
			accepted++;
	}
	CHECK(accepted >= 1 && accepted < 10);
	/* destroy runs the rest, including their done() */
	ma_threadpool_destroy(&pool);
	CHECK(pool == NULL);
	CHECK(pool_done_count == 50 + accepted);
	ev_loop_destroy(l);
}

static struct ma_core *make_core(const char *limits)
{
	struct ma_core *core = ma_malloc0(sizeof(*core));
	char *err = NULL;
	core->config = ma_config_parse("t", limits, strlen(limits), &err);
	if (core->config == NULL) {
		fprintf(stderr, "config: %s\n", err);
		exit(1);
	}
	core->loop = loop;
	static struct ma_loaded_plugin p1 = { .desc = &src1_desc };
	static struct ma_loaded_plugin p2 = { .desc = &src2_desc };
	core->auth_sources = ma_malloc0(2 * sizeof(*core->auth_sources));
	core->auth_sources[0] = &p1;
	core->auth_sources[1] = &p2;
	core->n_auth_sources = 2;
	if (ma_auth_init(core, &err) < 0) {
		fprintf(stderr, "ma_auth_init: %s\n", err);
		exit(1);
	}
	return core;
}

static void free_core(struct ma_core *core)
{
	ma_auth_deinit(core);
	CHECK(core->pool == NULL && core->auth == NULL);
	ma_config_free(&core->config);
	free(core->auth_sources);
	free(core);
}

static void test_verify(void)
{
	struct ma_core *core = make_core(
		"limits {\n auth_fail_delay = 1\n auth_fail_max_delay = 4\n"
		" auth_fail_lockout = 4\n auth_fail_window = 5m\n"
		" auth_threads = 2\n}\n");
	struct ma_auth_state *st = core->auth;
	CHECK(st->fail_delay == 1 && st->fail_max_delay == 4 &&
	      st->fail_lockout == 4 && st->fail_window == 300);
	CHECK(core->pool == NULL);	/* started on first use */
	/* make the test fast: 50 ms doubling to 200 ms */
	st->fail_delay = 0.05;
	st->fail_max_delay = 0.2;

	struct ma_conn c1 = { .core = core, .ip = "192.0.2.1" };
	struct ma_conn c2 = { .core = core, .ip = "192.0.2.2" };
	struct result r;
	double t;

	/* OK, canonical name from the source */
	t = run_verify(&c1, "ALICE", "a", &r);
	CHECK(r.calls == 1 && r.status == MA_AUTH_OK && strcmp(r.user, "alice") == 0);
	CHECK(t < 0.05);
	CHECK(c1.refs == 0);
	/* source order: bob is unknown to source 1, known to source 2 */
	src1_calls = src2_calls = 0;
	run_verify(&c1, "bob", "b", &r);
	CHECK(r.status == MA_AUTH_OK && strcmp(r.user, "bob") == 0);
	CHECK(src1_calls == 1 && src2_calls == 1);
	/* source 1 answering FAIL stops the walk */
	src1_calls = src2_calls = 0;
	run_verify(&c1, "alice", "wrong", &r);
	CHECK(r.status == MA_AUTH_FAIL && r.user[0] == '\0');
	CHECK(src1_calls == 1 && src2_calls == 0);
	/* that was failure 1 for ip .1: delay 0.05 */
	CHECK(auth_fail_count(st, "ip", "192.0.2.1", ev_now(loop)) == 1);

	/* unknown everywhere: FAIL, delay grows per IP: 0.1, 0.2, then lockout */
	t = run_verify(&c1, "nobody", "x", &r);
	CHECK(r.status == MA_AUTH_FAIL);
	CHECK(t >= 0.09 && t < 0.5);
	t = run_verify(&c1, "nobody2", "x", &r);
	CHECK(r.status == MA_AUTH_FAIL);
	CHECK(t >= 0.19 && t < 0.6);
	t = run_verify(&c1, "nobody3", "x", &r);
	CHECK(r.status == MA_AUTH_FAIL);
	CHECK(t >= 0.19 && t < 0.6);	/* capped at max */
	/* 4 failures from .1: refused without asking any source, even with
	 * the right password */
	src1_calls = src2_calls = 0;
	run_verify(&c1, "alice", "a", &r);
	CHECK(r.status == MA_AUTH_DELAYED);
	CHECK(src1_calls == 0 && src2_calls == 0);
	CHECK(c1.refs == 0);

	/* another IP is not affected by .1's failures */
	run_verify(&c2, "bob", "b", &r);
	CHECK(r.status == MA_AUTH_OK);
	/* per-user counting: alice failed once (from .1); two more from .2 */
	run_verify(&c2, "alice", "no", &r);
	run_verify(&c2, "Alice", "no", &r);
	CHECK(auth_fail_count(st, "user", "alice", ev_now(loop)) == 3);
	/* success forgets the user's failures but not the IP's */
	run_verify(&c2, "alice", "a", &r);
	CHECK(r.status == MA_AUTH_OK);
	CHECK(auth_fail_count(st, "user", "alice", ev_now(loop)) == 0);
	CHECK(auth_fail_count(st, "ip", "192.0.2.2", ev_now(loop)) == 2);

	/* the window: failures older than it are forgotten */
	st->fail_window = 0.1;
	usleep(150000);
	ev_now_update(loop);
	CHECK(auth_fail_count(st, "ip", "192.0.2.1", ev_now(loop)) == 0);
	run_verify(&c1, "alice", "a", &r);
	CHECK(r.status == MA_AUTH_OK);
	st->fail_window = 300;

	/* TEMPFAIL from a source: no delay, not counted */
	t = run_verify(&c2, "tempfail", "x", &r);
	CHECK(r.status == MA_AUTH_TEMPFAIL && t < 0.05);
	CHECK(auth_fail_count(st, "ip", "192.0.2.2", ev_now(loop)) == 2);

	/* bad input: empty and over-long user, over-long password */
	struct ma_conn c3 = { .core = core, .ip = "192.0.2.3" };
	src1_calls = 0;
	run_verify(&c3, "", "x", &r);
	CHECK(r.status == MA_AUTH_FAIL);
	char big[2000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	run_verify(&c3, big, "x", &r);
	CHECK(r.status == MA_AUTH_FAIL);
	run_verify(&c3, "alice", big, &r);
	CHECK(r.status == MA_AUTH_FAIL);
	run_verify(&c3, "alice", "", &r);
	CHECK(r.status == MA_AUTH_FAIL);
	CHECK(src1_calls == 0);

	/* conn closed while the check runs: no callback, ref dropped */
	struct ma_conn c4 = { .core = core, .ip = "192.0.2.4" };
	memset(&r, 0, sizeof(r));
	ma_auth_verify(&c4, "alice", "wrong", result_cb, &r);
	CHECK(c4.refs == 1);
	c4.closed = true;
	while (c4.refs > 0)
		ev_run(loop, EVRUN_ONCE);
	CHECK(r.calls == 0);

	/* pool full: TEMPFAIL */
	ma_threadpool_set_max_pending(core->pool, 1);
	block_release = 0;
	struct result rs[6];
	struct ma_conn c5 = { .core = core, .ip = "192.0.2.5" };
	memset(rs, 0, sizeof(rs));
	for (int i = 0; i < 6; i++)
		ma_auth_verify(&c5, "block", "x", result_cb, &rs[i]);
	/* at most 2 running + 1 queued; the rest are refused at once */
	int temp = 0;
	for (int k = 0; k < 20; k++)
		ev_run(loop, EVRUN_NOWAIT);
	for (int i = 0; i < 6; i++)
		if (rs[i].calls == 1 && rs[i].status == MA_AUTH_TEMPFAIL)
			temp++;
	CHECK(temp >= 1 && temp <= 5);	/* at least one ran */
	block_release = 1;
	int all;
	do {
		ev_run(loop, EVRUN_ONCE);
		all = 0;
		for (int i = 0; i < 6; i++)
			all += rs[i].calls;
	} while (all < 6);
	CHECK(c5.refs == 0);
	ma_threadpool_set_max_pending(core->pool, 1024);

	/* shutdown with checks in flight and delays pending: everything
	 * released, no callbacks */
	struct ma_conn c6 = { .core = core, .ip = "192.0.2.6" };
	struct result r6[3];
	memset(r6, 0, sizeof(r6));
	ma_auth_verify(&c6, "alice", "wrong", result_cb, &r6[0]);
	ma_auth_verify(&c6, "bob", "b", result_cb, &r6[1]);
	ma_auth_verify(&c6, "carol", "c", result_cb, &r6[2]);
	CHECK(c6.refs == 3);

	/* sync helpers */
	char user_r[MA_AUTH_USER_MAX];
	CHECK(ma_auth_verify_sync(core, "Alice", "a", user_r) == MA_AUTH_OK);
	CHECK(strcmp(user_r, "alice") == 0);
	CHECK(ma_auth_verify_sync(core, "alice", "b", user_r) == MA_AUTH_FAIL);
	CHECK(ma_auth_verify_sync(core, "zed", "b", user_r) == MA_AUTH_FAIL);
	CHECK(ma_auth_verify_sync(core, "bob", "b", user_r) == MA_AUTH_OK);
	CHECK(ma_auth_lookup_sync(core, "ALICE", user_r) == MA_AUTH_OK);
	CHECK(strcmp(user_r, "alice") == 0);
	/* source 2 has no lookup: bob is unknown to lookups */
	CHECK(ma_auth_lookup_sync(core, "bob", user_r) == MA_AUTH_FAIL);

	free_core(core);
	CHECK(c6.refs == 0);
	CHECK(r6[0].calls == 0 && r6[1].calls == 0 && r6[2].calls == 0);
}

/* The failure table stays bounded under a spray of names. */
static void test_table_bound(void)
{
	struct ma_core *core = make_core("limits {\n}\n");
	struct ma_auth_state *st = core->auth;
	char name[64];
	double now = 1000;
	for (int i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		auth_fail_record(st, "user", name, now + i * 0.001);
	}
	/* recent ones are found, the table did not grow */
	CHECK(auth_fail_count(st, "user", "user19999", now + 20) == 1);
	CHECK(auth_fail_delay(st, 1) == 1 && auth_fail_delay(st, 2) == 2 &&
	      auth_fail_delay(st, 4) == 8 && auth_fail_delay(st, 5) == 15 &&
	      auth_fail_delay(st, 1000) == 15);
	/* key case-folding and bounding */
	char key[AUTH_FAIL_KEY_MAX];
	char huge[1000];
	memset(huge, 'A', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	auth_fail_key(key, "user", huge);
	CHECK(strlen(key) == AUTH_FAIL_KEY_MAX - 1 && key[10] == 'a');
	free_core(core);
}

int main(void)
{
	ma_log_init("test-auth", "stderr", MA_LOG_WARNING);
	test_pool_alone();
	loop = ev_loop_new(0);
	test_verify();
	test_table_bound();
	ev_loop_destroy(loop);
	if (failures > 0) {
		fprintf(stderr, "test-auth: %d failures\n", failures);
		return 1;
	}
	printf("test-auth: ok\n");
	return 0;
}
