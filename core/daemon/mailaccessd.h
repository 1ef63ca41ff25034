/*
 * mailaccessd.h - what the daemon's two files share: mailaccessd.c (options,
 * start-up, the session loop of the single process and of each worker) and
 * master.c (the master: children, restarts, reloads). See docs/processes.md.
 */
#ifndef MAILACCESSD_H
#define MAILACCESSD_H

#include <stdbool.h>
#include <sys/types.h>

#include <ev.h>

#include "net-private.h"

#define MAD_EX_CONFIG 78	/* sysexits.h EX_CONFIG */
/* How long SIGTERM waits for connections to flush and close. */
#define MAD_SHUTDOWN_SECS 5.0

/* The signal watchers, started in main() before anything listens (so an
 * early SIGTERM is never fatal) and kept active for the life of every
 * process: a role takes them over with ev_set_cb(), never by stopping
 * them (with signalfd a stop unblocks the signal: a gap where SIGTERM
 * would kill by default). The master forks with them active, so a child
 * owns the same watchers. */
struct mad_signals {
	ev_signal term, intr, hup, usr2;
};

/* Resolves `user`/`group`: uid (uid_t)-1 when `user` is unset. */
int mad_resolve_user(struct ma_core *core, uid_t *uid_r, gid_t *gid_r,
		     char **error_r);
/* Drops root for the configured user (nothing when `user` is unset). */
int mad_drop_privileges(struct ma_core *core, char **error_r);
/* -d: tell the waiting parent "+" (started) or "-msg"; closes *fd. */
void mad_notify(int *fd, char status, const char *msg);
void mad_detach_stdio(void);
/* Log lines of this process start with "mailaccessd-ROLE[PID]". */
void mad_log_role(struct ma_core *core, const char *role);

/* The session loop: runs core->loop until SIGTERM/SIGINT has ended every
 * session politely (bounded), or - worker only - until a drain (SIGUSR2:
 * listeners closed at once) has no sessions left. Single process: SIGHUP
 * reloads the TLS certificates. Returns the exit code. */
int mad_serve(struct ma_core *core, struct mad_signals *sig, bool worker);

/* The master (workers >= 1): forks the auth process and the workers and
 * supervises them until SIGTERM. Takes over core (destroys it, or the
 * generation that replaced it, before returning). Returns the exit code;
 * when it is not 0, *error_r says why the start failed. */
int mad_master_run(struct ma_core *core, struct mad_signals *sig,
		   const char *config_path, int *notify_fd, bool detach,
		   char **error_r);

#endif
