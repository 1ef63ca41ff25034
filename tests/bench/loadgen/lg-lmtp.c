/*
 * lg-lmtp.c - the LMTP client of ma-loadgen (RFC 2033 over SMTP, RFC
 * 5321): LHLO once per session, then transactions MAIL FROM, RCPT TO
 * (--rcpt-per-msg recipients, users round-robin), DATA, the message, and
 * one reply per accepted recipient. Each 2xx reply after DATA is one
 * delivery (an op); the latency recorded is the whole transaction's.
 * Commands are not pipelined: every step waits for its reply, as a
 * cautious MTA does.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lg.h"

enum lmtp_state { L_GREETING, L_LHLO, L_MAIL, L_RCPT, L_DATA, L_REPLIES, L_RSET };

__attribute__((format(printf, 2, 3)))
static void lmtp_send(struct lg_conn *c, const char *fmt, ...)
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

static int lmtp_transaction(struct lg_conn *c)
{
	if (!lg_may_issue()) {
		lmtp_send(c, "QUIT");
		lg_flush(c);
		lg_conn_close(c);
		lg_check_done();
		return -1;
	}
	lg_op_begin(c, LG_OP_DELIVER);
	lmtp_send(c, "MAIL FROM:<%s>", lg.o.from);
	c->state = L_MAIL;
	c->rcpt_sent = c->rcpt_ok = c->deliver_ok = 0;
	return 0;
}

static void lmtp_rcpt(struct lg_conn *c)
{
	char user[300];
	uint64_t idx = lg_next_user();

	lg_user(idx, user, sizeof(user));
	if (c->rcpt_sent == 0)
		c->user_idx = idx;	/* the To: header names the first */
	lmtp_send(c, "RCPT TO:<%s>", user);
	c->rcpt_sent++;
	c->state = L_RCPT;
}

static void lmtp_data(struct lg_conn *c)
{
	size_t max = lg_msg_max();
	uint64_t seq = ++lg.msg_seq;
	bool needle = lg.o.text && lg.o.text_every > 0 &&
		seq % (uint64_t)lg.o.text_every == 0;
	char to[300];
	char *p = lg_send_reserve(c, max);

	lg_user(c->user_idx, to, sizeof(to));
	size_t len = lg_msg_write(p, seq, to, needle);

	c->out.used -= max - len;
	lg_send(c, ".\r\n", 3);
	c->replies_left = c->rcpt_ok;
	c->state = L_REPLIES;
}

/* One complete reply (its last line), code 100..599. */
static int lmtp_reply(struct lg_conn *c, int code, const char *line, size_t l)
{
	bool ok2 = code >= 200 && code < 300;

	switch (c->state) {
	case L_GREETING:
		lg_op_end(c, code == 220, 0);
		if (code != 220) {
			lg_reply_error(c, line, l);
			lg_conn_reconnect(c, 1.0);
			return -1;
		}
		lg_op_begin(c, LG_OP_LHLO);
		lmtp_send(c, "LHLO loadgen.example.net");
		c->state = L_LHLO;
		return 0;
	case L_LHLO:
		lg_op_end(c, ok2, 0);
		if (!ok2) {
			lg_reply_error(c, line, l);
			lg_conn_reconnect(c, 1.0);
			return -1;
		}
		return lmtp_transaction(c);
	case L_MAIL:
		if (!ok2) {
			lg_reply_error(c, line, l);
			lg_op_end(c, false, 0);
			lmtp_send(c, "RSET");
			c->state = L_RSET;
			return 0;
		}
		lmtp_rcpt(c);
		return 0;
	case L_RCPT:
		if (ok2)
			c->rcpt_ok++;
		else
			lg_reply_error(c, line, l);
		if (c->rcpt_sent < lg.o.rcpt_per_msg) {
			lmtp_rcpt(c);
			return 0;
		}
		if (!c->rcpt_ok) {
			lg_op_end(c, false, 0);
			lmtp_send(c, "RSET");
			c->state = L_RSET;
			return 0;
		}
		lmtp_send(c, "DATA");
		c->state = L_DATA;
		return 0;
	case L_DATA:
		if (code != 354) {
			lg_reply_error(c, line, l);
			lg_op_end(c, false, 0);
			lmtp_send(c, "RSET");
			c->state = L_RSET;
			return 0;
		}
		lmtp_data(c);
		return 0;
	case L_REPLIES:
		if (ok2)
			c->deliver_ok++;
		else
			lg_reply_error(c, line, l);
		if (--c->replies_left > 0)
			return 0;
		/* Deliveries that worked are ops even if a recipient failed;
		   a transaction with a failure is also one error. */
		if (c->deliver_ok == c->rcpt_sent) {
			lg_op_end(c, true, (uint64_t)c->deliver_ok);
		} else {
			if (c->deliver_ok && c->op_counted && lg.phase == LG_MEASURE)
				lg.ops += (uint64_t)c->deliver_ok;
			lg_op_end(c, false, 0);
		}
		return lmtp_transaction(c);
	case L_RSET:
	default:
		if (!ok2) {
			lg_op_fail(c, "RSET refused");
			return -1;
		}
		return lmtp_transaction(c);
	}
}

static long lmtp_feed(struct lg_conn *c, const char *p, size_t n)
{
	size_t pos = 0;

	while (pos < n) {
		const char *nl = memchr(p + pos, '\n', n - pos);
		if (!nl)
			break;
		const char *line = p + pos;
		size_t l = (size_t)(nl - line);
		pos += l + 1;
		if (l && line[l - 1] == '\r')
			l--;
		if (l < 3 || line[0] < '1' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9') {
			lg_op_fail(c, "malformed LMTP reply");
			return -1;
		}
		if (l > 3 && line[3] == '-')
			continue;	/* not the last line of the reply */
		int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		if (lmtp_reply(c, code, line, l) < 0)
			return -1;
	}
	return (long)pos;
}

static void lmtp_connected(struct lg_conn *c)
{
	c->state = L_GREETING;
}

static void lmtp_wake(struct lg_conn *c)
{
}

static void lmtp_eof(struct lg_conn *c)
{
	lg_op_fail(c, "connection closed by the server");
}

const struct lg_proto lg_lmtp_proto = {
	.connected = lmtp_connected,
	.feed = lmtp_feed,
	.wake = lmtp_wake,
	.eof = lmtp_eof,
};
