/*
 * fuzz-mime.c - libFuzzer target for the core's MIME code (core/lib/
 * mime*.c): the input is a whole message for ma_mime_parse(); then every
 * part is checked and used the way IMAP uses it: RFC 2047 decoding of the
 * envelope fields (ma_mime_decode_words), address lists
 * (ma_mime_parse_addresses), dates (ma_mime_parse_date), header lookup,
 * body decoding and charset conversion (ma_mime_decode_body, bounded),
 * section lookup (ma_mime_find_part), and the cache blob round trip:
 * serialize -> deserialize -> serialize must give the same bytes.
 * The raw input is also given to deserialize directly (a corrupt cache
 * blob must be refused, never trusted).
 *
 * Checks beyond the sanitizers: every offset and size lies inside the
 * message, header_offset + header_size == body_offset, nesting and part
 * counts stay within MA_MIME_DEPTH_MAX / MA_MIME_PARTS_MAX (+ slack for
 * the opaque leaves), the round trip is exact.
 */
#include <stdlib.h>
#include <string.h>

#include <mailaccess/mailaccess.h>
#include <mailaccess/mime.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_ctx {
	struct ma_arena *a;
	const unsigned char *msg;
	size_t size;
	unsigned parts;
};

static void fuzz_addresses(struct ma_arena *a, const char *raw)
{
	struct ma_mime_address *addrs;
	unsigned n;

	if (raw == NULL)
		return;
	n = ma_mime_parse_addresses(a, raw, &addrs);
	for (unsigned i = 0; i < n; i++) {
		if (addrs[i].name != NULL)
			(void)ma_mime_decode_words(a, addrs[i].name);
		if (addrs[i].mailbox != NULL && strlen(addrs[i].mailbox) > strlen(raw) + 64)
			abort();	/* output bigger than the input */
	}
}

static void fuzz_envelope(struct ma_arena *a, const struct ma_mime_envelope *env)
{
	int64_t t;
	int32_t tz;

	if (env == NULL)
		return;
	if (env->subject != NULL)
		(void)ma_mime_decode_words(a, env->subject);
	if (env->date != NULL && ma_mime_parse_date(env->date, &t, &tz) == 0 &&
	    (tz < -(99 * 60 + 59) || tz > 99 * 60 + 59))
		abort();	/* zone that does not print as +hhmm again */
	fuzz_addresses(a, env->from);
	fuzz_addresses(a, env->sender);
	fuzz_addresses(a, env->reply_to);
	fuzz_addresses(a, env->to);
	fuzz_addresses(a, env->cc);
	fuzz_addresses(a, env->bcc);
}

static void fuzz_part(struct fuzz_ctx *f, const struct ma_mime_part *p,
		      unsigned depth)
{
	if (depth > MA_MIME_DEPTH_MAX + 2)
		abort();	/* nesting bound ignored */
	if (++f->parts > MA_MIME_PARTS_MAX + MA_MIME_DEPTH_MAX + 2)
		abort();	/* part bound ignored */
	if (p->header_offset > f->size || p->header_size > f->size - p->header_offset ||
	    p->body_offset > f->size || p->body_size > f->size - p->body_offset)
		abort();	/* offsets outside the message */
	if (p->header_offset + p->header_size != p->body_offset)
		abort();
	if (p->type == NULL || p->subtype == NULL || p->encoding == NULL)
		abort();	/* documented defaults missing */
	for (unsigned i = 0; i < p->n_params; i++)
		if (p->params[i].name == NULL || p->params[i].value == NULL)
			abort();
	fuzz_envelope(f->a, p->envelope);
	(void)ma_mime_header_get(f->a, f->msg + p->header_offset,
				 (size_t)p->header_size, "content-type");
	if (p->n_children == 0) {
		struct ma_buf out;

		ma_buf_init(&out, 1 << 16);
		(void)ma_mime_decode_body(p, f->msg, &out);
		if (ma_buf_len(&out) > 1 << 16)
			abort();	/* bound ignored */
		ma_buf_free(&out);
	}
	for (unsigned i = 0; i < p->n_children; i++)
		fuzz_part(f, &p->children[i], depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const sections[] = { "", "1", "2", "1.1", "1.2.1",
						"3.1", "99", "1.1.1.1.1" };
	struct fuzz_ctx f;
	struct ma_mime_part *root, *copy;
	struct ma_buf b1, b2;

	if (size > 1 << 20)
		return 0;
	memset(&f, 0, sizeof(f));
	f.a = ma_arena_create(0);
	f.msg = data;
	f.size = size;

	/* the input as a (corrupt) cache blob */
	(void)ma_mime_deserialize(f.a, data, size);

	root = ma_mime_parse(f.a, data, size);
	if (root == NULL)
		abort();	/* documented: never NULL */
	fuzz_part(&f, root, 0);
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		(void)ma_mime_find_part(root, sections[i]);

	ma_buf_init(&b1, (size_t)1 << 26);
	ma_buf_init(&b2, (size_t)1 << 26);
	if (ma_mime_serialize(root, &b1) == 0) {
		copy = ma_mime_deserialize(f.a, ma_buf_ptr(&b1), ma_buf_len(&b1));
		if (copy == NULL)
			abort();	/* our own blob refused */
		if (ma_mime_serialize(copy, &b2) != 0 ||
		    ma_buf_len(&b1) != ma_buf_len(&b2) ||
		    memcmp(ma_buf_ptr(&b1), ma_buf_ptr(&b2), ma_buf_len(&b1)) != 0)
			abort();	/* cache round trip not exact */
	}
	ma_buf_free(&b1);
	ma_buf_free(&b2);
	ma_arena_destroy(&f.a);
	return 0;
}
