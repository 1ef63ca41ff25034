/*
 * cmd-idle.c - IDLE (RFC 2177).
 *
 * "+ idling", then mailbox changes are pushed as they happen: the session
 * subscribes to the change bus for (user, selected mailbox) and reports
 * through imap_sync_report() at once (EXPUNGE is allowed during IDLE).
 * The client ends it with a "DONE" line; anything else is BAD.
 *
 * Keep-alive: clients stay in IDLE for up to ~29 minutes; the core's idle
 * timer (limits.idle_timeout, often 10m) counts output as activity, so we
 * send "* OK Still here" every keepalive interval and end the IDLE
 * ourselves after imap.idle_timeout (RFC 3501 5.4: at least 30 minutes).
 */
#include "imap-private.h"

#include <ev.h>
#include <stdlib.h>
#include <string.h>

#define IMAP_IDLE_KEEPALIVE_MAX 120.0	/* seconds between "* OK Still here" */

struct imap_idle {
	struct imap_session *s;
	struct ma_changebus_sub *sub;
	struct ev_loop *loop;
	ev_timer timer;
	bool timer_on;
	double started;
};

static void imap_idle_cleanup(void *ptr)
{
	struct imap_idle *idle = ptr;

	if (idle->timer_on) {
		ev_timer_stop(idle->loop, &idle->timer);
		idle->timer_on = false;
	}
	ma_changebus_unsubscribe(&idle->sub);
	idle->s->idling = false;
}

static void imap_idle_changed(const char *user, const char *mailbox, void *ctx)
{
	struct imap_idle *idle = ctx;
	struct imap_session *s = idle->s;

	(void)user;
	(void)mailbox;
	if (s->sel == NULL || !s->idling)
		return;
	s->sel->changed = true;
	imap_sync_report(s, true);
}

static void imap_idle_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct imap_idle *idle = w->data;
	struct imap_session *s = idle->s;

	(void)revents;
	if (ev_now(loop) - idle->started >= s->set->idle_timeout) {
		imap_session_close(s, "* BYE Autologout; idle for too long",
				   "idle timeout in IDLE");
		return;
	}
	imap_untagged(s, "OK Still here");
}

static void imap_idle_line(struct imap_cmd *cmd, const char *line, size_t len)
{
	imap_cmd_line_mode(cmd, NULL);
	if (line != NULL && ma_slice_ieq(line, len, "DONE"))
		imap_reply(cmd, "OK", NULL, "Idle completed.");
	else
		imap_reply(cmd, "BAD", NULL, "Expected DONE");
	imap_cmd_done(cmd->s);
}

/* The core's idle timeout: keep-alives must come more often. */
static double imap_idle_keepalive(const struct imap_session *s)
{
	const struct ma_config_section *limits = NULL;
	double core_idle = 600, ka;
	char *error = NULL;

	if (s->core != NULL && ma_core_config(s->core) != NULL)
		limits = ma_config_child(ma_config_root(ma_core_config(s->core)),
					 "limits");
	if (limits != NULL &&
	    ma_config_get_seconds(limits, "idle_timeout", 600, &core_idle,
				  &error) < 0) {
		free(error);
		core_idle = 600;
	}
	ka = core_idle / 2;
	if (ka > IMAP_IDLE_KEEPALIVE_MAX)
		ka = IMAP_IDLE_KEEPALIVE_MAX;
	if (ka > s->set->idle_timeout)
		ka = s->set->idle_timeout;
	return ka < 1 ? 1 : ka;
}

enum imap_cmd_result imap_cmd_idle(struct imap_cmd *cmd)
{
	struct imap_session *s = cmd->s;
	struct imap_idle *idle;
	double ka;

	if (cmd->n_args != 0) {
		imap_reply(cmd, "BAD", NULL, "IDLE takes no arguments");
		return IMAP_CMD_DONE;
	}
	idle = ma_arena_alloc(cmd->arena, sizeof(*idle));
	idle->s = s;
	idle->loop = ma_core_loop(s->core);
	idle->started = ev_now(idle->loop);
	ma_arena_cleanup_add(cmd->arena, imap_idle_cleanup, idle);

	if (ma_conn_write(s->conn, "+ idling\r\n", 10) < 0)
		return IMAP_CMD_WAIT;
	s->idling = true;
	if (s->sel != NULL && s->user_name != NULL) {
		idle->sub = ma_changebus_subscribe(s->core, s->user_name,
						   s->sel->name,
						   imap_idle_changed, idle);
		/* changes since the last command go out now */
		imap_sync_report(s, true);
	}
	ka = imap_idle_keepalive(s);
	ev_timer_init(&idle->timer, imap_idle_timer_cb, ka, ka);
	idle->timer.data = idle;
	ev_timer_start(idle->loop, &idle->timer);
	idle->timer_on = true;
	imap_cmd_line_mode(cmd, imap_idle_line);
	return IMAP_CMD_WAIT;
}
