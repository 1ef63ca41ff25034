/*
 * test-imap-mailbox.c - unit tests of the mailbox engineer's files:
 *  - the LIST wildcard matcher (cmd-list.c) against a plain backtracking
 *    reference on random patterns and names, plus pathological patterns
 *    that must stay fast;
 *  - the APPEND date-time parser (cmd-append.c);
 *  - the selected-mailbox machinery (cmd-select.c) through a real session
 *    (imap-session.c) on a fake conn and a real LMDB store: SELECT output,
 *    and imap_sync_report() with writes from a second view — pending
 *    expunges while expunges are not allowed, flag and keyword changes,
 *    appends, the exact EXPUNGE numbers afterwards.
 */
#include "imap-private.h"

#include <dlfcn.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core-private.h"

static int failures;

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		failures++; \
		printf("FAIL %s:%d: ", __FILE__, __LINE__); \
		printf(__VA_ARGS__); \
		printf("\n"); \
	} \
} while (0)

/* exported by cmd-list.c / cmd-append.c for this test */
struct imap_match;
struct imap_match *imap_match_compile(struct ma_arena *a, const char *pat, size_t len);
bool imap_match_name(struct imap_match *m, const char *name);
int imap_parse_datetime(const char *s, size_t len, int64_t *t_r, int32_t *tz_r);

/* ------------------------------------------------------------ matcher */

/* Reference: plain recursion, INBOX prefix case-insensitive. */
static bool ref_match(const char *p, const char *n, size_t pos, bool inbox)
{
	if (*p == '\0')
		return *n == '\0';
	if (*p == '*' || *p == '%') {
		for (size_t k = 0;; k++) {
			if (ref_match(p + 1, n + k, pos + k, inbox))
				return true;
			if (n[k] == '\0' || (*p == '%' && n[k] == '/'))
				return false;
		}
	}
	if (*n == '\0')
		return false;
	if (*p == *n || (inbox && pos < 5 && (*p | 0x20) == (*n | 0x20) &&
			 ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')))
		return ref_match(p + 1, n + 1, pos + 1, inbox);
	return false;
}

static void test_matcher(void)
{
	struct ma_arena *a = ma_arena_create(0);
	static const char alpha[] = "ab/*%";
	static const char nalpha[] = "ab/";
	unsigned seed = 12345;

	static const struct { const char *p, *n; bool want; } cases[] = {
		{ "*", "a/b/c", true }, { "%", "a/b", false }, { "%", "abc", true },
		{ "a/%", "a/b", true }, { "a/%", "a/b/c", false }, { "a/*", "a/b/c", true },
		{ "inbox", "INBOX", true }, { "InBoX/%", "INBOX/x", true },
		{ "inbox*", "INBOXfoo", false }, { "INBOX*", "INBOXfoo", true },
		{ "inbox", "inbox", true }, { "", "", true }, { "", "a", false },
		{ "a%b", "a/b", false }, { "a*b", "a/b", true }, { "%%%", "abc", true },
		{ "*%*%", "a/b", true }, { "%*", "a/b", true }, { "&ZeVnLIqe-", "&ZeVnLIqe-", true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct imap_match *m = imap_match_compile(a, cases[i].p, strlen(cases[i].p));
		bool got = imap_match_name(m, cases[i].n);
		CHECK(got == cases[i].want, "match(%s, %s) = %d", cases[i].p, cases[i].n, got);
	}
	/* Random: the NFA agrees with the reference. */
	for (int iter = 0; iter < 20000; iter++) {
		char p[16], n[16];
		size_t pl = (size_t)(rand_r(&seed) % 10), nl = (size_t)(rand_r(&seed) % 12);
		for (size_t i = 0; i < pl; i++)
			p[i] = alpha[rand_r(&seed) % 5];
		p[pl] = '\0';
		for (size_t i = 0; i < nl; i++)
			n[i] = nalpha[rand_r(&seed) % 3];
		n[nl] = '\0';
		struct imap_match *m = imap_match_compile(a, p, pl);
		bool got = imap_match_name(m, n), want = ref_match(p, n, 0, false);
		CHECK(got == want, "random match(%s, %s) = %d, want %d", p, n, got, want);
		if (iter % 1000 == 0)
			ma_arena_reset(a);
	}
	/* Pathological: long alternations against long names, fast. */
	{
		char pat[4001], name[1001];
		clock_t t0 = clock();
		for (size_t i = 0; i < 4000; i += 2) {
			pat[i] = (i / 2) % 2 ? '%' : '*';
			pat[i + 1] = 'a';
		}
		pat[4000] = '\0';
		memset(name, 'a', 1000);
		name[1000] = '\0';
		struct imap_match *m = imap_match_compile(a, pat, 4000);
		for (int i = 0; i < 1000; i++)
			CHECK(!imap_match_name(m, name), "2000 'a's can't match 1000");
		m = imap_match_compile(a, "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", 36);
		for (int i = 0; i < 1000; i++)
			CHECK(!imap_match_name(m, name), "no b");
		double dt = (double)(clock() - t0) / CLOCKS_PER_SEC;
		CHECK(dt < 5.0, "pathological patterns took %.2fs", dt);
	}
	ma_arena_destroy(&a);
}

/* ------------------------------------------------------------ date-time */

static void test_datetime(void)
{
	static const struct {
		const char *s;
		int ok;
		int64_t t;
		int32_t tz;
	} cases[] = {
		{ "17-Jul-1996 02:44:25 -0700", 0, 837596665, -420 },
		{ " 5-Nov-2020 10:11:12 +0130", 0, 1604565672, 90 },
		{ "5-Nov-2020 10:11:12 +0130", 0, 1604565672, 90 },
		{ "01-jan-1970 00:00:00 +0000", 0, 0, 0 },
		{ "29-Feb-2024 12:00:00 +0000", 0, 1709208000, 0 },
		{ "29-Feb-2023 12:00:00 +0000", -1, 0, 0 },
		{ "31-Apr-2020 12:00:00 +0000", -1, 0, 0 },
		{ "00-Jan-2020 12:00:00 +0000", -1, 0, 0 },
		{ "10-Foo-2020 12:00:00 +0000", -1, 0, 0 },
		{ "10-Jan-2020 24:00:00 +0000", -1, 0, 0 },
		{ "10-Jan-2020 12:60:00 +0000", -1, 0, 0 },
		{ "10-Jan-2020 12:00:00 0000", -1, 0, 0 },
		{ "10-Jan-2020 12:00:00 +0060", -1, 0, 0 },
		{ "10-Jan-2020 12:00:00", -1, 0, 0 },
		{ "10-Jan-2020 12:00:00 +00000", -1, 0, 0 },
		{ "", -1, 0, 0 },
		{ "123-Jan-2020 12:00:00 +0000", -1, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t t = -1;
		int32_t tz = -1;
		int rc = imap_parse_datetime(cases[i].s, strlen(cases[i].s), &t, &tz);
		CHECK(rc == cases[i].ok, "parse(%s) = %d", cases[i].s, rc);
		if (rc == 0 && cases[i].ok == 0)
			CHECK(t == cases[i].t && tz == cases[i].tz,
			      "parse(%s) = %lld %d, want %lld %d", cases[i].s,
			      (long long)t, tz, (long long)cases[i].t, cases[i].tz);
	}
}

/* ------------------------------------------------------------ fake conn */

struct ma_conn {
	unsigned char in[1 << 16];
	size_t in_len;
	char *out;		/* heap, grows */
	size_t out_len, out_cap;
	void *session;
	bool closed;
};

const unsigned char *ma_conn_input(struct ma_conn *conn, size_t *len_r)
{
	*len_r = conn->in_len;
	return conn->in;
}

void ma_conn_input_consume(struct ma_conn *conn, size_t n)
{
	memmove(conn->in, conn->in + n, conn->in_len - n);
	conn->in_len -= n;
}

void ma_conn_pause_input(struct ma_conn *conn) { (void)conn; }
bool ma_conn_command_allowed(struct ma_conn *conn) { (void)conn; return true; }
void ma_conn_resume_input(struct ma_conn *conn) { (void)conn; }
void ma_conn_input_clear(struct ma_conn *conn) { conn->in_len = 0; }

int ma_conn_write(struct ma_conn *conn, const void *data, size_t len)
{
	if (conn->out_len + len + 1 > conn->out_cap) {
		size_t cap = conn->out_cap ? conn->out_cap : 4096;
		while (cap < conn->out_len + len + 1)
			cap *= 2;
		if (cap > ((size_t)64 << 20))
			return -1;
		conn->out = ma_realloc(conn->out, cap);
		conn->out_cap = cap;
	}
	memcpy(conn->out + conn->out_len, data, len);
	conn->out_len += len;
	conn->out[conn->out_len] = '\0';
	return 0;
}

bool ma_conn_output_full(const struct ma_conn *conn) { (void)conn; return false; }
void ma_conn_want_drain(struct ma_conn *conn) { (void)conn; }
bool ma_conn_is_tls(const struct ma_conn *conn) { (void)conn; return false; }
bool ma_conn_starttls_available(const struct ma_conn *conn) { (void)conn; return false; }
int ma_conn_starttls(struct ma_conn *conn) { (void)conn; return -1; }
bool ma_conn_plaintext_auth_allowed(const struct ma_conn *conn) { (void)conn; return true; }
struct ma_core *ma_conn_core(const struct ma_conn *conn) { (void)conn; return NULL; }
void ma_conn_set_session(struct ma_conn *conn, void *session) { conn->session = session; }
void *ma_conn_session(const struct ma_conn *conn) { return conn->session; }
void ma_conn_set_summary(struct ma_conn *conn, const char *text) { (void)conn; (void)text; }
void ma_conn_set_user(struct ma_conn *conn, const char *user) { (void)conn; (void)user; }
const char *ma_conn_id(const struct ma_conn *conn) { (void)conn; return "test"; }
void ma_conn_close(struct ma_conn *conn, const char *reason) { (void)reason; conn->closed = true; }
const char *ma_sasl_mechanisms(const struct ma_conn *conn) { (void)conn; return "PLAIN"; }

void ma_conn_log(struct ma_conn *conn, int level, const char *fmt, ...)
{
	(void)conn;
	(void)level;
	(void)fmt;
}

/* ------------------------------------------------------------ session */

static struct ma_conn *conn;
static struct imap_session *sess;

/* Runs one command line; returns the output it produced. */
static const char *run(const char *line)
{
	size_t len = strlen(line);

	conn->out_len = 0;
	conn->out[0] = '\0';
	memcpy(conn->in + conn->in_len, line, len);
	conn->in_len += len;
	memcpy(conn->in + conn->in_len, "\r\n", 2);
	conn->in_len += 2;
	imap_protocol_ops.on_input(conn);
	return conn->out;
}

static const char *sync_out(bool allow)
{
	conn->out_len = 0;
	conn->out[0] = '\0';
	imap_sync_report(sess, allow);
	return conn->out;
}

static void uids_are(const uint32_t *want, uint32_t n, int line)
{
	bool ok = sess->sel != NULL && sess->sel->count == n;

	for (uint32_t i = 0; ok && i < n; i++)
		ok = sess->sel->msgs[i].uid == want[i];
	if (!ok) {
		failures++;
		printf("FAIL %s:%d: uid list:", __FILE__, line);
		for (uint32_t i = 0; sess->sel != NULL && i < sess->sel->count; i++)
			printf(" %u", sess->sel->msgs[i].uid);
		printf("\n");
	}
}
#define UIDS(...) do { static const uint32_t w_[] = { __VA_ARGS__ }; \
	uids_are(w_, sizeof(w_) / sizeof(w_[0]), __LINE__); } while (0)

#define OUT_IS(got, want) CHECK(strcmp((got), (want)) == 0, "output:\n%s---want:\n%s---", (got), (want))

static void append_n(struct ma_user *u, const char *box, unsigned n, uint32_t flags)
{
	static const char msg[] = "Subject: t\r\n\r\nbody\r\n";
	struct ma_error_info err;

	for (unsigned i = 0; i < n; i++) {
		struct ma_append_msg am = { .data = msg, .size = sizeof(msg) - 1, .flags = flags };
		CHECK(ma_store_append(u, box, &am, 1, NULL, NULL, &err) == 0, "append: %s", err.text);
	}
}

/* 100,000 messages: SELECT and FETCH 1:* (UID FLAGS) work from the view
 * alone (no message is read), so they take well under a second or two
 * even under ASan. */
static void test_big(struct ma_user *other)
{
	static const char msg[] = "Subject: big\r\n\r\nbody\r\n";
	const unsigned n = 100000, batch = 10000;
	struct ma_append_msg *am = ma_malloc0(batch * sizeof(*am));
	struct ma_error_info err;
	const char *out;
	double t0, dt;

	sess->state = IMAP_STATE_AUTH;
	run("e CREATE big");
	for (unsigned i = 0; i < batch; i++) {
		am[i].data = msg;
		am[i].size = sizeof(msg) - 1;
		am[i].flags = i % 3 == 0 ? MA_FLAG_SEEN : 0;
	}
	for (unsigned done = 0; done < n; done += batch)
		CHECK(ma_store_append(other, "big", am, batch, NULL, NULL, &err) == 0,
		      "bulk append: %s", err.text);
	free(am);

	t0 = ma_monotonic();
	out = run("f SELECT big");
	dt = ma_monotonic() - t0;
	CHECK(strstr(out, "* 100000 EXISTS\r\n") != NULL && strstr(out, "* OK [UNSEEN 2]") != NULL &&
	      strstr(out, "f OK [READ-WRITE]") != NULL, "big select: %.300s", out);
	CHECK(dt < 3.0, "SELECT of 100000 took %.2fs", dt);
	printf("SELECT of %u messages: %.3fs\n", n, dt);

	t0 = ma_monotonic();
	out = run("g FETCH 1:* (UID FLAGS)");
	dt = ma_monotonic() - t0;
	if (strstr(out, "not implemented") == NULL) {
		CHECK(strstr(out, "* 100000 FETCH (UID 100000 FLAGS (\\Seen))\r\n") != NULL &&
		      strstr(out, "* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n") != NULL &&
		      strstr(out, "g OK") != NULL, "big fetch: %.300s", out);
		CHECK(dt < 5.0, "FETCH 1:* (UID FLAGS) of 100000 took %.2fs", dt);
		printf("FETCH 1:* (UID FLAGS) of %u messages: %.3fs\n", n, dt);
	}
	run("h UNSELECT");
}

/* A session on a fake conn, logged in as sel@example.com. */
static void start_session(struct ma_store *store)
{
	struct ma_error_info err;

	conn = calloc(1, sizeof(*conn));
	ma_conn_write(conn, "", 0);
	CHECK(imap_protocol_ops.on_connect(conn) == 0, "connect");
	sess = conn->session;
	CHECK(strncmp(conn->out, "* OK ", 5) == 0, "greeting %s", conn->out);
	sess->user = ma_store_user_open(store, "sel@example.com", &err);
	CHECK(sess->user != NULL, "user open: %s", err.text);
	sess->user_name = ma_strdup("sel@example.com");
	sess->state = IMAP_STATE_AUTH;
}

static void end_session(void)
{
	imap_protocol_ops.on_close(conn, MA_CLOSE_NORMAL);
	free(conn->out);
	free(conn);
	conn = NULL;
	sess = NULL;
}

static void test_session(struct ma_store *store)
{
	struct ma_error_info err;
	struct ma_user *other;
	struct ma_mailbox *view;
	const char *out;
	uint32_t uids[4];

	start_session(store);
	other = ma_store_user_open(store, "sel@example.com", &err);
	append_n(other, "INBOX", 5, 0);

	out = run("a SELECT INBOX");
	{
		struct ma_mailbox_status st;
		char want[1024];
		CHECK(ma_store_mailbox_status(other, "INBOX", &st, &err) == 0, "status");
		snprintf(want, sizeof(want),
			 "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
			 "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted.\r\n"
			 "* 5 EXISTS\r\n* 0 RECENT\r\n* OK [UNSEEN 1] First unseen.\r\n"
			 "* OK [UIDVALIDITY %u] UIDs valid\r\n* OK [UIDNEXT 6] Predicted next UID\r\n"
			 "a OK [READ-WRITE] Select completed\r\n", st.uidvalidity);
		OUT_IS(out, want);
	}
	CHECK(sess->state == IMAP_STATE_SELECTED && sess->sel != NULL, "selected");
	UIDS(1, 2, 3, 4, 5);
	CHECK(imap_msg_index(sess->sel, 3) == 2 && imap_msg_index(sess->sel, 9) == -1 &&
	      imap_msg_index(sess->sel, 0) == -1, "msg_index");

	/* Nothing changed: nothing said, either way. */
	OUT_IS(sync_out(false), "");
	OUT_IS(sync_out(true), "");

	/* Another view: expunge 2 and 4, \Seen on 3, one new message. */
	CHECK(ma_mailbox_open(other, "INBOX", false, &view, &err) == 0, "open");
	uids[0] = 2; uids[1] = 4;
	CHECK(ma_mailbox_expunge(view, uids, 2, &err) == 0, "expunge");
	uids[0] = 3;
	CHECK(ma_mailbox_store_flags(view, uids, 1, MA_FLAGS_ADD, MA_FLAG_SEEN, NULL, 0,
				     0, NULL, NULL, &err) == 0, "store");
	append_n(other, "INBOX", 1, 0);

	/* FETCH/STORE/SEARCH time: no EXPUNGE, numbers hold. */
	OUT_IS(sync_out(false), "* 3 FETCH (UID 3 FLAGS (\\Seen))\r\n* 6 EXISTS\r\n");
	UIDS(1, 2, 3, 4, 5, 6);
	CHECK(sess->sel->msgs[2].flags == MA_FLAG_SEEN, "flags of 3 updated");
	OUT_IS(sync_out(false), "");

	/* More while expunges are pending: expunge 5, \Flagged on 1, keyword
	 * on 6 (a new keyword: FLAGS line first). */
	uids[0] = 5;
	CHECK(ma_mailbox_expunge(view, uids, 1, &err) == 0, "expunge 5");
	uids[0] = 1;
	CHECK(ma_mailbox_store_flags(view, uids, 1, MA_FLAGS_ADD, MA_FLAG_FLAGGED, NULL, 0,
				     0, NULL, NULL, &err) == 0, "store 1");
	{
		const char *kw[] = { "$Work" };
		uids[0] = 6;
		CHECK(ma_mailbox_store_flags(view, uids, 1, MA_FLAGS_ADD, 0, kw, 1,
					     0, NULL, NULL, &err) == 0, "store kw");
	}
	OUT_IS(sync_out(false),
	       "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)\r\n"
	       "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] Flags permitted.\r\n"
	       "* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n"
	       "* 6 FETCH (UID 6 FLAGS ($Work))\r\n");
	UIDS(1, 2, 3, 4, 5, 6);

	/* Now expunges may go: 2, 4, 5 -> 2, 3, 3. */
	OUT_IS(sync_out(true), "* 2 EXPUNGE\r\n* 3 EXPUNGE\r\n* 3 EXPUNGE\r\n");
	UIDS(1, 3, 6);
	OUT_IS(sync_out(true), "");

	/* Plain path: expunge + flag + append, all reported at once. */
	uids[0] = 3;
	CHECK(ma_mailbox_expunge(view, uids, 1, &err) == 0, "expunge 3");
	uids[0] = 6;
	CHECK(ma_mailbox_store_flags(view, uids, 1, MA_FLAGS_ADD, MA_FLAG_ANSWERED, NULL, 0,
				     0, NULL, NULL, &err) == 0, "store 6");
	append_n(other, "INBOX", 2, MA_FLAG_DRAFT);
	OUT_IS(sync_out(true), "* 2 EXPUNGE\r\n* 4 EXISTS\r\n"
	       "* 2 FETCH (UID 6 FLAGS (\\Answered $Work))\r\n");
	UIDS(1, 6, 7, 8);

	/* Appends only while expunges are not allowed: no copy, no pending. */
	append_n(other, "INBOX", 1, 0);
	OUT_IS(sync_out(false), "* 5 EXISTS\r\n");
	UIDS(1, 6, 7, 8, 9);

	/* A change the command reported itself (STORE) is not reported
	 * again; another message's change in the same sync still is. */
	uids[0] = 1;
	CHECK(ma_mailbox_store_flags(sess->sel->box, uids, 1, MA_FLAGS_ADD, MA_FLAG_SEEN,
				     NULL, 0, 0, NULL, NULL, &err) == 0, "own store");
	imap_sync_flags_reported(sess, uids, 1);
	uids[0] = 8;
	CHECK(ma_mailbox_store_flags(view, uids, 1, MA_FLAGS_ADD, MA_FLAG_SEEN,
				     NULL, 0, 0, NULL, NULL, &err) == 0, "other store");
	OUT_IS(sync_out(false), "* 4 FETCH (UID 8 FLAGS (\\Seen \\Draft))\r\n");
	CHECK(sess->sel->msgs[0].flags == (MA_FLAG_SEEN | MA_FLAG_FLAGGED), "own flags in view");
	uids[0] = 1;
	CHECK(ma_mailbox_store_flags(view, uids, 1, MA_FLAGS_REMOVE, MA_FLAG_SEEN,
				     NULL, 0, 0, NULL, NULL, &err) == 0, "other store 1");
	OUT_IS(sync_out(true), "* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n");

	/* EXPUNGE command: \Deleted set elsewhere counts. */
	uids[0] = 7; uids[1] = 9;
	CHECK(ma_mailbox_store_flags(view, uids, 2, MA_FLAGS_ADD, MA_FLAG_DELETED, NULL, 0,
				     0, NULL, NULL, &err) == 0, "store deleted");
	out = run("b EXPUNGE");
	OUT_IS(out, "* 3 FETCH (UID 7 FLAGS (\\Deleted \\Draft))\r\n"
	       "* 5 FETCH (UID 9 FLAGS (\\Deleted))\r\n"
	       "* 3 EXPUNGE\r\n* 4 EXPUNGE\r\nb OK Expunge completed\r\n");
	UIDS(1, 6, 8);

	/* The mailbox vanishes under the session: BYE. */
	ma_mailbox_close(&view);
	out = run("c CREATE tmp");
	OUT_IS(out, "c OK Create completed\r\n");
	out = run("d SELECT tmp");
	CHECK(strstr(out, "* 0 EXISTS\r\n") != NULL, "%s", out);
	CHECK(ma_store_mailbox_delete(other, "tmp", &err) == 0, "delete");
	out = sync_out(true);
	CHECK(strncmp(out, "* BYE ", 6) == 0 && conn->closed, "bye: %s", out);
	CHECK(sess->sel == NULL, "unselected");

	end_session();
	start_session(store);
	test_big(other);
	end_session();
	ma_store_user_close(&other);
}

int main(void)
{
	const char *root = getenv("MA_TEST_BUILD_ROOT");
	char so[4096], tmpl[] = "/tmp/test-imap-mailbox-XXXXXX", conf[8192];
	struct ma_config *cfg;
	char *cerr = NULL;
	const char *ierr = NULL;
	void *dl, *pctx = NULL;
	const struct ma_plugin *desc;
	struct ma_loaded_plugin lp;
	struct ma_store *store;

	test_matcher();
	test_datetime();

	if (root == NULL)
		root = ".";
	snprintf(so, sizeof(so), "%s/backends/lmdb/store-lmdb.so", root);
	dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (dl == NULL || (desc = dlsym(dl, "mailaccess_plugin")) == NULL) {
		printf("FAIL: dlopen %s: %s\n", so, dlerror());
		return 1;
	}
	if (mkdtemp(tmpl) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(conf, sizeof(conf), "store {\n backend = lmdb\n path = %s\n map_size = 512M\n}\n",
		 tmpl);
	cfg = ma_config_parse("test", conf, strlen(conf), &cerr);
	if (cfg == NULL || desc->init(NULL, ma_config_child(ma_config_root(cfg), "store"),
				      &pctx, &ierr) < 0) {
		printf("FAIL: store init: %s\n", cerr != NULL ? cerr : ierr);
		return 1;
	}
	memset(&lp, 0, sizeof(lp));
	lp.desc = desc;
	lp.ctx = pctx;
	lp.path = so;
	store = ma_store_create(NULL, &lp, &cerr);
	if (store == NULL) {
		printf("FAIL: ma_store_create: %s\n", cerr);
		return 1;
	}
	test_session(store);
	ma_store_destroy(&store);
	if (desc->deinit != NULL)
		desc->deinit(pctx);
	ma_config_free(&cfg);
	dlclose(dl);
	{
		char cmd[256];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
		if (system(cmd) != 0)
			printf("warning: could not remove %s\n", tmpl);
	}
	if (failures == 0)
		printf("test-imap-mailbox: all passed\n");
	return failures == 0 ? 0 : 1;
}
