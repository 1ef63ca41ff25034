/*
 * test-pop3-session.c - the whole session (pop3-session.c, pop3-commands.c,
 * pop3-plugin.c) against a fake core: conn.h with an input buffer and an
 * output that fills up, auth.h with answers from the "loop", store.h with
 * one INBOX in memory that records expunges. Checks states, replies byte
 * for byte, DELE/QUIT/drop semantics, pipelining, streaming under
 * backpressure, the lock, STLS, AUTH and the settings checks.
 */
#include "pop3-session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int failures;

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		failures++; \
		printf("FAIL %s:%d: ", __FILE__, __LINE__); \
		printf(__VA_ARGS__); \
		printf("\n"); \
	} \
} while (0)

/* ------------------------------------------------------- fake conn */

struct ma_conn {
	unsigned char in[1 << 16];
	size_t in_len;
	bool paused, closed, close_done, tls_wait;
	char *out;
	size_t out_len, out_cap;
	size_t pending, high_water;
	bool want_drain;
	void *session;
	bool tls, starttls_avail, plaintext_ok;
	char user[256];
	char summary[256];
	/* pending auth */
	ma_auth_callback *auth_cb;
	void *auth_ctx;
	enum ma_auth_status auth_status;
	char auth_user[64];
	unsigned input_calls;
};

struct ma_sasl {
	struct ma_conn *conn;
	ma_auth_callback *cb;
	void *ctx;
};

static const struct ma_protocol_ops *ops = &pop3_protocol_ops;

const unsigned char *ma_conn_input(struct ma_conn *conn, size_t *len_r)
{
	*len_r = conn->in_len;
	return conn->in;
}

void ma_conn_input_consume(struct ma_conn *conn, size_t n)
{
	if (n > conn->in_len)
		abort();
	memmove(conn->in, conn->in + n, conn->in_len - n);
	conn->in_len -= n;
}

void ma_conn_pause_input(struct ma_conn *conn) { conn->paused = true; }
void ma_conn_resume_input(struct ma_conn *conn) { conn->paused = false; }

int ma_conn_write(struct ma_conn *conn, const void *data, size_t len)
{
	if (conn->closed)
		return 0;
	if (conn->out_len + len + 1 > conn->out_cap) {
		conn->out_cap = (conn->out_len + len + 1) * 2;
		conn->out = realloc(conn->out, conn->out_cap);
		if (conn->out == NULL)
			abort();
	}
	memcpy(conn->out + conn->out_len, data, len);
	conn->out_len += len;
	conn->out[conn->out_len] = '\0';
	conn->pending += len;
	return 0;
}

bool ma_conn_output_full(const struct ma_conn *conn)
{
	return conn->pending > conn->high_water;
}

void ma_conn_want_drain(struct ma_conn *conn) { conn->want_drain = true; }
bool ma_conn_is_tls(const struct ma_conn *conn) { return conn->tls; }
bool ma_conn_starttls_available(const struct ma_conn *conn)
{
	return conn->starttls_avail && !conn->tls;
}

int ma_conn_starttls(struct ma_conn *conn)
{
	conn->in_len = 0;	/* pipelined input is dropped */
	conn->tls = true;
	conn->tls_wait = true;
	return 0;
}

bool ma_conn_plaintext_auth_allowed(const struct ma_conn *conn)
{
	return conn->plaintext_ok || conn->tls;
}

static int fake_core;
struct ma_core *ma_conn_core(const struct ma_conn *conn)
{
	return (struct ma_core *)&fake_core;
}

const char *ma_conn_id(const struct ma_conn *conn) { return "SID1"; }
void ma_conn_set_session(struct ma_conn *conn, void *s) { conn->session = s; }
void *ma_conn_session(const struct ma_conn *conn) { return conn->session; }
void ma_conn_set_user(struct ma_conn *conn, const char *user)
{
	snprintf(conn->user, sizeof(conn->user), "%s", user);
}
void ma_conn_set_summary(struct ma_conn *conn, const char *text)
{
	snprintf(conn->summary, sizeof(conn->summary), "%s", text);
}
void ma_conn_log(struct ma_conn *conn, int level, const char *fmt, ...)
{
}
void ma_conn_close(struct ma_conn *conn, const char *reason)
{
	conn->closed = true;
}

/* ------------------------------------------------------- fake auth */

static void fake_auth_decide(struct ma_conn *conn, const char *user,
			     const char *password)
{
	if (strcmp(password, "secret") == 0) {
		conn->auth_status = MA_AUTH_OK;
		snprintf(conn->auth_user, sizeof(conn->auth_user), "%s", user);
	} else if (strcmp(password, "temp") == 0) {
		conn->auth_status = MA_AUTH_TEMPFAIL;
	} else if (strcmp(password, "delayed") == 0) {
		conn->auth_status = MA_AUTH_DELAYED;
	} else {
		conn->auth_status = MA_AUTH_FAIL;
	}
}

void ma_auth_verify(struct ma_conn *conn, const char *user,
		    const char *password, ma_auth_callback *cb, void *ctx)
{
	if (conn->auth_cb != NULL)
		abort();	/* never two at once */
	fake_auth_decide(conn, user, password);
	conn->auth_cb = cb;
	conn->auth_ctx = ctx;
}

const char *ma_sasl_mechanisms(const struct ma_conn *conn)
{
	return ma_conn_plaintext_auth_allowed(conn) ? "PLAIN LOGIN" : "";
}

static struct ma_sasl fake_sasl;

/* fake PLAIN: the response is "user secret" in clear, not base64 */
static enum ma_sasl_result fake_sasl_step(struct ma_sasl *sasl, const char *resp)
{
	char user[64], pass[64];

	if (strcmp(resp, "*") == 0)
		return MA_SASL_CANCELLED;
	if (sscanf(resp, "%63s %63s", user, pass) != 2)
		return MA_SASL_ERROR;
	fake_auth_decide(sasl->conn, user, pass);
	sasl->conn->auth_cb = sasl->cb;
	sasl->conn->auth_ctx = sasl->ctx;
	return MA_SASL_PENDING;
}

enum ma_sasl_result ma_sasl_begin(struct ma_conn *conn, const char *mech,
				  const char *initial, ma_auth_callback *cb,
				  void *ctx, struct ma_sasl **sasl_r,
				  const char **out_r)
{
	*out_r = "Malformed";
	if (strcasecmp(mech, "PLAIN") != 0) {
		*out_r = "Unsupported mechanism";
		return MA_SASL_ERROR;
	}
	fake_sasl.conn = conn;
	fake_sasl.cb = cb;
	fake_sasl.ctx = ctx;
	*sasl_r = &fake_sasl;
	if (initial == NULL) {
		*out_r = "";
		return MA_SASL_CHALLENGE;
	}
	return fake_sasl_step(&fake_sasl, initial);
}

enum ma_sasl_result ma_sasl_continue(struct ma_sasl *sasl, const char *line,
				     size_t len, const char **out_r)
{
	char buf[128];

	snprintf(buf, sizeof(buf), "%.*s", (int)len, line);
	*out_r = "Malformed";
	return fake_sasl_step(sasl, buf);
}

/* ------------------------------------------------------ fake store */

#define MAX_MSGS 8
static struct ma_msg box_msgs[MAX_MSGS];
static const char *box_data[MAX_MSGS];
static uint32_t box_count;
static uint32_t box_uidvalidity = 1700000000u;
static unsigned expunge_calls, store_flags_calls;
static uint32_t expunged[MAX_MSGS];
static unsigned n_expunged;
static bool expunge_fail;
static int msg_reads_open, user_opens, box_opens;
static int fake_user, fake_store;
static char *big_message;

static void box_reset(void)
{
	static const char *msgs[] = {
		"Subject: one\r\n\r\nbody one\r\n",
		"Subject: two\r\n\r\n.dot line\r\n..two dots\r\nend\r\n",
		"Subject: three\r\nX: y\r\n\r\nl1\r\nl2\r\nl3\r\n",
		"Subject: 8bit\r\n\r\n\xc3\xa4\xc3\xb6\xc3\xbc\r\nno final crlf",
	};
	box_count = 4;
	for (uint32_t i = 0; i < box_count; i++) {
		memset(&box_msgs[i], 0, sizeof(box_msgs[i]));
		box_msgs[i].uid = 10 + i * 5;
		box_data[i] = msgs[i];
		box_msgs[i].size = strlen(msgs[i]);
	}
	expunge_calls = 0;
	store_flags_calls = 0;
	n_expunged = 0;
	expunge_fail = false;
}

/* The maildrop lock: the real one is a flock under state_dir (lock.c,
 * tested with the daemon); here a table of held names stands in. */
#define FAKE_LOCKS 8
static char fake_lock_names[FAKE_LOCKS][64];

/* commands_per_second is the core's (conn.c, tested there). */
bool ma_conn_command_allowed(struct ma_conn *conn)
{
	(void)conn;
	return true;
}

int ma_core_lock_try(struct ma_core *core, const char *kind, const char *name)
{
	int i, free_slot = -1;

	(void)core;
	(void)kind;
	for (i = 0; i < FAKE_LOCKS; i++) {
		if (strcmp(fake_lock_names[i], name) == 0) {
			errno = EWOULDBLOCK;
			return -1;
		}
		if (free_slot < 0 && fake_lock_names[i][0] == '\0')
			free_slot = i;
	}
	if (free_slot < 0) {
		errno = ENOLCK;
		return -1;
	}
	snprintf(fake_lock_names[free_slot], sizeof(fake_lock_names[0]), "%s", name);
	return free_slot;
}

void ma_core_unlock(int handle)
{
	if (handle >= 0 && handle < FAKE_LOCKS)
		fake_lock_names[handle][0] = '\0';
}

struct ma_store *ma_core_store(const struct ma_core *core)
{
	return (struct ma_store *)&fake_store;
}

struct ma_user *ma_store_user_open(struct ma_store *store, const char *user,
				   struct ma_error_info *err)
{
	user_opens++;
	return (struct ma_user *)&fake_user;
}

void ma_store_user_close(struct ma_user **user)
{
	user_opens--;
	*user = NULL;
}

int ma_mailbox_open(struct ma_user *user, const char *name, bool readonly,
		    struct ma_mailbox **box_r, struct ma_error_info *err)
{
	if (strcmp(name, "INBOX") != 0)
		abort();
	box_opens++;
	*box_r = (struct ma_mailbox *)&box_count;
	return 0;
}

void ma_mailbox_close(struct ma_mailbox **box)
{
	box_opens--;
	*box = NULL;
}

int ma_mailbox_messages(struct ma_mailbox *box, const struct ma_msg **msgs_r,
			uint32_t *count_r, struct ma_mailbox_status *st_r,
			struct ma_error_info *err)
{
	*msgs_r = box_msgs;
	*count_r = box_count;
	st_r->uidvalidity = box_uidvalidity;
	st_r->messages = box_count;
	return 0;
}

static void fake_release(struct ma_msg_data *d)
{
	msg_reads_open--;
}

int ma_mailbox_msg_read(struct ma_mailbox *box, uint32_t uid,
			struct ma_msg_data *out, struct ma_error_info *err)
{
	for (uint32_t i = 0; i < box_count; i++) {
		if (box_msgs[i].uid == uid) {
			out->data = (const unsigned char *)box_data[i];
			out->size = box_msgs[i].size;
			out->release = fake_release;
			msg_reads_open++;
			return 0;
		}
	}
	err->code = MA_ERR_EXPUNGED;
	return -1;
}

void ma_msg_data_release(struct ma_msg_data *d)
{
	if (d->release != NULL)
		d->release(d);
	d->release = NULL;
}

static struct ma_conn *current_conn;
static unsigned expunge_not_in_update;

int ma_mailbox_expunge(struct ma_mailbox *box, const uint32_t *uids,
		       unsigned n, struct ma_error_info *err)
{
	struct pop3_session *s = current_conn != NULL ?
		current_conn->session : NULL;

	/* only QUIT from TRANSACTION (the UPDATE state) may expunge */
	if (s == NULL || s->state != POP3_STATE_UPDATE)
		expunge_not_in_update++;
	expunge_calls++;
	if (expunge_fail) {
		err->code = MA_ERR_TEMP;
		snprintf(err->text, sizeof(err->text), "disk on fire");
		return -1;
	}
	for (unsigned i = 0; i < n && n_expunged < MAX_MSGS; i++)
		expunged[n_expunged++] = uids[i];
	return 0;
}

int ma_mailbox_store_flags(struct ma_mailbox *box, const uint32_t *uids,
			   unsigned n, enum ma_flag_op op, uint32_t flags,
			   const char *const *keywords, unsigned n_keywords,
			   uint64_t unchangedsince, uint32_t *failed_r,
			   unsigned *n_failed_r, struct ma_error_info *err)
{
	store_flags_calls++;
	*n_failed_r = 0;
	return 0;
}

const char *ma_error_name(enum ma_error code) { return "ERR"; }

/* ------------------------------------------------------ fake utils */

void *ma_malloc0(size_t size)
{
	void *p = calloc(1, size);

	if (p == NULL)
		abort();
	return p;
}

void ma_wipe(void *p, size_t len)
{
	volatile unsigned char *v = p;

	while (len-- > 0)
		*v++ = 0;
}

bool ma_slice_ieq(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* ----------------------------------------------------- fake config */

struct ma_config_section {
	const char *keys[4];
	const char *values[4];
};

const char *ma_config_get(const struct ma_config_section *s, const char *key,
			  const char *def)
{
	for (int i = 0; i < 4 && s->keys[i] != NULL; i++)
		if (strcmp(s->keys[i], key) == 0)
			return s->values[i];
	return def;
}

const char *ma_config_where(const struct ma_config_section *s, const char *key)
{
	return "test.conf:7";
}

int ma_config_get_seconds(const struct ma_config_section *s, const char *key,
			  double def, double *out, char **error_r)
{
	const char *v = ma_config_get(s, key, NULL);
	char *end;

	if (v == NULL) {
		*out = def;
		return 0;
	}
	*out = strtod(v, &end);
	if (*end != '\0') {
		*error_r = strdup("test.conf:7: login_delay: bad duration");
		return -1;
	}
	return 0;
}

extern const struct ma_plugin mailaccess_plugin;

/* ---------------------------------------------------------- driver */

static struct ma_conn *conn_new(void)
{
	struct ma_conn *c = calloc(1, sizeof(*c));

	c->high_water = 1 << 20;
	c->plaintext_ok = true;
	current_conn = c;
	CHECK(ops->on_connect(c) == 0, "on_connect");
	return c;
}

/* Runs the "loop" until nothing moves: input, drained output, auth
 * answers, TLS, close. */
static void pump(struct ma_conn *c)
{
	for (int guard = 0; guard < 1000000; guard++) {
		bool moved = false;

		if (c->closed) {
			if (!c->close_done) {
				c->close_done = true;
				ops->on_close(c, MA_CLOSE_NORMAL);
			}
			return;
		}
		if (c->tls_wait) {
			c->tls_wait = false;
			ops->on_tls_ready(c);
			moved = true;
		}
		if (c->auth_cb != NULL) {
			ma_auth_callback *cb = c->auth_cb;

			c->auth_cb = NULL;
			cb(c, c->auth_status, c->auth_user, c->auth_ctx);
			moved = true;
		}
		if (c->pending > 0) {
			bool was_full = ma_conn_output_full(c);

			c->pending = 0;	/* the client read everything */
			if (was_full || c->want_drain) {
				c->want_drain = false;
				ops->on_output_drained(c);
				moved = true;
			}
		}
		if (!c->paused && c->in_len > 0) {
			size_t before = c->in_len;

			c->input_calls++;
			ops->on_input(c);
			if (c->in_len != before)
				moved = true;
		}
		if (!moved)
			return;
	}
	CHECK(0, "pump: no end");
}

static void feed_bytes(struct ma_conn *c, const void *data, size_t len)
{
	if (c->in_len + len > sizeof(c->in))
		abort();
	memcpy(c->in + c->in_len, data, len);
	c->in_len += len;
}

static void feed(struct ma_conn *c, const char *s)
{
	feed_bytes(c, s, strlen(s));
}

/* Feeds s one byte at a time (pumping after each). */
static void feed_slow(struct ma_conn *c, const char *s)
{
	char one[2] = { 0, 0 };

	for (; *s != '\0'; s++) {
		one[0] = *s;
		feed(c, one);
		pump(c);
	}
}

/* Returns and clears the output so far. */
static char *take(struct ma_conn *c)
{
	static char buf[8 << 20];

	snprintf(buf, sizeof(buf), "%s", c->out != NULL ? c->out : "");
	c->out_len = 0;
	if (c->out != NULL)
		c->out[0] = '\0';
	return buf;
}

static void expect_out(struct ma_conn *c, const char *what, const char *want)
{
	const char *got = take(c);

	CHECK(strcmp(got, want) == 0, "%s:\n--- got:\n%s\n--- want:\n%s", what,
	      got, want);
}

static void conn_free(struct ma_conn *c)
{
	if (!c->close_done) {
		c->closed = true;
		pump(c);
	}
	free(c->out);
	free(c);
}

static void login(struct ma_conn *c)
{
	take(c);
	feed(c, "USER bob\r\nPASS secret\r\n");
	pump(c);
	expect_out(c, "login", "+OK Send your password.\r\n+OK Logged in.\r\n");
}

/* ----------------------------------------------------------- tests */

static void test_authorization(void)
{
	struct ma_conn *c;

	box_reset();
	c = conn_new();
	c->starttls_avail = true;
	expect_out(c, "greeting", "+OK mailaccess ready.\r\n");

	feed(c, "capa\r\n");
	pump(c);
	expect_out(c, "CAPA before login",
		   "+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\n"
		   "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
		   "SASL PLAIN LOGIN\r\nSTLS\r\nEXPIRE NEVER\r\nUTF8 USER\r\n"
		   "IMPLEMENTATION mailaccess\r\n.\r\n");

	feed(c, "STAT\r\nPASS x\r\nAPOP bob 0123\r\nUSER\r\n");
	pump(c);
	expect_out(c, "wrong state",
		   "-ERR Not logged in.\r\n"
		   "-ERR No user name given (USER first).\r\n"
		   "-ERR Unknown command.\r\n"
		   "-ERR Syntax: USER <name>\r\n");

	feed(c, "USER bob\r\nPASS wrong\r\n");
	pump(c);
	expect_out(c, "bad password", "+OK Send your password.\r\n"
		   "-ERR [AUTH] Authentication failed.\r\n");
	/* USER is forgotten after a failed PASS */
	feed(c, "PASS secret\r\n");
	pump(c);
	expect_out(c, "PASS after failure",
		   "-ERR No user name given (USER first).\r\n");

	feed(c, "USER bob\r\nPASS temp\r\nUSER bob\r\nPASS delayed\r\n");
	pump(c);
	expect_out(c, "tempfail/delayed", "+OK Send your password.\r\n"
		   "-ERR [SYS/TEMP] Temporary authentication failure, try again later\r\n"
		   "+OK Send your password.\r\n"
		   "-ERR [AUTH] Too many failed logins, try again later\r\n");

	/* password with spaces is the rest of the line */
	feed(c, "USER bob\r\nPASS  secret\r\n");
	pump(c);
	expect_out(c, "password with leading space",
		   "+OK Send your password.\r\n"
		   "-ERR [AUTH] Authentication failed.\r\n");

	feed(c, "QUIT\r\n");
	pump(c);
	expect_out(c, "quit", "+OK Logging out.\r\n");
	CHECK(c->close_done, "closed after QUIT");
	conn_free(c);

	/* plaintext refused */
	c = conn_new();
	c->plaintext_ok = false;
	take(c);
	feed(c, "CAPA\r\nUSER bob\r\nAUTH PLAIN\r\nAUTH\r\n");
	pump(c);
	expect_out(c, "no plaintext",
		   "+OK Capability list follows\r\nTOP\r\nUIDL\r\n"
		   "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
		   "EXPIRE NEVER\r\nUTF8\r\n"
		   "IMPLEMENTATION mailaccess\r\n.\r\n"
		   "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections.\r\n"
		   "-ERR [AUTH] Plaintext authentication disallowed on non-secure connections.\r\n"
		   "+OK\r\n.\r\n");
	conn_free(c);
}

static void test_transaction(void)
{
	struct ma_conn *c;

	box_reset();
	c = conn_new();
	login(c);
	CHECK(strcmp(c->user, "bob") == 0, "set_user");
	CHECK(user_opens == 1 && box_opens == 1, "store open");

	feed(c, "STAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 4\r\n");
	pump(c);
	expect_out(c, "STAT LIST UIDL",
		   "+OK 4 144\r\n"
		   "+OK 4 messages (144 octets)\r\n1 26\r\n2 44\r\n3 36\r\n4 38\r\n.\r\n"
		   "+OK 2 44\r\n"
		   "+OK\r\n1 0000000a6553f100\r\n2 0000000f6553f100\r\n"
		   "3 000000146553f100\r\n4 000000196553f100\r\n.\r\n"
		   "+OK 4 000000196553f100\r\n");

	feed(c, "RETR 2\r\n");
	pump(c);
	expect_out(c, "RETR dot-stuffed",
		   "+OK 44 octets\r\nSubject: two\r\n\r\n..dot line\r\n"
		   "...two dots\r\nend\r\n.\r\n");
	feed(c, "RETR 4\r\n");
	pump(c);
	expect_out(c, "RETR 8bit, no final CRLF",
		   "+OK 38 octets\r\nSubject: 8bit\r\n\r\n\xc3\xa4\xc3\xb6\xc3\xbc\r\n"
		   "no final crlf\r\n.\r\n");
	CHECK(msg_reads_open == 0, "message released (%d)", msg_reads_open);

	feed(c, "TOP 3 0\r\nTOP 3 2\r\nTOP 3\r\nTOP 3 x\r\n");
	pump(c);
	expect_out(c, "TOP",
		   "+OK\r\nSubject: three\r\nX: y\r\n\r\n.\r\n"
		   "+OK\r\nSubject: three\r\nX: y\r\n\r\nl1\r\nl2\r\n.\r\n"
		   "-ERR Syntax: TOP <message number> <lines>\r\n"
		   "-ERR Invalid number of lines.\r\n");

	feed(c, "DELE 2\r\nDELE 2\r\nRETR 2\r\nLIST 2\r\nTOP 2 1\r\nUIDL 2\r\n"
	     "STAT\r\nLIST\r\n");
	pump(c);
	expect_out(c, "DELE hides",
		   "+OK message 2 deleted\r\n"
		   "-ERR message 2 already deleted\r\n"
		   "-ERR message 2 already deleted\r\n"
		   "-ERR message 2 already deleted\r\n"
		   "-ERR message 2 already deleted\r\n"
		   "-ERR message 2 already deleted\r\n"
		   "+OK 3 100\r\n"
		   "+OK 3 messages (100 octets)\r\n1 26\r\n3 36\r\n4 38\r\n.\r\n");

	feed(c, "RETR 0\r\nRETR 5\r\nRETR -1\r\nRETR 1x\r\nRETR 99999999999\r\n"
	     "RETR\r\nLIST 1 2\r\nNOOP\r\n");
	pump(c);
	expect_out(c, "bad numbers",
		   "-ERR There's no message 0.\r\n"
		   "-ERR There's no message 5.\r\n"
		   "-ERR Invalid message number.\r\n"
		   "-ERR Invalid message number.\r\n"
		   "-ERR Invalid message number.\r\n"
		   "-ERR Syntax: RETR <message number>\r\n"
		   "-ERR Syntax: LIST [<message number>]\r\n"
		   "+OK\r\n");

	feed(c, "RSET\r\nSTAT\r\nDELE 1\r\nDELE 3\r\nUSER x\r\nSTLS\r\nCAPA\r\n");
	pump(c);
	expect_out(c, "RSET, state errors, CAPA after login",
		   "+OK maildrop has 4 messages (144 octets)\r\n"
		   "+OK 4 144\r\n"
		   "+OK message 1 deleted\r\n"
		   "+OK message 3 deleted\r\n"
		   "-ERR Command not valid in this state.\r\n"
		   "-ERR Command not valid in this state.\r\n"
		   "+OK Capability list follows\r\nTOP\r\nUIDL\r\n"
		   "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
		   "EXPIRE NEVER\r\nUTF8\r\n"
		   "IMPLEMENTATION mailaccess\r\n.\r\n");

	CHECK(expunge_calls == 0, "nothing expunged before QUIT");
	feed(c, "QUIT\r\n");
	pump(c);
	expect_out(c, "QUIT", "+OK Logging out, 2 messages deleted.\r\n");
	CHECK(expunge_calls == 1 && n_expunged == 2 && expunged[0] == 10 &&
	      expunged[1] == 20, "expunged exactly UIDs 10 and 20 (%u calls, %u)",
	      expunge_calls, n_expunged);
	CHECK(store_flags_calls == 1, "\\Seen stored for retrieved messages");
	CHECK(c->close_done, "closed");
	CHECK(user_opens == 0 && box_opens == 0 && msg_reads_open == 0,
	      "store released");
	CHECK(strstr(c->summary, "retr=2/82") != NULL &&
	      strstr(c->summary, "expunged=2") != NULL, "summary '%s'", c->summary);
	conn_free(c);
}

static void test_drop_and_fail(void)
{
	struct ma_conn *c;

	box_reset();
	c = conn_new();
	login(c);
	feed(c, "DELE 1\r\nDELE 2\r\n");
	pump(c);
	take(c);
	c->closed = true;	/* client went away */
	pump(c);
	CHECK(expunge_calls == 0, "a dropped connection deletes nothing");
	CHECK(user_opens == 0 && box_opens == 0, "store released on drop");
	conn_free(c);

	box_reset();
	expunge_fail = true;
	c = conn_new();
	login(c);
	feed(c, "DELE 1\r\nQUIT\r\n");
	pump(c);
	expect_out(c, "expunge fails",
		   "+OK message 1 deleted\r\n"
		   "-ERR [SYS/TEMP] Some deleted messages were not removed "
		   "(session SID1)\r\n");
	CHECK(expunge_calls == 1, "one expunge call");
	conn_free(c);

	/* QUIT with nothing deleted: no expunge call */
	box_reset();
	c = conn_new();
	login(c);
	feed(c, "QUIT\r\n");
	pump(c);
	expect_out(c, "QUIT clean", "+OK Logging out.\r\n");
	CHECK(expunge_calls == 0, "no empty expunge");
	conn_free(c);
}

static void test_pipelining(void)
{
	const char *script =
		"CAPA\r\nUSER bob\r\nPASS secret\r\nSTAT\r\nRETR 2\r\nLIST\r\n"
		"DELE 1\r\nUIDL 1\r\nTOP 3 1\r\nNOOP\r\nQUIT\r\n";
	char sequential[8192];
	struct ma_conn *c;

	/* one line at a time */
	box_reset();
	c = conn_new();
	take(c);
	feed_slow(c, script);
	snprintf(sequential, sizeof(sequential), "%s", take(c));
	CHECK(expunge_calls == 1 && n_expunged == 1 && expunged[0] == 10,
	      "slow: expunge");
	conn_free(c);

	/* everything in one packet, with an output that fills up at once */
	box_reset();
	c = conn_new();
	c->high_water = 7;
	take(c);
	feed(c, script);
	pump(c);
	expect_out(c, "pipelined = sequential", sequential);
	CHECK(expunge_calls == 1 && n_expunged == 1, "pipelined: expunge");
	conn_free(c);

	CHECK(strstr(sequential, "+OK 44 octets\r\nSubject: two") != NULL,
	      "RETR in pipeline");
}

static void test_big_stream(void)
{
	size_t n = 3 * 1024 * 1024, i;
	struct ma_conn *c;
	const char *out;

	box_reset();
	big_message = malloc(n + 1);
	for (i = 0; i < n; i++)
		big_message[i] = (i % 100 == 98) ? '\r' : (i % 100 == 99) ? '\n' :
			(i % 100 == 0) ? '.' : 'a';
	big_message[n] = '\0';
	box_data[0] = big_message;
	box_msgs[0].size = n;

	c = conn_new();
	c->high_water = 64 * 1024;
	login(c);
	feed(c, "RETR 1\r\nNOOP\r\n");
	pump(c);
	out = take(c);
	CHECK(strncmp(out, "+OK 3145728 octets\r\n..aaa", 25) == 0, "big start");
	CHECK(strlen(out) == 20 + n + n / 100 + 1 + 2 + 3 + 5,
	      "big length %zu", strlen(out));
	CHECK(strcmp(out + strlen(out) - 10, "\r\n.\r\n+OK\r\n") == 0,
	      "NOOP after the body");
	CHECK(c->input_calls > 1, "input paused during the stream");
	CHECK(msg_reads_open == 0, "released");
	conn_free(c);

	/* close in the middle of a stream: released */
	box_reset();
	box_data[0] = big_message;
	box_msgs[0].size = n;
	c = conn_new();
	c->high_water = 1024;
	login(c);
	feed(c, "RETR 1\r\n");
	ops->on_input(c);
	CHECK(msg_reads_open == 1, "held while parked");
	c->closed = true;
	pump(c);
	CHECK(msg_reads_open == 0, "released on close");
	conn_free(c);
	free(big_message);
}

static void test_lock(void)
{
	struct ma_conn *a, *b;

	box_reset();
	a = conn_new();
	login(a);
	b = conn_new();
	take(b);
	feed(b, "USER bob\r\nPASS secret\r\nSTAT\r\n");
	pump(b);
	expect_out(b, "second session",
		   "+OK Send your password.\r\n"
		   "-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n"
		   "-ERR Not logged in.\r\n");
	conn_free(a);
	feed(b, "USER bob\r\nPASS secret\r\n");
	pump(b);
	expect_out(b, "after the first left",
		   "+OK Send your password.\r\n+OK Logged in.\r\n");
	conn_free(b);
}

static void test_bad_commands(void)
{
	struct ma_conn *c = conn_new();
	char want[2048] = "";

	take(c);
	for (int i = 0; i < 9; i++) {
		feed(c, "BOGUS\r\n");
		strcat(want, "-ERR Unknown command.\r\n");
	}
	feed(c, "NOPE\r\nQUIT\r\n");
	strcat(want, "-ERR Too many bad commands, closing connection\r\n");
	pump(c);
	expect_out(c, "10 bad commands", want);
	CHECK(c->close_done, "closed after 10");
	conn_free(c);

	/* a good command resets the count; long lines and NULs count */
	c = conn_new();
	take(c);
	{
		static char longline[1000];

		memset(longline, 'x', 900);
		memcpy(longline + 900, "\r\n", 3);
		for (int i = 0; i < 5; i++)
			feed(c, longline);
	}
	feed(c, "CAPA\r\n");
	pump(c);
	CHECK(strncmp(take(c), "-ERR Line too long\r\n-ERR Line too long\r\n", 40) == 0,
	      "long lines");
	c->in[0] = 'N';
	c->in[1] = '\0';
	c->in[2] = '\n';
	c->in_len = 3;
	pump(c);
	expect_out(c, "NUL", "-ERR NUL byte in command\r\n");
	CHECK(!c->closed, "still open");
	conn_free(c);
}

static void test_stls_auth_utf8(void)
{
	struct ma_conn *c;

	box_reset();
	c = conn_new();
	c->starttls_avail = true;
	c->plaintext_ok = false;
	take(c);
	feed(c, "STLS\r\nUSER injected\r\n");
	pump(c);
	expect_out(c, "STLS", "+OK Begin TLS negotiation\r\n");
	feed(c, "CAPA\r\nSTLS\r\nPASS secret\r\n");
	pump(c);
	expect_out(c, "after TLS",
		   "+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\n"
		   "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
		   "SASL PLAIN LOGIN\r\nEXPIRE NEVER\r\nUTF8 USER\r\n"
		   "IMPLEMENTATION mailaccess\r\n.\r\n"
		   "-ERR TLS is already active.\r\n"
		   "-ERR No user name given (USER first).\r\n");

	feed(c, "AUTH\r\nAUTH CRAM-MD5\r\nAUTH PLAIN\r\n*\r\n"
	     "AUTH PLAIN\r\nbob wrong\r\nAUTH PLAIN bob\r\n");
	pump(c);
	expect_out(c, "AUTH",
		   "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n"
		   "-ERR [AUTH] Unsupported mechanism\r\n"
		   "+ \r\n-ERR [AUTH] Authentication cancelled.\r\n"
		   "+ \r\n-ERR [AUTH] Authentication failed.\r\n"
		   "-ERR [AUTH] Malformed\r\n");

	feed(c, "UTF8\r\nUSER b\xff\r\nAUTH PLAIN\r\nbob secret\r\nUTF8\r\n");
	pump(c);
	expect_out(c, "UTF8 + AUTH ok",
		   "+OK UTF8 enabled\r\n"
		   "-ERR User name is not valid UTF-8.\r\n"
		   "+ \r\n+OK Logged in.\r\n"
		   "-ERR Command not valid in this state.\r\n");
	conn_free(c);

	c = conn_new();
	CHECK(strcmp(ops->on_timeout(c), "-ERR Autologout; idle for too long") == 0,
	      "timeout line");
	CHECK(strcmp(ops->on_shutdown(c), "-ERR Server shutting down") == 0,
	      "shutdown line");
	conn_free(c);
}

static void test_settings(void)
{
	const struct ma_plugin *p = &mailaccess_plugin;
	struct ma_config_section s;
	const char *error;
	void *ctx;

	CHECK(p->kind == MA_PLUGIN_PROTOCOL && strcmp(p->name, "pop3") == 0 &&
	      p->abi_major == MA_ABI_MAJOR && p->ops == &pop3_protocol_ops,
	      "descriptor");

	memset(&s, 0, sizeof(s));
	s.keys[0] = "uidl_format";
	s.values[0] = "%v";
	error = NULL;
	CHECK(p->init(NULL, &s, &ctx, &error) < 0 && error != NULL &&
	      strncmp(error, "test.conf:7: pop3: uidl_format: ", 32) == 0,
	      "bad uidl_format: %s", error != NULL ? error : "(none)");
	free((char *)error);	/* malloc'd for the loader, which exits */

	s.values[0] = "cyrus";
	s.keys[1] = "expire";
	s.values[1] = "soon";
	CHECK(p->init(NULL, &s, &ctx, &error) < 0 &&
	      strstr(error, "test.conf:7: pop3: expire:") == error, "bad expire");
	free((char *)error);

	s.values[1] = "30";
	s.keys[2] = "login_delay";
	s.values[2] = "1.5";
	CHECK(p->init(NULL, &s, &ctx, &error) < 0 &&
	      strstr(error, "login_delay") != NULL, "fractional login_delay");
	free((char *)error);

	s.values[2] = "300";
	CHECK(p->init(NULL, &s, &ctx, &error) == 0, "good settings");
	CHECK(pop3_settings_get()->login_delay == 300 &&
	      pop3_settings_get()->expire_days == 30 &&
	      !pop3_settings_get()->expire_never, "values");

	/* they show in CAPA and UIDL */
	{
		struct ma_conn *c;

		box_reset();
		c = conn_new();
		login(c);
		feed(c, "CAPA\r\nUIDL 1\r\n");
		pump(c);
		expect_out(c, "CAPA with settings",
			   "+OK Capability list follows\r\nTOP\r\nUIDL\r\n"
			   "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
			   "EXPIRE 30\r\nLOGIN-DELAY 300\r\nUTF8\r\n"
			   "IMPLEMENTATION mailaccess\r\n.\r\n"
			   "+OK 1 1700000000.10\r\n");
		conn_free(c);
	}
	CHECK(p->init(NULL, NULL, &ctx, &error) == 0, "no section");
}


/* Random command soup in random chunks with a random output limit: no
 * crash (ASan), no leak, and the store is only ever expunged by a QUIT
 * after login. */
static void test_random_sessions(void)
{
	static const char *words[] = {
		"USER bob", "PASS secret", "PASS bad", "AUTH PLAIN", "AUTH",
		"AUTH PLAIN bob secret", "*", "bob secret", "STLS", "UTF8",
		"CAPA", "STAT", "LIST", "LIST 1", "LIST 9", "RETR 1", "RETR 2",
		"RETR 4", "TOP 2 1", "TOP 3 0", "DELE 1", "DELE 3", "NOOP",
		"RSET", "UIDL", "UIDL 2", "QUIT", "", " ", "RETR 0", "DELE x",
		"\xff\xfe", "TOP 1 4294967295", "LIST 4294967296",
	};
	unsigned seed = 4242, rounds_expunged = 0;

	for (int round = 0; round < 3000; round++) {
		struct ma_conn *c;
		char script[4096];
		size_t len = 0;

		box_reset();
		c = conn_new();
		seed = seed * 1103515245u + 12345u;
		c->high_water = 1 + (seed >> 16) % 200;
		c->starttls_avail = (seed >> 8) & 1;
		c->plaintext_ok = (seed >> 9) & 1;
		for (int i = 0; i < 30; i++) {
			seed = seed * 1103515245u + 12345u;
			unsigned pick = (seed >> 16) % (sizeof(words) / sizeof(words[0]) + 2);
			const char *w;
			char junk[8];

			if (pick < sizeof(words) / sizeof(words[0])) {
				w = words[pick];
			} else {
				for (int k = 0; k < 7; k++) {
					seed = seed * 1103515245u + 12345u;
					junk[k] = (char)(1 + (seed >> 16) % 255);
				}
				junk[7] = '\0';
				w = junk;
			}
			len += (size_t)snprintf(script + len, sizeof(script) - len,
						"%s%s", w, (seed & 0x100) ? "\n" : "\r\n");
			if (len > sizeof(script) - 64)
				break;
		}
		/* feed in random chunks, pumping in between */
		for (size_t off = 0; off < len && !c->close_done;) {
			seed = seed * 1103515245u + 12345u;
			size_t n = 1 + (seed >> 16) % 40;
			char part[64];

			if (n > len - off)
				n = len - off;
			memcpy(part, script + off, n);
			part[n] = '\0';
			/* keep NULs out of feed(): it uses strlen */
			feed(c, part);
			off += n;
			pump(c);
		}
		CHECK(expunge_not_in_update == 0, "expunge outside UPDATE "
		      "(round %d)", round);
		CHECK(expunge_calls <= 1, "several expunges");
		rounds_expunged += expunge_calls;
		conn_free(c);
		CHECK(user_opens == 0 && box_opens == 0 && msg_reads_open == 0,
		      "leaked store handles (round %d)", round);
	}
	/* the soup must actually reach TRANSACTION and UPDATE */
	CHECK(rounds_expunged >= 5, "only %u rounds expunged", rounds_expunged);
	printf("random sessions: %u of 3000 ended in an expunge\n", rounds_expunged);
}

#ifndef POP3_FUZZ
int main(void)
{
	test_authorization();
	test_transaction();
	test_drop_and_fail();
	test_pipelining();
	test_big_stream();
	test_lock();
	test_bad_commands();
	test_stls_auth_utf8();
	test_random_sessions();
	test_settings();
	if (failures > 0) {
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("test-pop3-session: ok\n");
	return 0;
}
#endif
