/*
 * pop3-commands.c - the POP3 commands.
 *
 * Owns the command table (which command runs in which RFC 1939 state),
 * argument checks, and each command's effect: RFC 1939 (USER PASS QUIT
 * STAT LIST RETR DELE NOOP RSET TOP UIDL), RFC 2449 CAPA, RFC 2595 STLS,
 * RFC 5034 AUTH, RFC 6856 UTF8. Message numbers always refer to the
 * snapshot taken at login; DELE only marks, QUIT from TRANSACTION is the
 * one place that expunges (the UPDATE state).
 */
#include "pop3-session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POP3_IN_AUTH (1u << POP3_STATE_AUTHORIZATION)
#define POP3_IN_TRANS (1u << POP3_STATE_TRANSACTION)


struct pop3_command {
	const char *name;
	unsigned states;
	void (*run)(struct pop3_session *s, struct pop3_cmdline *cmd);
};

/* NUL-terminates argument i in place (the byte after it is a space or
 * the line's NUL). */
static const char *pop3_arg(struct pop3_cmdline *cmd, unsigned i)
{
	char *arg = (char *)cmd->args[i];

	arg[cmd->arg_lens[i]] = '\0';
	return arg;
}

static bool pop3_utf8_valid(const unsigned char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		/* overlong, surrogates, past U+10FFFF */
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += n + 1;
	}
	return true;
}

/* ---------------------------------------------------- AUTHORIZATION */

static bool pop3_plaintext_check(struct pop3_session *s)
{
	if (ma_conn_plaintext_auth_allowed(s->conn))
		return true;
	pop3_reply_err(s, "[AUTH] Plaintext authentication disallowed on "
		       "non-secure connections.");
	return false;
}

static void pop3_cmd_user(struct pop3_session *s, struct pop3_cmdline *cmd)
{
	if (cmd->rest_len == 0 || cmd->n_args == 0) {
		pop3_reply_err(s, "Syntax: USER <name>");
		return;
	}
	if (!pop3_plaintext_check(s))
		return;
	if (cmd->rest_len >= sizeof(s->user)) {
		pop3_reply_err(s, "User name too long.");
		return;
	}
	/* RFC 6856: after UTF8 the name is UTF-8; before it we
	 * pass the bytes on as they are (legacy clients) */
	if (s->utf8 && !pop3_utf8_valid((const unsigned char *)cmd->rest,
					cmd->rest_len)) {
		pop3_reply_err(s, "User name is not valid UTF-8.");
		return;
	}
	memcpy(s->user, cmd->rest, cmd->rest_len);
	s->user[cmd->rest_len] = '\0';
	s->have_user = true;
	pop3_reply_ok(s, "Send your password.");
}

static void pop3_cmd_pass(struct pop3_session *s, struct pop3_cmdline *cmd)
{
	if (!s->have_user) {
		pop3_reply_err(s, "No user name given (USER first).");
		return;
	}
	if (!pop3_plaintext_check(s))
		return;
	if (cmd->keyword[cmd->keyword_len] != ' ') {
		pop3_reply_err(s, "Syntax: PASS <password>");
		return;
	}
	if (s->utf8 && !pop3_utf8_valid((const unsigned char *)cmd->rest,
					cmd->rest_len)) {
		pop3_reply_err(s, "Password is not valid UTF-8.");
		return;
	}
	/* The password is the rest of the line, spaces included (RFC 1939
	 * allows them). The line buffer is NUL-terminated and wiped by the
	 * input loop as soon as we return; ma_auth_verify copies. */
	s->auth_pending = true;
	pop3_pause(s);
	ma_auth_verify(s->conn, s->user, cmd->rest, pop3_auth_callback, s);
}

static void pop3_sasl_result(struct pop3_session *s, enum ma_sasl_result r,
			     const char *out)
{
	switch (r) {
	case MA_SASL_CHALLENGE:
		if (s->sasl_buf == NULL) {
			/* SASL lines may exceed the command line limit */
			s->sasl_buf = ma_malloc0(POP3_SASL_TEXT_MAX + 2);
			pop3_parser_set_buffer(&s->parser, s->sasl_buf,
					       POP3_SASL_TEXT_MAX + 2,
					       POP3_SASL_TEXT_MAX);
		}
		(void)pop3_write(s, "+ ", 2);
		if (out != NULL)
			(void)pop3_write(s, out, strlen(out));
		(void)pop3_write(s, "\r\n", 2);
		break;
	case MA_SASL_PENDING:
		s->auth_pending = true;
		pop3_pause(s);
		break;
	case MA_SASL_CANCELLED:
		pop3_sasl_end(s);
		pop3_reply_err(s, "[AUTH] Authentication cancelled.");
		break;
	case MA_SASL_ERROR:
	default:
		pop3_sasl_end(s);
		pop3_reply_err(s, "[AUTH] %s",
			       out != NULL && *out != '\0' ? out :
			       "Authentication failed.");
		break;
	}
}

static void pop3_cmd_auth(struct pop3_session *s, struct pop3_cmdline *cmd)
{
	const char *mechs = ma_sasl_mechanisms(s->conn);
	const char *out = NULL;
	struct ma_sasl *sasl = NULL;
	enum ma_sasl_result r;

	if (cmd->n_args == 0) {
		/* The pre-RFC 5034 "AUTH" listing that old clients probe. */
		const char *p = mechs;

		pop3_reply_ok_bare(s);
		while (*p != '\0') {
			size_t n = strcspn(p, " ");

			if (n > 0) {
				(void)pop3_write(s, p, n);
				(void)pop3_write(s, "\r\n", 2);
			}
			p += n;
			p += strspn(p, " ");
		}
		(void)pop3_write(s, ".\r\n", 3);
		return;
	}
	if (cmd->n_args > 2 || cmd->too_many_args) {
		pop3_reply_err(s, "Syntax: AUTH <mechanism> [<initial response>]");
		return;
	}
	if (*mechs == '\0') {
		pop3_reply_err(s, "[AUTH] Plaintext authentication disallowed "
			       "on non-secure connections.");
		return;
	}
	r = ma_sasl_begin(s->conn, pop3_arg(cmd, 0),
			  cmd->n_args == 2 ? pop3_arg(cmd, 1) : NULL,
			  pop3_auth_callback, s, &sasl, &out);
	if (r == MA_SASL_CHALLENGE || r == MA_SASL_PENDING)
		s->sasl = sasl;
	pop3_sasl_result(s, r, out);
}

void pop3_sasl_line(struct pop3_session *s, char *line, size_t len)
{
	const char *out = NULL;
	enum ma_sasl_result r;

	/* the core answers "*" with MA_SASL_CANCELLED (RFC 5034 4) */
	r = ma_sasl_continue(s->sasl, line, len, &out);
	ma_wipe(line, len);
	pop3_sasl_result(s, r, out);
}

static void pop3_cmd_stls(struct pop3_session *s, struct pop3_cmdline *cmd)
{
	if (cmd->n_args != 0) {
		pop3_reply_err(s, "Syntax: STLS");
		return;
	}
	if (ma_conn_is_tls(s->conn)) {
		pop3_reply_err(s, "TLS is already active.");
		return;
	}
	if (!ma_conn_starttls_available(s->conn)) {
		pop3_reply_err(s, "TLS is not available.");
		return;
	}
	pop3_reply_ok(s, "Begin TLS negotiation");
	/* RFC 2595 section 4 / DESIGN: the core flushes this reply and
	 * drops anything pipelined after STLS */
	s->tls_pending = true;
	if (ma_conn_starttls(s->conn) < 0) {
		s->tls_pending = false;
		pop3_close(s, "STLS failed");
	}
}

static void pop3_cmd_utf8(struct pop3_session *s, struct pop3_cmdline *cmd)
{
	if (cmd->n_args != 0) {
		pop3_reply_err(s, "Syntax: UTF8");
		return;
	}
	s->utf8 = true;
	pop3_reply_ok(s, "UTF8 enabled");
}

/* ------------------------------------------------------------- both */

static void pop3_cmd_capa(struct pop3_session *s, struct pop3_cmdline *cmd)
{
	bool auth = s->state == POP3_STATE_AUTHORIZATION;
	const char *mechs = ma_sasl_mechanisms(s->conn);
	char line[128];
	int n;

	pop3_reply_ok(s, "Capability list follows");
	(void)pop3_write(s, "TOP\r\n", 5);
	if (auth && ma_conn_plaintext_auth_allowed(s->conn))
		(void)pop3_write(s, "USER\r\n", 6);
	(void)pop3_write(s, "UIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
			 "PIPELINING\r\n", 46);
	if (auth && *mechs != '\0') {
		(void)pop3_write(s, "SASL ", 5);
		(void)pop3_write(s, mechs, strlen(mechs));
		(void)pop3_write(s, "\r\n", 2);
	}
	if (auth && ma_conn_starttls_available(s->conn))
		(void)pop3_write(s, "STLS\r\n", 6);
	if (s->set->expire_never)
		n = snprintf(line, sizeof(line), "EXPIRE NEVER\r\n");
	else
		n = snprintf(line, sizeof(line), "EXPIRE %u\r\n",
			     s->set->expire_days);
	(void)pop3_write(s, line, (size_t)n);
	if (s->set->login_delay > 0) {
		n = snprintf(line, sizeof(line), "LOGIN-DELAY %u\r\n",
			     s->set->login_delay);
		(void)pop3_write(s, line, (size_t)n);
	}
	/* RFC 6856: the "USER" tag says USER/PASS take UTF-8 too */
	if (auth && ma_conn_plaintext_auth_allowed(s->conn))
		(void)pop3_write(s, "UTF8 USER\r\n", 11);
	else
		(void)pop3_write(s, "UTF8\r\n", 6);
	(void)pop3_write(s, "IMPLEMENTATION mailaccess\r\n.\r\n", 30);
}

static void pop3_update(struct pop3_session *s);

static void pop3_cmd_quit(struct pop3_session *s, struct pop3_cmdline *cmd)
{
	if (s->state == POP3_STATE_TRANSACTION) {
		pop3_update(s);
		return;
	}
	pop3_reply_ok(s, "Logging out.");
	pop3_close(s, "QUIT");
}

/* ------------------------------------------------------ TRANSACTION */

int pop3_msg_lookup(struct pop3_session *s, const char *arg, size_t len,
		    uint32_t *idx_r)
{
	uint32_t n;

	if (pop3_parse_number(arg, len, UINT32_MAX, &n) < 0) {
		pop3_reply_err(s, "Invalid message number.");
		return -1;
	}
	if (n == 0 || n > s->count) {
		pop3_reply_err(s, "There's no message %u.", n);
		return -1;
	}
	if ((s->deleted[n - 1] & POP3_DELETED) != 0) {
		pop3_reply_err(s, "message %u already deleted", n);
		return -1;
	}
	*idx_r = n - 1;
	return 0;
}

static void pop3_cmd_stat(struct pop3_session *s, struct pop3_cmdline *cmd)
{
	if (cmd->n_args != 0) {
		pop3_reply_err(s, "Syntax: STAT");
		return;
	}
	pop3_reply_ok(s, "%u %llu", s->count - s->n_deleted,
		      (unsigned long long)(s->total_size - s->deleted_size));
}

static void pop3_cmd_list(struct pop3_session *s, struct pop3_cmdline *cmd)
{
	uint32_t i;

	if (cmd->n_args > 1) {
		pop3_reply_err(s, "Syntax: LIST [<message number>]");
		return;
	}
	if (cmd->n_args == 1) {
		if (pop3_msg_lookup(s, cmd->args[0], cmd->arg_lens[0], &i) < 0)
			return;
		pop3_reply_ok(s, "%u %llu", i + 1,
			      (unsigned long long)s->msgs[i].size);
		return;
	}
	pop3_reply_ok(s, "%u messages (%llu octets)", s->count - s->n_deleted,
		      (unsigned long long)(s->total_size - s->deleted_size));
	pop3_stream_start(s, POP3_STREAM_LIST);
}

static void pop3_cmd_uidl(struct pop3_session *s, struct pop3_cmdline *cmd)
{
	char uidl[POP3_UIDL_MAX + 1];
	uint32_t i;

	if (cmd->n_args > 1) {
		pop3_reply_err(s, "Syntax: UIDL [<message number>]");
		return;
	}
	if (cmd->n_args == 1) {
		if (pop3_msg_lookup(s, cmd->args[0], cmd->arg_lens[0], &i) < 0)
			return;
		pop3_uidl_expand(&s->set->uidl, s->uidvalidity,
				 s->msgs[i].uid, uidl);
		pop3_reply_ok(s, "%u %s", i + 1, uidl);
		return;
	}
	pop3_reply_ok_bare(s);
	pop3_stream_start(s, POP3_STREAM_UIDL);
}

/* Reads message idx for RETR/TOP; -1 after replying. */
static int pop3_msg_open(struct pop3_session *s, uint32_t idx)
{
	struct ma_error_info err;

	memset(&err, 0, sizeof(err));
	memset(&s->msg, 0, sizeof(s->msg));
	if (ma_mailbox_msg_read(s->box, s->msgs[idx].uid, &s->msg, &err) < 0) {
		if (err.code == MA_ERR_EXPUNGED || err.code == MA_ERR_NOTFOUND) {
			/* another protocol expunged it after our snapshot */
			pop3_reply_err_nocount(s, "Message %u was deleted by "
					       "another session.", idx + 1);
			return -1;
		}
		ma_conn_log(s->conn, MA_LOG_ERROR, "reading UID %u failed: %s: %s",
			    s->msgs[idx].uid, ma_error_name(err.code), err.text);
		pop3_reply_err_nocount(s, "[SYS/TEMP] Reading the message "
				       "failed (session %s)", ma_conn_id(s->conn));
		return -1;
	}
	s->msg_held = true;
	if (s->msg.data == NULL && s->msg.size > 0) {
		ma_msg_data_release(&s->msg);
		s->msg_held = false;
		pop3_reply_err_nocount(s, "[SYS/TEMP] Reading the message "
				       "failed (session %s)", ma_conn_id(s->conn));
		return -1;
	}
	return 0;
}

static void pop3_cmd_retr(struct pop3_session *s, struct pop3_cmdline *cmd)
{
	uint32_t i;

	if (cmd->n_args != 1) {
		pop3_reply_err(s, "Syntax: RETR <message number>");
		return;
	}
	if (pop3_msg_lookup(s, cmd->args[0], cmd->arg_lens[0], &i) < 0)
		return;
	if (pop3_msg_open(s, i) < 0)
		return;
	s->n_retr++;
	s->retr_bytes += s->msg.size;
	s->deleted[i] |= POP3_RETRIEVED;
	pop3_reply_ok(s, "%llu octets", (unsigned long long)s->msg.size);
	pop3_dotstuff_init(&s->ds, s->msg.data, s->msg.size);
	pop3_stream_start(s, POP3_STREAM_BODY);
}

static void pop3_cmd_top(struct pop3_session *s, struct pop3_cmdline *cmd)
{
	uint32_t i, lines;

	if (cmd->n_args != 2) {
		pop3_reply_err(s, "Syntax: TOP <message number> <lines>");
		return;
	}
	if (pop3_msg_lookup(s, cmd->args[0], cmd->arg_lens[0], &i) < 0)
		return;
	if (pop3_parse_number(cmd->args[1], cmd->arg_lens[1], UINT32_MAX,
			      &lines) < 0) {
		pop3_reply_err(s, "Invalid number of lines.");
		return;
	}
	if (pop3_msg_open(s, i) < 0)
		return;
	s->n_top++;
	pop3_reply_ok_bare(s);
	pop3_dotstuff_init(&s->ds, s->msg.data,
			   pop3_top_end(s->msg.data, s->msg.size, lines));
	pop3_stream_start(s, POP3_STREAM_BODY);
}

static void pop3_cmd_dele(struct pop3_session *s, struct pop3_cmdline *cmd)
{
	uint32_t i;

	if (cmd->n_args != 1) {
		pop3_reply_err(s, "Syntax: DELE <message number>");
		return;
	}
	if (pop3_msg_lookup(s, cmd->args[0], cmd->arg_lens[0], &i) < 0)
		return;
	s->deleted[i] |= POP3_DELETED;
	s->n_deleted++;
	s->deleted_size += s->msgs[i].size;
	pop3_update_summary(s);
	pop3_reply_ok(s, "message %u deleted", i + 1);
}

static void pop3_cmd_noop(struct pop3_session *s, struct pop3_cmdline *cmd)
{
	if (cmd->n_args != 0) {
		pop3_reply_err(s, "Syntax: NOOP");
		return;
	}
	pop3_reply_ok_bare(s);
}

static void pop3_cmd_rset(struct pop3_session *s, struct pop3_cmdline *cmd)
{
	if (cmd->n_args != 0) {
		pop3_reply_err(s, "Syntax: RSET");
		return;
	}
	for (uint32_t i = 0; i < s->count; i++)
		s->deleted[i] &= (uint8_t)~POP3_DELETED;
	s->n_deleted = 0;
	s->deleted_size = 0;
	pop3_update_summary(s);
	pop3_reply_ok(s, "maildrop has %u messages (%llu octets)", s->count,
		      (unsigned long long)s->total_size);
}

/* RFC 1939 section 6: the UPDATE state. One expunge call with every
 * marked UID; if it fails the client must hear so ("-ERR some deleted
 * messages not removed"). Retrieved messages that stay get \Seen so an
 * IMAP client sees them as read, best effort. */
static void pop3_update(struct pop3_session *s)
{
	struct ma_error_info err;
	uint32_t *uids = NULL, *failed = NULL;
	uint32_t n = 0, n_seen = 0;
	unsigned n_failed = 0;
	int ret = 0;

	s->state = POP3_STATE_UPDATE;
	memset(&err, 0, sizeof(err));
	if (s->count > 0)
		uids = ma_malloc0(sizeof(*uids) * s->count);

	for (uint32_t i = 0; i < s->count; i++) {
		if ((s->deleted[i] & (POP3_RETRIEVED | POP3_DELETED)) ==
		    POP3_RETRIEVED && (s->msgs[i].flags & MA_FLAG_SEEN) == 0)
			uids[n_seen++] = s->msgs[i].uid;
	}
	if (n_seen > 0)
		failed = ma_malloc0(sizeof(*failed) * n_seen);
	if (n_seen > 0 &&
	    ma_mailbox_store_flags(s->box, uids, n_seen, MA_FLAGS_ADD,
				   MA_FLAG_SEEN, NULL, 0, 0, failed, &n_failed,
				   &err) < 0) {
		ma_conn_log(s->conn, MA_LOG_WARNING,
			    "setting \\Seen failed: %s: %s",
			    ma_error_name(err.code), err.text);
	}

	for (uint32_t i = 0; i < s->count; i++) {
		if ((s->deleted[i] & POP3_DELETED) != 0)
			uids[n++] = s->msgs[i].uid;
	}
	if (n > 0) {
		memset(&err, 0, sizeof(err));
		ret = ma_mailbox_expunge(s->box, uids, n, &err);
	}
	free(uids);
	free(failed);

	if (ret < 0) {
		ma_conn_log(s->conn, MA_LOG_ERROR, "expunge of %u failed: %s: %s",
			    n, ma_error_name(err.code), err.text);
		pop3_reply_err_nocount(s, "[SYS/TEMP] Some deleted messages "
				       "were not removed (session %s)",
				       ma_conn_id(s->conn));
	} else {
		s->n_expunged = n;
		if (n > 0)
			pop3_reply_ok(s, "Logging out, %u messages deleted.", n);
		else
			pop3_reply_ok(s, "Logging out.");
	}
	pop3_update_summary(s);
	pop3_close(s, "QUIT");
}

/* -------------------------------------------------------- dispatch */

static const struct pop3_command pop3_commands[] = {
	{ "USER", POP3_IN_AUTH, pop3_cmd_user },
	{ "PASS", POP3_IN_AUTH, pop3_cmd_pass },
	{ "AUTH", POP3_IN_AUTH, pop3_cmd_auth },
	{ "STLS", POP3_IN_AUTH, pop3_cmd_stls },
	{ "UTF8", POP3_IN_AUTH, pop3_cmd_utf8 },
	{ "CAPA", POP3_IN_AUTH | POP3_IN_TRANS, pop3_cmd_capa },
	{ "QUIT", POP3_IN_AUTH | POP3_IN_TRANS, pop3_cmd_quit },
	{ "STAT", POP3_IN_TRANS, pop3_cmd_stat },
	{ "LIST", POP3_IN_TRANS, pop3_cmd_list },
	{ "RETR", POP3_IN_TRANS, pop3_cmd_retr },
	{ "DELE", POP3_IN_TRANS, pop3_cmd_dele },
	{ "NOOP", POP3_IN_TRANS, pop3_cmd_noop },
	{ "RSET", POP3_IN_TRANS, pop3_cmd_rset },
	{ "TOP", POP3_IN_TRANS, pop3_cmd_top },
	{ "UIDL", POP3_IN_TRANS, pop3_cmd_uidl },
};

void pop3_command_run(struct pop3_session *s, char *line, size_t len)
{
	struct pop3_cmdline cmd;
	const struct pop3_command *c = NULL;

	pop3_cmdline_split(line, len, &cmd);
	for (size_t i = 0; i < sizeof(pop3_commands) / sizeof(pop3_commands[0]); i++) {
		if (ma_slice_ieq(cmd.keyword, cmd.keyword_len,
				 pop3_commands[i].name)) {
			c = &pop3_commands[i];
			break;
		}
	}
	if (c == NULL) {
		pop3_reply_err(s, "Unknown command.");
		return;
	}
	if ((c->states & (1u << s->state)) == 0) {
		pop3_reply_err(s, s->state == POP3_STATE_AUTHORIZATION ?
			       "Not logged in." :
			       "Command not valid in this state.");
		return;
	}
	if (cmd.too_many_args && c->run != pop3_cmd_pass &&
	    c->run != pop3_cmd_user) {
		pop3_reply_err(s, "Too many arguments.");
		return;
	}
	c->run(s, &cmd);
}
