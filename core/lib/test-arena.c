/*
 * test-arena.c - ma_arena: many allocations of mixed sizes (zeroed,
 * aligned, distinct), oversize requests, string helpers, cleanup hooks
 * in last-registered-first order on reset and destroy, reset keeping one
 * block.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <mailaccess/mailaccess.h>

static int failures;
#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
	failures++; } } while (0)

static char order[32];
static size_t order_len;

static void record(void *ptr)
{
	if (order_len < sizeof(order) - 1)
		order[order_len++] = *(const char *)ptr;
}

static void test_many(void)
{
	struct ma_arena *a = ma_arena_create(0);
	enum { N = 20000 };
	static unsigned char *ptrs[N];
	static size_t sizes[N];
	for (unsigned i = 0; i < N; i++) {
		sizes[i] = (i * 37) % 300 + (i % 1000 == 0 ? 10000 : 0);
		ptrs[i] = ma_arena_alloc(a, sizes[i]);
		CHECK(((uintptr_t)ptrs[i] % _Alignof(max_align_t)) == 0);
		int zero = 1;
		for (size_t k = 0; k < sizes[i]; k++)
			zero &= ptrs[i][k] == 0;
		if (!zero)
			CHECK(!"arena memory not zeroed");
		memset(ptrs[i], (int)(i & 0xff), sizes[i]);
	}
	/* Nothing overlapped: every block still holds its own pattern. */
	for (unsigned i = 0; i < N; i++) {
		for (size_t k = 0; k < sizes[i]; k++) {
			if (ptrs[i][k] != (unsigned char)(i & 0xff)) {
				CHECK(!"arena allocations overlap");
				i = N;
				break;
			}
		}
	}
	size_t big = ma_arena_allocated(a);
	CHECK(big > 20000 * 100);
	ma_arena_reset(a);
	/* Reset keeps exactly the first block, which is small (1 kB: what
	 * an idle session's arena costs). */
	CHECK(ma_arena_allocated(a) < 1024 + 256);
	CHECK(ma_arena_allocated(a) >= 1024);
	/* Usable again after reset. */
	char *s = ma_arena_strdup(a, "after reset");
	CHECK(strcmp(s, "after reset") == 0);
	ma_arena_destroy(&a);
	CHECK(a == NULL);
	ma_arena_destroy(&a);	/* NULL is fine */
}

static void test_strings(void)
{
	struct ma_arena *a = ma_arena_create(64);
	CHECK(strcmp(ma_arena_strdup(a, "abc"), "abc") == 0);
	char *n = ma_arena_strndup(a, "abcdef", 3);
	CHECK(strcmp(n, "abc") == 0);
	/* strndup copies exactly len bytes even past a NUL-free slice. */
	const char slice[4] = { 'w', 'x', 'y', 'z' };
	CHECK(strcmp(ma_arena_strndup(a, slice, 4), "wxyz") == 0);
	CHECK(strcmp(ma_arena_printf(a, "%s=%d", "uid", 42), "uid=42") == 0);
	char longfmt[1000];
	memset(longfmt, 'q', sizeof(longfmt) - 1);
	longfmt[sizeof(longfmt) - 1] = '\0';
	char *l = ma_arena_printf(a, "%s!", longfmt);
	CHECK(strlen(l) == 1000 && l[999] == '!');
	CHECK(strcmp(ma_arena_printf(a, "%s", ""), "") == 0);
	void *z = ma_arena_alloc(a, 0);
	CHECK(z != NULL);
	ma_arena_destroy(&a);
}

static void test_cleanups(void)
{
	static const char tags[] = "abcd";
	struct ma_arena *a = ma_arena_create(128);
	for (int i = 0; i < 4; i++)
		ma_arena_cleanup_add(a, record, (void *)&tags[i]);
	order_len = 0;
	ma_arena_reset(a);
	order[order_len] = '\0';
	CHECK(strcmp(order, "dcba") == 0);
	/* Hooks run once: a second reset runs nothing. */
	order_len = 0;
	ma_arena_reset(a);
	CHECK(order_len == 0);
	ma_arena_cleanup_add(a, record, (void *)&tags[0]);
	ma_arena_cleanup_add(a, record, (void *)&tags[1]);
	ma_arena_destroy(&a);
	order[order_len] = '\0';
	CHECK(strcmp(order, "ba") == 0);
}

int main(void)
{
	test_many();
	test_strings();
	test_cleanups();
	if (failures) {
		fprintf(stderr, "test-arena: %d failure(s)\n", failures);
		return 1;
	}
	printf("test-arena: ok\n");
	return 0;
}
