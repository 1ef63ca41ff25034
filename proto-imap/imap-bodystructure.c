/*
 * imap-bodystructure.c - turns the core's MIME tree (mime.h) into IMAP:
 * ENVELOPE, BODY and BODYSTRUCTURE (RFC 3501 7.4.2 and the formal syntax
 * in section 9), IMAP part numbering for BODY[section] (6.4.5), the
 * string/NIL/literal choice for every value, loading a message's tree
 * from the per-message cache (parsing only messages stored without one),
 * and UID set compression for COPYUID (RFC 4315).
 *
 * Values from the message are sent raw, as the RFC wants (encoded-words
 * stay encoded); media types, subtypes, encodings and parameter names go
 * out upper-cased like the RFC's examples.
 */
#include <string.h>
#include <strings.h>

#include "imap-fetch.h"

/* A quoted string longer than this goes out as a literal instead: some
 * clients cap quoted strings, none cap literals. */
#define IMAP_FETCH_QUOTED_MAX 1024

void imap_fetch_nstring(struct ma_buf *b, const char *s, size_t len)
{
	bool quoted = len <= IMAP_FETCH_QUOTED_MAX;
	size_t i;

	if (s == NULL) {
		ma_buf_append(b, "NIL", 3);
		return;
	}
	for (i = 0; i < len && quoted; i++) {
		unsigned char c = (unsigned char)s[i];
		/* RFC 3501 9: QUOTED-CHAR is any 7-bit CHAR except CR and LF */
		if (c == 0 || c == '\r' || c == '\n' || c >= 0x80)
			quoted = false;
	}
	if (!quoted) {
		ma_buf_printf(b, "{%zu}\r\n", len);
		ma_buf_append(b, s, len);
		return;
	}
	ma_buf_append(b, "\"", 1);
	for (i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			ma_buf_append(b, "\\", 1);
		ma_buf_append(b, s + i, 1);
	}
	ma_buf_append(b, "\"", 1);
}

void imap_fetch_string_upper(struct ma_buf *b, const char *s)
{
	char tmp[256];
	size_t len, i;

	if (s == NULL) {
		ma_buf_append(b, "NIL", 3);
		return;
	}
	len = strlen(s);
	if (len >= sizeof(tmp)) {
		imap_fetch_nstring(b, s, len);
		return;
	}
	for (i = 0; i < len; i++)
		tmp[i] = (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 32) : s[i];
	imap_fetch_nstring(b, tmp, len);
}

static void imap_fetch_cstr(struct ma_buf *b, const char *s)
{
	imap_fetch_nstring(b, s, s != NULL ? strlen(s) : 0);
}

/* ---------------- ENVELOPE ---------------- */

/* RFC 3501 7.4.2: a list of addresses or NIL when there are none. */
static bool imap_fetch_addresses(struct ma_buf *b, struct ma_arena *a,
				 const char *raw)
{
	struct ma_mime_address *addr = NULL;
	unsigned n, i;

	if (raw == NULL)
		return false;
	n = ma_mime_parse_addresses(a, raw, &addr);
	if (n == 0 || addr == NULL)
		return false;
	ma_buf_append(b, "(", 1);
	for (i = 0; i < n; i++) {
		ma_buf_append(b, "(", 1);
		imap_fetch_cstr(b, addr[i].name);
		ma_buf_append(b, " ", 1);
		imap_fetch_cstr(b, addr[i].adl);
		ma_buf_append(b, " ", 1);
		imap_fetch_cstr(b, addr[i].mailbox);
		ma_buf_append(b, " ", 1);
		imap_fetch_cstr(b, addr[i].host);
		ma_buf_append(b, ")", 1);
	}
	ma_buf_append(b, ")", 1);
	return true;
}

static void imap_fetch_address_field(struct ma_buf *b, struct ma_arena *a,
				     const char *raw, const char *fallback)
{
	/* Sender and Reply-To absent or empty: the From value (RFC 3501
	 * 7.4.2 "the server sets the corresponding member ... to be the
	 * same value as the from member"). */
	if (imap_fetch_addresses(b, a, raw))
		return;
	if (fallback != NULL && imap_fetch_addresses(b, a, fallback))
		return;
	ma_buf_append(b, "NIL", 3);
}

void imap_fetch_envelope(struct ma_buf *b, struct ma_arena *a,
			 const struct ma_mime_envelope *env)
{
	static const struct ma_mime_envelope empty;

	if (env == NULL)
		env = &empty;
	ma_buf_append(b, "(", 1);
	imap_fetch_cstr(b, env->date);
	ma_buf_append(b, " ", 1);
	imap_fetch_cstr(b, env->subject);
	ma_buf_append(b, " ", 1);
	imap_fetch_address_field(b, a, env->from, NULL);
	ma_buf_append(b, " ", 1);
	imap_fetch_address_field(b, a, env->sender, env->from);
	ma_buf_append(b, " ", 1);
	imap_fetch_address_field(b, a, env->reply_to, env->from);
	ma_buf_append(b, " ", 1);
	imap_fetch_address_field(b, a, env->to, NULL);
	ma_buf_append(b, " ", 1);
	imap_fetch_address_field(b, a, env->cc, NULL);
	ma_buf_append(b, " ", 1);
	imap_fetch_address_field(b, a, env->bcc, NULL);
	ma_buf_append(b, " ", 1);
	imap_fetch_cstr(b, env->in_reply_to);
	ma_buf_append(b, " ", 1);
	imap_fetch_cstr(b, env->message_id);
	ma_buf_append(b, ")", 1);
}

/* ---------------- BODY / BODYSTRUCTURE ---------------- */

static bool imap_fetch_ieq(const char *a, const char *b)
{
	return a != NULL && strcasecmp(a, b) == 0;
}

static bool imap_fetch_is_multipart(const struct ma_mime_part *p)
{
	return imap_fetch_ieq(p->type, "multipart");
}

bool imap_fetch_part_is_message(const struct ma_mime_part *p)
{
	return imap_fetch_ieq(p->type, "message") &&
		(imap_fetch_ieq(p->subtype, "rfc822") ||
		 imap_fetch_ieq(p->subtype, "global")) &&
		p->n_children == 1 && p->children != NULL;
}

/* body-fld-param: ("NAME" "value" ...) or NIL. text/ * without a charset
 * gets the RFC 2045 5.2 default so clients need not guess. */
static void imap_fetch_params(struct ma_buf *b, const struct ma_mime_param *params,
			      unsigned n, bool text_default)
{
	bool have_charset = false;
	unsigned i;

	for (i = 0; i < n; i++)	/* "charset*": an RFC 2231 value, kept encoded */
		if (imap_fetch_ieq(params[i].name, "charset") ||
		    imap_fetch_ieq(params[i].name, "charset*"))
			have_charset = true;
	if (n == 0 && !text_default) {
		ma_buf_append(b, "NIL", 3);
		return;
	}
	ma_buf_append(b, "(", 1);
	for (i = 0; i < n; i++) {
		if (i > 0)
			ma_buf_append(b, " ", 1);
		imap_fetch_string_upper(b, params[i].name != NULL ? params[i].name : "");
		ma_buf_append(b, " ", 1);
		imap_fetch_cstr(b, params[i].value != NULL ? params[i].value : "");
	}
	if (text_default && !have_charset)
		ma_buf_printf(b, "%s\"CHARSET\" \"US-ASCII\"", n > 0 ? " " : "");
	ma_buf_append(b, ")", 1);
}

/* body-fld-dsp: ("ATTACHMENT" ("FILENAME" "x")) or NIL */
static void imap_fetch_disposition(struct ma_buf *b, const struct ma_mime_part *p)
{
	if (p->disposition == NULL) {
		ma_buf_append(b, "NIL", 3);
		return;
	}
	ma_buf_append(b, "(", 1);
	imap_fetch_string_upper(b, p->disposition);
	ma_buf_append(b, " ", 1);
	imap_fetch_params(b, p->disposition_params, p->n_disposition_params, false);
	ma_buf_append(b, ")", 1);
}

/* body-fld-lang: NIL, one string, or a list for "en, de" (RFC 3282). */
static void imap_fetch_language(struct ma_buf *b, const char *lang)
{
	const char *tok[16];
	size_t toklen[16];
	unsigned n = 0, i;
	const char *p = lang;

	while (p != NULL && *p != '\0' && n < 16) {
		size_t len;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		len = strcspn(p, " \t,");
		if (len == 0)
			break;
		tok[n] = p;
		toklen[n++] = len;
		p += len;
	}
	if (n == 0) {
		ma_buf_append(b, "NIL", 3);
		return;
	}
	if (n == 1) {
		imap_fetch_nstring(b, tok[0], toklen[0]);
		return;
	}
	ma_buf_append(b, "(", 1);
	for (i = 0; i < n; i++) {
		if (i > 0)
			ma_buf_append(b, " ", 1);
		imap_fetch_nstring(b, tok[i], toklen[i]);
	}
	ma_buf_append(b, ")", 1);
}

static void imap_fetch_body_rec(struct ma_buf *b, struct ma_arena *a,
				const struct ma_mime_part *p, bool ext,
				unsigned depth)
{
	bool text, message;

	ma_buf_append(b, "(", 1);
	if (imap_fetch_is_multipart(p) && depth < MA_MIME_DEPTH_MAX + 2) {
		unsigned i;

		if (p->n_children == 0 || p->children == NULL) {
			/* body-type-mpart needs one body: an empty text part */
			ma_buf_printf(b, "%s", "(\"TEXT\" \"PLAIN\" (\"CHARSET\" "
				      "\"US-ASCII\") NIL NIL \"7BIT\" 0 0)");
		}
		for (i = 0; i < p->n_children && p->children != NULL; i++)
			imap_fetch_body_rec(b, a, &p->children[i], ext, depth + 1);
		ma_buf_append(b, " ", 1);
		imap_fetch_string_upper(b, p->subtype != NULL ? p->subtype : "mixed");
		if (ext) {
			/* body-ext-mpart: param, dsp, lang, loc */
			ma_buf_append(b, " ", 1);
			imap_fetch_params(b, p->params, p->n_params, false);
			ma_buf_append(b, " ", 1);
			imap_fetch_disposition(b, p);
			ma_buf_append(b, " ", 1);
			imap_fetch_language(b, p->language);
			ma_buf_append(b, " ", 1);
			imap_fetch_cstr(b, p->location);
		}
		ma_buf_append(b, ")", 1);
		return;
	}

	text = imap_fetch_ieq(p->type, "text");
	message = imap_fetch_part_is_message(p) && depth < MA_MIME_DEPTH_MAX + 2;
	imap_fetch_string_upper(b, p->type != NULL ? p->type : "text");
	ma_buf_append(b, " ", 1);
	imap_fetch_string_upper(b, p->subtype != NULL ? p->subtype : "plain");
	/* body-fields: param id desc enc octets */
	ma_buf_append(b, " ", 1);
	imap_fetch_params(b, p->params, p->n_params, text);
	ma_buf_append(b, " ", 1);
	imap_fetch_cstr(b, p->id);
	ma_buf_append(b, " ", 1);
	imap_fetch_cstr(b, p->description);
	ma_buf_append(b, " ", 1);
	imap_fetch_string_upper(b, p->encoding != NULL ? p->encoding : "7bit");
	ma_buf_printf(b, " %llu", (unsigned long long)p->body_size);
	if (message) {
		/* body-type-msg: envelope body lines */
		const struct ma_mime_part *c = &p->children[0];

		ma_buf_append(b, " ", 1);
		imap_fetch_envelope(b, a, c->envelope);
		ma_buf_append(b, " ", 1);
		imap_fetch_body_rec(b, a, c, ext, depth + 1);
		ma_buf_printf(b, " %u", p->body_lines);
	} else if (text) {
		ma_buf_printf(b, " %u", p->body_lines);
	}
	if (ext) {
		/* body-ext-1part: md5 dsp lang loc */
		ma_buf_append(b, " ", 1);
		imap_fetch_cstr(b, p->md5);
		ma_buf_append(b, " ", 1);
		imap_fetch_disposition(b, p);
		ma_buf_append(b, " ", 1);
		imap_fetch_language(b, p->language);
		ma_buf_append(b, " ", 1);
		imap_fetch_cstr(b, p->location);
	}
	ma_buf_append(b, ")", 1);
}

void imap_fetch_bodystructure(struct ma_buf *b, struct ma_arena *a,
			      const struct ma_mime_part *part, bool extended)
{
	imap_fetch_body_rec(b, a, part, extended, 0);
}

/* ---------------- part numbers ---------------- */

/* Number k of a message's (or multipart's) content: a multipart's k-th
 * child; a single part has only part 1, itself (RFC 3501 6.4.5). */
static const struct ma_mime_part *imap_fetch_nth(const struct ma_mime_part *p,
						 uint32_t k)
{
	if (k == 0)
		return NULL;
	if (imap_fetch_is_multipart(p)) {
		if (p->children == NULL || k > p->n_children)
			return NULL;
		return &p->children[k - 1];
	}
	return k == 1 ? p : NULL;
}

const struct ma_mime_part *imap_fetch_find_part(const struct ma_mime_part *root,
						const uint32_t *nums, unsigned n)
{
	const struct ma_mime_part *cur = root;
	unsigned i;

	if (n == 0)
		return root;
	cur = imap_fetch_nth(root, nums[0]);
	for (i = 1; i < n && cur != NULL; i++) {
		if (imap_fetch_part_is_message(cur))
			cur = imap_fetch_nth(&cur->children[0], nums[i]);
		else if (imap_fetch_is_multipart(cur))
			cur = imap_fetch_nth(cur, nums[i]);
		else
			cur = NULL;
	}
	return cur;
}

/* ---------------- loading the tree ---------------- */

struct ma_mime_part *imap_fetch_mime(struct ma_mailbox *box, struct ma_arena *a,
				     const struct ma_msg *m,
				     const struct ma_msg_data *data,
				     bool *need_data_r, struct ma_error_info *err)
{
	struct ma_mime_part *root = NULL;

	*need_data_r = false;
	if (m->cache_size > 0) {
		struct ma_msg_data c;

		memset(&c, 0, sizeof(c));
		if (ma_mailbox_msg_cache(box, m->uid, &c, err) < 0)
			return NULL;
		if (c.data != NULL && c.size > 0)
			root = ma_mime_deserialize(a, c.data, c.size);
		ma_msg_data_release(&c);
		if (root != NULL)
			return root;
		/* an old or damaged cache blob: parse below */
	}
	if (data == NULL) {
		*need_data_r = true;
		return NULL;
	}
	return ma_mime_parse(a, data->data, data->size);
}

/* ---------------- UID sets ---------------- */

void imap_fetch_uidset(struct ma_buf *b, const uint32_t *uids, unsigned n)
{
	unsigned i = 0;
	bool first = true;

	while (i < n) {
		unsigned j = i;

		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		ma_buf_printf(b, "%s%u", first ? "" : ",", uids[i]);
		if (j > i)
			ma_buf_printf(b, ":%u", uids[j]);
		first = false;
		i = j + 1;
	}
}
