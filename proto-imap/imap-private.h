/*
 * imap-private.h - what the files of imap.so share. Not installed.
 *
 * Layout (one owner per file group):
 *   imap-plugin.c     descriptor, init (the `imap { }` section), protocol ops
 *   imap-parser.c     incremental command parser -> struct imap_cmd
 *   imap-session.c    session state, dispatch, replies, untagged updates, IDLE
 *   imap-utf7.c       modified UTF-7 (RFC 3501 5.1.3)
 *   imap-seqset.c     sequence sets and search of the view
 *   imap-write.c      astring/nstring/literal output helpers
 *   cmd-*.c           one file per command (group), handlers below
 *
 * Flow: on_input -> imap_parser_feed() until a whole command (line plus all
 * its literals) is parsed into cmd->args in the command arena -> dispatch
 * checks state and flags -> handler. A handler writes untagged data and
 * finishes with imap_reply() (tagged OK/NO/BAD), or returns
 * IMAP_CMD_CONTINUE to be called again when output drains (streaming FETCH),
 * or IMAP_CMD_WAIT when it finishes later from a callback (auth, IDLE),
 * then calls imap_cmd_done(). One command runs at a time per session; input
 * is paused meanwhile and parsing resumes after it.
 */
#ifndef IMAP_PRIVATE_H
#define IMAP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mailaccess/mailaccess.h>
#include <mailaccess/mime.h>

/* ---------------- limits ---------------- */
#define IMAP_TAG_MAX 64			/* bytes of a tag */
#define IMAP_LINE_MAX (64 * 1024)	/* default imap.max_line: one command line, literals excluded */
#define IMAP_ARGS_MAX 4096		/* arguments in one command, all levels */
#define IMAP_DEPTH_MAX 32		/* list nesting */
#define IMAP_LITERAL_MAX (64 * 1024)	/* default imap.max_literal: a literal outside APPEND */
#define IMAP_LITERAL_MINUS_MAX 4096	/* RFC 7888 LITERAL- */
#define IMAP_BAD_MAX 20			/* consecutive BADs before BYE */
#define IMAP_PREAUTH_LINE_MAX 8192	/* before login */
#define IMAP_PREAUTH_LITERAL_MAX 8192

/* ---------------- parsed arguments ---------------- */
enum imap_arg_type {
	IMAP_ARG_ATOM = 1,	/* also numbers, flags (\Seen), seq sets, "BODY[...]<..>" */
	IMAP_ARG_STRING,	/* quoted string, unescaped */
	IMAP_ARG_LITERAL,	/* {n} / {n+} / {n-}; may hold NULs */
	IMAP_ARG_NIL,
	IMAP_ARG_LIST,		/* ( ... ) */
};

struct imap_arg {
	enum imap_arg_type type;
	/* ATOM/STRING/LITERAL: bytes, NUL-terminated copy in the command
	 * arena (len excludes the NUL; a literal may contain NULs). */
	const char *str;
	size_t len;
	/* LIST: children. */
	struct imap_arg *list;
	unsigned list_count;
};

/* An atom that ends in a bracketed section is kept whole: the atom
 * `BODY.PEEK[HEADER.FIELDS (From To)]<0.100>` is one ATOM arg with
 * str = "BODY.PEEK[HEADER.FIELDS (From To)]<0.100>" (the parser knows the
 * bracket may contain spaces and parentheses, RFC 3501 section 9 fetch-att). */

/* True if arg is an astring (atom, string or literal). */
bool imap_arg_is_astring(const struct imap_arg *arg);
/* astring value or NULL. */
const char *imap_arg_astring(const struct imap_arg *arg);

/* ---------------- session ---------------- */
enum imap_state {
	IMAP_STATE_NOT_AUTH = 0,
	IMAP_STATE_AUTH,
	IMAP_STATE_SELECTED,
	IMAP_STATE_LOGOUT,
};

/* ENABLEd extensions (RFC 5161). */
#define IMAP_ENABLED_UTF8 0x1u		/* UTF8=ACCEPT (RFC 6855) */
#define IMAP_ENABLED_CONDSTORE 0x2u	/* later */

struct imap_settings {			/* from `imap { }`, see docs/imap.md */
	uint64_t max_message_size;	/* APPEND literal limit (limits.max_message_size) */
	double idle_timeout;		/* authenticated idle timeout (30m, RFC 3501 5.4) */
	uint64_t max_line;		/* command line after login (IMAP_LINE_MAX) */
	uint64_t max_literal;		/* literal outside APPEND (IMAP_LITERAL_MAX) */
	/* special-use mailboxes created at first login, e.g. "Drafts" -> \Drafts */
	struct { const char *name; uint32_t attr; } autocreate[8];
	unsigned n_autocreate;
	bool autocreate_subscribe;
};

struct imap_parser;

/* The selected mailbox as the client knows it. Sequence number n is
 * msgs[n-1]. msgs/count are the store view's snapshot
 * (ma_mailbox_messages); they change only in imap_sync_report(), which
 * also tells the client (EXPUNGE/EXISTS/FETCH FLAGS), so the client's
 * numbering and ours always agree. */
struct imap_selected {
	struct ma_mailbox *box;
	char *name;			/* heap: canonical name (UTF-8) */
	bool readonly;			/* EXAMINE */
	const struct ma_msg *msgs;
	uint32_t count;
	struct ma_mailbox_status status;
	const char *const *keywords;	/* keyword names; bit i of ma_msg.keywords */
	unsigned n_keywords;
	uint32_t recent_count;		/* \Recent is not tracked: 0 */
	bool changed;			/* change bus said something changed */
	struct ma_changebus_sub *sub;
};

struct imap_cmd;

enum imap_cmd_result {
	IMAP_CMD_DONE = 0,	/* handler called imap_reply(); next command */
	IMAP_CMD_CONTINUE,	/* call handler again on output drain */
	IMAP_CMD_WAIT,		/* a callback will call imap_cmd_done() */
};

typedef enum imap_cmd_result imap_cmd_handler(struct imap_cmd *cmd);

struct imap_session {
	struct ma_conn *conn;
	struct ma_core *core;
	const struct imap_settings *set;
	enum imap_state state;
	struct imap_parser *parser;
	struct ma_arena *cmd_arena;	/* reset after each command */
	struct imap_cmd *cmd;		/* running command or NULL */
	struct ma_user *user;		/* after login */
	char *user_name;		/* heap */
	struct imap_selected *sel;	/* SELECTED state */
	uint32_t enabled;		/* IMAP_ENABLED_* */
	unsigned bad_count;		/* consecutive BAD replies */
	bool utf8_names;		/* UTF8=ACCEPT enabled: names raw UTF-8 */
	bool idling;			/* in IDLE */
	bool logout;			/* LOGOUT done: close after flush */
	struct ma_sasl *sasl;		/* AUTHENTICATE in progress */
	/* counters for the summary line */
	uint64_t n_fetch, n_append, n_expunged;
};

/* Command table entry flags. */
#define IMAP_CMDF_NOT_AUTH   0x01u	/* allowed in not-authenticated state */
#define IMAP_CMDF_AUTH       0x02u	/* allowed in authenticated state */
#define IMAP_CMDF_SELECTED   0x04u	/* allowed in selected state */
#define IMAP_CMDF_ANY        0x07u
#define IMAP_CMDF_UID        0x10u	/* has a UID form (UID FETCH ...) */
/* RFC 3501 7.4.1: no EXPUNGE responses while this command runs (FETCH,
 * STORE, SEARCH — but not their UID forms). Untagged updates before the
 * tagged reply are then limited to EXISTS/FETCH. */
#define IMAP_CMDF_NO_EXPUNGE 0x20u
#define IMAP_CMDF_WRITE      0x40u	/* refused in a read-only (EXAMINE) mailbox */

struct imap_command {
	const char *name;		/* upper case */
	imap_cmd_handler *handler;
	uint32_t flags;
};

struct imap_cmd {
	struct imap_session *s;
	const char *tag;
	const char *name;		/* upper case, as in the table */
	const struct imap_command *def;
	bool uid;			/* UID FETCH / UID STORE / ... */
	struct imap_arg *args;		/* arguments after the name (after "UID NAME") */
	unsigned n_args;
	struct ma_arena *arena;		/* = s->cmd_arena */
	void *state;			/* handler's own state across CONTINUE */
};

/* The command table (imap-session.c holds the array; cmd files export
 * their handlers below). NULL if unknown. */
const struct imap_command *imap_command_find(const char *name);

/* Tagged reply. status: "OK", "NO", "BAD". code: response code without
 * brackets ("TRYCREATE", "APPENDUID 38505 3955") or NULL. Ends the
 * command (also for IMAP_CMD_WAIT handlers: call imap_cmd_done() after). */
void imap_reply(struct imap_cmd *cmd, const char *status, const char *code,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* For an IMAP_CMD_WAIT command that replied from a callback: run the next
 * command. */
void imap_cmd_done(struct imap_session *s);
/* Map a store error to NO [code] text (TRYCREATE for NOTFOUND mailbox
 * where the RFC wants it is the caller's choice: pass trycreate). */
void imap_reply_store_error(struct imap_cmd *cmd, const struct ma_error_info *err,
			    bool trycreate);

/* Untagged line: "* " + formatted + CRLF. */
void imap_untagged(struct imap_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---------------- selected mailbox ---------------- */
/* Opens name (UTF-8, canonical) as the selected mailbox: SELECT/EXAMINE.
 * Sends FLAGS, EXISTS, RECENT, OK [UNSEEN], [UIDVALIDITY], [UIDNEXT],
 * [PERMANENTFLAGS], [HIGHESTMODSEQ]. -1 with err on failure (the old
 * selection is already closed, RFC 3501 6.3.1). */
int imap_select(struct imap_session *s, const char *name, bool readonly,
		struct ma_error_info *err);
void imap_unselect(struct imap_session *s);
/* Bring the view up to date and tell the client: EXPUNGE (unless
 * allow_expunge is false), EXISTS, FETCH (FLAGS) for changed messages.
 * Called by the dispatcher after every command in SELECTED state, before the
 * tagged reply, and by IDLE when the change bus fires. When expunges are
 * not allowed, the view is not synced at all (it stays consistent). */
void imap_sync_report(struct imap_session *s, bool allow_expunge);
/* Index (0-based) of uid in sel->msgs, or -1. Binary search. */
long imap_msg_index(const struct imap_selected *sel, uint32_t uid);
/* "\Seen \Flagged $Label" for a message (arena string). */
const char *imap_flags_string(struct imap_session *s, struct ma_arena *a,
			      const struct ma_msg *m);

/* ---------------- sequence sets (imap-seqset.c) ---------------- */
struct imap_range { uint32_t lo, hi; };
struct imap_seqset {
	struct imap_range *r;	/* sorted, merged, lo <= hi */
	unsigned n;
};
/* Parses "1:4,7,9:*" (max_value replaces '*'; for UIDs pass the highest
 * UID or uidnext-1 as RFC 3501 6.4.8 says "*" is the largest in use).
 * Returns -1 on syntax error. Ranges are normalised (4:1 = 1:4), merged. */
int imap_seqset_parse(struct ma_arena *a, const char *s, size_t len,
		      uint32_t max_value, struct imap_seqset *out);
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t v);
/* Indexes into sel->msgs selected by a sequence set (uid = false) or UID set
 * (uid = true), ascending. Sequence numbers above count are an error for
 * the non-UID form (returns -1; caller replies BAD); UIDs not present are
 * skipped (RFC 3501 6.4.8). */
int imap_seqset_indexes(struct ma_arena *a, const struct imap_selected *sel,
			const char *set, size_t len, bool uid, uint32_t **idx_r,
			uint32_t *n_r);

/* ---------------- output helpers (imap-write.c) ---------------- */
/* Appends to an ma_buf (for building lines) or writes to the conn. */
void imap_buf_astring(struct ma_buf *b, const char *s, size_t len);	/* atom, quoted or literal */
void imap_buf_nstring(struct ma_buf *b, const char *s, size_t len);	/* NIL if s == NULL */
void imap_buf_quoted_or_literal(struct ma_buf *b, const char *s, size_t len);
/* Mailbox name out: modified UTF-7 unless the client enabled UTF8=ACCEPT. */
void imap_buf_mailbox(struct imap_session *s, struct ma_buf *b, const char *utf8_name);
/* Date-time as "dd-Mon-yyyy hh:mm:ss +zzzz". */
void imap_buf_datetime(struct ma_buf *b, int64_t t, int32_t tz_minutes);

/* ---------------- mailbox names (imap-utf7.c) ---------------- */
/* Client mailbox name (modified UTF-7, or raw UTF-8 with UTF8=ACCEPT) to
 * our canonical UTF-8 name; INBOX in any case -> "INBOX"; checks with
 * ma_store_check_mailbox_name(). NULL with err (BADARGS) if invalid. */
char *imap_mailbox_from_client(struct imap_session *s, struct ma_arena *a,
			       const char *name, size_t len,
			       struct ma_error_info *err);
/* Modified UTF-7 encode / decode. -1 on invalid input. */
int imap_utf7_encode(const char *utf8, size_t len, struct ma_buf *out);
int imap_utf7_decode(const char *utf7, size_t len, struct ma_buf *out);

/* ---------------- parser (imap-parser.c) ---------------- */
enum imap_parse_result {
	IMAP_PARSE_MORE = 0,	/* need more input (all given input consumed) */
	IMAP_PARSE_CMD,		/* *cmd_r complete */
	IMAP_PARSE_BAD,		/* syntax error: tag (may be "*") and text set; resynced at next line */
	IMAP_PARSE_FATAL,	/* cannot resync (literal too big and announced): send BYE, close */
	IMAP_PARSE_CONTINUE,	/* synchronizing literal accepted: send "+ Ready" and call again */
};
struct imap_parser *imap_parser_create(struct imap_session *s);
void imap_parser_destroy(struct imap_parser **p);
/* Consumes bytes from data; *consumed_r says how many. */
enum imap_parse_result imap_parser_feed(struct imap_parser *p, const unsigned char *data,
					size_t len, size_t *consumed_r,
					struct imap_cmd **cmd_r,
					const char **tag_r, const char **error_r);
/* Limits depend on state (tighter before login) and command (APPEND gets
 * max_message_size); the parser asks the session. */
void imap_parser_reset(struct imap_parser *p);
/* True between commands (no byte of the next command read yet). */
bool imap_parser_idle(const struct imap_parser *p);
/* Added by the session engineer: raw lines for SASL responses and IDLE's
 * "DONE" (not commands). CMD with *line_r (NUL-terminated, valid until
 * imap_parser_line_done() or the next feed), MORE, or BAD (line too long:
 * the rest of it is skipped by the next imap_parser_feed(); NUL or bare CR).
 * Only call at a command boundary. */
enum imap_parse_result imap_parser_read_line(struct imap_parser *p,
					     const unsigned char *data,
					     size_t len, size_t *consumed_r,
					     const char **line_r, size_t *len_r,
					     const char **error_r);
/* Wipes the line returned by imap_parser_read_line(). */
void imap_parser_line_done(struct imap_parser *p);

/* ---------------- handlers (cmd-*.c) ---------------- */
/* imap-session helper: cmd-any.c, cmd-auth.c, cmd-idle.c */
imap_cmd_handler imap_cmd_capability, imap_cmd_noop, imap_cmd_logout,
	imap_cmd_starttls, imap_cmd_authenticate, imap_cmd_login,
	imap_cmd_enable, imap_cmd_id, imap_cmd_namespace, imap_cmd_idle;
/* imap-mailbox helper: cmd-mailbox.c, cmd-list.c, cmd-select.c, cmd-append.c */
imap_cmd_handler imap_cmd_select, imap_cmd_examine, imap_cmd_create,
	imap_cmd_delete, imap_cmd_rename, imap_cmd_subscribe,
	imap_cmd_unsubscribe, imap_cmd_list, imap_cmd_lsub, imap_cmd_status,
	imap_cmd_append, imap_cmd_check, imap_cmd_close, imap_cmd_unselect,
	imap_cmd_expunge;
/* imap-fetch helper: cmd-fetch.c, cmd-store.c, cmd-copy.c, cmd-search.c */
imap_cmd_handler imap_cmd_fetch, imap_cmd_store, imap_cmd_copy,
	imap_cmd_move, imap_cmd_search;

/* CAPABILITY string for the session's current state (without "CAPABILITY"). */
const char *imap_capability_string(struct imap_session *s);

/* Creates the autocreate special-use mailboxes on first login. */
void imap_autocreate(struct imap_session *s);

/* Added by the mailbox engineer (cmd-mailbox.c). NO [code] for a failed
 * mailbox operation, RFC 5530 codes (NONEXISTENT, ALREADYEXISTS, ...). */
void imap_reply_mailbox_error(struct imap_cmd *cmd, const struct ma_error_info *err);
/* STATUS items list -> bit mask (-1 on an unknown item); sends
 * "* STATUS name (...)" from the store's counters (no open). Also used by
 * LIST ... RETURN (STATUS (...)) (RFC 5819). */
int imap_status_items_parse(const struct imap_arg *list, uint32_t *items_r);
int imap_status_send(struct imap_session *s, const char *name, uint32_t items,
		     struct ma_error_info *err);


/* ---------------- session internals (imap-session.c) ----------------
 * Added by the session engineer for imap-plugin.c, cmd-auth.c and
 * cmd-idle.c. */
extern const struct ma_protocol_ops imap_protocol_ops;
/* Raw-line mode for a running IMAP_CMD_WAIT command: each client line
 * (without CRLF, NUL-terminated, wiped after the call) goes to fn instead of
 * the command parser, until fn is cleared (NULL). line == NULL means the
 * client sent an invalid line (too long, NUL): abort the command. */
typedef void imap_line_handler(struct imap_cmd *cmd, const char *line, size_t len);
void imap_cmd_line_mode(struct imap_cmd *cmd, imap_line_handler *fn);
/* STARTTLS was started: no input until the handshake is done. */
void imap_session_starttls(struct imap_session *s);
/* Sends bye (a whole line without CRLF, or NULL) and closes. */
void imap_session_close(struct imap_session *s, const char *bye, const char *reason);

/* Added by imap-fetch (additive). The running command has told the client
 * the new flags of these UIDs itself (STORE, a FETCH that set \Seen) or
 * must not tell it (STORE .SILENT, RFC 3501 6.4.6): the next
 * imap_sync_report() should send no FETCH (FLAGS) for them on account of
 * this session's own change. Defined beside imap_sync_report()
 * (cmd-select.c). */
void imap_sync_flags_reported(struct imap_session *s, const uint32_t *uids,
			      unsigned n);

#endif
