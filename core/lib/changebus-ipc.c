/*
 * changebus-ipc.c - the change bus between processes.
 *
 * Each process that serves sessions (mailaccessd) binds a UNIX datagram
 * socket <state_dir>/bus/<pid>.sock and feeds what arrives there into its
 * local change bus. Every publisher (a daemon after a write, or
 * `mailaccessctl deliver`, which has no loop of its own) sends the
 * (user, mailbox) event to every other socket in that directory, straight
 * from the publish call, so the event leaves even if the publisher exits
 * right after. A socket nobody listens on any more (a process killed with
 * -9) answers ECONNREFUSED and is removed.
 *
 * Why datagrams in a directory and not a hub process: no process has to be
 * up for delivery to work, a dead process costs one failed sendto, and
 * the master/worker model (issue 5) needs nothing new: each worker binds
 * its own socket, and the master removes a dead worker's file at once
 * (ma_changebus_ipc_forget), so publishers do not even pay the failed
 * sendto. Loss is tolerable by design: an event only says "look
 * again"; a full receive queue drops it (logged), and clients still see the
 * change at their next command.
 *
 * Wire format: "MA1" NUL user NUL mailbox NUL, at most MA_BUS_MSG_MAX bytes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>

#include "core-private.h"

#define MA_BUS_MAGIC "MA1"
#define MA_BUS_MSG_MAX 1400	/* user (255) + mailbox (1000) + framing */
#define MA_BUS_PEERS_MAX 1024	/* sockets looked at per publish */

struct ma_bus_ipc {
	struct ma_core *core;
	int fd;			/* our bound socket, -1 if not listening */
	ev_io io;
	char *path;		/* our socket file */
	unsigned long dropped;	/* malformed datagrams, for the log */
};

static pthread_mutex_t bus_send_lock = PTHREAD_MUTEX_INITIALIZER;
static int bus_send_fd = -1;

static char *bus_dir(const struct ma_core *core)
{
	const char *state = core->state_dir != NULL ? core->state_dir : ".";
	size_t n = strlen(state) + sizeof("/bus");
	char *d = ma_malloc0(n);
	snprintf(d, n, "%s/bus", state);
	return d;
}

static void bus_recv_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct ma_bus_ipc *ipc = w->data;
	char msg[MA_BUS_MSG_MAX + 1];

	(void)loop;
	(void)revents;
	/* Bounded per turn so a flood cannot starve the sessions. */
	for (int i = 0; i < 256; i++) {
		ssize_t n = recv(ipc->fd, msg, MA_BUS_MSG_MAX, MSG_DONTWAIT);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				ma_warning("change bus: recv: %s", strerror(errno));
			return;
		}
		msg[n] = '\0';
		/* magic NUL user NUL mailbox NUL */
		const char *user = msg + sizeof(MA_BUS_MAGIC);
		if ((size_t)n < sizeof(MA_BUS_MAGIC) + 4 ||
		    memcmp(msg, MA_BUS_MAGIC, sizeof(MA_BUS_MAGIC)) != 0 ||
		    msg[n - 1] != '\0') {
			ipc->dropped++;
			continue;
		}
		size_t ulen = strnlen(user, (size_t)(msg + n - user));
		const char *mailbox = user + ulen + 1;
		if (ulen == 0 || mailbox >= msg + n || *mailbox == '\0' ||
		    mailbox + strlen(mailbox) + 1 != msg + n) {
			ipc->dropped++;
			continue;
		}
		ma_changebus_publish_local(ipc->core, user, mailbox);
	}
}

int ma_changebus_ipc_listen(struct ma_core *core, char **error_r)
{
	struct ma_bus_ipc *ipc;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char *dir = bus_dir(core);

	if (core->bus_ipc != NULL) {
		free(dir);
		return 0;
	}
	if (mkdir(dir, 0770) < 0 && errno != EEXIST) {
		int e = errno;
		/* state_dir itself may be missing on a first run. */
		if (e == ENOENT && core->state_dir != NULL &&
		    mkdir(core->state_dir, 0755) == 0 && mkdir(dir, 0770) == 0) {
			/* created both */
		} else {
			char buf[512];
			snprintf(buf, sizeof(buf), "change bus: mkdir %s: %s", dir,
				 strerror(e));
			*error_r = ma_strdup(buf);
			free(dir);
			return -1;
		}
	}
	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%ld.sock",
			     dir, (long)getpid()) >= sizeof(sun.sun_path)) {
		char buf[512];
		snprintf(buf, sizeof(buf), "change bus: socket path under %s is too long", dir);
		*error_r = ma_strdup(buf);
		free(dir);
		return -1;
	}
	free(dir);

	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*error_r = ma_strdup("change bus: socket() failed");
		return -1;
	}
	/* A file left by an earlier process with our pid is stale. */
	(void)unlink(sun.sun_path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		char buf[512];
		snprintf(buf, sizeof(buf), "change bus: bind %s: %s", sun.sun_path,
			 strerror(errno));
		*error_r = ma_strdup(buf);
		close(fd);
		return -1;
	}
	/* Writers are this server's own processes (same user) and root. */
	(void)chmod(sun.sun_path, 0660);
	int rcv = 1 << 20;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));

	ipc = ma_malloc0(sizeof(*ipc));
	ipc->core = core;
	ipc->fd = fd;
	ipc->path = ma_strdup(sun.sun_path);
	ev_io_init(&ipc->io, bus_recv_cb, fd, EV_READ);
	ipc->io.data = ipc;
	ev_io_start(core->loop, &ipc->io);
	/* Listening alone must not keep the loop alive at shutdown. */
	ev_unref(core->loop);
	core->bus_ipc = ipc;
	ma_debug("change bus: listening on %s", ipc->path);
	return 0;
}

void ma_changebus_ipc_close(struct ma_core *core)
{
	struct ma_bus_ipc *ipc = core->bus_ipc;

	if (ipc == NULL)
		return;
	core->bus_ipc = NULL;
	ev_ref(core->loop);
	ev_io_stop(core->loop, &ipc->io);
	close(ipc->fd);
	(void)unlink(ipc->path);
	if (ipc->dropped > 0)
		ma_info("change bus: %lu malformed datagrams ignored", ipc->dropped);
	free(ipc->path);
	free(ipc);
}

void ma_changebus_ipc_send(struct ma_core *core, const char *user,
			   const char *mailbox)
{
	char msg[MA_BUS_MSG_MAX];
	size_t ulen = strlen(user), mlen = strlen(mailbox);
	size_t len = sizeof(MA_BUS_MAGIC) + ulen + 1 + mlen + 1;

	if (core == NULL || len > sizeof(msg))
		return;
	memcpy(msg, MA_BUS_MAGIC, sizeof(MA_BUS_MAGIC));
	memcpy(msg + sizeof(MA_BUS_MAGIC), user, ulen + 1);
	memcpy(msg + sizeof(MA_BUS_MAGIC) + ulen + 1, mailbox, mlen + 1);

	char *dir = bus_dir(core);
	DIR *d = opendir(dir);
	if (d == NULL) {
		free(dir);	/* nobody listens yet: nothing to do */
		return;
	}
	const char *own = core->bus_ipc != NULL ? strrchr(core->bus_ipc->path, '/') + 1 : NULL;

	pthread_mutex_lock(&bus_send_lock);
	if (bus_send_fd < 0)
		bus_send_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct dirent *de;
	unsigned seen = 0;
	while (bus_send_fd >= 0 && (de = readdir(d)) != NULL && seen < MA_BUS_PEERS_MAX) {
		size_t nl = strlen(de->d_name);
		if (nl < 6 || strcmp(de->d_name + nl - 5, ".sock") != 0)
			continue;
		if (own != NULL && strcmp(de->d_name, own) == 0)
			continue;
		seen++;
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s", dir,
				     de->d_name) >= sizeof(sun.sun_path))
			continue;
		if (sendto(bus_send_fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL,
			   (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			if (errno == ECONNREFUSED) {
				/* Its process is gone (kill -9): clean up. */
				(void)unlink(sun.sun_path);
			} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
				ma_debug("change bus: %s is busy; event for %s dropped",
					 de->d_name, user);
			}
		}
	}
	pthread_mutex_unlock(&bus_send_lock);
	closedir(d);
	free(dir);
}

void ma_changebus_ipc_forget(struct ma_core *core, pid_t pid)
{
	char *dir = bus_dir(core);
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];

	if ((size_t)snprintf(path, sizeof(path), "%s/%ld.sock", dir,
			     (long)pid) < sizeof(path))
		(void)unlink(path);
	free(dir);
}
