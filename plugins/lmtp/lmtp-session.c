/*
 * lmtp-session.c - lmtp.so: LMTP (RFC 2033) delivery into the store.
 *
 * Owns the plugin descriptor, the `lmtp { recipient_delimiter }` setting,
 * and one session per connection: LHLO, MAIL (RFC 1870 SIZE, RFC 6152
 * 8BITMIME), RCPT (each recipient looked up through the auth sources with
 * ma_auth_lookup(), off the loop), DATA (dot-unstuffed into one bounded
 * buffer), BDAT (RFC 3030 CHUNKING), RSET, NOOP, VRFY, QUIT, STARTTLS when
 * the listener offers it; PIPELINING (RFC 2920) and ENHANCEDSTATUSCODES
 * (RFC 2034, 3463).
 *
 * The message buffer: at DATA / the first BDAT it starts with our
 * Return-Path: and Received: lines (RFC 5321 4.4), then the body is
 * appended behind them, so the stored message is built once and never
 * copied. Its hard max is max_message_size plus those lines.
 *
 * After the body, one reply per accepted recipient in RCPT order (RFC
 * 2033 4.2); each 250 is sent only after ma_store_append() returned, i.e.
 * the message is durable. "user+detail@domain" goes to mailbox "detail"
 * when that exists, else INBOX.
 *
 * Pipelining: commands run in order; while a lookup is pending input is
 * paused, so later commands wait in the core's buffer and their replies
 * stay in order.
 */
#include "lmtp-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

struct lmtp_rcpt {
	char *addr;			/* as the client gave it */
	char user[MA_AUTH_USER_MAX];	/* canonical, from the auth lookup */
	char *detail;			/* "" if none */
};

enum lmtp_input {
	LMTP_IN_CMD = 0,
	LMTP_IN_SKIP_LINE,	/* the rest of an over-long line */
	LMTP_IN_DATA,
	LMTP_IN_BDAT,
};

struct lmtp_session {
	struct ma_conn *conn;
	const struct lmtp_settings *set;
	enum lmtp_input in;
	bool dead, paused, lookup_pending;
	bool lhlo, have_mail;
	unsigned bad;
	char helo[LMTP_HELO_MAX + 1];

	/* the transaction */
	char from[LMTP_PATH_MAX + 1];
	struct lmtp_rcpt *rcpts;
	unsigned n_rcpts, rcpt_cap;
	char pending_addr[LMTP_PATH_MAX + 1];
	char pending_detail[LMTP_PATH_MAX + 1];

	/* the message */
	struct ma_buf msg;
	bool msg_started;	/* trace lines written */
	bool too_big;
	struct lmtp_dot dot;
	uint64_t bdat_left;
	bool bdat_last, bdat_discard;

	unsigned delivered, failed;
};

static struct lmtp_settings lmtp_set;

/* ------------------------------------------------------------ replies */

static void lmtp_write(struct lmtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void lmtp_write(struct lmtp_session *s, const char *fmt, ...)
{
	char line[600];
	va_list ap;
	int n;

	if (s->dead)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	for (int i = 0; i < n; i++) {
		if (line[i] == '\r' || line[i] == '\n')
			line[i] = ' ';
	}
	line[n++] = '\r';
	line[n++] = '\n';
	if (ma_conn_write(s->conn, line, (size_t)n) < 0)
		s->dead = true;
}

static void lmtp_close(struct lmtp_session *s, const char *why)
{
	s->dead = true;
	ma_conn_close(s->conn, why);
}

/* A bad command: counted; the tenth ends the session (421, RFC 5321
 * 3.8: the server may close after replying 421). */
static void lmtp_bad(struct lmtp_session *s, const char *reply)
{
	lmtp_write(s, "%s", reply);
	if (++s->bad >= LMTP_BAD_MAX) {
		lmtp_write(s, "421 4.7.0 %s Too many errors, closing connection",
			   s->set->hostname);
		lmtp_close(s, "too many bad commands");
	}
}

static void lmtp_pause(struct lmtp_session *s)
{
	if (!s->paused) {
		s->paused = true;
		ma_conn_pause_input(s->conn);
	}
}

static void lmtp_resume(struct lmtp_session *s)
{
	if (s->paused && !s->dead) {
		s->paused = false;
		ma_conn_resume_input(s->conn);
	}
}

static void lmtp_summary(struct lmtp_session *s)
{
	char text[64];

	snprintf(text, sizeof(text), "delivered=%u failed=%u", s->delivered,
		 s->failed);
	ma_conn_set_summary(s->conn, text);
}

/* -------------------------------------------------------- transaction */

static void lmtp_reset(struct lmtp_session *s)
{
	for (unsigned i = 0; i < s->n_rcpts; i++) {
		free(s->rcpts[i].addr);
		free(s->rcpts[i].detail);
	}
	s->n_rcpts = 0;
	s->have_mail = false;
	s->from[0] = '\0';
	s->msg_started = false;
	s->too_big = false;
	memset(&s->dot, 0, sizeof(s->dot));
	ma_buf_free(&s->msg);
}

/* Return-Path: and Received: (RFC 5321 4.4) at the head of the buffer;
 * the body is appended behind them. */
static void lmtp_msg_begin(struct lmtp_session *s)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	if (s->msg_started)
		return;
	s->msg_started = true;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	/* the trace lines are < 2k: room for them on top of the limit */
	ma_buf_init(&s->msg, (size_t)s->set->max_message_size + 2048);
	(void)ma_buf_printf(&s->msg,
		"Return-Path: <%s>\r\n"
		"Received: from %s (%s)\r\n"
		"\tby %s (mailaccess) with LMTP id %s;\r\n"
		"\t%s\r\n",
		s->from, s->helo[0] != '\0' ? s->helo : "unknown",
		ma_conn_remote_ip(s->conn), s->set->hostname,
		ma_conn_id(s->conn), date);
	s->msg.max = ma_buf_len(&s->msg) + (size_t)s->set->max_message_size;
}

/* The store error -> the one reply for this recipient. */
static void lmtp_reply_store_error(struct lmtp_session *s,
				   const struct lmtp_rcpt *r,
				   const struct ma_error_info *err)
{
	ma_conn_log(s->conn, MA_LOG_ERROR, "delivery to %s failed: %s: %s",
		    r->user, ma_error_name(err->code), err->text);
	if (err->code == MA_ERR_QUOTA || err->code == MA_ERR_LIMIT)
		lmtp_write(s, "452 4.2.2 <%s> Mailbox full", r->addr);
	else
		lmtp_write(s, "451 4.3.0 <%s> Temporary failure, try again later (session %s)",
			   r->addr, ma_conn_id(s->conn));
}

static void lmtp_deliver_one(struct lmtp_session *s, const struct lmtp_rcpt *r)
{
	struct ma_store *store = ma_core_store(ma_conn_core(s->conn));
	struct ma_error_info err;
	struct ma_mailbox_status st;
	struct ma_append_msg m;
	struct ma_user *u;
	const char *box = "INBOX";
	uint32_t uid = 0;

	memset(&err, 0, sizeof(err));
	u = ma_store_user_open(store, r->user, &err);
	if (u == NULL) {
		s->failed++;
		lmtp_reply_store_error(s, r, &err);
		return;
	}
	/* +detail only into a mailbox that exists: we never create folders
	 * from what a sender wrote */
	if (r->detail[0] != '\0' &&
	    ma_store_mailbox_status(u, r->detail, &st, &err) == 0)
		box = r->detail;
	memset(&m, 0, sizeof(m));
	m.data = ma_buf_ptr(&s->msg);
	m.size = ma_buf_len(&s->msg);
	memset(&err, 0, sizeof(err));
	if (ma_store_append(u, box, &m, 1, &uid, NULL, &err) < 0) {
		s->failed++;
		lmtp_reply_store_error(s, r, &err);
	} else {
		s->delivered++;
		ma_conn_log(s->conn, MA_LOG_INFO,
			    "delivered to=%s mailbox=%s uid=%u size=%zu from=<%s>",
			    r->user, box, uid, m.size, s->from);
		lmtp_write(s, "250 2.0.0 <%s> Saved", r->addr);
	}
	ma_store_user_close(&u);
}

/* The body is complete: one reply per recipient (RFC 2033 4.2). */
static void lmtp_deliver(struct lmtp_session *s)
{
	for (unsigned i = 0; i < s->n_rcpts && !s->dead; i++) {
		if (s->too_big || s->dot.overflow)
			lmtp_write(s, "552 5.3.4 <%s> Message too big",
				   s->rcpts[i].addr);
		else
			lmtp_deliver_one(s, &s->rcpts[i]);
	}
	lmtp_summary(s);
	lmtp_reset(s);
}

/* ----------------------------------------------------------- commands */

static void lmtp_cmd_lhlo(struct lmtp_session *s, const char *arg)
{
	size_t n = 0;

	if (arg[0] == '\0') {
		lmtp_bad(s, "501 5.5.4 LHLO needs a host name");
		return;
	}
	/* kept for Received: only: printable, no spaces, bounded */
	for (; arg[n] != '\0' && arg[n] != ' ' && n < LMTP_HELO_MAX; n++)
		s->helo[n] = (arg[n] > 0x20 && arg[n] < 0x7f) ? arg[n] : '?';
	s->helo[n] = '\0';
	lmtp_reset(s);
	s->lhlo = true;
	lmtp_write(s, "250-%s", s->set->hostname);
	if (ma_conn_starttls_available(s->conn))
		lmtp_write(s, "250-STARTTLS");
	lmtp_write(s, "250-PIPELINING");
	lmtp_write(s, "250-ENHANCEDSTATUSCODES");
	lmtp_write(s, "250-8BITMIME");
	lmtp_write(s, "250-CHUNKING");
	lmtp_write(s, "250 SIZE %llu",
		   (unsigned long long)s->set->max_message_size);
}

static void lmtp_cmd_mail(struct lmtp_session *s, const char *arg)
{
	const char *params, *bad;
	uint64_t size;

	if (!s->lhlo) {
		lmtp_bad(s, "503 5.5.1 Send LHLO first");
		return;
	}
	if (s->have_mail) {
		lmtp_bad(s, "503 5.5.1 Nested MAIL command");
		return;
	}
	if (lmtp_parse_path(arg, "FROM:", true, s->from, &params) < 0) {
		s->from[0] = '\0';
		lmtp_bad(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	if (lmtp_parse_mail_params(params, &size, &bad) < 0) {
		s->from[0] = '\0';
		lmtp_bad(s, "555 5.5.4 Unsupported MAIL parameter");
		return;
	}
	/* RFC 1870 6.1: refuse now what we would refuse after DATA */
	if (size > s->set->max_message_size) {
		s->from[0] = '\0';
		lmtp_write(s, "552 5.3.4 Message size exceeds fixed maximum message size");
		return;
	}
	s->have_mail = true;
	s->bad = 0;
	lmtp_write(s, "250 2.1.0 Sender OK");
}

static void lmtp_lookup_done(struct ma_conn *conn, enum ma_auth_status status,
			     const char *user, void *ctx)
{
	struct lmtp_session *s = ctx;

	s->lookup_pending = false;
	if (s->dead)
		return;
	if (status == MA_AUTH_OK && user != NULL) {
		struct lmtp_rcpt *r;

		if (s->n_rcpts == s->rcpt_cap) {
			s->rcpt_cap = s->rcpt_cap == 0 ? 8 : s->rcpt_cap * 2;
			s->rcpts = ma_realloc(s->rcpts, s->rcpt_cap * sizeof(*s->rcpts));
		}
		r = &s->rcpts[s->n_rcpts++];
		memset(r, 0, sizeof(*r));
		r->addr = ma_strdup(s->pending_addr);
		r->detail = ma_strdup(s->pending_detail);
		snprintf(r->user, sizeof(r->user), "%s", user);
		lmtp_write(s, "250 2.1.5 <%s> Recipient OK", s->pending_addr);
	} else if (status == MA_AUTH_TEMPFAIL || status == MA_AUTH_DELAYED) {
		lmtp_write(s, "451 4.3.0 <%s> Temporary user lookup failure",
			   s->pending_addr);
	} else {
		lmtp_write(s, "550 5.1.1 <%s> User unknown", s->pending_addr);
	}
	lmtp_resume(s);
}

static void lmtp_cmd_rcpt(struct lmtp_session *s, const char *arg)
{
	char user[LMTP_PATH_MAX + 1];
	const char *params;

	if (!s->have_mail) {
		lmtp_bad(s, "503 5.5.1 Send MAIL first");
		return;
	}
	if (lmtp_parse_path(arg, "TO:", false, s->pending_addr, &params) < 0) {
		lmtp_bad(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (params[0] != '\0') {
		lmtp_bad(s, "555 5.5.4 Unsupported RCPT parameter");
		return;
	}
	if (s->n_rcpts >= LMTP_RCPT_MAX) {
		lmtp_write(s, "452 4.5.3 Too many recipients");
		return;
	}
	if (lmtp_split_detail(s->pending_addr, s->set->delimiters, user,
			      sizeof(user), s->pending_detail,
			      sizeof(s->pending_detail)) < 0) {
		lmtp_bad(s, "501 5.1.3 Bad recipient address");
		return;
	}
	s->bad = 0;
	s->lookup_pending = true;
	lmtp_pause(s);
	ma_auth_lookup(s->conn, user, lmtp_lookup_done, s);
}

static void lmtp_cmd_data(struct lmtp_session *s, const char *arg)
{
	if (arg[0] != '\0') {
		lmtp_bad(s, "501 5.5.4 DATA takes no arguments");
		return;
	}
	if (!s->have_mail) {
		lmtp_bad(s, "503 5.5.1 Send MAIL first");
		return;
	}
	if (s->n_rcpts == 0) {
		lmtp_bad(s, "503 5.5.1 No valid recipients");
		return;
	}
	if (s->msg_started) {
		/* BDAT chunks already came: RFC 3030 2, no mixing */
		lmtp_bad(s, "503 5.5.1 DATA after BDAT");
		return;
	}
	lmtp_msg_begin(s);
	s->in = LMTP_IN_DATA;
	lmtp_write(s, "354 Start mail input; end with <CRLF>.<CRLF>");
}

static void lmtp_cmd_bdat(struct lmtp_session *s, const char *arg)
{
	const char *sp = strchr(arg, ' ');
	size_t n = sp != NULL ? (size_t)(sp - arg) : strlen(arg);
	uint64_t size;

	if (ma_parse_uint(arg, n, UINT64_MAX / 2, &size) < 0 ||
	    (sp != NULL && strcasecmp(sp + 1, "LAST") != 0)) {
		/* no size we trust: the chunk cannot be skipped, hang up */
		lmtp_write(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		lmtp_close(s, "bad BDAT");
		return;
	}
	s->bdat_left = size;
	s->bdat_last = sp != NULL;
	s->in = LMTP_IN_BDAT;
	/* RFC 3030 2: the chunk follows whatever we answer: read it, then
	 * reply; a bad transaction has it discarded */
	s->bdat_discard = !s->have_mail || s->n_rcpts == 0;
	if (!s->bdat_discard)
		lmtp_msg_begin(s);
}

static void lmtp_bdat_done(struct lmtp_session *s)
{
	s->in = LMTP_IN_CMD;
	if (s->bdat_discard) {
		lmtp_bad(s, !s->have_mail ? "503 5.5.1 Send MAIL first" :
			 "503 5.5.1 No valid recipients");
		return;
	}
	if (s->too_big && !s->bdat_last) {
		/* RFC 3030 2: the transaction is dead; later chunks get 503 */
		lmtp_write(s, "552 5.3.4 Message too big");
		lmtp_reset(s);
		return;
	}
	if (s->bdat_last) {
		lmtp_deliver(s);
		return;
	}
	lmtp_write(s, "250 2.0.0 %zu octets received", ma_buf_len(&s->msg));
}

static void lmtp_cmd_starttls(struct lmtp_session *s, const char *arg)
{
	if (!ma_conn_starttls_available(s->conn)) {
		lmtp_bad(s, "502 5.5.1 STARTTLS not available");
		return;
	}
	lmtp_write(s, "220 2.0.0 Ready to start TLS");
	/* RFC 3207 4.2: forget everything learnt before TLS */
	lmtp_reset(s);
	s->lhlo = false;
	lmtp_pause(s);
	if (ma_conn_starttls(s->conn) < 0)
		lmtp_close(s, "STARTTLS failed");
}

static void lmtp_command(struct lmtp_session *s, char *line)
{
	char *arg = strchr(line, ' ');
	size_t vlen = arg != NULL ? (size_t)(arg - line) : strlen(line);

	if (arg != NULL)
		arg++;
	else
		arg = line + vlen;

	if (ma_slice_ieq(line, vlen, "LHLO"))
		lmtp_cmd_lhlo(s, arg);
	else if (ma_slice_ieq(line, vlen, "MAIL"))
		lmtp_cmd_mail(s, arg);
	else if (ma_slice_ieq(line, vlen, "RCPT"))
		lmtp_cmd_rcpt(s, arg);
	else if (ma_slice_ieq(line, vlen, "DATA"))
		lmtp_cmd_data(s, arg);
	else if (ma_slice_ieq(line, vlen, "BDAT"))
		lmtp_cmd_bdat(s, arg);
	else if (ma_slice_ieq(line, vlen, "RSET")) {
		lmtp_reset(s);
		lmtp_write(s, "250 2.0.0 OK");
	} else if (ma_slice_ieq(line, vlen, "NOOP"))
		lmtp_write(s, "250 2.0.0 OK");
	else if (ma_slice_ieq(line, vlen, "QUIT")) {
		lmtp_write(s, "221 2.0.0 %s Bye", s->set->hostname);
		lmtp_close(s, "QUIT");
	} else if (ma_slice_ieq(line, vlen, "VRFY"))
		/* RFC 5321 3.5.3: we do not tell who exists */
		lmtp_write(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
	else if (ma_slice_ieq(line, vlen, "STARTTLS"))
		lmtp_cmd_starttls(s, arg);
	else if (ma_slice_ieq(line, vlen, "HELO") || ma_slice_ieq(line, vlen, "EHLO"))
		lmtp_bad(s, "500 5.5.1 This is LMTP: use LHLO (RFC 2033)");
	else
		lmtp_bad(s, "500 5.5.2 Unknown command");
}

/* ---------------------------------------------------------------- input */

/* One step; returns false when it needs more input. */
static bool lmtp_input_step(struct lmtp_session *s)
{
	const unsigned char *data;
	size_t len, used;
	bool done;

	data = ma_conn_input(s->conn, &len);
	if (len == 0)
		return false;
	switch (s->in) {
	case LMTP_IN_DATA:
		used = lmtp_dot_feed(&s->dot, data, len, &s->msg, &done);
		ma_conn_input_consume(s->conn, used);
		if (done) {
			s->in = LMTP_IN_CMD;
			lmtp_deliver(s);
		}
		return true;
	case LMTP_IN_BDAT:
		used = len < s->bdat_left ? len : (size_t)s->bdat_left;
		if (!s->bdat_discard && !s->too_big &&
		    ma_buf_append(&s->msg, data, used) < 0)
			s->too_big = true;
		ma_conn_input_consume(s->conn, used);
		s->bdat_left -= used;
		if (s->bdat_left == 0)
			lmtp_bdat_done(s);
		return true;
	case LMTP_IN_SKIP_LINE: {
		const unsigned char *lf = memchr(data, '\n', len);

		if (lf == NULL) {
			ma_conn_input_consume(s->conn, len);
			return false;
		}
		ma_conn_input_consume(s->conn, (size_t)(lf - data) + 1);
		s->in = LMTP_IN_CMD;
		lmtp_bad(s, "500 5.5.2 Line too long");
		return true;
	}
	case LMTP_IN_CMD:
		/* No ma_conn_command_allowed() here: an LMTP listener serves
		 * the MTA, whose queue must drain at disk speed; its
		 * concurrency is the MTA's setting (docs/lmtp.md). */
		break;
	}

	const unsigned char *lf = memchr(data, '\n', len);
	if (lf == NULL) {
		/* longer than any command: drop it up to its LF */
		if (len > LMTP_LINE_MAX + 1) {
			ma_conn_input_consume(s->conn, len);
			s->in = LMTP_IN_SKIP_LINE;
			return true;
		}
		return false;
	}
	size_t n = (size_t)(lf - data);
	if (n > LMTP_LINE_MAX + 1) {
		ma_conn_input_consume(s->conn, n + 1);
		lmtp_bad(s, "500 5.5.2 Line too long");
		return true;
	}
	char line[LMTP_LINE_MAX + 2];
	memcpy(line, data, n);
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	ma_conn_input_consume(s->conn, (size_t)(lf - data) + 1);
	if (memchr(line, '\0', n) != NULL) {
		lmtp_bad(s, "500 5.5.2 NUL in command");
		return true;
	}
	lmtp_command(s, line);
	return true;
}

/* ------------------------------------------------------------ callbacks */

static int lmtp_on_connect(struct ma_conn *conn)
{
	struct lmtp_session *s = ma_malloc0(sizeof(*s));

	s->conn = conn;
	s->set = &lmtp_set;
	ma_conn_set_session(conn, s);
	lmtp_write(s, "220 %s LMTP mailaccess ready", s->set->hostname);
	return 0;
}

static void lmtp_on_input(struct ma_conn *conn)
{
	struct lmtp_session *s = ma_conn_session(conn);

	while (s != NULL && !s->dead && !s->paused && lmtp_input_step(s))
		;
}

static void lmtp_on_tls_ready(struct ma_conn *conn)
{
	struct lmtp_session *s = ma_conn_session(conn);

	if (s != NULL)
		lmtp_resume(s);
}

static const char *lmtp_on_timeout(struct ma_conn *conn)
{
	return "421 4.4.2 Idle timeout, closing connection";
}

static const char *lmtp_on_shutdown(struct ma_conn *conn)
{
	return "421 4.3.2 Server shutting down";
}

static void lmtp_on_close(struct ma_conn *conn, enum ma_close_reason reason)
{
	struct lmtp_session *s = ma_conn_session(conn);

	if (s == NULL)
		return;
	lmtp_reset(s);
	free(s->rcpts);
	free(s);
	ma_conn_set_session(conn, NULL);
}

static const struct ma_protocol_ops lmtp_protocol_ops = {
	.struct_size = sizeof(struct ma_protocol_ops),
	.on_connect = lmtp_on_connect,
	.on_input = lmtp_on_input,
	.on_tls_ready = lmtp_on_tls_ready,
	.on_timeout = lmtp_on_timeout,
	.on_shutdown = lmtp_on_shutdown,
	.on_close = lmtp_on_close,
	.name = "lmtp",
};

/* ------------------------------------------------------------- plugin */

static int lmtp_plugin_init(struct ma_core *core,
			    const struct ma_config_section *config,
			    void **ctx_r, const char **error_r)
{
	const struct ma_config_section *limits =
		ma_config_child(ma_config_root(ma_core_config(core)), "limits");
	char *cerror = NULL;
	const char *delim;

	memset(&lmtp_set, 0, sizeof(lmtp_set));
	/* Postfix's and Dovecot's default */
	delim = config != NULL ? ma_config_get(config, "recipient_delimiter", "+") : "+";
	if (strlen(delim) >= sizeof(lmtp_set.delimiters) ||
	    strpbrk(delim, "@<> \t\"") != NULL) {
		if (asprintf(&cerror, "%s: lmtp: recipient_delimiter: up to %zu characters, not @<> or space",
			     ma_config_where(config, "recipient_delimiter"),
			     sizeof(lmtp_set.delimiters) - 1) < 0)
			cerror = NULL;
		*error_r = cerror != NULL ? cerror : "lmtp: bad recipient_delimiter";
		return -1;
	}
	snprintf(lmtp_set.delimiters, sizeof(lmtp_set.delimiters), "%s", delim);
	if (ma_config_get_size(limits, "max_message_size", 64ull << 20,
			       &lmtp_set.max_message_size, &cerror) < 0) {
		*error_r = cerror;	/* malloc'd, leaked as documented */
		return -1;
	}
	if (lmtp_set.max_message_size == 0 || lmtp_set.max_message_size > (1ull << 40))
		lmtp_set.max_message_size = 64ull << 20;
	if (gethostname(lmtp_set.hostname, sizeof(lmtp_set.hostname) - 1) < 0 ||
	    lmtp_set.hostname[0] == '\0')
		snprintf(lmtp_set.hostname, sizeof(lmtp_set.hostname), "localhost");
	for (char *p = lmtp_set.hostname; *p != '\0'; p++) {
		if (*p <= ' ' || *p >= 0x7f)
			*p = '-';
	}
	*ctx_r = &lmtp_set;
	return 0;
}

MA_PLUGIN_EXPORT const struct ma_plugin mailaccess_plugin = {
	MA_PLUGIN_INIT(MA_PLUGIN_PROTOCOL, "lmtp", "1.0"),
	.init = lmtp_plugin_init,
	.deinit = NULL,
	.ops = &lmtp_protocol_ops,
};
