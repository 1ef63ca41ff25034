/*
 * mime.c - ma_mime_parse(): the message structure in one pass.
 *
 * The message is walked line by line exactly once (memchr for each LF).
 * A stack of open parts (node -> parent links) says where each line goes:
 * into the header being read, or into some body. At every line that starts
 * with "--", the boundaries of the open multiparts are tried innermost
 * first; a match ends every part above that multipart (RFC 2046 5.1.1: the
 * line break before the boundary line belongs to the boundary, so the part
 * ends before it). A boundary must be followed only by optional "--" and
 * white space, so a boundary that is a prefix of another never matches the
 * longer one. A missing closing boundary ends at the parent's end (or the
 * message's end).
 *
 * Decisions (documented in docs/mime.md):
 *  - No Content-Type: text/plain; charset=us-ascii (RFC 2045 5.2), or
 *    message/rfc822 inside multipart/digest (RFC 2046 5.1.5). A text/ *
 *    part without a charset parameter gets charset=us-ascii added.
 *    An unparseable Content-Type (no "type/subtype") counts as absent.
 *  - multipart/ * without a usable boundary parameter cannot be split: it
 *    becomes text/plain (one opaque body), parameters kept.
 *  - message/rfc822 and message/global are parsed recursively unless their
 *    transfer encoding is base64 or quoted-printable (RFC 2046 5.2.1 forbids
 *    that; we do not decode to parse).
 *  - Past MA_MIME_DEPTH_MAX or MA_MIME_PARTS_MAX a multipart or message part
 *    is not descended into (its body stays opaque). Every multipart and
 *    message part in the tree has at least one child: where none was found
 *    (no boundary line, limits, empty body) a zero-length text/plain child
 *    is added at the part's body, as Dovecot writes EMPTY_BODYSTRUCTURE,
 *    so IMAP BODYSTRUCTURE and section numbers always have something.
 *  - body_lines counts LF-terminated lines plus a final partial line, for
 *    every part.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core-private.h"
#include "mime-private.h"

enum mime_state {
	MIME_S_HEADER,		/* reading this part's header */
	MIME_S_BODY,		/* leaf body, or message/rfc822 holding a child */
	MIME_S_PREAMBLE,	/* multipart before its first boundary */
	MIME_S_PARTS,		/* multipart, a child is open */
	MIME_S_EPILOGUE,	/* multipart after its closing boundary */
};

enum mime_kind { MIME_K_LEAF, MIME_K_MULTIPART, MIME_K_MESSAGE };

struct mime_node {
	struct ma_mime_part part;
	int parent;
	unsigned depth;
	unsigned n_children;
	enum mime_state state;
	enum mime_kind kind;
	bool digest;		/* multipart/digest: children default rfc822 */
	bool in_digest;		/* parent is multipart/digest */
	const char *boundary;
	size_t boundary_len;
	uint64_t body_line;	/* LFs before body_offset */
	/* Raw header values seen (first occurrence wins). */
	const char *ctype, *cte, *cdisp;
};

struct mime_parser {
	struct ma_arena *a;
	const unsigned char *msg;
	size_t size;
	struct mime_node *nodes;
	unsigned n_nodes, alloc_nodes;
	int cur;
	uint64_t line_no;	/* LFs before the current line */
	/* Header field in progress (of nodes[cur]). */
	bool in_field;
	size_t field_start, field_end;
};

static int mime_node_new(struct mime_parser *p, int parent, size_t offset)
{
	struct mime_node *n;

	if (p->n_nodes == p->alloc_nodes) {
		p->alloc_nodes = p->alloc_nodes == 0 ? 16 : p->alloc_nodes * 2;
		p->nodes = ma_realloc(p->nodes, p->alloc_nodes * sizeof(*p->nodes));
	}
	n = &p->nodes[p->n_nodes];
	memset(n, 0, sizeof(*n));
	n->parent = parent;
	n->depth = parent < 0 ? 0 : p->nodes[parent].depth + 1;
	n->state = MIME_S_HEADER;
	n->part.header_offset = offset;
	n->part.body_offset = offset;
	if (parent < 0 || p->nodes[parent].kind == MIME_K_MESSAGE)
		n->part.envelope = ma_arena_alloc(p->a, sizeof(*n->part.envelope));
	if (parent >= 0) {
		p->nodes[parent].n_children++;
		n->in_digest = p->nodes[parent].digest;
	}
	p->in_field = false;
	return (int)p->n_nodes++;
}

/* ---------------- header fields ---------------- */

static void mime_field_done(struct mime_parser *p)
{
	struct mime_node *n = &p->nodes[p->cur];
	const unsigned char *f = p->msg + p->field_start;
	size_t len = p->field_end - p->field_start, nlen;
	const unsigned char *colon;
	const char **slot = NULL;
	char name[32];

	if (!p->in_field)
		return;
	p->in_field = false;
	/* Field names are short: look for the colon in the first 32 bytes. */
	colon = memchr(f, ':', len < sizeof(name) ? len : sizeof(name));
	if (colon == NULL)
		return;
	nlen = (size_t)(colon - f);
	while (nlen > 0 && mime_is_wsp(f[nlen - 1]))
		nlen--;
	if (nlen == 0 || nlen >= sizeof(name))
		return;
	memcpy(name, f, nlen);
	name[nlen] = '\0';
	mime_lower(name);

	if (strncmp(name, "content-", 8) == 0) {
		const char *s = name + 8;
		if (strcmp(s, "type") == 0) slot = &n->ctype;
		else if (strcmp(s, "transfer-encoding") == 0) slot = &n->cte;
		else if (strcmp(s, "disposition") == 0) slot = &n->cdisp;
		else if (strcmp(s, "id") == 0) slot = &n->part.id;
		else if (strcmp(s, "description") == 0) slot = &n->part.description;
		else if (strcmp(s, "md5") == 0) slot = &n->part.md5;
		else if (strcmp(s, "location") == 0) slot = &n->part.location;
		else if (strcmp(s, "language") == 0) slot = &n->part.language;
	} else if (n->part.envelope != NULL) {
		struct ma_mime_envelope *e = n->part.envelope;
		if (strcmp(name, "date") == 0) slot = &e->date;
		else if (strcmp(name, "subject") == 0) slot = &e->subject;
		else if (strcmp(name, "from") == 0) slot = &e->from;
		else if (strcmp(name, "sender") == 0) slot = &e->sender;
		else if (strcmp(name, "reply-to") == 0) slot = &e->reply_to;
		else if (strcmp(name, "to") == 0) slot = &e->to;
		else if (strcmp(name, "cc") == 0) slot = &e->cc;
		else if (strcmp(name, "bcc") == 0) slot = &e->bcc;
		else if (strcmp(name, "in-reply-to") == 0) slot = &e->in_reply_to;
		else if (strcmp(name, "message-id") == 0) slot = &e->message_id;
	}
	if (slot == NULL || *slot != NULL)
		return;
	*slot = mime_unfold(p->a, colon + 1, len - (size_t)(colon + 1 - f));
}

static bool mime_has_param(const struct ma_mime_part *part, const char *name)
{
	for (unsigned i = 0; i < part->n_params; i++)
		if (strcmp(part->params[i].name, name) == 0 ||
		    (strncmp(part->params[i].name, name, strlen(name)) == 0 &&
		     strcmp(part->params[i].name + strlen(name), "*") == 0))
			return true;
	return false;
}

static const char *mime_param(const struct ma_mime_part *part, const char *name)
{
	for (unsigned i = 0; i < part->n_params; i++)
		if (strcmp(part->params[i].name, name) == 0)
			return part->params[i].value;
	return NULL;
}

static void mime_add_param(struct ma_arena *a, struct ma_mime_part *part,
			   const char *name, const char *value)
{
	struct ma_mime_param *np = ma_arena_alloc(a, (part->n_params + 1) * sizeof(*np));

	if (part->n_params > 0)
		memcpy(np, part->params, part->n_params * sizeof(*np));
	np[part->n_params].name = name;
	np[part->n_params].value = value;
	part->params = np;
	part->n_params++;
}

/* The header is complete: work out type, encoding, and what the body is. */
static void mime_header_end(struct mime_parser *p, int idx)
{
	struct mime_node *n = &p->nodes[idx];
	struct ma_mime_part *part = &n->part;
	const char *type = NULL, *subtype = NULL, *enc = NULL, *dummy;
	struct ma_mime_param *params = NULL;
	unsigned n_params = 0;

	if (n->ctype != NULL)
		mime_parse_ctype(p->a, n->ctype, &type, &subtype, &params, &n_params);
	if (type == NULL || subtype == NULL) {
		type = n->in_digest ? "message" : "text";
		subtype = n->in_digest ? "rfc822" : "plain";
		params = NULL;
		n_params = 0;
	}
	part->type = type;
	part->subtype = subtype;
	part->params = params;
	part->n_params = n_params;
	if (n->cte != NULL) {
		struct ma_mime_param *pp;
		unsigned np;
		mime_parse_ctype(p->a, n->cte, &enc, NULL, &pp, &np);
	}
	part->encoding = enc != NULL ? enc : "7bit";
	if (n->cdisp != NULL) {
		mime_parse_ctype(p->a, n->cdisp, &dummy, NULL,
				 &part->disposition_params,
				 &part->n_disposition_params);
		part->disposition = dummy;
	}

	n->kind = MIME_K_LEAF;
	n->state = MIME_S_BODY;
	if (strcmp(type, "multipart") == 0) {
		const char *b = mime_param(part, "boundary");
		size_t blen = b != NULL ? strlen(b) : 0;

		if (blen == 0 || blen > MIME_BOUNDARY_MAX) {
			/* Cannot be split: one opaque text body. */
			part->type = "text";
			part->subtype = "plain";
		} else {
			n->kind = MIME_K_MULTIPART;
			/* Room for this multipart's first child (limits). */
			if (n->depth + 1 < MA_MIME_DEPTH_MAX &&
			    p->n_nodes + 1 < MA_MIME_PARTS_MAX) {
				n->boundary = b;
				n->boundary_len = blen;
				n->state = MIME_S_PREAMBLE;
				n->digest = strcmp(subtype, "digest") == 0;
			}
		}
	} else if (strcmp(type, "message") == 0 &&
		   (strcmp(subtype, "rfc822") == 0 || strcmp(subtype, "global") == 0)) {
		n->kind = MIME_K_MESSAGE;
		if (strcmp(part->encoding, "base64") != 0 &&
		    strcmp(part->encoding, "quoted-printable") != 0 &&
		    n->depth + 1 < MA_MIME_DEPTH_MAX &&
		    p->n_nodes + 1 < MA_MIME_PARTS_MAX) {
			int c = mime_node_new(p, idx, (size_t)p->nodes[idx].part.body_offset);
			p->nodes[c].part.body_offset = p->nodes[idx].part.body_offset;
			p->cur = c;
		}
	}
	part = &p->nodes[idx].part;	/* nodes may have moved */
	if (strcmp(part->type, "text") == 0 && !mime_has_param(part, "charset"))
		mime_add_param(p->a, part, "charset", "us-ascii");
}

/* ---------------- part ends ---------------- */

/* LFs in msg[0 .. e) given that e <= pos (the current line start) and
 * only a line break lies between them. */
static uint64_t mime_lines_at(const struct mime_parser *p, size_t pos, size_t e)
{
	uint64_t l = p->line_no;

	for (size_t i = e; i < pos; i++)
		if (p->msg[i] == '\n')
			l--;
	return l;
}

/* Ends node idx at byte e (>= its start), LF count there being lines_e. */
static void mime_node_finish(struct mime_parser *p, int idx, size_t e,
			     uint64_t lines_e)
{
	struct mime_node *n = &p->nodes[idx];
	struct ma_mime_part *part = &n->part;

	if (n->state == MIME_S_HEADER) {
		/* No empty line: the header runs to the end, the body is empty. */
		if (p->cur == idx)
			mime_field_done(p);
		part->header_size = e - part->header_offset;
		part->body_offset = e;
		n->body_line = lines_e;
		mime_header_end(p, idx);
		n = &p->nodes[idx];
		part = &n->part;
		/* A message/rfc822 child just created has nothing in it. */
		if (p->cur != idx && p->nodes[p->cur].parent == idx) {
			struct mime_node *c = &p->nodes[p->cur];
			c->state = MIME_S_BODY;
			c->kind = MIME_K_LEAF;
			c->part.type = "text";
			c->part.subtype = "plain";
			c->part.encoding = "7bit";
			mime_add_param(p->a, &c->part, "charset", "us-ascii");
			p->cur = idx;
		}
	}
	part->body_size = e - part->body_offset;
	part->body_lines = (uint32_t)(lines_e - n->body_line);
	if (e > part->body_offset && p->msg[e - 1] != '\n')
		part->body_lines++;
	n->state = MIME_S_EPILOGUE;
	n->boundary = NULL;
}

/* Ends every open part from cur up to (not including) stop at byte e. */
static void mime_close_to(struct mime_parser *p, int stop, size_t pos, size_t e)
{
	while (p->cur != stop && p->cur >= 0) {
		int idx = p->cur;
		size_t min = p->nodes[idx].state == MIME_S_HEADER ?
			p->nodes[idx].part.header_offset : p->nodes[idx].part.body_offset;
		if (e < min)
			e = min;
		mime_node_finish(p, idx, e, mime_lines_at(p, pos, e));
		p->cur = p->nodes[idx].parent;
	}
}

/* Does the line [pos, eol) close or continue an open multipart? Returns
 * the multipart's index or -1; *close_r for "--boundary--". */
static int mime_boundary_match(const struct mime_parser *p, size_t pos,
			       size_t eol, bool *close_r)
{
	const unsigned char *l = p->msg + pos + 2;
	size_t len = eol - pos - 2;

	while (len > 0 && (mime_is_wsp(l[len - 1]) || l[len - 1] == '\r'))
		len--;
	for (int i = p->cur; i >= 0; i = p->nodes[i].parent) {
		const struct mime_node *n = &p->nodes[i];
		size_t bl = n->boundary_len;

		if (n->boundary == NULL || (len != bl && len != bl + 2) ||
		    memcmp(l, n->boundary, bl) != 0)
			continue;
		if (len == bl) {
			*close_r = false;
			return i;
		}
		if (len == bl + 2 && l[bl] == '-' && l[bl + 1] == '-') {
			*close_r = true;
			return i;
		}
	}
	return -1;
}

static void mime_boundary(struct mime_parser *p, int m, bool close, size_t pos,
			  size_t next)
{
	size_t e = pos;

	/* RFC 2046 5.1.1: the CRLF before the boundary is part of it. */
	if (e > 0 && p->msg[e - 1] == '\n') {
		e--;
		if (e > 0 && p->msg[e - 1] == '\r')
			e--;
	}
	mime_close_to(p, m, pos, e);
	p->cur = m;
	if (close) {
		p->nodes[m].state = MIME_S_EPILOGUE;
		p->nodes[m].boundary = NULL;
		return;
	}
	if (p->n_nodes >= MA_MIME_PARTS_MAX) {
		/* No more parts: the rest goes to the epilogue, unparsed. */
		p->nodes[m].state = MIME_S_EPILOGUE;
		p->nodes[m].boundary = NULL;
		return;
	}
	p->nodes[m].state = MIME_S_PARTS;
	p->cur = mime_node_new(p, m, next);
}

/* ---------------- the pass ---------------- */

static void mime_header_line(struct mime_parser *p, size_t pos, size_t eol,
			     size_t next, bool has_lf)
{
	struct mime_node *n = &p->nodes[p->cur];
	size_t len = eol - pos;

	if (len == 0 || (len == 1 && p->msg[pos] == '\r')) {
		mime_field_done(p);
		n->part.header_size = next - n->part.header_offset;
		n->part.body_offset = next;
		n->body_line = p->line_no + (has_lf ? 1 : 0);
		mime_header_end(p, p->cur);
		return;
	}
	if (mime_is_wsp(p->msg[pos])) {
		if (p->in_field)
			p->field_end = next;
		return;
	}
	mime_field_done(p);
	p->in_field = true;
	p->field_start = pos;
	p->field_end = next;
}

static void mime_build(struct mime_parser *p, struct ma_mime_part *out, int idx);

struct ma_mime_part *ma_mime_parse(struct ma_arena *a, const unsigned char *msg,
				   size_t size)
{
	struct mime_parser p;
	size_t pos = 0;

	memset(&p, 0, sizeof(p));
	p.a = a;
	p.msg = msg;
	p.size = size;
	if (msg == NULL)
		p.size = size = 0;
	p.cur = mime_node_new(&p, -1, 0);

	while (pos < size) {
		const unsigned char *lf = memchr(msg + pos, '\n', size - pos);
		size_t eol = lf != NULL ? (size_t)(lf - msg) : size;
		size_t next = lf != NULL ? eol + 1 : size;
		bool close;
		int m;

		if (eol - pos >= 2 && msg[pos] == '-' && msg[pos + 1] == '-' &&
		    (m = mime_boundary_match(&p, pos, eol, &close)) >= 0)
			mime_boundary(&p, m, close, pos, next);
		else if (p.nodes[p.cur].state == MIME_S_HEADER)
			mime_header_line(&p, pos, eol, next, lf != NULL);
		if (lf != NULL)
			p.line_no++;
		pos = next;
	}
	mime_close_to(&p, -1, size, size);

	/* Copy into the arena with contiguous children arrays. */
	unsigned *fill = ma_malloc0(p.n_nodes * sizeof(*fill));
	struct ma_mime_part **where = ma_malloc0(p.n_nodes * sizeof(*where));
	struct ma_mime_part *root = ma_arena_alloc(a, sizeof(*root));

	/* Nodes are numbered in document order, parents before children,
	 * so each parent's children array exists when its children come. */
	where[0] = root;
	for (unsigned i = 0; i < p.n_nodes; i++) {
		int par = p.nodes[i].parent;
		if (par >= 0)
			where[i] = &where[par]->children[fill[par]++];
		mime_build(&p, where[i], (int)i);
	}
	free(fill);
	free(where);
	free(p.nodes);
	return root;
}

static void mime_build(struct mime_parser *p, struct ma_mime_part *out, int idx)
{
	struct mime_node *n = &p->nodes[idx];

	*out = n->part;
	if (n->kind == MIME_K_LEAF)
		return;
	if (n->n_children == 0) {
		/* Nothing found inside: one empty text/plain child. */
		struct ma_mime_part *c = ma_arena_alloc(p->a, sizeof(*c));
		c->header_offset = c->body_offset = out->body_offset;
		c->type = "text";
		c->subtype = "plain";
		c->encoding = "7bit";
		c->params = ma_arena_alloc(p->a, sizeof(*c->params));
		c->params[0].name = "charset";
		c->params[0].value = "us-ascii";
		c->n_params = 1;
		if (n->kind == MIME_K_MESSAGE)
			c->envelope = ma_arena_alloc(p->a, sizeof(*c->envelope));
		out->children = c;
		out->n_children = 1;
		return;
	}
	out->children = ma_arena_alloc(p->a, n->n_children * sizeof(*out->children));
	out->n_children = n->n_children;
}
