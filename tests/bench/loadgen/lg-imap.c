/*
 * lg-imap.c - the IMAP4rev1 client of ma-loadgen (RFC 3501, plus IDLE,
 * RFC 2177, and UNSELECT, RFC 3691, when the server announces it).
 *
 * One command in flight per session. Responses are scanned line by line
 * with memchr; a line ending in a literal {N} makes the parser skip N
 * bytes without looking at them (or copying them) and continue the same
 * response after it. Only the first line of a response is interpreted:
 * EXISTS / EXPUNGE counts, CAPABILITY, SEARCH hits, the UID of FETCH
 * responses (imap-mixed learns UIDs to STORE on), APPENDUID (RFC 4315) to
 * expunge what it appended, and the tagged status.
 *
 * Modes: imap-mixed (the weighted mix), imap-select, imap-fetch-flags,
 * imap-search-text and imap-idle-conns.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lg.h"
#include "lg-scan.h"

enum imap_state {
	I_GREETING,
	I_CMD,
	I_APPEND_CONT,
	I_IDLE_CONT,
	I_IDLING,
	I_IDLE_DONE,
	I_HOLD,
	I_LOGOUT,
};

enum imap_next { N_NONE, N_EXPUNGE };

static char *imap_msgbuf;

static bool imap_kw(const char *s, size_t l, const char *kw)
{
	size_t k = strlen(kw);

	return l >= k && strncasecmp(s, kw, k) == 0;
}

static const char *imap_find(const char *s, size_t l, const char *what)
{
	return memmem(s, l, what, strlen(what));
}

/* A quoted string (RFC 3501 section 4.3): backslash and quote escaped. */
static void imap_quote(char *dst, size_t size, const char *src)
{
	size_t o = 0;

	dst[o++] = '"';
	for (; *src && o + 3 < size; src++) {
		if (*src == '"' || *src == '\\')
			dst[o++] = '\\';
		dst[o++] = *src;
	}
	dst[o++] = '"';
	dst[o] = '\0';
}

__attribute__((format(printf, 3, 4)))
static void imap_cmd(struct lg_conn *c, enum lg_op op, const char *fmt, ...)
{
	char buf[1200];
	va_list ap;
	int n, m;

	c->tagn++;
	n = snprintf(c->tag, sizeof(c->tag), "a%u", c->tagn);
	c->taglen = (size_t)n;
	memcpy(buf, c->tag, c->taglen);
	buf[n++] = ' ';
	va_start(ap, fmt);
	m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 2, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	if ((size_t)m > sizeof(buf) - (size_t)n - 3)
		m = (int)(sizeof(buf) - (size_t)n - 3);
	n += m;
	buf[n++] = '\r';
	buf[n++] = '\n';
	lg_send(c, buf, (size_t)n);
	lg_op_begin(c, op);
	c->state = I_CMD;
}

static int imap_stop(struct lg_conn *c)
{
	lg_conn_close(c);
	lg_check_done();
	return -1;
}

/* LOGIN or SELECT refused: the session cannot go on. */
static int imap_session_failed(struct lg_conn *c)
{
	if (lg.o.mode == LG_IMAP_IDLE_CONNS) {
		lg_session_failed(c);
		return -1;
	}
	lg_conn_reconnect(c, 1.0);
	return -1;
}

static void imap_caps(struct lg_conn *c, const char *s, size_t l)
{
	c->caps_known = true;
	c->cap_unselect = imap_find(s, l, "UNSELECT") != NULL;
}

static void imap_login(struct lg_conn *c)
{
	char user[300], qu[620], qp[620];

	if (!c->user_idx)
		c->user_idx = lg_next_user();
	lg_user(c->user_idx, user, sizeof(user));
	imap_quote(qu, sizeof(qu), user);
	imap_quote(qp, sizeof(qp), lg.o.password);
	imap_cmd(c, LG_OP_LOGIN, "LOGIN %s %s", qu, qp);
}

static void imap_select(struct lg_conn *c)
{
	const char *mb = lg.o.mode == LG_IMAP_MIXED || lg.o.mode == LG_IMAP_IDLE_CONNS
		? "INBOX" : lg.o.mailbox;

	c->exists = 0;
	imap_cmd(c, LG_OP_SELECT, "SELECT \"%s\"", mb);
}

static void imap_append(struct lg_conn *c)
{
	char user[300];

	c->append_seq = ++lg.msg_seq;
	lg_user(c->user_idx, user, sizeof(user));
	size_t len = lg_msg_write(imap_msgbuf, c->append_seq, user, false);
	imap_cmd(c, LG_OP_APPEND, "APPEND INBOX {%zu}", len);
	c->state = I_APPEND_CONT;
}

static void imap_store_seen(struct lg_conn *c)
{
	char sign = lg_rand(c) & 1 ? '+' : '-';

	if (c->n_uids)
		imap_cmd(c, LG_OP_STORE, "UID STORE %u %cFLAGS (\\Seen)",
			 c->uids[lg_rand(c) % (unsigned)c->n_uids], sign);
	else
		imap_cmd(c, LG_OP_STORE, "STORE %ld %cFLAGS (\\Seen)",
			 (long)(lg_rand(c) % (uint64_t)c->exists) + 1, sign);
}

/* Mark one message this session appended \Deleted; EXPUNGE follows. */
static bool imap_mark_deleted(struct lg_conn *c)
{
	if (c->n_appended) {
		uint32_t uid = c->appended[--c->n_appended];
		imap_cmd(c, LG_OP_STORE, "UID STORE %u +FLAGS.SILENT (\\Deleted)", uid);
	} else if (c->pending_expunge > 0 && c->exists > 0) {
		/* No APPENDUID: the newest message is most likely ours. */
		c->pending_expunge--;
		imap_cmd(c, LG_OP_STORE, "STORE %ld +FLAGS.SILENT (\\Deleted)", c->exists);
	} else {
		return false;
	}
	c->next = N_EXPUNGE;
	return true;
}

static int imap_mixed_next(struct lg_conn *c)
{
	if (!lg_may_issue())
		return imap_stop(c);
	if (c->next == N_EXPUNGE) {
		c->next = N_NONE;
		imap_cmd(c, LG_OP_EXPUNGE, "EXPUNGE");
		return 0;
	}
	unsigned r = (unsigned)(lg_rand(c) % 100);
	if (r < 64 && c->exists <= 0)
		r = 64;		/* empty mailbox: fill it */
	if (r < 22) {
		long hi = c->exists, lo = hi > 50 ? hi - 49 : 1;
		imap_cmd(c, LG_OP_FETCH_ENV, "FETCH %ld:%ld (UID FLAGS ENVELOPE)", lo, hi);
	} else if (r < 44) {
		imap_cmd(c, LG_OP_FETCH_BODY, "FETCH %ld BODY.PEEK[]",
			 (long)(lg_rand(c) % (uint64_t)c->exists) + 1);
	} else if (r < 64) {
		imap_store_seen(c);
	} else if (r < 74) {
		imap_append(c);
	} else if (r < 84) {
		if (!imap_mark_deleted(c))
			imap_append(c);
	} else if (r < 94) {
		imap_cmd(c, LG_OP_NOOP, "NOOP");
	} else if (r < 98) {
		imap_cmd(c, LG_OP_IDLE, "IDLE");
		c->state = I_IDLE_CONT;
	} else {
		imap_cmd(c, LG_OP_LOGOUT, "LOGOUT");
		c->state = I_LOGOUT;
	}
	return 0;
}

/* The next command once SELECT is done, by mode. */
static int imap_selected_next(struct lg_conn *c)
{
	switch (lg.o.mode) {
	case LG_IMAP_MIXED:
		return imap_mixed_next(c);
	case LG_IMAP_SELECT:
		if (c->cap_unselect)
			imap_cmd(c, LG_OP_UNSELECT, "UNSELECT");
		else
			imap_cmd(c, LG_OP_UNSELECT, "CLOSE");
		return 0;
	case LG_IMAP_FETCH_FLAGS:
		if (!lg_may_issue())
			return imap_stop(c);
		imap_cmd(c, LG_OP_FETCH_FLAGS, "FETCH 1:* (UID FLAGS)");
		return 0;
	case LG_IMAP_SEARCH_TEXT:
		if (!lg_may_issue())
			return imap_stop(c);
		imap_cmd(c, LG_OP_SEARCH, "SEARCH TEXT \"%s\"", lg.o.text);
		return 0;
	case LG_IMAP_IDLE_CONNS:
	default:
		imap_cmd(c, LG_OP_IDLE, "IDLE");
		c->state = I_IDLE_CONT;
		return 0;
	}
}

static uint64_t imap_num(const char **sp, const char *e)
{
	const char *s = *sp;
	uint64_t v = 0;

	while (s < e && *s >= '0' && *s <= '9' && v < (1ull << 50))
		v = v * 10 + (uint64_t)(*s++ - '0');
	*sp = s;
	return v;
}

static void imap_learn_uid(struct lg_conn *c, const char *s, size_t l)
{
	const char *u = imap_find(s, l, "UID ");

	if (!u)
		return;
	u += 4;
	uint64_t uid = imap_num(&u, s + l);
	if (!uid || uid > 0xffffffffu)
		return;
	if (c->n_uids < 64)
		c->uids[c->n_uids++] = (uint32_t)uid;
	else
		c->uids[lg_rand(c) % 64] = (uint32_t)uid;
}

static void imap_untagged(struct lg_conn *c, const char *s, size_t l)
{
	const char *e = s + l;

	if (l && isdigit((unsigned char)*s)) {
		uint64_t n = imap_num(&s, e);
		if (s < e && *s == ' ')
			s++;
		l = (size_t)(e - s);
		if (imap_kw(s, l, "EXISTS"))
			c->exists = (long)n;
		else if (imap_kw(s, l, "EXPUNGE")) {
			if (c->exists > 0)
				c->exists--;
		} else if (imap_kw(s, l, "FETCH") && c->op == LG_OP_FETCH_ENV)
			imap_learn_uid(c, s, l);
		return;
	}
	if (imap_kw(s, l, "CAPABILITY ")) {
		imap_caps(c, s, l);
	} else if (imap_kw(s, l, "OK [CAPABILITY ") ||
		   imap_kw(s, l, "PREAUTH [CAPABILITY ")) {
		imap_caps(c, s, l);
	} else if (imap_kw(s, l, "SEARCH") && c->op == LG_OP_SEARCH) {
		uint64_t hits = 0;
		for (const char *p = s + 6; p + 1 < e; p++)
			if (*p == ' ' && isdigit((unsigned char)p[1]))
				hits++;
		lg.search_hits = hits;
	}
}

static int imap_greeting(struct lg_conn *c, const char *s, size_t l)
{
	lg_op_end(c, true, 0);	/* connect (and TLS handshake) done */
	if (imap_kw(s, l, "* OK")) {
		imap_untagged(c, s + 2, l - 2);
		imap_login(c);
		return 0;
	}
	lg_op_fail(c, "bad greeting");
	return -1;
}

static int imap_tagged(struct lg_conn *c, const char *line, size_t l)
{
	const char *s = line + c->taglen + 1, *e = line + l;
	size_t sl = (size_t)(e - s);
	bool ok = imap_kw(s, sl, "OK");
	enum lg_op op = c->op;

	if (!ok && imap_kw(s, sl, "NO [EXPUNGEISSUED]")) {
		/* RFC 2180 4.1.2, RFC 5530: another session expunged a
		   message this one still sees. A correct answer to a race
		   that sessions sharing a mailbox cause: a done op, counted
		   apart. */
		ok = true;
		if (c->op_counted && lg.phase == LG_MEASURE)
			lg.expunge_issued++;
	}
	if (!ok)
		lg_reply_error(c, line, l);
	if (ok && imap_find(s, sl, "[CAPABILITY "))
		imap_caps(c, s, sl);
	if (ok && op == LG_OP_APPEND) {
		const char *a = imap_find(s, sl, "[APPENDUID ");
		if (a) {
			a += 11;
			imap_num(&a, e);
			if (a < e && *a == ' ')
				a++;
			uint64_t uid = imap_num(&a, e);
			if (uid && uid <= 0xffffffffu) {
				if (c->n_appended == 64) {
					memmove(c->appended, c->appended + 1,
						63 * sizeof(c->appended[0]));
					c->n_appended--;
				}
				c->appended[c->n_appended++] = (uint32_t)uid;
			}
		} else {
			c->pending_expunge++;
		}
	}
	if (c->state == I_IDLE_CONT) {
		/* IDLE refused before the continuation */
		lg_op_end(c, false, 0);
		return imap_session_failed(c);
	}
	if (c->state == I_APPEND_CONT)
		ok = false;	/* refused before the literal */
	lg_op_end(c, ok, 1);

	switch (op) {
	case LG_OP_LOGIN:
		if (!ok)
			return imap_session_failed(c);
		if (lg.o.mode == LG_IMAP_SELECT && !c->caps_known) {
			imap_cmd(c, LG_OP_CAPABILITY, "CAPABILITY");
			return 0;
		}
		imap_select(c);
		return 0;
	case LG_OP_CAPABILITY:
		imap_select(c);
		return 0;
	case LG_OP_SELECT:
		if (!ok)
			return imap_session_failed(c);
		return imap_selected_next(c);
	case LG_OP_UNSELECT:
		if (!lg_may_issue())
			return imap_stop(c);
		imap_select(c);
		return 0;
	case LG_OP_LOGOUT:
		/* RFC 3501 6.1.3: BYE came, then this OK; we close. */
		lg_conn_reconnect(c, 0);
		return -1;
	case LG_OP_STORE:
		if (!ok)
			c->next = N_NONE;
		return imap_selected_next(c);
	default:
		return imap_selected_next(c);
	}
}

static int imap_continuation(struct lg_conn *c)
{
	double now;

	switch (c->state) {
	case I_APPEND_CONT: {
		char user[300];
		size_t max = lg_msg_max();
		char *p = lg_send_reserve(c, max);
		lg_user(c->user_idx, user, sizeof(user));
		size_t len = lg_msg_write(p, c->append_seq, user, false);
		c->out.used -= max - len;
		lg_send(c, "\r\n", 2);
		c->state = I_CMD;
		return 0;
	}
	case I_IDLE_CONT:
		now = lg_now();
		c->idle_part = now - c->op_start;
		lg_timeout_stop(c);
		if (lg.o.mode == LG_IMAP_IDLE_CONNS) {
			c->state = I_HOLD;
			c->op = LG_OP_NONE;
			lg_idle_established(c);
			return 0;
		}
		c->state = I_IDLING;
		lg_sleep(c, lg.o.idle_ms / 1000.0 *
			 (0.5 + (double)(lg_rand(c) % 1000) / 1000.0));
		return 0;
	default:
		lg_op_fail(c, "unexpected continuation request");
		return -1;
	}
}

/* The first line of a response (CRLF stripped, l bytes). */
static int imap_line(struct lg_conn *c, const char *line, size_t l)
{
	if (c->state == I_GREETING)
		return imap_greeting(c, line, l);
	if (l >= 2 && line[0] == '*' && line[1] == ' ') {
		imap_untagged(c, line + 2, l - 2);
		return 0;
	}
	if (l >= 1 && line[0] == '+')
		return imap_continuation(c);
	if (l > c->taglen && memcmp(line, c->tag, c->taglen) == 0 &&
	    line[c->taglen] == ' ' &&
	    (c->state == I_CMD || c->state == I_APPEND_CONT ||
	     c->state == I_IDLE_CONT || c->state == I_IDLE_DONE ||
	     c->state == I_LOGOUT))
		return imap_tagged(c, line, l);
	lg_op_fail(c, "unexpected response line");
	return -1;
}

static long imap_feed(struct lg_conn *c, const char *p, size_t n)
{
	size_t pos = 0;

	while (pos < n) {
		if (c->lit_left) {
			size_t k = n - pos < c->lit_left ? n - pos : (size_t)c->lit_left;
			pos += k;
			c->lit_left -= k;
			continue;
		}
		const char *nl = memchr(p + pos, '\n', n - pos);
		if (!nl)
			break;
		const char *line = p + pos;
		size_t l = (size_t)(nl - line);
		pos += l + 1;
		if (l && line[l - 1] == '\r')
			l--;
		uint64_t lit = 0;
		bool has_lit = lg_imap_literal(line, l, &lit);
		bool first = !c->resp_cont;
		c->resp_cont = has_lit;
		c->lit_left = lit;
		if (first && imap_line(c, line, l) < 0)
			return -1;
	}
	return (long)pos;
}

static void imap_connected(struct lg_conn *c)
{
	if (!imap_msgbuf) {
		imap_msgbuf = malloc(lg_msg_max());
		if (!imap_msgbuf) {
			fprintf(stderr, "ma-loadgen: out of memory\n");
			exit(1);
		}
	}
	c->state = I_GREETING;
	c->next = N_NONE;
	c->exists = 0;
}

static void imap_wake(struct lg_conn *c)
{
	if (c->state != I_IDLING)
		return;
	lg_sends(c, "DONE\r\n");
	c->op_extra = c->idle_part;
	c->op_start = lg_now();
	c->state = I_IDLE_DONE;
	lg_timeout_start(c);
}

static void imap_eof(struct lg_conn *c)
{
	lg_op_fail(c, "connection closed by the server");
}

const struct lg_proto lg_imap_proto = {
	.connected = imap_connected,
	.feed = imap_feed,
	.wake = imap_wake,
	.eof = imap_eof,
};
