/*
 * imap-write.c - output helpers: astring / nstring / literal choice,
 * mailbox names (modified UTF-7 unless UTF8=ACCEPT) and date-time.
 *
 * Everything appends to an ma_buf; the buffer's own max bounds the line.
 * The choice between atom, quoted string and literal follows RFC 3501
 * section 4 (formal syntax section 9): a quoted string cannot carry CR, LF,
 * NUL or (without UTF8=ACCEPT) 8-bit bytes, so those go out as literals.
 */
#include "imap-private.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Longest value we still send quoted; longer ones are literals, which
 * clients parse without scanning for escapes. */
#define IMAP_QUOTED_MAX 1024

/* ASTRING-CHAR (RFC 3501 section 9): ATOM-CHAR or "]". */
static bool imap_is_astring_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	switch (c) {
	case '(': case ')': case '{': case '%': case '*': case '"': case '\\':
		return false;
	default:
		return true;
	}
}

static bool imap_quotable(const char *s, size_t len)
{
	if (len > IMAP_QUOTED_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\0' || c == '\r' || c == '\n' || c >= 0x80)
			return false;
	}
	return true;
}

static void imap_buf_quoted(struct ma_buf *b, const char *s, size_t len)
{
	(void)ma_buf_append(b, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			(void)ma_buf_append(b, "\\", 1);
		(void)ma_buf_append(b, &s[i], 1);
	}
	(void)ma_buf_append(b, "\"", 1);
}

static void imap_buf_literal(struct ma_buf *b, const char *s, size_t len)
{
	(void)ma_buf_printf(b, "{%zu}\r\n", len);
	(void)ma_buf_append(b, s, len);
}

void imap_buf_quoted_or_literal(struct ma_buf *b, const char *s, size_t len)
{
	if (imap_quotable(s, len))
		imap_buf_quoted(b, s, len);
	else
		imap_buf_literal(b, s, len);
}

void imap_buf_astring(struct ma_buf *b, const char *s, size_t len)
{
	bool atom = len > 0 && len <= IMAP_QUOTED_MAX;

	for (size_t i = 0; atom && i < len; i++)
		atom = imap_is_astring_char((unsigned char)s[i]);
	/* "NIL" as an atom reads as NIL where an nstring may also appear */
	if (atom && !ma_slice_ieq(s, len, "NIL"))
		(void)ma_buf_append(b, s, len);
	else
		imap_buf_quoted_or_literal(b, s, len);
}

void imap_buf_nstring(struct ma_buf *b, const char *s, size_t len)
{
	if (s == NULL)
		(void)ma_buf_append(b, "NIL", 3);
	else
		imap_buf_quoted_or_literal(b, s, len);
}

void imap_buf_mailbox(struct imap_session *s, struct ma_buf *b,
		      const char *utf8_name)
{
	struct ma_buf tmp;
	size_t len = strlen(utf8_name);

	if (s != NULL && s->utf8_names) {
		/* RFC 6855 section 3: quoted strings may carry UTF-8 */
		bool atom = len > 0;

		for (size_t i = 0; atom && i < len; i++)
			atom = imap_is_astring_char((unsigned char)utf8_name[i]);
		if (atom && !ma_slice_ieq(utf8_name, len, "NIL"))
			(void)ma_buf_append(b, utf8_name, len);
		else if (len <= IMAP_QUOTED_MAX &&
			 memchr(utf8_name, '\r', len) == NULL &&
			 memchr(utf8_name, '\n', len) == NULL)
			imap_buf_quoted(b, utf8_name, len);
		else
			imap_buf_literal(b, utf8_name, len);
		return;
	}
	ma_buf_init(&tmp, len * 4 + 16);
	if (imap_utf7_encode(utf8_name, len, &tmp) < 0) {
		/* stored names are valid UTF-8 (the store checks); never
		 * send raw 8-bit to a client that did not ask for it */
		ma_buf_clear(&tmp);
		(void)ma_buf_append(&tmp, "INVALID", 7);
	}
	imap_buf_astring(b, (const char *)ma_buf_ptr(&tmp), ma_buf_len(&tmp));
	ma_buf_free(&tmp);
}

/* RFC 3501 date-time: DQUOTE date-day-fixed "-" date-month "-" date-year
 * SP time SP zone DQUOTE. The quotes are included. */
void imap_buf_datetime(struct ma_buf *b, int64_t t, int32_t tz_minutes)
{
	static const char months[12][4] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	struct tm tm;
	time_t local;
	int32_t tz = tz_minutes;
	char sign = '+';

	if (tz < -24 * 60 || tz > 24 * 60)
		tz = 0;
	local = (time_t)(t + (int64_t)tz * 60);
	if (gmtime_r(&local, &tm) == NULL || tm.tm_year + 1900 > 9999 ||
	    tm.tm_year + 1900 < 0) {
		local = 0;
		tz = 0;
		(void)gmtime_r(&local, &tm);
	}
	if (tz < 0) {
		sign = '-';
		tz = -tz;
	}
	(void)ma_buf_printf(b, "\"%02d-%s-%04d %02d:%02d:%02d %c%02d%02d\"",
			    tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
			    tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
			    (int)(tz / 60), (int)(tz % 60));
}
