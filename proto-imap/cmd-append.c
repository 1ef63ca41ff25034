/*
 * cmd-append.c - APPEND (RFC 3501 6.3.11) with APPENDUID (UIDPLUS,
 * RFC 4315), [TRYCREATE] for a missing mailbox, [TOOBIG] (RFC 7889) past
 * limits.max_message_size, and the IMAP date-time parser.
 *
 * The message literal arrives whole in the command arena (the parser
 * bounds it by max_message_size before sending "+"). The store promises
 * CRLF line ends (POP3 RETR and IMAP FETCH send the bytes as stored and
 * RFC822.SIZE must be exact), so bare LFs are turned into CRLF here; the
 * size the client sent is then not the stored size (docs/imap.md). The
 * per-message MIME cache is left to ma_store_append(), which computes it
 * for every way mail arrives (APPEND, deliver, LMTP).
 *
 * MULTIAPPEND (RFC 3502) is not offered: one message per APPEND.
 */
#include <string.h>
#include <strings.h>

#include "imap-private.h"

static const char imap_months[12][4] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
};

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t imap_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool imap_digits(const char *s, size_t n, unsigned *v)
{
	*v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (unsigned)(s[i] - '0');
	}
	return true;
}

int imap_parse_datetime(const char *s, size_t len, int64_t *t_r, int32_t *tz_r);

/* RFC 3501 date-time (without the quotes): "dd-Mon-yyyy hh:mm:ss +zzzz",
 * dd may be " d" or "d". 0 ok, -1 invalid. Exported for the unit test. */
int imap_parse_datetime(const char *s, size_t len, int64_t *t_r, int32_t *tz_r)
{
	static const unsigned mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned day, mon, year, hh, mm, ss, zh, zm;
	size_t i = 0, dlen;
	int sign;

	if (len > 0 && s[0] == ' ') {
		i++;
		dlen = 1;
	} else {
		dlen = len > 1 && s[1] >= '0' && s[1] <= '9' ? 2 : 1;
	}
	/* the rest is fixed: "-Mon-yyyy hh:mm:ss +zzzz" = 24 bytes */
	if (len != i + dlen + 24 || !imap_digits(s + i, dlen, &day))
		return -1;
	i += dlen;
	if (s[i] != '-' || s[i + 4] != '-')
		return -1;
	for (mon = 0; mon < 12; mon++) {
		if (strncasecmp(s + i + 1, imap_months[mon], 3) == 0)
			break;
	}
	if (mon == 12)
		return -1;
	i += 5;
	if (!imap_digits(s + i, 4, &year) || s[i + 4] != ' ' ||
	    !imap_digits(s + i + 5, 2, &hh) || s[i + 7] != ':' ||
	    !imap_digits(s + i + 8, 2, &mm) || s[i + 10] != ':' ||
	    !imap_digits(s + i + 11, 2, &ss) || s[i + 13] != ' ' ||
	    (s[i + 14] != '+' && s[i + 14] != '-') ||
	    !imap_digits(s + i + 15, 2, &zh) || !imap_digits(s + i + 17, 2, &zm))
		return -1;
	if (day < 1 || day > mdays[mon] || year < 1900 || hh > 23 || mm > 59 ||
	    ss > 60 || zm > 59 || zh > 23)
		return -1;
	if (mon == 1 && day == 29 &&
	    !((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
		return -1;
	sign = s[i + 14] == '-' ? -1 : 1;
	*tz_r = sign * (int32_t)(zh * 60 + zm);
	*t_r = imap_days_from_civil(year, mon + 1, day) * 86400 +
		(int64_t)hh * 3600 + mm * 60 + (ss > 59 ? 59 : ss) - (int64_t)*tz_r * 60;
	return 0;
}

static const struct {
	const char *name;
	uint32_t flag;
} imap_append_flags[] = {
	{ "\\Seen", MA_FLAG_SEEN },
	{ "\\Answered", MA_FLAG_ANSWERED },
	{ "\\Flagged", MA_FLAG_FLAGGED },
	{ "\\Deleted", MA_FLAG_DELETED },
	{ "\\Draft", MA_FLAG_DRAFT },
};

/* (flags): system flags and keywords. -1 with *why on bad input. */
static int imap_append_parse_flags(struct imap_cmd *cmd, const struct imap_arg *l,
				   struct ma_append_msg *m, const char **why)
{
	const char **kw = ma_arena_alloc(cmd->arena, (l->list_count + 1) * sizeof(*kw));
	unsigned n_kw = 0;

	for (unsigned i = 0; i < l->list_count; i++) {
		const struct imap_arg *f = &l->list[i];
		bool dup = false;

		if (f->type != IMAP_ARG_ATOM || f->len == 0) {
			*why = "Invalid flag";
			return -1;
		}
		if (f->str[0] == '\\') {
			size_t k, n = sizeof(imap_append_flags) / sizeof(imap_append_flags[0]);
			for (k = 0; k < n; k++) {
				if (strcasecmp(f->str, imap_append_flags[k].name) == 0)
					break;
			}
			if (k < n) {
				m->flags |= imap_append_flags[k].flag;
			} else if (strcasecmp(f->str, "\\Recent") != 0) {
				/* \Recent is the server's to set: ignored. */
				*why = "Invalid system flag";
				return -1;
			}
			continue;
		}
		for (unsigned k = 0; k < n_kw; k++)
			dup = dup || strcasecmp(kw[k], f->str) == 0;
		if (dup)
			continue;
		if (n_kw >= MA_KEYWORDS_MAX) {
			*why = "Too many keywords";
			return -1;
		}
		kw[n_kw++] = f->str;
	}
	m->keywords = kw;
	m->n_keywords = n_kw;
	return 0;
}

/* Bare LF -> CRLF (copy in the arena only when needed). */
static const unsigned char *imap_append_crlf(struct ma_arena *a, const unsigned char *d,
					     size_t len, size_t *len_r)
{
	size_t bare = 0;
	unsigned char *out;
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (d[i] == '\n' && (i == 0 || d[i - 1] != '\r'))
			bare++;
	}
	*len_r = len;
	if (bare == 0)
		return d;
	out = ma_arena_alloc(a, len + bare + 1);
	for (size_t i = 0; i < len; i++) {
		if (d[i] == '\n' && (i == 0 || d[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = d[i];
	}
	*len_r = o;
	return out;
}

enum imap_cmd_result imap_cmd_append(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	const struct imap_arg *args = cmd->args;
	struct ma_append_msg m;
	struct ma_error_info err;
	const char *why = NULL;
	const unsigned char *data;
	uint32_t uid = 0, uidvalidity = 0;
	unsigned i = 1;
	size_t size;
	char *name;
	int rc;

	memset(&m, 0, sizeof(m));
	memset(&err, 0, sizeof(err));
	if (cmd->n_args < 2 || imap_arg_astring(&args[0]) == NULL) {
		imap_reply(cmd, "BAD", NULL,
			   "Usage: APPEND mailbox [(flags)] [date-time] literal");
		return IMAP_CMD_DONE;
	}
	if (i < cmd->n_args - 1 && args[i].type == IMAP_ARG_LIST) {
		if (imap_append_parse_flags(cmd, &args[i], &m, &why) < 0) {
			imap_reply(cmd, "BAD", NULL, "%s", why);
			return IMAP_CMD_DONE;
		}
		i++;
	}
	if (i < cmd->n_args - 1 && args[i].type == IMAP_ARG_STRING) {
		if (imap_parse_datetime(args[i].str, args[i].len, &m.internal_date,
					&m.internal_tz) < 0) {
			imap_reply(cmd, "BAD", NULL, "Invalid date-time");
			return IMAP_CMD_DONE;
		}
		i++;
	}
	if (i != cmd->n_args - 1 ||
	    (args[i].type != IMAP_ARG_LITERAL && args[i].type != IMAP_ARG_STRING)) {
		/* MULTIAPPEND (RFC 3502) would continue here: not offered. */
		imap_reply(cmd, "BAD", NULL,
			   "Usage: APPEND mailbox [(flags)] [date-time] literal");
		return IMAP_CMD_DONE;
	}
	name = imap_mailbox_from_client(s, cmd->arena, args[0].str, args[0].len, &err);
	if (name == NULL) {
		imap_reply_mailbox_error(cmd, &err);
		return IMAP_CMD_DONE;
	}
	if (args[i].len == 0) {
		imap_reply(cmd, "NO", "CANNOT", "Can't save an empty message");
		return IMAP_CMD_DONE;
	}
	data = imap_append_crlf(cmd->arena, (const unsigned char *)args[i].str,
				args[i].len, &size);
	if (s->set != NULL && s->set->max_message_size > 0 &&
	    size > s->set->max_message_size) {
		imap_reply(cmd, "NO", "TOOBIG", "Message too large (max %llu bytes)",
			   (unsigned long long)s->set->max_message_size);
		return IMAP_CMD_DONE;
	}
	m.data = data;
	m.size = size;
	rc = ma_store_append(s->user, name, &m, 1, &uid, &uidvalidity, &err);
	if (rc < 0) {
		if (err.code == MA_ERR_NOTFOUND)
			imap_reply(cmd, "NO", "TRYCREATE", "Mailbox doesn't exist: %s",
				   err.text);
		else
			imap_reply_mailbox_error(cmd, &err);
		return IMAP_CMD_DONE;
	}
	s->n_append++;
	/* RFC 3501 6.3.11: appending to the selected mailbox shows as EXISTS
	 * before the tagged reply. */
	if (s->sel != NULL && strcmp(s->sel->name, name) == 0)
		imap_sync_report(s, true);
	imap_reply(cmd, "OK", ma_arena_printf(cmd->arena, "APPENDUID %u %u", uidvalidity, uid),
		   "Append completed");
	return IMAP_CMD_DONE;
}
