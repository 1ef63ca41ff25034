/*
 * test-imap-write.c - astring / nstring / literal choice, mailbox names
 * on the wire, date-time formatting.
 */
#include "imap-private.h"

#include <stdio.h>
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

static void want(struct ma_buf *b, const char *exp, size_t len, int line)
{
	if (ma_buf_len(b) != len || memcmp(ma_buf_ptr(b), exp, len) != 0) {
		failures++;
		fprintf(stderr, "FAIL line %d: want [%.*s] got [%.*s]\n", line,
			(int)len, exp, (int)ma_buf_len(b),
			(const char *)ma_buf_ptr(b));
	}
	ma_buf_clear(b);
}

#define WANT(b, exp) want(b, exp, sizeof(exp) - 1, __LINE__)

int main(void)
{
	struct ma_buf b;
	struct imap_session s;

	ma_buf_init(&b, 1 << 16);
	imap_buf_astring(&b, "INBOX", 5);
	WANT(&b, "INBOX");
	imap_buf_astring(&b, "a]b", 3);
	WANT(&b, "a]b");
	imap_buf_astring(&b, "", 0);
	WANT(&b, "\"\"");
	imap_buf_astring(&b, "a b", 3);
	WANT(&b, "\"a b\"");
	imap_buf_astring(&b, "NIL", 3);
	WANT(&b, "\"NIL\"");
	imap_buf_astring(&b, "a\"b\\c", 5);
	WANT(&b, "\"a\\\"b\\\\c\"");
	imap_buf_astring(&b, "a%", 2);
	WANT(&b, "\"a%\"");
	imap_buf_astring(&b, "a\r\nb", 4);
	WANT(&b, "{4}\r\na\r\nb");
	imap_buf_astring(&b, "\xc3\xa4", 2);
	WANT(&b, "{2}\r\n\xc3\xa4");
	imap_buf_astring(&b, "a\0b", 3);
	WANT(&b, "{3}\r\na\0b");
	imap_buf_nstring(&b, NULL, 0);
	WANT(&b, "NIL");
	imap_buf_nstring(&b, "x", 1);
	WANT(&b, "\"x\"");
	imap_buf_quoted_or_literal(&b, "abc", 3);
	WANT(&b, "\"abc\"");
	{
		static char big[2000];

		memset(big, 'x', sizeof(big));
		imap_buf_quoted_or_literal(&b, big, sizeof(big));
		CHECK(ma_buf_len(&b) == 2000 + 8 &&
		      memcmp(ma_buf_ptr(&b), "{2000}\r\n", 8) == 0, "long -> literal");
		ma_buf_clear(&b);
	}

	memset(&s, 0, sizeof(s));
	imap_buf_mailbox(&s, &b, "INBOX");
	WANT(&b, "INBOX");
	imap_buf_mailbox(&s, &b, "~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97");
	WANT(&b, "~peter/mail/&U,BTFw-");
	imap_buf_mailbox(&s, &b, "Sent Items");
	WANT(&b, "\"Sent Items\"");
	imap_buf_mailbox(&s, &b, "a&b");
	WANT(&b, "a&-b");
	s.utf8_names = true;
	imap_buf_mailbox(&s, &b, "\xc3\xa4 x");
	WANT(&b, "\"\xc3\xa4 x\"");

	imap_buf_datetime(&b, 0, 0);
	WANT(&b, "\"01-Jan-1970 00:00:00 +0000\"");
	/* 2021-03-04 05:06:07 UTC seen from +01:30 and -08:00 */
	imap_buf_datetime(&b, 1614834367, 90);
	WANT(&b, "\"04-Mar-2021 06:36:07 +0130\"");
	imap_buf_datetime(&b, 1614834367, -480);
	WANT(&b, "\"03-Mar-2021 21:06:07 -0800\"");
	/* nonsense zone is treated as UTC */
	imap_buf_datetime(&b, 1614834367, 99999);
	WANT(&b, "\"04-Mar-2021 05:06:07 +0000\"");

	ma_buf_free(&b);
	if (failures > 0) {
		fprintf(stderr, "%d failure(s)\n", failures);
		return 1;
	}
	printf("test-imap-write: all passed\n");
	return 0;
}
