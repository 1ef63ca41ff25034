/*
 * test-imap-fetch.c - unit tests for the message-data side of imap.so:
 * BODYSTRUCTURE / BODY / ENVELOPE formatting on hand-built MIME trees and
 * on messages run through the core parser, IMAP part numbering, fetch
 * attribute parsing, flag lists, UID set compression, search key parsing,
 * search dates and case-folded matching.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap-fetch.h"

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
		failures++; \
	} \
} while (0)

static void check_str(int line, const struct ma_buf *b, const char *want)
{
	size_t len = ma_buf_len(b);

	if (len != strlen(want) || memcmp(ma_buf_ptr(b), want, len) != 0) {
		fprintf(stderr, "%s:%d: FAILED:\n  got:  %.*s\n  want: %s\n",
			__FILE__, line, (int)len, (const char *)ma_buf_ptr(b), want);
		failures++;
	}
}
#define CHECK_BUF(b, want) check_str(__LINE__, (b), (want))

static struct ma_mime_param charset_utf8[] = { { "charset", "utf-8" } };
static struct ma_mime_param boundary[] = { { "boundary", "b1" } };
static struct ma_mime_param fname[] = { { "filename", "a \"q\".txt" } };

static void test_nstring(void)
{
	struct ma_buf b;

	ma_buf_init(&b, 1 << 20);
	imap_fetch_nstring(&b, NULL, 0);
	CHECK_BUF(&b, "NIL");
	ma_buf_clear(&b);
	imap_fetch_nstring(&b, "a \"b\" \\c", 8);
	CHECK_BUF(&b, "\"a \\\"b\\\" \\\\c\"");
	ma_buf_clear(&b);
	imap_fetch_nstring(&b, "caf\xc3\xa9", 5);
	CHECK_BUF(&b, "{5}\r\ncaf\xc3\xa9");
	ma_buf_clear(&b);
	imap_fetch_nstring(&b, "a\r\nb", 4);
	CHECK_BUF(&b, "{4}\r\na\r\nb");
	ma_buf_clear(&b);
	imap_fetch_nstring(&b, "", 0);
	CHECK_BUF(&b, "\"\"");
	ma_buf_free(&b);
}

static void test_bodystructure_fake(void)
{
	struct ma_arena *a = ma_arena_create(0);
	struct ma_buf b;
	struct ma_mime_part parts[4], root, msg, inner;
	struct ma_mime_envelope env;
	uint32_t nums[3];

	memset(parts, 0, sizeof(parts));
	memset(&root, 0, sizeof(root));
	memset(&msg, 0, sizeof(msg));
	memset(&inner, 0, sizeof(inner));
	memset(&env, 0, sizeof(env));
	ma_buf_init(&b, 1 << 20);

	/* text/plain without parameters: default charset */
	parts[0].type = "text";
	parts[0].subtype = "plain";
	parts[0].encoding = "7bit";
	parts[0].body_size = 12;
	parts[0].body_lines = 1;
	imap_fetch_bodystructure(&b, a, &parts[0], false);
	CHECK_BUF(&b, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 12 1)");
	ma_buf_clear(&b);
	imap_fetch_bodystructure(&b, a, &parts[0], true);
	CHECK_BUF(&b, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 12 1 NIL NIL NIL NIL)");

	/* html with charset, quoted-printable, language list, location */
	parts[1].type = "text";
	parts[1].subtype = "html";
	parts[1].params = charset_utf8;
	parts[1].n_params = 1;
	parts[1].encoding = "quoted-printable";
	parts[1].body_size = 40;
	parts[1].body_lines = 2;
	parts[1].id = "<id1@x>";
	parts[1].description = "the html";
	parts[1].language = "en, de";
	parts[1].location = "http://x/y";
	parts[1].md5 = "Q2hlY2sgSW50ZWdyaXR5IQ==";
	ma_buf_clear(&b);
	imap_fetch_bodystructure(&b, a, &parts[1], true);
	CHECK_BUF(&b, "(\"TEXT\" \"HTML\" (\"CHARSET\" \"utf-8\") \"<id1@x>\" \"the html\" "
		  "\"QUOTED-PRINTABLE\" 40 2 \"Q2hlY2sgSW50ZWdyaXR5IQ==\" NIL (\"en\" \"de\") "
		  "\"http://x/y\")");

	/* attachment: basic part with disposition, no lines */
	parts[2].type = "application";
	parts[2].subtype = "octet-stream";
	parts[2].encoding = "base64";
	parts[2].body_size = 100;
	parts[2].disposition = "attachment";
	parts[2].disposition_params = fname;
	parts[2].n_disposition_params = 1;
	parts[2].language = "fr";
	ma_buf_clear(&b);
	imap_fetch_bodystructure(&b, a, &parts[2], true);
	CHECK_BUF(&b, "(\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"BASE64\" 100 NIL "
		  "(\"ATTACHMENT\" (\"FILENAME\" \"a \\\"q\\\".txt\")) \"fr\" NIL)");

	/* message/rfc822 holding a single text part */
	inner = parts[0];
	inner.envelope = &env;
	env.subject = "inner";
	env.message_id = "<m@x>";
	msg.type = "message";
	msg.subtype = "rfc822";
	msg.encoding = "7bit";
	msg.body_size = 300;
	msg.body_lines = 9;
	msg.children = &inner;
	msg.n_children = 1;
	ma_buf_clear(&b);
	imap_fetch_bodystructure(&b, a, &msg, false);
	CHECK_BUF(&b, "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 300 "
		  "(NIL \"inner\" NIL NIL NIL NIL NIL NIL NIL \"<m@x>\") "
		  "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 12 1) 9)");

	/* multipart/mixed of them */
	parts[3] = msg;
	root.type = "multipart";
	root.subtype = "mixed";
	root.params = boundary;
	root.n_params = 1;
	root.children = parts;
	root.n_children = 4;
	ma_buf_clear(&b);
	imap_fetch_bodystructure(&b, a, &root, false);
	CHECK(ma_buf_len(&b) > 0 && memcmp(ma_buf_ptr(&b), "((\"TEXT\" \"PLAIN\"", 16) == 0);
	CHECK(memmem(ma_buf_ptr(&b), ma_buf_len(&b), " 9) \"MIXED\")", 12) != NULL);
	ma_buf_clear(&b);
	imap_fetch_bodystructure(&b, a, &root, true);
	CHECK(memmem(ma_buf_ptr(&b), ma_buf_len(&b),
		     " \"MIXED\" (\"BOUNDARY\" \"b1\") NIL NIL NIL)", 38) != NULL);

	/* an empty multipart still yields a valid body */
	root.n_children = 0;
	ma_buf_clear(&b);
	imap_fetch_bodystructure(&b, a, &root, false);
	CHECK_BUF(&b, "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 0 0) \"MIXED\")");
	root.n_children = 4;

	/* part numbers */
	nums[0] = 1;
	CHECK(imap_fetch_find_part(&root, nums, 1) == &parts[0]);
	nums[0] = 4;
	CHECK(imap_fetch_find_part(&root, nums, 1) == &parts[3]);
	nums[1] = 1;
	CHECK(imap_fetch_find_part(&root, nums, 2) == &inner);
	nums[1] = 2;
	CHECK(imap_fetch_find_part(&root, nums, 2) == NULL);
	nums[0] = 5;
	CHECK(imap_fetch_find_part(&root, nums, 1) == NULL);
	nums[0] = 1;
	nums[1] = 1;
	CHECK(imap_fetch_find_part(&root, nums, 2) == NULL);	/* text has no parts */
	nums[0] = 1;
	CHECK(imap_fetch_find_part(&parts[0], nums, 1) == &parts[0]);	/* single part: 1 */
	nums[0] = 2;
	CHECK(imap_fetch_find_part(&parts[0], nums, 1) == NULL);
	CHECK(imap_fetch_find_part(&root, nums, 0) == &root);

	ma_buf_free(&b);
	ma_arena_destroy(&a);
}

static void test_uidset(void)
{
	struct ma_buf b;
	uint32_t u1[] = { 1, 2, 3, 5, 7, 8 };
	uint32_t u2[] = { 9 };

	ma_buf_init(&b, 1024);
	imap_fetch_uidset(&b, u1, 6);
	CHECK_BUF(&b, "1:3,5,7:8");
	ma_buf_clear(&b);
	imap_fetch_uidset(&b, u2, 1);
	CHECK_BUF(&b, "9");
	ma_buf_free(&b);
}

static void test_fetch_items(void)
{
	struct ma_arena *a = ma_arena_create(0);
	struct imap_fetch_item it;
	const char *s;

#define PARSE(str) imap_fetch_parse_item(a, (str), strlen(str), &it)
	CHECK(PARSE("flags") == 0 && it.kind == IMAP_FI_FLAGS);
	CHECK(PARSE("RFC822.SIZE") == 0 && it.kind == IMAP_FI_RFC822_SIZE);
	CHECK(PARSE("BODYSTRUCTURE") == 0 && it.kind == IMAP_FI_BODYSTRUCTURE);
	CHECK(PARSE("BODY[]") == 0 && it.kind == IMAP_FI_SECTION && !it.peek &&
	      it.spec == IMAP_SEC_ALL && strcmp(it.name, "BODY[]") == 0);
	CHECK(PARSE("body.peek[1.2.3]<0.10>") == 0 && it.peek && it.n_nums == 3 &&
	      it.nums[2] == 3 && it.partial && it.origin == 0 && it.count == 10 &&
	      strcmp(it.name, "BODY[1.2.3]<0>") == 0);
	CHECK(PARSE("BODY[1.2.HEADER]") == 0 && it.n_nums == 2 && it.spec == IMAP_SEC_HEADER &&
	      strcmp(it.name, "BODY[1.2.HEADER]") == 0);
	CHECK(PARSE("BODY[2.MIME]") == 0 && it.spec == IMAP_SEC_MIME);
	CHECK(PARSE("BODY[MIME]") < 0);
	CHECK(PARSE("BODY[TEXT]<5.7>") == 0 && it.spec == IMAP_SEC_TEXT &&
	      strcmp(it.name, "BODY[TEXT]<5>") == 0);
	s = "BODY.PEEK[HEADER.FIELDS (From \"To\" subject)]";
	CHECK(PARSE(s) == 0 && it.spec == IMAP_SEC_FIELDS && it.n_fields == 3 &&
	      strcmp(it.name, "BODY[HEADER.FIELDS (FROM TO SUBJECT)]") == 0);
	CHECK(PARSE("BODY[1.HEADER.FIELDS.NOT (Received)]") == 0 &&
	      it.spec == IMAP_SEC_FIELDS_NOT && it.n_nums == 1 &&
	      strcmp(it.name, "BODY[1.HEADER.FIELDS.NOT (RECEIVED)]") == 0);
	/* bad syntax */
	CHECK(PARSE("BODY[HEADER.FIELDS ()]") < 0);
	CHECK(PARSE("BODY[HEADER.FIELDS]") < 0);
	CHECK(PARSE("BODY[0]") < 0);
	CHECK(PARSE("BODY[1.]") < 0);
	CHECK(PARSE("BODY[]<0.0>") < 0);
	CHECK(PARSE("BODY[]<1>") < 0);
	CHECK(PARSE("BODY[]x") < 0);
	CHECK(PARSE("BODY[FOO]") < 0);
	CHECK(PARSE("BODY[") < 0);
	CHECK(PARSE("BODY[1.2") < 0);
	CHECK(PARSE("BODY[99999999999]") < 0);
	CHECK(PARSE("RFC822.FOO") < 0);
	CHECK(PARSE("") < 0);
#undef PARSE
	ma_arena_destroy(&a);
}

static struct imap_arg atom(const char *s)
{
	struct imap_arg x;

	memset(&x, 0, sizeof(x));
	x.type = IMAP_ARG_ATOM;
	x.str = s;
	x.len = strlen(s);
	return x;
}

static struct imap_arg qstr(const char *s)
{
	struct imap_arg x = atom(s);

	x.type = IMAP_ARG_STRING;
	return x;
}

static void test_flags(void)
{
	struct ma_arena *a = ma_arena_create(0);
	struct imap_flag_list fl;
	struct imap_arg inner[4], list;
	const char *err = NULL;

	inner[0] = atom("\\Seen");
	inner[1] = atom("\\deleted");
	inner[2] = atom("$Label1");
	inner[3] = atom("$label1");
	memset(&list, 0, sizeof(list));
	list.type = IMAP_ARG_LIST;
	list.list = inner;
	list.list_count = 4;
	CHECK(imap_flags_parse(a, &list, 1, &fl, &err) == 0);
	CHECK(fl.flags == (MA_FLAG_SEEN | MA_FLAG_DELETED));
	CHECK(fl.n_keywords == 1 && strcmp(fl.keywords[0], "$Label1") == 0);
	/* bare flags */
	CHECK(imap_flags_parse(a, inner, 2, &fl, &err) == 0 && fl.flags == (MA_FLAG_SEEN | MA_FLAG_DELETED));
	inner[0] = atom("\\Recent");
	CHECK(imap_flags_parse(a, inner, 1, &fl, &err) < 0);
	inner[0] = atom("\\Bogus");
	CHECK(imap_flags_parse(a, inner, 1, &fl, &err) < 0);
	inner[0] = atom("bad]kw");
	CHECK(imap_flags_parse(a, inner, 1, &fl, &err) < 0);
	inner[0] = qstr("Quoted");
	CHECK(imap_flags_parse(a, inner, 1, &fl, &err) < 0);
	CHECK(imap_keyword_valid("$Junk", 5));
	CHECK(!imap_keyword_valid("a b", 3));
	CHECK(!imap_keyword_valid("caf\xc3\xa9", 5));
	CHECK(!imap_keyword_valid("", 0));
	ma_arena_destroy(&a);
}

static void test_search_helpers(void)
{
	CHECK(imap_search_parse_date("1-Feb-1994", 10) == 8797);
	CHECK(imap_search_parse_date("01-feb-1994", 11) == 8797);
	CHECK(imap_search_parse_date("1-Jan-1970", 10) == 0);
	CHECK(imap_search_parse_date("29-Feb-2024", 11) == 19782);
	CHECK(imap_search_parse_date("32-Jan-2020", 11) < 0);
	CHECK(imap_search_parse_date("1-Foo-2020", 10) < 0);
	CHECK(imap_search_parse_date("1-Jan-20", 8) < 0);
	CHECK(imap_search_parse_date("", 0) < 0);
	CHECK(imap_search_contains("Hello World", 11, "WORLD", 5));
	CHECK(!imap_search_contains("Hello World", 11, "worlds", 6));
	CHECK(imap_search_contains("anything", 8, "", 0));
	/* Latin-1 and Cyrillic folding */
	CHECK(imap_search_contains("Gr\xc3\x9c\xc3\x9f" "e", 6, "gr\xc3\xbc", 4));
	CHECK(imap_search_contains("\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", 12,
				   "\xd0\xbf\xd0\xa0\xd0\x98", 6));
	CHECK(imap_search_contains("\xc5\x81\xc3\xb3" "d\xc5\xba", 7, "\xc5\x82\xc3\x93", 4));
}

static void test_search_parse(void)
{
	struct ma_arena *a = ma_arena_create(0);
	struct imap_selected sel;
	struct ma_msg msgs[3];
	const char *kw[] = { "$Important" };
	struct imap_search_key *key;
	const char *err = NULL;
	struct imap_arg args[8], list[2], deep[IMAP_SEARCH_DEPTH_MAX + 8];
	unsigned i;

	memset(&sel, 0, sizeof(sel));
	memset(msgs, 0, sizeof(msgs));
	for (i = 0; i < 3; i++)
		msgs[i].uid = 10 + i;
	sel.msgs = msgs;
	sel.count = 3;
	sel.keywords = kw;
	sel.n_keywords = 1;

#define P(n) imap_search_parse(a, &sel, args, (n), &key, &err)
	args[0] = atom("ALL");
	CHECK(P(1) == 0 && !imap_search_needs_text(key));
	args[0] = atom("SEEN");
	args[1] = atom("UNDELETED");
	args[2] = atom("KEYWORD");
	args[3] = atom("$important");
	args[4] = atom("LARGER");
	args[5] = atom("100");
	CHECK(P(6) == 0 && !imap_search_needs_text(key));
	args[0] = atom("OR");
	args[1] = atom("FROM");
	args[2] = qstr("bob");
	args[3] = atom("NOT");
	args[4] = atom("SUBJECT");
	args[5] = atom("x");
	CHECK(P(6) == 0 && imap_search_needs_text(key));
	args[0] = atom("OR");
	args[1] = atom("SEEN");
	CHECK(P(2) < 0);
	args[0] = atom("BOGUS");
	CHECK(P(1) < 0);
	args[0] = atom("SINCE");
	args[1] = atom("1-Feb-1994");
	args[2] = atom("SENTBEFORE");
	args[3] = qstr("10-Mar-2000");
	CHECK(P(4) == 0 && imap_search_needs_text(key));
	args[0] = atom("BEFORE");
	args[1] = atom("1994-02-01");
	CHECK(P(2) < 0);
	args[0] = atom("1:2,*");
	args[1] = atom("UID");
	args[2] = atom("10:*");
	CHECK(P(3) == 0);
	args[0] = atom("HEADER");
	args[1] = atom("X-Spam");
	args[2] = qstr("");
	CHECK(P(3) == 0 && imap_search_needs_text(key));
	args[1] = atom("Bad:Name");
	CHECK(P(3) < 0);
	args[0] = atom("KEYWORD");
	args[1] = atom("\\Seen");
	CHECK(P(2) == 0);
	args[0] = atom("LARGER");
	args[1] = atom("x1");
	CHECK(P(2) < 0);
	args[0] = atom("TEXT");
	CHECK(P(1) < 0);
	/* groups */
	list[0] = atom("SEEN");
	list[1] = atom("FLAGGED");
	memset(&args[0], 0, sizeof(args[0]));
	args[0].type = IMAP_ARG_LIST;
	args[0].list = list;
	args[0].list_count = 2;
	CHECK(P(1) == 0);
	args[0].list_count = 0;
	CHECK(P(1) < 0);
	/* nesting bound: ((((...SEEN...)))) */
	for (i = 0; i < IMAP_SEARCH_DEPTH_MAX + 8; i++) {
		memset(&deep[i], 0, sizeof(deep[i]));
		if (i + 1 < IMAP_SEARCH_DEPTH_MAX + 8) {
			deep[i].type = IMAP_ARG_LIST;
			deep[i].list = &deep[i + 1];
			deep[i].list_count = 1;
		} else {
			deep[i] = atom("SEEN");
		}
	}
	CHECK(imap_search_parse(a, &sel, deep, 1, &key, &err) < 0);
	CHECK(imap_search_parse(a, &sel, &deep[12], 1, &key, &err) == 0);
	/* NOT NOT NOT ... bound */
	{
		struct imap_arg *nots = ma_arena_alloc(a, sizeof(*nots) * 200);

		for (i = 0; i < 199; i++)
			nots[i] = atom("NOT");
		nots[199] = atom("ALL");
		CHECK(imap_search_parse(a, &sel, nots, 200, &key, &err) < 0);
		CHECK(imap_search_parse(a, &sel, nots + 190, 10, &key, &err) == 0);
	}
	/* key count bound */
	{
		struct imap_arg *many = ma_arena_alloc(a, sizeof(*many) * (IMAP_SEARCH_KEYS_MAX + 10));

		for (i = 0; i < IMAP_SEARCH_KEYS_MAX + 10; i++)
			many[i] = atom("SEEN");
		CHECK(imap_search_parse(a, &sel, many, IMAP_SEARCH_KEYS_MAX + 10, &key, &err) < 0);
	}
#undef P
	ma_arena_destroy(&a);
}

/* The real parser (core/lib/mime.c) feeding our formatting. */
static void test_real_messages(void)
{
	static const char simple[] =
		"From: \"Joe Q. Public\" <john.q.public@example.com>\r\n"
		"To: Mary Smith <mary@x.test>, jdoe@example.org\r\n"
		"Cc: Undisclosed recipients:;\r\n"
		"Subject: =?UTF-8?B?w6lsw6h2ZQ==?=\r\n"
		"Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
		"Message-ID: <1234@local.machine.example>\r\n"
		"\r\n"
		"Hi.\r\n";
	static const char multi[] =
		"From: a@b.c\r\n"
		"Subject: multi\r\n"
		"MIME-Version: 1.0\r\n"
		"Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
		"\r\n"
		"--XX\r\n"
		"Content-Type: text/plain; charset=utf-8\r\n"
		"\r\n"
		"body one\r\n"
		"--XX\r\n"
		"Content-Type: message/rfc822\r\n"
		"\r\n"
		"From: inner@b.c\r\n"
		"Subject: inner\r\n"
		"Content-Type: multipart/alternative; boundary=YY\r\n"
		"\r\n"
		"--YY\r\n"
		"Content-Type: text/plain\r\n"
		"\r\n"
		"plain\r\n"
		"--YY\r\n"
		"Content-Type: text/html\r\n"
		"\r\n"
		"<b>html</b>\r\n"
		"--YY--\r\n"
		"\r\n"
		"--XX--\r\n";
	struct ma_arena *a = ma_arena_create(0);
	struct ma_mime_part *root;
	const struct ma_mime_part *p;
	struct ma_buf b;
	uint32_t nums[3];

	ma_buf_init(&b, 1 << 20);
	root = ma_mime_parse(a, (const unsigned char *)simple, sizeof(simple) - 1);
	CHECK(root != NULL);
	if (root == NULL || root->envelope == NULL) {
		fprintf(stderr, "real parser not available yet: skipped\n");
		goto out;
	}
	imap_fetch_envelope(&b, a, root->envelope);
	CHECK_BUF(&b, "(\"Tue, 1 Jul 2003 10:52:37 +0200\" \"=?UTF-8?B?w6lsw6h2ZQ==?=\" "
		  "((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\")) "
		  "((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\")) "
		  "((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\")) "
		  "((\"Mary Smith\" NIL \"mary\" \"x.test\")(NIL NIL \"jdoe\" \"example.org\")) "
		  "((NIL NIL \"Undisclosed recipients\" NIL)(NIL NIL NIL NIL)) "
		  "NIL NIL \"<1234@local.machine.example>\")");
	ma_buf_clear(&b);
	imap_fetch_bodystructure(&b, a, root, true);
	/* the parser itself supplies the RFC 2045 default charset */
	CHECK_BUF(&b, "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 5 1 NIL NIL NIL NIL)");

	root = ma_mime_parse(a, (const unsigned char *)multi, sizeof(multi) - 1);
	ma_buf_clear(&b);
	imap_fetch_bodystructure(&b, a, root, false);
	CHECK_BUF(&b, "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 8 1)"
		  "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 180 "
		  "(NIL \"inner\" ((NIL NIL \"inner\" \"b.c\")) ((NIL NIL \"inner\" \"b.c\")) "
		  "((NIL NIL \"inner\" \"b.c\")) NIL NIL NIL NIL NIL) "
		  "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 5 1)"
		  "(\"TEXT\" \"HTML\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 11 1) \"ALTERNATIVE\") 13)"
		  " \"MIXED\")");
	nums[0] = 2;
	nums[1] = 2;
	p = imap_fetch_find_part(root, nums, 2);
	CHECK(p != NULL && p->subtype != NULL && strcmp(p->subtype, "html") == 0);
	if (p != NULL)
		CHECK(p->body_size == 11 && memcmp(multi + p->body_offset, "<b>html</b>", 11) == 0);
	nums[0] = 2;
	p = imap_fetch_find_part(root, nums, 1);
	CHECK(p != NULL && imap_fetch_part_is_message(p));
out:
	ma_buf_free(&b);
	ma_arena_destroy(&a);
}

/* Random and truncated input never crashes the parsers (run under ASan). */
static void test_robustness(void)
{
	static const char *const seeds[] = {
		"BODY.PEEK[1.2.HEADER.FIELDS.NOT (A \"B\" C)]<10.20>",
		"BODY[3.2.MIME]", "BODY[HEADER.FIELDS (\"x\")]", "BODY[]<0.1>",
	};
	static const char alphabet[] = "BODY.PEEK[]<>()0123456789 \"HEADERFIELDSNOTMIXT.";
	struct ma_arena *a = ma_arena_create(0);
	struct imap_fetch_item it;
	char buf[128];
	unsigned i, j, seed = 12345;

	for (i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		size_t len = strlen(seeds[i]);

		/* every prefix: no crash, and a cut inside the brackets is bad */
		for (j = 0; j < len; j++) {
			int r = imap_fetch_parse_item(a, seeds[i], j, &it);

			if (j > 5 && memchr(seeds[i], ']', j) == NULL)
				CHECK(r < 0);
		}
		CHECK(imap_fetch_parse_item(a, seeds[i], len, &it) == 0);
	}
	for (i = 0; i < 20000; i++) {
		size_t len = 0, want;

		seed = seed * 1103515245u + 12345u;
		want = (seed >> 16) % sizeof(buf);
		memcpy(buf, "BODY[", 5);
		len = (seed & 1) ? 5 : 0;
		while (len < want) {
			seed = seed * 1103515245u + 12345u;
			buf[len++] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		(void)imap_fetch_parse_item(a, buf, len, &it);
		(void)imap_search_parse_date(buf, len);
		(void)imap_search_contains(buf, len, "ab", 2);
		if (i % 1000 == 0)
			ma_arena_reset(a);
	}
	ma_arena_destroy(&a);
}

int main(void)
{
	test_nstring();
	test_bodystructure_fake();
	test_uidset();
	test_fetch_items();
	test_flags();
	test_search_helpers();
	test_search_parse();
	test_real_messages();
	test_robustness();
	if (failures > 0) {
		fprintf(stderr, "%d check(s) failed\n", failures);
		return 1;
	}
	printf("test-imap-fetch: all passed\n");
	return 0;
}
