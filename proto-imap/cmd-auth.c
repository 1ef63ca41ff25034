/*
 * cmd-auth.c - the not-authenticated state: STARTTLS (RFC 3501 6.2.1),
 * LOGIN (6.2.3) and AUTHENTICATE (6.2.2, SASL-IR RFC 4959), and the step
 * into the authenticated state (open the user's store, create the
 * special-use mailboxes, CAPABILITY in the tagged OK).
 *
 * Password checks are asynchronous (the core's auth pool): the handler
 * returns IMAP_CMD_WAIT and the callback replies. Secrets are wiped from
 * the command arena as soon as the core has its copy.
 */
#include "imap-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void imap_wipe_arg(const struct imap_arg *a)
{
	if (a->str != NULL && a->type != IMAP_ARG_NIL)
		ma_wipe((void *)a->str, a->len);
}

enum imap_cmd_result imap_cmd_starttls(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;

	if (cmd->n_args != 0) {
		imap_reply(cmd, "BAD", NULL, "STARTTLS takes no arguments");
		return IMAP_CMD_DONE;
	}
	if (ma_conn_is_tls(s->conn)) {
		imap_reply(cmd, "BAD", NULL, "TLS is already active");
		return IMAP_CMD_DONE;
	}
	if (!ma_conn_starttls_available(s->conn)) {
		imap_reply(cmd, "NO", NULL, "STARTTLS is not available");
		return IMAP_CMD_DONE;
	}
	imap_reply(cmd, "OK", NULL, "Begin TLS negotiation now.");
	/* flushes the OK, drops pipelined input (RFC 3501 6.2.1: commands
	 * sent before the handshake must not run), then handshakes */
	imap_session_starttls(s);
	if (ma_conn_starttls(s->conn) < 0)
		imap_session_close(s, "* BYE TLS failed", "starttls failed");
	return IMAP_CMD_DONE;
}

/* Into the authenticated state; replies to the running command. */
static void imap_login_finish(struct imap_session *s, const char *user)
{
	struct imap_cmd *cmd = s->cmd;
	struct ma_error_info err;

	memset(&err, 0, sizeof(err));
	s->user = ma_store_user_open(ma_core_store(s->core), user, &err);
	if (s->user == NULL) {
		ma_conn_log(s->conn, MA_LOG_ERROR, "opening the store of %s: %s: %s",
			    user, ma_error_name(err.code), err.text);
		imap_reply(cmd, "NO", "UNAVAILABLE",
			   "Mail store not available, try again later (session %s)",
			   ma_conn_id(s->conn));
		return;
	}
	free(s->user_name);
	s->user_name = ma_strdup(user);
	ma_conn_set_user(s->conn, s->user_name);
	/* RFC 3501 5.4: the autologout timer of an authenticated session is
	 * at least 30 minutes; before login the core's shorter limit holds. */
	ma_conn_set_idle_timeout(s->conn, s->set->idle_timeout);
	s->state = IMAP_STATE_AUTH;
	imap_autocreate(s);
	imap_reply(cmd, "OK", NULL, "[CAPABILITY %s] Logged in",
		   imap_capability_string(s));
}

static void imap_auth_callback(struct ma_conn *conn, enum ma_auth_status status,
			       const char *user, void *ctx)
{
	struct imap_session *s = ctx;

	(void)conn;
	s->sasl = NULL;
	if (s->cmd == NULL)
		return;
	imap_cmd_line_mode(s->cmd, NULL);
	switch (status) {
	case MA_AUTH_OK:
		imap_login_finish(s, user);
		break;
	case MA_AUTH_TEMPFAIL:
		imap_reply(s->cmd, "NO", "UNAVAILABLE",
			   "Temporary authentication failure, try again later");
		break;
	case MA_AUTH_DELAYED:
		imap_reply(s->cmd, "NO", "UNAVAILABLE",
			   "Too many failed logins, try again later");
		break;
	case MA_AUTH_FAIL:
	case MA_AUTH_UNKNOWN_USER:
	default:
		imap_reply(s->cmd, "NO", "AUTHENTICATIONFAILED",
			   "Authentication failed.");
		break;
	}
	imap_cmd_done(s);
}

enum imap_cmd_result imap_cmd_login(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	const char *user, *pass;

	if (cmd->n_args != 2 || !imap_arg_is_astring(&cmd->args[0]) ||
	    !imap_arg_is_astring(&cmd->args[1])) {
		for (unsigned i = 0; i < cmd->n_args; i++)
			imap_wipe_arg(&cmd->args[i]);
		imap_reply(cmd, "BAD", NULL, "LOGIN expects user name and password");
		return IMAP_CMD_DONE;
	}
	user = imap_arg_astring(&cmd->args[0]);
	pass = imap_arg_astring(&cmd->args[1]);
	if (!ma_conn_plaintext_auth_allowed(s->conn)) {
		/* RFC 3501 6.2.3 LOGINDISABLED; RFC 5530 PRIVACYREQUIRED */
		imap_wipe_arg(&cmd->args[1]);
		imap_reply(cmd, "NO", "PRIVACYREQUIRED",
			   "Plaintext authentication disallowed on non-secure "
			   "connections. Use STARTTLS.");
		return IMAP_CMD_DONE;
	}
	if (cmd->args[0].len == 0 || cmd->args[0].len >= MA_AUTH_USER_MAX ||
	    strlen(user) != cmd->args[0].len || strlen(pass) != cmd->args[1].len) {
		imap_wipe_arg(&cmd->args[1]);
		imap_reply(cmd, "NO", "AUTHENTICATIONFAILED", "Authentication failed.");
		return IMAP_CMD_DONE;
	}
	ma_auth_verify(s->conn, user, pass, imap_auth_callback, s);
	imap_wipe_arg(&cmd->args[1]);
	return IMAP_CMD_WAIT;
}

static void imap_sasl_reply_result(struct imap_cmd *cmd, enum ma_sasl_result r,
				   const char *out);

static void imap_auth_line(struct imap_cmd *cmd, const char *line, size_t len)
{
	struct imap_session *s = cmd->s;
	const char *out = NULL;
	enum ma_sasl_result r;

	if (s->sasl == NULL) {
		imap_cmd_line_mode(cmd, NULL);
		imap_reply(cmd, "BAD", NULL, "Authentication aborted");
		imap_cmd_done(s);
		return;
	}
	if (line == NULL) {
		/* too long or NUL: cancel the exchange */
		(void)ma_sasl_continue(s->sasl, "*", 1, &out);
		s->sasl = NULL;
		imap_cmd_line_mode(cmd, NULL);
		imap_reply(cmd, "BAD", NULL, "Invalid authentication response");
		imap_cmd_done(s);
		return;
	}
	r = ma_sasl_continue(s->sasl, line, len, &out);
	imap_sasl_reply_result(cmd, r, out);
}

static void imap_sasl_reply_result(struct imap_cmd *cmd, enum ma_sasl_result r,
				   const char *out)
{
	struct imap_session *s = cmd->s;
	char line[1100];

	switch (r) {
	case MA_SASL_CHALLENGE:
		/* RFC 3501 7.5: "+ " base64 */
		snprintf(line, sizeof(line), "+ %s\r\n", out != NULL ? out : "");
		if (ma_conn_write(s->conn, line, strlen(line)) < 0)
			return;
		imap_cmd_line_mode(cmd, imap_auth_line);
		break;
	case MA_SASL_PENDING:
		/* the callback replies */
		imap_cmd_line_mode(cmd, NULL);
		break;
	case MA_SASL_CANCELLED:
		s->sasl = NULL;
		imap_cmd_line_mode(cmd, NULL);
		/* RFC 3501 6.2.2: a cancelled exchange is BAD */
		imap_reply(cmd, "BAD", NULL, "Authentication cancelled");
		imap_cmd_done(s);
		break;
	case MA_SASL_ERROR:
	default:
		s->sasl = NULL;
		imap_cmd_line_mode(cmd, NULL);
		imap_reply(cmd, "BAD", NULL, "%s",
			   out != NULL && *out != '\0' ? out :
			   "Invalid authentication data");
		imap_cmd_done(s);
		break;
	}
}

static bool imap_mech_offered(const char *mechs, const char *mech)
{
	while (mechs != NULL && *mechs != '\0') {
		size_t n = strcspn(mechs, " ");

		if (n > 0 && ma_slice_ieq(mechs, n, mech))
			return true;
		mechs += n;
		while (*mechs == ' ')
			mechs++;
	}
	return false;
}

enum imap_cmd_result imap_cmd_authenticate(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	const char *mech, *initial = NULL, *out = NULL;
	enum ma_sasl_result r;

	if (cmd->n_args < 1 || cmd->n_args > 2 ||
	    cmd->args[0].type != IMAP_ARG_ATOM ||
	    (cmd->n_args == 2 && cmd->args[1].type != IMAP_ARG_ATOM &&
	     cmd->args[1].type != IMAP_ARG_STRING)) {
		if (cmd->n_args == 2)
			imap_wipe_arg(&cmd->args[1]);
		imap_reply(cmd, "BAD", NULL,
			   "AUTHENTICATE expects a mechanism and an optional "
			   "initial response");
		return IMAP_CMD_DONE;
	}
	mech = cmd->args[0].str;
	if (cmd->n_args == 2)
		initial = cmd->args[1].str;
	if (!imap_mech_offered(ma_sasl_mechanisms(s->conn), mech)) {
		if (cmd->n_args == 2)
			imap_wipe_arg(&cmd->args[1]);
		if (!ma_conn_plaintext_auth_allowed(s->conn))
			imap_reply(cmd, "NO", "PRIVACYREQUIRED",
				   "Plaintext authentication disallowed on "
				   "non-secure connections. Use STARTTLS.");
		else
			imap_reply(cmd, "NO", NULL,
				   "Unsupported authentication mechanism");
		return IMAP_CMD_DONE;
	}
	r = ma_sasl_begin(s->conn, mech, initial, imap_auth_callback, s,
			  &s->sasl, &out);
	if (cmd->n_args == 2)
		imap_wipe_arg(&cmd->args[1]);
	imap_sasl_reply_result(cmd, r, out);
	return IMAP_CMD_WAIT;
}
