/*
 * pop3-private.h - what the files of pop3.so share with each other.
 *
 * The pure parts (line parser, UIDL formats, dot-stuffing) depend on libc
 * only, so their unit tests build without the core; the session and
 * command files use conn.h / auth.h / store.h.
 */
#ifndef POP3_PRIVATE_H
#define POP3_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------ parser */

/* RFC 2449 section 4: a command line is at most 255 octets including the
 * CRLF, so the text of a line is at most 253 octets. */
#define POP3_LINE_MAX 255
#define POP3_CMD_TEXT_MAX (POP3_LINE_MAX - 2)
/* SASL continuation lines (RFC 5034) are not command lines; we take up
 * to 12288 octets of base64, the figure RFC 4954 sets for SMTP AUTH. */
#define POP3_SASL_TEXT_MAX 12288
/* Arguments we ever need: TOP n lines, AUTH mech initial-response. */
#define POP3_MAX_ARGS 3

enum pop3_parse_result {
	POP3_PARSE_MORE = 0,	/* all bytes taken, no complete line yet */
	POP3_PARSE_LINE,	/* a line is ready in parser->line/len */
	POP3_PARSE_TOO_LONG,	/* line over the limit: the rest of it will
				   be discarded silently up to its LF */
	POP3_PARSE_NUL,		/* a complete line that held a NUL byte */
};

struct pop3_parser {
	unsigned char *line;	/* line text, NUL-terminated on LINE */
	size_t len;		/* bytes of text so far */
	size_t max;		/* longest text accepted (<= cap - 1) */
	size_t cap;		/* bytes of `line` */
	bool skipping;		/* discarding an over-long line */
	bool nul_seen;		/* the current line contains NUL */
};

/* buf/cap: storage for a line (cap >= max + 1). */
void pop3_parser_init(struct pop3_parser *p, unsigned char *buf, size_t cap,
		      size_t max);
/* Switch storage and limit between lines (SASL continuation). */
void pop3_parser_set_buffer(struct pop3_parser *p, unsigned char *buf,
			    size_t cap, size_t max);
/* Forget any partial line (after STLS: the core dropped its input). */
void pop3_parser_reset(struct pop3_parser *p);
/* Takes bytes from data up to and including the first LF (or all of them)
 * and sets *used_r. Line ends: CRLF or bare LF; one CR before the LF is
 * stripped. Never stores more than max bytes. */
enum pop3_parse_result pop3_parser_feed(struct pop3_parser *p,
					const unsigned char *data, size_t len,
					size_t *used_r);

/* A command line split in place: keyword and up to POP3_MAX_ARGS args
 * separated by runs of spaces. `rest` is everything after the keyword and
 * one space (PASS takes a password that may contain spaces). */
struct pop3_cmdline {
	const char *keyword;
	size_t keyword_len;
	const char *args[POP3_MAX_ARGS];
	size_t arg_lens[POP3_MAX_ARGS];
	unsigned n_args;
	bool too_many_args;
	const char *rest;
	size_t rest_len;
};
void pop3_cmdline_split(const char *line, size_t len, struct pop3_cmdline *cmd_r);
/* Strict decimal: 1-10 digits, no sign, no space, value <= max.
 * Returns 0 or -1. */
int pop3_parse_number(const char *s, size_t len, uint32_t max, uint32_t *out);

/* --------------------------------------------------------- UIDL format */

/* RFC 1939 section 7: a unique-id is 1 to 70 characters 0x21-0x7E. */
#define POP3_UIDL_MAX 70
#define POP3_UIDL_FMT_MAX_PARTS 16

enum pop3_uidl_part_kind { POP3_UIDL_LITERAL, POP3_UIDL_UID, POP3_UIDL_UIDVALIDITY };

struct pop3_uidl_part {
	enum pop3_uidl_part_kind kind;
	bool hex;		/* lower-case hex, as Dovecot's %X */
	unsigned width;		/* zero-padded to this many digits */
	char literal[POP3_UIDL_MAX + 1];
};

struct pop3_uidl_format {
	struct pop3_uidl_part parts[POP3_UIDL_FMT_MAX_PARTS];
	unsigned n_parts;
};

/* Accepts a preset name (mailaccess, dovecot, courier, cyrus) or a
 * format. Returns 0, or -1 with *error_r (static string). */
int pop3_uidl_format_parse(const char *spec, struct pop3_uidl_format *fmt,
			   const char **error_r);
/* Writes the UIDL (NUL-terminated) into out (size >= POP3_UIDL_MAX + 1);
 * returns its length. */
size_t pop3_uidl_expand(const struct pop3_uidl_format *fmt, uint32_t uidvalidity,
			uint32_t uid, char *out);

/* ------------------------------------------------------- dot-stuffing */

/* Biggest single ma_conn_write() of message bytes. */
#define POP3_STREAM_CHUNK (16 * 1024)

/* Streams data[0..end) as an RFC 1939 multi-line body: a line starting
 * with '.' gets another '.', and the reply ends with ".\r\n" (after an
 * added CRLF if the bytes do not end in one). Resumable at any point. */
struct pop3_dotstuff {
	const unsigned char *data;
	size_t end;
	size_t pos;
	bool line_start;	/* next byte at pos begins a line */
	bool stuffed;		/* the extra '.' for pos was already written */
	bool need_crlf;		/* a CRLF before the terminator is needed */
	bool finished;
};

void pop3_dotstuff_init(struct pop3_dotstuff *ds, const unsigned char *data,
			size_t end);
/* write() returns 0 or -1 (output failed: stop, return -1).
 * full() says "stop producing now". Returns 1 when the terminator was
 * written, 0 when parked because full() was true, -1 on write failure. */
int pop3_dotstuff_run(struct pop3_dotstuff *ds,
		      int (*write_fn)(void *ctx, const void *data, size_t len),
		      bool (*full_fn)(void *ctx), void *ctx);
/* TOP: where headers + blank line + `lines` body lines end in data. */
size_t pop3_top_end(const unsigned char *data, size_t size, uint32_t lines);

/* --------------------------------------------------------- settings */

struct pop3_settings {
	struct pop3_uidl_format uidl;
	char uidl_spec[128];
	uint32_t login_delay;	/* seconds, CAPA LOGIN-DELAY; 0 = not sent */
	bool expire_never;
	uint32_t expire_days;
};

#endif
