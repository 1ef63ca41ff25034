/*
 * kvexample.c - the smallest honest key-value store backend: an example to
 * copy when writing a backend outside the mailaccess tree. The core builds
 * the whole mail level on top of these few ops (kv.h); this file only has
 * to keep ordered keys and blobs, with atomic and durable commits.
 *
 * Layout, one directory per user under `path`:
 *   <path>/<user>/log      append-only log of committed transactions
 *   <path>/<user>/lock     flock()ed by the one writer (all processes)
 *   <path>/<user>/blobs/   one file per blob, named by the hex of its key
 *
 * A commit is one record appended to the log: a 12-byte header (magic,
 * payload length, FNV-1a checksum of the payload) and the payload (put and
 * delete ops). It is durable once fdatasync() returns; a record cut short
 * by a crash fails its checksum, is ignored by readers and cut off by the
 * next writer, so a commit is all or nothing. Blobs are written to a temp
 * file, fsynced, and renamed into place before the log record that refers
 * to them; blobs deleted by a commit are unlinked after it.
 *
 * Each opened env keeps the whole key space in a sorted array in memory and
 * catches up by reading only the log bytes added since (so a sync after one
 * change reads one record, not the mailbox). Values replaced while a
 * transaction is open are parked and freed when none is, so pointers stay
 * valid until the transaction ends. Not done here, to stay short: log
 * compaction (a real backend would rewrite a snapshot under the lock) and
 * sharing one in-memory map between envs of one process.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mailaccess/mailaccess.h>

#define KVEX_MAGIC 0x3158564bu		/* "KVX1" */
#define KVEX_HDR 12u
#define KVEX_BLOB_KEY_MAX 100u		/* hex file names must fit NAME_MAX */

struct kvex_ctx { char *path; };

struct kvex_ent {
	unsigned char *key, *val;
	size_t klen, vlen;
};

struct kvex_env {
	char dir[4096];
	int log_fd, lock_fd;
	off_t applied;			/* log bytes already in the map */
	struct kvex_ent *ents;		/* sorted by key (memcmp, then length) */
	size_t n, cap;
	void **grave;			/* values to free once no txn is open */
	size_t n_grave, cap_grave;
	unsigned active;		/* open transactions */
	bool writing;
	pthread_mutex_t mu;
};

struct kvex_pending {			/* a blob put or delete of a write txn */
	char final[4200], tmp[4200];	/* tmp[0] == 0: a delete */
	int fd;				/* the written temp file, not yet synced */
};

struct kvex_undo { unsigned char *key; size_t klen; unsigned char *old; size_t olen; bool had; };

struct kvex_txn {
	struct kvex_env *env;
	bool write;
	unsigned char *payload;		/* the log record being built */
	size_t plen, pcap;
	struct kvex_undo *undo;
	size_t n_undo, cap_undo;
	struct kvex_pending *blobs;
	size_t n_blobs, cap_blobs;
	void **reads;			/* blob copies handed out */
	size_t n_reads, cap_reads;
};

#define KVEX_GROW(arr, n, cap) do { if ((n) == (cap)) { \
	(cap) = (cap) ? (cap) * 2 : 16; \
	(arr) = realloc((arr), (cap) * sizeof(*(arr))); \
	if ((arr) == NULL) abort(); } } while (0)

static int kvex_sys(struct ma_error_info *err, const char *what, const char *path)
{
	ma_log(MA_LOG_ERROR, "kvexample: %s %s: %s", what, path, strerror(errno));
	return ma_error_set(err, errno == ENOSPC ? MA_ERR_QUOTA : MA_ERR_TEMP,
			    "Storage error");
}

static uint32_t kvex_fnv(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n-- > 0)
		h = (h ^ *p++) * 16777619u;
	return h;
}

static int kvex_cmp(const void *a, size_t al, const void *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	return c != 0 ? c : (al > bl) - (al < bl);
}

/* Index of the first entry >= key. */
static size_t kvex_lower(const struct kvex_env *e, const void *key, size_t klen)
{
	size_t lo = 0, hi = e->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (kvex_cmp(e->ents[mid].key, e->ents[mid].klen, key, klen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void kvex_bury(struct kvex_env *e, void *p)
{
	KVEX_GROW(e->grave, e->n_grave, e->cap_grave);
	e->grave[e->n_grave++] = p;
}

/* Sets (val != NULL) or deletes key in the map; the old value is parked. */
static void kvex_map_set(struct kvex_env *e, const void *key, size_t klen,
			 unsigned char *val, size_t vlen)
{
	size_t i = kvex_lower(e, key, klen);
	bool found = i < e->n && kvex_cmp(e->ents[i].key, e->ents[i].klen, key, klen) == 0;

	if (found) {
		kvex_bury(e, e->ents[i].val);
		if (val != NULL) {
			e->ents[i].val = val;
			e->ents[i].vlen = vlen;
			return;
		}
		kvex_bury(e, e->ents[i].key);
		memmove(&e->ents[i], &e->ents[i + 1], (e->n - i - 1) * sizeof(e->ents[0]));
		e->n--;
		return;
	}
	if (val == NULL)
		return;
	KVEX_GROW(e->ents, e->n, e->cap);
	memmove(&e->ents[i + 1], &e->ents[i], (e->n - i) * sizeof(e->ents[0]));
	e->ents[i].key = malloc(klen ? klen : 1);
	if (e->ents[i].key == NULL)
		abort();
	memcpy(e->ents[i].key, key, klen);
	e->ents[i].klen = klen;
	e->ents[i].val = val;
	e->ents[i].vlen = vlen;
	e->n++;
}

static unsigned char *kvex_dup(const void *p, size_t n)
{
	unsigned char *d = malloc(n ? n : 1);

	if (d == NULL)
		abort();
	memcpy(d, p, n);
	return d;
}

/* Applies committed log records written since e->applied (by any process).
 * Stops at the first incomplete or damaged record: a commit in progress or
 * cut short by a crash. */
static int kvex_catch_up(struct kvex_env *e, struct ma_error_info *err)
{
	struct stat st;

	if (fstat(e->log_fd, &st) < 0)
		return kvex_sys(err, "fstat", e->dir);
	while (e->applied + (off_t)KVEX_HDR <= st.st_size) {
		uint32_t h[3];
		if (pread(e->log_fd, h, sizeof(h), e->applied) != (ssize_t)sizeof(h) ||
		    h[0] != KVEX_MAGIC ||
		    e->applied + (off_t)KVEX_HDR + h[1] > st.st_size)
			break;
		unsigned char *p = malloc(h[1] ? h[1] : 1);
		if (p == NULL)
			abort();
		if (pread(e->log_fd, p, h[1], e->applied + KVEX_HDR) != (ssize_t)h[1] ||
		    kvex_fnv(p, h[1]) != h[2]) {
			free(p);
			break;
		}
		for (size_t off = 0; off + 5 <= h[1]; ) {
			uint32_t klen, vlen = 0;
			unsigned char op = p[off];
			memcpy(&klen, p + off + 1, 4);
			off += 5;
			if (op == 1) {
				memcpy(&vlen, p + off, 4);
				off += 4;
			}
			if (klen > h[1] - off || vlen > h[1] - off - klen)
				break;	/* checksummed, so only a bug gets here */
			kvex_map_set(e, p + off, klen,
				     op == 1 ? kvex_dup(p + off + klen, vlen) : NULL, vlen);
			off += klen + vlen;
		}
		free(p);
		e->applied += KVEX_HDR + h[1];
	}
	return 0;
}

static void kvex_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

static int kvex_env_open(void *vctx, const char *user, struct ma_kv_env **env_r,
			 struct ma_error_info *err)
{
	struct kvex_ctx *ctx = vctx;
	struct kvex_env *e = calloc(1, sizeof(*e));
	char p[4200];

	if (e == NULL)
		abort();
	e->log_fd = e->lock_fd = -1;
	pthread_mutex_init(&e->mu, NULL);
	if (snprintf(e->dir, sizeof(e->dir), "%s/%s", ctx->path, user) >= (int)sizeof(e->dir)) {
		free(e);
		return ma_error_set(err, MA_ERR_LIMIT, "User name too long");
	}
	(void)mkdir(ctx->path, 0700);
	snprintf(p, sizeof(p), "%s/blobs", e->dir);
	if ((mkdir(e->dir, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(p, 0700) < 0 && errno != EEXIST)) {
		kvex_sys(err, "mkdir", e->dir);
		free(e);
		return -1;
	}
	snprintf(p, sizeof(p), "%s/lock", e->dir);
	e->lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	snprintf(p, sizeof(p), "%s/log", e->dir);
	e->log_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (e->lock_fd < 0 || e->log_fd < 0) {
		kvex_sys(err, "open", p);
		if (e->lock_fd >= 0)
			close(e->lock_fd);
		if (e->log_fd >= 0)
			close(e->log_fd);
		free(e);
		return -1;
	}
	kvex_fsync_dir(e->dir);		/* the new files survive a crash */
	kvex_fsync_dir(ctx->path);
	if (kvex_catch_up(e, err) < 0) {
		close(e->lock_fd);
		close(e->log_fd);
		free(e);
		return -1;
	}
	*env_r = (struct ma_kv_env *)e;
	return 0;
}

static void kvex_drain(struct kvex_env *e)
{
	for (size_t i = 0; i < e->n_grave; i++)
		free(e->grave[i]);
	e->n_grave = 0;
}

static void kvex_env_close(struct ma_kv_env *env)
{
	struct kvex_env *e = (struct kvex_env *)env;

	for (size_t i = 0; i < e->n; i++) {
		free(e->ents[i].key);
		free(e->ents[i].val);
	}
	kvex_drain(e);
	free(e->ents);
	free(e->grave);
	close(e->log_fd);
	close(e->lock_fd);
	pthread_mutex_destroy(&e->mu);
	free(e);
}

static int kvex_txn_begin(struct ma_kv_env *env, bool write,
			  struct ma_kv_txn **txn_r, struct ma_error_info *err)
{
	struct kvex_env *e = (struct kvex_env *)env;
	struct kvex_txn *t;
	int rc = 0;

	/* The one-writer rule across processes: flock held until commit. */
	if (write && flock(e->lock_fd, LOCK_EX) < 0)
		return kvex_sys(err, "flock", e->dir);
	pthread_mutex_lock(&e->mu);
	if (write && e->writing) {
		pthread_mutex_unlock(&e->mu);
		return ma_error_set(err, MA_ERR_INTERNAL, "Nested write transaction");
	}
	if (!e->writing)
		rc = kvex_catch_up(e, err);
	/* A record cut short by a crash: cut it off before appending. */
	if (rc == 0 && write && ftruncate(e->log_fd, e->applied) < 0)
		rc = kvex_sys(err, "ftruncate", e->dir);
	if (rc < 0) {
		pthread_mutex_unlock(&e->mu);
		if (write)
			flock(e->lock_fd, LOCK_UN);
		return -1;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		abort();
	t->env = e;
	t->write = write;
	e->writing = e->writing || write;
	e->active++;
	pthread_mutex_unlock(&e->mu);
	*txn_r = (struct ma_kv_txn *)t;
	return 0;
}

static void kvex_txn_end(struct kvex_txn *t)
{
	struct kvex_env *e = t->env;

	pthread_mutex_lock(&e->mu);
	for (size_t i = 0; i < t->n_reads; i++)
		kvex_bury(e, t->reads[i]);
	if (t->write)
		e->writing = false;
	if (--e->active == 0)
		kvex_drain(e);
	pthread_mutex_unlock(&e->mu);
	if (t->write)
		flock(e->lock_fd, LOCK_UN);
	for (size_t i = 0; i < t->n_undo; i++) {
		free(t->undo[i].key);
		free(t->undo[i].old);
	}
	for (size_t i = 0; i < t->n_blobs; i++) {
		if (t->blobs[i].fd >= 0)
			close(t->blobs[i].fd);
		if (t->blobs[i].tmp[0] != '\0')
			unlink(t->blobs[i].tmp);	/* left over after an abort */
	}
	free(t->undo);
	free(t->blobs);
	free(t->reads);
	free(t->payload);
	free(t);
}

static void kvex_txn_abort(struct ma_kv_txn *txn)
{
	struct kvex_txn *t = (struct kvex_txn *)txn;
	struct kvex_env *e = t->env;

	/* Put back what this txn changed in the map, newest first. */
	pthread_mutex_lock(&e->mu);
	for (size_t i = t->n_undo; i-- > 0; ) {
		struct kvex_undo *u = &t->undo[i];
		kvex_map_set(e, u->key, u->klen, u->had ? u->old : NULL, u->olen);
		u->old = NULL;	/* the map owns it again */
	}
	pthread_mutex_unlock(&e->mu);
	kvex_txn_end(t);
}

static int kvex_txn_commit(struct ma_kv_txn *txn, struct ma_error_info *err)
{
	struct kvex_txn *t = (struct kvex_txn *)txn;
	struct kvex_env *e = t->env;
	char bdir[4200];
	bool renamed = false;

	if (!t->write || (t->plen == 0 && t->n_blobs == 0)) {
		kvex_txn_end(t);
		return 0;
	}
	/* 1. new blobs on disk, then in place (invisible until the log refers
	 * to them). Many blobs: one syncfs() costs less than an fsync each. */
	size_t n_new = 0;
	for (size_t i = 0; i < t->n_blobs; i++)
		n_new += t->blobs[i].fd >= 0;
	for (size_t i = 0; i < t->n_blobs; i++) {
		struct kvex_pending *b = &t->blobs[i];
		if (b->fd >= 0 && n_new <= 4 && fdatasync(b->fd) < 0) {
			kvex_sys(err, "fdatasync", b->tmp);
			kvex_txn_abort(txn);
			return -1;
		}
	}
	if (n_new > 4 && syncfs(e->log_fd) < 0) {
		kvex_sys(err, "syncfs", e->dir);
		kvex_txn_abort(txn);
		return -1;
	}
	for (size_t i = 0; i < t->n_blobs; i++) {
		struct kvex_pending *b = &t->blobs[i];
		if (b->tmp[0] == '\0')
			continue;
		if (rename(b->tmp, b->final) < 0) {
			kvex_sys(err, "rename", b->final);
			kvex_txn_abort(txn);
			return -1;
		}
		b->tmp[0] = '\0';
		b->final[0] = '\0';	/* done: not a delete */
		renamed = true;
	}
	snprintf(bdir, sizeof(bdir), "%s/blobs", e->dir);
	if (renamed)
		kvex_fsync_dir(bdir);
	/* 2. the log record: all or nothing, durable after fdatasync */
	if (t->plen > 0) {
		uint32_t h[3] = { KVEX_MAGIC, (uint32_t)t->plen, kvex_fnv(t->payload, t->plen) };
		if (pwrite(e->log_fd, h, sizeof(h), e->applied) != (ssize_t)sizeof(h) ||
		    pwrite(e->log_fd, t->payload, t->plen, e->applied + KVEX_HDR) !=
			    (ssize_t)t->plen ||
		    fdatasync(e->log_fd) < 0) {
			kvex_sys(err, "write", e->dir);
			(void)ftruncate(e->log_fd, e->applied);
			kvex_txn_abort(txn);
			return -1;
		}
		pthread_mutex_lock(&e->mu);
		e->applied += KVEX_HDR + t->plen;
		pthread_mutex_unlock(&e->mu);
	}
	/* 3. blobs deleted by this commit; a crash before leaves orphans only */
	for (size_t i = 0; i < t->n_blobs; i++)
		if (t->blobs[i].final[0] != '\0')
			unlink(t->blobs[i].final);
	kvex_txn_end(t);
	return 0;
}

/* Records one op in the payload and the map (with its undo). */
static void kvex_write(struct kvex_txn *t, const void *key, size_t klen,
		       const void *val, size_t vlen)
{
	struct kvex_env *e = t->env;
	size_t need = 9 + klen + (val ? vlen : 0);
	uint32_t k32 = (uint32_t)klen, v32 = (uint32_t)vlen;

	while (t->plen + need > t->pcap) {
		t->pcap = t->pcap ? t->pcap * 2 : 4096;
		t->payload = realloc(t->payload, t->pcap);
		if (t->payload == NULL)
			abort();
	}
	t->payload[t->plen] = val != NULL ? 1 : 2;
	memcpy(t->payload + t->plen + 1, &k32, 4);
	t->plen += 5;
	if (val != NULL) {
		memcpy(t->payload + t->plen, &v32, 4);
		t->plen += 4;
	}
	memcpy(t->payload + t->plen, key, klen);
	t->plen += klen;
	if (val != NULL) {
		memcpy(t->payload + t->plen, val, vlen);
		t->plen += vlen;
	}
	pthread_mutex_lock(&e->mu);
	size_t i = kvex_lower(e, key, klen);
	KVEX_GROW(t->undo, t->n_undo, t->cap_undo);
	struct kvex_undo *u = &t->undo[t->n_undo++];
	u->key = kvex_dup(key, klen);
	u->klen = klen;
	u->had = i < e->n && kvex_cmp(e->ents[i].key, e->ents[i].klen, key, klen) == 0;
	/* A copy of the old value for abort (the map parks the original
	 * until no txn is open, so readers' pointers stay valid). */
	u->old = u->had ? kvex_dup(e->ents[i].val, e->ents[i].vlen) : NULL;
	u->olen = u->had ? e->ents[i].vlen : 0;
	kvex_map_set(e, key, klen, val != NULL ? kvex_dup(val, vlen) : NULL, vlen);
	pthread_mutex_unlock(&e->mu);
}

static int kvex_get(struct ma_kv_txn *txn, const void *key, size_t klen,
		    struct ma_kv_val *val_r, struct ma_error_info *err)
{
	struct kvex_env *e = ((struct kvex_txn *)txn)->env;
	int found;

	(void)err;
	pthread_mutex_lock(&e->mu);
	size_t i = kvex_lower(e, key, klen);
	found = i < e->n && kvex_cmp(e->ents[i].key, e->ents[i].klen, key, klen) == 0;
	if (found) {
		val_r->data = e->ents[i].val;
		val_r->len = e->ents[i].vlen;
	}
	pthread_mutex_unlock(&e->mu);
	return found;
}

static int kvex_put(struct ma_kv_txn *txn, const void *key, size_t klen,
		    const void *val, size_t vlen, struct ma_error_info *err)
{
	struct kvex_txn *t = (struct kvex_txn *)txn;

	if (!t->write)
		return ma_error_set(err, MA_ERR_INTERNAL, "Write in a read transaction");
	if (klen > MA_KV_KEY_MAX || vlen > UINT32_MAX / 2)
		return ma_error_set(err, MA_ERR_LIMIT, "Key or value too large");
	kvex_write(t, key, klen, val != NULL ? val : "", vlen);
	return 0;
}

static int kvex_del(struct ma_kv_txn *txn, const void *key, size_t klen,
		    struct ma_error_info *err)
{
	struct kvex_txn *t = (struct kvex_txn *)txn;
	struct ma_kv_val v;

	if (!t->write)
		return ma_error_set(err, MA_ERR_INTERNAL, "Write in a read transaction");
	if (kvex_get(txn, key, klen, &v, err) == 0)
		return 0;
	kvex_write(t, key, klen, NULL, 0);
	return 1;
}

static int kvex_scan(struct ma_kv_txn *txn, const void *start, size_t slen,
		     const void *end, size_t elen, bool reverse,
		     ma_kv_scan_cb *cb, void *cbctx, struct ma_error_info *err)
{
	struct kvex_env *e = ((struct kvex_txn *)txn)->env;
	size_t lo, hi;

	(void)err;
	/* Callbacks read only; the map does not change under them. */
	pthread_mutex_lock(&e->mu);
	lo = kvex_lower(e, start, slen);
	hi = end != NULL ? kvex_lower(e, end, elen) : e->n;
	pthread_mutex_unlock(&e->mu);
	for (size_t k = lo; k < hi; k++) {
		size_t i = reverse ? hi - 1 - (k - lo) : k;
		if (cb(e->ents[i].key, e->ents[i].klen, e->ents[i].val,
		       e->ents[i].vlen, cbctx) != 0)
			break;
	}
	return 0;
}

static int kvex_blob_path(struct kvex_env *e, const void *key, size_t klen,
			  char *buf, size_t size, struct ma_error_info *err)
{
	const unsigned char *k = key;
	int n;

	if (klen == 0 || klen > KVEX_BLOB_KEY_MAX)
		return ma_error_set(err, MA_ERR_LIMIT, "Blob key too long");
	n = snprintf(buf, size, "%s/blobs/", e->dir);
	for (size_t i = 0; i < klen && (size_t)n + 3 < size; i++)
		n += snprintf(buf + n, size - (size_t)n, "%02x", k[i]);
	return 0;
}

static struct kvex_pending *kvex_pending_find(struct kvex_txn *t, const char *final)
{
	for (size_t i = t->n_blobs; i-- > 0; )
		if (strcmp(t->blobs[i].final, final) == 0)
			return &t->blobs[i];
	return NULL;
}

static int kvex_blob_put(struct ma_kv_txn *txn, const void *key, size_t klen,
			 const void *data, size_t len, struct ma_error_info *err)
{
	struct kvex_txn *t = (struct kvex_txn *)txn;
	static unsigned seq;
	struct kvex_pending *b;
	int fd;

	if (!t->write)
		return ma_error_set(err, MA_ERR_INTERNAL, "Write in a read transaction");
	KVEX_GROW(t->blobs, t->n_blobs, t->cap_blobs);
	b = &t->blobs[t->n_blobs];
	if (kvex_blob_path(t->env, key, klen, b->final, sizeof(b->final), err) < 0)
		return -1;
	struct kvex_pending *old = kvex_pending_find(t, b->final);
	if (old != NULL) {	/* this put replaces an earlier put or delete */
		if (old->tmp[0] != '\0')
			unlink(old->tmp);
		old->tmp[0] = '\0';
		old->final[0] = '\0';
	}
	b->fd = -1;
	snprintf(b->tmp, sizeof(b->tmp), "%s/blobs/tmp.%ld.%u", t->env->dir,
		 (long)getpid(), __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
	fd = open(b->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return kvex_sys(err, "open", b->tmp);
	for (size_t off = 0; off < len; ) {
		ssize_t w = write(fd, (const char *)data + off, len - off);
		if (w <= 0) {
			kvex_sys(err, "write", b->tmp);
			close(fd);
			unlink(b->tmp);
			return -1;
		}
		off += (size_t)w;
	}
	b->fd = fd;	/* synced at commit: one syncfs() for many blobs */
	t->n_blobs++;
	return 0;
}

static int kvex_blob_get(struct ma_kv_txn *txn, const void *key, size_t klen,
			 struct ma_kv_val *val_r, struct ma_error_info *err)
{
	struct kvex_txn *t = (struct kvex_txn *)txn;
	char path[4200];
	const char *open_path = path;
	struct stat st;
	unsigned char *buf;
	int fd;

	if (kvex_blob_path(t->env, key, klen, path, sizeof(path), err) < 0)
		return -1;
	struct kvex_pending *b = kvex_pending_find(t, path);
	if (b != NULL && b->tmp[0] == '\0')
		return 0;		/* deleted in this txn */
	if (b != NULL)
		open_path = b->tmp;	/* written in this txn */
	fd = open(open_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : kvex_sys(err, "open", open_path);
	if (fstat(fd, &st) < 0) {
		close(fd);
		return kvex_sys(err, "fstat", open_path);
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (buf == NULL)
		abort();
	for (size_t off = 0; off < (size_t)st.st_size; ) {
		ssize_t r = pread(fd, buf + off, (size_t)st.st_size - off, (off_t)off);
		if (r <= 0) {
			close(fd);
			free(buf);
			return kvex_sys(err, "read", open_path);
		}
		off += (size_t)r;
	}
	close(fd);
	KVEX_GROW(t->reads, t->n_reads, t->cap_reads);
	t->reads[t->n_reads++] = buf;	/* freed when the txn ends */
	val_r->data = buf;
	val_r->len = (size_t)st.st_size;
	return 1;
}

static int kvex_blob_del(struct ma_kv_txn *txn, const void *key, size_t klen,
			 struct ma_error_info *err)
{
	struct kvex_txn *t = (struct kvex_txn *)txn;
	struct kvex_pending *b;

	if (!t->write)
		return ma_error_set(err, MA_ERR_INTERNAL, "Write in a read transaction");
	KVEX_GROW(t->blobs, t->n_blobs, t->cap_blobs);
	b = &t->blobs[t->n_blobs];
	if (kvex_blob_path(t->env, key, klen, b->final, sizeof(b->final), err) < 0)
		return -1;
	struct kvex_pending *old = kvex_pending_find(t, b->final);
	if (old != NULL && old->tmp[0] != '\0') {
		unlink(old->tmp);	/* put then deleted in one txn */
		old->tmp[0] = '\0';
	}
	b->tmp[0] = '\0';
	b->fd = -1;
	t->n_blobs++;
	return 0;
}

static int kvex_init(struct ma_core *core, const struct ma_config_section *config,
		     void **ctx_r, const char **error_r)
{
	const char *path = config != NULL ? ma_config_get(config, "path", NULL) : NULL;
	struct kvex_ctx *ctx;

	(void)core;
	if (path == NULL || path[0] != '/') {
		*error_r = "store: 'path' must be set to an absolute directory";
		return -1;
	}
	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL || (ctx->path = strdup(path)) == NULL)
		abort();
	*ctx_r = ctx;
	return 0;
}

static void kvex_deinit(void *vctx)
{
	struct kvex_ctx *ctx = vctx;

	if (ctx != NULL)
		free(ctx->path);
	free(ctx);
}

static const struct ma_kv_ops kvex_ops = {
	.struct_size = sizeof(struct ma_kv_ops),
	.may_block = MA_STORE_MAY_BLOCK_READ | MA_STORE_MAY_BLOCK_WRITE,
	.env_open = kvex_env_open,
	.env_close = kvex_env_close,
	.txn_begin = kvex_txn_begin,
	.txn_commit = kvex_txn_commit,
	.txn_abort = kvex_txn_abort,
	.get = kvex_get,
	.put = kvex_put,
	.del = kvex_del,
	.scan = kvex_scan,
	.blob_put = kvex_blob_put,
	.blob_get = kvex_blob_get,
	.blob_del = kvex_blob_del,
};

static const struct ma_store_backend kvex_backend = {
	.struct_size = sizeof(struct ma_store_backend),
	.kv = &kvex_ops,
};

MA_PLUGIN_EXPORT const struct ma_plugin mailaccess_plugin = {
	MA_PLUGIN_INIT(MA_PLUGIN_STORE, "kvexample", "1.0"),
	.init = kvex_init,
	.deinit = kvex_deinit,
	.ops = &kvex_backend,
};
