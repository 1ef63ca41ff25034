/*
 * config.c - the config file parser and the parsed tree (config.h).
 *
 * The format is line based: one statement per line, either
 *     key = value            (value unquoted up to '#', or "quoted")
 *     name [label] {         (opens a section)
 *     }                      (closes it)
 * with '#' comments outside quotes. Every input is bounded (file size,
 * line length, nesting depth, items per section) and checked byte by byte,
 * so a garbage or binary file gets a "FILE:LINE: message" error, never a
 * crash or an unbounded allocation. All memory of a parsed tree lives in
 * one arena freed by ma_config_free().
 *
 * Used-key tracking: getters and child lookups set a `used` flag through
 * the const pointers they are given (the objects themselves are never
 * const: they are allocated here), so ma_config_check_unused() can name a
 * typo with its file and line after every reader ran.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core-private.h"

/* A mail server config is a few KiB; a bigger file is a mistake. */
#define MA_CONFIG_FILE_MAX (1024 * 1024)
/* Longest line in bytes (without the newline); bounds every value too. */
#define MA_CONFIG_LINE_MAX 4096
/* Sections nested deeper than this are refused (root is depth 0). */
#define MA_CONFIG_DEPTH_MAX 16
/* Keys and child sections per section; keeps duplicate checks cheap. */
#define MA_CONFIG_ITEMS_MAX 4096
/* Names of keys and sections, and section labels. */
#define MA_CONFIG_NAME_MAX 64
#define MA_CONFIG_LABEL_MAX 255

struct config_entry {
	struct config_entry *next;
	const char *key;
	const char *value;
	const char *where;	/* "FILE:LINE" */
	unsigned line;
	bool used;
};

struct ma_config_section {
	struct ma_config_section *parent;
	struct ma_config_section *next;		/* sibling */
	struct ma_config_section *children, *children_tail;
	struct config_entry *entries, *entries_tail;
	const char *name;	/* "" for the root */
	const char *label;	/* NULL if none */
	const char *where;
	unsigned line;
	unsigned n_items;
	unsigned depth;
	bool used;
};

struct ma_config {
	struct ma_arena *arena;
	const char *name;
	struct ma_config_section *root;
};

/* ---- errors ---- */

static char *config_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *config_errorf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		ma_oom();
	va_end(ap);
	return s;
}

/* ---- parser ---- */

struct config_parser {
	struct ma_config *cfg;
	struct ma_config_section *cur;
	unsigned line;
	char *error;
};

static void config_parse_error(struct config_parser *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void config_parse_error(struct config_parser *p, const char *fmt, ...)
{
	if (p->error != NULL)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->error = config_errorf("%s:%u: %s", p->cfg->name, p->line, msg);
}

static bool config_is_name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

static bool config_is_label_char(unsigned char c)
{
	/* Anything printable that cannot start another token; UTF-8 is ok. */
	return c > ' ' && c != 0x7f && c != '{' && c != '}' && c != '#' &&
	       c != '"' && c != '=';
}

static const char *config_skip_ws(const char *s, const char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	return s;
}

/* True if only whitespace or a comment is left on the line. */
static bool config_at_eol(const char *s, const char *end)
{
	s = config_skip_ws(s, end);
	return s == end || *s == '#';
}

static const char *config_where(struct config_parser *p)
{
	return ma_arena_printf(p->cfg->arena, "%s:%u", p->cfg->name, p->line);
}

static bool config_count_item(struct config_parser *p)
{
	if (p->cur->n_items >= MA_CONFIG_ITEMS_MAX) {
		config_parse_error(p, "too many settings and sections in one section (max %u)",
				   MA_CONFIG_ITEMS_MAX);
		return false;
	}
	p->cur->n_items++;
	return true;
}

/* Parses a "quoted" value starting at s (on the quote). */
static const char *config_parse_quoted(struct config_parser *p, const char *s,
				       const char *end, size_t *len_r,
				       const char **after_r)
{
	/* The unescaped value is never longer than the quoted text. */
	char *out = ma_arena_alloc(p->cfg->arena, (size_t)(end - s) + 1);
	size_t o = 0;
	s++;
	for (;;) {
		if (s == end) {
			config_parse_error(p, "unterminated quoted value");
			return NULL;
		}
		if (*s == '"')
			break;
		if (*s == '\\') {
			s++;
			if (s == end || (*s != '"' && *s != '\\')) {
				config_parse_error(p, "unknown escape in quoted value (only \\\" and \\\\)");
				return NULL;
			}
		}
		out[o++] = *s++;
	}
	out[o] = '\0';
	*len_r = o;
	*after_r = s + 1;
	return out;
}

static void config_add_entry(struct config_parser *p, const char *key,
			     size_t key_len, const char *s, const char *end)
{
	struct ma_arena *a = p->cfg->arena;
	if (ma_slice_ieq(key, key_len, "include")) {
		config_parse_error(p, "include is not supported yet");
		return;
	}
	s = config_skip_ws(s, end);
	const char *value;
	size_t vlen;
	if (s < end && *s == '"') {
		value = config_parse_quoted(p, s, end, &vlen, &s);
		if (value == NULL)
			return;
		if (!config_at_eol(s, end)) {
			config_parse_error(p, "unexpected text after quoted value");
			return;
		}
	} else {
		const char *v = s;
		while (s < end && *s != '#') {
			if (*s == '"') {
				config_parse_error(p, "'\"' inside an unquoted value (quote the whole value)");
				return;
			}
			s++;
		}
		while (s > v && (s[-1] == ' ' || s[-1] == '\t'))
			s--;
		vlen = (size_t)(s - v);
		if (vlen == 0) {
			config_parse_error(p, "missing value for '%.*s' (write \"\" for an empty one)",
					   (int)key_len, key);
			return;
		}
		if (vlen == 1 && *v == '{') {
			config_parse_error(p, "'%.*s = {': a section is written '%.*s {'",
					   (int)key_len, key, (int)key_len, key);
			return;
		}
		value = ma_arena_strndup(a, v, vlen);
	}

	for (struct config_entry *e = p->cur->entries; e != NULL; e = e->next) {
		if (strlen(e->key) == key_len && memcmp(e->key, key, key_len) == 0) {
			config_parse_error(p, "duplicate setting '%.*s' (first at line %u)",
					   (int)key_len, key, e->line);
			return;
		}
	}
	if (!config_count_item(p))
		return;
	struct config_entry *e = ma_arena_alloc(a, sizeof(*e));
	e->key = ma_arena_strndup(a, key, key_len);
	e->value = value;
	e->line = p->line;
	e->where = config_where(p);
	if (p->cur->entries_tail != NULL)
		p->cur->entries_tail->next = e;
	else
		p->cur->entries = e;
	p->cur->entries_tail = e;
}

static void config_open_section(struct config_parser *p, const char *name,
				size_t name_len, const char *s, const char *end)
{
	struct ma_arena *a = p->cfg->arena;
	const char *label = NULL;
	size_t label_len = 0;

	s = config_skip_ws(s, end);
	if (s < end && *s == '"') {
		label = config_parse_quoted(p, s, end, &label_len, &s);
		if (label == NULL)
			return;
	} else if (s < end && *s != '{') {
		const char *l = s;
		while (s < end && config_is_label_char((unsigned char)*s))
			s++;
		label_len = (size_t)(s - l);
		if (label_len == 0) {
			config_parse_error(p, "unexpected character after '%.*s'",
					   (int)name_len, name);
			return;
		}
		label = ma_arena_strndup(a, l, label_len);
	}
	if (label_len > MA_CONFIG_LABEL_MAX) {
		config_parse_error(p, "section label too long (max %u)", MA_CONFIG_LABEL_MAX);
		return;
	}
	s = config_skip_ws(s, end);
	if (s == end || *s != '{') {
		config_parse_error(p, "expected '=' or '{' after '%.*s'",
				   (int)name_len, name);
		return;
	}
	if (!config_at_eol(s + 1, end)) {
		config_parse_error(p, "unexpected text after '{' (one statement per line)");
		return;
	}
	if (p->cur->depth + 1 > MA_CONFIG_DEPTH_MAX) {
		config_parse_error(p, "sections nested too deep (max %u)", MA_CONFIG_DEPTH_MAX);
		return;
	}
	for (struct ma_config_section *c = p->cur->children; c != NULL; c = c->next) {
		if (strlen(c->name) != name_len || memcmp(c->name, name, name_len) != 0)
			continue;
		if ((c->label == NULL && label == NULL) ||
		    (c->label != NULL && label != NULL && strcmp(c->label, label) == 0)) {
			config_parse_error(p, "duplicate section '%.*s%s%s' (first at line %u)",
					   (int)name_len, name, label ? " " : "",
					   label ? label : "", c->line);
			return;
		}
	}
	if (!config_count_item(p))
		return;
	struct ma_config_section *sec = ma_arena_alloc(a, sizeof(*sec));
	sec->parent = p->cur;
	sec->name = ma_arena_strndup(a, name, name_len);
	sec->label = label;
	sec->line = p->line;
	sec->where = config_where(p);
	sec->depth = p->cur->depth + 1;
	if (p->cur->children_tail != NULL)
		p->cur->children_tail->next = sec;
	else
		p->cur->children = sec;
	p->cur->children_tail = sec;
	p->cur = sec;
}

/* Handles one line (without its newline). */
static void config_parse_line(struct config_parser *p, const char *s, const char *end)
{
	for (const char *c = s; c < end; c++) {
		unsigned char ch = (unsigned char)*c;
		if (ch == '\0') {
			config_parse_error(p, "NUL byte (is this a text file?)");
			return;
		}
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			config_parse_error(p, "control character 0x%02x", ch);
			return;
		}
	}
	s = config_skip_ws(s, end);
	if (s == end || *s == '#')
		return;
	if (*s == '}') {
		if (p->cur->parent == NULL) {
			config_parse_error(p, "'}' without an open section");
			return;
		}
		if (!config_at_eol(s + 1, end)) {
			config_parse_error(p, "unexpected text after '}' (one statement per line)");
			return;
		}
		p->cur = p->cur->parent;
		return;
	}
	const char *name = s;
	while (s < end && config_is_name_char((unsigned char)*s))
		s++;
	size_t name_len = (size_t)(s - name);
	if (name_len == 0) {
		config_parse_error(p, "expected a setting or section name");
		return;
	}
	if (name_len > MA_CONFIG_NAME_MAX) {
		config_parse_error(p, "name too long (max %u)", MA_CONFIG_NAME_MAX);
		return;
	}
	const char *after = config_skip_ws(s, end);
	if (after < end && *after == '=') {
		config_add_entry(p, name, name_len, after + 1, end);
		return;
	}
	if (after == s && after < end && *after != '{') {
		/* "key:value", "na!me = x": the name ended on a bad character. */
		config_parse_error(p, "invalid character '%c' in name", *after);
		return;
	}
	if (after == end) {
		config_parse_error(p, "'%.*s' needs '= value' or '{'", (int)name_len, name);
		return;
	}
	config_open_section(p, name, name_len, after, end);
}

static struct ma_config *config_new(const char *name)
{
	struct ma_config *cfg = ma_malloc0(sizeof(*cfg));
	cfg->arena = ma_arena_create(16384);
	cfg->name = ma_arena_strdup(cfg->arena, name ? name : "(config)");
	cfg->root = ma_arena_alloc(cfg->arena, sizeof(*cfg->root));
	cfg->root->name = "";
	cfg->root->where = cfg->name;
	cfg->root->used = true;
	return cfg;
}

struct ma_config *ma_config_parse(const char *name, const char *text, size_t len,
				  char **error_r)
{
	struct ma_config *cfg = config_new(name);
	if (len > MA_CONFIG_FILE_MAX) {
		*error_r = config_errorf("%s: file too large (max %u bytes)",
					 cfg->name, MA_CONFIG_FILE_MAX);
		ma_config_free(&cfg);
		return NULL;
	}
	struct config_parser p = { .cfg = cfg, .cur = cfg->root };
	const char *s = text, *end = text + len;
	while (s < end && p.error == NULL) {
		p.line++;
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *eol = nl ? nl : end;
		size_t llen = (size_t)(eol - s);
		if (llen > 0 && eol[-1] == '\r')
			llen--;		/* CRLF files from Windows editors */
		if (llen > MA_CONFIG_LINE_MAX) {
			config_parse_error(&p, "line too long (max %u bytes)", MA_CONFIG_LINE_MAX);
			break;
		}
		config_parse_line(&p, s, s + llen);
		s = nl ? nl + 1 : end;
	}
	if (p.error == NULL && p.cur != cfg->root) {
		if (p.line == 0)
			p.line = 1;
		config_parse_error(&p, "section '%s' opened at line %u is not closed",
				   p.cur->name, p.cur->line);
	}
	if (p.error != NULL) {
		*error_r = p.error;
		ma_config_free(&cfg);
		return NULL;
	}
	return cfg;
}

struct ma_config *ma_config_load(const char *path, char **error_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		*error_r = config_errorf("%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*error_r = config_errorf("%s: not a regular file", path);
		close(fd);
		return NULL;
	}
	if (st.st_size > MA_CONFIG_FILE_MAX) {
		*error_r = config_errorf("%s: file too large (max %u bytes)",
					 path, MA_CONFIG_FILE_MAX);
		close(fd);
		return NULL;
	}
	/* Read up to one byte past the limit: the file may grow meanwhile. */
	size_t cap = (size_t)MA_CONFIG_FILE_MAX + 1, len = 0;
	char *text = ma_malloc0(cap);
	while (len < cap) {
		ssize_t n = read(fd, text + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*error_r = config_errorf("%s: read error: %s", path, strerror(errno));
			free(text);
			close(fd);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	struct ma_config *cfg = ma_config_parse(path, text, len, error_r);
	free(text);
	return cfg;
}

void ma_config_free(struct ma_config **cfgp)
{
	struct ma_config *cfg = *cfgp;
	if (cfg == NULL)
		return;
	*cfgp = NULL;
	ma_arena_destroy(&cfg->arena);
	free(cfg);
}

/* ---- the tree ---- */

const struct ma_config_section *ma_config_root(const struct ma_config *cfg)
{
	return cfg->root;
}

const char *ma_config_section_name(const struct ma_config_section *s)
{
	return s->name;
}

const char *ma_config_section_label(const struct ma_config_section *s)
{
	return s->label;
}

const char *ma_config_section_where(const struct ma_config_section *s)
{
	return s->where;
}

const struct ma_config_section *
ma_config_next_child(const struct ma_config_section *s, const char *name,
		     const struct ma_config_section *prev)
{
	if (s == NULL)
		return NULL;
	struct ma_config_section *c = prev ? prev->next : s->children;
	for (; c != NULL; c = c->next) {
		if (name == NULL || strcmp(c->name, name) == 0) {
			c->used = true;
			return c;
		}
	}
	return NULL;
}

const struct ma_config_section *
ma_config_child(const struct ma_config_section *s, const char *name)
{
	return ma_config_next_child(s, name, NULL);
}

static struct config_entry *config_find(const struct ma_config_section *s,
					const char *key)
{
	if (s == NULL || key == NULL)
		return NULL;
	for (struct config_entry *e = s->entries; e != NULL; e = e->next) {
		if (strcmp(e->key, key) == 0) {
			e->used = true;
			return e;
		}
	}
	return NULL;
}

const char *ma_config_get(const struct ma_config_section *s, const char *key,
			  const char *def)
{
	struct config_entry *e = config_find(s, key);
	return e ? e->value : def;
}

const char *ma_config_where(const struct ma_config_section *s, const char *key)
{
	if (s == NULL)
		return "(no config)";
	if (key == NULL)
		return s->where;
	for (struct config_entry *e = s->entries; e != NULL; e = e->next) {
		if (strcmp(e->key, key) == 0)
			return e->where;
	}
	return s->where;
}

/* ---- typed getters ---- */

static int config_bad(const struct config_entry *e, char **error_r,
		      const char *what)
{
	if (error_r != NULL)
		*error_r = config_errorf("%s: %s: %s (got '%s')", e->where, e->key,
					 what, e->value);
	return -1;
}

int ma_config_get_uint(const struct ma_config_section *s, const char *key,
		       uint64_t def, uint64_t max, uint64_t *out, char **error_r)
{
	struct config_entry *e = config_find(s, key);
	if (e == NULL) {
		*out = def;
		return 0;
	}
	uint64_t v;
	if (ma_parse_uint(e->value, strlen(e->value), max, &v) < 0) {
		char what[96];
		snprintf(what, sizeof(what), "expected a whole number from 0 to %llu",
			 (unsigned long long)max);
		return config_bad(e, error_r, what);
	}
	*out = v;
	return 0;
}

int ma_config_get_size(const struct ma_config_section *s, const char *key,
		       uint64_t def, uint64_t *out, char **error_r)
{
	struct config_entry *e = config_find(s, key);
	if (e == NULL) {
		*out = def;
		return 0;
	}
	const char *v = e->value;
	size_t len = strlen(v), digits = 0;
	while (digits < len && v[digits] >= '0' && v[digits] <= '9')
		digits++;
	unsigned shift = 0;
	const char *suffix = v + digits;
	if (strcmp(suffix, "") == 0 || strcasecmp(suffix, "b") == 0)
		shift = 0;
	else if (strcasecmp(suffix, "k") == 0 || strcasecmp(suffix, "kb") == 0)
		shift = 10;
	else if (strcasecmp(suffix, "m") == 0 || strcasecmp(suffix, "mb") == 0)
		shift = 20;
	else if (strcasecmp(suffix, "g") == 0 || strcasecmp(suffix, "gb") == 0)
		shift = 30;
	else
		return config_bad(e, error_r, "expected a size like 512, 64k, 16M or 4G");
	uint64_t n;
	if (ma_parse_uint(v, digits, UINT64_MAX >> shift, &n) < 0)
		return config_bad(e, error_r, "expected a size like 512, 64k, 16M or 4G");
	*out = n << shift;
	return 0;
}

int ma_config_get_seconds(const struct ma_config_section *s, const char *key,
			  double def, double *out, char **error_r)
{
	static const char msg[] = "expected a duration like 30, 30s, 10m, 2h or 1d";
	struct config_entry *e = config_find(s, key);
	if (e == NULL) {
		*out = def;
		return 0;
	}
	const char *v = e->value;
	size_t i = 0, len = strlen(v);
	/* Digits with an optional fraction; checked by hand so strtod's
	 * leniency (hex, inf, nan, leading space, sign) never applies. */
	size_t int_digits = 0, frac_digits = 0;
	while (i < len && v[i] >= '0' && v[i] <= '9') {
		i++;
		int_digits++;
	}
	if (i < len && v[i] == '.') {
		i++;
		while (i < len && v[i] >= '0' && v[i] <= '9') {
			i++;
			frac_digits++;
		}
	}
	if (int_digits == 0 || int_digits > 12 || frac_digits > 9 ||
	    (frac_digits == 0 && i > 0 && v[i - 1] == '.'))
		return config_bad(e, error_r, msg);
	double mult;
	const char *suffix = v + i;
	if (strcmp(suffix, "") == 0 || strcmp(suffix, "s") == 0)
		mult = 1;
	else if (strcmp(suffix, "ms") == 0)
		mult = 0.001;
	else if (strcmp(suffix, "m") == 0)
		mult = 60;
	else if (strcmp(suffix, "h") == 0)
		mult = 3600;
	else if (strcmp(suffix, "d") == 0)
		mult = 86400;
	else
		return config_bad(e, error_r, msg);
	char num[32];
	snprintf(num, sizeof(num), "%.*s", (int)i, v);
	double d = strtod(num, NULL) * mult;
	if (!isfinite(d))
		return config_bad(e, error_r, msg);
	*out = d;
	return 0;
}

int ma_config_get_bool(const struct ma_config_section *s, const char *key,
		       bool def, bool *out, char **error_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	struct config_entry *e = config_find(s, key);
	if (e == NULL) {
		*out = def;
		return 0;
	}
	for (unsigned i = 0; i < 4; i++) {
		if (strcasecmp(e->value, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(e->value, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return config_bad(e, error_r, "expected yes or no");
}

int ma_config_get_enum(const struct ma_config_section *s, const char *key,
		       const char *const *choices, unsigned def_index,
		       unsigned *index_out, char **error_r)
{
	struct config_entry *e = config_find(s, key);
	if (e == NULL) {
		*index_out = def_index;
		return 0;
	}
	for (unsigned i = 0; choices[i] != NULL; i++) {
		if (strcasecmp(e->value, choices[i]) == 0) {
			*index_out = i;
			return 0;
		}
	}
	char what[512];
	size_t pos = (size_t)snprintf(what, sizeof(what), "expected one of");
	for (unsigned i = 0; choices[i] != NULL && pos < sizeof(what); i++)
		pos += (size_t)snprintf(what + pos, sizeof(what) - pos, "%s %s",
					i ? "," : "", choices[i]);
	return config_bad(e, error_r, what);
}

/* ---- used-key tracking ---- */

void ma_config_mark_used(const struct ma_config_section *cs)
{
	if (cs == NULL)
		return;
	struct ma_config_section *s = (struct ma_config_section *)cs;
	/* Iterative walk: depth is bounded, but no recursion is simpler to
	 * trust. Marks s and everything below it. */
	struct ma_config_section *c = s;
	for (;;) {
		c->used = true;
		for (struct config_entry *e = c->entries; e != NULL; e = e->next)
			e->used = true;
		if (c->children != NULL) {
			c = c->children;
			continue;
		}
		while (c != s && c->next == NULL)
			c = c->parent;
		if (c == s)
			return;
		c = c->next;
	}
}

static void config_section_title(const struct ma_config_section *s,
				 char *buf, size_t size)
{
	if (s->parent == NULL)
		snprintf(buf, size, "top level");
	else if (s->label != NULL)
		snprintf(buf, size, "section '%s %s'", s->name, s->label);
	else
		snprintf(buf, size, "section '%s'", s->name);
}

int ma_config_check_unused(const struct ma_config *cfg, char **error_r)
{
	/* Report the unused item with the lowest line number, so the message
	 * points at the first typo in the file. */
	const struct config_entry *best_e = NULL;
	const struct ma_config_section *best_s = NULL, *best_e_sec = NULL;
	unsigned best_line = 0;
	const struct ma_config_section *c = cfg->root;
	for (;;) {
		if (!c->used && (best_line == 0 || c->line < best_line)) {
			best_line = c->line;
			best_s = c;
			best_e = NULL;
		}
		if (c->used) {
			for (const struct config_entry *e = c->entries; e != NULL; e = e->next) {
				if (!e->used && (best_line == 0 || e->line < best_line)) {
					best_line = e->line;
					best_e = e;
					best_e_sec = c;
					best_s = NULL;
				}
			}
			if (c->children != NULL) {
				c = c->children;
				continue;
			}
		}
		while (c != cfg->root && c->next == NULL)
			c = c->parent;
		if (c == cfg->root)
			break;
		c = c->next;
	}
	char title[MA_CONFIG_LABEL_MAX + MA_CONFIG_NAME_MAX + 32];
	if (best_e != NULL) {
		config_section_title(best_e_sec, title, sizeof(title));
		*error_r = config_errorf("%s: unknown setting '%s' in %s",
					 best_e->where, best_e->key, title);
		return -1;
	}
	if (best_s != NULL) {
		config_section_title(best_s->parent, title, sizeof(title));
		*error_r = config_errorf("%s: unknown section '%s' in %s",
					 best_s->where, best_s->name, title);
		return -1;
	}
	return 0;
}
