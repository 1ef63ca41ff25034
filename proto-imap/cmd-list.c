/*
 * cmd-list.c - LIST and LSUB (RFC 3501 6.3.8, 6.3.9) with CHILDREN
 * (RFC 3348), SPECIAL-USE (RFC 6154), the LIST-EXTENDED syntax (RFC 5258:
 * selection options SUBSCRIBED, SPECIAL-USE, RECURSIVEMATCH, REMOTE;
 * return options SUBSCRIBED, CHILDREN, SPECIAL-USE, STATUS per RFC 5819;
 * several patterns), the wildcard matcher, and imap_autocreate().
 *
 * The tree: the store lists the user's mailboxes; every missing parent of
 * a name ("a" for "a/b") is added as an implied entry, listed \Noselect
 * (\NonExistent in extended LIST). Entries are sorted component-wise
 * ('/' lowest, INBOX first), so a name's descendants follow it directly,
 * which gives \HasChildren in one pass.
 *
 * The matcher: '*' matches anything, '%' anything but '/'. Runs of
 * wildcards are collapsed and the pattern is run as a bit-parallel NFA
 * (one bit per pattern position), so matching costs O(name length x
 * pattern length / 64) whatever the pattern: no backtracking, nothing
 * exponential. INBOX is matched case-insensitively (RFC 3501 5.1).
 *
 * LSUB: subscribed mailboxes that match; a parent of a subscribed name
 * that is not subscribed itself is returned (\Noselect) when it matches
 * and some subscribed descendant does not (the "%" case of RFC 3501
 * 6.3.9). Subscriptions of deleted mailboxes do not survive (see
 * cmd-mailbox.c), so LSUB never lists names that are gone.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap-private.h"

#define IMAP_LIST_PATTERN_MAX 4096	/* bytes of reference + pattern */
#define IMAP_LIST_PATTERNS_MAX 64	/* patterns in one extended LIST */

/* ---------------- matcher ---------------- */

struct imap_match {
	size_t plen;		/* collapsed pattern length = accept state */
	size_t words;		/* 64-bit words per state set */
	uint64_t *wild;		/* positions holding '*' or '%' */
	uint64_t *star;		/* positions holding '*' */
	uint64_t *pct;		/* positions holding '%' */
	uint64_t *eq;		/* [256][words]: positions holding byte c */
	uint64_t *s, *t, *tmp;	/* work sets */
	bool empty;		/* the pattern is "" */
};

static inline void imap_bit_set(uint64_t *v, size_t i)
{
	v[i / 64] |= (uint64_t)1 << (i % 64);
}

static inline bool imap_bit_get(const uint64_t *v, size_t i)
{
	return (v[i / 64] >> (i % 64)) & 1;
}

/* Not static: test-imap-mailbox.c checks them against a reference. The
 * plugin is built with hidden visibility, so they never leave imap.so. */
struct imap_match *imap_match_compile(struct ma_arena *a, const char *pat, size_t len);
bool imap_match_name(struct imap_match *m, const char *name);

struct imap_match *imap_match_compile(struct ma_arena *a, const char *pat, size_t len)
{
	struct imap_match *m = ma_arena_alloc(a, sizeof(*m));
	unsigned char *p = ma_arena_alloc(a, len + 1);
	size_t n = 0;

	/* Collapse wildcard runs: any '*' makes the run '*', else '%'. */
	for (size_t i = 0; i < len;) {
		if (pat[i] == '*' || pat[i] == '%') {
			bool star = false;
			for (; i < len && (pat[i] == '*' || pat[i] == '%'); i++) {
				if (pat[i] == '*')
					star = true;
			}
			p[n++] = star ? '*' : '%';
		} else {
			p[n++] = (unsigned char)pat[i++];
		}
	}
	m->plen = n;
	m->empty = len == 0;
	m->words = (n + 1 + 63) / 64;
	m->wild = ma_arena_alloc(a, m->words * 8);
	m->star = ma_arena_alloc(a, m->words * 8);
	m->pct = ma_arena_alloc(a, m->words * 8);
	m->s = ma_arena_alloc(a, m->words * 8);
	m->t = ma_arena_alloc(a, m->words * 8);
	m->tmp = ma_arena_alloc(a, m->words * 8);
	m->eq = ma_arena_alloc(a, 256 * m->words * 8);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '*') {
			imap_bit_set(m->star, i);
			imap_bit_set(m->wild, i);
		} else if (p[i] == '%') {
			imap_bit_set(m->pct, i);
			imap_bit_set(m->wild, i);
		} else {
			imap_bit_set(m->eq + (size_t)p[i] * m->words, i);
		}
	}
	return m;
}

/* dst = src shifted up one position (state i -> i+1). */
static void imap_match_shl1(uint64_t *dst, const uint64_t *src, size_t words)
{
	uint64_t carry = 0;

	for (size_t w = 0; w < words; w++) {
		uint64_t v = src[w];
		dst[w] = v << 1 | carry;
		carry = v >> 63;
	}
}

/* s |= shift(s & wild): a wildcard may match nothing. One step is enough
 * since runs were collapsed (no two wildcards in a row). */
static void imap_match_closure(struct imap_match *m, uint64_t *s)
{
	for (size_t w = 0; w < m->words; w++)
		m->tmp[w] = s[w] & m->wild[w];
	imap_match_shl1(m->tmp, m->tmp, m->words);
	for (size_t w = 0; w < m->words; w++)
		s[w] |= m->tmp[w];
}

static unsigned char imap_ascii_other_case(unsigned char c)
{
	if (c >= 'a' && c <= 'z')
		return (unsigned char)(c - 'a' + 'A');
	if (c >= 'A' && c <= 'Z')
		return (unsigned char)(c - 'A' + 'a');
	return c;
}

bool imap_match_name(struct imap_match *m, const char *name)
{
	const unsigned char *n = (const unsigned char *)name;
	/* "INBOX" and "INBOX/..." compare case-insensitively there. */
	bool inbox = strncmp(name, "INBOX", 5) == 0 && (name[5] == '\0' || name[5] == '/');
	size_t words = m->words;
	bool alive;

	memset(m->s, 0, words * 8);
	imap_bit_set(m->s, 0);
	imap_match_closure(m, m->s);
	for (size_t i = 0; n[i] != '\0'; i++) {
		const uint64_t *eq = m->eq + (size_t)n[i] * words;
		const uint64_t *eq2 = m->eq + (size_t)imap_ascii_other_case(n[i]) * words;
		bool ci = inbox && i < 5;

		alive = false;
		for (size_t w = 0; w < words; w++)
			m->tmp[w] = m->s[w] & (eq[w] | (ci ? eq2[w] : 0));
		imap_match_shl1(m->t, m->tmp, words);
		for (size_t w = 0; w < words; w++) {
			uint64_t keep = m->star[w] | (n[i] != '/' ? m->pct[w] : 0);
			m->t[w] |= m->s[w] & keep;
			alive = alive || m->t[w] != 0;
		}
		if (!alive)
			return false;
		memcpy(m->s, m->t, words * 8);
		imap_match_closure(m, m->s);
	}
	return imap_bit_get(m->s, m->plen);
}

/* ---------------- the tree ---------------- */

struct imap_list_entry {
	const char *name;
	uint32_t attrs;		/* store attributes (existing entries) */
	bool exists;
	bool has_children;
};

struct imap_list_tree {
	struct imap_list_entry *e;
	size_t n, alloc;
	struct ma_arena *a;
};

static void imap_tree_add(struct imap_list_tree *t, const char *name, size_t len,
			  uint32_t attrs, bool exists)
{
	if (t->n == t->alloc) {
		t->alloc = t->alloc ? t->alloc * 2 : 64;
		struct imap_list_entry *ne = ma_arena_alloc(t->a, t->alloc * sizeof(*ne));
		if (t->n > 0)
			memcpy(ne, t->e, t->n * sizeof(*ne));
		t->e = ne;
	}
	t->e[t->n].name = ma_arena_strndup(t->a, name, len);
	t->e[t->n].attrs = attrs;
	t->e[t->n].exists = exists;
	t->e[t->n].has_children = false;
	t->n++;
}

struct imap_list_collect {
	struct imap_list_tree *t;
	bool subscribed_only;
};

static void imap_list_collect_cb(const struct ma_mailbox_info *info, void *ctx)
{
	struct imap_list_collect *c = ctx;
	size_t len = strlen(info->name);

	if (c->subscribed_only && (info->attrs & MA_MBOX_SUBSCRIBED) == 0)
		return;
	imap_tree_add(c->t, info->name, len, info->attrs, true);
	/* Implied parents (deduplicated after sorting). */
	for (size_t i = len; i-- > 1;) {
		if (info->name[i] == '/')
			imap_tree_add(c->t, info->name, i, 0, false);
	}
}

static bool imap_is_inbox_tree(const char *s)
{
	return strncmp(s, "INBOX", 5) == 0 && (s[5] == '\0' || s[5] == '/');
}

static int imap_list_entry_cmp(const void *x, const void *y)
{
	const unsigned char *a = (const unsigned char *)((const struct imap_list_entry *)x)->name;
	const unsigned char *b = (const unsigned char *)((const struct imap_list_entry *)y)->name;
	bool ia = imap_is_inbox_tree((const char *)a), ib = imap_is_inbox_tree((const char *)b);

	if (ia != ib)
		return ia ? -1 : 1;
	for (;; a++, b++) {
		unsigned ca = *a == '/' ? 1 : *a, cb = *b == '/' ? 1 : *b;
		if (ca != cb)
			return ca < cb ? -1 : 1;
		if (ca == 0)
			return 0;
	}
}

/* Lists the user's mailboxes into t: sorted, deduplicated, with implied
 * parents and has_children. */
static int imap_tree_build(struct imap_session *s, struct ma_arena *a,
			   bool subscribed_only, struct imap_list_tree *t,
			   struct ma_error_info *err)
{
	struct imap_list_collect c = { .t = t, .subscribed_only = subscribed_only };
	size_t w = 0;

	memset(t, 0, sizeof(*t));
	t->a = a;
	if (ma_store_mailbox_list(s->user, imap_list_collect_cb, &c, err) < 0)
		return -1;
	if (t->n == 0)
		return 0;
	qsort(t->e, t->n, sizeof(*t->e), imap_list_entry_cmp);
	for (size_t r = 0; r < t->n; r++) {
		if (w > 0 && strcmp(t->e[w - 1].name, t->e[r].name) == 0) {
			if (t->e[r].exists) {
				t->e[w - 1].exists = true;
				t->e[w - 1].attrs = t->e[r].attrs;
			}
			continue;
		}
		t->e[w++] = t->e[r];
	}
	t->n = w;
	for (size_t i = 0; i + 1 < t->n; i++) {
		size_t len = strlen(t->e[i].name);
		t->e[i].has_children = strncmp(t->e[i + 1].name, t->e[i].name, len) == 0 &&
			t->e[i + 1].name[len] == '/';
	}
	return 0;
}

/* ---------------- LIST / LSUB ---------------- */

#define IMAP_LISTF_LSUB       0x01u
#define IMAP_LISTF_EXTENDED   0x02u
#define IMAP_LISTF_SEL_SUBSCRIBED 0x04u
#define IMAP_LISTF_SEL_SPECIALUSE 0x08u
#define IMAP_LISTF_RET_SUBSCRIBED 0x10u
#define IMAP_LISTF_RET_STATUS 0x20u

struct imap_list_state {
	uint32_t flags;
	uint32_t status_items;
	struct imap_match *m[IMAP_LIST_PATTERNS_MAX];
	unsigned n_m;
	struct imap_list_tree t;
	size_t next;		/* next entry to consider (CONTINUE) */
};

static bool imap_list_matches(struct imap_list_state *st, const char *name)
{
	for (unsigned i = 0; i < st->n_m; i++) {
		if (!st->m[i]->empty && imap_match_name(st->m[i], name))
			return true;
	}
	return false;
}

static const struct {
	uint32_t attr;
	const char *name;
} imap_list_su[] = {
	{ MA_MBOX_SU_ALL, "\\All" },
	{ MA_MBOX_SU_ARCHIVE, "\\Archive" },
	{ MA_MBOX_SU_DRAFTS, "\\Drafts" },
	{ MA_MBOX_SU_FLAGGED, "\\Flagged" },
	{ MA_MBOX_SU_JUNK, "\\Junk" },
	{ MA_MBOX_SU_SENT, "\\Sent" },
	{ MA_MBOX_SU_TRASH, "\\Trash" },
};

static void imap_list_send(struct imap_session *s, struct imap_list_state *st,
			   const struct imap_list_entry *e, bool lsub)
{
	struct ma_buf b;
	bool sp = false;

	ma_buf_init(&b, 64 * 1024);
	ma_buf_printf(&b, "%s (", lsub ? "LSUB" : "LIST");
#define IMAP_ATTR(str) do { ma_buf_printf(&b, "%s%s", sp ? " " : "", str); sp = true; } while (0)
	if (!e->exists) {
		if ((st->flags & IMAP_LISTF_EXTENDED) != 0 && !lsub)
			IMAP_ATTR("\\NonExistent");
		IMAP_ATTR("\\Noselect");
	} else if ((e->attrs & MA_MBOX_NOSELECT) != 0) {
		IMAP_ATTR("\\Noselect");
	}
	if (!lsub) {
		IMAP_ATTR(e->has_children ? "\\HasChildren" : "\\HasNoChildren");
		if (e->exists) {
			for (size_t k = 0; k < sizeof(imap_list_su) / sizeof(imap_list_su[0]); k++) {
				if ((e->attrs & imap_list_su[k].attr) != 0)
					IMAP_ATTR(imap_list_su[k].name);
			}
		}
		if ((st->flags & (IMAP_LISTF_RET_SUBSCRIBED | IMAP_LISTF_SEL_SUBSCRIBED)) != 0 &&
		    e->exists && (e->attrs & MA_MBOX_SUBSCRIBED) != 0)
			IMAP_ATTR("\\Subscribed");
	}
#undef IMAP_ATTR
	ma_buf_append(&b, ") \"/\" ", 6);
	imap_buf_mailbox(s, &b, e->name);
	imap_untagged(s, "%.*s", (int)ma_buf_len(&b), (const char *)ma_buf_ptr(&b));
	ma_buf_free(&b);
}

/* LSUB: is some subscribed descendant of entry i not matched? */
static bool imap_lsub_hidden_child(struct imap_list_state *st, size_t i)
{
	const char *p = st->t.e[i].name;
	size_t len = strlen(p);

	for (size_t j = i + 1; j < st->t.n; j++) {
		const struct imap_list_entry *c = &st->t.e[j];
		if (strncmp(c->name, p, len) != 0 || c->name[len] != '/')
			break;
		if (c->exists && !imap_list_matches(st, c->name))
			return true;
	}
	return false;
}

static enum imap_cmd_result imap_list_run(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct imap_list_state *st = cmd->state;
	bool lsub = (st->flags & IMAP_LISTF_LSUB) != 0;

	for (; st->next < st->t.n; st->next++) {
		const struct imap_list_entry *e = &st->t.e[st->next];

		if (s->conn != NULL && ma_conn_output_full(s->conn))
			return IMAP_CMD_CONTINUE;
		if (!imap_list_matches(st, e->name))
			continue;
		if (lsub) {
			if (!e->exists && !imap_lsub_hidden_child(st, st->next))
				continue;
		} else {
			if ((st->flags & IMAP_LISTF_SEL_SUBSCRIBED) != 0 &&
			    (!e->exists || (e->attrs & MA_MBOX_SUBSCRIBED) == 0))
				continue;
			if ((st->flags & IMAP_LISTF_SEL_SPECIALUSE) != 0 &&
			    (!e->exists || (e->attrs & MA_MBOX_SU_MASK) == 0))
				continue;
		}
		imap_list_send(s, st, e, lsub);
		if ((st->flags & IMAP_LISTF_RET_STATUS) != 0 && e->exists &&
		    (e->attrs & MA_MBOX_NOSELECT) == 0) {
			struct ma_error_info err;
			/* RFC 5819: a mailbox that fails STATUS just has none. */
			(void)imap_status_send(s, e->name, st->status_items, &err);
		}
	}
	imap_reply(cmd, "OK", NULL, "%s completed", lsub ? "Lsub" : "List");
	return IMAP_CMD_DONE;
}

/* Decodes reference + pattern (modified UTF-7 unless UTF8=ACCEPT) and
 * compiles it. NULL if it can never match anything sensible. */
static struct imap_match *imap_list_pattern(struct imap_cmd *cmd, const char *ref,
					    size_t ref_len, const struct imap_arg *pat)
{
	const char *p = imap_arg_astring(pat);
	struct ma_buf raw, dec;
	struct imap_match *m = NULL;

	if (p == NULL)
		return NULL;
	ma_buf_init(&raw, IMAP_LIST_PATTERN_MAX);
	ma_buf_init(&dec, IMAP_LIST_PATTERN_MAX * 2);
	if (ma_buf_append(&raw, ref, ref_len) < 0 ||
	    ma_buf_append(&raw, p, pat->len) < 0)
		goto out;
	if (cmd->s->utf8_names) {
		if (ma_buf_append(&dec, ma_buf_ptr(&raw), ma_buf_len(&raw)) < 0)
			goto out;
	} else if (ma_buf_len(&raw) > 0 &&
		   imap_utf7_decode((const char *)ma_buf_ptr(&raw), ma_buf_len(&raw), &dec) < 0) {
		goto out;
	}
	if (ma_buf_len(&dec) == 0 ||
	    memchr(ma_buf_ptr(&dec), '\0', ma_buf_len(&dec)) != NULL)
		goto out;
	m = imap_match_compile(cmd->arena, (const char *)ma_buf_ptr(&dec), ma_buf_len(&dec));
out:
	ma_buf_free(&raw);
	ma_buf_free(&dec);
	return m;
}

static enum imap_cmd_result imap_list_usage(struct imap_cmd *cmd, const char *why)
{
	imap_reply(cmd, "BAD", NULL, "%s", why);
	return IMAP_CMD_DONE;
}

static enum imap_cmd_result imap_list_common(struct imap_cmd *cmd, bool lsub)
{
	struct imap_session *s = cmd->s;
	struct imap_list_state *st;
	struct ma_error_info err;
	const struct imap_arg *args = cmd->args;
	unsigned n = cmd->n_args, i = 0;
	const char *ref;
	size_t ref_len;
	bool any_pattern = false;

	if (cmd->state != NULL)
		return imap_list_run(cmd);
	memset(&err, 0, sizeof(err));
	st = ma_arena_alloc(cmd->arena, sizeof(*st));
	if (lsub)
		st->flags |= IMAP_LISTF_LSUB;

	/* RFC 5258: LIST [(selection-options)] reference patterns
	 * [RETURN (return-options)]. */
	if (!lsub && n > 0 && args[0].type == IMAP_ARG_LIST) {
		st->flags |= IMAP_LISTF_EXTENDED;
		for (unsigned k = 0; k < args[0].list_count; k++) {
			const struct imap_arg *o = &args[0].list[k];
			if (o->type != IMAP_ARG_ATOM)
				return imap_list_usage(cmd, "Invalid selection option");
			if (strcasecmp(o->str, "SUBSCRIBED") == 0)
				st->flags |= IMAP_LISTF_SEL_SUBSCRIBED;
			else if (strcasecmp(o->str, "SPECIAL-USE") == 0)
				st->flags |= IMAP_LISTF_SEL_SPECIALUSE;
			else if (strcasecmp(o->str, "RECURSIVEMATCH") != 0 &&
				 strcasecmp(o->str, "REMOTE") != 0)
				return imap_list_usage(cmd, "Unknown selection option");
		}
		i = 1;
	}
	if (n < i + 2 || (ref = imap_arg_astring(&args[i])) == NULL)
		return imap_list_usage(cmd, lsub ? "Usage: LSUB reference pattern" :
				       "Usage: LIST reference pattern");
	ref_len = args[i].len;
	const struct imap_arg *pats = &args[i + 1];
	unsigned n_pats = 1;
	if (pats->type == IMAP_ARG_LIST && !lsub) {
		st->flags |= IMAP_LISTF_EXTENDED;
		n_pats = pats->list_count;
		pats = pats->list;
		if (n_pats == 0 || n_pats > IMAP_LIST_PATTERNS_MAX)
			return imap_list_usage(cmd, "Invalid pattern list");
	}
	i += 2;
	if (i < n) {
		if (lsub || n != i + 2 || args[i].type != IMAP_ARG_ATOM ||
		    strcasecmp(args[i].str, "RETURN") != 0 ||
		    args[i + 1].type != IMAP_ARG_LIST)
			return imap_list_usage(cmd, "Invalid LIST arguments");
		st->flags |= IMAP_LISTF_EXTENDED;
		const struct imap_arg *r = &args[i + 1];
		for (unsigned k = 0; k < r->list_count; k++) {
			const struct imap_arg *o = &r->list[k];
			if (o->type != IMAP_ARG_ATOM)
				return imap_list_usage(cmd, "Invalid return option");
			if (strcasecmp(o->str, "SUBSCRIBED") == 0) {
				st->flags |= IMAP_LISTF_RET_SUBSCRIBED;
			} else if (strcasecmp(o->str, "STATUS") == 0) {
				if (k + 1 >= r->list_count ||
				    imap_status_items_parse(&r->list[k + 1], &st->status_items) < 0)
					return imap_list_usage(cmd, "Invalid STATUS return option");
				st->flags |= IMAP_LISTF_RET_STATUS;
				k++;
			} else if (strcasecmp(o->str, "CHILDREN") != 0 &&
				   strcasecmp(o->str, "SPECIAL-USE") != 0) {
				return imap_list_usage(cmd, "Unknown return option");
			}
		}
	}
	for (unsigned k = 0; k < n_pats; k++) {
		if (!imap_arg_is_astring(&pats[k]))
			return imap_list_usage(cmd, "Invalid pattern");
		if (pats[k].len == 0)
			continue;	/* only asks for the delimiter */
		any_pattern = true;
		struct imap_match *m = imap_list_pattern(cmd, ref, ref_len, &pats[k]);
		if (m != NULL)
			st->m[st->n_m++] = m;
	}
	if (!any_pattern) {
		/* RFC 3501 6.3.8: LIST "" "" asks for the delimiter and root. */
		if (!lsub)
			imap_untagged(s, "LIST (\\Noselect) \"/\" \"\"");
		imap_reply(cmd, "OK", NULL, "%s completed", lsub ? "Lsub" : "List");
		return IMAP_CMD_DONE;
	}
	if (st->n_m > 0 &&
	    imap_tree_build(s, cmd->arena, lsub, &st->t, &err) < 0) {
		imap_reply_mailbox_error(cmd, &err);
		return IMAP_CMD_DONE;
	}
	cmd->state = st;
	return imap_list_run(cmd);
}

enum imap_cmd_result imap_cmd_list(struct imap_cmd *cmd)
{
	return imap_list_common(cmd, false);
}

enum imap_cmd_result imap_cmd_lsub(struct imap_cmd *cmd)
{
	return imap_list_common(cmd, true);
}

/* ---------------- autocreate ---------------- */

struct imap_autocreate_ctx {
	const struct imap_settings *set;
	bool have[8];
};

static void imap_autocreate_cb(const struct ma_mailbox_info *info, void *ctx)
{
	struct imap_autocreate_ctx *c = ctx;

	for (unsigned i = 0; i < c->set->n_autocreate && i < 8; i++) {
		/* Present by name, or the role is taken by another mailbox. */
		if (strcmp(info->name, c->set->autocreate[i].name) == 0 ||
		    (c->set->autocreate[i].attr != 0 &&
		     (info->attrs & c->set->autocreate[i].attr) != 0))
			c->have[i] = true;
	}
}

void imap_autocreate(struct imap_session *s)
{
	struct imap_autocreate_ctx c;
	struct ma_error_info err;
	bool missing = false;

	if (s->set == NULL || s->user == NULL || s->set->n_autocreate == 0)
		return;
	memset(&c, 0, sizeof(c));
	memset(&err, 0, sizeof(err));
	c.set = s->set;
	/* One read of the tree; writes only for what is missing, so an
	 * ordinary login takes no write lock. */
	if (ma_store_mailbox_list(s->user, imap_autocreate_cb, &c, &err) < 0) {
		if (s->conn != NULL)
			ma_conn_log(s->conn, MA_LOG_WARNING, "autocreate: list: %s", err.text);
		return;
	}
	for (unsigned i = 0; i < s->set->n_autocreate && i < 8; i++)
		missing = missing || !c.have[i];
	if (!missing)
		return;
	for (unsigned i = 0; i < s->set->n_autocreate && i < 8; i++) {
		uint32_t attrs = s->set->autocreate[i].attr & MA_MBOX_SU_MASK;
		if (c.have[i] || s->set->autocreate[i].name == NULL)
			continue;
		if (s->set->autocreate_subscribe)
			attrs |= MA_MBOX_SUBSCRIBED;
		if (ma_store_mailbox_create(s->user, s->set->autocreate[i].name, attrs,
					    &err) < 0 && err.code != MA_ERR_EXISTS &&
		    s->conn != NULL)
			ma_conn_log(s->conn, MA_LOG_WARNING, "autocreate %s: %s",
				    s->set->autocreate[i].name, err.text);
	}
}
