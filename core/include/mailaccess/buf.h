/*
 * buf.h - growable byte buffer with a hard maximum. Appending past `max`
 * fails (returns -1) and leaves the buffer unchanged, so a client can never
 * make us allocate more than the limit chosen for that buffer.
 *
 * Bytes live in data[start .. used). ma_buf_consume() advances `start`
 * (cheap); the space is reclaimed by the next append that needs it.
 */
#ifndef MAILACCESS_BUF_H
#define MAILACCESS_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct ma_buf {
	unsigned char *data;
	size_t start;	/* first unread byte */
	size_t used;	/* end of valid bytes */
	size_t size;	/* allocated */
	size_t max;	/* hard limit on used - start */
};

void ma_buf_init(struct ma_buf *b, size_t max);
void ma_buf_free(struct ma_buf *b);

static inline size_t ma_buf_len(const struct ma_buf *b) { return b->used - b->start; }
/* An empty, never-grown buffer has data == NULL: NULL + 0 is undefined in C
 * (clang's UBSan flags it), so it gives "" instead (found by fuzz-imap). */
static inline const unsigned char *ma_buf_ptr(const struct ma_buf *b)
{
	return b->data != NULL ? b->data + b->start : (const unsigned char *)"";
}

/* 0 on success, -1 if the result would exceed max (nothing appended). */
int ma_buf_append(struct ma_buf *b, const void *data, size_t len);
int ma_buf_printf(struct ma_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int ma_buf_vprintf(struct ma_buf *b, const char *fmt, va_list ap);
/* Makes room for at least len bytes and returns where to write them;
 * NULL if that would exceed max. Follow with ma_buf_commit(b, written). */
unsigned char *ma_buf_reserve(struct ma_buf *b, size_t len);
void ma_buf_commit(struct ma_buf *b, size_t len);
/* Drops n bytes from the front (n <= ma_buf_len()). */
void ma_buf_consume(struct ma_buf *b, size_t n);
void ma_buf_clear(struct ma_buf *b);
/* Zeroes the whole allocation (for buffers that held secrets). */
void ma_buf_wipe(struct ma_buf *b);

#endif
