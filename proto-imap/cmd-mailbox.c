/*
 * cmd-mailbox.c - the mailbox tree commands: CREATE (with RFC 6154 USE),
 * DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, STATUS (RFC 3501 6.3.3-6.3.7,
 * 6.3.10; SIZE RFC 8438; HIGHESTMODSEQ RFC 7162; APPENDLIMIT RFC 7889),
 * and the mapping of store errors on mailbox operations to RFC 5530
 * response codes.
 *
 * Decisions (docs/imap.md, "Mailboxes"):
 *  - CREATE does not create missing parents: they show in LIST as
 *    \Noselect until created (RFC 3501 allows this; Dovecot does the same).
 *  - DELETE of a mailbox with children deletes the mailbox and its
 *    messages; the children stay and the name lives on in LIST as a
 *    \Noselect parent (the outcome RFC 3501 6.3.4 describes). DELETE of a
 *    name that is only such a parent is NO [NONEXISTENT].
 *  - DELETE or RENAME of the mailbox this session has selected first
 *    closes it, announced with "* OK [CLOSED]" (RFC 7162 3.2.11).
 *  - Subscriptions belong to existing mailboxes: SUBSCRIBE to a missing
 *    name is NO [NONEXISTENT]; deleting a mailbox drops its subscription.
 *  - '%' and '*' are refused in new names: they could never be LISTed
 *    exactly.
 */
#include <string.h>
#include <strings.h>

#include "imap-private.h"

void imap_reply_mailbox_error(struct imap_cmd *cmd, const struct ma_error_info *err)
{
	static const char *const codes[] = {
		[MA_OK] = NULL,
		[MA_ERR_TEMP] = "UNAVAILABLE",
		[MA_ERR_NOTFOUND] = "NONEXISTENT",
		[MA_ERR_EXISTS] = "ALREADYEXISTS",
		[MA_ERR_PERM] = "CANNOT",
		[MA_ERR_QUOTA] = "OVERQUOTA",
		[MA_ERR_EXPUNGED] = "EXPUNGEISSUED",
		[MA_ERR_INUSE] = "INUSE",
		[MA_ERR_LIMIT] = "LIMIT",
		[MA_ERR_BADARGS] = "CANNOT",
		[MA_ERR_INTERNAL] = "SERVERBUG",
	};
	const char *code = NULL;

	if ((unsigned)err->code < sizeof(codes) / sizeof(codes[0]))
		code = codes[err->code];
	if (err->code == MA_ERR_INTERNAL || err->code == MA_ERR_TEMP) {
		/* Detail for the admin, an id for the user. */
		if (cmd->s->conn != NULL)
			ma_conn_log(cmd->s->conn, MA_LOG_ERROR, "%s: %s", cmd->name,
				    err->text);
		imap_reply(cmd, "NO", code, "Internal error occurred, session %s",
			   cmd->s->conn != NULL ? ma_conn_id(cmd->s->conn) : "-");
		return;
	}
	imap_reply(cmd, "NO", code, "%s", err->text[0] != '\0' ? err->text : "Failed");
}

/* Mailbox name argument i: astring, trailing separator stripped if
 * allowed (RFC 3501 6.3.3), decoded and checked. NULL with err. */
static char *imap_mbox_name_arg(struct imap_cmd *cmd, unsigned i, bool strip_sep,
				bool new_name, struct ma_error_info *err)
{
	const struct imap_arg *a;
	const char *str;
	size_t len;
	char *name;

	if (i >= cmd->n_args || (str = imap_arg_astring(&cmd->args[i])) == NULL) {
		ma_error_set(err, MA_ERR_BADARGS, "Missing mailbox name");
		return NULL;
	}
	a = &cmd->args[i];
	len = a->len;
	if (strip_sep && len > 1 && str[len - 1] == '/')
		len--;
	name = imap_mailbox_from_client(cmd->s, cmd->arena, str, len, err);
	if (name == NULL)
		return NULL;
	if (new_name && strpbrk(name, "%*") != NULL) {
		ma_error_set(err, MA_ERR_BADARGS,
			     "Mailbox names may not contain '%%' or '*'");
		return NULL;
	}
	return name;
}

/* The selected mailbox is name or under it: close it ([CLOSED]). */
static void imap_mbox_close_if_selected(struct imap_session *s, const char *name)
{
	size_t n = strlen(name);

	if (s->sel == NULL || s->sel->name == NULL)
		return;
	if (strncmp(s->sel->name, name, n) != 0 ||
	    (s->sel->name[n] != '\0' && s->sel->name[n] != '/'))
		return;
	imap_unselect(s);
	imap_untagged(s, "OK [CLOSED] Previously selected mailbox closed");
}

static const struct {
	const char *name;
	uint32_t attr;
} imap_special_use[] = {
	{ "\\All", MA_MBOX_SU_ALL },
	{ "\\Archive", MA_MBOX_SU_ARCHIVE },
	{ "\\Drafts", MA_MBOX_SU_DRAFTS },
	{ "\\Flagged", MA_MBOX_SU_FLAGGED },
	{ "\\Junk", MA_MBOX_SU_JUNK },
	{ "\\Sent", MA_MBOX_SU_SENT },
	{ "\\Trash", MA_MBOX_SU_TRASH },
};

enum imap_cmd_result imap_cmd_create(struct imap_cmd *cmd)
{
	struct ma_error_info err;
	uint32_t attrs = 0;
	char *name;

	memset(&err, 0, sizeof(err));
	if (cmd->n_args < 1 || cmd->n_args > 2 ||
	    imap_arg_astring(&cmd->args[0]) == NULL) {
		imap_reply(cmd, "BAD", NULL, "Usage: CREATE mailbox [(USE (attrs))]");
		return IMAP_CMD_DONE;
	}
	if (cmd->n_args == 2) {
		/* RFC 6154 3: CREATE name (USE (\Sent ...)). */
		const struct imap_arg *l = &cmd->args[1];
		if (l->type != IMAP_ARG_LIST || l->list_count != 2 ||
		    l->list[0].type != IMAP_ARG_ATOM ||
		    strcasecmp(l->list[0].str, "USE") != 0 ||
		    l->list[1].type != IMAP_ARG_LIST) {
			imap_reply(cmd, "BAD", NULL, "Invalid CREATE parameters");
			return IMAP_CMD_DONE;
		}
		for (unsigned i = 0; i < l->list[1].list_count; i++) {
			const struct imap_arg *u = &l->list[1].list[i];
			size_t k, n = sizeof(imap_special_use) / sizeof(imap_special_use[0]);
			for (k = 0; k < n; k++) {
				if (u->type == IMAP_ARG_ATOM &&
				    strcasecmp(u->str, imap_special_use[k].name) == 0)
					break;
			}
			if (k == n) {
				imap_reply(cmd, "NO", "USEATTR",
					   "Unsupported special-use attribute");
				return IMAP_CMD_DONE;
			}
			attrs |= imap_special_use[k].attr;
		}
	}
	name = imap_mbox_name_arg(cmd, 0, true, true, &err);
	if (name == NULL) {
		imap_reply_mailbox_error(cmd, &err);
		return IMAP_CMD_DONE;
	}
	if (strcmp(name, "INBOX") == 0) {
		imap_reply(cmd, "NO", "ALREADYEXISTS", "INBOX always exists");
		return IMAP_CMD_DONE;
	}
	if (ma_store_mailbox_create(cmd->s->user, name, attrs, &err) < 0) {
		imap_reply_mailbox_error(cmd, &err);
		return IMAP_CMD_DONE;
	}
	imap_reply(cmd, "OK", NULL, "Create completed");
	return IMAP_CMD_DONE;
}

enum imap_cmd_result imap_cmd_delete(struct imap_cmd *cmd)
{
	struct ma_error_info err;
	struct ma_mailbox_status st;
	char *name;

	memset(&err, 0, sizeof(err));
	if (cmd->n_args != 1 || !imap_arg_is_astring(&cmd->args[0])) {
		imap_reply(cmd, "BAD", NULL, "Usage: DELETE mailbox");
		return IMAP_CMD_DONE;
	}
	name = imap_mbox_name_arg(cmd, 0, true, false, &err);
	if (name == NULL) {
		imap_reply_mailbox_error(cmd, &err);
		return IMAP_CMD_DONE;
	}
	if (strcmp(name, "INBOX") == 0) {
		imap_reply(cmd, "NO", "CANNOT", "INBOX can't be deleted");
		return IMAP_CMD_DONE;
	}
	/* Missing: say so before touching the selection. */
	if (ma_store_mailbox_status(cmd->s->user, name, &st, &err) < 0) {
		imap_reply_mailbox_error(cmd, &err);
		return IMAP_CMD_DONE;
	}
	if (cmd->s->sel != NULL && strcmp(cmd->s->sel->name, name) == 0)
		imap_mbox_close_if_selected(cmd->s, name);
	if (ma_store_mailbox_delete(cmd->s->user, name, &err) < 0) {
		imap_reply_mailbox_error(cmd, &err);
		return IMAP_CMD_DONE;
	}
	imap_reply(cmd, "OK", NULL, "Delete completed");
	return IMAP_CMD_DONE;
}

enum imap_cmd_result imap_cmd_rename(struct imap_cmd *cmd)
{
	struct ma_error_info err;
	struct ma_mailbox_status st;
	char *from, *to;

	memset(&err, 0, sizeof(err));
	if (cmd->n_args != 2 || !imap_arg_is_astring(&cmd->args[0]) ||
	    !imap_arg_is_astring(&cmd->args[1])) {
		imap_reply(cmd, "BAD", NULL, "Usage: RENAME from to");
		return IMAP_CMD_DONE;
	}
	if ((from = imap_mbox_name_arg(cmd, 0, true, false, &err)) == NULL ||
	    (to = imap_mbox_name_arg(cmd, 1, true, true, &err)) == NULL) {
		imap_reply_mailbox_error(cmd, &err);
		return IMAP_CMD_DONE;
	}
	if (strcmp(to, "INBOX") == 0) {
		imap_reply(cmd, "NO", "ALREADYEXISTS", "INBOX always exists");
		return IMAP_CMD_DONE;
	}
	if (ma_store_mailbox_status(cmd->s->user, from, &st, &err) < 0) {
		imap_reply_mailbox_error(cmd, &err);
		return IMAP_CMD_DONE;
	}
	/* INBOX keeps its (new, empty) self: only its messages move, so a
	 * selected INBOX goes stale; any other selected name moves. */
	imap_mbox_close_if_selected(cmd->s, from);
	if (ma_store_mailbox_rename(cmd->s->user, from, to, &err) < 0) {
		imap_reply_mailbox_error(cmd, &err);
		return IMAP_CMD_DONE;
	}
	imap_reply(cmd, "OK", NULL, "Rename completed");
	return IMAP_CMD_DONE;
}

static enum imap_cmd_result imap_cmd_subscribe_common(struct imap_cmd *cmd, bool on)
{
	struct ma_error_info err;
	char *name;

	memset(&err, 0, sizeof(err));
	if (cmd->n_args != 1 || !imap_arg_is_astring(&cmd->args[0])) {
		imap_reply(cmd, "BAD", NULL, "Usage: %s mailbox", cmd->name);
		return IMAP_CMD_DONE;
	}
	name = imap_mbox_name_arg(cmd, 0, true, false, &err);
	if (name == NULL ||
	    ma_store_mailbox_subscribe(cmd->s->user, name, on, &err) < 0) {
		imap_reply_mailbox_error(cmd, &err);
		return IMAP_CMD_DONE;
	}
	imap_reply(cmd, "OK", NULL, "%s completed", on ? "Subscribe" : "Unsubscribe");
	return IMAP_CMD_DONE;
}

enum imap_cmd_result imap_cmd_subscribe(struct imap_cmd *cmd)
{
	return imap_cmd_subscribe_common(cmd, true);
}

enum imap_cmd_result imap_cmd_unsubscribe(struct imap_cmd *cmd)
{
	return imap_cmd_subscribe_common(cmd, false);
}

#define IMAP_STATUS_MESSAGES      0x01u
#define IMAP_STATUS_RECENT        0x02u
#define IMAP_STATUS_UIDNEXT       0x04u
#define IMAP_STATUS_UIDVALIDITY   0x08u
#define IMAP_STATUS_UNSEEN        0x10u
#define IMAP_STATUS_SIZE          0x20u
#define IMAP_STATUS_HIGHESTMODSEQ 0x40u
#define IMAP_STATUS_APPENDLIMIT   0x80u

static const struct {
	const char *name;
	uint32_t bit;
} imap_status_items[] = {
	{ "MESSAGES", IMAP_STATUS_MESSAGES },
	{ "RECENT", IMAP_STATUS_RECENT },
	{ "UIDNEXT", IMAP_STATUS_UIDNEXT },
	{ "UIDVALIDITY", IMAP_STATUS_UIDVALIDITY },
	{ "UNSEEN", IMAP_STATUS_UNSEEN },
	{ "SIZE", IMAP_STATUS_SIZE },
	{ "HIGHESTMODSEQ", IMAP_STATUS_HIGHESTMODSEQ },
	{ "APPENDLIMIT", IMAP_STATUS_APPENDLIMIT },
};

int imap_status_items_parse(const struct imap_arg *list, uint32_t *items_r)
{
	uint32_t items = 0;
	size_t n = sizeof(imap_status_items) / sizeof(imap_status_items[0]);

	if (list->type != IMAP_ARG_LIST || list->list_count == 0)
		return -1;
	for (unsigned i = 0; i < list->list_count; i++) {
		const struct imap_arg *a = &list->list[i];
		size_t k;
		if (a->type != IMAP_ARG_ATOM)
			return -1;
		for (k = 0; k < n; k++) {
			if (strcasecmp(a->str, imap_status_items[k].name) == 0)
				break;
		}
		if (k == n)
			return -1;
		items |= imap_status_items[k].bit;
	}
	*items_r = items;
	return 0;
}

int imap_status_send(struct imap_session *s, const char *name, uint32_t items,
		     struct ma_error_info *err)
{
	struct ma_mailbox_status st;
	struct ma_buf b;
	size_t n = sizeof(imap_status_items) / sizeof(imap_status_items[0]);
	bool first = true;

	/* O(1): the store's counters, no view is opened. */
	if (ma_store_mailbox_status(s->user, name, &st, err) < 0)
		return -1;
	ma_buf_init(&b, 64 * 1024);
	imap_buf_mailbox(s, &b, name);
	ma_buf_append(&b, " (", 2);
	for (size_t k = 0; k < n; k++) {
		uint32_t bit = imap_status_items[k].bit;
		unsigned long long v = 0;

		if ((items & bit) == 0)
			continue;
		switch (bit) {
		case IMAP_STATUS_MESSAGES: v = st.messages; break;
		case IMAP_STATUS_RECENT: v = st.recent; break;
		case IMAP_STATUS_UIDNEXT: v = st.uidnext; break;
		case IMAP_STATUS_UIDVALIDITY: v = st.uidvalidity; break;
		case IMAP_STATUS_UNSEEN: v = st.unseen; break;
		case IMAP_STATUS_SIZE: v = st.size; break;
		case IMAP_STATUS_HIGHESTMODSEQ: v = st.highestmodseq; break;
		case IMAP_STATUS_APPENDLIMIT:
			if (s->set == NULL || s->set->max_message_size == 0) {
				ma_buf_printf(&b, "%sAPPENDLIMIT NIL", first ? "" : " ");
				first = false;
				continue;
			}
			v = s->set->max_message_size;
			break;
		}
		ma_buf_printf(&b, "%s%s %llu", first ? "" : " ",
			      imap_status_items[k].name, v);
		first = false;
	}
	ma_buf_append(&b, ")", 1);
	imap_untagged(s, "STATUS %.*s", (int)ma_buf_len(&b), (const char *)ma_buf_ptr(&b));
	ma_buf_free(&b);
	return 0;
}

enum imap_cmd_result imap_cmd_status(struct imap_cmd *cmd)
{
	struct ma_error_info err;
	uint32_t items;
	char *name;

	memset(&err, 0, sizeof(err));
	if (cmd->n_args != 2 || !imap_arg_is_astring(&cmd->args[0]) ||
	    imap_status_items_parse(&cmd->args[1], &items) < 0) {
		imap_reply(cmd, "BAD", NULL,
			   "Usage: STATUS mailbox (MESSAGES RECENT UIDNEXT "
			   "UIDVALIDITY UNSEEN SIZE HIGHESTMODSEQ APPENDLIMIT)");
		return IMAP_CMD_DONE;
	}
	name = imap_mbox_name_arg(cmd, 0, false, false, &err);
	if (name == NULL || imap_status_send(cmd->s, name, items, &err) < 0) {
		imap_reply_mailbox_error(cmd, &err);
		return IMAP_CMD_DONE;
	}
	imap_reply(cmd, "OK", NULL, "Status completed");
	return IMAP_CMD_DONE;
}
