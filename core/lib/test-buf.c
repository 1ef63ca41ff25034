/*
 * test-buf.c - ma_buf: the hard maximum (an append past it fails and
 * changes nothing), consume/reserve/commit, growth across many small
 * appends fed one byte at a time, printf, wipe.
 */
#include <stdio.h>
#include <string.h>

#include <mailaccess/mailaccess.h>

static int failures;
#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
	failures++; } } while (0)

static void test_limits(void)
{
	struct ma_buf b;
	ma_buf_init(&b, 10);
	CHECK(ma_buf_len(&b) == 0);
	CHECK(ma_buf_append(&b, "0123456789", 10) == 0);
	CHECK(ma_buf_len(&b) == 10);
	/* One byte over: refused, buffer unchanged. */
	CHECK(ma_buf_append(&b, "x", 1) == -1);
	CHECK(ma_buf_len(&b) == 10);
	CHECK(memcmp(ma_buf_ptr(&b), "0123456789", 10) == 0);
	CHECK(ma_buf_append(&b, "", 0) == 0);
	CHECK(ma_buf_reserve(&b, 1) == NULL);
	CHECK(ma_buf_printf(&b, "%d", 1) == -1);
	CHECK(ma_buf_len(&b) == 10);
	/* Consuming frees room under the max again. */
	ma_buf_consume(&b, 4);
	CHECK(ma_buf_len(&b) == 6);
	CHECK(memcmp(ma_buf_ptr(&b), "456789", 6) == 0);
	CHECK(ma_buf_append(&b, "abcd", 4) == 0);
	CHECK(ma_buf_len(&b) == 10);
	CHECK(memcmp(ma_buf_ptr(&b), "456789abcd", 10) == 0);
	CHECK(b.size <= 10 + 0 || b.size <= 256);
	/* A huge length never overflows the size computation. */
	CHECK(ma_buf_append(&b, "x", (size_t)-1) == -1);
	CHECK(ma_buf_reserve(&b, (size_t)-1) == NULL);
	ma_buf_consume(&b, 100);	/* more than there is: empties */
	CHECK(ma_buf_len(&b) == 0);
	ma_buf_free(&b);
	CHECK(b.data == NULL);

	/* max 0: nothing fits. */
	ma_buf_init(&b, 0);
	CHECK(ma_buf_append(&b, "x", 1) == -1);
	ma_buf_free(&b);
}

static void test_byte_at_a_time(void)
{
	struct ma_buf b;
	const size_t max = 100000;
	ma_buf_init(&b, max);
	size_t consumed = 0;
	unsigned char expect = 0;
	for (size_t i = 0; i < max; i++) {
		unsigned char c = (unsigned char)(i * 7);
		CHECK(ma_buf_append(&b, &c, 1) == 0);
		/* Consume a little now and then: exercises compaction. */
		if (i % 97 == 96) {
			size_t n = ma_buf_len(&b) / 2;
			for (size_t k = 0; k < n; k++) {
				expect = (unsigned char)((consumed + k) * 7);
				if (ma_buf_ptr(&b)[k] != expect) {
					CHECK(ma_buf_ptr(&b)[k] == expect);
					break;
				}
			}
			ma_buf_consume(&b, n);
			consumed += n;
		}
	}
	CHECK(consumed + ma_buf_len(&b) == max);
	for (size_t k = 0; k < ma_buf_len(&b); k++) {
		if (ma_buf_ptr(&b)[k] != (unsigned char)((consumed + k) * 7)) {
			CHECK(!"content after byte-at-a-time appends");
			break;
		}
	}
	/* The allocation never exceeds what max needs. */
	CHECK(b.size <= max);
	ma_buf_free(&b);
}

static void test_reserve_commit(void)
{
	struct ma_buf b;
	ma_buf_init(&b, 64);
	unsigned char *p = ma_buf_reserve(&b, 5);
	CHECK(p != NULL);
	memcpy(p, "hello", 5);
	ma_buf_commit(&b, 3);	/* wrote fewer than reserved */
	CHECK(ma_buf_len(&b) == 3);
	CHECK(memcmp(ma_buf_ptr(&b), "hel", 3) == 0);
	p = ma_buf_reserve(&b, 61);
	CHECK(p != NULL);
	CHECK(ma_buf_reserve(&b, 62) == NULL);
	ma_buf_consume(&b, 3);
	CHECK(ma_buf_reserve(&b, 64) != NULL);
	ma_buf_clear(&b);
	CHECK(ma_buf_len(&b) == 0);
	ma_buf_free(&b);

	/* reserve(0) on an empty buffer still gives a valid pointer. */
	ma_buf_init(&b, 16);
	CHECK(ma_buf_reserve(&b, 0) != NULL);
	ma_buf_free(&b);
}

static void test_printf_wipe(void)
{
	struct ma_buf b;
	ma_buf_init(&b, 12);
	CHECK(ma_buf_printf(&b, "+OK %d", 42) == 0);
	CHECK(ma_buf_len(&b) == 6);
	CHECK(memcmp(ma_buf_ptr(&b), "+OK 42", 6) == 0);
	/* Exactly up to max (the NUL must not count against it). */
	CHECK(ma_buf_printf(&b, "%s", "abcdef") == 0);
	CHECK(ma_buf_len(&b) == 12);
	CHECK(memcmp(ma_buf_ptr(&b), "+OK 42abcdef", 12) == 0);
	CHECK(ma_buf_printf(&b, "x") == -1);
	CHECK(ma_buf_len(&b) == 12);
	ma_buf_wipe(&b);
	CHECK(ma_buf_len(&b) == 0);
	int all_zero = 1;
	for (size_t i = 0; i < b.size; i++)
		all_zero &= b.data[i] == 0;
	CHECK(all_zero);
	ma_buf_free(&b);
}

int main(void)
{
	test_limits();
	test_byte_at_a_time();
	test_reserve_commit();
	test_printf_wipe();
	if (failures) {
		fprintf(stderr, "test-buf: %d failure(s)\n", failures);
		return 1;
	}
	printf("test-buf: ok\n");
	return 0;
}
