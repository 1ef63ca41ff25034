/*
 * pop3-session.c - the life of one POP3 session.
 *
 * Owns: the connection callbacks (greeting, input loop, output drained,
 * TLS ready, timeout, shutdown, close), replies and the bad-command count,
 * login (auth result -> maildrop lock -> INBOX snapshot), parked
 * multi-line replies (RETR/TOP/LIST/UIDL, resumed when output drains) and
 * the in-process maildrop lock table. The commands themselves live in
 * pop3-commands.c.
 *
 * Input discipline (RFC 2449 PIPELINING): every complete line is run in
 * order; while an auth check is pending or a multi-line reply is parked we
 * pause input, so later pipelined commands wait in the core's buffer and
 * run in order afterwards. A dropped connection never deletes anything:
 * only QUIT from TRANSACTION (pop3-commands.c) expunges.
 */
#include "pop3-session.h"

#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ locks */

/* RFC 1939 section 4: the server locks the maildrop for the whole
 * session. The lock is the core's (ma_core_lock_try): a flock under
 * state_dir, so it holds across every worker process, and the kernel drops
 * it if the worker holding it is killed. */

/* ---------------------------------------------------------- replies */

int pop3_write(struct pop3_session *s, const void *data, size_t len)
{
	if (s->dead)
		return -1;
	if (ma_conn_write(s->conn, data, len) < 0) {
		/* over the hard output limit: the core closes the conn */
		s->dead = true;
		return -1;
	}
	return 0;
}

static void __attribute__((format(printf, 3, 0)))
pop3_vreply(struct pop3_session *s, const char *prefix, const char *fmt,
	    va_list ap)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "%s", prefix);
	int m;

	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 2, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;	/* truncated */
	/* texts from the store or auth must not break the line protocol */
	for (int i = 0; i < n; i++) {
		if (line[i] == '\r' || line[i] == '\n')
			line[i] = ' ';
	}
	line[n++] = '\r';
	line[n++] = '\n';
	(void)pop3_write(s, line, (size_t)n);
}

void pop3_reply_ok(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;

	s->bad_commands = 0;
	va_start(ap, fmt);
	pop3_vreply(s, "+OK ", fmt, ap);
	va_end(ap);
}

void pop3_reply_ok_bare(struct pop3_session *s)
{
	s->bad_commands = 0;
	(void)pop3_write(s, "+OK\r\n", 5);
}

void pop3_reply_err_nocount(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pop3_vreply(s, "-ERR ", fmt, ap);
	va_end(ap);
}

void pop3_reply_err(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;

	if (++s->bad_commands >= POP3_MAX_BAD_COMMANDS) {
		/* a client this confused is not going to recover; a
		 * scanner should not get unlimited tries either */
		static const char bye[] =
			"-ERR Too many bad commands, closing connection\r\n";
		(void)pop3_write(s, bye, sizeof(bye) - 1);
		pop3_close(s, "too many bad commands");
		return;
	}
	va_start(ap, fmt);
	pop3_vreply(s, "-ERR ", fmt, ap);
	va_end(ap);
}

void pop3_close(struct pop3_session *s, const char *reason)
{
	s->dead = true;
	ma_conn_close(s->conn, reason);
}

void pop3_pause(struct pop3_session *s)
{
	if (!s->input_paused) {
		s->input_paused = true;
		ma_conn_pause_input(s->conn);
	}
}

void pop3_resume(struct pop3_session *s)
{
	if (s->input_paused && !s->dead) {
		s->input_paused = false;
		ma_conn_resume_input(s->conn);
	}
}

void pop3_update_summary(struct pop3_session *s)
{
	char text[160];

	snprintf(text, sizeof(text),
		 "top=%u retr=%u/%llu del=%u/%llu expunged=%u size=%llu",
		 s->n_top, s->n_retr, (unsigned long long)s->retr_bytes,
		 s->n_deleted, (unsigned long long)s->deleted_size,
		 s->n_expunged, (unsigned long long)s->total_size);
	ma_conn_set_summary(s->conn, text);
}

/* -------------------------------------------------- parked replies */

static int pop3_ds_write(void *ctx, const void *data, size_t len)
{
	return pop3_write(ctx, data, len);
}

static bool pop3_ds_full(void *ctx)
{
	struct pop3_session *s = ctx;

	return s->dead || ma_conn_output_full(s->conn);
}

static void pop3_msg_release(struct pop3_session *s)
{
	if (s->msg_held) {
		ma_msg_data_release(&s->msg);
		s->msg_held = false;
	}
}

/* 1 = finished, 0 = parked, -1 = conn failed */
static int pop3_stream_list(struct pop3_session *s)
{
	char line[32 + POP3_UIDL_MAX];
	char uidl[POP3_UIDL_MAX + 1];

	for (; s->stream_next < s->count; s->stream_next++) {
		uint32_t i = s->stream_next;
		int n;

		if ((s->deleted[i] & POP3_DELETED) != 0)
			continue;
		if (pop3_ds_full(s))
			return s->dead ? -1 : 0;
		if (s->stream == POP3_STREAM_LIST) {
			n = snprintf(line, sizeof(line), "%u %llu\r\n", i + 1,
				     (unsigned long long)s->msgs[i].size);
		} else {
			pop3_uidl_expand(&s->set->uidl, s->uidvalidity,
					 s->msgs[i].uid, uidl);
			n = snprintf(line, sizeof(line), "%u %s\r\n", i + 1, uidl);
		}
		if (pop3_write(s, line, (size_t)n) < 0)
			return -1;
	}
	if (pop3_ds_full(s))
		return s->dead ? -1 : 0;
	return pop3_write(s, ".\r\n", 3) < 0 ? -1 : 1;
}

static void pop3_stream_continue(struct pop3_session *s)
{
	int ret;

	if (s->stream == POP3_STREAM_BODY)
		ret = pop3_dotstuff_run(&s->ds, pop3_ds_write, pop3_ds_full, s);
	else
		ret = pop3_stream_list(s);

	if (ret == 0 && !s->dead) {
		/* parked: on_output_drained() brings us back */
		pop3_pause(s);
		ma_conn_want_drain(s->conn);
		return;
	}
	if (s->stream == POP3_STREAM_BODY)
		pop3_msg_release(s);
	s->stream = POP3_STREAM_NONE;
	if (ret > 0) {
		pop3_update_summary(s);
		pop3_resume(s);
	}
}

void pop3_stream_start(struct pop3_session *s, enum pop3_stream_kind kind)
{
	s->stream = kind;
	s->stream_next = 0;
	pop3_stream_continue(s);
}

/* ------------------------------------------------------------ login */

static void pop3_logout_store(struct pop3_session *s)
{
	pop3_msg_release(s);
	if (s->box != NULL)
		ma_mailbox_close(&s->box);
	if (s->muser != NULL)
		ma_store_user_close(&s->muser);
	ma_core_unlock(s->lock_fd);
	s->lock_fd = -1;
	free(s->deleted);
	s->deleted = NULL;
	s->msgs = NULL;
	s->count = 0;
}

/* RFC 2449 8.1 / RFC 3206: IN-USE for a lock, SYS/PERM when retrying
 * will not help, SYS/TEMP otherwise. Detail goes to the log; the client
 * gets the store's user-safe text and our session id. */
static void pop3_store_error(struct pop3_session *s, const char *what,
			     const struct ma_error_info *err)
{
	const char *code;

	switch (err->code) {
	case MA_ERR_INUSE:
		code = "IN-USE";
		break;
	case MA_ERR_PERM:
	case MA_ERR_NOTFOUND:
	case MA_ERR_BADARGS:
	case MA_ERR_QUOTA:
	case MA_ERR_LIMIT:
		code = "SYS/PERM";
		break;
	default:
		code = "SYS/TEMP";
		break;
	}
	ma_conn_log(s->conn, MA_LOG_ERROR, "%s failed: %s: %s", what,
		    ma_error_name(err->code), err->text);
	pop3_reply_err_nocount(s, "[%s] %s (session %s)", code,
			       err->text[0] != '\0' ? err->text :
			       "Internal error occurred", ma_conn_id(s->conn));
}

static void pop3_login(struct pop3_session *s, const char *user)
{
	struct ma_error_info err;
	struct ma_mailbox_status st;
	struct ma_store *store;

	memset(&err, 0, sizeof(err));
	snprintf(s->username, sizeof(s->username), "%s", user);
	ma_conn_set_user(s->conn, s->username);

	s->lock_fd = ma_core_lock_try(ma_conn_core(s->conn), "pop3", s->username);
	if (s->lock_fd < 0 && errno == EWOULDBLOCK) {
		pop3_reply_err_nocount(s, "[IN-USE] Mailbox is locked by "
				       "another POP3 session");
		return;
	}
	if (s->lock_fd < 0) {
		ma_conn_log(s->conn, MA_LOG_ERROR, "maildrop lock for %s: %s",
			    s->username, strerror(errno));
		pop3_reply_err_nocount(s, "[SYS/TEMP] Cannot lock the maildrop "
				       "(session %s)", ma_conn_id(s->conn));
		return;
	}

	store = ma_core_store(ma_conn_core(s->conn));
	s->muser = ma_store_user_open(store, s->username, &err);
	if (s->muser == NULL) {
		pop3_store_error(s, "opening the user's store", &err);
		pop3_logout_store(s);
		return;
	}
	if (ma_mailbox_open(s->muser, "INBOX", false, &s->box, &err) < 0) {
		pop3_store_error(s, "opening INBOX", &err);
		pop3_logout_store(s);
		return;
	}
	memset(&st, 0, sizeof(st));
	if (ma_mailbox_messages(s->box, &s->msgs, &s->count, &st, &err) < 0) {
		pop3_store_error(s, "listing INBOX", &err);
		pop3_logout_store(s);
		return;
	}
	s->uidvalidity = st.uidvalidity;
	s->deleted = ma_malloc0(s->count > 0 ? s->count : 1);
	s->total_size = 0;
	for (uint32_t i = 0; i < s->count; i++)
		s->total_size += s->msgs[i].size;

	s->state = POP3_STATE_TRANSACTION;
	s->have_user = false;
	ma_wipe(s->user, sizeof(s->user));
	pop3_update_summary(s);
	pop3_reply_ok(s, "Logged in.");
}

void pop3_sasl_end(struct pop3_session *s)
{
	s->sasl = NULL;
	if (s->sasl_buf != NULL) {
		ma_wipe(s->sasl_buf, POP3_SASL_TEXT_MAX + 2);
		free(s->sasl_buf);
		s->sasl_buf = NULL;
		pop3_parser_set_buffer(&s->parser, s->cmd_buf,
				       sizeof(s->cmd_buf), POP3_CMD_TEXT_MAX);
	}
}

void pop3_auth_callback(struct ma_conn *conn, enum ma_auth_status status,
			const char *user, void *ctx)
{
	struct pop3_session *s = ctx;

	s->auth_pending = false;
	pop3_sasl_end(s);
	if (s->dead)
		return;

	switch (status) {
	case MA_AUTH_OK:
		pop3_login(s, user);
		break;
	case MA_AUTH_TEMPFAIL:
		pop3_reply_err_nocount(s, "[SYS/TEMP] Temporary authentication "
				       "failure, try again later");
		break;
	case MA_AUTH_DELAYED:
		/* RFC 3206 [AUTH]: a credentials problem the user must look
		 * at; SYS/TEMP would make clients retry and keep the lockout
		 * going, LOGIN-DELAY (RFC 2449) is about successful logins. */
		pop3_reply_err_nocount(s, "[AUTH] Too many failed logins, "
				       "try again later");
		break;
	case MA_AUTH_FAIL:
	case MA_AUTH_UNKNOWN_USER:
	default:
		pop3_reply_err_nocount(s, "[AUTH] Authentication failed.");
		break;
	}
	if (s->state == POP3_STATE_AUTHORIZATION) {
		s->have_user = false;
		ma_wipe(s->user, sizeof(s->user));
	}
	pop3_resume(s);
}

/* ------------------------------------------------------- callbacks */

static int pop3_on_connect(struct ma_conn *conn)
{
	struct pop3_session *s = ma_malloc0(sizeof(*s));

	s->lock_fd = -1;

	s->conn = conn;
	s->set = pop3_settings_get();
	pop3_parser_init(&s->parser, s->cmd_buf, sizeof(s->cmd_buf),
			 POP3_CMD_TEXT_MAX);
	ma_conn_set_session(conn, s);
	/* No APOP timestamp: APOP is not offered (it needs the plaintext
	 * password on the server and MD5). */
	pop3_reply_ok(s, "mailaccess ready.");
	return 0;
}

static void pop3_on_input(struct ma_conn *conn)
{
	struct pop3_session *s = ma_conn_session(conn);

	if (s == NULL)
		return;
	while (!s->dead && !s->input_paused && !s->tls_pending) {
		const unsigned char *data;
		size_t len, used;
		enum pop3_parse_result r;

		data = ma_conn_input(conn, &len);
		if (len == 0)
			break;
		/* limits.commands_per_second: one token per complete line,
		 * taken before the parser consumes it (a line split over
		 * several reads is charged once, when its LF is here). */
		if (memchr(data, '\n', len) != NULL &&
		    !ma_conn_command_allowed(conn))
			break;
		r = pop3_parser_feed(&s->parser, data, len, &used);
		/* consume before running: STLS makes the core drop the
		 * rest of its buffer */
		ma_conn_input_consume(conn, used);

		switch (r) {
		case POP3_PARSE_MORE:
			break;
		case POP3_PARSE_LINE:
			if (s->sasl != NULL) {
				/* wipes the line itself: the exchange may
				 * end (and free its buffer) inside */
				pop3_sasl_line(s, (char *)s->parser.line,
					       s->parser.len);
			} else {
				unsigned char *line = s->parser.line;
				size_t n = s->parser.len;

				/* outside SASL the line is always in cmd_buf */
				pop3_command_run(s, (char *)line, n);
				/* no line outlives its command (PASS, an
				 * AUTH initial response) */
				if (line == s->cmd_buf)
					ma_wipe(s->cmd_buf, n);
			}
			s->parser.len = 0;
			break;
		case POP3_PARSE_TOO_LONG:
			if (s->sasl != NULL) {
				/* RFC 5034: a failed exchange ends with -ERR */
				pop3_sasl_end(s);
				pop3_reply_err(s, "[AUTH] Authentication "
					       "response too long");
			} else {
				pop3_reply_err(s, "Line too long");
			}
			break;
		case POP3_PARSE_NUL:
			if (s->sasl != NULL)
				pop3_sasl_end(s);
			pop3_reply_err(s, "NUL byte in command");
			break;
		}
	}
}

static void pop3_on_output_drained(struct ma_conn *conn)
{
	struct pop3_session *s = ma_conn_session(conn);

	if (s == NULL || s->dead || s->stream == POP3_STREAM_NONE)
		return;
	pop3_stream_continue(s);
}

static void pop3_on_tls_ready(struct ma_conn *conn)
{
	struct pop3_session *s = ma_conn_session(conn);

	if (s == NULL)
		return;
	/* RFC 2595 section 4: forget what was learnt before TLS */
	s->tls_pending = false;
	s->have_user = false;
	ma_wipe(s->user, sizeof(s->user));
	pop3_parser_reset(&s->parser);
	s->bad_commands = 0;
}

static const char *pop3_on_timeout(struct ma_conn *conn)
{
	return "-ERR Autologout; idle for too long";
}

static const char *pop3_on_shutdown(struct ma_conn *conn)
{
	return "-ERR Server shutting down";
}

static void pop3_on_close(struct ma_conn *conn, enum ma_close_reason reason)
{
	struct pop3_session *s = ma_conn_session(conn);

	if (s == NULL)
		return;
	s->dead = true;
	if (s->state != POP3_STATE_AUTHORIZATION)
		pop3_update_summary(s);
	/* a dropped connection deletes nothing (RFC 1939 section 6) */
	pop3_logout_store(s);
	pop3_sasl_end(s);
	ma_wipe(s->user, sizeof(s->user));
	ma_wipe(s->cmd_buf, sizeof(s->cmd_buf));
	ma_conn_set_session(conn, NULL);
	free(s);
}

const struct ma_protocol_ops pop3_protocol_ops = {
	.struct_size = sizeof(struct ma_protocol_ops),
	.on_connect = pop3_on_connect,
	.on_input = pop3_on_input,
	.on_output_drained = pop3_on_output_drained,
	.on_tls_ready = pop3_on_tls_ready,
	.on_timeout = pop3_on_timeout,
	.on_shutdown = pop3_on_shutdown,
	.on_close = pop3_on_close,
	.name = "pop3",
};
