/*
 * mime-parse.c - header-level pieces of the MIME parser: unfolding a field
 * value, ma_mime_header_get(), and the Content-Type / Content-Disposition
 * parameter grammar (RFC 2045 5.1, RFC 2183, RFC 2231).
 *
 * Parameters are parsed leniently: comments in parentheses are skipped
 * anywhere white space may stand, quoted strings are unescaped, and an
 * unquoted value runs to the next ';' or white space (real mailers send
 * "boundary=----=_Part_1" without quotes although '=' is a tspecial).
 *
 * RFC 2231 (decision, matching Dovecot's rfc2231_parse()): continuations
 * "name*0", "name*1", ... are joined in order into one parameter. When the
 * first section is extended ("name*0*" or "name*") the joined value stays
 * in the RFC 2231 encoded form "charset'language'%xx..." - IMAP
 * BODYSTRUCTURE sends parameter values as they were, and mime.h promises
 * "charset prefix kept as sent" - and the parameter's name keeps a trailing
 * '*' ("filename*") so a reader can tell an encoded value from a plain one.
 * If any section is extended the whole value is (an empty "''" prefix is
 * added when section 0 had none) and '%' in plain sections becomes "%25",
 * so the joined value decodes consistently - Dovecot's output exactly.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core-private.h"
#include "mime-private.h"

char *mime_lower(char *s)
{
	for (char *p = s; p != NULL && *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p + ('a' - 'A'));
	return s;
}

char *mime_unfold(struct ma_arena *a, const unsigned char *p, size_t len)
{
	size_t i = 0, j, out_len = 0;
	char *out;

	/* Leading white space (and folds) after the colon are not content. */
	while (i < len && (mime_is_wsp(p[i]) || p[i] == '\r' || p[i] == '\n'))
		i++;
	while (len > i && (mime_is_wsp(p[len - 1]) || p[len - 1] == '\r' ||
			   p[len - 1] == '\n'))
		len--;
	j = len - i;
	if (j > MIME_FIELD_MAX)
		j = MIME_FIELD_MAX;
	out = ma_arena_alloc(a, j + 1);
	for (; i < len && out_len < MIME_FIELD_MAX; i++) {
		/* RFC 5322 2.2.3: unfolding removes the CRLF before WSP. */
		if (p[i] == '\n')
			continue;
		if (p[i] == '\r' && i + 1 < len && p[i + 1] == '\n')
			continue;
		out[out_len++] = (char)p[i];
	}
	out[out_len] = '\0';
	return out;
}

const char *ma_mime_header_get(struct ma_arena *a, const unsigned char *hdr,
			       size_t len, const char *name)
{
	size_t pos = 0, name_len = strlen(name);

	while (pos < len) {
		size_t fstart = pos, fend, colon, nend;
		const unsigned char *lf;

		if (hdr[pos] == '\n' || (hdr[pos] == '\r' && pos + 1 < len &&
					 hdr[pos + 1] == '\n'))
			break;	/* the empty line ends the header */
		/* The field runs to the first line end not followed by WSP. */
		fend = pos;
		for (;;) {
			lf = memchr(hdr + fend, '\n', len - fend);
			fend = lf == NULL ? len : (size_t)(lf - hdr) + 1;
			if (fend >= len || !mime_is_wsp(hdr[fend]))
				break;
		}
		pos = fend;
		if (mime_is_wsp(hdr[fstart]))
			continue;	/* continuation without a field */
		lf = memchr(hdr + fstart, ':', fend - fstart);
		if (lf == NULL)
			continue;
		colon = (size_t)(lf - hdr);
		nend = colon;
		while (nend > fstart && mime_is_wsp(hdr[nend - 1]))
			nend--;	/* obsolete "Name :" (RFC 5322 4.5) */
		if (nend - fstart == name_len &&
		    strncasecmp((const char *)hdr + fstart, name, name_len) == 0)
			return mime_unfold(a, hdr + colon + 1, fend - colon - 1);
	}
	return NULL;
}

/* ---------------- parameter grammar ---------------- */

const char *mime_skip_cfws(const char *p)
{
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (*p != '(')
			return p;
		/* RFC 5322 3.2.2 comment, nested, with quoted-pairs; an
		 * unterminated comment runs to the end. */
		int depth = 0;
		for (; *p != '\0'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0) {
				p++;
				break;
			}
		}
	}
}

static bool mime_is_tspecial(char c)
{
	return strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

/* A token (RFC 2045 5.1): returns its end. */
static const char *mime_token_end(const char *p)
{
	while (*p != '\0' && (unsigned char)*p > ' ' && (unsigned char)*p != 0x7f &&
	       !mime_is_tspecial(*p))
		p++;
	return p;
}

struct mime_rawparam {
	char *name;	/* lower case, with any "*N" / "*" still on it */
	char *value;
};

/* Reads a value at p (quoted string or lenient token); *end_r after it. */
static char *mime_read_value(struct ma_arena *a, const char *p, const char **end_r)
{
	if (*p == '"') {
		size_t n = 0;
		const char *q = p + 1;
		char *out;

		/* Size first so the copy is exact. */
		for (const char *r = q; *r != '\0' && *r != '"'; r++, n++)
			if (*r == '\\' && r[1] != '\0')
				r++;
		out = ma_arena_alloc(a, n + 1);
		n = 0;
		for (; *q != '\0' && *q != '"'; q++) {
			if (*q == '\\' && q[1] != '\0')
				q++;
			if (*q == '\r' || *q == '\n')
				continue;
			out[n++] = *q;
		}
		out[n] = '\0';
		if (*q == '"')
			q++;
		*end_r = q;
		return out;
	}
	const char *q = p;
	while (*q != '\0' && *q != ';' && *q != ' ' && *q != '\t' &&
	       *q != '\r' && *q != '\n' && *q != '(' && *q != '"')
		q++;
	*end_r = q;
	return ma_arena_strndup(a, p, (size_t)(q - p));
}

/* Joins RFC 2231 sections and copies plain parameters. */
static unsigned mime_join_2231(struct ma_arena *a, struct mime_rawparam *raw,
			       unsigned n_raw, struct ma_mime_param *out)
{
	unsigned n_out = 0;
	bool *used = ma_arena_alloc(a, n_raw + 1);

	for (unsigned i = 0; i < n_raw; i++) {
		char *star = strchr(raw[i].name, '*');

		if (used[i])
			continue;
		if (star == NULL) {
			out[n_out].name = raw[i].name;
			out[n_out++].value = raw[i].value;
			used[i] = true;
			continue;
		}
		size_t base_len = (size_t)(star - raw[i].name);
		if (strcmp(star, "*") == 0) {
			/* name*=charset'lang'value: one extended section. */
			out[n_out].name = raw[i].name;
			out[n_out++].value = raw[i].value;
			used[i] = true;
			continue;
		}
		/* name*N or name*N*: find sections 0, 1, 2 ... in order. */
		unsigned order[MIME_PARAMS_MAX], n_order = 0;
		bool ext_at[MIME_PARAMS_MAX], extended = false, any;
		struct ma_buf b;

		for (unsigned idx = 0; idx < MIME_PARAMS_MAX; idx++) {
			unsigned k;

			for (k = 0; k < n_raw; k++) {
				const char *s = raw[k].name;
				char *endp;

				if (used[k] || strncmp(s, raw[i].name, base_len) != 0 ||
				    s[base_len] != '*' || s[base_len + 1] < '0' ||
				    s[base_len + 1] > '9')
					continue;
				if (strtoul(s + base_len + 1, &endp, 10) != idx ||
				    (*endp != '\0' && strcmp(endp, "*") != 0))
					continue;
				ext_at[n_order] = *endp == '*';
				extended = extended || ext_at[n_order];
				order[n_order++] = k;
				used[k] = true;
				break;
			}
			if (k == n_raw)
				break;
		}
		any = n_order > 0;
		/* Any extended section makes the whole value extended (as
		 * Dovecot): an empty charset'lang' prefix when section 0 had
		 * none, and '%' in plain sections escaped so it decodes back. */
		ma_buf_init(&b, MIME_FIELD_MAX);
		if (extended && !ext_at[0])
			(void)ma_buf_append(&b, "''", 2);
		for (unsigned j = 0; j < n_order; j++) {
			const char *v = raw[order[j]].value;
			if (!extended || ext_at[j]) {
				(void)ma_buf_append(&b, v, strlen(v));
				continue;
			}
			for (; *v != '\0'; v++) {
				if (*v == '%')
					(void)ma_buf_append(&b, "%25", 3);
				else
					(void)ma_buf_append(&b, v, 1);
			}
		}
		if (!any) {
			/* "name*x" or sections not starting at 0: keep raw. */
			out[n_out].name = raw[i].name;
			out[n_out++].value = raw[i].value;
			used[i] = true;
			ma_buf_free(&b);
			continue;
		}
		char *name = ma_arena_alloc(a, base_len + 2);
		memcpy(name, raw[i].name, base_len);
		if (extended)
			name[base_len] = '*';
		out[n_out].name = name;
		out[n_out++].value = ma_arena_strndup(a, (const char *)ma_buf_ptr(&b),
						      ma_buf_len(&b));
		ma_buf_free(&b);
		/* Sections after a gap stay as they were sent. */
		for (unsigned k = 0; k < n_raw; k++) {
			if (!used[k] && strncmp(raw[k].name, raw[i].name, base_len) == 0 &&
			    raw[k].name[base_len] == '*' && raw[k].name[base_len + 1] >= '0' &&
			    raw[k].name[base_len + 1] <= '9') {
				out[n_out].name = raw[k].name;
				out[n_out++].value = raw[k].value;
				used[k] = true;
			}
		}
	}
	return n_out;
}

void mime_parse_ctype(struct ma_arena *a, const char *value, const char **type_r,
		      const char **subtype_r, struct ma_mime_param **params_r,
		      unsigned *n_params_r)
{
	struct mime_rawparam raw[MIME_PARAMS_MAX];
	unsigned n_raw = 0;
	const char *p = mime_skip_cfws(value), *e;

	*type_r = NULL;
	if (subtype_r != NULL)
		*subtype_r = NULL;
	*params_r = NULL;
	*n_params_r = 0;

	e = mime_token_end(p);
	if (e > p)
		*type_r = mime_lower(ma_arena_strndup(a, p, (size_t)(e - p)));
	p = mime_skip_cfws(e);
	if (subtype_r != NULL && *p == '/') {
		p = mime_skip_cfws(p + 1);
		e = mime_token_end(p);
		if (e > p)
			*subtype_r = mime_lower(ma_arena_strndup(a, p, (size_t)(e - p)));
		p = mime_skip_cfws(e);
	}
	/* Parameters: anything unexpected skips to the next ';'. */
	while (*p != '\0' && n_raw < MIME_PARAMS_MAX) {
		if (*p != ';') {
			while (*p != '\0' && *p != ';') {
				if (*p == '"') {
					(void)mime_read_value(a, p, &p);
					continue;
				}
				p++;
			}
			if (*p == '\0')
				break;
		}
		p = mime_skip_cfws(p + 1);
		e = mime_token_end(p);
		/* RFC 2231 names carry '*', which is a token char anyway. */
		if (e == p)
			continue;
		const char *name_start = p, *name_end = e;
		p = mime_skip_cfws(e);
		if (*p != '=')
			continue;
		p = mime_skip_cfws(p + 1);
		raw[n_raw].name = mime_lower(ma_arena_strndup(a, name_start,
						(size_t)(name_end - name_start)));
		raw[n_raw].value = mime_read_value(a, p, &p);
		n_raw++;
		p = mime_skip_cfws(p);
	}
	if (n_raw == 0)
		return;
	*params_r = ma_arena_alloc(a, n_raw * sizeof(**params_r));
	*n_params_r = mime_join_2231(a, raw, n_raw, *params_r);
}
