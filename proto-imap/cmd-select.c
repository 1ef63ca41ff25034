/*
 * cmd-select.c - the selected mailbox: SELECT, EXAMINE, CLOSE, UNSELECT,
 * EXPUNGE, UID EXPUNGE, CHECK, and the machinery every command in the
 * SELECTED state uses (imap_select, imap_unselect, imap_sync_report,
 * imap_msg_index, imap_flags_string).
 *
 * The client's numbering: sequence number n is sel->msgs[n-1]. Normally
 * sel->msgs is the store view's own array (no copy, so SELECT of 100,000
 * messages costs one view load and reads no message bodies). RFC 3501 7.4.1
 * forbids EXPUNGE responses while FETCH, STORE or SEARCH run, yet those
 * commands should still see flag changes (our own STORE included). So when
 * a sync is needed while expunges are not allowed and the store did expunge
 * something, the client's list is kept in a private array (sel_priv.own):
 * the current view's entries plus the expunged ones still "pending". The
 * next sync that may send EXPUNGE reports them and drops the array.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap-private.h"

/* sel as allocated here: the public part first. */
struct imap_sel_priv {
	struct imap_selected pub;
	/* The store view as last read (ma_mailbox_messages). */
	const struct ma_msg *view_msgs;
	uint32_t view_count;
	struct ma_mailbox_status view_st;
	/* Heap: the client's list while expunges are pending, else NULL. */
	struct ma_msg *own;
	/* Heap: UIDs whose flag change this session's running command has
	 * reported itself (imap_sync_flags_reported); sorted at use. */
	uint32_t *quiet;
	uint32_t n_quiet, quiet_alloc;
	bool quiet_sorted;
};

static struct imap_sel_priv *imap_sel_priv(struct imap_selected *sel)
{
	return (struct imap_sel_priv *)sel;
}

static const struct {
	uint32_t flag;
	const char *name;
} imap_system_flags[] = {
	{ MA_FLAG_ANSWERED, "\\Answered" },
	{ MA_FLAG_FLAGGED, "\\Flagged" },
	{ MA_FLAG_DELETED, "\\Deleted" },
	{ MA_FLAG_SEEN, "\\Seen" },
	{ MA_FLAG_DRAFT, "\\Draft" },
};

static void imap_select_log(struct imap_session *s, const char *what,
			    const struct ma_error_info *err)
{
	if (s->conn != NULL)
		ma_conn_log(s->conn, MA_LOG_WARNING, "%s: %s: %s", what,
			    ma_error_name(err->code), err->text);
}

const char *imap_flags_string(struct imap_session *s, struct ma_arena *a,
			      const struct ma_msg *m)
{
	struct imap_selected *sel = s->sel;
	struct ma_buf b;
	const char *ret;

	ma_buf_init(&b, 64 * 1024);
	for (size_t i = 0; i < sizeof(imap_system_flags) / sizeof(imap_system_flags[0]); i++) {
		if ((m->flags & imap_system_flags[i].flag) == 0)
			continue;
		if (ma_buf_len(&b) > 0)
			ma_buf_append(&b, " ", 1);
		ma_buf_printf(&b, "%s", imap_system_flags[i].name);
	}
	if (sel != NULL && m->keywords != 0) {
		for (unsigned i = 0; i < sel->n_keywords && i < MA_KEYWORDS_MAX; i++) {
			if ((m->keywords & ((uint64_t)1 << i)) == 0)
				continue;
			if (ma_buf_len(&b) > 0)
				ma_buf_append(&b, " ", 1);
			ma_buf_printf(&b, "%s", sel->keywords[i]);
		}
	}
	ret = ma_arena_strndup(a, (const char *)ma_buf_ptr(&b), ma_buf_len(&b));
	ma_buf_free(&b);
	return ret;
}

long imap_msg_index(const struct imap_selected *sel, uint32_t uid)
{
	uint32_t lo = 0, hi;

	if (sel == NULL)
		return -1;
	hi = sel->count;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (sel->msgs[mid].uid == uid)
			return (long)mid;
		if (sel->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* Number of entries of msgs[0..count) with uid < v (ascending list). */
static uint32_t imap_lower_bound(const struct ma_msg *msgs, uint32_t count,
				 uint32_t v)
{
	uint32_t lo = 0, hi = count;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (msgs[mid].uid < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* FLAGS and PERMANENTFLAGS (RFC 3501 7.2.6, 7.1). */
static void imap_send_flags(struct imap_session *s)
{
	struct imap_selected *sel = s->sel;
	struct ma_buf b;

	ma_buf_init(&b, 64 * 1024);
	ma_buf_printf(&b, "\\Answered \\Flagged \\Deleted \\Seen \\Draft");
	for (unsigned i = 0; i < sel->n_keywords; i++)
		ma_buf_printf(&b, " %s", sel->keywords[i]);
	imap_untagged(s, "FLAGS (%.*s)", (int)ma_buf_len(&b),
		      (const char *)ma_buf_ptr(&b));
	if (sel->readonly) {
		imap_untagged(s, "OK [PERMANENTFLAGS ()] Read-only mailbox.");
	} else {
		/* \* only while the store takes new keywords. */
		imap_untagged(s, "OK [PERMANENTFLAGS (%.*s%s)] Flags permitted.",
			      (int)ma_buf_len(&b), (const char *)ma_buf_ptr(&b),
			      sel->n_keywords < MA_KEYWORDS_MAX ? " \\*" : "");
	}
	ma_buf_free(&b);
}

/* Untagged FETCH for a flag change (RFC 3501 7.4.2; with CONDSTORE the
 * MODSEQ too, RFC 7162 3.2.4). */
static void imap_send_fetch_flags(struct imap_session *s, uint32_t seq,
				  const struct ma_msg *m)
{
	const char *flags = imap_flags_string(s, s->cmd_arena, m);

	if ((s->enabled & IMAP_ENABLED_CONDSTORE) != 0)
		imap_untagged(s, "%u FETCH (UID %u MODSEQ (%llu) FLAGS (%s))", seq,
			      m->uid, (unsigned long long)m->modseq, flags);
	else
		imap_untagged(s, "%u FETCH (UID %u FLAGS (%s))", seq, m->uid, flags);
}

/* Reads the view's list, status and keywords after open or sync. */
static int imap_view_refresh(struct imap_session *s, struct ma_error_info *err)
{
	struct imap_sel_priv *p = imap_sel_priv(s->sel);
	const char *const *kw = NULL;
	unsigned n_kw = 0;

	if (ma_mailbox_messages(p->pub.box, &p->view_msgs, &p->view_count,
				&p->view_st, err) < 0)
		return -1;
	if (ma_mailbox_keywords(p->pub.box, &kw, &n_kw, err) < 0)
		return -1;
	p->pub.keywords = kw;
	p->pub.n_keywords = n_kw > MA_KEYWORDS_MAX ? MA_KEYWORDS_MAX : n_kw;
	p->pub.status = p->view_st;
	return 0;
}

static void imap_select_changed(const char *user, const char *mailbox, void *ctx)
{
	struct imap_selected *sel = ctx;

	(void)user;
	(void)mailbox;
	sel->changed = true;
}

void imap_unselect(struct imap_session *s)
{
	struct imap_sel_priv *p;

	if (s->sel == NULL) {
		if (s->state == IMAP_STATE_SELECTED)
			s->state = IMAP_STATE_AUTH;
		return;
	}
	p = imap_sel_priv(s->sel);
	s->sel = NULL;
	ma_changebus_unsubscribe(&p->pub.sub);
	ma_mailbox_close(&p->pub.box);
	free(p->own);
	free(p->quiet);
	free(p->pub.name);
	free(p);
	if (s->state == IMAP_STATE_SELECTED)
		s->state = IMAP_STATE_AUTH;
}

int imap_select(struct imap_session *s, const char *name, bool readonly,
		struct ma_error_info *err)
{
	struct imap_sel_priv *p;
	struct ma_mailbox *box = NULL;
	uint32_t first_unseen = 0;

	/* RFC 3501 6.3.1: the old selection goes first, even on failure. */
	imap_unselect(s);
	if (s->user == NULL)
		return ma_error_set(err, MA_ERR_INTERNAL, "Not logged in");
	if (ma_mailbox_open(s->user, name, readonly, &box, err) < 0)
		return -1;
	p = ma_malloc0(sizeof(*p));
	p->pub.box = box;
	p->pub.name = ma_strdup(ma_mailbox_name(box));
	p->pub.readonly = readonly;
	s->sel = &p->pub;
	if (imap_view_refresh(s, err) < 0) {
		imap_unselect(s);
		return -1;
	}
	p->pub.msgs = p->view_msgs;
	p->pub.count = p->view_count;
	p->pub.recent_count = 0;
	if (s->core != NULL)
		p->pub.sub = ma_changebus_subscribe(s->core, ma_user_name(s->user),
						    p->pub.name, imap_select_changed,
						    &p->pub);
	s->state = IMAP_STATE_SELECTED;

	for (uint32_t i = 0; i < p->pub.count; i++) {
		if ((p->pub.msgs[i].flags & MA_FLAG_SEEN) == 0) {
			first_unseen = i + 1;
			break;
		}
	}
	imap_send_flags(s);
	imap_untagged(s, "%u EXISTS", p->pub.count);
	imap_untagged(s, "0 RECENT");
	if (first_unseen != 0)
		imap_untagged(s, "OK [UNSEEN %u] First unseen.", first_unseen);
	imap_untagged(s, "OK [UIDVALIDITY %u] UIDs valid", p->view_st.uidvalidity);
	imap_untagged(s, "OK [UIDNEXT %u] Predicted next UID", p->view_st.uidnext);
	if ((s->enabled & IMAP_ENABLED_CONDSTORE) != 0)
		imap_untagged(s, "OK [HIGHESTMODSEQ %llu] Highest",
			      (unsigned long long)p->view_st.highestmodseq);
	return 0;
}

/* The view vanished under us (mailbox deleted or renamed by another
 * session): nothing sensible is left to show, so end the session the way
 * RFC 3501 7.1.5 allows. */
static void imap_sync_failed(struct imap_session *s, const struct ma_error_info *err)
{
	imap_select_log(s, "mailbox sync", err);
	if (err->code != MA_ERR_NOTFOUND)
		return;
	imap_unselect(s);
	imap_session_close(s, "* BYE Selected mailbox was deleted or renamed, "
			   "have to disconnect.", "selected mailbox vanished");
}

static bool imap_msg_flags_differ(const struct ma_msg *a, const struct ma_msg *b)
{
	return a->flags != b->flags || a->keywords != b->keywords;
}

static int imap_u32_cmp(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
	return a < b ? -1 : a > b;
}

void imap_sync_flags_reported(struct imap_session *s, const uint32_t *uids,
			      unsigned n)
{
	struct imap_sel_priv *p;

	if (s->sel == NULL || n == 0)
		return;
	p = imap_sel_priv(s->sel);
	/* Bounded by the messages of the view: STORE names each once. */
	if (n > UINT32_MAX - p->n_quiet)
		return;
	if (p->n_quiet + n > p->quiet_alloc) {
		p->quiet_alloc = p->n_quiet + n;
		p->quiet = ma_realloc(p->quiet, (size_t)p->quiet_alloc * sizeof(*p->quiet));
	}
	memcpy(p->quiet + p->n_quiet, uids, (size_t)n * sizeof(*uids));
	p->n_quiet += n;
	p->quiet_sorted = false;
}

/* Was this UID's change reported by the command itself? Such a change
 * is our own (the window to another session's write on the same message
 * between the command's store and this sync is a few microseconds). */
static bool imap_sync_is_quiet(struct imap_sel_priv *p, uint32_t uid)
{
	if (p->n_quiet == 0)
		return false;
	if (!p->quiet_sorted) {
		qsort(p->quiet, p->n_quiet, sizeof(*p->quiet), imap_u32_cmp);
		p->quiet_sorted = true;
	}
	return bsearch(&uid, p->quiet, p->n_quiet, sizeof(*p->quiet),
		       imap_u32_cmp) != NULL;
}

/* Sync allowed to expunge (the usual case): client list == view before. */
static void imap_sync_plain(struct imap_session *s, const struct ma_sync_result *res,
			    unsigned old_n_kw)
{
	struct imap_sel_priv *p = imap_sel_priv(s->sel);
	const struct ma_msg *v = p->view_msgs;

	/* Ascending UIDs: when the k-th goes out, the k-1 before it are gone,
	 * so its number is one more than the survivors below it. */
	for (unsigned k = 0; k < res->n_expunged; k++) {
		uint32_t seq = 1 + imap_lower_bound(v, p->view_count, res->expunged[k]);
		imap_untagged(s, "%u EXPUNGE", seq);
		s->n_expunged++;
	}
	p->pub.msgs = v;
	p->pub.count = p->view_count;
	if (res->keywords_changed || p->pub.n_keywords != old_n_kw)
		imap_send_flags(s);
	if (res->n_new > 0)
		imap_untagged(s, "%u EXISTS", p->view_count);
	for (unsigned k = 0; k < res->n_changed; k++) {
		long idx = imap_msg_index(&p->pub, res->changed[k]);
		if (idx >= 0 && !imap_sync_is_quiet(p, res->changed[k]))
			imap_send_fetch_flags(s, (uint32_t)idx + 1, &v[idx]);
	}
}

/* Sync allowed to expunge while an own list holds pending expunges. */
static void imap_sync_own(struct imap_session *s, unsigned old_n_kw)
{
	struct imap_sel_priv *p = imap_sel_priv(s->sel);
	const struct ma_msg *v = p->view_msgs;
	uint32_t j = 0, survivors = 0, n_c = p->pub.count;
	struct ma_msg *c = p->own;

	if (p->pub.n_keywords != old_n_kw)
		imap_send_flags(s);
	for (uint32_t i = 0; i < n_c; i++) {
		while (j < p->view_count && v[j].uid < c[i].uid)
			j++;
		if (j < p->view_count && v[j].uid == c[i].uid) {
			survivors++;
			if (imap_msg_flags_differ(&c[i], &v[j]) &&
			    !imap_sync_is_quiet(p, v[j].uid))
				imap_send_fetch_flags(s, survivors, &v[j]);
			j++;
		} else {
			imap_untagged(s, "%u EXPUNGE", survivors + 1);
			s->n_expunged++;
		}
	}
	p->pub.msgs = v;
	p->pub.count = p->view_count;
	if (p->view_count > survivors)
		imap_untagged(s, "%u EXISTS", p->view_count);
	p->own = NULL;
	free(c);
}

/* Sync not allowed to expunge: the client's list (clist) is merged with
 * the fresh view; entries gone from the view stay as pending expunges. */
static void imap_sync_merge(struct imap_session *s, const struct ma_msg *clist,
			    uint32_t n_c, unsigned old_n_kw)
{
	struct imap_sel_priv *p = imap_sel_priv(s->sel);
	const struct ma_msg *v = p->view_msgs;
	struct ma_msg *own;
	uint32_t j = 0, n = 0;

	own = ma_malloc0(((size_t)n_c + p->view_count + 1) * sizeof(*own));
	if (p->pub.n_keywords != old_n_kw)
		imap_send_flags(s);
	for (uint32_t i = 0; i < n_c; i++) {
		while (j < p->view_count && v[j].uid < clist[i].uid)
			j++;
		if (j < p->view_count && v[j].uid == clist[i].uid) {
			own[n] = v[j];
			if (imap_msg_flags_differ(&clist[i], &v[j]) &&
			    !imap_sync_is_quiet(p, v[j].uid))
				imap_send_fetch_flags(s, n + 1, &v[j]);
			j++;
		} else {
			own[n] = clist[i];
		}
		n++;
	}
	/* New messages: those above the last UID the client knows. */
	uint32_t last = n_c > 0 ? clist[n_c - 1].uid : 0;
	j = imap_lower_bound(v, p->view_count, last + 1);
	bool grew = j < p->view_count;
	for (; j < p->view_count; j++)
		own[n++] = v[j];
	free(p->own);
	p->own = own;
	p->pub.msgs = own;
	p->pub.count = n;
	if (grew)
		imap_untagged(s, "%u EXISTS", n);
}

/* Client list rebuilt without a copy (a write raced our cheap check):
 * the view's old messages plus placeholders for the expunged UIDs. The
 * placeholders' flags are unknown; those messages are gone anyway. */
static struct ma_msg *imap_placeholder_list(const struct imap_sel_priv *p,
					    const struct ma_sync_result *res,
					    uint32_t old_uidnext, uint32_t *n_r)
{
	struct ma_msg *l;
	uint32_t n = 0, j = 0;
	unsigned k = 0;

	l = ma_malloc0(((size_t)p->view_count + res->n_expunged + 1) * sizeof(*l));
	while (j < p->view_count || k < res->n_expunged) {
		bool take_v = k >= res->n_expunged ||
			(j < p->view_count && p->view_msgs[j].uid < res->expunged[k]);
		if (take_v) {
			if (p->view_msgs[j].uid < old_uidnext)
				l[n++] = p->view_msgs[j];
			j++;
		} else {
			l[n].uid = res->expunged[k++];
			l[n].flags = MA_FLAG_DELETED;
			n++;
		}
	}
	*n_r = n;
	return l;
}

static void imap_sync_report_run(struct imap_session *s, bool allow_expunge);

void imap_sync_report(struct imap_session *s, bool allow_expunge)
{
	imap_sync_report_run(s, allow_expunge);
	/* What the command reported itself counts for this sync only. */
	if (s->sel != NULL)
		imap_sel_priv(s->sel)->n_quiet = 0;
}

static void imap_sync_report_run(struct imap_session *s, bool allow_expunge)
{
	struct imap_sel_priv *p;
	struct ma_sync_result res;
	struct ma_error_info err;
	struct ma_msg *old = NULL;
	uint32_t old_count, old_uidnext;
	unsigned old_n_kw;

	if (s->sel == NULL || s->sel->box == NULL)
		return;
	p = imap_sel_priv(s->sel);
	old_n_kw = p->pub.n_keywords;
	old_count = p->pub.count;
	old_uidnext = p->view_st.uidnext;
	memset(&err, 0, sizeof(err));

	if (!allow_expunge && p->own == NULL) {
		struct ma_mailbox_status st;
		bool may_expunge = true;

		/* Cheap check (no view reload): nothing written since our
		 * snapshot? Appends only (message count grew by exactly the
		 * UIDs handed out) cannot expunge, so no copy is needed. */
		if (ma_store_mailbox_status(s->user, p->pub.name, &st, &err) == 0) {
			if (st.highestmodseq != 0 && st.uidvalidity == p->view_st.uidvalidity &&
			    st.highestmodseq == p->view_st.highestmodseq) {
				p->pub.changed = false;
				return;
			}
			if (st.uidvalidity == p->view_st.uidvalidity &&
			    st.uidnext >= p->view_st.uidnext &&
			    (uint64_t)st.messages == (uint64_t)p->view_count +
			    (st.uidnext - p->view_st.uidnext))
				may_expunge = false;
		}
		if (may_expunge && old_count > 0) {
			old = ma_malloc0((size_t)old_count * sizeof(*old));
			memcpy(old, p->pub.msgs, (size_t)old_count * sizeof(*old));
		}
	}
	p->pub.changed = false;
	if (ma_mailbox_sync(p->pub.box, &res, &err) < 0 ||
	    imap_view_refresh(s, &err) < 0) {
		free(old);
		imap_sync_failed(s, &err);
		return;
	}

	if (allow_expunge) {
		if (p->own != NULL)
			imap_sync_own(s, old_n_kw);
		else
			imap_sync_plain(s, &res, old_n_kw);
	} else if (p->own != NULL) {
		/* Merge reads the old list whole, then frees it. */
		imap_sync_merge(s, p->own, p->pub.count, old_n_kw);
	} else if (res.n_expunged == 0) {
		imap_sync_plain(s, &res, old_n_kw);
	} else if (old != NULL) {
		imap_sync_merge(s, old, old_count, old_n_kw);
	} else {
		uint32_t n_c;
		struct ma_msg *c = imap_placeholder_list(p, &res, old_uidnext, &n_c);
		imap_sync_merge(s, c, n_c, old_n_kw);
		free(c);
	}
	free(old);
}

/* ---------------- handlers ---------------- */

static enum imap_cmd_result imap_cmd_select_common(struct imap_cmd *cmd, bool readonly)
{
	struct imap_session *s = cmd->s;
	struct ma_error_info err;
	const char *arg;
	char *name;

	memset(&err, 0, sizeof(err));
	if (cmd->n_args < 1 || cmd->n_args > 2 ||
	    (arg = imap_arg_astring(&cmd->args[0])) == NULL) {
		imap_unselect(s);
		imap_reply(cmd, "BAD", NULL, "Usage: %s mailbox", cmd->name);
		return IMAP_CMD_DONE;
	}
	if (cmd->n_args == 2) {
		/* RFC 7162 3.1.8: SELECT mailbox (CONDSTORE). */
		const struct imap_arg *l = &cmd->args[1];
		if (l->type != IMAP_ARG_LIST) {
			imap_unselect(s);
			imap_reply(cmd, "BAD", NULL, "Invalid select parameters");
			return IMAP_CMD_DONE;
		}
		for (unsigned i = 0; i < l->list_count; i++) {
			if (l->list[i].type != IMAP_ARG_ATOM ||
			    strcasecmp(l->list[i].str, "CONDSTORE") != 0) {
				imap_unselect(s);
				imap_reply(cmd, "BAD", NULL, "Unknown select parameter");
				return IMAP_CMD_DONE;
			}
			s->enabled |= IMAP_ENABLED_CONDSTORE;
		}
	}
	name = imap_mailbox_from_client(s, cmd->arena, arg, cmd->args[0].len, &err);
	if (name == NULL) {
		imap_unselect(s);
		imap_reply_store_error(cmd, &err, false);
		return IMAP_CMD_DONE;
	}
	if (imap_select(s, name, readonly, &err) < 0) {
		imap_reply_store_error(cmd, &err, false);
		return IMAP_CMD_DONE;
	}
	imap_reply(cmd, "OK", readonly ? "READ-ONLY" : "READ-WRITE", "%s completed",
		   readonly ? "Examine" : "Select");
	return IMAP_CMD_DONE;
}

enum imap_cmd_result imap_cmd_select(struct imap_cmd *cmd)
{
	return imap_cmd_select_common(cmd, false);
}

enum imap_cmd_result imap_cmd_examine(struct imap_cmd *cmd)
{
	return imap_cmd_select_common(cmd, true);
}

enum imap_cmd_result imap_cmd_check(struct imap_cmd *cmd)
{
	/* Every write is durable when acknowledged: nothing to checkpoint. */
	if (cmd->n_args != 0) {
		imap_reply(cmd, "BAD", NULL, "CHECK takes no arguments");
		return IMAP_CMD_DONE;
	}
	imap_reply(cmd, "OK", NULL, "Check completed");
	return IMAP_CMD_DONE;
}

/* Expunges the \Deleted messages of the fresh view; with set, only those
 * also in the UID set (RFC 4315 2.1). Returns 0 or -1 with err. */
static int imap_expunge_deleted(struct imap_cmd *cmd, const struct imap_seqset *set,
				struct ma_error_info *err)
{
	struct imap_sel_priv *p = imap_sel_priv(cmd->s->sel);
	uint32_t *uids, n = 0;

	if (p->view_count == 0)
		return 0;
	uids = ma_arena_alloc(cmd->arena, (size_t)p->view_count * sizeof(*uids));
	for (uint32_t i = 0; i < p->view_count; i++) {
		const struct ma_msg *m = &p->view_msgs[i];
		if ((m->flags & MA_FLAG_DELETED) == 0)
			continue;
		if (set != NULL && !imap_seqset_contains(set, m->uid))
			continue;
		uids[n++] = m->uid;
	}
	if (n == 0)
		return 0;
	return ma_mailbox_expunge(p->pub.box, uids, n, err);
}

enum imap_cmd_result imap_cmd_close(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct ma_error_info err;
	struct ma_sync_result res;

	memset(&err, 0, sizeof(err));
	if (cmd->n_args != 0) {
		imap_reply(cmd, "BAD", NULL, "CLOSE takes no arguments");
		return IMAP_CMD_DONE;
	}
	if (s->sel == NULL) {
		imap_reply(cmd, "BAD", NULL, "No mailbox selected");
		return IMAP_CMD_DONE;
	}
	/* RFC 3501 6.4.2: silently expunge \Deleted (read-write only), using
	 * the latest flags: the view is synced without telling the client. */
	if (!s->sel->readonly &&
	    (ma_mailbox_sync(s->sel->box, &res, &err) < 0 ||
	     imap_view_refresh(s, &err) < 0 ||
	     imap_expunge_deleted(cmd, NULL, &err) < 0)) {
		imap_select_log(s, "CLOSE expunge", &err);
		/* The mailbox is closed anyway (RFC 3501 says CLOSE returns
		 * to the authenticated state). */
	}
	imap_unselect(s);
	imap_reply(cmd, "OK", NULL, "Close completed");
	return IMAP_CMD_DONE;
}

enum imap_cmd_result imap_cmd_unselect(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;

	if (cmd->n_args != 0) {
		imap_reply(cmd, "BAD", NULL, "UNSELECT takes no arguments");
		return IMAP_CMD_DONE;
	}
	if (s->sel == NULL) {
		imap_reply(cmd, "BAD", NULL, "No mailbox selected");
		return IMAP_CMD_DONE;
	}
	imap_unselect(s);
	imap_reply(cmd, "OK", NULL, "Unselect completed");
	return IMAP_CMD_DONE;
}

enum imap_cmd_result imap_cmd_expunge(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct ma_error_info err;
	struct imap_seqset set, *setp = NULL;

	memset(&err, 0, sizeof(err));
	if (s->sel == NULL) {
		imap_reply(cmd, "BAD", NULL, "No mailbox selected");
		return IMAP_CMD_DONE;
	}
	if (cmd->uid) {
		/* UID EXPUNGE sequence-set (RFC 4315 2.1). */
		const struct imap_arg *a = &cmd->args[0];
		uint32_t max = s->sel->status.uidnext > 0 ? s->sel->status.uidnext - 1 : 0;
		if (cmd->n_args != 1 || a->type != IMAP_ARG_ATOM ||
		    imap_seqset_parse(cmd->arena, a->str, a->len, max, &set) < 0) {
			imap_reply(cmd, "BAD", NULL, "Usage: UID EXPUNGE uid-set");
			return IMAP_CMD_DONE;
		}
		setp = &set;
	} else if (cmd->n_args != 0) {
		imap_reply(cmd, "BAD", NULL, "EXPUNGE takes no arguments");
		return IMAP_CMD_DONE;
	}
	if (s->sel->readonly) {
		imap_reply(cmd, "NO", "READ-ONLY", "Mailbox is read-only");
		return IMAP_CMD_DONE;
	}
	/* Bring the client up to date first (flags set elsewhere count), so
	 * the view we pick \Deleted from is the one the client knows. */
	imap_sync_report(s, true);
	if (s->sel == NULL) {
		imap_reply(cmd, "NO", NULL, "Mailbox is gone");
		return IMAP_CMD_DONE;
	}
	if (imap_expunge_deleted(cmd, setp, &err) < 0) {
		imap_reply_store_error(cmd, &err, false);
		return IMAP_CMD_DONE;
	}
	/* The EXPUNGE responses (RFC 3501 6.4.3). */
	imap_sync_report(s, true);
	imap_reply(cmd, "OK", NULL, "Expunge completed");
	return IMAP_CMD_DONE;
}
