/*
 * test-imap-utf7.c - modified UTF-7 (RFC 3501 5.1.3) both ways, the strict
 * decoder's refusals, and imap_mailbox_from_client().
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

static void roundtrip(const char *utf8, const char *utf7)
{
	struct ma_buf b;

	ma_buf_init(&b, 4096);
	CHECK(imap_utf7_encode(utf8, strlen(utf8), &b) == 0, "encode %s", utf7);
	CHECK(ma_buf_len(&b) == strlen(utf7) &&
	      (ma_buf_len(&b) == 0 || memcmp(ma_buf_ptr(&b), utf7, strlen(utf7)) == 0),
	      "encode: want %s got %.*s", utf7, (int)ma_buf_len(&b),
	      (const char *)ma_buf_ptr(&b));
	ma_buf_clear(&b);
	CHECK(imap_utf7_decode(utf7, strlen(utf7), &b) == 0, "decode %s", utf7);
	CHECK(ma_buf_len(&b) == strlen(utf8) &&
	      (ma_buf_len(&b) == 0 || memcmp(ma_buf_ptr(&b), utf8, strlen(utf8)) == 0),
	      "decode %s: got %.*s", utf7, (int)ma_buf_len(&b),
	      (const char *)ma_buf_ptr(&b));
	ma_buf_free(&b);
}

static void bad_decode(const char *utf7, size_t len)
{
	struct ma_buf b;

	ma_buf_init(&b, 4096);
	CHECK(imap_utf7_decode(utf7, len, &b) < 0, "decode accepted %s", utf7);
	ma_buf_free(&b);
}

static void bad_encode(const char *utf8, size_t len)
{
	struct ma_buf b;

	ma_buf_init(&b, 4096);
	CHECK(imap_utf7_encode(utf8, len, &b) < 0, "encode accepted %s", utf8);
	ma_buf_free(&b);
}

#define BAD_DECODE(s) bad_decode(s, sizeof(s) - 1)
#define BAD_ENCODE(s) bad_encode(s, sizeof(s) - 1)

static void test_codec(void)
{
	/* RFC 3501 5.1.3 example: ~peter/mail/台北/日本語 */
	roundtrip("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
		  "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
	roundtrip("INBOX", "INBOX");
	roundtrip("", "");
	roundtrip("a&b", "a&-b");
	roundtrip("&", "&-");
	roundtrip("Entw\xc3\xbcrfe", "Entw&APw-rfe");
	roundtrip("\xc3\xa4\xc3\xb6\xc3\xbc", "&AOQA9gD8-");
	/* outside the BMP: a surrogate pair (U+1F600) */
	roundtrip("x\xf0\x9f\x98\x80y", "x&2D3eAA-y");
	/* '/' is the base64 ',' */
	roundtrip("\xe2\x82\xac", "&IKw-");

	/* strict decoding */
	BAD_DECODE("&");		/* unterminated */
	BAD_DECODE("&U,BTFw");		/* unterminated */
	BAD_DECODE("&U/BTFw-");		/* '/' is not modified base64 */
	BAD_DECODE("&U=-");		/* padding */
	BAD_DECODE("&AGE-");		/* "a" must be sent directly */
	BAD_DECODE("&ACY-");		/* "&" must be "&-" */
	BAD_DECODE("&AOQ-&APY-");	/* two runs: shorter as one */
	BAD_DECODE("&AOR-");		/* non-zero leftover bits */
	BAD_DECODE("&AOQA-");		/* 6 leftover bits: not shortest */
	BAD_DECODE("&2D0-");		/* lone high surrogate */
	BAD_DECODE("&3gA-");		/* lone low surrogate */
	BAD_DECODE("&AAA-");		/* U+0000 */
	BAD_DECODE("a\xc3\xa4");	/* raw 8-bit */
	BAD_DECODE("a\tb");		/* control */
	/* invalid UTF-8 cannot be encoded */
	BAD_ENCODE("\xc3");
	BAD_ENCODE("\xc0\xaf");		/* overlong '/' */
	BAD_ENCODE("\xed\xa0\x80");	/* surrogate in UTF-8 */
	BAD_ENCODE("\xf4\x90\x80\x80");	/* > U+10FFFF */
	BAD_ENCODE("a\0b");
}

static void test_mailbox_from_client(void)
{
	struct imap_session s;
	struct ma_arena *a = ma_arena_create(0);
	struct ma_error_info err;
	char *name;

	memset(&s, 0, sizeof(s));
	name = imap_mailbox_from_client(&s, a, "inbox", 5, &err);
	CHECK(name != NULL && strcmp(name, "INBOX") == 0, "inbox");
	name = imap_mailbox_from_client(&s, a, "Inbox/Sub", 9, &err);
	CHECK(name != NULL && strcmp(name, "INBOX/Sub") == 0, "Inbox/Sub");
	name = imap_mailbox_from_client(&s, a, "INBOXES", 7, &err);
	CHECK(name != NULL && strcmp(name, "INBOXES") == 0, "INBOXES");
	name = imap_mailbox_from_client(&s, a, "&AOQ-/x", 7, &err);
	CHECK(name != NULL && strcmp(name, "\xc3\xa4/x") == 0, "decoded");
	name = imap_mailbox_from_client(&s, a, "&AGE-", 5, &err);
	CHECK(name == NULL && err.code == MA_ERR_BADARGS, "bad utf7");
	name = imap_mailbox_from_client(&s, a, "a/../b", 6, &err);
	CHECK(name == NULL && err.code == MA_ERR_BADARGS, "dot-dot");
	name = imap_mailbox_from_client(&s, a, "/abs", 4, &err);
	CHECK(name == NULL && err.code == MA_ERR_BADARGS, "leading /");
	name = imap_mailbox_from_client(&s, a, "a//b", 4, &err);
	CHECK(name == NULL, "empty component");
	name = imap_mailbox_from_client(&s, a, "", 0, &err);
	CHECK(name == NULL, "empty");
	name = imap_mailbox_from_client(&s, a, "a\0b", 3, &err);
	CHECK(name == NULL, "NUL");
	/* UTF8=ACCEPT: raw UTF-8, still checked */
	s.utf8_names = true;
	name = imap_mailbox_from_client(&s, a, "\xc3\xa4", 2, &err);
	CHECK(name != NULL && strcmp(name, "\xc3\xa4") == 0, "raw utf8");
	name = imap_mailbox_from_client(&s, a, "\xc3", 1, &err);
	CHECK(name == NULL, "bad utf8");
	ma_arena_destroy(&a);
}

int main(void)
{
	test_codec();
	test_mailbox_from_client();
	if (failures > 0) {
		fprintf(stderr, "%d failure(s)\n", failures);
		return 1;
	}
	printf("test-imap-utf7: all passed\n");
	return 0;
}
