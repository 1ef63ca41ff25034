/*
 * mime-address.c - ma_mime_parse_addresses(): RFC 5322 3.4 address lists
 * as IMAP ENVELOPE wants them (RFC 3501 7.4.2), with the obsolete forms of
 * RFC 5322 4.4 (route-addr "<@a,@b:u@h>", phrases with dots, CFWS
 * anywhere, empty list elements).
 *
 * Decisions (docs/mime.md):
 *  - name: the display name with quotes removed and quoted-pairs undone,
 *    words joined by one space; encoded-words are kept raw. With no
 *    display name, the text of a comment in the address is used
 *    ("u@h (Real Name)"), as Dovecot and most clients do. NULL if none.
 *  - A local part with no '@' gets host "MISSING_DOMAIN"; "<@host>" gets
 *    mailbox "MISSING_MAILBOX" (Dovecot's convention: RFC 3501 reserves
 *    NIL host for group syntax, so it cannot mean "missing").
 *  - "<>" (null path) gives mailbox "" and host "".
 *  - Groups: "name:" gives (mailbox = name, host = NULL), ";" (or the end
 *    of the list) gives all NULL.
 *  - At most MIME_ADDRESSES_MAX addresses; the rest are dropped.
 */
#include <string.h>

#include "core-private.h"
#include "mime-private.h"

#define MIME_ADDRESSES_MAX 4096

enum mime_tok { T_END, T_ATOM, T_QUOTED, T_DLIT, T_SPECIAL };

struct mime_alex {
	const char *p;
	const char *comment;	/* last comment's text (without parens) */
	size_t comment_len;
	/* current token */
	enum mime_tok t;
	const char *s;
	size_t len;
	char c;			/* T_SPECIAL */
	bool space_before;	/* white space or a comment precedes it */
};

static void mime_alex_cfws(struct mime_alex *lx)
{
	const char *p = lx->p;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (*p != '(')
			break;
		const char *start = p + 1;
		int depth = 0;
		for (; *p != '\0'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0)
				break;
		}
		lx->comment = start;
		lx->comment_len = (size_t)(p - start);
		if (*p == ')')
			p++;
	}
	lx->p = p;
}

static bool mime_addr_special(char c)
{
	return strchr("<>@,:;.[]()\"\\", c) != NULL;
}

static void mime_alex_next(struct mime_alex *lx)
{
	const char *p;

	p = lx->p;
	mime_alex_cfws(lx);
	lx->space_before = lx->p != p;
	p = lx->p;
	lx->s = p;
	if (*p == '\0') {
		lx->t = T_END;
		lx->len = 0;
		return;
	}
	if (*p == '"') {
		for (p++; *p != '\0' && *p != '"'; p++)
			if (*p == '\\' && p[1] != '\0')
				p++;
		if (*p == '"')
			p++;
		lx->t = T_QUOTED;
	} else if (*p == '[') {
		while (*p != '\0' && *p != ']')
			p++;
		if (*p == ']')
			p++;
		lx->t = T_DLIT;
	} else if (mime_addr_special(*p)) {
		lx->t = T_SPECIAL;
		lx->c = *p++;
	} else {
		while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\r' &&
		       *p != '\n' && !mime_addr_special(*p))
			p++;
		lx->t = T_ATOM;
	}
	lx->len = (size_t)(p - lx->s);
	lx->p = p;
}

static bool mime_alex_is(const struct mime_alex *lx, char c)
{
	return lx->t == T_SPECIAL && lx->c == c;
}

/* Display-name text: quotes off, quoted-pairs undone, one space where
 * white space or a comment stood between words. */
static void mime_name_add(struct ma_buf *b, const struct mime_alex *lx)
{
	if (ma_buf_len(b) > 0 && lx->space_before)
		(void)ma_buf_append(b, " ", 1);
	if (lx->t == T_SPECIAL) {
		(void)ma_buf_append(b, &lx->c, 1);
		return;
	}
	if (lx->t == T_QUOTED) {
		const char *q = lx->s + 1, *e = lx->s + lx->len;
		if (e > q && e[-1] == '"')
			e--;
		for (; q < e; q++) {
			if (*q == '\\' && q + 1 < e)
				q++;
			if (*q == '\r' || *q == '\n')
				continue;
			(void)ma_buf_append(b, q, 1);
		}
		return;
	}
	(void)ma_buf_append(b, lx->s, lx->len);
}

struct mime_alist {
	struct ma_arena *a;
	struct ma_mime_address *v;
	unsigned n, alloc;
};

static void mime_alist_add(struct mime_alist *l, const char *name, const char *adl,
			   const char *mailbox, const char *host)
{
	if (l->n >= MIME_ADDRESSES_MAX)
		return;
	if (l->n == l->alloc) {
		unsigned na = l->alloc == 0 ? 8 : l->alloc * 2;
		struct ma_mime_address *nv = ma_arena_alloc(l->a, na * sizeof(*nv));
		if (l->n > 0)
			memcpy(nv, l->v, l->n * sizeof(*nv));
		l->v = nv;
		l->alloc = na;
	}
	l->v[l->n].name = name;
	l->v[l->n].adl = adl;
	l->v[l->n].mailbox = mailbox;
	l->v[l->n].host = host;
	l->n++;
}

static const char *mime_buf_str(struct ma_arena *a, const struct ma_buf *b)
{
	return ma_arena_strndup(a, (const char *)ma_buf_ptr(b), ma_buf_len(b));
}

/* Collects a domain (atoms, dots, literals) up to a stop token. */
static const char *mime_addr_domain(struct ma_arena *a, struct mime_alex *lx,
				    struct ma_buf *b)
{
	ma_buf_clear(b);
	while (lx->t == T_ATOM || lx->t == T_DLIT || mime_alex_is(lx, '.')) {
		(void)ma_buf_append(b, lx->s, lx->len);
		mime_alex_next(lx);
	}
	return ma_buf_len(b) > 0 ? mime_buf_str(a, b) : "MISSING_DOMAIN";
}

/* Local part: atoms, quoted strings (kept quoted) and dots. */
static void mime_addr_local(struct mime_alex *lx, struct ma_buf *b)
{
	while (lx->t == T_ATOM || lx->t == T_QUOTED || mime_alex_is(lx, '.')) {
		(void)ma_buf_append(b, lx->s, lx->len);
		mime_alex_next(lx);
	}
}

unsigned ma_mime_parse_addresses(struct ma_arena *a, const char *raw,
				 struct ma_mime_address **out_r)
{
	struct mime_alist l = { .a = a };
	struct mime_alex lx;
	struct ma_buf name, local, tmp;
	bool in_group = false;

	*out_r = NULL;
	if (raw == NULL)
		return 0;
	memset(&lx, 0, sizeof(lx));
	lx.p = raw;
	ma_buf_init(&name, MIME_FIELD_MAX);
	ma_buf_init(&local, MIME_FIELD_MAX);
	ma_buf_init(&tmp, MIME_FIELD_MAX);
	mime_alex_next(&lx);

	while (lx.t != T_END) {
		ma_buf_clear(&name);
		ma_buf_clear(&local);
		lx.comment = NULL;
		/* A phrase, or the local part of a bare addr-spec: both. */
		while (lx.t == T_ATOM || lx.t == T_QUOTED || mime_alex_is(&lx, '.')) {
			mime_name_add(&name, &lx);
			(void)ma_buf_append(&local, lx.s, lx.len);
			mime_alex_next(&lx);
		}
		const char *nm = ma_buf_len(&name) > 0 ? mime_buf_str(a, &name) : NULL;

		if (mime_alex_is(&lx, ':') && !in_group) {
			mime_alist_add(&l, NULL, NULL, nm != NULL ? nm : "", NULL);
			in_group = true;
			mime_alex_next(&lx);
			continue;
		}
		if (mime_alex_is(&lx, '<')) {
			const char *adl = NULL, *mbox, *host;

			mime_alex_next(&lx);
			if (mime_alex_is(&lx, '@')) {
				/* obs-route: "@a,@b:"; without the ':' it
				 * was "<@host>": read that again below. */
				struct mime_alex save = lx;
				ma_buf_clear(&tmp);
				while (lx.t != T_END && !mime_alex_is(&lx, ':') &&
				       !mime_alex_is(&lx, '>')) {
					(void)ma_buf_append(&tmp, lx.s, lx.len);
					mime_alex_next(&lx);
				}
				if (mime_alex_is(&lx, ':')) {
					adl = mime_buf_str(a, &tmp);
					mime_alex_next(&lx);
				} else {
					lx = save;
				}
			}
			ma_buf_clear(&local);
			mime_addr_local(&lx, &local);
			if (mime_alex_is(&lx, '@')) {
				mime_alex_next(&lx);
				mbox = ma_buf_len(&local) > 0 ? mime_buf_str(a, &local) :
					"MISSING_MAILBOX";
				host = mime_addr_domain(a, &lx, &tmp);
			} else if (ma_buf_len(&local) == 0) {
				mbox = "";	/* "<>" */
				host = "";
			} else {
				mbox = mime_buf_str(a, &local);
				host = "MISSING_DOMAIN";
			}
			/* Skip anything else up to '>'. */
			while (lx.t != T_END && !mime_alex_is(&lx, '>'))
				mime_alex_next(&lx);
			if (mime_alex_is(&lx, '>'))
				mime_alex_next(&lx);
			if (nm == NULL && lx.comment != NULL)
				nm = ma_arena_strndup(a, lx.comment, lx.comment_len);
			mime_alist_add(&l, nm, adl, mbox, host);
		} else if (mime_alex_is(&lx, '@')) {
			const char *mbox = ma_buf_len(&local) > 0 ?
				mime_buf_str(a, &local) : "MISSING_MAILBOX";
			mime_alex_next(&lx);
			const char *host = mime_addr_domain(a, &lx, &tmp);
			const char *cname = lx.comment != NULL ?
				ma_arena_strndup(a, lx.comment, lx.comment_len) : NULL;
			mime_alist_add(&l, cname, NULL, mbox, host);
		} else if (ma_buf_len(&local) > 0) {
			/* "user" alone: no domain. */
			const char *cname = lx.comment != NULL ?
				ma_arena_strndup(a, lx.comment, lx.comment_len) : NULL;
			mime_alist_add(&l, cname, NULL, mime_buf_str(a, &local),
				       "MISSING_DOMAIN");
		}
		/* Up to the next ',' or ';' (junk is skipped). */
		while (lx.t != T_END && !mime_alex_is(&lx, ',') && !mime_alex_is(&lx, ';'))
			mime_alex_next(&lx);
		if (mime_alex_is(&lx, ';')) {
			if (in_group)
				mime_alist_add(&l, NULL, NULL, NULL, NULL);
			in_group = false;
		}
		if (lx.t != T_END)
			mime_alex_next(&lx);
	}
	if (in_group)
		mime_alist_add(&l, NULL, NULL, NULL, NULL);
	ma_buf_free(&name);
	ma_buf_free(&local);
	ma_buf_free(&tmp);
	*out_r = l.v;
	return l.n;
}
