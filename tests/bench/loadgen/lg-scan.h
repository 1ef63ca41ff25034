/*
 * lg-scan.h - ma-loadgen's state-free byte scanners (lg-scan.c).
 */
#ifndef LG_SCAN_H
#define LG_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* States of lg_dot_scan(); a POP3 multi-line body starts at LG_DOT_BOL. */
enum { LG_DOT_MID, LG_DOT_BOL, LG_DOT_DOT, LG_DOT_DOTCR };

/* Scan n bytes of a POP3 multi-line response (RFC 1939 3) for its end,
   CRLF "." CRLF, carrying *state across calls. Returns the bytes used:
   up to and including the terminator (*done_r true, *state reset), or n
   (*done_r false). Dot-stuffed lines ("..x") are not the end. */
size_t lg_dot_scan(int *state, const char *p, size_t n, bool *done_r);

/* Does the response line (l bytes, CRLF stripped) end with a literal
   announcement {N} or {N+} (RFC 3501 4.3, RFC 7888)? Then *n_r = N. */
bool lg_imap_literal(const char *line, size_t l, uint64_t *n_r);

#endif
