/*
 * fuzz-lmtp.c - libFuzzer target for lmtp.so: arbitrary client bytes
 * through the real session (plugins/lmtp/lmtp-session.c: command loop,
 * LHLO/MAIL/RCPT/DATA/BDAT/RSET/STARTTLS, DATA dot-unstuffing, BDAT
 * chunk framing, line limits) and its parsers (lmtp-proto.c), on a fake
 * core defined here: a conn with an input buffer fed in chunks, user
 * lookups answered from the "loop" (never from inside the call, as
 * auth.h promises), and a store that accepts, refuses or fills up. The
 * plugin is set up through its real descriptor and init() with a real
 * parsed config (limits.max_message_size = 4k so "too big" is reachable).
 * Afterwards the pure parsers get every input line directly too.
 *
 * Input: byte 0 = flags (bit 0 STARTTLS offered, bit 1 store fails,
 * bit 2 store full), byte 1 = chunk size (1..64); the rest is the client.
 *
 * Checks beyond the sanitizers: the session never consumes more input
 * than there is, every reply line ends in CRLF and starts with a 3-digit
 * code, no NUL or lone CR goes out, no store user handle is leaked, nothing larger than the limit
 * (plus the trace lines) is delivered, a lookup callback never comes
 * twice, and the session is gone after on_close.
 */
#include "lmtp-private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_IN_MAX (16 * 1024)
#define FUZZ_MAX_MESSAGE 4096

extern const struct ma_plugin mailaccess_plugin;

/* ------------------------------------------------------------ fake conn */

struct ma_conn {
	unsigned char in[FUZZ_IN_MAX];
	size_t in_len;
	bool paused, closed, tls, starttls_avail;
	void *session;
	/* output: only the current line is kept, for the CRLF/code check */
	char line[8];
	size_t line_len;
	bool line_bad, prev_cr;
	/* one pending lookup */
	ma_auth_callback *cb;
	void *cb_ctx;
	enum ma_auth_status cb_status;
	char cb_user[MA_AUTH_USER_MAX];
	bool tls_ready_due;
};

static struct ma_config *fuzz_cfg;
static int fuzz_core_dummy;
static bool store_fail, store_full;
static int user_opens;
static volatile unsigned char fuzz_sink;

const unsigned char *ma_conn_input(struct ma_conn *conn, size_t *len_r)
{
	*len_r = conn->in_len;
	return conn->in;
}

void ma_conn_input_consume(struct ma_conn *conn, size_t n)
{
	if (n > conn->in_len)
		abort();	/* consumed more than there is */
	memmove(conn->in, conn->in + n, conn->in_len - n);
	conn->in_len -= n;
}

void ma_conn_pause_input(struct ma_conn *conn) { conn->paused = true; }
void ma_conn_resume_input(struct ma_conn *conn) { conn->paused = false; }

int ma_conn_write(struct ma_conn *conn, const void *data, size_t len)
{
	const char *p = data;

	if (conn->closed)
		return 0;
	for (size_t i = 0; i < len; i++) {
		/* no NUL, no CR but in CRLF (client text echoed into a reply
		 * must not be able to start a line of its own) */
		if (p[i] == '\0' || (conn->prev_cr && p[i] != '\n'))
			conn->line_bad = true;
		conn->prev_cr = p[i] == '\r';
		if (conn->line_len < sizeof(conn->line))
			conn->line[conn->line_len] = p[i];
		conn->line_len++;
		if (p[i] != '\n')
			continue;
		/* "NNN " or "NNN-" ... "\r\n" */
		if (conn->line_len < 6 || conn->line[0] < '2' || conn->line[0] > '5' ||
		    conn->line[1] < '0' || conn->line[1] > '9' ||
		    conn->line[2] < '0' || conn->line[2] > '9' ||
		    (conn->line[3] != ' ' && conn->line[3] != '-') ||
		    i == 0 || p[i - 1] != '\r')
			conn->line_bad = true;
		conn->line_len = 0;
	}
	return 0;
}

bool ma_conn_starttls_available(const struct ma_conn *conn)
{
	return conn->starttls_avail && !conn->tls;
}

int ma_conn_starttls(struct ma_conn *conn)
{
	conn->in_len = 0;	/* the core drops pipelined plaintext */
	conn->tls = true;
	conn->paused = true;
	conn->tls_ready_due = true;
	return 0;
}

struct ma_core *ma_conn_core(const struct ma_conn *conn)
{
	return (struct ma_core *)&fuzz_core_dummy;
}

const char *ma_conn_id(const struct ma_conn *conn) { return "fuzz0001"; }
const char *ma_conn_remote_ip(const struct ma_conn *conn) { return "192.0.2.1"; }
void ma_conn_set_session(struct ma_conn *conn, void *session) { conn->session = session; }
void *ma_conn_session(const struct ma_conn *conn) { return conn->session; }

void ma_conn_set_summary(struct ma_conn *conn, const char *text)
{
	if (text == NULL || strlen(text) > 200)
		abort();
}

void ma_conn_log(struct ma_conn *conn, int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, sizeof(buf), fmt, ap);	/* formats every argument */
	va_end(ap);
}

void ma_conn_close(struct ma_conn *conn, const char *reason)
{
	conn->closed = true;
}

/* ------------------------------------------------------------ fake core */

const struct ma_config *ma_core_config(const struct ma_core *core)
{
	return fuzz_cfg;
}

struct ma_store *ma_core_store(const struct ma_core *core)
{
	return (struct ma_store *)&fuzz_core_dummy;
}

const char *ma_error_name(enum ma_error code)
{
	return "FUZZ";
}

/* Users: "t..." temporarily fails, "x..." is unknown, "d..." is refused
 * (FAIL), anyone else exists; the canonical name is lower case. */
void ma_auth_lookup(struct ma_conn *conn, const char *user,
		    ma_auth_callback *cb, void *ctx)
{
	if (conn->cb != NULL)
		abort();	/* a second lookup while one is pending */
	if (user == NULL || strlen(user) > LMTP_PATH_MAX)
		abort();
	conn->cb = cb;
	conn->cb_ctx = ctx;
	switch (user[0]) {
	case 't': conn->cb_status = MA_AUTH_TEMPFAIL; break;
	case 'x': conn->cb_status = MA_AUTH_UNKNOWN_USER; break;
	case 'd': conn->cb_status = MA_AUTH_FAIL; break;
	default: conn->cb_status = MA_AUTH_OK; break;
	}
	snprintf(conn->cb_user, sizeof(conn->cb_user), "%s", user);
	for (char *p = conn->cb_user; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
}

struct ma_user *ma_store_user_open(struct ma_store *store, const char *user,
				   struct ma_error_info *err)
{
	if (store_fail) {
		err->code = MA_ERR_TEMP;
		snprintf(err->text, sizeof(err->text), "store down");
		return NULL;
	}
	user_opens++;
	return (struct ma_user *)&user_opens;
}

void ma_store_user_close(struct ma_user **user)
{
	if (*user == NULL)
		return;
	user_opens--;
	*user = NULL;
}

int ma_store_mailbox_status(struct ma_user *user, const char *name,
			    struct ma_mailbox_status *st, struct ma_error_info *err)
{
	if (strcmp(name, "INBOX") == 0 || strcmp(name, "lists") == 0) {
		memset(st, 0, sizeof(*st));
		return 0;
	}
	err->code = MA_ERR_NOTFOUND;
	snprintf(err->text, sizeof(err->text), "no such mailbox");
	return -1;
}

int ma_store_append(struct ma_user *user, const char *mailbox,
		    const struct ma_append_msg *msgs, unsigned n,
		    uint32_t *uids_r, uint32_t *uidvalidity_r,
		    struct ma_error_info *err)
{
	if (n != 1 || mailbox == NULL || msgs[0].data == NULL)
		abort();
	if (msgs[0].size > FUZZ_MAX_MESSAGE + 2048)
		abort();	/* delivered past max_message_size */
	if (strcmp(mailbox, "INBOX") != 0 && strcmp(mailbox, "lists") != 0)
		abort();	/* a mailbox that does not exist */
	if (store_full) {
		err->code = MA_ERR_QUOTA;
		snprintf(err->text, sizeof(err->text), "over quota");
		return -1;
	}
	/* read every byte */
	unsigned char sum = 0;
	for (size_t i = 0; i < msgs[0].size; i++)
		sum ^= ((const unsigned char *)msgs[0].data)[i];
	fuzz_sink = sum;
	uids_r[0] = 1;
	return 0;
}

/* ---------------------------------------------------------------- driver */

static const struct ma_protocol_ops *fuzz_ops(void)
{
	if (fuzz_cfg == NULL) {
		static const char conf[] =
			"limits {\n  max_message_size = 4k\n}\n"
			"lmtp {\n  recipient_delimiter = +-\n}\n";
		char *err = NULL;
		void *ctx;
		const char *ierr = NULL;

		fuzz_cfg = ma_config_parse("fuzz.conf", conf, sizeof(conf) - 1, &err);
		if (fuzz_cfg == NULL ||
		    mailaccess_plugin.init((struct ma_core *)&fuzz_core_dummy,
					   ma_config_child(ma_config_root(fuzz_cfg), "lmtp"),
					   &ctx, &ierr) != 0)
			abort();
	}
	return mailaccess_plugin.ops;
}

/* Runs the "loop" until nothing more happens. */
static void pump(const struct ma_protocol_ops *ops, struct ma_conn *c)
{
	for (unsigned guard = 0; guard < 100000 && !c->closed; guard++) {
		if (c->cb != NULL) {
			ma_auth_callback *cb = c->cb;

			c->cb = NULL;
			cb(c, c->cb_status,
			   c->cb_status == MA_AUTH_OK ? c->cb_user : NULL, c->cb_ctx);
			continue;
		}
		if (c->tls_ready_due) {
			c->tls_ready_due = false;
			c->paused = false;
			if (ops->on_tls_ready != NULL)
				ops->on_tls_ready(c);
			continue;
		}
		if (c->paused || c->in_len == 0)
			return;
		size_t before = c->in_len;
		ops->on_input(c);
		if (c->in_len == before && !c->paused && c->cb == NULL &&
		    !c->tls_ready_due)
			return;	/* waits for more input */
	}
}

static void fuzz_pure(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);

	if (buf == NULL)
		return;
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (char *p = buf, *e; p != NULL; p = e) {
		char addr[LMTP_PATH_MAX + 1], user[LMTP_PATH_MAX + 1];
		char detail[LMTP_PATH_MAX + 1];
		const char *params, *bad;
		uint64_t sz;

		e = strchr(p, '\n');
		if (e != NULL)
			*e++ = '\0';
		if (lmtp_parse_path(p, "FROM:", true, addr, &params) == 0) {
			if (strlen(addr) > LMTP_PATH_MAX)
				abort();
			(void)lmtp_parse_mail_params(params, &sz, &bad);
		}
		if (lmtp_parse_path(p, "TO:", false, addr, &params) == 0) {
			if (strlen(addr) > LMTP_PATH_MAX || addr[0] == '\0')
				abort();
			if (lmtp_split_detail(addr, "+-", user, sizeof(user),
					      detail, sizeof(detail)) == 0 &&
			    strlen(user) + strlen(detail) > strlen(addr))
				abort();	/* split made bytes up */
		}
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct ma_protocol_ops *ops = fuzz_ops();
	struct ma_conn *c;
	size_t chunk, off;

	if (size < 2 || size > 65536)
		return 0;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return 0;
	c->starttls_avail = (data[0] & 1) != 0;
	store_fail = (data[0] & 2) != 0;
	store_full = (data[0] & 4) != 0;
	chunk = 1 + data[1] % 64;
	if (ops->on_connect(c) != 0)
		abort();
	for (off = 2; off < size && !c->closed; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;

		if (n > sizeof(c->in) - c->in_len) {
			c->closed = true;	/* the core's input limit */
			break;
		}
		memcpy(c->in + c->in_len, data + off, n);
		c->in_len += n;
		pump(ops, c);
	}
	/* the client goes away; a pending lookup still answers first */
	if (c->cb != NULL && !c->closed)
		pump(ops, c);
	ops->on_close(c, c->closed ? MA_CLOSE_NORMAL : MA_CLOSE_EOF);
	if (c->cb != NULL) {
		/* the real core cancels a lookup for a closed conn: as the
		 * session is freed, answering it now would be a use after
		 * free in the core, not in lmtp.so */
		c->cb = NULL;
	}
	if (c->session != NULL)
		abort();	/* session not released */
	if (c->line_bad)
		abort();	/* a reply line without code or CRLF */
	if (user_opens != 0)
		abort();	/* store user handle leaked */
	free(c);

	fuzz_pure(data + 2, size - 2);
	return 0;
}
