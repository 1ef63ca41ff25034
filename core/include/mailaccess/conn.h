/*
 * conn.h - connections as protocol plugins see them.
 *
 * The core accepts, reads into a bounded input buffer, runs TLS, writes
 * from a bounded output buffer (corked, flushed once per loop turn), and
 * times out idle clients. A protocol plugin supplies struct
 * ma_protocol_ops and works only through the functions below.
 *
 * Loop rules: every callback and every function here runs on the loop
 * thread of the connection. Nothing here blocks.
 *
 * Lifetime: after ma_conn_close() the core flushes what output it can,
 * calls on_close() once, and frees the connection; the plugin must not
 * touch the conn after on_close() returns. Async operations the core runs
 * for a conn (auth) are cancelled when it closes: their callbacks never
 * fire for a closed conn.
 */
#ifndef MAILACCESS_CONN_H
#define MAILACCESS_CONN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ma_conn;
struct ma_core;
struct ma_arena;
struct ma_config_section;

enum ma_close_reason {
	MA_CLOSE_NORMAL = 0,	/* plugin called ma_conn_close() */
	MA_CLOSE_EOF,		/* client closed */
	MA_CLOSE_ERROR,		/* read/write error */
	MA_CLOSE_TLS_ERROR,	/* handshake or record error */
	MA_CLOSE_TIMEOUT,	/* idle timeout */
	MA_CLOSE_SHUTDOWN,	/* server stopping */
	MA_CLOSE_LIMIT,		/* a limit tripped (input overflow, ...) */
};

struct ma_protocol_ops {
	uint32_t struct_size;	/* sizeof(struct ma_protocol_ops) */
	/* A new connection (after the TLS handshake on implicit-TLS
	 * listeners). Send the greeting. Return -1 to refuse (conn closed). */
	int (*on_connect)(struct ma_conn *conn);
	/* New bytes are in the input buffer (ma_conn_input()). Consume what
	 * you handled. Called again after ma_conn_resume_input() if bytes
	 * remain. Not called while input is paused. */
	void (*on_input)(struct ma_conn *conn);
	/* Output dropped below the low-water mark after having been over the
	 * high-water mark (or ma_conn_want_drain() was called): continue a
	 * parked streaming reply. NULL allowed. */
	void (*on_output_drained)(struct ma_conn *conn);
	/* STARTTLS handshake finished (ma_conn_starttls()). NULL allowed. */
	void (*on_tls_ready)(struct ma_conn *conn);
	/* Idle timeout: return the final line to send (e.g. "* BYE ...")
	 * or NULL for none. NULL allowed. */
	const char *(*on_timeout)(struct ma_conn *conn);
	/* Server shutting down: return a final line or NULL. NULL allowed. */
	const char *(*on_shutdown)(struct ma_conn *conn);
	/* The conn is going away: free per-session state. */
	void (*on_close)(struct ma_conn *conn, enum ma_close_reason reason);
	/* Names the protocol in logs ("pop3"). */
	const char *name;
};

/* --- input --- */
/* The unconsumed input bytes. Not NUL-terminated. */
const unsigned char *ma_conn_input(struct ma_conn *conn, size_t *len_r);
void ma_conn_input_consume(struct ma_conn *conn, size_t n);
/* Stop calling on_input (waiting for auth, for output to drain, ...). */
void ma_conn_pause_input(struct ma_conn *conn);
/* Resume; if buffered input remains, on_input runs on the next loop turn. */
void ma_conn_resume_input(struct ma_conn *conn);
/* Discard all buffered input (after STARTTLS, after a fatal parse error). */
void ma_conn_input_clear(struct ma_conn *conn);
/* Commands per second (limits.commands_per_second, default 200; a token
 * bucket per conn holding up to 5 x the rate, full at connect). Call it
 * once per complete command, from on_input, before running the command.
 * true: go ahead (one token taken). false: do NOT run the command and do
 * not consume its bytes; return from on_input. The core has paused input
 * (its own pause, independent of ma_conn_pause_input()), logged one line
 * for the session the first time, and calls on_input again when a token
 * is back (1/rate seconds later). Never true again before that on_input.
 * Always true when the limit is off (0). */
bool ma_conn_command_allowed(struct ma_conn *conn);

/* --- output --- */
/* Queue bytes. Returns -1 if the output buffer's hard limit would be
 * exceeded (the conn is then closed with MA_CLOSE_LIMIT); plugins that
 * stream large replies must check ma_conn_output_full() and park. */
int ma_conn_write(struct ma_conn *conn, const void *data, size_t len);
int ma_conn_printf(struct ma_conn *conn, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Bytes queued and not yet sent. */
size_t ma_conn_output_pending(const struct ma_conn *conn);
/* True when pending output is over the high-water mark: stop producing
 * and wait for on_output_drained(). */
bool ma_conn_output_full(const struct ma_conn *conn);
/* Ask for on_output_drained() when pending output falls below the
 * low-water mark (fires on the next turn if it already is). */
void ma_conn_want_drain(struct ma_conn *conn);

/* --- TLS --- */
bool ma_conn_is_tls(const struct ma_conn *conn);
/* True if the listener offers STARTTLS/STLS and TLS is not yet on. */
bool ma_conn_starttls_available(const struct ma_conn *conn);
/* Flushes pending output (the "OK begin TLS" reply), drops buffered input
 * (no pipelined commands survive the upgrade), then handshakes. Input is
 * paused until on_tls_ready(). -1 if TLS is unavailable. */
int ma_conn_starttls(struct ma_conn *conn);
/* SNI name the client sent, or NULL. */
const char *ma_conn_tls_sni(const struct ma_conn *conn);

/* True if a plaintext password may be sent on this conn now: TLS is on,
 * or the listener is loopback, or the admin allowed plaintext. */
bool ma_conn_plaintext_auth_allowed(const struct ma_conn *conn);

/* --- identity and state --- */
struct ma_core *ma_conn_core(const struct ma_conn *conn);
/* The protocol's config section (`pop3 { }`), or NULL. */
const struct ma_config_section *ma_conn_protocol_config(const struct ma_conn *conn);
/* Arena that lives as long as the connection. */
struct ma_arena *ma_conn_arena(struct ma_conn *conn);
/* Short unique session id for logs and client-visible error ids. */
const char *ma_conn_id(const struct ma_conn *conn);
/* "192.0.2.1" / "2001:db8::1" */
const char *ma_conn_remote_ip(const struct ma_conn *conn);
unsigned ma_conn_remote_port(const struct ma_conn *conn);
const char *ma_conn_local_ip(const struct ma_conn *conn);
unsigned ma_conn_local_port(const struct ma_conn *conn);
bool ma_conn_is_loopback(const struct ma_conn *conn);
const char *ma_conn_listener_name(const struct ma_conn *conn);

/* The protocol session's own state. */
void ma_conn_set_session(struct ma_conn *conn, void *session);
void *ma_conn_session(const struct ma_conn *conn);
/* Other plugins' per-conn data, by slot (ma_core_alloc_slot()). */
void ma_conn_ctx_set(struct ma_conn *conn, unsigned slot, void *data);
void *ma_conn_ctx_get(const struct ma_conn *conn, unsigned slot);

/* The authenticated user, for the session summary log line. */
void ma_conn_set_user(struct ma_conn *conn, const char *user);
const char *ma_conn_user(const struct ma_conn *conn);
/* A note for the summary line ("deleted=3"). Replaces the previous one. */
void ma_conn_set_summary(struct ma_conn *conn, const char *text);

/* Log with the session prefix "sid=... ip=... user=...". */
void ma_conn_log(struct ma_conn *conn, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Idle timeout for this conn from now on (seconds; 0 = the configured
 * limits.idle_timeout). Protocols whose RFC sets a different autologout
 * time after login use it (IMAP: at least 30 minutes, RFC 3501 5.4). */
void ma_conn_set_idle_timeout(struct ma_conn *conn, double seconds);

/* Close after flushing pending output (bounded time). Idempotent. */
void ma_conn_close(struct ma_conn *conn, const char *reason);

#endif
