/*
 * cmd-any.c - commands valid in every state, plus the small extensions:
 * CAPABILITY, NOOP, LOGOUT (RFC 3501 6.1), ID (RFC 2971), ENABLE
 * (RFC 5161), NAMESPACE (RFC 2342).
 */
#include "imap-private.h"

#include <stdio.h>
#include <string.h>

/* RFC 2971 3.3: at most 30 field/value pairs, fields <= 30 bytes,
 * values <= 1024 bytes. */
#define IMAP_ID_PAIRS_MAX 30
#define IMAP_ID_FIELD_MAX 30
#define IMAP_ID_VALUE_MAX 1024

enum imap_cmd_result imap_cmd_capability(struct imap_cmd *cmd)
{
	if (cmd->n_args != 0) {
		imap_reply(cmd, "BAD", NULL, "CAPABILITY takes no arguments");
		return IMAP_CMD_DONE;
	}
	imap_untagged(cmd->s, "CAPABILITY %s", imap_capability_string(cmd->s));
	imap_reply(cmd, "OK", NULL, "Capability completed.");
	return IMAP_CMD_DONE;
}

enum imap_cmd_result imap_cmd_noop(struct imap_cmd *cmd)
{
	if (cmd->n_args != 0) {
		imap_reply(cmd, "BAD", NULL, "NOOP takes no arguments");
		return IMAP_CMD_DONE;
	}
	/* imap_reply() sends the mailbox updates first (RFC 3501 6.1.2) */
	imap_reply(cmd, "OK", NULL, "NOOP completed.");
	return IMAP_CMD_DONE;
}

enum imap_cmd_result imap_cmd_logout(struct imap_cmd *cmd)
{
	if (cmd->n_args != 0) {
		imap_reply(cmd, "BAD", NULL, "LOGOUT takes no arguments");
		return IMAP_CMD_DONE;
	}
	/* RFC 3501 6.1.3: BYE, then the tagged OK, then close */
	imap_untagged(cmd->s, "BYE Logging out");
	cmd->s->state = IMAP_STATE_LOGOUT;
	cmd->s->logout = true;
	imap_reply(cmd, "OK", NULL, "Logout completed.");
	return IMAP_CMD_DONE;
}

static void imap_id_log_value(char *out, size_t size, const struct imap_arg *a)
{
	size_t j = 0;

	if (a->type == IMAP_ARG_NIL) {
		snprintf(out, size, "NIL");
		return;
	}
	/* printable ASCII only into the log */
	for (size_t i = 0; i < a->len && j + 1 < size; i++) {
		unsigned char c = (unsigned char)a->str[i];

		out[j++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[j] = '\0';
}

enum imap_cmd_result imap_cmd_id(struct imap_cmd *cmd)
{
	const struct imap_arg *a = cmd->args;

	if (cmd->n_args != 1 ||
	    (a->type != IMAP_ARG_NIL && a->type != IMAP_ARG_LIST)) {
		imap_reply(cmd, "BAD", NULL, "ID expects NIL or a list");
		return IMAP_CMD_DONE;
	}
	if (a->type == IMAP_ARG_LIST) {
		char log[512];
		size_t used = 0;

		if (a->list_count % 2 != 0 ||
		    a->list_count > 2 * IMAP_ID_PAIRS_MAX) {
			imap_reply(cmd, "BAD", NULL,
				   "ID expects at most 30 field/value pairs");
			return IMAP_CMD_DONE;
		}
		log[0] = '\0';
		for (unsigned i = 0; i < a->list_count; i += 2) {
			const struct imap_arg *f = &a->list[i], *v = &a->list[i + 1];
			char fs[IMAP_ID_FIELD_MAX + 1], vs[80];

			if ((f->type != IMAP_ARG_STRING && f->type != IMAP_ARG_LITERAL) ||
			    f->len > IMAP_ID_FIELD_MAX ||
			    (v->type != IMAP_ARG_STRING && v->type != IMAP_ARG_LITERAL &&
			     v->type != IMAP_ARG_NIL) ||
			    (v->type != IMAP_ARG_NIL && v->len > IMAP_ID_VALUE_MAX)) {
				imap_reply(cmd, "BAD", NULL, "Invalid ID field or value");
				return IMAP_CMD_DONE;
			}
			imap_id_log_value(fs, sizeof(fs), f);
			imap_id_log_value(vs, sizeof(vs), v);
			if (used < sizeof(log)) {
				int n = snprintf(log + used, sizeof(log) - used,
						 "%s%s=%s", used > 0 ? " " : "",
						 fs, vs);
				if (n > 0)
					used += (size_t)n;
			}
		}
		if (log[0] != '\0')
			ma_conn_log(cmd->s->conn, MA_LOG_INFO, "client id: %s", log);
	}
	imap_untagged(cmd->s, "ID (\"name\" \"mailaccess\" \"version\" \"1.0\")");
	imap_reply(cmd, "OK", NULL, "ID completed.");
	return IMAP_CMD_DONE;
}

enum imap_cmd_result imap_cmd_enable(struct imap_cmd *cmd)
{
	if (cmd->n_args == 0) {
		imap_reply(cmd, "BAD", NULL, "ENABLE expects capability names");
		return IMAP_CMD_DONE;
	}
	for (unsigned i = 0; i < cmd->n_args; i++) {
		if (cmd->args[i].type != IMAP_ARG_ATOM) {
			imap_reply(cmd, "BAD", NULL, "ENABLE expects atoms");
			return IMAP_CMD_DONE;
		}
	}
	/* RFC 5161 3.1: unknown or unsupported names are ignored. We support
	 * none of the ENABLE-able extensions yet (UTF8=ACCEPT, CONDSTORE), so
	 * the ENABLED response is empty. */
	imap_untagged(cmd->s, "ENABLED");
	imap_reply(cmd, "OK", NULL, "ENABLE completed.");
	return IMAP_CMD_DONE;
}

enum imap_cmd_result imap_cmd_namespace(struct imap_cmd *cmd)
{
	if (cmd->n_args != 0) {
		imap_reply(cmd, "BAD", NULL, "NAMESPACE takes no arguments");
		return IMAP_CMD_DONE;
	}
	/* RFC 2342: one personal namespace, no prefix, '/' separator; no
	 * other users' or shared namespaces */
	imap_untagged(cmd->s, "NAMESPACE ((\"\" \"/\")) NIL NIL");
	imap_reply(cmd, "OK", NULL, "NAMESPACE completed.");
	return IMAP_CMD_DONE;
}
