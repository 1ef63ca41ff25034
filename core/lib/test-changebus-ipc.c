/*
 * test-changebus-ipc.c - the change bus between processes: an event
 * published in one process reaches a subscriber in another within a second;
 * a dead listener's socket is cleaned up; malformed datagrams are ignored.
 */
#include <errno.h>
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

#include "core-private.h"

static int failures;
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #c); failures++; } } while (0)

static int hits;
static char last_user[300], last_box[1100];

static void on_change(const char *user, const char *mailbox, void *ctx)
{
	(void)ctx;
	hits++;
	snprintf(last_user, sizeof(last_user), "%s", user);
	snprintf(last_box, sizeof(last_box), "%s", mailbox);
	ev_break(EV_DEFAULT, EVBREAK_ALL);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w; (void)revents;
	ev_break(loop, EVBREAK_ALL);
}

static void run_for(double seconds)
{
	ev_timer t;
	ev_timer_init(&t, on_timeout, seconds, 0);
	ev_timer_start(EV_DEFAULT, &t);
	ev_run(EV_DEFAULT, 0);
	ev_timer_stop(EV_DEFAULT, &t);
}

static struct ma_core *fake_core(const char *state)
{
	struct ma_core *core = ma_malloc0(sizeof(*core));
	core->state_dir = ma_strdup(state);
	core->loop = EV_DEFAULT;
	ma_changebus_init(core);
	return core;
}

static void fake_core_free(struct ma_core *core)
{
	ma_changebus_ipc_close(core);
	ma_changebus_deinit(core);
	free(core->state_dir);
	free(core);
}

int main(void)
{
	char state[] = "/tmp/ma-bus-XXXXXX";
	char *err = NULL;

	if (mkdtemp(state) == NULL)
		return 1;
	struct ma_core *core = fake_core(state);
	CHECK(ma_changebus_ipc_listen(core, &err) == 0);
	struct ma_changebus_sub *sub =
		ma_changebus_subscribe(core, "alice@example.com", "INBOX", on_change, NULL);
	CHECK(sub != NULL);

	/* 1. Another process publishes (like mailaccessctl deliver: its own
	 * core, no loop, exits right after). */
	pid_t pid = fork();
	if (pid == 0) {
		struct ma_core *c2 = fake_core(state);
		ma_changebus_publish(c2, "alice@example.com", "INBOX");
		ma_changebus_publish(c2, "bob@example.com", "INBOX");	/* not subscribed */
		fake_core_free(c2);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	double t0 = ev_time();
	run_for(1.0);
	CHECK(hits == 1);
	CHECK(strcmp(last_user, "alice@example.com") == 0);
	CHECK(strcmp(last_box, "INBOX") == 0);
	CHECK(ev_time() - t0 < 1.0);

	/* 2. A publisher never sends to itself over the socket: the local
	 * bus already delivered it (exactly once). */
	hits = 0;
	ma_changebus_publish(core, "alice@example.com", "INBOX");
	run_for(0.3);
	CHECK(hits == 1);

	/* 3. Malformed datagrams are ignored, the bus keeps working. */
	char path[100];
	snprintf(path, sizeof(path), "%s/bus/%ld.sock", state, (long)getpid());
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	const char *bad[] = { "", "MA1", "XX1\0u\0m\0", "MA1\0\0m\0", "MA1\0u\0\0", "MA1\0u\0m" };
	const size_t badlen[] = { 0, 3, 8, 7, 7, 7 };
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		(void)sendto(fd, bad[i], badlen[i], 0, (struct sockaddr *)&sun, sizeof(sun));
	unsigned char junk[2000];
	memset(junk, 'A', sizeof(junk));
	(void)sendto(fd, junk, sizeof(junk), 0, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	hits = 0;
	run_for(0.3);
	CHECK(hits == 0);
	pid = fork();
	if (pid == 0) {
		struct ma_core *c2 = fake_core(state);
		ma_changebus_publish(c2, "alice@example.com", "INBOX");
		fake_core_free(c2);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	run_for(1.0);
	CHECK(hits == 1);

	/* 4. A listener killed with -9 leaves its socket; the next publish
	 * removes it. */
	pid = fork();
	if (pid == 0) {
		struct ma_core *c3 = fake_core(state);
		char *e2 = NULL;
		if (ma_changebus_ipc_listen(c3, &e2) < 0)
			_exit(1);
		pause();
		_exit(0);
	}
	char dead[256];
	snprintf(dead, sizeof(dead), "%s/bus/%ld.sock", state, (long)pid);
	struct stat st;
	for (int i = 0; i < 100 && stat(dead, &st) < 0; i++)
		usleep(10000);
	CHECK(stat(dead, &st) == 0);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	ma_changebus_publish(core, "alice@example.com", "INBOX");
	CHECK(stat(dead, &st) < 0 && errno == ENOENT);
	run_for(0.2);

	ma_changebus_unsubscribe(&sub);
	fake_core_free(core);
	CHECK(stat(path, &st) < 0);	/* our own socket removed at close */
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", state);
	(void)system(cmd);
	if (failures == 0)
		printf("changebus-ipc: all checks passed\n");
	return failures != 0;
}
