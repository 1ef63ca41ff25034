/*
 * util.c - small helpers (util.h): strict base64 (RFC 4648 section 4, as
 * SASL requires in RFC 4422/4954: no whitespace, padding required, and
 * non-zero pad bits refused so one string has exactly one meaning),
 * secret wiping, bounded decimal parsing, time and randomness.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core-private.h"

static const char util_b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t ma_base64_encoded_len(size_t len)
{
	return (len + 2) / 3 * 4;
}

void ma_base64_encode(const void *data, size_t len, char *out)
{
	const unsigned char *in = data;
	size_t o = 0, i = 0;
	for (; i + 3 <= len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
		out[o++] = util_b64_alphabet[(v >> 18) & 63];
		out[o++] = util_b64_alphabet[(v >> 12) & 63];
		out[o++] = util_b64_alphabet[(v >> 6) & 63];
		out[o++] = util_b64_alphabet[v & 63];
	}
	if (len - i == 1) {
		unsigned v = (unsigned)in[i] << 16;
		out[o++] = util_b64_alphabet[(v >> 18) & 63];
		out[o++] = util_b64_alphabet[(v >> 12) & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
		out[o++] = util_b64_alphabet[(v >> 18) & 63];
		out[o++] = util_b64_alphabet[(v >> 12) & 63];
		out[o++] = util_b64_alphabet[(v >> 6) & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
}

static int util_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long ma_base64_decode(const char *in, size_t len, unsigned char *out)
{
	if (len % 4 != 0 || len / 4 * 3 > (size_t)LONG_MAX)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + k];
			if (c == '=') {
				/* '=' only in the last quantum, only at its end. */
				if (i + 4 != len || k < 2)
					return -1;
				pad++;
				v[k] = 0;
			} else {
				if (pad > 0)
					return -1;
				v[k] = util_b64_value(c);
				if (v[k] < 0)
					return -1;
			}
		}
		unsigned x = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 |
			     (unsigned)v[2] << 6 | (unsigned)v[3];
		/* Non-canonical pad bits: refuse (RFC 4648 section 3.5). */
		if (pad == 2 && (v[1] & 0x0f) != 0)
			return -1;
		if (pad == 1 && (v[2] & 0x03) != 0)
			return -1;
		out[o++] = (unsigned char)(x >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(x >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)x;
	}
	out[o] = '\0';
	return (long)o;
}

void ma_wipe(void *p, size_t len)
{
	if (p != NULL && len > 0)
		explicit_bzero(p, len);
}

bool ma_slice_ieq(const char *s, size_t len, const char *word)
{
	size_t i = 0;
	for (; i < len; i++) {
		unsigned char a = (unsigned char)s[i];
		unsigned char b = (unsigned char)word[i];
		if (b == '\0')
			return false;
		if (a >= 'A' && a <= 'Z')
			a = (unsigned char)(a - 'A' + 'a');
		if (b >= 'A' && b <= 'Z')
			b = (unsigned char)(b - 'A' + 'a');
		if (a != b)
			return false;
	}
	return word[i] == '\0';
}

int ma_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	if (s == NULL || len == 0)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < '0' || c > '9')
			return -1;
		unsigned d = c - '0';
		if (v > max / 10)
			return -1;
		v *= 10;
		if (d > max - v)
			return -1;
		v += d;
	}
	*out = v;
	return 0;
}

double ma_monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ma_random(void *buf, size_t len)
{
	unsigned char *p = buf;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ma_error("getrandom failed: %m");
			abort();
		}
		p += n;
		len -= (size_t)n;
	}
}
