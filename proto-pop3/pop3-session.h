/*
 * pop3-session.h - one POP3 session, shared by pop3-session.c (state,
 * input, login, lock, streaming) and pop3-commands.c (the commands).
 */
#ifndef POP3_SESSION_H
#define POP3_SESSION_H

#include <mailaccess/mailaccess.h>

#include "pop3-private.h"

/* RFC 1939 section 3 states; UPDATE is entered by QUIT in TRANSACTION. */
enum pop3_state {
	POP3_STATE_AUTHORIZATION = 0,
	POP3_STATE_TRANSACTION,
	POP3_STATE_UPDATE,
};

/* Consecutive bad commands before we hang up. */
#define POP3_MAX_BAD_COMMANDS 10

/* pop3_session.deleted[] bits */
#define POP3_DELETED 0x01u	/* DELE'd: invisible, expunged at QUIT */
#define POP3_RETRIEVED 0x02u	/* RETR'd: gets \Seen at QUIT */

/* What a parked multi-line reply is doing. */
enum pop3_stream_kind {
	POP3_STREAM_NONE = 0,
	POP3_STREAM_BODY,	/* RETR / TOP */
	POP3_STREAM_LIST,	/* LIST without argument */
	POP3_STREAM_UIDL,	/* UIDL without argument */
};

struct pop3_session {
	struct ma_conn *conn;
	const struct pop3_settings *set;
	enum pop3_state state;

	struct pop3_parser parser;
	unsigned char cmd_buf[POP3_CMD_TEXT_MAX + 2];
	unsigned char *sasl_buf;	/* malloc'd while a SASL exchange runs */
	unsigned bad_commands;

	bool input_paused;	/* by us: auth pending or streaming */
	bool tls_pending;	/* STLS sent, waiting for on_tls_ready */
	bool dead;		/* closing: do nothing more */
	bool utf8;		/* RFC 6856 UTF8 given */
	bool auth_pending;

	/* AUTHORIZATION */
	bool have_user;
	char user[MA_AUTH_USER_MAX];
	struct ma_sasl *sasl;

	/* TRANSACTION */
	char username[MA_AUTH_USER_MAX];
	int lock_fd;		/* maildrop lock (ma_core_lock_try), -1 if none */
	struct ma_user *muser;
	struct ma_mailbox *box;
	const struct ma_msg *msgs;	/* the snapshot, valid until close */
	uint32_t count;
	uint32_t uidvalidity;
	uint64_t total_size;
	uint8_t *deleted;		/* count entries of POP3_DELETED|RETRIEVED */
	uint32_t n_deleted;
	uint64_t deleted_size;

	/* statistics for the summary line */
	uint32_t n_retr, n_top;
	uint64_t retr_bytes;
	uint32_t n_expunged;

	/* a parked multi-line reply */
	enum pop3_stream_kind stream;
	struct ma_msg_data msg;
	bool msg_held;
	struct pop3_dotstuff ds;
	uint32_t stream_next;		/* LIST/UIDL: next index */
};

/* pop3-plugin.c */
const struct pop3_settings *pop3_settings_get(void);

/* pop3-session.c */
extern const struct ma_protocol_ops pop3_protocol_ops;
/* Replies. ok() resets the bad-command count; err() counts it and, at
 * the limit, replaces the reply with a final one and closes. err_nocount()
 * is for failures that are not the client's fault (store, auth). */
void pop3_reply_ok(struct pop3_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "+OK" with no text */
void pop3_reply_ok_bare(struct pop3_session *s);
void pop3_reply_err(struct pop3_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void pop3_reply_err_nocount(struct pop3_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int pop3_write(struct pop3_session *s, const void *data, size_t len);
void pop3_close(struct pop3_session *s, const char *reason);
void pop3_pause(struct pop3_session *s);
void pop3_resume(struct pop3_session *s);
void pop3_update_summary(struct pop3_session *s);
/* Starts a parked reply and runs it as far as output allows. */
void pop3_stream_start(struct pop3_session *s, enum pop3_stream_kind kind);
/* Auth finished: login or report. */
void pop3_auth_callback(struct ma_conn *conn, enum ma_auth_status status,
			const char *user, void *ctx);
void pop3_sasl_end(struct pop3_session *s);

/* pop3-commands.c */
/* Runs one complete command line (text without CRLF, NUL-terminated). */
void pop3_command_run(struct pop3_session *s, char *line, size_t len);
/* A line while a SASL exchange waits for the client. */
void pop3_sasl_line(struct pop3_session *s, char *line, size_t len);
/* Message number to snapshot index, or -1 after replying -ERR. */
int pop3_msg_lookup(struct pop3_session *s, const char *arg, size_t len,
		    uint32_t *idx_r);

#endif
