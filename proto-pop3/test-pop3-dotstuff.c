/*
 * test-pop3-dotstuff.c - RETR/TOP streaming: byte-stuffing against a
 * simple reference, with an output that fills up every few bytes (so a
 * pause lands on every position, including between "\r\n" and "."), the
 * 16 KB chunk edges, bodies without a final CRLF, zero copy, a 10 MB
 * message, and where TOP stops.
 */
#include "pop3-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		failures++; \
		printf("FAIL %s:%d: ", __FILE__, __LINE__); \
		printf(__VA_ARGS__); \
		printf("\n"); \
	} \
} while (0)

struct sink {
	unsigned char *buf;
	size_t len, cap;
	size_t since_drain;	/* bytes since the last "drain" */
	size_t full_at;		/* full() once since_drain >= this (0: never) */
	const unsigned char *msg;
	size_t msg_size;
	unsigned bad_pointer, big_write;
};

static int sink_write(void *ctx, const void *data, size_t len)
{
	struct sink *k = ctx;
	const unsigned char *p = data;

	/* message bytes must come straight from the message (zero copy);
	 * only "." and the terminator come from elsewhere */
	if (len > 5 && (p < k->msg || p + len > k->msg + k->msg_size))
		k->bad_pointer++;
	if (len > POP3_STREAM_CHUNK)
		k->big_write++;
	if (k->len + len > k->cap) {
		k->cap = (k->len + len) * 2;
		k->buf = realloc(k->buf, k->cap);
		if (k->buf == NULL)
			abort();
	}
	memcpy(k->buf + k->len, data, len);
	k->len += len;
	k->since_drain += len;
	return 0;
}

static bool sink_full(void *ctx)
{
	struct sink *k = ctx;

	return k->full_at != 0 && k->since_drain >= k->full_at;
}

/* Reference: stuffed copy + terminator, byte by byte. */
static unsigned char *reference(const unsigned char *m, size_t n, size_t *len_r)
{
	unsigned char *out = malloc(n * 2 + 8);
	size_t o = 0;
	bool start = true;

	for (size_t i = 0; i < n; i++) {
		if (start && m[i] == '.')
			out[o++] = '.';
		out[o++] = m[i];
		start = m[i] == '\n';
	}
	if (n > 0 && !(n >= 2 && m[n - 2] == '\r' && m[n - 1] == '\n')) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	memcpy(out + o, ".\r\n", 3);
	*len_r = o + 3;
	return out;
}

static void check_stream(const char *name, const unsigned char *m, size_t n,
			 size_t full_at)
{
	struct pop3_dotstuff ds;
	struct sink k = { .full_at = full_at, .msg = m, .msg_size = n };
	size_t ref_len;
	unsigned char *ref = reference(m, n, &ref_len);
	unsigned rounds = 0;
	int ret;

	pop3_dotstuff_init(&ds, m, n);
	while ((ret = pop3_dotstuff_run(&ds, sink_write, sink_full, &k)) == 0) {
		/* parked: the output "drains" */
		k.since_drain = 0;
		if (++rounds > n * 4 + 100) {
			CHECK(0, "%s: no progress", name);
			break;
		}
	}
	CHECK(ret == 1, "%s: ret %d", name, ret);
	CHECK(k.len == ref_len && memcmp(k.buf, ref, ref_len) == 0,
	      "%s (full_at=%zu): output differs (got %zu bytes, want %zu)",
	      name, full_at, k.len, ref_len);
	CHECK(k.bad_pointer == 0, "%s: %u writes not from the message", name,
	      k.bad_pointer);
	CHECK(k.big_write == 0, "%s: write over chunk size", name);
	/* finished stays finished */
	CHECK(pop3_dotstuff_run(&ds, sink_write, sink_full, &k) == 1 &&
	      k.len == ref_len, "%s: second run wrote more", name);
	free(ref);
	free(k.buf);
}

static void check_all_pauses(const char *name, const char *m)
{
	size_t n = strlen(m);

	check_stream(name, (const unsigned char *)m, n, 0);
	for (size_t f = 1; f <= n + 6; f++)
		check_stream(name, (const unsigned char *)m, n, f);
}

static void test_small(void)
{
	check_all_pauses("plain", "Subject: x\r\n\r\nhello\r\n");
	check_all_pauses("dots", ".\r\n..\r\n.x\r\nA.\r\n\r\n.\r\n");
	check_all_pauses("dotfirst", ".leading\r\nbody\r\n");
	check_all_pauses("noeol", "a\r\nb");
	check_all_pauses("noeol-dot", "a\r\n.");
	check_all_pauses("lf-only", "a\n.b\n");
	check_all_pauses("cr-end", "a\r\nb\r");
	check_all_pauses("empty", "");
	check_all_pauses("just-dot", ".");
	check_all_pauses("crlf-dot-crlf", "x\r\n.\r\ny\r\n");
}

static void test_chunk_edges(void)
{
	size_t n = POP3_STREAM_CHUNK * 3 + 10;
	unsigned char *m = malloc(n);

	/* "\r\n." straddling each chunk edge in every alignment */
	for (int shift = -3; shift <= 2; shift++) {
		memset(m, 'x', n);
		for (size_t edge = POP3_STREAM_CHUNK; edge < n - 4;
		     edge += POP3_STREAM_CHUNK) {
			size_t at = (size_t)((long)edge + shift);

			m[at] = '\r';
			m[at + 1] = '\n';
			m[at + 2] = '.';
		}
		memcpy(m + n - 2, "\r\n", 2);
		check_stream("edges", m, n, 0);
		check_stream("edges-full7", m, n, 7);
		check_stream("edges-full-chunk", m, n, POP3_STREAM_CHUNK);
		check_stream("edges-full-chunk+1", m, n, POP3_STREAM_CHUNK + 1);
	}
	free(m);
}

static void test_10mb(void)
{
	size_t n = 10 * 1024 * 1024;
	unsigned char *m = malloc(n);
	unsigned seed = 7;
	size_t i = 0;

	/* lines of random length; many start with '.', 8-bit bytes too */
	while (i < n) {
		seed = seed * 1103515245u + 12345u;
		size_t len = (seed >> 16) % 200;
		bool dot = ((seed >> 8) & 3) == 0;

		for (size_t k = 0; k < len && i < n; k++) {
			seed = seed * 1103515245u + 12345u;
			m[i++] = (k == 0 && dot) ? '.' :
				(unsigned char)(0x20 + (seed >> 16) % 0xd0);
			if (m[i - 1] == '\r' || m[i - 1] == '\n')
				m[i - 1] = 'z';
		}
		if (i + 2 <= n) {
			m[i++] = '\r';
			m[i++] = '\n';
		} else {
			while (i < n)
				m[i++] = '.';	/* ends without CRLF */
		}
	}
	check_stream("10MB", m, n, 0);
	check_stream("10MB-full-256k", m, n, 256 * 1024);
	check_stream("10MB-full-4093", m, n, 4093);
	free(m);
}

static void test_top(void)
{
	const char *m = "A: 1\r\nB: 2\r\n\r\nl1\r\n.l2\r\nl3\r\n";
	const unsigned char *u = (const unsigned char *)m;
	size_t n = strlen(m);

	CHECK(pop3_top_end(u, n, 0) == 14, "top 0 = %zu", pop3_top_end(u, n, 0));
	CHECK(pop3_top_end(u, n, 1) == 18, "top 1");
	CHECK(pop3_top_end(u, n, 2) == 23, "top 2");
	CHECK(pop3_top_end(u, n, 3) == n, "top 3");
	CHECK(pop3_top_end(u, n, 4000000000u) == n, "top huge");
	/* no body */
	CHECK(pop3_top_end((const unsigned char *)"A: 1\r\nB: 2\r\n", 12, 5) == 12,
	      "headers only");
	CHECK(pop3_top_end((const unsigned char *)"A: 1", 4, 0) == 4, "no eol");
	/* empty header */
	CHECK(pop3_top_end((const unsigned char *)"\r\nbody\r\n", 8, 0) == 2,
	      "empty header");
	/* bare LF */
	CHECK(pop3_top_end((const unsigned char *)"A\n\nb\nc\n", 7, 1) == 5,
	      "bare LF");
	CHECK(pop3_top_end((const unsigned char *)"", 0, 1) == 0, "empty");
	/* last body line without CRLF */
	CHECK(pop3_top_end((const unsigned char *)"A\r\n\r\nxy", 7, 1) == 7,
	      "last line no eol");
}

int main(void)
{
	test_small();
	test_chunk_edges();
	test_10mb();
	test_top();
	if (failures > 0) {
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("test-pop3-dotstuff: ok\n");
	return 0;
}
