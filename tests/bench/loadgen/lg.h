/*
 * lg.h - ma-loadgen's shared declarations: options, the run state, the
 * connection object every protocol drives, statistics and the message
 * generator.
 *
 * One libev loop runs every session. A connection owns its socket, an
 * optional GnuTLS session, an input buffer holding at most one partial
 * line (complete data is parsed from a shared scratch buffer, never
 * copied), an output buffer and two timers (per-op timeout, sleep). The
 * protocol modules (lg-imap.c, lg-pop3.c, lg-lmtp.c) are state machines
 * fed whatever bytes arrived.
 */
#ifndef LG_H
#define LG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <ev.h>
#include <gnutls/gnutls.h>

enum lg_mode {
	LG_IMAP_MIXED,
	LG_IMAP_SELECT,
	LG_IMAP_FETCH_FLAGS,
	LG_IMAP_SEARCH_TEXT,
	LG_POP3_RETR,
	LG_LMTP,
	LG_IMAP_IDLE_CONNS,
};

/* Operation types: one latency histogram each. */
enum lg_op {
	LG_OP_NONE,
	LG_OP_CONNECT,
	LG_OP_LOGIN,
	LG_OP_CAPABILITY,
	LG_OP_SELECT,
	LG_OP_UNSELECT,
	LG_OP_FETCH_ENV,
	LG_OP_FETCH_BODY,
	LG_OP_FETCH_FLAGS,
	LG_OP_SEARCH,
	LG_OP_STORE,
	LG_OP_APPEND,
	LG_OP_EXPUNGE,
	LG_OP_NOOP,
	LG_OP_IDLE,
	LG_OP_LOGOUT,
	LG_OP_SETUP,		/* idle-conns: connect .. IDLE accepted */
	LG_OP_POP3_AUTH,
	LG_OP_STAT,
	LG_OP_RETR,
	LG_OP_LHLO,
	LG_OP_DELIVER,
	LG_OP_COUNT_
};

struct lg_opts {
	enum lg_mode mode;
	const char *mode_name;
	const char *host;
	int port;
	bool tls;
	const char *users_fmt;
	int users;
	const char *password;
	int clients;
	double duration;
	double warmup;
	double timeout;
	bool json;
	struct in_addr *source_ips;
	int n_source_ips;
	long long count;	/* duration 0: total ops to do */
	const char *mailbox;
	const char *text;	/* imap-search-text word; lmtp needle */
	int text_every;		/* lmtp: needle in every Nth message */
	int msg;		/* pop3-retr: message number, 0 = all */
	size_t size;		/* lmtp / append message size */
	int rcpt_per_msg;
	int conns;		/* imap-idle-conns */
	double rate;
	double hold;
	double idle_ms;		/* imap-mixed: IDLE length */
	const char *from;
	unsigned seed;
};

enum lg_phase { LG_WARMUP, LG_MEASURE, LG_DONE };

#define LG_HIST_SUB 64
#define LG_HIST_BUCKETS (LG_HIST_SUB * 40)

struct lg_hist {
	uint64_t n;
	uint64_t max_us;
	uint64_t b[LG_HIST_BUCKETS];
};

struct lg_op_stats {
	struct lg_hist hist;
	uint64_t errors;
};

struct lg_run {
	struct lg_opts o;
	struct ev_loop *loop;
	enum lg_phase phase;
	double t_start, t_measure, t_end;
	uint64_t ops;		/* counted ops completed in the window */
	uint64_t ops_issued;	/* counted ops started in the window */
	uint64_t errors;
	uint64_t bytes;
	uint64_t user_rr;	/* round-robin user counter */
	uint64_t msg_seq;	/* generated message counter */
	uint64_t search_hits;	/* last SEARCH result count seen */
	uint64_t expunge_issued; /* IMAP NO [EXPUNGEISSUED] replies */
	/* idle-conns */
	int established, failed, dropped, started;
	bool holding;
	struct lg_op_stats op[LG_OP_COUNT_];
	bool counted[LG_OP_COUNT_];
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
};

extern struct lg_run lg;

struct lg_buf {
	char *data;
	size_t used, off, size;
};

struct lg_conn;

struct lg_proto {
	/* Socket (and TLS) ready: wait for the greeting. */
	void (*connected)(struct lg_conn *c);
	/* Parse bytes; return bytes consumed (the rest is kept as a partial
	   line), or -1 when the connection was closed meanwhile. */
	long (*feed)(struct lg_conn *c, const char *p, size_t n);
	/* The sleep timer fired. */
	void (*wake)(struct lg_conn *c);
	/* Peer closed the connection (after EOF). */
	void (*eof)(struct lg_conn *c);
};

enum lg_conn_state { LG_C_CLOSED, LG_C_CONNECTING, LG_C_HANDSHAKE, LG_C_OPEN };

struct lg_conn {
	struct ev_io rio, wio;
	struct ev_timer tmo;	/* per-op timeout */
	struct ev_timer sleep;	/* protocol pauses, reconnect backoff */
	int fd;
	int id;
	enum lg_conn_state cstate;
	gnutls_session_t tls;
	struct lg_buf in, out;
	size_t tls_pending;	/* bytes handed to gnutls_record_send, EAGAIN */
	const struct lg_proto *proto;
	uint64_t rng;
	double conn_start;

	/* current op */
	enum lg_op op;
	double op_start;
	double op_extra;	/* latency already accrued (IDLE) */
	bool op_counted;

	/* protocol state (shared by the three protocols) */
	int state;
	int next;		/* follow-up action */
	unsigned tagn;
	char tag[16];
	size_t taglen;
	uint64_t lit_left;	/* IMAP literal bytes still to skip */
	bool resp_cont;		/* inside a response (after a literal) */
	int ml_state;		/* POP3 multi-line terminator scan */
	long exists;
	bool caps_known, cap_unselect;
	bool appenduid;
	uint32_t uids[64];
	int n_uids;
	uint32_t appended[64];
	int n_appended;
	long pending_expunge;	/* appended but not expunged (no UIDPLUS) */
	long pop3_msgs;
	long pop3_next;
	int rcpt_sent, rcpt_ok, replies_left, deliver_ok;
	uint64_t user_idx;
	uint64_t append_seq;
	double idle_part;	/* IDLE: time to the continuation */
	bool reconnecting;	/* sleep timer reconnects */
	bool dirty;		/* on the flush list */
	bool was_established;	/* idle-conns */
};

/* lg-main.c */
double lg_now(void);
bool lg_may_issue(void);
void lg_op_begin(struct lg_conn *c, enum lg_op op);
void lg_op_end(struct lg_conn *c, bool ok, uint64_t weight);
void lg_op_fail(struct lg_conn *c, const char *why);
/* imap-idle-conns: this connection is lost (error already counted). */
void lg_session_failed(struct lg_conn *c);
void lg_reply_error(struct lg_conn *c, const char *line, size_t n);
void lg_check_done(void);
uint64_t lg_rand(struct lg_conn *c);
void lg_user(uint64_t idx, char *dst, size_t size);
uint64_t lg_next_user(void);
void lg_idle_established(struct lg_conn *c);

/* lg-conn.c */
void lg_conn_init(struct lg_conn *c, int id, const struct lg_proto *proto);
int lg_conn_start(struct lg_conn *c);
void lg_conn_close(struct lg_conn *c);
void lg_conn_reconnect(struct lg_conn *c, double delay);
void lg_send(struct lg_conn *c, const void *p, size_t n);
void lg_sends(struct lg_conn *c, const char *s);
int lg_flush(struct lg_conn *c);
void lg_sleep(struct lg_conn *c, double secs);
void lg_timeout_start(struct lg_conn *c);
void lg_timeout_stop(struct lg_conn *c);
char *lg_send_reserve(struct lg_conn *c, size_t n);
int lg_tls_global_init(void);
void lg_raise_nofile(long want);
void lg_conn_global_init(int max_conns);

/* lg-stats.c */
void lg_hist_add(struct lg_hist *h, uint64_t us);
void lg_hist_merge(struct lg_hist *dst, const struct lg_hist *src);
double lg_hist_pct_ms(const struct lg_hist *h, double pct);

/* lg-msg.c */
int lg_msg_init(size_t size, const char *needle);
/* Most bytes lg_msg_write() writes. */
size_t lg_msg_max(void);
/* Write one message of about the configured size (CRLF lines, none
   starting with '.', ending in CRLF) to dst, which holds lg_msg_max()
   bytes; returns its length, the same for the same arguments. seq makes
   Message-ID and Subject unique; needle puts the needle word in the
   first body line. */
size_t lg_msg_write(char *dst, uint64_t seq, const char *to, bool needle);

/* protocols */
extern const struct lg_proto lg_imap_proto, lg_pop3_proto, lg_lmtp_proto;

#endif
