/*
 * mailaccessd.c - the server program: parse options, load the config and
 * plugins (ma_core_create), bind (ma_net_init), refuse unknown config keys,
 * then either hand over to the master (master.c: `workers` >= 1, the
 * default) or, with `workers = 0`, serve in this one process (drop
 * privileges, accept, run the loop). Also owns the session loop that every
 * worker runs (mad_serve) and the helpers master.c shares.
 *
 *   mailaccessd [-c FILE] [-d] [-p PIDFILE] [-t]
 *
 * Foreground by default (systemd, containers); -d daemonizes. -t checks the
 * config (without binding) and exits 0, or 78 (EX_CONFIG) with the error.
 * Signals (processes: docs/processes.md): SIGTERM/SIGINT stop (connections
 * get their protocol's shutdown line and a bounded flush), SIGHUP reloads
 * (master: the whole config; single process: TLS certificates), SIGUSR2
 * drains a worker, SIGPIPE is ignored (writes use MSG_NOSIGNAL anyway).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>

#include "ma-build-config.h"
#include "mailaccessd.h"

struct mad_state {
	struct ma_core *core;
	ev_timer shutdown_timer;
	ev_timer shutdown_check;	/* polls the conn count while draining */
	bool worker;
	bool stopping;
	bool draining;			/* worker: SIGUSR2, listeners closed */
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
	if (ma_net_conn_count(st->core) == 0) {
		if (st->draining && !st->stopping)
			ma_info("drained: last session closed, exiting");
		mad_stop_now(loop, st);
	}
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
	/* Closes the listening sockets first: a master started again can
	 * bind at once (also when this is a worker whose master died). */
	ma_net_shutdown(st->core);
	ev_timer_stop(loop, &st->shutdown_timer);
	ev_timer_stop(loop, &st->shutdown_check);
	ev_timer_init(&st->shutdown_timer, mad_shutdown_timer_cb, MAD_SHUTDOWN_SECS, 0.);
	st->shutdown_timer.data = st;
	ev_timer_start(loop, &st->shutdown_timer);
	/* A timer, not an ev_check: the last conn may finish inside the
	 * prepare watcher, after which the loop would block in poll. */
	ev_timer_init(&st->shutdown_check, mad_shutdown_check_cb, 0., 0.05);
	st->shutdown_check.data = st;
	ev_timer_start(loop, &st->shutdown_check);
}

/* Worker, SIGUSR2 from the master after a reload: stop accepting at once,
 * serve the open sessions to their end, then exit. */
static void mad_sigusr2_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct mad_state *st = w->data;

	(void)revents;
	if (!st->worker || st->stopping || st->draining)
		return;
	st->draining = true;
	ma_net_close_listeners(st->core);
	ma_info("draining: listeners closed, %u sessions left",
		ma_net_conn_count(st->core));
	ev_timer_init(&st->shutdown_check, mad_shutdown_check_cb, 0., 0.5);
	st->shutdown_check.data = st;
	ev_timer_start(loop, &st->shutdown_check);
}

static void mad_sighup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct mad_state *st = w->data;
	char *err = NULL;

	(void)loop;
	(void)revents;
	if (st->worker) {
		ma_debug("SIGHUP ignored: the master reloads");
		return;
	}
	if (ma_net_reload_tls(st->core, &err) < 0) {
		ma_error("SIGHUP: TLS reload failed, keeping the old certificates: %s",
			 err != NULL ? err : "?");
		free(err);
	}
}

int mad_serve(struct ma_core *core, struct mad_signals *sig, bool worker)
{
	struct ev_loop *loop = ma_core_loop(core);
	struct mad_state st;

	memset(&st, 0, sizeof(st));
	st.core = core;
	st.worker = worker;
	ev_timer_init(&st.shutdown_timer, mad_shutdown_timer_cb, MAD_SHUTDOWN_SECS, 0.);
	ev_timer_init(&st.shutdown_check, mad_shutdown_check_cb, 0., 0.05);
	sig->term.data = sig->intr.data = sig->hup.data = sig->usr2.data = &st;
	ev_set_cb(&sig->term, mad_sigterm_cb);
	ev_set_cb(&sig->intr, mad_sigterm_cb);
	ev_set_cb(&sig->hup, mad_sighup_cb);
	ev_set_cb(&sig->usr2, mad_sigusr2_cb);
	ev_run(loop, 0);
	ev_timer_stop(loop, &st.shutdown_timer);
	ev_timer_stop(loop, &st.shutdown_check);
	sig->term.data = sig->intr.data = sig->hup.data = sig->usr2.data = NULL;
	return 0;
}

void mad_log_role(struct ma_core *core, const char *role)
{
	const struct ma_config_section *root = ma_config_root(ma_core_config(core));
	const char *dest = ma_config_get(root, "log", "stderr");
	int level = ma_log_level_parse(ma_config_get(root, "log_level", "info"));
	char ident[64];

	/* syslog adds [pid] itself; stderr lines carry it in the ident. */
	if (strcmp(dest, "syslog") == 0)
		snprintf(ident, sizeof(ident), "%s-%s",
			 program_invocation_short_name, role);
	else
		snprintf(ident, sizeof(ident), "%s-%s[%ld]",
			 program_invocation_short_name, role, (long)getpid());
	(void)ma_log_init(ident, dest, level < 0 ? MA_LOG_INFO : (enum ma_log_level)level);
}

int mad_resolve_user(struct ma_core *core, uid_t *uid_r, gid_t *gid_r,
		     char **error_r)
{
	const struct ma_config_section *root = ma_config_root(ma_core_config(core));
	const char *user = ma_config_get(root, "user", NULL);
	const char *group = ma_config_get(root, "group", NULL);
	struct passwd *pw;

	*uid_r = (uid_t)-1;
	*gid_r = (gid_t)-1;
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
	*uid_r = pw->pw_uid;
	*gid_r = pw->pw_gid;
	if (group != NULL) {
		struct group *gr = getgrnam(group);

		if (gr == NULL) {
			if (asprintf(error_r, "%s: group: unknown group '%s'",
				     ma_config_where(root, "group"), group) < 0)
				ma_oom();
			return -1;
		}
		*gid_r = gr->gr_gid;
	}
	return 0;
}

/* Drops root for the configured user. Only when `user` is set: a daemon
 * started as an ordinary user (tests) just stays who it is. */
int mad_drop_privileges(struct ma_core *core, char **error_r)
{
	const struct ma_config_section *root = ma_config_root(ma_core_config(core));
	const char *user = ma_config_get(root, "user", NULL);
	uid_t uid;
	gid_t gid;

	if (mad_resolve_user(core, &uid, &gid, error_r) < 0)
		return -1;
	if (uid == (uid_t)-1) {
		if (geteuid() == 0)
			ma_warning("serving mail as root: set `user` (and `group`) "
				   "in the config to run the workers unprivileged");
		return 0;
	}
	if (getuid() == uid && geteuid() == uid && getgid() == gid)
		return 0;	/* already that user */
	/* While still root: empty the capability bounding set, so nothing
	 * this process later executes (a setuid or file-capability program)
	 * can get a capability back. Stops at the first cap this kernel does
	 * not know (EINVAL). */
	if (uid != 0 && geteuid() == 0) {
		for (int cap = 0; cap < 64; cap++) {
			if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
				break;
		}
	}
	if (initgroups(user, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		if (asprintf(error_r, "cannot switch to user %s: %s", user,
			     strerror(errno)) < 0)
			ma_oom();
		return -1;
	}
	/* Paranoia: make sure root cannot be regained. */
	if (uid != 0 && (setuid(0) == 0 || getuid() != uid || geteuid() != uid)) {
		if (asprintf(error_r, "privilege drop to %s did not stick", user) < 0)
			ma_oom();
		return -1;
	}
	/* and no exec can raise privileges again (setuid bits ignored) */
	(void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	ma_info("running as user %s (uid %u gid %u)", user, (unsigned)uid,
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

void mad_notify(int *fd, char status, const char *msg)
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

void mad_detach_stdio(void)
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

static void mad_early_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	int *pending = w->data;

	(void)loop;
	(void)revents;
	/* Before a role took the watchers over: remember a stop request. */
	if (w->signum == SIGTERM || w->signum == SIGINT)
		*pending = w->signum;
}

/* workers = 0: everything in this process (the debug/valgrind mode). */
static int mad_single(struct ma_core *core, struct mad_signals *sig,
		      int early_stop, int *notify_fd, char **error_r)
{
	char listening[1024];

	if (mad_drop_privileges(core, error_r) < 0)
		return MAD_EX_CONFIG;
	if (ma_net_start(core, error_r) < 0)
		return 1;
	/* After the drop, so the socket belongs to the user that serves
	 * mail. Without it sessions still work; only wake-ups from other
	 * processes (mailaccessctl deliver) wait for the client's next
	 * command. */
	if (ma_changebus_ipc_listen(core, error_r) < 0) {
		ma_warning("%s; IDLE sessions will not see changes made by other processes at once",
			   *error_r);
		free(*error_r);
		*error_r = NULL;
	}
	ma_net_describe(core, listening, sizeof(listening));
	ma_info("mailaccessd %s started, listening on %s, single process (workers = 0)",
		MA_VERSION, listening[0] != '\0' ? listening : "nothing");
	if (*notify_fd >= 0) {
		mad_notify(notify_fd, '+', NULL);
		mad_detach_stdio();
	}
	if (early_stop != 0)
		ev_feed_signal_event(ma_core_loop(core), early_stop);
	mad_serve(core, sig, false);
	ma_changebus_ipc_close(core);
	return 0;
}

int main(int argc, char **argv)
{
	const char *config_path = NULL, *pidfile = NULL;
	bool daemonize = false, test_only = false;
	struct ma_core *core = NULL;
	struct mad_signals sig;
	struct ev_loop *loop;
	char *err = NULL;
	int opt, notify_fd = -1, exit_code = 0, early_stop = 0;

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

	memset(&sig, 0, sizeof(sig));
	core = ma_core_create(config_path,
			      MA_CORE_PROTOCOLS | (test_only ? MA_CORE_CHECK_ONLY : 0),
			      &err);
	if (core == NULL)
		goto config_error;
	/* Signal watchers before the sockets listen (ma_net_init): a SIGTERM
	 * that arrives as soon as the port answers must end the server
	 * politely, not by the default action. They stay active from here on
	 * (see struct mad_signals). */
	loop = ma_core_loop(core);
	ev_signal_init(&sig.term, mad_early_signal_cb, SIGTERM);
	ev_signal_init(&sig.intr, mad_early_signal_cb, SIGINT);
	ev_signal_init(&sig.hup, mad_early_signal_cb, SIGHUP);
	ev_signal_init(&sig.usr2, mad_early_signal_cb, SIGUSR2);
	sig.term.data = sig.intr.data = sig.hup.data = sig.usr2.data = &early_stop;
	ev_signal_start(loop, &sig.term);
	ev_signal_start(loop, &sig.intr);
	ev_signal_start(loop, &sig.hup);
	ev_signal_start(loop, &sig.usr2);
	if (ma_net_init(core, &err) < 0)
		goto config_error;
	if (ma_config_check_unused(ma_core_config(core), &err) < 0)
		goto config_error;
	if (test_only) {
		printf("%s: config ok\n", config_path);
		goto out;
	}
	/* Before dropping privileges: /run is root's. (Removing it at exit
	 * may then fail; a stale pid file is harmless, as with nginx.) */
	if (pidfile != NULL && mad_write_pidfile(pidfile) < 0)
		ma_warning("cannot write pid file %s: %s", pidfile, strerror(errno));
	if (ma_net_workers(core) == 0) {
		exit_code = mad_single(core, &sig, early_stop, &notify_fd, &err);
	} else {
		/* The master may replace the core at a reload. */
		exit_code = mad_master_run(core, &sig, config_path, &notify_fd,
					   daemonize, &err);
		core = NULL;	/* the master destroyed it (or its successor) */
	}
	if (exit_code != 0)
		goto fail_msg;
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
	err = NULL;
out:
	if (core != NULL) {
		loop = ma_core_loop(core);
		ev_signal_stop(loop, &sig.term);
		ev_signal_stop(loop, &sig.intr);
		ev_signal_stop(loop, &sig.hup);
		ev_signal_stop(loop, &sig.usr2);
		ma_net_deinit(core);
		ma_core_destroy(&core);
	}
	return exit_code;
}
