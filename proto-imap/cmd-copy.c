/*
 * cmd-copy.c - COPY / UID COPY (RFC 3501 6.4.7) and MOVE / UID MOVE
 * (RFC 6851), with UIDPLUS COPYUID (RFC 4315).
 *
 * One ma_mailbox_copy() call: the store copies (or moves) all the messages
 * in one transaction, so a failed COPY leaves the destination unchanged
 * (RFC 3501 6.4.7). A destination that does not exist gets
 * NO [TRYCREATE]. COPYUID lists the source UIDs actually copied and their
 * new UIDs in the same order (RFC 4315 3: the i-th of one set pairs with
 * the i-th of the other; both ascend, so each is compressed to ranges on
 * its own); messages expunged meanwhile are left out of it. MOVE
 * announces COPYUID in an untagged OK, then the
 * EXPUNGE responses for the moved messages through imap_sync_report(),
 * then the tagged OK (RFC 6851 4.3).
 */
#include <string.h>

#include "imap-fetch.h"

static enum imap_cmd_result imap_copy_run(struct imap_cmd *cmd, bool move)
{
	struct imap_session *s = cmd->s;
	struct imap_selected *sel = s->sel;
	struct ma_error_info err;
	const char *dest;
	uint32_t *idx, n, i, *src, *dst, n_ok = 0, uidvalidity = 0;
	struct ma_buf code;

	if (sel == NULL) {
		imap_reply(cmd, "BAD", NULL, "No mailbox selected");
		return IMAP_CMD_DONE;
	}
	if (cmd->n_args != 2 || cmd->args[0].type != IMAP_ARG_ATOM ||
	    !imap_arg_is_astring(&cmd->args[1])) {
		imap_reply(cmd, "BAD", NULL, "Syntax: %s <sequence set> <mailbox>",
			   move ? "MOVE" : "COPY");
		return IMAP_CMD_DONE;
	}
	if (imap_seqset_indexes(cmd->arena, sel, cmd->args[0].str,
				cmd->args[0].len, cmd->uid, &idx, &n) < 0) {
		imap_reply(cmd, "BAD", NULL, "Invalid sequence set");
		return IMAP_CMD_DONE;
	}
	memset(&err, 0, sizeof(err));
	dest = imap_mailbox_from_client(s, cmd->arena, cmd->args[1].str,
					cmd->args[1].len, &err);
	if (dest == NULL) {
		imap_reply_store_error(cmd, &err, false);
		return IMAP_CMD_DONE;
	}
	if (move && sel->readonly) {
		/* MOVE expunges from the source (RFC 6851 3.3) */
		imap_reply(cmd, "NO", "READ-ONLY", "Mailbox is read-only");
		return IMAP_CMD_DONE;
	}
	if (n == 0) {
		/* UID set that matched nothing: nothing to do, and that is
		 * not an error (RFC 3501 6.4.8) */
		imap_reply(cmd, "OK", NULL, "No messages %s",
			   move ? "moved" : "copied");
		return IMAP_CMD_DONE;
	}
	src = ma_arena_alloc(cmd->arena, sizeof(*src) * n);
	dst = ma_arena_alloc(cmd->arena, sizeof(*dst) * n);
	for (i = 0; i < n; i++)
		src[i] = sel->msgs[idx[i]].uid;
	if (ma_mailbox_copy(sel->box, src, n, dest, move, dst, &uidvalidity, &err) < 0) {
		/* RFC 3501 6.4.7: TRYCREATE when the destination is missing */
		imap_reply_store_error(cmd, &err, err.code == MA_ERR_NOTFOUND);
		return IMAP_CMD_DONE;
	}
	/* drop the ones already expunged (new UID 0), keep the pairs */
	for (i = 0; i < n; i++) {
		if (dst[i] == 0)
			continue;
		src[n_ok] = src[i];
		dst[n_ok++] = dst[i];
	}
	ma_buf_init(&code, 1024 * 1024);
	if (n_ok > 0) {
		/* Both lists ascend and pair up in order, so each may be
		 * compressed on its own: "1:2,4" with "1:3" (RFC 4315 3). */
		ma_buf_printf(&code, "COPYUID %u ", uidvalidity);
		imap_fetch_uidset(&code, src, n_ok);
		ma_buf_append(&code, " ", 1);
		imap_fetch_uidset(&code, dst, n_ok);
	}
	ma_buf_append(&code, "", 1);	/* NUL */
	if (move) {
		if (n_ok > 0)
			imap_untagged(s, "OK [%s] Moved UIDs.", (const char *)ma_buf_ptr(&code));
		imap_sync_report(s, true);
		imap_reply(cmd, "OK", NULL, "Move completed");
	} else {
		imap_reply(cmd, "OK", n_ok > 0 ? (const char *)ma_buf_ptr(&code) : NULL,
			   "Copy completed");
	}
	ma_buf_free(&code);
	return IMAP_CMD_DONE;
}

enum imap_cmd_result imap_cmd_copy(struct imap_cmd *cmd)
{
	return imap_copy_run(cmd, false);
}

enum imap_cmd_result imap_cmd_move(struct imap_cmd *cmd)
{
	return imap_copy_run(cmd, true);
}
