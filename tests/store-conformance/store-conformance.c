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
 * check, then "N passed, M failed"; exit 1 on any failure. The mail-level
 * checks are store-checks.c (shared with the LMDB and Maildir unit tests);
 * the ones named kit_* are the kit's own. It links only
 * libmailaccess and uses only the installed headers, so a plugin author can
 * build and run it out of tree (docs/writing-a-backend.md).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mailaccess/mailaccess.h>

#include "store-checks.h"	/* the shared mail-level checks */

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
	const struct ma_msg *msgs;
	uint32_t n = 0;
	struct ma_mailbox *mb = sc_open_list(u, box, &msgs, &n, NULL);

	if (mb == NULL)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		struct ma_msg_data d;

		if (ma_mailbox_msg_read(mb, msgs[i].uid, &d, &err) < 0) {
			sc_fail("%s uid %u listed but unreadable: %s %s", box,
				msgs[i].uid, ma_error_name(err.code), err.text);
			continue;
		}
		if (d.size != msgs[i].size) {
			sc_fail("%s uid %u: size %zu, listed %llu", box,
				msgs[i].uid, d.size, (unsigned long long)msgs[i].size);
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
	if (u != NULL && sc_append1(u, box, "Subject: fresh process\r\n\r\nx\r\n", 0,
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
	struct ma_user *u = sc_user_open(store, user);
	struct ma_mailbox *mb = NULL;
	uint32_t uid = 0, uid2 = 0;

	if (u == NULL)
		return;
	for (int round = 0; round < 3; round++) {
		CHECK(sc_append1(u, "INBOX", "Subject: high\r\n\r\n", 0, &uid) == 0);
		OK(ma_mailbox_open(u, "INBOX", false, &mb, &err));
		if (mb != NULL)
			OK(ma_mailbox_expunge(mb, &uid, 1, &err));
		ma_mailbox_close(&mb);
		ma_store_user_close(&u);
		/* A fresh process sees the same UIDNEXT. */
		uid2 = kit_fresh_append(user, "INBOX");
		if (uid2 <= uid)
			sc_note("fresh process got uid %u after expunged %u", uid2, uid);
		CHECK(uid2 > uid);
		u = sc_user_open(store, user);
		if (u == NULL)
			return;
		OK(ma_mailbox_open(u, "INBOX", false, &mb, &err));
		if (mb != NULL)
			OK(ma_mailbox_expunge(mb, &uid2, 1, &err));
		ma_mailbox_close(&mb);
		ma_store_user_close(&u);
		u = sc_user_open(store, user);
		if (u == NULL)
			return;
		CHECK(sc_status(u, "INBOX").uidnext == uid2 + 1);
		CHECK(sc_append1(u, "INBOX", "Subject: after\r\n\r\n", 0, &uid) == 0);
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
			msgs[i] = sc_msg(text[i], 0);
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
		sc_note("round %u batch %u msg %u: bytes differ (half-written?)",
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
	struct ma_user *u = sc_user_open(store, user);
	unsigned char (*counts)[KIT_MAX_BATCH][KIT_K];
	uint8_t *last;
	unsigned total_acks = 0;

	if (u == NULL)
		return;
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
			sc_fail("round %u: writer exited early (status 0x%x)", round, wst);
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
			sc_fail("round %u: user does not open after the kill: %s",
				round, err.text);
			break;
		}
		memset(counts, 0, 3 * sizeof(*counts));
		for (int bx = 0; bx < 3; bx++) {
			struct kit_atom_count c = { .round = round, .count = counts[bx] };
			kit_each_msg(u, boxes[bx], kit_atom_count_cb, &c);
			if (c.other > 0) {
				sc_fail("round %u: %u bad messages in %s", round,
					c.other, boxes[bx]);
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
							sc_note("round %u batch %u (last acked op %u): "
								"%s msg %u present %u times, want %u",
								round, b, op, boxes[bx], i, have, want);
					}
				}
				/* all or nothing inside one write */
				for (unsigned i = 1; i < KIT_K; i++)
					if (counts[bx][b][i] != counts[bx][b][0] && bad++ < 5)
						sc_note("round %u batch %u: %s holds part of one write",
							round, b, boxes[bx]);
			}
		}
		if (bad > 0)
			sc_failures++;
		/* The store takes writes again at once. */
		CHECK(sc_append1(u, "INBOX", "after the kill\r\n", 0, NULL) == 0);
		COUNTS(u, "Atom");
		COUNTS(u, "AtomCopy");
		ma_store_user_close(&u);
	}
	sc_note("%d rounds, %u acknowledged writes checked", KIT_ROUNDS, total_acks);
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
	struct ma_user *u = sc_user_open(store, user);
	pid_t pids[KIT_WRITERS + 1];
	struct ma_append_msg vm[KIT_VICTIMS];
	uint32_t vuids[KIT_VICTIMS];

	if (u == NULL)
		return;
	OK(ma_store_mailbox_create(u, "Multi", 0, &err));
	for (int i = 0; i < KIT_VICTIMS; i++)
		vm[i] = sc_msg("victim\r\n", 0);
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
				bad = sc_append1(cu, "Multi", text, 0, NULL) < 0;
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
				sc_note("child %d: status 0x%x", c, wst);
			CHECK(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
		}
	}
	u = sc_user_open(store, user);
	if (u == NULL)
		return;
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
		sc_note("missing %u, duplicated %u, victims left %u, unexpected %u",
			missing, dup, c->victims, c->other);
	CHECK(missing == 0 && dup == 0 && c->victims == 0 && c->other == 0);
	unsigned same = 0;
	for (unsigned i = 0; i < c->n_guids; i++)
		for (unsigned j = i + 1; j < c->n_guids; j++)
			same += memcmp(c->guids[i], c->guids[j], MA_GUID_SIZE) == 0;
	CHECK(same == 0);	/* GUIDs unique */
	CHECK(sc_status(u, "Multi").uidnext ==
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
			msgs[i] = sc_msg(texts[i], 0);
		}
		if (ma_store_append(u, "Big", msgs, batch, uids, NULL, &err) < 0) {
			sc_fail("append at %u: %s %s", done, ma_error_name(err.code),
				err.text);
			goto out;
		}
		memcpy(all + done, uids, batch * sizeof(*uids));
	}
	t_fill = kit_now() - t0;
	struct ma_mailbox_status st = sc_status(u, "Big");
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
	sc_note("%u messages: appended in %.2fs, open %.2f ms, sync after 1 change "
		"%.3f ms, after 1000 changes %.3f ms", total, t_fill, t_open * 1e3,
		t_one * 1e3, t_many * 1e3);
	if (t_one > t_open) {
		if (kit_scan_ok) {
			sc_note("sync after 1 change costs a full open: allowed by --scan-ok");
		} else {
			sc_fail("sync after 1 change costs more than a full open: "
				"it scans the mailbox (use --scan-ok for a backend that must)");
		}
	}
	uint64_t hms = sc_status(u, "Big").highestmodseq;
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
	int before = sc_failures;
	double t0 = kit_now();

	if (kit_only != NULL && strstr(what, kit_only) == NULL)
		return;
	fn(store, user);
	if (sc_failures == before) {
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
	/* What went wrong goes to stdout, indented above its "FAIL:" line. */
	sc_opts.out = stdout;
	sc_opts.indent = "    ";
	sc_opts.read_big_size = 50u << 20;	/* the 50 MB round trip */
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
