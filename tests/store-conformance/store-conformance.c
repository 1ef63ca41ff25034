/*
 * store-conformance.c - the store conformance kit: one program that loads a
 * store plugin by path, wraps it in the core's store API exactly as the
 * daemon does (ma_core_create on a generated config), and checks every
 * guarantee of core/include/mailaccess/store.h and DESIGN.md "Guarantees
 * every backend keeps": mail-level semantics, UIDs never reused (also across
 * a fresh process), acknowledged writes durable under kill -9, atomic
 * append/copy/move/expunge, several processes on one mailbox, changes-since
 * in time proportional to the changes, a 50 MB message, a big mailbox, and
 * verify() clean at the end.
 *
 *   mailaccess-store-conformance [--big] [--scan-ok] [--keep] [--only WORD]
 *                                PLUGIN.so [key=value ...]
 *
 * PLUGIN.so must be named store-NAME.so (the loader's rule); the kit writes
 * `store { backend = NAME  key = value ... }` (plus `path = TMP/mail` unless
 * a path is given) into a temp dir. One "ok: ..." / "FAIL: ..." line per
 * check, then "N passed, M failed"; exit 1 on any failure. It links only
 * libmailaccess and uses only the installed headers, so a plugin author can
 * build and run it out of tree (docs/writing-a-backend.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mailaccess/mailaccess.h>

static int failures;

#define CHECK(cond) do { if (!(cond)) { \
	printf("    line %d: %s: check failed: %s\n", __LINE__, \
		__func__, #cond); failures++; } } while (0)
/* For calls expected to succeed: print the store error. */
#define OK(call) do { struct ma_error_info *e_ = &err; e_->code = MA_OK; \
	e_->text[0] = '\0'; if ((call) < 0) { \
	printf("    line %d: %s: %s failed: %s %s\n", __LINE__, \
		__func__, #call, ma_error_name(e_->code), e_->text); \
	failures++; } } while (0)
#define FAILS(call, code_) do { err.code = MA_OK; \
	if ((call) >= 0) { printf("    line %d: %s: %s succeeded\n", \
		__LINE__, __func__, #call); failures++; } \
	else if (err.code != (code_)) { printf( \
		"    line %d: %s: %s: got %s want %s (%s)\n", __LINE__, \
		__func__, #call, ma_error_name(err.code), ma_error_name(code_), \
		err.text); failures++; } } while (0)

static struct ma_append_msg test_msg(const char *text, uint32_t flags)
{
	struct ma_append_msg m;

	memset(&m, 0, sizeof(m));
	m.data = text;
	m.size = strlen(text);
	m.flags = flags;
	return m;
}

static int append1(struct ma_user *u, const char *box, const char *text,
		   uint32_t flags, uint32_t *uid_r)
{
	struct ma_append_msg m = test_msg(text, flags);
	struct ma_error_info err;
	uint32_t uid = 0, uv = 0;
	int rc = ma_store_append(u, box, &m, 1, &uid, &uv, &err);

	if (rc < 0)
		printf("    append to %s: %s %s\n", box, ma_error_name(err.code),
			err.text);
	if (uid_r != NULL)
		*uid_r = uid;
	return rc;
}

static struct ma_mailbox_status status(struct ma_user *u, const char *box)
{
	struct ma_mailbox_status st;
	struct ma_error_info err;

	memset(&st, 0, sizeof(st));
	if (ma_store_mailbox_status(u, box, &st, &err) < 0) {
		printf("    status %s: %s\n", box, err.text);
		failures++;
	}
	return st;
}

/* Recomputes counts from an opened view and compares with STATUS. */
static void check_counts(struct ma_user *u, const char *box, int line)
{
	struct ma_error_info err;
	struct ma_mailbox *mb = NULL;
	const struct ma_msg *msgs;
	uint32_t n = 0, unseen = 0;
	uint64_t size = 0;
	struct ma_mailbox_status st = status(u, box), vst;

	if (ma_mailbox_open(u, box, true, &mb, &err) < 0) {
		printf("    line %d: open %s: %s\n", line, box, err.text);
		failures++;
		return;
	}
	OK(ma_mailbox_messages(mb, &msgs, &n, &vst, &err));
	for (uint32_t i = 0; i < n; i++) {
		size += msgs[i].size;
		if (!(msgs[i].flags & MA_FLAG_SEEN))
			unseen++;
		if (i > 0 && msgs[i].uid <= msgs[i - 1].uid) {
			printf("    line %d: uids not ascending\n", line);
			failures++;
		}
		if (msgs[i].uid >= st.uidnext) {
			printf("    line %d: uid %u >= uidnext %u\n", line,
				msgs[i].uid, st.uidnext);
			failures++;
		}
	}
	if (n != st.messages || unseen != st.unseen || size != st.size ||
	    vst.messages != n) {
		printf("    line %d: %s counts: status %u/%u/%llu, view %u/%u/%llu\n",
			line, box, st.messages, st.unseen, (unsigned long long)st.size,
			n, unseen, (unsigned long long)size);
		failures++;
	}
	ma_mailbox_close(&mb);
}
#define COUNTS(u, box) check_counts(u, box, __LINE__)

/* ---------------- conformance checks ---------------- */

static void store_check_names(struct ma_store *store)
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
			printf("    bad mailbox name %u accepted\n", i);
			failures++;
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

static void store_check_basic(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = ma_store_user_open(store, user, &err);
	struct list_ctx l = { .n = 0 };
	struct ma_append_msg many[10];
	uint32_t uids[10], uv = 0, uid, last;
	struct ma_mailbox_status st;
	char text[10][64];

	CHECK(u != NULL);
	if (u == NULL)
		return;
	CHECK(strcmp(ma_user_name(u), user) == 0);
	OK(ma_store_mailbox_list(u, list_cb, &l, &err));
	CHECK(l.n == 1 && list_find(&l, "INBOX") == 0);

	st = status(u, "inbox");	/* case-insensitive INBOX */
	CHECK(st.messages == 0 && st.uidnext == 1 && st.uidvalidity != 0);
	CHECK(st.highestmodseq >= 1);
	uint64_t ms0 = st.highestmodseq;

	CHECK(append1(u, "INBOX", "Subject: one\r\n\r\nbody\r\n", 0, &uid) == 0);
	CHECK(uid == 1);
	st = status(u, "INBOX");
	CHECK(st.messages == 1 && st.unseen == 1 && st.uidnext == 2);
	CHECK(st.size == strlen("Subject: one\r\n\r\nbody\r\n"));
	CHECK(st.highestmodseq > ms0);
	COUNTS(u, "INBOX");

	for (int i = 0; i < 10; i++) {
		snprintf(text[i], sizeof(text[i]), "Subject: %d\r\n\r\nx\r\n", i);
		many[i] = test_msg(text[i], i % 2 ? MA_FLAG_SEEN : 0);
	}
	OK(ma_store_append(u, "INBOX", many, 10, uids, &uv, &err));
	CHECK(uv == st.uidvalidity);
	for (int i = 0; i < 10; i++)
		CHECK(uids[i] == (uint32_t)(2 + i));
	st = status(u, "INBOX");
	CHECK(st.messages == 11 && st.unseen == 6 && st.uidnext == 12);
	COUNTS(u, "INBOX");

	/* Expunge the highest UID: it is never handed out again. */
	struct ma_mailbox *mb;
	OK(ma_mailbox_open(u, "INBOX", false, &mb, &err));
	last = 11;
	OK(ma_mailbox_expunge(mb, &last, 1, &err));
	OK(ma_mailbox_expunge(mb, &last, 1, &err));	/* already gone: ok */
	ma_mailbox_close(&mb);
	st = status(u, "INBOX");
	CHECK(st.messages == 10 && st.uidnext == 12);
	COUNTS(u, "INBOX");
	CHECK(append1(u, "INBOX", "Subject: after\r\n\r\n", 0, &uid) == 0);
	CHECK(uid == 12);
	uint32_t uv_before = st.uidvalidity;
	ma_mailbox_open(u, "INBOX", false, &mb, &err);
	last = 12;
	OK(ma_mailbox_expunge(mb, &last, 1, &err));
	ma_mailbox_close(&mb);

	/* ... also across close/reopen. */
	ma_store_user_close(&u);
	CHECK(u == NULL);
	u = ma_store_user_open(store, user, &err);
	CHECK(u != NULL);
	if (u == NULL)
		return;
	st = status(u, "INBOX");
	CHECK(st.uidnext == 13 && st.uidvalidity == uv_before);
	CHECK(append1(u, "INBOX", "Subject: reopen\r\n\r\n", 0, &uid) == 0);
	CHECK(uid == 13);
	COUNTS(u, "INBOX");

	/* Not found. */
	FAILS(ma_store_mailbox_status(u, "Nope", &st, &err), MA_ERR_NOTFOUND);
	struct ma_append_msg m1 = test_msg("x\r\n", 0);
	FAILS(ma_store_append(u, "Nope", &m1, 1, NULL, NULL, &err), MA_ERR_NOTFOUND);
	FAILS(ma_store_append(u, "a//b", &m1, 1, NULL, NULL, &err), MA_ERR_BADARGS);
	FAILS(ma_mailbox_open(u, "Nope", false, &mb, &err), MA_ERR_NOTFOUND);
	CHECK(mb == NULL);

	uint64_t qbytes = 0, qmsgs = 0;
	OK(ma_store_quota_usage(u, &qbytes, &qmsgs, &err));
	st = status(u, "INBOX");
	CHECK(qmsgs == st.messages && qbytes == st.size);
	ma_store_user_close(&u);
}

static const struct ma_msg *find_msg(struct ma_mailbox *mb, uint32_t uid)
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

static void store_check_flags(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = ma_store_user_open(store, user, &err);
	struct ma_mailbox *mb = NULL;
	uint32_t a, b, c, failed[4];
	unsigned n_failed = 99;
	struct ma_sync_result res;
	const struct ma_msg *m;

	if (u == NULL) {
		CHECK(u != NULL);
		return;
	}
	append1(u, "INBOX", "A\r\n", 0, &a);
	append1(u, "INBOX", "B\r\n", 0, &b);
	append1(u, "INBOX", "C\r\n", MA_FLAG_FLAGGED, &c);
	OK(ma_mailbox_open(u, "INBOX", false, &mb, &err));
	if (mb == NULL)
		goto out;
	m = find_msg(mb, c);
	CHECK(m != NULL && m->flags == MA_FLAG_FLAGGED);
	uint64_t ms_c = m != NULL ? m->modseq : 0;

	uint32_t ab[2] = { a, b };
	OK(ma_mailbox_store_flags(mb, ab, 2, MA_FLAGS_ADD, MA_FLAG_SEEN, NULL, 0,
				  0, failed, &n_failed, &err));
	CHECK(n_failed == 0);
	CHECK(status(u, "INBOX").unseen == 1);
	OK(ma_mailbox_sync(mb, &res, &err));
	CHECK(res.n_changed == 2 && res.n_expunged == 0 && res.n_new == 0);
	CHECK(res.n_changed == 2 && res.changed[0] == a && res.changed[1] == b);
	m = find_msg(mb, a);
	CHECK(m != NULL && m->flags == MA_FLAG_SEEN && m->modseq > ms_c);
	uint64_t ms_a = m != NULL ? m->modseq : 0;
	CHECK(find_msg(mb, b)->modseq == ms_a);	/* one modseq per write */
	COUNTS(u, "INBOX");

	/* Remove and replace. */
	OK(ma_mailbox_store_flags(mb, &a, 1, MA_FLAGS_REMOVE, MA_FLAG_SEEN, NULL,
				  0, 0, NULL, NULL, &err));
	OK(ma_mailbox_store_flags(mb, &c, 1, MA_FLAGS_REPLACE,
				  MA_FLAG_ANSWERED | MA_FLAG_DRAFT, NULL, 0, 0,
				  NULL, NULL, &err));
	OK(ma_mailbox_sync(mb, &res, &err));
	CHECK(res.n_changed == 2);
	CHECK(find_msg(mb, a)->flags == 0);
	CHECK(find_msg(mb, c)->flags == (MA_FLAG_ANSWERED | MA_FLAG_DRAFT));
	CHECK(find_msg(mb, c)->modseq > ms_a);
	CHECK(status(u, "INBOX").unseen == 2);
	COUNTS(u, "INBOX");

	/* A no-op store does not bump the modseq. */
	uint64_t hms = status(u, "INBOX").highestmodseq;
	OK(ma_mailbox_store_flags(mb, &a, 1, MA_FLAGS_REMOVE, MA_FLAG_SEEN, NULL,
				  0, 0, NULL, NULL, &err));
	CHECK(status(u, "INBOX").highestmodseq == hms);

	/* UNCHANGEDSINCE (RFC 7162): b was changed at ms_a, c later. */
	uint32_t bc[2] = { b, c };
	OK(ma_mailbox_store_flags(mb, bc, 2, MA_FLAGS_ADD, MA_FLAG_DELETED, NULL, 0,
				  ms_a, failed, &n_failed, &err));
	CHECK(n_failed == 1 && failed[0] == c);
	OK(ma_mailbox_sync(mb, &res, &err));
	CHECK(res.n_changed == 1 && res.changed[0] == b);
	CHECK(find_msg(mb, b)->flags & MA_FLAG_DELETED);
	CHECK(!(find_msg(mb, c)->flags & MA_FLAG_DELETED));

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
	CHECK(find_msg(mb, a)->keywords == 3);
	OK(ma_mailbox_store_flags(mb, &a, 1, MA_FLAGS_REMOVE, 0, kw2, 1, 0, NULL,
				  NULL, &err));
	OK(ma_mailbox_sync(mb, &res, &err));
	CHECK(!res.keywords_changed && find_msg(mb, a)->keywords == 1);
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
	struct ma_append_msg am = test_msg("K\r\n", 0);
	const char *akw[] = { "WORK", "New" };
	am.keywords = akw;
	am.n_keywords = 2;
	uint32_t kuid;
	OK(ma_store_append(u, "INBOX", &am, 1, &kuid, NULL, &err));
	OK(ma_mailbox_sync(mb, &res, &err));
	CHECK(res.n_new == 1 && res.keywords_changed);
	m = find_msg(mb, kuid);
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

static void store_check_sync(struct ma_store *store, const char *user)
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
		append1(u, "Sync", "Subject: s\r\n\r\nbody\r\n", 0, &uids[i]);
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
	append1(u2, "Sync", "new 1\r\n", 0, &nu);
	uint32_t nu2;
	append1(u2, "Sync", "new 2\r\n", 0, &nu2);
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
	CHECK(st.highestmodseq == status(u, "Sync").highestmodseq);
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

static void store_check_tree(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = ma_store_user_open(store, user, &err);
	struct list_ctx l;
	struct ma_mailbox_status st, st2;
	uint32_t uid;

	if (u == NULL) {
		CHECK(u != NULL);
		return;
	}
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
	append1(u, "Work/2024", "in 2024\r\n", 0, &uid);
	uint32_t uv2024 = status(u, "Work/2024").uidvalidity;

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
	st = status(u, "Jobs/2024");
	CHECK(st.messages == 1 && st.uidvalidity == uv2024);
	FAILS(ma_store_mailbox_rename(u, "Jobs", "Workshop", &err), MA_ERR_EXISTS);
	FAILS(ma_store_mailbox_rename(u, "Jobs", "Jobs/sub", &err), MA_ERR_BADARGS);
	FAILS(ma_store_mailbox_rename(u, "Nope", "Other", &err), MA_ERR_NOTFOUND);
	FAILS(ma_store_mailbox_rename(u, "Jobs", "INBOX", &err), MA_ERR_EXISTS);

	/* Renaming INBOX moves its messages into a new mailbox (new
	 * UIDVALIDITY) and leaves an empty INBOX. */
	append1(u, "INBOX", "inbox 1\r\n", 0, NULL);
	append1(u, "INBOX", "inbox 2\r\n", MA_FLAG_SEEN, NULL);
	st = status(u, "INBOX");
	OK(ma_store_mailbox_rename(u, "INBOX", "Old", &err));
	st2 = status(u, "Old");
	CHECK(st2.messages == st.messages && st2.size == st.size &&
	      st2.unseen == st.unseen);
	CHECK(st2.uidvalidity != st.uidvalidity);
	st2 = status(u, "INBOX");
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
	append1(u, "INBOX", "before rename\r\n", 0, NULL);
	OK(ma_store_mailbox_rename(u, "INBOX", "Old", &err));
	if (ib != NULL) {
		FAILS(ma_mailbox_sync(ib, &res, &err), MA_ERR_NOTFOUND);
		ma_mailbox_close(&ib);
	}
	CHECK(status(u, "Old").messages == 1);

	/* Delete: messages go, children stay, INBOX refused. */
	OK(ma_store_mailbox_delete(u, "Jobs/2024", &err));
	FAILS(ma_store_mailbox_status(u, "Jobs/2024", &st, &err), MA_ERR_NOTFOUND);
	st = status(u, "Jobs/2024/Q1");
	FAILS(ma_store_mailbox_delete(u, "INBOX", &err), MA_ERR_PERM);
	FAILS(ma_store_mailbox_delete(u, "Jobs/2024", &err), MA_ERR_NOTFOUND);
	/* A re-created mailbox gets a new UIDVALIDITY. */
	OK(ma_store_mailbox_create(u, "Jobs/2024", 0, &err));
	st = status(u, "Jobs/2024");
	CHECK(st.messages == 0 && st.uidvalidity != uv2024 && st.uidnext == 1);
	ma_store_user_close(&u);
}

static void store_check_copy(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = ma_store_user_open(store, user, &err);
	struct ma_mailbox *mb = NULL, *arch = NULL;
	uint32_t uids[4], newuids[4], uv = 0;
	const struct ma_msg *m;
	struct ma_msg_data d;

	if (u == NULL) {
		CHECK(u != NULL);
		return;
	}
	OK(ma_store_mailbox_create(u, "Archive", 0, &err));
	append1(u, "Archive", "pre-existing\r\n", 0, NULL);
	OK(ma_store_mailbox_create(u, "Src", 0, &err));
	struct ma_append_msg am = test_msg("copy me 0\r\n", MA_FLAG_SEEN);
	const char *kw[] = { "Second" };
	const char *kw0[] = { "First" };
	am.keywords = kw0;
	am.n_keywords = 1;
	OK(ma_store_append(u, "Src", &am, 1, &uids[0], NULL, &err));
	am = test_msg("copy me 1\r\n", 0);
	am.keywords = kw;
	am.n_keywords = 1;
	OK(ma_store_append(u, "Src", &am, 1, &uids[1], NULL, &err));
	append1(u, "Src", "copy me 2\r\n", 0, &uids[2]);
	append1(u, "Src", "copy me 3\r\n", 0, &uids[3]);
	OK(ma_mailbox_open(u, "Src", false, &mb, &err));
	if (mb == NULL)
		goto out;
	/* Copy 0 and 1, plus an expunged UID (gets 0). */
	OK(ma_mailbox_expunge(mb, &uids[3], 1, &err));
	uint32_t c3[3] = { uids[0], uids[1], uids[3] };
	OK(ma_mailbox_copy(mb, c3, 3, "Archive", false, newuids, &uv, &err));
	CHECK(newuids[0] == 2 && newuids[1] == 3 && newuids[2] == 0);
	CHECK(uv == status(u, "Archive").uidvalidity);
	CHECK(status(u, "Src").messages == 3);
	CHECK(status(u, "Archive").messages == 3);
	CHECK(status(u, "Archive").unseen == 2);
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
		m = find_msg(arch, 2);
		CHECK(m != NULL && m->flags == MA_FLAG_SEEN && m->keywords == 1);
		m = find_msg(arch, 3);
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
	CHECK(status(u, "Src").messages == 2);
	CHECK(status(u, "Archive").messages == 3);
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

static void store_check_read(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = ma_store_user_open(store, user, &err);
	struct ma_mailbox *mb = NULL;
	struct ma_msg_data d;
	unsigned char bin[256 + 4];
	size_t big_size = 50u << 20;	/* the 50 MB round trip */
	unsigned char *big = malloc(big_size);
	uint32_t uid_bin, uid_big, uid_empty, uid_cache;

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

	am = test_msg("with cache\r\n", 0);
	am.cache = "CACHEDATA";
	am.cache_size = 9;
	OK(ma_store_append(u, "INBOX", &am, 1, &uid_cache, NULL, &err));

	OK(ma_mailbox_open(u, "INBOX", true, &mb, &err));
	if (mb == NULL)
		goto out;
	const struct ma_msg *m = find_msg(mb, uid_bin);
	CHECK(m != NULL && m->internal_date == 1700000000 && m->internal_tz == -300 &&
	      m->size == sizeof(bin));
	OK(ma_mailbox_msg_read(mb, uid_bin, &d, &err));
	CHECK(d.size == sizeof(bin) && d.data != NULL &&
	      memcmp(d.data, bin, sizeof(bin)) == 0);
	/* Holding a reader does not block a writer. */
	CHECK(append1(u, "INBOX", "while reading\r\n", 0, NULL) == 0);
	CHECK(memcmp(d.data, bin, sizeof(bin)) == 0);
	ma_msg_data_release(&d);

	m = find_msg(mb, uid_big);
	CHECK(m != NULL && m->size == big_size);
	OK(ma_mailbox_msg_read(mb, uid_big, &d, &err));
	CHECK(d.size == big_size && d.data != NULL &&
	      memcmp(d.data, big, big_size) == 0);
	ma_msg_data_release(&d);

	OK(ma_mailbox_msg_read(mb, uid_empty, &d, &err));
	CHECK(d.size == 0);
	ma_msg_data_release(&d);

	m = find_msg(mb, uid_cache);
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
	CHECK(memcmp(find_msg(mb, uid_bin)->guid, find_msg(mb, uid_big)->guid,
		     MA_GUID_SIZE) != 0);
	FAILS(ma_mailbox_msg_read(mb, 999999, &d, &err), MA_ERR_EXPUNGED);
	COUNTS(u, "INBOX");
out:
	ma_mailbox_close(&mb);
	free(big);
	ma_store_user_close(&u);
}

/* Two processes append to one user at once. */
static void store_check_multiprocess(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	enum { PER_CHILD = 40, CHILDREN = 3 };
	pid_t pids[CHILDREN];
	struct ma_user *u = ma_store_user_open(store, user, &err);
	uint32_t before;

	if (u == NULL) {
		CHECK(u != NULL);
		return;
	}
	before = status(u, "INBOX").messages;
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
				bad = append1(cu, "INBOX", text, 0, NULL) < 0;
			}
			ma_store_user_close(&cu);
			_exit(bad ? 1 : 0);
		}
		CHECK(pids[c] > 0);
	}
	/* The parent writes at the same time. */
	for (int i = 0; i < 10; i++)
		CHECK(append1(u, "INBOX", "parent\r\n", 0, NULL) == 0);
	for (int c = 0; c < CHILDREN; c++) {
		int wst = 0;
		if (pids[c] > 0) {
			waitpid(pids[c], &wst, 0);
			if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0)
				printf("    child %d: status 0x%x\n", c, wst);
			CHECK(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
		}
	}
	struct ma_mailbox *mb = NULL;
	const struct ma_msg *msgs;
	uint32_t n = 0;
	OK(ma_mailbox_open(u, "INBOX", true, &mb, &err));
	if (mb != NULL) {
		OK(ma_mailbox_messages(mb, &msgs, &n, NULL, &err));
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
static void store_check_kill9(struct ma_store *store, const char *user)
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
			if (append1(cu, "INBOX", text, 0, &uid) < 0)
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

	struct ma_user *u = ma_store_user_open(store, user, &err);
	struct ma_mailbox *mb = NULL;
	CHECK(u != NULL);
	if (u == NULL)
		return;
	CHECK(append1(u, "INBOX", "after the crash\r\n", 0, NULL) == 0);
	OK(ma_mailbox_open(u, "INBOX", true, &mb, &err));
	for (unsigned i = 0; mb != NULL && i < n_acked; i++) {
		struct ma_msg_data d;
		char text[64];
		snprintf(text, sizeof(text), "crash msg %u\r\n", acked[1][i]);
		if (ma_mailbox_msg_read(mb, acked[0][i], &d, &err) < 0) {
			printf("    acknowledged uid %u lost: %s\n", acked[0][i], err.text);
			failures++;
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
		if (append1(u, "INBOX", text, 0, NULL) < 0)
			a->failed = 1;
		/* and a reader in between */
		struct ma_mailbox_status st;
		if (ma_store_mailbox_status(u, "INBOX", &st, &err) < 0)
			a->failed = 1;
	}
	ma_store_user_close(&u);
	return NULL;
}

static void store_check_threads(struct ma_store *store, const char *user)
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
		CHECK(status(u, "INBOX").messages == THREADS * 25);
		CHECK(status(u, "INBOX").uidnext == THREADS * 25 + 1);
		COUNTS(u, "INBOX");
		ma_store_user_close(&u);
	}
}

static void verify_report(const char *line, void *ctx)
{
	int *n = ctx;

	(*n)++;
	printf("      verify: %s\n", line);
}

static void store_check_verify_clean(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = ma_store_user_open(store, user, &err);
	int lines = 0;

	if (u == NULL) {
		CHECK(u != NULL);
		return;
	}
	int rc = ma_store_verify(u, false, verify_report, &lines, &err);
	CHECK(rc == 0 && lines == 0);
	ma_store_user_close(&u);
}

/* ---------------- LMDB-specific: damage and repair ---------------- */

/* ---------------- the kit's own checks ---------------- */

static const char *kit_self;	/* argv[0] resolved, for the fresh-process check */
static const char *kit_conf;	/* the generated config file */
static bool kit_big, kit_scan_ok;

static double kit_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads every message of a mailbox and hands its bytes to fn. */
static int kit_each_msg(struct ma_user *u, const char *box,
			void (*fn)(const struct ma_msg *m, const unsigned char *data,
				   size_t size, void *ctx), void *ctx)
{
	struct ma_error_info err;
	struct ma_mailbox *mb = NULL;
	const struct ma_msg *msgs;
	uint32_t n = 0;

	if (ma_mailbox_open(u, box, true, &mb, &err) < 0) {
		printf("    open %s: %s %s\n", box, ma_error_name(err.code), err.text);
		failures++;
		return -1;
	}
	OK(ma_mailbox_messages(mb, &msgs, &n, NULL, &err));
	for (uint32_t i = 0; i < n; i++) {
		struct ma_msg_data d;

		if (ma_mailbox_msg_read(mb, msgs[i].uid, &d, &err) < 0) {
			printf("    %s uid %u listed but unreadable: %s %s\n", box,
			       msgs[i].uid, ma_error_name(err.code), err.text);
			failures++;
			continue;
		}
		if (d.size != msgs[i].size) {
			printf("    %s uid %u: size %zu, listed %llu\n", box,
			       msgs[i].uid, d.size, (unsigned long long)msgs[i].size);
			failures++;
		}
		fn(&msgs[i], d.data, d.size, ctx);
		ma_msg_data_release(&d);
	}
	ma_mailbox_close(&mb);
	return 0;
}

/* Runs this program again as a fresh process that appends one message and
 * prints its UID: the UID rule must hold across processes too. */
static uint32_t kit_fresh_append(const char *user, const char *box)
{
	int pfd[2];
	char buf[64];
	ssize_t n;
	pid_t pid;
	int wst = 0;

	if (pipe(pfd) < 0)
		return 0;
	pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execl(kit_self, kit_self, "--append-one", kit_conf, user, box,
		      (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	n = pid > 0 ? read(pfd[0], buf, sizeof(buf) - 1) : -1;
	close(pfd[0]);
	if (pid > 0)
		waitpid(pid, &wst, 0);
	if (n <= 0 || !WIFEXITED(wst) || WEXITSTATUS(wst) != 0)
		return 0;
	buf[n] = '\0';
	return (uint32_t)strtoul(buf, NULL, 10);
}

static int kit_append_one_main(const char *conf, const char *user, const char *box)
{
	char *cerr = NULL;
	struct ma_core *core = ma_core_create(conf, 0, &cerr);
	struct ma_error_info err;
	struct ma_user *u;
	uint32_t uid = 0;
	int rc = 1;

	if (core == NULL) {
		fprintf(stderr, "core: %s\n", cerr);
		free(cerr);
		return 1;
	}
	u = ma_store_user_open(ma_core_store(core), user, &err);
	if (u != NULL && append1(u, box, "Subject: fresh process\r\n\r\nx\r\n", 0,
				 &uid) == 0) {
		printf("%u\n", uid);
		rc = 0;
	}
	ma_store_user_close(&u);
	ma_core_destroy(&core);
	return rc;
}

/* UIDs are never reused: expunge the highest, reopen, append again (in
 * this process and in a fresh one). */
static void kit_check_uid_reuse(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = ma_store_user_open(store, user, &err);
	struct ma_mailbox *mb = NULL;
	uint32_t uid = 0, uid2 = 0;

	if (u == NULL) {
		CHECK(u != NULL);
		return;
	}
	for (int round = 0; round < 3; round++) {
		CHECK(append1(u, "INBOX", "Subject: high\r\n\r\n", 0, &uid) == 0);
		OK(ma_mailbox_open(u, "INBOX", false, &mb, &err));
		if (mb != NULL)
			OK(ma_mailbox_expunge(mb, &uid, 1, &err));
		ma_mailbox_close(&mb);
		ma_store_user_close(&u);
		/* A fresh process sees the same UIDNEXT. */
		uid2 = kit_fresh_append(user, "INBOX");
		if (uid2 <= uid)
			printf("    fresh process got uid %u after expunged %u\n", uid2, uid);
		CHECK(uid2 > uid);
		u = ma_store_user_open(store, user, &err);
		if (u == NULL) {
			CHECK(u != NULL);
			return;
		}
		OK(ma_mailbox_open(u, "INBOX", false, &mb, &err));
		if (mb != NULL)
			OK(ma_mailbox_expunge(mb, &uid2, 1, &err));
		ma_mailbox_close(&mb);
		ma_store_user_close(&u);
		u = ma_store_user_open(store, user, &err);
		if (u == NULL) {
			CHECK(u != NULL);
			return;
		}
		CHECK(status(u, "INBOX").uidnext == uid2 + 1);
		CHECK(append1(u, "INBOX", "Subject: after\r\n\r\n", 0, &uid) == 0);
		CHECK(uid > uid2);
	}
	COUNTS(u, "INBOX");
	ma_store_user_close(&u);
}

/* ---- kill -9 in the middle of append/copy/move/expunge ---- */

enum { KIT_K = 5, KIT_MAX_BATCH = 2048, KIT_ROUNDS = 20 };

struct kit_ack { uint32_t op, batch; };

static void kit_atom_text(char *buf, size_t size, unsigned round, unsigned b,
			  unsigned i)
{
	/* Some body so a write is more than one tiny page. */
	int n = snprintf(buf, size, "Subject: atom %u %u %u\r\n\r\n", round, b, i);
	for (; n > 0 && (size_t)n + 80 < size && n < 3000; )
		n += snprintf(buf + n, size - (size_t)n,
			      "0123456789abcdefghijklmnopqrstuvwxyz %u %u %u\r\n",
			      round, b, i);
}

static void kit_child_fail(int code, const char *what, const struct ma_error_info *err)
{
	fprintf(stderr, "    kill -9 writer: %s failed: %s %s\n", what,
		ma_error_name(err->code), err->text);
	_exit(code);
}

/* The child: op 1 append K, 2 copy them to AtomCopy, 3 move them to
 * AtomMove, 4 expunge them there; each acknowledged on the pipe. */
static void kit_atom_child(struct ma_store *store, const char *user,
			   unsigned round, int fd)
{
	struct ma_error_info err;
	struct ma_user *u = ma_store_user_open(store, user, &err);
	struct ma_mailbox *a = NULL, *mv = NULL;
	char text[KIT_K][4096];
	struct ma_append_msg msgs[KIT_K];
	uint32_t uids[KIT_K], copied[KIT_K], moved[KIT_K];

	if (u == NULL || ma_mailbox_open(u, "Atom", false, &a, &err) < 0 ||
	    ma_mailbox_open(u, "AtomMove", false, &mv, &err) < 0)
		kit_child_fail(1, "open", &err);
	for (unsigned b = 0; b < KIT_MAX_BATCH; b++) {
		struct ma_sync_result res;
		struct kit_ack ack = { 0, b };

		for (unsigned i = 0; i < KIT_K; i++) {
			kit_atom_text(text[i], sizeof(text[i]), round, b, i);
			msgs[i] = test_msg(text[i], 0);
		}
		if (ma_store_append(u, "Atom", msgs, KIT_K, uids, NULL, &err) < 0)
			kit_child_fail(2, "append", &err);
		ack.op = 1;
		if (write(fd, &ack, sizeof(ack)) != (ssize_t)sizeof(ack))
			_exit(3);
		if (ma_mailbox_sync(a, &res, &err) < 0)
			kit_child_fail(4, "sync Atom", &err);
		if (ma_mailbox_copy(a, uids, KIT_K, "AtomCopy", false, copied,
				    NULL, &err) < 0)
			kit_child_fail(4, "copy", &err);
		ack.op = 2;
		if (write(fd, &ack, sizeof(ack)) != (ssize_t)sizeof(ack))
			_exit(3);
		if (ma_mailbox_copy(a, uids, KIT_K, "AtomMove", true, moved,
				    NULL, &err) < 0)
			kit_child_fail(5, "move", &err);
		ack.op = 3;
		if (write(fd, &ack, sizeof(ack)) != (ssize_t)sizeof(ack))
			_exit(3);
		if (ma_mailbox_sync(mv, &res, &err) < 0)
			kit_child_fail(6, "sync AtomMove", &err);
		if (ma_mailbox_expunge(mv, moved, KIT_K, &err) < 0)
			kit_child_fail(6, "expunge", &err);
		ack.op = 4;
		if (write(fd, &ack, sizeof(ack)) != (ssize_t)sizeof(ack))
			_exit(3);
	}
	pause();
	_exit(0);
}

struct kit_atom_count {
	unsigned round;
	unsigned char (*count)[KIT_K];	/* [batch][i] */
	unsigned other;			/* messages of this round that look wrong */
};

static void kit_atom_count_cb(const struct ma_msg *m, const unsigned char *data,
			      size_t size, void *ctx)
{
	struct kit_atom_count *c = ctx;
	unsigned r, b, i;
	char head[64], want[4096];
	size_t hl = size < sizeof(head) - 1 ? size : sizeof(head) - 1;

	(void)m;
	memcpy(head, data, hl);
	head[hl] = '\0';
	if (sscanf(head, "Subject: atom %u %u %u", &r, &b, &i) != 3) {
		c->other++;
		return;
	}
	if (r != c->round)
		return;
	if (b >= KIT_MAX_BATCH || i >= KIT_K) {
		c->other++;
		return;
	}
	kit_atom_text(want, sizeof(want), r, b, i);
	if (size != strlen(want) || memcmp(data, want, size) != 0) {
		printf("    round %u batch %u msg %u: bytes differ (half-written?)\n",
		       r, b, i);
		c->other++;
		return;
	}
	c->count[b][i]++;
}

/* Expected (Atom, AtomCopy, AtomMove) counts after op 0..4 of a batch. */
static const unsigned char kit_atom_state[5][3] = {
	{ 0, 0, 0 }, { 1, 0, 0 }, { 1, 1, 0 }, { 0, 1, 1 }, { 0, 1, 0 },
};

static void kit_check_kill9_atomic(struct ma_store *store, const char *user)
{
	static const char *const boxes[3] = { "Atom", "AtomCopy", "AtomMove" };
	struct ma_error_info err;
	struct ma_user *u = ma_store_user_open(store, user, &err);
	unsigned char (*counts)[KIT_MAX_BATCH][KIT_K];
	uint8_t *last;
	unsigned total_acks = 0;

	if (u == NULL) {
		CHECK(u != NULL);
		return;
	}
	for (int i = 0; i < 3; i++)
		OK(ma_store_mailbox_create(u, boxes[i], 0, &err));
	ma_store_user_close(&u);
	counts = calloc(3, sizeof(*counts));
	last = calloc(KIT_MAX_BATCH, 1);
	if (counts == NULL || last == NULL)
		abort();
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	for (unsigned round = 0; round < KIT_ROUNDS; round++) {
		int pfd[2];
		pid_t pid;
		struct kit_ack ack;
		unsigned n_acks = 0, last_b = 0;

		if (pipe(pfd) < 0) {
			CHECK(!"pipe");
			break;
		}
		pid = fork();
		if (pid == 0) {
			close(pfd[0]);
			kit_atom_child(store, user, round, pfd[1]);
		}
		close(pfd[1]);
		if (pid < 0) {
			close(pfd[0]);
			CHECK(pid > 0);
			break;
		}
		/* Wait for the first acknowledgement, then a random while. */
		memset(last, 0, KIT_MAX_BATCH);
		if (read(pfd[0], &ack, sizeof(ack)) == (ssize_t)sizeof(ack) &&
		    ack.batch < KIT_MAX_BATCH) {
			last[ack.batch] = (uint8_t)ack.op;
			n_acks++;
		}
		usleep((useconds_t)(rand() % 120000));
		kill(pid, SIGKILL);
		int wst = 0;
		waitpid(pid, &wst, 0);
		if (!WIFSIGNALED(wst)) {
			printf("    round %u: writer exited early (status 0x%x)\n", round, wst);
			failures++;
		}
		while (read(pfd[0], &ack, sizeof(ack)) == (ssize_t)sizeof(ack)) {
			if (ack.batch < KIT_MAX_BATCH && ack.op >= 1 && ack.op <= 4) {
				last[ack.batch] = (uint8_t)ack.op;
				last_b = ack.batch;
				n_acks++;
			}
		}
		close(pfd[0]);
		total_acks += n_acks;

		/* What is stored now. */
		u = ma_store_user_open(store, user, &err);
		if (u == NULL) {
			printf("    round %u: user does not open after the kill: %s\n",
			       round, err.text);
			failures++;
			break;
		}
		memset(counts, 0, 3 * sizeof(*counts));
		for (int bx = 0; bx < 3; bx++) {
			struct kit_atom_count c = { .round = round, .count = counts[bx] };
			kit_each_msg(u, boxes[bx], kit_atom_count_cb, &c);
			if (c.other > 0) {
				printf("    round %u: %u bad messages in %s\n", round,
				       c.other, boxes[bx]);
				failures++;
			}
		}
		/* The op in flight at the kill is either done or not at all;
		 * it belongs to last_b (ops 2-4) or to last_b + 1 (op 1). */
		unsigned bad = 0;
		for (unsigned b = 0; b < KIT_MAX_BATCH; b++) {
			unsigned op = last[b];
			bool maybe_next = (b == last_b && op < 4) ||
					  (b == last_b + 1 && op == 0 && last[last_b] == 4);
			for (int bx = 0; bx < 3; bx++) {
				for (unsigned i = 0; i < KIT_K; i++) {
					unsigned have = counts[bx][b][i];
					unsigned want = kit_atom_state[op][bx];
					unsigned alt = maybe_next ? kit_atom_state[op + 1][bx] : want;
					if (have != want && have != alt) {
						if (bad++ < 5)
							printf("    round %u batch %u (last acked op %u): "
							       "%s msg %u present %u times, want %u\n",
							       round, b, op, boxes[bx], i, have, want);
					}
				}
				/* all or nothing inside one write */
				for (unsigned i = 1; i < KIT_K; i++)
					if (counts[bx][b][i] != counts[bx][b][0] && bad++ < 5)
						printf("    round %u batch %u: %s holds part of one write\n",
						       round, b, boxes[bx]);
			}
		}
		if (bad > 0)
			failures++;
		/* The store takes writes again at once. */
		CHECK(append1(u, "INBOX", "after the kill\r\n", 0, NULL) == 0);
		COUNTS(u, "Atom");
		COUNTS(u, "AtomCopy");
		ma_store_user_close(&u);
	}
	printf("    %d rounds, %u acknowledged writes checked\n", KIT_ROUNDS, total_acks);
	CHECK(total_acks >= KIT_ROUNDS);
	free(counts);
	free(last);
}

/* ---- several processes on one mailbox ---- */

enum { KIT_WRITERS = 4, KIT_PER_WRITER = 50, KIT_VICTIMS = 100 };

struct kit_multi_count {
	unsigned seen[KIT_WRITERS][KIT_PER_WRITER];
	unsigned victims, other;
	uint8_t (*guids)[MA_GUID_SIZE];
	unsigned n_guids;
};

static void kit_multi_cb(const struct ma_msg *m, const unsigned char *data,
			 size_t size, void *ctx)
{
	struct kit_multi_count *c = ctx;
	char head[64], want[64];
	size_t hl = size < sizeof(head) - 1 ? size : sizeof(head) - 1;
	unsigned w, i;

	memcpy(head, data, hl);
	head[hl] = '\0';
	if (c->n_guids < KIT_WRITERS * KIT_PER_WRITER + KIT_VICTIMS + 16)
		memcpy(c->guids[c->n_guids++], m->guid, MA_GUID_SIZE);
	if (strncmp(head, "victim", 6) == 0) {
		c->victims++;
	} else if (sscanf(head, "multi %u %u", &w, &i) == 2 && w < KIT_WRITERS &&
		   i < KIT_PER_WRITER) {
		snprintf(want, sizeof(want), "multi %u %u\r\n", w, i);
		if (size == strlen(want) && memcmp(data, want, size) == 0)
			c->seen[w][i]++;
		else
			c->other++;
	} else {
		c->other++;
	}
}

static void kit_check_multiprocess(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = ma_store_user_open(store, user, &err);
	pid_t pids[KIT_WRITERS + 1];
	struct ma_append_msg vm[KIT_VICTIMS];
	uint32_t vuids[KIT_VICTIMS];

	if (u == NULL) {
		CHECK(u != NULL);
		return;
	}
	OK(ma_store_mailbox_create(u, "Multi", 0, &err));
	for (int i = 0; i < KIT_VICTIMS; i++)
		vm[i] = test_msg("victim\r\n", 0);
	OK(ma_store_append(u, "Multi", vm, KIT_VICTIMS, vuids, NULL, &err));
	ma_store_user_close(&u);

	for (int c = 0; c <= KIT_WRITERS; c++) {
		pids[c] = fork();
		if (pids[c] != 0)
			continue;
		struct ma_user *cu = ma_store_user_open(store, user, &err);
		int bad = cu == NULL;
		if (c < KIT_WRITERS) {
			for (int i = 0; i < KIT_PER_WRITER && !bad; i++) {
				char text[64];
				snprintf(text, sizeof(text), "multi %d %d\r\n", c, i);
				bad = append1(cu, "Multi", text, 0, NULL) < 0;
			}
		} else {
			/* The expunger: removes the victims five at a time. */
			struct ma_mailbox *mb = NULL;
			struct ma_sync_result res;
			bad = bad || ma_mailbox_open(cu, "Multi", false, &mb, &err) < 0;
			for (int i = 0; i < KIT_VICTIMS && !bad; i += 5) {
				bad = ma_mailbox_sync(mb, &res, &err) < 0 ||
				      ma_mailbox_expunge(mb, &vuids[i], 5, &err) < 0;
			}
			ma_mailbox_close(&mb);
		}
		if (bad)
			fprintf(stderr, "child %d: %s %s\n", c, ma_error_name(err.code),
				err.text);
		ma_store_user_close(&cu);
		_exit(bad ? 1 : 0);
	}
	for (int c = 0; c <= KIT_WRITERS; c++) {
		int wst = 0;
		CHECK(pids[c] > 0);
		if (pids[c] > 0) {
			waitpid(pids[c], &wst, 0);
			if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0)
				printf("    child %d: status 0x%x\n", c, wst);
			CHECK(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
		}
	}
	u = ma_store_user_open(store, user, &err);
	if (u == NULL) {
		CHECK(u != NULL);
		return;
	}
	struct kit_multi_count *c = calloc(1, sizeof(*c));
	if (c == NULL)
		abort();
	c->guids = calloc(KIT_WRITERS * KIT_PER_WRITER + KIT_VICTIMS + 16, MA_GUID_SIZE);
	if (c->guids == NULL)
		abort();
	kit_each_msg(u, "Multi", kit_multi_cb, c);
	unsigned missing = 0, dup = 0;
	for (int w = 0; w < KIT_WRITERS; w++)
		for (int i = 0; i < KIT_PER_WRITER; i++) {
			missing += c->seen[w][i] == 0;
			dup += c->seen[w][i] > 1;
		}
	if (missing || dup || c->victims || c->other)
		printf("    missing %u, duplicated %u, victims left %u, unexpected %u\n",
		       missing, dup, c->victims, c->other);
	CHECK(missing == 0 && dup == 0 && c->victims == 0 && c->other == 0);
	unsigned same = 0;
	for (unsigned i = 0; i < c->n_guids; i++)
		for (unsigned j = i + 1; j < c->n_guids; j++)
			same += memcmp(c->guids[i], c->guids[j], MA_GUID_SIZE) == 0;
	CHECK(same == 0);	/* GUIDs unique */
	CHECK(status(u, "Multi").uidnext ==
	      KIT_VICTIMS + KIT_WRITERS * KIT_PER_WRITER + 1);
	COUNTS(u, "Multi");	/* also: UIDs ascending and unique */
	free(c->guids);
	free(c);
	ma_store_user_close(&u);
}

/* ---- a big mailbox and changes-since in time proportional to the changes ---- */

static void kit_check_big_and_sync(struct ma_store *store, const char *user)
{
	struct ma_error_info err;
	struct ma_user *u = ma_store_user_open(store, user, &err);
	struct ma_user *u2 = ma_store_user_open(store, user, &err);
	uint32_t total = kit_big ? 100000 : 20000, batch = 1000;
	struct ma_append_msg *msgs = calloc(batch, sizeof(*msgs));
	char (*texts)[64] = calloc(batch, 64);
	uint32_t *uids = calloc(batch, sizeof(*uids));
	uint32_t *all = calloc(total, sizeof(*all));
	struct ma_mailbox *view = NULL, *w = NULL, *tmp = NULL;
	struct ma_sync_result res;
	const struct ma_msg *list;
	uint32_t n = 0;
	double t0, t_fill, t_open = 1e9, t_one = 1e9, t_many;

	if (u == NULL || u2 == NULL || msgs == NULL || texts == NULL ||
	    uids == NULL || all == NULL) {
		CHECK(u != NULL && u2 != NULL);
		goto out;
	}
	OK(ma_store_mailbox_create(u, "Big", 0, &err));
	t0 = kit_now();
	for (uint32_t done = 0; done < total; done += batch) {
		for (uint32_t i = 0; i < batch; i++) {
			snprintf(texts[i], 64, "Subject: big %u\r\n\r\nbody\r\n", done + i);
			msgs[i] = test_msg(texts[i], 0);
		}
		if (ma_store_append(u, "Big", msgs, batch, uids, NULL, &err) < 0) {
			printf("    append at %u: %s %s\n", done, ma_error_name(err.code),
			       err.text);
			failures++;
			goto out;
		}
		memcpy(all + done, uids, batch * sizeof(*uids));
	}
	t_fill = kit_now() - t0;
	struct ma_mailbox_status st = status(u, "Big");
	CHECK(st.messages == total && st.uidnext == total + 1);
	for (int rep = 0; rep < 2; rep++) {
		t0 = kit_now();
		OK(ma_mailbox_open(u, "Big", true, &tmp, &err));
		if (tmp != NULL)
			OK(ma_mailbox_messages(tmp, &list, &n, NULL, &err));
		double t = kit_now() - t0;
		if (t < t_open)
			t_open = t;
		CHECK(n == total);
		ma_mailbox_close(&tmp);
	}
	OK(ma_mailbox_open(u, "Big", false, &view, &err));
	OK(ma_mailbox_open(u2, "Big", false, &w, &err));
	if (view == NULL || w == NULL)
		goto out;
	for (int rep = 0; rep < 3; rep++) {
		uint32_t one = all[rep * 7 + 3];
		OK(ma_mailbox_store_flags(w, &one, 1, MA_FLAGS_ADD, MA_FLAG_SEEN, NULL,
					  0, 0, NULL, NULL, &err));
		t0 = kit_now();
		OK(ma_mailbox_sync(view, &res, &err));
		double t = kit_now() - t0;
		if (t < t_one)
			t_one = t;
		CHECK(res.n_changed == 1 && res.changed[0] == one);
	}
	for (int k = 0; k < 10; k++)
		OK(ma_mailbox_store_flags(w, all + 1000 + k * 100, 100, MA_FLAGS_ADD,
					  MA_FLAG_FLAGGED, NULL, 0, 0, NULL, NULL, &err));
	t0 = kit_now();
	OK(ma_mailbox_sync(view, &res, &err));
	t_many = kit_now() - t0;
	CHECK(res.n_changed == 1000 && res.n_expunged == 0 && res.n_new == 0);
	printf("    %u messages: appended in %.2fs, open %.2f ms, sync after 1 change "
	       "%.3f ms, after 1000 changes %.3f ms\n", total, t_fill, t_open * 1e3,
	       t_one * 1e3, t_many * 1e3);
	if (t_one > t_open) {
		if (kit_scan_ok) {
			printf("    sync after 1 change costs a full open: allowed by --scan-ok\n");
		} else {
			printf("    sync after 1 change costs more than a full open: "
			       "it scans the mailbox (use --scan-ok for a backend that must)\n");
			failures++;
		}
	}
	uint64_t hms = status(u, "Big").highestmodseq;
	OK(ma_mailbox_messages(view, &list, &n, &st, &err));
	CHECK(n == total && st.highestmodseq == hms && st.unseen == total - 3);
	COUNTS(u, "Big");
out:
	ma_mailbox_close(&view);
	ma_mailbox_close(&w);
	ma_store_user_close(&u);
	ma_store_user_close(&u2);
	free(msgs);
	free(texts);
	free(uids);
	free(all);
}

/* ---------------- main ---------------- */

static int kit_passed, kit_failed;
static const char *kit_only;	/* --only WORD: run the checks naming it */

static void kit_run(const char *what, void (*fn)(struct ma_store *, const char *),
		    struct ma_store *store, const char *user)
{
	int before = failures;
	double t0 = kit_now();

	if (kit_only != NULL && strstr(what, kit_only) == NULL)
		return;
	fn(store, user);
	if (failures == before) {
		printf("ok: %s (%.1fs)\n", what, kit_now() - t0);
		kit_passed++;
	} else {
		printf("FAIL: %s\n", what);
		kit_failed++;
	}
	fflush(stdout);
}

static void kit_names(struct ma_store *store, const char *user)
{
	(void)user;
	store_check_names(store);
}

static void kit_verify_all(struct ma_store *store, const char *unused)
{
	static const char *const users[] = {
		"basic", "flags", "sync", "tree", "copy", "read", "multi", "crash",
		"threads", "uids", "atomic", "multi2", "big", NULL
	};
	(void)unused;
	for (unsigned i = 0; users[i] != NULL; i++)
		store_check_verify_clean(store, users[i]);
}

static void kit_rmrf(const char *dir)
{
	char cmd[PATH_MAX + 32];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

static void kit_usage(void)
{
	fprintf(stderr,
		"usage: mailaccess-store-conformance [--big] [--scan-ok] [--keep] "
		"[--only WORD] PLUGIN.so [key=value ...]\n"
		"  PLUGIN.so   a store plugin named store-NAME.so\n"
		"  key=value   lines for its `store { }` section (default path = TMP/mail)\n"
		"  --big       a 100,000-message mailbox instead of 20,000\n"
		"  --scan-ok   a sync may cost a full scan (e.g. Maildir): report, don't fail\n"
		"  --keep      keep the temp directory\n"
		"  --only WORD run only the checks whose line contains WORD\n");
}

int main(int argc, char **argv)
{
	bool keep = false, has_path = false;
	const char *plugin = NULL;
	char real[PATH_MAX], dir[PATH_MAX], name[256], tmpl[] = "/tmp/ma-conformance-XXXXXX";
	char conf[PATH_MAX + 32];
	int argi = 1;

	if (argc == 5 && strcmp(argv[1], "--append-one") == 0)
		return kit_append_one_main(argv[2], argv[3], argv[4]);
	for (; argi < argc && argv[argi][0] == '-'; argi++) {
		if (strcmp(argv[argi], "--big") == 0)
			kit_big = true;
		else if (strcmp(argv[argi], "--scan-ok") == 0)
			kit_scan_ok = true;
		else if (strcmp(argv[argi], "--keep") == 0)
			keep = true;
		else if (strcmp(argv[argi], "--only") == 0 && argi + 1 < argc)
			kit_only = argv[++argi];
		else {
			kit_usage();
			return 2;
		}
	}
	if (argi >= argc) {
		kit_usage();
		return 2;
	}
	plugin = argv[argi++];
	if (realpath(plugin, real) == NULL) {
		fprintf(stderr, "%s: %s\n", plugin, strerror(errno));
		return 2;
	}
	const char *base = strrchr(real, '/') + 1;
	size_t blen = strlen(base);
	if (strncmp(base, "store-", 6) != 0 || blen < 10 || blen - 9 >= sizeof(name) ||
	    strcmp(base + blen - 3, ".so") != 0) {
		fprintf(stderr, "%s: a store plugin must be named store-NAME.so\n", plugin);
		return 2;
	}
	memcpy(name, base + 6, blen - 9);
	name[blen - 9] = '\0';
	snprintf(dir, sizeof(dir), "%.*s", (int)(base - 1 - real), real);
	static char self[PATH_MAX];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl <= 0) {
		perror("readlink /proc/self/exe");
		return 2;
	}
	self[sl] = '\0';
	kit_self = self;
	if (mkdtemp(tmpl) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(conf, sizeof(conf), "%s/kit.conf", tmpl);
	FILE *f = fopen(conf, "w");
	if (f == NULL) {
		perror(conf);
		return 2;
	}
	fprintf(f, "plugin_dir = %s\nstate_dir = %s/state\nlog = stderr\n"
		"log_level = warning\nstore {\n  backend = %s\n", dir, tmpl, name);
	for (int i = argi; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		if (eq == NULL || eq == argv[i] || strpbrk(argv[i], "\n{}") != NULL) {
			fprintf(stderr, "%s: not key=value\n", argv[i]);
			fclose(f);
			kit_rmrf(tmpl);
			return 2;
		}
		if ((size_t)(eq - argv[i]) == 4 && strncmp(argv[i], "path", 4) == 0)
			has_path = true;
		fprintf(f, "  %.*s = %s\n", (int)(eq - argv[i]), argv[i], eq + 1);
	}
	if (!has_path)
		fprintf(f, "  path = %s/mail\n", tmpl);
	fprintf(f, "}\n");
	fclose(f);
	char state[PATH_MAX + 16];
	snprintf(state, sizeof(state), "%s/state", tmpl);
	mkdir(state, 0700);
	kit_conf = conf;

	char *cerr = NULL;
	struct ma_core *core = ma_core_create(conf, 0, &cerr);
	if (core == NULL) {
		printf("FAIL: load %s as store '%s': %s\n", real, name, cerr);
		free(cerr);
		if (!keep)
			kit_rmrf(tmpl);
		printf("0 passed, 1 failed\n");
		return 1;
	}
	struct ma_store *store = ma_core_store(core);
	printf("store conformance kit: %s (backend '%s'), temp dir %s\n", real, name, tmpl);
	fflush(stdout);

	kit_run("bad user and mailbox names refused by the core wrapper", kit_names,
		store, "");
	kit_run("INBOX exists, append one/many gives ascending UIDs, status exact",
		store_check_basic, store, "basic");
	kit_run("flags add/remove/replace, keywords, modseq grows, unchangedsince",
		store_check_flags, store, "flags");
	kit_run("mailbox_sync reports exactly the expunged/changed/new", store_check_sync,
		store, "sync");
	kit_run("create/delete/rename (INBOX rename moves messages), subscribe",
		store_check_tree, store, "tree");
	kit_run("copy and move", store_check_copy, store, "copy");
	kit_run("msg_read byte-identical (8-bit, CRLF, empty, 50 MB), cache, readers do "
		"not block writers", store_check_read, store, "read");
	kit_run("UIDs never reused: expunge the highest, reopen, fresh process",
		kit_check_uid_reuse, store, "uids");
	kit_run("two processes append at once", store_check_multiprocess, store, "multi");
	kit_run("acknowledged appends survive kill -9", store_check_kill9, store, "crash");
	kit_run("kill -9 during append/copy/move/expunge: every acknowledged write "
		"present, each write all or nothing (20 rounds)", kit_check_kill9_atomic,
		store, "atomic");
	kit_run("4 processes appending + 1 expunging one mailbox: each message once, "
		"UIDs and GUIDs unique", kit_check_multiprocess, store, "multi2");
	kit_run("threads of one process share a user", store_check_threads, store,
		"threads");
	kit_run(kit_big ? "100,000-message mailbox; sync cost follows the changes"
			: "20,000-message mailbox; sync cost follows the changes",
		kit_check_big_and_sync, store, "big");
	kit_run("verify(repair=false) reports clean for every user", kit_verify_all,
		store, NULL);

	ma_core_destroy(&core);
	if (!keep)
		kit_rmrf(tmpl);
	printf("%d passed, %d failed\n", kit_passed, kit_failed);
	return kit_failed > 0 ? 1 : 0;
}
