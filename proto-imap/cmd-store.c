/*
 * cmd-store.c - STORE and UID STORE (RFC 3501 6.4.6), and the flag-list
 * parser the message commands share.
 *
 * check: sequence set, FLAGS / +FLAGS / -FLAGS with optional .SILENT, a
 * flag list (parenthesised, or bare flags as RFC 3501 9 store-att-flags
 * allows). System flags are the five of RFC 3501 2.3.2; \Recent is set by
 * the server only (refused); other \Words are refused; keywords must be
 * atoms (no atom-specials, no 8-bit), at most MA_KEYWORDS_MAX per command.
 * do: one ma_mailbox_store_flags() call (one transaction), then unless
 * .SILENT an untagged FETCH (FLAGS) per message (with UID for UID STORE),
 * streamed with IMAP_CMD_CONTINUE like FETCH. The view is not resynced
 * here (STORE may not cause EXPUNGE responses, RFC 3501 7.4.1), so the new
 * flags are computed from the view's flags and the operation, and
 * imap_sync_flags_reported() keeps the post-command sync from reporting
 * the same change again (or at all, for .SILENT).
 * A message another session expunged meanwhile (RFC 2180 4.2) is left
 * alone by the store; its FETCH still shows the flags asked for.
 */
#include <string.h>
#include <strings.h>

#include "imap-fetch.h"

static const struct { const char *name; uint32_t flag; } imap_system_flags[] = {
	{ "\\Seen", MA_FLAG_SEEN }, { "\\Answered", MA_FLAG_ANSWERED },
	{ "\\Flagged", MA_FLAG_FLAGGED }, { "\\Deleted", MA_FLAG_DELETED },
	{ "\\Draft", MA_FLAG_DRAFT },
};

bool imap_keyword_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > 200)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		/* ATOM-CHAR minus resp-specials (RFC 3501 9) */
		if (c <= 32 || c >= 127 || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

static int imap_flags_add_one(struct ma_arena *a, const struct imap_arg *arg,
			      struct imap_flag_list *out, const char **error_r)
{
	unsigned i;

	if (arg->type != IMAP_ARG_ATOM) {
		*error_r = "Flags must be atoms";
		return -1;
	}
	if (arg->len > 0 && arg->str[0] == '\\') {
		for (i = 0; i < sizeof(imap_system_flags) / sizeof(imap_system_flags[0]); i++) {
			if (ma_slice_ieq(arg->str, arg->len, imap_system_flags[i].name)) {
				out->flags |= imap_system_flags[i].flag;
				return 0;
			}
		}
		*error_r = ma_slice_ieq(arg->str, arg->len, "\\Recent") ?
			"\\Recent can not be changed" : "Unknown system flag";
		return -1;
	}
	if (!imap_keyword_valid(arg->str, arg->len)) {
		*error_r = "Invalid keyword";
		return -1;
	}
	for (i = 0; i < out->n_keywords; i++)
		if (strcasecmp(out->keywords[i], arg->str) == 0)
			return 0;	/* listed twice */
	if (out->n_keywords >= MA_KEYWORDS_MAX) {
		*error_r = "Too many keywords";
		return -1;
	}
	out->keywords[out->n_keywords++] = ma_arena_strndup(a, arg->str, arg->len);
	return 0;
}

int imap_flags_parse(struct ma_arena *a, const struct imap_arg *args,
		     unsigned n, struct imap_flag_list *out, const char **error_r)
{
	unsigned i;

	memset(out, 0, sizeof(*out));
	out->keywords = ma_arena_alloc(a, sizeof(*out->keywords) * MA_KEYWORDS_MAX);
	if (n == 1 && args[0].type == IMAP_ARG_LIST) {
		n = args[0].list_count;
		args = args[0].list;
	}
	for (i = 0; i < n; i++)
		if (imap_flags_add_one(a, &args[i], out, error_r) < 0)
			return -1;
	return 0;
}

/* ---------------- STORE ---------------- */

struct imap_store_state {
	enum ma_flag_op op;
	struct imap_flag_list fl;
	uint32_t *idx;
	uint32_t n, pos;
	struct ma_buf line;
};

static bool imap_store_kw_listed(const struct imap_flag_list *fl, const char *name)
{
	unsigned i;

	for (i = 0; i < fl->n_keywords; i++)
		if (strcasecmp(fl->keywords[i], name) == 0)
			return true;
	return false;
}

/* The message's flags after the operation, as FETCH FLAGS shows them. */
static void imap_store_new_flags(struct imap_session *s,
				 const struct imap_store_state *st,
				 const struct ma_msg *m, struct ma_buf *b)
{
	const struct imap_selected *sel = s->sel;
	uint32_t flags = m->flags;
	bool first = true;
	unsigned i;

	switch (st->op) {
	case MA_FLAGS_ADD: flags |= st->fl.flags; break;
	case MA_FLAGS_REMOVE: flags &= ~st->fl.flags; break;
	case MA_FLAGS_REPLACE: flags = st->fl.flags; break;
	}
	ma_buf_append(b, "(", 1);
	for (i = 0; i < sizeof(imap_system_flags) / sizeof(imap_system_flags[0]); i++) {
		if (flags & imap_system_flags[i].flag) {
			ma_buf_printf(b, "%s%s", first ? "" : " ", imap_system_flags[i].name);
			first = false;
		}
	}
	/* keywords the message keeps */
	for (i = 0; i < sel->n_keywords && i < 64; i++) {
		bool has = (m->keywords >> i) & 1u, listed;

		if (sel->keywords[i] == NULL)
			continue;
		listed = imap_store_kw_listed(&st->fl, sel->keywords[i]);
		if (st->op == MA_FLAGS_REPLACE || (st->op == MA_FLAGS_REMOVE && listed))
			has = false;
		if (st->op == MA_FLAGS_ADD && listed)
			has = false;	/* printed with the added ones below */
		if (has) {
			ma_buf_printf(b, "%s%s", first ? "" : " ", sel->keywords[i]);
			first = false;
		}
	}
	if (st->op != MA_FLAGS_REMOVE) {
		for (i = 0; i < st->fl.n_keywords; i++) {
			ma_buf_printf(b, "%s%s", first ? "" : " ", st->fl.keywords[i]);
			first = false;
		}
	}
	ma_buf_append(b, ")", 1);
}

static void imap_store_cleanup(void *ctx)
{
	struct imap_store_state *st = ctx;

	ma_buf_free(&st->line);
}

static enum imap_cmd_result imap_store_start(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct imap_store_state *st;
	const struct imap_arg *item;
	struct ma_error_info err;
	const char *error = "Invalid flags";
	const char *name;
	size_t len;
	uint32_t *uids, i;
	bool silent = false;

	if (s->sel == NULL) {
		imap_reply(cmd, "BAD", NULL, "No mailbox selected");
		return IMAP_CMD_DONE;
	}
	if (cmd->n_args < 3 || cmd->args[0].type != IMAP_ARG_ATOM ||
	    cmd->args[1].type != IMAP_ARG_ATOM) {
		imap_reply(cmd, "BAD", NULL, "Syntax: STORE <sequence set> "
			   "[+|-]FLAGS[.SILENT] <flags>");
		return IMAP_CMD_DONE;
	}
	st = ma_arena_alloc(cmd->arena, sizeof(*st));
	item = &cmd->args[1];
	name = item->str;
	len = item->len;
	st->op = MA_FLAGS_REPLACE;
	if (len > 0 && (name[0] == '+' || name[0] == '-')) {
		st->op = name[0] == '+' ? MA_FLAGS_ADD : MA_FLAGS_REMOVE;
		name++;
		len--;
	}
	if (len == 12 && strncasecmp(name, "FLAGS.SILENT", 12) == 0)
		silent = true;
	else if (!ma_slice_ieq(name, len, "FLAGS")) {
		imap_reply(cmd, "BAD", NULL, "Unknown STORE item (only [+|-]FLAGS[.SILENT])");
		return IMAP_CMD_DONE;
	}
	if (imap_flags_parse(cmd->arena, &cmd->args[2], cmd->n_args - 2, &st->fl,
			     &error) < 0) {
		imap_reply(cmd, "BAD", NULL, "%s", error);
		return IMAP_CMD_DONE;
	}
	if (imap_seqset_indexes(cmd->arena, s->sel, cmd->args[0].str,
				cmd->args[0].len, cmd->uid, &st->idx, &st->n) < 0) {
		imap_reply(cmd, "BAD", NULL, "Invalid sequence set");
		return IMAP_CMD_DONE;
	}
	if (s->sel->readonly) {
		imap_reply(cmd, "NO", "READ-ONLY", "Mailbox is read-only");
		return IMAP_CMD_DONE;
	}
	if (st->n > 0) {
		uids = ma_arena_alloc(cmd->arena, sizeof(*uids) * st->n);
		for (i = 0; i < st->n; i++)
			uids[i] = s->sel->msgs[st->idx[i]].uid;
		memset(&err, 0, sizeof(err));
		if (ma_mailbox_store_flags(s->sel->box, uids, st->n, st->op,
					   st->fl.flags, st->fl.keywords,
					   st->fl.n_keywords, 0, NULL, NULL, &err) < 0) {
			imap_reply_store_error(cmd, &err, false);
			return IMAP_CMD_DONE;
		}
		/* we answer for these ourselves (or, .SILENT, not at all) */
		imap_sync_flags_reported(s, uids, st->n);
	}
	if (silent)
		st->pos = st->n;
	ma_buf_init(&st->line, 1024 * 1024);
	ma_arena_cleanup_add(cmd->arena, imap_store_cleanup, st);
	cmd->state = st;
	return IMAP_CMD_CONTINUE;
}

enum imap_cmd_result imap_cmd_store(struct imap_cmd *cmd)
{
	struct imap_store_state *st = cmd->state;
	struct imap_session *s = cmd->s;

	if (st == NULL) {
		if (imap_store_start(cmd) == IMAP_CMD_DONE)
			return IMAP_CMD_DONE;
		st = cmd->state;
	}
	for (; st->pos < st->n; st->pos++) {
		const struct ma_msg *m = &s->sel->msgs[st->idx[st->pos]];

		if (ma_conn_output_full(s->conn)) {
			ma_conn_want_drain(s->conn);
			return IMAP_CMD_CONTINUE;
		}
		ma_buf_clear(&st->line);
		ma_buf_printf(&st->line, "* %u FETCH (", st->idx[st->pos] + 1);
		if (cmd->uid)
			ma_buf_printf(&st->line, "UID %u ", m->uid);
		ma_buf_append(&st->line, "FLAGS ", 6);
		imap_store_new_flags(s, st, m, &st->line);
		ma_buf_append(&st->line, ")\r\n", 3);
		if (ma_conn_write(s->conn, ma_buf_ptr(&st->line), ma_buf_len(&st->line)) < 0)
			break;
	}
	imap_reply(cmd, "OK", NULL, "Store completed");
	return IMAP_CMD_DONE;
}
