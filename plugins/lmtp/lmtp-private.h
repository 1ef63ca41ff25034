/*
 * lmtp-private.h - what the files of lmtp.so share: settings, the session,
 * and the pure helpers of lmtp-proto.c (paths, parameters, recipient
 * detail, dot-unstuffing) that the unit test drives without a core.
 */
#ifndef LMTP_PRIVATE_H
#define LMTP_PRIVATE_H

#include <mailaccess/mailaccess.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1.4 asks for 512-octet command lines; real MTAs stay
 * far below this, anything longer is garbage (500 5.5.2). */
#define LMTP_LINE_MAX 4096
/* RFC 5321 4.5.3.1.8: at least 100 recipients; more than this in one
 * transaction is a mass mailing we refuse with 452 4.5.3. */
#define LMTP_RCPT_MAX 1000
/* RFC 5321 4.5.3.1.3: a path is at most 256 octets. */
#define LMTP_PATH_MAX 256
/* Unknown/invalid commands before we hang up (421). */
#define LMTP_BAD_MAX 10
/* Longest LHLO name kept for the Received: line. */
#define LMTP_HELO_MAX 128

struct lmtp_settings {
	char delimiters[8];	/* recipient_delimiter chars, "" = off */
	uint64_t max_message_size;
	char hostname[256];
};

/* ---- lmtp-proto.c (pure) ---- */

/* Dot-unstuffing of a DATA body (RFC 5321 4.5.2) into out, with every
 * line end written as CRLF (a bare LF becomes CRLF). Stops after the
 * terminating "." line. Bytes past out->max are dropped and *overflow set
 * (the body is still consumed to its end). */
enum lmtp_dot_state {
	LMTP_DOT_BOL = 0,	/* at the start of a line */
	LMTP_DOT_DOT,		/* "." at the start of a line */
	LMTP_DOT_DOTCR,		/* ".\r" */
	LMTP_DOT_MID,		/* inside a line */
	LMTP_DOT_CR,		/* "\r" inside a line */
};
struct lmtp_dot {
	enum lmtp_dot_state state;
	bool overflow;
};
/* Returns bytes consumed; *done set once the "." line was consumed. */
size_t lmtp_dot_feed(struct lmtp_dot *d, const unsigned char *p, size_t len,
		     struct ma_buf *out, bool *done);

/* "FROM:<a@b> SIZE=10" (after the verb): prefix is "FROM:" or "TO:".
 * Writes the address (without <>) into addr (LMTP_PATH_MAX + 1), and
 * the parameter text start into *params_r. 0 ok, -1 syntax error.
 * allow_empty: "<>" (the null reverse-path, MAIL only). */
int lmtp_parse_path(const char *arg, const char *prefix, bool allow_empty,
		    char *addr, const char **params_r);

/* Splits "user+detail@domain" on the first of delims in the local part:
 * writes "user@domain" to user (size usize) and "detail" to detail
 * (size dsize, "" if none). -1 if it does not fit. */
int lmtp_split_detail(const char *addr, const char *delims, char *user,
		      size_t usize, char *detail, size_t dsize);

/* MAIL parameters (RFC 1870 SIZE, RFC 6152 BODY). 0 ok, -1 syntax or
 * unknown parameter (*bad_r names it). */
int lmtp_parse_mail_params(const char *params, uint64_t *size_r,
			   const char **bad_r);

#endif
