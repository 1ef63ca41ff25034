/*
 * auth.h - authentication: the core's SASL framework (for protocols) and
 * the auth source plugin ABI (for auth-passwd, auth-pam, ...).
 *
 * Checks are asynchronous: the core runs a source's verify() on its auth
 * thread pool and calls the protocol back on the loop, so a slow PAM stack
 * never stalls other sessions. After a failure the core adds a growing delay
 * (per remote IP and per user) before the callback, and refuses for a while
 * after too many failures (MA_AUTH_DELAYED). Passwords are wiped from memory
 * as soon as the check is done.
 */
#ifndef MAILACCESS_AUTH_H
#define MAILACCESS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ma_conn;
struct ma_core;

enum ma_auth_status {
	MA_AUTH_OK = 0,
	MA_AUTH_FAIL,		/* wrong user or password */
	MA_AUTH_UNKNOWN_USER,	/* (source level only) user not in this source: try the next */
	MA_AUTH_TEMPFAIL,	/* source unavailable: client may retry */
	MA_AUTH_DELAYED,	/* too many failures: temporarily refused */
};

#define MA_AUTH_USER_MAX 256	/* max bytes of a user name incl. NUL */

/* ---------- protocol side ---------- */

/* status, and on MA_AUTH_OK the canonical user name (valid during the
 * callback; copy it). Never called after the conn closed. */
typedef void ma_auth_callback(struct ma_conn *conn, enum ma_auth_status status,
			      const char *user, void *ctx);

/* Verify user + password (USER/PASS, LOGIN). Copies what it needs; the
 * caller may wipe its copies after return. Exactly one callback follows,
 * from the loop, never from inside this call. */
void ma_auth_verify(struct ma_conn *conn, const char *user,
		    const char *password, ma_auth_callback *cb, void *ctx);

/* Does the user exist (delivery: LMTP RCPT)? Runs the sources' lookup()
 * on the auth thread pool, like ma_auth_verify() but without a password
 * and without failure delays (an unknown recipient is not an attack on a
 * password). cb gets MA_AUTH_OK with the canonical name, MA_AUTH_FAIL for
 * an unknown user, or MA_AUTH_TEMPFAIL. Exactly one callback, from the
 * loop, never from inside this call, never after the conn closed. */
void ma_auth_lookup(struct ma_conn *conn, const char *user,
		    ma_auth_callback *cb, void *ctx);

/* SASL (RFC 4422) for AUTH/AUTHENTICATE. Mechanisms: PLAIN (RFC 4616) and
 * LOGIN. Offered only when ma_conn_plaintext_auth_allowed(). */
struct ma_sasl;

/* Space-separated mechanism names allowed on this conn now ("PLAIN LOGIN"),
 * "" if none. Static string. */
const char *ma_sasl_mechanisms(const struct ma_conn *conn);

enum ma_sasl_result {
	MA_SASL_CHALLENGE,	/* send *out_r (base64, may be "") as a continuation */
	MA_SASL_PENDING,	/* credentials complete; callback will follow */
	MA_SASL_ERROR,		/* bad mechanism or malformed data; *out_r = reason */
	MA_SASL_CANCELLED,	/* client sent "*" */
};

/* Starts an exchange. initial: the initial response (base64; "=" means an
 * empty one) or NULL if none was sent. The sasl object lives in the conn
 * arena and is finished when the callback runs, on ERROR or CANCELLED.
 * `out_r` strings live until the next call. */
enum ma_sasl_result ma_sasl_begin(struct ma_conn *conn, const char *mech,
				  const char *initial, ma_auth_callback *cb,
				  void *ctx, struct ma_sasl **sasl_r,
				  const char **out_r);
/* Feeds one client line (base64, without CRLF). */
enum ma_sasl_result ma_sasl_continue(struct ma_sasl *sasl, const char *line,
				     size_t len, const char **out_r);

/* ---------- auth source plugins (kind MA_PLUGIN_AUTH) ---------- */

/* Every op except the admin ones is called on an auth thread: it may block
 * but must be thread-safe with itself. ctx is the plugin's init() ctx. */
struct ma_auth_ops {
	uint32_t struct_size;	/* sizeof(struct ma_auth_ops) */
	/* Check a password. On MA_AUTH_OK write the canonical user name into
	 * user_r (size MA_AUTH_USER_MAX). MA_AUTH_UNKNOWN_USER lets the next
	 * source try. */
	enum ma_auth_status (*verify)(void *ctx, const char *user,
				      const char *password, char *user_r);
	/* Does the user exist (delivery)? Same statuses, no password. */
	enum ma_auth_status (*lookup)(void *ctx, const char *user, char *user_r);

	/* Admin ops for `mailaccessctl user ...`, NULL if the source is
	 * read-only (PAM). Called from mailaccessctl, not the daemon.
	 * Return 0 or -1 with *error_r (static or malloc'd, leaked). */
	int (*user_add)(void *ctx, const char *user, const char *password,
			const char **error_r);
	int (*user_del)(void *ctx, const char *user, const char **error_r);
	int (*user_passwd)(void *ctx, const char *user, const char *password,
			   const char **error_r);
	/* Calls fn for each user, in order. */
	int (*user_list)(void *ctx, void (*fn)(const char *user, void *fctx),
			 void *fctx, const char **error_r);
};

/* Synchronous check through all configured sources in order, for
 * mailaccessctl and tests (blocks). */
enum ma_auth_status ma_auth_verify_sync(struct ma_core *core, const char *user,
					const char *password, char *user_r);
enum ma_auth_status ma_auth_lookup_sync(struct ma_core *core, const char *user,
					char *user_r);

#endif
