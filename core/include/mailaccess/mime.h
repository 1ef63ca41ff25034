/*
 * mime.h - the core's MIME parser (RFC 2045-2047, 2231, 5322), run once
 * when a message is stored. Its result is serialised into the store's
 * per-message cache (ma_append_msg.cache, ma_mailbox_msg_cache), so IMAP
 * BODYSTRUCTURE, ENVELOPE and section fetches never parse the message again.
 *
 * It must be right on real-world mail: nested multiparts, message/rfc822
 * parts, RFC 2231 parameters, missing or broken boundaries, no trailing
 * newline, bare LF, 8-bit headers, very long header lines. It never fails
 * on bad input: what cannot be parsed becomes text/plain. Bounded: nesting
 * depth MA_MIME_DEPTH_MAX, parts MA_MIME_PARTS_MAX (deeper/more are kept as
 * opaque bodies).
 *
 * Strings in the tree are NUL-terminated copies in the given arena (raw
 * header bytes, unfolded, not decoded: IMAP wants them raw). Offsets are
 * bytes into the message as stored.
 */
#ifndef MAILACCESS_MIME_H
#define MAILACCESS_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ma_arena;
struct ma_buf;

#define MA_MIME_DEPTH_MAX 32
#define MA_MIME_PARTS_MAX 4096

struct ma_mime_param {
	const char *name;	/* lower case */
	const char *value;	/* RFC 2231 continuations joined; charset prefix kept as sent */
};

/* Raw envelope header values (unfolded), NULL if absent (RFC 3501 ENVELOPE). */
struct ma_mime_envelope {
	const char *date, *subject, *from, *sender, *reply_to, *to, *cc, *bcc,
		*in_reply_to, *message_id;
};

struct ma_mime_part {
	uint64_t header_offset;	/* start of this part's header */
	uint64_t header_size;	/* header incl. the empty line that ends it */
	uint64_t body_offset;
	uint64_t body_size;
	uint32_t body_lines;	/* lines in the body (text/ *, message/rfc822) */
	const char *type;	/* lower case; "text" if absent */
	const char *subtype;	/* lower case; "plain" if absent */
	struct ma_mime_param *params;	/* Content-Type parameters */
	unsigned n_params;
	const char *id, *description, *md5, *location;	/* NULL if absent */
	const char *encoding;	/* lower case Content-Transfer-Encoding; "7bit" if absent */
	const char *disposition;	/* lower case or NULL */
	struct ma_mime_param *disposition_params;
	unsigned n_disposition_params;
	const char *language;	/* raw Content-Language or NULL */
	/* multipart/ *: the parts; message/rfc822 (and message/global): one
	 * child, the embedded message. */
	struct ma_mime_part *children;
	unsigned n_children;
	/* The top-level part and message/rfc822 children: their envelope. */
	struct ma_mime_envelope *envelope;
};

/* Parses a whole message. Never NULL. */
struct ma_mime_part *ma_mime_parse(struct ma_arena *a, const unsigned char *msg,
				   size_t size);

/* Cache form: a compact, versioned byte string. deserialize returns NULL
 * on a bad or old-version blob (caller re-parses). */
int ma_mime_serialize(const struct ma_mime_part *root, struct ma_buf *out);
struct ma_mime_part *ma_mime_deserialize(struct ma_arena *a, const void *data,
					 size_t len);

/* Part by IMAP section number ("1.2.3"; "" = root). For a message/rfc822
 * part, numbers continue inside the embedded message (RFC 3501 6.4.5).
 * NULL if absent. */
const struct ma_mime_part *ma_mime_find_part(const struct ma_mime_part *root,
					     const char *section);

/* Header lookup inside [hdr, hdr+len): value of the first field `name`
 * (case-insensitive), unfolded, into the arena; NULL if absent. */
const char *ma_mime_header_get(struct ma_arena *a, const unsigned char *hdr,
			       size_t len, const char *name);

/* RFC 2047 encoded-words -> UTF-8 (unknown charsets left as is). */
const char *ma_mime_decode_words(struct ma_arena *a, const char *raw);
/* Decode a body part (base64 / quoted-printable / else as is) and convert
 * text from its charset to UTF-8. Appends to out (bounded by out->max:
 * returns -1 when full, with what fitted kept). */
int ma_mime_decode_body(const struct ma_mime_part *part, const unsigned char *msg,
			struct ma_buf *out);
/* Convert bytes in charset to UTF-8 (iconv); -1 unknown charset. */
int ma_mime_to_utf8(const char *charset, const void *in, size_t len,
		    struct ma_buf *out);

/* RFC 5322 address list -> addresses (group syntax as RFC 3501 ENVELOPE
 * represents it: a group start has mailbox = group name and host = NULL,
 * group end has both NULL). */
struct ma_mime_address {
	const char *name;	/* display name, raw (may hold encoded-words), or NULL */
	const char *adl;	/* source route or NULL */
	const char *mailbox;
	const char *host;
};
unsigned ma_mime_parse_addresses(struct ma_arena *a, const char *raw,
				 struct ma_mime_address **out_r);

/* RFC 5322 date (lenient, obsolete forms too). 0 ok, -1 unparseable. */
int ma_mime_parse_date(const char *s, int64_t *t_r, int32_t *tz_minutes_r);

#endif
