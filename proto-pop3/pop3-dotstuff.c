/*
 * pop3-dotstuff.c - RETR/TOP bodies as RFC 1939 multi-line responses.
 *
 * Owns byte-stuffing (section 3: a line beginning with '.' gets one more
 * '.') and the terminating ".\r\n", written straight from the store's
 * pointer in pieces of at most POP3_STREAM_CHUNK bytes, each as long as
 * it can be (a piece ends only where a line begins with '.'): the message
 * is never copied, a stuffed '.' is a one-byte write of its own, and the
 * state survives any pause (output full) at any byte, including between
 * the LF and the '.' of a "\r\n." that falls on a chunk edge. Also finds
 * where TOP's "headers + blank line + n lines" end.
 */
#include "pop3-private.h"

#include <string.h>

void pop3_dotstuff_init(struct pop3_dotstuff *ds, const unsigned char *data,
			size_t end)
{
	memset(ds, 0, sizeof(*ds));
	ds->data = data;
	ds->end = end;
	ds->line_start = true;
	/* Bytes not ending in CRLF get one before the terminator, so the
	 * client sees "CRLF.CRLF" (an empty body needs none). */
	ds->need_crlf = end > 0 &&
		!(end >= 2 && data[end - 2] == '\r' && data[end - 1] == '\n');
}

int pop3_dotstuff_run(struct pop3_dotstuff *ds,
		      int (*write_fn)(void *ctx, const void *data, size_t len),
		      bool (*full_fn)(void *ctx), void *ctx)
{
	while (ds->pos < ds->end) {
		const unsigned char *start = ds->data + ds->pos;
		size_t avail = ds->end - ds->pos;
		size_t piece;
		const unsigned char *lf;

		if (full_fn(ctx))
			return 0;
		if (ds->line_start && *start == '.' && !ds->stuffed) {
			if (write_fn(ctx, ".", 1) < 0)
				return -1;
			ds->stuffed = true;
			continue;	/* re-check full() before the line */
		}
		if (avail > POP3_STREAM_CHUNK)
			avail = POP3_STREAM_CHUNK;
		/* One write for everything up to the next line that begins
		 * with '.' (through its LF), or the whole chunk: the lines
		 * are found with memchr, and no line costs a write of its
		 * own. */
		piece = avail;
		ds->line_start = start[avail - 1] == '\n';
		for (const unsigned char *p = start;;) {
			lf = memchr(p, '\n', (size_t)(start + avail - p));
			if (lf == NULL || lf + 1 == start + avail)
				break;
			if (lf[1] == '.') {
				piece = (size_t)(lf - start) + 1;
				ds->line_start = true;
				break;
			}
			p = lf + 1;
		}
		if (write_fn(ctx, start, piece) < 0)
			return -1;
		ds->pos += piece;
		ds->stuffed = false;
	}
	if (ds->finished)
		return 1;
	if (full_fn(ctx))
		return 0;
	if (ds->need_crlf) {
		if (write_fn(ctx, "\r\n.\r\n", 5) < 0)
			return -1;
	} else {
		if (write_fn(ctx, ".\r\n", 3) < 0)
			return -1;
	}
	ds->finished = true;
	return 1;
}

size_t pop3_top_end(const unsigned char *data, size_t size, uint32_t lines)
{
	size_t pos = 0;

	/* The header ends with the first empty line; "\n" alone is taken as
	 * a line end too so a stored bare-LF message still works. */
	for (;;) {
		const unsigned char *lf;
		size_t line_len;

		if (pos >= size)
			return size;	/* all header, no body */
		lf = memchr(data + pos, '\n', size - pos);
		if (lf == NULL)
			return size;
		line_len = (size_t)(lf - (data + pos));
		pos = (size_t)(lf - data) + 1;
		if (line_len == 0 || (line_len == 1 && data[pos - 2] == '\r'))
			break;		/* the blank line, included */
	}
	while (lines > 0 && pos < size) {
		const unsigned char *lf = memchr(data + pos, '\n', size - pos);

		if (lf == NULL)
			return size;
		pos = (size_t)(lf - data) + 1;
		lines--;
	}
	return pos;
}
