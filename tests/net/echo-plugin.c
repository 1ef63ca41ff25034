/*
 * echo-plugin.c - a tiny line protocol ("echo") used only by the network
 * tests (tests/net/test-net.py): it exercises every part of conn.h without
 * depending on the POP3 plugin.
 *
 * Commands (one per line, LF or CRLF):
 *   STARTTLS      "+GO" then the TLS handshake (pipelined input is dropped)
 *   INFO          "+INFO tls=0|1 sni=NAME plain=0|1 loopback=0|1 greeting=.."
 *   BIG N         N bytes of 'x' lines, produced only while output is not
 *                 full (backpressure), finished by "+END"
 *   FLOOD N       N bytes written ignoring ma_conn_output_full(): the core
 *                 must close at its hard output limit
 *   STATS         "+STATS maxpending=N": the largest pending output seen
 *   USER NAME     sets the user for the log line
 *   AFTER S       "+TIMER" after S seconds (ma_conn_after)
 *   QUIT          "+BYE" and close
 *   anything else "ECHO <line>"
 * A line longer than the input buffer is never consumed: the core closes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mailaccess/mailaccess.h>

/* Core-private (core/lib/core-private.h), exported by libmailaccess; the
 * test plugin declares them itself to exercise them end to end. */
void ma_conn_after(struct ma_conn *conn, double seconds,
		   void (*cb)(struct ma_conn *conn, void *ctx), void *ctx);
bool ma_conn_is_closed(const struct ma_conn *conn);

struct echo_session {
	struct ma_conn *conn;
	uint64_t big_left;
};

/* Largest pending output seen on any conn: the backpressure test checks
 * that a client that does not read cannot make it grow past the limits. */
static size_t echo_max_pending;

static void echo_note_pending(struct ma_conn *conn)
{
	size_t p = ma_conn_output_pending(conn);

	if (p > echo_max_pending)
		echo_max_pending = p;
}

static void echo_big_continue(struct echo_session *s)
{
	static const char line[] =
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n";

	while (s->big_left > 0) {
		size_t n = sizeof(line) - 1;

		if (ma_conn_output_full(s->conn)) {
			/* park until on_output_drained */
			return;
		}
		if (n > s->big_left)
			n = (size_t)s->big_left;
		if (ma_conn_write(s->conn, line, n) < 0)
			return;
		s->big_left -= n;
		echo_note_pending(s->conn);
	}
	ma_conn_printf(s->conn, "+END\r\n");
	ma_conn_resume_input(s->conn);
}

static void echo_timer_cb(struct ma_conn *conn, void *ctx)
{
	(void)ctx;
	ma_conn_printf(conn, "+TIMER\r\n");
}

static int echo_on_connect(struct ma_conn *conn)
{
	struct echo_session *s = ma_arena_alloc(ma_conn_arena(conn), sizeof(*s));

	s->conn = conn;
	ma_conn_set_session(conn, s);
	ma_conn_printf(conn, "+HELLO %s\r\n", ma_conn_id(conn));
	return 0;
}

static void echo_line(struct echo_session *s, const char *line)
{
	struct ma_conn *conn = s->conn;

	if (strcmp(line, "STARTTLS") == 0) {
		if (!ma_conn_starttls_available(conn)) {
			ma_conn_printf(conn, "-NO\r\n");
			return;
		}
		ma_conn_printf(conn, "+GO\r\n");
		if (ma_conn_starttls(conn) < 0)
			ma_conn_printf(conn, "-FAILED\r\n");
	} else if (strcmp(line, "INFO") == 0) {
		const struct ma_config_section *cfg = ma_conn_protocol_config(conn);
		const char *sni = ma_conn_tls_sni(conn);

		ma_conn_printf(conn, "+INFO tls=%d sni=%s plain=%d loopback=%d listener=%s greeting=%s\r\n",
			       ma_conn_is_tls(conn), sni != NULL ? sni : "-",
			       ma_conn_plaintext_auth_allowed(conn),
			       ma_conn_is_loopback(conn), ma_conn_listener_name(conn),
			       cfg != NULL ? ma_config_get(cfg, "greeting", "-") : "-");
	} else if (strncmp(line, "BIG ", 4) == 0) {
		s->big_left = strtoull(line + 4, NULL, 10);
		/* no more commands until this reply is done */
		ma_conn_pause_input(conn);
		echo_big_continue(s);
	} else if (strncmp(line, "FLOOD ", 6) == 0) {
		static const char blob[4096];
		uint64_t left = strtoull(line + 6, NULL, 10);

		/* a misbehaving protocol: never checks output_full */
		while (left > 0) {
			size_t n = left < sizeof(blob) ? (size_t)left : sizeof(blob);

			if (ma_conn_write(conn, blob, n) < 0) {
				ma_conn_log(conn, MA_LOG_INFO, "flood stopped by the core");
				return;
			}
			left -= n;
		}
		ma_conn_printf(conn, "+FLOODED\r\n");
	} else if (strcmp(line, "STATS") == 0) {
		ma_conn_printf(conn, "+STATS maxpending=%zu\r\n", echo_max_pending);
	} else if (strncmp(line, "USER ", 5) == 0) {
		ma_conn_set_user(conn, line + 5);
		ma_conn_printf(conn, "+OK\r\n");
	} else if (strncmp(line, "AFTER ", 6) == 0) {
		ma_conn_after(conn, atof(line + 6), echo_timer_cb, NULL);
		ma_conn_printf(conn, "+OK\r\n");
	} else if (strcmp(line, "QUIT") == 0) {
		ma_conn_printf(conn, "+BYE\r\n");
		ma_conn_set_summary(conn, "quit=yes");
		ma_conn_close(conn, "quit");
	} else {
		ma_conn_printf(conn, "ECHO %s\r\n", line);
	}
}

static void echo_on_input(struct ma_conn *conn)
{
	struct echo_session *s = ma_conn_session(conn);
	const unsigned char *data;
	size_t len;

	while (!ma_conn_is_closed(conn)) {
		const unsigned char *lf;
		char line[1024 * 64];
		size_t n;

		data = ma_conn_input(conn, &len);
		lf = memchr(data, '\n', len);
		if (lf == NULL)
			return;	/* incomplete (or too long: the core decides) */
		n = (size_t)(lf - data);
		if (n > 0 && data[n - 1] == '\r')
			n--;
		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		memcpy(line, data, n);
		line[n] = '\0';
		ma_conn_input_consume(conn, (size_t)(lf - data) + 1);
		echo_line(s, line);
		/* BIG: wait for it to finish; STARTTLS emptied the input. */
		if (s->big_left > 0)
			return;
	}
}

static void echo_on_output_drained(struct ma_conn *conn)
{
	struct echo_session *s = ma_conn_session(conn);

	if (s->big_left > 0)
		echo_big_continue(s);
}

static void echo_on_tls_ready(struct ma_conn *conn)
{
	(void)conn;
}

static const char *echo_on_timeout(struct ma_conn *conn)
{
	(void)conn;
	return "-TIMEOUT";
}

static const char *echo_on_shutdown(struct ma_conn *conn)
{
	(void)conn;
	return "-SHUTDOWN";
}

static void echo_on_close(struct ma_conn *conn, enum ma_close_reason reason)
{
	(void)reason;
	ma_conn_set_session(conn, NULL);
}

static const struct ma_protocol_ops echo_ops = {
	.struct_size = sizeof(struct ma_protocol_ops),
	.on_connect = echo_on_connect,
	.on_input = echo_on_input,
	.on_output_drained = echo_on_output_drained,
	.on_tls_ready = echo_on_tls_ready,
	.on_timeout = echo_on_timeout,
	.on_shutdown = echo_on_shutdown,
	.on_close = echo_on_close,
	.name = "echo",
};

static int echo_init(struct ma_core *core, const struct ma_config_section *config,
		     void **ctx_r, const char **error_r)
{
	(void)core;
	(void)error_r;
	if (config != NULL)
		(void)ma_config_get(config, "greeting", NULL);
	*ctx_r = NULL;
	return 0;
}

MA_PLUGIN_EXPORT const struct ma_plugin mailaccess_plugin = {
	MA_PLUGIN_INIT(MA_PLUGIN_PROTOCOL, "echo", "1.0"),
	.init = echo_init,
	.deinit = NULL,
	.ops = &echo_ops,
};
