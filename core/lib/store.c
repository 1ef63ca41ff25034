/*
 * store.c - the core's store API (store.h, caller side) and the change bus.
 *
 * Protocols and tools never call a backend's table directly: every call
 * goes through the ma_store_* / ma_mailbox_* wrappers here, which
 *  - validate user and mailbox names once (so a backend may use them in
 *    paths) and canonicalise INBOX (case-insensitive, RFC 3501 5.1);
 *  - publish every successful write on the change bus, so no backend can
 *    forget to wake IDLE sessions;
 *  - are the one place that will move blocking backend calls to the thread
 *    pool (today every call runs synchronously on the caller's thread).
 *
 * A kv backend (struct ma_kv_ops) is wrapped by store-kv.c, which supplies
 * the mail-level table.
 *
 * Change bus: subscribers are kept per (user, mailbox) in this process.
 * ma_changebus_publish() may be called from any thread: it queues the event
 * (deduplicated) and wakes the loop with an ev_async; subscribers run on
 * the loop in the next iteration, never inside the write call itself.
 * subscribe/unsubscribe are loop-thread only.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ev.h>

#include "core-private.h"

#define MA_STORE_USER_MAX 255		/* bytes; auth names fit (MA_AUTH_USER_MAX) */
#define MA_STORE_MAILBOX_MAX 1000	/* bytes of a full mailbox name */
#define MA_STORE_MAILBOX_DEPTH 16	/* hierarchy levels */

struct ma_store {
	struct ma_core *core;
	const struct ma_store_ops *ops;
	void *ctx;
	bool kv_wrapped;	/* ctx is ours (ma_store_kv_ctx_create) */
	const char *backend_name;
};

struct ma_user {
	struct ma_store *store;
	void *h;
	char *name;
};

struct ma_mailbox {
	struct ma_user *user;
	void *h;
	char *name;
};

/* ---------------- errors ---------------- */

int ma_error_set(struct ma_error_info *err, enum ma_error code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof(err->text), fmt, ap);
	va_end(ap);
	return -1;
}

const char *ma_error_name(enum ma_error code)
{
	static const char *const names[] = {
		[MA_OK] = "OK",
		[MA_ERR_TEMP] = "TEMP",
		[MA_ERR_NOTFOUND] = "NOTFOUND",
		[MA_ERR_EXISTS] = "EXISTS",
		[MA_ERR_PERM] = "PERM",
		[MA_ERR_QUOTA] = "QUOTA",
		[MA_ERR_EXPUNGED] = "EXPUNGED",
		[MA_ERR_INUSE] = "INUSE",
		[MA_ERR_LIMIT] = "LIMIT",
		[MA_ERR_BADARGS] = "BADARGS",
		[MA_ERR_INTERNAL] = "INTERNAL",
	};

	if ((unsigned)code >= sizeof(names) / sizeof(names[0]) || names[code] == NULL)
		return "UNKNOWN";
	return names[code];
}

void ma_msg_data_release(struct ma_msg_data *d)
{
	if (d == NULL)
		return;
	if (d->release != NULL)
		d->release(d);
	d->release = NULL;
	d->handle = NULL;
	d->data = NULL;
	d->size = 0;
}

/* ---------------- names ---------------- */

/* Length of one valid UTF-8 sequence at s (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF), 0 if invalid. */
static size_t store_utf8_seq(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2; cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3; cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4; cp = c & 0x07;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* UTF-8, no control characters (C0, DEL, C1). */
static bool store_text_ok(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		size_t n = store_utf8_seq(p + i, len - i);
		if (n == 0 || p[i] < 0x20 || p[i] == 0x7f)
			return false;
		/* C1 controls U+0080..U+009F: encoded as C2 80..C2 9F. */
		if (n == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0)
			return false;
		i += n;
	}
	return true;
}

int ma_store_check_user_name(const char *user, struct ma_error_info *err)
{
	size_t len;

	if (user == NULL)
		return ma_error_set(err, MA_ERR_BADARGS, "Missing user name");
	len = strnlen(user, MA_STORE_USER_MAX + 1);
	if (len == 0 || len > MA_STORE_USER_MAX)
		return ma_error_set(err, MA_ERR_BADARGS, "Invalid user name length");
	/* Backends use the name as one path component. */
	if (strchr(user, '/') != NULL || strcmp(user, ".") == 0 ||
	    strcmp(user, "..") == 0 || !store_text_ok(user, len))
		return ma_error_set(err, MA_ERR_BADARGS, "Invalid user name");
	return 0;
}

int ma_store_check_mailbox_name(const char *name, struct ma_error_info *err)
{
	size_t len, start = 0;
	unsigned depth = 0;

	if (name == NULL)
		return ma_error_set(err, MA_ERR_BADARGS, "Missing mailbox name");
	len = strnlen(name, MA_STORE_MAILBOX_MAX + 1);
	if (len == 0 || len > MA_STORE_MAILBOX_MAX)
		return ma_error_set(err, MA_ERR_BADARGS, "Invalid mailbox name length");
	if (!store_text_ok(name, len))
		return ma_error_set(err, MA_ERR_BADARGS,
				    "Mailbox name is not valid UTF-8 text");
	for (size_t i = 0; i <= len; i++) {
		if (i < len && name[i] != '/')
			continue;
		size_t clen = i - start;
		if (clen == 0)
			return ma_error_set(err, MA_ERR_BADARGS,
					    "Empty mailbox name component");
		if ((clen == 1 && name[start] == '.') ||
		    (clen == 2 && name[start] == '.' && name[start + 1] == '.'))
			return ma_error_set(err, MA_ERR_BADARGS,
					    "Mailbox name component '.' or '..'");
		if (++depth > MA_STORE_MAILBOX_DEPTH)
			return ma_error_set(err, MA_ERR_BADARGS,
					    "Mailbox hierarchy too deep (max %d)",
					    MA_STORE_MAILBOX_DEPTH);
		start = i + 1;
	}
	return 0;
}

/* Validates and canonicalises (first component INBOX in any case ->
 * "INBOX") into out (MA_STORE_MAILBOX_MAX + 1 bytes). */
static int store_mailbox_name(const char *name, char *out, struct ma_error_info *err)
{
	if (ma_store_check_mailbox_name(name, err) < 0)
		return -1;
	memcpy(out, name, strlen(name) + 1);
	if (strncasecmp(out, "INBOX", 5) == 0 && (out[5] == '\0' || out[5] == '/'))
		memcpy(out, "INBOX", 5);
	return 0;
}

/* ---------------- store ---------------- */

struct ma_store *ma_store_create(struct ma_core *core,
				 struct ma_loaded_plugin *backend,
				 char **error_r)
{
	const struct ma_store_backend *be;
	struct ma_store *store;
	char buf[256];

	if (backend == NULL || backend->desc == NULL || backend->desc->ops == NULL) {
		*error_r = ma_strdup("store: no backend loaded");
		return NULL;
	}
	be = backend->desc->ops;
	if (be->struct_size < sizeof(struct ma_store_backend) ||
	    (be->mail == NULL) == (be->kv == NULL)) {
		snprintf(buf, sizeof(buf), "store %s: backend must set exactly one of "
			 "mail or kv ops", backend->desc->name);
		*error_r = ma_strdup(buf);
		return NULL;
	}
	store = ma_malloc0(sizeof(*store));
	store->core = core;
	store->backend_name = backend->desc->name;
	if (be->mail != NULL) {
		if (be->mail->struct_size < sizeof(struct ma_store_ops) ||
		    be->mail->user_open == NULL || be->mail->user_close == NULL) {
			snprintf(buf, sizeof(buf), "store %s: mail ops table too old "
				 "or incomplete", backend->desc->name);
			*error_r = ma_strdup(buf);
			free(store);
			return NULL;
		}
		store->ops = be->mail;
		store->ctx = backend->ctx;
	} else {
		store->ctx = ma_store_kv_ctx_create(be->kv, backend->ctx);
		if (store->ctx == NULL) {
			snprintf(buf, sizeof(buf), "store %s: kv ops table too old "
				 "or incomplete", backend->desc->name);
			*error_r = ma_strdup(buf);
			free(store);
			return NULL;
		}
		store->ops = ma_store_kv_mail_ops();
		store->kv_wrapped = true;
	}
	return store;
}

void ma_store_destroy(struct ma_store **storep)
{
	struct ma_store *store = *storep;

	if (store == NULL)
		return;
	*storep = NULL;
	if (store->kv_wrapped)
		ma_store_kv_ctx_destroy(store->ctx);
	free(store);
}

#define STORE_NEED(ops, fn, err) \
	do { if ((ops)->fn == NULL) \
		return ma_error_set(err, MA_ERR_PERM, "Not supported by this store"); \
	} while (0)

static void store_publish(struct ma_user *user, const char *mailbox)
{
	if (user->store->core != NULL)
		ma_changebus_publish(user->store->core, user->name, mailbox);
}

struct ma_user *ma_store_user_open(struct ma_store *store, const char *user,
				   struct ma_error_info *err)
{
	struct ma_user *u;
	void *h = NULL;

	if (store == NULL) {
		ma_error_set(err, MA_ERR_INTERNAL, "No store configured");
		return NULL;
	}
	if (ma_store_check_user_name(user, err) < 0)
		return NULL;
	if (store->ops->user_open(store->ctx, user, &h, err) < 0)
		return NULL;
	u = ma_malloc0(sizeof(*u));
	u->store = store;
	u->h = h;
	u->name = ma_strdup(user);
	return u;
}

void ma_store_user_close(struct ma_user **userp)
{
	struct ma_user *u = *userp;

	if (u == NULL)
		return;
	*userp = NULL;
	u->store->ops->user_close(u->h);
	free(u->name);
	free(u);
}

const char *ma_user_name(const struct ma_user *user)
{
	return user->name;
}

int ma_store_mailbox_list(struct ma_user *user,
			  void (*fn)(const struct ma_mailbox_info *info, void *fctx),
			  void *fctx, struct ma_error_info *err)
{
	STORE_NEED(user->store->ops, mailbox_list, err);
	if (fn == NULL)
		return ma_error_set(err, MA_ERR_BADARGS, "Missing callback");
	return user->store->ops->mailbox_list(user->h, fn, fctx, err);
}

int ma_store_mailbox_create(struct ma_user *user, const char *name,
			    uint32_t attrs, struct ma_error_info *err)
{
	char n[MA_STORE_MAILBOX_MAX + 1];

	STORE_NEED(user->store->ops, mailbox_create, err);
	if (store_mailbox_name(name, n, err) < 0)
		return -1;
	if (strcmp(n, "INBOX") == 0)
		return ma_error_set(err, MA_ERR_EXISTS, "Mailbox already exists");
	if (user->store->ops->mailbox_create(user->h, n, attrs, err) < 0)
		return -1;
	store_publish(user, n);
	return 0;
}

int ma_store_mailbox_delete(struct ma_user *user, const char *name,
			    struct ma_error_info *err)
{
	char n[MA_STORE_MAILBOX_MAX + 1];

	STORE_NEED(user->store->ops, mailbox_delete, err);
	if (store_mailbox_name(name, n, err) < 0)
		return -1;
	if (strcmp(n, "INBOX") == 0)
		return ma_error_set(err, MA_ERR_PERM, "INBOX can't be deleted");
	if (user->store->ops->mailbox_delete(user->h, n, err) < 0)
		return -1;
	store_publish(user, n);
	return 0;
}

int ma_store_mailbox_rename(struct ma_user *user, const char *from,
			    const char *to, struct ma_error_info *err)
{
	char f[MA_STORE_MAILBOX_MAX + 1], t[MA_STORE_MAILBOX_MAX + 1];

	STORE_NEED(user->store->ops, mailbox_rename, err);
	if (store_mailbox_name(from, f, err) < 0 || store_mailbox_name(to, t, err) < 0)
		return -1;
	if (strcmp(t, "INBOX") == 0)
		return ma_error_set(err, MA_ERR_EXISTS, "Mailbox already exists");
	if (user->store->ops->mailbox_rename(user->h, f, t, err) < 0)
		return -1;
	store_publish(user, f);
	store_publish(user, t);
	return 0;
}

int ma_store_mailbox_subscribe(struct ma_user *user, const char *name,
			       bool subscribe, struct ma_error_info *err)
{
	char n[MA_STORE_MAILBOX_MAX + 1];

	STORE_NEED(user->store->ops, mailbox_subscribe, err);
	if (store_mailbox_name(name, n, err) < 0)
		return -1;
	if (user->store->ops->mailbox_subscribe(user->h, n, subscribe, err) < 0)
		return -1;
	store_publish(user, n);
	return 0;
}

int ma_store_mailbox_status(struct ma_user *user, const char *name,
			    struct ma_mailbox_status *st, struct ma_error_info *err)
{
	char n[MA_STORE_MAILBOX_MAX + 1];

	STORE_NEED(user->store->ops, mailbox_status, err);
	if (st == NULL)
		return ma_error_set(err, MA_ERR_BADARGS, "Missing status");
	if (store_mailbox_name(name, n, err) < 0)
		return -1;
	return user->store->ops->mailbox_status(user->h, n, st, err);
}

int ma_store_append(struct ma_user *user, const char *mailbox,
		    const struct ma_append_msg *msgs, unsigned n,
		    uint32_t *uids_r, uint32_t *uidvalidity_r,
		    struct ma_error_info *err)
{
	char name[MA_STORE_MAILBOX_MAX + 1];

	STORE_NEED(user->store->ops, append, err);
	if (store_mailbox_name(mailbox, name, err) < 0)
		return -1;
	if (n == 0 || msgs == NULL)
		return ma_error_set(err, MA_ERR_BADARGS, "Nothing to append");
	/* Every message gets its parsed-MIME cache here, however it arrives
	 * (deliver, APPEND, LMTP), so FETCH never parses it again. The
	 * message is parsed in place; only the array of descriptors is
	 * copied. A cache too large to keep (cache_max) is left
	 * out: readers parse the message instead. */
	const size_t cache_max = (size_t)4 << 20;
	struct ma_append_msg *copy = NULL;
	struct ma_arena *arena = NULL;
	struct ma_buf *bufs = NULL;
	int rc;

	for (unsigned i = 0; i < n; i++) {
		if (msgs[i].cache != NULL || msgs[i].data == NULL)
			continue;
		if (copy == NULL) {
			copy = ma_malloc0(n * sizeof(*copy));
			memcpy(copy, msgs, n * sizeof(*copy));
			bufs = ma_malloc0(n * sizeof(*bufs));
			arena = ma_arena_create(16384);
		}
		ma_buf_init(&bufs[i], cache_max);
		struct ma_mime_part *root = ma_mime_parse(arena, msgs[i].data,
							   msgs[i].size);
		if (ma_mime_serialize(root, &bufs[i]) == 0) {
			copy[i].cache = ma_buf_ptr(&bufs[i]);
			copy[i].cache_size = ma_buf_len(&bufs[i]);
		}
		ma_arena_reset(arena);
	}
	rc = user->store->ops->append(user->h, name, copy != NULL ? copy : msgs,
				      n, uids_r, uidvalidity_r, err);
	if (copy != NULL) {
		for (unsigned i = 0; i < n; i++)
			ma_buf_free(&bufs[i]);
		free(bufs);
		free(copy);
		ma_arena_destroy(&arena);
	}
	if (rc < 0)
		return -1;
	store_publish(user, name);
	return 0;
}

int ma_store_quota_usage(struct ma_user *user, uint64_t *bytes_r,
			 uint64_t *messages_r, struct ma_error_info *err)
{
	STORE_NEED(user->store->ops, quota_usage, err);
	return user->store->ops->quota_usage(user->h, bytes_r, messages_r, err);
}

int ma_store_verify(struct ma_user *user, bool repair,
		    void (*report)(const char *line, void *rctx), void *rctx,
		    struct ma_error_info *err)
{
	int rc;

	STORE_NEED(user->store->ops, verify, err);
	rc = user->store->ops->verify(user->h, repair, report, rctx, err);
	if (rc > 0 && repair)
		store_publish(user, "INBOX");
	return rc;
}

/* ---------------- mailbox views ---------------- */

int ma_mailbox_open(struct ma_user *user, const char *name, bool readonly,
		    struct ma_mailbox **box_r, struct ma_error_info *err)
{
	char n[MA_STORE_MAILBOX_MAX + 1];
	struct ma_mailbox *box;
	void *h = NULL;

	*box_r = NULL;
	STORE_NEED(user->store->ops, mailbox_open, err);
	if (store_mailbox_name(name, n, err) < 0)
		return -1;
	if (user->store->ops->mailbox_open(user->h, n, readonly, &h, err) < 0)
		return -1;
	box = ma_malloc0(sizeof(*box));
	box->user = user;
	box->h = h;
	box->name = ma_strdup(n);
	*box_r = box;
	return 0;
}

void ma_mailbox_close(struct ma_mailbox **boxp)
{
	struct ma_mailbox *box = *boxp;

	if (box == NULL)
		return;
	*boxp = NULL;
	if (box->user->store->ops->mailbox_close != NULL)
		box->user->store->ops->mailbox_close(box->h);
	free(box->name);
	free(box);
}

const char *ma_mailbox_name(const struct ma_mailbox *box)
{
	return box->name;
}

int ma_mailbox_messages(struct ma_mailbox *box, const struct ma_msg **msgs_r,
			uint32_t *count_r, struct ma_mailbox_status *st_r,
			struct ma_error_info *err)
{
	STORE_NEED(box->user->store->ops, mailbox_messages, err);
	return box->user->store->ops->mailbox_messages(box->h, msgs_r, count_r,
						       st_r, err);
}

int ma_mailbox_keywords(struct ma_mailbox *box, const char *const **names_r,
			unsigned *count_r, struct ma_error_info *err)
{
	STORE_NEED(box->user->store->ops, mailbox_keywords, err);
	return box->user->store->ops->mailbox_keywords(box->h, names_r, count_r, err);
}

int ma_mailbox_sync(struct ma_mailbox *box, struct ma_sync_result *res_r,
		    struct ma_error_info *err)
{
	STORE_NEED(box->user->store->ops, mailbox_sync, err);
	return box->user->store->ops->mailbox_sync(box->h, res_r, err);
}

int ma_mailbox_msg_read(struct ma_mailbox *box, uint32_t uid,
			struct ma_msg_data *out, struct ma_error_info *err)
{
	memset(out, 0, sizeof(*out));
	STORE_NEED(box->user->store->ops, msg_read, err);
	return box->user->store->ops->msg_read(box->h, uid, out, err);
}

int ma_mailbox_msg_cache(struct ma_mailbox *box, uint32_t uid,
			 struct ma_msg_data *out, struct ma_error_info *err)
{
	memset(out, 0, sizeof(*out));
	STORE_NEED(box->user->store->ops, msg_cache, err);
	return box->user->store->ops->msg_cache(box->h, uid, out, err);
}

int ma_mailbox_copy(struct ma_mailbox *box, const uint32_t *uids, unsigned n,
		    const char *dest, bool move, uint32_t *new_uids_r,
		    uint32_t *uidvalidity_r, struct ma_error_info *err)
{
	char d[MA_STORE_MAILBOX_MAX + 1];

	STORE_NEED(box->user->store->ops, copy, err);
	if (store_mailbox_name(dest, d, err) < 0)
		return -1;
	if (box->user->store->ops->copy(box->h, uids, n, d, move, new_uids_r,
					uidvalidity_r, err) < 0)
		return -1;
	store_publish(box->user, d);
	if (move)
		store_publish(box->user, box->name);
	return 0;
}

int ma_mailbox_store_flags(struct ma_mailbox *box, const uint32_t *uids,
			   unsigned n, enum ma_flag_op op, uint32_t flags,
			   const char *const *keywords, unsigned n_keywords,
			   uint64_t unchangedsince, uint32_t *failed_r,
			   unsigned *n_failed_r, struct ma_error_info *err)
{
	STORE_NEED(box->user->store->ops, store_flags, err);
	if (box->user->store->ops->store_flags(box->h, uids, n, op, flags, keywords,
					       n_keywords, unchangedsince,
					       failed_r, n_failed_r, err) < 0)
		return -1;
	store_publish(box->user, box->name);
	return 0;
}

int ma_mailbox_expunge(struct ma_mailbox *box, const uint32_t *uids,
		       unsigned n, struct ma_error_info *err)
{
	STORE_NEED(box->user->store->ops, expunge, err);
	if (box->user->store->ops->expunge(box->h, uids, n, err) < 0)
		return -1;
	store_publish(box->user, box->name);
	return 0;
}

/* ---------------- change bus ---------------- */

struct ma_changebus_sub {
	struct ma_changebus_sub *next;
	struct ma_changebus *bus;
	char *user;
	char *mailbox;		/* NULL: every mailbox of the user */
	ma_changebus_callback *cb;
	void *ctx;
	bool dead;		/* unsubscribed during dispatch */
};

struct store_bus_event {
	struct store_bus_event *next;
	char *user;
	char *mailbox;
};

/* Pending events are deduplicated, so the queue is bounded by the number
 * of distinct (user, mailbox) pairs written since the last loop turn;
 * this cap is a backstop against a runaway publisher. */
#define MA_CHANGEBUS_PENDING_MAX 100000u

struct ma_changebus {
	struct ma_core *core;
	pthread_mutex_t lock;	/* pending list and subs list pointers */
	struct ma_changebus_sub *subs;
	unsigned n_subs;
	struct store_bus_event *pending;
	unsigned n_pending;
	struct ev_loop *loop;
	ev_async async;
	bool async_started;
	bool dispatching;
	bool need_sweep;
};

static void store_bus_event_free(struct store_bus_event *e)
{
	free(e->user);
	free(e->mailbox);
	free(e);
}

static void store_bus_sweep(struct ma_changebus *bus)
{
	struct ma_changebus_sub **p = &bus->subs;

	pthread_mutex_lock(&bus->lock);
	while (*p != NULL) {
		struct ma_changebus_sub *s = *p;
		if (s->dead) {
			*p = s->next;
			bus->n_subs--;
			free(s->user);
			free(s->mailbox);
			free(s);
		} else {
			p = &s->next;
		}
	}
	pthread_mutex_unlock(&bus->lock);
	bus->need_sweep = false;
}

static void store_bus_dispatch(struct ma_changebus *bus)
{
	struct store_bus_event *list, *e;

	pthread_mutex_lock(&bus->lock);
	list = bus->pending;
	bus->pending = NULL;
	bus->n_pending = 0;
	pthread_mutex_unlock(&bus->lock);
	/* Queued newest first: deliver in publish order. */
	struct store_bus_event *rev = NULL;
	while ((e = list) != NULL) {
		list = e->next;
		e->next = rev;
		rev = e;
	}
	list = rev;

	bus->dispatching = true;
	while ((e = list) != NULL) {
		list = e->next;
		for (struct ma_changebus_sub *s = bus->subs; s != NULL; s = s->next) {
			if (s->dead || strcmp(s->user, e->user) != 0)
				continue;
			if (s->mailbox != NULL && strcmp(s->mailbox, e->mailbox) != 0)
				continue;
			s->cb(e->user, e->mailbox, s->ctx);
		}
		store_bus_event_free(e);
	}
	bus->dispatching = false;
	if (bus->need_sweep)
		store_bus_sweep(bus);
}

static void store_bus_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	(void)loop;
	(void)revents;
	store_bus_dispatch(w->data);
}

void ma_changebus_init(struct ma_core *core)
{
	struct ma_changebus *bus;

	if (core == NULL || core->bus != NULL)
		return;
	bus = ma_malloc0(sizeof(*bus));
	bus->core = core;
	pthread_mutex_init(&bus->lock, NULL);
	core->bus = bus;
}

void ma_changebus_deinit(struct ma_core *core)
{
	struct ma_changebus *bus;
	struct store_bus_event *e;

	if (core == NULL || (bus = core->bus) == NULL)
		return;
	core->bus = NULL;
	if (bus->async_started) {
		/* Undo the ev_unref() of the start. */
		ev_ref(bus->loop);
		ev_async_stop(bus->loop, &bus->async);
	}
	while ((e = bus->pending) != NULL) {
		bus->pending = e->next;
		store_bus_event_free(e);
	}
	/* Subscriptions still held are freed here; their handles dangle, so
	 * owners must unsubscribe before the core goes. */
	for (struct ma_changebus_sub *s = bus->subs, *next; s != NULL; s = next) {
		next = s->next;
		free(s->user);
		free(s->mailbox);
		free(s);
	}
	pthread_mutex_destroy(&bus->lock);
	free(bus);
}

struct ma_changebus_sub *ma_changebus_subscribe(struct ma_core *core,
						const char *user,
						const char *mailbox,
						ma_changebus_callback *cb,
						void *ctx)
{
	struct ma_changebus *bus;
	struct ma_changebus_sub *s;

	if (core == NULL || user == NULL || cb == NULL)
		return NULL;
	if (core->bus == NULL)
		ma_changebus_init(core);
	bus = core->bus;
	if (!bus->async_started) {
		bus->loop = core->loop != NULL ? core->loop : ev_default_loop(0);
		ev_async_init(&bus->async, store_bus_async_cb);
		bus->async.data = bus;
		ev_async_start(bus->loop, &bus->async);
		/* The bus alone must not keep the loop running. */
		ev_unref(bus->loop);
		bus->async_started = true;
	}
	s = ma_malloc0(sizeof(*s));
	s->bus = bus;
	s->user = ma_strdup(user);
	s->cb = cb;
	s->ctx = ctx;
	if (mailbox != NULL) {
		char n[MA_STORE_MAILBOX_MAX + 1];
		struct ma_error_info err;
		s->mailbox = ma_strdup(store_mailbox_name(mailbox, n, &err) == 0 ?
				       n : mailbox);
	}
	pthread_mutex_lock(&bus->lock);
	s->next = bus->subs;
	bus->subs = s;
	bus->n_subs++;
	pthread_mutex_unlock(&bus->lock);
	return s;
}

void ma_changebus_unsubscribe(struct ma_changebus_sub **subp)
{
	struct ma_changebus_sub *s = *subp;

	if (s == NULL)
		return;
	*subp = NULL;
	s->dead = true;
	s->bus->need_sweep = true;
	if (!s->bus->dispatching)
		store_bus_sweep(s->bus);
}

void ma_changebus_publish(struct ma_core *core, const char *user,
			  const char *mailbox)
{
	if (core == NULL || user == NULL || mailbox == NULL)
		return;
	ma_changebus_publish_local(core, user, mailbox);
	/* Other processes (workers, a daemon beside mailaccessctl deliver). */
	ma_changebus_ipc_send(core, user, mailbox);
}

void ma_changebus_publish_local(struct ma_core *core, const char *user,
				const char *mailbox)
{
	struct ma_changebus *bus;
	struct store_bus_event *e;
	bool wake = false;

	if (core == NULL || (bus = core->bus) == NULL || user == NULL ||
	    mailbox == NULL)
		return;
	pthread_mutex_lock(&bus->lock);
	if (bus->n_subs == 0 || !bus->async_started) {
		pthread_mutex_unlock(&bus->lock);
		return;
	}
	for (e = bus->pending; e != NULL; e = e->next) {
		if (strcmp(e->user, user) == 0 && strcmp(e->mailbox, mailbox) == 0)
			break;
	}
	if (e == NULL && bus->n_pending < MA_CHANGEBUS_PENDING_MAX) {
		e = ma_malloc0(sizeof(*e));
		e->user = ma_strdup(user);
		e->mailbox = ma_strdup(mailbox);
		e->next = bus->pending;
		bus->pending = e;
		bus->n_pending++;
		wake = true;
	}
	pthread_mutex_unlock(&bus->lock);
	if (wake)
		ev_async_send(bus->loop, &bus->async);
}
