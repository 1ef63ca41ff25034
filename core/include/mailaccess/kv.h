/*
 * kv.h - the store's key-value level. A backend that implements only this
 * (LMDB, RocksDB, an object store, ...) gets the whole mail level from the
 * core (core/lib/store-kv.c: UID allocation, UIDVALIDITY/UIDNEXT, flags,
 * keywords, modseq, the change log, caches).
 *
 * Model: one environment per user (the user name is validated by the
 * core, safe for paths). Ordered binary keys (memcmp order) up to
 * MA_KV_KEY_MAX bytes. Transactions: any number of readers, one writer at a
 * time per environment across all processes; a reader sees one consistent
 * snapshot; commit is atomic and durable when it returns 0 (fsync or
 * equivalent). Blobs are a separate key space for message bytes, which may
 * be large (MA_KV_BLOB_MAX).
 *
 * Pointers returned by get/blob_get/scan stay valid until the transaction
 * ends (LMDB: straight into the map, no copy). A read transaction may be
 * held across loop turns (streaming a message) and may be ended from any
 * thread, but is used by one thread at a time.
 *
 * All functions return 0 / 1 as documented, or -1 with err filled.
 */
#ifndef MAILACCESS_KV_H
#define MAILACCESS_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ma_error_info;

#define MA_KV_KEY_MAX 480
#define MA_KV_BLOB_MAX ((size_t)1 << 31)

struct ma_kv_env;	/* backend-defined */
struct ma_kv_txn;	/* backend-defined */

struct ma_kv_val {
	const void *data;
	size_t len;
};

/* Return 0 to continue, 1 to stop the scan (scan then returns 0). */
typedef int ma_kv_scan_cb(const void *key, size_t klen, const void *val,
			  size_t vlen, void *ctx);

struct ma_kv_ops {
	uint32_t struct_size;	/* sizeof(struct ma_kv_ops) */
	uint32_t may_block;	/* MA_STORE_MAY_BLOCK_* (store.h) */

	/* Opens (creating on first use) the user's environment. An env may be
	 * opened several times in one process; the backend shares and
	 * refcounts where its engine needs it (LMDB does). */
	int (*env_open)(void *ctx, const char *user, struct ma_kv_env **env_r,
			struct ma_error_info *err);
	void (*env_close)(struct ma_kv_env *env);

	int (*txn_begin)(struct ma_kv_env *env, bool write,
			 struct ma_kv_txn **txn_r, struct ma_error_info *err);
	/* Durable on 0. Ends the txn either way. Read txns may commit too. */
	int (*txn_commit)(struct ma_kv_txn *txn, struct ma_error_info *err);
	void (*txn_abort)(struct ma_kv_txn *txn);

	/* 1 found (val_r set), 0 not found, -1 error. */
	int (*get)(struct ma_kv_txn *txn, const void *key, size_t klen,
		   struct ma_kv_val *val_r, struct ma_error_info *err);
	int (*put)(struct ma_kv_txn *txn, const void *key, size_t klen,
		   const void *val, size_t vlen, struct ma_error_info *err);
	/* 1 deleted, 0 was absent, -1 error. */
	int (*del)(struct ma_kv_txn *txn, const void *key, size_t klen,
		   struct ma_error_info *err);
	/* Keys k with start <= k < end in ascending order (end NULL = to the
	 * last key); reverse = descending over the same range. */
	int (*scan)(struct ma_kv_txn *txn, const void *start, size_t slen,
		    const void *end, size_t elen, bool reverse,
		    ma_kv_scan_cb *cb, void *cbctx, struct ma_error_info *err);

	/* Blobs: message bytes, keyed like the rest. */
	int (*blob_put)(struct ma_kv_txn *txn, const void *key, size_t klen,
			const void *data, size_t len, struct ma_error_info *err);
	/* 1 found, 0 not found, -1 error. */
	int (*blob_get)(struct ma_kv_txn *txn, const void *key, size_t klen,
			struct ma_kv_val *val_r, struct ma_error_info *err);
	int (*blob_del)(struct ma_kv_txn *txn, const void *key, size_t klen,
			struct ma_error_info *err);
};

#endif
