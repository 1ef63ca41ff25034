/*
 * test-mime-store.c - the store hook: ma_store_append() gives every message
 * that arrives without a cache its parsed-MIME cache (and passes a cache
 * the caller made through untouched), without copying the message. Uses a
 * fake mail-level backend that records what append() was handed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core-private.h"

static int failures;
#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
	failures++; } } while (0)

#define SEEN_MAX 8
static struct {
	const void *data;
	unsigned char *cache;
	size_t cache_size;
} seen[SEEN_MAX];
static unsigned n_seen;

static int fake_user_open(void *ctx, const char *user, void **user_r,
			  struct ma_error_info *err)
{
	(void)ctx; (void)user; (void)err;
	*user_r = &n_seen;
	return 0;
}

static void fake_user_close(void *user)
{
	(void)user;
}

static int fake_append(void *user, const char *mailbox,
		       const struct ma_append_msg *msgs, unsigned n,
		       uint32_t *uids_r, uint32_t *uidvalidity_r,
		       struct ma_error_info *err)
{
	(void)user; (void)mailbox; (void)err;
	for (unsigned i = 0; i < n && n_seen < SEEN_MAX; i++, n_seen++) {
		seen[n_seen].data = msgs[i].data;
		seen[n_seen].cache_size = msgs[i].cache_size;
		seen[n_seen].cache = NULL;
		if (msgs[i].cache != NULL) {
			seen[n_seen].cache = malloc(msgs[i].cache_size + 1);
			memcpy(seen[n_seen].cache, msgs[i].cache, msgs[i].cache_size);
		}
		if (uids_r != NULL)
			uids_r[i] = n_seen + 1;
	}
	if (uidvalidity_r != NULL)
		*uidvalidity_r = 1;
	return 0;
}

static const struct ma_store_ops fake_ops = {
	.struct_size = sizeof(struct ma_store_ops),
	.user_open = fake_user_open,
	.user_close = fake_user_close,
	.append = fake_append,
};
static const struct ma_store_backend fake_backend = {
	.struct_size = sizeof(struct ma_store_backend),
	.mail = &fake_ops,
};

int main(void)
{
	struct ma_plugin desc;
	struct ma_loaded_plugin lp;
	struct ma_store *store;
	struct ma_user *u;
	struct ma_error_info err;
	char *cerr = NULL;
	const char *m1 = "Subject: one\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
			 "--b\r\n\r\nx\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>\r\n--b--\r\n";
	const char *m2 = "Subject: two\r\n\r\nbody";
	struct ma_append_msg msgs[3];
	uint32_t uids[3];

	memset(&desc, 0, sizeof(desc));
	desc.kind = MA_PLUGIN_STORE;
	desc.name = "fake";
	desc.ops = &fake_backend;
	memset(&lp, 0, sizeof(lp));
	lp.desc = &desc;
	store = ma_store_create(NULL, &lp, &cerr);
	CHECK(store != NULL);
	if (store == NULL)
		return 1;
	u = ma_store_user_open(store, "alice", &err);
	CHECK(u != NULL);
	if (u == NULL)
		return 1;

	memset(msgs, 0, sizeof(msgs));
	msgs[0].data = m1;
	msgs[0].size = strlen(m1);
	msgs[1].data = m2;
	msgs[1].size = strlen(m2);
	msgs[1].cache = "CALLERS";
	msgs[1].cache_size = 7;
	msgs[2].data = m2;
	msgs[2].size = strlen(m2);
	CHECK(ma_store_append(u, "INBOX", msgs, 3, uids, NULL, &err) == 0);
	CHECK(n_seen == 3);
	/* The caller's array is not changed. */
	CHECK(msgs[0].cache == NULL && msgs[2].cache == NULL);
	/* The message bytes are handed down in place, not copied. */
	CHECK(seen[0].data == m1 && seen[2].data == m2);
	/* A cache the caller made passes through untouched. */
	CHECK(seen[1].cache_size == 7 && seen[1].cache != NULL &&
	      memcmp(seen[1].cache, "CALLERS", 7) == 0);
	/* The others got a cache equal to parsing the message. */
	for (unsigned i = 0; i < 3; i += 2) {
		struct ma_arena *a = ma_arena_create(0);
		const char *m = i == 0 ? m1 : m2;
		struct ma_mime_part *back = seen[i].cache != NULL ?
			ma_mime_deserialize(a, seen[i].cache, seen[i].cache_size) : NULL;
		struct ma_mime_part *fresh = ma_mime_parse(a, (const unsigned char *)m, strlen(m));
		struct ma_buf b;
		ma_buf_init(&b, 1 << 20);
		CHECK(ma_mime_serialize(fresh, &b) == 0);
		CHECK(back != NULL);
		CHECK(ma_buf_len(&b) == seen[i].cache_size &&
		      memcmp(ma_buf_ptr(&b), seen[i].cache, seen[i].cache_size) == 0);
		if (back != NULL && i == 0) {
			CHECK(back->n_children == 2);
			CHECK(back->envelope != NULL && strcmp(back->envelope->subject, "one") == 0);
		}
		ma_buf_free(&b);
		ma_arena_destroy(&a);
	}
	for (unsigned i = 0; i < n_seen; i++)
		free(seen[i].cache);
	ma_store_user_close(&u);
	ma_store_destroy(&store);
	if (failures > 0) {
		fprintf(stderr, "test-mime-store: %d failure(s)\n", failures);
		return 1;
	}
	printf("test-mime-store: all passed\n");
	return 0;
}
