/*
 * lmdb-kv.c - store-lmdb.so: the key-value level (kv.h) on LMDB. The core's
 * store-kv.c builds the whole mail level on top of it.
 *
 * Layout: one LMDB environment per user at PATH/<user>/ (directory 0700,
 * data.mdb + lock.mdb), with two named databases: "keys" (the mail-level
 * records) and "blobs" (message bytes and caches, usually on overflow
 * pages). See docs/store.md.
 *
 * Why the env table: LMDB forbids opening one environment twice in one
 * process (its locks are per process), so open envs are shared and
 * refcounted here behind a mutex. An entry remembers the pid that opened
 * it: after fork() the child must not touch its parent's MDB_env, so it
 * opens its own (the inherited entry is left alone, never closed).
 *
 * MDB_NOTLS: read transactions are not tied to a thread, so a reader may
 * be held across loop turns (streaming a RETR) and ended from another
 * thread. Commits are durable (no MDB_NOSYNC / MDB_NOMETASYNC): LMDB
 * fsyncs before mdb_txn_commit() returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include <mailaccess/mailaccess.h>

#define LMDB_DEFAULT_MAP_SIZE ((uint64_t)4 << 30)
#define LMDB_MAX_READERS 510

struct lmdb_ctx {
	char *path;
	size_t map_size;
};

struct ma_kv_env {
	struct ma_kv_env *next;
	char *dir;
	pid_t pid;
	unsigned refcount;
	MDB_env *env;
	MDB_dbi keys;
	MDB_dbi blobs;
};

struct ma_kv_txn {
	struct ma_kv_env *env;
	MDB_txn *txn;
	bool write;
};

static pthread_mutex_t lmdb_envs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ma_kv_env *lmdb_envs;

/* Maps an LMDB/errno code to a store error; logs the detail. */
static int lmdb_fail(struct ma_error_info *err, const struct ma_kv_env *env,
		     const char *what, int rc)
{
	const char *dir = env != NULL ? env->dir : "-";

	switch (rc) {
	case MDB_MAP_FULL:
		ma_log(MA_LOG_WARNING, "lmdb %s: %s: map full (raise map_size)",
		       dir, what);
		return ma_error_set(err, MA_ERR_QUOTA, "Mailbox store is full");
	case MDB_READERS_FULL:
		ma_log(MA_LOG_WARNING, "lmdb %s: %s: too many readers", dir, what);
		return ma_error_set(err, MA_ERR_TEMP, "Store busy, try again");
	case EACCES:
	case EPERM:
		ma_log(MA_LOG_ERROR, "lmdb %s: %s: %s", dir, what, mdb_strerror(rc));
		return ma_error_set(err, MA_ERR_PERM, "Store not accessible");
	case ENOMEM:
	case ENOSPC:
	case EIO:
	case EAGAIN:
	case EBUSY:
		ma_log(MA_LOG_ERROR, "lmdb %s: %s: %s", dir, what, mdb_strerror(rc));
		return ma_error_set(err, MA_ERR_TEMP, "Temporary store failure");
	case MDB_BAD_VALSIZE:
		return ma_error_set(err, MA_ERR_LIMIT, "Key or value too large");
	default:
		ma_log(MA_LOG_ERROR, "lmdb %s: %s: %s", dir, what, mdb_strerror(rc));
		return ma_error_set(err, MA_ERR_INTERNAL, "Internal store error");
	}
}

static int lmdb_init(struct ma_core *core, const struct ma_config_section *config,
		     void **ctx_r, const char **error_r)
{
	(void)core;
	const char *path = config != NULL ? ma_config_get(config, "path", NULL) : NULL;
	uint64_t map_size = LMDB_DEFAULT_MAP_SIZE;
	char *cerr = NULL;

	if (path == NULL || path[0] != '/') {
		*error_r = "store: 'path' must be set to an absolute directory";
		return -1;
	}
	if (config != NULL &&
	    ma_config_get_size(config, "map_size", LMDB_DEFAULT_MAP_SIZE,
			       &map_size, &cerr) < 0) {
		*error_r = cerr;	/* leaked once, the program exits */
		return -1;
	}
	if (map_size < (1u << 20) || map_size > SIZE_MAX / 2) {
		*error_r = "store: map_size must be between 1M and half the address space";
		return -1;
	}
	/* The root directory is not created here: init runs in the master,
	 * possibly as root, and a root-owned 0700 directory would lock the
	 * unprivileged workers out. It is created on first use (env_open). */
	struct lmdb_ctx *ctx = ma_malloc0(sizeof(*ctx));
	ctx->path = ma_strdup(path);
	ctx->map_size = (size_t)map_size;
	*ctx_r = ctx;
	return 0;
}

static void lmdb_deinit(void *vctx)
{
	struct lmdb_ctx *ctx = vctx;

	if (ctx == NULL)
		return;
	free(ctx->path);
	free(ctx);
}

static int lmdb_env_setup(struct ma_kv_env *e, size_t map_size,
			  struct ma_error_info *err)
{
	int rc;
	MDB_txn *txn;
	int dead = 0;

	if ((rc = mdb_env_create(&e->env)) != 0)
		return lmdb_fail(err, e, "env_create", rc);
	if ((rc = mdb_env_set_maxdbs(e->env, 2)) != 0 ||
	    (rc = mdb_env_set_maxreaders(e->env, LMDB_MAX_READERS)) != 0 ||
	    (rc = mdb_env_set_mapsize(e->env, map_size)) != 0)
		goto fail;
	if ((rc = mdb_env_open(e->env, e->dir, MDB_NOTLS, 0600)) != 0)
		goto fail;
	/* A process killed inside a read txn leaves its reader slot taken:
	 * clear those so the file does not grow forever. */
	(void)mdb_reader_check(e->env, &dead);
	if (dead > 0)
		ma_log(MA_LOG_NOTICE, "lmdb %s: cleared %d stale readers", e->dir, dead);

	if ((rc = mdb_txn_begin(e->env, NULL, 0, &txn)) != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, "keys", MDB_CREATE, &e->keys)) != 0 ||
	    (rc = mdb_dbi_open(txn, "blobs", MDB_CREATE, &e->blobs)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	return 0;
fail:
	lmdb_fail(err, e, "env_open", rc);
	mdb_env_close(e->env);
	e->env = NULL;
	return -1;
}

/* fsync a directory so a new entry in it survives power loss (LMDB
 * syncs its files, not the directories that name them). */
static void lmdb_sync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (fsync(fd) < 0)
		ma_log(MA_LOG_WARNING, "lmdb: fsync %s: %s", path, strerror(errno));
	close(fd);
}

static int lmdb_env_open(void *vctx, const char *user, struct ma_kv_env **env_r,
			 struct ma_error_info *err)
{
	struct lmdb_ctx *ctx = vctx;
	char dir[PATH_MAX];
	pid_t pid = getpid();
	struct ma_kv_env *e;

	/* The core validated the user name (no '/', no ".."). */
	if (snprintf(dir, sizeof(dir), "%s/%s", ctx->path, user) >= (int)sizeof(dir))
		return ma_error_set(err, MA_ERR_LIMIT, "User name too long");

	pthread_mutex_lock(&lmdb_envs_lock);
	for (e = lmdb_envs; e != NULL; e = e->next) {
		if (e->pid == pid && strcmp(e->dir, dir) == 0) {
			e->refcount++;
			pthread_mutex_unlock(&lmdb_envs_lock);
			*env_r = e;
			return 0;
		}
	}
	/* Root dir, then the user's: 0700, mail is private. */
	if ((mkdir(ctx->path, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(dir, 0700) < 0 && errno != EEXIST)) {
		int en = errno;
		pthread_mutex_unlock(&lmdb_envs_lock);
		ma_log(MA_LOG_ERROR, "lmdb: mkdir %s: %s", dir, strerror(en));
		return ma_error_set(err, en == EACCES ? MA_ERR_PERM : MA_ERR_TEMP,
				    "Cannot create user store");
	}
	char datafile[PATH_MAX + 16];
	struct stat stbuf;
	snprintf(datafile, sizeof(datafile), "%s/data.mdb", dir);
	bool fresh = stat(datafile, &stbuf) < 0;

	e = ma_malloc0(sizeof(*e));
	e->dir = ma_strdup(dir);
	e->pid = pid;
	e->refcount = 1;
	if (lmdb_env_setup(e, ctx->map_size, err) < 0) {
		pthread_mutex_unlock(&lmdb_envs_lock);
		free(e->dir);
		free(e);
		return -1;
	}
	if (fresh) {
		/* A new user: make the files and directories durable before
		 * the first commit is acknowledged. */
		lmdb_sync_dir(dir);
		lmdb_sync_dir(ctx->path);
	}
	e->next = lmdb_envs;
	lmdb_envs = e;
	pthread_mutex_unlock(&lmdb_envs_lock);
	*env_r = e;
	return 0;
}

static void lmdb_env_close(struct ma_kv_env *env)
{
	struct ma_kv_env **p;

	if (env == NULL)
		return;
	pthread_mutex_lock(&lmdb_envs_lock);
	if (--env->refcount > 0) {
		pthread_mutex_unlock(&lmdb_envs_lock);
		return;
	}
	for (p = &lmdb_envs; *p != NULL; p = &(*p)->next) {
		if (*p == env) {
			*p = env->next;
			break;
		}
	}
	pthread_mutex_unlock(&lmdb_envs_lock);
	/* Only the process that opened it may close it (see top). */
	if (env->pid == getpid())
		mdb_env_close(env->env);
	free(env->dir);
	free(env);
}

static int lmdb_txn_begin(struct ma_kv_env *env, bool write,
			  struct ma_kv_txn **txn_r, struct ma_error_info *err)
{
	MDB_txn *txn = NULL;
	int rc = mdb_txn_begin(env->env, NULL, write ? 0 : MDB_RDONLY, &txn);

	if (rc == MDB_READERS_FULL) {
		/* Slots of readers that died since the env was opened. */
		int dead = 0;
		if (mdb_reader_check(env->env, &dead) == 0 && dead > 0) {
			ma_log(MA_LOG_NOTICE, "lmdb %s: cleared %d stale readers",
			       env->dir, dead);
			rc = mdb_txn_begin(env->env, NULL, write ? 0 : MDB_RDONLY, &txn);
		}
	}
	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map: adopt its size and retry. */
		if (mdb_env_set_mapsize(env->env, 0) == 0)
			rc = mdb_txn_begin(env->env, NULL, write ? 0 : MDB_RDONLY, &txn);
	}
	if (rc != 0)
		return lmdb_fail(err, env, "txn_begin", rc);
	struct ma_kv_txn *t = ma_malloc0(sizeof(*t));
	t->env = env;
	t->txn = txn;
	t->write = write;
	*txn_r = t;
	return 0;
}

static int lmdb_txn_commit(struct ma_kv_txn *t, struct ma_error_info *err)
{
	int rc = mdb_txn_commit(t->txn);
	struct ma_kv_env *env = t->env;

	free(t);
	if (rc != 0)
		return lmdb_fail(err, env, "commit", rc);
	return 0;
}

static void lmdb_txn_abort(struct ma_kv_txn *t)
{
	if (t == NULL)
		return;
	mdb_txn_abort(t->txn);
	free(t);
}

static int lmdb_get_dbi(struct ma_kv_txn *t, MDB_dbi dbi, const void *key,
			size_t klen, struct ma_kv_val *val_r,
			struct ma_error_info *err)
{
	MDB_val k = { klen, (void *)key }, v;
	int rc;

	if (klen == 0 || klen > MA_KV_KEY_MAX)
		return ma_error_set(err, MA_ERR_BADARGS, "Bad key length");
	rc = mdb_get(t->txn, dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return lmdb_fail(err, t->env, "get", rc);
	val_r->data = v.mv_data;
	val_r->len = v.mv_size;
	return 1;
}

static int lmdb_put_dbi(struct ma_kv_txn *t, MDB_dbi dbi, const void *key,
			size_t klen, const void *val, size_t vlen,
			struct ma_error_info *err)
{
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };
	int rc;

	if (!t->write)
		return ma_error_set(err, MA_ERR_INTERNAL, "Write in a read transaction");
	if (klen == 0 || klen > MA_KV_KEY_MAX)
		return ma_error_set(err, MA_ERR_BADARGS, "Bad key length");
	if (vlen > MA_KV_BLOB_MAX)
		return ma_error_set(err, MA_ERR_LIMIT, "Value too large");
	rc = mdb_put(t->txn, dbi, &k, &v, 0);
	if (rc != 0)
		return lmdb_fail(err, t->env, "put", rc);
	return 0;
}

static int lmdb_del_dbi(struct ma_kv_txn *t, MDB_dbi dbi, const void *key,
			size_t klen, struct ma_error_info *err)
{
	MDB_val k = { klen, (void *)key };
	int rc;

	if (!t->write)
		return ma_error_set(err, MA_ERR_INTERNAL, "Write in a read transaction");
	if (klen == 0 || klen > MA_KV_KEY_MAX)
		return ma_error_set(err, MA_ERR_BADARGS, "Bad key length");
	rc = mdb_del(t->txn, dbi, &k, NULL);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return lmdb_fail(err, t->env, "del", rc);
	return 1;
}

static int lmdb_get(struct ma_kv_txn *t, const void *key, size_t klen,
		    struct ma_kv_val *val_r, struct ma_error_info *err)
{
	return lmdb_get_dbi(t, t->env->keys, key, klen, val_r, err);
}

static int lmdb_put(struct ma_kv_txn *t, const void *key, size_t klen,
		    const void *val, size_t vlen, struct ma_error_info *err)
{
	return lmdb_put_dbi(t, t->env->keys, key, klen, val, vlen, err);
}

static int lmdb_del(struct ma_kv_txn *t, const void *key, size_t klen,
		    struct ma_error_info *err)
{
	return lmdb_del_dbi(t, t->env->keys, key, klen, err);
}

static int lmdb_blob_get(struct ma_kv_txn *t, const void *key, size_t klen,
			 struct ma_kv_val *val_r, struct ma_error_info *err)
{
	return lmdb_get_dbi(t, t->env->blobs, key, klen, val_r, err);
}

static int lmdb_blob_put(struct ma_kv_txn *t, const void *key, size_t klen,
			 const void *data, size_t len, struct ma_error_info *err)
{
	return lmdb_put_dbi(t, t->env->blobs, key, klen, data, len, err);
}

static int lmdb_blob_del(struct ma_kv_txn *t, const void *key, size_t klen,
			 struct ma_error_info *err)
{
	int rc = lmdb_del_dbi(t, t->env->blobs, key, klen, err);
	return rc < 0 ? -1 : 0;
}

/* memcmp order with the shorter key first on a tie: LMDB's default. */
static int lmdb_keycmp(const void *a, size_t alen, const void *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n > 0 ? memcmp(a, b, n) : 0;

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int lmdb_scan(struct ma_kv_txn *t, const void *start, size_t slen,
		     const void *end, size_t elen, bool reverse,
		     ma_kv_scan_cb *cb, void *cbctx, struct ma_error_info *err)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(t->txn, t->env->keys, &cur)) != 0)
		return lmdb_fail(err, t->env, "cursor_open", rc);

	if (!reverse) {
		if (slen > 0) {
			k.mv_size = slen;
			k.mv_data = (void *)start;
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		} else {
			rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		}
		while (rc == 0) {
			if (end != NULL &&
			    lmdb_keycmp(k.mv_data, k.mv_size, end, elen) >= 0)
				break;
			if (cb(k.mv_data, k.mv_size, v.mv_data, v.mv_size, cbctx) != 0)
				break;
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
	} else {
		if (end != NULL) {
			k.mv_size = elen;
			k.mv_data = (void *)end;
			rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
			/* First key >= end, so step back one (or start at the
			 * last key when all keys are < end). */
			if (rc == 0)
				rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
			else if (rc == MDB_NOTFOUND)
				rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
		} else {
			rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
		}
		while (rc == 0) {
			if (lmdb_keycmp(k.mv_data, k.mv_size, start, slen) < 0)
				break;
			if (cb(k.mv_data, k.mv_size, v.mv_data, v.mv_size, cbctx) != 0)
				break;
			rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
		}
	}
	mdb_cursor_close(cur);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return lmdb_fail(err, t->env, "scan", rc);
	return 0;
}

static const struct ma_kv_ops lmdb_kv_ops = {
	.struct_size = sizeof(struct ma_kv_ops),
	/* Commits fsync; a cold page fault may read the disk. */
	.may_block = MA_STORE_MAY_BLOCK_READ | MA_STORE_MAY_BLOCK_WRITE,
	.env_open = lmdb_env_open,
	.env_close = lmdb_env_close,
	.txn_begin = lmdb_txn_begin,
	.txn_commit = lmdb_txn_commit,
	.txn_abort = lmdb_txn_abort,
	.get = lmdb_get,
	.put = lmdb_put,
	.del = lmdb_del,
	.scan = lmdb_scan,
	.blob_put = lmdb_blob_put,
	.blob_get = lmdb_blob_get,
	.blob_del = lmdb_blob_del,
};

static const struct ma_store_backend lmdb_backend = {
	.struct_size = sizeof(struct ma_store_backend),
	.mail = NULL,
	.kv = &lmdb_kv_ops,
};

MA_PLUGIN_EXPORT const struct ma_plugin mailaccess_plugin = {
	MA_PLUGIN_INIT(MA_PLUGIN_STORE, "lmdb", "1.0"),
	.init = lmdb_init,
	.deinit = lmdb_deinit,
	.ops = &lmdb_backend,
};
