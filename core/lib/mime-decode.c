/*
 * mime-decode.c - turning stored bytes into UTF-8 text: RFC 2047
 * encoded-words in header values, RFC 2045 base64 and quoted-printable
 * bodies, and charset conversion with iconv.
 *
 * Conversion never fails on bad input: bytes that are invalid in their
 * charset become U+FFFD, and a truncated sequence at the end too. The
 * charsets "us-ascii", "utf-8" and an unknown charset in a body are all
 * read as UTF-8 and checked (mail labelled us-ascii often carries 8-bit
 * UTF-8). Output is always bounded by the caller's ma_buf max.
 *
 * Bodies are decoded and converted in 16 KiB chunks, so memory does not
 * grow with the part's size; an incomplete multibyte sequence at a chunk
 * end is carried into the next chunk.
 */
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core-private.h"
#include "mime-private.h"

#define MIME_CHUNK 16384
#define MIME_CHARSET_MAX 64
/* Decoded header text: generous for a 64 KiB field turned to UTF-8. */
#define MIME_WORDS_OUT_MAX (4 * MIME_FIELD_MAX)

int mime_put_replacement(struct ma_buf *out)
{
	return ma_buf_append(out, "\xef\xbf\xbd", 3);
}

/* Appends what fits; -1 when not everything did. Cuts only at a UTF-8
 * character start so the output stays valid. */
static int mime_out(struct ma_buf *out, const void *data, size_t len)
{
	size_t room;

	if (ma_buf_append(out, data, len) == 0)
		return 0;
	room = out->max > ma_buf_len(out) ? out->max - ma_buf_len(out) : 0;
	if (room > len)
		room = len;
	while (room > 0 && room < len &&
	       (((const unsigned char *)data)[room] & 0xc0) == 0x80)
		room--;
	if (room > 0)
		(void)ma_buf_append(out, data, room);
	return -1;
}

/* ---------------- charsets ---------------- */

/* Names mail uses that iconv does not know, or knows as a subset. */
static const char *mime_charset_alias(const char *cs)
{
	static const struct { const char *from, *to; } aliases[] = {
		{ "ks_c_5601-1987", "CP949" },
		{ "ks_c_5601", "CP949" },
		{ "gb2312", "GB18030" },
		{ "gbk", "GB18030" },
		{ "x-gbk", "GB18030" },
		{ "iso-8859-8-i", "ISO-8859-8" },
		{ "unicode-1-1-utf-7", "UTF-7" },
		{ "x-sjis", "SHIFT_JIS" },
		{ "shift-jis", "SHIFT_JIS" },
		{ "x-mac-roman", "MACINTOSH" },
		{ "windows-874", "CP874" },
		{ "iso-8859-1", "WINDOWS-1252" },	/* what senders mean */
		{ "latin1", "WINDOWS-1252" },
	};
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strcasecmp(cs, aliases[i].from) == 0)
			return aliases[i].to;
	return cs;
}

static bool mime_charset_is_utf8(const char *cs)
{
	return cs[0] == '\0' || strcasecmp(cs, "utf-8") == 0 ||
		strcasecmp(cs, "utf8") == 0 || strcasecmp(cs, "us-ascii") == 0 ||
		strcasecmp(cs, "ascii") == 0 || strcasecmp(cs, "ansi_x3.4-1968") == 0;
}

/* Length of a valid UTF-8 sequence at p (n bytes available): >0 valid,
 * 0 incomplete but valid so far, -1 invalid. */
static int mime_utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	int len;
	unsigned min;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; min = 0x80; }
	else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; min = 0x800; }
	else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; min = 0x10000; }
	else return -1;
	for (int i = 1; i < len; i++) {
		if ((size_t)i >= n)
			return 0;
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	return len;
}

struct mime_conv {
	iconv_t cd;		/* (iconv_t)-1: UTF-8 check only */
	struct ma_buf *out;
	bool full;
};

/* 0 ok, -1 unknown charset (nothing opened). */
static int mime_conv_open(struct mime_conv *c, const char *charset,
			  struct ma_buf *out)
{
	char cs[MIME_CHARSET_MAX + 1];
	size_t n = 0;

	memset(c, 0, sizeof(*c));
	c->out = out;
	c->cd = (iconv_t)-1;
	if (charset == NULL)
		charset = "";
	while (*charset == ' ' || *charset == '\t')
		charset++;
	for (; charset[n] != '\0' && n < MIME_CHARSET_MAX; n++)
		cs[n] = charset[n];
	cs[n] = '\0';
	while (n > 0 && (cs[n - 1] == ' ' || cs[n - 1] == '\t'))
		cs[--n] = '\0';
	if (mime_charset_is_utf8(cs))
		return 0;
	/* iconv would take "//TRANSLIT" style suffixes: only plain names. */
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)cs[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		      ch == '.' || ch == ':'))
			return -1;
	}
	c->cd = iconv_open("UTF-8", mime_charset_alias(cs));
	return c->cd == (iconv_t)-1 ? -1 : 0;
}

static void mime_conv_close(struct mime_conv *c)
{
	if (c->cd != (iconv_t)-1)
		iconv_close(c->cd);
	c->cd = (iconv_t)-1;
}

static void mime_conv_put(struct mime_conv *c, const void *d, size_t n)
{
	if (!c->full && mime_out(c->out, d, n) < 0)
		c->full = true;
}

/* Converts [in, in+len). Returns the bytes consumed: unless final, an
 * incomplete sequence at the end (under 16 bytes) is left for the caller
 * to hand in again with what follows. */
static size_t mime_conv_run(struct mime_conv *c, const unsigned char *in,
			    size_t len, bool final)
{
	if (c->cd == (iconv_t)-1) {
		size_t i = 0, run = 0;
		while (i < len && !c->full) {
			int l = mime_utf8_seq(in + i, len - i);
			if (l > 0) {
				i += (size_t)l;
				run += (size_t)l;
				continue;
			}
			mime_conv_put(c, in + i - run, run);
			run = 0;
			if (l == 0 && !final)
				return i;
			mime_conv_put(c, "\xef\xbf\xbd", 3);
			if (l == 0)	/* truncated at the very end */
				return len;
			i++;
		}
		mime_conv_put(c, in + i - run, run);
		return len;
	}
	char *ip = (char *)(uintptr_t)in;
	size_t left = len;
	char obuf[4096];

	while (left > 0 && !c->full) {
		char *op = obuf;
		size_t oleft = sizeof(obuf);
		size_t r = iconv(c->cd, &ip, &left, &op, &oleft);
		int err = errno;

		mime_conv_put(c, obuf, sizeof(obuf) - oleft);
		if (r != (size_t)-1 || err == E2BIG)
			continue;
		if (err == EINVAL && !final && left < 16)
			return len - left;
		/* EILSEQ, or a truncated sequence at the end: U+FFFD. */
		mime_conv_put(c, "\xef\xbf\xbd", 3);
		if (err == EINVAL) {
			left = 0;
		} else {
			ip++;
			left--;
		}
	}
	if (final && !c->full) {
		/* Shift sequences back to the initial state (ISO-2022). */
		char *op = obuf;
		size_t oleft = sizeof(obuf);
		(void)iconv(c->cd, NULL, NULL, &op, &oleft);
		mime_conv_put(c, obuf, sizeof(obuf) - oleft);
	}
	return len;
}

int ma_mime_to_utf8(const char *charset, const void *in, size_t len,
		    struct ma_buf *out)
{
	struct mime_conv c;

	if (mime_conv_open(&c, charset, out) < 0)
		return -1;
	(void)mime_conv_run(&c, in, len, true);
	mime_conv_close(&c);
	return c.full ? -1 : 0;
}

/* ---------------- base64, quoted-printable ---------------- */

static int mime_b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

static int mime_hex_val(unsigned char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	return -1;
}

/* Takes decoded bytes; returns how many it consumed (all but a short
 * incomplete character at the end). */
typedef size_t mime_sink_fn(void *ctx, const unsigned char *d, size_t n);

/* Output chunker between decoder and converter. */
struct mime_chunk {
	unsigned char buf[MIME_CHUNK];
	size_t n;
	mime_sink_fn *sink;
	void *ctx;
};

static inline void mime_chunk_put(struct mime_chunk *k, unsigned char b)
{
	k->buf[k->n++] = b;
	if (k->n == sizeof(k->buf)) {
		size_t used = k->sink(k->ctx, k->buf, k->n);
		if (used == 0)
			used = k->n;	/* cannot happen (carry < 16 bytes) */
		memmove(k->buf, k->buf + used, k->n - used);
		k->n -= used;
	}
}

/* RFC 2045 6.8, lenient: characters outside the alphabet (line breaks,
 * spaces, junk) are skipped; '=' ends a quantum; a partial quantum at the
 * end yields the bytes it holds. */
static void mime_b64_decode(const unsigned char *in, size_t len, struct mime_chunk *k)
{
	uint32_t acc = 0;
	unsigned n = 0;

	for (size_t i = 0; i < len; i++) {
		int v = mime_b64_val(in[i]);
		if (v < 0) {
			if (in[i] == '=' && n > 0) {
				if (n >= 2)
					mime_chunk_put(k, (unsigned char)(acc >> (6 * n - 8)));
				if (n == 3)
					mime_chunk_put(k, (unsigned char)(acc >> 2));
				n = 0;
				acc = 0;
			}
			continue;
		}
		acc = (acc << 6) | (uint32_t)v;
		if (++n == 4) {
			mime_chunk_put(k, (unsigned char)(acc >> 16));
			mime_chunk_put(k, (unsigned char)(acc >> 8));
			mime_chunk_put(k, (unsigned char)acc);
			n = 0;
			acc = 0;
		}
	}
	if (n >= 2)
		mime_chunk_put(k, (unsigned char)(acc >> (6 * n - 8)));
	if (n == 3)
		mime_chunk_put(k, (unsigned char)(acc >> 2));
}

/* RFC 2045 6.7: "=XX" (either case), soft line breaks "=" [WSP] CRLF (or
 * bare LF), trailing white space before a line break dropped; a stray "="
 * is kept as it is. Q (RFC 2047 4.2) adds '_' = space. */
static void mime_qp_decode(const unsigned char *in, size_t len, bool q,
			   struct mime_chunk *k)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = in[i];
		if (c == '=') {
			int h, l;
			if (i + 2 < len + 0 && (h = mime_hex_val(in[i + 1])) >= 0 &&
			    (l = mime_hex_val(in[i + 2])) >= 0) {
				mime_chunk_put(k, (unsigned char)(h * 16 + l));
				i += 3;
				continue;
			}
			size_t j = i + 1;
			while (j < len && mime_is_wsp(in[j]))
				j++;
			if (j < len && in[j] == '\r' && j + 1 < len && in[j + 1] == '\n') {
				i = j + 2;
				continue;
			}
			if (j < len && in[j] == '\n') {
				i = j + 1;
				continue;
			}
			if (j == len) {	/* "=" at the very end: soft break */
				i = j;
				continue;
			}
			mime_chunk_put(k, c);
			i++;
			continue;
		}
		if (mime_is_wsp(c)) {
			size_t j = i;
			while (j < len && mime_is_wsp(in[j]))
				j++;
			if (j == len || in[j] == '\n' ||
			    (in[j] == '\r' && j + 1 < len && in[j + 1] == '\n')) {
				i = j;	/* transport padding */
				continue;
			}
			for (; i < j; i++)
				mime_chunk_put(k, in[i]);
			continue;
		}
		mime_chunk_put(k, q && c == '_' ? ' ' : c);
		i++;
	}
}

/* ---------------- bodies ---------------- */

static size_t mime_body_sink(void *ctx, const unsigned char *d, size_t n)
{
	return mime_conv_run(ctx, d, n, false);
}

static size_t mime_raw_sink(void *ctx, const unsigned char *d, size_t n)
{
	struct mime_conv *c = ctx;
	mime_conv_put(c, d, n);
	return n;
}

int ma_mime_decode_body(const struct ma_mime_part *part, const unsigned char *msg,
			struct ma_buf *out)
{
	const unsigned char *body = msg + part->body_offset;
	size_t len = (size_t)part->body_size;
	const char *charset = NULL;
	bool text = part->type != NULL && strcmp(part->type, "text") == 0;
	struct mime_conv c;
	struct mime_chunk *k;

	if (text) {
		for (unsigned i = 0; i < part->n_params; i++)
			if (strcmp(part->params[i].name, "charset") == 0)
				charset = part->params[i].value;
		/* Unknown charset: read as UTF-8 so the output stays valid. */
		if (mime_conv_open(&c, charset, out) < 0)
			(void)mime_conv_open(&c, "utf-8", out);
	} else {
		memset(&c, 0, sizeof(c));
		c.cd = (iconv_t)-1;
		c.out = out;
	}
	k = ma_malloc0(sizeof(*k));
	k->sink = text ? mime_body_sink : mime_raw_sink;
	k->ctx = &c;
	if (part->encoding != NULL && strcmp(part->encoding, "base64") == 0)
		mime_b64_decode(body, len, k);
	else if (part->encoding != NULL &&
		 strcmp(part->encoding, "quoted-printable") == 0)
		mime_qp_decode(body, len, false, k);
	else if (text)
		(void)mime_conv_run(&c, body, len, true);
	else
		(void)mime_raw_sink(&c, body, len);
	if (text)
		(void)mime_conv_run(&c, k->buf, k->n, true);
	else
		(void)mime_raw_sink(&c, k->buf, k->n);
	free(k);
	mime_conv_close(&c);
	return c.full ? -1 : 0;
}

/* ---------------- RFC 2047 encoded-words ---------------- */

struct mime_word {
	char charset[MIME_CHARSET_MAX + 1];
	bool b;			/* B (base64) else Q */
	const char *text;
	size_t text_len;
	const char *end;	/* after "?=" */
};

/* "=?charset[*lang]?B|Q?text?=" at p (RFC 2047 2, RFC 2231 5). */
static bool mime_word_parse(const char *p, struct mime_word *w)
{
	const char *q, *cs_end;

	if (p[0] != '=' || p[1] != '?')
		return false;
	p += 2;
	q = p;
	while (*q != '\0' && *q != '?' && (unsigned char)*q > ' ')
		q++;
	if (*q != '?' || q == p)
		return false;
	cs_end = memchr(p, '*', (size_t)(q - p));
	if (cs_end == NULL)
		cs_end = q;
	if ((size_t)(cs_end - p) > MIME_CHARSET_MAX || cs_end == p)
		return false;
	memcpy(w->charset, p, (size_t)(cs_end - p));
	w->charset[cs_end - p] = '\0';
	q++;
	if ((*q != 'B' && *q != 'b' && *q != 'Q' && *q != 'q') || q[1] != '?')
		return false;
	w->b = *q == 'B' || *q == 'b';
	q += 2;
	w->text = q;
	while (*q != '\0' && *q != '?' && *q != ' ' && *q != '\t' &&
	       *q != '\r' && *q != '\n')
		q++;
	if (q[0] != '?' || q[1] != '=')
		return false;
	w->text_len = (size_t)(q - w->text);
	w->end = q + 2;
	return true;
}

static size_t mime_buf_sink(void *ctx, const unsigned char *d, size_t n)
{
	(void)ma_buf_append(ctx, d, n);
	return n;
}

static bool mime_charset_known(const char *cs)
{
	struct mime_conv c;

	if (mime_conv_open(&c, cs, NULL) < 0)
		return false;
	mime_conv_close(&c);
	return true;
}

struct mime_words_ctx {
	struct ma_buf out;
	struct ma_buf pend;	/* decoded bytes of adjacent words */
	char pend_cs[MIME_CHARSET_MAX + 1];
};

static void mime_words_flush(struct mime_words_ctx *x)
{
	if (ma_buf_len(&x->pend) == 0)
		return;
	if (ma_mime_to_utf8(x->pend_cs, ma_buf_ptr(&x->pend), ma_buf_len(&x->pend),
			    &x->out) < 0) {
		/* Full (charset was checked): what fitted is kept. */
	}
	ma_buf_clear(&x->pend);
}

const char *ma_mime_decode_words(struct ma_arena *a, const char *raw)
{
	struct mime_words_ctx x;
	const char *p = raw, *res;
	bool last_word = false;
	struct mime_chunk *k;
	struct mime_word w;
	char known_cs[MIME_CHARSET_MAX + 1] = "";
	bool known = false;

	if (raw == NULL)
		return NULL;
	if (strstr(raw, "=?") == NULL)
		return ma_arena_strdup(a, raw);
	ma_buf_init(&x.out, MIME_WORDS_OUT_MAX);
	ma_buf_init(&x.pend, MIME_WORDS_OUT_MAX);
	x.pend_cs[0] = '\0';
	k = ma_malloc0(sizeof(*k));
	k->sink = mime_buf_sink;
	k->ctx = &x.pend;

	while (*p != '\0') {
		if (p[0] == '=' && p[1] == '?' && mime_word_parse(p, &w)) {
			if (strcmp(w.charset, known_cs) != 0) {
				snprintf(known_cs, sizeof(known_cs), "%s", w.charset);
				known = mime_charset_known(w.charset);
			}
			if (!known) {
				/* Unknown charset: the word stays as it is. */
				mime_words_flush(&x);
				(void)ma_buf_append(&x.out, p, (size_t)(w.end - p));
				p = w.end;
				last_word = false;
				continue;
			}
			if (strcasecmp(w.charset, x.pend_cs) != 0) {
				mime_words_flush(&x);
				snprintf(x.pend_cs, sizeof(x.pend_cs), "%s", w.charset);
			}
			/* Decoded bytes of one charset are joined before the
			 * conversion: a character may span two words. */
			k->n = 0;
			if (w.b)
				mime_b64_decode((const unsigned char *)w.text, w.text_len, k);
			else
				mime_qp_decode((const unsigned char *)w.text, w.text_len, true, k);
			(void)ma_buf_append(&x.pend, k->buf, k->n);
			p = w.end;
			last_word = true;
			continue;
		}
		if (last_word && (mime_is_wsp((unsigned char)*p) || *p == '\r' || *p == '\n')) {
			/* RFC 2047 6.2: white space between encoded-words is
			 * not displayed. */
			const char *q = p;
			while (mime_is_wsp((unsigned char)*q) || *q == '\r' || *q == '\n')
				q++;
			if (q[0] == '=' && q[1] == '?' && mime_word_parse(q, &w)) {
				if (strcmp(w.charset, known_cs) != 0) {
					snprintf(known_cs, sizeof(known_cs), "%s", w.charset);
					known = mime_charset_known(w.charset);
				}
				if (known) {
					p = q;
					continue;
				}
			}
			mime_words_flush(&x);
			(void)ma_buf_append(&x.out, p, (size_t)(q - p));
			p = q;
			last_word = false;
			continue;
		}
		mime_words_flush(&x);
		last_word = false;
		(void)ma_buf_append(&x.out, p, 1);
		p++;
	}
	mime_words_flush(&x);
	res = ma_arena_strndup(a, (const char *)ma_buf_ptr(&x.out), ma_buf_len(&x.out));
	ma_buf_free(&x.out);
	ma_buf_free(&x.pend);
	free(k);
	return res;
}
