/*
 * buf.c - the bounded byte buffer (buf.h). Growth doubles the allocation
 * but never past what `max` allows (plus the consumed prefix, which is
 * compacted away before growing), so a peer cannot make a buffer bigger
 * than its limit. A failed append leaves the buffer exactly as it was.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core-private.h"

#define MA_BUF_MIN_ALLOC 256

void ma_buf_init(struct ma_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void ma_buf_free(struct ma_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->start = b->used = b->size = 0;
}

/* Makes room for len more bytes after `used`; -1 if over max. */
static int buf_make_room(struct ma_buf *b, size_t len)
{
	size_t cur = b->used - b->start;
	if (len > b->max || cur > b->max - len)
		return -1;
	if (b->size - b->used >= len)
		return 0;
	/* Compact first: consumed bytes at the front are free space. */
	if (b->start > 0) {
		if (cur > 0)
			memmove(b->data, b->data + b->start, cur);
		b->start = 0;
		b->used = cur;
		if (b->size - b->used >= len)
			return 0;
	}
	size_t need = cur + len;	/* <= max, no overflow */
	size_t nsize = b->size ? b->size : MA_BUF_MIN_ALLOC;
	while (nsize < need) {
		if (nsize > SIZE_MAX / 2) {
			nsize = need;
			break;
		}
		nsize *= 2;
	}
	if (nsize > b->max)
		nsize = b->max > need ? b->max : need;
	b->data = ma_realloc(b->data, nsize);
	b->size = nsize;
	return 0;
}

int ma_buf_append(struct ma_buf *b, const void *data, size_t len)
{
	if (len == 0)
		return ma_buf_len(b) <= b->max ? 0 : -1;
	if (buf_make_room(b, len) < 0)
		return -1;
	memcpy(b->data + b->used, data, len);
	b->used += len;
	return 0;
}

/* Redeclared with format(printf, N, 0) so clang's -Wformat-nonliteral
 * knows fmt is the caller's checked format. */
int ma_buf_vprintf(struct ma_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

int ma_buf_vprintf(struct ma_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	/* A 1-byte scratch rather than NULL: some GCC sanitizer builds
	 * misreport vsnprintf(NULL, 0, ...) as a null format string. */
	char scratch[1];
	int n = vsnprintf(scratch, sizeof(scratch), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -1;
	/* vsnprintf writes a NUL too: reserve n + 1 but commit n. */
	if (buf_make_room(b, (size_t)n) < 0)
		return -1;
	if (b->size - b->used < (size_t)n + 1) {
		/* The NUL needs one byte past max: use a temporary. */
		char *tmp = ma_malloc0((size_t)n + 1);
		vsnprintf(tmp, (size_t)n + 1, fmt, ap);
		memcpy(b->data + b->used, tmp, (size_t)n);
		free(tmp);
	} else {
		vsnprintf((char *)b->data + b->used, (size_t)n + 1, fmt, ap);
	}
	b->used += (size_t)n;
	return 0;
}

int ma_buf_printf(struct ma_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = ma_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

unsigned char *ma_buf_reserve(struct ma_buf *b, size_t len)
{
	if (buf_make_room(b, len) < 0)
		return NULL;
	if (b->data == NULL) {
		/* len == 0 on an empty buffer: still hand out a valid pointer. */
		b->data = ma_malloc0(MA_BUF_MIN_ALLOC);
		b->size = MA_BUF_MIN_ALLOC;
	}
	return b->data + b->used;
}

void ma_buf_commit(struct ma_buf *b, size_t len)
{
	/* Our own invariant: commit only what reserve handed out. */
	if (len > b->size - b->used)
		len = b->size - b->used;
	b->used += len;
}

void ma_buf_consume(struct ma_buf *b, size_t n)
{
	size_t cur = b->used - b->start;
	if (n >= cur) {
		b->start = b->used = 0;
		return;
	}
	b->start += n;
}

void ma_buf_clear(struct ma_buf *b)
{
	b->start = b->used = 0;
}

void ma_buf_wipe(struct ma_buf *b)
{
	if (b->data != NULL)
		ma_wipe(b->data, b->size);
	b->start = b->used = 0;
}
