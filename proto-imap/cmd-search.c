/*
 * cmd-search.c - SEARCH and UID SEARCH (RFC 3501 6.4.4).
 *
 * check: [CHARSET US-ASCII|UTF-8] (others: NO [BADCHARSET (US-ASCII
 * UTF-8)]) then the keys, parsed into a tree: every RFC 3501 key,
 * sequence sets, parenthesised groups, NOT, OR. Bounded: nesting
 * IMAP_SEARCH_DEPTH_MAX, IMAP_SEARCH_KEYS_MAX keys in all.
 * do: each message of the view is tested; what a key needs is loaded
 * lazily, once per message: flags, size, UID, sequence number and internal
 * date come from the view (a flag-only search reads no message); FROM/TO/
 * CC/BCC/SUBJECT/SENT* from the cached envelope; HEADER, BODY and TEXT
 * read the message. Messages are tested in batches, yielding to the loop
 * between them, and the result line is streamed (both IMAP_CMD_CONTINUE).
 *
 * Matching (documented in docs/imap.md): header values are RFC 2047
 * decoded to UTF-8 (ma_mime_decode_words) before the test; BODY/TEXT look
 * at the text parts (text/ *, also inside attached messages) decoded from
 * quoted-printable/base64 and converted to UTF-8 (ma_mime_decode_body), at
 * most IMAP_SEARCH_BODY_MAX bytes of decoded text per message; TEXT also
 * looks at the whole (decoded) header. Comparison is a case-insensitive
 * substring test with ASCII and simple Latin-1, Latin Extended-A, Greek
 * and Cyrillic case folding (no normalisation, no special casing like ß).
 * Dates: BEFORE/ON/SINCE compare the internal date's day in the message's
 * own zone; SENTBEFORE/SENTON/SENTSINCE the Date: header's day in its own
 * zone (RFC 3501 says to disregard time and timezone); a message without
 * a parseable Date: header matches no SENT* key. \Recent is not tracked:
 * RECENT and NEW match nothing, OLD everything.
 */
#include <string.h>
#include <strings.h>

#include "imap-fetch.h"

#define IMAP_SEARCH_BODY_MAX (16 * 1024 * 1024)	/* decoded text per message */
#define IMAP_SEARCH_CHUNK (8 * 1024)

enum imap_search_type {
	IMAP_SK_ALL = 1,
	IMAP_SK_AND,		/* children */
	IMAP_SK_OR,		/* a, b */
	IMAP_SK_NOT,		/* a */
	IMAP_SK_SEQSET,
	IMAP_SK_UIDSET,
	IMAP_SK_FLAG,		/* flag set */
	IMAP_SK_UNFLAG,		/* flag clear */
	IMAP_SK_KEYWORD,	/* bit (-1: unknown keyword) */
	IMAP_SK_UNKEYWORD,
	IMAP_SK_NONE,		/* RECENT, NEW: \Recent is not tracked */
	IMAP_SK_LARGER,
	IMAP_SK_SMALLER,
	IMAP_SK_BEFORE,
	IMAP_SK_ON,
	IMAP_SK_SINCE,
	IMAP_SK_SENTBEFORE,
	IMAP_SK_SENTON,
	IMAP_SK_SENTSINCE,
	IMAP_SK_HEADER,		/* field, str */
	IMAP_SK_BODY,
	IMAP_SK_TEXT,
};

struct imap_search_key {
	enum imap_search_type type;
	struct imap_search_key *a, *b;		/* OR, NOT */
	struct imap_search_key *first, *next;	/* AND children, siblings */
	struct imap_seqset set;
	uint32_t flag;
	int keyword;
	uint64_t num;
	int64_t day;
	const char *field;	/* HEADER field name */
	const char *str;	/* folded search string (UTF-8) */
	size_t str_len;
};

/* ---------------- case folding ---------------- */

static uint32_t imap_search_fold_cp(uint32_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c + 32;
	if (c < 0x80)
		return c;
	if (c >= 0xc0 && c <= 0xde && c != 0xd7)
		return c + 0x20;
	if ((c >= 0x100 && c <= 0x137) || (c >= 0x14a && c <= 0x177))
		return (c % 2 == 0) ? c + 1 : c;
	if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e))
		return (c % 2 == 1) ? c + 1 : c;
	if (c == 0x178)
		return 0xff;
	if (c >= 0x391 && c <= 0x3a9 && c != 0x3a2)
		return c + 0x20;
	if (c >= 0x410 && c <= 0x42f)
		return c + 0x20;
	if (c >= 0x400 && c <= 0x40f)
		return c + 0x50;
	return c;
}

/* UTF-8 -> folded UTF-8; invalid bytes are copied as they are. */
static void imap_search_fold(const char *s, size_t len, struct ma_buf *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		uint32_t cp;
		size_t n;
		unsigned char tmp[4];

		if (c < 0x80) {
			tmp[0] = (unsigned char)imap_search_fold_cp(c);
			ma_buf_append(out, tmp, 1);
			i++;
			continue;
		}
		/* only 2-byte sequences can fold here (all mapped code points
		 * are below U+0800); longer ones are copied */
		if ((c & 0xe0) == 0xc0 && i + 1 < len && (p[i + 1] & 0xc0) == 0x80) {
			cp = ((uint32_t)(c & 0x1f) << 6) | (p[i + 1] & 0x3f);
			cp = imap_search_fold_cp(cp);
			if (cp >= 0x80 && cp < 0x800) {
				tmp[0] = (unsigned char)(0xc0 | (cp >> 6));
				tmp[1] = (unsigned char)(0x80 | (cp & 0x3f));
				ma_buf_append(out, tmp, 2);
				i += 2;
				continue;
			}
		}
		n = 1;
		ma_buf_append(out, p + i, n);
		i += n;
	}
}

bool imap_search_contains(const char *hay, size_t hay_len, const char *needle,
			  size_t needle_len)
{
	struct ma_buf fh, fn;
	bool found;

	if (needle_len == 0)
		return true;
	ma_buf_init(&fh, hay_len * 2 + 16);
	ma_buf_init(&fn, needle_len * 2 + 16);
	imap_search_fold(hay, hay_len, &fh);
	imap_search_fold(needle, needle_len, &fn);
	found = ma_buf_len(&fh) > 0 && ma_buf_len(&fn) > 0 &&
		memmem(ma_buf_ptr(&fh), ma_buf_len(&fh), ma_buf_ptr(&fn),
		       ma_buf_len(&fn)) != NULL;
	ma_buf_free(&fh);
	ma_buf_free(&fn);
	return found;
}

/* hay against an already folded needle */
static bool imap_search_match(const char *hay, size_t hay_len,
			      const struct imap_search_key *k)
{
	struct ma_buf fh;
	bool found;

	if (k->str_len == 0)
		return true;
	if (hay == NULL)
		return false;
	ma_buf_init(&fh, hay_len * 2 + 16);
	imap_search_fold(hay, hay_len, &fh);
	found = ma_buf_len(&fh) > 0 &&
		memmem(ma_buf_ptr(&fh), ma_buf_len(&fh), k->str, k->str_len) != NULL;
	ma_buf_free(&fh);
	return found;
}

/* ---------------- dates ---------------- */

/* Days since 1970-01-01 of a civil date (proleptic Gregorian). */
static int64_t imap_search_days(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int64_t imap_search_parse_date(const char *s, size_t len)
{
	static const char *const mon[] = { "jan", "feb", "mar", "apr", "may",
		"jun", "jul", "aug", "sep", "oct", "nov", "dec" };
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	size_t i = 0, dl;
	uint64_t day, year;
	unsigned m;

	/* date-day "-" date-month "-" date-year (RFC 3501 9) */
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++;
	dl = i;
	if (dl < 1 || dl > 2 || ma_parse_uint(s, dl, 31, &day) < 0 || day == 0)
		return -1;
	if (len != dl + 9 || s[dl] != '-' || s[dl + 4] != '-')
		return -1;
	for (m = 0; m < 12; m++)
		if (strncasecmp(s + dl + 1, mon[m], 3) == 0)
			break;
	if (m == 12 || ma_parse_uint(s + dl + 5, 4, 9999, &year) < 0)
		return -1;
	if (day > mdays[m])
		return -1;
	return imap_search_days((int64_t)year, m + 1, (unsigned)day);
}

static int64_t imap_search_day_of(int64_t t, int32_t tz)
{
	int64_t lt = t + (int64_t)tz * 60;

	return lt >= 0 ? lt / 86400 : -((-lt + 86399) / 86400);
}

/* ---------------- parsing ---------------- */

struct imap_search_parser {
	struct ma_arena *a;
	const struct imap_selected *sel;
	const struct imap_arg *args;
	unsigned n, pos;
	unsigned n_keys;
	const char *error;
};

static struct imap_search_key *imap_search_parse_key(struct imap_search_parser *p,
						     unsigned depth);

static struct imap_search_key *imap_search_new(struct imap_search_parser *p,
					       enum imap_search_type type)
{
	struct imap_search_key *k;

	if (++p->n_keys > IMAP_SEARCH_KEYS_MAX) {
		p->error = "Too many search keys";
		return NULL;
	}
	k = ma_arena_alloc(p->a, sizeof(*k));
	k->type = type;
	k->keyword = -1;
	return k;
}

static const struct imap_arg *imap_search_next_arg(struct imap_search_parser *p)
{
	if (p->pos >= p->n) {
		p->error = "Missing search key argument";
		return NULL;
	}
	return &p->args[p->pos++];
}

/* A search string: astring, folded for matching. */
static int imap_search_string_arg(struct imap_search_parser *p,
				  struct imap_search_key *k)
{
	const struct imap_arg *arg = imap_search_next_arg(p);
	struct ma_buf b;

	if (arg == NULL)
		return -1;
	if (!imap_arg_is_astring(arg)) {
		p->error = "Search string expected";
		return -1;
	}
	ma_buf_init(&b, arg->len * 2 + 16);
	imap_search_fold(arg->str, arg->len, &b);
	k->str_len = ma_buf_len(&b);
	k->str = ma_arena_strndup(p->a, (const char *)ma_buf_ptr(&b), k->str_len);
	ma_buf_free(&b);
	return 0;
}

static int imap_search_date_arg(struct imap_search_parser *p,
				struct imap_search_key *k)
{
	const struct imap_arg *arg = imap_search_next_arg(p);

	if (arg == NULL)
		return -1;
	if ((arg->type != IMAP_ARG_ATOM && arg->type != IMAP_ARG_STRING) ||
	    (k->day = imap_search_parse_date(arg->str, arg->len)) < 0) {
		p->error = "Invalid search date";
		return -1;
	}
	return 0;
}

static int imap_search_set_arg(struct imap_search_parser *p, const struct imap_arg *arg,
			       struct imap_search_key *k, bool uid)
{
	const struct imap_selected *sel = p->sel;
	uint32_t max;

	if (arg == NULL)
		return -1;
	if (uid)
		max = sel->count > 0 ? sel->msgs[sel->count - 1].uid :
			(sel->status.uidnext > 0 ? sel->status.uidnext - 1 : 0);
	else
		max = sel->count;
	if (arg->type != IMAP_ARG_ATOM ||
	    imap_seqset_parse(p->a, arg->str, arg->len, max, &k->set) < 0) {
		p->error = "Invalid sequence set";
		return -1;
	}
	return 0;
}

static int imap_search_keyword_index(const struct imap_selected *sel,
				     const char *name, size_t len)
{
	unsigned i;

	for (i = 0; i < sel->n_keywords && i < 64; i++)
		if (sel->keywords[i] != NULL && ma_slice_ieq(name, len, sel->keywords[i]))
			return (int)i;
	return -1;
}

static struct imap_search_key *imap_search_parse_list(struct imap_search_parser *p,
						      const struct imap_arg *args,
						      unsigned n, unsigned depth)
{
	const struct imap_arg *save_args = p->args;
	unsigned save_n = p->n, save_pos = p->pos;
	struct imap_search_key *and, *k, **tail;

	if (depth > IMAP_SEARCH_DEPTH_MAX) {
		p->error = "Search keys nested too deep";
		return NULL;
	}
	if (n == 0) {
		p->error = "Empty search key list";
		return NULL;
	}
	and = imap_search_new(p, IMAP_SK_AND);
	if (and == NULL)
		return NULL;
	tail = &and->first;
	p->args = args;
	p->n = n;
	p->pos = 0;
	while (p->pos < p->n) {
		k = imap_search_parse_key(p, depth);
		if (k == NULL)
			return NULL;
		*tail = k;
		tail = &k->next;
	}
	p->args = save_args;
	p->n = save_n;
	p->pos = save_pos;
	return and;
}

static struct imap_search_key *imap_search_parse_key(struct imap_search_parser *p,
						     unsigned depth)
{
	static const struct { const char *name; enum imap_search_type type; uint32_t flag; } flagkeys[] = {
		{ "ANSWERED", IMAP_SK_FLAG, MA_FLAG_ANSWERED },
		{ "DELETED", IMAP_SK_FLAG, MA_FLAG_DELETED },
		{ "DRAFT", IMAP_SK_FLAG, MA_FLAG_DRAFT },
		{ "FLAGGED", IMAP_SK_FLAG, MA_FLAG_FLAGGED },
		{ "SEEN", IMAP_SK_FLAG, MA_FLAG_SEEN },
		{ "UNANSWERED", IMAP_SK_UNFLAG, MA_FLAG_ANSWERED },
		{ "UNDELETED", IMAP_SK_UNFLAG, MA_FLAG_DELETED },
		{ "UNDRAFT", IMAP_SK_UNFLAG, MA_FLAG_DRAFT },
		{ "UNFLAGGED", IMAP_SK_UNFLAG, MA_FLAG_FLAGGED },
		{ "UNSEEN", IMAP_SK_UNFLAG, MA_FLAG_SEEN },
		{ "ALL", IMAP_SK_ALL, 0 }, { "OLD", IMAP_SK_ALL, 0 },
		{ "RECENT", IMAP_SK_NONE, 0 }, { "NEW", IMAP_SK_NONE, 0 },
	};
	static const struct { const char *name; const char *field; } hdrkeys[] = {
		{ "BCC", "Bcc" }, { "CC", "Cc" }, { "FROM", "From" },
		{ "SUBJECT", "Subject" }, { "TO", "To" },
	};
	static const struct { const char *name; enum imap_search_type type; } datekeys[] = {
		{ "BEFORE", IMAP_SK_BEFORE }, { "ON", IMAP_SK_ON }, { "SINCE", IMAP_SK_SINCE },
		{ "SENTBEFORE", IMAP_SK_SENTBEFORE }, { "SENTON", IMAP_SK_SENTON },
		{ "SENTSINCE", IMAP_SK_SENTSINCE },
	};
	const struct imap_arg *arg = imap_search_next_arg(p);
	struct imap_search_key *k;
	const char *w;
	size_t wl;
	unsigned i;

	if (arg == NULL)
		return NULL;
	if (arg->type == IMAP_ARG_LIST)
		return imap_search_parse_list(p, arg->list, arg->list_count, depth + 1);
	if (arg->type != IMAP_ARG_ATOM) {
		p->error = "Search key expected";
		return NULL;
	}
	w = arg->str;
	wl = arg->len;
	if (wl > 0 && ((w[0] >= '0' && w[0] <= '9') || w[0] == '*')) {
		k = imap_search_new(p, IMAP_SK_SEQSET);
		if (k == NULL || imap_search_set_arg(p, arg, k, false) < 0)
			return NULL;
		return k;
	}
	for (i = 0; i < sizeof(flagkeys) / sizeof(flagkeys[0]); i++) {
		if (ma_slice_ieq(w, wl, flagkeys[i].name)) {
			k = imap_search_new(p, flagkeys[i].type);
			if (k != NULL)
				k->flag = flagkeys[i].flag;
			return k;
		}
	}
	for (i = 0; i < sizeof(hdrkeys) / sizeof(hdrkeys[0]); i++) {
		if (ma_slice_ieq(w, wl, hdrkeys[i].name)) {
			k = imap_search_new(p, IMAP_SK_HEADER);
			if (k == NULL || imap_search_string_arg(p, k) < 0)
				return NULL;
			k->field = hdrkeys[i].field;
			return k;
		}
	}
	for (i = 0; i < sizeof(datekeys) / sizeof(datekeys[0]); i++) {
		if (ma_slice_ieq(w, wl, datekeys[i].name)) {
			k = imap_search_new(p, datekeys[i].type);
			if (k == NULL || imap_search_date_arg(p, k) < 0)
				return NULL;
			return k;
		}
	}
	if (ma_slice_ieq(w, wl, "BODY") || ma_slice_ieq(w, wl, "TEXT")) {
		k = imap_search_new(p, ma_slice_ieq(w, wl, "BODY") ? IMAP_SK_BODY : IMAP_SK_TEXT);
		if (k == NULL || imap_search_string_arg(p, k) < 0)
			return NULL;
		return k;
	}
	if (ma_slice_ieq(w, wl, "HEADER")) {
		const struct imap_arg *f;
		size_t j;

		k = imap_search_new(p, IMAP_SK_HEADER);
		if (k == NULL || (f = imap_search_next_arg(p)) == NULL)
			return NULL;
		if (!imap_arg_is_astring(f) || f->len == 0 || f->len > 200) {
			p->error = "Invalid header field name";
			return NULL;
		}
		for (j = 0; j < f->len; j++) {
			if ((unsigned char)f->str[j] <= 32 || (unsigned char)f->str[j] >= 127 ||
			    f->str[j] == ':') {
				p->error = "Invalid header field name";
				return NULL;
			}
		}
		k->field = ma_arena_strndup(p->a, f->str, f->len);
		if (imap_search_string_arg(p, k) < 0)
			return NULL;
		return k;
	}
	if (ma_slice_ieq(w, wl, "KEYWORD") || ma_slice_ieq(w, wl, "UNKEYWORD")) {
		const struct imap_arg *f;

		k = imap_search_new(p, ma_slice_ieq(w, wl, "KEYWORD") ?
				    IMAP_SK_KEYWORD : IMAP_SK_UNKEYWORD);
		if (k == NULL || (f = imap_search_next_arg(p)) == NULL)
			return NULL;
		if (f->type != IMAP_ARG_ATOM) {
			p->error = "Invalid keyword";
			return NULL;
		}
		if (f->len > 0 && f->str[0] == '\\') {
			/* KEYWORD \Seen: some clients send system flags here */
			static const struct { const char *n; uint32_t f; } sys[] = {
				{ "\\Seen", MA_FLAG_SEEN }, { "\\Answered", MA_FLAG_ANSWERED },
				{ "\\Flagged", MA_FLAG_FLAGGED }, { "\\Deleted", MA_FLAG_DELETED },
				{ "\\Draft", MA_FLAG_DRAFT },
			};
			for (i = 0; i < 5; i++) {
				if (ma_slice_ieq(f->str, f->len, sys[i].n)) {
					k->type = k->type == IMAP_SK_KEYWORD ?
						IMAP_SK_FLAG : IMAP_SK_UNFLAG;
					k->flag = sys[i].f;
					return k;
				}
			}
			p->error = "Invalid keyword";
			return NULL;
		}
		if (!imap_keyword_valid(f->str, f->len)) {
			p->error = "Invalid keyword";
			return NULL;
		}
		k->keyword = imap_search_keyword_index(p->sel, f->str, f->len);
		return k;
	}
	if (ma_slice_ieq(w, wl, "LARGER") || ma_slice_ieq(w, wl, "SMALLER")) {
		const struct imap_arg *f;

		k = imap_search_new(p, ma_slice_ieq(w, wl, "LARGER") ?
				    IMAP_SK_LARGER : IMAP_SK_SMALLER);
		if (k == NULL || (f = imap_search_next_arg(p)) == NULL)
			return NULL;
		if (f->type != IMAP_ARG_ATOM ||
		    ma_parse_uint(f->str, f->len, UINT32_MAX, &k->num) < 0) {
			p->error = "Invalid number";
			return NULL;
		}
		return k;
	}
	if (ma_slice_ieq(w, wl, "UID")) {
		k = imap_search_new(p, IMAP_SK_UIDSET);
		if (k == NULL || imap_search_set_arg(p, imap_search_next_arg(p), k, true) < 0)
			return NULL;
		return k;
	}
	if (ma_slice_ieq(w, wl, "NOT")) {
		if (depth >= IMAP_SEARCH_DEPTH_MAX) {
			p->error = "Search keys nested too deep";
			return NULL;
		}
		k = imap_search_new(p, IMAP_SK_NOT);
		if (k == NULL || (k->a = imap_search_parse_key(p, depth + 1)) == NULL)
			return NULL;
		return k;
	}
	if (ma_slice_ieq(w, wl, "OR")) {
		if (depth >= IMAP_SEARCH_DEPTH_MAX) {
			p->error = "Search keys nested too deep";
			return NULL;
		}
		k = imap_search_new(p, IMAP_SK_OR);
		if (k == NULL || (k->a = imap_search_parse_key(p, depth + 1)) == NULL ||
		    (k->b = imap_search_parse_key(p, depth + 1)) == NULL)
			return NULL;
		return k;
	}
	p->error = "Unknown search key";
	return NULL;
}

int imap_search_parse(struct ma_arena *a, const struct imap_selected *sel,
		      const struct imap_arg *args, unsigned n,
		      struct imap_search_key **key_r, const char **error_r)
{
	struct imap_search_parser p;

	memset(&p, 0, sizeof(p));
	p.a = a;
	p.sel = sel;
	p.error = "Invalid search keys";
	*key_r = imap_search_parse_list(&p, args, n, 0);
	if (*key_r == NULL) {
		*error_r = p.error;
		return -1;
	}
	return 0;
}

bool imap_search_needs_text(const struct imap_search_key *k)
{
	const struct imap_search_key *c;

	switch (k->type) {
	case IMAP_SK_HEADER: case IMAP_SK_BODY: case IMAP_SK_TEXT:
	case IMAP_SK_SENTBEFORE: case IMAP_SK_SENTON: case IMAP_SK_SENTSINCE:
		return true;
	case IMAP_SK_AND:
		for (c = k->first; c != NULL; c = c->next)
			if (imap_search_needs_text(c))
				return true;
		return false;
	case IMAP_SK_OR:
		return imap_search_needs_text(k->a) || imap_search_needs_text(k->b);
	case IMAP_SK_NOT:
		return imap_search_needs_text(k->a);
	default:
		return false;
	}
}

/* ---------------- evaluation ---------------- */

struct imap_search_msg {
	struct imap_session *s;
	const struct ma_msg *m;
	uint32_t seq;
	struct ma_arena *a;		/* per message */
	struct ma_msg_data data;
	bool data_tried, data_ok;
	struct ma_mime_part *root;
	bool root_tried;
	struct ma_buf text;		/* decoded body text */
	bool text_done;
};

static bool imap_search_load_data(struct imap_search_msg *e)
{
	struct ma_error_info err;

	if (e->data_tried)
		return e->data_ok;
	e->data_tried = true;
	memset(&err, 0, sizeof(err));
	if (ma_mailbox_msg_read(e->s->sel->box, e->m->uid, &e->data, &err) < 0) {
		if (err.code != MA_ERR_EXPUNGED && err.code != MA_ERR_NOTFOUND)
			ma_conn_log(e->s->conn, MA_LOG_ERROR,
				    "SEARCH: reading UID %u failed: %s: %s",
				    e->m->uid, ma_error_name(err.code), err.text);
		return false;
	}
	e->data_ok = e->data.data != NULL || e->data.size == 0;
	return e->data_ok;
}

static const struct ma_mime_part *imap_search_load_root(struct imap_search_msg *e)
{
	struct ma_error_info err;
	bool need = false;

	if (e->root_tried)
		return e->root;
	e->root_tried = true;
	memset(&err, 0, sizeof(err));
	e->root = imap_fetch_mime(e->s->sel->box, e->a, e->m, NULL, &need, &err);
	if (e->root == NULL && need && imap_search_load_data(e))
		e->root = imap_fetch_mime(e->s->sel->box, e->a, e->m, &e->data,
					  &need, &err);
	return e->root;
}

/* All fields named k->field, unfolded and decoded, tested. */
static bool imap_search_header(struct imap_search_msg *e,
			       const struct imap_search_key *k)
{
	const struct ma_mime_part *root;
	const unsigned char *h;
	size_t len, pos = 0, flen = strlen(k->field);
	const struct ma_mime_envelope *env;
	const char *v = NULL;

	root = imap_search_load_root(e);
	env = root != NULL ? root->envelope : NULL;
	/* the envelope fields come from the cache: no read */
	if (env != NULL && k->str_len > 0) {
		if (strcasecmp(k->field, "From") == 0) v = env->from;
		else if (strcasecmp(k->field, "To") == 0) v = env->to;
		else if (strcasecmp(k->field, "Cc") == 0) v = env->cc;
		else if (strcasecmp(k->field, "Bcc") == 0) v = env->bcc;
		else if (strcasecmp(k->field, "Subject") == 0) v = env->subject;
		else goto read;
		if (v == NULL)
			return false;
		v = ma_mime_decode_words(e->a, v);
		return v != NULL && imap_search_match(v, strlen(v), k);
	}
read:
	if (root == NULL || !imap_search_load_data(e))
		return false;
	h = e->data.data;
	len = root->header_size < e->data.size ? (size_t)root->header_size : e->data.size;
	while (pos < len) {
		size_t start = pos, end = pos;
		const unsigned char *colon;

		if (h[pos] == '\r' || h[pos] == '\n')
			break;
		for (;;) {
			const unsigned char *nl = memchr(h + end, '\n', len - end);

			end = nl != NULL ? (size_t)(nl - h) + 1 : len;
			if (end >= len || (h[end] != ' ' && h[end] != '\t'))
				break;
		}
		pos = end;
		colon = memchr(h + start, ':', end - start);
		if (colon == NULL || (size_t)(colon - (h + start)) != flen ||
		    strncasecmp((const char *)h + start, k->field, flen) != 0)
			continue;
		if (k->str_len == 0)
			return true;
		{
			/* unfold: CR/LF dropped */
			size_t vs = (size_t)(colon - h) + 1, i, o = 0;
			char *val = ma_arena_alloc(e->a, end - vs + 1);
			const char *dec;

			for (i = vs; i < end; i++)
				if (h[i] != '\r' && h[i] != '\n')
					val[o++] = (char)h[i];
			val[o] = '\0';
			dec = ma_mime_decode_words(e->a, val);
			if (dec != NULL && imap_search_match(dec, strlen(dec), k))
				return true;
		}
	}
	return false;
}

static void imap_search_collect_text(struct imap_search_msg *e,
				     const struct ma_mime_part *p, unsigned depth)
{
	unsigned i;

	if (depth > MA_MIME_DEPTH_MAX + 2)
		return;
	if (p->n_children > 0 && p->children != NULL) {
		for (i = 0; i < p->n_children; i++)
			imap_search_collect_text(e, &p->children[i], depth + 1);
		return;
	}
	if (p->type != NULL && strcasecmp(p->type, "text") != 0)
		return;
	if (p->body_offset > e->data.size || p->body_size > e->data.size - p->body_offset)
		return;		/* a cache that does not fit the message */
	ma_mime_decode_body(p, e->data.data, &e->text);
	ma_buf_append(&e->text, "\n", 1);
}

static bool imap_search_body(struct imap_search_msg *e, const struct imap_search_key *k,
			     bool with_header)
{
	const struct ma_mime_part *root = imap_search_load_root(e);

	if (root == NULL || !imap_search_load_data(e))
		return false;
	if (with_header) {
		size_t hl = root->header_size < e->data.size ?
			(size_t)root->header_size : e->data.size;
		char *raw = ma_arena_strndup(e->a, (const char *)e->data.data, hl);
		const char *dec = ma_mime_decode_words(e->a, raw);

		if (dec != NULL && imap_search_match(dec, strlen(dec), k))
			return true;
	}
	if (!e->text_done) {
		e->text_done = true;
		imap_search_collect_text(e, root, 0);
	}
	return imap_search_match((const char *)ma_buf_ptr(&e->text),
				 ma_buf_len(&e->text), k);
}

static bool imap_search_sent(struct imap_search_msg *e, const struct imap_search_key *k)
{
	const struct ma_mime_part *root = imap_search_load_root(e);
	int64_t t, day;
	int32_t tz;

	if (root == NULL || root->envelope == NULL || root->envelope->date == NULL ||
	    ma_mime_parse_date(root->envelope->date, &t, &tz) < 0)
		return false;
	day = imap_search_day_of(t, tz);
	switch (k->type) {
	case IMAP_SK_SENTBEFORE: return day < k->day;
	case IMAP_SK_SENTON: return day == k->day;
	default: return day >= k->day;
	}
}

static bool imap_search_eval(struct imap_search_msg *e, const struct imap_search_key *k)
{
	const struct ma_msg *m = e->m;
	const struct imap_search_key *c;
	int64_t day;

	switch (k->type) {
	case IMAP_SK_ALL: return true;
	case IMAP_SK_NONE: return false;
	case IMAP_SK_AND:
		for (c = k->first; c != NULL; c = c->next)
			if (!imap_search_eval(e, c))
				return false;
		return true;
	case IMAP_SK_OR: return imap_search_eval(e, k->a) || imap_search_eval(e, k->b);
	case IMAP_SK_NOT: return !imap_search_eval(e, k->a);
	case IMAP_SK_SEQSET: return imap_seqset_contains(&k->set, e->seq);
	case IMAP_SK_UIDSET: return imap_seqset_contains(&k->set, m->uid);
	case IMAP_SK_FLAG: return (m->flags & k->flag) != 0;
	case IMAP_SK_UNFLAG: return (m->flags & k->flag) == 0;
	case IMAP_SK_KEYWORD:
		return k->keyword >= 0 && ((m->keywords >> k->keyword) & 1u);
	case IMAP_SK_UNKEYWORD:
		return k->keyword < 0 || !((m->keywords >> k->keyword) & 1u);
	case IMAP_SK_LARGER: return m->size > k->num;
	case IMAP_SK_SMALLER: return m->size < k->num;
	case IMAP_SK_BEFORE: case IMAP_SK_ON: case IMAP_SK_SINCE:
		day = imap_search_day_of(m->internal_date, m->internal_tz);
		if (k->type == IMAP_SK_BEFORE)
			return day < k->day;
		if (k->type == IMAP_SK_ON)
			return day == k->day;
		return day >= k->day;
	case IMAP_SK_SENTBEFORE: case IMAP_SK_SENTON: case IMAP_SK_SENTSINCE:
		return imap_search_sent(e, k);
	case IMAP_SK_HEADER: return imap_search_header(e, k);
	case IMAP_SK_BODY: return imap_search_body(e, k, false);
	case IMAP_SK_TEXT: return imap_search_body(e, k, true);
	}
	return false;
}

/* ---------------- the command ---------------- */

/* Messages tested per loop turn before yielding (IMAP_CMD_CONTINUE), so
 * one SEARCH BODY over a big mailbox does not stall the other sessions of
 * the worker; flag-only tests are cheap and get a bigger share. */
#define IMAP_SEARCH_BATCH_TEXT 200
#define IMAP_SEARCH_BATCH_VIEW 50000

struct imap_search_state {
	struct imap_search_key *key;
	bool text;
	struct imap_search_msg e;	/* per-message evaluation state */
	uint32_t next;			/* next message to test */
	uint32_t *hits;
	uint32_t n_hits, pos;
	bool started;
	struct ma_buf line;
};

static void imap_search_msg_reset(struct imap_search_msg *e)
{
	if (e->data_tried && e->data_ok)
		ma_msg_data_release(&e->data);
	memset(&e->data, 0, sizeof(e->data));
	e->data_tried = e->data_ok = false;
	e->root = NULL;
	e->root_tried = false;
	e->text_done = false;
	ma_buf_clear(&e->text);
	if (ma_buf_len(&e->text) == 0 && e->text.size > 1024 * 1024) {
		/* one big body must not pin its buffer for the rest */
		ma_buf_free(&e->text);
		ma_buf_init(&e->text, IMAP_SEARCH_BODY_MAX);
	}
	ma_arena_reset(e->a);
}

static void imap_search_cleanup(void *ctx)
{
	struct imap_search_state *st = ctx;

	if (st->e.a != NULL) {
		imap_search_msg_reset(&st->e);
		ma_arena_destroy(&st->e.a);
	}
	ma_buf_free(&st->e.text);
	ma_buf_free(&st->line);
}

static enum imap_cmd_result imap_search_start(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct imap_selected *sel = s->sel;
	const struct imap_arg *args = cmd->args;
	unsigned n = cmd->n_args;
	struct imap_search_key *key;
	struct imap_search_state *st;
	const char *error = NULL;

	if (sel == NULL) {
		imap_reply(cmd, "BAD", NULL, "No mailbox selected");
		return IMAP_CMD_DONE;
	}
	if (n >= 1 && args[0].type == IMAP_ARG_ATOM &&
	    ma_slice_ieq(args[0].str, args[0].len, "CHARSET")) {
		if (n < 3 || !imap_arg_is_astring(&args[1])) {
			imap_reply(cmd, "BAD", NULL, "Syntax: SEARCH [CHARSET <charset>] <keys>");
			return IMAP_CMD_DONE;
		}
		if (!ma_slice_ieq(args[1].str, args[1].len, "US-ASCII") &&
		    !ma_slice_ieq(args[1].str, args[1].len, "UTF-8")) {
			imap_reply(cmd, "NO", "BADCHARSET (US-ASCII UTF-8)",
				   "Unsupported charset");
			return IMAP_CMD_DONE;
		}
		args += 2;
		n -= 2;
	}
	if (n == 0) {
		imap_reply(cmd, "BAD", NULL, "Missing search keys");
		return IMAP_CMD_DONE;
	}
	if (imap_search_parse(cmd->arena, sel, args, n, &key, &error) < 0) {
		imap_reply(cmd, "BAD", NULL, "%s", error);
		return IMAP_CMD_DONE;
	}
	st = ma_arena_alloc(cmd->arena, sizeof(*st));
	st->key = key;
	st->text = imap_search_needs_text(key);
	st->hits = ma_arena_alloc(cmd->arena, sizeof(*st->hits) * ((size_t)sel->count + 1));
	st->e.s = s;
	st->e.a = ma_arena_create(0);
	ma_buf_init(&st->e.text, IMAP_SEARCH_BODY_MAX);
	ma_buf_init(&st->line, 64 * 1024);
	ma_arena_cleanup_add(cmd->arena, imap_search_cleanup, st);
	cmd->state = st;
	return IMAP_CMD_CONTINUE;
}

/* Tests the next batch of messages; false when there are more. */
static bool imap_search_run(struct imap_cmd *cmd, struct imap_search_state *st)
{
	const struct imap_selected *sel = cmd->s->sel;
	uint32_t budget = st->text ? IMAP_SEARCH_BATCH_TEXT : IMAP_SEARCH_BATCH_VIEW;

	for (; st->next < sel->count && budget > 0; st->next++, budget--) {
		struct imap_search_msg *e = &st->e;

		e->m = &sel->msgs[st->next];
		e->seq = st->next + 1;
		if (imap_search_eval(e, st->key))
			st->hits[st->n_hits++] = cmd->uid ? e->m->uid : st->next + 1;
		if (st->text)
			imap_search_msg_reset(e);
	}
	return st->next >= sel->count;
}

enum imap_cmd_result imap_cmd_search(struct imap_cmd *cmd)
{
	struct imap_search_state *st = cmd->state;
	struct ma_conn *conn = cmd->s->conn;

	if (st == NULL) {
		if (imap_search_start(cmd) == IMAP_CMD_DONE)
			return IMAP_CMD_DONE;
		st = cmd->state;
	}
	if (!imap_search_run(cmd, st)) {
		/* yield to the loop; on_output_drained brings us back */
		ma_conn_want_drain(conn);
		return IMAP_CMD_CONTINUE;
	}
	if (!st->started) {
		st->started = true;
		ma_conn_write(conn, "* SEARCH", 8);
	}
	while (st->pos < st->n_hits) {
		if (ma_conn_output_full(conn)) {
			ma_conn_want_drain(conn);
			return IMAP_CMD_CONTINUE;
		}
		ma_buf_clear(&st->line);
		while (st->pos < st->n_hits && ma_buf_len(&st->line) < IMAP_SEARCH_CHUNK)
			ma_buf_printf(&st->line, " %u", st->hits[st->pos++]);
		if (ma_conn_write(conn, ma_buf_ptr(&st->line), ma_buf_len(&st->line)) < 0)
			break;
	}
	ma_conn_write(conn, "\r\n", 2);
	imap_reply(cmd, "OK", NULL, "Search completed");
	return IMAP_CMD_DONE;
}
