/*
 * test-authd.c - the auth process, its wire protocol, the anvil and the
 * command bucket.
 *
 * - message validation (anvil.c is included: its functions are hidden in
 *   the library): truncated, oversized, garbage, missing NULs, bad enums;
 * - the anvil alone: totals, per IP, per user, forced re-registration, a
 *   client's counts removed with it;
 * - a real auth process in a forked child (ma_authd_listen() here, like the
 *   master; ma_authd_run() in the child) with the real auth-passwd plugin,
 *   driven by raw SOCK_SEQPACKET clients: VERIFY/LOOKUP answers, the
 *   failure table's growing delay and lockout shared by two "workers", a
 *   bad message closing only that client and releasing its counts;
 * - the worker side (auth.c + conn.c) on a real listener: admission through
 *   the auth process, login, max_sessions_per_user, TEMPFAIL while the auth
 *   process is gone, reconnect and re-registration after a restart;
 * - ma_conn_command_allowed(): burst, pause, resume, one log line.
 */
#include "anvil.c"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "net-private.h"

static int failures;

#define CHECK(cond) do { \
		if (!(cond)) { \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			failures++; \
		} \
	} while (0)

#define RUN_UNTIL(loop, cond, secs) do { \
		double end_ = ma_monotonic() + (secs); \
		while (!(cond) && ma_monotonic() < end_) { \
			ev_run((loop), EVRUN_NOWAIT); \
			usleep(1000); \
		} \
	} while (0)

static char tmpdir[64];

/* ---------- message validation ---------- */

static void hdr(struct authd_hdr *h, unsigned type, uint32_t id)
{
	h->version = AUTHD_PROTO_VERSION;
	h->type = (uint16_t)type;
	h->id = id;
}

static void test_messages(void)
{
	struct authd_check_req v;
	struct authd_conn_req c;
	struct authd_reply r;
	unsigned char big[AUTHD_MSG_MAX + 8];

	memset(&v, 0, sizeof(v));
	hdr(&v.hdr, AUTHD_VERIFY, 7);
	strcpy(v.user, "alice");
	strcpy(v.password, "pw");
	CHECK(authd_msg_validate(&v, sizeof(v), true) == NULL);
	/* a reply type from a worker, a request from the auth process */
	CHECK(authd_msg_validate(&v, sizeof(v), false) != NULL);
	/* truncated header, truncated body, oversized */
	CHECK(strcmp(authd_msg_validate(&v, 3, true), "truncated header") == 0);
	CHECK(strcmp(authd_msg_validate(&v, sizeof(v) - 1, true), "truncated message") == 0);
	memset(big, 0, sizeof(big));
	memcpy(big, &v, sizeof(v));
	CHECK(strcmp(authd_msg_validate(big, sizeof(v) + 1, true), "oversized message") == 0);
	/* every string must hold a NUL */
	memset(v.password, 'x', sizeof(v.password));
	CHECK(strcmp(authd_msg_validate(&v, sizeof(v), true), "string without NUL") == 0);
	v.password[0] = '\0';
	memset(v.protocol, 'p', sizeof(v.protocol));
	CHECK(authd_msg_validate(&v, sizeof(v), true) != NULL);
	v.protocol[3] = '\0';
	memset(v.user, 'u', sizeof(v.user));
	CHECK(authd_msg_validate(&v, sizeof(v), true) != NULL);
	v.user[MA_AUTH_USER_MAX - 1] = '\0';
	CHECK(authd_msg_validate(&v, sizeof(v), true) == NULL);
	/* version, type */
	v.hdr.version = 2;
	CHECK(strcmp(authd_msg_validate(&v, sizeof(v), true), "protocol version mismatch") == 0);
	v.hdr.version = AUTHD_PROTO_VERSION;
	v.hdr.type = 99;
	CHECK(strcmp(authd_msg_validate(&v, sizeof(v), true), "unknown message type") == 0);
	v.hdr.type = 0;
	CHECK(authd_msg_validate(&v, sizeof(v), true) != NULL);
	/* garbage of every length up to the max is refused or well-formed */
	for (size_t len = 0; len <= AUTHD_MSG_MAX; len += 37) {
		for (size_t i = 0; i < len; i++)
			big[i] = (unsigned char)(i * 131 + len);
		CHECK(authd_msg_validate(big, len, true) != NULL);
	}
	/* conn requests: flags, empty session user */
	memset(&c, 0, sizeof(c));
	hdr(&c.hdr, AUTHD_CONN_ADD, 1);
	c.flags = AUTHD_CONN_COUNT_IP;
	CHECK(authd_msg_validate(&c, sizeof(c), true) == NULL);
	c.flags = 0x80;
	CHECK(strcmp(authd_msg_validate(&c, sizeof(c), true), "unknown flags") == 0);
	c.flags = 0;
	c.hdr.type = AUTHD_SESSION_ADD;
	CHECK(strcmp(authd_msg_validate(&c, sizeof(c), true), "empty user") == 0);
	memset(c.sid, 's', sizeof(c.sid));
	strcpy(c.user, "bob");
	CHECK(authd_msg_validate(&c, sizeof(c), true) != NULL);
	/* a VERIFY-sized CONN_ADD */
	c.hdr.type = AUTHD_CONN_ADD;
	memset(big, 0, sizeof(big));
	memcpy(big, &c.hdr, sizeof(c.hdr));
	CHECK(authd_msg_validate(big, sizeof(v), true) != NULL);
	/* replies */
	memset(&r, 0, sizeof(r));
	hdr(&r.hdr, AUTHD_REPLY, 1);
	CHECK(authd_msg_validate(&r, sizeof(r), false) == NULL);
	CHECK(authd_msg_validate(&r, sizeof(r), true) != NULL);
	r.status = 17;
	CHECK(strcmp(authd_msg_validate(&r, sizeof(r), false), "bad status") == 0);
	r.status = -1;
	CHECK(authd_msg_validate(&r, sizeof(r), false) != NULL);
	r.status = MA_AUTH_OK;
	r.limit = AUTHD_LIMIT_COUNT;
	CHECK(strcmp(authd_msg_validate(&r, sizeof(r), false), "bad limit") == 0);
	r.limit = 0;
	memset(r.source, 'z', sizeof(r.source));
	CHECK(authd_msg_validate(&r, sizeof(r), false) != NULL);
}

/* ---------- the anvil alone ---------- */

static void ipk(unsigned char key[16], unsigned char last)
{
	memset(key, 0, 16);
	key[10] = key[11] = 0xff;
	key[12] = 192;
	key[15] = last;
}

static void test_anvil(void)
{
	struct ma_anvil *a = ma_anvil_create(5, 2, 2);
	struct ma_anvil_client *w1 = ma_anvil_client_create(a);
	struct ma_anvil_client *w2 = ma_anvil_client_create(a);
	unsigned char ip1[16], ip2[16];
	unsigned n, max, sessions;

	ipk(ip1, 1);
	ipk(ip2, 2);
	/* per IP across two workers */
	CHECK(ma_anvil_conn_add(w1, 1, ip1, AUTHD_CONN_COUNT_IP, &n, &max) == AUTHD_LIMIT_NONE);
	CHECK(ma_anvil_conn_add(w2, 1, ip1, AUTHD_CONN_COUNT_IP, &n, &max) == AUTHD_LIMIT_NONE);
	CHECK(ma_anvil_conn_add(w2, 2, ip1, AUTHD_CONN_COUNT_IP, &n, &max) ==
	      AUTHD_LIMIT_MAX_CONNECTIONS_PER_IP);
	CHECK(n == 2 && max == 2);
	/* the same conn id twice is counted once */
	CHECK(ma_anvil_conn_add(w1, 1, ip1, AUTHD_CONN_COUNT_IP, &n, &max) == AUTHD_LIMIT_NONE);
	CHECK(ma_anvil_conn_count(a, ip1) == 2 && ma_anvil_conn_count(a, NULL) == 2);
	/* not counted per IP (UNIX peers) */
	CHECK(ma_anvil_conn_add(w2, 3, ip1, 0, &n, &max) == AUTHD_LIMIT_NONE);
	CHECK(ma_anvil_conn_add(w2, 4, ip2, AUTHD_CONN_COUNT_IP, &n, &max) == AUTHD_LIMIT_NONE);
	CHECK(ma_anvil_conn_add(w1, 5, ip2, AUTHD_CONN_COUNT_IP, &n, &max) == AUTHD_LIMIT_NONE);
	/* total: 5 */
	CHECK(ma_anvil_conn_add(w1, 6, ip2, 0, &n, &max) == AUTHD_LIMIT_MAX_CONNECTIONS);
	CHECK(n == 5 && max == 5);
	/* sessions per user, case-insensitive, across workers */
	CHECK(ma_anvil_session_add(w1, 1, "Alice", false, &n, &max) == AUTHD_LIMIT_NONE);
	CHECK(ma_anvil_session_add(w2, 4, "alice", false, &n, &max) == AUTHD_LIMIT_NONE);
	CHECK(ma_anvil_session_add(w1, 5, "ALICE", false, &n, &max) ==
	      AUTHD_LIMIT_MAX_SESSIONS_PER_USER);
	CHECK(n == 2 && max == 2);
	CHECK(ma_anvil_session_count(a, "alice") == 2);
	/* a conn's session counted once, even if reported twice */
	CHECK(ma_anvil_session_add(w1, 1, "alice", false, &n, &max) == AUTHD_LIMIT_NONE);
	CHECK(ma_anvil_session_count(a, "alice") == 2);
	/* closing a conn releases its IP and its session */
	ma_anvil_conn_del(w1, 1);
	CHECK(ma_anvil_session_count(a, "alice") == 1);
	CHECK(ma_anvil_conn_count(a, ip1) == 1 && ma_anvil_conn_count(a, NULL) == 4);
	ma_anvil_conn_del(w1, 1);	/* unknown now: no-op */
	CHECK(ma_anvil_conn_count(a, NULL) == 4);

	/* worker 2 dies: all its counts go */
	CHECK(ma_anvil_client_destroy(&w2, &sessions) == 3 && w2 == NULL);
	CHECK(sessions == 1);
	CHECK(ma_anvil_conn_count(a, NULL) == 1);
	CHECK(ma_anvil_conn_count(a, ip1) == 0 && ma_anvil_conn_count(a, ip2) == 1);
	CHECK(ma_anvil_session_count(a, "alice") == 0);

	/* ... and comes back (its conns are still open): re-registration is
	 * counted even over the limits */
	w2 = ma_anvil_client_create(a);
	CHECK(ma_anvil_conn_add(w2, 1, ip1, AUTHD_CONN_COUNT_IP, &n, &max) == AUTHD_LIMIT_NONE);
	CHECK(ma_anvil_conn_add(w2, 2, ip1, AUTHD_CONN_COUNT_IP, &n, &max) == AUTHD_LIMIT_NONE);
	CHECK(ma_anvil_conn_add(w2, 3, ip1, AUTHD_CONN_COUNT_IP | AUTHD_CONN_FORCE,
				&n, &max) == AUTHD_LIMIT_NONE);
	CHECK(ma_anvil_conn_count(a, ip1) == 3);
	CHECK(ma_anvil_session_add(w2, 1, "bob", true, &n, &max) == AUTHD_LIMIT_NONE);
	CHECK(ma_anvil_session_add(w2, 2, "bob", true, &n, &max) == AUTHD_LIMIT_NONE);
	CHECK(ma_anvil_session_add(w2, 3, "bob", true, &n, &max) == AUTHD_LIMIT_NONE);
	CHECK(ma_anvil_session_count(a, "bob") == 3);
	/* a session on a conn never added is counted with it */
	CHECK(ma_anvil_session_add(w1, 77, "carol", false, &n, &max) == AUTHD_LIMIT_NONE);
	CHECK(ma_anvil_conn_count(a, NULL) == 5);
	/* memory bound: 2 x 5 + 1024 entries even when forced */
	unsigned added = 0;
	for (uint64_t id = 1000; id < 3000; id++)
		if (ma_anvil_conn_add(w1, id, ip2, AUTHD_CONN_FORCE, &n, &max) ==
		    AUTHD_LIMIT_NONE)
			added++;
	CHECK(ma_anvil_conn_count(a, NULL) == 2 * 5 + 1024);
	CHECK(added == 2 * 5 + 1024 - 5);
	CHECK(ma_anvil_client_destroy(&w1, NULL) == 2 + added);
	CHECK(ma_anvil_client_destroy(&w2, &sessions) == 3 && sessions == 3);
	CHECK(ma_anvil_conn_count(a, NULL) == 0 && ma_anvil_session_count(a, "bob") == 0);
	CHECK(ma_anvil_conn_count(a, ip2) == 0);
	ma_anvil_destroy(&a);
	CHECK(a == NULL);
}

/* ---------- a real auth process ---------- */

/* "secret", SHA512-CRYPT with 1000 rounds (cheap for the test). */
static const char alice_hash[] =
	"$6$rounds=1000$/HDs3j/cs/A4mq6p$w/tZEsHMIbYCF3gYVHBzykvnJMjPgGn7nqOJZJLwOiRrUp7GepFju3J7KDBhNv9Y829TbzSdLLF1WJXccQbgg.";

static char conf_path[512];
static struct ma_core *authd_core;
static int authd_listen_fd = -1;
static pid_t authd_pid = -1;

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
		fprintf(stderr, "cannot write %s\n", path);
		exit(2);
	}
}

static int authd_setup(const char *root)
{
	char text[2048], users[600];
	char *err = NULL;

	snprintf(users, sizeof(users), "%s/users", tmpdir);
	snprintf(text, sizeof(text),
		 "Alice@Example.org:{SHA512-CRYPT}%s\n", alice_hash);
	write_file(users, text);
	snprintf(conf_path, sizeof(conf_path), "%s/authd.conf", tmpdir);
	snprintf(text, sizeof(text),
		 "state_dir = %s\n"
		 "plugin_dir = %s/backends/lmdb:%s/plugins/auth-passwd\n"
		 "log_level = %s\n"
		 "store {\n backend = lmdb\n path = %s/store\n}\n"
		 "auth passwd {\n file = %s\n}\n"
		 "limits {\n max_connections_per_ip = 2\n max_sessions_per_user = 1\n"
		 " auth_fail_delay = 100ms\n auth_fail_max_delay = 400ms\n"
		 " auth_fail_lockout = 5\n}\n",
		 tmpdir, root, root,
		 getenv("MA_TEST_VERBOSE") != NULL ? "debug" : "error",
		 tmpdir, users);
	write_file(conf_path, text);
	authd_core = ma_core_create(conf_path, 0, &err);
	if (authd_core == NULL) {
		fprintf(stderr, "authd core: %s\n", err);
		return -1;
	}
	/* As the master does: bind once, keep the fd across restarts. */
	authd_listen_fd = ma_authd_listen(authd_core, (uid_t)-1, (gid_t)-1, &err);
	if (authd_listen_fd < 0) {
		fprintf(stderr, "ma_authd_listen: %s\n", err);
		return -1;
	}
	char sock[600];
	struct stat st;
	snprintf(sock, sizeof(sock), "%s/auth.sock", tmpdir);
	CHECK(stat(sock, &st) == 0 && S_ISSOCK(st.st_mode) &&
	      (st.st_mode & 0777) == 0600);
	/* A second listen on a live socket is refused. */
	CHECK(ma_authd_listen(authd_core, (uid_t)-1, (gid_t)-1, &err) == -1);
	free(err);
	return 0;
}

/* Client sockets of the test: a forked auth process must not keep them
 * open (the real master forks it before any client exists). */
static int client_fds[64];
static unsigned n_client_fds;

static void authd_start(void)
{
	authd_pid = fork();
	if (authd_pid == 0) {
		for (unsigned i = 0; i < n_client_fds; i++)
			close(client_fds[i]);
		/* A loop of its own: the parent's watchers are not ours. */
		ma_core_set_loop(authd_core, ev_loop_new(EVFLAG_AUTO));
		_exit(ma_authd_run(authd_core, authd_listen_fd));
	}
}

static int authd_stop(int sig)
{
	int status = -1;
	if (authd_pid <= 0)
		return -1;
	kill(authd_pid, sig);
	waitpid(authd_pid, &status, 0);
	authd_pid = -1;
	return status;
}

static int raw_connect(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/auth.sock", tmpdir);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		perror("connect auth.sock");
		exit(2);
	}
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* One request, one reply (blocking, 5s at most). */
static int raw_verify(int fd, uint32_t id, bool lookup, const char *user,
		      const char *pw, const char *ip, uint64_t conn_id,
		      struct authd_reply *r)
{
	struct authd_check_req m;
	memset(&m, 0, sizeof(m));
	hdr(&m.hdr, lookup ? AUTHD_LOOKUP : AUTHD_VERIFY, id);
	m.conn_id = conn_id;
	snprintf(m.user, sizeof(m.user), "%s", user);
	if (pw != NULL)
		snprintf(m.password, sizeof(m.password), "%s", pw);
	snprintf(m.ip, sizeof(m.ip), "%s", ip);
	snprintf(m.sid, sizeof(m.sid), "rawsid");
	snprintf(m.protocol, sizeof(m.protocol), "test");
	if (send(fd, &m, sizeof(m), 0) != (ssize_t)sizeof(m))
		return -1;
	memset(r, 0, sizeof(*r));
	ssize_t n = recv(fd, r, sizeof(*r), 0);
	if (n != (ssize_t)sizeof(*r) || authd_msg_validate(r, (size_t)n, false) != NULL ||
	    r->hdr.id != id)
		return -1;
	return 0;
}

static int raw_conn(int fd, unsigned type, uint32_t id, uint64_t conn_id,
		    unsigned char last_ip, const char *user,
		    struct authd_reply *r)
{
	struct authd_conn_req m;
	memset(&m, 0, sizeof(m));
	hdr(&m.hdr, type, id);
	m.conn_id = conn_id;
	m.flags = AUTHD_CONN_COUNT_IP;
	ipk(m.ip_key, last_ip);
	snprintf(m.ip, sizeof(m.ip), "192.0.0.%u", last_ip);
	snprintf(m.sid, sizeof(m.sid), "rawsid");
	if (user != NULL)
		snprintf(m.user, sizeof(m.user), "%s", user);
	if (send(fd, &m, sizeof(m), 0) != (ssize_t)sizeof(m))
		return -1;
	if (id == 0 || r == NULL)
		return 0;
	memset(r, 0, sizeof(*r));
	ssize_t n = recv(fd, r, sizeof(*r), 0);
	return n == (ssize_t)sizeof(*r) && r->hdr.id == id ? 0 : -1;
}

static bool raw_is_closed(int fd)
{
	char b[8];
	return recv(fd, b, sizeof(b), 0) == 0;
}

static void test_authd_raw(void)
{
	struct authd_reply r;
	int w1 = raw_connect(), w2 = raw_connect();

	/* VERIFY with the real passwd plugin: canonical name from the file */
	CHECK(raw_verify(w1, 1, false, "alice@example.org", "secret", "192.0.2.10", 0, &r) == 0);
	CHECK(r.status == MA_AUTH_OK && strcmp(r.user, "Alice@Example.org") == 0);
	CHECK(r.delay_ms == 0 && strcmp(r.source, "passwd") == 0);
	CHECK(raw_verify(w1, 2, true, "ALICE@example.org", NULL, "-", 0, &r) == 0);
	CHECK(r.status == MA_AUTH_OK && strcmp(r.user, "Alice@Example.org") == 0);
	CHECK(raw_verify(w1, 3, true, "nobody@example.org", NULL, "-", 0, &r) == 0);
	CHECK(r.status == MA_AUTH_FAIL && r.user[0] == '\0');

	/* the failure table is server-wide: failures through two workers
	 * grow one delay (100ms, 200ms, 400ms, 400ms), then lockout */
	CHECK(raw_verify(w1, 4, false, "alice@example.org", "wrong", "192.0.2.11", 0, &r) == 0);
	CHECK(r.status == MA_AUTH_FAIL && r.delay_ms == 100);
	CHECK(raw_verify(w2, 5, false, "mallory", "x", "192.0.2.11", 0, &r) == 0);
	CHECK(r.status == MA_AUTH_FAIL && r.delay_ms == 200);
	CHECK(raw_verify(w1, 6, false, "mallory2", "x", "192.0.2.11", 0, &r) == 0);
	CHECK(r.status == MA_AUTH_FAIL && r.delay_ms == 400);
	CHECK(raw_verify(w2, 7, false, "mallory3", "x", "192.0.2.11", 0, &r) == 0);
	CHECK(r.delay_ms == 400);
	CHECK(raw_verify(w2, 8, false, "mallory4", "x", "192.0.2.11", 0, &r) == 0);
	/* 5 failures from .11: even the right password is refused */
	CHECK(raw_verify(w1, 9, false, "alice@example.org", "secret", "192.0.2.11", 0, &r) == 0);
	CHECK(r.status == MA_AUTH_DELAYED && r.delay_ms == 100);
	/* another address is not affected; alice's own count was cleared */
	CHECK(raw_verify(w2, 10, false, "alice@example.org", "secret", "192.0.2.12", 0, &r) == 0);
	CHECK(r.status == MA_AUTH_OK);
	/* an empty password is a counted failure, without asking a source */
	CHECK(raw_verify(w2, 11, false, "alice@example.org", "", "192.0.2.13", 0, &r) == 0);
	CHECK(r.status == MA_AUTH_FAIL && r.delay_ms == 100);

	/* the anvil: per IP across workers, sessions on login */
	CHECK(raw_conn(w1, AUTHD_CONN_ADD, 20, 1, 50, NULL, &r) == 0 && r.status == MA_AUTH_OK);
	CHECK(raw_conn(w2, AUTHD_CONN_ADD, 21, 1, 50, NULL, &r) == 0 && r.status == MA_AUTH_OK);
	CHECK(raw_conn(w2, AUTHD_CONN_ADD, 22, 2, 50, NULL, &r) == 0);
	CHECK(r.status == MA_AUTH_FAIL && r.limit == AUTHD_LIMIT_MAX_CONNECTIONS_PER_IP &&
	      r.count == 2 && r.max == 2);
	/* a login on w1's conn 1 is a session of alice (max 1) ... */
	CHECK(raw_verify(w1, 23, false, "alice@example.org", "secret", "192.0.2.14", 1, &r) == 0);
	CHECK(r.status == MA_AUTH_OK);
	/* ... so the same user on w2's conn is a temporary failure */
	CHECK(raw_verify(w2, 24, false, "ALICE@example.org", "secret", "192.0.2.14", 1, &r) == 0);
	CHECK(r.status == MA_AUTH_TEMPFAIL && r.limit == AUTHD_LIMIT_MAX_SESSIONS_PER_USER &&
	      r.count == 1 && r.max == 1);
	/* re-registration (id 0: no reply) is counted even over the limit */
	CHECK(raw_conn(w2, AUTHD_CONN_ADD, 0, 9, 60, NULL, NULL) == 0);
	CHECK(raw_conn(w2, AUTHD_CONN_ADD, 25, 10, 60, NULL, &r) == 0 && r.status == MA_AUTH_OK);
	CHECK(raw_conn(w2, AUTHD_CONN_ADD, 26, 11, 60, NULL, &r) == 0);
	CHECK(r.status == MA_AUTH_FAIL);

	/* garbage from w1: only w1 is closed, and its counts go with it */
	unsigned char junk[100];
	memset(junk, 0xa5, sizeof(junk));
	CHECK(send(w1, junk, sizeof(junk), 0) == (ssize_t)sizeof(junk));
	CHECK(raw_is_closed(w1));
	close(w1);
	CHECK(raw_conn(w2, AUTHD_CONN_ADD, 30, 2, 50, NULL, &r) == 0 && r.status == MA_AUTH_OK);
	CHECK(raw_verify(w2, 31, false, "alice@example.org", "secret", "192.0.2.14", 1, &r) == 0);
	CHECK(r.status == MA_AUTH_OK);

	/* a truncated and an oversized message close their client too */
	w1 = raw_connect();
	struct authd_check_req m;
	memset(&m, 0, sizeof(m));
	hdr(&m.hdr, AUTHD_VERIFY, 1);
	CHECK(send(w1, &m, sizeof(m) - 10, 0) == (ssize_t)sizeof(m) - 10);
	CHECK(raw_is_closed(w1));
	close(w1);
	w1 = raw_connect();
	unsigned char huge[AUTHD_MSG_MAX * 2];
	memset(huge, 0, sizeof(huge));
	memcpy(huge, &m, sizeof(m));
	CHECK(send(w1, huge, sizeof(huge), 0) == (ssize_t)sizeof(huge));
	CHECK(raw_is_closed(w1));
	close(w1);
	/* a password without NUL */
	w1 = raw_connect();
	memset(m.password, 'p', sizeof(m.password));
	strcpy(m.user, "alice@example.org");
	CHECK(send(w1, &m, sizeof(m), 0) == (ssize_t)sizeof(m));
	CHECK(raw_is_closed(w1));
	close(w1);
	/* w2 still served */
	CHECK(raw_verify(w2, 40, true, "alice@example.org", NULL, "-", 0, &r) == 0 &&
	      r.status == MA_AUTH_OK);
	close(w2);
}

/* ---------- the worker side on a real listener ---------- */

static struct {
	unsigned connects, closes, commands, replies;
	struct ma_conn *last;
	bool bucket;		/* on_input: count lines through the bucket */
	char reply[64][64];	/* per conn index: last auth answer */
} T;

static void tp_auth_cb(struct ma_conn *conn, enum ma_auth_status status,
		       const char *user, void *ctx)
{
	(void)ctx;
	T.replies++;
	ma_conn_printf(conn, "R %d %s\r\n", (int)status, user != NULL ? user : "-");
	ma_conn_resume_input(conn);
}

static int tp_on_connect(struct ma_conn *conn)
{
	T.connects++;
	T.last = conn;
	return ma_conn_printf(conn, "hi\r\n");
}

static void tp_on_input(struct ma_conn *conn)
{
	size_t len;
	const unsigned char *p = ma_conn_input(conn, &len);

	for (;;) {
		p = ma_conn_input(conn, &len);
		const unsigned char *nl = memchr(p, '\n', len);
		if (nl == NULL)
			return;
		if (T.bucket) {
			if (!ma_conn_command_allowed(conn))
				return;
			T.commands++;
			ma_conn_input_consume(conn, (size_t)(nl - p) + 1);
			continue;
		}
		char line[300], user[128], pw[128];
		size_t n = (size_t)(nl - p);
		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		memcpy(line, p, n);
		line[n] = '\0';
		ma_conn_input_consume(conn, (size_t)(nl - p) + 1);
		if (sscanf(line, "L %127s %127s", user, pw) == 2) {
			ma_conn_pause_input(conn);
			ma_auth_verify(conn, user, pw, tp_auth_cb, NULL);
			return;
		}
	}
}

static void tp_on_close(struct ma_conn *conn, enum ma_close_reason reason)
{
	(void)conn;
	(void)reason;
	T.closes++;
}

static const struct ma_protocol_ops tp_ops = {
	.struct_size = sizeof(struct ma_protocol_ops),
	.on_connect = tp_on_connect,
	.on_input = tp_on_input,
	.on_close = tp_on_close,
	.name = "tp",
};
static const struct ma_plugin tp_desc = {
	MA_PLUGIN_INIT(MA_PLUGIN_PROTOCOL, "tp", "1"), .ops = &tp_ops,
};
static struct ma_loaded_plugin tp_loaded = { .desc = &tp_desc };
static struct ma_loaded_plugin *tp_plugins[] = { &tp_loaded };

static unsigned free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) < 0)
		exit(2);
	unsigned port = ntohs(sin.sin_port);
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
	if (n_client_fds < sizeof(client_fds) / sizeof(client_fds[0]))
		client_fds[n_client_fds++] = fd;
	return fd;
}

/* Reads until needle or EOF (3s at most); returns bytes, -1 on EOF with
 * nothing. */
static long client_read(struct ev_loop *loop, int fd, char *buf, size_t size,
			const char *needle)
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
		if (n == 0)
			return got == 0 ? -1 : (long)got;
		ev_run(loop, EVRUN_NOWAIT);
		usleep(1000);
	}
	return (long)got;
}

static struct ma_core *worker_core(struct ev_loop *loop, unsigned port,
				   const char *limits)
{
	char text[1024], *err = NULL;
	struct ma_core *core = ma_malloc0(sizeof(*core));

	snprintf(text, sizeof(text),
		 "listener t {\n protocol = tp\n address = 127.0.0.1\n port = %u\n}\n"
		 "limits {\n%s}\n", port, limits);
	core->config = ma_config_parse("worker.conf", text, strlen(text), &err);
	if (core->config == NULL) {
		fprintf(stderr, "config: %s\n", err);
		exit(2);
	}
	core->loop = loop;
	core->plugins = tp_plugins;
	core->n_plugins = 1;
	core->state_dir = ma_strdup(tmpdir);
	if (ma_auth_init(core, &err) < 0 || ma_net_init(core, &err) < 0) {
		fprintf(stderr, "worker core: %s\n", err);
		exit(2);
	}
	return core;
}

static void worker_core_free(struct ma_core *core)
{
	ma_net_deinit(core);
	ma_auth_deinit(core);
	ma_config_free(&core->config);
	free(core->state_dir);
	free(core);
}

static void test_worker(struct ev_loop *loop)
{
	unsigned port = free_port();
	/* The process's own limits are wide: the auth process's (2 per IP,
	 * 1 session per user) are the ones that trip. */
	struct ma_core *core = worker_core(loop, port, " max_connections_per_ip = 50\n");
	char buf[512], *err = NULL;

	CHECK(ma_auth_use_authd(core, &err) == 0);
	CHECK(ma_net_start(core, &err) == 0);
	memset(&T, 0, sizeof(T));

	/* two conns from 127.0.0.1 are admitted through the auth process */
	int c1 = client_connect(port), c2 = client_connect(port);
	CHECK(client_read(loop, c1, buf, sizeof(buf), "\n") > 0 && strcmp(buf, "hi\r\n") == 0);
	CHECK(client_read(loop, c2, buf, sizeof(buf), "\n") > 0 && strcmp(buf, "hi\r\n") == 0);
	CHECK(T.connects == 2);
	/* the third is refused by max_connections_per_ip before any greeting */
	int c3 = client_connect(port);
	CHECK(client_read(loop, c3, buf, sizeof(buf), "\n") == -1);
	CHECK(T.connects == 2);
	close(c3);

	/* login; the second login of the same user hits max_sessions_per_user */
	CHECK(send(c1, "L alice@example.org secret\n", 27, 0) == 27);
	CHECK(client_read(loop, c1, buf, sizeof(buf), "\n") > 0);
	CHECK(strcmp(buf, "R 0 Alice@Example.org\r\n") == 0);
	CHECK(send(c2, "L alice@example.org secret\n", 27, 0) == 27);
	CHECK(client_read(loop, c2, buf, sizeof(buf), "\n") > 0);
	CHECK(strcmp(buf, "R 3 -\r\n") == 0);	/* TEMPFAIL */
	/* a wrong password: FAIL after the delay the auth process sent */
	double t0 = ma_monotonic();
	CHECK(send(c2, "L alice@example.org nope\n", 25, 0) == 25);
	CHECK(client_read(loop, c2, buf, sizeof(buf), "\n") > 0);
	CHECK(strcmp(buf, "R 1 -\r\n") == 0);
	double took = ma_monotonic() - t0;
	CHECK(took >= 0.095 && took < 1.0);

	/* the auth process dies: a login is a temporary failure at once */
	CHECK(authd_stop(SIGKILL) != -1);
	RUN_UNTIL(loop, !ma_auth_authd_connected(core), 2);
	CHECK(!ma_auth_authd_connected(core));
	CHECK(send(c2, "L alice@example.org secret\n", 27, 0) == 27);
	CHECK(client_read(loop, c2, buf, sizeof(buf), "\n") > 0);
	CHECK(strcmp(buf, "R 3 -\r\n") == 0);
	/* a new conn is admitted (fail open: the process's limits hold) */
	c3 = client_connect(port);
	CHECK(client_read(loop, c3, buf, sizeof(buf), "\n") > 0 && strcmp(buf, "hi\r\n") == 0);
	close(c3);
	RUN_UNTIL(loop, T.closes == 1, 2);

	/* restart: the worker reconnects and re-registers c1 (alice's
	 * session) and c2, so alice on c2 is still over her limit, and a
	 * third conn from this IP is still refused */
	authd_start();
	RUN_UNTIL(loop, ma_auth_authd_connected(core), 6);
	CHECK(ma_auth_authd_connected(core));
	CHECK(send(c2, "L alice@example.org secret\n", 27, 0) == 27);
	CHECK(client_read(loop, c2, buf, sizeof(buf), "\n") > 0);
	CHECK(strcmp(buf, "R 3 -\r\n") == 0);
	c3 = client_connect(port);
	CHECK(client_read(loop, c3, buf, sizeof(buf), "\n") == -1);
	close(c3);
	/* c1 closes: its conn and session are released in the auth process */
	close(c1);
	RUN_UNTIL(loop, T.closes == 2, 2);
	for (int i = 0; i < 20; i++)	/* let the CONN_DEL reach authd */
		ev_run(loop, EVRUN_NOWAIT);
	CHECK(send(c2, "L alice@example.org secret\n", 27, 0) == 27);
	CHECK(client_read(loop, c2, buf, sizeof(buf), "\n") > 0);
	CHECK(strcmp(buf, "R 0 Alice@Example.org\r\n") == 0);
	close(c2);
	RUN_UNTIL(loop, T.closes == 3, 2);
	worker_core_free(core);
}

/* ---------- the command bucket ---------- */

static void test_bucket(struct ev_loop *loop)
{
	unsigned port = free_port();
	struct ma_core *core = worker_core(loop, port,
		" commands_per_second = 200\n max_line = 64k\n");
	char buf[64], *err = NULL;
	static char lines[1100 * 2];

	CHECK(ma_auth_commands_per_second(core) == 200);
	CHECK(ma_net_start(core, &err) == 0);
	memset(&T, 0, sizeof(T));
	T.bucket = true;
	int c = client_connect(port);
	CHECK(client_read(loop, c, buf, sizeof(buf), "\n") > 0);
	for (size_t i = 0; i < 1100; i++)
		memcpy(lines + 2 * i, "x\n", 2);
	size_t sent = 0;
	double t0 = ma_monotonic();
	while (sent < sizeof(lines) && ma_monotonic() < t0 + 3) {
		ssize_t n = send(c, lines + sent, sizeof(lines) - sent, 0);
		if (n > 0)
			sent += (size_t)n;
		ev_run(loop, EVRUN_NOWAIT);
	}
	CHECK(sent == sizeof(lines));
	/* the burst (5 x 200) goes through at once, then input pauses */
	RUN_UNTIL(loop, T.commands >= 1000, 2);
	CHECK(T.commands >= 1000 && T.commands < 1050);
	struct ma_conn *conn = T.last;
	CHECK(conn->throttled && conn->throttle_logged);
	/* the rest at 200/s: 100 more lines take about half a second */
	RUN_UNTIL(loop, T.commands == 1100, 3);
	double took = ma_monotonic() - t0;
	CHECK(T.commands == 1100);
	CHECK(took >= 0.35 && took < 2.5);
	CHECK(!conn->throttled);
	close(c);
	RUN_UNTIL(loop, T.closes == 1, 2);
	worker_core_free(core);

	/* 0 turns it off */
	core = worker_core(loop, free_port(), " commands_per_second = 0\n");
	CHECK(ma_auth_commands_per_second(core) == 0);
	worker_core_free(core);
}

/* In-process mode (no auth process): the same anvil limits per process. */
static void test_in_process(struct ev_loop *loop)
{
	unsigned port = free_port();
	struct ma_core *core = worker_core(loop, port,
		" max_connections_per_ip = 50\n max_connections = 1\n");
	char buf[64], *err = NULL;

	CHECK(ma_net_start(core, &err) == 0);
	memset(&T, 0, sizeof(T));
	int c1 = client_connect(port);
	CHECK(client_read(loop, c1, buf, sizeof(buf), "\n") > 0);
	CHECK(ma_auth_local_conn_count(core) == 1);
	/* listener.c also counts per process; either way the 2nd is refused */
	int c2 = client_connect(port);
	CHECK(client_read(loop, c2, buf, sizeof(buf), "\n") == -1);
	close(c2);
	close(c1);
	RUN_UNTIL(loop, T.closes == 1, 2);
	CHECK(ma_auth_local_conn_count(core) == 0);
	worker_core_free(core);
}

static void rm_tmpdir(void)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

int main(void)
{
	const char *root = getenv("MA_TEST_BUILD_ROOT");
	struct ev_loop *loop = EV_DEFAULT;

	signal(SIGPIPE, SIG_IGN);
	ma_log_init("test-authd", "stderr",
		    getenv("MA_TEST_VERBOSE") != NULL ? MA_LOG_DEBUG : MA_LOG_ERROR);
	test_messages();
	test_anvil();
	if (root == NULL) {
		fprintf(stderr, "test-authd: MA_TEST_BUILD_ROOT not set: skipping the process tests\n");
		return failures == 0 ? 0 : 1;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ma-test-authd-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	if (authd_setup(root) < 0) {
		rm_tmpdir();
		return 1;
	}
	authd_start();
	test_authd_raw();
	test_worker(loop);
	/* SIGTERM ends the auth process cleanly (exit 0) */
	int status = authd_stop(SIGTERM);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	test_bucket(loop);
	test_in_process(loop);
	close(authd_listen_fd);
	ma_core_destroy(&authd_core);
	rm_tmpdir();
	if (failures > 0) {
		fprintf(stderr, "test-authd: %d failures\n", failures);
		return 1;
	}
	printf("test-authd: ok\n");
	return 0;
}
