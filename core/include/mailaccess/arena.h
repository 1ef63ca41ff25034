/*
 * arena.h - region allocator. One arena per connection and one per command
 * (reset when the command ends); per-transaction arenas in stores.
 * Memory from an arena is never freed one piece at a time: it goes when the
 * arena is reset or destroyed. Cleanup hooks release fds and handles then.
 * Allocation failure aborts the process (one place: ma_oom()).
 * Not thread-safe: an arena belongs to one thread at a time.
 */
#ifndef MAILACCESS_ARENA_H
#define MAILACCESS_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct ma_arena;

/* block_size: size of each chunk taken from malloc (0 = 4096). Requests
 * larger than a block get a chunk of their own. */
struct ma_arena *ma_arena_create(size_t block_size);
/* Runs cleanup hooks (last registered first), frees all, sets *a = NULL. */
void ma_arena_destroy(struct ma_arena **a);
/* Runs cleanup hooks and forgets all allocations; keeps the first block. */
void ma_arena_reset(struct ma_arena *a);

/* Zeroed memory, aligned for any type. Never returns NULL. */
void *ma_arena_alloc(struct ma_arena *a, size_t size);
char *ma_arena_strdup(struct ma_arena *a, const char *s);
/* Copies len bytes and adds a NUL. */
char *ma_arena_strndup(struct ma_arena *a, const char *s, size_t len);
char *ma_arena_printf(struct ma_arena *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
char *ma_arena_vprintf(struct ma_arena *a, const char *fmt, va_list ap);

/* fn(ptr) runs when the arena is reset or destroyed. */
void ma_arena_cleanup_add(struct ma_arena *a, void (*fn)(void *), void *ptr);

/* Bytes currently taken from malloc by this arena (for stats and tests). */
size_t ma_arena_allocated(const struct ma_arena *a);

/* Heap helpers that abort on failure instead of returning NULL. */
void *ma_malloc0(size_t size);
void *ma_realloc(void *p, size_t size);
char *ma_strdup(const char *s);
__attribute__((noreturn)) void ma_oom(void);

#endif
