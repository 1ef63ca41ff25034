/*
 * test-imap-seqset.c - sequence-set parsing, normalising and merging, and
 * mapping sequence numbers and UIDs onto a view.
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

/* "lo:hi,lo:hi" of a parsed set, or "ERR". */
static const char *show(struct ma_arena *a, const char *s, uint32_t max)
{
	static char out[512];
	struct imap_seqset set;
	size_t n = 0;

	if (imap_seqset_parse(a, s, strlen(s), max, &set) < 0)
		return "ERR";
	out[0] = '\0';
	for (unsigned i = 0; i < set.n; i++)
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%u:%u",
				      i > 0 ? "," : "", set.r[i].lo, set.r[i].hi);
	return out;
}

#define PARSE(s, max, want) do { \
	const char *got_ = show(a, s, max); \
	CHECK(strcmp(got_, want) == 0, "%s: want %s got %s", s, want, got_); \
} while (0)

static void test_parse(struct ma_arena *a)
{
	PARSE("1", 10, "1:1");
	PARSE("1:4,7,9:*", 10, "1:4,7:7,9:10");
	PARSE("4:1", 10, "1:4");
	PARSE("*:3", 10, "3:10");
	PARSE("*", 10, "10:10");
	PARSE("5,1,3", 10, "1:1,3:3,5:5");
	PARSE("1:3,2:6,7", 10, "1:7");	/* overlapping and adjacent merge */
	PARSE("4294967295", 10, "4294967295:4294967295");
	PARSE("1:4294967295,5", 10, "1:4294967295");
	PARSE("", 10, "ERR");
	PARSE("0", 10, "ERR");
	PARSE("01", 10, "ERR");
	PARSE("1:", 10, "ERR");
	PARSE(":1", 10, "ERR");
	PARSE("1,", 10, "ERR");
	PARSE(",1", 10, "ERR");
	PARSE("1,,2", 10, "ERR");
	PARSE("1:2:3", 10, "ERR");
	PARSE("4294967296", 10, "ERR");
	PARSE("99999999999999999999", 10, "ERR");
	PARSE("1 2", 10, "ERR");
	PARSE("a", 10, "ERR");
	PARSE("-1", 10, "ERR");

	struct imap_seqset set;

	CHECK(imap_seqset_parse(a, "1:4,7,9:*", 9, 20, &set) == 0, "parse");
	CHECK(imap_seqset_contains(&set, 1) && imap_seqset_contains(&set, 4) &&
	      !imap_seqset_contains(&set, 5) && imap_seqset_contains(&set, 7) &&
	      !imap_seqset_contains(&set, 8) && imap_seqset_contains(&set, 20) &&
	      !imap_seqset_contains(&set, 21) && !imap_seqset_contains(&set, 0),
	      "contains");
}

static void test_indexes(struct ma_arena *a)
{
	static struct ma_msg msgs[5];
	static const uint32_t uids[5] = { 3, 5, 10, 11, 40 };
	struct imap_selected sel;
	uint32_t *idx, n;

	memset(&sel, 0, sizeof(sel));
	for (int i = 0; i < 5; i++)
		msgs[i].uid = uids[i];
	sel.msgs = msgs;
	sel.count = 5;

	CHECK(imap_seqset_indexes(a, &sel, "2:3,5", 5, false, &idx, &n) == 0 &&
	      n == 3 && idx[0] == 1 && idx[1] == 2 && idx[2] == 4, "seq");
	CHECK(imap_seqset_indexes(a, &sel, "1:*", 3, false, &idx, &n) == 0 &&
	      n == 5, "seq all");
	CHECK(imap_seqset_indexes(a, &sel, "6", 1, false, &idx, &n) < 0,
	      "seq past the end");
	CHECK(imap_seqset_indexes(a, &sel, "x", 1, false, &idx, &n) < 0,
	      "seq syntax");
	CHECK(imap_seqset_indexes(a, &sel, "4:10,40", 7, true, &idx, &n) == 0 &&
	      n == 3 && idx[0] == 1 && idx[1] == 2 && idx[2] == 4, "uid");
	CHECK(imap_seqset_indexes(a, &sel, "12:39", 5, true, &idx, &n) == 0 &&
	      n == 0, "uid gap");
	/* RFC 3501 6.4.8: "100:*" with 100 > largest UID still gets it */
	CHECK(imap_seqset_indexes(a, &sel, "100:*", 5, true, &idx, &n) == 0 &&
	      n == 1 && idx[0] == 4, "uid n:*");
	CHECK(imap_seqset_indexes(a, &sel, "4294967295", 10, true, &idx, &n) == 0 &&
	      n == 0, "uid max");
	CHECK(imap_seqset_indexes(a, &sel, "1:4294967295", 12, true, &idx, &n) == 0 &&
	      n == 5, "uid everything");

	sel.count = 0;
	CHECK(imap_seqset_indexes(a, &sel, "1:*", 3, true, &idx, &n) == 0 &&
	      n == 0, "empty uid");
	CHECK(imap_seqset_indexes(a, &sel, "1:*", 3, false, &idx, &n) < 0,
	      "empty seq");
	CHECK(imap_seqset_indexes(a, &sel, "*", 1, false, &idx, &n) < 0,
	      "empty seq *");
}

int main(void)
{
	struct ma_arena *a = ma_arena_create(0);

	test_parse(a);
	test_indexes(a);
	ma_arena_destroy(&a);
	if (failures > 0) {
		fprintf(stderr, "%d failure(s)\n", failures);
		return 1;
	}
	printf("test-imap-seqset: all passed\n");
	return 0;
}
