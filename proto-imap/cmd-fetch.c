/*
 * cmd-fetch.c - FETCH and UID FETCH (RFC 3501 6.4.5, 7.4.2).
 *
 * check: the fetch attributes are parsed once into an item list (macros
 * ALL/FAST/FULL expanded, BODY[section]<partial> split into part numbers,
 * section text, header field list and byte range).
 * do: one message at a time. Its response is built as a list of segments:
 * text in a per-command buffer and literals that point straight into the
 * store's message bytes (ma_msg_data, zero copy). Segments go out in 8 KB
 * chunks while the connection's output is under its high-water mark;
 * above it the handler returns IMAP_CMD_CONTINUE and resumes from the
 * cursor in cmd->state when output drains, so neither a 10 MB body nor
 * 1:* over 100,000 messages is ever held whole in memory.
 *
 * What is read: FLAGS/UID/INTERNALDATE/RFC822.SIZE use the view only;
 * ENVELOPE/BODY/BODYSTRUCTURE the per-message cache (the message is parsed
 * only when it was stored without one, or its cache blob is unreadable);
 * RFC822 and BODY[] read the message only; other sections read the
 * message and the cache (part offsets).
 *
 * \Seen: BODY[...] (not BODY.PEEK), RFC822 and RFC822.TEXT set \Seen
 * unless the mailbox is read-only. It is stored once for all the selected
 * messages before output starts, and each such message's response carries
 * its new FLAGS (RFC 3501 6.4.5), even if FLAGS was not asked for.
 *
 * Expunged meanwhile (RFC 2180 4.1.2): a message another session expunged
 * after our view was taken cannot be read any more; it is skipped, the
 * others are sent, and the command ends with
 * NO [EXPUNGEISSUED] (RFC 5530) so the client knows some data is missing.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap-fetch.h"

#define IMAP_FETCH_CHUNK (8 * 1024)	/* <= 2 x the smallest high-water mark */
#define IMAP_FETCH_ITEMS_MAX 64		/* attributes in one FETCH */
#define IMAP_FETCH_FIELDS_MAX 256	/* names in one HEADER.FIELDS list */
/* The response buffer only ever holds one message's non-literal text and
 * filtered headers, so it is bounded by the message size; this cap is a
 * backstop far above max_message_size. */
#define IMAP_FETCH_BUF_MAX ((size_t)1 << 30)

struct imap_fetch_seg {
	const unsigned char *data;	/* NULL: bytes of the text buffer */
	size_t off, len;
};

struct imap_fetch_state {
	struct imap_fetch_item items[IMAP_FETCH_ITEMS_MAX + 1];
	unsigned n_items;
	bool need_data, need_tree, sets_seen, seen_stored, uid_implicit;
	uint32_t *idx;
	uint32_t n, pos;
	bool expunged;		/* some message could not be read */
	bool dead;		/* the conn refused output: stop producing */
	/* the message being sent */
	bool in_msg;
	struct ma_arena *msg_arena;
	struct ma_msg_data data;
	bool data_held;
	struct ma_buf text, tmp;
	struct imap_fetch_seg *segs;
	unsigned n_segs, segs_size, seg_i;
	size_t seg_done;
	size_t text_mark;	/* text before this is in a segment already */
};

/* ---------------- attribute parsing ---------------- */

static bool imap_fetch_prefix(const char **p, const char *end, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(end - *p) < n || strncasecmp(*p, word, n) != 0)
		return false;
	*p += n;
	return true;
}

static int imap_fetch_number(const char **p, const char *end, uint64_t max,
			     uint64_t *out)
{
	const char *s = *p;

	while (*p < end && **p >= '0' && **p <= '9')
		(*p)++;
	return ma_parse_uint(s, (size_t)(*p - s), max, out);
}

/* Header field name: printable ASCII, no colon (RFC 5322 2.2). */
static bool imap_fetch_field_name_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > 200)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 32 || (unsigned char)s[i] >= 127 ||
		    s[i] == ':')
			return false;
	return true;
}

/* "(From "To" Subject)" -> it->fields. */
static int imap_fetch_parse_fields(struct ma_arena *a, const char **pp,
				   const char *end, struct imap_fetch_item *it)
{
	const char *p = *pp;

	it->fields = ma_arena_alloc(a, sizeof(*it->fields) * IMAP_FETCH_FIELDS_MAX);
	it->field_lens = ma_arena_alloc(a, sizeof(*it->field_lens) * IMAP_FETCH_FIELDS_MAX);
	if (p >= end || *p != ' ')
		return -1;
	p++;
	if (p >= end || *p != '(')
		return -1;
	p++;
	for (;;) {
		const char *s;
		size_t len;
		char *name, *q;

		if (p < end && *p == ')' && it->n_fields > 0) {
			p++;
			break;
		}
		if (it->n_fields > 0) {
			if (p >= end || *p != ' ')
				return -1;
			p++;
		}
		if (p >= end)
			return -1;
		if (*p == '"') {
			s = ++p;
			while (p < end && *p != '"' && *p != '\\')
				p++;
			if (p >= end || *p != '"')
				return -1;	/* escapes never occur in field names */
			len = (size_t)(p - s);
			p++;
		} else {
			s = p;
			while (p < end && *p != ' ' && *p != ')' && *p != '(')
				p++;
			len = (size_t)(p - s);
		}
		if (!imap_fetch_field_name_ok(s, len) ||
		    it->n_fields >= IMAP_FETCH_FIELDS_MAX)
			return -1;
		name = ma_arena_strndup(a, s, len);
		for (q = name; *q != '\0'; q++)
			if (*q >= 'a' && *q <= 'z')
				*q = (char)(*q - 32);
		it->fields[it->n_fields] = name;
		it->field_lens[it->n_fields++] = len;
	}
	*pp = p;
	return 0;
}

/* BODY[<section>]<<partial>> after "BODY[" / "BODY.PEEK[". */
static int imap_fetch_parse_section(struct ma_arena *a, const char *p,
				    const char *end, struct imap_fetch_item *it)
{
	struct ma_buf name;
	uint64_t v;
	unsigned i;

	it->kind = IMAP_FI_SECTION;
	/* part numbers */
	while (p < end && *p >= '1' && *p <= '9') {
		if (it->n_nums >= IMAP_FETCH_PARTNUM_MAX ||
		    imap_fetch_number(&p, end, UINT32_MAX, &v) < 0)
			return -1;
		it->nums[it->n_nums++] = (uint32_t)v;
		if (p < end && *p == '.') {
			p++;
			if (p < end && *p >= '0' && *p <= '9')
				continue;
			if (p >= end || *p == ']')
				return -1;	/* "1.]" */
		}
		break;
	}
	if (p < end && *p == ']') {
		it->spec = IMAP_SEC_ALL;
	} else if (imap_fetch_prefix(&p, end, "HEADER.FIELDS.NOT")) {
		it->spec = IMAP_SEC_FIELDS_NOT;
		if (imap_fetch_parse_fields(a, &p, end, it) < 0)
			return -1;
	} else if (imap_fetch_prefix(&p, end, "HEADER.FIELDS")) {
		it->spec = IMAP_SEC_FIELDS;
		if (imap_fetch_parse_fields(a, &p, end, it) < 0)
			return -1;
	} else if (imap_fetch_prefix(&p, end, "HEADER")) {
		it->spec = IMAP_SEC_HEADER;
	} else if (imap_fetch_prefix(&p, end, "TEXT")) {
		it->spec = IMAP_SEC_TEXT;
	} else if (it->n_nums > 0 && imap_fetch_prefix(&p, end, "MIME")) {
		it->spec = IMAP_SEC_MIME;	/* RFC 3501: MIME needs a part number */
	} else {
		return -1;
	}
	if (p >= end || *p != ']')
		return -1;
	p++;
	if (p < end && *p == '<') {
		p++;
		if (imap_fetch_number(&p, end, UINT32_MAX, &it->origin) < 0 ||
		    p >= end || *p != '.')
			return -1;
		p++;
		if (imap_fetch_number(&p, end, UINT32_MAX, &it->count) < 0 ||
		    it->count == 0 || p >= end || *p != '>')
			return -1;	/* nz-number */
		p++;
		it->partial = true;
	}
	if (p != end)
		return -1;

	/* the name the response uses (no PEEK, origin only) */
	ma_buf_init(&name, 64 * 1024);
	ma_buf_append(&name, "BODY[", 5);
	for (i = 0; i < it->n_nums; i++)
		ma_buf_printf(&name, "%s%u", i > 0 ? "." : "", it->nums[i]);
	if (it->spec != IMAP_SEC_ALL && it->n_nums > 0)
		ma_buf_append(&name, ".", 1);
	switch (it->spec) {
	case IMAP_SEC_ALL: break;
	case IMAP_SEC_HEADER: ma_buf_printf(&name, "HEADER"); break;
	case IMAP_SEC_TEXT: ma_buf_printf(&name, "TEXT"); break;
	case IMAP_SEC_MIME: ma_buf_printf(&name, "MIME"); break;
	case IMAP_SEC_FIELDS:
	case IMAP_SEC_FIELDS_NOT:
		ma_buf_printf(&name, "%s (", it->spec == IMAP_SEC_FIELDS ?
			      "HEADER.FIELDS" : "HEADER.FIELDS.NOT");
		for (i = 0; i < it->n_fields; i++) {
			bool quote = strpbrk(it->fields[i], "(){%*]\"\\") != NULL;

			ma_buf_printf(&name, "%s%s%s%s", i > 0 ? " " : "",
				      quote ? "\"" : "", it->fields[i],
				      quote ? "\"" : "");
		}
		ma_buf_append(&name, ")", 1);
		break;
	}
	ma_buf_append(&name, "]", 1);
	if (it->partial)
		ma_buf_printf(&name, "<%llu>", (unsigned long long)it->origin);
	it->name = ma_arena_strndup(a, (const char *)ma_buf_ptr(&name), ma_buf_len(&name));
	ma_buf_free(&name);
	return 0;
}

int imap_fetch_parse_item(struct ma_arena *a, const char *s, size_t len,
			  struct imap_fetch_item *it)
{
	static const struct { const char *name; enum imap_fetch_kind kind; } simple[] = {
		{ "FLAGS", IMAP_FI_FLAGS }, { "INTERNALDATE", IMAP_FI_INTERNALDATE },
		{ "RFC822", IMAP_FI_RFC822 }, { "RFC822.HEADER", IMAP_FI_RFC822_HEADER },
		{ "RFC822.SIZE", IMAP_FI_RFC822_SIZE }, { "RFC822.TEXT", IMAP_FI_RFC822_TEXT },
		{ "ENVELOPE", IMAP_FI_ENVELOPE }, { "BODY", IMAP_FI_BODY },
		{ "BODYSTRUCTURE", IMAP_FI_BODYSTRUCTURE }, { "UID", IMAP_FI_UID },
	};
	const char *p = s, *end = s + len;
	unsigned i;

	memset(it, 0, sizeof(*it));
	for (i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		if (ma_slice_ieq(s, len, simple[i].name)) {
			it->kind = simple[i].kind;
			it->name = simple[i].name;
			return 0;
		}
	}
	if (imap_fetch_prefix(&p, end, "BODY.PEEK[")) {
		it->peek = true;
		return imap_fetch_parse_section(a, p, end, it);
	}
	if (imap_fetch_prefix(&p, end, "BODY["))
		return imap_fetch_parse_section(a, p, end, it);
	return -1;
}

static int imap_fetch_add_item(struct imap_fetch_state *st, struct ma_arena *a,
			       const char *s, size_t len)
{
	struct imap_fetch_item *it;

	if (st->n_items >= IMAP_FETCH_ITEMS_MAX)
		return -1;
	it = &st->items[st->n_items];
	if (imap_fetch_parse_item(a, s, len, it) < 0)
		return -1;
	st->n_items++;
	switch (it->kind) {
	case IMAP_FI_RFC822:
		st->sets_seen = true;
		st->need_data = true;	/* the whole message: no tree needed */
		break;
	case IMAP_FI_RFC822_TEXT:
		st->sets_seen = true;
		st->need_data = st->need_tree = true;
		break;
	case IMAP_FI_RFC822_HEADER:
		st->need_data = st->need_tree = true;
		break;
	case IMAP_FI_SECTION:
		if (!it->peek)
			st->sets_seen = true;
		st->need_data = true;
		/* BODY[] is the whole message; anything else needs the tree */
		if (it->n_nums > 0 || it->spec != IMAP_SEC_ALL)
			st->need_tree = true;
		break;
	case IMAP_FI_ENVELOPE:
	case IMAP_FI_BODY:
	case IMAP_FI_BODYSTRUCTURE:
		st->need_tree = true;
		break;
	default:
		break;
	}
	return 0;
}

static int imap_fetch_parse_atts(struct imap_fetch_state *st, struct ma_arena *a,
				 const struct imap_arg *arg)
{
	static const char *const macro_all[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE" };
	static const char *const macro_full[] = { "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY" };
	unsigned i;

	if (arg->type == IMAP_ARG_ATOM) {
		const char *const *m = NULL;
		unsigned n = 0;

		if (ma_slice_ieq(arg->str, arg->len, "ALL")) {
			m = macro_all;
			n = 4;
		} else if (ma_slice_ieq(arg->str, arg->len, "FAST")) {
			m = macro_all;
			n = 3;
		} else if (ma_slice_ieq(arg->str, arg->len, "FULL")) {
			m = macro_full;
			n = 5;
		}
		if (m != NULL) {
			for (i = 0; i < n; i++)
				imap_fetch_add_item(st, a, m[i], strlen(m[i]));
			return 0;
		}
		return imap_fetch_add_item(st, a, arg->str, arg->len);
	}
	if (arg->type != IMAP_ARG_LIST || arg->list_count == 0)
		return -1;
	for (i = 0; i < arg->list_count; i++) {
		if (arg->list[i].type != IMAP_ARG_ATOM ||
		    imap_fetch_add_item(st, a, arg->list[i].str, arg->list[i].len) < 0)
			return -1;
	}
	return 0;
}

/* ---------------- building one message's response ---------------- */

static void imap_fetch_seg_push(struct imap_fetch_state *st,
				const unsigned char *data, size_t off, size_t len)
{
	if (len == 0)
		return;
	if (st->n_segs == st->segs_size) {
		st->segs_size = st->segs_size == 0 ? 16 : st->segs_size * 2;
		st->segs = ma_realloc(st->segs, st->segs_size * sizeof(*st->segs));
	}
	st->segs[st->n_segs].data = data;
	st->segs[st->n_segs].off = off;
	st->segs[st->n_segs].len = len;
	st->n_segs++;
}

/* Text written since the last segment becomes a segment. */
static void imap_fetch_flush_text(struct imap_fetch_state *st)
{
	size_t len = ma_buf_len(&st->text);

	if (len > st->text_mark)
		imap_fetch_seg_push(st, NULL, st->text_mark,
				    len - st->text_mark);
	st->text_mark = len;
}

/* A literal whose bytes stay in the message data. */
static void imap_fetch_literal(struct imap_fetch_state *st,
			       const unsigned char *p, size_t len)
{
	ma_buf_printf(&st->text, "{%zu}\r\n", len);
	imap_fetch_flush_text(st);
	imap_fetch_seg_push(st, p, 0, len);
}

static void imap_fetch_partial(const struct imap_fetch_item *it, size_t *off,
			       size_t *len)
{
	if (!it->partial)
		return;
	if (it->origin >= *len) {
		*off += *len;
		*len = 0;
		return;
	}
	*off += it->origin;
	*len -= it->origin;
	if (it->count < *len)
		*len = it->count;
}

static bool imap_fetch_field_listed(const struct imap_fetch_item *it,
				    const unsigned char *name, size_t len)
{
	unsigned i;

	for (i = 0; i < it->n_fields; i++)
		if (it->field_lens[i] == len &&
		    strncasecmp(it->fields[i], (const char *)name, len) == 0)
			return true;
	return false;
}

/* HEADER.FIELDS[.NOT]: the matching fields, continuation lines kept,
 * then the empty line (RFC 3501 6.4.5: the subset includes it). */
static void imap_fetch_filter_header(const struct imap_fetch_item *it,
				     const unsigned char *h, size_t len,
				     struct ma_buf *out)
{
	size_t pos = 0;

	while (pos < len) {
		size_t start = pos, name_len, end;
		const unsigned char *colon;

		if (h[pos] == '\r' || h[pos] == '\n')
			break;		/* the empty line ending the header */
		/* field: this line and its continuation lines */
		end = pos;
		for (;;) {
			const unsigned char *nl = memchr(h + end, '\n', len - end);

			end = nl != NULL ? (size_t)(nl - h) + 1 : len;
			if (end >= len || (h[end] != ' ' && h[end] != '\t'))
				break;
		}
		pos = end;
		colon = memchr(h + start, ':', end - start);
		if (colon == NULL)
			continue;	/* not a field */
		name_len = (size_t)(colon - (h + start));
		while (name_len > 0 && (h[start + name_len - 1] == ' ' ||
					h[start + name_len - 1] == '\t'))
			name_len--;
		if (imap_fetch_field_listed(it, h + start, name_len) ==
		    (it->spec == IMAP_SEC_FIELDS)) {
			ma_buf_append(out, h + start, end - start);
			if (h[end - 1] != '\n')	/* last line of a header-only message */
				ma_buf_append(out, "\r\n", 2);
		}
	}
	ma_buf_append(out, "\r\n", 2);
}

static void imap_fetch_range(const struct ma_msg_data *d, uint64_t off,
			     uint64_t len, size_t *off_r, size_t *len_r)
{
	/* the tree came from a cache: never trust it past the data */
	if (off > d->size)
		off = d->size;
	if (len > d->size - off)
		len = d->size - off;
	*off_r = (size_t)off;
	*len_r = (size_t)len;
}

/* BODY[section]: the bytes it names; a part that does not exist is sent
 * as an empty string, as most servers do. */
static void imap_fetch_section(struct imap_fetch_state *st,
			       const struct imap_fetch_item *it,
			       const struct ma_mime_part *root)
{
	const struct ma_msg_data *d = &st->data;
	const struct ma_mime_part *p = NULL, *msg;
	size_t off = 0, len = 0;
	bool found = true;

	ma_buf_printf(&st->text, "%s ", it->name);
	if (it->n_nums == 0 && it->spec == IMAP_SEC_ALL) {
		off = 0;
		len = d->size;
		imap_fetch_partial(it, &off, &len);
		imap_fetch_literal(st, d->data + off, len);
		return;
	}
	if (root != NULL)	/* always: other sections load the tree */
		p = imap_fetch_find_part(root, it->nums, it->n_nums);
	if (p == NULL) {
		found = false;
	} else {
		/* HEADER/TEXT/FIELDS of a message/rfc822 part mean the
		 * embedded message's (RFC 3501 6.4.5). */
		msg = it->n_nums > 0 && imap_fetch_part_is_message(p) ?
			&p->children[0] : p;
		switch (it->spec) {
		case IMAP_SEC_ALL:
			imap_fetch_range(d, p->body_offset, p->body_size, &off, &len);
			break;
		case IMAP_SEC_TEXT:
			imap_fetch_range(d, msg->body_offset, msg->body_size, &off, &len);
			break;
		case IMAP_SEC_MIME:
			imap_fetch_range(d, p->header_offset, p->header_size, &off, &len);
			break;
		default:
			imap_fetch_range(d, msg->header_offset, msg->header_size, &off, &len);
			break;
		}
	}
	if (!found) {
		ma_buf_append(&st->text, "\"\"", 2);
		return;
	}
	if (it->spec == IMAP_SEC_FIELDS || it->spec == IMAP_SEC_FIELDS_NOT) {
		size_t foff = 0, flen;

		ma_buf_clear(&st->tmp);
		imap_fetch_filter_header(it, d->data + off, len, &st->tmp);
		flen = ma_buf_len(&st->tmp);
		imap_fetch_partial(it, &foff, &flen);
		ma_buf_printf(&st->text, "{%zu}\r\n", flen);
		ma_buf_append(&st->text, ma_buf_ptr(&st->tmp) + foff, flen);
		return;
	}
	imap_fetch_partial(it, &off, &len);
	imap_fetch_literal(st, d->data + off, len);
}

static void imap_fetch_datetime(struct ma_buf *b, int64_t t, int32_t tz)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May",
		"Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t lt;
	struct tm tm;
	int32_t z;

	if (tz < -24 * 60 || tz > 24 * 60)
		tz = 0;		/* a zone no clock uses: show UTC */
	z = tz < 0 ? -tz : tz;
	lt = (time_t)(t + (int64_t)tz * 60);
	if (gmtime_r(&lt, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	ma_buf_printf(b, "\"%2d-%s-%04d %02d:%02d:%02d %c%02d%02d\"",
		      tm.tm_mday, mon[tm.tm_mon % 12], tm.tm_year + 1900,
		      tm.tm_hour, tm.tm_min, tm.tm_sec, tz < 0 ? '-' : '+',
		      (int)(z / 60), (int)(z % 60));
}

static void imap_fetch_release_msg(struct imap_fetch_state *st)
{
	if (st->data_held) {
		ma_msg_data_release(&st->data);
		st->data_held = false;
	}
	memset(&st->data, 0, sizeof(st->data));
	st->n_segs = 0;
	st->seg_i = 0;
	st->seg_done = 0;
	st->in_msg = false;
	ma_buf_clear(&st->text);
	if (st->text.size > 1024 * 1024) {
		/* one huge header must not pin its memory for 100k more */
		ma_buf_free(&st->text);
		ma_buf_init(&st->text, IMAP_FETCH_BUF_MAX);
	}
	ma_buf_clear(&st->tmp);
	ma_arena_reset(st->msg_arena);
}

/* Builds the response of message idx. 0 built, 1 skipped (expunged),
 * -1 error (replied). */
static int imap_fetch_build(struct imap_cmd *cmd, struct imap_fetch_state *st,
			    uint32_t idx)
{
	struct imap_session *s = cmd->s;
	struct imap_selected *sel = s->sel;
	struct ma_msg m = sel->msgs[idx];
	struct ma_mime_part *root = NULL;
	struct ma_error_info err;
	bool need = false, flags_sent = false;
	unsigned i;

	memset(&err, 0, sizeof(err));
	if (st->need_data) {
		if (ma_mailbox_msg_read(sel->box, m.uid, &st->data, &err) < 0)
			goto fail;
		st->data_held = true;
		if (st->data.data == NULL && st->data.size > 0) {
			ma_error_set(&err, MA_ERR_INTERNAL, "no message data");
			goto fail;
		}
	}
	if (st->need_tree) {
		root = imap_fetch_mime(sel->box, st->msg_arena, &m,
				       st->data_held ? &st->data : NULL, &need, &err);
		if (root == NULL && need) {
			if (ma_mailbox_msg_read(sel->box, m.uid, &st->data, &err) < 0)
				goto fail;
			st->data_held = true;
			root = imap_fetch_mime(sel->box, st->msg_arena, &m,
					       &st->data, &need, &err);
		}
		if (root == NULL)
			goto fail;
	}
	if (st->seen_stored && !(m.flags & MA_FLAG_SEEN))
		m.flags |= MA_FLAG_SEEN;

	st->text_mark = 0;
	ma_buf_printf(&st->text, "* %u FETCH (", idx + 1);
	for (i = 0; i < st->n_items; i++) {
		const struct imap_fetch_item *it = &st->items[i];
		size_t off, len;

		if (i > 0)
			ma_buf_append(&st->text, " ", 1);
		switch (it->kind) {
		case IMAP_FI_FLAGS:
			ma_buf_printf(&st->text, "FLAGS (%s)",
				      imap_flags_string(s, st->msg_arena, &m));
			flags_sent = true;
			break;
		case IMAP_FI_UID:
			ma_buf_printf(&st->text, "UID %u", m.uid);
			break;
		case IMAP_FI_INTERNALDATE:
			ma_buf_append(&st->text, "INTERNALDATE ", 13);
			imap_fetch_datetime(&st->text, m.internal_date, m.internal_tz);
			break;
		case IMAP_FI_RFC822_SIZE:
			ma_buf_printf(&st->text, "RFC822.SIZE %llu",
				      (unsigned long long)m.size);
			break;
		case IMAP_FI_ENVELOPE:
			ma_buf_append(&st->text, "ENVELOPE ", 9);
			imap_fetch_envelope(&st->text, st->msg_arena, root->envelope);
			break;
		case IMAP_FI_BODY:
		case IMAP_FI_BODYSTRUCTURE:
			ma_buf_printf(&st->text, "%s ", it->name);
			imap_fetch_bodystructure(&st->text, st->msg_arena, root,
						 it->kind == IMAP_FI_BODYSTRUCTURE);
			break;
		case IMAP_FI_RFC822:
			ma_buf_append(&st->text, "RFC822 ", 7);
			imap_fetch_literal(st, st->data.data, st->data.size);
			break;
		case IMAP_FI_RFC822_HEADER:
			ma_buf_append(&st->text, "RFC822.HEADER ", 14);
			imap_fetch_range(&st->data, root->header_offset,
					 root->header_size, &off, &len);
			imap_fetch_literal(st, st->data.data + off, len);
			break;
		case IMAP_FI_RFC822_TEXT:
			ma_buf_append(&st->text, "RFC822.TEXT ", 12);
			imap_fetch_range(&st->data, root->body_offset,
					 root->body_size, &off, &len);
			imap_fetch_literal(st, st->data.data + off, len);
			break;
		case IMAP_FI_SECTION:
			imap_fetch_section(st, it, root);
			break;
		}
	}
	/* \Seen set by this FETCH: tell the client in the same response */
	if (st->seen_stored && !(sel->msgs[idx].flags & MA_FLAG_SEEN) && !flags_sent)
		ma_buf_printf(&st->text, " FLAGS (%s)",
			      imap_flags_string(s, st->msg_arena, &m));
	ma_buf_append(&st->text, ")\r\n", 3);
	imap_fetch_flush_text(st);
	st->in_msg = true;
	return 0;

fail:
	if (err.code == MA_ERR_EXPUNGED || err.code == MA_ERR_NOTFOUND) {
		st->expunged = true;
		imap_fetch_release_msg(st);
		return 1;
	}
	ma_conn_log(s->conn, MA_LOG_ERROR, "FETCH: reading UID %u failed: %s: %s",
		    m.uid, ma_error_name(err.code), err.text);
	imap_fetch_release_msg(st);
	imap_reply(cmd, "NO", "SERVERBUG", "Reading a message failed (session %s)",
		   ma_conn_id(s->conn));
	return -1;
}

/* Writes segments until done (true) or the output is full (false). */
static bool imap_fetch_emit(struct imap_cmd *cmd, struct imap_fetch_state *st)
{
	struct ma_conn *conn = cmd->s->conn;

	while (st->seg_i < st->n_segs) {
		const struct imap_fetch_seg *g = &st->segs[st->seg_i];
		const unsigned char *base = g->data != NULL ? g->data :
			ma_buf_ptr(&st->text) + g->off;
		size_t n = g->len - st->seg_done;

		if (ma_conn_output_full(conn))
			return false;
		if (n > IMAP_FETCH_CHUNK)
			n = IMAP_FETCH_CHUNK;
		if (ma_conn_write(conn, base + st->seg_done, n) < 0) {
			/* over the hard cap: the core closes the conn */
			st->seg_i = st->n_segs;
			st->dead = true;
			return true;
		}
		st->seg_done += n;
		if (st->seg_done == g->len) {
			st->seg_i++;
			st->seg_done = 0;
		}
	}
	return true;
}

static void imap_fetch_cleanup(void *ctx)
{
	struct imap_fetch_state *st = ctx;

	if (st->data_held)
		ma_msg_data_release(&st->data);
	st->data_held = false;
	ma_buf_free(&st->text);
	ma_buf_free(&st->tmp);
	free(st->segs);
	st->segs = NULL;
	if (st->msg_arena != NULL)
		ma_arena_destroy(&st->msg_arena);
}

/* \Seen for every selected message that lacks it, in one transaction. */
static void imap_fetch_store_seen(struct imap_cmd *cmd, struct imap_fetch_state *st)
{
	struct imap_selected *sel = cmd->s->sel;
	struct ma_error_info err;
	uint32_t *uids, n = 0, i;

	if (!st->sets_seen || sel->readonly)
		return;
	uids = ma_arena_alloc(cmd->arena, sizeof(*uids) * (st->n + 1));
	for (i = 0; i < st->n; i++)
		if (!(sel->msgs[st->idx[i]].flags & MA_FLAG_SEEN))
			uids[n++] = sel->msgs[st->idx[i]].uid;
	if (n == 0)
		return;
	memset(&err, 0, sizeof(err));
	if (ma_mailbox_store_flags(sel->box, uids, n, MA_FLAGS_ADD, MA_FLAG_SEEN,
				   NULL, 0, 0, NULL, NULL, &err) < 0) {
		ma_conn_log(cmd->s->conn, MA_LOG_WARNING,
			    "FETCH: setting \\Seen failed: %s: %s",
			    ma_error_name(err.code), err.text);
		return;
	}
	st->seen_stored = true;
	/* each response carries the new FLAGS: no second report needed */
	imap_sync_flags_reported(cmd->s, uids, n);
}

static enum imap_cmd_result imap_fetch_start(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct imap_fetch_state *st;
	unsigned i;
	bool have_uid = false;

	if (s->sel == NULL) {
		imap_reply(cmd, "BAD", NULL, "No mailbox selected");
		return IMAP_CMD_DONE;
	}
	if (cmd->n_args != 2 || cmd->args[0].type != IMAP_ARG_ATOM) {
		imap_reply(cmd, "BAD", NULL, "Syntax: FETCH <sequence set> <items>");
		return IMAP_CMD_DONE;
	}
	st = ma_arena_alloc(cmd->arena, sizeof(*st));
	if (imap_fetch_parse_atts(st, cmd->arena, &cmd->args[1]) < 0) {
		imap_reply(cmd, "BAD", NULL, "Invalid fetch attribute");
		return IMAP_CMD_DONE;
	}
	for (i = 0; i < st->n_items; i++)
		if (st->items[i].kind == IMAP_FI_UID)
			have_uid = true;
	if (cmd->uid && !have_uid) {
		/* RFC 3501 6.4.8: UID FETCH always returns UID; first */
		memmove(&st->items[1], &st->items[0], st->n_items * sizeof(st->items[0]));
		memset(&st->items[0], 0, sizeof(st->items[0]));
		st->items[0].kind = IMAP_FI_UID;
		st->items[0].name = "UID";
		st->n_items++;
	}
	if (imap_seqset_indexes(cmd->arena, s->sel, cmd->args[0].str,
				cmd->args[0].len, cmd->uid, &st->idx, &st->n) < 0) {
		imap_reply(cmd, "BAD", NULL, "Invalid sequence set");
		return IMAP_CMD_DONE;
	}
	st->msg_arena = ma_arena_create(0);
	ma_buf_init(&st->text, IMAP_FETCH_BUF_MAX);
	ma_buf_init(&st->tmp, IMAP_FETCH_BUF_MAX);
	ma_arena_cleanup_add(cmd->arena, imap_fetch_cleanup, st);
	cmd->state = st;
	imap_fetch_store_seen(cmd, st);
	return IMAP_CMD_CONTINUE;
}

enum imap_cmd_result imap_cmd_fetch(struct imap_cmd *cmd)
{
	struct imap_fetch_state *st = cmd->state;

	if (st == NULL) {
		if (imap_fetch_start(cmd) == IMAP_CMD_DONE)
			return IMAP_CMD_DONE;
		st = cmd->state;
	}
	for (;;) {
		if (st->in_msg) {
			if (!imap_fetch_emit(cmd, st)) {
				ma_conn_want_drain(cmd->s->conn);
				return IMAP_CMD_CONTINUE;
			}
			imap_fetch_release_msg(st);
			st->pos++;
		}
		if (st->pos >= st->n || st->dead)
			break;
		if (ma_conn_output_full(cmd->s->conn)) {
			ma_conn_want_drain(cmd->s->conn);
			return IMAP_CMD_CONTINUE;
		}
		switch (imap_fetch_build(cmd, st, st->idx[st->pos])) {
		case 1:
			st->pos++;
			break;
		case -1:
			return IMAP_CMD_DONE;
		default:
			break;
		}
	}
	cmd->s->n_fetch += st->n;
	if (st->expunged)
		imap_reply(cmd, "NO", "EXPUNGEISSUED",
			   "Some of the requested messages no longer exist");
	else
		imap_reply(cmd, "OK", NULL, "Fetch completed");
	return IMAP_CMD_DONE;
}
