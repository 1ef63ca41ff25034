/*
 * test-pop3-parser.c - the line parser, command splitter and numbers.
 * Every input is fed whole, one byte at a time and in every other chunk
 * size; all must give the same events.
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

/* Runs input through a parser fed `chunk` bytes at a time; events go into
 * out as "L<text>|" for lines, "T|" too long, "N|" NUL. */
static void run(const char *input, size_t len, size_t chunk, size_t max,
		char *out, size_t outsize)
{
	unsigned char buf[POP3_SASL_TEXT_MAX + 2];
	struct pop3_parser p;
	size_t off = 0, o = 0;

	pop3_parser_init(&p, buf, max + 2, max);
	out[0] = '\0';
	while (off < len) {
		size_t n = len - off < chunk ? len - off : chunk;
		size_t pos = 0;

		while (pos < n) {
			size_t used;
			enum pop3_parse_result r =
				pop3_parser_feed(&p, (const unsigned char *)input + off + pos,
						 n - pos, &used);
			if (used == 0 || used > n - pos) {
				CHECK(0, "used=%zu of %zu", used, n - pos);
				return;
			}
			pos += used;
			CHECK(p.len <= max + 1, "parser holds %zu > max %zu", p.len, max);
			switch (r) {
			case POP3_PARSE_MORE:
				break;
			case POP3_PARSE_LINE:
				CHECK(p.line[p.len] == '\0' &&
				      memchr(p.line, 0, p.len) == NULL,
				      "line not NUL-terminated or holds NUL");
				o += (size_t)snprintf(out + o, outsize - o, "L%.*s|",
						      (int)p.len, (const char *)p.line);
				p.len = 0;
				break;
			case POP3_PARSE_TOO_LONG:
				o += (size_t)snprintf(out + o, outsize - o, "T|");
				break;
			case POP3_PARSE_NUL:
				o += (size_t)snprintf(out + o, outsize - o, "N|");
				break;
			}
			if (o >= outsize) {
				CHECK(0, "output overflow");
				return;
			}
		}
		off += n;
	}
}

static void check_events(const char *name, const char *input, size_t len,
			 size_t max, const char *expect)
{
	static char out[200000];
	static char first[200000];

	for (size_t chunk = 1; chunk <= len + 1; chunk++) {
		run(input, len, chunk, max, out, sizeof(out));
		if (chunk == 1) {
			CHECK(strcmp(out, expect) == 0,
			      "%s: byte-at-a-time: got '%.200s' want '%.200s'",
			      name, out, expect);
			strcpy(first, out);
		} else if (strcmp(out, first) != 0) {
			CHECK(0, "%s: chunk %zu differs: '%.200s'", name, chunk, out);
			break;
		}
		/* long inputs: every size up to 64, then a few */
		if (chunk > 64 && chunk < len)
			chunk += len / 7;
	}
}

static void test_lines(void)
{
	const char *in;

	in = "USER bob\r\nPASS x y\nQUIT\r\n";
	check_events("basic", in, strlen(in), POP3_CMD_TEXT_MAX,
		     "LUSER bob|LPASS x y|LQUIT|");

	in = "\r\n\n\rX\r\n";
	check_events("empty", in, strlen(in), POP3_CMD_TEXT_MAX, "L|L|L\rX|");

	/* incomplete line: nothing yet */
	in = "STAT";
	check_events("partial", in, strlen(in), POP3_CMD_TEXT_MAX, "");

	/* NUL inside a line: one N event, the next line is fine */
	{
		const char nul[] = "US\0ER a\r\nNOOP\r\n";
		check_events("nul", nul, sizeof(nul) - 1, POP3_CMD_TEXT_MAX,
			     "N|LNOOP|");
	}
	/* CR alone is data, only one CR before LF is stripped */
	in = "A\r\r\nB\r\n";
	check_events("crcr", in, strlen(in), POP3_CMD_TEXT_MAX, "LA\r|LB|");
	/* 8-bit bytes pass */
	in = "USER j\xc3\xbcrgen\r\n";
	check_events("8bit", in, strlen(in), POP3_CMD_TEXT_MAX,
		     "LUSER j\xc3\xbcrgen|");
}

static void test_long_lines(void)
{
	static char in[300000];
	char expect[600];
	size_t n;

	/* exactly the limit: 253 text + CRLF = 255 octets (RFC 2449) */
	memset(in, 'a', 253);
	memcpy(in + 253, "\r\nNOOP\r\n", 8);
	snprintf(expect, sizeof(expect), "L%.*s|LNOOP|", 253, in);
	check_events("253", in, 261, POP3_CMD_TEXT_MAX, expect);

	/* bare LF: 253 text + LF also fine */
	memcpy(in + 253, "\nNOOP\r\n", 7);
	check_events("253lf", in, 260, POP3_CMD_TEXT_MAX, expect);

	/* 254 text + CRLF: too long, then the next command works */
	memset(in, 'a', 254);
	memcpy(in + 254, "\r\nNOOP\r\n", 8);
	check_events("254", in, 262, POP3_CMD_TEXT_MAX, "T|LNOOP|");

	/* 254 text + bare LF: too long too */
	memcpy(in + 254, "\nNOOP\r\n", 7);
	check_events("254lf", in, 261, POP3_CMD_TEXT_MAX, "T|LNOOP|");

	/* a huge line is one error, never buffered */
	n = 200000;
	memset(in, 'b', n);
	memcpy(in + n, "\r\nQUIT\r\n", 8);
	check_events("huge", in, n + 8, POP3_CMD_TEXT_MAX, "T|LQUIT|");

	/* a huge line without end: one error only */
	check_events("endless", in, n, POP3_CMD_TEXT_MAX, "T|");

	/* huge line with NUL inside: just too long */
	in[5000] = '\0';
	check_events("hugenul", in, n + 8, POP3_CMD_TEXT_MAX, "T|LQUIT|");

	/* SASL limit */
	memset(in, 'Q', POP3_SASL_TEXT_MAX);
	memcpy(in + POP3_SASL_TEXT_MAX, "\r\n", 2);
	{
		static char big[POP3_SASL_TEXT_MAX + 16];

		run(in, POP3_SASL_TEXT_MAX + 2, 4096, POP3_SASL_TEXT_MAX, big,
		    sizeof(big));
		CHECK(big[0] == 'L' && strlen(big) == POP3_SASL_TEXT_MAX + 2,
		      "12288-byte SASL line accepted");
		in[POP3_SASL_TEXT_MAX] = 'Q';
		memcpy(in + POP3_SASL_TEXT_MAX + 1, "\r\n", 2);
		run(in, POP3_SASL_TEXT_MAX + 3, 4096, POP3_SASL_TEXT_MAX, big,
		    sizeof(big));
		CHECK(strcmp(big, "T|") == 0, "12289-byte SASL line refused");
	}
}

static void test_garbage(void)
{
	static unsigned char in[65536];
	static char out[400000];
	unsigned seed = 12345;

	for (int round = 0; round < 20; round++) {
		for (size_t i = 0; i < sizeof(in); i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = (unsigned char)(seed >> 16);
			/* more line ends in some rounds */
			if (round % 2 && (seed >> 8) % 40 == 0)
				in[i] = '\n';
		}
		run((const char *)in, sizeof(in), 1 + (size_t)round * 977,
		    POP3_CMD_TEXT_MAX, out, sizeof(out));
	}
}

static void test_split(void)
{
	struct pop3_cmdline c;
	char line[64];

	strcpy(line, "TOP 1 10");
	pop3_cmdline_split(line, strlen(line), &c);
	CHECK(c.keyword_len == 3 && c.n_args == 2 && !c.too_many_args, "TOP split");
	CHECK(c.arg_lens[0] == 1 && c.args[0][0] == '1', "TOP arg0");
	CHECK(c.arg_lens[1] == 2 && memcmp(c.args[1], "10", 2) == 0, "TOP arg1");

	strcpy(line, "PASS  sec ret ");
	pop3_cmdline_split(line, strlen(line), &c);
	CHECK(c.rest_len == 9 && memcmp(c.rest, " sec ret ", 9) == 0,
	      "PASS rest keeps spaces");
	CHECK(c.n_args == 2, "PASS args %u", c.n_args);

	strcpy(line, "LIST 1 2 3 4");
	pop3_cmdline_split(line, strlen(line), &c);
	CHECK(c.too_many_args, "too many args");

	strcpy(line, "NOOP");
	pop3_cmdline_split(line, strlen(line), &c);
	CHECK(c.keyword_len == 4 && c.n_args == 0 && c.rest_len == 0, "NOOP");

	pop3_cmdline_split(line, 0, &c);
	CHECK(c.keyword_len == 0 && c.n_args == 0, "empty");
}

static void test_numbers(void)
{
	uint32_t v = 0;

	CHECK(pop3_parse_number("1", 1, UINT32_MAX, &v) == 0 && v == 1, "1");
	CHECK(pop3_parse_number("4294967295", 10, UINT32_MAX, &v) == 0 &&
	      v == 4294967295u, "max");
	CHECK(pop3_parse_number("4294967296", 10, UINT32_MAX, &v) < 0, "overflow");
	CHECK(pop3_parse_number("99999999999", 11, UINT32_MAX, &v) < 0, "11 digits");
	CHECK(pop3_parse_number("", 0, UINT32_MAX, &v) < 0, "empty");
	CHECK(pop3_parse_number("-1", 2, UINT32_MAX, &v) < 0, "negative");
	CHECK(pop3_parse_number("+1", 2, UINT32_MAX, &v) < 0, "plus");
	CHECK(pop3_parse_number("1a", 2, UINT32_MAX, &v) < 0, "trailing");
	CHECK(pop3_parse_number(" 1", 2, UINT32_MAX, &v) < 0, "space");
	CHECK(pop3_parse_number("0x1", 3, UINT32_MAX, &v) < 0, "hex");
	CHECK(pop3_parse_number("0", 1, UINT32_MAX, &v) == 0 && v == 0, "zero");
	CHECK(pop3_parse_number("101", 3, 100, &v) < 0, "over max");
}

int main(void)
{
	test_lines();
	test_long_lines();
	test_garbage();
	test_split();
	test_numbers();
	if (failures > 0) {
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("test-pop3-parser: ok\n");
	return 0;
}
