/*
 * store-kv.c - the whole mail level (struct ma_store_ops) on top of a
 * key-value backend (struct ma_kv_ops): UID and UIDVALIDITY allocation,
 * modseq, flags and keywords, exact per-mailbox counters, the change log
 * that makes sync proportional to the changes, blobs shared between copies
 * (refcounted), and verify/repair. The key schema is documented in
 * docs/store.md; change it only with a format version bump.
 *
 * Every write op is one kv write transaction, committed (durable) before
 * the op returns 0. Reads run in a read transaction (one snapshot). Every
 * size and count that comes from outside is bounded here: keyword names
 * and count (MA_KEYWORDS_MAX), mailbox name length (the kv key limit),
 * mailboxes per user, messages per append.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core-private.h"

/* ---- limits ---- */
#define KVS_FORMAT_VERSION 1u
#define KVS_MAILBOXES_MAX 10000u	/* per user: LIST stays cheap */
#define KVS_KEYWORD_LEN_MAX 100u	/* bytes of one keyword name */
#define KVS_NAME_MAX (MA_KV_KEY_MAX - 1)	/* 'N' + name must fit a key */
#define KVS_APPEND_MAX 100000u		/* messages in one append call */

/* ---- key prefixes (docs/store.md) ---- */
#define KVS_K_HEADER 'H'	/* 'H' -> user header */
#define KVS_K_NAME 'N'		/* 'N' name -> mailbox id */
#define KVS_K_BOX 'B'		/* 'B' id32 -> mailbox record */
#define KVS_K_MSG 'M'		/* 'M' id32 uid32 -> message record */
#define KVS_K_LOG 'C'		/* 'C' id32 modseq64 uid32 -> kind */
#define KVS_K_REF 'R'		/* 'R' guid -> refcount32 (blob users) */
#define KVS_B_MSG 'G'		/* blob 'G' guid -> message bytes */
#define KVS_B_CACHE 'c'		/* blob 'c' guid -> cache bytes */

#define KVS_LOG_EXISTS 1u	/* message added or changed at this modseq */
#define KVS_LOG_EXPUNGED 2u	/* message expunged at this modseq */

#define KVS_MSG_REC_SIZE 60u

struct kvs_ctx {
	const struct ma_kv_ops *kv;
	void *kv_ctx;
};

struct kvs_user {
	struct kvs_ctx *ctx;
	const struct ma_kv_ops *kv;
	struct ma_kv_env *env;
	char *name;
};

struct kvs_header {
	uint32_t version;
	uint32_t next_mbox_id;
	uint32_t last_uidvalidity;
	uint32_t n_mailboxes;
};

struct kvs_mbox {
	uint32_t id;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
	uint32_t unseen;
	uint64_t size;
	uint32_t attrs;
	char name[KVS_NAME_MAX + 1];
	unsigned n_kw;
	char kw[MA_KEYWORDS_MAX][KVS_KEYWORD_LEN_MAX + 1];
};

struct kvs_box {
	struct kvs_user *u;
	uint32_t id;
	bool readonly;
	struct ma_mailbox_status st;	/* st.highestmodseq = view's modseq */
	struct ma_msg *msgs;
	uint32_t count, alloc;
	char **kw;
	unsigned n_kw;
	uint32_t *expunged, *changed;
	unsigned n_expunged, n_changed;
};

/* A read txn handed out with message bytes; freed on release. */
struct kvs_read {
	const struct ma_kv_ops *kv;
	struct ma_kv_txn *txn;
};

/* ---------------- encoding ---------------- */

static void kvs_put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

static void kvs_put64(unsigned char *p, uint64_t v)
{
	kvs_put32(p, (uint32_t)(v >> 32));
	kvs_put32(p + 4, (uint32_t)v);
}

static uint32_t kvs_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t kvs_get64(const unsigned char *p)
{
	return (uint64_t)kvs_get32(p) << 32 | kvs_get32(p + 4);
}

static size_t kvs_key_box(unsigned char *k, uint32_t id)
{
	k[0] = KVS_K_BOX;
	kvs_put32(k + 1, id);
	return 5;
}

static size_t kvs_key_msg(unsigned char *k, uint32_t id, uint32_t uid)
{
	k[0] = KVS_K_MSG;
	kvs_put32(k + 1, id);
	kvs_put32(k + 5, uid);
	return 9;
}

static size_t kvs_key_log(unsigned char *k, uint32_t id, uint64_t modseq,
			  uint32_t uid)
{
	k[0] = KVS_K_LOG;
	kvs_put32(k + 1, id);
	kvs_put64(k + 5, modseq);
	kvs_put32(k + 13, uid);
	return 17;
}

static size_t kvs_key_guid(unsigned char *k, char prefix, const uint8_t *guid)
{
	k[0] = (unsigned char)prefix;
	memcpy(k + 1, guid, MA_GUID_SIZE);
	return 1 + MA_GUID_SIZE;
}

static size_t kvs_key_name(unsigned char *k, const char *name)
{
	size_t n = strlen(name);

	k[0] = KVS_K_NAME;
	memcpy(k + 1, name, n);
	return n + 1;
}

static void kvs_msg_encode(unsigned char *p, const struct ma_msg *m)
{
	kvs_put32(p, m->flags);
	kvs_put64(p + 4, m->keywords);
	kvs_put64(p + 12, m->modseq);
	kvs_put64(p + 20, (uint64_t)m->internal_date);
	kvs_put32(p + 28, (uint32_t)m->internal_tz);
	kvs_put32(p + 32, m->cache_size);
	kvs_put64(p + 36, m->size);
	memcpy(p + 44, m->guid, MA_GUID_SIZE);
}

static int kvs_msg_decode(const void *v, size_t len, uint32_t uid,
			  struct ma_msg *m)
{
	const unsigned char *p = v;

	if (len != KVS_MSG_REC_SIZE)
		return -1;
	memset(m, 0, sizeof(*m));
	m->uid = uid;
	m->flags = kvs_get32(p) & MA_FLAGS_ALL;
	m->keywords = kvs_get64(p + 4);
	m->modseq = kvs_get64(p + 12);
	m->internal_date = (int64_t)kvs_get64(p + 20);
	m->internal_tz = (int32_t)kvs_get32(p + 28);
	m->cache_size = kvs_get32(p + 32);
	m->size = kvs_get64(p + 36);
	memcpy(m->guid, p + 44, MA_GUID_SIZE);
	return 0;
}

/* Mailbox record: fixed part, then name (u16 len), then keywords (u8 n,
 * each u8 len + bytes). */
#define KVS_MBOX_FIXED 44u
#define KVS_MBOX_REC_MAX (KVS_MBOX_FIXED + 2 + KVS_NAME_MAX + 1 + \
			  MA_KEYWORDS_MAX * (1 + KVS_KEYWORD_LEN_MAX))

static size_t kvs_mbox_encode(unsigned char *p, const struct kvs_mbox *b)
{
	size_t off, n = strlen(b->name);

	kvs_put32(p, b->id);
	kvs_put32(p + 4, b->uidvalidity);
	kvs_put32(p + 8, b->uidnext);
	kvs_put64(p + 12, b->highestmodseq);
	kvs_put32(p + 20, b->messages);
	kvs_put32(p + 24, b->unseen);
	kvs_put64(p + 28, b->size);
	kvs_put32(p + 36, b->attrs);
	kvs_put32(p + 40, 0);	/* reserved */
	p[44] = (unsigned char)(n >> 8);
	p[45] = (unsigned char)n;
	memcpy(p + 46, b->name, n);
	off = 46 + n;
	p[off++] = (unsigned char)b->n_kw;
	for (unsigned i = 0; i < b->n_kw; i++) {
		size_t kl = strlen(b->kw[i]);
		p[off++] = (unsigned char)kl;
		memcpy(p + off, b->kw[i], kl);
		off += kl;
	}
	return off;
}

static int kvs_mbox_decode(const void *v, size_t len, struct kvs_mbox *b)
{
	const unsigned char *p = v;
	size_t off, n;

	if (len < KVS_MBOX_FIXED + 3)
		return -1;
	b->id = kvs_get32(p);
	b->uidvalidity = kvs_get32(p + 4);
	b->uidnext = kvs_get32(p + 8);
	b->highestmodseq = kvs_get64(p + 12);
	b->messages = kvs_get32(p + 20);
	b->unseen = kvs_get32(p + 24);
	b->size = kvs_get64(p + 28);
	b->attrs = kvs_get32(p + 36);
	n = (size_t)p[44] << 8 | p[45];
	if (n > KVS_NAME_MAX || 46 + n + 1 > len)
		return -1;
	memcpy(b->name, p + 46, n);
	b->name[n] = '\0';
	off = 46 + n;
	b->n_kw = p[off++];
	if (b->n_kw > MA_KEYWORDS_MAX)
		return -1;
	for (unsigned i = 0; i < b->n_kw; i++) {
		if (off >= len)
			return -1;
		size_t kl = p[off++];
		if (kl > KVS_KEYWORD_LEN_MAX || off + kl > len)
			return -1;
		memcpy(b->kw[i], p + off, kl);
		b->kw[i][kl] = '\0';
		off += kl;
	}
	return 0;
}

/* ---------------- record access inside a txn ---------------- */

static int kvs_corrupt(struct kvs_user *u, const char *what,
		       struct ma_error_info *err)
{
	ma_log(MA_LOG_ERROR, "store user=%s: corrupt %s record (run verify)",
	       u->name, what);
	return ma_error_set(err, MA_ERR_INTERNAL, "Store is damaged, see the log");
}

/* 1 found, 0 absent, -1 error. */
static int kvs_header_get(struct kvs_user *u, struct ma_kv_txn *txn,
			  struct kvs_header *h, struct ma_error_info *err)
{
	unsigned char k = KVS_K_HEADER;
	struct ma_kv_val v;
	int rc = u->kv->get(txn, &k, 1, &v, err);

	if (rc <= 0)
		return rc;
	if (v.len < 16)
		return kvs_corrupt(u, "header", err);
	const unsigned char *p = v.data;
	h->version = kvs_get32(p);
	h->next_mbox_id = kvs_get32(p + 4);
	h->last_uidvalidity = kvs_get32(p + 8);
	h->n_mailboxes = kvs_get32(p + 12);
	if (h->version != KVS_FORMAT_VERSION) {
		ma_log(MA_LOG_ERROR, "store user=%s: unknown format version %u",
		       u->name, h->version);
		return ma_error_set(err, MA_ERR_INTERNAL, "Unknown store format");
	}
	return 1;
}

static int kvs_header_put(struct kvs_user *u, struct ma_kv_txn *txn,
			  const struct kvs_header *h, struct ma_error_info *err)
{
	unsigned char k = KVS_K_HEADER, p[16];

	kvs_put32(p, h->version);
	kvs_put32(p + 4, h->next_mbox_id);
	kvs_put32(p + 8, h->last_uidvalidity);
	kvs_put32(p + 12, h->n_mailboxes);
	return u->kv->put(txn, &k, 1, p, sizeof(p), err);
}

static int kvs_name_get(struct kvs_user *u, struct ma_kv_txn *txn,
			const char *name, uint32_t *id_r, struct ma_error_info *err)
{
	unsigned char k[MA_KV_KEY_MAX];
	struct ma_kv_val v;
	int rc;

	if (strlen(name) > KVS_NAME_MAX)
		return 0;
	rc = u->kv->get(txn, k, kvs_key_name(k, name), &v, err);
	if (rc <= 0)
		return rc;
	if (v.len != 4)
		return kvs_corrupt(u, "name", err);
	*id_r = kvs_get32(v.data);
	return 1;
}

static int kvs_box_get(struct kvs_user *u, struct ma_kv_txn *txn, uint32_t id,
		       struct kvs_mbox *b, struct ma_error_info *err)
{
	unsigned char k[8];
	struct ma_kv_val v;
	int rc = u->kv->get(txn, k, kvs_key_box(k, id), &v, err);

	if (rc <= 0)
		return rc;
	if (kvs_mbox_decode(v.data, v.len, b) < 0 || b->id != id)
		return kvs_corrupt(u, "mailbox", err);
	return 1;
}

static int kvs_box_put(struct kvs_user *u, struct ma_kv_txn *txn,
		       const struct kvs_mbox *b, struct ma_error_info *err)
{
	unsigned char k[8];
	unsigned char *p = ma_malloc0(KVS_MBOX_REC_MAX);
	size_t len = kvs_mbox_encode(p, b);
	int rc = u->kv->put(txn, k, kvs_key_box(k, b->id), p, len, err);

	free(p);
	return rc;
}

/* Mailbox by name: 1 found, 0 absent (err set NOTFOUND), -1 error. */
static int kvs_box_by_name(struct kvs_user *u, struct ma_kv_txn *txn,
			   const char *name, struct kvs_mbox *b,
			   struct ma_error_info *err)
{
	uint32_t id;
	int rc = kvs_name_get(u, txn, name, &id, err);

	if (rc == 0) {
		ma_error_set(err, MA_ERR_NOTFOUND, "Mailbox doesn't exist: %s", name);
		return 0;
	}
	if (rc < 0)
		return -1;
	rc = kvs_box_get(u, txn, id, b, err);
	if (rc == 0)
		return kvs_corrupt(u, "name->mailbox", err);
	return rc;
}

static int kvs_msg_get(struct kvs_user *u, struct ma_kv_txn *txn, uint32_t id,
		       uint32_t uid, struct ma_msg *m, struct ma_error_info *err)
{
	unsigned char k[16];
	struct ma_kv_val v;
	int rc = u->kv->get(txn, k, kvs_key_msg(k, id, uid), &v, err);

	if (rc <= 0)
		return rc;
	if (kvs_msg_decode(v.data, v.len, uid, m) < 0)
		return kvs_corrupt(u, "message", err);
	return 1;
}

static int kvs_msg_put(struct kvs_user *u, struct ma_kv_txn *txn, uint32_t id,
		       const struct ma_msg *m, struct ma_error_info *err)
{
	unsigned char k[16], p[KVS_MSG_REC_SIZE];

	kvs_msg_encode(p, m);
	return u->kv->put(txn, k, kvs_key_msg(k, id, m->uid), p, sizeof(p), err);
}

static int kvs_log_put(struct kvs_user *u, struct ma_kv_txn *txn, uint32_t id,
		       uint64_t modseq, uint32_t uid, unsigned kind,
		       struct ma_error_info *err)
{
	unsigned char k[24], v = (unsigned char)kind;

	return u->kv->put(txn, k, kvs_key_log(k, id, modseq, uid), &v, 1, err);
}

static int kvs_log_del(struct kvs_user *u, struct ma_kv_txn *txn, uint32_t id,
		       uint64_t modseq, uint32_t uid, struct ma_error_info *err)
{
	unsigned char k[24];

	return u->kv->del(txn, k, kvs_key_log(k, id, modseq, uid), err) < 0 ? -1 : 0;
}

/* Adds delta to a blob's user count; at zero the blobs go. */
static int kvs_ref_add(struct kvs_user *u, struct ma_kv_txn *txn,
		       const uint8_t *guid, int delta, struct ma_error_info *err)
{
	unsigned char k[24], p[4];
	struct ma_kv_val v;
	size_t klen = kvs_key_guid(k, KVS_K_REF, guid);
	int64_t n = 0;
	int rc = u->kv->get(txn, k, klen, &v, err);

	if (rc < 0)
		return -1;
	if (rc > 0 && v.len == 4)
		n = kvs_get32(v.data);
	n += delta;
	if (n <= 0) {
		if (u->kv->del(txn, k, klen, err) < 0)
			return -1;
		if (u->kv->blob_del(txn, k, kvs_key_guid(k, KVS_B_MSG, guid), err) < 0 ||
		    u->kv->blob_del(txn, k, kvs_key_guid(k, KVS_B_CACHE, guid), err) < 0)
			return -1;
		return 0;
	}
	kvs_put32(p, (uint32_t)n);
	return u->kv->put(txn, k, klen, p, 4, err);
}

/* ---------------- scans ---------------- */

/* Collects every key (and value) of a range into heap copies. */
struct kvs_kvlist {
	unsigned char **keys;
	size_t *klens;
	unsigned char **vals;
	size_t *vlens;
	size_t n, alloc;
	bool want_vals;
};

static int kvs_kvlist_cb(const void *key, size_t klen, const void *val,
			 size_t vlen, void *ctx)
{
	struct kvs_kvlist *l = ctx;

	if (l->n == l->alloc) {
		l->alloc = l->alloc ? l->alloc * 2 : 64;
		l->keys = ma_realloc(l->keys, l->alloc * sizeof(*l->keys));
		l->klens = ma_realloc(l->klens, l->alloc * sizeof(*l->klens));
		l->vals = ma_realloc(l->vals, l->alloc * sizeof(*l->vals));
		l->vlens = ma_realloc(l->vlens, l->alloc * sizeof(*l->vlens));
	}
	l->keys[l->n] = ma_malloc0(klen + 1);
	memcpy(l->keys[l->n], key, klen);
	l->klens[l->n] = klen;
	if (l->want_vals) {
		l->vals[l->n] = ma_malloc0(vlen + 1);
		memcpy(l->vals[l->n], val, vlen);
	} else {
		l->vals[l->n] = NULL;
	}
	l->vlens[l->n] = vlen;
	l->n++;
	return 0;
}

static void kvs_kvlist_free(struct kvs_kvlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->keys[i]);
		free(l->vals[i]);
	}
	free(l->keys);
	free(l->klens);
	free(l->vals);
	free(l->vlens);
	memset(l, 0, sizeof(*l));
}

static int kvs_scan_prefix(struct kvs_user *u, struct ma_kv_txn *txn,
			   const unsigned char *prefix, size_t plen,
			   struct kvs_kvlist *l, struct ma_error_info *err)
{
	unsigned char end[MA_KV_KEY_MAX];
	size_t elen = plen;

	/* end = prefix + 1 in the last byte (prefixes here never end in
	 * 0xff: ids are below UINT32_MAX). */
	memcpy(end, prefix, plen);
	while (elen > 0 && end[elen - 1] == 0xff)
		elen--;
	if (elen == 0)
		return u->kv->scan(txn, prefix, plen, NULL, 0, false,
				   kvs_kvlist_cb, l, err);
	end[elen - 1]++;
	return u->kv->scan(txn, prefix, plen, end, elen, false, kvs_kvlist_cb, l, err);
}

/* ---------------- helpers ---------------- */

static int kvs_begin(struct kvs_user *u, bool write, struct ma_kv_txn **txn_r,
		     struct ma_error_info *err)
{
	return u->kv->txn_begin(u->env, write, txn_r, err);
}

static int kvs_commit(struct kvs_user *u, struct ma_kv_txn *txn,
		      struct ma_error_info *err)
{
	return u->kv->txn_commit(txn, err);
}

static int kvs_fail(struct kvs_user *u, struct ma_kv_txn *txn)
{
	if (txn != NULL)
		u->kv->txn_abort(txn);
	return -1;
}

/* The start of every operation on an open view: begins a transaction (a
 * write one if WRITE) and reloads the view's mailbox record into B, which
 * another session may have changed or deleted since. On error nothing is
 * left open: *txn_r is NULL, err says why (NOTFOUND if deleted). */
static int kvs_box_begin(struct kvs_box *box, bool write,
			 struct ma_kv_txn **txn_r, struct kvs_mbox *b,
			 struct ma_error_info *err)
{
	struct kvs_user *u = box->u;
	int rc;

	*txn_r = NULL;
	if (kvs_begin(u, write, txn_r, err) < 0)
		return -1;
	if ((rc = kvs_box_get(u, *txn_r, box->id, b, err)) <= 0) {
		if (rc == 0)
			ma_error_set(err, MA_ERR_NOTFOUND, "Mailbox was deleted");
		kvs_fail(u, *txn_r);
		*txn_r = NULL;
		return -1;
	}
	return 0;
}

static uint32_t kvs_new_uidvalidity(struct kvs_header *h)
{
	/* Time-based so a store restored or re-created later still gets
	 * values above those clients saw; the counter makes them unique even
	 * within one second (RFC 3501 2.3.1.1). */
	uint32_t now = (uint32_t)time(NULL);
	uint32_t v = h->last_uidvalidity + 1;

	if (v < now)
		v = now;
	if (v == 0)
		v = 1;
	h->last_uidvalidity = v;
	return v;
}

static bool kvs_kw_valid(const char *kw)
{
	size_t n = strlen(kw);

	if (n == 0 || n > KVS_KEYWORD_LEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)kw[i];
		/* IMAP atom chars minus list/resp specials; system flags
		 * start with '\' and are not keywords. */
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

/* Index of keyword in the mailbox (case-insensitive, RFC 3501 keywords
 * are); with create, adds it. -1 + err when invalid or the list is full. */
static int kvs_kw_index(struct kvs_mbox *b, const char *kw, bool create,
			unsigned *idx_r, struct ma_error_info *err)
{
	for (unsigned i = 0; i < b->n_kw; i++) {
		if (strcasecmp(b->kw[i], kw) == 0) {
			*idx_r = i;
			return 1;
		}
	}
	if (!create)
		return 0;
	if (!kvs_kw_valid(kw))
		return ma_error_set(err, MA_ERR_BADARGS, "Invalid keyword");
	if (b->n_kw >= MA_KEYWORDS_MAX)
		return ma_error_set(err, MA_ERR_LIMIT,
				    "Too many keywords in this mailbox (max %u)",
				    MA_KEYWORDS_MAX);
	snprintf(b->kw[b->n_kw], sizeof(b->kw[0]), "%s", kw);
	*idx_r = b->n_kw++;
	return 1;
}

static int kvs_kw_mask(struct kvs_mbox *b, const char *const *kws, unsigned n,
		       bool create, uint64_t *mask_r, struct ma_error_info *err)
{
	uint64_t mask = 0;

	if (n > 0 && kws == NULL)
		return ma_error_set(err, MA_ERR_BADARGS, "Missing keywords");
	for (unsigned i = 0; i < n; i++) {
		unsigned idx = 0;
		int rc = kvs_kw_index(b, kws[i], create, &idx, err);
		if (rc < 0)
			return -1;
		if (rc > 0)
			mask |= (uint64_t)1 << idx;
	}
	*mask_r = mask;
	return 0;
}

static void kvs_count_add(struct kvs_mbox *b, const struct ma_msg *m, int sign)
{
	if (sign > 0) {
		b->messages++;
		b->size += m->size;
		if ((m->flags & MA_FLAG_SEEN) == 0)
			b->unseen++;
	} else {
		if (b->messages > 0)
			b->messages--;
		b->size = b->size >= m->size ? b->size - m->size : 0;
		if ((m->flags & MA_FLAG_SEEN) == 0 && b->unseen > 0)
			b->unseen--;
	}
}

/* Creates a mailbox record in txn. */
static int kvs_box_create_txn(struct kvs_user *u, struct ma_kv_txn *txn,
			      const char *name, uint32_t attrs,
			      struct kvs_mbox *b_r, struct ma_error_info *err)
{
	struct kvs_header h;
	unsigned char k[MA_KV_KEY_MAX], idv[4];
	uint32_t id;
	int rc;

	if (strlen(name) > KVS_NAME_MAX)
		return ma_error_set(err, MA_ERR_LIMIT, "Mailbox name too long");
	if ((rc = kvs_name_get(u, txn, name, &id, err)) < 0)
		return -1;
	if (rc > 0)
		return ma_error_set(err, MA_ERR_EXISTS, "Mailbox already exists");
	if ((rc = kvs_header_get(u, txn, &h, err)) < 0)
		return -1;
	if (rc == 0)
		return kvs_corrupt(u, "missing header", err);
	if (h.n_mailboxes >= KVS_MAILBOXES_MAX)
		return ma_error_set(err, MA_ERR_LIMIT, "Too many mailboxes (max %u)",
				    KVS_MAILBOXES_MAX);
	if (h.next_mbox_id == UINT32_MAX)
		return ma_error_set(err, MA_ERR_LIMIT, "Mailbox ids exhausted");

	memset(b_r, 0, sizeof(*b_r));
	b_r->id = h.next_mbox_id++;
	b_r->uidvalidity = kvs_new_uidvalidity(&h);
	b_r->uidnext = 1;
	b_r->highestmodseq = 1;
	b_r->attrs = attrs & (MA_MBOX_SU_MASK | MA_MBOX_SUBSCRIBED);
	snprintf(b_r->name, sizeof(b_r->name), "%s", name);
	h.n_mailboxes++;

	kvs_put32(idv, b_r->id);
	if (u->kv->put(txn, k, kvs_key_name(k, name), idv, 4, err) < 0 ||
	    kvs_box_put(u, txn, b_r, err) < 0 ||
	    kvs_header_put(u, txn, &h, err) < 0)
		return -1;
	return 0;
}

/* ---------------- user ---------------- */

static int kvs_user_init_txn(struct kvs_user *u, struct ma_kv_txn *txn,
			     struct ma_error_info *err)
{
	struct kvs_header h;
	struct kvs_mbox *b;
	uint32_t id;
	int rc = kvs_header_get(u, txn, &h, err);

	if (rc < 0)
		return -1;
	if (rc == 0) {
		memset(&h, 0, sizeof(h));
		h.version = KVS_FORMAT_VERSION;
		h.next_mbox_id = 1;
		if (kvs_header_put(u, txn, &h, err) < 0)
			return -1;
	}
	if ((rc = kvs_name_get(u, txn, "INBOX", &id, err)) != 0)
		return rc < 0 ? -1 : 0;
	b = ma_malloc0(sizeof(*b));
	rc = kvs_box_create_txn(u, txn, "INBOX", MA_MBOX_SUBSCRIBED, b, err);
	free(b);
	return rc;
}

static int kvs_user_open(void *vctx, const char *user, void **user_r,
			 struct ma_error_info *err)
{
	struct kvs_ctx *ctx = vctx;
	struct kvs_user *u;
	struct ma_kv_txn *txn = NULL;
	struct kvs_header h;
	uint32_t id;
	int rc;

	if (ctx == NULL)
		return ma_error_set(err, MA_ERR_INTERNAL, "No store configured");
	u = ma_malloc0(sizeof(*u));
	u->ctx = ctx;
	u->kv = ctx->kv;
	u->name = ma_strdup(user);
	if (u->kv->env_open(ctx->kv_ctx, user, &u->env, err) < 0)
		goto fail;

	/* Cheap read check first: the write lock is taken only on the very
	 * first open of a user (creating the header and INBOX). */
	if (kvs_begin(u, false, &txn, err) < 0)
		goto fail;
	rc = kvs_header_get(u, txn, &h, err);
	if (rc > 0)
		rc = kvs_name_get(u, txn, "INBOX", &id, err);
	u->kv->txn_abort(txn);
	txn = NULL;
	if (rc < 0)
		goto fail;
	if (rc == 0) {
		if (kvs_begin(u, true, &txn, err) < 0)
			goto fail;
		if (kvs_user_init_txn(u, txn, err) < 0) {
			u->kv->txn_abort(txn);
			goto fail;
		}
		if (kvs_commit(u, txn, err) < 0)
			goto fail;
	}
	*user_r = u;
	return 0;
fail:
	if (u->env != NULL)
		u->kv->env_close(u->env);
	free(u->name);
	free(u);
	return -1;
}

static void kvs_user_close(void *vu)
{
	struct kvs_user *u = vu;

	if (u == NULL)
		return;
	u->kv->env_close(u->env);
	free(u->name);
	free(u);
}

/* ---------------- mailbox tree ---------------- */

static int kvs_mailbox_list(void *vu,
			    void (*fn)(const struct ma_mailbox_info *info, void *fctx),
			    void *fctx, struct ma_error_info *err)
{
	struct kvs_user *u = vu;
	struct ma_kv_txn *txn;
	struct kvs_kvlist l = { .want_vals = true };
	unsigned char prefix = KVS_K_NAME;
	struct kvs_mbox *b = ma_malloc0(sizeof(*b));
	struct ma_mailbox_info *infos = NULL;
	size_t n = 0;
	int ret = -1;

	if (kvs_begin(u, false, &txn, err) < 0)
		goto out;
	if (kvs_scan_prefix(u, txn, &prefix, 1, &l, err) < 0) {
		u->kv->txn_abort(txn);
		goto out;
	}
	infos = ma_malloc0((l.n + 1) * sizeof(*infos));
	for (size_t i = 0; i < l.n; i++) {
		if (l.vlens[i] != 4)
			continue;
		int rc = kvs_box_get(u, txn, kvs_get32(l.vals[i]), b, err);
		if (rc < 0) {
			u->kv->txn_abort(txn);
			goto out;
		}
		if (rc == 0)
			continue;	/* verify reports it */
		/* key = 'N' + name; the copy has a NUL after it. */
		infos[n].name = (const char *)l.keys[i] + 1;
		infos[n].attrs = b->attrs;
		n++;
	}
	u->kv->txn_abort(txn);
	/* Called outside the txn: fn may call the store again. */
	for (size_t i = 0; i < n; i++)
		fn(&infos[i], fctx);
	ret = 0;
out:
	free(infos);
	kvs_kvlist_free(&l);
	free(b);
	return ret;
}

static int kvs_mailbox_create(void *vu, const char *name, uint32_t attrs,
			      struct ma_error_info *err)
{
	struct kvs_user *u = vu;
	struct ma_kv_txn *txn;
	struct kvs_mbox *b = ma_malloc0(sizeof(*b));
	int ret = -1;

	if (kvs_begin(u, true, &txn, err) < 0)
		goto out;
	if (kvs_box_create_txn(u, txn, name, attrs, b, err) < 0) {
		kvs_fail(u, txn);
		goto out;
	}
	ret = kvs_commit(u, txn, err);
out:
	free(b);
	return ret;
}

/* Deletes every message and log entry of mailbox id (blobs unref'd). */
static int kvs_box_purge_txn(struct kvs_user *u, struct ma_kv_txn *txn,
			     uint32_t id, struct ma_error_info *err)
{
	unsigned char prefix[8];
	struct kvs_kvlist l = { .want_vals = true };
	struct ma_msg m;
	int ret = -1;

	prefix[0] = KVS_K_MSG;
	kvs_put32(prefix + 1, id);
	if (kvs_scan_prefix(u, txn, prefix, 5, &l, err) < 0)
		goto out;
	for (size_t i = 0; i < l.n; i++) {
		if (l.klens[i] == 9 &&
		    kvs_msg_decode(l.vals[i], l.vlens[i], kvs_get32(l.keys[i] + 5), &m) == 0 &&
		    kvs_ref_add(u, txn, m.guid, -1, err) < 0)
			goto out;
		if (u->kv->del(txn, l.keys[i], l.klens[i], err) < 0)
			goto out;
	}
	kvs_kvlist_free(&l);
	l.want_vals = false;
	prefix[0] = KVS_K_LOG;
	if (kvs_scan_prefix(u, txn, prefix, 5, &l, err) < 0)
		goto out;
	for (size_t i = 0; i < l.n; i++) {
		if (u->kv->del(txn, l.keys[i], l.klens[i], err) < 0)
			goto out;
	}
	ret = 0;
out:
	kvs_kvlist_free(&l);
	return ret;
}

static int kvs_mailbox_delete(void *vu, const char *name, struct ma_error_info *err)
{
	struct kvs_user *u = vu;
	struct ma_kv_txn *txn = NULL;
	struct kvs_mbox *b = ma_malloc0(sizeof(*b));
	struct kvs_header h;
	unsigned char k[MA_KV_KEY_MAX];
	int ret = -1, rc;

	/* RFC 3501 6.3.4: deleting INBOX is an error. */
	if (strcmp(name, "INBOX") == 0) {
		ma_error_set(err, MA_ERR_PERM, "INBOX can't be deleted");
		goto out;
	}
	if (kvs_begin(u, true, &txn, err) < 0)
		goto out;
	if ((rc = kvs_box_by_name(u, txn, name, b, err)) <= 0)
		goto fail;
	if (kvs_box_purge_txn(u, txn, b->id, err) < 0 ||
	    u->kv->del(txn, k, kvs_key_box(k, b->id), err) < 0 ||
	    u->kv->del(txn, k, kvs_key_name(k, name), err) < 0)
		goto fail;
	if ((rc = kvs_header_get(u, txn, &h, err)) <= 0) {
		if (rc == 0)
			kvs_corrupt(u, "missing header", err);
		goto fail;
	}
	if (h.n_mailboxes > 0)
		h.n_mailboxes--;
	if (kvs_header_put(u, txn, &h, err) < 0)
		goto fail;
	ret = kvs_commit(u, txn, err);
	goto out;
fail:
	kvs_fail(u, txn);
out:
	free(b);
	return ret;
}

static int kvs_rename_inbox(struct kvs_user *u, struct ma_kv_txn *txn,
			    const char *to, struct kvs_mbox *b,
			    struct ma_error_info *err)
{
	struct kvs_header h;
	unsigned char k[MA_KV_KEY_MAX], idv[4];
	int rc;

	/* RFC 3501 6.3.5: INBOX's messages move to the new name, INBOX stays
	 * (empty), its children are not renamed. The record keeps its id
	 * (messages stay put) but gets a new UIDVALIDITY, since for clients
	 * it is a new mailbox; then a fresh INBOX is created. */
	if ((rc = kvs_header_get(u, txn, &h, err)) <= 0)
		return rc == 0 ? kvs_corrupt(u, "missing header", err) : -1;
	if (h.n_mailboxes >= KVS_MAILBOXES_MAX)
		return ma_error_set(err, MA_ERR_LIMIT, "Too many mailboxes");
	b->uidvalidity = kvs_new_uidvalidity(&h);
	snprintf(b->name, sizeof(b->name), "%s", to);
	b->attrs &= ~MA_MBOX_SUBSCRIBED;
	if (kvs_header_put(u, txn, &h, err) < 0 || kvs_box_put(u, txn, b, err) < 0)
		return -1;
	kvs_put32(idv, b->id);
	if (u->kv->put(txn, k, kvs_key_name(k, to), idv, 4, err) < 0 ||
	    u->kv->del(txn, k, kvs_key_name(k, "INBOX"), err) < 0)
		return -1;
	struct kvs_mbox *nb = ma_malloc0(sizeof(*nb));
	rc = kvs_box_create_txn(u, txn, "INBOX", MA_MBOX_SUBSCRIBED, nb, err);
	free(nb);
	return rc;
}

static int kvs_mailbox_rename(void *vu, const char *from, const char *to,
			      struct ma_error_info *err)
{
	struct kvs_user *u = vu;
	struct ma_kv_txn *txn = NULL;
	struct kvs_mbox *b = ma_malloc0(sizeof(*b));
	struct kvs_kvlist l = { .want_vals = true };
	unsigned char k[MA_KV_KEY_MAX], prefix[MA_KV_KEY_MAX];
	size_t flen = strlen(from), tlen = strlen(to);
	uint32_t id;
	int ret = -1, rc;

	if (strcmp(to, "INBOX") == 0) {
		ma_error_set(err, MA_ERR_EXISTS, "Mailbox already exists");
		goto out;
	}
	if (strcmp(from, to) == 0 ||
	    (tlen > flen && strncmp(to, from, flen) == 0 && to[flen] == '/')) {
		ma_error_set(err, MA_ERR_BADARGS, "Can't rename a mailbox under itself");
		goto out;
	}
	if (tlen > KVS_NAME_MAX) {
		ma_error_set(err, MA_ERR_LIMIT, "Mailbox name too long");
		goto out;
	}
	if (kvs_begin(u, true, &txn, err) < 0)
		goto out;
	if ((rc = kvs_box_by_name(u, txn, from, b, err)) <= 0)
		goto fail;
	if ((rc = kvs_name_get(u, txn, to, &id, err)) != 0) {
		if (rc > 0)
			ma_error_set(err, MA_ERR_EXISTS, "Mailbox already exists");
		goto fail;
	}
	if (strcmp(from, "INBOX") == 0) {
		if (kvs_rename_inbox(u, txn, to, b, err) < 0)
			goto fail;
		ret = kvs_commit(u, txn, err);
		goto out;
	}

	/* The mailbox and its children ("from/..."), in one txn. */
	prefix[0] = KVS_K_NAME;
	memcpy(prefix + 1, from, flen);
	prefix[1 + flen] = '/';
	if (flen + 2 <= MA_KV_KEY_MAX &&
	    kvs_scan_prefix(u, txn, prefix, flen + 2, &l, err) < 0)
		goto fail;
	/* First the mailbox itself, then each child. */
	for (size_t i = 0; i <= l.n; i++) {
		const char *oldname = i == 0 ? from : (const char *)l.keys[i - 1] + 1;
		char newname[KVS_NAME_MAX + 1];
		uint32_t cid;

		if (i == 0) {
			cid = b->id;
		} else {
			if (l.vlens[i - 1] != 4)
				continue;
			cid = kvs_get32(l.vals[i - 1]);
			if ((rc = kvs_box_get(u, txn, cid, b, err)) < 0)
				goto fail;
			if (rc == 0)
				continue;
		}
		if (tlen + strlen(oldname) - flen > KVS_NAME_MAX) {
			ma_error_set(err, MA_ERR_LIMIT, "Mailbox name too long");
			goto fail;
		}
		snprintf(newname, sizeof(newname), "%s%s", to, oldname + flen);
		if (i > 0) {
			if ((rc = kvs_name_get(u, txn, newname, &id, err)) != 0) {
				if (rc > 0)
					ma_error_set(err, MA_ERR_EXISTS,
						     "Mailbox already exists: %s", newname);
				goto fail;
			}
		}
		kvs_put32(prefix, cid);
		if (u->kv->del(txn, k, kvs_key_name(k, oldname), err) < 0 ||
		    u->kv->put(txn, k, kvs_key_name(k, newname), prefix, 4, err) < 0)
			goto fail;
		snprintf(b->name, sizeof(b->name), "%s", newname);
		if (kvs_box_put(u, txn, b, err) < 0)
			goto fail;
	}
	ret = kvs_commit(u, txn, err);
	goto out;
fail:
	kvs_fail(u, txn);
out:
	kvs_kvlist_free(&l);
	free(b);
	return ret;
}

static int kvs_mailbox_subscribe(void *vu, const char *name, bool subscribe,
				 struct ma_error_info *err)
{
	struct kvs_user *u = vu;
	struct ma_kv_txn *txn = NULL;
	struct kvs_mbox *b = ma_malloc0(sizeof(*b));
	int ret = -1;

	if (kvs_begin(u, true, &txn, err) < 0)
		goto out;
	if (kvs_box_by_name(u, txn, name, b, err) <= 0)
		goto fail;
	if (subscribe)
		b->attrs |= MA_MBOX_SUBSCRIBED;
	else
		b->attrs &= ~MA_MBOX_SUBSCRIBED;
	if (kvs_box_put(u, txn, b, err) < 0)
		goto fail;
	ret = kvs_commit(u, txn, err);
	goto out;
fail:
	kvs_fail(u, txn);
out:
	free(b);
	return ret;
}

static void kvs_status_fill(const struct kvs_mbox *b, struct ma_mailbox_status *st)
{
	memset(st, 0, sizeof(*st));
	st->messages = b->messages;
	st->recent = 0;		/* \Recent is not tracked (IMAP4rev2 drops it) */
	st->unseen = b->unseen;
	st->uidnext = b->uidnext;
	st->uidvalidity = b->uidvalidity;
	st->highestmodseq = b->highestmodseq;
	st->size = b->size;
}

static int kvs_mailbox_status(void *vu, const char *name,
			      struct ma_mailbox_status *st, struct ma_error_info *err)
{
	struct kvs_user *u = vu;
	struct ma_kv_txn *txn;
	struct kvs_mbox *b = ma_malloc0(sizeof(*b));
	int rc = -1;

	if (kvs_begin(u, false, &txn, err) == 0) {
		rc = kvs_box_by_name(u, txn, name, b, err);
		u->kv->txn_abort(txn);
		if (rc > 0)
			kvs_status_fill(b, st);
		rc = rc > 0 ? 0 : -1;
	}
	free(b);
	return rc;
}

/* ---------------- views ---------------- */

static void kvs_box_set_keywords(struct kvs_box *box, const struct kvs_mbox *b)
{
	for (unsigned i = 0; i < box->n_kw; i++)
		free(box->kw[i]);
	free(box->kw);
	box->kw = ma_malloc0((b->n_kw + 1) * sizeof(*box->kw));
	for (unsigned i = 0; i < b->n_kw; i++)
		box->kw[i] = ma_strdup(b->kw[i]);
	box->n_kw = b->n_kw;
}

static void kvs_box_push(struct kvs_box *box, const struct ma_msg *m)
{
	if (box->count == box->alloc) {
		box->alloc = box->alloc ? box->alloc * 2 : 64;
		box->msgs = ma_realloc(box->msgs, (size_t)box->alloc * sizeof(*box->msgs));
	}
	box->msgs[box->count++] = *m;
}

struct kvs_load_ctx {
	struct kvs_box *box;
	bool bad;
};

static int kvs_load_cb(const void *key, size_t klen, const void *val,
		       size_t vlen, void *vctx)
{
	struct kvs_load_ctx *c = vctx;
	struct ma_msg m;

	if (klen != 9 || kvs_msg_decode(val, vlen, kvs_get32((const unsigned char *)key + 5), &m) < 0) {
		c->bad = true;
		return 0;
	}
	kvs_box_push(c->box, &m);
	return 0;
}

static void kvs_mailbox_close(void *vbox)
{
	struct kvs_box *box = vbox;

	if (box == NULL)
		return;
	for (unsigned i = 0; i < box->n_kw; i++)
		free(box->kw[i]);
	free(box->kw);
	free(box->msgs);
	free(box->expunged);
	free(box->changed);
	free(box);
}

static int kvs_mailbox_open(void *vu, const char *name, bool readonly,
			    void **box_r, struct ma_error_info *err)
{
	struct kvs_user *u = vu;
	struct ma_kv_txn *txn;
	struct kvs_mbox *b = ma_malloc0(sizeof(*b));
	struct kvs_box *box = ma_malloc0(sizeof(*box));
	struct kvs_load_ctx lc = { .box = box };
	unsigned char start[8], end[8];
	int rc;

	box->u = u;
	box->readonly = readonly;
	if (kvs_begin(u, false, &txn, err) < 0)
		goto fail;
	if ((rc = kvs_box_by_name(u, txn, name, b, err)) <= 0) {
		u->kv->txn_abort(txn);
		goto fail;
	}
	box->id = b->id;
	kvs_status_fill(b, &box->st);
	kvs_box_set_keywords(box, b);
	start[0] = end[0] = KVS_K_MSG;
	kvs_put32(start + 1, b->id);
	kvs_put32(end + 1, b->id + 1);
	rc = u->kv->scan(txn, start, 5, end, 5, false, kvs_load_cb, &lc, err);
	u->kv->txn_abort(txn);
	if (rc < 0)
		goto fail;
	if (lc.bad) {
		kvs_corrupt(u, "message", err);
		goto fail;
	}
	free(b);
	*box_r = box;
	return 0;
fail:
	free(b);
	kvs_mailbox_close(box);
	return -1;
}

static int kvs_mailbox_messages(void *vbox, const struct ma_msg **msgs_r,
				uint32_t *count_r, struct ma_mailbox_status *st_r,
				struct ma_error_info *err)
{
	struct kvs_box *box = vbox;

	(void)err;
	*msgs_r = box->msgs;
	*count_r = box->count;
	if (st_r != NULL)
		*st_r = box->st;
	return 0;
}

static int kvs_mailbox_keywords(void *vbox, const char *const **names_r,
				unsigned *count_r, struct ma_error_info *err)
{
	struct kvs_box *box = vbox;

	(void)err;
	*names_r = (const char *const *)box->kw;
	*count_r = box->n_kw;
	return 0;
}

static struct ma_msg *kvs_box_find(struct kvs_box *box, uint32_t uid)
{
	uint32_t lo = 0, hi = box->count;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (box->msgs[mid].uid == uid)
			return &box->msgs[mid];
		if (box->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int kvs_u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int kvs_mailbox_sync(void *vbox, struct ma_sync_result *res_r,
			    struct ma_error_info *err)
{
	struct kvs_box *box = vbox;
	struct kvs_user *u = box->u;
	struct ma_kv_txn *txn;
	struct kvs_mbox *b = ma_malloc0(sizeof(*b));
	struct kvs_kvlist l = { .want_vals = true };
	unsigned char start[24], end[24];
	uint32_t *newuids = NULL;
	size_t n_new = 0, n_exp = 0, n_chg = 0;
	int rc, ret = -1;

	memset(res_r, 0, sizeof(*res_r));
	free(box->expunged);
	free(box->changed);
	box->expunged = box->changed = NULL;
	box->n_expunged = box->n_changed = 0;

	if (kvs_box_begin(box, false, &txn, b, err) < 0)
		goto out;
	if (b->uidvalidity != box->st.uidvalidity) {
		ma_error_set(err, MA_ERR_NOTFOUND, "Mailbox was renamed");
		goto abort;
	}
	if (b->highestmodseq == box->st.highestmodseq) {
		u->kv->txn_abort(txn);
		box->st.messages = box->count;
		ret = 0;
		goto out;
	}
	/* Log entries after the view's modseq: each existing message has
	 * exactly one entry (its latest change), each expunge a tombstone. */
	kvs_key_log(start, box->id, box->st.highestmodseq + 1, 0);
	kvs_key_log(end, box->id + 1, 0, 0);
	if (u->kv->scan(txn, start, 17, end, 5, false, kvs_kvlist_cb, &l, err) < 0)
		goto abort;

	box->expunged = ma_malloc0((l.n + 1) * sizeof(uint32_t));
	box->changed = ma_malloc0((l.n + 1) * sizeof(uint32_t));
	newuids = ma_malloc0((l.n + 1) * sizeof(uint32_t));
	for (size_t i = 0; i < l.n; i++) {
		if (l.klens[i] != 17 || l.vlens[i] != 1)
			continue;
		uint32_t uid = kvs_get32(l.keys[i] + 13);
		struct ma_msg *vm = kvs_box_find(box, uid);
		if (l.vals[i][0] == KVS_LOG_EXPUNGED) {
			if (vm != NULL)
				box->expunged[n_exp++] = uid;
		} else if (vm != NULL) {
			struct ma_msg m;
			if ((rc = kvs_msg_get(u, txn, box->id, uid, &m, err)) < 0)
				goto abort;
			if (rc > 0) {
				*vm = m;
				box->changed[n_chg++] = uid;
			}
		} else if (uid >= box->st.uidnext) {
			newuids[n_new++] = uid;
		}
	}
	qsort(box->expunged, n_exp, sizeof(uint32_t), kvs_u32_cmp);
	qsort(box->changed, n_chg, sizeof(uint32_t), kvs_u32_cmp);
	qsort(newuids, n_new, sizeof(uint32_t), kvs_u32_cmp);

	/* Drop expunged from the list (keeps order), drop changed entries
	 * that were expunged too. */
	if (n_exp > 0) {
		uint32_t w = 0;
		for (uint32_t r = 0; r < box->count; r++) {
			if (bsearch(&box->msgs[r].uid, box->expunged, n_exp,
				    sizeof(uint32_t), kvs_u32_cmp) == NULL)
				box->msgs[w++] = box->msgs[r];
		}
		box->count = w;
		size_t cw = 0;
		for (size_t r = 0; r < n_chg; r++) {
			if (bsearch(&box->changed[r], box->expunged, n_exp,
				    sizeof(uint32_t), kvs_u32_cmp) == NULL)
				box->changed[cw++] = box->changed[r];
		}
		n_chg = cw;
	}
	size_t added = 0;
	for (size_t i = 0; i < n_new; i++) {
		struct ma_msg m;
		if ((rc = kvs_msg_get(u, txn, box->id, newuids[i], &m, err)) < 0)
			goto abort;
		if (rc > 0) {
			kvs_box_push(box, &m);
			added++;
		}
	}
	u->kv->txn_abort(txn);

	res_r->keywords_changed = b->n_kw != box->n_kw;
	if (res_r->keywords_changed)
		kvs_box_set_keywords(box, b);
	kvs_status_fill(b, &box->st);
	box->n_expunged = (unsigned)n_exp;
	box->n_changed = (unsigned)n_chg;
	res_r->expunged = box->expunged;
	res_r->n_expunged = (unsigned)n_exp;
	res_r->changed = box->changed;
	res_r->n_changed = (unsigned)n_chg;
	res_r->n_new = (unsigned)added;
	ret = 0;
	goto out;
abort:
	u->kv->txn_abort(txn);
out:
	free(newuids);
	kvs_kvlist_free(&l);
	free(b);
	return ret;
}

/* ---------------- reading ---------------- */

static void kvs_read_release(struct ma_msg_data *d)
{
	struct kvs_read *r = d->handle;

	if (r != NULL) {
		r->kv->txn_abort(r->txn);
		free(r);
	}
	d->handle = NULL;
	d->data = NULL;
	d->size = 0;
	d->release = NULL;
}

static int kvs_read_blob(struct kvs_box *box, uint32_t uid, char prefix,
			 struct ma_msg_data *out, struct ma_error_info *err)
{
	struct kvs_user *u = box->u;
	struct ma_kv_txn *txn;
	struct ma_msg m;
	struct ma_kv_val v;
	unsigned char k[24];
	int rc;

	memset(out, 0, sizeof(*out));
	if (kvs_begin(u, false, &txn, err) < 0)
		return -1;
	if ((rc = kvs_msg_get(u, txn, box->id, uid, &m, err)) <= 0) {
		u->kv->txn_abort(txn);
		if (rc == 0)
			ma_error_set(err, MA_ERR_EXPUNGED, "Message was expunged");
		return -1;
	}
	if (prefix == KVS_B_CACHE && m.cache_size == 0) {
		u->kv->txn_abort(txn);
		return 0;	/* no cache: empty data */
	}
	rc = u->kv->blob_get(txn, k, kvs_key_guid(k, prefix, m.guid), &v, err);
	if (rc <= 0) {
		u->kv->txn_abort(txn);
		if (rc == 0) {
			ma_log(MA_LOG_ERROR, "store user=%s: blob missing for uid %u (run verify)",
			       u->name, uid);
			ma_error_set(err, MA_ERR_INTERNAL, "Message data missing, see the log");
		}
		return -1;
	}
	/* Zero copy: the bytes stay in the map until release ends the txn. */
	struct kvs_read *r = ma_malloc0(sizeof(*r));
	r->kv = u->kv;
	r->txn = txn;
	out->data = v.data;
	out->size = v.len;
	out->release = kvs_read_release;
	out->handle = r;
	return 0;
}

static int kvs_msg_read(void *vbox, uint32_t uid, struct ma_msg_data *out,
			struct ma_error_info *err)
{
	return kvs_read_blob(vbox, uid, KVS_B_MSG, out, err);
}

static int kvs_msg_cache(void *vbox, uint32_t uid, struct ma_msg_data *out,
			 struct ma_error_info *err)
{
	return kvs_read_blob(vbox, uid, KVS_B_CACHE, out, err);
}

/* ---------------- writing ---------------- */

static int kvs_append_txn(struct kvs_user *u, struct ma_kv_txn *txn,
			  struct kvs_mbox *b, const struct ma_append_msg *msgs,
			  unsigned n, uint32_t *uids_r, struct ma_error_info *err)
{
	uint64_t modseq = b->highestmodseq + 1;
	time_t now = time(NULL);
	unsigned char k[24];

	for (unsigned i = 0; i < n; i++) {
		const struct ma_append_msg *a = &msgs[i];
		struct ma_msg m;
		unsigned char refv[4];

		if (a->data == NULL && a->size > 0)
			return ma_error_set(err, MA_ERR_BADARGS, "Missing message data");
		if (a->size > MA_KV_BLOB_MAX || a->cache_size > UINT32_MAX)
			return ma_error_set(err, MA_ERR_LIMIT, "Message too large");
		if (b->uidnext >= UINT32_MAX - 1)
			return ma_error_set(err, MA_ERR_LIMIT, "UIDs exhausted in this mailbox");
		memset(&m, 0, sizeof(m));
		m.uid = b->uidnext++;
		m.flags = a->flags & MA_FLAGS_ALL;
		if (kvs_kw_mask(b, a->keywords, a->n_keywords, true, &m.keywords, err) < 0)
			return -1;
		m.modseq = modseq;
		m.internal_date = a->internal_date != 0 ? a->internal_date : (int64_t)now;
		m.internal_tz = a->internal_tz;
		m.size = a->size;
		m.cache_size = a->cache != NULL ? (uint32_t)a->cache_size : 0;
		ma_random(m.guid, sizeof(m.guid));

		if (u->kv->blob_put(txn, k, kvs_key_guid(k, KVS_B_MSG, m.guid),
				    a->data != NULL ? a->data : "", a->size, err) < 0)
			return -1;
		if (m.cache_size > 0 &&
		    u->kv->blob_put(txn, k, kvs_key_guid(k, KVS_B_CACHE, m.guid),
				    a->cache, a->cache_size, err) < 0)
			return -1;
		kvs_put32(refv, 1);
		if (u->kv->put(txn, k, kvs_key_guid(k, KVS_K_REF, m.guid), refv, 4, err) < 0 ||
		    kvs_msg_put(u, txn, b->id, &m, err) < 0 ||
		    kvs_log_put(u, txn, b->id, modseq, m.uid, KVS_LOG_EXISTS, err) < 0)
			return -1;
		kvs_count_add(b, &m, 1);
		if (uids_r != NULL)
			uids_r[i] = m.uid;
	}
	if (n > 0)
		b->highestmodseq = modseq;
	return kvs_box_put(u, txn, b, err);
}

static int kvs_append(void *vu, const char *mailbox,
		      const struct ma_append_msg *msgs, unsigned n,
		      uint32_t *uids_r, uint32_t *uidvalidity_r,
		      struct ma_error_info *err)
{
	struct kvs_user *u = vu;
	struct ma_kv_txn *txn = NULL;
	struct kvs_mbox *b = ma_malloc0(sizeof(*b));
	int ret = -1;

	if (n > KVS_APPEND_MAX) {
		ma_error_set(err, MA_ERR_LIMIT, "Too many messages in one append");
		goto out;
	}
	if (kvs_begin(u, true, &txn, err) < 0)
		goto out;
	if (kvs_box_by_name(u, txn, mailbox, b, err) <= 0 ||
	    kvs_append_txn(u, txn, b, msgs, n, uids_r, err) < 0)
		goto fail;
	if (kvs_commit(u, txn, err) < 0)
		goto out;
	if (uidvalidity_r != NULL)
		*uidvalidity_r = b->uidvalidity;
	ret = 0;
	goto out;
fail:
	kvs_fail(u, txn);
out:
	free(b);
	return ret;
}

/* Expunges one message in txn (0 if it was already gone). */
static int kvs_expunge_one(struct kvs_user *u, struct ma_kv_txn *txn,
			   struct kvs_mbox *b, uint32_t uid, uint64_t modseq,
			   bool *done_r, struct ma_error_info *err)
{
	struct ma_msg m;
	unsigned char k[16];
	int rc = kvs_msg_get(u, txn, b->id, uid, &m, err);

	*done_r = false;
	if (rc <= 0)
		return rc;
	if (u->kv->del(txn, k, kvs_key_msg(k, b->id, uid), err) < 0 ||
	    kvs_log_del(u, txn, b->id, m.modseq, uid, err) < 0 ||
	    kvs_log_put(u, txn, b->id, modseq, uid, KVS_LOG_EXPUNGED, err) < 0 ||
	    kvs_ref_add(u, txn, m.guid, -1, err) < 0)
		return -1;
	kvs_count_add(b, &m, -1);
	*done_r = true;
	return 1;
}

static int kvs_copy(void *vbox, const uint32_t *uids, unsigned n, const char *dest,
		    bool move, uint32_t *new_uids_r, uint32_t *uidvalidity_r,
		    struct ma_error_info *err)
{
	struct kvs_box *box = vbox;
	struct kvs_user *u = box->u;
	struct ma_kv_txn *txn = NULL;
	struct kvs_mbox *src = ma_malloc0(sizeof(*src));
	struct kvs_mbox *dst = ma_malloc0(sizeof(*dst));
	struct kvs_mbox *d;
	uint64_t dmodseq, smodseq;
	bool changed_src = false, changed_dst = false;
	int ret = -1, rc;

	if (move && box->readonly) {
		ma_error_set(err, MA_ERR_PERM, "Mailbox is read-only");
		goto out;
	}
	if (n > 0 && uids == NULL) {
		ma_error_set(err, MA_ERR_BADARGS, "Missing UIDs");
		goto out;
	}
	if (kvs_box_begin(box, true, &txn, src, err) < 0)
		goto out;
	if (kvs_box_by_name(u, txn, dest, dst, err) <= 0)
		goto fail;
	/* Copy into the same mailbox: one record for both sides. */
	d = dst->id == src->id ? src : dst;
	dmodseq = d->highestmodseq + 1;
	smodseq = d == src ? dmodseq : src->highestmodseq + 1;

	for (unsigned i = 0; i < n; i++) {
		struct ma_msg m;
		uint64_t kwmask = 0;
		bool done;

		if (new_uids_r != NULL)
			new_uids_r[i] = 0;
		if ((rc = kvs_msg_get(u, txn, src->id, uids[i], &m, err)) < 0)
			goto fail;
		if (rc == 0)
			continue;
		if (d->uidnext >= UINT32_MAX - 1) {
			ma_error_set(err, MA_ERR_LIMIT, "UIDs exhausted in this mailbox");
			goto fail;
		}
		/* Keyword bits are per mailbox: map by name. */
		for (unsigned bit = 0; bit < src->n_kw && bit < 64; bit++) {
			unsigned idx = 0;
			if ((m.keywords & ((uint64_t)1 << bit)) == 0)
				continue;
			int kr = kvs_kw_index(d, src->kw[bit], true, &idx, err);
			if (kr < 0)
				goto fail;
			if (kr > 0)
				kwmask |= (uint64_t)1 << idx;
		}
		struct ma_msg nm = m;
		nm.uid = d->uidnext++;
		nm.keywords = kwmask;
		nm.modseq = dmodseq;
		/* The copy shares the blob (and GUID): one more user. */
		if (kvs_ref_add(u, txn, m.guid, 1, err) < 0 ||
		    kvs_msg_put(u, txn, d->id, &nm, err) < 0 ||
		    kvs_log_put(u, txn, d->id, dmodseq, nm.uid, KVS_LOG_EXISTS, err) < 0)
			goto fail;
		kvs_count_add(d, &nm, 1);
		changed_dst = true;
		if (new_uids_r != NULL)
			new_uids_r[i] = nm.uid;
		if (move) {
			if (kvs_expunge_one(u, txn, src, uids[i], smodseq, &done, err) < 0)
				goto fail;
			changed_src = changed_src || done;
		}
	}
	if (changed_dst)
		d->highestmodseq = dmodseq;
	if (changed_src && src != d)
		src->highestmodseq = smodseq;
	if (kvs_box_put(u, txn, d, err) < 0 ||
	    (src != d && changed_src && kvs_box_put(u, txn, src, err) < 0))
		goto fail;
	if (kvs_commit(u, txn, err) < 0)
		goto out;
	if (uidvalidity_r != NULL)
		*uidvalidity_r = d->uidvalidity;
	ret = 0;
	goto out;
fail:
	kvs_fail(u, txn);
out:
	free(src);
	free(dst);
	return ret;
}

static int kvs_store_flags(void *vbox, const uint32_t *uids, unsigned n,
			   enum ma_flag_op op, uint32_t flags,
			   const char *const *keywords, unsigned n_keywords,
			   uint64_t unchangedsince, uint32_t *failed_r,
			   unsigned *n_failed_r, struct ma_error_info *err)
{
	struct kvs_box *box = vbox;
	struct kvs_user *u = box->u;
	struct ma_kv_txn *txn = NULL;
	struct kvs_mbox *b = ma_malloc0(sizeof(*b));
	uint64_t kwmask = 0, modseq;
	unsigned n_failed = 0, n_kw_before;
	bool changed = false;
	int ret = -1, rc;

	if (n_failed_r != NULL)
		*n_failed_r = 0;
	if (box->readonly) {
		ma_error_set(err, MA_ERR_PERM, "Mailbox is read-only");
		goto out;
	}
	if (op != MA_FLAGS_ADD && op != MA_FLAGS_REMOVE && op != MA_FLAGS_REPLACE) {
		ma_error_set(err, MA_ERR_BADARGS, "Bad flag operation");
		goto out;
	}
	if (n > 0 && uids == NULL) {
		ma_error_set(err, MA_ERR_BADARGS, "Missing UIDs");
		goto out;
	}
	flags &= MA_FLAGS_ALL;
	if (kvs_box_begin(box, true, &txn, b, err) < 0)
		goto out;
	n_kw_before = b->n_kw;
	/* Removing a keyword the mailbox never had is a no-op: not created. */
	if (kvs_kw_mask(b, keywords, n_keywords, op != MA_FLAGS_REMOVE, &kwmask, err) < 0)
		goto fail;
	modseq = b->highestmodseq + 1;

	for (unsigned i = 0; i < n; i++) {
		struct ma_msg m, nm;

		if ((rc = kvs_msg_get(u, txn, box->id, uids[i], &m, err)) < 0)
			goto fail;
		if (rc == 0)
			continue;	/* expunged meanwhile: nothing to do */
		/* RFC 7162 3.1.3: UNCHANGEDSINCE fails messages changed later. */
		if (unchangedsince != 0 && m.modseq > unchangedsince) {
			if (failed_r != NULL)
				failed_r[n_failed] = m.uid;
			n_failed++;
			continue;
		}
		nm = m;
		switch (op) {
		case MA_FLAGS_ADD:
			nm.flags |= flags;
			nm.keywords |= kwmask;
			break;
		case MA_FLAGS_REMOVE:
			nm.flags &= ~flags;
			nm.keywords &= ~kwmask;
			break;
		case MA_FLAGS_REPLACE:
			nm.flags = flags;
			nm.keywords = kwmask;
			break;
		}
		if (nm.flags == m.flags && nm.keywords == m.keywords)
			continue;
		nm.modseq = modseq;
		if (kvs_log_del(u, txn, box->id, m.modseq, m.uid, err) < 0 ||
		    kvs_log_put(u, txn, box->id, modseq, m.uid, KVS_LOG_EXISTS, err) < 0 ||
		    kvs_msg_put(u, txn, box->id, &nm, err) < 0)
			goto fail;
		if ((m.flags & MA_FLAG_SEEN) && !(nm.flags & MA_FLAG_SEEN))
			b->unseen++;
		else if (!(m.flags & MA_FLAG_SEEN) && (nm.flags & MA_FLAG_SEEN) &&
			 b->unseen > 0)
			b->unseen--;
		changed = true;
	}
	if (changed)
		b->highestmodseq = modseq;
	if ((changed || b->n_kw != n_kw_before) && kvs_box_put(u, txn, b, err) < 0)
		goto fail;
	if (kvs_commit(u, txn, err) < 0)
		goto out;
	if (n_failed_r != NULL)
		*n_failed_r = n_failed;
	ret = 0;
	goto out;
fail:
	kvs_fail(u, txn);
out:
	free(b);
	return ret;
}

static int kvs_expunge(void *vbox, const uint32_t *uids, unsigned n,
		       struct ma_error_info *err)
{
	struct kvs_box *box = vbox;
	struct kvs_user *u = box->u;
	struct ma_kv_txn *txn = NULL;
	struct kvs_mbox *b = ma_malloc0(sizeof(*b));
	bool changed = false;
	int ret = -1;

	if (box->readonly) {
		ma_error_set(err, MA_ERR_PERM, "Mailbox is read-only");
		goto out;
	}
	if (n > 0 && uids == NULL) {
		ma_error_set(err, MA_ERR_BADARGS, "Missing UIDs");
		goto out;
	}
	if (kvs_box_begin(box, true, &txn, b, err) < 0)
		goto out;
	uint64_t modseq = b->highestmodseq + 1;
	for (unsigned i = 0; i < n; i++) {
		bool done;
		if (kvs_expunge_one(u, txn, b, uids[i], modseq, &done, err) < 0)
			goto fail;
		changed = changed || done;
	}
	if (!changed) {
		u->kv->txn_abort(txn);
		ret = 0;
		goto out;
	}
	b->highestmodseq = modseq;
	if (kvs_box_put(u, txn, b, err) < 0)
		goto fail;
	ret = kvs_commit(u, txn, err);
	goto out;
fail:
	kvs_fail(u, txn);
out:
	free(b);
	return ret;
}

static int kvs_quota_usage(void *vu, uint64_t *bytes_r, uint64_t *messages_r,
			   struct ma_error_info *err)
{
	struct kvs_user *u = vu;
	struct ma_kv_txn *txn;
	struct kvs_kvlist l = { .want_vals = true };
	struct kvs_mbox *b = ma_malloc0(sizeof(*b));
	unsigned char prefix = KVS_K_BOX;
	uint64_t bytes = 0, msgs = 0;
	int ret = -1;

	if (kvs_begin(u, false, &txn, err) < 0)
		goto out;
	ret = kvs_scan_prefix(u, txn, &prefix, 1, &l, err);
	u->kv->txn_abort(txn);
	if (ret < 0)
		goto out;
	for (size_t i = 0; i < l.n; i++) {
		if (kvs_mbox_decode(l.vals[i], l.vlens[i], b) < 0)
			continue;
		bytes += b->size;
		msgs += b->messages;
	}
	*bytes_r = bytes;
	*messages_r = msgs;
	ret = 0;
out:
	kvs_kvlist_free(&l);
	free(b);
	return ret;
}

/* ---------------- verify ---------------- */

struct kvs_verify {
	struct kvs_user *u;
	struct ma_kv_txn *txn;
	bool repair;
	void (*report)(const char *line, void *rctx);
	void *rctx;
	int problems;
};

static void kvs_report(struct kvs_verify *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void kvs_report(struct kvs_verify *v, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	v->problems++;
	if (v->report != NULL)
		v->report(line, v->rctx);
}

struct kvs_guidref {
	uint8_t guid[MA_GUID_SIZE];
	uint32_t refs;
};

static int kvs_guidref_cmp(const void *a, const void *b)
{
	return memcmp(a, b, MA_GUID_SIZE);
}

/* Checks one mailbox's messages against its record; collects GUIDs. */
static int kvs_verify_box(struct kvs_verify *v, struct kvs_mbox *b,
			  struct kvs_guidref **refs, size_t *n_refs,
			  size_t *a_refs, struct ma_error_info *err)
{
	struct kvs_user *u = v->u;
	struct kvs_kvlist l = { .want_vals = true };
	unsigned char prefix[8], k[24];
	uint32_t messages = 0, unseen = 0, maxuid = 0;
	uint64_t size = 0, maxmodseq = 0;
	struct ma_kv_val val;
	bool dirty = false;
	int ret = -1, rc;

	prefix[0] = KVS_K_MSG;
	kvs_put32(prefix + 1, b->id);
	if (kvs_scan_prefix(u, v->txn, prefix, 5, &l, err) < 0)
		goto out;
	for (size_t i = 0; i < l.n; i++) {
		struct ma_msg m;
		uint32_t uid = l.klens[i] == 9 ? kvs_get32(l.keys[i] + 5) : 0;

		if (uid == 0 || kvs_msg_decode(l.vals[i], l.vlens[i], uid, &m) < 0) {
			kvs_report(v, "mailbox %s: unreadable message record", b->name);
			if (v->repair && u->kv->del(v->txn, l.keys[i], l.klens[i], err) < 0)
				goto out;
			continue;
		}
		rc = u->kv->blob_get(v->txn, k, kvs_key_guid(k, KVS_B_MSG, m.guid), &val, err);
		if (rc < 0)
			goto out;
		if (rc == 0) {
			/* Message bytes can't be derived again: drop the record. */
			kvs_report(v, "mailbox %s: uid %u: message data missing%s",
				   b->name, uid, v->repair ? " (record removed)" : "");
			if (v->repair) {
				if (u->kv->del(v->txn, l.keys[i], l.klens[i], err) < 0 ||
				    kvs_log_del(u, v->txn, b->id, m.modseq, uid, err) < 0 ||
				    kvs_log_put(u, v->txn, b->id, b->highestmodseq + 1, uid,
						KVS_LOG_EXPUNGED, err) < 0)
					goto out;
				b->highestmodseq++;
				dirty = true;
			}
			continue;
		}
		if (val.len != m.size) {
			kvs_report(v, "mailbox %s: uid %u: size %llu, data has %zu bytes%s",
				   b->name, uid, (unsigned long long)m.size, val.len,
				   v->repair ? " (fixed)" : "");
			if (v->repair) {
				m.size = val.len;
				if (kvs_msg_put(u, v->txn, b->id, &m, err) < 0)
					goto out;
			}
		}
		if (b->n_kw < 64 && (m.keywords >> b->n_kw) != 0)
			kvs_report(v, "mailbox %s: uid %u: unknown keyword bits", b->name, uid);
		rc = u->kv->get(v->txn, k, kvs_key_log(k, b->id, m.modseq, uid), &val, err);
		if (rc < 0)
			goto out;
		if (rc == 0) {
			kvs_report(v, "mailbox %s: uid %u: change log entry missing%s",
				   b->name, uid, v->repair ? " (added)" : "");
			if (v->repair &&
			    kvs_log_put(u, v->txn, b->id, m.modseq, uid, KVS_LOG_EXISTS, err) < 0)
				goto out;
		}
		messages++;
		size += m.size;
		if (!(m.flags & MA_FLAG_SEEN))
			unseen++;
		if (uid > maxuid)
			maxuid = uid;
		if (m.modseq > maxmodseq)
			maxmodseq = m.modseq;
		if (*n_refs == *a_refs) {
			*a_refs = *a_refs ? *a_refs * 2 : 64;
			*refs = ma_realloc(*refs, *a_refs * sizeof(**refs));
		}
		memcpy((*refs)[*n_refs].guid, m.guid, MA_GUID_SIZE);
		(*refs)[*n_refs].refs = 1;
		(*n_refs)++;
	}
	if (messages != b->messages || unseen != b->unseen || size != b->size) {
		kvs_report(v, "mailbox %s: counts %u/%u/%llu, records say %u/%u/%llu%s",
			   b->name, b->messages, b->unseen, (unsigned long long)b->size,
			   messages, unseen, (unsigned long long)size,
			   v->repair ? " (fixed)" : "");
		b->messages = messages;
		b->unseen = unseen;
		b->size = size;
		dirty = true;
	}
	if (maxuid >= b->uidnext) {
		kvs_report(v, "mailbox %s: uidnext %u <= highest uid %u%s", b->name,
			   b->uidnext, maxuid, v->repair ? " (fixed)" : "");
		b->uidnext = maxuid + 1;
		dirty = true;
	}
	if (maxmodseq > b->highestmodseq) {
		kvs_report(v, "mailbox %s: highestmodseq %llu < %llu%s", b->name,
			   (unsigned long long)b->highestmodseq,
			   (unsigned long long)maxmodseq, v->repair ? " (fixed)" : "");
		b->highestmodseq = maxmodseq;
		dirty = true;
	}
	if (dirty && v->repair && kvs_box_put(u, v->txn, b, err) < 0)
		goto out;
	ret = 0;
out:
	kvs_kvlist_free(&l);
	return ret;
}

static int kvs_verify(void *vu, bool repair,
		      void (*report)(const char *line, void *rctx), void *rctx,
		      struct ma_error_info *err)
{
	struct kvs_user *u = vu;
	struct kvs_verify v = { .u = u, .repair = repair, .report = report, .rctx = rctx };
	struct kvs_kvlist names = { .want_vals = true }, boxes = { .want_vals = true };
	struct kvs_kvlist msgs = { .want_vals = false }, rl = { .want_vals = true };
	struct kvs_mbox *b = ma_malloc0(sizeof(*b));
	struct kvs_header h;
	struct kvs_guidref *refs = NULL;
	size_t n_refs = 0, a_refs = 0;
	uint32_t *ids = NULL, max_id = 0;
	unsigned char pfx, k[MA_KV_KEY_MAX];
	int ret = -1, rc;

	if (kvs_begin(u, repair, &v.txn, err) < 0)
		goto out;
	if ((rc = kvs_header_get(u, v.txn, &h, err)) < 0)
		goto fail;
	bool header_missing = rc == 0;
	if (header_missing) {
		kvs_report(&v, "user header missing%s", repair ? " (recreated)" : "");
		memset(&h, 0, sizeof(h));
		h.version = KVS_FORMAT_VERSION;
		h.next_mbox_id = 1;
		h.last_uidvalidity = (uint32_t)time(NULL);
	}

	/* Mailbox records vs the name index. */
	pfx = KVS_K_BOX;
	if (kvs_scan_prefix(u, v.txn, &pfx, 1, &boxes, err) < 0)
		goto fail;
	ids = ma_malloc0((boxes.n + 1) * sizeof(*ids));
	size_t n_ids = 0;
	for (size_t i = 0; i < boxes.n; i++) {
		uint32_t id;
		if (boxes.klens[i] != 5 ||
		    kvs_mbox_decode(boxes.vals[i], boxes.vlens[i], b) < 0 ||
		    b->id != kvs_get32(boxes.keys[i] + 1)) {
			kvs_report(&v, "unreadable mailbox record%s",
				   repair ? " (removed)" : "");
			if (repair && u->kv->del(v.txn, boxes.keys[i], boxes.klens[i], err) < 0)
				goto fail;
			continue;
		}
		if ((rc = kvs_name_get(u, v.txn, b->name, &id, err)) < 0)
			goto fail;
		if (rc == 0 || id != b->id) {
			kvs_report(&v, "mailbox %s: name index %s%s", b->name,
				   rc == 0 ? "missing" : "points elsewhere",
				   repair && rc == 0 ? " (fixed)" : "");
			if (repair && rc == 0) {
				unsigned char idv[4];
				kvs_put32(idv, b->id);
				if (u->kv->put(v.txn, k, kvs_key_name(k, b->name), idv, 4, err) < 0)
					goto fail;
			}
		}
		if (kvs_verify_box(&v, b, &refs, &n_refs, &a_refs, err) < 0)
			goto fail;
		ids[n_ids++] = b->id;
		if (b->id > max_id)
			max_id = b->id;
	}
	qsort(ids, n_ids, sizeof(*ids), kvs_u32_cmp);

	/* Name index entries pointing nowhere. */
	pfx = KVS_K_NAME;
	if (kvs_scan_prefix(u, v.txn, &pfx, 1, &names, err) < 0)
		goto fail;
	for (size_t i = 0; i < names.n; i++) {
		uint32_t id = names.vlens[i] == 4 ? kvs_get32(names.vals[i]) : 0;
		if (bsearch(&id, ids, n_ids, sizeof(*ids), kvs_u32_cmp) == NULL) {
			kvs_report(&v, "name %s: no mailbox record%s",
				   (const char *)names.keys[i] + 1, repair ? " (removed)" : "");
			if (repair && u->kv->del(v.txn, names.keys[i], names.klens[i], err) < 0)
				goto fail;
		}
	}
	if (h.n_mailboxes != n_ids || h.next_mbox_id <= max_id) {
		kvs_report(&v, "user header: %u mailboxes / next id %u, found %zu / max id %u%s",
			   h.n_mailboxes, h.next_mbox_id, n_ids, max_id,
			   repair ? " (fixed)" : "");
		h.n_mailboxes = (uint32_t)n_ids;
		if (h.next_mbox_id <= max_id)
			h.next_mbox_id = max_id + 1;
		if (repair && kvs_header_put(u, v.txn, &h, err) < 0)
			goto fail;
	} else if (header_missing && repair && kvs_header_put(u, v.txn, &h, err) < 0) {
		goto fail;
	}

	/* Messages of mailboxes that no longer exist. */
	pfx = KVS_K_MSG;
	if (kvs_scan_prefix(u, v.txn, &pfx, 1, &msgs, err) < 0)
		goto fail;
	for (size_t i = 0; i < msgs.n; i++) {
		uint32_t id = msgs.klens[i] >= 5 ? kvs_get32(msgs.keys[i] + 1) : 0;
		if (bsearch(&id, ids, n_ids, sizeof(*ids), kvs_u32_cmp) == NULL) {
			kvs_report(&v, "message record of missing mailbox id %u%s", id,
				   repair ? " (removed)" : "");
			if (repair && u->kv->del(v.txn, msgs.keys[i], msgs.klens[i], err) < 0)
				goto fail;
		}
	}

	/* Blob refcounts vs the message records that use them. */
	if (n_refs > 0)
		qsort(refs, n_refs, sizeof(*refs), kvs_guidref_cmp);
	size_t w = 0;
	for (size_t i = 0; i < n_refs; i++) {
		if (w > 0 && memcmp(refs[w - 1].guid, refs[i].guid, MA_GUID_SIZE) == 0)
			refs[w - 1].refs++;
		else
			refs[w++] = refs[i];
	}
	n_refs = w;
	pfx = KVS_K_REF;
	if (kvs_scan_prefix(u, v.txn, &pfx, 1, &rl, err) < 0)
		goto fail;
	for (size_t i = 0; i < rl.n; i++) {
		struct kvs_guidref *r = NULL;
		uint32_t have = rl.vlens[i] == 4 ? kvs_get32(rl.vals[i]) : 0;
		if (rl.klens[i] == 1 + MA_GUID_SIZE && n_refs > 0)
			r = bsearch(rl.keys[i] + 1, refs, n_refs, sizeof(*refs),
				    kvs_guidref_cmp);
		if (r == NULL) {
			kvs_report(&v, "orphan blob (no message uses it)%s",
				   repair ? " (removed)" : "");
			if (repair &&
			    (u->kv->del(v.txn, rl.keys[i], rl.klens[i], err) < 0 ||
			     (rl.klens[i] == 1 + MA_GUID_SIZE &&
			      (u->kv->blob_del(v.txn, k, kvs_key_guid(k, KVS_B_MSG, rl.keys[i] + 1), err) < 0 ||
			       u->kv->blob_del(v.txn, k, kvs_key_guid(k, KVS_B_CACHE, rl.keys[i] + 1), err) < 0))))
				goto fail;
			continue;
		}
		if (r->refs != have) {
			kvs_report(&v, "blob refcount %u, %u messages use it%s", have,
				   r->refs, repair ? " (fixed)" : "");
			if (repair) {
				unsigned char rv[4];
				kvs_put32(rv, r->refs);
				if (u->kv->put(v.txn, rl.keys[i], rl.klens[i], rv, 4, err) < 0)
					goto fail;
			}
		}
		r->refs = 0;	/* seen */
	}
	for (size_t i = 0; i < n_refs; i++) {
		if (refs[i].refs == 0)
			continue;
		kvs_report(&v, "blob refcount missing%s", repair ? " (fixed)" : "");
		if (repair) {
			unsigned char rv[4];
			kvs_put32(rv, refs[i].refs);
			if (u->kv->put(v.txn, k, kvs_key_guid(k, KVS_K_REF, refs[i].guid),
				       rv, 4, err) < 0)
				goto fail;
		}
	}

	/* INBOX always exists. */
	uint32_t inbox_id;
	if ((rc = kvs_name_get(u, v.txn, "INBOX", &inbox_id, err)) < 0)
		goto fail;
	if (rc == 0) {
		kvs_report(&v, "INBOX missing%s", repair ? " (created)" : "");
		if (repair && kvs_box_create_txn(u, v.txn, "INBOX", MA_MBOX_SUBSCRIBED,
						 b, err) < 0)
			goto fail;
	}

	if (repair) {
		if (kvs_commit(u, v.txn, err) < 0)
			goto out;
	} else {
		u->kv->txn_abort(v.txn);
	}
	ret = v.problems;
	goto out;
fail:
	u->kv->txn_abort(v.txn);
out:
	kvs_kvlist_free(&names);
	kvs_kvlist_free(&boxes);
	kvs_kvlist_free(&msgs);
	kvs_kvlist_free(&rl);
	free(refs);
	free(ids);
	free(b);
	return ret;
}

/* ---------------- the table ---------------- */

static const struct ma_store_ops kvs_ops = {
	.struct_size = sizeof(struct ma_store_ops),
	.may_block = MA_STORE_MAY_BLOCK_READ | MA_STORE_MAY_BLOCK_WRITE,
	.user_open = kvs_user_open,
	.user_close = kvs_user_close,
	.mailbox_list = kvs_mailbox_list,
	.mailbox_create = kvs_mailbox_create,
	.mailbox_delete = kvs_mailbox_delete,
	.mailbox_rename = kvs_mailbox_rename,
	.mailbox_subscribe = kvs_mailbox_subscribe,
	.mailbox_status = kvs_mailbox_status,
	.mailbox_open = kvs_mailbox_open,
	.mailbox_close = kvs_mailbox_close,
	.mailbox_messages = kvs_mailbox_messages,
	.mailbox_keywords = kvs_mailbox_keywords,
	.mailbox_sync = kvs_mailbox_sync,
	.msg_read = kvs_msg_read,
	.msg_cache = kvs_msg_cache,
	.append = kvs_append,
	.copy = kvs_copy,
	.store_flags = kvs_store_flags,
	.expunge = kvs_expunge,
	.quota_usage = kvs_quota_usage,
	.verify = kvs_verify,
};

const struct ma_store_ops *ma_store_kv_mail_ops(void)
{
	return &kvs_ops;
}

void *ma_store_kv_ctx_create(const struct ma_kv_ops *kv, void *kv_ctx)
{
	struct kvs_ctx *ctx;

	if (kv == NULL || kv->struct_size < sizeof(struct ma_kv_ops) ||
	    kv->env_open == NULL || kv->env_close == NULL ||
	    kv->txn_begin == NULL || kv->txn_commit == NULL ||
	    kv->txn_abort == NULL || kv->get == NULL || kv->put == NULL ||
	    kv->del == NULL || kv->scan == NULL || kv->blob_put == NULL ||
	    kv->blob_get == NULL || kv->blob_del == NULL)
		return NULL;
	ctx = ma_malloc0(sizeof(*ctx));
	ctx->kv = kv;
	ctx->kv_ctx = kv_ctx;
	return ctx;
}

void ma_store_kv_ctx_destroy(void *ctx)
{
	free(ctx);
}
