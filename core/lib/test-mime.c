/*
 * test-mime.c - the MIME parser on a corpus of tricky messages built here
 * (nested multiparts, message/rfc822 with a multipart inside, RFC 2231
 * parameters, missing and broken boundaries, a boundary that is a prefix of
 * another, no trailing newline, bare LF, 8-bit headers, a 100 kB header
 * line, 1000-deep nesting, empty and header-only messages) with exact
 * offsets, sizes, line counts and types; the cache round trip; every
 * truncation and 10,000 random mutations of the corpus (structure
 * invariants hold, nothing crashes) and random / damaged cache blobs;
 * section lookup; RFC 2047 (section 8 examples), quoted-printable, base64,
 * charset conversion, address and date vectors; and the parse cost on a
 * 10 MB message and 1,000 small ones (printed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mailaccess/mailaccess.h>

static int failures;
#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
	failures++; } } while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
	if ((a_ == NULL) != (b_ == NULL) || (a_ != NULL && strcmp(a_, b_) != 0)) { \
	fprintf(stderr, "%s:%d: FAILED: %s = \"%s\", want \"%s\"\n", __FILE__, \
		__LINE__, #a, a_ != NULL ? a_ : "(null)", b_ != NULL ? b_ : "(null)"); \
	failures++; } } while (0)

static struct ma_arena *arena;

static size_t off(const char *msg, const char *marker)
{
	const char *p = strstr(msg, marker);
	if (p == NULL) {
		fprintf(stderr, "marker %s not found\n", marker);
		failures++;
		return 0;
	}
	return (size_t)(p - msg);
}

static struct ma_mime_part *parse(const char *msg)
{
	return ma_mime_parse(arena, (const unsigned char *)msg, strlen(msg));
}

/* Type, header [ho, ho+hs), body [bo, bo+bs), lines. */
static void check_part(int line, const struct ma_mime_part *p, const char *type,
		       const char *subtype, size_t ho, size_t hs, size_t bo,
		       size_t bs, unsigned lines)
{
	if (p == NULL) {
		fprintf(stderr, "line %d: part missing\n", line);
		failures++;
		return;
	}
	if (strcmp(p->type, type) != 0 || strcmp(p->subtype, subtype) != 0 ||
	    p->header_offset != ho || p->header_size != hs ||
	    p->body_offset != bo || p->body_size != bs || p->body_lines != lines) {
		fprintf(stderr, "line %d: got %s/%s hdr %llu+%llu body %llu+%llu lines %u; "
			"want %s/%s hdr %zu+%zu body %zu+%zu lines %u\n", line,
			p->type, p->subtype, (unsigned long long)p->header_offset,
			(unsigned long long)p->header_size,
			(unsigned long long)p->body_offset,
			(unsigned long long)p->body_size, p->body_lines,
			type, subtype, ho, hs, bo, bs, lines);
		failures++;
	}
}
#define PART(p, t, s, ho, hs, bo, bs, l) check_part(__LINE__, p, t, s, ho, hs, bo, bs, l)

static const char *param(const struct ma_mime_part *p, const char *name)
{
	for (unsigned i = 0; i < p->n_params; i++)
		if (strcmp(p->params[i].name, name) == 0)
			return p->params[i].value;
	return NULL;
}

/* ---------------- invariants and round trip ---------------- */

static bool str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool params_eq(const struct ma_mime_param *a, unsigned na,
		      const struct ma_mime_param *b, unsigned nb)
{
	if (na != nb)
		return false;
	for (unsigned i = 0; i < na; i++)
		if (!str_eq(a[i].name, b[i].name) || !str_eq(a[i].value, b[i].value))
			return false;
	return true;
}

static bool parts_eq(const struct ma_mime_part *a, const struct ma_mime_part *b)
{
	if (a->header_offset != b->header_offset || a->header_size != b->header_size ||
	    a->body_offset != b->body_offset || a->body_size != b->body_size ||
	    a->body_lines != b->body_lines || !str_eq(a->type, b->type) ||
	    !str_eq(a->subtype, b->subtype) ||
	    !params_eq(a->params, a->n_params, b->params, b->n_params) ||
	    !str_eq(a->id, b->id) || !str_eq(a->description, b->description) ||
	    !str_eq(a->md5, b->md5) || !str_eq(a->location, b->location) ||
	    !str_eq(a->encoding, b->encoding) || !str_eq(a->disposition, b->disposition) ||
	    !params_eq(a->disposition_params, a->n_disposition_params,
		       b->disposition_params, b->n_disposition_params) ||
	    !str_eq(a->language, b->language) || a->n_children != b->n_children ||
	    (a->envelope == NULL) != (b->envelope == NULL))
		return false;
	if (a->envelope != NULL) {
		const struct ma_mime_envelope *x = a->envelope, *y = b->envelope;
		if (!str_eq(x->date, y->date) || !str_eq(x->subject, y->subject) ||
		    !str_eq(x->from, y->from) || !str_eq(x->sender, y->sender) ||
		    !str_eq(x->reply_to, y->reply_to) || !str_eq(x->to, y->to) ||
		    !str_eq(x->cc, y->cc) || !str_eq(x->bcc, y->bcc) ||
		    !str_eq(x->in_reply_to, y->in_reply_to) ||
		    !str_eq(x->message_id, y->message_id))
			return false;
	}
	for (unsigned i = 0; i < a->n_children; i++)
		if (!parts_eq(&a->children[i], &b->children[i]))
			return false;
	return true;
}

static unsigned count_lines(const unsigned char *p, size_t n)
{
	unsigned l = 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\n')
			l++;
	if (n > 0 && p[n - 1] != '\n')
		l++;
	return l;
}

/* Structure rules every parse must keep, whatever the input. */
static bool invariants(const struct ma_mime_part *p, const unsigned char *msg,
		       size_t size, unsigned depth, unsigned *count)
{
	if (++*count > 2 * MA_MIME_PARTS_MAX || depth > MA_MIME_DEPTH_MAX + 1)
		return false;
	if (p->type == NULL || p->subtype == NULL || p->encoding == NULL ||
	    p->header_offset + p->header_size != p->body_offset ||
	    p->body_offset + p->body_size > size ||
	    p->body_lines != count_lines(msg + p->body_offset, p->body_size))
		return false;
	if (strcmp(p->type, "multipart") == 0 && p->n_children == 0)
		return false;
	if (strcmp(p->type, "message") == 0 && p->n_children > 0 &&
	    (p->n_children != 1 || p->children[0].envelope == NULL))
		return false;
	uint64_t prev = p->body_offset;
	for (unsigned i = 0; i < p->n_children; i++) {
		const struct ma_mime_part *c = &p->children[i];
		if (c->header_offset < prev ||
		    c->body_offset + c->body_size > p->body_offset + p->body_size ||
		    !invariants(c, msg, size, depth + 1, count))
			return false;
		prev = c->body_offset + c->body_size;
	}
	return true;
}

/* Parse, check invariants, serialize, deserialize, compare. */
static bool parse_check(const unsigned char *msg, size_t size)
{
	struct ma_arena *a = ma_arena_create(0);
	struct ma_mime_part *root = ma_mime_parse(a, msg, size), *back;
	struct ma_buf b;
	unsigned count = 0;
	bool ok = root != NULL && root->header_offset == 0 &&
		root->body_offset + root->body_size == size &&
		invariants(root, msg, size, 0, &count);

	ma_buf_init(&b, 64 << 20);
	ok = ok && ma_mime_serialize(root, &b) == 0;
	back = ok ? ma_mime_deserialize(a, ma_buf_ptr(&b), ma_buf_len(&b)) : NULL;
	ok = ok && back != NULL && parts_eq(root, back);
	ma_buf_free(&b);
	ma_arena_destroy(&a);
	return ok;
}

/* ---------------- the corpus ---------------- */

#define NESTED \
	"From: Alice <alice@example.com>\r\n" \
	"Subject: nested\r\n" \
	"Content-Type: multipart/mixed; boundary=\"outer\"\r\n" \
	"\r\n" \
	"preamble\r\n" \
	"--outer\r\n" \
	"Content-Type: text/plain; charset=utf-8\r\n" \
	"\r\n" \
	"hello\r\n" \
	"world\r\n" \
	"--outer\r\n" \
	"Content-Type: multipart/alternative; boundary=inner\r\n" \
	"\r\n" \
	"--inner\r\n" \
	"\r\n" \
	"alt1\r\n" \
	"--inner\r\n" \
	"Content-Type: text/html\r\n" \
	"\r\n" \
	"<p>alt2</p>\r\n" \
	"--inner--\r\n" \
	"inner epilogue\r\n" \
	"--outer--\r\n" \
	"epilogue\r\n"

static void test_nested(void)
{
	const char *m = NESTED;
	struct ma_mime_part *r = parse(m);
	size_t len = strlen(m);

	PART(r, "multipart", "mixed", 0, off(m, "preamble"), off(m, "preamble"),
	     len - off(m, "preamble"), 20);
	CHECK_STR(param(r, "boundary"), "outer");
	CHECK(r->envelope != NULL);
	CHECK_STR(r->envelope->subject, "nested");
	CHECK_STR(r->envelope->from, "Alice <alice@example.com>");
	CHECK(r->envelope->to == NULL);
	CHECK(r->n_children == 2);
	if (r->n_children != 2)
		return;
	size_t h1 = off(m, "Content-Type: text/plain");
	PART(&r->children[0], "text", "plain", h1, off(m, "hello") - h1,
	     off(m, "hello"), strlen("hello\r\nworld"), 2);
	CHECK_STR(param(&r->children[0], "charset"), "utf-8");
	CHECK(r->children[0].envelope == NULL);
	const struct ma_mime_part *alt = &r->children[1];
	size_t h2 = off(m, "Content-Type: multipart/alternative");
	size_t b2 = off(m, "--inner\r\n\r\nalt1");
	PART(alt, "multipart", "alternative", h2, b2 - h2, b2,
	     off(m, "\r\n--outer--") - b2, 9);
	CHECK(alt->n_children == 2);
	if (alt->n_children != 2)
		return;
	size_t h3 = off(m, "\r\nalt1") ;
	PART(&alt->children[0], "text", "plain", h3, 2, h3 + 2, 4, 1);
	CHECK_STR(param(&alt->children[0], "charset"), "us-ascii");
	size_t h4 = off(m, "Content-Type: text/html");
	PART(&alt->children[1], "text", "html", h4, off(m, "<p>") - h4,
	     off(m, "<p>"), strlen("<p>alt2</p>"), 1);
	/* text/html without charset gets the default. */
	CHECK_STR(param(&alt->children[1], "charset"), "us-ascii");

	/* Sections. */
	CHECK(ma_mime_find_part(r, "") == r);
	CHECK(ma_mime_find_part(r, "1") == &r->children[0]);
	CHECK(ma_mime_find_part(r, "2") == alt);
	CHECK(ma_mime_find_part(r, "2.2") == &alt->children[1]);
	CHECK(ma_mime_find_part(r, "2.3") == NULL);
	CHECK(ma_mime_find_part(r, "3") == NULL);
	CHECK(ma_mime_find_part(r, "0") == NULL);
	CHECK(ma_mime_find_part(r, "1.1") == NULL);
	CHECK(ma_mime_find_part(r, "2.") == NULL);
	CHECK(ma_mime_find_part(r, "2.1.1") == NULL);
	CHECK(ma_mime_find_part(r, "01") == NULL);
	CHECK(ma_mime_find_part(r, "x") == NULL);
	CHECK(ma_mime_find_part(r, "99999999999999999999") == NULL);
}

#define RFC822 \
	"Subject: outer\r\n" \
	"Content-Type: multipart/mixed; boundary=\"b\"\r\n" \
	"\r\n" \
	"--b\r\n" \
	"\r\n" \
	"first\r\n" \
	"--b\r\n" \
	"Content-Type: message/rfc822\r\n" \
	"Content-Disposition: attachment; filename=\"fwd.eml\"\r\n" \
	"\r\n" \
	"Subject: inner subject\r\n" \
	"From: Bob <bob@example.org>\r\n" \
	"Message-ID: <id1@example.org>\r\n" \
	"Content-Type: multipart/alternative;\r\n" \
	"\tboundary=\"b2\"\r\n" \
	"\r\n" \
	"--b2\r\n" \
	"Content-Type: text/plain\r\n" \
	"\r\n" \
	"inner text\r\n" \
	"--b2\r\n" \
	"Content-Type: text/html\r\n" \
	"\r\n" \
	"<b>inner</b>\r\n" \
	"--b2--\r\n" \
	"--b--\r\n"

static void test_rfc822(void)
{
	const char *m = RFC822;
	struct ma_mime_part *r = parse(m);

	CHECK(r->n_children == 2);
	if (r->n_children != 2)
		return;
	const struct ma_mime_part *msg = &r->children[1];
	size_t hm = off(m, "Content-Type: message/rfc822");
	size_t bm = off(m, "Subject: inner");
	size_t em = off(m, "\r\n--b--");
	PART(msg, "message", "rfc822", hm, bm - hm, bm, em - bm, 15);
	CHECK_STR(msg->disposition, "attachment");
	CHECK(msg->n_disposition_params == 1 &&
	      strcmp(msg->disposition_params[0].name, "filename") == 0 &&
	      strcmp(msg->disposition_params[0].value, "fwd.eml") == 0);
	CHECK(msg->envelope == NULL);
	CHECK(msg->n_children == 1);
	if (msg->n_children != 1)
		return;
	const struct ma_mime_part *in = &msg->children[0];
	size_t bi = off(m, "--b2\r\nContent-Type: text/plain");
	PART(in, "multipart", "alternative", bm, bi - bm, bi, em - bi, 9);
	CHECK(in->envelope != NULL);
	CHECK_STR(in->envelope->subject, "inner subject");
	CHECK_STR(in->envelope->from, "Bob <bob@example.org>");
	CHECK_STR(in->envelope->message_id, "<id1@example.org>");
	CHECK_STR(param(in, "boundary"), "b2");
	CHECK(in->n_children == 2);
	CHECK(ma_mime_find_part(r, "2") == msg);
	CHECK(ma_mime_find_part(r, "2.1") == &in->children[0]);
	CHECK(ma_mime_find_part(r, "2.2") == &in->children[1]);
	CHECK(ma_mime_find_part(r, "2.3") == NULL);
	PART(ma_mime_find_part(r, "2.2"), "text", "html",
	     off(m, "Content-Type: text/html"), strlen("Content-Type: text/html\r\n\r\n"),
	     off(m, "<b>"), strlen("<b>inner</b>"), 1);

	/* A single-part embedded message: its part 1 is itself. */
	const char *m2 = "Content-Type: message/rfc822\r\n\r\nSubject: s\r\n\r\nbody";
	struct ma_mime_part *r2 = parse(m2);
	CHECK(r2->n_children == 1);
	CHECK(ma_mime_find_part(r2, "1") == r2);
	CHECK(ma_mime_find_part(r2, "1.1") == &r2->children[0]);
	CHECK(ma_mime_find_part(r2, "1.2") == NULL);
	PART(&r2->children[0], "text", "plain", 32, 14, 46, 4, 1);
	CHECK_STR(r2->children[0].envelope->subject, "s");

	/* base64 message/rfc822 is not descended: an empty child. */
	const char *m3 = "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA0KDQp4\r\n";
	struct ma_mime_part *r3 = parse(m3);
	CHECK(r3->n_children == 1 && r3->children[0].body_size == 0 &&
	      r3->children[0].envelope != NULL &&
	      r3->children[0].envelope->subject == NULL);
	CHECK_STR(r3->encoding, "base64");
}

static void test_rfc2231(void)
{
	const char *m =
		"Content-Type: application/x-stuff;\r\n"
		" title*0*=us-ascii'en'This%20is%20even%20more%20;\r\n"
		" title*1*=%2A%2A%2Afun%2A%2A%2A%20;\r\n"
		" title*2=\"isn't it!\"\r\n"
		"Content-Disposition: attachment; filename*=utf-8''%E2%82%AC%20rates.txt;\r\n"
		"  size=123 (a comment); Creation-Date=\"Wed, 12 Feb 1997 16:29:51 -0500\"\r\n"
		"\r\n"
		"x";
	struct ma_mime_part *r = parse(m);

	CHECK_STR(r->type, "application");
	CHECK_STR(r->subtype, "x-stuff");
	CHECK(r->n_params == 1);
	CHECK_STR(r->params[0].name, "title*");
	CHECK_STR(r->params[0].value,
		  "us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn't it!");
	CHECK_STR(r->disposition, "attachment");
	CHECK(r->n_disposition_params == 3);
	if (r->n_disposition_params == 3) {
		CHECK_STR(r->disposition_params[0].name, "filename*");
		CHECK_STR(r->disposition_params[0].value, "utf-8''%E2%82%AC%20rates.txt");
		CHECK_STR(r->disposition_params[1].name, "size");
		CHECK_STR(r->disposition_params[1].value, "123");
		CHECK_STR(r->disposition_params[2].name, "creation-date");
		CHECK_STR(r->disposition_params[2].value, "Wed, 12 Feb 1997 16:29:51 -0500");
	}
	/* Sections in any order, plain and extended mixed (Dovecot's
	 * rfc2231 test vector gives the same). */
	r = parse("Content-Type: a/b; key4*=us-ascii''foo; key*2=ba%; key2*0=a;"
		  " key3*0*=us-ascii'en'xyz; key*0=\"foo\"; key2*1*=b%25;"
		  " key3*1=plop%; key*1=baz\r\n\r\n");
	CHECK(r->n_params == 4);
	if (r->n_params == 4) {
		CHECK_STR(r->params[0].name, "key4*");
		CHECK_STR(r->params[0].value, "us-ascii''foo");
		CHECK_STR(r->params[1].name, "key");
		CHECK_STR(r->params[1].value, "foobazba%");
		CHECK_STR(r->params[2].name, "key2*");
		CHECK_STR(r->params[2].value, "''ab%25");
		CHECK_STR(r->params[3].name, "key3*");
		CHECK_STR(r->params[3].value, "us-ascii'en'xyzplop%25");
	}
	/* A gap: sections after it stay as sent. */
	r = parse("Content-Type: a/b; n*0=x; n*2=z\r\n\r\n");
	CHECK(r->n_params == 2);
	CHECK_STR(param(r, "n"), "x");
	CHECK_STR(param(r, "n*2"), "z");
	/* Plain continuations join into a plain value. */
	r = parse("Content-Type: text/plain; name*1=\"b c\"; name*0=a; CHARSET=\"ISO-8859-1\" (x)\r\n\r\n");
	CHECK(r->n_params == 2);
	CHECK_STR(param(r, "name"), "ab c");
	CHECK_STR(param(r, "charset"), "ISO-8859-1");
	/* Quoted strings with escapes, comments, odd spacing, case. */
	r = parse("content-type:  Text / HTML ( comment ) ; A = \"q\\\"x\" ;; junk ; b=1\r\n\r\n");
	CHECK_STR(r->type, "text");
	CHECK_STR(r->subtype, "html");
	CHECK_STR(param(r, "a"), "q\"x");
	CHECK_STR(param(r, "b"), "1");
	/* Other content fields. */
	r = parse("Content-ID: <cid@x>\r\nContent-Description: a  desc\r\n"
		  "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\nContent-Location: http://x/y\r\n"
		  "Content-Language: en, de\r\nContent-Transfer-Encoding: Quoted-Printable (c)\r\n\r\n");
	CHECK_STR(r->id, "<cid@x>");
	CHECK_STR(r->description, "a  desc");
	CHECK_STR(r->md5, "Q2hlY2sgSW50ZWdyaXR5IQ==");
	CHECK_STR(r->location, "http://x/y");
	CHECK_STR(r->language, "en, de");
	CHECK_STR(r->encoding, "quoted-printable");
	CHECK(r->disposition == NULL);
	/* An unparseable Content-Type is text/plain. */
	r = parse("Content-Type: garbage\r\n\r\n");
	CHECK_STR(r->type, "text");
	CHECK_STR(r->subtype, "plain");
	CHECK_STR(param(r, "charset"), "us-ascii");
}

static void test_boundaries(void)
{
	/* Inner multipart without its closing boundary ends at the outer. */
	const char *m =
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
		"--b\r\n"
		"Content-Type: multipart/mixed; boundary=c\r\n\r\n"
		"--c\r\n\r\nc1\r\n"
		"--b\r\n\r\nb2\r\n"
		"--b--\r\n";
	struct ma_mime_part *r = parse(m);
	CHECK(r->n_children == 2);
	if (r->n_children == 2) {
		const struct ma_mime_part *c = &r->children[0];
		size_t bc = off(m, "--c");
		PART(c, "multipart", "mixed", off(m, "Content-Type: multipart/mixed; boundary=c"),
		     bc - off(m, "Content-Type: multipart/mixed; boundary=c"), bc, strlen("--c\r\n\r\nc1"), 3);
		CHECK(c->n_children == 1);
		PART(&c->children[0], "text", "plain", bc + 5, 2, bc + 7, 2, 1);
		PART(&r->children[1], "text", "plain", off(m, "\r\nb2"), 2, off(m, "b2"), 2, 1);
	}

	/* Outer boundary a prefix of the inner and the other way round. */
	m = "Content-Type: multipart/mixed; boundary=ab\n\n"
	    "--ab\n"
	    "Content-Type: multipart/mixed; boundary=abc\n\n"
	    "--abc\n\nx1\n"
	    "--abc\n\nx2\n"
	    "--abc--\n"
	    "--ab\n"
	    "Content-Type: multipart/mixed; boundary=a\n\n"
	    "--a\n\ny1\n"
	    "--ab\n\nz\n"
	    "--ab--\n";
	r = parse(m);
	CHECK(r->n_children == 3);
	if (r->n_children == 3) {
		CHECK(r->children[0].n_children == 2);
		CHECK(r->children[1].n_children == 1);
		PART(&r->children[0].children[1], "text", "plain", off(m, "\nx2") , 1,
		     off(m, "x2"), 2, 1);
		/* "--ab" is not "--a" + junk: it closes y1's part. */
		PART(&r->children[1].children[0], "text", "plain", off(m, "\ny1"), 1,
		     off(m, "y1"), 2, 1);
		PART(&r->children[2], "text", "plain", off(m, "\nz\n"), 1, off(m, "z\n"), 1, 1);
	}

	/* Trailing white space after the boundary, text after is not one. */
	m = "Content-Type: multipart/mixed; boundary=q\r\n\r\n"
	    "--q \t\r\n\r\none\r\n"
	    "--qx\r\n"
	    "--q--  \r\n";
	r = parse(m);
	CHECK(r->n_children == 1);
	if (r->n_children == 1)
		PART(&r->children[0], "text", "plain", off(m, "\r\none"), 2, off(m, "one"),
		     strlen("one\r\n--qx"), 2);

	/* No boundary parameter: text/plain, opaque. */
	m = "Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\nx\r\n";
	r = parse(m);
	PART(r, "text", "plain", 0, 33, 33, strlen(m) - 33, 3);
	CHECK(r->n_children == 0);

	/* Boundary never seen: one empty child at the body start. */
	m = "Content-Type: multipart/mixed; boundary=zz\r\n\r\nhello\r\n";
	r = parse(m);
	CHECK(r->n_children == 1);
	if (r->n_children == 1)
		PART(&r->children[0], "text", "plain", 46, 0, 46, 0, 0);
	CHECK(ma_mime_find_part(r, "1") == &r->children[0]);

	/* A part header cut by a boundary: header to there, empty body. */
	m = "Content-Type: multipart/digest; boundary=d\r\n\r\n"
	    "--d\r\n\r\nSubject: d1\r\n\r\nbody1\r\n"
	    "--d\r\nContent-Type: text/plain\r\n--d--\r\n";
	r = parse(m);
	CHECK(r->n_children == 2);
	if (r->n_children == 2) {
		/* multipart/digest: parts default to message/rfc822. */
		PART(&r->children[0], "message", "rfc822", off(m, "\r\nSubject"), 2,
		     off(m, "Subject"), strlen("Subject: d1\r\n\r\nbody1"), 3);
		CHECK_STR(r->children[0].children[0].envelope->subject, "d1");
		size_t h = off(m, "Content-Type: text/plain");
		PART(&r->children[1], "text", "plain", h, 24, h + 24, 0, 0);
	}
	/* Empty parts and a boundary right at the body start. */
	m = "Content-Type: multipart/mixed; boundary=e\r\n\r\n--e\r\n--e\r\n--e--";
	r = parse(m);
	CHECK(r->n_children == 2);
	if (r->n_children == 2) {
		PART(&r->children[0], "text", "plain", 50, 0, 50, 0, 0);
		PART(&r->children[1], "text", "plain", 55, 0, 55, 0, 0);
	}
	CHECK(r->body_offset + r->body_size == strlen(m));
}

static void test_line_ends(void)
{
	/* Bare LF throughout, no trailing newline. */
	const char *m = "Subject: lf\nContent-Type: multipart/mixed; boundary=x\n\n"
			"--x\nContent-Type: text/plain\n\na\nb\n--x\n\nlast";
	struct ma_mime_part *r = parse(m);
	CHECK(r->n_children == 2);
	CHECK_STR(r->envelope->subject, "lf");
	if (r->n_children == 2) {
		PART(&r->children[0], "text", "plain", off(m, "Content-Type: text/plain"), 26,
		     off(m, "a\nb"), 3, 2);
		PART(&r->children[1], "text", "plain", off(m, "\nlast"), 1, off(m, "last"), 4, 1);
	}
	/* Single part, no trailing newline. */
	m = "Subject: a\r\n\r\nline1\r\nline2";
	r = parse(m);
	PART(r, "text", "plain", 0, 14, 14, 12, 2);
	/* Empty message. */
	r = ma_mime_parse(arena, (const unsigned char *)"", 0);
	PART(r, "text", "plain", 0, 0, 0, 0, 0);
	CHECK(r->envelope != NULL && r->envelope->subject == NULL);
	r = ma_mime_parse(arena, NULL, 0);
	PART(r, "text", "plain", 0, 0, 0, 0, 0);
	/* Header only, no empty line, no newline. */
	m = "Subject: only\r\nFrom: x@y";
	r = parse(m);
	PART(r, "text", "plain", 0, strlen(m), strlen(m), 0, 0);
	CHECK_STR(r->envelope->subject, "only");
	CHECK_STR(r->envelope->from, "x@y");
	/* Header only, ending in the empty line. */
	m = "Subject: only\r\n\r\n";
	r = parse(m);
	PART(r, "text", "plain", 0, 17, 17, 0, 0);
	/* Body only (starts with the empty line). */
	m = "\r\nbody\r\n";
	r = parse(m);
	PART(r, "text", "plain", 0, 2, 2, 6, 1);
	/* Folded header values, a continuation first, field without colon,
	 * "Name :" and duplicates (the first wins). */
	m = " stray\r\nSubject: a\r\n b\r\n\tc\r\nJunk line\r\nTo : x@y\r\n"
	    "Subject: second\r\nCC:\r\n\r\n";
	r = parse(m);
	CHECK_STR(r->envelope->subject, "a b\tc");
	CHECK_STR(r->envelope->to, "x@y");
	CHECK_STR(r->envelope->cc, "");
	/* 8-bit header bytes are kept raw. */
	m = "Subject: caf\xc3\xa9 \xff\r\nFrom: J\xf6rg <j@x>\r\n\r\nb";
	r = parse(m);
	CHECK_STR(r->envelope->subject, "caf\xc3\xa9 \xff");
	CHECK_STR(r->envelope->from, "J\xf6rg <j@x>");
	/* ma_mime_header_get. */
	const char *h = "X-A: 1\r\nSubject: hi\r\n there\r\nx-b:2\r\n\r\nSubject: body";
	CHECK_STR(ma_mime_header_get(arena, (const unsigned char *)h, strlen(h), "subject"),
		  "hi there");
	CHECK_STR(ma_mime_header_get(arena, (const unsigned char *)h, strlen(h), "X-B"), "2");
	CHECK(ma_mime_header_get(arena, (const unsigned char *)h, strlen(h), "x-c") == NULL);
	CHECK(ma_mime_header_get(arena, (const unsigned char *)h, 3, "x-a") == NULL);
}

static char *long_header_msg(size_t *len_r)
{
	size_t n = 100 * 1024;
	char *m = ma_malloc0(n + 200);
	size_t l = 0;

	memcpy(m, "Subject: ", 9);
	l = 9;
	memset(m + l, 'a', n);
	l += n;
	l += (size_t)sprintf(m + l, "\r\nX-Long: %s\r\n\r\nbody\r\n", "y");
	*len_r = l;
	return m;
}

static void test_long_header(void)
{
	size_t len;
	char *m = long_header_msg(&len);
	struct ma_mime_part *r = ma_mime_parse(arena, (unsigned char *)m, len);

	PART(r, "text", "plain", 0, len - 6, len - 6, 6, 1);
	CHECK(r->envelope->subject != NULL && strlen(r->envelope->subject) == 64 * 1024);
	CHECK(parse_check((unsigned char *)m, len));
	free(m);
}

static char *deep_msg(unsigned depth, size_t *len_r)
{
	size_t cap = (size_t)depth * 120 + 100, l = 0;
	char *m = ma_malloc0(cap);

	for (unsigned i = 0; i < depth; i++)
		l += (size_t)snprintf(m + l, cap - l,
				      "Content-Type: multipart/mixed; boundary=\"d%u\"\r\n\r\n--d%u\r\n",
				      i, i);
	l += (size_t)snprintf(m + l, cap - l, "\r\ndeep\r\n");
	*len_r = l;
	return m;
}

static void test_deep(void)
{
	size_t len;
	char *m = deep_msg(1000, &len);
	struct ma_mime_part *r = ma_mime_parse(arena, (unsigned char *)m, len);
	const struct ma_mime_part *p = r;
	unsigned depth = 0;

	while (p->n_children > 0) {
		p = &p->children[0];
		depth++;
	}
	/* Bounded: the multipart at the last allowed level keeps its body
	 * opaque (one empty child). */
	CHECK(depth == MA_MIME_DEPTH_MAX);
	CHECK(p->body_size == 0);
	CHECK(parse_check((unsigned char *)m, len));
	free(m);

	/* Deep message/rfc822 chain too. */
	size_t cap = 1000 * 40 + 10, l = 0;
	m = ma_malloc0(cap);
	for (unsigned i = 0; i < 1000; i++)
		l += (size_t)snprintf(m + l, cap - l, "Content-Type: message/rfc822\r\n\r\n");
	CHECK(parse_check((unsigned char *)m, l));
	free(m);

	/* Many parts: bounded by MA_MIME_PARTS_MAX. */
	cap = 10000 * 12 + 100;
	m = ma_malloc0(cap);
	l = (size_t)snprintf(m, cap, "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
	for (unsigned i = 0; i < 10000; i++)
		l += (size_t)snprintf(m + l, cap - l, "--p\r\n\r\n%u\r\n", i % 10);
	struct ma_arena *a = ma_arena_create(0);
	r = ma_mime_parse(a, (unsigned char *)m, l);
	CHECK(r->n_children == MA_MIME_PARTS_MAX - 1);
	CHECK(r->body_offset + r->body_size == l);
	ma_arena_destroy(&a);
	CHECK(parse_check((unsigned char *)m, l));
	free(m);
}

/* ---------------- robustness ---------------- */

static const char *corpus[] = {
	NESTED, RFC822,
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n\r\nc1\r\n--b\r\n\r\nb2\r\n--b--\r\n",
	"Content-Type: multipart/mixed; boundary=ab\n\n--ab\nContent-Type: multipart/mixed; boundary=abc\n\n--abc\n\nx1\n--abc--\n--ab\n\nz\n--ab--\n",
	"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: d1\r\n\r\nbody1\r\n--d\r\nContent-Type: text/plain\r\n--d--\r\n",
	"Content-Type: application/x; title*0*=us-ascii'en'a%20; title*1=\"b\"\r\n\r\nx",
	"Subject: a\r\n b\r\n\r\nline\r\nline2",
	"Content-Type: message/rfc822\r\n\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nx\r\n--q--",
	"",
	"Subject: only",
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void test_truncations_and_mutations(void)
{
	size_t n_corpus = sizeof(corpus) / sizeof(corpus[0]);
	unsigned bad = 0;

	for (size_t c = 0; c < n_corpus; c++) {
		size_t len = strlen(corpus[c]);
		CHECK(parse_check((const unsigned char *)corpus[c], len));
		/* Every prefix, in an exact-size heap copy (ASan sees overreads). */
		for (size_t t = 0; t <= len; t++) {
			unsigned char *m = ma_malloc0(t + 1);
			memcpy(m, corpus[c], t);
			if (!parse_check(m, t))
				bad++;
			free(m);
		}
	}
	CHECK(bad == 0);
	/* 10,000 random mutations: flip, insert and delete bytes, with a bias
	 * to the characters the grammar cares about. */
	static const char interesting[] = "-\r\n:;=\"()\\ \t*'%<>@,.?";
	for (unsigned it = 0; it < 10000; it++) {
		const char *src = corpus[rng() % n_corpus];
		size_t len = strlen(src), cap = len + 64;
		unsigned char *m = ma_malloc0(cap);
		memcpy(m, src, len);
		unsigned nmut = 1 + (unsigned)(rng() % 8);
		for (unsigned k = 0; k < nmut; k++) {
			size_t pos = len > 0 ? rng() % (len + 1) : 0;
			unsigned char ch = (rng() & 1) ? (unsigned char)interesting[rng() % (sizeof(interesting) - 1)]
						       : (unsigned char)rng();
			switch (rng() % 3) {
			case 0:
				if (pos < len)
					m[pos] = ch;
				break;
			case 1:
				if (len < cap) {
					memmove(m + pos + 1, m + pos, len - pos);
					m[pos] = ch;
					len++;
				}
				break;
			default:
				if (pos < len) {
					memmove(m + pos, m + pos + 1, len - pos - 1);
					len--;
				}
			}
		}
		unsigned char *exact = ma_malloc0(len + 1);
		memcpy(exact, m, len);
		if (!parse_check(exact, len))
			bad++;
		/* Decoders and field helpers on the same bytes. */
		struct ma_arena *a = ma_arena_create(0);
		char *s = ma_arena_strndup(a, (char *)exact, len);
		struct ma_mime_address *addrs;
		int64_t t;
		int32_t tz;
		(void)ma_mime_decode_words(a, s);
		(void)ma_mime_parse_addresses(a, s, &addrs);
		(void)ma_mime_parse_date(s, &t, &tz);
		struct ma_mime_part *r = ma_mime_parse(a, exact, len);
		struct ma_buf out;
		ma_buf_init(&out, 1 << 20);
		for (unsigned i = 0; i < r->n_children; i++)
			(void)ma_mime_decode_body(&r->children[i], exact, &out);
		(void)ma_mime_decode_body(r, exact, &out);
		ma_buf_free(&out);
		ma_arena_destroy(&a);
		free(exact);
		free(m);
	}
	CHECK(bad == 0);
}

static void test_cache_damage(void)
{
	struct ma_mime_part *r = parse(RFC822);
	struct ma_buf b;
	unsigned accepted = 0;

	ma_buf_init(&b, 1 << 20);
	CHECK(ma_mime_serialize(r, &b) == 0);
	size_t len = ma_buf_len(&b);
	const unsigned char *blob = ma_buf_ptr(&b);

	/* Every proper prefix is refused. */
	for (size_t t = 0; t < len; t++) {
		struct ma_arena *a = ma_arena_create(0);
		unsigned char *c = ma_malloc0(t + 1);
		memcpy(c, blob, t);
		CHECK(ma_mime_deserialize(a, c, t) == NULL);
		free(c);
		ma_arena_destroy(&a);
	}
	/* Wrong version. */
	{
		unsigned char *c = ma_malloc0(len);
		memcpy(c, blob, len);
		c[4] = 2;
		CHECK(ma_mime_deserialize(arena, c, len) == NULL);
		free(c);
	}
	/* Random byte changes never crash; what is accepted is consistent. */
	for (unsigned it = 0; it < 10000; it++) {
		struct ma_arena *a = ma_arena_create(0);
		unsigned char *c = ma_malloc0(len);
		memcpy(c, blob, len);
		unsigned nmut = 1 + (unsigned)(rng() % 4);
		for (unsigned k = 0; k < nmut; k++)
			c[rng() % len] = (unsigned char)rng();
		struct ma_mime_part *back = ma_mime_deserialize(a, c, len);
		if (back != NULL) {
			accepted++;
			(void)ma_mime_find_part(back, "2.1");
		}
		free(c);
		ma_arena_destroy(&a);
	}
	/* Random bytes, with and without the magic. */
	for (unsigned it = 0; it < 10000; it++) {
		struct ma_arena *a = ma_arena_create(0);
		size_t l = rng() % 200;
		unsigned char *c = ma_malloc0(l + 1);
		for (size_t i = 0; i < l; i++)
			c[i] = (unsigned char)rng();
		if (l >= 5 && (it & 1)) {
			memcpy(c, "MAMC\x01", 5);
		}
		(void)ma_mime_deserialize(a, c, l);
		free(c);
		ma_arena_destroy(&a);
	}
	CHECK(ma_mime_deserialize(arena, NULL, 0) == NULL);
	/* A full output buffer: -1, buffer as it was. */
	struct ma_buf small;
	ma_buf_init(&small, 20);
	CHECK(ma_mime_serialize(r, &small) == -1);
	CHECK(ma_buf_len(&small) == 0);
	ma_buf_free(&small);
	ma_buf_free(&b);
	printf("damaged cache blobs accepted (consistently): %u of 10000\n", accepted);
}

/* ---------------- decoders ---------------- */

static void test_words(void)
{
	static const struct { const char *in, *out; } v[] = {
		/* RFC 2047 section 8. */
		{ "=?US-ASCII?Q?Keith_Moore?= <moore@cs.utk.edu>", "Keith Moore <moore@cs.utk.edu>" },
		{ "=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?= <keld@dkuug.dk>",
		  "Keld J\xc3\xb8rn Simonsen <keld@dkuug.dk>" },
		{ "=?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>",
		  "Andr\xc3\xa9 Pirard <PIRARD@vm1.ulg.ac.be>" },
		{ "=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\r\n"
		  "    =?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=",
		  "If you can read this you understand the example." },
		{ "Nathaniel Borenstein <nsb@thumper.bellcore.com>\r\n"
		  "    (=?iso-8859-8?b?7eXs+SDv4SDp7Oj08A==?=)",
		  "Nathaniel Borenstein <nsb@thumper.bellcore.com>\r\n"
		  "    (\xd7\x9d\xd7\x95\xd7\x9c\xd7\xa9 \xd7\x9f\xd7\x91 \xd7\x99\xd7\x9c\xd7\x98\xd7\xa4\xd7\xa0)" },
		{ "(=?ISO-8859-1?Q?a?=)", "(a)" },
		{ "(=?ISO-8859-1?Q?a?= b)", "(a b)" },
		{ "(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "(ab)" },
		{ "(=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=)", "(ab)" },
		{ "(=?ISO-8859-1?Q?a?=\r\n    =?ISO-8859-1?Q?b?=)", "(ab)" },
		{ "(=?ISO-8859-1?Q?a_b?=)", "(a b)" },
		{ "(=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=)", "(a b)" },
		/* A UTF-8 character split over two words. */
		{ "=?UTF-8?B?4oI=?= =?utf-8?B?rA==?=", "\xe2\x82\xac" },
		/* RFC 2231 language suffix. */
		{ "=?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore" },
		/* Unknown charset and malformed words stay. */
		{ "=?x-unknown?Q?abc?= d", "=?x-unknown?Q?abc?= d" },
		{ "=?utf-8?Q?abc", "=?utf-8?Q?abc" },
		{ "=?utf-8?X?abc?=", "=?utf-8?X?abc?=" },
		{ "=??Q?abc?=", "=??Q?abc?=" },
		{ "a =?utf-8?q?b?= c", "a b c" },
		{ "=?utf-8?q?a?= =?x-unknown?q?b?=", "a =?x-unknown?q?b?=" },
		{ "=?x-unknown?q?b?= =?utf-8?q?a?=", "=?x-unknown?q?b?= a" },
		{ "plain text", "plain text" },
		{ "=?utf-8?B?/w==?=", "\xef\xbf\xbd" },
		{ "", "" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		const char *got = ma_mime_decode_words(arena, v[i].in);
		if (got == NULL || strcmp(got, v[i].out) != 0) {
			fprintf(stderr, "decode_words[%zu]: got \"%s\"\n", i, got ? got : "(null)");
			failures++;
		}
	}
	CHECK(ma_mime_decode_words(arena, NULL) == NULL);
}

static void test_body(void)
{
	const char *m =
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
		"--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
		"a=3Db=\r\nc  \r\nd=E9 = x=4\r\nsoft=  \r\nend=\r\n"
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
		"Content-Transfer-Encoding: base64\r\n\r\n"
		"SGVs\r\nbG8g\r\n d29y bGQg\r\n4oKs\r\n"
		"--b\r\nContent-Type: application/octet-stream\r\n"
		"Content-Transfer-Encoding: BASE64\r\n\r\n"
		"/w==\r\n"
		"--b\r\nContent-Type: text/plain; charset=x-nonexistent\r\n\r\n"
		"ok \xff\r\n"
		"--b\r\nContent-Type: text/plain; charset=shift_jis\r\n\r\n"
		"\x93\xfa\x96\x7b\r\n"
		"--b--\r\n";
	struct ma_mime_part *r = parse(m);
	struct ma_buf out;

	CHECK(r->n_children == 5);
	if (r->n_children != 5)
		return;
	ma_buf_init(&out, 1 << 20);
	CHECK(ma_mime_decode_body(&r->children[0], (const unsigned char *)m, &out) == 0);
	CHECK(ma_buf_len(&out) == strlen("a=bc\r\nd\xc3\xa9 = x=4\r\nsoftend") &&
	      memcmp(ma_buf_ptr(&out), "a=bc\r\nd\xc3\xa9 = x=4\r\nsoftend", ma_buf_len(&out)) == 0);
	ma_buf_clear(&out);
	CHECK(ma_mime_decode_body(&r->children[1], (const unsigned char *)m, &out) == 0);
	CHECK(ma_buf_len(&out) == strlen("Hello world \xe2\x82\xac") &&
	      memcmp(ma_buf_ptr(&out), "Hello world \xe2\x82\xac", ma_buf_len(&out)) == 0);
	ma_buf_clear(&out);
	/* Not text: bytes as decoded, no conversion. */
	CHECK(ma_mime_decode_body(&r->children[2], (const unsigned char *)m, &out) == 0);
	CHECK(ma_buf_len(&out) == 1 && ma_buf_ptr(&out)[0] == 0xff);
	ma_buf_clear(&out);
	/* Unknown charset: read as UTF-8, invalid bytes replaced. */
	CHECK(ma_mime_decode_body(&r->children[3], (const unsigned char *)m, &out) == 0);
	CHECK(ma_buf_len(&out) == 6 && memcmp(ma_buf_ptr(&out), "ok \xef\xbf\xbd", 6) == 0);
	ma_buf_clear(&out);
	CHECK(ma_mime_decode_body(&r->children[4], (const unsigned char *)m, &out) == 0);
	CHECK(ma_buf_len(&out) == 6 && memcmp(ma_buf_ptr(&out), "\xe6\x97\xa5\xe6\x9c\xac", 6) == 0);
	ma_buf_free(&out);

	/* Bounded output: what fits is kept, whole characters only. */
	ma_buf_init(&out, 8);
	CHECK(ma_mime_decode_body(&r->children[1], (const unsigned char *)m, &out) == -1);
	CHECK(ma_buf_len(&out) == 8 && memcmp(ma_buf_ptr(&out), "Hello wo", 8) == 0);
	ma_buf_free(&out);

	/* A large base64 latin-1 body: chunk edges and multibyte output. */
	size_t n = 100000, l = 0;
	char *big = ma_malloc0(n * 2 + 200);
	l += (size_t)sprintf(big, "Content-Type: text/plain; charset=utf-8\r\n"
			     "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
	size_t hdr = l;
	for (size_t i = 0; i < n / 6; i++) {
		memcpy(big + l, "=E2=82=AC", 9);	/* one euro sign per 9 bytes */
		l += 9;
		if (i % 8 == 7) {
			memcpy(big + l, "=\r\n", 3);
			l += 3;
		}
	}
	struct ma_mime_part *br = ma_mime_parse(arena, (unsigned char *)big, l);
	ma_buf_init(&out, 1 << 20);
	CHECK(br->body_offset == hdr);
	CHECK(ma_mime_decode_body(br, (unsigned char *)big, &out) == 0);
	CHECK(ma_buf_len(&out) == (n / 6) * 3);
	bool all = true;
	for (size_t i = 0; i + 3 <= ma_buf_len(&out); i += 3)
		if (memcmp(ma_buf_ptr(&out) + i, "\xe2\x82\xac", 3) != 0)
			all = false;
	CHECK(all);
	ma_buf_free(&out);
	free(big);
}

static void test_to_utf8(void)
{
	struct ma_buf out;

	ma_buf_init(&out, 1024);
	CHECK(ma_mime_to_utf8("ISO-8859-1", "caf\xe9", 4, &out) == 0);
	CHECK(ma_buf_len(&out) == 5 && memcmp(ma_buf_ptr(&out), "caf\xc3\xa9", 5) == 0);
	ma_buf_clear(&out);
	CHECK(ma_mime_to_utf8("utf-8", "a\xff" "b\xe2\x82", 5, &out) == 0);
	CHECK(ma_buf_len(&out) == 8 &&
	      memcmp(ma_buf_ptr(&out), "a\xef\xbf\xbd" "b\xef\xbf\xbd", 8) == 0);
	ma_buf_clear(&out);
	CHECK(ma_mime_to_utf8("x-no-such-charset", "abc", 3, &out) == -1);
	CHECK(ma_mime_to_utf8("utf-8//TRANSLIT", "abc", 3, &out) == -1);
	CHECK(ma_buf_len(&out) == 0);
	/* Invalid in the source charset: replaced, conversion goes on. */
	CHECK(ma_mime_to_utf8("shift_jis", "\x93\xfa\xff\x96\x7b", 5, &out) == 0);
	CHECK(ma_buf_len(&out) == 9 &&
	      memcmp(ma_buf_ptr(&out), "\xe6\x97\xa5\xef\xbf\xbd\xe6\x9c\xac", 9) == 0);
	ma_buf_clear(&out);
	/* ISO-2022-JP (stateful). */
	CHECK(ma_mime_to_utf8("iso-2022-jp", "\x1b$BF|\x1b(B", 8, &out) == 0);
	CHECK(ma_buf_len(&out) == 3 && memcmp(ma_buf_ptr(&out), "\xe6\x97\xa5", 3) == 0);
	ma_buf_free(&out);
	ma_buf_init(&out, 5);
	CHECK(ma_mime_to_utf8("iso-8859-1", "\xe9\xe9\xe9", 3, &out) == -1);
	CHECK(ma_buf_len(&out) == 4);
	ma_buf_free(&out);
}

static void test_addresses(void)
{
	struct ma_mime_address *a;
	unsigned n;

#define ADDR(i, nm, adl_, mb, h) do { \
	CHECK(i < n); if (i < n) { CHECK_STR(a[i].name, nm); CHECK_STR(a[i].adl, adl_); \
	CHECK_STR(a[i].mailbox, mb); CHECK_STR(a[i].host, h); } } while (0)

	n = ma_mime_parse_addresses(arena, "John Doe <jdoe@machine.example>", &a);
	CHECK(n == 1);
	ADDR(0, "John Doe", NULL, "jdoe", "machine.example");
	n = ma_mime_parse_addresses(arena,
		"Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>", &a);
	CHECK(n == 3);
	ADDR(0, "Mary Smith", NULL, "mary", "x.test");
	ADDR(1, NULL, NULL, "jdoe", "example.org");
	ADDR(2, "Who?", NULL, "one", "y.test");
	n = ma_mime_parse_addresses(arena, "\"Joe Q. Public\" <john.q.public@example.com>", &a);
	CHECK(n == 1);
	ADDR(0, "Joe Q. Public", NULL, "john.q.public", "example.com");
	n = ma_mime_parse_addresses(arena,
		"A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;", &a);
	CHECK(n == 5);
	ADDR(0, NULL, NULL, "A Group", NULL);
	ADDR(1, "Ed Jones", NULL, "c", "a.test");
	ADDR(2, NULL, NULL, "joe", "where.test");
	ADDR(3, "John", NULL, "jdoe", "one.test");
	ADDR(4, NULL, NULL, NULL, NULL);
	n = ma_mime_parse_addresses(arena, "undisclosed-recipients:;", &a);
	CHECK(n == 2);
	ADDR(0, NULL, NULL, "undisclosed-recipients", NULL);
	ADDR(1, NULL, NULL, NULL, NULL);
	n = ma_mime_parse_addresses(arena, "Undisclosed recipients:", &a);
	CHECK(n == 2);
	ADDR(0, NULL, NULL, "Undisclosed recipients", NULL);
	n = ma_mime_parse_addresses(arena,
		"Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", &a);
	CHECK(n == 1);
	ADDR(0, "Pete", NULL, "pete", "silly.test");
	n = ma_mime_parse_addresses(arena, "<@a.test,@b.test:joe@c.test>", &a);
	CHECK(n == 1);
	ADDR(0, NULL, "@a.test,@b.test", "joe", "c.test");
	n = ma_mime_parse_addresses(arena, "jdoe@example.org (John Doe)", &a);
	CHECK(n == 1);
	ADDR(0, "John Doe", NULL, "jdoe", "example.org");
	n = ma_mime_parse_addresses(arena, "John Q. Public <jqp@x>, user, <@h>, <>", &a);
	CHECK(n == 4);
	ADDR(0, "John Q. Public", NULL, "jqp", "x");
	ADDR(1, NULL, NULL, "user", "MISSING_DOMAIN");
	ADDR(2, NULL, NULL, "MISSING_MAILBOX", "h");
	ADDR(3, NULL, NULL, "", "");
	n = ma_mime_parse_addresses(arena, "=?utf-8?Q?J=C3=B6rg?= <j@x>,,\"a\\\"b\" <\"q x\"@[1.2.3.4]>", &a);
	CHECK(n == 2);
	ADDR(0, "=?utf-8?Q?J=C3=B6rg?=", NULL, "j", "x");
	ADDR(1, "a\"b", NULL, "\"q x\"", "[1.2.3.4]");
	n = ma_mime_parse_addresses(arena, "", &a);
	CHECK(n == 0);
	n = ma_mime_parse_addresses(arena, " , ;>< :: \"unterminated", &a);
	(void)n;
	CHECK(ma_mime_parse_addresses(arena, NULL, &a) == 0);
#undef ADDR
}

static void test_dates(void)
{
	static const struct { const char *s; int64_t t; int32_t tz; } v[] = {
		{ "Fri, 21 Nov 1997 09:55:06 -0600", 880127706, -360 },
		{ "21 Nov 97 09:55:06 GMT", 880106106, 0 },
		{ "Thu,\r\n 13\r\n  Feb\r\n    1969\r\n  23:32\r\n  :54 -0330 (Newfoundland Time)",
		  -27723426, -210 },
		{ "Tue, 1 Jul 2003 10:52:37 +0200", 1057049557, 120 },
		{ "1 Jan 2000 00:00 EST", 946702800, -300 },
		{ "Mon, 1 Jan 49 00:00:00 +0000", 2493072000, 0 },
		{ "Fri 31-Dec-1999 23:59 +0530", 946664940, 330 },
		{ "21 Nov 097 09:55:06 UT", 880106106, 0 },
		{ "21 November 1997 09:55:06 Z", 880106106, 0 },
		{ "21 Nov 1997 09:55:06", 880106106, 0 },
		{ "21 Nov 1997 09:55:06 A", 880106106, 0 },
		{ "Fri, 21 Nov 1997 09:55:06 PDT", 880106106 + 7 * 3600, -420 },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		int64_t t;
		int32_t tz;
		int rc = ma_mime_parse_date(v[i].s, &t, &tz);
		if (rc != 0 || t != v[i].t || tz != v[i].tz) {
			fprintf(stderr, "date[%zu] \"%s\": rc %d t %lld tz %d\n", i, v[i].s,
				rc, (long long)t, tz);
			failures++;
		}
	}
	static const char *const bad[] = { "", "garbage", "31 Feb 2020 00:00:00 +0000",
		"32 Jan 2020 00:00 +0000", "1 Foo 2020 00:00 +0000", "1 Jan 2020 24:00 +0000",
		"1 Jan 2020 10:61 +0000", "1 Jan 2020", "1 Jan 2020 10:00 +99",
		"1 Jan 2020 10:00 +0099", "Mon, 1 Jan 12345 10:00 +0000" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t t;
		int32_t tz;
		if (ma_mime_parse_date(bad[i], &t, &tz) != -1) {
			fprintf(stderr, "date \"%s\" accepted\n", bad[i]);
			failures++;
		}
	}
	int64_t t;
	int32_t tz;
	CHECK(ma_mime_parse_date(NULL, &t, &tz) == -1);
}

/* ---------------- cost ---------------- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_cost(void)
{
	/* 10 MB: a multipart with text and a base64 attachment of 76-char
	 * lines, the usual shape of a large mail. */
	size_t cap = 10 * 1024 * 1024 + 4096, l = 0;
	char *m = ma_malloc0(cap);
	l += (size_t)sprintf(m, "From: a@b\r\nSubject: big\r\n"
			     "Content-Type: multipart/mixed; boundary=\"BIG\"\r\n\r\n"
			     "--BIG\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
			     "--BIG\r\nContent-Type: application/pdf\r\n"
			     "Content-Transfer-Encoding: base64\r\n\r\n");
	while (l + 78 + 100 < cap) {
		memset(m + l, 'Q', 76);
		l += 76;
		m[l++] = '\r';
		m[l++] = '\n';
	}
	l += (size_t)sprintf(m + l, "--BIG--\r\n");
	struct ma_arena *a = ma_arena_create(0);
	double t0 = now();
	struct ma_mime_part *r = ma_mime_parse(a, (unsigned char *)m, l);
	double t1 = now();
	struct ma_buf b;
	ma_buf_init(&b, 1 << 20);
	CHECK(ma_mime_serialize(r, &b) == 0);
	double t2 = now();
	CHECK(ma_mime_deserialize(a, ma_buf_ptr(&b), ma_buf_len(&b)) != NULL);
	double t3 = now();
	CHECK(r->n_children == 2);
	printf("cost: 10 MB message (%zu bytes, %u lines): parse %.1f ms, "
	       "serialize %.3f ms (%zu byte cache), deserialize %.3f ms\n",
	       l, r->body_lines, (t1 - t0) * 1e3, (t2 - t1) * 1e3, ma_buf_len(&b),
	       (t3 - t2) * 1e3);
	/* Guards against a quadratic regression, even under sanitizers. */
	CHECK(t1 - t0 < 5.0);
	ma_buf_free(&b);
	ma_arena_destroy(&a);

	/* Worst shapes: 10 MB of empty lines (one memchr each), and lines
	 * "--d0x" tried against 31 open boundaries. */
	l = (size_t)sprintf(m, "Subject: x\r\n\r\n");
	while (l + 2 <= 10 * 1024 * 1024) {
		m[l++] = '\r';
		m[l++] = '\n';
	}
	a = ma_arena_create(0);
	t0 = now();
	r = ma_mime_parse(a, (unsigned char *)m, l);
	t1 = now();
	CHECK(r->body_lines == (l - 14) / 2);
	ma_arena_destroy(&a);
	size_t l2 = 0;
	for (unsigned i = 0; i < 31; i++)
		l2 += (size_t)snprintf(m + l2, cap - l2,
			"Content-Type: multipart/mixed; boundary=\"d%u\"\r\n\r\n--d%u\r\n", i, i);
	while (l2 + 7 <= 10 * 1024 * 1024) {
		memcpy(m + l2, "--d0x\r\n", 7);
		l2 += 7;
	}
	a = ma_arena_create(0);
	t2 = now();
	r = ma_mime_parse(a, (unsigned char *)m, l2);
	t3 = now();
	ma_arena_destroy(&a);
	printf("cost: 10 MB of empty lines: parse %.1f ms; 10 MB of near-boundary "
	       "lines under 31 open multiparts: parse %.1f ms\n",
	       (t1 - t0) * 1e3, (t3 - t2) * 1e3);
	CHECK(t1 - t0 < 10.0 && t3 - t2 < 20.0);
	free(m);

	/* 1,000 small messages: parse + serialize each (what append does). */
	const char *small = NESTED;
	size_t slen = strlen(small);
	a = ma_arena_create(0);
	ma_buf_init(&b, 1 << 20);
	t0 = now();
	for (unsigned i = 0; i < 1000; i++) {
		r = ma_mime_parse(a, (const unsigned char *)small, slen);
		ma_buf_clear(&b);
		(void)ma_mime_serialize(r, &b);
		ma_arena_reset(a);
	}
	t1 = now();
	printf("cost: 1,000 small messages (%zu bytes, 5 parts each): "
	       "parse+serialize %.1f ms total, %.1f us each\n",
	       slen, (t1 - t0) * 1e3, (t1 - t0) * 1e3);
	ma_buf_free(&b);
	ma_arena_destroy(&a);
}

int main(void)
{
	arena = ma_arena_create(0);
	test_nested();
	test_rfc822();
	test_rfc2231();
	test_boundaries();
	test_line_ends();
	test_long_header();
	test_deep();
	test_truncations_and_mutations();
	test_cache_damage();
	test_words();
	test_body();
	test_to_utf8();
	test_addresses();
	test_dates();
	test_cost();
	ma_arena_destroy(&arena);
	if (failures > 0) {
		fprintf(stderr, "test-mime: %d failure(s)\n", failures);
		return 1;
	}
	printf("test-mime: all passed\n");
	return 0;
}
