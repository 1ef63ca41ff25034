/*
 * pop3-uidl.c - UIDL strings from UIDVALIDITY and UID.
 *
 * Owns the `uidl_format` setting: presets that print byte for byte what
 * other servers print (so a migrated mailbox is not downloaded again by
 * every client, docs/pop3.md lists the sources) and custom formats with
 * %u %v, %Xu %Xv (lower-case hex, as Dovecot's var_expand %X), %0Nu
 * (zero padded to N) and %%. A format is checked once at startup so that
 * every string it can produce is a valid RFC 1939 unique-id: 1..70
 * characters in 0x21-0x7E, and different for different UIDs.
 */
#include "pop3-private.h"

#include <stdio.h>
#include <string.h>

struct pop3_uidl_preset {
	const char *name;
	const char *format;
};

static const struct pop3_uidl_preset pop3_uidl_presets[] = {
	/* Dovecot's default pop3_uidl_format since 1.0 */
	{ "dovecot", "%08Xu%08Xv" },
	/* what Dovecot documents for Courier ("version 2") migrations */
	{ "courier", "%v-%u" },
	/* Cyrus >= 2.1.4 (its uidl_format = cyrus default) */
	{ "cyrus", "%v.%u" },
	/* our own: the Dovecot layout, fixed width, safe for every client */
	{ "mailaccess", "%08Xu%08Xv" },
};

static unsigned pop3_uidl_part_max_len(const struct pop3_uidl_part *part)
{
	unsigned digits;

	if (part->kind == POP3_UIDL_LITERAL)
		return (unsigned)strlen(part->literal);
	digits = part->hex ? 8 : 10;	/* a uint32_t */
	return part->width > digits ? part->width : digits;
}

int pop3_uidl_format_parse(const char *spec, struct pop3_uidl_format *fmt,
			   const char **error_r)
{
	const char *p;
	struct pop3_uidl_part *lit = NULL;
	unsigned total = 0;
	bool have_uid = false;

	memset(fmt, 0, sizeof(*fmt));
	for (size_t i = 0; i < sizeof(pop3_uidl_presets) / sizeof(pop3_uidl_presets[0]); i++) {
		if (strcmp(spec, pop3_uidl_presets[i].name) == 0) {
			spec = pop3_uidl_presets[i].format;
			break;
		}
	}
	if (*spec == '\0') {
		*error_r = "empty format";
		return -1;
	}

	for (p = spec; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c != '%' || p[1] == '%') {
			if (c == '%')
				p++;	/* "%%" is a literal '%' */
			else if (c < 0x21 || c > 0x7e) {
				*error_r = "characters must be printable ASCII "
					"without spaces (RFC 1939 section 7)";
				return -1;
			}
			if (lit == NULL) {
				if (fmt->n_parts == POP3_UIDL_FMT_MAX_PARTS) {
					*error_r = "format has too many parts";
					return -1;
				}
				lit = &fmt->parts[fmt->n_parts++];
				lit->kind = POP3_UIDL_LITERAL;
			}
			size_t l = strlen(lit->literal);
			if (l >= POP3_UIDL_MAX) {
				*error_r = "format is longer than 70 characters";
				return -1;
			}
			lit->literal[l] = (char)c;
			continue;
		}

		/* '%' [0 width] [X] (u|v) */
		struct pop3_uidl_part part = { .kind = POP3_UIDL_LITERAL };
		p++;
		if (*p == '0') {
			p++;
			if (*p < '1' || *p > '9') {
				*error_r = "%0 must be followed by a width";
				return -1;
			}
			while (*p >= '0' && *p <= '9') {
				part.width = part.width * 10 + (unsigned)(*p - '0');
				if (part.width > POP3_UIDL_MAX) {
					*error_r = "width is over 70";
					return -1;
				}
				p++;
			}
		} else if (*p >= '1' && *p <= '9') {
			/* Dovecot truncates with a width without 0: a UIDL
			 * must never lose digits, so we refuse it. */
			*error_r = "only zero-padded widths (%08u) are supported";
			return -1;
		}
		if (*p == 'X') {
			part.hex = true;
			p++;
		}
		if (*p == 'u') {
			part.kind = POP3_UIDL_UID;
			have_uid = true;
		} else if (*p == 'v') {
			part.kind = POP3_UIDL_UIDVALIDITY;
		} else {
			*error_r = "unknown variable: use %u, %v, %Xu, %Xv, "
				"%0Nu or %%";
			return -1;
		}
		if (fmt->n_parts == POP3_UIDL_FMT_MAX_PARTS) {
			*error_r = "format has too many parts";
			return -1;
		}
		fmt->parts[fmt->n_parts++] = part;
		lit = NULL;
	}

	if (!have_uid) {
		*error_r = "format must contain %u (the UID) or UIDLs are not "
			"unique";
		return -1;
	}
	for (unsigned i = 0; i < fmt->n_parts; i++)
		total += pop3_uidl_part_max_len(&fmt->parts[i]);
	if (total > POP3_UIDL_MAX) {
		*error_r = "format can produce more than 70 characters "
			"(RFC 1939 section 7)";
		return -1;
	}
	return 0;
}

size_t pop3_uidl_expand(const struct pop3_uidl_format *fmt, uint32_t uidvalidity,
			uint32_t uid, char *out)
{
	size_t len = 0;

	out[0] = '\0';
	for (unsigned i = 0; i < fmt->n_parts; i++) {
		const struct pop3_uidl_part *part = &fmt->parts[i];
		uint32_t v = part->kind == POP3_UIDL_UID ? uid : uidvalidity;
		int n;

		if (part->kind == POP3_UIDL_LITERAL)
			n = snprintf(out + len, POP3_UIDL_MAX + 1 - len, "%s",
				     part->literal);
		else
			n = snprintf(out + len, POP3_UIDL_MAX + 1 - len,
				     part->hex ? "%0*x" : "%0*u",
				     (int)part->width, (unsigned)v);
		/* parse() bounded the total; clamp defensively anyway */
		if (n < 0)
			break;
		len += (size_t)n;
		if (len > POP3_UIDL_MAX) {
			len = POP3_UIDL_MAX;
			break;
		}
	}
	out[len] = '\0';
	return len;
}
