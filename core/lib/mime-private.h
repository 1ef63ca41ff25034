/*
 * mime-private.h - helpers shared by the MIME parser's files (mime.c,
 * mime-parse.c, mime-cache.c, mime-decode.c, mime-address.c, mime-date.c).
 * Not exported from libmailaccess (only ma_* leaves the library).
 */
#ifndef MAILACCESS_MIME_PRIVATE_H
#define MAILACCESS_MIME_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include <mailaccess/mailaccess.h>

/* Longest header value we keep (after unfolding). Longer values are cut:
 * no client needs more and a hostile message must not make us allocate
 * per-field memory proportional to its size. Offsets are not affected. */
#define MIME_FIELD_MAX (64 * 1024)
/* Parameters kept per Content-Type / Content-Disposition field. */
#define MIME_PARAMS_MAX 64
/* RFC 2046 5.1.1: boundaries are at most 70 characters; we accept more
 * from sloppy mailers but not without bound. */
#define MIME_BOUNDARY_MAX 200

static inline bool mime_is_wsp(unsigned char c) { return c == ' ' || c == '\t'; }

/* Unfolds [p, p+len) (drops CR/LF line breaks), trims white space at both
 * ends, cuts at MIME_FIELD_MAX, and copies into the arena. */
char *mime_unfold(struct ma_arena *a, const unsigned char *p, size_t len);

/* Lower-cases an arena string in place; returns it. */
char *mime_lower(char *s);

/* Content-Type / Content-Disposition value: "token[/token] *(; param)".
 * type_r gets the first token (lower case, NULL if none), subtype_r the
 * token after '/' (lower case, NULL if none; pass NULL when no subtype is
 * expected). Parameters: names lower case, RFC 2231 continuations joined
 * (see mime-parse.c). */
void mime_parse_ctype(struct ma_arena *a, const char *value, const char **type_r,
		      const char **subtype_r, struct ma_mime_param **params_r,
		      unsigned *n_params_r);

/* Appends U+FFFD to out (-1 if full). */
int mime_put_replacement(struct ma_buf *out);
/* Skips RFC 5322 CFWS (white space, folding, nested comments with
 * quoted-pairs; an unterminated comment runs to the end). mime-parse.c. */
const char *mime_skip_cfws(const char *p);

#endif
