/*
 * lg-pop3.c - the POP3 client of ma-loadgen (RFC 1939): USER/PASS, STAT
 * when every message is to be read, then RETR over and over.
 *
 * A RETR body is never copied or stored: lg_dot_scan() (lg-scan.c) looks
 * for the terminating CRLF "." CRLF with memchr for '.' (rare in mail, so
 * it runs at memory speed), across reads, and the bytes are only counted.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lg.h"
#include "lg-scan.h"

enum pop3_state { P_GREETING, P_USER, P_PASS, P_STAT, P_RETR, P_BODY };

__attribute__((format(printf, 2, 3)))
static void pop3_send(struct lg_conn *c, const char *fmt, ...)
{
	char buf[700];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(buf) - 3)
		n = sizeof(buf) - 3;
	buf[n++] = '\r';
	buf[n++] = '\n';
	lg_send(c, buf, (size_t)n);
}

static int pop3_retr(struct lg_conn *c)
{
	long m;

	if (!lg_may_issue()) {
		lg_conn_close(c);
		lg_check_done();
		return -1;
	}
	if (lg.o.msg > 0) {
		m = lg.o.msg;
	} else {
		if (c->pop3_msgs <= 0) {
			lg_op_fail(c, "mailbox is empty");
			return -1;
		}
		m = c->pop3_next++ % c->pop3_msgs + 1;
	}
	pop3_send(c, "RETR %ld", m);
	lg_op_begin(c, LG_OP_RETR);
	c->state = P_RETR;
	return 0;
}

static int pop3_line(struct lg_conn *c, const char *line, size_t l)
{
	bool ok = l >= 3 && memcmp(line, "+OK", 3) == 0;
	char user[300];

	if (!ok && !(l >= 4 && memcmp(line, "-ERR", 4) == 0)) {
		lg_op_fail(c, "unexpected POP3 reply");
		return -1;
	}
	if (!ok)
		lg_reply_error(c, line, l);
	switch (c->state) {
	case P_GREETING:
		lg_op_end(c, ok, 0);
		if (!ok) {
			lg_conn_reconnect(c, 1.0);
			return -1;
		}
		if (!c->user_idx)
			c->user_idx = lg_next_user();
		lg_user(c->user_idx, user, sizeof(user));
		lg_op_begin(c, LG_OP_POP3_AUTH);
		pop3_send(c, "USER %s", user);
		c->state = P_USER;
		return 0;
	case P_USER:
		if (!ok) {
			lg_op_end(c, false, 0);
			lg_conn_reconnect(c, 1.0);
			return -1;
		}
		pop3_send(c, "PASS %s", lg.o.password);
		c->state = P_PASS;
		return 0;
	case P_PASS:
		lg_op_end(c, ok, 1);
		if (!ok) {
			lg_conn_reconnect(c, 1.0);
			return -1;
		}
		if (lg.o.msg > 0)
			return pop3_retr(c);
		pop3_send(c, "STAT");
		lg_op_begin(c, LG_OP_STAT);
		c->state = P_STAT;
		return 0;
	case P_STAT:
		lg_op_end(c, ok, 1);
		if (!ok) {
			lg_conn_reconnect(c, 1.0);
			return -1;
		}
		c->pop3_msgs = l > 4 ? strtol(line + 4, NULL, 10) : 0;
		c->pop3_next = c->id;
		return pop3_retr(c);
	case P_RETR:
		if (!ok) {
			lg_op_end(c, false, 1);
			return pop3_retr(c);
		}
		c->state = P_BODY;
		c->ml_state = LG_DOT_BOL;
		return 0;
	default:
		lg_op_fail(c, "unexpected POP3 reply");
		return -1;
	}
}

static long pop3_feed(struct lg_conn *c, const char *p, size_t n)
{
	size_t pos = 0;

	while (pos < n) {
		if (c->state == P_BODY) {
			bool done;
			pos += lg_dot_scan(&c->ml_state, p + pos, n - pos, &done);
			if (!done)
				break;
			lg_op_end(c, true, 1);
			if (pop3_retr(c) < 0)
				return -1;
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
		if (pop3_line(c, line, l) < 0)
			return -1;
	}
	return (long)pos;
}

static void pop3_connected(struct lg_conn *c)
{
	c->state = P_GREETING;
}

static void pop3_wake(struct lg_conn *c)
{
}

static void pop3_eof(struct lg_conn *c)
{
	lg_op_fail(c, "connection closed by the server");
}

const struct lg_proto lg_pop3_proto = {
	.connected = pop3_connected,
	.feed = pop3_feed,
	.wake = pop3_wake,
	.eof = pop3_eof,
};
