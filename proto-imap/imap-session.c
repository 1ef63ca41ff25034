/*
 * imap-session.c - the life of one IMAP session.
 *
 * Owns: the connection callbacks (greeting, input loop, output drained,
 * TLS ready, timeout, shutdown, close), the command table and dispatch
 * (state check, UID prefix, read-only check), tagged and untagged replies
 * (untagged mailbox updates go out before the tagged line, RFC 3501
 * 7.4.1), the consecutive-BAD limit, CAPABILITY, raw-line mode for
 * AUTHENTICATE and IDLE, and the summary line.
 *
 * One command runs at a time. Input is paused while a command is parked
 * (IMAP_CMD_CONTINUE, waiting for output to drain) or waiting for a
 * callback (IMAP_CMD_WAIT); pipelined commands wait in the core's buffer.
 * The command arena is reset after every command, so nothing a client
 * sends outlives its command.
 */
#include "imap-private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the session keeps beyond the shared struct (same allocation). */
struct imap_session_priv {
	struct imap_session s;		/* first: imap_priv() casts */
	bool dead;			/* closing: write nothing more */
	bool paused;			/* we paused the conn's input */
	bool tls_pending;		/* STARTTLS handshake running */
	bool replied;			/* the running command replied */
	bool in_handler;		/* inside a handler or line callback */
	bool wait_done;			/* imap_cmd_done() came from inside */
	bool parked;			/* handler returned IMAP_CMD_CONTINUE */
	bool drain_resume;		/* input paused for output backpressure */
	imap_line_handler *line_fn;	/* raw-line mode (AUTHENTICATE, IDLE) */
	char capability[512];
};

/* ------------------------------------------------------------ table */

static const struct imap_command imap_commands[] = {
	/* any state (RFC 3501 6.1) */
	{ "CAPABILITY", imap_cmd_capability, IMAP_CMDF_ANY },
	{ "NOOP", imap_cmd_noop, IMAP_CMDF_ANY },
	{ "LOGOUT", imap_cmd_logout, IMAP_CMDF_ANY },
	{ "ID", imap_cmd_id, IMAP_CMDF_ANY },			/* RFC 2971 */
	/* not authenticated (6.2) */
	{ "STARTTLS", imap_cmd_starttls, IMAP_CMDF_NOT_AUTH },
	{ "AUTHENTICATE", imap_cmd_authenticate, IMAP_CMDF_NOT_AUTH },
	{ "LOGIN", imap_cmd_login, IMAP_CMDF_NOT_AUTH },
	/* authenticated (6.3) */
	{ "ENABLE", imap_cmd_enable, IMAP_CMDF_AUTH },		/* RFC 5161 3.1 */
	{ "NAMESPACE", imap_cmd_namespace, IMAP_CMDF_AUTH | IMAP_CMDF_SELECTED },
	{ "IDLE", imap_cmd_idle, IMAP_CMDF_AUTH | IMAP_CMDF_SELECTED },
	{ "SELECT", imap_cmd_select, IMAP_CMDF_AUTH | IMAP_CMDF_SELECTED },
	{ "EXAMINE", imap_cmd_examine, IMAP_CMDF_AUTH | IMAP_CMDF_SELECTED },
	{ "CREATE", imap_cmd_create, IMAP_CMDF_AUTH | IMAP_CMDF_SELECTED },
	{ "DELETE", imap_cmd_delete, IMAP_CMDF_AUTH | IMAP_CMDF_SELECTED },
	{ "RENAME", imap_cmd_rename, IMAP_CMDF_AUTH | IMAP_CMDF_SELECTED },
	{ "SUBSCRIBE", imap_cmd_subscribe, IMAP_CMDF_AUTH | IMAP_CMDF_SELECTED },
	{ "UNSUBSCRIBE", imap_cmd_unsubscribe, IMAP_CMDF_AUTH | IMAP_CMDF_SELECTED },
	{ "LIST", imap_cmd_list, IMAP_CMDF_AUTH | IMAP_CMDF_SELECTED },
	{ "LSUB", imap_cmd_lsub, IMAP_CMDF_AUTH | IMAP_CMDF_SELECTED },
	{ "STATUS", imap_cmd_status, IMAP_CMDF_AUTH | IMAP_CMDF_SELECTED },
	{ "APPEND", imap_cmd_append, IMAP_CMDF_AUTH | IMAP_CMDF_SELECTED },
	/* selected (6.4) */
	{ "CHECK", imap_cmd_check, IMAP_CMDF_SELECTED },
	{ "CLOSE", imap_cmd_close, IMAP_CMDF_SELECTED },
	{ "UNSELECT", imap_cmd_unselect, IMAP_CMDF_SELECTED },	/* RFC 3691 */
	/* UID EXPUNGE: RFC 4315 2.1 */
	{ "EXPUNGE", imap_cmd_expunge, IMAP_CMDF_SELECTED | IMAP_CMDF_UID |
	  IMAP_CMDF_WRITE },
	{ "SEARCH", imap_cmd_search, IMAP_CMDF_SELECTED | IMAP_CMDF_UID |
	  IMAP_CMDF_NO_EXPUNGE },
	{ "FETCH", imap_cmd_fetch, IMAP_CMDF_SELECTED | IMAP_CMDF_UID |
	  IMAP_CMDF_NO_EXPUNGE },
	{ "STORE", imap_cmd_store, IMAP_CMDF_SELECTED | IMAP_CMDF_UID |
	  IMAP_CMDF_NO_EXPUNGE | IMAP_CMDF_WRITE },
	{ "COPY", imap_cmd_copy, IMAP_CMDF_SELECTED | IMAP_CMDF_UID },
	/* RFC 6851: MOVE expunges from the source */
	{ "MOVE", imap_cmd_move, IMAP_CMDF_SELECTED | IMAP_CMDF_UID |
	  IMAP_CMDF_WRITE },
};

const struct imap_command *imap_command_find(const char *name)
{
	for (size_t i = 0; i < sizeof(imap_commands) / sizeof(imap_commands[0]); i++) {
		if (strcmp(imap_commands[i].name, name) == 0)
			return &imap_commands[i];
	}
	return NULL;
}

/* ------------------------------------------------------------ output */

static struct imap_session_priv *imap_priv(struct imap_session *s)
{
	return (struct imap_session_priv *)s;
}

static void imap_write(struct imap_session *s, const void *data, size_t len)
{
	struct imap_session_priv *p = imap_priv(s);

	if (p->dead)
		return;
	if (ma_conn_write(s->conn, data, len) < 0)
		p->dead = true;	/* over the output limit: the core closes */
}

void imap_session_close(struct imap_session *s, const char *bye,
			const char *reason)
{
	struct imap_session_priv *p = imap_priv(s);

	if (p->dead)
		return;
	if (bye != NULL) {
		imap_write(s, bye, strlen(bye));
		imap_write(s, "\r\n", 2);
	}
	p->dead = true;
	ma_conn_close(s->conn, reason);
}

void imap_untagged(struct imap_session *s, const char *fmt, ...)
{
	char stack[1024];
	char *heap = NULL, *line = stack;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(stack + 2, sizeof(stack) - 4, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(stack) - 4) {
		heap = ma_malloc0((size_t)n + 5);
		va_start(ap, fmt);
		vsnprintf(heap + 2, (size_t)n + 1, fmt, ap);
		va_end(ap);
		line = heap;
	}
	line[0] = '*';
	line[1] = ' ';
	memcpy(line + 2 + n, "\r\n", 2);
	imap_write(s, line, (size_t)n + 4);
	free(heap);
}

/* "tag STATUS [code] text" with CR/LF in code/text flattened: store and
 * auth texts must not break the line protocol. */
static void imap_tagged_line(struct imap_session *s, const char *tag,
			     const char *status, const char *code,
			     const char *text)
{
	char line[2048];
	int n;

	if (code != NULL)
		n = snprintf(line, sizeof(line) - 2, "%s %s [%s] %s", tag,
			     status, code, text);
	else
		n = snprintf(line, sizeof(line) - 2, "%s %s %s", tag, status,
			     text);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	for (int i = 0; i < n; i++) {
		if (line[i] == '\r' || line[i] == '\n' || line[i] == '\0')
			line[i] = ' ';
	}
	line[n++] = '\r';
	line[n++] = '\n';
	imap_write(s, line, (size_t)n);
}

static void imap_count_bad(struct imap_session *s, bool bad)
{
	if (!bad) {
		s->bad_count = 0;
		return;
	}
	if (++s->bad_count >= IMAP_BAD_MAX) {
		/* a client this confused will not recover; a scanner should
		 * not get unlimited tries either */
		imap_session_close(s, "* BYE Too many invalid commands",
				   "too many bad commands");
	}
}

void imap_reply(struct imap_cmd *cmd, const char *status, const char *code,
		const char *fmt, ...)
{
	struct imap_session *s = cmd->s;
	struct imap_session_priv *p = imap_priv(s);
	char text[1024];
	bool bad = strcmp(status, "BAD") == 0;
	va_list ap;

	if (p->replied)
		return;
	p->replied = true;
	if (p->dead)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* RFC 3501 7.4.1 / 5.5: mailbox changes reach the client before the
	 * tagged reply; no EXPUNGE during FETCH/STORE/SEARCH (non-UID). */
	if (!bad && s->state == IMAP_STATE_SELECTED && s->sel != NULL &&
	    cmd->def != NULL)
		imap_sync_report(s, (cmd->def->flags & IMAP_CMDF_NO_EXPUNGE) == 0 ||
				 cmd->uid);
	imap_tagged_line(s, cmd->tag, status, code, text);
	imap_count_bad(s, bad);
}

void imap_reply_store_error(struct imap_cmd *cmd, const struct ma_error_info *err,
			    bool trycreate)
{
	const char *code;
	const char *text = err->text[0] != '\0' ? err->text : "Operation failed";

	/* RFC 5530 response codes */
	switch (err->code) {
	case MA_ERR_TEMP:
		code = "UNAVAILABLE";
		break;
	case MA_ERR_NOTFOUND:
		code = trycreate ? "TRYCREATE" : "NONEXISTENT";
		break;
	case MA_ERR_EXISTS:
		code = "ALREADYEXISTS";
		break;
	case MA_ERR_PERM:
		code = "NOPERM";
		break;
	case MA_ERR_QUOTA:
		code = "OVERQUOTA";
		break;
	case MA_ERR_EXPUNGED:
		code = "EXPUNGEISSUED";
		break;
	case MA_ERR_INUSE:
		code = "INUSE";
		break;
	case MA_ERR_LIMIT:
		code = "LIMIT";
		break;
	case MA_ERR_BADARGS:
		code = "CANNOT";
		break;
	case MA_ERR_INTERNAL:
	default:
		/* detail to the log; the client gets the session id to quote */
		ma_conn_log(cmd->s->conn, MA_LOG_ERROR, "%s failed: %s: %s",
			    cmd->name != NULL ? cmd->name : "command",
			    ma_error_name(err->code), err->text);
		imap_reply(cmd, "NO", "SERVERBUG",
			   "Internal error occurred. Refer to server log "
			   "(session %s)", ma_conn_id(cmd->s->conn));
		return;
	}
	imap_reply(cmd, "NO", code, "%s", text);
}

/* ------------------------------------------------------- capability */

const char *imap_capability_string(struct imap_session *s)
{
	struct imap_session_priv *p = imap_priv(s);
	struct ma_buf b;

	ma_buf_init(&b, sizeof(p->capability) - 1);
	(void)ma_buf_printf(&b, "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE "
			    "NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE "
			    "CREATE-SPECIAL-USE STATUS=SIZE APPENDLIMIT=%llu",
			    (unsigned long long)s->set->max_message_size);
	/* LIST-EXTENDED (RFC 5258) is not advertised: the selection options
	 * SUBSCRIBED and SPECIAL-USE and several RETURN options work, but
	 * RECURSIVEMATCH and REMOTE, which the RFC requires, do not yet. */
	if (s->state == IMAP_STATE_NOT_AUTH) {
		/* RFC 3501 6.2.3 / RFC 2595: no AUTH= and LOGINDISABLED
		 * while a password would travel in the clear */
		const char *mechs = ma_sasl_mechanisms(s->conn);

		if (ma_conn_starttls_available(s->conn))
			(void)ma_buf_printf(&b, " STARTTLS");
		if (!ma_conn_plaintext_auth_allowed(s->conn))
			(void)ma_buf_printf(&b, " LOGINDISABLED");
		while (mechs != NULL && *mechs != '\0') {
			size_t n = strcspn(mechs, " ");

			if (n > 0)
				(void)ma_buf_printf(&b, " AUTH=%.*s", (int)n, mechs);
			mechs += n;
			while (*mechs == ' ')
				mechs++;
		}
	}
	memcpy(p->capability, ma_buf_ptr(&b), ma_buf_len(&b));
	p->capability[ma_buf_len(&b)] = '\0';
	ma_buf_free(&b);
	return p->capability;
}

/* ---------------------------------------------------------- summary */

static void imap_update_summary(struct imap_session *s)
{
	char text[128];

	snprintf(text, sizeof(text), "fetch=%llu append=%llu expunged=%llu",
		 (unsigned long long)s->n_fetch, (unsigned long long)s->n_append,
		 (unsigned long long)s->n_expunged);
	ma_conn_set_summary(s->conn, text);
}

/* --------------------------------------------------------- dispatch */

static void imap_pause(struct imap_session *s)
{
	struct imap_session_priv *p = imap_priv(s);

	if (!p->paused && !p->dead) {
		p->paused = true;
		ma_conn_pause_input(s->conn);
	}
}

static void imap_resume(struct imap_session *s)
{
	struct imap_session_priv *p = imap_priv(s);

	if (p->paused && !p->dead) {
		p->paused = false;
		ma_conn_resume_input(s->conn);
	}
}

/* The command is over: free its memory, take the next one. */
static void imap_cmd_finish(struct imap_session *s)
{
	struct imap_session_priv *p = imap_priv(s);

	if (s->cmd != NULL && !p->replied && !p->dead) {
		ma_conn_log(s->conn, MA_LOG_ERROR, "%s finished without a reply",
			    s->cmd->name);
		imap_tagged_line(s, s->cmd->tag, "NO", "SERVERBUG",
				 "Internal error occurred");
	}
	s->cmd = NULL;
	p->line_fn = NULL;
	p->replied = false;
	p->parked = false;
	/* runs the command's cleanup hooks (IDLE's subscription, ...) */
	ma_arena_reset(s->cmd_arena);
	imap_parser_reset(s->parser);
	if (p->dead)
		return;
	imap_update_summary(s);
	if (s->logout) {
		imap_session_close(s, NULL, "logout");
		return;
	}
	imap_resume(s);
}

static void imap_cmd_result(struct imap_session *s, enum imap_cmd_result r)
{
	struct imap_session_priv *p = imap_priv(s);

	switch (r) {
	case IMAP_CMD_DONE:
		imap_cmd_finish(s);
		break;
	case IMAP_CMD_CONTINUE:
		/* parked: on_output_drained() brings us back */
		if (p->dead || p->replied) {
			imap_cmd_finish(s);
			break;
		}
		p->parked = true;
		imap_pause(s);
		ma_conn_want_drain(s->conn);
		break;
	case IMAP_CMD_WAIT:
		/* imap_cmd_done() from a callback ends it */
		if (p->line_fn != NULL)
			imap_resume(s);	/* raw lines go to the handler */
		else
			imap_pause(s);
		break;
	}
}

void imap_cmd_done(struct imap_session *s)
{
	struct imap_session_priv *p = imap_priv(s);

	if (s->cmd == NULL)
		return;
	if (p->in_handler) {
		/* called from inside the handler: finish on its return */
		p->wait_done = true;
		return;
	}
	imap_cmd_finish(s);
}

void imap_cmd_line_mode(struct imap_cmd *cmd, imap_line_handler *fn)
{
	struct imap_session_priv *p = imap_priv(cmd->s);

	p->line_fn = fn;
	if (fn != NULL && !p->in_handler)
		imap_resume(cmd->s);
	else if (fn == NULL && !p->in_handler)
		imap_pause(cmd->s);
}

static bool imap_state_allows(const struct imap_session *s, uint32_t flags)
{
	switch (s->state) {
	case IMAP_STATE_NOT_AUTH:
		return (flags & IMAP_CMDF_NOT_AUTH) != 0;
	case IMAP_STATE_AUTH:
		return (flags & IMAP_CMDF_AUTH) != 0;
	case IMAP_STATE_SELECTED:
		return (flags & IMAP_CMDF_SELECTED) != 0;
	default:
		return false;
	}
}

static void imap_dispatch(struct imap_session *s, struct imap_cmd *cmd)
{
	struct imap_session_priv *p = imap_priv(s);
	const struct imap_command *def = cmd->def;
	enum imap_cmd_result r;

	s->cmd = cmd;
	p->replied = false;
	p->wait_done = false;
	if (!imap_state_allows(s, def->flags)) {
		const char *why = "Command not allowed in this state";

		if (s->state == IMAP_STATE_NOT_AUTH)
			why = "Not logged in";
		else if ((def->flags & IMAP_CMDF_NOT_AUTH) != 0 &&
			 (def->flags & IMAP_CMDF_AUTH) == 0)
			why = "Already logged in";
		else if (s->state == IMAP_STATE_AUTH)
			why = "No mailbox selected";
		imap_reply(cmd, "BAD", NULL, "%s", why);
		imap_cmd_finish(s);
		return;
	}
	if ((def->flags & IMAP_CMDF_WRITE) != 0 && s->sel != NULL &&
	    s->sel->readonly) {
		imap_reply(cmd, "NO", "READ-ONLY", "Mailbox is open read-only");
		imap_cmd_finish(s);
		return;
	}
	p->in_handler = true;
	r = def->handler(cmd);
	p->in_handler = false;
	if (r == IMAP_CMD_WAIT && p->wait_done)
		r = IMAP_CMD_DONE;
	imap_cmd_result(s, r);
}

/* ------------------------------------------------------- callbacks */

static const struct imap_settings imap_default_settings = {
	.max_message_size = 64ull << 20,
	.idle_timeout = 30 * 60,
	.autocreate_subscribe = true,
};

static int imap_on_connect(struct ma_conn *conn)
{
	struct imap_session_priv *p = ma_malloc0(sizeof(*p));
	struct imap_session *s = &p->s;
	const struct ma_loaded_plugin *plugin;

	s->conn = conn;
	s->core = ma_conn_core(conn);
	s->set = &imap_default_settings;
	if (s->core != NULL) {
		plugin = ma_core_find_plugin(s->core, MA_PLUGIN_PROTOCOL, "imap");
		if (plugin != NULL && plugin->ctx != NULL)
			s->set = plugin->ctx;
	}
	s->state = IMAP_STATE_NOT_AUTH;
	s->cmd_arena = ma_arena_create(0);
	s->parser = imap_parser_create(s);
	ma_conn_set_session(conn, s);
	imap_untagged(s, "OK [CAPABILITY %s] mailaccess ready.",
		      imap_capability_string(s));
	return 0;
}

static void imap_input_line(struct imap_session *s)
{
	struct imap_session_priv *p = imap_priv(s);
	const unsigned char *data;
	const char *line, *error;
	size_t len, used, n;
	enum imap_parse_result r;

	data = ma_conn_input(s->conn, &len);
	r = imap_parser_read_line(s->parser, data, len, &used, &line, &n, &error);
	ma_conn_input_consume(s->conn, used);
	if (r == IMAP_PARSE_MORE)
		return;
	p->in_handler = true;
	if (r == IMAP_PARSE_CMD)
		p->line_fn(s->cmd, line, n);
	else
		p->line_fn(s->cmd, NULL, 0);	/* too long / NUL: abort */
	p->in_handler = false;
	imap_parser_line_done(s->parser);
	if (p->wait_done || (p->replied && p->line_fn == NULL))
		imap_cmd_finish(s);
	else if (p->line_fn == NULL)
		imap_pause(s);
}

static void imap_on_input(struct ma_conn *conn)
{
	struct imap_session *s = ma_conn_session(conn);
	struct imap_session_priv *p;

	if (s == NULL)
		return;
	p = imap_priv(s);
	while (!p->dead && !p->tls_pending) {
		const unsigned char *data;
		const char *tag, *error;
		struct imap_cmd *cmd;
		size_t len, used;
		enum imap_parse_result r;

		if (ma_conn_output_full(conn)) {
			/* a client that pipelines without reading its
			 * replies: stop reading until it catches up */
			p->drain_resume = true;
			imap_pause(s);
			ma_conn_want_drain(conn);
			break;
		}
		if (s->cmd != NULL) {
			if (p->line_fn == NULL)
				break;
			data = ma_conn_input(conn, &len);
			if (len == 0)
				break;
			imap_input_line(s);
			continue;
		}
		data = ma_conn_input(conn, &len);
		if (len == 0)
			break;
		/* limits.commands_per_second: one token per command, taken
		 * when its first line is complete and before the parser
		 * consumes it (literals and continuation lines are free). */
		if (imap_parser_idle(s->parser) &&
		    memchr(data, '\n', len) != NULL &&
		    !ma_conn_command_allowed(conn))
			break;
		r = imap_parser_feed(s->parser, data, len, &used, &cmd, &tag,
				     &error);
		/* consume before running: STARTTLS makes the core drop the
		 * rest of its buffer */
		ma_conn_input_consume(conn, used);
		switch (r) {
		case IMAP_PARSE_MORE:
			if (used == 0)
				return;	/* cannot happen; never spin */
			break;
		case IMAP_PARSE_CMD:
			imap_dispatch(s, cmd);
			break;
		case IMAP_PARSE_CONTINUE:
			imap_write(s, "+ Ready for literal data\r\n", 26);
			break;
		case IMAP_PARSE_BAD:
			imap_tagged_line(s, tag, "BAD", NULL, error);
			ma_arena_reset(s->cmd_arena);
			imap_parser_reset(s->parser);
			imap_count_bad(s, true);
			break;
		case IMAP_PARSE_FATAL: {
			char bye[200];

			snprintf(bye, sizeof(bye), "* BYE %s", error);
			ma_conn_input_clear(conn);
			imap_session_close(s, bye, "unrecoverable input");
			return;
		}
		}
	}
}

static void imap_on_output_drained(struct ma_conn *conn)
{
	struct imap_session *s = ma_conn_session(conn);
	struct imap_session_priv *p;
	enum imap_cmd_result r;

	if (s == NULL)
		return;
	p = imap_priv(s);
	if (p->dead)
		return;
	if (p->drain_resume) {
		p->drain_resume = false;
		if (s->cmd == NULL || p->line_fn != NULL)
			imap_resume(s);
	}
	if (s->cmd == NULL || !p->parked)
		return;
	p->parked = false;
	p->in_handler = true;
	r = s->cmd->def->handler(s->cmd);
	p->in_handler = false;
	if (r == IMAP_CMD_WAIT && p->wait_done)
		r = IMAP_CMD_DONE;
	imap_cmd_result(s, r);
}

static void imap_on_tls_ready(struct ma_conn *conn)
{
	struct imap_session *s = ma_conn_session(conn);
	struct imap_session_priv *p;

	if (s == NULL)
		return;
	p = imap_priv(s);
	/* RFC 3501 6.2.1: forget what was learnt before TLS; nothing sent
	 * before the handshake runs (the core dropped it) */
	p->tls_pending = false;
	imap_parser_reset(s->parser);
	s->bad_count = 0;
	imap_resume(s);
}

void imap_session_starttls(struct imap_session *s)
{
	struct imap_session_priv *p = imap_priv(s);

	p->tls_pending = true;
}

static const char *imap_on_timeout(struct ma_conn *conn)
{
	return "* BYE Autologout; idle for too long";
}

static const char *imap_on_shutdown(struct ma_conn *conn)
{
	return "* BYE Server shutting down";
}

static void imap_on_close(struct ma_conn *conn, enum ma_close_reason reason)
{
	struct imap_session *s = ma_conn_session(conn);
	struct imap_session_priv *p;

	(void)reason;
	if (s == NULL)
		return;
	p = imap_priv(s);
	p->dead = true;
	if (s->state != IMAP_STATE_NOT_AUTH)
		imap_update_summary(s);
	s->cmd = NULL;
	p->line_fn = NULL;
	/* cleanup hooks of a running command (IDLE) run here */
	ma_arena_destroy(&s->cmd_arena);
	if (s->sel != NULL)
		imap_unselect(s);
	if (s->user != NULL)
		ma_store_user_close(&s->user);
	free(s->user_name);
	s->user_name = NULL;
	imap_parser_destroy(&s->parser);
	ma_conn_set_session(conn, NULL);
	free(p);
}

const struct ma_protocol_ops imap_protocol_ops = {
	.struct_size = sizeof(struct ma_protocol_ops),
	.on_connect = imap_on_connect,
	.on_input = imap_on_input,
	.on_output_drained = imap_on_output_drained,
	.on_tls_ready = imap_on_tls_ready,
	.on_timeout = imap_on_timeout,
	.on_shutdown = imap_on_shutdown,
	.on_close = imap_on_close,
	.name = "imap",
};

/* ---------------------------------------------------------- helpers */

bool imap_arg_is_astring(const struct imap_arg *arg)
{
	return arg != NULL && (arg->type == IMAP_ARG_ATOM ||
			       arg->type == IMAP_ARG_STRING ||
			       arg->type == IMAP_ARG_LITERAL ||
			       arg->type == IMAP_ARG_NIL);
}

const char *imap_arg_astring(const struct imap_arg *arg)
{
	return imap_arg_is_astring(arg) ? arg->str : NULL;
}

