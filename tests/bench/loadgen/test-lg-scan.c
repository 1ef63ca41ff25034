/*
 * test-lg-scan.c - unit test of ma-loadgen's scanners (lg-scan.c): every
 * input is fed whole, one byte at a time and split at every position,
 * and must give the same answer.
 */
#include <stdio.h>
#include <string.h>

#include "lg-scan.h"

static int failures;

#define CHECK(cond, ...) do { if (!(cond)) { failures++; \
	fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* Where the terminator ends (bytes from p), or 0 if it is not found,
   feeding the chunks [0,a) [a,b) [b,n). */
static size_t dot_end_split(const char *p, size_t n, size_t a, size_t b)
{
	size_t cuts[3] = { a, b, n }, pos = 0;
	int st = LG_DOT_BOL;

	for (int i = 0; i < 3; i++) {
		while (pos < cuts[i]) {
			bool done;
			size_t used = lg_dot_scan(&st, p + pos, cuts[i] - pos, &done);
			pos += used;
			if (done)
				return pos;
		}
	}
	return 0;
}

static size_t dot_end_bytewise(const char *p, size_t n)
{
	int st = LG_DOT_BOL;

	for (size_t i = 0; i < n; i++) {
		bool done;
		size_t used = lg_dot_scan(&st, p + i, 1, &done);
		if (used != 1)
			return (size_t)-1;
		if (done)
			return i + 1;
	}
	return 0;
}

static void dot_case(const char *body, size_t want)
{
	size_t n = strlen(body);

	CHECK(dot_end_bytewise(body, n) == want, "bytewise %zu != %zu: %s",
	      dot_end_bytewise(body, n), want, body);
	for (size_t a = 0; a <= n; a++)
		for (size_t b = a; b <= n; b++) {
			size_t got = dot_end_split(body, n, a, b);
			CHECK(got == want, "split %zu/%zu: %zu != %zu", a, b, got, want);
			if (got != want)
				return;
		}
}

static void test_dot(void)
{
	static const char t1[] = "a\r\nb\r\n.\r\nNEXT";
	static const char t2[] = "..x\r\n.y\r\n...\r\n..\r\n.\r\n+OK";
	static const char t3[] = ".\r\n";			/* empty body */
	static const char t4[] = "x.\r\ny .\r\n.\r";		/* not ended */
	static const char t5[] = "a.b.c\r\nd\r\n.\n";		/* bare LF */
	static const char t6[] = "\r\n\r\n.\r\n";
	static const char t7[] = "no end at all . . .\r\n..\r\n";

	dot_case(t1, sizeof(t1) - 1 - 4);
	dot_case(t2, sizeof(t2) - 1 - 3);
	dot_case(t3, 3);
	dot_case(t4, 0);
	dot_case(t5, sizeof(t5) - 1);
	dot_case(t6, sizeof(t6) - 1);
	dot_case(t7, 0);

	/* a big body: found exactly at its end */
	static const char line[] = "word.word ..dots. in line\r\n..stuffed\r\n";
	static char big[300000];
	size_t o = 0;
	while (o + sizeof(line) + 8 < sizeof(big)) {
		memcpy(big + o, line, sizeof(line) - 1);
		o += sizeof(line) - 1;
	}
	memcpy(big + o, ".\r\n", 3);
	o += 3;
	CHECK(dot_end_split(big, o, o / 3, o / 2) == o, "big body");
	CHECK(dot_end_bytewise(big, o) == o, "big body bytewise");
}

static void test_literal(void)
{
	uint64_t n = 0;

	CHECK(lg_imap_literal("* 1 FETCH (BODY[] {4096}", 24, &n) && n == 4096, "{4096}");
	CHECK(lg_imap_literal("x {0}", 5, &n) && n == 0, "{0}");
	CHECK(lg_imap_literal("x {12+}", 7, &n) && n == 12, "{12+}");
	CHECK(!lg_imap_literal("* OK done", 9, &n), "no literal");
	CHECK(!lg_imap_literal("x {}", 4, &n), "{} empty");
	CHECK(!lg_imap_literal("x 12}", 5, &n), "no brace");
	CHECK(!lg_imap_literal("}", 1, &n), "short");
	CHECK(!lg_imap_literal("{1a}", 4, &n), "not digits");
	CHECK(!lg_imap_literal("x {1234567890123456}", 20, &n), "too many digits");
	CHECK(lg_imap_literal("{123456789012345}", 17, &n) && n == 123456789012345ull,
	      "15 digits");
}

int main(void)
{
	test_dot();
	test_literal();
	if (failures) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	printf("test-lg-scan: ok\n");
	return 0;
}
