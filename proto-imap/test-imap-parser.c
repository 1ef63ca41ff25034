/*
 * test-imap-parser.c - the IMAP command parser: arguments, literals, every
 * limit, resync after errors, and that feeding one byte at a time gives
 * exactly the same result as feeding everything at once.
 */
#include "imap-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		failures++; \
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
		fprintf(stderr, __VA_ARGS__); \
		fputc('\n', stderr); \
	} \
} while (0)

static struct imap_settings test_set = { .max_message_size = 100000 };

static void dump_args(struct ma_buf *o, const struct imap_arg *a, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (i > 0)
			(void)ma_buf_append(o, " ", 1);
		switch (a[i].type) {
		case IMAP_ARG_ATOM:
			(void)ma_buf_printf(o, "a:%s", a[i].str);
			break;
		case IMAP_ARG_STRING:
			(void)ma_buf_printf(o, "s:%s", a[i].str);
			break;
		case IMAP_ARG_LITERAL:
			if (a[i].len <= 32) {
				(void)ma_buf_printf(o, "l%zu:", a[i].len);
				for (size_t j = 0; j < a[i].len; j++) {
					unsigned char c = (unsigned char)a[i].str[j];

					if (c < 0x20)
						(void)ma_buf_printf(o, "\\x%02x", c);
					else
						(void)ma_buf_append(o, &c, 1);
				}
			} else
				(void)ma_buf_printf(o, "l%zu", a[i].len);
			CHECK(a[i].str[a[i].len] == '\0', "literal not NUL-terminated");
			break;
		case IMAP_ARG_NIL:
			(void)ma_buf_printf(o, "NIL");
			break;
		case IMAP_ARG_LIST:
			(void)ma_buf_append(o, "(", 1);
			dump_args(o, a[i].list, a[i].list_count);
			(void)ma_buf_append(o, ")", 1);
			break;
		}
	}
}

/* Runs input through a fresh parser in `chunk`-byte pieces (0 = all at
 * once) and returns a transcript (malloc'd). The session's habits are
 * copied: after CMD or BAD the arena is reset and the parser reset. */
static char *run(const char *input, size_t len, size_t chunk,
		 enum imap_state state)
{
	struct imap_session s;
	struct ma_buf o;
	size_t pos = 0;
	char *out;

	memset(&s, 0, sizeof(s));
	s.state = state;
	s.set = &test_set;
	s.cmd_arena = ma_arena_create(0);
	s.parser = imap_parser_create(&s);
	ma_buf_init(&o, 1 << 20);
	while (pos < len) {
		size_t end = chunk == 0 || len - pos < chunk ? len : pos + chunk;

		/* feed [pos, end) until it is all consumed */
		while (pos < end) {
			struct imap_cmd *cmd;
			const char *tag, *err;
			size_t used;
			enum imap_parse_result r;

			r = imap_parser_feed(s.parser, (const unsigned char *)input + pos,
					     end - pos, &used, &cmd, &tag, &err);
			CHECK(used <= end - pos, "consumed too much");
			pos += used;
			switch (r) {
			case IMAP_PARSE_MORE:
				CHECK(pos == end, "MORE without consuming all");
				break;
			case IMAP_PARSE_CMD:
				(void)ma_buf_printf(&o, "CMD %s %s%s [", cmd->tag,
						    cmd->uid ? "UID " : "", cmd->name);
				dump_args(&o, cmd->args, cmd->n_args);
				(void)ma_buf_printf(&o, "]\n");
				ma_arena_reset(s.cmd_arena);
				imap_parser_reset(s.parser);
				break;
			case IMAP_PARSE_BAD:
				(void)ma_buf_printf(&o, "BAD %s %s\n", tag, err);
				ma_arena_reset(s.cmd_arena);
				imap_parser_reset(s.parser);
				break;
			case IMAP_PARSE_CONTINUE:
				(void)ma_buf_printf(&o, "+\n");
				break;
			case IMAP_PARSE_FATAL:
				(void)ma_buf_printf(&o, "FATAL %s\n", err);
				pos = len;
				end = len;
				break;
			}
		}
	}
	(void)ma_buf_append(&o, "", 1);
	out = strdup((const char *)ma_buf_ptr(&o));
	ma_buf_free(&o);
	imap_parser_destroy(&s.parser);
	ma_arena_destroy(&s.cmd_arena);
	return out;
}

/* Checks whole-input and byte-at-a-time (and 7-byte) runs agree with
 * `want` (a prefix match on each line is not enough: exact). */
static void expect_len(int line, const char *input, size_t len,
		       enum imap_state state, const char *want)
{
	size_t chunks[] = { 0, 1, 7 };

	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		char *got = run(input, len, chunks[i], state);

		if (strcmp(got, want) != 0) {
			failures++;
			fprintf(stderr, "FAIL line %d (chunk %zu):\n  want: %s\n  got:  %s\n",
				line, chunks[i], want, got);
		}
		free(got);
	}
}

#define EXPECT(input, state, want) \
	expect_len(__LINE__, input, sizeof(input) - 1, state, want)
#define AUTH IMAP_STATE_AUTH
#define PRE IMAP_STATE_NOT_AUTH

static char *repeat(const char *head, const char *unit, unsigned n,
		    const char *tail, size_t *len_r)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(hl + ul * n + tl + 1);
	char *p = s;

	memcpy(p, head, hl);
	p += hl;
	for (unsigned i = 0; i < n; i++) {
		memcpy(p, unit, ul);
		p += ul;
	}
	memcpy(p, tail, tl);
	p += tl;
	*p = '\0';
	*len_r = (size_t)(p - s);
	return s;
}

static void test_basic(void)
{
	EXPECT("a1 NOOP\r\n", PRE, "CMD a1 NOOP []\n");
	EXPECT("a1 noop\r\n\r\na2 CAPABILITY\n", PRE,
	       "CMD a1 NOOP []\nCMD a2 CAPABILITY []\n");
	EXPECT("a2 LOGIN \"us\\\"e\\\\r\" {3}\r\npwd\r\n", PRE,
	       "+\nCMD a2 LOGIN [s:us\"e\\r l3:pwd]\n");
	EXPECT("a3 uid fetch 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100>)\r\n",
	       AUTH, "CMD a3 UID FETCH [a:1:* (a:FLAGS a:BODY.PEEK[HEADER.FIELDS (From To)]<0.100>)]\n");
	EXPECT("a4 LOGIN {3+}\r\nabc x\r\n", PRE, "CMD a4 LOGIN [l3:abc a:x]\n");
	EXPECT("a5 ID nil\r\n", PRE, "CMD a5 ID [NIL]\n");
	EXPECT("a6 ID ((a) () \"b\" ({1+}\r\nc))\r\n", PRE,
	       "CMD a6 ID [((a:a) () s:b (l1:c))]\n");
	EXPECT("a7 LOGIN {0}\r\n {0+}\r\n\r\n", PRE, "+\nCMD a7 LOGIN [l0: l0:]\n");
	EXPECT("a8 STORE 1 +FLAGS (\\Seen $Label)\r\n", AUTH,
	       "CMD a8 STORE [a:1 a:+FLAGS (a:\\Seen a:$Label)]\n");
	EXPECT("a9 LIST \"\" %\r\n", AUTH, "CMD a9 LIST [s: a:%]\n");
	/* 8-bit in quoted strings and atoms is accepted */
	EXPECT("b1 SELECT \"\xc3\xa4\" \xc3\xb6\r\n", AUTH,
	       "CMD b1 SELECT [s:\xc3\xa4 a:\xc3\xb6]\n");
	/* a literal may hold NUL and CRLF */
	EXPECT("b2 LOGIN {4}\r\n\0\r\n\n x\r\n", PRE, "+\nCMD b2 LOGIN [l4:\\x00\\x0d\\x0a\\x0a a:x]\n");
}

static void test_syntax_errors(void)
{
	EXPECT("a1 FROB\r\na2 NOOP\r\n", PRE,
	       "BAD a1 Unknown command FROB\nCMD a2 NOOP []\n");
	EXPECT("a1 UID NOOP\r\n", AUTH, "BAD a1 UID NOOP is not a command\n");
	EXPECT("a1 UID\r\n", AUTH, "BAD a1 Missing command after UID\n");
	EXPECT("a1\r\n", PRE, "BAD a1 Missing command\n");
	EXPECT("+ x\r\n", PRE, "BAD * Invalid tag\n");
	EXPECT("a{ NOOP\r\n", PRE, "BAD * Invalid tag\n");
	EXPECT("a1 ID (x\r\n", PRE, "BAD a1 Missing ')'\n");
	EXPECT("a1 ID x)\r\n", PRE, "BAD a1 Unexpected ')'\n");
	EXPECT("a1 ID \"x\r\n", PRE, "BAD a1 Unterminated quoted string\n");
	EXPECT("a1 ID \"\\x\"\r\n", PRE, "BAD a1 Invalid escape in quoted string\n");
	EXPECT("a1 ID \"a\"\"b\"\r\n", PRE, "BAD a1 Missing space between arguments\n");
	EXPECT("a1 ID a(b)\r\n", PRE, "BAD a1 Missing space before '('\n");
	EXPECT("a1 ID \x01\r\n", PRE, "BAD a1 Invalid character in arguments\n");
	EXPECT("a1 NOOP\0x\r\na2 NOOP\r\n", PRE,
	       "BAD a1 NUL byte in command\nCMD a2 NOOP []\n");
	EXPECT("a1 NOOP\rx\r\na2 NOOP\r\n", PRE,
	       "BAD a1 CR without LF in command\nCMD a2 NOOP []\n");
	EXPECT("a1 LOGIN ~{5}\r\na2 NOOP\r\n", PRE,
	       "BAD a1 literal8 is not supported\nCMD a2 NOOP []\n");
	EXPECT("a1 LOGIN {3}x\r\n", PRE, "BAD a1 Invalid literal\n");
	EXPECT("a1 LOGIN {-1}\r\na2 NOOP\r\n", PRE,
	       "BAD a1 Invalid literal\nCMD a2 NOOP []\n");
	EXPECT("a1 LOGIN {}\r\n", PRE, "BAD a1 Invalid literal\n");
	/* the literal marker must end its line */
	EXPECT("a1 LOGIN {3} x\r\n", PRE, "BAD a1 Invalid literal\n");
}

static void test_literal_limits(void)
{
	/* synchronizing, too big: BAD, no "+", next line is a new command */
	EXPECT("a1 LOGIN {8193}\r\na2 NOOP\r\n", PRE,
	       "BAD a1 Literal too big (max 8192)\nCMD a2 NOOP []\n");
	EXPECT("a1 LOGIN {8192}\r\n", PRE, "+\n");
	EXPECT("a1 LOGIN {65537}\r\n", AUTH, "BAD a1 Literal too big (max 65536)\n");
	/* APPEND gets max_message_size (100000 here), after login only */
	EXPECT("a1 APPEND INBOX {99999}\r\n", AUTH, "+\n");
	EXPECT("a1 APPEND INBOX {100001}\r\n", AUTH,
	       "BAD a1 Literal too big (max 100000)\n");
	EXPECT("a1 APPEND INBOX {9000}\r\n", PRE,
	       "BAD a1 Literal too big (max 8192)\n");
	/* bombs */
	EXPECT("a1 LOGIN {4294967295}\r\na2 NOOP\r\n", AUTH,
	       "BAD a1 Invalid literal size\nCMD a2 NOOP []\n");
	EXPECT("a1 LOGIN {18446744073709551616}\r\na2 NOOP\r\n", AUTH,
	       "BAD a1 Invalid literal size\nCMD a2 NOOP []\n");
	EXPECT("a1 LOGIN {4294967295+}\r\na2 NOOP\r\n", AUTH,
	       "FATAL Non-synchronizing literal too big\n");
	EXPECT("a1 LOGIN {99999999999999999999999+}\r\na2 NOOP\r\n", AUTH,
	       "FATAL Invalid literal size\n");
	/* LITERAL- (RFC 7888) is capped at 4096 */
	EXPECT("a1 LOGIN {4097-}\r\n", AUTH,
	       "BAD a1 Literal too big (max 4096)\n");

	/* a big APPEND literal arrives whole (heap-grown, then the arena's) */
	{
		static char big[100100];
		char *p = big;

		p += sprintf(p, "a1 APPEND INBOX (\\Seen) {99999+}\r\n");
		memset(p, 'm', 99999);
		p += 99999;
		p += sprintf(p, "\r\na2 NOOP\r\n");
		expect_len(__LINE__, big, (size_t)(p - big), AUTH,
			   "CMD a1 APPEND [a:INBOX (a:\\Seen) l99999]\nCMD a2 NOOP []\n");
	}
	/* a too-big non-synchronizing literal is skipped, never run */
	size_t len;
	char *in = repeat("a1 LOGIN {9000+}\r\n", "z9 LOGOUT\r", 900,
			  " x\r\na2 NOOP\r\n", &len);
	expect_len(__LINE__, in, len, PRE,
		   "BAD a1 Literal too big (max 8192)\nCMD a2 NOOP []\n");
	free(in);
	/* ... also when the rest of the line announces another one */
	in = repeat("a1 LOGIN {9000+}\r\n", "z9 LOGOUT\r", 900,
		    " {12+}\r\nz8 LOGOUT\r\n\r\na2 NOOP\r\n", &len);
	expect_len(__LINE__, in, len, PRE,
		   "BAD a1 Literal too big (max 8192)\nCMD a2 NOOP []\n");
	free(in);
	/* an error before a {n+} at the end of the line: skip it too */
	EXPECT("a1 ID ) {10+}\r\nz9 LOGOUT\r\na2 NOOP\r\n", PRE,
	       "BAD a1 Unexpected ')'\nCMD a2 NOOP []\n");
	/* total literal bytes of one command are bounded (limit + 64k) */
	{
		static char big[3 * (60000 + 16) + 64];
		char *p = big;

		p += sprintf(p, "a1 ID (");
		for (int i = 0; i < 3; i++) {
			p += sprintf(p, "{60000+}\r\n");
			memset(p, 'q', 60000);
			p += 60000;
			*p++ = ' ';
		}
		p += sprintf(p, ")\r\na2 NOOP\r\n");
		expect_len(__LINE__, big, (size_t)(p - big), AUTH,
			   "BAD a1 Literal too big (max 65536)\nCMD a2 NOOP []\n");
	}
}

static void test_limits(void)
{
	size_t len;
	char *in;
	char want[256];

	/* line length: 8192 before login, 65536 after */
	in = repeat("a1 ID ", "x", 8200, "\r\na2 NOOP\r\n", &len);
	expect_len(__LINE__, in, len, PRE,
		   "BAD a1 Command line too long\nCMD a2 NOOP []\n");
	free(in);
	in = repeat("a1 ID ", "x", 8200, "\r\n", &len);
	snprintf(want, sizeof(want), "CMD a1 ID [a:%s]\n", "");
	{
		char *got = run(in, len, 0, AUTH);

		CHECK(strncmp(got, "CMD a1 ID [a:xxxx", 17) == 0, "%.40s", got);
		free(got);
	}
	free(in);
	in = repeat("a1 ID ", "x", 70000, "\r\na2 NOOP\r\n", &len);
	expect_len(__LINE__, in, len, AUTH,
		   "BAD a1 Command line too long\nCMD a2 NOOP []\n");
	free(in);
	/* the line limit covers all segments of a command */
	in = repeat("a1 ID (", "{1+}\r\nx ", 4000, ")\r\na2 NOOP\r\n", &len);
	{
		char *got = run(in, len, 0, PRE);

		CHECK(strncmp(got, "BAD a1 Command line too long\n", 29) == 0 &&
		      strstr(got, "CMD a2 NOOP []\n") != NULL, "%.80s", got);
		free(got);
	}
	free(in);

	/* arguments: 4096 in all */
	in = repeat("a1 ID (", "x ", 4095, ")\r\n", &len);
	{
		char *got = run(in, len, 0, AUTH);

		CHECK(strncmp(got, "CMD a1 ID [(a:x", 15) == 0, "%.40s", got);
		free(got);
	}
	free(in);
	in = repeat("a1 ID (", "x ", 4096, ")\r\na2 NOOP\r\n", &len);
	expect_len(__LINE__, in, len, AUTH,
		   "BAD a1 Too many arguments (max 4096)\nCMD a2 NOOP []\n");
	free(in);

	/* nesting: 32 levels */
	{
		char buf[200], *p = buf;

		p += sprintf(p, "a1 ID ");
		for (int i = 0; i < 32; i++)
			*p++ = '(';
		for (int i = 0; i < 32; i++)
			*p++ = ')';
		p += sprintf(p, "\r\n");
		char *got = run(buf, (size_t)(p - buf), 1, PRE);

		CHECK(strncmp(got, "CMD a1 ID [((((", 15) == 0, "%s", got);
		free(got);
	}
	in = repeat("a1 ID ", "(", 33, "\r\na2 NOOP\r\n", &len);
	expect_len(__LINE__, in, len, PRE,
		   "BAD a1 Lists nested too deep (max 32)\nCMD a2 NOOP []\n");
	free(in);
	in = repeat("a1 ID ", "(", 5000, "\r\n", &len);
	expect_len(__LINE__, in, len, PRE,
		   "BAD a1 Lists nested too deep (max 32)\n");
	free(in);

	/* tags */
	in = repeat("", "t", 65, " NOOP\r\n", &len);
	expect_len(__LINE__, in, len, PRE, "BAD * Tag too long\n");
	free(in);
}

static void test_read_line(void)
{
	struct imap_session s;
	const char *line, *err;
	size_t used, n;
	enum imap_parse_result r;
	const char *in = "DON";

	memset(&s, 0, sizeof(s));
	s.set = &test_set;
	s.cmd_arena = ma_arena_create(0);
	s.parser = imap_parser_create(&s);
	r = imap_parser_read_line(s.parser, (const unsigned char *)in, 3, &used,
				  &line, &n, &err);
	CHECK(r == IMAP_PARSE_MORE && used == 3, "partial line");
	in = "E\r\nnext";
	r = imap_parser_read_line(s.parser, (const unsigned char *)in, 7, &used,
				  &line, &n, &err);
	CHECK(r == IMAP_PARSE_CMD && used == 3 && n == 4 &&
	      strcmp(line, "DONE") == 0, "DONE line");
	imap_parser_line_done(s.parser);
	in = "a\0b\r\n";
	r = imap_parser_read_line(s.parser, (const unsigned char *)in, 5, &used,
				  &line, &n, &err);
	CHECK(r == IMAP_PARSE_BAD && used == 5, "NUL in raw line");
	imap_parser_destroy(&s.parser);
	ma_arena_destroy(&s.cmd_arena);
}

/* Random token soup: whatever the input, feeding it whole, one byte at a
 * time or in 3-byte pieces must give the same transcript (and no crash,
 * no leak: run under ASan). */
static void test_random_equivalence(void)
{
	static const char *const tokens[] = {
		"a1 ", "b2 ", "NOOP", "LOGIN ", "ID ", "UID ", "FETCH ", "APPEND ",
		"{3}\r\n", "{5+}\r\n", "{0}\r\n", "{9000+}\r\n", "{70000}\r\n",
		"~{2}\r\n", "(", ")", "\"", "\\", "\r\n", "\r", "\n", "\0", "x",
		" ", "[", "]", "<0.5>", "NIL", "*", "%", "\xc3\xa4", "+", "{",
		"}", "{4294967295+}", "{-3}",
	};
	unsigned seed = 12345;
	static char in[4096];

	for (int round = 0; round < 3000; round++) {
		size_t len = 0;
		unsigned n;

		seed = seed * 1103515245u + 12345u;
		n = 1 + (seed >> 16) % 40;
		for (unsigned i = 0; i < n; i++) {
			const char *t;
			size_t tl;

			seed = seed * 1103515245u + 12345u;
			t = tokens[(seed >> 16) % (sizeof(tokens) / sizeof(tokens[0]))];
			tl = strcmp(t, "\0") == 0 ? 1 : strlen(t);
			if (len + tl >= sizeof(in))
				break;
			memcpy(in + len, t, tl);
			len += tl;
		}
		char *whole = run(in, len, 0, round % 2 ? AUTH : PRE);
		char *bytes = run(in, len, 1, round % 2 ? AUTH : PRE);
		char *three = run(in, len, 3, round % 2 ? AUTH : PRE);

		CHECK(strcmp(whole, bytes) == 0 && strcmp(whole, three) == 0,
		      "round %d differs:\n%s\n---\n%s\n---\n%s", round, whole,
		      bytes, three);
		free(whole);
		free(bytes);
		free(three);
	}
}

int main(void)
{
	test_random_equivalence();
	test_basic();
	test_syntax_errors();
	test_literal_limits();
	test_limits();
	test_read_line();
	if (failures > 0) {
		fprintf(stderr, "%d failure(s)\n", failures);
		return 1;
	}
	printf("test-imap-parser: all passed\n");
	return 0;
}
