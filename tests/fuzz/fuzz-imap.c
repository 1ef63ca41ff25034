/*
 * fuzz-imap.c - libFuzzer target for everything imap.so parses from a
 * client: the incremental command parser (imap-parser.c: tags, atoms,
 * quoted strings, literals {n} {n+} {n-}, nested lists, bracketed fetch
 * atoms, every limit) fed a whole multi-command stream in chunks, and then,
 * per parsed command, the argument parsers behind it: sequence sets
 * (imap-seqset.c, also against a view), FETCH items (cmd-fetch.c), SEARCH
 * keys and dates (cmd-search.c), flag lists (cmd-store.c), modified UTF-7
 * mailbox names both ways (imap-utf7.c) and the session's mailbox name
 * check (imap_mailbox_from_client).
 *
 * With bit 4 of byte 0 set it instead runs the real session
 * (imap-session.c: greeting, command loop, dispatch, state checks, BAD
 * counting, synchronizing-literal continuations, LOGIN/AUTHENTICATE with
 * the raw-line SASL exchange, STARTTLS discarding pipelined input,
 * ID/ENABLE/NAMESPACE/CAPABILITY/NOOP/LOGOUT, output backpressure, the
 * commands-per-second limit (ma_conn_command_allowed)) on a
 * fake conn/auth/SASL defined here. Every login fails (bits 5-6 pick
 * FAIL, TEMPFAIL or DELAYED), so this mode covers what an
 * unauthenticated client can reach; what follows login is covered by the
 * parser mode above (the commands' argument parsers) and tests/protocol.
 * The fakes interpose on libmailaccess's ma_conn_* / ma_auth_verify /
 * ma_sasl_* (this target links the shared library): a new core call in
 * the session needs a fake here too.
 *
 * Input: byte 0 picks the session state (bits 0-1), UTF8=ACCEPT (bit 2)
 * and whether the parser is fed raw lines first (bit 3, SASL/IDLE mode),
 * or session mode (bit 4; bit 7 = STARTTLS offered, bits 0-2 the output
 * high-water mark, bit 3 commands_per_second trips every third command); byte 1 the chunk size (1..64, 0 = all at once); the
 * rest is the client.
 *
 * Checks beyond the sanitizers: the parser never consumes more than it is
 * given, MORE means all was consumed, a literal's bytes are NUL-terminated,
 * and a name that decodes from modified UTF-7 re-encodes to a string that
 * decodes to the same bytes.
 */
#include "imap-fetch.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct imap_settings fuzz_set = { .max_message_size = 1 << 20 };

/* A small view: 20 messages with UIDs 3, 6, 9, ... and two keywords. */
#define FUZZ_MSGS 20
static struct ma_msg fuzz_msgs[FUZZ_MSGS];
static const char *const fuzz_keywords[] = { "$Label1", "Junk" };
static struct imap_selected fuzz_sel;

static void fuzz_init_view(void)
{
	if (fuzz_sel.count != 0)
		return;
	for (unsigned i = 0; i < FUZZ_MSGS; i++) {
		fuzz_msgs[i].uid = 3 * (i + 1);
		fuzz_msgs[i].flags = i & 0x1f;
		fuzz_msgs[i].keywords = i & 3;
		fuzz_msgs[i].size = 100 * i;
	}
	fuzz_sel.msgs = fuzz_msgs;
	fuzz_sel.count = FUZZ_MSGS;
	fuzz_sel.status.messages = FUZZ_MSGS;
	fuzz_sel.status.uidnext = 3 * FUZZ_MSGS + 1;
	fuzz_sel.keywords = fuzz_keywords;
	fuzz_sel.n_keywords = 2;
}

/* Modified UTF-7 round trip: decode(encode(decode(x))) == decode(x). */
static void fuzz_utf7(const char *s, size_t len)
{
	struct ma_buf d1, e, d2;

	ma_buf_init(&d1, 1 << 16);
	ma_buf_init(&e, 1 << 18);
	ma_buf_init(&d2, 1 << 16);
	if (imap_utf7_decode(s, len, &d1) == 0 &&
	    imap_utf7_encode((const char *)ma_buf_ptr(&d1), ma_buf_len(&d1), &e) == 0) {
		if (imap_utf7_decode((const char *)ma_buf_ptr(&e), ma_buf_len(&e), &d2) != 0 ||
		    ma_buf_len(&d2) != ma_buf_len(&d1) ||
		    memcmp(ma_buf_ptr(&d1), ma_buf_ptr(&d2), ma_buf_len(&d1)) != 0)
			abort();	/* modified UTF-7 round trip broken */
	}
	ma_buf_free(&d1);
	ma_buf_free(&e);
	ma_buf_free(&d2);
}

static void fuzz_strings(struct imap_session *s, struct ma_arena *a,
			 const struct imap_arg *args, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		const struct imap_arg *arg = &args[i];
		struct ma_error_info err;

		if (arg->type == IMAP_ARG_LIST) {
			fuzz_strings(s, a, arg->list, arg->list_count);
			continue;
		}
		if (!imap_arg_is_astring(arg))
			continue;
		if (arg->str[arg->len] != '\0')
			abort();	/* args are NUL-terminated copies */
		memset(&err, 0, sizeof(err));
		(void)imap_mailbox_from_client(s, a, arg->str, arg->len, &err);
		fuzz_utf7(arg->str, arg->len);
		(void)imap_search_parse_date(arg->str, arg->len);
		if (i + 1 < n && imap_arg_is_astring(&args[i + 1]))
			(void)imap_search_contains(arg->str, arg->len,
						   args[i + 1].str, args[i + 1].len);
	}
}

static void fuzz_seqset(struct ma_arena *a, const struct imap_arg *arg, bool uid)
{
	struct imap_seqset set;
	uint32_t *idx, n;

	if (arg->type != IMAP_ARG_ATOM)
		return;
	if (imap_seqset_parse(a, arg->str, arg->len, 1000, &set) == 0) {
		for (unsigned i = 0; i < set.n; i++)
			if (set.r[i].lo > set.r[i].hi ||
			    (i > 0 && set.r[i].lo <= set.r[i - 1].hi))
				abort();	/* not sorted and merged */
		(void)imap_seqset_contains(&set, 7);
	}
	if (imap_seqset_indexes(a, &fuzz_sel, arg->str, arg->len, uid, &idx, &n) == 0) {
		for (uint32_t i = 0; i < n; i++)
			if (idx[i] >= FUZZ_MSGS || (i > 0 && idx[i] <= idx[i - 1]))
				abort();	/* index out of the view or not ascending */
	}
}

static void fuzz_fetch_atts(struct ma_arena *a, const struct imap_arg *arg)
{
	struct imap_fetch_item it;

	if (arg->type == IMAP_ARG_ATOM) {
		(void)imap_fetch_parse_item(a, arg->str, arg->len, &it);
		return;
	}
	if (arg->type != IMAP_ARG_LIST)
		return;
	for (unsigned i = 0; i < arg->list_count; i++) {
		const struct imap_arg *x = &arg->list[i];

		if (x->type == IMAP_ARG_ATOM &&
		    imap_fetch_parse_item(a, x->str, x->len, &it) == 0 &&
		    it.n_nums > IMAP_FETCH_PARTNUM_MAX)
			abort();
	}
}

static void fuzz_command(struct imap_session *s, struct imap_cmd *cmd)
{
	struct ma_arena *a = cmd->arena;
	const struct imap_arg *args = cmd->args;
	unsigned n = cmd->n_args;
	const char *name = cmd->name != NULL ? cmd->name : "";
	const char *error;

	if (cmd->tag == NULL || strlen(cmd->tag) > IMAP_TAG_MAX)
		abort();
	fuzz_strings(s, a, args, n);
	if (n == 0)
		return;
	/* every command's first atom as a sequence set too (cheap, and it
	 * makes the fuzzer reach the seqset code from any command) */
	fuzz_seqset(a, &args[0], cmd->uid);

	if (strcmp(name, "FETCH") == 0 && n >= 2) {
		fuzz_fetch_atts(a, &args[1]);
	} else if (strcmp(name, "SEARCH") == 0) {
		struct imap_search_key *key;
		unsigned skip = 0;

		if (n >= 2 && args[0].type == IMAP_ARG_ATOM &&
		    ma_slice_ieq(args[0].str, args[0].len, "CHARSET"))
			skip = 2;
		if (imap_search_parse(a, &fuzz_sel, args + skip, n - skip,
				      &key, &error) == 0)
			(void)imap_search_needs_text(key);
	} else if (strcmp(name, "STORE") == 0 && n >= 3) {
		struct imap_flag_list fl;

		(void)imap_flags_parse(a, args + 2, n - 2, &fl, &error);
	} else if (strcmp(name, "APPEND") == 0 && n >= 2) {
		struct imap_flag_list fl;

		if (args[1].type == IMAP_ARG_LIST)
			(void)imap_flags_parse(a, &args[1], 1, &fl, &error);
	} else if (strcmp(name, "STATUS") == 0 && n >= 2 &&
		   args[1].type == IMAP_ARG_LIST) {
		uint32_t items;

		(void)imap_status_items_parse(&args[1], &items);
	}
}

/* ------------------------------------------- session mode: fake core */

struct ma_conn {
	unsigned char in[IMAP_LINE_MAX + 1024];
	size_t in_len;
	bool paused, closed, tls, starttls_avail, tls_ready_due, want_drain;
	void *session;
	size_t pending, high_water, out_total;
	/* one pending auth callback */
	ma_auth_callback *cb;
	void *cb_ctx;
	enum ma_auth_status fail_status;
	unsigned sasl_step;
	/* limits.commands_per_second: every third command waits a "second" */
	bool throttle, throttled;
	unsigned commands;
};

struct ma_sasl {
	struct ma_conn *conn;
	ma_auth_callback *cb;
	void *ctx;
};

const unsigned char *ma_conn_input(struct ma_conn *conn, size_t *len_r)
{
	*len_r = conn->in_len;
	return conn->in;
}

void ma_conn_input_consume(struct ma_conn *conn, size_t n)
{
	if (n > conn->in_len)
		abort();	/* consumed more than there is */
	memmove(conn->in, conn->in + n, conn->in_len - n);
	conn->in_len -= n;
}

void ma_conn_input_clear(struct ma_conn *conn) { conn->in_len = 0; }

bool ma_conn_command_allowed(struct ma_conn *conn)
{
	if (conn->throttled)
		return false;	/* no token until the core calls on_input */
	if (conn->throttle && ++conn->commands % 3 == 0) {
		conn->throttled = true;
		return false;
	}
	return true;
}
void ma_conn_pause_input(struct ma_conn *conn) { conn->paused = true; }
void ma_conn_resume_input(struct ma_conn *conn) { conn->paused = false; }

int ma_conn_write(struct ma_conn *conn, const void *data, size_t len)
{
	if (conn->closed)
		return 0;
	if (data == NULL && len > 0)
		abort();
	if (len > 0)
		(void)((const volatile unsigned char *)data)[len - 1];
	conn->pending += len;
	conn->out_total += len;
	return 0;
}

bool ma_conn_output_full(const struct ma_conn *conn)
{
	return conn->pending > conn->high_water;
}

void ma_conn_want_drain(struct ma_conn *conn) { conn->want_drain = true; }
bool ma_conn_is_tls(const struct ma_conn *conn) { return conn->tls; }

bool ma_conn_starttls_available(const struct ma_conn *conn)
{
	return conn->starttls_avail && !conn->tls;
}

int ma_conn_starttls(struct ma_conn *conn)
{
	conn->in_len = 0;	/* the core drops pipelined plaintext */
	conn->tls = true;
	conn->paused = true;
	conn->tls_ready_due = true;
	return 0;
}

bool ma_conn_plaintext_auth_allowed(const struct ma_conn *conn)
{
	return true;
}

struct ma_core *ma_conn_core(const struct ma_conn *conn) { return NULL; }
const char *ma_conn_id(const struct ma_conn *conn) { return "fuzz0001"; }
void ma_conn_set_session(struct ma_conn *conn, void *session) { conn->session = session; }
void *ma_conn_session(const struct ma_conn *conn) { return conn->session; }
void ma_conn_set_idle_timeout(struct ma_conn *conn, double seconds) { }

void ma_conn_set_user(struct ma_conn *conn, const char *user)
{
	abort();	/* every login fails in this harness */
}

void ma_conn_set_summary(struct ma_conn *conn, const char *text)
{
	if (text == NULL || strlen(text) > 1024)
		abort();
}

void ma_conn_log(struct ma_conn *conn, int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
}

void ma_conn_close(struct ma_conn *conn, const char *reason)
{
	conn->closed = true;
}

static void fuzz_queue_auth(struct ma_conn *conn, ma_auth_callback *cb, void *ctx)
{
	if (conn->cb != NULL)
		abort();	/* two checks at once */
	conn->cb = cb;
	conn->cb_ctx = ctx;
}

void ma_auth_verify(struct ma_conn *conn, const char *user,
		    const char *password, ma_auth_callback *cb, void *ctx)
{
	if (user == NULL || password == NULL)
		abort();
	fuzz_queue_auth(conn, cb, ctx);
}

const char *ma_sasl_mechanisms(const struct ma_conn *conn)
{
	return "PLAIN LOGIN";
}

/* A two-step exchange like LOGIN: challenge, challenge, then a check. */
enum ma_sasl_result ma_sasl_begin(struct ma_conn *conn, const char *mech,
				  const char *initial, ma_auth_callback *cb,
				  void *ctx, struct ma_sasl **sasl_r,
				  const char **out_r)
{
	static struct ma_sasl sasl;

	if (strcasecmp(mech, "PLAIN") != 0 && strcasecmp(mech, "LOGIN") != 0) {
		*out_r = "Unsupported mechanism";
		return MA_SASL_ERROR;
	}
	sasl.conn = conn;
	sasl.cb = cb;
	sasl.ctx = ctx;
	*sasl_r = &sasl;
	conn->sasl_step = 0;
	if (initial != NULL) {
		fuzz_queue_auth(conn, cb, ctx);
		return MA_SASL_PENDING;
	}
	*out_r = "VXNlcm5hbWU6";
	return MA_SASL_CHALLENGE;
}

enum ma_sasl_result ma_sasl_continue(struct ma_sasl *sasl, const char *line,
				     size_t len, const char **out_r)
{
	if (len == 1 && line[0] == '*')
		return MA_SASL_CANCELLED;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)line[i]) && line[i] != '+' &&
		    line[i] != '/' && line[i] != '=') {
			*out_r = "Invalid base64";
			return MA_SASL_ERROR;
		}
	if (sasl->conn->sasl_step++ == 0) {
		*out_r = "UGFzc3dvcmQ6";
		return MA_SASL_CHALLENGE;
	}
	fuzz_queue_auth(sasl->conn, sasl->cb, sasl->ctx);
	return MA_SASL_PENDING;
}

static void fuzz_pump(struct ma_conn *c)
{
	for (unsigned guard = 0; guard < 100000 && !c->closed; guard++) {
		if (c->cb != NULL) {
			ma_auth_callback *cb = c->cb;

			c->cb = NULL;
			cb(c, c->fail_status, NULL, c->cb_ctx);
			continue;
		}
		if (c->tls_ready_due) {
			c->tls_ready_due = false;
			c->paused = false;
			imap_protocol_ops.on_tls_ready(c);
			continue;
		}
		if (c->want_drain || c->pending > c->high_water) {
			/* the client reads everything */
			bool wanted = c->want_drain;

			c->want_drain = false;
			c->pending = 0;
			if (wanted) {
				imap_protocol_ops.on_output_drained(c);
				continue;
			}
		}
		if (c->throttled) {
			/* a token is back: the core calls on_input */
			c->throttled = false;
			if (!c->paused)
				imap_protocol_ops.on_input(c);
			continue;
		}
		if (c->paused || c->in_len == 0)
			return;
		size_t before = c->in_len;
		imap_protocol_ops.on_input(c);
		if (c->in_len == before && !c->paused && c->cb == NULL &&
		    !c->tls_ready_due && !c->want_drain)
			return;	/* waits for more input */
	}
}

static void fuzz_session(const uint8_t *data, size_t size)
{
	static const enum ma_auth_status fails[4] = {
		MA_AUTH_FAIL, MA_AUTH_TEMPFAIL, MA_AUTH_DELAYED, MA_AUTH_FAIL,
	};
	struct ma_conn *c = calloc(1, sizeof(*c));
	size_t chunk = 1 + data[1] % 64;

	if (c == NULL)
		return;
	c->high_water = 64 + (size_t)(data[0] & 7) * 512;
	c->starttls_avail = (data[0] & 0x80) != 0;
	c->fail_status = fails[(data[0] >> 5) & 3];
	c->throttle = (data[0] & 8) != 0;
	if (imap_protocol_ops.on_connect(c) != 0 || c->out_total == 0)
		abort();	/* refused, or no greeting */
	for (size_t off = 2; off < size && !c->closed; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;

		if (n > sizeof(c->in) - c->in_len) {
			c->closed = true;	/* the core's input limit */
			break;
		}
		memcpy(c->in + c->in_len, data + off, n);
		c->in_len += n;
		fuzz_pump(c);
	}
	c->cb = NULL;	/* the core never calls back a closed conn */
	imap_protocol_ops.on_close(c, c->closed ? MA_CLOSE_NORMAL : MA_CLOSE_EOF);
	if (c->session != NULL)
		abort();	/* session not released */
	free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum imap_state states[4] = {
		IMAP_STATE_NOT_AUTH, IMAP_STATE_AUTH, IMAP_STATE_SELECTED,
		IMAP_STATE_SELECTED,
	};
	struct imap_session s;
	size_t chunk, pos;

	if (size < 2)
		return 0;
	if (data[0] & 0x10) {
		fuzz_session(data, size);
		return 0;
	}
	fuzz_init_view();
	memset(&s, 0, sizeof(s));
	s.state = states[data[0] & 3];
	s.utf8_names = (data[0] & 4) != 0;
	s.set = &fuzz_set;
	s.sel = s.state == IMAP_STATE_SELECTED ? &fuzz_sel : NULL;
	s.cmd_arena = ma_arena_create(0);
	s.parser = imap_parser_create(&s);
	chunk = data[1] % 65;
	pos = 2;

	if (data[0] & 8) {
		/* raw line mode (AUTHENTICATE responses, IDLE's DONE) for
		 * the first line, then commands */
		const char *line, *err;
		size_t used, len;
		enum imap_parse_result r;

		r = imap_parser_read_line(s.parser, data + pos, size - pos,
					  &used, &line, &len, &err);
		if (used > size - pos)
			abort();
		pos += used;
		if (r == IMAP_PARSE_CMD) {
			if (line[len] != '\0')
				abort();
			imap_parser_line_done(s.parser);
		}
	}

	while (pos < size) {
		size_t end = chunk == 0 || size - pos < chunk ? size : pos + chunk;

		while (pos < end) {
			struct imap_cmd *cmd = NULL;
			const char *tag = NULL, *err = NULL;
			size_t used = 0;
			enum imap_parse_result r;

			r = imap_parser_feed(s.parser, data + pos, end - pos,
					     &used, &cmd, &tag, &err);
			if (used > end - pos)
				abort();	/* consumed more than given */
			pos += used;
			switch (r) {
			case IMAP_PARSE_MORE:
				if (pos != end)
					abort();	/* MORE without taking all */
				break;
			case IMAP_PARSE_CMD:
				fuzz_command(&s, cmd);
				ma_arena_reset(s.cmd_arena);
				imap_parser_reset(s.parser);
				break;
			case IMAP_PARSE_BAD:
				if (tag == NULL || err == NULL)
					abort();
				ma_arena_reset(s.cmd_arena);
				imap_parser_reset(s.parser);
				break;
			case IMAP_PARSE_CONTINUE:
				break;
			case IMAP_PARSE_FATAL:
				pos = end = size;
				break;
			}
		}
	}
	imap_parser_destroy(&s.parser);
	ma_arena_destroy(&s.cmd_arena);
	return 0;
}
