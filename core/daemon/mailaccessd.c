/*
 * mailaccessd.c - the server program: parse options, load the config and
 * plugins (ma_core_create), bind (ma_net_init), refuse unknown config keys,
 * drop privileges if `user`/`group` are set, accept, and run the loop.
 *
 *   mailaccessd [-c FILE] [-d] [-p PIDFILE] [-t]
 *
 * Foreground by default (systemd, containers); -d daemonizes. -t checks the
 * config (without binding) and exits 0, or 78 (EX_CONFIG) with the error.
 * Signals: SIGTERM/SIGINT stop (connections get their protocol's shutdown
 * line and a bounded flush), SIGHUP reloads TLS certificates, SIGPIPE is
 * ignored (writes use MSG_NOSIGNAL anyway).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "ma-build-config.h"
#include "net-private.h"

#define MAD_EX_CONFIG 78	/* sysexits.h EX_CONFIG */
/* How long SIGTERM waits for connections to flush and close. */
#define MAD_SHUTDOWN_SECS 5.0

struct mad_state {
	struct ma_core *core;
	ev_signal sigterm, sigint, sighup;
	ev_timer shutdown_timer;
	ev_timer shutdown_check;	/* polls the conn count while draining */
	bool stopping;
};

static void mad_usage(FILE *out)
{
	fprintf(out, "usage: mailaccessd [-c FILE] [-d] [-p PIDFILE] [-t]\n"
		"  -c FILE     config file (default $MAILACCESS_CONFIG or %s)\n"
		"  -d          run in the background\n"
		"  -p PIDFILE  write the process id there\n"
		"  -t          check the config and exit (0 ok, 78 error)\n",
		MA_CONFIG_FILE);
}

static void mad_stop_now(struct ev_loop *loop, struct mad_state *st)
{
	ev_timer_stop(loop, &st->shutdown_timer);
	ev_timer_stop(loop, &st->shutdown_check);
	ev_break(loop, EVBREAK_ALL);
}

static void mad_shutdown_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mad_state *st = w->data;

	(void)revents;
	ma_notice("shutdown: %u connections did not finish in time, closing",
		  ma_net_conn_count(st->core));
	mad_stop_now(loop, st);
}

static void mad_shutdown_check_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mad_state *st = w->data;

	(void)revents;
	if (ma_net_conn_count(st->core) == 0)
		mad_stop_now(loop, st);
}

static void mad_sigterm_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct mad_state *st = w->data;

	(void)revents;
	if (st->stopping) {
		/* Second signal: stop at once. */
		mad_stop_now(loop, st);
		return;
	}
	st->stopping = true;
	ma_info("signal %d: shutting down (%u connections)", w->signum,
		ma_net_conn_count(st->core));
	ma_net_shutdown(st->core);
	ev_timer_init(&st->shutdown_timer, mad_shutdown_timer_cb, MAD_SHUTDOWN_SECS, 0.);
	st->shutdown_timer.data = st;
	ev_timer_start(loop, &st->shutdown_timer);
	/* A timer, not an ev_check: the last conn may finish inside the
	 * prepare watcher, after which the loop would block in poll. */
	ev_timer_init(&st->shutdown_check, mad_shutdown_check_cb, 0., 0.05);
	st->shutdown_check.data = st;
	ev_timer_start(loop, &st->shutdown_check);
}

static void mad_sighup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct mad_state *st = w->data;
	char *err = NULL;

	(void)loop;
	(void)revents;
	if (ma_net_reload_tls(st->core, &err) < 0) {
		ma_error("SIGHUP: TLS reload failed, keeping the old certificates: %s",
			 err != NULL ? err : "?");
		free(err);
	}
}

/* Drops root for the configured user. Only when `user` is set: a daemon
 * started as an ordinary user (tests) just stays who it is. */
static int mad_drop_privileges(struct ma_core *core, char **error_r)
{
	const struct ma_config_section *root = ma_config_root(ma_core_config(core));
	const char *user = ma_config_get(root, "user", NULL);
	const char *group = ma_config_get(root, "group", NULL);
	struct passwd *pw;
	gid_t gid;

	if (user == NULL && group == NULL)
		return 0;
	if (user == NULL) {
		if (asprintf(error_r, "%s: group is set but user is not",
			     ma_config_where(root, "group")) < 0)
			ma_oom();
		return -1;
	}
	pw = getpwnam(user);
	if (pw == NULL) {
		if (asprintf(error_r, "%s: user: unknown user '%s'",
			     ma_config_where(root, "user"), user) < 0)
			ma_oom();
		return -1;
	}
	gid = pw->pw_gid;
	if (group != NULL) {
		struct group *gr = getgrnam(group);

		if (gr == NULL) {
			if (asprintf(error_r, "%s: group: unknown group '%s'",
				     ma_config_where(root, "group"), group) < 0)
				ma_oom();
			return -1;
		}
		gid = gr->gr_gid;
	}
	if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid && getgid() == gid)
		return 0;	/* already that user */
	if (initgroups(pw->pw_name, gid) < 0 || setgid(gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		if (asprintf(error_r, "cannot switch to user %s: %s", user,
			     strerror(errno)) < 0)
			ma_oom();
		return -1;
	}
	/* Paranoia: make sure root cannot be regained. */
	if (pw->pw_uid != 0 && (setuid(0) == 0 || getuid() != pw->pw_uid ||
				geteuid() != pw->pw_uid)) {
		if (asprintf(error_r, "privilege drop to %s did not stick", user) < 0)
			ma_oom();
		return -1;
	}
	ma_info("running as user %s (uid %u gid %u)", user, (unsigned)pw->pw_uid,
		(unsigned)gid);
	return 0;
}

static int mad_write_pidfile(const char *path)
{
	char buf[32];
	int fd, n;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n) {
		close(fd);
		return -1;
	}
	return close(fd);
}

/* -d: fork before anything starts threads (the auth pool). The parent
 * waits on a pipe for the child's "started" byte (or its error text) so
 * that a config error is still reported on the terminal with exit 78. */
static int mad_daemonize(int *notify_fd_r)
{
	int pfd[2];
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		char buf[2048];
		ssize_t n, total = 0;
		int status;

		close(pfd[1]);
		while ((n = read(pfd[0], buf + total, sizeof(buf) - 1 - (size_t)total)) > 0) {
			total += n;
			if ((size_t)total >= sizeof(buf) - 1)
				break;
		}
		buf[total] = '\0';
		if (total > 0 && buf[0] == '+')
			_exit(0);
		if (total > 1)
			fprintf(stderr, "%s", buf + 1);
		if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
			_exit(WEXITSTATUS(status) != 0 ? WEXITSTATUS(status) : 1);
		_exit(1);
	}
	close(pfd[0]);
	if (setsid() < 0)
		return -1;
	*notify_fd_r = pfd[1];
	return 0;
}

static void mad_notify(int *fd, char status, const char *msg)
{
	char buf[2048];
	int n;

	if (*fd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "%c%s", status, msg != NULL ? msg : "");
	if (n > (int)sizeof(buf) - 1)
		n = (int)sizeof(buf) - 1;
	if (write(*fd, buf, (size_t)n) < 0) {
		/* parent gone: nothing to tell */
	}
	close(*fd);
	*fd = -1;
}

static void mad_detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	(void)dup2(fd, STDIN_FILENO);
	(void)dup2(fd, STDOUT_FILENO);
	(void)dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
	(void)chdir("/");
}

int main(int argc, char **argv)
{
	const char *config_path = NULL, *pidfile = NULL;
	bool daemonize = false, test_only = false;
	struct mad_state st;
	struct ev_loop *loop;
	char *err = NULL, listening[1024];
	int opt, notify_fd = -1, exit_code = 0;

	while ((opt = getopt(argc, argv, "c:dp:th")) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'd': daemonize = true; break;
		case 'p': pidfile = optarg; break;
		case 't': test_only = true; break;
		case 'h': mad_usage(stdout); return 0;
		default: mad_usage(stderr); return 64;	/* EX_USAGE */
		}
	}
	if (optind != argc) {
		mad_usage(stderr);
		return 64;
	}
	if (config_path == NULL) {
		const char *env = getenv("MAILACCESS_CONFIG");
		config_path = env != NULL && *env != '\0' ? env : MA_CONFIG_FILE;
	}
	signal(SIGPIPE, SIG_IGN);
	if (daemonize && !test_only && mad_daemonize(&notify_fd) < 0) {
		fprintf(stderr, "mailaccessd: cannot daemonize: %s\n", strerror(errno));
		return 1;
	}

	memset(&st, 0, sizeof(st));
	st.core = ma_core_create(config_path,
				 MA_CORE_PROTOCOLS | (test_only ? MA_CORE_CHECK_ONLY : 0),
				 &err);
	if (st.core == NULL)
		goto config_error;
	/* Signal watchers before the sockets listen (ma_net_init): a SIGTERM
	 * that arrives as soon as the port answers must end the server politely, not by
	 * the default action. */
	loop = ma_core_loop(st.core);
	ev_signal_init(&st.sigterm, mad_sigterm_cb, SIGTERM);
	ev_signal_init(&st.sigint, mad_sigterm_cb, SIGINT);
	ev_signal_init(&st.sighup, mad_sighup_cb, SIGHUP);
	st.sigterm.data = st.sigint.data = st.sighup.data = &st;
	ev_signal_start(loop, &st.sigterm);
	ev_signal_start(loop, &st.sigint);
	ev_signal_start(loop, &st.sighup);
	if (ma_net_init(st.core, &err) < 0)
		goto config_error;
	if (ma_config_check_unused(ma_core_config(st.core), &err) < 0)
		goto config_error;
	if (test_only) {
		printf("%s: config ok\n", config_path);
		goto out;
	}
	/* Before dropping privileges: /run is root's. (Removing it at exit
	 * may then fail; a stale pid file is harmless, as with nginx.) */
	if (pidfile != NULL && mad_write_pidfile(pidfile) < 0)
		ma_warning("cannot write pid file %s: %s", pidfile, strerror(errno));
	if (mad_drop_privileges(st.core, &err) < 0)
		goto config_error;
	if (ma_net_start(st.core, &err) < 0) {
		exit_code = 1;
		goto fail_msg;
	}
	/* After the drop, so the socket belongs to the user that serves
	 * mail. Without it sessions still work; only wake-ups from other
	 * processes (mailaccessctl deliver) wait for the client's next
	 * command. */
	if (ma_changebus_ipc_listen(st.core, &err) < 0) {
		ma_warning("%s; IDLE sessions will not see changes made by other processes at once", err);
		free(err);
		err = NULL;
	}


	ma_net_describe(st.core, listening, sizeof(listening));
	ma_info("mailaccessd %s started, listening on %s", MA_VERSION,
		listening[0] != '\0' ? listening : "nothing");
	if (notify_fd >= 0) {
		mad_notify(&notify_fd, '+', NULL);
		mad_detach_stdio();
	}

	ev_run(loop, 0);

	ev_signal_stop(loop, &st.sigterm);
	ev_signal_stop(loop, &st.sigint);
	ev_signal_stop(loop, &st.sighup);
	ma_changebus_ipc_close(st.core);
	ma_info("mailaccessd stopped");
	if (pidfile != NULL)
		(void)unlink(pidfile);
	goto out;

config_error:
	exit_code = MAD_EX_CONFIG;
fail_msg:
	fprintf(stderr, "mailaccessd: %s\n", err != NULL ? err : "unknown error");
	if (notify_fd >= 0) {
		char *msg = NULL;

		if (asprintf(&msg, "mailaccessd: %s\n", err != NULL ? err : "unknown error") < 0)
			ma_oom();
		mad_notify(&notify_fd, '-', msg);
		free(msg);
	}
	free(err);
out:
	if (st.core != NULL) {
		ma_net_deinit(st.core);
		ma_core_destroy(&st.core);
	}
	return exit_code;
}
