/*
 * pop3-parser.c - the POP3 command line parser.
 *
 * Owns: splitting the byte stream into lines (incremental, bounded: it is
 * fed whatever arrived, one byte or many, and never holds more than one
 * line of `max` bytes), splitting a line into keyword and arguments, and
 * strict numeric arguments. No I/O here; the session feeds it.
 */
#include "pop3-private.h"

#include <string.h>

void pop3_parser_init(struct pop3_parser *p, unsigned char *buf, size_t cap,
		      size_t max)
{
	memset(p, 0, sizeof(*p));
	pop3_parser_set_buffer(p, buf, cap, max);
}

void pop3_parser_set_buffer(struct pop3_parser *p, unsigned char *buf,
			    size_t cap, size_t max)
{
	p->line = buf;
	p->cap = cap;
	/* room for the text, a CR before the LF is stripped, and the NUL
	 * we add for the command code's convenience */
	p->max = max + 2 <= cap ? max : cap - 2;
	p->len = 0;
}

void pop3_parser_reset(struct pop3_parser *p)
{
	p->len = 0;
	p->skipping = false;
	p->nul_seen = false;
}

enum pop3_parse_result pop3_parser_feed(struct pop3_parser *p,
					const unsigned char *data, size_t len,
					size_t *used_r)
{
	const unsigned char *lf = memchr(data, '\n', len);
	size_t take = lf != NULL ? (size_t)(lf - data) : len;
	bool was_skipping = p->skipping;

	*used_r = lf != NULL ? take + 1 : len;

	if (!p->skipping) {
		/* A CR may be the last byte before the LF: allow one byte
		 * over max while the line is open so "max text + CR" fits,
		 * and check the exact limit once the LF is seen. */
		size_t room = p->max + 1 - p->len;

		if (take > room) {
			p->skipping = true;
		} else {
			if (memchr(data, '\0', take) != NULL)
				p->nul_seen = true;
			memcpy(p->line + p->len, data, take);
			p->len += take;
		}
	}

	if (lf == NULL) {
		if (p->skipping && !was_skipping) {
			p->len = 0;
			return POP3_PARSE_TOO_LONG;
		}
		return POP3_PARSE_MORE;
	}

	/* end of line */
	if (p->skipping) {
		p->skipping = false;
		p->nul_seen = false;
		p->len = 0;
		/* reported already when it began skipping */
		return was_skipping ? POP3_PARSE_MORE : POP3_PARSE_TOO_LONG;
	}
	if (p->len > 0 && p->line[p->len - 1] == '\r')
		p->len--;
	if (p->len > p->max) {
		p->len = 0;
		p->nul_seen = false;
		return POP3_PARSE_TOO_LONG;
	}
	if (p->nul_seen) {
		p->nul_seen = false;
		p->len = 0;
		return POP3_PARSE_NUL;
	}
	p->line[p->len] = '\0';
	return POP3_PARSE_LINE;
}

void pop3_cmdline_split(const char *line, size_t len, struct pop3_cmdline *cmd_r)
{
	size_t i = 0, start;

	memset(cmd_r, 0, sizeof(*cmd_r));
	/* keyword: up to the first space */
	while (i < len && line[i] != ' ')
		i++;
	cmd_r->keyword = line;
	cmd_r->keyword_len = i;
	if (i < len) {
		cmd_r->rest = line + i + 1;
		cmd_r->rest_len = len - i - 1;
	} else {
		cmd_r->rest = line + len;
		cmd_r->rest_len = 0;
	}

	for (;;) {
		while (i < len && line[i] == ' ')
			i++;
		if (i >= len)
			break;
		start = i;
		while (i < len && line[i] != ' ')
			i++;
		if (cmd_r->n_args == POP3_MAX_ARGS) {
			cmd_r->too_many_args = true;
			break;
		}
		cmd_r->args[cmd_r->n_args] = line + start;
		cmd_r->arg_lens[cmd_r->n_args] = i - start;
		cmd_r->n_args++;
	}
}

int pop3_parse_number(const char *s, size_t len, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;

	/* 10 digits cover every uint32_t; more can only be an overflow
	 * (leading zeros included: nobody needs them). */
	if (len == 0 || len > 10)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}
