/*
 * mime-cache.c - the parsed tree's cache form (ma_mime_serialize(),
 * ma_mime_deserialize()) and IMAP section lookup (ma_mime_find_part()).
 *
 * Blob layout (version 1), all integers LEB128 varints:
 *   "MAMC" 0x01
 *   part (pre-order, recursive):
 *     header_offset header_size body_offset body_size body_lines
 *     str type, str subtype, n_params, n_params x (str name, str value)
 *     str id, description, md5, location, encoding, disposition
 *     n_disposition_params x (str name, str value), str language
 *     flags (1 = envelope follows), [10 x str envelope fields]
 *     n_children, children...
 *   str: 0 = NULL, else length + 1 then the bytes.
 * Nothing follows the root part.
 *
 * The blob comes from storage and may be corrupt or hostile: every count
 * is checked against the bytes left, every string against the blob end,
 * depth and part count against the parser's own limits, and every child's
 * byte range must lie inside its parent's body. Any failure -> NULL, and
 * the caller parses the message again.
 */
#include <stdlib.h>
#include <string.h>

#include "core-private.h"
#include "mime-private.h"

#define MIME_CACHE_MAGIC "MAMC"
#define MIME_CACHE_VERSION 1
/* Synthetic empty children can double the parser's node count. */
#define MIME_CACHE_PARTS_MAX (2 * MA_MIME_PARTS_MAX)

/* ---------------- writing ---------------- */

static int mime_put_varint(struct ma_buf *out, uint64_t v)
{
	unsigned char b[10];
	size_t n = 0;

	do {
		b[n] = (unsigned char)(v & 0x7f);
		v >>= 7;
		if (v != 0)
			b[n] |= 0x80;
		n++;
	} while (v != 0);
	return ma_buf_append(out, b, n);
}

static int mime_put_str(struct ma_buf *out, const char *s)
{
	size_t len;

	if (s == NULL)
		return mime_put_varint(out, 0);
	len = strlen(s);
	if (mime_put_varint(out, (uint64_t)len + 1) < 0)
		return -1;
	return ma_buf_append(out, s, len);
}

static int mime_put_params(struct ma_buf *out, const struct ma_mime_param *p,
			   unsigned n)
{
	if (mime_put_varint(out, n) < 0)
		return -1;
	for (unsigned i = 0; i < n; i++)
		if (mime_put_str(out, p[i].name) < 0 || mime_put_str(out, p[i].value) < 0)
			return -1;
	return 0;
}

static int mime_put_part(struct ma_buf *out, const struct ma_mime_part *p)
{
	if (mime_put_varint(out, p->header_offset) < 0 ||
	    mime_put_varint(out, p->header_size) < 0 ||
	    mime_put_varint(out, p->body_offset) < 0 ||
	    mime_put_varint(out, p->body_size) < 0 ||
	    mime_put_varint(out, p->body_lines) < 0 ||
	    mime_put_str(out, p->type) < 0 || mime_put_str(out, p->subtype) < 0 ||
	    mime_put_params(out, p->params, p->n_params) < 0 ||
	    mime_put_str(out, p->id) < 0 || mime_put_str(out, p->description) < 0 ||
	    mime_put_str(out, p->md5) < 0 || mime_put_str(out, p->location) < 0 ||
	    mime_put_str(out, p->encoding) < 0 ||
	    mime_put_str(out, p->disposition) < 0 ||
	    mime_put_params(out, p->disposition_params, p->n_disposition_params) < 0 ||
	    mime_put_str(out, p->language) < 0 ||
	    mime_put_varint(out, p->envelope != NULL ? 1 : 0) < 0)
		return -1;
	if (p->envelope != NULL) {
		const struct ma_mime_envelope *e = p->envelope;
		if (mime_put_str(out, e->date) < 0 || mime_put_str(out, e->subject) < 0 ||
		    mime_put_str(out, e->from) < 0 || mime_put_str(out, e->sender) < 0 ||
		    mime_put_str(out, e->reply_to) < 0 || mime_put_str(out, e->to) < 0 ||
		    mime_put_str(out, e->cc) < 0 || mime_put_str(out, e->bcc) < 0 ||
		    mime_put_str(out, e->in_reply_to) < 0 ||
		    mime_put_str(out, e->message_id) < 0)
			return -1;
	}
	if (mime_put_varint(out, p->n_children) < 0)
		return -1;
	for (unsigned i = 0; i < p->n_children; i++)
		if (mime_put_part(out, &p->children[i]) < 0)
			return -1;
	return 0;
}

int ma_mime_serialize(const struct ma_mime_part *root, struct ma_buf *out)
{
	size_t before = ma_buf_len(out);

	if (ma_buf_append(out, MIME_CACHE_MAGIC, 4) < 0 ||
	    mime_put_varint(out, MIME_CACHE_VERSION) < 0 ||
	    mime_put_part(out, root) < 0) {
		/* Leave out as it was. */
		out->used = out->start + before;
		return -1;
	}
	return 0;
}

/* ---------------- reading ---------------- */

struct mime_reader {
	struct ma_arena *a;
	const unsigned char *p, *end;
	unsigned parts;
	bool bad;
};

static uint64_t mime_get_varint(struct mime_reader *r)
{
	uint64_t v = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (r->p >= r->end) {
			r->bad = true;
			return 0;
		}
		unsigned char b = *r->p++;
		if (shift == 63 && (b & 0x7e) != 0) {
			r->bad = true;	/* would overflow 64 bits */
			return 0;
		}
		v |= (uint64_t)(b & 0x7f) << shift;
		if ((b & 0x80) == 0)
			return v;
	}
	r->bad = true;
	return 0;
}

static const char *mime_get_str(struct mime_reader *r)
{
	uint64_t len = mime_get_varint(r);

	if (r->bad || len == 0)
		return NULL;
	len--;
	if (len > (uint64_t)(r->end - r->p)) {
		r->bad = true;
		return NULL;
	}
	const char *s = ma_arena_strndup(r->a, (const char *)r->p, (size_t)len);
	r->p += len;
	return s;
}

static const char *mime_get_str_nonnull(struct mime_reader *r)
{
	const char *s = mime_get_str(r);

	if (s == NULL)
		r->bad = true;
	return s;
}

static struct ma_mime_param *mime_get_params(struct mime_reader *r, unsigned *n_r)
{
	uint64_t n = mime_get_varint(r);
	struct ma_mime_param *p;

	*n_r = 0;
	/* Each parameter takes at least two bytes. */
	if (r->bad || n == 0)
		return NULL;
	if (n > (uint64_t)(r->end - r->p) / 2 || n > MIME_PARAMS_MAX * 2) {
		r->bad = true;
		return NULL;
	}
	p = ma_arena_alloc(r->a, (size_t)n * sizeof(*p));
	for (uint64_t i = 0; i < n && !r->bad; i++) {
		p[i].name = mime_get_str_nonnull(r);
		p[i].value = mime_get_str_nonnull(r);
	}
	*n_r = (unsigned)n;
	return p;
}

static bool mime_get_part(struct mime_reader *r, struct ma_mime_part *p,
			  unsigned depth)
{
	uint64_t v, nch;

	if (depth > MA_MIME_DEPTH_MAX + 1 || ++r->parts > MIME_CACHE_PARTS_MAX)
		return false;
	p->header_offset = mime_get_varint(r);
	p->header_size = mime_get_varint(r);
	p->body_offset = mime_get_varint(r);
	p->body_size = mime_get_varint(r);
	v = mime_get_varint(r);
	if (r->bad || v > UINT32_MAX)
		return false;
	p->body_lines = (uint32_t)v;
	/* Ranges: no overflow, header before body, lines fit in the body. */
	if (p->header_size > UINT64_MAX - p->header_offset ||
	    p->header_offset + p->header_size > p->body_offset ||
	    p->body_size > UINT64_MAX - p->body_offset ||
	    p->body_lines > p->body_size)
		return false;
	p->type = mime_get_str_nonnull(r);
	p->subtype = mime_get_str_nonnull(r);
	p->params = mime_get_params(r, &p->n_params);
	p->id = mime_get_str(r);
	p->description = mime_get_str(r);
	p->md5 = mime_get_str(r);
	p->location = mime_get_str(r);
	p->encoding = mime_get_str_nonnull(r);
	p->disposition = mime_get_str(r);
	p->disposition_params = mime_get_params(r, &p->n_disposition_params);
	p->language = mime_get_str(r);
	v = mime_get_varint(r);
	if (r->bad || v > 1)
		return false;
	if (v == 1) {
		struct ma_mime_envelope *e = ma_arena_alloc(r->a, sizeof(*e));
		e->date = mime_get_str(r);
		e->subject = mime_get_str(r);
		e->from = mime_get_str(r);
		e->sender = mime_get_str(r);
		e->reply_to = mime_get_str(r);
		e->to = mime_get_str(r);
		e->cc = mime_get_str(r);
		e->bcc = mime_get_str(r);
		e->in_reply_to = mime_get_str(r);
		e->message_id = mime_get_str(r);
		p->envelope = e;
	}
	nch = mime_get_varint(r);
	if (r->bad)
		return false;
	if (nch == 0)
		return true;
	/* A part takes at least 18 bytes; bounds the allocation. */
	if (nch > (uint64_t)(r->end - r->p) / 16 + 1 || nch > MIME_CACHE_PARTS_MAX)
		return false;
	p->children = ma_arena_alloc(r->a, (size_t)nch * sizeof(*p->children));
	p->n_children = (unsigned)nch;
	uint64_t prev_end = p->body_offset;
	for (unsigned i = 0; i < p->n_children; i++) {
		struct ma_mime_part *c = &p->children[i];
		if (!mime_get_part(r, c, depth + 1))
			return false;
		/* Children in order, inside the parent's body. */
		if (c->header_offset < prev_end ||
		    c->body_offset + c->body_size > p->body_offset + p->body_size)
			return false;
		prev_end = c->body_offset + c->body_size;
	}
	return true;
}

struct ma_mime_part *ma_mime_deserialize(struct ma_arena *a, const void *data,
					 size_t len)
{
	struct mime_reader r;
	struct ma_mime_part *root;

	if (data == NULL || len < 5 || memcmp(data, MIME_CACHE_MAGIC, 4) != 0)
		return NULL;
	memset(&r, 0, sizeof(r));
	r.a = a;
	r.p = (const unsigned char *)data + 4;
	r.end = (const unsigned char *)data + len;
	if (mime_get_varint(&r) != MIME_CACHE_VERSION || r.bad)
		return NULL;
	root = ma_arena_alloc(a, sizeof(*root));
	if (!mime_get_part(&r, root, 0) || r.bad || r.p != r.end ||
	    root->header_offset != 0)
		return NULL;
	return root;
}

/* ---------------- sections ---------------- */

static bool mime_is(const struct ma_mime_part *p, const char *type)
{
	return p->type != NULL && strcmp(p->type, type) == 0 && p->n_children > 0;
}

const struct ma_mime_part *ma_mime_find_part(const struct ma_mime_part *root,
					     const char *section)
{
	/* `msg` is the message whose body the next number indexes into. */
	const struct ma_mime_part *msg = root, *part = root;
	const char *s = section;

	if (root == NULL || section == NULL)
		return NULL;
	if (*s == '\0')
		return root;
	for (;;) {
		unsigned long n = 0;

		if (*s < '1' || *s > '9')
			return NULL;
		while (*s >= '0' && *s <= '9') {
			n = n * 10 + (unsigned long)(*s - '0');
			if (n > MIME_CACHE_PARTS_MAX)
				return NULL;
			s++;
		}
		if (msg == NULL)
			return NULL;	/* a leaf has no sub-parts */
		if (mime_is(msg, "multipart")) {
			if (n > msg->n_children)
				return NULL;
			part = &msg->children[n - 1];
		} else {
			/* RFC 3501 6.4.5: a non-multipart body is part 1. */
			if (n != 1)
				return NULL;
			part = msg;
		}
		if (*s == '\0')
			return part;
		if (*s != '.')
			return NULL;
		s++;
		/* Numbers continue inside an embedded message, or among a
		 * multipart's children; nothing is below a leaf. */
		if (mime_is(part, "message"))
			msg = &part->children[0];
		else if (mime_is(part, "multipart") && part != msg)
			msg = part;
		else
			msg = NULL;
	}
}
