/*
 * lg-main.c - ma-loadgen: command line, run phases (warm-up, measurement,
 * end), op accounting and the final report (human summary on stderr,
 * one JSON object on stdout with --json).
 *
 * The command line is a contract with the benchmark runner: see
 * lg_usage() and docs/performance.md, "The load generator".
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include "lg.h"

struct lg_run lg;

static struct lg_conn *lg_conns;
static int lg_n_conns;
static struct ev_timer lg_phase_timer, lg_ramp_timer, lg_progress_timer;
static struct ev_signal lg_sigint, lg_sigterm;
static uint64_t lg_done_ops;	/* counted ops finished (ok or not) */
static unsigned lg_errors_shown;

#define LG_ERRORS_SHOWN 20

static const char *const lg_op_names[LG_OP_COUNT_] = {
	[LG_OP_NONE] = "none",
	[LG_OP_CONNECT] = "connect",
	[LG_OP_LOGIN] = "login",
	[LG_OP_CAPABILITY] = "capability",
	[LG_OP_SELECT] = "select",
	[LG_OP_UNSELECT] = "unselect",
	[LG_OP_FETCH_ENV] = "fetch_envelope",
	[LG_OP_FETCH_BODY] = "fetch_body",
	[LG_OP_FETCH_FLAGS] = "fetch_flags",
	[LG_OP_SEARCH] = "search",
	[LG_OP_STORE] = "store",
	[LG_OP_APPEND] = "append",
	[LG_OP_EXPUNGE] = "expunge",
	[LG_OP_NOOP] = "noop",
	[LG_OP_IDLE] = "idle",
	[LG_OP_LOGOUT] = "logout",
	[LG_OP_SETUP] = "setup",
	[LG_OP_POP3_AUTH] = "pop3_auth",
	[LG_OP_STAT] = "stat",
	[LG_OP_RETR] = "retr",
	[LG_OP_LHLO] = "lhlo",
	[LG_OP_DELIVER] = "deliver",
};

static void lg_usage(FILE *f)
{
	fputs(
"usage: ma-loadgen MODE [options]\n"
"modes: imap-mixed imap-select imap-fetch-flags imap-search-text\n"
"       pop3-retr lmtp imap-idle-conns\n"
"common options:\n"
"  --host A            server address (IPv4, default 127.0.0.1)\n"
"  --port N            server port (default 143 / 110 / 24 by protocol)\n"
"  --tls               implicit TLS, the certificate is not checked\n"
"  --users-fmt F       user names, %d is the user number (user%d@example.com)\n"
"  --users N           users 1..N, taken round-robin by sessions (1)\n"
"  --password P        every user's password (password)\n"
"  --clients C         concurrent sessions (1)\n"
"  --duration S        seconds measured; 0 = until --count ops are done (10)\n"
"  --count N           ops to do when --duration is 0 (1000)\n"
"  --warmup S          seconds of load before measuring (0)\n"
"  --source-ips A-B    spread connections over local addresses A..B (or A,B,C)\n"
"  --timeout S         an op taking longer is an error (30)\n"
"  --json              one JSON object on stdout at the end\n"
"  --seed N            random seed (1)\n"
"mode options:\n"
"  --mailbox M         imap-select etc.: mailbox to select (INBOX)\n"
"  --text W            imap-search-text: SEARCH TEXT word;\n"
"                      lmtp: word put into every --text-every'th message\n"
"  --text-every K      lmtp: see --text (0 = never)\n"
"  --idle-ms MS        imap-mixed: how long an IDLE lasts (200)\n"
"  --msg N             pop3-retr: RETR message N; 0 = all in turn (1)\n"
"  --size B            lmtp and imap-mixed APPEND: message size (4096)\n"
"  --rcpt-per-msg R    lmtp: recipients per message (1)\n"
"  --from ADDR         lmtp: envelope sender (loadgen@example.net)\n"
"  --conns N           imap-idle-conns: connections (1000)\n"
"  --rate R            imap-idle-conns: new connections per second (500)\n"
"  --hold S            imap-idle-conns: seconds to hold them (10)\n"
"exit: 0 the run worked (errors under 1%), 1 it did not, 2 usage\n", f);
}

double lg_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t lg_rand(struct lg_conn *c)
{
	uint64_t x = c->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	c->rng = x;
	return x;
}

uint64_t lg_next_user(void)
{
	return lg.user_rr++ % (uint64_t)lg.o.users + 1;
}

/* users_fmt with "%d" replaced by idx ("%%" is a '%'): done by hand, the
   format is user input and never reaches printf. */
void lg_user(uint64_t idx, char *dst, size_t size)
{
	const char *f = lg.o.users_fmt;
	size_t o = 0;
	char num[24];
	int nl = snprintf(num, sizeof(num), "%llu", (unsigned long long)idx);

	for (; *f && o + 1 < size; f++) {
		if (f[0] == '%' && f[1] == 'd') {
			for (int i = 0; i < nl && o + 1 < size; i++)
				dst[o++] = num[i];
			f++;
		} else if (f[0] == '%' && f[1] == '%') {
			dst[o++] = '%';
			f++;
		} else {
			dst[o++] = *f;
		}
	}
	dst[o] = '\0';
}

static void lg_finish(void)
{
	if (lg.phase == LG_DONE)
		return;
	if (lg.phase == LG_WARMUP)
		lg.t_measure = lg_now();
	lg.phase = LG_DONE;
	lg.t_end = lg_now();
	ev_break(lg.loop, EVBREAK_ALL);
}

bool lg_may_issue(void)
{
	if (lg.phase == LG_DONE)
		return false;
	if (lg.o.duration > 0 || lg.phase == LG_WARMUP)
		return true;
	return lg.ops_issued < (uint64_t)lg.o.count;
}

void lg_check_done(void)
{
	if (lg.phase != LG_MEASURE)
		return;
	if (lg.o.mode != LG_IMAP_IDLE_CONNS &&
	    lg.errors > 1000 && lg.errors > 10 * lg.ops) {
		fprintf(stderr, "ma-loadgen: too many errors, giving up\n");
		lg_finish();
		return;
	}
	if (lg.o.mode == LG_IMAP_IDLE_CONNS || lg.o.duration > 0)
		return;
	if (lg_done_ops >= (uint64_t)lg.o.count)
		lg_finish();
}

void lg_op_begin(struct lg_conn *c, enum lg_op op)
{
	c->op = op;
	c->op_start = lg_now();
	c->op_extra = 0;
	c->op_counted = lg.phase == LG_MEASURE;
	if (c->op_counted && lg.counted[op])
		lg.ops_issued++;
	lg_timeout_start(c);
}

static void lg_show_error(struct lg_conn *c, const char *what, const char *p, size_t n)
{
	if (lg_errors_shown >= LG_ERRORS_SHOWN)
		return;
	if (++lg_errors_shown == LG_ERRORS_SHOWN) {
		fprintf(stderr, "ma-loadgen: (further errors are counted, not shown)\n");
		return;
	}
	while (n && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		n--;
	fprintf(stderr, "ma-loadgen: session %d: %s: %s%s%.*s\n", c->id,
		lg_op_names[c->op], what, n ? ": " : "", (int)(n > 200 ? 200 : n),
		p ? p : "");
}

/* A server reply saying no (tagged NO/BAD, -ERR, 4xx/5xx): shown, and
   counted as an error of the current op if it is counted. */
void lg_reply_error(struct lg_conn *c, const char *line, size_t n)
{
	lg_show_error(c, "error reply", line, n);
}

void lg_op_end(struct lg_conn *c, bool ok, uint64_t weight)
{
	enum lg_op op = c->op;
	double now = lg_now();

	c->op = LG_OP_NONE;
	if (op == LG_OP_NONE || !c->op_counted || lg.phase != LG_MEASURE)
		return;
	if (ok) {
		double us = (now - c->op_start + c->op_extra) * 1e6;
		lg_hist_add(&lg.op[op].hist, us < 0 ? 0 : (uint64_t)us);
		if (lg.counted[op])
			lg.ops += weight;
	} else {
		lg.op[op].errors++;
		lg.errors++;
	}
	if (lg.counted[op]) {
		lg_done_ops++;
		if (lg.o.duration <= 0)
			lg.t_end = now;
	}
	lg_check_done();
}

static void lg_hold_check(void);

void lg_session_failed(struct lg_conn *c)
{
	if (c->was_established) {
		lg.dropped++;
		lg.established--;
	} else {
		lg.failed++;
	}
	lg_conn_close(c);
	lg_hold_check();
}

void lg_op_fail(struct lg_conn *c, const char *why)
{
	enum lg_op op = c->op;

	lg_show_error(c, why, NULL, 0);
	/* Between ops (a drop while holding IDLE, say) it counts as a
	   connection error. */
	if (op == LG_OP_NONE)
		op = LG_OP_CONNECT;
	if (lg.phase == LG_MEASURE && (c->op_counted || c->op == LG_OP_NONE)) {
		lg.op[op].errors++;
		lg.errors++;
		if (lg.counted[op] && c->op != LG_OP_NONE)
			lg_done_ops++;
	}
	c->op = LG_OP_NONE;
	if (lg.o.mode == LG_IMAP_IDLE_CONNS) {
		lg_session_failed(c);
		return;
	}
	lg_conn_reconnect(c, 0.1 + (double)(lg_rand(c) % 100) / 1000.0);
	lg_check_done();
}

/* ---- imap-idle-conns: ramp, progress, hold ---- */

static void lg_hold_check(void)
{
	if (lg.holding || lg.started < lg.o.conns ||
	    lg.established + lg.failed + lg.dropped < lg.o.conns)
		return;
	lg.holding = true;
	fprintf(stderr, "HOLDING %d\n", lg.established);
	fflush(stderr);
	lg.t_measure = lg_now();
	ev_timer_set(&lg_phase_timer, lg.o.hold, 0);
	ev_timer_start(lg.loop, &lg_phase_timer);
}

void lg_idle_established(struct lg_conn *c)
{
	double us = (lg_now() - c->conn_start) * 1e6;

	lg_hist_add(&lg.op[LG_OP_SETUP].hist, (uint64_t)us);
	c->was_established = true;
	lg.established++;
	lg.ops++;
	lg_timeout_stop(c);
	lg_hold_check();
}

static void lg_ramp_cb(struct ev_loop *loop, struct ev_timer *w, int revents)
{
	double el = lg_now() - lg.t_start;
	long target = (long)(el * lg.o.rate) + 1;

	if (target > lg.o.conns)
		target = lg.o.conns;
	while (lg.started < target) {
		struct lg_conn *c = &lg_conns[lg.started++];
		lg_conn_start(c);
	}
	if (lg.started >= lg.o.conns)
		ev_timer_stop(loop, w);
	lg_hold_check();
}

static void lg_progress_cb(struct ev_loop *loop, struct ev_timer *w, int revents)
{
	fprintf(stderr, "%s: started %d established %d failed %d dropped %d\n",
		lg.holding ? "holding" : "ramp", lg.started, lg.established,
		lg.failed, lg.dropped);
	fflush(stderr);
}

/* ---- phases ---- */

static void lg_phase_cb(struct ev_loop *loop, struct ev_timer *w, int revents)
{
	if (lg.o.mode == LG_IMAP_IDLE_CONNS) {
		lg_finish();
		return;
	}
	if (lg.phase == LG_WARMUP) {
		lg.phase = LG_MEASURE;
		lg.t_measure = lg_now();
		lg.t_end = lg.t_measure;
		lg.bytes = 0;
		ev_now_update(loop);
		if (lg.o.duration > 0) {
			ev_timer_set(w, lg.o.duration, 0);
			ev_timer_start(loop, w);
		}
		return;
	}
	lg_finish();
}

static void lg_signal_cb(struct ev_loop *loop, struct ev_signal *w, int revents)
{
	fprintf(stderr, "ma-loadgen: interrupted, reporting what was measured\n");
	lg_finish();
}

/* ---- options ---- */

static int lg_parse_num(const char *s, double lo, double hi, double *r)
{
	char *end;

	errno = 0;
	*r = strtod(s, &end);
	if (errno || end == s || *end || !(*r >= lo && *r <= hi))
		return -1;
	return 0;
}

static int lg_parse_ips(const char *arg)
{
	char buf[512];
	const char *dash = strchr(arg, '-');

	if (strlen(arg) >= sizeof(buf))
		return -1;
	if (dash) {
		struct in_addr a, b;
		memcpy(buf, arg, (size_t)(dash - arg));
		buf[dash - arg] = '\0';
		if (inet_pton(AF_INET, buf, &a) != 1 ||
		    inet_pton(AF_INET, dash + 1, &b) != 1)
			return -1;
		uint32_t x = ntohl(a.s_addr), y = ntohl(b.s_addr);
		if (y < x || y - x >= 65536)
			return -1;
		lg.o.n_source_ips = (int)(y - x + 1);
		lg.o.source_ips = calloc((size_t)lg.o.n_source_ips, sizeof(struct in_addr));
		for (uint32_t i = 0; i <= y - x; i++)
			lg.o.source_ips[i].s_addr = htonl(x + i);
		return 0;
	}
	strcpy(buf, arg);
	int n = 1;
	for (const char *p = buf; *p; p++)
		n += *p == ',';
	lg.o.source_ips = calloc((size_t)n, sizeof(struct in_addr));
	lg.o.n_source_ips = 0;
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t;
	     t = strtok_r(NULL, ",", &save)) {
		if (inet_pton(AF_INET, t, &lg.o.source_ips[lg.o.n_source_ips]) != 1)
			return -1;
		lg.o.n_source_ips++;
	}
	return lg.o.n_source_ips ? 0 : -1;
}

static const struct {
	const char *name;
	enum lg_mode mode;
} lg_modes[] = {
	{ "imap-mixed", LG_IMAP_MIXED },
	{ "imap-select", LG_IMAP_SELECT },
	{ "imap-fetch-flags", LG_IMAP_FETCH_FLAGS },
	{ "imap-search-text", LG_IMAP_SEARCH_TEXT },
	{ "pop3-retr", LG_POP3_RETR },
	{ "lmtp", LG_LMTP },
	{ "imap-idle-conns", LG_IMAP_IDLE_CONNS },
};

enum {
	O_HOST = 256, O_PORT, O_TLS, O_USERS_FMT, O_USERS, O_PASSWORD,
	O_CLIENTS, O_DURATION, O_WARMUP, O_SOURCE_IPS, O_TIMEOUT, O_JSON,
	O_COUNT, O_MAILBOX, O_TEXT, O_TEXT_EVERY, O_MSG, O_SIZE, O_RCPT,
	O_CONNS, O_RATE, O_HOLD, O_IDLE_MS, O_FROM, O_SEED, O_HELP,
};

static const struct option lg_longopts[] = {
	{ "host", required_argument, NULL, O_HOST },
	{ "port", required_argument, NULL, O_PORT },
	{ "tls", no_argument, NULL, O_TLS },
	{ "users-fmt", required_argument, NULL, O_USERS_FMT },
	{ "users", required_argument, NULL, O_USERS },
	{ "password", required_argument, NULL, O_PASSWORD },
	{ "clients", required_argument, NULL, O_CLIENTS },
	{ "duration", required_argument, NULL, O_DURATION },
	{ "warmup", required_argument, NULL, O_WARMUP },
	{ "source-ips", required_argument, NULL, O_SOURCE_IPS },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "json", no_argument, NULL, O_JSON },
	{ "count", required_argument, NULL, O_COUNT },
	{ "mailbox", required_argument, NULL, O_MAILBOX },
	{ "text", required_argument, NULL, O_TEXT },
	{ "text-every", required_argument, NULL, O_TEXT_EVERY },
	{ "msg", required_argument, NULL, O_MSG },
	{ "size", required_argument, NULL, O_SIZE },
	{ "rcpt-per-msg", required_argument, NULL, O_RCPT },
	{ "conns", required_argument, NULL, O_CONNS },
	{ "rate", required_argument, NULL, O_RATE },
	{ "hold", required_argument, NULL, O_HOLD },
	{ "idle-ms", required_argument, NULL, O_IDLE_MS },
	{ "from", required_argument, NULL, O_FROM },
	{ "seed", required_argument, NULL, O_SEED },
	{ "help", no_argument, NULL, O_HELP },
	{ NULL, 0, NULL, 0 },
};

static int lg_parse_args(int argc, char **argv)
{
	struct lg_opts *o = &lg.o;
	bool port_set = false;
	double v;
	int opt;

	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
			lg_usage(stdout);
			exit(0);
		}
		fprintf(stderr, "ma-loadgen: MODE missing\n");
		return -1;
	}
	o->mode_name = argv[1];
	size_t i;
	for (i = 0; i < sizeof(lg_modes) / sizeof(lg_modes[0]); i++)
		if (!strcmp(lg_modes[i].name, argv[1]))
			break;
	if (i == sizeof(lg_modes) / sizeof(lg_modes[0])) {
		fprintf(stderr, "ma-loadgen: unknown mode '%s'\n", argv[1]);
		return -1;
	}
	o->mode = lg_modes[i].mode;
	o->host = "127.0.0.1";
	o->users_fmt = "user%d@example.com";
	o->users = 1;
	o->password = "password";
	o->clients = 1;
	o->duration = 10;
	o->timeout = 30;
	o->count = 1000;
	o->mailbox = "INBOX";
	o->msg = 1;
	o->size = 4096;
	o->rcpt_per_msg = 1;
	o->conns = 1000;
	o->rate = 500;
	o->hold = 10;
	o->idle_ms = 200;
	o->from = "loadgen@example.net";
	o->seed = 1;

	optind = 2;
	while ((opt = getopt_long(argc, argv, "", lg_longopts, NULL)) != -1) {
		const char *a = optarg;
		switch (opt) {
		case O_HOST: {
			struct in_addr t;
			if (inet_pton(AF_INET, a, &t) != 1)
				goto bad;
			o->host = a;
			break;
		}
		case O_PORT:
			if (lg_parse_num(a, 1, 65535, &v) < 0)
				goto bad;
			o->port = (int)v;
			port_set = true;
			break;
		case O_TLS: o->tls = true; break;
		case O_USERS_FMT: o->users_fmt = a; break;
		case O_USERS:
			if (lg_parse_num(a, 1, 1e9, &v) < 0)
				goto bad;
			o->users = (int)v;
			break;
		case O_PASSWORD: o->password = a; break;
		case O_CLIENTS:
			if (lg_parse_num(a, 1, 1e6, &v) < 0)
				goto bad;
			o->clients = (int)v;
			break;
		case O_DURATION:
			if (lg_parse_num(a, 0, 1e7, &v) < 0)
				goto bad;
			o->duration = v;
			break;
		case O_WARMUP:
			if (lg_parse_num(a, 0, 1e7, &v) < 0)
				goto bad;
			o->warmup = v;
			break;
		case O_SOURCE_IPS:
			if (lg_parse_ips(a) < 0)
				goto bad;
			break;
		case O_TIMEOUT:
			if (lg_parse_num(a, 0.001, 1e7, &v) < 0)
				goto bad;
			o->timeout = v;
			break;
		case O_JSON: o->json = true; break;
		case O_COUNT:
			if (lg_parse_num(a, 1, 1e15, &v) < 0)
				goto bad;
			o->count = (long long)v;
			break;
		case O_MAILBOX: o->mailbox = a; break;
		case O_TEXT: o->text = a; break;
		case O_TEXT_EVERY:
			if (lg_parse_num(a, 0, 1e9, &v) < 0)
				goto bad;
			o->text_every = (int)v;
			break;
		case O_MSG:
			if (lg_parse_num(a, 0, 1e9, &v) < 0)
				goto bad;
			o->msg = (int)v;
			break;
		case O_SIZE:
			if (lg_parse_num(a, 64, 1e9, &v) < 0)
				goto bad;
			o->size = (size_t)v;
			break;
		case O_RCPT:
			if (lg_parse_num(a, 1, 1000, &v) < 0)
				goto bad;
			o->rcpt_per_msg = (int)v;
			break;
		case O_CONNS:
			if (lg_parse_num(a, 1, 1e6, &v) < 0)
				goto bad;
			o->conns = (int)v;
			break;
		case O_RATE:
			if (lg_parse_num(a, 0.1, 1e7, &v) < 0)
				goto bad;
			o->rate = v;
			break;
		case O_HOLD:
			if (lg_parse_num(a, 0, 1e7, &v) < 0)
				goto bad;
			o->hold = v;
			break;
		case O_IDLE_MS:
			if (lg_parse_num(a, 0, 1e7, &v) < 0)
				goto bad;
			o->idle_ms = v;
			break;
		case O_FROM: o->from = a; break;
		case O_SEED:
			if (lg_parse_num(a, 0, 4e9, &v) < 0)
				goto bad;
			o->seed = (unsigned)v;
			break;
		case O_HELP:
			lg_usage(stdout);
			exit(0);
		default:
			return -1;
		}
		continue;
bad:
		fprintf(stderr, "ma-loadgen: bad value '%s' for --%s\n", a,
			lg_longopts[opt - O_HOST].name);
		return -1;
	}
	if (optind != argc) {
		fprintf(stderr, "ma-loadgen: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (!port_set)
		o->port = o->mode == LG_POP3_RETR ? 110 : o->mode == LG_LMTP ? 24 : 143;
	if (o->mode == LG_IMAP_SEARCH_TEXT && !o->text) {
		fprintf(stderr, "ma-loadgen: imap-search-text needs --text\n");
		return -1;
	}
	if (o->text && (strlen(o->text) > 40 || strpbrk(o->text, "\"\\\r\n"))) {
		fprintf(stderr, "ma-loadgen: --text: up to 40 characters, no quotes\n");
		return -1;
	}
	if (strpbrk(o->mailbox, "\"\\\r\n") || strpbrk(o->password, "\r\n") ||
	    strpbrk(o->users_fmt, "\r\n<>") || strpbrk(o->from, "\r\n<>")) {
		fprintf(stderr, "ma-loadgen: bad characters in an option\n");
		return -1;
	}
	return 0;
}

/* ---- report ---- */

static void lg_report(void)
{
	struct lg_hist *all = calloc(1, sizeof(*all));
	double secs;
	bool idle = lg.o.mode == LG_IMAP_IDLE_CONNS;
	int clients = idle ? lg.o.conns : lg.o.clients;

	if (idle)
		secs = lg.holding ? lg.t_end - lg.t_measure : 0;
	else
		secs = lg.t_end - lg.t_measure;
	if (secs < 0)
		secs = 0;
	for (int i = 0; i < LG_OP_COUNT_; i++)
		if (lg.counted[i])
			lg_hist_merge(all, &lg.op[i].hist);
	double ops_s = secs > 0 ? (double)lg.ops / secs : 0;
	double bytes_s = secs > 0 ? (double)lg.bytes / secs : 0;

	fprintf(stderr, "ma-loadgen %s: %d %s, %.2f s measured\n", lg.o.mode_name,
		clients, idle ? "connections" : "clients", secs);
	if (idle)
		fprintf(stderr, "  established %d, failed %d, dropped during hold %d\n",
			lg.established, lg.failed, lg.dropped);
	fprintf(stderr, "  ops %llu (%.1f/s), bytes %llu (%.1f MB/s), errors %llu\n",
		(unsigned long long)lg.ops, ops_s, (unsigned long long)lg.bytes,
		bytes_s / 1e6, (unsigned long long)lg.errors);
	fprintf(stderr, "  latency ms: p50 %.3f p99 %.3f max %.3f\n",
		lg_hist_pct_ms(all, 50), lg_hist_pct_ms(all, 99),
		(double)all->max_us / 1000.0);
	fprintf(stderr, "  %-16s %10s %8s %10s %10s %10s\n", "op", "count", "errors",
		"p50 ms", "p99 ms", "max ms");
	for (int i = 1; i < LG_OP_COUNT_; i++) {
		const struct lg_op_stats *s = &lg.op[i];
		if (!s->hist.n && !s->errors)
			continue;
		fprintf(stderr, "  %-16s %10llu %8llu %10.3f %10.3f %10.3f%s\n",
			lg_op_names[i], (unsigned long long)s->hist.n,
			(unsigned long long)s->errors, lg_hist_pct_ms(&s->hist, 50),
			lg_hist_pct_ms(&s->hist, 99), (double)s->hist.max_us / 1000.0,
			lg.counted[i] ? "" : "  (not in ops)");
	}
	if (lg.expunge_issued)
		fprintf(stderr, "  %llu ops answered NO [EXPUNGEISSUED] (messages "
			"expunged by another session; counted as done)\n",
			(unsigned long long)lg.expunge_issued);
	if (lg.o.mode == LG_IMAP_SEARCH_TEXT)
		fprintf(stderr, "  last SEARCH found %llu messages\n",
			(unsigned long long)lg.search_hits);

	if (lg.o.json) {
		printf("{\"mode\":\"%s\",\"clients\":%d,\"seconds\":%.3f,"
		       "\"ops\":%llu,\"ops_per_sec\":%.3f,\"bytes\":%llu,"
		       "\"bytes_per_sec\":%.1f,\"errors\":%llu,"
		       "\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
		       "\"per_op\":{",
		       lg.o.mode_name, clients, secs, (unsigned long long)lg.ops,
		       ops_s, (unsigned long long)lg.bytes, bytes_s,
		       (unsigned long long)lg.errors, lg_hist_pct_ms(all, 50),
		       lg_hist_pct_ms(all, 99), (double)all->max_us / 1000.0);
		bool first = true;
		for (int i = 1; i < LG_OP_COUNT_; i++) {
			const struct lg_op_stats *s = &lg.op[i];
			if (!s->hist.n && !s->errors)
				continue;
			printf("%s\"%s\":{\"count\":%llu,\"errors\":%llu,\"p50\":%.3f,"
			       "\"p99\":%.3f,\"max\":%.3f,\"in_ops\":%s}",
			       first ? "" : ",", lg_op_names[i],
			       (unsigned long long)s->hist.n,
			       (unsigned long long)s->errors,
			       lg_hist_pct_ms(&s->hist, 50),
			       lg_hist_pct_ms(&s->hist, 99),
			       (double)s->hist.max_us / 1000.0,
			       lg.counted[i] ? "true" : "false");
			first = false;
		}
		printf("}");
		if (idle)
			printf(",\"established\":%d,\"failed\":%d,\"dropped\":%d,"
			       "\"conns\":%d", lg.established, lg.failed,
			       lg.dropped, lg.o.conns);
		if (lg.o.mode == LG_IMAP_MIXED)
			printf(",\"expunge_issued\":%llu",
			       (unsigned long long)lg.expunge_issued);
		if (lg.o.mode == LG_IMAP_SEARCH_TEXT)
			printf(",\"search_hits\":%llu", (unsigned long long)lg.search_hits);
		printf("}\n");
		fflush(stdout);
	}
	free(all);
}

static int lg_exit_code(void)
{
	if (lg.o.mode == LG_IMAP_IDLE_CONNS) {
		long bad = lg.failed + lg.dropped;
		if (!lg.holding || lg.established == 0 || bad * 100 >= lg.o.conns)
			return 1;
		return 0;
	}
	if (lg.ops == 0)
		return 1;
	if (lg.errors * 100 >= lg.ops + lg.errors)
		return 1;
	if (lg.o.duration <= 0 && lg_done_ops < (uint64_t)lg.o.count)
		return 1;
	return 0;
}

int main(int argc, char **argv)
{
	const struct lg_proto *proto;

	if (lg_parse_args(argc, argv) < 0) {
		lg_usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	switch (lg.o.mode) {
	case LG_IMAP_MIXED:
		for (int i = LG_OP_LOGIN; i <= LG_OP_LOGOUT; i++)
			lg.counted[i] = true;
		proto = &lg_imap_proto;
		break;
	case LG_IMAP_SELECT:
		lg.counted[LG_OP_SELECT] = true;
		proto = &lg_imap_proto;
		break;
	case LG_IMAP_FETCH_FLAGS:
		lg.counted[LG_OP_FETCH_FLAGS] = true;
		proto = &lg_imap_proto;
		break;
	case LG_IMAP_SEARCH_TEXT:
		lg.counted[LG_OP_SEARCH] = true;
		proto = &lg_imap_proto;
		break;
	case LG_POP3_RETR:
		lg.counted[LG_OP_RETR] = true;
		proto = &lg_pop3_proto;
		break;
	case LG_LMTP:
		lg.counted[LG_OP_DELIVER] = true;
		proto = &lg_lmtp_proto;
		break;
	case LG_IMAP_IDLE_CONNS:
	default:
		lg.counted[LG_OP_SETUP] = true;
		proto = &lg_imap_proto;
		break;
	}
	if (lg_msg_init(lg.o.size, lg.o.mode == LG_LMTP ? lg.o.text : NULL) < 0) {
		fprintf(stderr, "ma-loadgen: cannot make the test message\n");
		return 2;
	}
	if (lg.o.tls && lg_tls_global_init() < 0)
		return 1;

	lg_n_conns = lg.o.mode == LG_IMAP_IDLE_CONNS ? lg.o.conns : lg.o.clients;
	lg_raise_nofile(lg_n_conns + 64);
	lg_conns = calloc((size_t)lg_n_conns, sizeof(*lg_conns));
	if (!lg_conns) {
		fprintf(stderr, "ma-loadgen: out of memory\n");
		return 1;
	}
	lg.loop = ev_default_loop(EVFLAG_AUTO);
	lg_conn_global_init(lg_n_conns);
	for (int i = 0; i < lg_n_conns; i++)
		lg_conn_init(&lg_conns[i], i, proto);

	ev_signal_init(&lg_sigint, lg_signal_cb, SIGINT);
	ev_signal_start(lg.loop, &lg_sigint);
	ev_signal_init(&lg_sigterm, lg_signal_cb, SIGTERM);
	ev_signal_start(lg.loop, &lg_sigterm);
	/* Signals must not keep the loop alive once every session ended. */
	ev_unref(lg.loop);
	ev_unref(lg.loop);
	ev_init(&lg_phase_timer, lg_phase_cb);

	ev_now_update(lg.loop);
	lg.t_start = lg_now();
	if (lg.o.mode == LG_IMAP_IDLE_CONNS) {
		lg.phase = LG_MEASURE;
		lg.t_measure = lg.t_start;
		ev_timer_init(&lg_ramp_timer, lg_ramp_cb, 0, 0.01);
		ev_timer_start(lg.loop, &lg_ramp_timer);
		ev_timer_init(&lg_progress_timer, lg_progress_cb, 1, 1);
		ev_timer_start(lg.loop, &lg_progress_timer);
	} else {
		if (lg.o.warmup > 0) {
			lg.phase = LG_WARMUP;
			ev_timer_set(&lg_phase_timer, lg.o.warmup, 0);
			ev_timer_start(lg.loop, &lg_phase_timer);
		} else {
			lg.phase = LG_WARMUP;
			lg_phase_cb(lg.loop, &lg_phase_timer, 0);
		}
		for (int i = 0; i < lg_n_conns; i++)
			lg_conn_start(&lg_conns[i]);
	}
	ev_run(lg.loop, 0);
	if (lg.phase != LG_DONE) {
		/* Every session stopped by itself (count reached, or all
		   idle connections failed). */
		lg.phase = LG_DONE;
		if (lg.o.duration > 0 || lg.o.mode == LG_IMAP_IDLE_CONNS)
			lg.t_end = lg_now();
	}
	lg_report();
	return lg_exit_code();
}
