/*
 * arena.c - the region allocator (arena.h) and the abort-on-failure heap
 * helpers. An arena is a list of malloc'd blocks; allocations are bumped
 * from the current block and never freed one by one. Requests larger than
 * a block get a block of their own so a big allocation never wastes the
 * remainder of the current one. Cleanup hooks run last-registered first,
 * like destructors, so a hook may rely on what was registered before it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core-private.h"

#define MA_ARENA_DEFAULT_BLOCK 4096
/* The first block (kept across resets, so it is what an idle arena costs)
 * is at most this big; the arena grows in block_size blocks after it. A
 * session has two arenas (the conn's and the command's), and 10,000 idle
 * IMAP sessions made 4 kB first blocks 80 MB of the server. */
#define MA_ARENA_FIRST_BLOCK 1024
#define MA_ARENA_ALIGN (_Alignof(max_align_t))

struct ma_arena_block {
	struct ma_arena_block *next;
	size_t size;		/* usable bytes after the header */
	size_t used;
	/* data follows, aligned */
	max_align_t data[];
};

struct ma_arena_cleanup {
	struct ma_arena_cleanup *next;
	void (*fn)(void *);
	void *ptr;
};

struct ma_arena {
	struct ma_arena_block *first;	/* kept across reset */
	struct ma_arena_block *cur;	/* bump from here */
	struct ma_arena_block *big;	/* oversize requests, own blocks */
	struct ma_arena_cleanup *cleanups; /* newest first */
	size_t block_size;
	size_t allocated;
};

void ma_oom(void)
{
	static const char msg[] = "mailaccess: out of memory\n";
	/* write(2) rather than stdio: nothing may allocate now. */
	ssize_t r = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)r;
	abort();
}

void *ma_malloc0(size_t size)
{
	void *p = calloc(1, size ? size : 1);
	if (p == NULL)
		ma_oom();
	return p;
}

void *ma_realloc(void *p, size_t size)
{
	p = realloc(p, size ? size : 1);
	if (p == NULL)
		ma_oom();
	return p;
}

char *ma_strdup(const char *s)
{
	char *p = strdup(s);
	if (p == NULL)
		ma_oom();
	return p;
}

static struct ma_arena_block *arena_block_new(struct ma_arena *a, size_t size)
{
	if (size > SIZE_MAX - sizeof(struct ma_arena_block))
		ma_oom();
	struct ma_arena_block *b = malloc(sizeof(*b) + size);
	if (b == NULL)
		ma_oom();
	b->next = NULL;
	b->size = size;
	b->used = 0;
	a->allocated += sizeof(*b) + size;
	return b;
}

struct ma_arena *ma_arena_create(size_t block_size)
{
	struct ma_arena *a = ma_malloc0(sizeof(*a));
	a->block_size = block_size ? block_size : MA_ARENA_DEFAULT_BLOCK;
	a->first = arena_block_new(a, a->block_size < MA_ARENA_FIRST_BLOCK ?
				   a->block_size : MA_ARENA_FIRST_BLOCK);
	a->cur = a->first;
	return a;
}

static void arena_run_cleanups(struct ma_arena *a)
{
	/* A hook may register another hook (or allocate): loop until none. */
	while (a->cleanups != NULL) {
		struct ma_arena_cleanup *c = a->cleanups;
		a->cleanups = c->next;
		void (*fn)(void *) = c->fn;
		void *ptr = c->ptr;
		free(c);
		fn(ptr);
	}
}

static void arena_free_list(struct ma_arena *a, struct ma_arena_block *b)
{
	while (b != NULL) {
		struct ma_arena_block *next = b->next;
		a->allocated -= sizeof(*b) + b->size;
		free(b);
		b = next;
	}
}

void ma_arena_reset(struct ma_arena *a)
{
	arena_run_cleanups(a);
	arena_free_list(a, a->first->next);
	arena_free_list(a, a->big);
	a->first->next = NULL;
	a->big = NULL;
	a->first->used = 0;
	a->cur = a->first;
}

void ma_arena_destroy(struct ma_arena **ap)
{
	struct ma_arena *a = *ap;
	if (a == NULL)
		return;
	*ap = NULL;
	arena_run_cleanups(a);
	arena_free_list(a, a->first);
	arena_free_list(a, a->big);
	free(a);
}

void *ma_arena_alloc(struct ma_arena *a, size_t size)
{
	if (size == 0)
		size = 1;
	if (size > SIZE_MAX - MA_ARENA_ALIGN)
		ma_oom();
	size_t asize = (size + MA_ARENA_ALIGN - 1) & ~(MA_ARENA_ALIGN - 1);

	if (asize > a->block_size / 2) {
		/* Oversize: its own block, so the current one is not wasted. */
		struct ma_arena_block *b = arena_block_new(a, asize);
		b->next = a->big;
		a->big = b;
		b->used = asize;
		memset(b->data, 0, asize);
		return b->data;
	}
	struct ma_arena_block *b = a->cur;
	if (b->size - b->used < asize) {
		/* Reuse a block kept from before a reset if there is one. */
		if (b->next != NULL) {
			b = b->next;
			b->used = 0;
		} else {
			b = arena_block_new(a, a->block_size);
			a->cur->next = b;
		}
		a->cur = b;
	}
	void *p = (unsigned char *)b->data + b->used;
	b->used += asize;
	memset(p, 0, asize);
	return p;
}

char *ma_arena_strndup(struct ma_arena *a, const char *s, size_t len)
{
	if (len == SIZE_MAX)
		ma_oom();
	char *p = ma_arena_alloc(a, len + 1);
	if (len > 0)
		memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *ma_arena_strdup(struct ma_arena *a, const char *s)
{
	return ma_arena_strndup(a, s, strlen(s));
}

/* Redeclared with format(printf, N, 0) so clang's -Wformat-nonliteral
 * knows fmt is the caller's checked format. */
char *ma_arena_vprintf(struct ma_arena *a, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

char *ma_arena_vprintf(struct ma_arena *a, const char *fmt, va_list ap)
{
	if (fmt == NULL)
		return ma_arena_strndup(a, "", 0);
	va_list ap2;
	va_copy(ap2, ap);
	/* A 1-byte scratch rather than NULL: some GCC sanitizer builds
	 * misreport vsnprintf(NULL, 0, ...) as a null format string. */
	char scratch[1];
	int n = vsnprintf(scratch, sizeof(scratch), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		n = 0;
	char *p = ma_arena_alloc(a, (size_t)n + 1);
	if (n > 0)
		vsnprintf(p, (size_t)n + 1, fmt, ap);
	return p;
}

char *ma_arena_printf(struct ma_arena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *p = ma_arena_vprintf(a, fmt, ap);
	va_end(ap);
	return p;
}

void ma_arena_cleanup_add(struct ma_arena *a, void (*fn)(void *), void *ptr)
{
	/* Not from the arena itself: reset must not lose the list it walks. */
	struct ma_arena_cleanup *c = ma_malloc0(sizeof(*c));
	c->fn = fn;
	c->ptr = ptr;
	c->next = a->cleanups;
	a->cleanups = c;
}

size_t ma_arena_allocated(const struct ma_arena *a)
{
	return a->allocated;
}
