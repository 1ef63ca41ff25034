/*
 * test-net.c - unit test of the connection core in one process: a fake
 * core with an in-test protocol, a real listener on loopback, and client
 * sockets driven from the same libev loop. Checks what the end-to-end
 * test (tests/net/test-net.py) cannot see from outside: on_close exactly
 * once with the right reason, refs keeping a closed conn's memory,
 * ma_conn_after never firing for a closed conn, want_drain, the hard
 * output cap, ma_net_shutdown, and config errors of ma_net_init.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "core-private.h"
#include "net-private.h"

static int failures;

#define CHECK(cond) do { \
		if (!(cond)) { \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			failures++; \
		} \
	} while (0)

/* ---- the test protocol ---- */

static struct {
	unsigned connects, closes, drained, timer_fired, shutdowns, inputs;
	enum ma_close_reason last_reason;
	struct ma_conn *last;
	char got[256];
	size_t got_len;
	bool consume;		/* consume input in on_input */
} T;

static int tp_on_connect(struct ma_conn *conn)
{
	T.connects++;
	T.last = conn;
	return ma_conn_printf(conn, "hi %s\r\n", ma_conn_id(conn));
}

static void tp_on_input(struct ma_conn *conn)
{
	size_t len;
	const unsigned char *p = ma_conn_input(conn, &len);

	T.inputs++;
	if (!T.consume)
		return;
	if (len > sizeof(T.got) - T.got_len)
		len = sizeof(T.got) - T.got_len;
	memcpy(T.got + T.got_len, p, len);
	T.got_len += len;
	ma_conn_input_consume(conn, len);
}

static void tp_on_output_drained(struct ma_conn *conn)
{
	(void)conn;
	T.drained++;
}

static const char *tp_on_shutdown(struct ma_conn *conn)
{
	(void)conn;
	T.shutdowns++;
	return "bye";
}

static void tp_on_close(struct ma_conn *conn, enum ma_close_reason reason)
{
	(void)conn;
	T.closes++;
	T.last_reason = reason;
}

static const struct ma_protocol_ops tp_ops = {
	.struct_size = sizeof(struct ma_protocol_ops),
	.on_connect = tp_on_connect,
	.on_input = tp_on_input,
	.on_output_drained = tp_on_output_drained,
	.on_shutdown = tp_on_shutdown,
	.on_close = tp_on_close,
	.name = "tp",
};

static const struct ma_plugin tp_desc = {
	MA_PLUGIN_INIT(MA_PLUGIN_PROTOCOL, "tp", "1"),
	.ops = &tp_ops,
};

/* ---- fake core ---- */

static struct ma_loaded_plugin tp_loaded = { .desc = &tp_desc };
static struct ma_loaded_plugin *tp_plugins[] = { &tp_loaded };

static struct ma_core *test_core(const char *text, struct ev_loop *loop)
{
	struct ma_core *core = ma_malloc0(sizeof(*core));
	char *err = NULL;

	core->config = ma_config_parse("test.conf", text, strlen(text), &err);
	if (core->config == NULL) {
		fprintf(stderr, "config: %s\n", err);
		exit(2);
	}
	core->loop = loop;
	core->plugins = tp_plugins;
	core->n_plugins = 1;
	return core;
}

static void test_core_free(struct ma_core *core)
{
	ma_net_deinit(core);
	ma_config_free(&core->config);
	free(core);
}

static unsigned free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	unsigned port;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) < 0)
		exit(2);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static int client_connect(unsigned port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 &&
	    errno != EINPROGRESS)
		exit(2);
	return fd;
}

/* Runs the loop until cond holds or `secs` pass. */
#define RUN_UNTIL(loop, cond, secs) do { \
		double end_ = ma_monotonic() + (secs); \
		while (!(cond) && ma_monotonic() < end_) { \
			ev_run((loop), EVRUN_NOWAIT); \
			usleep(1000); \
		} \
	} while (0)

static void after_cb(struct ma_conn *conn, void *ctx)
{
	(void)conn;
	(void)ctx;
	T.timer_fired++;
}

/* Runs the loop and reads until `needle` arrived (or 3s passed), so a
 * slow machine does not make the test flaky. */
static size_t client_read_until(struct ev_loop *loop, int fd, char *buf,
				size_t size, const char *needle)
{
	size_t got = 0;
	double end = ma_monotonic() + 3;

	buf[0] = '\0';
	while (ma_monotonic() < end && strstr(buf, needle) == NULL) {
		ssize_t n = recv(fd, buf + got, size - 1 - got, 0);

		if (n > 0) {
			got += (size_t)n;
			buf[got] = '\0';
			continue;
		}
		if (n == 0 || got == size - 1)
			break;
		ev_run(loop, EVRUN_NOWAIT);
		usleep(1000);
	}
	return got;
}

static void test_conn_lifecycle(struct ev_loop *loop)
{
	unsigned port = free_port();
	char conf[512], *err = NULL, buf[4096];
	struct ma_core *core;
	struct ma_conn *conn;
	int fd;

	snprintf(conf, sizeof(conf),
		 "listener t {\n protocol = tp\n address = 127.0.0.1\n port = %u\n}\n"
		 "limits {\n max_line = 1k\n output_buffer = 8k\n idle_timeout = 10s\n}\n",
		 port);
	core = test_core(conf, loop);
	CHECK(ma_net_init(core, &err) == 0);
	CHECK(ma_net_start(core, &err) == 0);

	/* connect, greeting, input */
	memset(&T, 0, sizeof(T));
	T.consume = true;
	fd = client_connect(port);
	RUN_UNTIL(loop, T.connects == 1, 2);
	CHECK(T.connects == 1);
	conn = T.last;
	CHECK(ma_net_conn_count(core) == 1);
	CHECK(ma_conn_plaintext_auth_allowed(conn));
	CHECK(!ma_conn_is_tls(conn) && !ma_conn_starttls_available(conn));
	CHECK(strcmp(ma_conn_listener_name(conn), "t") == 0);
	CHECK(strcmp(ma_conn_remote_ip(conn), "127.0.0.1") == 0);
	CHECK(ma_conn_local_port(conn) == port);
	client_read_until(loop, fd, buf, sizeof(buf), "\r\n");
	CHECK(strncmp(buf, "hi ", 3) == 0 && strstr(buf, ma_conn_id(conn)) != NULL);
	CHECK(send(fd, "hello\n", 6, 0) == 6);
	RUN_UNTIL(loop, T.got_len == 6, 2);
	CHECK(T.got_len == 6 && memcmp(T.got, "hello\n", 6) == 0);

	/* long printf goes through the heap path intact */
	memset(buf, 'z', 3000);
	buf[3000] = '\0';
	CHECK(ma_conn_printf(conn, "%s\n", buf) == 0);
	CHECK(ma_conn_output_pending(conn) == 3001);
	RUN_UNTIL(loop, ma_conn_output_pending(conn) == 0, 2);
	CHECK(ma_conn_output_pending(conn) == 0);
	{
		size_t total = 0;
		double end = ma_monotonic() + 2;

		while (total < 3001 && ma_monotonic() < end) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n > 0)
				total += (size_t)n;
			else
				usleep(1000);
		}
		CHECK(total == 3001);
	}

	/* want_drain with nothing pending: fires next turn */
	ma_conn_want_drain(conn);
	CHECK(T.drained == 0);
	RUN_UNTIL(loop, T.drained == 1, 2);
	CHECK(T.drained == 1);

	/* ma_conn_after fires for a live conn */
	ma_conn_after(conn, 0.02, after_cb, NULL);
	RUN_UNTIL(loop, T.timer_fired == 1, 2);
	CHECK(T.timer_fired == 1);

	/* ...and not for a closed one; a ref keeps the memory */
	ma_conn_after(conn, 0.05, after_cb, NULL);
	ma_conn_ref(conn);
	close(fd);
	RUN_UNTIL(loop, T.closes == 1, 2);
	CHECK(T.closes == 1 && T.last_reason == MA_CLOSE_EOF);
	CHECK(ma_conn_is_closed(conn));
	CHECK(ma_conn_write(conn, "x", 1) == -1);
	ma_conn_after(conn, 0.01, after_cb, NULL);	/* ignored: closed */
	RUN_UNTIL(loop, false, 0.1);
	CHECK(T.timer_fired == 1);
	CHECK(T.closes == 1);
	CHECK(ma_net_conn_count(core) == 0);
	ma_conn_unref(conn);	/* frees; ASan checks */

	/* output hard cap (4 x 8k) closes with MA_CLOSE_LIMIT */
	memset(&T, 0, sizeof(T));
	T.consume = true;
	fd = client_connect(port);
	RUN_UNTIL(loop, T.connects == 1, 2);
	conn = T.last;
	{
		static char big[8 * 1024];
		int ret = 0;

		for (unsigned i = 0; i < 8 && ret == 0; i++)
			ret = ma_conn_write(conn, big, sizeof(big));
		CHECK(ret == -1);
		CHECK(ma_conn_is_closed(conn));
	}
	RUN_UNTIL(loop, T.closes == 1, 7);
	CHECK(T.closes == 1 && T.last_reason == MA_CLOSE_LIMIT);
	close(fd);

	/* a line longer than max_line that the protocol never consumes */
	memset(&T, 0, sizeof(T));
	T.consume = false;
	fd = client_connect(port);
	RUN_UNTIL(loop, T.connects == 1, 2);
	memset(buf, 'a', 2000);
	CHECK(send(fd, buf, 2000, 0) == 2000);
	RUN_UNTIL(loop, T.closes == 1, 2);
	CHECK(T.closes == 1 && T.last_reason == MA_CLOSE_LIMIT);
	CHECK(T.inputs >= 1);
	close(fd);

	/* pause: no on_input; resume: delivered on the next turn */
	memset(&T, 0, sizeof(T));
	T.consume = true;
	fd = client_connect(port);
	RUN_UNTIL(loop, T.connects == 1, 2);
	conn = T.last;
	ma_conn_pause_input(conn);
	CHECK(send(fd, "abc\n", 4, 0) == 4);
	/* half-close: what was sent before still gets processed */
	CHECK(shutdown(fd, SHUT_WR) == 0);
	RUN_UNTIL(loop, false, 0.1);
	CHECK(T.got_len == 0);
	CHECK(T.closes == 0);
	ma_conn_resume_input(conn);
	RUN_UNTIL(loop, T.closes == 1, 2);
	CHECK(T.got_len == 4);
	CHECK(T.closes == 1 && T.last_reason == MA_CLOSE_EOF);
	close(fd);

	memset(&T, 0, sizeof(T));
	fd = client_connect(port);
	RUN_UNTIL(loop, T.connects == 1, 2);

	/* shutdown: on_shutdown line, closed with MA_CLOSE_SHUTDOWN */
	ma_net_shutdown(core);
	CHECK(T.shutdowns == 1);
	RUN_UNTIL(loop, ma_net_conn_count(core) == 0, 3);
	CHECK(ma_net_conn_count(core) == 0);
	CHECK(T.closes == 1 && T.last_reason == MA_CLOSE_SHUTDOWN);
	client_read_until(loop, fd, buf, sizeof(buf), "bye\r\n");
	CHECK(strstr(buf, "bye\r\n") != NULL);
	close(fd);
	test_core_free(core);
}

/* Deinit with a live conn that has output queued (dirty) and a pending
 * timer: on_close with MA_CLOSE_SHUTDOWN, nothing leaks (ASan). */
static void test_deinit_with_conns(struct ev_loop *loop)
{
	unsigned port = free_port();
	char conf[256], *err = NULL;
	struct ma_core *core;
	int fd;

	snprintf(conf, sizeof(conf),
		 "listener t {\n protocol = tp\n address = 127.0.0.1\n port = %u\n}\n",
		 port);
	core = test_core(conf, loop);
	CHECK(ma_net_init(core, &err) == 0);
	CHECK(ma_net_start(core, &err) == 0);
	memset(&T, 0, sizeof(T));
	fd = client_connect(port);
	RUN_UNTIL(loop, T.connects == 1, 2);
	CHECK(T.connects == 1);
	ma_conn_after(T.last, 10, after_cb, NULL);
	CHECK(ma_conn_write(T.last, "queued\r\n", 8) == 0);
	test_core_free(core);
	CHECK(T.closes == 1 && T.last_reason == MA_CLOSE_SHUTDOWN);
	CHECK(T.timer_fired == 0);
	close(fd);
}

/* A client that never reads cannot hold a closing conn longer than the
 * flush bound (2s at shutdown). */
static void test_flush_bound(struct ev_loop *loop)
{
	unsigned port = free_port();
	char conf[256], *err = NULL;
	static char chunk[16 * 1024];
	struct ma_core *core;
	double t0, dt;
	int fd, small = 4096;

	snprintf(conf, sizeof(conf),
		 "listener t {\n protocol = tp\n address = 127.0.0.1\n port = %u\n}\n"
		 "limits {\n output_buffer = 64k\n}\n", port);
	core = test_core(conf, loop);
	CHECK(ma_net_init(core, &err) == 0);
	CHECK(ma_net_start(core, &err) == 0);
	memset(&T, 0, sizeof(T));
	fd = client_connect(port);
	RUN_UNTIL(loop, T.connects == 1, 2);
	CHECK(T.connects == 1);
	/* small kernel buffers on both ends so the socket fills up */
	(void)setsockopt(T.last->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	for (unsigned i = 0; i < 4; i++)
		CHECK(ma_conn_write(T.last, chunk, sizeof(chunk)) == 0);
	RUN_UNTIL(loop, false, 0.2);
	CHECK(ma_conn_output_pending(T.last) > 0);
	t0 = ma_monotonic();
	ma_net_shutdown(core);
	RUN_UNTIL(loop, ma_net_conn_count(core) == 0, 6);
	dt = ma_monotonic() - t0;
	CHECK(ma_net_conn_count(core) == 0);
	CHECK(dt > 1.5 && dt < 3.5);
	CHECK(T.closes == 1 && T.last_reason == MA_CLOSE_SHUTDOWN);
	close(fd);
	test_core_free(core);
}

/* max_connections: the third client is closed at once, unanswered. */
static void test_max_connections(struct ev_loop *loop)
{
	unsigned port = free_port();
	char conf[256], *err = NULL, buf[64];
	struct ma_core *core;
	int fd[3];

	snprintf(conf, sizeof(conf),
		 "listener t {\n protocol = tp\n address = 127.0.0.1\n port = %u\n}\n"
		 "limits {\n max_connections = 2\n}\n", port);
	core = test_core(conf, loop);
	CHECK(ma_net_init(core, &err) == 0);
	CHECK(ma_net_start(core, &err) == 0);
	memset(&T, 0, sizeof(T));
	for (unsigned i = 0; i < 3; i++) {
		fd[i] = client_connect(port);
		if (i < 2)
			RUN_UNTIL(loop, T.connects == i + 1, 3);
		else
			RUN_UNTIL(loop, false, 0.2);
	}
	CHECK(T.connects == 2);
	CHECK(ma_net_conn_count(core) == 2);
	{
		ssize_t n = -1;
		double end = ma_monotonic() + 2;

		while (ma_monotonic() < end) {
			n = recv(fd[2], buf, sizeof(buf), 0);
			if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
				break;
			usleep(1000);
		}
		CHECK(n <= 0);	/* EOF or reset, never a greeting */
	}
	for (unsigned i = 0; i < 3; i++)
		close(fd[i]);
	RUN_UNTIL(loop, ma_net_conn_count(core) == 0, 2);
	CHECK(T.closes == 2);
	test_core_free(core);
}

static void expect_init_error(struct ev_loop *loop, const char *conf,
			      const char *needle)
{
	struct ma_core *core = test_core(conf, loop);
	char *err = NULL;

	/* check-only: validate everything, bind nothing (port 1 may be
	 * taken, and parallel runs must not collide) */
	core->flags = MA_CORE_CHECK_ONLY;
	if (ma_net_init(core, &err) != -1 || err == NULL ||
	    strstr(err, needle) == NULL) {
		fprintf(stderr, "FAIL: config error for %s: got %s\n", needle,
			err != NULL ? err : "(none)");
		failures++;
	}
	free(err);
	test_core_free(core);
}

static void test_config_errors(struct ev_loop *loop)
{
	expect_init_error(loop,
		"listener x {\n protocol = tp\n port = 1\n tls = maybe\n}\n",
		"test.conf:4");
	expect_init_error(loop,
		"listener x {\n protocol = nope\n port = 1\n}\n",
		"protocol 'nope' is not loaded");
	expect_init_error(loop,
		"listener x {\n protocol = tp\n port = 1\n tls = implicit\n}\n",
		"no tls");
	expect_init_error(loop,
		"listener x {\n protocol = tp\n}\n", "port missing");
	expect_init_error(loop,
		"listener x {\n protocol = tp\n port = 1\n address = 300.1.1.1\n}\n",
		"bad address");
	expect_init_error(loop,
		"listener x {\n protocol = tp\n port = 1\n}\n"
		"tls {\n cert = /nonexistent.pem\n key = /nonexistent.key\n}\n",
		"cannot load cert");
	expect_init_error(loop,
		"limits {\n max_line = 10\n}\n", "max_line");
}

int main(void)
{
	struct ev_loop *loop = ev_loop_new(0);

	ma_log_init("test-net", "stderr", MA_LOG_WARNING);
	test_conn_lifecycle(loop);
	test_deinit_with_conns(loop);
	test_max_connections(loop);
	test_flush_bound(loop);
	test_config_errors(loop);
	ev_loop_destroy(loop);
	if (failures > 0) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	printf("test-net: all passed\n");
	return 0;
}
