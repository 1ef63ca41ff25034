/*
 * imap-fetch.h - what the message-data commands share (FETCH, STORE, COPY,
 * MOVE, SEARCH): IMAP string output for ENVELOPE/BODYSTRUCTURE, IMAP part
 * lookup, loading a message's MIME tree (cache first), flag lists, UID
 * set compression and the search program. Private to imap.so (owner:
 * imap-fetch), not part of the session contract in imap-private.h.
 */
#ifndef IMAP_FETCH_H
#define IMAP_FETCH_H

#include "imap-private.h"

/* ---------------- string output (imap-bodystructure.c) ---------------- */
/* nstring: NIL for NULL, a quoted string when short and plain 7-bit,
 * else a literal (RFC 3501 4.3: CR, LF, NUL, 8-bit need a literal). */
void imap_fetch_nstring(struct ma_buf *b, const char *s, size_t len);
/* Same, NIL for NULL, with ASCII upper-casing (media types, params). */
void imap_fetch_string_upper(struct ma_buf *b, const char *s);

/* ENVELOPE (RFC 3501 7.4.2) of a message or message/rfc822 child. */
void imap_fetch_envelope(struct ma_buf *b, struct ma_arena *a,
			 const struct ma_mime_envelope *env);
/* BODY (extended = false) or BODYSTRUCTURE (extended = true). */
void imap_fetch_bodystructure(struct ma_buf *b, struct ma_arena *a,
			      const struct ma_mime_part *part, bool extended);

/* IMAP part numbering (RFC 3501 6.4.5): "1.2.3" -> part, NULL if none.
 * nums/n: parsed numbers (n == 0: the root). */
const struct ma_mime_part *imap_fetch_find_part(const struct ma_mime_part *root,
						const uint32_t *nums, unsigned n);
bool imap_fetch_part_is_message(const struct ma_mime_part *p);

/* The MIME tree of message m: from the per-message cache, else (a message
 * stored without one) parsed from data, which the caller read; *need_data_r
 * tells the caller to read the message and call again with it.
 * Returns the tree (in a), or NULL with *need_data_r set, or NULL on error
 * (err filled; MA_ERR_EXPUNGED when gone). */
struct ma_mime_part *imap_fetch_mime(struct ma_mailbox *box, struct ma_arena *a,
				     const struct ma_msg *m,
				     const struct ma_msg_data *data,
				     bool *need_data_r, struct ma_error_info *err);

/* "1:3,7,9:10" from a UID list, compressing runs of consecutive UIDs in
 * the order given (COPYUID pairs the i-th source with the i-th
 * destination UID, RFC 4315 section 3, so nothing is re-sorted). */
void imap_fetch_uidset(struct ma_buf *b, const uint32_t *uids, unsigned n);

/* ---------------- fetch attributes (cmd-fetch.c) ---------------- */
enum imap_fetch_kind {
	IMAP_FI_FLAGS = 1,
	IMAP_FI_INTERNALDATE,
	IMAP_FI_RFC822,
	IMAP_FI_RFC822_HEADER,
	IMAP_FI_RFC822_SIZE,
	IMAP_FI_RFC822_TEXT,
	IMAP_FI_ENVELOPE,
	IMAP_FI_BODY,
	IMAP_FI_BODYSTRUCTURE,
	IMAP_FI_UID,
	IMAP_FI_SECTION,
};

enum imap_fetch_spec {
	IMAP_SEC_ALL = 0,	/* BODY[] / BODY[1.2] */
	IMAP_SEC_HEADER,
	IMAP_SEC_FIELDS,
	IMAP_SEC_FIELDS_NOT,
	IMAP_SEC_TEXT,
	IMAP_SEC_MIME,
};

#define IMAP_FETCH_PARTNUM_MAX 64	/* levels in a part number */

/* One fetch attribute, parsed. */
struct imap_fetch_item {
	enum imap_fetch_kind kind;
	bool peek;
	uint32_t nums[IMAP_FETCH_PARTNUM_MAX];
	unsigned n_nums;
	enum imap_fetch_spec spec;
	const char **fields;
	size_t *field_lens;
	unsigned n_fields;
	bool partial;
	uint64_t origin, count;
	const char *name;	/* response name, e.g. BODY[1.HEADER]<0> */
};

/* Parses one attribute atom ("BODY.PEEK[1.HEADER]<0.10>"); macros are
 * not items. -1 on bad syntax. */
int imap_fetch_parse_item(struct ma_arena *a, const char *s, size_t len,
			  struct imap_fetch_item *it);

/* ---------------- flags (cmd-store.c) ---------------- */
struct imap_flag_list {
	uint32_t flags;			/* MA_FLAG_* */
	const char **keywords;		/* arena strings */
	unsigned n_keywords;
};
/* Parses a flag list (a LIST arg, or args[0..n) as bare flags). \Recent
 * and unknown \System flags are refused with *error_r. -1 on error. */
int imap_flags_parse(struct ma_arena *a, const struct imap_arg *args,
		     unsigned n, struct imap_flag_list *out, const char **error_r);
/* True if s[0..len) is a valid keyword atom (RFC 3501 flag-keyword). */
bool imap_keyword_valid(const char *s, size_t len);

/* ---------------- search (cmd-search.c) ---------------- */
struct imap_search_key;
/* Parses search keys args[0..n) (after CHARSET) into a program.
 * -1 with *error_r on bad syntax. Bounded: IMAP_SEARCH_DEPTH_MAX nesting,
 * IMAP_SEARCH_KEYS_MAX keys. */
#define IMAP_SEARCH_DEPTH_MAX 32
#define IMAP_SEARCH_KEYS_MAX 1024
int imap_search_parse(struct ma_arena *a, const struct imap_selected *sel,
		      const struct imap_arg *args, unsigned n,
		      struct imap_search_key **key_r, const char **error_r);
/* True if evaluating the program needs the message text (not only the view). */
bool imap_search_needs_text(const struct imap_search_key *key);
/* Case-insensitive (ASCII + Latin/Greek/Cyrillic simple folding) UTF-8
 * substring test. */
bool imap_search_contains(const char *hay, size_t hay_len, const char *needle,
			  size_t needle_len);
/* Days since the epoch of "1-Feb-1994"; -1 if invalid. */
int64_t imap_search_parse_date(const char *s, size_t len);

#endif
