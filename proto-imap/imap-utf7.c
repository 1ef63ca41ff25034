/*
 * imap-utf7.c - modified UTF-7 mailbox names (RFC 3501 section 5.1.3) and
 * the client -> canonical name conversion.
 *
 * Decoding is strict, so that every name has exactly one spelling on the
 * wire and two clients cannot create "different" mailboxes that are the
 * same name: bad base64 characters, non-zero or excess padding bits,
 * unterminated "&" runs, empty "&-" runs other than "&" itself, encoded
 * printable ASCII, two adjacent encoded runs, and broken surrogate pairs
 * are refused. Encoding produces the shortest form.
 */
#include "imap-private.h"

#include <string.h>
#include <strings.h>

static const char imap_b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static int imap_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == ',')
		return 63;
	return -1;
}

/* One UTF-8 sequence at s (len bytes left) -> code point; bytes used or
 * -1 if invalid (overlong, surrogate, > U+10FFFF, truncated). */
static int imap_utf8_get(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t c = s[0], min;
	int n;

	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if ((c & 0xe0) == 0xc0) {
		n = 2; c &= 0x1f; min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3; c &= 0x0f; min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4; c &= 0x07; min = 0x10000;
	} else {
		return -1;
	}
	if (len < (size_t)n)
		return -1;
	for (int i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return -1;
	*cp = c;
	return n;
}

static int imap_utf8_put(struct ma_buf *out, uint32_t c)
{
	unsigned char b[4];
	size_t n;

	if (c < 0x80) {
		b[0] = (unsigned char)c; n = 1;
	} else if (c < 0x800) {
		b[0] = (unsigned char)(0xc0 | (c >> 6));
		b[1] = (unsigned char)(0x80 | (c & 0x3f)); n = 2;
	} else if (c < 0x10000) {
		b[0] = (unsigned char)(0xe0 | (c >> 12));
		b[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
		b[2] = (unsigned char)(0x80 | (c & 0x3f)); n = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | (c >> 18));
		b[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
		b[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
		b[3] = (unsigned char)(0x80 | (c & 0x3f)); n = 4;
	}
	return ma_buf_append(out, b, n);
}

static bool imap_utf7_direct(uint32_t c)
{
	return c >= 0x20 && c <= 0x7e;
}

int imap_utf7_encode(const char *utf8, size_t len, struct ma_buf *out)
{
	const unsigned char *s = (const unsigned char *)utf8;
	size_t i = 0;

	while (i < len) {
		uint32_t c;
		int n = imap_utf8_get(s + i, len - i, &c);

		if (n < 0 || c == 0)
			return -1;
		if (imap_utf7_direct(c)) {
			if (ma_buf_append(out, s + i, 1) < 0)
				return -1;
			if (c == '&' && ma_buf_append(out, "-", 1) < 0)
				return -1;
			i += (size_t)n;
			continue;
		}
		/* a run of characters needing base64: UTF-16BE, 6 bits a char */
		uint32_t bits = 0;
		unsigned nbits = 0;

		if (ma_buf_append(out, "&", 1) < 0)
			return -1;
		while (i < len) {
			uint16_t units[2];
			unsigned nu;

			n = imap_utf8_get(s + i, len - i, &c);
			if (n < 0 || c == 0)
				return -1;
			if (imap_utf7_direct(c))
				break;
			if (c >= 0x10000) {
				c -= 0x10000;
				units[0] = (uint16_t)(0xd800 | (c >> 10));
				units[1] = (uint16_t)(0xdc00 | (c & 0x3ff));
				nu = 2;
			} else {
				units[0] = (uint16_t)c;
				nu = 1;
			}
			for (unsigned u = 0; u < nu; u++) {
				bits = (bits << 16) | units[u];
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					if (ma_buf_append(out, &imap_b64[(bits >> nbits) & 0x3f], 1) < 0)
						return -1;
				}
				bits &= (1u << nbits) - 1;
			}
			i += (size_t)n;
		}
		if (nbits > 0 &&
		    ma_buf_append(out, &imap_b64[(bits << (6 - nbits)) & 0x3f], 1) < 0)
			return -1;
		if (ma_buf_append(out, "-", 1) < 0)
			return -1;
	}
	return 0;
}

int imap_utf7_decode(const char *utf7, size_t len, struct ma_buf *out)
{
	const unsigned char *s = (const unsigned char *)utf7;
	size_t i = 0;
	bool prev_encoded = false;

	while (i < len) {
		unsigned char c = s[i];

		if (c != '&') {
			if (!imap_utf7_direct(c))
				return -1;	/* raw 8-bit or control */
			if (ma_buf_append(out, &c, 1) < 0)
				return -1;
			prev_encoded = false;
			i++;
			continue;
		}
		i++;
		if (i < len && s[i] == '-') {
			if (ma_buf_append(out, "&", 1) < 0)
				return -1;
			prev_encoded = false;
			i++;
			continue;
		}
		/* "&AGE-&AGE-" has the shorter spelling "&AGEAYQ-" */
		if (prev_encoded)
			return -1;
		uint32_t bits = 0, high = 0;
		unsigned nbits = 0, nunits = 0;

		while (i < len && s[i] != '-') {
			int v = imap_b64_value(s[i]);

			if (v < 0)
				return -1;
			bits = (bits << 6) | (uint32_t)v;
			nbits += 6;
			if (nbits >= 16) {
				uint32_t u;

				nbits -= 16;
				u = (bits >> nbits) & 0xffff;
				bits &= (1u << nbits) - 1;
				nunits++;
				if (high != 0) {
					if (u < 0xdc00 || u > 0xdfff)
						return -1;
					u = 0x10000 + ((high - 0xd800) << 10) +
					    (u - 0xdc00);
					high = 0;
				} else if (u >= 0xd800 && u <= 0xdbff) {
					high = u;	/* low half follows */
					u = 0;
				} else if (u >= 0xdc00 && u <= 0xdfff) {
					return -1;
				} else if (imap_utf7_direct(u) || u == 0) {
					/* must have been sent directly */
					return -1;
				}
				if (u != 0 && imap_utf8_put(out, u) < 0)
					return -1;
			}
			i++;
		}
		if (i >= len)
			return -1;	/* unterminated */
		i++;			/* '-' */
		/* at most 5 leftover bits, all zero; no empty run */
		if (nunits == 0 || high != 0 || nbits >= 6 || bits != 0)
			return -1;
		prev_encoded = true;
	}
	return 0;
}

static bool imap_utf8_valid(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint32_t c;
		int n = imap_utf8_get((const unsigned char *)s + i, len - i, &c);

		if (n < 0 || c < 0x20 || c == 0x7f)
			return false;
		i += (size_t)n;
	}
	return true;
}

char *imap_mailbox_from_client(struct imap_session *s, struct ma_arena *a,
			       const char *name, size_t len,
			       struct ma_error_info *err)
{
	struct ma_buf b;
	char *out;

	if (name == NULL || len == 0 || len > 4096) {
		ma_error_set(err, MA_ERR_BADARGS, "Invalid mailbox name");
		return NULL;
	}
	ma_buf_init(&b, len * 2 + 16);
	if (s != NULL && s->utf8_names) {
		/* RFC 6855 section 3: raw UTF-8 names once enabled */
		if (!imap_utf8_valid(name, len) ||
		    ma_buf_append(&b, name, len) < 0) {
			ma_buf_free(&b);
			ma_error_set(err, MA_ERR_BADARGS,
				     "Mailbox name is not valid UTF-8");
			return NULL;
		}
	} else if (imap_utf7_decode(name, len, &b) < 0) {
		ma_buf_free(&b);
		ma_error_set(err, MA_ERR_BADARGS,
			     "Mailbox name is not valid modified UTF-7");
		return NULL;
	}
	out = ma_arena_strndup(a, (const char *)ma_buf_ptr(&b), ma_buf_len(&b));
	ma_buf_free(&b);
	/* RFC 3501 5.1: INBOX is case-insensitive; so is its use as the
	 * first component of a child's name. */
	if (strncasecmp(out, "INBOX", 5) == 0 && (out[5] == '\0' || out[5] == '/'))
		memcpy(out, "INBOX", 5);
	if (ma_store_check_mailbox_name(out, err) < 0)
		return NULL;
	return out;
}
