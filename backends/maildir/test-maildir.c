/*
 * test-maildir.c - store-maildir.so loaded by path like the daemon would
 * ($MA_TEST_BUILD_ROOT/backends/maildir/store-maildir.so) on a temp dir:
 * the shared mail-level checks of the conformance kit
 * (tests/store-conformance/store-checks.c), then what is Maildir's own:
 * name escaping, adoption of dovecot-uidlist and courierimapuidlist, mail
 * dropped into new/ by an MTA, bare-LF files read as CRLF, concurrent
 * writers, a writer killed before its rename, keywords, hard-link copy,
 * cache side files, verify and repair, and the inotify wake-up of the
 * change bus.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "core-private.h"
#include "maildir-private.h"
#include "../../tests/store-conformance/store-checks.h"
#include "../../tests/store-conformance/store-unit.h"

static char md_root[4096];

static int store_verify_count(struct ma_user *u)
{
	struct ma_error_info err;
	int n = ma_store_verify(u, false, NULL, NULL, &err);

	return n;
}


static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		sc_fail("fopen %s: %s", path, strerror(errno));
		return;
	}
	fputs(text, f);
	fclose(f);
}

static void mkdirs(const char *dir)
{
	char p[4200];

	mkdir(dir, 0700);
	snprintf(p, sizeof(p), "%s/cur", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/new", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/tmp", dir);
	mkdir(p, 0700);
}

static void check_names(void)
{
	static const char *const names[] = {
		"Work", "a/b/c", "dots.in.name", "tilde~x", "Ünïcödé/日本語",
		"a.b/.hidden", NULL
	};
	char enc[512], dec[512];

	for (unsigned i = 0; names[i] != NULL; i++) {
		CHECK(maildir_name_encode(names[i], enc, sizeof(enc)) == 0);
		CHECK(enc[0] == '.');
		CHECK(maildir_name_decode(enc, dec, sizeof(dec)) == 0 &&
		      strcmp(dec, names[i]) == 0);
	}
	CHECK(maildir_name_encode("a/b", enc, sizeof(enc)) == 0 &&
	      strcmp(enc, ".a.b") == 0);
	CHECK(maildir_name_encode("a.b", enc, sizeof(enc)) == 0 &&
	      strcmp(enc, ".a~2eb") == 0);
	CHECK(maildir_name_encode("INBOX", enc, sizeof(enc)) == 0 && enc[0] == '\0');
	CHECK(maildir_name_decode(".", dec, sizeof(dec)) < 0);
	CHECK(maildir_name_decode("..", dec, sizeof(dec)) < 0);
	CHECK(maildir_name_decode(".a..b", dec, sizeof(dec)) < 0);
	CHECK(maildir_name_decode(".a~zz", dec, sizeof(dec)) < 0);
	CHECK(maildir_name_decode(".a~00", dec, sizeof(dec)) < 0);
	CHECK(maildir_name_decode("cur", dec, sizeof(dec)) < 0);

	uint32_t fl;
	uint64_t kw;
	maildir_parse_info("123.x:2,DFRSTac", &fl, &kw);
	CHECK(fl == MA_FLAGS_ALL && kw == 5);
	maildir_parse_info("123.x", &fl, &kw);
	CHECK(fl == 0 && kw == 0);
}

static const struct ma_msg *msg_by_uid(const struct ma_msg *m, uint32_t n,
				       uint32_t uid)
{
	for (uint32_t i = 0; i < n; i++)
		if (m[i].uid == uid)
			return &m[i];
	return NULL;
}

static void expect_body(struct ma_mailbox *mb, uint32_t uid, const char *want,
			uint64_t listed_size, int line)
{
	struct ma_error_info err;
	struct ma_msg_data d;

	memset(&d, 0, sizeof(d));
	if (ma_mailbox_msg_read(mb, uid, &d, &err) < 0) {
		sc_fail("line %d: read UID %u: %s", line, uid, err.text);
		return;
	}
	if (d.size != strlen(want) || memcmp(d.data, want, d.size) != 0 ||
	    listed_size != d.size) {
		sc_fail("line %d: UID %u: got %zu bytes (listed %llu), want %zu",
			line, uid, d.size, (unsigned long long)listed_size,
			strlen(want));
	}
	ma_msg_data_release(&d);
}

/* A Dovecot Maildir (v3 uidlist, bare LF files as Postfix writes them)
 * keeps UIDVALIDITY and every UID; a Courier folder too. */
static void check_adoption(struct ma_store *store)
{
	struct ma_error_info err;
	char dir[4200], p[4400];
	struct ma_mailbox *mb = NULL;
	const struct ma_msg *msgs;
	struct ma_mailbox_status st;
	uint32_t n = 0;

	snprintf(dir, sizeof(dir), "%s/adopt", md_root);
	mkdirs(dir);
	snprintf(p, sizeof(p), "%s/cur/1600000000.M1P10.mx,S=14,W=17:2,S", dir);
	write_text(p, "Subject: a\n\nA\n");
	snprintf(p, sizeof(p), "%s/cur/1600000100.M2P10.mx:2,FR", dir);
	write_text(p, "Subject: b\r\n\r\nB\r\n");
	snprintf(p, sizeof(p), "%s/new/1600000200.M3P10.mx", dir);
	write_text(p, "Subject: c\n\nC");
	snprintf(p, sizeof(p), "%s/dovecot-uidlist", dir);
	write_text(p, "3 V1234567 N12 G0123456789abcdef0123456789abcdef\n"
		   "5 W17 :1600000000.M1P10.mx,S=14,W=17\n"
		   "9 P1600000100.M2P10.mx S16 :1600000100.M2P10.mx\n"
		   "10 :1600000099.M9P10.gone\n");
	snprintf(p, sizeof(p), "%s/dovecot-keywords", dir);
	write_text(p, "0 $Forwarded\n1 Work\n");
	snprintf(p, sizeof(p), "%s/cur/1600000050.M4P10.mx:2,Sb", dir);
	write_text(p, "Subject: d\r\n\r\nD\r\n");
	/* the file above is not in the list: it gets UID 12 (NEXTUID),
	 * the one from new/ 13 (file name order = delivery order) */

	struct ma_user *u = sc_user_open(store, "adopt");
	if (u == NULL)
		return;
	OK(ma_mailbox_open(u, "INBOX", false, &mb, &err));
	if (mb == NULL)
		goto out;
	OK(ma_mailbox_messages(mb, &msgs, &n, &st, &err));
	CHECK(st.uidvalidity == 1234567);
	CHECK(n == 4);
	CHECK(st.uidnext == 14);
	const struct ma_msg *m = msg_by_uid(msgs, n, 5);
	CHECK(m != NULL && m->flags == MA_FLAG_SEEN && m->size == 17);
	if (m != NULL)
		expect_body(mb, 5, "Subject: a\r\n\r\nA\r\n", m->size, __LINE__);
	m = msg_by_uid(msgs, n, 9);
	CHECK(m != NULL && m->flags == (MA_FLAG_FLAGGED | MA_FLAG_ANSWERED));
	if (m != NULL)
		expect_body(mb, 9, "Subject: b\r\n\r\nB\r\n", m->size, __LINE__);
	CHECK(msg_by_uid(msgs, n, 10) == NULL);	/* file gone */
	m = msg_by_uid(msgs, n, 12);
	CHECK(m != NULL && m->keywords == 2 && m->flags == MA_FLAG_SEEN);
	m = msg_by_uid(msgs, n, 13);
	CHECK(m != NULL && m->size == 15 && m->flags == 0);
	if (m != NULL)
		expect_body(mb, 13, "Subject: c\r\n\r\nC", m->size, __LINE__);
	const char *const *kw;
	unsigned nk = 0;
	OK(ma_mailbox_keywords(mb, &kw, &nk, &err));
	CHECK(nk == 2 && strcmp(kw[0], "$Forwarded") == 0 &&
	      strcmp(kw[1], "Work") == 0);
	ma_mailbox_close(&mb);
	/* new/ was emptied into cur/ */
	snprintf(p, sizeof(p), "%s/new/1600000200.M3P10.mx", dir);
	CHECK(access(p, F_OK) < 0);
	/* our list now exists and wins over the adopted one */
	snprintf(p, sizeof(p), "%s/mailaccess-uidlist", dir);
	CHECK(access(p, F_OK) == 0);

	/* Courier: "1 <uidvalidity> <nextuid>", "<uid> <basename>". */
	snprintf(dir, sizeof(dir), "%s/adopt/.Old", md_root);
	mkdirs(dir);
	snprintf(p, sizeof(p), "%s/maildirfolder", dir);
	write_text(p, "");
	snprintf(p, sizeof(p), "%s/cur/1500000000.111.mx:2,S", dir);
	write_text(p, "x\n");
	snprintf(p, sizeof(p), "%s/cur/1500000001.222.mx:2,", dir);
	write_text(p, "yy\n");
	snprintf(p, sizeof(p), "%s/courierimapuidlist", dir);
	write_text(p, "1 777 40\n3 1500000000.111.mx\n31 1500000001.222.mx\n");
	mb = sc_open_list(u, "Old", &msgs, &n, &st);
	if (mb != NULL) {
		CHECK(n == 2 && st.uidvalidity == 777 && st.uidnext == 40);
		CHECK(n == 2 && msgs[0].uid == 3 && msgs[1].uid == 31);
		CHECK(n == 2 && msgs[0].size == 3 && msgs[1].size == 4);
		if (n == 2)
			expect_body(mb, 31, "yy\r\n", msgs[1].size, __LINE__);
		ma_mailbox_close(&mb);
	}
	/* Courier IMAP's own file name; Dovecot's version 1 list */
	snprintf(dir, sizeof(dir), "%s/adopt/.C2", md_root);
	mkdirs(dir);
	snprintf(p, sizeof(p), "%s/cur/1500000005.555.mx:2,S", dir);
	write_text(p, "c2\r\n");
	snprintf(p, sizeof(p), "%s/courierimapuiddb", dir);
	write_text(p, "1 888 8\n7 1500000005.555.mx\n");
	snprintf(dir, sizeof(dir), "%s/adopt/.D1", md_root);
	mkdirs(dir);
	snprintf(p, sizeof(p), "%s/cur/1500000006.666.mx:2,", dir);
	write_text(p, "d1\r\n");
	snprintf(p, sizeof(p), "%s/dovecot-uidlist", dir);
	write_text(p, "1 999 5\n4 1500000006.666.mx\n");
	st = sc_status(u, "C2");
	CHECK(st.uidvalidity == 888 && st.uidnext == 8 && st.messages == 1 &&
	      st.unseen == 0);
	st = sc_status(u, "D1");
	CHECK(st.uidvalidity == 999 && st.uidnext == 5 && st.messages == 1 &&
	      st.unseen == 1);
	/* garbage lists never crash and never invent messages */
	static const char *const junk[] = {
		"3 V N G\n\n:\n 1 :\n4294967296 :x\n7 W99999999999999999999 :\n",
		"3 V0 N0\n1 :../../etc/passwd\n2 :a/b\n",
		"1\n",
		"mailaccess-uidlist 1 V5 N2 M1\n1 1 18446744073709551615 0 0 0 x\n",
		"\x01\x02\xff\n\n\n",
	};
	for (unsigned k = 0; k < sizeof(junk) / sizeof(junk[0]); k++) {
		char name[32];
		snprintf(name, sizeof(name), "Junk%u", k);
		snprintf(dir, sizeof(dir), "%s/adopt/.%s", md_root, name);
		mkdirs(dir);
		snprintf(p, sizeof(p), "%s/%s", dir,
			 k == 3 ? "mailaccess-uidlist" : "dovecot-uidlist");
		write_text(p, junk[k]);
		snprintf(p, sizeof(p), "%s/dovecot-keywords", dir);
		write_text(p, junk[k]);
		snprintf(p, sizeof(p), "%s/cur/1500000009.9.mx:2,Sz", dir);
		write_text(p, "z\n");
		st = sc_status(u, name);
		CHECK(st.messages == 1 && st.uidvalidity != 0 && st.uidnext >= 2);
	}
	COUNTS(u, "INBOX");
	COUNTS(u, "Old");
	CHECK(store_verify_count(u) == 0);
out:
	ma_store_user_close(&u);
}

static int bus_hits;
static void md_bus_cb(const char *user, const char *mailbox, void *ctx)
{
	bus_hits++;
}

/* An MTA writes new/ directly: the next sync gives the file the next UID,
 * and inotify wakes the change bus on the loop. */
static void check_outside_delivery(struct ma_core *core, struct ma_store *store)
{
	struct ma_error_info err;
	struct ma_mailbox *mb = NULL;
	struct ma_sync_result res;
	const struct ma_msg *msgs;
	struct ma_mailbox_status st;
	uint32_t n = 0, uid = 0;
	char p[4400];

	struct ma_user *u = sc_user_open(store, "mta");
	if (u == NULL)
		return;
	sc_append1(u, "INBOX", "first\r\n", 0, &uid);
	OK(ma_mailbox_open(u, "INBOX", false, &mb, &err));
	if (mb == NULL) {
		ma_store_user_close(&u);
		return;
	}
	OK(ma_mailbox_messages(mb, &msgs, &n, &st, &err));
	uint32_t next = st.uidnext;
	struct ma_changebus_sub *sub =
		ma_changebus_subscribe(core, "mta", "INBOX", md_bus_cb, NULL);
	bus_hits = 0;

	/* like Postfix local(8): tmp/ then rename into new/ */
	char tmp[4400];
	snprintf(tmp, sizeof(tmp), "%s/mta/tmp/%ld.M1P999.mx", md_root,
		 (long)time(NULL));
	write_text(tmp, "From: mta\n\nbare LF body\n");
	snprintf(p, sizeof(p), "%s/mta/new/%ld.M1P999.mx", md_root, (long)time(NULL));
	CHECK(rename(tmp, p) == 0);
	for (int i = 0; i < 100 && bus_hits == 0; i++) {
		ev_run(core->loop, EVRUN_NOWAIT);
		if (bus_hits == 0)
			usleep(10000);
	}
	CHECK(bus_hits > 0);	/* IDLE would wake within a second */

	OK(ma_mailbox_sync(mb, &res, &err));
	CHECK(res.n_new == 1 && res.n_expunged == 0);
	OK(ma_mailbox_messages(mb, &msgs, &n, &st, &err));
	CHECK(n == 2 && msgs[n - 1].uid == next && st.uidnext == next + 1);
	if (n == 2) {
		const char *want = "From: mta\r\n\r\nbare LF body\r\n";
		CHECK(msgs[1].size == strlen(want));
		expect_body(mb, next, want, msgs[1].size, __LINE__);
	}
	/* another program flags and deletes files: reported as changes */
	char cur[4400], nn[4500];
	snprintf(cur, sizeof(cur), "%s/mta/cur", md_root);
	DIR *d = opendir(cur);
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strstr(de->d_name, "M1P999") != NULL) {
			snprintf(p, sizeof(p), "%s/%s", cur, de->d_name);
			snprintf(nn, sizeof(nn), "%s/%.*sS", cur,
				 (int)(strstr(de->d_name, ":2,") - de->d_name + 3),
				 de->d_name);
			CHECK(rename(p, nn) == 0);
		} else if (de->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", cur, de->d_name);
			CHECK(unlink(p) == 0);
		}
	}
	if (d != NULL)
		closedir(d);
	OK(ma_mailbox_sync(mb, &res, &err));
	CHECK(res.n_expunged == 1 && res.expunged[0] == uid);
	CHECK(res.n_changed == 1 && res.changed[0] == next);
	OK(ma_mailbox_messages(mb, &msgs, &n, &st, &err));
	CHECK(n == 1 && msgs[0].flags == MA_FLAG_SEEN);
	ma_changebus_unsubscribe(&sub);
	ma_mailbox_close(&mb);
	ma_store_user_close(&u);
}

/* Keywords go to dovecot-keywords and the info letters; copy is a hard
 * link; the cache blob comes back; a writer killed before its rename
 * leaves nothing visible; stale tmp/ files are cleaned. */
static void check_files(struct ma_store *store)
{
	struct ma_error_info err;
	struct ma_mailbox *mb = NULL;
	const struct ma_msg *msgs;
	uint32_t n = 0, uid = 0, uv = 0, nu[1];
	char p[4400];
	const char *kws[] = { "Work", "$Label1" };
	struct ma_append_msg m = sc_msg("Subject: kw\r\n\r\nbody\r\n",
					  MA_FLAG_FLAGGED | MA_FLAG_SEEN);

	struct ma_user *u = sc_user_open(store, "files");
	if (u == NULL)
		return;
	m.keywords = kws;
	m.n_keywords = 2;
	m.cache = "CACHEBLOB";
	m.cache_size = 9;
	OK(ma_store_append(u, "INBOX", &m, 1, &uid, &uv, &err));
	OK(ma_store_mailbox_create(u, "Box.With.Dots", 0, &err));
	/* an empty folder's UIDVALIDITY is fixed at creation (the list is
	 * written at once, not at the first change) */
	OK(ma_store_mailbox_create(u, "Empty", 0, &err));
	snprintf(p, sizeof(p), "%s/files/.Empty/mailaccess-uidlist", md_root);
	CHECK(access(p, F_OK) == 0);
	uint32_t uv_empty = sc_status(u, "Empty").uidvalidity;
	CHECK(uv_empty != 0 && sc_status(u, "Empty").uidvalidity == uv_empty);
	snprintf(p, sizeof(p), "%s/files/.Box~2eWith~2eDots/maildirfolder", md_root);
	CHECK(access(p, F_OK) == 0);
	snprintf(p, sizeof(p), "%s/files/dovecot-keywords", md_root);
	FILE *f = fopen(p, "r");
	char buf[256] = "";
	if (f != NULL) {
		size_t r = fread(buf, 1, sizeof(buf) - 1, f);
		buf[r] = '\0';
		fclose(f);
	}
	CHECK(strcmp(buf, "0 Work\n1 $Label1\n") == 0);

	OK(ma_mailbox_open(u, "INBOX", false, &mb, &err));
	if (mb == NULL)
		goto out;
	OK(ma_mailbox_messages(mb, &msgs, &n, NULL, &err));
	CHECK(n == 1 && msgs[0].keywords == 3 && msgs[0].cache_size == 9);
	struct ma_msg_data d;
	memset(&d, 0, sizeof(d));
	OK(ma_mailbox_msg_cache(mb, uid, &d, &err));
	CHECK(d.size == 9 && memcmp(d.data, "CACHEBLOB", 9) == 0);
	ma_msg_data_release(&d);
	/* the file name carries the flags */
	char cur[4400];
	snprintf(cur, sizeof(cur), "%s/files/cur", md_root);
	DIR *dd = opendir(cur);
	struct dirent *de;
	int found = 0;
	struct stat st;
	while (dd != NULL && (de = readdir(dd)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		found++;
		CHECK(strstr(de->d_name, ":2,FSab") != NULL);
		snprintf(p, sizeof(p), "%s/%s", cur, de->d_name);
	}
	if (dd != NULL)
		closedir(dd);
	CHECK(found == 1);

	/* copy: a hard link with a new base name and mapped keywords */
	OK(ma_mailbox_copy(mb, &uid, 1, "Box.With.Dots", false, nu, &uv, &err));
	CHECK(stat(p, &st) == 0 && st.st_nlink == 2);
	{
		struct ma_mailbox *b2 = NULL;
		const char *const *names;
		unsigned nk = 0;
		OK(ma_mailbox_open(u, "Box.With.Dots", true, &b2, &err));
		if (b2 != NULL) {
			OK(ma_mailbox_messages(b2, &msgs, &n, NULL, &err));
			OK(ma_mailbox_keywords(b2, &names, &nk, &err));
			CHECK(n == 1 && nk == 2 && msgs[0].keywords == 3 &&
			      msgs[0].cache_size == 9);
			CHECK(msgs[0].guid[0] != 0 || msgs[0].guid[1] != 0);
			ma_mailbox_close(&b2);
		}
	}
	/* flags change = rename within cur/ */
	unsigned nf = 0;
	OK(ma_mailbox_store_flags(mb, &uid, 1, MA_FLAGS_REMOVE, MA_FLAG_FLAGGED,
				  kws, 1, 0, NULL, &nf, &err));
	CHECK(stat(p, &st) < 0);	/* old name gone */
	expect_body(mb, uid, "Subject: kw\r\n\r\nbody\r\n", 21, __LINE__);
	ma_mailbox_close(&mb);

	/* a writer killed by SIGKILL after writing tmp/, before the rename */
	uint32_t before = sc_status(u, "INBOX").messages;
	pid_t pid = fork();
	if (pid == 0) {
		char t[4400];
		snprintf(t, sizeof(t), "%s/files/tmp/%ld.M5P%d.mx", md_root,
			 (long)time(NULL), (int)getpid());
		FILE *tf = fopen(t, "w");
		if (tf != NULL) {
			fputs("half a mess", tf);
			fflush(tf);
		}
		raise(SIGKILL);
		_exit(0);
	}
	int wst = 0;
	waitpid(pid, &wst, 0);
	CHECK(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
	CHECK(sc_status(u, "INBOX").messages == before);
	CHECK(store_verify_count(u) == 0);
	/* the leftover is removed once older than 36 hours */
	snprintf(p, sizeof(p), "%s/files/tmp", md_root);
	dd = opendir(p);
	char left[4500] = "";
	while (dd != NULL && (de = readdir(dd)) != NULL)
		if (de->d_name[0] != '.')
			snprintf(left, sizeof(left), "%s/%s", p, de->d_name);
	if (dd != NULL)
		closedir(dd);
	CHECK(left[0] != '\0');
	struct timeval tv[2] = { { time(NULL) - 40 * 3600, 0 },
				 { time(NULL) - 40 * 3600, 0 } };
	CHECK(utimes(left, tv) == 0);
	OK(ma_mailbox_open(u, "INBOX", true, &mb, &err));
	ma_mailbox_close(&mb);
	CHECK(access(left, F_OK) < 0);
out:
	ma_store_user_close(&u);
}

/* A writer killed half way through a multi-file write leaves its journal;
 * the next locker finishes the write (all, never part). */
static void check_journal(struct ma_store *store)
{
	char dir[4200], p[4400];
	uint32_t u1 = 0;

	struct ma_user *u = sc_user_open(store, "journal");
	if (u == NULL)
		return;
	sc_append1(u, "INBOX", "stays\r\n", 0, &u1);
	sc_append1(u, "INBOX", "goes 1\r\n", 0, NULL);
	sc_append1(u, "INBOX", "goes 2\r\n", 0, NULL);
	snprintf(dir, sizeof(dir), "%s/journal", md_root);
	/* an append of two: both in tmp/, one already renamed */
	snprintf(p, sizeof(p), "%s/tmp/1700000001.j1.mx,S=4,W=4", dir);
	write_text(p, "j1\r\n");
	snprintf(p, sizeof(p), "%s/cur/1700000002.j2.mx,S=4,W=4:2,S", dir);
	write_text(p, "j2\r\n");
	/* and an expunge of the two "goes" messages */
	char jt[8192] = "A 1700000001.j1.mx,S=4,W=4 1700000001.j1.mx,S=4,W=4:2,\n"
			"A 1700000002.j2.mx,S=4,W=4 1700000002.j2.mx,S=4,W=4:2,S\n";
	DIR *d;
	struct dirent *de;
	snprintf(p, sizeof(p), "%s/cur", dir);
	d = opendir(p);
	while (d != NULL && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strstr(de->d_name, ",S=8,") == NULL)
			continue;	/* "goes N\r\n" is 8 bytes */
		size_t l = strlen(jt);
		snprintf(jt + l, sizeof(jt) - l, "D %s\n", de->d_name);
	}
	if (d != NULL)
		closedir(d);
	snprintf(p, sizeof(p), "%s/mailaccess-uidlist.pending", dir);
	write_text(p, jt);
	struct ma_mailbox_status st = sc_status(u, "INBOX");
	CHECK(st.messages == 3 && st.unseen == 2);
	CHECK(access(p, F_OK) < 0);
	const struct ma_msg *msgs;
	uint32_t n = 0;
	struct ma_mailbox *mb = sc_open_list(u, "INBOX", &msgs, &n, NULL);
	if (mb != NULL) {
		CHECK(n == 3 && msgs[0].uid == u1);
		if (n == 3) {
			expect_body(mb, msgs[1].uid, "j1\r\n", msgs[1].size, __LINE__);
			expect_body(mb, msgs[2].uid, "j2\r\n", msgs[2].size, __LINE__);
		}
		ma_mailbox_close(&mb);
	}
	ma_store_user_close(&u);
}

/* verify finds a damaged UID list; repair fixes it keeping the UIDs. */
static void check_verify_repair(struct ma_store *store)
{
	struct ma_error_info err;
	uint32_t u1 = 0, u2 = 0;
	char p[4400];

	struct ma_user *u = sc_user_open(store, "repair");
	if (u == NULL)
		return;
	sc_append1(u, "INBOX", "one\r\n", 0, &u1);
	sc_append1(u, "INBOX", "two\r\n", 0, &u2);
	uint32_t uv = sc_status(u, "INBOX").uidvalidity;
	CHECK(store_verify_count(u) == 0);
	snprintf(p, sizeof(p), "%s/repair/mailaccess-uidlist", md_root);
	FILE *f = fopen(p, "a");
	if (f != NULL) {
		/* an entry without a file, one UID twice, UIDNEXT too low
		 * is implied by UID 99 */
		fprintf(f, "99 1 5 0 1 0 1600000000.nofile.mx:2,\n");
		fclose(f);
	}
	int found = store_verify_count(u);
	CHECK(found >= 2);
	int r = ma_store_verify(u, true, NULL, NULL, &err);
	CHECK(r == found);
	CHECK(store_verify_count(u) == 0);
	struct ma_mailbox_status st = sc_status(u, "INBOX");
	CHECK(st.messages == 2 && st.uidvalidity == uv && st.uidnext >= 100);
	/* the old UIDs stayed */
	const struct ma_msg *msgs;
	uint32_t n = 0;
	struct ma_mailbox *mb = sc_open_list(u, "INBOX", &msgs, &n, NULL);
	if (mb != NULL) {
		CHECK(n == 2 && msgs[0].uid == u1 && msgs[1].uid == u2);
		ma_mailbox_close(&mb);
	}
	ma_store_user_close(&u);
}

int main(void)
{
	struct sc_unit t;

	check_names();
	if (sc_unit_open(&t, "test-maildir", "backends/maildir/store-maildir.so",
			 "maildir", "") < 0)
		return 1;
	const struct ma_store_backend *be = t.desc->ops;
	CHECK(be->mail != NULL && be->kv == NULL);
	snprintf(md_root, sizeof(md_root), "%s/mail", t.dir);

	/* the shared mail-level checks */
	store_checks_run_all(&t.core, t.store);

	/* Maildir's own */
	check_adoption(t.store);
	check_outside_delivery(&t.core, t.store);
	check_files(t.store);
	check_verify_repair(t.store);
	check_journal(t.store);
	return sc_unit_close(&t);
}
