/*
 * test-lmtp-proto.c - unit tests of lmtp-proto.c: dot-unstuffing (whole
 * and byte by byte, line-end normalisation, overflow), MAIL/RCPT paths,
 * MAIL parameters, recipient detail.
 */
#include "lmtp-private.h"

#include <stdio.h>
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

/* Feeds in chunks of `step` bytes; returns consumed total. */
static size_t dot_run(const char *in, size_t step, size_t max, char *out,
		      size_t *out_len, bool *done, bool *overflow)
{
	struct lmtp_dot d;
	struct ma_buf b;
	size_t len = strlen(in), pos = 0;

	memset(&d, 0, sizeof(d));
	ma_buf_init(&b, max);
	*done = false;
	while (pos < len && !*done) {
		size_t n = len - pos < step ? len - pos : step;
		pos += lmtp_dot_feed(&d, (const unsigned char *)in + pos, n, &b, done);
	}
	*out_len = ma_buf_len(&b);
	if (*out_len > 0)	/* an empty ma_buf has no data pointer */
		memcpy(out, ma_buf_ptr(&b), *out_len);
	out[*out_len] = '\0';
	*overflow = d.overflow;
	ma_buf_free(&b);
	return pos;
}

static void test_dot(void)
{
	static const struct {
		const char *in, *out;
		size_t consumed;	/* 0 = all */
	} cases[] = {
		{ "a\r\nb\r\n.\r\n", "a\r\nb\r\n", 0 },
		{ ".\r\n", "", 0 },
		{ "..x\r\n.\r\n", ".x\r\n", 0 },
		{ "...\r\n.\r\n", "..\r\n", 0 },
		{ "a\nb\n.\n", "a\r\nb\r\n", 0 },		/* bare LF */
		{ "a\r\n.\r\nRSET\r\n", "a\r\n", 6 },	/* stops at the end */
		{ "x.\r\n.y\r\n.\r\n", "x.\r\ny\r\n", 0 },
		{ "a\rb\r\n.\r\n", "a\rb\r\n", 0 },		/* bare CR kept */
		{ "a\r\r\n.\r\n", "a\r\r\n", 0 },
		{ ".\rz\r\n.\r\n", "\rz\r\n", 0 },
		{ "\xff\x80\r\n.\r\n", "\xff\x80\r\n", 0 },	/* 8-bit */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t step = 1; step <= 16; step += 15) {
			char out[256];
			size_t olen, used;
			bool done, ovf;

			used = dot_run(cases[i].in, step, 1000, out, &olen, &done, &ovf);
			CHECK(done, "case %zu step %zu: not done", i, step);
			CHECK(!ovf, "case %zu: overflow", i);
			CHECK(olen == strlen(cases[i].out) &&
			      memcmp(out, cases[i].out, olen) == 0,
			      "case %zu step %zu: got '%s'", i, step, out);
			size_t want = cases[i].consumed ? cases[i].consumed :
				strlen(cases[i].in);
			CHECK(used == want, "case %zu step %zu: consumed %zu, want %zu",
			      i, step, used, want);
		}
	}
	/* not finished without the dot line */
	{
		char out[64];
		size_t olen;
		bool done, ovf;

		dot_run("a\r\n.x\r\n", 1, 100, out, &olen, &done, &ovf);
		CHECK(!done, "done without terminator");
	}
	/* overflow: consumed to the end, flagged, nothing past max */
	{
		char out[64];
		size_t olen, used;
		bool done, ovf;
		const char *in = "0123456789\r\n0123456789\r\n.\r\n";

		used = dot_run(in, 3, 8, out, &olen, &done, &ovf);
		CHECK(done && ovf, "overflow not flagged");
		CHECK(used == strlen(in), "overflow: consumed %zu", used);
		CHECK(olen <= 8, "overflow: kept %zu", olen);
	}
}

static void test_paths(void)
{
	char addr[LMTP_PATH_MAX + 1];
	const char *params;
	char longpath[LMTP_PATH_MAX + 20];

	CHECK(lmtp_parse_path("FROM:<a@b.c>", "FROM:", true, addr, &params) == 0 &&
	      strcmp(addr, "a@b.c") == 0 && *params == '\0', "plain");
	CHECK(lmtp_parse_path("from: <a@b.c> SIZE=10 BODY=8BITMIME", "FROM:", true,
			      addr, &params) == 0 &&
	      strcmp(params, "SIZE=10 BODY=8BITMIME") == 0, "params '%s'", params);
	CHECK(lmtp_parse_path("FROM:<>", "FROM:", true, addr, &params) == 0 &&
	      addr[0] == '\0', "null path");
	CHECK(lmtp_parse_path("TO:<>", "TO:", false, addr, &params) < 0, "empty rcpt");
	CHECK(lmtp_parse_path("TO:a@b", "TO:", false, addr, &params) < 0, "no <>");
	CHECK(lmtp_parse_path("TO:<a@b", "TO:", false, addr, &params) < 0, "no >");
	CHECK(lmtp_parse_path("TO:<a b@c>", "TO:", false, addr, &params) < 0, "space");
	CHECK(lmtp_parse_path("TO:<a@b>x", "TO:", false, addr, &params) < 0, "junk");
	CHECK(lmtp_parse_path("FROM:<a@b>", "TO:", false, addr, &params) < 0, "verb");
	CHECK(lmtp_parse_path("TO:<@r1,@r2:u@d>", "TO:", false, addr, &params) == 0 &&
	      strcmp(addr, "u@d") == 0, "route '%s'", addr);
	memset(longpath, 'a', sizeof(longpath));
	memcpy(longpath, "TO:<", 4);
	longpath[sizeof(longpath) - 2] = '>';
	longpath[sizeof(longpath) - 1] = '\0';
	CHECK(lmtp_parse_path(longpath, "TO:", false, addr, &params) < 0, "too long");
}

static void test_params(void)
{
	uint64_t size;
	const char *bad;

	CHECK(lmtp_parse_mail_params("", &size, &bad) == 0 && size == 0, "empty");
	CHECK(lmtp_parse_mail_params("SIZE=1234 BODY=8BITMIME", &size, &bad) == 0 &&
	      size == 1234, "size");
	CHECK(lmtp_parse_mail_params("body=7bit", &size, &bad) == 0, "body");
	CHECK(lmtp_parse_mail_params("SIZE=x", &size, &bad) < 0, "bad size");
	CHECK(lmtp_parse_mail_params("SIZE=99999999999999999999999", &size, &bad) < 0,
	      "overflow");
	CHECK(lmtp_parse_mail_params("RET=FULL", &size, &bad) < 0, "unknown");
	CHECK(lmtp_parse_mail_params("BODY=BINARYMIME", &size, &bad) < 0, "binary");
}

static void test_detail(void)
{
	char u[64], d[64];

	CHECK(lmtp_split_detail("a+b@c", "+", u, sizeof(u), d, sizeof(d)) == 0 &&
	      strcmp(u, "a@c") == 0 && strcmp(d, "b") == 0, "%s %s", u, d);
	CHECK(lmtp_split_detail("a+b+c@d", "+", u, sizeof(u), d, sizeof(d)) == 0 &&
	      strcmp(u, "a@d") == 0 && strcmp(d, "b+c") == 0, "%s %s", u, d);
	CHECK(lmtp_split_detail("a@c", "+", u, sizeof(u), d, sizeof(d)) == 0 &&
	      strcmp(u, "a@c") == 0 && d[0] == '\0', "none");
	CHECK(lmtp_split_detail("a+b@c", "", u, sizeof(u), d, sizeof(d)) == 0 &&
	      strcmp(u, "a+b@c") == 0 && d[0] == '\0', "disabled");
	CHECK(lmtp_split_detail("a-b@c", "+-", u, sizeof(u), d, sizeof(d)) == 0 &&
	      strcmp(u, "a@c") == 0 && strcmp(d, "b") == 0, "two delims");
	CHECK(lmtp_split_detail("x@y+z", "+", u, sizeof(u), d, sizeof(d)) == 0 &&
	      strcmp(u, "x@y+z") == 0 && d[0] == '\0', "delim in domain");
	CHECK(lmtp_split_detail("postmaster", "+", u, sizeof(u), d, sizeof(d)) == 0 &&
	      strcmp(u, "postmaster") == 0, "no domain");
	CHECK(lmtp_split_detail("abcdefgh@c", "+", u, 4, d, sizeof(d)) < 0, "small");
}

int main(void)
{
	test_dot();
	test_paths();
	test_params();
	test_detail();
	if (failures != 0) {
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("ok\n");
	return 0;
}
