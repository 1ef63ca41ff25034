/*
 * master.c - the master process (`workers` >= 1; docs/processes.md).
 *
 * The master keeps root (when started as root) for three jobs only: read
 * the config, bind the listeners, start and supervise the children. It
 * serves no connection and starts no thread (so fork() is safe: the auth
 * thread pool is made lazily by whoever uses it). Its children:
 *
 * - the auth process ("ma-auth", stays root for PAM/shadow): serves the
 *   socket ma_authd_listen() bound; restarted when it dies. If the auth
 *   process cannot be set up, workers check passwords in-process.
 * - N workers ("ma-worker"): drop privileges, inherit the listening
 *   sockets and all accept on them, each one libev loop for every
 *   protocol. A worker that dies is restarted (with a growing delay if it
 *   dies right after start, so a crash loop does not spin); sessions on
 *   the other workers go on.
 *
 * A generation is one config: its core, its workers and auth process.
 * SIGHUP builds a new generation from the file (the old one goes on if
 * the file is bad), reusing the bound sockets whose address did not
 * change, forks new children, then tells the old workers to drain
 * (SIGUSR2: they close their listeners at once and exit when their last
 * session ends; old sessions are never dropped) and the old auth process
 * to stop. Children of old generations are not restarted.
 *
 * SIGTERM/SIGINT: SIGTERM to every worker (each ends its sessions
 * politely, bounded), then to the auth process; after MAD_KILL_SECS the
 * rest gets SIGKILL. Children have PR_SET_PDEATHSIG(SIGTERM): a worker
 * whose master died closes its listeners at once and ends politely.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

#include "authd-private.h"	/* AUTHD_SOCKET_NAME */
#include "ma-build-config.h"
#include "mailaccessd.h"

/* After SIGTERM: children still alive this long are killed. Workers
 * bound their own drain by MAD_SHUTDOWN_SECS. */
#define MAD_KILL_SECS (MAD_SHUTDOWN_SECS + 3.0)
/* A child that dies sooner than this after its start counts as a crash
 * loop: the next start waits MAD_BACKOFF_MIN, doubling up to _MAX. */
#define MAD_FAST_DEATH_SECS 1.0
#define MAD_BACKOFF_MIN 0.1
#define MAD_BACKOFF_MAX 5.0

enum mad_role { MAD_ROLE_WORKER, MAD_ROLE_AUTH };

struct mad_master;
struct mad_gen;

struct mad_slot {
	struct mad_master *m;
	struct mad_gen *gen;
	enum mad_role role;
	unsigned index;		/* worker number within the generation */
	pid_t pid;		/* 0: not running */
	double started;
	unsigned fast_deaths;	/* in a row */
	ev_timer restart;
};

struct mad_gen {
	struct mad_gen *next;
	unsigned id;
	bool old;		/* draining: not restarted */
	unsigned n_workers;
	struct mad_slot *slots;	/* n_workers workers, then the auth process */
	unsigned n_slots;
};

struct mad_master {
	struct ma_core *core;		/* the current generation's; NULL after a
					 * reload that failed half-way */
	struct ma_net_socks *kept;	/* listening sockets without a core */
	const char *config_path;
	struct ev_loop *loop;
	struct mad_signals *sig;
	pid_t pid;
	bool detach;
	int *notify_fd;

	ev_child child;
	ev_timer kill_timer;
	struct mad_gen *gens;		/* newest first */
	unsigned next_gen;
	int auth_fd;			/* listening auth socket, -1: none */
	bool stopping;
};

static const char *mad_role_name(enum mad_role r)
{
	return r == MAD_ROLE_AUTH ? "auth process" : "worker";
}

/* "exited with status 3" / "exited on signal 9" */
static void mad_status_text(int status, char *buf, size_t size)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "exited on signal %d%s", WTERMSIG(status),
			 WCOREDUMP(status) ? " (core dumped)" : "");
	else
		snprintf(buf, size, "ended (status 0x%x)", (unsigned)status);
}

static unsigned mad_live_children(const struct mad_master *m, bool workers_only)
{
	unsigned n = 0;

	for (const struct mad_gen *g = m->gens; g != NULL; g = g->next) {
		for (unsigned i = 0; i < g->n_slots; i++) {
			if (g->slots[i].pid > 0 &&
			    (!workers_only || g->slots[i].role == MAD_ROLE_WORKER))
				n++;
		}
	}
	return n;
}

/* ---- in the child, right after fork() ---- */

/* Stops everything of the master's in this (child) process: its
 * watchers, the other generations' timers. The signal watchers stay
 * active; the role takes them over. */
static void mad_child_setup(struct mad_master *m, const char *comm,
			    const char *role)
{
	ev_loop_fork(m->loop);
	ev_child_stop(m->loop, &m->child);
	ev_timer_stop(m->loop, &m->kill_timer);
	for (struct mad_gen *g = m->gens; g != NULL; g = g->next) {
		for (unsigned i = 0; i < g->n_slots; i++)
			ev_timer_stop(m->loop, &g->slots[i].restart);
	}
	(void)prctl(PR_SET_NAME, comm, 0, 0, 0);
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
	/* The master may have died before PDEATHSIG was armed. */
	if (getppid() != m->pid)
		_exit(0);
	if (*m->notify_fd >= 0) {
		close(*m->notify_fd);
		*m->notify_fd = -1;
	}
	if (m->detach)
		mad_detach_stdio();
	mad_log_role(m->core, role);
	/* The master owns the UNIX socket files. */
	ma_net_disown_paths(m->core);
}

/* The auth process: SIGTERM ends ma_authd_run()'s loop (the auth code may
 * add its own watcher for a cleaner stop); HUP, INT (a ^C to the whole
 * group) and USR2 are the master's business. */
static void mad_auth_term_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)revents;
	ma_info("signal %d: auth process stopping", w->signum);
	ev_break(loop, EVBREAK_ALL);
}

static void mad_auth_ignore_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

static void __attribute__((noreturn)) mad_worker_main(struct mad_master *m)
{
	struct ma_core *core = m->core;
	char *err = NULL;
	int code;

	mad_child_setup(m, "ma-worker", "worker");
	if (m->auth_fd >= 0)
		close(m->auth_fd);
	if (mad_drop_privileges(core, &err) < 0) {
		ma_error("worker: %s", err);
		_exit(MAD_EX_CONFIG);
	}
	if (m->auth_fd >= 0 && ma_auth_use_authd(core, &err) < 0) {
		ma_warning("worker: auth process: %s; checking passwords in this process",
			   err != NULL ? err : "?");
		free(err);
		err = NULL;
	}
	if (ma_net_start(core, &err) < 0) {
		ma_error("worker: %s", err);
		_exit(1);
	}
	if (ma_changebus_ipc_listen(core, &err) < 0) {
		ma_warning("%s; IDLE sessions will not see changes made by other processes at once",
			   err);
		free(err);
		err = NULL;
	}
	ma_debug("worker started");
	code = mad_serve(core, m->sig, true);
	ma_changebus_ipc_close(core);
	ma_net_deinit(core);
	ma_core_destroy(&core);
	exit(code);
}

static void __attribute__((noreturn)) mad_auth_main(struct mad_master *m)
{
	mad_child_setup(m, "ma-auth", "auth");
	/* No listener here: they are the workers'. */
	ma_net_close_listeners(m->core);
	ev_set_cb(&m->sig->term, mad_auth_term_cb);
	ev_set_cb(&m->sig->intr, mad_auth_ignore_cb);
	ev_set_cb(&m->sig->hup, mad_auth_ignore_cb);
	ev_set_cb(&m->sig->usr2, mad_auth_ignore_cb);
	ma_debug("auth process started");
	_exit(ma_authd_run(m->core, m->auth_fd));
}

/* ---- starting and restarting ---- */

static void mad_restart_cb(struct ev_loop *loop, ev_timer *w, int revents);

static int mad_spawn(struct mad_slot *s)
{
	struct mad_master *m = s->m;
	pid_t pid;

	if (m->stopping || s->gen->old || m->core == NULL)
		return -1;
	pid = fork();
	if (pid < 0) {
		ma_error("cannot start %s %u: fork: %s; retrying in 1s",
			 mad_role_name(s->role), s->index, strerror(errno));
		ev_timer_set(&s->restart, 1.0, 0.);
		ev_timer_start(m->loop, &s->restart);
		return -1;
	}
	if (pid == 0) {
		if (s->role == MAD_ROLE_AUTH)
			mad_auth_main(m);
		mad_worker_main(m);
	}
	s->pid = pid;
	s->started = ev_time();
	ma_info("%s %ld started (generation %u%s)", mad_role_name(s->role),
		(long)pid, s->gen->id, s->role == MAD_ROLE_WORKER ? "" : ", root");
	return 0;
}

static void mad_restart_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mad_slot *s = w->data;

	(void)loop;
	(void)revents;
	if (s->pid == 0)
		(void)mad_spawn(s);
}

static void mad_gen_free(struct mad_master *m, struct mad_gen *g)
{
	for (struct mad_gen **pp = &m->gens; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	for (unsigned i = 0; i < g->n_slots; i++)
		ev_timer_stop(m->loop, &g->slots[i].restart);
	free(g->slots);
	free(g);
}

static struct mad_gen *mad_gen_new(struct mad_master *m, unsigned n_workers,
				   bool with_auth)
{
	struct mad_gen *g = ma_malloc0(sizeof(*g));

	g->id = ++m->next_gen;
	g->n_workers = n_workers;
	g->n_slots = n_workers + (with_auth ? 1 : 0);
	g->slots = ma_malloc0(sizeof(*g->slots) * g->n_slots);
	for (unsigned i = 0; i < g->n_slots; i++) {
		struct mad_slot *s = &g->slots[i];

		s->m = m;
		s->gen = g;
		s->role = i < n_workers ? MAD_ROLE_WORKER : MAD_ROLE_AUTH;
		s->index = i < n_workers ? i + 1 : 0;
		ev_timer_init(&s->restart, mad_restart_cb, 0., 0.);
		s->restart.data = s;
	}
	g->next = m->gens;
	m->gens = g;
	return g;
}

/* Forks the generation's children: the auth process first (workers
 * connect to it as they start). Returns how many workers run. */
static unsigned mad_gen_start(struct mad_master *m, struct mad_gen *g)
{
	unsigned n = 0;

	for (unsigned i = g->n_slots; i-- > 0;) {
		if (mad_spawn(&g->slots[i]) == 0 && g->slots[i].role == MAD_ROLE_WORKER)
			n++;
	}
	return n;
}

/* Sends sig to every running child of g (workers and/or auth). */
static void mad_gen_signal(struct mad_gen *g, int sig, bool workers, bool auth)
{
	for (unsigned i = 0; i < g->n_slots; i++) {
		struct mad_slot *s = &g->slots[i];

		if (s->pid <= 0)
			continue;
		if ((s->role == MAD_ROLE_WORKER && workers) ||
		    (s->role == MAD_ROLE_AUTH && auth))
			(void)kill(s->pid, sig);
	}
}

static void mad_maybe_done(struct mad_master *m)
{
	if (!m->stopping)
		return;
	if (mad_live_children(m, true) == 0) {
		/* Workers are gone: now the auth process. */
		for (struct mad_gen *g = m->gens; g != NULL; g = g->next)
			mad_gen_signal(g, SIGTERM, false, true);
	}
	if (mad_live_children(m, false) == 0)
		ev_break(m->loop, EVBREAK_ALL);
}

static void mad_child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	struct mad_master *m = w->data;
	struct mad_slot *s = NULL;
	char how[64];

	(void)loop;
	(void)revents;
	for (struct mad_gen *g = m->gens; g != NULL && s == NULL; g = g->next) {
		for (unsigned i = 0; i < g->n_slots; i++) {
			if (g->slots[i].pid == w->rpid) {
				s = &g->slots[i];
				break;
			}
		}
	}
	mad_status_text(w->rstatus, how, sizeof(how));
	if (s == NULL) {
		ma_debug("process %ld %s (not ours)", (long)w->rpid, how);
		return;
	}
	struct mad_gen *g = s->gen;
	double lived = ev_time() - s->started;

	s->pid = 0;
	/* Its change bus socket: nobody reads it any more (kill -9). */
	if (s->role == MAD_ROLE_WORKER && m->core != NULL)
		ma_changebus_ipc_forget(m->core, w->rpid);
	if (m->stopping || g->old) {
		ma_info("%s %ld (generation %u%s) %s", mad_role_name(s->role),
			(long)w->rpid, g->id, g->old ? ", old" : "", how);
		if (g->old && !m->stopping) {
			bool any = false;

			for (unsigned i = 0; i < g->n_slots; i++)
				any = any || g->slots[i].pid > 0;
			if (!any) {
				ma_info("generation %u finished", g->id);
				mad_gen_free(m, g);
			}
		}
		mad_maybe_done(m);
		return;
	}
	if (m->core == NULL) {
		ma_error("%s %ld %s; not restarted: no valid configuration is loaded (fix the file and send SIGHUP)",
			 mad_role_name(s->role), (long)w->rpid, how);
		return;
	}
	double delay = 0;

	if (lived < MAD_FAST_DEATH_SECS) {
		s->fast_deaths++;
		delay = MAD_BACKOFF_MIN;
		for (unsigned i = 1; i < s->fast_deaths && delay < MAD_BACKOFF_MAX; i++)
			delay *= 2;
		if (delay > MAD_BACKOFF_MAX)
			delay = MAD_BACKOFF_MAX;
	} else {
		s->fast_deaths = 0;
	}
	if (delay > 0)
		ma_error("%s %ld %s %.1fs after its start, restarting in %.2fs",
			 mad_role_name(s->role), (long)w->rpid, how, lived, delay);
	else if (WIFEXITED(w->rstatus) && WEXITSTATUS(w->rstatus) == 0)
		ma_notice("%s %ld %s, restarting", mad_role_name(s->role),
			  (long)w->rpid, how);
	else
		ma_error("%s %ld %s, restarting", mad_role_name(s->role),
			 (long)w->rpid, how);
	ev_timer_stop(m->loop, &s->restart);
	ev_timer_set(&s->restart, delay, 0.);
	ev_timer_start(m->loop, &s->restart);
}

/* ---- stopping ---- */

static void mad_kill_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mad_master *m = w->data;

	(void)loop;
	(void)revents;
	ma_notice("shutdown: %u children still running after %.0fs, killing them",
		  mad_live_children(m, false), MAD_KILL_SECS);
	for (struct mad_gen *g = m->gens; g != NULL; g = g->next)
		mad_gen_signal(g, SIGKILL, true, true);
}

static void mad_master_term_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct mad_master *m = w->data;

	(void)revents;
	if (m->stopping) {
		/* Second signal: no more waiting. */
		ma_notice("signal %d again: killing the children", w->signum);
		for (struct mad_gen *g = m->gens; g != NULL; g = g->next)
			mad_gen_signal(g, SIGKILL, true, true);
		return;
	}
	m->stopping = true;
	ma_info("signal %d: shutting down (%u workers)", w->signum,
		mad_live_children(m, true));
	for (struct mad_gen *g = m->gens; g != NULL; g = g->next) {
		for (unsigned i = 0; i < g->n_slots; i++)
			ev_timer_stop(loop, &g->slots[i].restart);
		mad_gen_signal(g, SIGTERM, true, false);
	}
	ev_timer_init(&m->kill_timer, mad_kill_timer_cb, MAD_KILL_SECS, 0.);
	m->kill_timer.data = m;
	ev_timer_start(loop, &m->kill_timer);
	mad_maybe_done(m);
}

static void mad_master_ignore_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	ma_debug("signal %d ignored by the master", w->signum);
}

/* ---- the auth process socket ---- */

/* Binds the auth socket for a new generation (the master keeps it across
 * auth process restarts). At a reload the old socket file is removed
 * first: the new generation's auth process then is the only one new
 * connections reach (old workers reconnect to it once the old one, which
 * keeps serving its open connections until it stops, is gone). Without a
 * socket, workers check passwords in-process. */
static void mad_auth_listen(struct mad_master *m, struct ma_core *core)
{
	char *err = NULL;
	uid_t uid;
	gid_t gid;

	if (m->auth_fd >= 0) {
		const char *state = ma_core_state_dir(core);
		char path[4096];
		struct stat st;

		close(m->auth_fd);
		m->auth_fd = -1;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s",
				     state != NULL ? state : ".",
				     AUTHD_SOCKET_NAME) < sizeof(path) &&
		    lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			(void)unlink(path);
	}
	if (mad_resolve_user(core, &uid, &gid, &err) < 0) {
		/* Reported again (fatally) by the workers. */
		free(err);
		err = NULL;
		uid = (uid_t)-1;
		gid = (gid_t)-1;
	}
	m->auth_fd = ma_authd_listen(core, uid, gid, &err);
	if (m->auth_fd < 0) {
		ma_warning("no auth process (%s): workers check passwords themselves",
			   err != NULL ? err : "?");
		free(err);
	}
}

/* ---- reload ---- */

/* Tries the new file in a forked child exactly as the reload will: a
 * full core (plugins, store), the listeners (inherited or bound: a port in
 * use is found here), the unused-key check. In a child because plugins
 * and the loader keep process-wide state that a second core in the master
 * would disturb. 0, or -1 with *error_r. */
#define MAD_CHECK_SECS 30
static int mad_check_config(struct mad_master *m, char **error_r)
{
	char buf[4096];
	size_t len = 0;
	int pfd[2], status = 0;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		*error_r = ma_strdup("cannot check the config: pipe failed");
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		*error_r = ma_strdup("cannot check the config: fork failed");
		return -1;
	}
	if (pid == 0) {
		struct ma_net_socks *socks;
		struct ma_core *core;
		char *err = NULL;
		int ok = 0;

		close(pfd[0]);
		/* Never runs the loop, but must not share the master's
		 * kernel state if it did. */
		ev_loop_fork(m->loop);
		(void)prctl(PR_SET_NAME, "ma-check", 0, 0, 0);
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		if (*m->notify_fd >= 0)
			close(*m->notify_fd);
		if (m->auth_fd >= 0)
			close(m->auth_fd);
		if (m->core != NULL) {
			mad_log_role(m->core, "check");
			ma_net_disown_paths(m->core);
			socks = ma_net_take_sockets(m->core);
			ma_net_deinit(m->core);
			ma_core_destroy(&m->core);
		} else {
			socks = m->kept;
		}
		core = ma_core_create(m->config_path, MA_CORE_PROTOCOLS, &err);
		if (core != NULL && ma_net_init_inherit(core, socks, &err) == 0 &&
		    ma_config_check_unused(ma_core_config(core), &err) == 0) {
			if (ma_net_workers(core) == 0)
				err = ma_strdup("workers = 0 (a single process) needs a restart, not a reload");
			else
				ok = 1;
		}
		if (!ok) {
			size_t n = strlen(err != NULL ? err : "?");
			ssize_t w = write(pfd[1], err != NULL ? err : "?",
					  n < sizeof(buf) - 1 ? n : sizeof(buf) - 1);
			(void)w;
		}
		/* Removes UNIX socket files this check bound (not inherited
		 * ones: those are the running generation's). */
		if (core != NULL)
			ma_net_deinit(core);
		_exit(ok ? 0 : 1);
	}
	close(pfd[1]);
	struct pollfd pf = { .fd = pfd[0], .events = POLLIN };
	double deadline = ev_time() + MAD_CHECK_SECS;
	for (;;) {
		int left = (int)((deadline - ev_time()) * 1000);
		int r = left > 0 ? poll(&pf, 1, left) : 0;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			(void)kill(pid, SIGKILL);
			break;
		}
		ssize_t n = read(pfd[0], buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len >= sizeof(buf) - 1)
			break;
	}
	buf[len] = '\0';
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (len > 0) {
		*error_r = ma_strdup(buf);
	} else {
		char how[64];

		mad_status_text(status, how, sizeof(how));
		if (asprintf(error_r, "the config check %s", how) < 0)
			ma_oom();
	}
	return -1;
}

static void mad_log_started(struct mad_master *m, struct mad_gen *g,
			    unsigned n, bool reload)
{
	char listening[1024];

	ma_net_describe(m->core, listening, sizeof(listening));
	if (reload)
		ma_info("configuration reloaded (generation %u): listening on %s, %u workers%s",
			g->id, listening[0] != '\0' ? listening : "nothing", n,
			m->auth_fd >= 0 ? " and an auth process" : "");
	else
		ma_info("mailaccessd %s started, listening on %s, %u workers%s",
			MA_VERSION, listening[0] != '\0' ? listening : "nothing", n,
			m->auth_fd >= 0 ? " and an auth process" : "");
}

static void mad_reload(struct mad_master *m)
{
	struct ma_core *core = NULL;
	struct mad_gen *g;
	char *err = NULL;

	ma_info("SIGHUP: reloading %s", m->config_path);
	if (mad_check_config(m, &err) < 0) {
		ma_error("SIGHUP: %s; keeping the running configuration", err);
		free(err);
		return;
	}
	/* The file is good. The old core goes first: plugins keep their
	 * settings in globals that a core's deinit clears. The running
	 * children are separate processes and go on meanwhile. */
	if (m->core != NULL) {
		m->kept = ma_net_take_sockets(m->core);
		ma_net_deinit(m->core);
		ma_core_destroy(&m->core);
	}
	core = ma_core_create(m->config_path, MA_CORE_PROTOCOLS, &err);
	if (core == NULL)
		goto fail;
	if (ma_net_init_inherit(core, m->kept, &err) < 0 ||
	    ma_config_check_unused(ma_core_config(core), &err) < 0)
		goto fail;
	ma_net_socks_free(&m->kept, core);
	m->core = core;
	mad_auth_listen(m, core);

	/* New children first, then the old ones drain: no moment without a
	 * worker accepting. */
	g = mad_gen_new(m, ma_net_workers(core), m->auth_fd >= 0);
	unsigned n = mad_gen_start(m, g);
	mad_log_started(m, g, n, true);
	for (struct mad_gen *o = g->next; o != NULL; o = o->next) {
		if (o->old)
			continue;
		o->old = true;
		for (unsigned i = 0; i < o->n_slots; i++)
			ev_timer_stop(m->loop, &o->slots[i].restart);
		mad_gen_signal(o, SIGUSR2, true, false);
		mad_gen_signal(o, SIGTERM, false, true);
		ma_info("generation %u: %u workers draining", o->id,
			mad_live_children(m, true) - n);
	}
	/* Generations with nobody left (all were dead) end here. */
	for (struct mad_gen *o = m->gens, *next; o != NULL; o = next) {
		bool any = false;

		next = o->next;
		for (unsigned i = 0; i < o->n_slots; i++)
			any = any || o->slots[i].pid > 0;
		if (o->old && !any)
			mad_gen_free(m, o);
	}
	return;
fail:
	ma_error("SIGHUP: %s; the old configuration is already released: its workers go on serving but are not restarted; fix the file and send SIGHUP again",
		 err != NULL ? err : "?");
	free(err);
	if (core != NULL) {
		ma_net_deinit(core);
		ma_core_destroy(&core);
	}
}

static void mad_master_hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct mad_master *m = w->data;

	(void)loop;
	(void)revents;
	if (m->stopping)
		return;
	mad_reload(m);
}

/* ---- the master's life ---- */

int mad_master_run(struct ma_core *core, struct mad_signals *sig,
		   const char *config_path, int *notify_fd, bool detach,
		   char **error_r)
{
	struct mad_master m;
	struct mad_gen *g;
	unsigned n;

	(void)error_r;
	memset(&m, 0, sizeof(m));
	m.core = core;
	m.config_path = config_path;
	m.loop = ma_core_loop(core);
	m.sig = sig;
	m.pid = getpid();
	m.detach = detach;
	m.notify_fd = notify_fd;
	m.auth_fd = -1;

	sig->term.data = sig->intr.data = sig->hup.data = sig->usr2.data = &m;
	ev_set_cb(&sig->term, mad_master_term_cb);
	ev_set_cb(&sig->intr, mad_master_term_cb);
	ev_set_cb(&sig->hup, mad_master_hup_cb);
	ev_set_cb(&sig->usr2, mad_master_ignore_cb);
	ev_child_init(&m.child, mad_child_cb, 0, 0);
	m.child.data = &m;
	ev_child_start(m.loop, &m.child);
	ev_timer_init(&m.kill_timer, mad_kill_timer_cb, MAD_KILL_SECS, 0.);
	m.kill_timer.data = &m;

	mad_auth_listen(&m, core);
	g = mad_gen_new(&m, ma_net_workers(core), m.auth_fd >= 0);
	n = mad_gen_start(&m, g);
	mad_log_started(&m, g, n, false);
	if (*notify_fd >= 0) {
		mad_notify(notify_fd, '+', NULL);
		mad_detach_stdio();
	}

	ev_run(m.loop, 0);

	ev_child_stop(m.loop, &m.child);
	ev_timer_stop(m.loop, &m.kill_timer);
	while (m.gens != NULL)
		mad_gen_free(&m, m.gens);
	ev_signal_stop(m.loop, &sig->term);
	ev_signal_stop(m.loop, &sig->intr);
	ev_signal_stop(m.loop, &sig->hup);
	ev_signal_stop(m.loop, &sig->usr2);
	if (m.auth_fd >= 0)
		close(m.auth_fd);
	ma_net_socks_free(&m.kept, NULL);
	if (m.core != NULL) {
		ma_net_deinit(m.core);
		ma_core_destroy(&m.core);
	}
	return 0;
}
