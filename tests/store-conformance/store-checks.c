/*
 * store-checks.c - the store conformance checks every backend must pass,
 * in one copy (store-checks.h says how they report). Each store_check_*
 * works only through the store API the core wraps around a plugin
 * (mailaccess/store.h): names, append/status/UIDs, flags and keywords,
 * sync, the mailbox tree, copy/move, byte-identical reads, several
 * processes and threads, kill -9 of a writer, verify, the change bus.
 * Built into mailaccess-store-conformance and into the LMDB and Maildir
 * unit tests, which add their backend's own checks around these.
 */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "store-checks.h"

struct sc_options sc_opts = {
	.out = NULL,		/* stderr: not a constant initializer */
	.indent = "",
	.read_big_size = 20u << 20,
};
int sc_failures;

static void sc_vline(const char *prefix, const char *fmt, va_list ap)
{
	FILE *out = sc_opts.out != NULL ? sc_opts.out : stderr;

	/* One line even with threads or forked children writing too, and
	 * flushed: a child leaves with _exit(). */
	flockfile(out);
	fputs(sc_opts.indent != NULL ? sc_opts.indent : "", out);
	if (prefix != NULL)
		fputs(prefix, out);
	vfprintf(out, fmt, ap);
	putc('\n', out);
	funlockfile(out);
	fflush(out);
}

void sc_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sc_vline(NULL, fmt, ap);
	va_end(ap);
}

void sc_fail(const char *fmt, ...)
{
	va_list ap;

	sc_failures++;
	va_start(ap, fmt);
	sc_vline(NULL, fmt, ap);
	va_end(ap);
}

void sc_fail_at(const char *file, int line, const char *func,
		const char *fmt, ...)
{
	const char *base = strrchr(file, '/');
	char where[256];
	va_list ap;

	snprintf(where, sizeof(where), "%s:%d: %s: ",
		 base != NULL ? base + 1 : file, line, func);
	sc_failures++;
	va_start(ap, fmt);
	sc_vline(where, fmt, ap);
	va_end(ap);
}

/* ---------------- helpers ---------------- */

struct ma_user *sc_user_open(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = ma_store_user_open(store, user, &err);

	if (u == NULL)
		sc_fail("open user %s: %s %s", user, ma_error_name(err.code),
			err.text);
	return u;
}

struct ma_append_msg sc_msg(const char *text, uint32_t flags)
{
	struct ma_append_msg m;

	memset(&m, 0, sizeof(m));
	m.data = text;
	m.size = strlen(text);
	m.flags = flags;
	return m;
}

int sc_append1(struct ma_user *u, const char *box, const char *text,
		   uint32_t flags, uint32_t *uid_r)
{
	struct ma_append_msg m = sc_msg(text, flags);
	struct ma_error_info err;
	uint32_t uid = 0, uv = 0;
	int rc = ma_store_append(u, box, &m, 1, &uid, &uv, &err);

	if (rc < 0)
		sc_note("append to %s: %s %s", box, ma_error_name(err.code),
			err.text);
	if (uid_r != NULL)
		*uid_r = uid;
	return rc;
}

struct ma_mailbox_status sc_status(struct ma_user *u, const char *box)
{
	struct ma_mailbox_status st;
	struct ma_error_info err;

	memset(&st, 0, sizeof(st));
	if (ma_store_mailbox_status(u, box, &st, &err) < 0)
		sc_fail("status %s: %s", box, err.text);
	return st;
}

/* Recomputes counts from an opened view and compares with STATUS. */
void sc_check_counts(struct ma_user *u, const char *box, const char *file,
		     int line, const char *func)
{
	struct ma_error_info err;
	struct ma_mailbox *mb = NULL;
	const struct ma_msg *msgs;
	uint32_t n = 0, unseen = 0;
	uint64_t size = 0;
	struct ma_mailbox_status st = sc_status(u, box), vst;

	memset(&vst, 0, sizeof(vst));
	if (ma_mailbox_open(u, box, true, &mb, &err) < 0) {
		sc_fail_at(file, line, func, "open %s: %s", box, err.text);
		return;
	}
	OK(ma_mailbox_messages(mb, &msgs, &n, &vst, &err));
	for (uint32_t i = 0; i < n; i++) {
		size += msgs[i].size;
		if (!(msgs[i].flags & MA_FLAG_SEEN))
			unseen++;
		if (i > 0 && msgs[i].uid <= msgs[i - 1].uid)
			sc_fail_at(file, line, func, "%s: uids not ascending", box);
		if (msgs[i].uid >= st.uidnext)
			sc_fail_at(file, line, func, "%s: uid %u >= uidnext %u",
				   box, msgs[i].uid, st.uidnext);
	}
	if (n != st.messages || unseen != st.unseen || size != st.size ||
	    vst.messages != n)
		sc_fail_at(file, line, func,
			   "%s counts: status %u/%u/%llu, view %u/%u/%llu", box,
			   st.messages, st.unseen, (unsigned long long)st.size,
			   n, unseen, (unsigned long long)size);
	ma_mailbox_close(&mb);
}

struct ma_mailbox *sc_open_list(struct ma_user *u, const char *box,
				const struct ma_msg **msgs_r, uint32_t *n_r,
				struct ma_mailbox_status *st_r)
{
	struct ma_error_info err;
	struct ma_mailbox *mb = NULL;

	*msgs_r = NULL;
	*n_r = 0;
	if (ma_mailbox_open(u, box, true, &mb, &err) < 0) {
		sc_fail("open %s: %s %s", box, ma_error_name(err.code), err.text);
		return NULL;
	}
	if (ma_mailbox_messages(mb, msgs_r, n_r, st_r, &err) < 0) {
		sc_fail("list %s: %s %s", box, ma_error_name(err.code), err.text);
		*n_r = 0;
		ma_mailbox_close(&mb);
		return NULL;
	}
	return mb;
}

const struct ma_msg *sc_find_msg(struct ma_mailbox *mb, uint32_t uid)
{
	const struct ma_msg *msgs;
	uint32_t n;
	struct ma_error_info err;

	if (ma_mailbox_messages(mb, &msgs, &n, NULL, &err) < 0)
		return NULL;
	for (uint32_t i = 0; i < n; i++)
		if (msgs[i].uid == uid)
			return &msgs[i];
	return NULL;
}

const struct ma_msg *sc_msg_in(struct ma_mailbox *mb, uint32_t uid)
{
	static const struct ma_msg none;
	const struct ma_msg *m = sc_find_msg(mb, uid);

	if (m == NULL)
		sc_fail("uid %u not in the view", uid);
	return m != NULL ? m : &none;
}

/* ---------------- conformance checks ---------------- */

void store_check_names(struct ma_store *store)
{
	struct ma_error_info err;
	static const char *const bad_users[] = {
		"", ".", "..", "a/b", "x\001y", "\xff", "tab\there", NULL
	};
	static const char *const bad_boxes[] = {
		"", "/a", "a/", "a//b", "a/./b", "a/../b", "..", ".", "x\ny",
		"\xc3\x28", "\xed\xa0\x80", "\xc0\xaf", "del\x7f", "c1\xc2\x85", NULL
	};
	char longname[1100];

	for (unsigned i = 0; bad_users[i] != NULL; i++) {
		CHECK(ma_store_check_user_name(bad_users[i], &err) < 0);
		CHECK(err.code == MA_ERR_BADARGS);
		CHECK(ma_store_user_open(store, bad_users[i], &err) == NULL);
	}
	for (unsigned i = 0; bad_boxes[i] != NULL; i++) {
		if (ma_store_check_mailbox_name(bad_boxes[i], &err) >= 0) {
			sc_fail("bad mailbox name %u accepted", i);
		}
	}
	memset(longname, 'a', 1001);
	longname[1001] = '\0';
	CHECK(ma_store_check_mailbox_name(longname, &err) < 0);
	memset(longname, 'u', 256);
	longname[256] = '\0';
	CHECK(ma_store_check_user_name(longname, &err) < 0);
	/* 17 levels */
	strcpy(longname, "a");
	for (int i = 0; i < 16; i++)
		strcat(longname, "/a");
	CHECK(ma_store_check_mailbox_name(longname, &err) < 0);
	longname[strlen(longname) - 2] = '\0';
	CHECK(ma_store_check_mailbox_name(longname, &err) == 0);
	CHECK(ma_store_check_mailbox_name("Ünïcödé/日本語", &err) == 0);
	CHECK(ma_store_check_mailbox_name("a.b/.hidden", &err) == 0);
	CHECK(ma_store_check_user_name("user@example.org", &err) == 0);
}

struct list_ctx {
	char names[64][128];
	uint32_t attrs[64];
	unsigned n;
};

static void list_cb(const struct ma_mailbox_info *info, void *ctx)
{
	struct list_ctx *l = ctx;

	if (l->n < 64) {
		snprintf(l->names[l->n], sizeof(l->names[0]), "%s", info->name);
		l->attrs[l->n] = info->attrs;
		l->n++;
	}
}

static int list_find(const struct list_ctx *l, const char *name)
{
	for (unsigned i = 0; i < l->n; i++)
		if (strcmp(l->names[i], name) == 0)
			return (int)i;
	return -1;
}

void store_check_basic(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = sc_user_open(store, user);
	struct list_ctx l = { .n = 0 };
	struct ma_append_msg many[10];
	uint32_t uids[10], uv = 0, uid, last;
	struct ma_mailbox_status st;
	char text[10][64];

	if (u == NULL)
		return;
	CHECK(strcmp(ma_user_name(u), user) == 0);
	OK(ma_store_mailbox_list(u, list_cb, &l, &err));
	CHECK(l.n == 1 && list_find(&l, "INBOX") == 0);

	st = sc_status(u, "inbox");	/* case-insensitive INBOX */
	CHECK(st.messages == 0 && st.uidnext == 1 && st.uidvalidity != 0);
	CHECK(st.highestmodseq >= 1);
	uint64_t ms0 = st.highestmodseq;

	CHECK(sc_append1(u, "INBOX", "Subject: one\r\n\r\nbody\r\n", 0, &uid) == 0);
	CHECK(uid == 1);
	st = sc_status(u, "INBOX");
	CHECK(st.messages == 1 && st.unseen == 1 && st.uidnext == 2);
	CHECK(st.size == strlen("Subject: one\r\n\r\nbody\r\n"));
	CHECK(st.highestmodseq > ms0);
	COUNTS(u, "INBOX");

	for (int i = 0; i < 10; i++) {
		snprintf(text[i], sizeof(text[i]), "Subject: %d\r\n\r\nx\r\n", i);
		many[i] = sc_msg(text[i], i % 2 ? MA_FLAG_SEEN : 0);
	}
	OK(ma_store_append(u, "INBOX", many, 10, uids, &uv, &err));
	CHECK(uv == st.uidvalidity);
	for (int i = 0; i < 10; i++)
		CHECK(uids[i] == (uint32_t)(2 + i));
	st = sc_status(u, "INBOX");
	CHECK(st.messages == 11 && st.unseen == 6 && st.uidnext == 12);
	COUNTS(u, "INBOX");

	/* Expunge the highest UID: it is never handed out again. */
	struct ma_mailbox *mb;
	OK(ma_mailbox_open(u, "INBOX", false, &mb, &err));
	last = 11;
	OK(ma_mailbox_expunge(mb, &last, 1, &err));
	OK(ma_mailbox_expunge(mb, &last, 1, &err));	/* already gone: ok */
	ma_mailbox_close(&mb);
	st = sc_status(u, "INBOX");
	CHECK(st.messages == 10 && st.uidnext == 12);
	COUNTS(u, "INBOX");
	CHECK(sc_append1(u, "INBOX", "Subject: after\r\n\r\n", 0, &uid) == 0);
	CHECK(uid == 12);
	uint32_t uv_before = st.uidvalidity;
	ma_mailbox_open(u, "INBOX", false, &mb, &err);
	last = 12;
	OK(ma_mailbox_expunge(mb, &last, 1, &err));
	ma_mailbox_close(&mb);

	/* ... also across close/reopen. */
	ma_store_user_close(&u);
	CHECK(u == NULL);
	u = sc_user_open(store, user);
	if (u == NULL)
		return;
	st = sc_status(u, "INBOX");
	CHECK(st.uidnext == 13 && st.uidvalidity == uv_before);
	CHECK(sc_append1(u, "INBOX", "Subject: reopen\r\n\r\n", 0, &uid) == 0);
	CHECK(uid == 13);
	COUNTS(u, "INBOX");

	/* Not found. */
	FAILS(ma_store_mailbox_status(u, "Nope", &st, &err), MA_ERR_NOTFOUND);
	struct ma_append_msg m1 = sc_msg("x\r\n", 0);
	FAILS(ma_store_append(u, "Nope", &m1, 1, NULL, NULL, &err), MA_ERR_NOTFOUND);
	FAILS(ma_store_append(u, "a//b", &m1, 1, NULL, NULL, &err), MA_ERR_BADARGS);
	FAILS(ma_mailbox_open(u, "Nope", false, &mb, &err), MA_ERR_NOTFOUND);
	CHECK(mb == NULL);

	uint64_t qbytes = 0, qmsgs = 0;
	OK(ma_store_quota_usage(u, &qbytes, &qmsgs, &err));
	st = sc_status(u, "INBOX");
	CHECK(qmsgs == st.messages && qbytes == st.size);
	ma_store_user_close(&u);
}

void store_check_flags(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = sc_user_open(store, user);
	struct ma_mailbox *mb = NULL;
	uint32_t a, b, c, failed[4];
	unsigned n_failed = 99;
	struct ma_sync_result res;
	const struct ma_msg *m;

	if (u == NULL)
		return;
	sc_append1(u, "INBOX", "A\r\n", 0, &a);
	sc_append1(u, "INBOX", "B\r\n", 0, &b);
	sc_append1(u, "INBOX", "C\r\n", MA_FLAG_FLAGGED, &c);
	OK(ma_mailbox_open(u, "INBOX", false, &mb, &err));
	if (mb == NULL)
		goto out;
	m = sc_find_msg(mb, c);
	CHECK(m != NULL && m->flags == MA_FLAG_FLAGGED);
	uint64_t ms_c = m != NULL ? m->modseq : 0;

	uint32_t ab[2] = { a, b };
	OK(ma_mailbox_store_flags(mb, ab, 2, MA_FLAGS_ADD, MA_FLAG_SEEN, NULL, 0,
				  0, failed, &n_failed, &err));
	CHECK(n_failed == 0);
	CHECK(sc_status(u, "INBOX").unseen == 1);
	OK(ma_mailbox_sync(mb, &res, &err));
	CHECK(res.n_changed == 2 && res.n_expunged == 0 && res.n_new == 0);
	CHECK(res.n_changed == 2 && res.changed[0] == a && res.changed[1] == b);
	m = sc_find_msg(mb, a);
	CHECK(m != NULL && m->flags == MA_FLAG_SEEN && m->modseq > ms_c);
	uint64_t ms_a = m != NULL ? m->modseq : 0;
	CHECK(sc_msg_in(mb, b)->modseq == ms_a);	/* one modseq per write */
	COUNTS(u, "INBOX");

	/* Remove and replace. */
	OK(ma_mailbox_store_flags(mb, &a, 1, MA_FLAGS_REMOVE, MA_FLAG_SEEN, NULL,
				  0, 0, NULL, NULL, &err));
	OK(ma_mailbox_store_flags(mb, &c, 1, MA_FLAGS_REPLACE,
				  MA_FLAG_ANSWERED | MA_FLAG_DRAFT, NULL, 0, 0,
				  NULL, NULL, &err));
	OK(ma_mailbox_sync(mb, &res, &err));
	CHECK(res.n_changed == 2);
	CHECK(sc_msg_in(mb, a)->flags == 0);
	CHECK(sc_msg_in(mb, c)->flags == (MA_FLAG_ANSWERED | MA_FLAG_DRAFT));
	CHECK(sc_msg_in(mb, c)->modseq > ms_a);
	CHECK(sc_status(u, "INBOX").unseen == 2);
	COUNTS(u, "INBOX");

	/* A no-op store does not bump the modseq. */
	uint64_t hms = sc_status(u, "INBOX").highestmodseq;
	OK(ma_mailbox_store_flags(mb, &a, 1, MA_FLAGS_REMOVE, MA_FLAG_SEEN, NULL,
				  0, 0, NULL, NULL, &err));
	CHECK(sc_status(u, "INBOX").highestmodseq == hms);

	/* UNCHANGEDSINCE (RFC 7162): b was changed at ms_a, c later. */
	uint32_t bc[2] = { b, c };
	OK(ma_mailbox_store_flags(mb, bc, 2, MA_FLAGS_ADD, MA_FLAG_DELETED, NULL, 0,
				  ms_a, failed, &n_failed, &err));
	CHECK(n_failed == 1 && failed[0] == c);
	OK(ma_mailbox_sync(mb, &res, &err));
	CHECK(res.n_changed == 1 && res.changed[0] == b);
	CHECK(sc_msg_in(mb, b)->flags & MA_FLAG_DELETED);
	CHECK(!(sc_msg_in(mb, c)->flags & MA_FLAG_DELETED));

	/* Keywords: names per mailbox, case-insensitive, bit = index. */
	const char *kw1[] = { "$Forwarded", "Work" };
	const char *kw2[] = { "work" };
	const char *const *names;
	unsigned n_names;
	OK(ma_mailbox_store_flags(mb, &a, 1, MA_FLAGS_ADD, 0, kw1, 2, 0, NULL,
				  NULL, &err));
	OK(ma_mailbox_sync(mb, &res, &err));
	CHECK(res.keywords_changed && res.n_changed == 1);
	OK(ma_mailbox_keywords(mb, &names, &n_names, &err));
	CHECK(n_names == 2 && strcmp(names[0], "$Forwarded") == 0 &&
	      strcmp(names[1], "Work") == 0);
	CHECK(sc_msg_in(mb, a)->keywords == 3);
	OK(ma_mailbox_store_flags(mb, &a, 1, MA_FLAGS_REMOVE, 0, kw2, 1, 0, NULL,
				  NULL, &err));
	OK(ma_mailbox_sync(mb, &res, &err));
	CHECK(!res.keywords_changed && sc_msg_in(mb, a)->keywords == 1);
	const char *badkw[] = { "has space" };
	FAILS(ma_mailbox_store_flags(mb, &a, 1, MA_FLAGS_ADD, 0, badkw, 1, 0, NULL,
				     NULL, &err), MA_ERR_BADARGS);
	/* MA_KEYWORDS_MAX per mailbox. */
	char kwbuf[MA_KEYWORDS_MAX + 1][16];
	const char *kws[MA_KEYWORDS_MAX + 1];
	for (int i = 0; i <= MA_KEYWORDS_MAX; i++) {
		snprintf(kwbuf[i], sizeof(kwbuf[i]), "kw%d", i);
		kws[i] = kwbuf[i];
	}
	FAILS(ma_mailbox_store_flags(mb, &b, 1, MA_FLAGS_ADD, 0, kws,
				     MA_KEYWORDS_MAX + 1, 0, NULL, NULL, &err),
	      MA_ERR_LIMIT);
	OK(ma_mailbox_keywords(mb, &names, &n_names, &err));
	CHECK(n_names == 2);	/* the failed write changed nothing */
	/* Append with keywords. */
	struct ma_append_msg am = sc_msg("K\r\n", 0);
	const char *akw[] = { "WORK", "New" };
	am.keywords = akw;
	am.n_keywords = 2;
	uint32_t kuid;
	OK(ma_store_append(u, "INBOX", &am, 1, &kuid, NULL, &err));
	OK(ma_mailbox_sync(mb, &res, &err));
	CHECK(res.n_new == 1 && res.keywords_changed);
	m = sc_find_msg(mb, kuid);
	CHECK(m != NULL && m->keywords == ((1u << 1) | (1u << 2)));

	/* Read-only view refuses writes. */
	struct ma_mailbox *ro = NULL;
	OK(ma_mailbox_open(u, "INBOX", true, &ro, &err));
	if (ro != NULL) {
		FAILS(ma_mailbox_store_flags(ro, &a, 1, MA_FLAGS_ADD, MA_FLAG_SEEN,
					     NULL, 0, 0, NULL, NULL, &err), MA_ERR_PERM);
		FAILS(ma_mailbox_expunge(ro, &a, 1, &err), MA_ERR_PERM);
		ma_mailbox_close(&ro);
	}
	COUNTS(u, "INBOX");
	ma_mailbox_close(&mb);
out:
	ma_store_user_close(&u);
}

void store_check_sync(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = ma_store_user_open(store, user, &err);
	struct ma_user *u2 = ma_store_user_open(store, user, &err);
	struct ma_mailbox *view = NULL, *w = NULL;
	struct ma_sync_result res;
	uint32_t uids[6], nu, count;
	const struct ma_msg *msgs;
	struct ma_mailbox_status st;

	if (u == NULL || u2 == NULL) {
		CHECK(u != NULL && u2 != NULL);
		goto out;
	}
	OK(ma_store_mailbox_create(u, "Sync", 0, &err));
	for (int i = 0; i < 6; i++)
		sc_append1(u, "Sync", "Subject: s\r\n\r\nbody\r\n", 0, &uids[i]);
	OK(ma_mailbox_open(u, "Sync", false, &view, &err));
	OK(ma_mailbox_open(u2, "Sync", false, &w, &err));
	if (view == NULL || w == NULL)
		goto out;
	OK(ma_mailbox_sync(view, &res, &err));
	CHECK(res.n_changed == 0 && res.n_expunged == 0 && res.n_new == 0);

	/* Another session: expunge 2, flag 2 (one of them then expunged too),
	 * append 2 and expunge one of the new ones. */
	uint32_t ex[2] = { uids[1], uids[4] };
	uint32_t fl[2] = { uids[2], uids[3] };
	OK(ma_mailbox_store_flags(w, fl, 2, MA_FLAGS_ADD, MA_FLAG_FLAGGED, NULL, 0,
				  0, NULL, NULL, &err));
	OK(ma_mailbox_expunge(w, ex, 2, &err));
	OK(ma_mailbox_expunge(w, &uids[3], 1, &err));
	sc_append1(u2, "Sync", "new 1\r\n", 0, &nu);
	uint32_t nu2;
	sc_append1(u2, "Sync", "new 2\r\n", 0, &nu2);
	OK(ma_mailbox_expunge(w, &nu, 1, &err));
	/* One more flag change on uids[0] twice: reported once. */
	OK(ma_mailbox_store_flags(w, &uids[0], 1, MA_FLAGS_ADD, MA_FLAG_SEEN, NULL,
				  0, 0, NULL, NULL, &err));
	OK(ma_mailbox_store_flags(w, &uids[0], 1, MA_FLAGS_ADD, MA_FLAG_ANSWERED,
				  NULL, 0, 0, NULL, NULL, &err));

	OK(ma_mailbox_messages(view, &msgs, &count, &st, &err));
	CHECK(count == 6);	/* still the snapshot */
	OK(ma_mailbox_sync(view, &res, &err));
	CHECK(res.n_expunged == 3);
	if (res.n_expunged == 3)
		CHECK(res.expunged[0] == uids[1] && res.expunged[1] == uids[3] &&
		      res.expunged[2] == uids[4]);
	CHECK(res.n_changed == 2);
	if (res.n_changed == 2)
		CHECK(res.changed[0] == uids[0] && res.changed[1] == uids[2]);
	CHECK(res.n_new == 1);
	OK(ma_mailbox_messages(view, &msgs, &count, &st, &err));
	CHECK(count == 4);
	if (count == 4) {
		CHECK(msgs[0].uid == uids[0] && msgs[1].uid == uids[2] &&
		      msgs[2].uid == uids[5] && msgs[3].uid == nu2);
		CHECK(msgs[0].flags == (MA_FLAG_SEEN | MA_FLAG_ANSWERED));
		CHECK(msgs[1].flags == MA_FLAG_FLAGGED);
	}
	CHECK(st.messages == 4 && st.uidnext == nu2 + 1);
	CHECK(st.highestmodseq == sc_status(u, "Sync").highestmodseq);
	/* Nothing more. */
	OK(ma_mailbox_sync(view, &res, &err));
	CHECK(res.n_changed == 0 && res.n_expunged == 0 && res.n_new == 0);

	/* Reading an expunged message. */
	struct ma_msg_data d;
	FAILS(ma_mailbox_msg_read(view, uids[1], &d, &err), MA_ERR_EXPUNGED);
	COUNTS(u, "Sync");

	/* Deleted under the view. */
	OK(ma_store_mailbox_delete(u2, "Sync", &err));
	FAILS(ma_mailbox_sync(view, &res, &err), MA_ERR_NOTFOUND);
out:
	ma_mailbox_close(&view);
	ma_mailbox_close(&w);
	ma_store_user_close(&u);
	ma_store_user_close(&u2);
}

void store_check_tree(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = sc_user_open(store, user);
	struct list_ctx l;
	struct ma_mailbox_status st, st2;
	uint32_t uid;

	if (u == NULL)
		return;
	OK(ma_store_mailbox_create(u, "Work", MA_MBOX_SU_ARCHIVE, &err));
	OK(ma_store_mailbox_create(u, "Work/2024", 0, &err));
	OK(ma_store_mailbox_create(u, "Work/2024/Q1", 0, &err));
	OK(ma_store_mailbox_create(u, "Workshop", 0, &err));
	FAILS(ma_store_mailbox_create(u, "Work", 0, &err), MA_ERR_EXISTS);
	FAILS(ma_store_mailbox_create(u, "inbox", 0, &err), MA_ERR_EXISTS);
	FAILS(ma_store_mailbox_create(u, "bad//name", 0, &err), MA_ERR_BADARGS);
	/* INBOX is case-insensitive as a hierarchy root too. */
	OK(ma_store_mailbox_create(u, "inbox/Sub", 0, &err));
	OK(ma_store_mailbox_status(u, "INBOX/Sub", &st, &err));
	OK(ma_store_mailbox_delete(u, "Inbox/Sub", &err));
	sc_append1(u, "Work/2024", "in 2024\r\n", 0, &uid);
	uint32_t uv2024 = sc_status(u, "Work/2024").uidvalidity;

	/* Subscribe. */
	OK(ma_store_mailbox_subscribe(u, "Work/2024", true, &err));
	FAILS(ma_store_mailbox_subscribe(u, "Nope", true, &err), MA_ERR_NOTFOUND);
	memset(&l, 0, sizeof(l));
	OK(ma_store_mailbox_list(u, list_cb, &l, &err));
	CHECK(l.n == 5);
	int i = list_find(&l, "INBOX");
	CHECK(i >= 0 && (l.attrs[i] & MA_MBOX_SUBSCRIBED));
	i = list_find(&l, "Work/2024");
	CHECK(i >= 0 && (l.attrs[i] & MA_MBOX_SUBSCRIBED));
	i = list_find(&l, "Work");
	CHECK(i >= 0 && (l.attrs[i] & MA_MBOX_SU_ARCHIVE) &&
	      !(l.attrs[i] & MA_MBOX_SUBSCRIBED));
	OK(ma_store_mailbox_subscribe(u, "Work/2024", false, &err));

	/* Rename with children; "Workshop" is not a child. */
	OK(ma_store_mailbox_rename(u, "Work", "Jobs", &err));
	memset(&l, 0, sizeof(l));
	OK(ma_store_mailbox_list(u, list_cb, &l, &err));
	CHECK(l.n == 5);
	CHECK(list_find(&l, "Jobs") >= 0 && list_find(&l, "Jobs/2024") >= 0 &&
	      list_find(&l, "Jobs/2024/Q1") >= 0 && list_find(&l, "Workshop") >= 0 &&
	      list_find(&l, "Work") < 0 && list_find(&l, "Work/2024") < 0);
	st = sc_status(u, "Jobs/2024");
	CHECK(st.messages == 1 && st.uidvalidity == uv2024);
	FAILS(ma_store_mailbox_rename(u, "Jobs", "Workshop", &err), MA_ERR_EXISTS);
	FAILS(ma_store_mailbox_rename(u, "Jobs", "Jobs/sub", &err), MA_ERR_BADARGS);
	FAILS(ma_store_mailbox_rename(u, "Nope", "Other", &err), MA_ERR_NOTFOUND);
	FAILS(ma_store_mailbox_rename(u, "Jobs", "INBOX", &err), MA_ERR_EXISTS);

	/* Renaming INBOX moves its messages into a new mailbox (new
	 * UIDVALIDITY) and leaves an empty INBOX. */
	sc_append1(u, "INBOX", "inbox 1\r\n", 0, NULL);
	sc_append1(u, "INBOX", "inbox 2\r\n", MA_FLAG_SEEN, NULL);
	st = sc_status(u, "INBOX");
	OK(ma_store_mailbox_rename(u, "INBOX", "Old", &err));
	st2 = sc_status(u, "Old");
	CHECK(st2.messages == st.messages && st2.size == st.size &&
	      st2.unseen == st.unseen);
	CHECK(st2.uidvalidity != st.uidvalidity);
	st2 = sc_status(u, "INBOX");
	CHECK(st2.messages == 0 && st2.uidvalidity != st.uidvalidity);
	COUNTS(u, "Old");
	COUNTS(u, "INBOX");
	/* A view of the old INBOX learns it is gone. */
	struct ma_mailbox *ib = NULL;
	struct ma_sync_result res;
	OK(ma_mailbox_open(u, "Old", false, &ib, &err));
	OK(ma_store_mailbox_rename(u, "Old", "Older", &err));
	if (ib != NULL) {
		OK(ma_mailbox_sync(ib, &res, &err));	/* plain rename: still valid */
		ma_mailbox_close(&ib);
	}
	OK(ma_mailbox_open(u, "INBOX", false, &ib, &err));
	sc_append1(u, "INBOX", "before rename\r\n", 0, NULL);
	OK(ma_store_mailbox_rename(u, "INBOX", "Old", &err));
	if (ib != NULL) {
		FAILS(ma_mailbox_sync(ib, &res, &err), MA_ERR_NOTFOUND);
		ma_mailbox_close(&ib);
	}
	CHECK(sc_status(u, "Old").messages == 1);

	/* Delete: messages go, children stay, INBOX refused. */
	OK(ma_store_mailbox_delete(u, "Jobs/2024", &err));
	FAILS(ma_store_mailbox_status(u, "Jobs/2024", &st, &err), MA_ERR_NOTFOUND);
	st = sc_status(u, "Jobs/2024/Q1");
	FAILS(ma_store_mailbox_delete(u, "INBOX", &err), MA_ERR_PERM);
	FAILS(ma_store_mailbox_delete(u, "Jobs/2024", &err), MA_ERR_NOTFOUND);
	/* A re-created mailbox gets a new UIDVALIDITY. */
	OK(ma_store_mailbox_create(u, "Jobs/2024", 0, &err));
	st = sc_status(u, "Jobs/2024");
	CHECK(st.messages == 0 && st.uidvalidity != uv2024 && st.uidnext == 1);
	ma_store_user_close(&u);
}

void store_check_copy(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = sc_user_open(store, user);
	struct ma_mailbox *mb = NULL, *arch = NULL;
	uint32_t uids[4], newuids[4], uv = 0;
	const struct ma_msg *m;
	struct ma_msg_data d;

	if (u == NULL)
		return;
	OK(ma_store_mailbox_create(u, "Archive", 0, &err));
	sc_append1(u, "Archive", "pre-existing\r\n", 0, NULL);
	OK(ma_store_mailbox_create(u, "Src", 0, &err));
	struct ma_append_msg am = sc_msg("copy me 0\r\n", MA_FLAG_SEEN);
	const char *kw[] = { "Second" };
	const char *kw0[] = { "First" };
	am.keywords = kw0;
	am.n_keywords = 1;
	OK(ma_store_append(u, "Src", &am, 1, &uids[0], NULL, &err));
	am = sc_msg("copy me 1\r\n", 0);
	am.keywords = kw;
	am.n_keywords = 1;
	OK(ma_store_append(u, "Src", &am, 1, &uids[1], NULL, &err));
	sc_append1(u, "Src", "copy me 2\r\n", 0, &uids[2]);
	sc_append1(u, "Src", "copy me 3\r\n", 0, &uids[3]);
	OK(ma_mailbox_open(u, "Src", false, &mb, &err));
	if (mb == NULL)
		goto out;
	/* Copy 0 and 1, plus an expunged UID (gets 0). */
	OK(ma_mailbox_expunge(mb, &uids[3], 1, &err));
	uint32_t c3[3] = { uids[0], uids[1], uids[3] };
	OK(ma_mailbox_copy(mb, c3, 3, "Archive", false, newuids, &uv, &err));
	CHECK(newuids[0] == 2 && newuids[1] == 3 && newuids[2] == 0);
	CHECK(uv == sc_status(u, "Archive").uidvalidity);
	CHECK(sc_status(u, "Src").messages == 3);
	CHECK(sc_status(u, "Archive").messages == 3);
	CHECK(sc_status(u, "Archive").unseen == 2);
	COUNTS(u, "Archive");
	FAILS(ma_mailbox_copy(mb, c3, 1, "Nope", false, newuids, &uv, &err),
	      MA_ERR_NOTFOUND);

	OK(ma_mailbox_open(u, "Archive", false, &arch, &err));
	if (arch != NULL) {
		const char *const *names;
		unsigned n_names;
		/* Keyword bits are remapped by name in the destination. */
		OK(ma_mailbox_keywords(arch, &names, &n_names, &err));
		CHECK(n_names == 2 && strcmp(names[0], "First") == 0 &&
		      strcmp(names[1], "Second") == 0);
		m = sc_find_msg(arch, 2);
		CHECK(m != NULL && m->flags == MA_FLAG_SEEN && m->keywords == 1);
		m = sc_find_msg(arch, 3);
		CHECK(m != NULL && m->keywords == 2);
		OK(ma_mailbox_msg_read(arch, 3, &d, &err));
		CHECK(d.size == 11 && memcmp(d.data, "copy me 1\r\n", 11) == 0);
		ma_msg_data_release(&d);
		ma_msg_data_release(&d);	/* idempotent */
		/* Expunging the copy leaves the original readable (shared blob). */
		uint32_t x = 3;
		OK(ma_mailbox_expunge(arch, &x, 1, &err));
	}
	OK(ma_mailbox_msg_read(mb, uids[1], &d, &err));
	CHECK(d.size == 11 && d.data != NULL && memcmp(d.data, "copy me 1\r\n", 11) == 0);
	ma_msg_data_release(&d);

	/* Move: gone from the source, present in the destination. */
	uint32_t mv[1] = { uids[2] };
	OK(ma_mailbox_copy(mb, mv, 1, "Archive", true, newuids, &uv, &err));
	CHECK(newuids[0] == 4);
	CHECK(sc_status(u, "Src").messages == 2);
	CHECK(sc_status(u, "Archive").messages == 3);
	struct ma_sync_result res;
	OK(ma_mailbox_sync(mb, &res, &err));
	CHECK(res.n_expunged == 2);	/* uids[3] earlier, uids[2] now */
	COUNTS(u, "Src");
	COUNTS(u, "Archive");
	if (arch != NULL) {
		OK(ma_mailbox_sync(arch, &res, &err));
		CHECK(res.n_new == 1 && res.n_expunged == 1);
		OK(ma_mailbox_msg_read(arch, 4, &d, &err));
		CHECK(d.size == 11 && memcmp(d.data, "copy me 2\r\n", 11) == 0);
		ma_msg_data_release(&d);
	}
	/* Copy into the same mailbox. */
	OK(ma_mailbox_copy(mb, &uids[0], 1, "Src", false, newuids, &uv, &err));
	CHECK(newuids[0] == 5);
	COUNTS(u, "Src");
out:
	ma_mailbox_close(&mb);
	ma_mailbox_close(&arch);
	ma_store_user_close(&u);
}

void store_check_read(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = ma_store_user_open(store, user, &err);
	struct ma_mailbox *mb = NULL;
	struct ma_msg_data d;
	unsigned char bin[256 + 4];
	size_t big_size = sc_opts.read_big_size;
	unsigned char *big = malloc(big_size);
	uint32_t uid_bin = 0, uid_big = 0, uid_empty = 0, uid_cache = 0;

	if (u == NULL || big == NULL) {
		CHECK(u != NULL);
		free(big);
		ma_store_user_close(&u);
		return;
	}
	for (int i = 0; i < 256; i++)
		bin[i] = (unsigned char)i;
	memcpy(bin + 256, "\r\n\r\n", 4);
	struct ma_append_msg am = { .data = bin, .size = sizeof(bin) };
	am.internal_date = 1700000000;
	am.internal_tz = -300;
	OK(ma_store_append(u, "INBOX", &am, 1, &uid_bin, NULL, &err));

	for (size_t i = 0; i < big_size; i++)
		big[i] = (unsigned char)(i * 2654435761u >> 13);
	memcpy(big + big_size - 2, "\r\n", 2);
	am = (struct ma_append_msg){ .data = big, .size = big_size };
	OK(ma_store_append(u, "INBOX", &am, 1, &uid_big, NULL, &err));

	am = (struct ma_append_msg){ .data = "", .size = 0 };
	OK(ma_store_append(u, "INBOX", &am, 1, &uid_empty, NULL, &err));

	am = sc_msg("with cache\r\n", 0);
	am.cache = "CACHEDATA";
	am.cache_size = 9;
	OK(ma_store_append(u, "INBOX", &am, 1, &uid_cache, NULL, &err));

	OK(ma_mailbox_open(u, "INBOX", true, &mb, &err));
	if (mb == NULL)
		goto out;
	const struct ma_msg *m = sc_find_msg(mb, uid_bin);
	CHECK(m != NULL && m->internal_date == 1700000000 && m->internal_tz == -300 &&
	      m->size == sizeof(bin));
	OK(ma_mailbox_msg_read(mb, uid_bin, &d, &err));
	CHECK(d.size == sizeof(bin) && d.data != NULL &&
	      memcmp(d.data, bin, sizeof(bin)) == 0);
	/* Holding a reader does not block a writer. */
	CHECK(sc_append1(u, "INBOX", "while reading\r\n", 0, NULL) == 0);
	CHECK(memcmp(d.data, bin, sizeof(bin)) == 0);
	ma_msg_data_release(&d);

	m = sc_find_msg(mb, uid_big);
	CHECK(m != NULL && m->size == big_size);
	OK(ma_mailbox_msg_read(mb, uid_big, &d, &err));
	CHECK(d.size == big_size && d.data != NULL &&
	      memcmp(d.data, big, big_size) == 0);
	ma_msg_data_release(&d);

	OK(ma_mailbox_msg_read(mb, uid_empty, &d, &err));
	CHECK(d.size == 0);
	ma_msg_data_release(&d);

	m = sc_find_msg(mb, uid_cache);
	CHECK(m != NULL && m->cache_size == 9);
	OK(ma_mailbox_msg_cache(mb, uid_cache, &d, &err));
	CHECK(d.size == 9 && memcmp(d.data, "CACHEDATA", 9) == 0);
	ma_msg_data_release(&d);
	/* Appended without a cache: the wrapper parsed it at save time
	 * (mime.h), so every stored message has one. */
	OK(ma_mailbox_msg_cache(mb, uid_bin, &d, &err));
	CHECK(d.size > 4 && memcmp(d.data, "MAMC", 4) == 0);
	ma_msg_data_release(&d);
	/* GUIDs differ per stored message. */
	CHECK(memcmp(sc_msg_in(mb, uid_bin)->guid, sc_msg_in(mb, uid_big)->guid,
		     MA_GUID_SIZE) != 0);
	FAILS(ma_mailbox_msg_read(mb, 999999, &d, &err), MA_ERR_EXPUNGED);
	COUNTS(u, "INBOX");
out:
	ma_mailbox_close(&mb);
	free(big);
	ma_store_user_close(&u);
}

/* Two processes append to one user at once. */
void store_check_multiprocess(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	enum { PER_CHILD = 40, CHILDREN = 3 };
	pid_t pids[CHILDREN];
	struct ma_user *u = sc_user_open(store, user);
	uint32_t before;

	if (u == NULL)
		return;
	before = sc_status(u, "INBOX").messages;
	/* The parent keeps its env open across fork(): the children must open
	 * their own (the backend's env table is per pid). */
	for (int c = 0; c < CHILDREN; c++) {
		pids[c] = fork();
		if (pids[c] == 0) {
			struct ma_user *cu = ma_store_user_open(store, user, &err);
			int bad = cu == NULL;
			for (int i = 0; i < PER_CHILD && !bad; i++) {
				char text[64];
				snprintf(text, sizeof(text), "child %d msg %d\r\n", c, i);
				bad = sc_append1(cu, "INBOX", text, 0, NULL) < 0;
			}
			ma_store_user_close(&cu);
			_exit(bad ? 1 : 0);
		}
		CHECK(pids[c] > 0);
	}
	/* The parent writes at the same time. */
	for (int i = 0; i < 10; i++)
		CHECK(sc_append1(u, "INBOX", "parent\r\n", 0, NULL) == 0);
	for (int c = 0; c < CHILDREN; c++) {
		int wst = 0;
		if (pids[c] > 0) {
			waitpid(pids[c], &wst, 0);
			if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0)
				sc_note("child %d: status 0x%x", c, wst);
			CHECK(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
		}
	}
	const struct ma_msg *msgs;
	uint32_t n = 0;
	struct ma_mailbox *mb = sc_open_list(u, "INBOX", &msgs, &n, NULL);
	if (mb != NULL) {
		CHECK(n == before + CHILDREN * PER_CHILD + 10);
		for (uint32_t i = 1; i < n; i++)
			CHECK(msgs[i].uid > msgs[i - 1].uid);
		ma_mailbox_close(&mb);
	}
	COUNTS(u, "INBOX");
	ma_store_user_close(&u);
}

/* Acknowledged = durable: a writer killed with SIGKILL loses nothing it
 * acknowledged, leaves no damage, and does not block the next writer
 * (LMDB's robust lock). */
void store_check_kill9(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	int pfd[2];
	pid_t pid;
	uint32_t acked[2][4096];
	unsigned n_acked = 0;

	if (pipe(pfd) < 0) {
		CHECK(!"pipe");
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		struct ma_user *cu = ma_store_user_open(store, user, &err);
		if (cu == NULL)
			_exit(1);
		for (uint32_t i = 0;; i++) {
			char text[64];
			uint32_t uid, rec[2];
			snprintf(text, sizeof(text), "crash msg %u\r\n", i);
			if (sc_append1(cu, "INBOX", text, 0, &uid) < 0)
				_exit(1);
			rec[0] = uid;
			rec[1] = i;
			if (write(pfd[1], rec, sizeof(rec)) != (ssize_t)sizeof(rec))
				_exit(1);
		}
	}
	close(pfd[1]);
	CHECK(pid > 0);
	if (pid <= 0)
		return;
	uint32_t rec[2];
	while (n_acked < 30 && read(pfd[0], rec, sizeof(rec)) == (ssize_t)sizeof(rec)) {
		acked[0][n_acked] = rec[0];
		acked[1][n_acked] = rec[1];
		n_acked++;
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	/* Whatever was acknowledged before the kill is still in the pipe. */
	while (n_acked < 4096 && read(pfd[0], rec, sizeof(rec)) == (ssize_t)sizeof(rec)) {
		acked[0][n_acked] = rec[0];
		acked[1][n_acked] = rec[1];
		n_acked++;
	}
	close(pfd[0]);
	CHECK(n_acked >= 30);

	struct ma_user *u = sc_user_open(store, user);
	struct ma_mailbox *mb = NULL;
	if (u == NULL)
		return;
	CHECK(sc_append1(u, "INBOX", "after the crash\r\n", 0, NULL) == 0);
	OK(ma_mailbox_open(u, "INBOX", true, &mb, &err));
	for (unsigned i = 0; mb != NULL && i < n_acked; i++) {
		struct ma_msg_data d;
		char text[64];
		snprintf(text, sizeof(text), "crash msg %u\r\n", acked[1][i]);
		if (ma_mailbox_msg_read(mb, acked[0][i], &d, &err) < 0) {
			sc_fail("acknowledged uid %u lost: %s", acked[0][i],
				err.text);
			continue;
		}
		CHECK(d.size == strlen(text) && memcmp(d.data, text, d.size) == 0);
		ma_msg_data_release(&d);
	}
	ma_mailbox_close(&mb);
	COUNTS(u, "INBOX");
	ma_store_user_close(&u);
}

/* Threads of one process (the worker's pool) share the env. */
struct thread_arg {
	struct ma_store *store;
	const char *user;
	int id;
	int failed;
};

static void *append_thread(void *varg)
{
	struct thread_arg *a = varg;
	struct ma_error_info err;
	struct ma_user *u = ma_store_user_open(a->store, a->user, &err);

	if (u == NULL) {
		a->failed = 1;
		return NULL;
	}
	for (int i = 0; i < 25; i++) {
		char text[64];
		snprintf(text, sizeof(text), "thread %d msg %d\r\n", a->id, i);
		if (sc_append1(u, "INBOX", text, 0, NULL) < 0)
			a->failed = 1;
		/* and a reader in between */
		struct ma_mailbox_status st;
		if (ma_store_mailbox_status(u, "INBOX", &st, &err) < 0)
			a->failed = 1;
	}
	ma_store_user_close(&u);
	return NULL;
}

void store_check_threads(struct ma_store *store, const char *user)
{
	enum { THREADS = 4 };
	pthread_t t[THREADS];
	struct thread_arg args[THREADS];
	struct ma_error_info err;
	struct ma_user *u = ma_store_user_open(store, user, &err);

	CHECK(u != NULL);
	for (int i = 0; i < THREADS; i++) {
		args[i] = (struct thread_arg){ .store = store, .user = user, .id = i };
		CHECK(pthread_create(&t[i], NULL, append_thread, &args[i]) == 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		CHECK(args[i].failed == 0);
	}
	if (u != NULL) {
		CHECK(sc_status(u, "INBOX").messages == THREADS * 25);
		CHECK(sc_status(u, "INBOX").uidnext == THREADS * 25 + 1);
		COUNTS(u, "INBOX");
		ma_store_user_close(&u);
	}
}

void sc_verify_report(const char *line, void *ctx)
{
	int *n = ctx;

	(*n)++;
	sc_note("  verify: %s", line);
}

void store_check_verify_clean(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = sc_user_open(store, user);
	int lines = 0;

	if (u == NULL)
		return;
	int rc = ma_store_verify(u, false, sc_verify_report, &lines, &err);
	CHECK(rc == 0 && lines == 0);
	ma_store_user_close(&u);
}

/* ---------------- change bus ---------------- */

static int bus_calls;
static char bus_last[64];

static void bus_cb(const char *user, const char *mailbox, void *ctx)
{
	(void)user;
	(void)ctx;
	bus_calls++;
	snprintf(bus_last, sizeof(bus_last), "%s", mailbox);
}

static void bus_cb_unsub(const char *user, const char *mailbox, void *ctx)
{
	struct ma_changebus_sub **self = ctx;

	(void)user;
	(void)mailbox;
	bus_calls += 100;
	ma_changebus_unsubscribe(self);
}

void store_check_changebus(struct ma_core *core, struct ma_store *store,
			    const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = sc_user_open(store, user);
	struct ma_changebus_sub *s1, *s2;

	if (u == NULL)
		return;
	s1 = ma_changebus_subscribe(core, user, "inbox", bus_cb, NULL);
	s2 = ma_changebus_subscribe(core, "someone-else", NULL, bus_cb, NULL);
	CHECK(s1 != NULL && s2 != NULL);
	sc_append1(u, "INBOX", "bus\r\n", 0, NULL);
	sc_append1(u, "INBOX", "bus\r\n", 0, NULL);
	CHECK(bus_calls == 0);	/* delivered on the loop, not inside the write */
	ev_run(ma_core_loop(core), EVRUN_NOWAIT);
	CHECK(bus_calls == 1 && strcmp(bus_last, "INBOX") == 0);	/* deduplicated */
	OK(ma_store_mailbox_create(u, "Other", 0, &err));
	ev_run(ma_core_loop(core), EVRUN_NOWAIT);
	CHECK(bus_calls == 1);	/* not subscribed to Other */
	ma_changebus_unsubscribe(&s1);
	CHECK(s1 == NULL);
	sc_append1(u, "INBOX", "bus\r\n", 0, NULL);
	ev_run(ma_core_loop(core), EVRUN_NOWAIT);
	CHECK(bus_calls == 1);
	ma_changebus_unsubscribe(&s2);

	/* Unsubscribing from inside the callback; NULL mailbox = any. */
	static struct ma_changebus_sub *s3;
	s3 = ma_changebus_subscribe(core, user, NULL, bus_cb_unsub, &s3);
	sc_append1(u, "Other", "bus\r\n", 0, NULL);
	ev_run(ma_core_loop(core), EVRUN_NOWAIT);
	CHECK(bus_calls == 101 && s3 == NULL);
	sc_append1(u, "Other", "bus\r\n", 0, NULL);
	ev_run(ma_core_loop(core), EVRUN_NOWAIT);
	CHECK(bus_calls == 101);
	ma_store_user_close(&u);
}

/* ---------------- all of them ---------------- */

void store_checks_run_all(struct ma_core *core, struct ma_store *store)
{
	static const struct {
		void (*fn)(struct ma_store *store, const char *user);
		const char *user;
	} checks[] = {
		{ store_check_basic, "basic" },
		{ store_check_flags, "flags" },
		{ store_check_sync, "sync" },
		{ store_check_tree, "tree" },
		{ store_check_copy, "copy" },
		{ store_check_read, "read" },
		{ store_check_multiprocess, "multi" },
		{ store_check_kill9, "crash" },
		{ store_check_threads, "threads" },
	};
	size_t n = sizeof(checks) / sizeof(checks[0]);

	store_check_names(store);
	for (size_t i = 0; i < n; i++)
		checks[i].fn(store, checks[i].user);
	for (size_t i = 0; i < n; i++)
		store_check_verify_clean(store, checks[i].user);
	store_check_changebus(core, store, "bus");
}
