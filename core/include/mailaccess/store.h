/*
 * store.h - the message store, mail level.
 *
 * Two audiences:
 *  - protocols and tools call the ma_store_* / ma_mailbox_* functions at the
 *    bottom of this file (the core's wrapper: it validates names, publishes
 *    changes on the change bus, and will decide where blocking calls run);
 *  - store plugins (kind MA_PLUGIN_STORE) export a struct ma_store_backend
 *    that carries EITHER a mail-level table (struct ma_store_ops, below) OR a
 *    key-value table (struct ma_kv_ops, kv.h), in which case the core
 *    implements the whole mail level on top of it.
 *
 * Guarantees every backend keeps (the conformance kit checks them):
 *  - every write op is one atomic transaction, durable when it returns 0;
 *  - UIDs strictly increase and are never reused within one UIDVALIDITY;
 *  - readers never see a half-written message;
 *  - several processes may open the same user's store at once.
 *
 * Names: mailbox names are UTF-8, hierarchy separator '/', "INBOX" is
 * case-insensitive and always exists. The core validates user and mailbox
 * names before any backend sees them (no NUL/control chars, no empty or
 * "."/".." components, no leading '/', bounded length), so a backend may
 * use them in paths. Errors: functions return 0 on success, -1 with *err
 * filled (code + user-safe text); "not found" is an error code, not 0.
 */
#ifndef MAILACCESS_STORE_H
#define MAILACCESS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ma_core;
struct ma_kv_ops;

enum ma_error {
	MA_OK = 0,
	MA_ERR_TEMP,		/* try again later */
	MA_ERR_NOTFOUND,	/* no such mailbox/message/user */
	MA_ERR_EXISTS,		/* already exists */
	MA_ERR_PERM,		/* not allowed */
	MA_ERR_QUOTA,		/* over quota */
	MA_ERR_EXPUNGED,	/* message was expunged */
	MA_ERR_INUSE,		/* locked by another session (POP3 [IN-USE]) */
	MA_ERR_LIMIT,		/* a size/count limit */
	MA_ERR_BADARGS,		/* invalid name or argument */
	MA_ERR_INTERNAL,	/* bug or corruption: see the log */
};

struct ma_error_info {
	enum ma_error code;
	char text[200];		/* safe to show a client */
};

/* Fills err; text is printf-formatted and truncated. Returns -1. */
int ma_error_set(struct ma_error_info *err, enum ma_error code,
		 const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *ma_error_name(enum ma_error code);	/* "NOTFOUND" */

/* System flags (IMAP \Seen ...). Keywords are per-mailbox names, at most
 * MA_KEYWORDS_MAX per mailbox, carried as a bit mask per message. */
#define MA_FLAG_SEEN     0x01u
#define MA_FLAG_ANSWERED 0x02u
#define MA_FLAG_FLAGGED  0x04u
#define MA_FLAG_DELETED  0x08u
#define MA_FLAG_DRAFT    0x10u
#define MA_FLAGS_ALL     0x1fu
#define MA_KEYWORDS_MAX  64

#define MA_GUID_SIZE 16

/* One message in a mailbox view. */
struct ma_msg {
	uint32_t uid;
	uint32_t flags;		/* MA_FLAG_* */
	uint64_t keywords;	/* bit i = keyword i of the mailbox */
	uint64_t modseq;	/* modseq of the last change to this message */
	int64_t internal_date;	/* seconds since the epoch */
	int32_t internal_tz;	/* zone of internal_date, minutes east of UTC */
	uint32_t cache_size;	/* bytes of the cache blob (0 = none) */
	uint64_t size;		/* exact size of the stored bytes (CRLF lines) */
	uint8_t guid[MA_GUID_SIZE];	/* unique per stored message */
};

struct ma_mailbox_status {
	uint32_t messages;
	uint32_t recent;
	uint32_t unseen;
	uint32_t uidnext;
	uint32_t uidvalidity;
	uint64_t highestmodseq;
	uint64_t size;		/* sum of message sizes */
};

/* Mailbox attributes (LIST). */
#define MA_MBOX_NOSELECT   0x001u
#define MA_MBOX_SUBSCRIBED 0x002u
#define MA_MBOX_SU_SENT    0x010u	/* RFC 6154 special-use */
#define MA_MBOX_SU_DRAFTS  0x020u
#define MA_MBOX_SU_TRASH   0x040u
#define MA_MBOX_SU_JUNK    0x080u
#define MA_MBOX_SU_ARCHIVE 0x100u
#define MA_MBOX_SU_ALL     0x200u
#define MA_MBOX_SU_FLAGGED 0x400u
#define MA_MBOX_SU_MASK    0x7f0u

struct ma_mailbox_info {
	const char *name;
	uint32_t attrs;
};

/* Message bytes handed out by a read: data points at `size` bytes (CRLF
 * line ends), ideally straight into mapped storage. Valid until release. */
struct ma_msg_data {
	const unsigned char *data;
	size_t size;
	void (*release)(struct ma_msg_data *d);	/* may be NULL */
	void *handle;				/* backend's */
};
void ma_msg_data_release(struct ma_msg_data *d);	/* idempotent */

struct ma_append_msg {
	const void *data;	/* the message, CRLF line ends */
	size_t size;
	uint32_t flags;		/* MA_FLAG_* */
	const char *const *keywords;
	unsigned n_keywords;
	int64_t internal_date;	/* 0 = now */
	int32_t internal_tz;
	const void *cache;	/* opaque per-message cache (parsed MIME); may be NULL */
	size_t cache_size;
};

enum ma_flag_op { MA_FLAGS_ADD = 1, MA_FLAGS_REMOVE, MA_FLAGS_REPLACE };

/* What changed since the view's previous snapshot. Arrays are backend
 * memory valid until the next sync or close. */
struct ma_sync_result {
	const uint32_t *expunged;	/* UIDs gone, ascending */
	unsigned n_expunged;
	const uint32_t *changed;	/* UIDs whose flags/keywords changed, ascending */
	unsigned n_changed;
	unsigned n_new;			/* messages appended (at the end of the list) */
	bool keywords_changed;		/* the keyword name list grew */
};

/* ---------------- backend side: mail-level table ---------------- */

/* Which ops may block for a long time (fsync, network): the core may run
 * them off the loop. Calls for one user handle never overlap. */
#define MA_STORE_MAY_BLOCK_READ  0x1u
#define MA_STORE_MAY_BLOCK_WRITE 0x2u

struct ma_store_ops {
	uint32_t struct_size;
	uint32_t may_block;	/* MA_STORE_MAY_BLOCK_* */

	/* ctx: plugin init() ctx. The user's store is created on first open. */
	int (*user_open)(void *ctx, const char *user, void **user_r,
			 struct ma_error_info *err);
	void (*user_close)(void *user);

	/* Every mailbox of the user, any order. */
	int (*mailbox_list)(void *user,
			    void (*fn)(const struct ma_mailbox_info *info, void *fctx),
			    void *fctx, struct ma_error_info *err);
	int (*mailbox_create)(void *user, const char *name, uint32_t attrs,
			      struct ma_error_info *err);
	/* Deletes the mailbox and its messages (not its children). */
	int (*mailbox_delete)(void *user, const char *name, struct ma_error_info *err);
	/* Renames with children. Renaming INBOX moves its messages to the new
	 * name and leaves INBOX empty (RFC 3501 6.3.5); the new mailbox gets a
	 * new UIDVALIDITY. */
	int (*mailbox_rename)(void *user, const char *from, const char *to,
			      struct ma_error_info *err);
	int (*mailbox_subscribe)(void *user, const char *name, bool subscribe,
				 struct ma_error_info *err);
	/* Status without opening; `recent` may be 0 if not tracked. */
	int (*mailbox_status)(void *user, const char *name,
			      struct ma_mailbox_status *st, struct ma_error_info *err);

	/* Opens a view: a snapshot of the mailbox at this moment. */
	int (*mailbox_open)(void *user, const char *name, bool readonly,
			    void **box_r, struct ma_error_info *err);
	void (*mailbox_close)(void *box);
	/* The view's message list (ascending UID) and status. Valid until the
	 * next sync/close. */
	int (*mailbox_messages)(void *box, const struct ma_msg **msgs_r,
				uint32_t *count_r, struct ma_mailbox_status *st_r,
				struct ma_error_info *err);
	/* Keyword names of the mailbox; index = bit in ma_msg.keywords. */
	int (*mailbox_keywords)(void *box, const char *const **names_r,
				unsigned *count_r, struct ma_error_info *err);
	/* Moves the view to the latest committed state. Time proportional to
	 * the changes, not the mailbox size. */
	int (*mailbox_sync)(void *box, struct ma_sync_result *res_r,
			    struct ma_error_info *err);

	/* Reading. MA_ERR_EXPUNGED if the UID is gone. */
	int (*msg_read)(void *box, uint32_t uid, struct ma_msg_data *out,
			struct ma_error_info *err);
	int (*msg_cache)(void *box, uint32_t uid, struct ma_msg_data *out,
			 struct ma_error_info *err);

	/* Writing: each call one atomic, durable transaction. */
	int (*append)(void *user, const char *mailbox,
		      const struct ma_append_msg *msgs, unsigned n,
		      uint32_t *uids_r, uint32_t *uidvalidity_r,
		      struct ma_error_info *err);
	/* Copy (or move) uids of the open view into dest; new_uids_r[i] is
	 * the new UID of uids[i] (0 if it was already expunged). */
	int (*copy)(void *box, const uint32_t *uids, unsigned n, const char *dest,
		    bool move, uint32_t *new_uids_r, uint32_t *uidvalidity_r,
		    struct ma_error_info *err);
	/* unchangedsince: 0 = unconditional; otherwise messages whose modseq
	 * is greater are left alone and listed in failed_r (caller array of
	 * n), *n_failed_r set. */
	int (*store_flags)(void *box, const uint32_t *uids, unsigned n,
			   enum ma_flag_op op, uint32_t flags,
			   const char *const *keywords, unsigned n_keywords,
			   uint64_t unchangedsince, uint32_t *failed_r,
			   unsigned *n_failed_r, struct ma_error_info *err);
	/* Removes these UIDs (those already gone are ignored). */
	int (*expunge)(void *box, const uint32_t *uids, unsigned n,
		       struct ma_error_info *err);

	int (*quota_usage)(void *user, uint64_t *bytes_r, uint64_t *messages_r,
			   struct ma_error_info *err);
	/* Checks the user's store; with repair, fixes what can be derived
	 * again. report() gets one line per finding. Returns the number of
	 * problems found (>= 0) or -1. */
	int (*verify)(void *user, bool repair,
		      void (*report)(const char *line, void *rctx), void *rctx,
		      struct ma_error_info *err);
};

/* What a store plugin's descriptor `ops` points at. Exactly one of mail /
 * kv is non-NULL. */
struct ma_store_backend {
	uint32_t struct_size;
	const struct ma_store_ops *mail;
	const struct ma_kv_ops *kv;
};

/* ---------------- caller side: the core's store API ---------------- */

struct ma_store;	/* the configured store (ma_core_store()) */
struct ma_user;		/* one user's open store */
struct ma_mailbox;	/* an open mailbox view */

struct ma_user *ma_store_user_open(struct ma_store *store, const char *user,
				   struct ma_error_info *err);
void ma_store_user_close(struct ma_user **user);
const char *ma_user_name(const struct ma_user *user);

int ma_store_mailbox_list(struct ma_user *user,
			  void (*fn)(const struct ma_mailbox_info *info, void *fctx),
			  void *fctx, struct ma_error_info *err);
int ma_store_mailbox_create(struct ma_user *user, const char *name,
			    uint32_t attrs, struct ma_error_info *err);
int ma_store_mailbox_delete(struct ma_user *user, const char *name,
			    struct ma_error_info *err);
int ma_store_mailbox_rename(struct ma_user *user, const char *from,
			    const char *to, struct ma_error_info *err);
int ma_store_mailbox_subscribe(struct ma_user *user, const char *name,
			       bool subscribe, struct ma_error_info *err);
int ma_store_mailbox_status(struct ma_user *user, const char *name,
			    struct ma_mailbox_status *st, struct ma_error_info *err);
int ma_store_append(struct ma_user *user, const char *mailbox,
		    const struct ma_append_msg *msgs, unsigned n,
		    uint32_t *uids_r, uint32_t *uidvalidity_r,
		    struct ma_error_info *err);
int ma_store_quota_usage(struct ma_user *user, uint64_t *bytes_r,
			 uint64_t *messages_r, struct ma_error_info *err);
int ma_store_verify(struct ma_user *user, bool repair,
		    void (*report)(const char *line, void *rctx), void *rctx,
		    struct ma_error_info *err);

int ma_mailbox_open(struct ma_user *user, const char *name, bool readonly,
		    struct ma_mailbox **box_r, struct ma_error_info *err);
void ma_mailbox_close(struct ma_mailbox **box);
const char *ma_mailbox_name(const struct ma_mailbox *box);
int ma_mailbox_messages(struct ma_mailbox *box, const struct ma_msg **msgs_r,
			uint32_t *count_r, struct ma_mailbox_status *st_r,
			struct ma_error_info *err);
int ma_mailbox_keywords(struct ma_mailbox *box, const char *const **names_r,
			unsigned *count_r, struct ma_error_info *err);
int ma_mailbox_sync(struct ma_mailbox *box, struct ma_sync_result *res_r,
		    struct ma_error_info *err);
int ma_mailbox_msg_read(struct ma_mailbox *box, uint32_t uid,
			struct ma_msg_data *out, struct ma_error_info *err);
int ma_mailbox_msg_cache(struct ma_mailbox *box, uint32_t uid,
			 struct ma_msg_data *out, struct ma_error_info *err);
int ma_mailbox_copy(struct ma_mailbox *box, const uint32_t *uids, unsigned n,
		    const char *dest, bool move, uint32_t *new_uids_r,
		    uint32_t *uidvalidity_r, struct ma_error_info *err);
int ma_mailbox_store_flags(struct ma_mailbox *box, const uint32_t *uids,
			   unsigned n, enum ma_flag_op op, uint32_t flags,
			   const char *const *keywords, unsigned n_keywords,
			   uint64_t unchangedsince, uint32_t *failed_r,
			   unsigned *n_failed_r, struct ma_error_info *err);
int ma_mailbox_expunge(struct ma_mailbox *box, const uint32_t *uids,
		       unsigned n, struct ma_error_info *err);

/* Name checks the wrapper applies (exposed for protocols and tests):
 * 0 ok, -1 with err (MA_ERR_BADARGS). */
int ma_store_check_user_name(const char *user, struct ma_error_info *err);
int ma_store_check_mailbox_name(const char *name, struct ma_error_info *err);

/* ---------------- change bus ---------------- */

/* Every successful write through the wrapper publishes (user, mailbox).
 * Subscribers are called on the loop, after the write returned; in this
 * version within one process (cross-process delivery comes with the
 * worker model). A backend whose data changes outside the server may call
 * ma_changebus_publish() itself. */
struct ma_changebus_sub;
typedef void ma_changebus_callback(const char *user, const char *mailbox,
				   void *ctx);
struct ma_changebus_sub *ma_changebus_subscribe(struct ma_core *core,
						const char *user,
						const char *mailbox,
						ma_changebus_callback *cb,
						void *ctx);
void ma_changebus_unsubscribe(struct ma_changebus_sub **sub);
void ma_changebus_publish(struct ma_core *core, const char *user,
			  const char *mailbox);

#endif
