/*
 * lmtp-proto.c - the pure parts of LMTP (RFC 2033 on RFC 5321): DATA
 * dot-unstuffing with line-end normalisation, MAIL/RCPT path parsing,
 * MAIL parameters, recipient detail splitting. No I/O, no core: the
 * unit test feeds these byte by byte.
 */
#include "lmtp-private.h"

#include <string.h>
#include <strings.h>

static void lmtp_out(struct lmtp_dot *d, struct ma_buf *out, const void *p,
		     size_t n)
{
	if (d->overflow || n == 0)
		return;
	if (ma_buf_append(out, p, n) < 0)
		d->overflow = true;	/* keep reading to the end, store nothing */
}

size_t lmtp_dot_feed(struct lmtp_dot *d, const unsigned char *p, size_t len,
		     struct ma_buf *out, bool *done)
{
	size_t i = 0;

	*done = false;
	while (i < len) {
		unsigned char c = p[i];

		switch (d->state) {
		case LMTP_DOT_BOL:
			if (c == '.') {
				d->state = LMTP_DOT_DOT;
				i++;
				continue;
			}
			d->state = LMTP_DOT_MID;
			continue;	/* handle c in MID */
		case LMTP_DOT_DOT:
			if (c == '\r') {
				d->state = LMTP_DOT_DOTCR;
				i++;
				continue;
			}
			if (c == '\n') {
				d->state = LMTP_DOT_BOL;
				*done = true;
				return i + 1;
			}
			/* a stuffed dot: drop it (RFC 5321 4.5.2) */
			d->state = LMTP_DOT_MID;
			continue;
		case LMTP_DOT_DOTCR:
			if (c == '\n') {
				d->state = LMTP_DOT_BOL;
				*done = true;
				return i + 1;
			}
			/* ".\rX": the dot was stuffing, the CR is data */
			d->state = LMTP_DOT_CR;
			i++;
			if (c == '\r') {
				lmtp_out(d, out, "\r", 1);
				continue;
			}
			lmtp_out(d, out, "\r", 1);
			lmtp_out(d, out, &c, 1);
			d->state = LMTP_DOT_MID;
			continue;
		case LMTP_DOT_MID: {
			size_t j = i;

			while (j < len && p[j] != '\r' && p[j] != '\n')
				j++;
			lmtp_out(d, out, p + i, j - i);
			i = j;
			if (i == len)
				break;
			if (p[i] == '\r') {
				d->state = LMTP_DOT_CR;
			} else {
				lmtp_out(d, out, "\r\n", 2);	/* bare LF */
				d->state = LMTP_DOT_BOL;
			}
			i++;
			continue;
		}
		case LMTP_DOT_CR:
			i++;
			if (c == '\n') {
				lmtp_out(d, out, "\r\n", 2);
				d->state = LMTP_DOT_BOL;
			} else if (c == '\r') {
				lmtp_out(d, out, "\r", 1);
			} else {
				lmtp_out(d, out, "\r", 1);
				lmtp_out(d, out, &c, 1);
				d->state = LMTP_DOT_MID;
			}
			continue;
		}
	}
	return i;
}

/* RFC 5321 4.1.2 Mailbox, leniently: printable ASCII or UTF-8 (RFC 6531
 * style) without spaces, controls or angle brackets; quoted local parts
 * are kept as they are. */
static bool lmtp_addr_ok(const char *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];

		if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
			return false;
	}
	return true;
}

int lmtp_parse_path(const char *arg, const char *prefix, bool allow_empty,
		    char *addr, const char **params_r)
{
	size_t plen = strlen(prefix);
	const char *p, *end;

	if (strncasecmp(arg, prefix, plen) != 0)
		return -1;
	p = arg + plen;
	while (*p == ' ')	/* "FROM: <a>" is common in the wild */
		p++;
	if (*p != '<')
		return -1;
	p++;
	end = strchr(p, '>');
	if (end == NULL)
		return -1;
	/* RFC 5321 4.1.2 source routes "@a,@b:user@c": ignore the route */
	if (*p == '@') {
		const char *colon = memchr(p, ':', (size_t)(end - p));

		if (colon == NULL)
			return -1;
		p = colon + 1;
	}
	size_t n = (size_t)(end - p);
	if (n == 0 && !allow_empty)
		return -1;
	if (n > LMTP_PATH_MAX || !lmtp_addr_ok(p, n))
		return -1;
	memcpy(addr, p, n);
	addr[n] = '\0';
	p = end + 1;
	if (*p != '\0' && *p != ' ')
		return -1;
	while (*p == ' ')
		p++;
	*params_r = p;
	return 0;
}

int lmtp_split_detail(const char *addr, const char *delims, char *user,
		      size_t usize, char *detail, size_t dsize)
{
	const char *at = strrchr(addr, '@');
	size_t local_len = at != NULL ? (size_t)(at - addr) : strlen(addr);
	size_t cut = local_len;

	if (delims[0] != '\0') {
		for (size_t i = 0; i < local_len; i++) {
			if (strchr(delims, addr[i]) != NULL) {
				cut = i;
				break;
			}
		}
	}
	size_t dlen = cut < local_len ? local_len - cut - 1 : 0;
	size_t rest = at != NULL ? strlen(at) : 0;
	if (cut + rest + 1 > usize || dlen + 1 > dsize)
		return -1;
	memcpy(user, addr, cut);
	if (rest > 0)
		memcpy(user + cut, at, rest);
	user[cut + rest] = '\0';
	if (dlen > 0)
		memcpy(detail, addr + cut + 1, dlen);
	detail[dlen] = '\0';
	return 0;
}

int lmtp_parse_mail_params(const char *params, uint64_t *size_r,
			   const char **bad_r)
{
	const char *p = params;

	*size_r = 0;
	*bad_r = NULL;
	while (*p != '\0') {
		const char *e = strchr(p, ' ');
		size_t n = e != NULL ? (size_t)(e - p) : strlen(p);

		if (n > 5 && strncasecmp(p, "SIZE=", 5) == 0) {
			if (ma_parse_uint(p + 5, n - 5, UINT64_MAX / 2, size_r) < 0) {
				*bad_r = "SIZE";
				return -1;
			}
		} else if (ma_slice_ieq(p, n, "BODY=7BIT") ||
			   ma_slice_ieq(p, n, "BODY=8BITMIME")) {
			/* we store octets as they come: nothing to do */
		} else {
			*bad_r = p;
			return -1;
		}
		p += n;
		while (*p == ' ')
			p++;
	}
	return 0;
}
