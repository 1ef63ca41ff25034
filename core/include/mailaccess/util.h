/*
 * util.h - small helpers shared by the core and plugins: base64, bounded
 * string handling, secrets wiping, time.
 */
#ifndef MAILACCESS_UTIL_H
#define MAILACCESS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Encoded length incl. padding, without NUL. */
size_t ma_base64_encoded_len(size_t len);
/* Writes NUL-terminated base64 into out (size >= encoded_len + 1). */
void ma_base64_encode(const void *data, size_t len, char *out);
/* Strict RFC 4648 decode (padding required, no whitespace). out must hold
 * len * 3 / 4 + 1 bytes; a NUL is appended. Returns decoded length or -1. */
long ma_base64_decode(const char *in, size_t len, unsigned char *out);

/* Zero memory in a way the compiler does not remove. */
void ma_wipe(void *p, size_t len);

/* Case-insensitive ASCII compare of a slice with a NUL-terminated word. */
bool ma_slice_ieq(const char *s, size_t len, const char *word);

/* Decimal parse of the whole slice into *out; -1 on empty, non-digit or
 * overflow past max. */
int ma_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out);

/* Monotonic seconds (ev_now is preferred inside the loop). */
double ma_monotonic(void);

/* Random bytes from getrandom(2); aborts on failure. */
void ma_random(void *buf, size_t len);

#endif
