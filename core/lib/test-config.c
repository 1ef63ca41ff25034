/*
 * test-config.c - the config parser: a valid file (sections, labels,
 * quoting, comments, CRLF), every error with its line number, duplicate
 * keys and sections, the bounds (line, depth, file size), unused-key
 * detection, the typed getters, and garbage/binary input that must only
 * ever produce an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mailaccess/mailaccess.h>

static int failures;
#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
	failures++; } } while (0)

static struct ma_config *parse(const char *text, char **err)
{
	*err = NULL;
	return ma_config_parse("t.conf", text, strlen(text), err);
}

static void test_valid(void)
{
	static const char text[] =
		"# top comment\n"
		"log = stderr   # trailing comment\n"
		"\tlog_level=debug\n"
		"empty = \"\"\n"
		"quoted = \"a # not a comment \\\"q\\\" \\\\ end\"  # comment\n"
		"path = /var/lib/x y\n"
		"\n"
		"listener pop3s {\r\n"
		"  protocol = pop3\r\n"
		"  address = 127.0.0.1, ::1\n"
		"}\n"
		"listener pop3 {\n"
		"  protocol = pop3\n"
		"}\n"
		"tls {\n"
		"  domain \"mail.example.org\" {\n"
		"    cert = /c.pem\n"
		"  }\n"
		"  domain other.example {   # comment after brace\n"
		"  }\n"
		"}\n"
		"auth passwd {\n"
		"}\n"
		"auth pam {\n"
		"}";	/* no final newline */
	char *err;
	struct ma_config *cfg = parse(text, &err);
	CHECK(cfg != NULL);
	if (cfg == NULL) {
		fprintf(stderr, "  error: %s\n", err);
		free(err);
		return;
	}
	const struct ma_config_section *root = ma_config_root(cfg);
	CHECK(strcmp(ma_config_get(root, "log", NULL), "stderr") == 0);
	CHECK(strcmp(ma_config_get(root, "log_level", NULL), "debug") == 0);
	CHECK(strcmp(ma_config_get(root, "empty", "x"), "") == 0);
	CHECK(strcmp(ma_config_get(root, "quoted", NULL),
		     "a # not a comment \"q\" \\ end") == 0);
	CHECK(strcmp(ma_config_get(root, "path", NULL), "/var/lib/x y") == 0);
	CHECK(ma_config_get(root, "missing", NULL) == NULL);
	CHECK(strcmp(ma_config_get(root, "missing", "def"), "def") == 0);
	CHECK(strcmp(ma_config_where(root, "path"), "t.conf:6") == 0);

	const struct ma_config_section *l = ma_config_child(root, "listener");
	CHECK(l != NULL && strcmp(ma_config_section_label(l), "pop3s") == 0);
	CHECK(l && strcmp(ma_config_section_where(l), "t.conf:8") == 0);
	CHECK(l && strcmp(ma_config_get(l, "address", NULL), "127.0.0.1, ::1") == 0);
	const struct ma_config_section *l2 = ma_config_next_child(root, "listener", l);
	CHECK(l2 != NULL && strcmp(ma_config_section_label(l2), "pop3") == 0);
	CHECK(ma_config_next_child(root, "listener", l2) == NULL);
	CHECK(strcmp(ma_config_section_name(l2), "listener") == 0);
	CHECK(strcmp(ma_config_where(l2, "nokey"), "t.conf:12") == 0);

	const struct ma_config_section *tls = ma_config_child(root, "tls");
	const struct ma_config_section *d = ma_config_child(tls, "domain");
	CHECK(d && strcmp(ma_config_section_label(d), "mail.example.org") == 0);
	CHECK(d && strcmp(ma_config_get(d, "cert", NULL), "/c.pem") == 0);
	d = ma_config_next_child(tls, "domain", d);
	CHECK(d && strcmp(ma_config_section_label(d), "other.example") == 0);

	/* All children, any name: listener, listener, tls, auth, auth. */
	unsigned n = 0;
	for (const struct ma_config_section *c = ma_config_next_child(root, NULL, NULL);
	     c != NULL; c = ma_config_next_child(root, NULL, c))
		n++;
	CHECK(n == 5);
	const struct ma_config_section *a = ma_config_child(root, "auth");
	CHECK(a && ma_config_section_label(a) && strcmp(ma_config_section_label(a), "passwd") == 0);
	CHECK(ma_config_section_label(tls) == NULL);

	/* Everything read but l's protocol and l2's protocol. */
	CHECK(ma_config_check_unused(cfg, &err) == -1);
	CHECK(err && strcmp(err, "t.conf:9: unknown setting 'protocol' in section 'listener pop3s'") == 0);
	free(err);
	(void)ma_config_get(l, "protocol", NULL);
	CHECK(ma_config_check_unused(cfg, &err) == -1);
	CHECK(err && strstr(err, "t.conf:13: unknown setting 'protocol'") == err);
	free(err);
	ma_config_mark_used(l2);
	err = NULL;
	CHECK(ma_config_check_unused(cfg, &err) == 0);
	CHECK(err == NULL);
	/* NULL sections are fine for getters (a plugin without a section). */
	CHECK(strcmp(ma_config_get(NULL, "x", "d"), "d") == 0);
	CHECK(ma_config_child(NULL, "x") == NULL);
	ma_config_mark_used(NULL);
	ma_config_free(&cfg);
	CHECK(cfg == NULL);
}

static void test_unused_sections(void)
{
	char *err;
	struct ma_config *cfg = parse("a = 1\nfrobnicate {\n  x = 1\n}\nb = 2\n", &err);
	CHECK(cfg != NULL);
	if (cfg == NULL)
		return;
	const struct ma_config_section *root = ma_config_root(cfg);
	(void)ma_config_get(root, "a", NULL);
	CHECK(ma_config_check_unused(cfg, &err) == -1);
	CHECK(err && strcmp(err, "t.conf:2: unknown section 'frobnicate' in top level") == 0);
	free(err);
	ma_config_mark_used(ma_config_child(root, "frobnicate"));
	CHECK(ma_config_check_unused(cfg, &err) == -1);
	CHECK(err && strcmp(err, "t.conf:5: unknown setting 'b' in top level") == 0);
	free(err);
	ma_config_free(&cfg);

	/* Finding a section marks it used but not its keys. */
	cfg = parse("s {\n  k = v\n  t {\n  }\n}\n", &err);
	CHECK(cfg != NULL);
	if (cfg == NULL)
		return;
	const struct ma_config_section *s = ma_config_child(ma_config_root(cfg), "s");
	CHECK(ma_config_check_unused(cfg, &err) == -1);
	CHECK(err && strcmp(err, "t.conf:2: unknown setting 'k' in section 's'") == 0);
	free(err);
	(void)ma_config_get(s, "k", NULL);
	CHECK(ma_config_check_unused(cfg, &err) == -1);
	CHECK(err && strcmp(err, "t.conf:3: unknown section 't' in section 's'") == 0);
	free(err);
	ma_config_free(&cfg);
}

struct bad_case {
	const char *text;
	const char *error;	/* expected full message */
};

static void test_errors(void)
{
	static const struct bad_case cases[] = {
		{ "a = 1\nb\n", "t.conf:2: 'b' needs '= value' or '{'" },
		{ "a = 1\n}\n", "t.conf:2: '}' without an open section" },
		{ "s {\n  a = 1\n", "t.conf:2: section 's' opened at line 1 is not closed" },
		{ "a =\n", "t.conf:1: missing value for 'a' (write \"\" for an empty one)" },
		{ "a =    # nothing\n", "t.conf:1: missing value for 'a' (write \"\" for an empty one)" },
		{ "\n\na = \"open\n", "t.conf:3: unterminated quoted value" },
		{ "a = \"x\" y\n", "t.conf:1: unexpected text after quoted value" },
		{ "a = \"\\n\"\n", "t.conf:1: unknown escape in quoted value (only \\\" and \\\\)" },
		{ "a = x\"y\n", "t.conf:1: '\"' inside an unquoted value (quote the whole value)" },
		{ "a = 1\na = 2\n", "t.conf:2: duplicate setting 'a' (first at line 1)" },
		{ "s {\n a = 1\n}\ns {\n}\n", "t.conf:4: duplicate section 's' (first at line 1)" },
		{ "l x {\n}\nl x {\n}\n", "t.conf:3: duplicate section 'l x' (first at line 1)" },
		{ "s { a = 1 }\n", "t.conf:1: unexpected text after '{' (one statement per line)" },
		{ "s {\n} x\n", "t.conf:2: unexpected text after '}' (one statement per line)" },
		{ "= 3\n", "t.conf:1: expected a setting or section name" },
		{ "a:b = 3\n", "t.conf:1: invalid character ':' in name" },
		{ "s x y {\n}\n", "t.conf:1: expected '=' or '{' after 's'" },
		{ "a = {\n", "t.conf:1: 'a = {': a section is written 'a {'" },
		{ "a = 1\nb = x\001y\n", "t.conf:2: control character 0x01" },
		{ "a = 1\nb = x\0y\n", "t.conf:2: NUL byte (is this a text file?)" },
		{ "include = /etc/x.conf\n", "t.conf:1: include is not supported yet" },
		{ "s \"lab\n", "t.conf:1: unterminated quoted value" },
		{ "s \"a\" x {\n}\n", "t.conf:1: expected '=' or '{' after 's'" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *err = NULL;
		/* Texts with a NUL: take the length from the literal case. */
		size_t len = strlen(cases[i].text);
		if (strstr(cases[i].error, "NUL") != NULL)
			len = 12;
		struct ma_config *cfg = ma_config_parse("t.conf", cases[i].text, len, &err);
		CHECK(cfg == NULL);
		if (cfg != NULL) {
			fprintf(stderr, "  case %zu accepted\n", i);
			ma_config_free(&cfg);
			continue;
		}
		if (err == NULL || strcmp(err, cases[i].error) != 0) {
			fprintf(stderr, "  case %zu: got '%s'\n  expected '%s'\n", i,
				err ? err : "(null)", cases[i].error);
			failures++;
		}
		free(err);
	}
}

static void test_bounds(void)
{
	char *err;
	/* Line length: 4096 bytes ok, 4097 refused (with its line number). */
	char *text = malloc(5000);
	memcpy(text, "x = ", 4);
	memset(text + 4, 'v', 4092);
	text[4096] = '\n';
	text[4097] = '\0';
	struct ma_config *cfg = parse(text, &err);
	CHECK(cfg != NULL);
	if (cfg) {
		CHECK(strlen(ma_config_get(ma_config_root(cfg), "x", "")) == 4092);
		ma_config_free(&cfg);
	} else {
		free(err);
	}
	memcpy(text, "a = 1\n", 6);
	memcpy(text + 6, "x = ", 4);
	memset(text + 10, 'v', 4093);
	text[4103] = '\n';
	text[4104] = '\0';
	cfg = parse(text, &err);
	CHECK(cfg == NULL);
	CHECK(err && strcmp(err, "t.conf:2: line too long (max 4096 bytes)") == 0);
	free(err);
	free(text);

	/* Depth: 16 nested sections ok, 17 refused. */
	char buf[2048];
	for (int depth = 16; depth <= 17; depth++) {
		size_t pos = 0;
		for (int i = 0; i < depth; i++)
			pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "s%d {\n", i);
		for (int i = 0; i < depth; i++)
			pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "}\n");
		cfg = parse(buf, &err);
		if (depth == 16) {
			CHECK(cfg != NULL);
			ma_config_free(&cfg);
		} else {
			CHECK(cfg == NULL);
			CHECK(err && strcmp(err, "t.conf:17: sections nested too deep (max 16)") == 0);
			free(err);
		}
	}

	/* File size: over 1 MiB refused before parsing. */
	size_t big = 1024 * 1024 + 1;
	text = malloc(big);
	memset(text, '#', big);
	cfg = ma_config_parse("t.conf", text, big, &err);
	CHECK(cfg == NULL);
	CHECK(err && strstr(err, "too large") != NULL);
	free(err);
	/* Exactly 1 MiB of comment lines is fine. */
	for (size_t i = 99; i < big - 1; i += 100)
		text[i] = '\n';
	cfg = ma_config_parse("t.conf", text, big - 1, &err);
	CHECK(cfg != NULL);
	ma_config_free(&cfg);
	free(text);

	/* Too many keys in one section. */
	size_t cap = 5000 * 16;
	text = malloc(cap);
	size_t pos = 0;
	for (int i = 0; i < 4097; i++)
		pos += (size_t)snprintf(text + pos, cap - pos, "k%d = 1\n", i);
	cfg = parse(text, &err);
	CHECK(cfg == NULL);
	CHECK(err && strstr(err, "t.conf:4097: too many") == err);
	free(err);
	free(text);
}

static void test_getters(void)
{
	static const char text[] =
		"n = 42\nbig = 99999999999999999999999\nneg = -1\nhex = 0x10\n"
		"sz1 = 512\nsz2 = 64k\nsz3 = 16M\nsz4 = 4G\nsz5 = 2x\nsz6 = 99999999999G\n"
		"d1 = 30\nd2 = 10m\nd3 = 2h\nd4 = 1d\nd5 = 1.5s\nd6 = 5 m\nd7 = inf\nd8 = 250ms\n"
		"d9 = .5\n"
		"b1 = yes\nb2 = Off\nb3 = 1\nb4 = maybe\n"
		"e1 = starttls\ne2 = IMPLICIT\ne3 = tls\n";
	char *err;
	struct ma_config *cfg = parse(text, &err);
	CHECK(cfg != NULL);
	if (cfg == NULL) {
		fprintf(stderr, "  %s\n", err);
		free(err);
		return;
	}
	const struct ma_config_section *r = ma_config_root(cfg);
	uint64_t u = 0;
	CHECK(ma_config_get_uint(r, "n", 0, 100, &u, &err) == 0 && u == 42);
	CHECK(ma_config_get_uint(r, "absent", 7, 100, &u, &err) == 0 && u == 7);
	CHECK(ma_config_get_uint(r, "n", 0, 41, &u, &err) == -1);
	CHECK(err && strcmp(err, "t.conf:1: n: expected a whole number from 0 to 41 (got '42')") == 0);
	free(err);
	CHECK(ma_config_get_uint(r, "big", 0, UINT64_MAX, &u, &err) == -1);
	free(err);
	CHECK(ma_config_get_uint(r, "neg", 0, 100, &u, &err) == -1);
	free(err);
	CHECK(ma_config_get_uint(r, "hex", 0, 100, &u, &err) == -1);
	free(err);

	CHECK(ma_config_get_size(r, "sz1", 0, &u, &err) == 0 && u == 512);
	CHECK(ma_config_get_size(r, "sz2", 0, &u, &err) == 0 && u == 64 * 1024);
	CHECK(ma_config_get_size(r, "sz3", 0, &u, &err) == 0 && u == 16 * 1024 * 1024);
	CHECK(ma_config_get_size(r, "sz4", 0, &u, &err) == 0 && u == 4ULL << 30);
	CHECK(ma_config_get_size(r, "absent", 123, &u, &err) == 0 && u == 123);
	CHECK(ma_config_get_size(r, "sz5", 0, &u, &err) == -1);
	CHECK(err && strstr(err, "t.conf:9: sz5: ") == err);
	free(err);
	CHECK(ma_config_get_size(r, "sz6", 0, &u, &err) == -1);	/* overflow */
	free(err);

	double d = 0;
	CHECK(ma_config_get_seconds(r, "d1", 0, &d, &err) == 0 && d == 30);
	CHECK(ma_config_get_seconds(r, "d2", 0, &d, &err) == 0 && d == 600);
	CHECK(ma_config_get_seconds(r, "d3", 0, &d, &err) == 0 && d == 7200);
	CHECK(ma_config_get_seconds(r, "d4", 0, &d, &err) == 0 && d == 86400);
	CHECK(ma_config_get_seconds(r, "d5", 0, &d, &err) == 0 && d == 1.5);
	CHECK(ma_config_get_seconds(r, "d8", 0, &d, &err) == 0 && d > 0.2499 && d < 0.2501);
	CHECK(ma_config_get_seconds(r, "absent", 2.5, &d, &err) == 0 && d == 2.5);
	CHECK(ma_config_get_seconds(r, "d6", 0, &d, &err) == -1);
	free(err);
	CHECK(ma_config_get_seconds(r, "d7", 0, &d, &err) == -1);
	free(err);
	CHECK(ma_config_get_seconds(r, "d9", 0, &d, &err) == -1);
	free(err);

	bool b = false;
	CHECK(ma_config_get_bool(r, "b1", false, &b, &err) == 0 && b);
	CHECK(ma_config_get_bool(r, "b2", true, &b, &err) == 0 && !b);
	CHECK(ma_config_get_bool(r, "b3", false, &b, &err) == 0 && b);
	CHECK(ma_config_get_bool(r, "absent", true, &b, &err) == 0 && b);
	CHECK(ma_config_get_bool(r, "b4", false, &b, &err) == -1);
	CHECK(err && strstr(err, "t.conf:23: b4: expected yes or no") == err);
	free(err);

	static const char *const modes[] = { "none", "starttls", "implicit", NULL };
	unsigned idx = 9;
	CHECK(ma_config_get_enum(r, "e1", modes, 0, &idx, &err) == 0 && idx == 1);
	CHECK(ma_config_get_enum(r, "e2", modes, 0, &idx, &err) == 0 && idx == 2);
	CHECK(ma_config_get_enum(r, "absent", modes, 0, &idx, &err) == 0 && idx == 0);
	CHECK(ma_config_get_enum(r, "e3", modes, 0, &idx, &err) == -1);
	CHECK(err && strstr(err, "none, starttls, implicit") != NULL);
	free(err);

	/* Every key was read by some getter, even the bad ones. */
	CHECK(ma_config_check_unused(cfg, &err) == 0);
	ma_config_free(&cfg);
}

/* Deterministic pseudo-random garbage: the parser must return either a
 * tree or an error, never crash (ASan run catches overreads). */
static void test_garbage(void)
{
	static const char alphabet[] = "ab =\"\\{}#\n\r\t\0\x01\xff x1_.-";
	uint32_t seed = 12345;
	char buf[512];
	unsigned parsed = 0, refused = 0;
	for (int round = 0; round < 20000; round++) {
		size_t len = (size_t)(round % 500);
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			unsigned r = seed >> 16;
			buf[i] = (round & 1) ? (char)(r & 0xff)
				: alphabet[r % (sizeof(alphabet) - 1)];
		}
		char *err = NULL;
		struct ma_config *cfg = ma_config_parse("g.conf", buf, len, &err);
		if (cfg != NULL) {
			parsed++;
			if (ma_config_check_unused(cfg, &err) < 0)
				free(err);
			ma_config_free(&cfg);
		} else {
			refused++;
			CHECK(err != NULL && strncmp(err, "g.conf:", 7) == 0);
			free(err);
		}
	}
	CHECK(parsed > 0 && refused > 0);
}

static void test_load(void)
{
	char *err = NULL;
	struct ma_config *cfg = ma_config_load("/nonexistent/x.conf", &err);
	CHECK(cfg == NULL);
	CHECK(err && strstr(err, "/nonexistent/x.conf: cannot open") == err);
	free(err);
	cfg = ma_config_load("/tmp", &err);
	CHECK(cfg == NULL);
	free(err);

	/* The shipped sample parses. */
	const char *src = getenv("MA_TEST_SOURCE_ROOT");
	if (src != NULL) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/etc/mailaccess.conf", src);
		cfg = ma_config_load(path, &err);
		CHECK(cfg != NULL);
		if (cfg == NULL) {
			fprintf(stderr, "  %s\n", err);
			free(err);
		} else {
			const struct ma_config_section *st =
				ma_config_child(ma_config_root(cfg), "store");
			CHECK(st && strcmp(ma_config_get(st, "backend", ""), "lmdb") == 0);
		}
		ma_config_free(&cfg);
	}
}

int main(void)
{
	test_valid();
	test_unused_sections();
	test_errors();
	test_bounds();
	test_getters();
	test_garbage();
	test_load();
	if (failures) {
		fprintf(stderr, "test-config: %d failure(s)\n", failures);
		return 1;
	}
	printf("test-config: ok\n");
	return 0;
}
