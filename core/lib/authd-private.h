/*
 * authd-private.h - what auth.c (worker side, in-process checks), authd.c
 * (the auth process) and anvil.c share: the wire protocol between workers
 * and the auth process, and the anvil (server-wide counts). Not installed;
 * never seen by plugins.
 *
 * Wire protocol (SOCK_SEQPACKET, one message per datagram, host byte
 * order: both ends are the same binary on the same host). Every message
 * starts with struct authd_hdr; each type has one fixed size and a message
 * of any other size is malformed. Strings are fixed arrays that must hold
 * a NUL. The auth process answers requests that carry an id with a
 * struct authd_reply of the same id; CONN_DEL and HELLO get no reply. A
 * malformed message (wrong version, unknown type, wrong size, missing NUL,
 * bad enum value) closes that client with a log line.
 */
#ifndef MA_AUTHD_PRIVATE_H
#define MA_AUTHD_PRIVATE_H

#include "core-private.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(hidden)

#define AUTHD_PROTO_VERSION 1
#define AUTHD_SOCKET_NAME "auth.sock"
/* Matches auth.c's limit (RFC 4616 asks for 255; passphrases get room). */
#define AUTHD_PASSWORD_MAX 1024
#define AUTHD_IP_MAX 64
#define AUTHD_SID_MAX 16
#define AUTHD_PROTO_NAME_MAX 16
#define AUTHD_SOURCE_MAX 32
/* Largest message either side accepts (recv buffer); bigger = malformed. */
#define AUTHD_MSG_MAX 2048

enum authd_type {
	AUTHD_HELLO = 1,	/* worker -> authd, first message */
	AUTHD_VERIFY,		/* -> reply */
	AUTHD_LOOKUP,		/* -> reply */
	AUTHD_CONN_ADD,		/* -> reply (admitted or refused) */
	AUTHD_CONN_DEL,		/* no reply */
	AUTHD_SESSION_ADD,	/* re-registration of a logged-in conn; -> reply */
	AUTHD_REPLY,		/* authd -> worker */
};

/* Why the anvil (or a check) said no; AUTHD_LIMIT_NONE otherwise. */
enum authd_limit {
	AUTHD_LIMIT_NONE = 0,
	AUTHD_LIMIT_MAX_CONNECTIONS,
	AUTHD_LIMIT_MAX_CONNECTIONS_PER_IP,
	AUTHD_LIMIT_MAX_SESSIONS_PER_USER,
	AUTHD_LIMIT_COUNT
};

struct authd_hdr {
	uint16_t version;	/* AUTHD_PROTO_VERSION */
	uint16_t type;		/* enum authd_type */
	uint32_t id;		/* request id, echoed in the reply */
};

struct authd_hello {
	struct authd_hdr hdr;
	uint32_t pid;
	uint32_t reserved;
};

/* VERIFY and LOOKUP (lookup: password unused, all NULs). */
struct authd_check_req {
	struct authd_hdr hdr;
	uint64_t conn_id;	/* the worker's anvil id of the conn; 0 = none */
	char user[MA_AUTH_USER_MAX];
	char password[AUTHD_PASSWORD_MAX + 1];
	char ip[AUTHD_IP_MAX];
	char sid[AUTHD_SID_MAX];
	char protocol[AUTHD_PROTO_NAME_MAX];
};

#define AUTHD_CONN_COUNT_IP 1u	/* count against max_connections_per_ip */
#define AUTHD_CONN_FORCE 2u	/* re-registration: count, never refuse */

struct authd_conn_req {
	struct authd_hdr hdr;
	uint64_t conn_id;
	uint32_t flags;		/* AUTHD_CONN_* */
	uint32_t reserved;
	unsigned char ip_key[16];	/* v4-mapped or v6 address */
	char ip[AUTHD_IP_MAX];		/* for logs */
	char sid[AUTHD_SID_MAX];
	char user[MA_AUTH_USER_MAX];	/* SESSION_ADD only */
};

struct authd_reply {
	struct authd_hdr hdr;
	int32_t status;		/* enum ma_auth_status; CONN_ADD: OK or FAIL */
	uint32_t limit;		/* enum authd_limit that refused, or NONE */
	uint32_t delay_ms;	/* apply before answering the client */
	uint32_t count;		/* the count that tripped `limit` */
	uint32_t max;		/* ... and its configured maximum */
	uint32_t reserved;
	char user[MA_AUTH_USER_MAX];	/* canonical name on OK */
	char source[AUTHD_SOURCE_MAX];
};

/* Size of a valid message of this type, 0 for an unknown type. */
size_t authd_msg_size(unsigned type);
/* Checks a received datagram: header, size, NUL termination of every
 * string, enum values. NULL if valid, else a static reason for the log. */
const char *authd_msg_validate(const void *msg, size_t len, bool from_worker);
const char *authd_limit_name(unsigned limit);

/* ---- anvil.c: server-wide counts ----
 * Connections in total and per client IP, sessions per user, each entry
 * owned by a client (a worker's connection to the auth process, or the
 * one local client in-process), so a client that goes away takes all its
 * counts with it. Loop thread only. */
struct ma_anvil;
struct ma_anvil_client;

struct ma_anvil *ma_anvil_create(unsigned max_connections,
				 unsigned max_connections_per_ip,
				 unsigned max_sessions_per_user);
void ma_anvil_destroy(struct ma_anvil **anvil);
struct ma_anvil_client *ma_anvil_client_create(struct ma_anvil *anvil);
/* Removes every count the client holds; returns how many conns. */
unsigned ma_anvil_client_destroy(struct ma_anvil_client **client,
				 unsigned *sessions_r);
/* Adds conn_id (unique per client). Returns AUTHD_LIMIT_NONE, or the limit
 * that refused it with *count_r and *max_r. flags: AUTHD_CONN_*. A conn_id
 * already known is a no-op (NONE). */
enum authd_limit ma_anvil_conn_add(struct ma_anvil_client *client,
				   uint64_t conn_id,
				   const unsigned char ip_key[16],
				   unsigned flags, unsigned *count_r,
				   unsigned *max_r);
void ma_anvil_conn_del(struct ma_anvil_client *client, uint64_t conn_id);
/* The conn logged in as user: count a session (user names compare
 * ASCII case-insensitively). An unknown conn_id is added first (never
 * refused). force: re-registration. Returns NONE or
 * AUTHD_LIMIT_MAX_SESSIONS_PER_USER with *count_r and *max_r. */
enum authd_limit ma_anvil_session_add(struct ma_anvil_client *client,
				      uint64_t conn_id, const char *user,
				      bool force, unsigned *count_r,
				      unsigned *max_r);
/* Counts, for tests and stats. ip_key NULL: total conns. */
unsigned ma_anvil_conn_count(const struct ma_anvil *anvil,
			     const unsigned char ip_key[16]);
unsigned ma_anvil_session_count(const struct ma_anvil *anvil,
				const char *user);

/* ---- auth.c: the check engine, shared by the in-process path and the
 * auth process (one copy of the failure table logic) ---- */
struct auth_check;
typedef void auth_check_done_fn(struct auth_check *chk, void *ctx);
/* Starts a check; done(chk...) runs later on the loop, or from inside this
 * call (lockout, invalid input). The strings are copied; password is
 * wiped before done. */
void ma_auth_check_start(struct ma_core *core, bool lookup, const char *user,
			 const char *password, const char *ip, const char *sid,
			 const char *protocol, auth_check_done_fn *done,
			 void *ctx);
/* Result accessors for done(); the chk is freed after done returns. */
enum ma_auth_status ma_auth_check_status(const struct auth_check *chk);
double ma_auth_check_delay(const struct auth_check *chk);
const char *ma_auth_check_user(const struct auth_check *chk);	/* canonical */
const char *ma_auth_check_source(const struct auth_check *chk);
/* Stops this process's pool if it made it (finishing running checks). */
void ma_auth_pool_stop(struct ma_core *core);
/* The anvil of this process (in-process counts, or the auth process's). */
struct ma_anvil *ma_auth_anvil(struct ma_core *core);
/* Log a limit trip the same way in both modes. */
void ma_auth_log_limit(const char *sid, const char *ip, const char *user,
		       enum authd_limit limit, unsigned count, unsigned max);

#pragma GCC visibility pop

#endif
