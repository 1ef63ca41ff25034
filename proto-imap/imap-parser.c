/*
 * imap-parser.c - the incremental IMAP command parser.
 *
 * Owns: turning client bytes into struct imap_cmd (tag, command name, the
 * "UID" prefix, the argument tree) and every input limit of RFC 3501
 * commands: line length, argument count, nesting depth, literal sizes
 * (tighter before login, max_message_size for APPEND), and resyncing after
 * an error. Also reads raw lines (SASL responses, IDLE's "DONE").
 *
 * The parser consumes everything it is given (except when it stops after
 * a complete command or to ask for "+ Ready"): a line is collected in our
 * own buffer (bounded by the line limit) and literal bytes are copied
 * straight into the command arena, so the core's small input buffer never
 * has to hold a whole command.
 *
 * A command is a series of segments: "tag NAME args... {n}" CRLF, n
 * literal bytes, " more args" CRLF, ... Each segment is tokenised as soon as
 * its line ends; the argument stack lives across segments. A literal
 * marker may only end a segment (RFC 3501 section 4.3).
 *
 * Errors: a synchronizing literal that is too big is refused before the
 * client sends it ("BAD", no "+"), and the next line is a new command. A
 * non-synchronizing one (RFC 7888 LITERAL+) is coming anyway: its bytes are
 * skipped, never parsed as commands (nginx-tests mail_imap.t); one over
 * IMAP_SKIP_MAX is a hostile client and ends the connection.
 */
#include "imap-private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A non-synchronizing literal this big is not a client mistake. */
#define IMAP_SKIP_MAX (1024ull * 1024 * 1024)
/* Bytes of a skipped line kept to see a trailing "{n+}". */
#define IMAP_TAIL_MAX 32

enum imap_pstate {
	IMAP_PS_LINE = 0,	/* collecting a line segment */
	IMAP_PS_LITERAL,	/* copying literal bytes into the arena */
	IMAP_PS_SKIP_LITERAL,	/* discarding a refused {n+} literal */
	IMAP_PS_SKIP_LINE,	/* discarding up to the next LF */
};

struct imap_pframe {
	struct imap_arg *v;	/* heap, moved to the arena when closed */
	unsigned n, cap;
};

struct imap_parser {
	struct imap_session *s;
	enum imap_pstate st;

	unsigned char *line;	/* heap, current segment without LF */
	size_t line_len, line_cap;
	size_t cmd_bytes;	/* segment bytes of this command so far */

	struct imap_cmd *cmd;	/* NULL until the tag was parsed */
	struct imap_pframe stack[IMAP_DEPTH_MAX + 1];
	unsigned depth;
	unsigned n_args;	/* all levels */
	uint64_t lit_total;	/* literal bytes of this command */

	char *lit;		/* arena, or heap (lit_heap) for big ones */
	uint64_t lit_len, lit_got;
	size_t lit_cap;		/* heap literal: bytes allocated */
	bool lit_heap;

	uint64_t skip_left;
	unsigned char tail[IMAP_TAIL_MAX];
	size_t tail_len;

	char tag[IMAP_TAG_MAX + 1];	/* for error replies; "*" if none */
	char err[160];
};

/* ------------------------------------------------------------ limits */

static size_t imap_parser_line_limit(const struct imap_parser *p)
{
	if (p->s == NULL || p->s->state == IMAP_STATE_NOT_AUTH)
		return IMAP_PREAUTH_LINE_MAX;
	if (p->s->set != NULL && p->s->set->max_line > 0)
		return (size_t)p->s->set->max_line;
	return IMAP_LINE_MAX;
}

/* The limit of literals outside APPEND (the total of a command's literals
 * is bounded by the largest one plus this). */
static uint64_t imap_parser_literal_limit_plain(const struct imap_parser *p)
{
	if (p->s != NULL && p->s->set != NULL && p->s->set->max_literal > 0)
		return p->s->set->max_literal;
	return IMAP_LITERAL_MAX;
}

static uint64_t imap_parser_literal_limit(const struct imap_parser *p)
{
	if (p->s == NULL || p->s->state == IMAP_STATE_NOT_AUTH)
		return IMAP_PREAUTH_LITERAL_MAX;
	if (p->cmd != NULL && p->cmd->name != NULL &&
	    strcmp(p->cmd->name, "APPEND") == 0) {
		if (p->s->set != NULL && p->s->set->max_message_size > 0)
			return p->s->set->max_message_size;
		return 64ull << 20;
	}
	return imap_parser_literal_limit_plain(p);
}

/* Between commands: nothing of the next one has been read yet. */
bool imap_parser_idle(const struct imap_parser *p)
{
	return p->st == IMAP_PS_LINE && p->cmd == NULL && p->line_len == 0 &&
	       p->cmd_bytes == 0;
}

/* ----------------------------------------------------------- helpers */

struct imap_parser *imap_parser_create(struct imap_session *s)
{
	struct imap_parser *p = ma_malloc0(sizeof(*p));

	p->s = s;
	p->line_cap = 1024;	/* > IMAP_TAG_MAX + 2: imap_parser_feed() */
	p->line = ma_malloc0(p->line_cap);
	snprintf(p->tag, sizeof(p->tag), "*");
	return p;
}

static void imap_parser_clear_cmd(struct imap_parser *p)
{
	for (unsigned i = 0; i <= IMAP_DEPTH_MAX; i++) {
		free(p->stack[i].v);
		p->stack[i].v = NULL;
		p->stack[i].n = p->stack[i].cap = 0;
	}
	p->depth = 0;
	p->n_args = 0;
	p->lit_total = 0;
	p->cmd = NULL;
	if (p->lit_heap) {
		/* abandoned before it was handed to the arena */
		ma_wipe(p->lit, p->lit_cap);
		free(p->lit);
		p->lit_heap = false;
	}
	p->lit = NULL;
	p->lit_cap = 0;
	p->lit_len = p->lit_got = 0;
	p->cmd_bytes = 0;
	/* the line may have held a password (LOGIN) */
	ma_wipe(p->line, p->line_len);
	p->line_len = 0;
}

void imap_parser_destroy(struct imap_parser **pp)
{
	struct imap_parser *p = *pp;

	if (p == NULL)
		return;
	*pp = NULL;
	imap_parser_clear_cmd(p);
	ma_wipe(p->line, p->line_cap);
	free(p->line);
	free(p);
}

/* Forgets the partial command (its memory is in the command arena, which
 * the session resets). A skip in progress (resync after a refused
 * literal) is kept: those bytes must never run as commands. */
void imap_parser_reset(struct imap_parser *p)
{
	imap_parser_clear_cmd(p);
	if (p->st == IMAP_PS_LITERAL || p->st == IMAP_PS_LINE)
		p->st = IMAP_PS_LINE;
	snprintf(p->tag, sizeof(p->tag), "*");
}

static enum imap_parse_result __attribute__((format(printf, 2, 3)))
imap_parser_error(struct imap_parser *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->err, sizeof(p->err), fmt, ap);
	va_end(ap);
	return IMAP_PARSE_BAD;
}

static int imap_parser_add(struct imap_parser *p, const struct imap_arg *arg)
{
	struct imap_pframe *f = &p->stack[p->depth];

	if (p->n_args >= IMAP_ARGS_MAX) {
		imap_parser_error(p, "Too many arguments (max %d)", IMAP_ARGS_MAX);
		return -1;
	}
	if (f->n == f->cap) {
		f->cap = f->cap == 0 ? 8 : f->cap * 2;
		f->v = ma_realloc(f->v, f->cap * sizeof(*f->v));
	}
	f->v[f->n++] = *arg;
	p->n_args++;
	return 0;
}

static struct imap_arg *imap_parser_frame_finish(struct imap_parser *p,
						 struct imap_pframe *f)
{
	struct imap_arg *v = ma_arena_alloc(p->s->cmd_arena,
					    (f->n > 0 ? f->n : 1) * sizeof(*v));

	if (f->n > 0)
		memcpy(v, f->v, f->n * sizeof(*v));
	f->n = 0;
	return v;
}

static struct ma_arena *imap_parser_arena(struct imap_parser *p)
{
	return p->s->cmd_arena;
}

static bool imap_is_atom_char(unsigned char c)
{
	/* ATOM-CHAR plus what real commands put in atoms: "\" (flags),
	 * "%" and "*" (LIST patterns, sequence sets), "]". 8-bit bytes are
	 * let through (UTF-8 names sent unquoted). */
	if (c <= 0x20 || c == 0x7f)
		return false;
	return c != '(' && c != ')' && c != '{' && c != '"';
}

static bool imap_is_tag_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '(' && c != ')' && c != '{' &&
	       c != '"' && c != '\\' && c != '%' && c != '*' && c != '+';
}

/* "{123}", "{123+}", "{123-}" at the very end of a line: 1 found (n and
 * nonsync set), 0 not a marker there, -1 malformed number. */
static int imap_literal_marker(const unsigned char *s, size_t len,
			       uint64_t *n_r, char *kind_r)
{
	size_t i, end;
	uint64_t n = 0;

	*kind_r = 0;
	if (len < 3 || s[len - 1] != '}')
		return 0;
	end = len - 1;
	if (s[end - 1] == '+' || s[end - 1] == '-') {
		*kind_r = (char)s[end - 1];
		end--;
	}
	i = end;
	while (i > 0 && isdigit(s[i - 1]))
		i--;
	if (i == 0 || s[i - 1] != '{')
		return 0;
	if (i == end)
		return -1;
	for (size_t j = i; j < end; j++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(s[j] - '0');
	}
	*n_r = n;
	return 1;
}

/* After an error in a segment that ended in "{n+}": those n bytes are
 * coming and must be skipped. FATAL if absurd. */
static enum imap_parse_result imap_parser_bad_segment(struct imap_parser *p)
{
	uint64_t n;
	char kind;

	int m = imap_literal_marker(p->line, p->line_len, &n, &kind);

	if (m < 0 && kind != 0) {
		/* "{99999999999999999999+}": no way to know where it ends */
		snprintf(p->err, sizeof(p->err), "Invalid literal size");
		p->st = IMAP_PS_SKIP_LINE;
		return IMAP_PARSE_FATAL;
	}
	if (m == 1 && kind != 0) {
		if (n > IMAP_SKIP_MAX) {
			snprintf(p->err, sizeof(p->err),
				 "Non-synchronizing literal too big");
			p->st = IMAP_PS_SKIP_LINE;
			return IMAP_PARSE_FATAL;
		}
		p->skip_left = n;
		p->st = n > 0 ? IMAP_PS_SKIP_LITERAL : IMAP_PS_SKIP_LINE;
		p->tail_len = 0;
	} else {
		p->st = IMAP_PS_LINE;
	}
	return IMAP_PARSE_BAD;
}

/* ---------------------------------------------------------- tokeniser */

static enum imap_parse_result imap_parser_start_cmd(struct imap_parser *p,
						    size_t *pos_r)
{
	const unsigned char *l = p->line;
	size_t len = p->line_len, i = 0, start;
	char name[32], name2[32];
	const struct imap_command *def;
	struct imap_cmd *cmd;

	while (i < len && imap_is_tag_char(l[i]))
		i++;
	if (i == 0 || (i < len && l[i] != ' '))
		return imap_parser_error(p, "Invalid tag");
	if (i > IMAP_TAG_MAX)
		return imap_parser_error(p, "Tag too long");
	memcpy(p->tag, l, i);
	p->tag[i] = '\0';
	if (i == len)
		return imap_parser_error(p, "Missing command");
	i++;

	for (int pass = 0; pass < 2; pass++) {
		char *dst = pass == 0 ? name : name2;

		start = i;
		while (i < len && i - start < sizeof(name) - 1 &&
		       isalnum(l[i]))
			i++;
		if (i == start || (i < len && l[i] != ' '))
			return imap_parser_error(p, pass == 0 ? "Invalid command" :
						 "Invalid command after UID");
		for (size_t j = start; j < i; j++)
			dst[j - start] = (char)toupper(l[j]);
		dst[i - start] = '\0';
		if (pass == 0 && strcmp(name, "UID") != 0)
			break;
		if (pass == 0 && i == len)
			return imap_parser_error(p, "Missing command after UID");
		if (pass == 0)
			i++;
	}

	cmd = ma_arena_alloc(imap_parser_arena(p), sizeof(*cmd));
	cmd->s = p->s;
	cmd->arena = imap_parser_arena(p);
	cmd->tag = ma_arena_strdup(cmd->arena, p->tag);
	if (strcmp(name, "UID") == 0) {
		def = imap_command_find(name2);
		if (def == NULL)
			return imap_parser_error(p, "Unknown command UID %.31s",
						 name2);
		if ((def->flags & IMAP_CMDF_UID) == 0)
			return imap_parser_error(p, "UID %s is not a command",
						 def->name);
		cmd->uid = true;
	} else {
		def = imap_command_find(name);
		if (def == NULL)
			return imap_parser_error(p, "Unknown command %.31s", name);
	}
	cmd->def = def;
	cmd->name = def->name;
	p->cmd = cmd;
	*pos_r = i;
	return IMAP_PARSE_MORE;
}

/* Tokenises the current segment. MORE: a literal follows (state set);
 * CMD: the command is complete; CONTINUE: send "+"; BAD; FATAL. */
static enum imap_parse_result imap_parser_segment(struct imap_parser *p,
						  struct imap_cmd **cmd_r)
{
	const unsigned char *l = p->line;
	size_t len = p->line_len, i = 0;
	bool need_sp;
	enum imap_parse_result r;

	if (p->cmd == NULL) {
		r = imap_parser_start_cmd(p, &i);
		if (r != IMAP_PARSE_MORE)
			return r;
		need_sp = true;
	} else {
		/* after a literal: SP or ")" or the end */
		need_sp = true;
	}

	for (;;) {
		struct imap_arg arg;
		bool had_sp = false;

		while (i < len && l[i] == ' ') {
			i++;
			had_sp = true;
		}
		if (i == len)
			break;
		if (l[i] == ')') {
			if (p->depth == 0)
				return imap_parser_error(p, "Unexpected ')'");
			struct imap_pframe *f = &p->stack[p->depth];
			unsigned n = f->n;
			struct imap_arg *v = imap_parser_frame_finish(p, f);

			p->depth--;
			memset(&arg, 0, sizeof(arg));
			arg.type = IMAP_ARG_LIST;
			arg.list = v;
			arg.list_count = n;
			/* the list itself was counted when "(" opened it */
			p->n_args--;
			if (imap_parser_add(p, &arg) < 0)
				return IMAP_PARSE_BAD;
			i++;
			need_sp = true;
			continue;
		}
		if (need_sp && !had_sp)
			return imap_parser_error(p, "Missing space between arguments");
		memset(&arg, 0, sizeof(arg));

		if (l[i] == '(') {
			if (p->depth >= IMAP_DEPTH_MAX)
				return imap_parser_error(p, "Lists nested too deep (max %d)",
							 IMAP_DEPTH_MAX);
			if (p->n_args >= IMAP_ARGS_MAX)
				return imap_parser_error(p, "Too many arguments (max %d)",
							 IMAP_ARGS_MAX);
			p->n_args++;	/* the list, taken back at ")" */
			p->depth++;
			p->stack[p->depth].n = 0;
			i++;
			need_sp = false;
			continue;
		}
		if (l[i] == '"') {
			size_t j = i + 1, k = 0;
			char *out;

			out = ma_arena_alloc(imap_parser_arena(p), len - i);
			for (; j < len && l[j] != '"'; j++) {
				if (l[j] == '\\') {
					if (j + 1 >= len ||
					    (l[j + 1] != '"' && l[j + 1] != '\\'))
						return imap_parser_error(p,
							"Invalid escape in quoted string");
					j++;
				}
				out[k++] = (char)l[j];
			}
			if (j >= len)
				return imap_parser_error(p, "Unterminated quoted string");
			arg.type = IMAP_ARG_STRING;
			arg.str = out;
			arg.len = k;
			if (imap_parser_add(p, &arg) < 0)
				return IMAP_PARSE_BAD;
			i = j + 1;
			need_sp = true;
			continue;
		}
		if (l[i] == '{' || (l[i] == '~' && i + 1 < len && l[i + 1] == '{')) {
			uint64_t n, lim;
			char kind;
			int m;

			if (l[i] == '~')
				return imap_parser_error(p, "literal8 is not supported");
			m = imap_literal_marker(l + i, len - i, &n, &kind);
			if (m == 0)
				return imap_parser_error(p, "Invalid literal");
			if (m < 0 || n > UINT32_MAX - 1)
				return imap_parser_error(p, "Invalid literal size");
			lim = imap_parser_literal_limit(p);
			if (kind == '-' && lim > IMAP_LITERAL_MINUS_MAX)
				lim = IMAP_LITERAL_MINUS_MAX;
			if (n > lim || p->lit_total + n > lim + imap_parser_literal_limit_plain(p))
				return imap_parser_error(p, "Literal too big (max %llu)",
							 (unsigned long long)lim);
			p->lit_total += n;
			if (n <= IMAP_LITERAL_MAX) {
				p->lit = ma_arena_alloc(imap_parser_arena(p),
							(size_t)n + 1);
			} else {
				/* APPEND: grow as the bytes arrive, so an
				 * announced-but-unsent 64M literal costs little */
				p->lit_cap = IMAP_LITERAL_MAX;
				p->lit = ma_malloc0(p->lit_cap);
				p->lit_heap = true;
			}
			p->lit_len = n;
			p->lit_got = 0;
			p->st = IMAP_PS_LITERAL;
			/* the segment is done: wipe (LOGIN secrets) and reuse */
			p->cmd_bytes += p->line_len;
			ma_wipe(p->line, p->line_len);
			p->line_len = 0;
			return kind == 0 ? IMAP_PARSE_CONTINUE : IMAP_PARSE_MORE;
		}
		/* atom, possibly with a [section] and <partial> */
		size_t j = i;

		while (j < len && imap_is_atom_char(l[j])) {
			if (l[j] == '[') {
				size_t k = j + 1;

				while (k < len && l[k] != ']')
					k++;
				if (k < len) {
					j = k + 1;
					continue;
				}
			}
			j++;
		}
		if (j == i)
			return imap_parser_error(p, "Invalid character in arguments");
		if (j < len && l[j] != ' ' && l[j] != ')' && l[j] != '(')
			return imap_parser_error(p, "Invalid character in atom");
		if (j < len && l[j] == '(')
			return imap_parser_error(p, "Missing space before '('");
		if (ma_slice_ieq((const char *)l + i, j - i, "NIL")) {
			arg.type = IMAP_ARG_NIL;
			arg.str = "NIL";
			arg.len = 3;
		} else {
			arg.type = IMAP_ARG_ATOM;
			arg.str = ma_arena_strndup(imap_parser_arena(p),
						   (const char *)l + i, j - i);
			arg.len = j - i;
		}
		if (imap_parser_add(p, &arg) < 0)
			return IMAP_PARSE_BAD;
		i = j;
		need_sp = true;
	}
	if (p->depth > 0)
		return imap_parser_error(p, "Missing ')'");
	p->cmd->n_args = p->stack[0].n;
	p->cmd->args = imap_parser_frame_finish(p, &p->stack[0]);
	*cmd_r = p->cmd;
	return IMAP_PARSE_CMD;
}

/* ------------------------------------------------------------ feeding */

static void imap_parser_tail_add(struct imap_parser *p, const unsigned char *d,
				 size_t n)
{
	if (n >= IMAP_TAIL_MAX) {
		memcpy(p->tail, d + n - IMAP_TAIL_MAX, IMAP_TAIL_MAX);
		p->tail_len = IMAP_TAIL_MAX;
		return;
	}
	if (p->tail_len + n > IMAP_TAIL_MAX) {
		size_t drop = p->tail_len + n - IMAP_TAIL_MAX;

		memmove(p->tail, p->tail + drop, p->tail_len - drop);
		p->tail_len -= drop;
	}
	memcpy(p->tail + p->tail_len, d, n);
	p->tail_len += n;
}

/* Appends to the line buffer; -1 if over the limit. */
static int imap_parser_line_add(struct imap_parser *p, const unsigned char *d,
				size_t n, size_t limit)
{
	if (p->line_len + n > limit || p->cmd_bytes + p->line_len + n > limit)
		return -1;
	if (p->line_len + n > p->line_cap) {
		size_t cap = p->line_cap;
		unsigned char *nl;

		while (cap < p->line_len + n)
			cap *= 2;
		nl = ma_malloc0(cap);
		memcpy(nl, p->line, p->line_len);
		ma_wipe(p->line, p->line_cap);
		free(p->line);
		p->line = nl;
		p->line_cap = cap;
	}
	memcpy(p->line + p->line_len, d, n);
	p->line_len += n;
	return 0;
}

/* The line limit tripped: take the tag from the line if there is one,
 * then skip to the end of the line. */
static void imap_parser_guess_tag(struct imap_parser *p)
{
	size_t i = 0;

	if (p->cmd != NULL)
		return;
	while (i < p->line_len && i <= IMAP_TAG_MAX &&
	       imap_is_tag_char(p->line[i]))
		i++;
	if (i > 0 && i <= IMAP_TAG_MAX && i < p->line_len &&
	    p->line[i] == ' ') {
		memcpy(p->tag, p->line, i);
		p->tag[i] = '\0';
	}
}

static enum imap_parse_result imap_parser_too_long(struct imap_parser *p)
{
	imap_parser_guess_tag(p);
	ma_wipe(p->line, p->line_len);
	p->line_len = 0;
	p->tail_len = 0;
	p->st = IMAP_PS_SKIP_LINE;
	return imap_parser_error(p, "Command line too long");
}

/* One whole line is in p->line (LF stripped): strip CR, check bytes. */
static int imap_parser_line_check(struct imap_parser *p)
{
	if (p->line_len > 0 && p->line[p->line_len - 1] == '\r')
		p->line_len--;
	for (size_t i = 0; i < p->line_len; i++) {
		if (p->line[i] == '\0') {
			imap_parser_error(p, "NUL byte in command");
			return -1;
		}
		if (p->line[i] == '\r') {
			imap_parser_error(p, "CR without LF in command");
			return -1;
		}
	}
	return 0;
}

enum imap_parse_result imap_parser_feed(struct imap_parser *p,
					const unsigned char *data, size_t len,
					size_t *consumed_r,
					struct imap_cmd **cmd_r,
					const char **tag_r, const char **error_r)
{
	size_t i = 0;
	enum imap_parse_result r = IMAP_PARSE_MORE;

	*cmd_r = NULL;
	*tag_r = p->tag;
	*error_r = p->err;
	while (i < len || (p->st == IMAP_PS_LITERAL && p->lit_got == p->lit_len)) {
		switch (p->st) {
		case IMAP_PS_LITERAL: {
			uint64_t want = p->lit_len - p->lit_got;
			size_t take = len - i < want ? len - i : (size_t)want;
			struct imap_arg arg;

			if (p->lit_heap && p->lit_got + take + 1 > p->lit_cap) {
				size_t cap = p->lit_cap;

				while (cap < p->lit_got + take + 1)
					cap *= 2;
				if (cap > p->lit_len + 1)
					cap = (size_t)p->lit_len + 1;
				p->lit = ma_realloc(p->lit, cap);
				memset(p->lit + p->lit_cap, 0, cap - p->lit_cap);
				p->lit_cap = cap;
			}
			memcpy(p->lit + p->lit_got, data + i, take);
			i += take;
			p->lit_got += take;
			if (p->lit_got < p->lit_len)
				break;
			memset(&arg, 0, sizeof(arg));
			arg.type = IMAP_ARG_LITERAL;
			if (p->lit_heap) {
				/* the arena owns it from now on */
				if (p->lit_cap < p->lit_len + 1) {
					p->lit = ma_realloc(p->lit, (size_t)p->lit_len + 1);
					p->lit_cap = (size_t)p->lit_len + 1;
				}
				p->lit[p->lit_len] = '\0';
				ma_arena_cleanup_add(imap_parser_arena(p), free, p->lit);
				p->lit_heap = false;
				p->lit_cap = 0;
			}
			arg.str = p->lit;
			arg.len = (size_t)p->lit_len;
			p->lit = NULL;
			p->lit_len = p->lit_got = 0;
			p->st = IMAP_PS_LINE;
			if (imap_parser_add(p, &arg) < 0) {
				p->st = IMAP_PS_SKIP_LINE;
				p->tail_len = 0;
				r = IMAP_PARSE_BAD;
				goto out;
			}
			break;
		}
		case IMAP_PS_SKIP_LITERAL: {
			size_t take = len - i < p->skip_left ? len - i :
				      (size_t)p->skip_left;

			i += take;
			p->skip_left -= take;
			if (p->skip_left == 0) {
				p->st = IMAP_PS_SKIP_LINE;
				p->tail_len = 0;
			}
			break;
		}
		case IMAP_PS_SKIP_LINE: {
			const unsigned char *lf = memchr(data + i, '\n', len - i);
			size_t n = lf != NULL ? (size_t)(lf - (data + i)) : len - i;
			uint64_t lit;
			char kind;

			imap_parser_tail_add(p, data + i, n);
			i += n;
			if (lf == NULL)
				break;
			i++;
			if (p->tail_len > 0 && p->tail[p->tail_len - 1] == '\r')
				p->tail_len--;
			/* the skipped line may announce another literal */
			if (imap_literal_marker(p->tail, p->tail_len, &lit,
						&kind) == 1 && kind != 0) {
				if (lit > IMAP_SKIP_MAX) {
					snprintf(p->err, sizeof(p->err),
						 "Non-synchronizing literal too big");
					r = IMAP_PARSE_FATAL;
					goto out;
				}
				p->skip_left = lit;
				p->st = lit > 0 ? IMAP_PS_SKIP_LITERAL :
					IMAP_PS_SKIP_LINE;
				p->tail_len = 0;
				break;
			}
			ma_wipe(p->tail, sizeof(p->tail));
			p->tail_len = 0;
			p->st = IMAP_PS_LINE;
			imap_parser_clear_cmd(p);
			snprintf(p->tag, sizeof(p->tag), "*");
			break;
		}
		case IMAP_PS_LINE: {
			const unsigned char *lf = memchr(data + i, '\n', len - i);
			size_t n = lf != NULL ? (size_t)(lf - (data + i)) : len - i;

			if (imap_parser_line_add(p, data + i, n,
						 imap_parser_line_limit(p) + 1) < 0) {
				/* enough of the line to find its tag, so the
				 * reply does not depend on how bytes arrived */
				if (p->line_len < IMAP_TAG_MAX + 2) {
					size_t k = IMAP_TAG_MAX + 2 - p->line_len;

					if (k > n)
						k = n;
					memcpy(p->line + p->line_len, data + i, k);
					p->line_len += k;
				}
				r = imap_parser_too_long(p);
				/* the LF (if here) is left for SKIP_LINE, which
				 * also spots a trailing "{n+}" in the tail */
				imap_parser_tail_add(p, data + i, n);
				i += n;
				goto out;
			}
			i += n;
			if (lf == NULL)
				break;
			i++;
			if (imap_parser_line_check(p) < 0) {
				imap_parser_guess_tag(p);
				r = imap_parser_bad_segment(p);
				goto out;
			}
			if (p->cmd == NULL && p->line_len == 0)
				break;	/* empty line between commands */
			r = imap_parser_segment(p, cmd_r);
			if (r == IMAP_PARSE_BAD) {
				r = imap_parser_bad_segment(p);
				goto out;
			}
			if (r == IMAP_PARSE_CMD || r == IMAP_PARSE_CONTINUE)
				goto out;
			if (p->st == IMAP_PS_LINE) {
				/* never: MORE means a literal follows */
				p->cmd_bytes += p->line_len;
				p->line_len = 0;
			}
			break;
		}
		}
	}
out:
	*consumed_r = i;
	*tag_r = p->tag;
	*error_r = p->err;
	if (r == IMAP_PARSE_CMD) {
		/* the arguments live in the arena now; drop our copies */
		struct imap_cmd *cmd = *cmd_r;

		imap_parser_clear_cmd(p);
		*cmd_r = cmd;
	}
	return r;
}

enum imap_parse_result imap_parser_read_line(struct imap_parser *p,
					     const unsigned char *data,
					     size_t len, size_t *consumed_r,
					     const char **line_r, size_t *len_r,
					     const char **error_r)
{
	size_t i = 0;

	*line_r = NULL;
	*len_r = 0;
	*error_r = p->err;
	/* only called between commands, never while resyncing */
	if (p->st != IMAP_PS_LINE) {
		*consumed_r = 0;
		snprintf(p->err, sizeof(p->err), "Parser not at a line");
		return IMAP_PARSE_FATAL;
	}
	while (i < len) {
		const unsigned char *lf = memchr(data + i, '\n', len - i);
		size_t n = lf != NULL ? (size_t)(lf - (data + i)) : len - i;

		if (imap_parser_line_add(p, data + i, n, IMAP_PREAUTH_LINE_MAX + 1) < 0) {
			/* no tag guessing: a SASL line is a secret */
			ma_wipe(p->line, p->line_len);
			p->line_len = 0;
			imap_parser_too_long(p);
			imap_parser_tail_add(p, data + i, n);
			i += n;
			snprintf(p->err, sizeof(p->err), "Line too long");
			*consumed_r = i;
			return IMAP_PARSE_BAD;
		}
		i += n;
		if (lf == NULL)
			break;
		i++;
		if (imap_parser_line_check(p) < 0) {
			ma_wipe(p->line, p->line_len);
			p->line_len = 0;
			*consumed_r = i;
			return IMAP_PARSE_BAD;
		}
		if (imap_parser_line_add(p, (const unsigned char *)"", 1,
					 IMAP_PREAUTH_LINE_MAX + 2) == 0)
			p->line_len--;	/* NUL-terminated for the caller */
		*line_r = (const char *)p->line;
		*len_r = p->line_len;
		*consumed_r = i;
		return IMAP_PARSE_CMD;
	}
	*consumed_r = i;
	return IMAP_PARSE_MORE;
}

void imap_parser_line_done(struct imap_parser *p)
{
	ma_wipe(p->line, p->line_len);
	p->line_len = 0;
}
