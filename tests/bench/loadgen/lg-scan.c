/*
 * lg-scan.c - ma-loadgen's two byte scanners, kept free of any session
 * state so test-lg-scan.c can feed them input split at every place:
 * the POP3 multi-line terminator (CRLF "." CRLF) and the IMAP literal
 * announcement ({N} at the end of a response line).
 */
#include <string.h>

#include "lg-scan.h"

size_t lg_dot_scan(int *state, const char *p, size_t n, bool *done_r)
{
	const char *q = p, *e = p + n;
	int st = *state;

	*done_r = false;
	while (q < e) {
		switch (st) {
		case LG_DOT_MID: {
			/* Look for dots, not line ends: far rarer, so this
			   is one long memchr over most bodies. In this state
			   the byte before q is never the LF ending a line
			   whose first byte q is a dot. */
			const char *d = memchr(q, '.', (size_t)(e - q));
			if (!d) {
				st = e[-1] == '\n' ? LG_DOT_BOL : LG_DOT_MID;
				q = e;
				break;
			}
			if (d > q && d[-1] == '\n')
				st = LG_DOT_DOT;
			q = d + 1;
			break;
		}
		case LG_DOT_BOL:
			if (*q == '.') {
				st = LG_DOT_DOT;
				q++;
			} else {
				st = LG_DOT_MID;
			}
			break;
		case LG_DOT_DOT:
			if (*q == '\r') {
				st = LG_DOT_DOTCR;
				q++;
			} else if (*q == '\n') {
				/* bare LF: lenient, as most clients are */
				*done_r = true;
				*state = LG_DOT_MID;
				return (size_t)(q + 1 - p);
			} else {
				st = LG_DOT_MID;	/* a dot-stuffed line */
			}
			break;
		default:
			if (*q == '\n') {
				*done_r = true;
				*state = LG_DOT_MID;
				return (size_t)(q + 1 - p);
			}
			st = LG_DOT_MID;
			break;
		}
	}
	*state = st;
	return n;
}

bool lg_imap_literal(const char *line, size_t l, uint64_t *n_r)
{
	uint64_t v = 0;

	if (l < 3 || line[l - 1] != '}')
		return false;
	size_t i = l - 1;
	if (line[i - 1] == '+')
		i--;
	size_t end = i;
	while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
		i--;
	/* 15 digits: far beyond any real message, and no overflow */
	if (i == 0 || i == end || line[i - 1] != '{' || end - i > 15)
		return false;
	for (; i < end; i++)
		v = v * 10 + (uint64_t)(line[i] - '0');
	*n_r = v;
	return true;
}
