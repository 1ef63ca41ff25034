/*
 * test-sasl.c - SASL PLAIN/LOGIN decoding and the exchange state machine.
 *
 * Includes sasl.c so its static parsers can be called directly, and fakes
 * the three things it needs from a conn (arena, plaintext policy) and from
 * auth.c (ma_auth_verify records what it was given). The executable's
 * definitions win over libmailaccess's at link time.
 */
#include "sasl.c"

#include <stdio.h>
#include <stdlib.h>

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
		failures++; \
	} \
} while (0)

/* ---- fakes ---- */
struct ma_conn {
	struct ma_arena *arena;
	bool plaintext_ok;
	void *slot0;
};

struct ma_core *ma_conn_core(const struct ma_conn *conn)
{
	(void)conn;
	return NULL;
}

unsigned ma_auth_sasl_slot(struct ma_core *core)
{
	(void)core;
	return 0;
}

void *ma_conn_ctx_get(const struct ma_conn *conn, unsigned slot)
{
	return slot == 0 ? conn->slot0 : NULL;
}

void ma_conn_ctx_set(struct ma_conn *conn, unsigned slot, void *data)
{
	if (slot == 0)
		conn->slot0 = data;
}

static int verify_calls;
static char verify_user[512];
static char verify_pass[2048];

bool ma_conn_plaintext_auth_allowed(const struct ma_conn *conn)
{
	return conn->plaintext_ok;
}

struct ma_arena *ma_conn_arena(struct ma_conn *conn)
{
	return conn->arena;
}

void ma_auth_verify(struct ma_conn *conn, const char *user,
		    const char *password, ma_auth_callback *cb, void *ctx)
{
	(void)conn; (void)cb; (void)ctx;
	verify_calls++;
	snprintf(verify_user, sizeof(verify_user), "%s", user);
	snprintf(verify_pass, sizeof(verify_pass), "%s", password);
}

static void test_cb(struct ma_conn *conn, enum ma_auth_status status,
		    const char *user, void *ctx)
{
	(void)conn; (void)status; (void)user; (void)ctx;
}

/* base64 of raw bytes (may contain NULs) into a static buffer. */
static const char *b64(const void *data, size_t len)
{
	static char out[16384];
	ma_base64_encode(data, len, out);
	return out;
}

static void reset_verify(void)
{
	verify_calls = 0;
	verify_user[0] = verify_pass[0] = '\0';
}

/* ---- pure parsers ---- */
static void test_plain_parse(void)
{
	char user[MA_AUTH_USER_MAX], pass[SASL_PASSWORD_MAX + 1];
	const char *err = NULL;

	CHECK(sasl_plain_parse((const unsigned char *)"\0bob\0secret", 11,
			       user, pass, &err) == 0);
	CHECK(strcmp(user, "bob") == 0 && strcmp(pass, "secret") == 0);

	/* authzid equal to authcid is fine */
	CHECK(sasl_plain_parse((const unsigned char *)"bob\0bob\0pw", 10,
			       user, pass, &err) == 0);
	CHECK(strcmp(user, "bob") == 0 && strcmp(pass, "pw") == 0);

	/* proxy authorization refused */
	err = NULL;
	CHECK(sasl_plain_parse((const unsigned char *)"admin\0bob\0pw", 12,
			       user, pass, &err) < 0);
	CHECK(err != NULL && strstr(err, "proxy") != NULL);
	CHECK(sasl_plain_parse((const unsigned char *)"bo\0bob\0pw", 9,
			       user, pass, &err) < 0);

	/* missing NULs, extra NUL in the password, empty fields */
	CHECK(sasl_plain_parse((const unsigned char *)"bobsecret", 9,
			       user, pass, &err) < 0);
	CHECK(sasl_plain_parse((const unsigned char *)"\0bobsecret", 10,
			       user, pass, &err) < 0);
	CHECK(sasl_plain_parse((const unsigned char *)"\0bob\0sec\0ret", 12,
			       user, pass, &err) < 0);
	CHECK(sasl_plain_parse((const unsigned char *)"\0\0pw", 4,
			       user, pass, &err) < 0);
	CHECK(sasl_plain_parse((const unsigned char *)"\0bob\0", 5,
			       user, pass, &err) < 0);
	CHECK(sasl_plain_parse((const unsigned char *)"", 0,
			       user, pass, &err) < 0);

	/* oversize user and password */
	unsigned char big[4000];
	memset(big, 'a', sizeof(big));
	big[0] = '\0';
	big[MA_AUTH_USER_MAX + 1] = '\0';	/* user of 256 bytes: too long */
	CHECK(sasl_plain_parse(big, MA_AUTH_USER_MAX + 10, user, pass, &err) < 0);
	big[MA_AUTH_USER_MAX] = '\0';		/* 255 bytes: fits */
	big[MA_AUTH_USER_MAX + 1] = 'a';
	CHECK(sasl_plain_parse(big, MA_AUTH_USER_MAX + 10, user, pass, &err) == 0);
	CHECK(strlen(user) == MA_AUTH_USER_MAX - 1 && strlen(pass) == 9);
	/* password of 1025 bytes refused, 1024 accepted */
	memset(big, 'p', sizeof(big));
	memcpy(big, "\0u\0", 3);
	CHECK(sasl_plain_parse(big, 3 + SASL_PASSWORD_MAX + 1, user, pass, &err) < 0);
	CHECK(sasl_plain_parse(big, 3 + SASL_PASSWORD_MAX, user, pass, &err) == 0);
	CHECK(strlen(pass) == SASL_PASSWORD_MAX);
}

static void test_decode(void)
{
	unsigned char out[SASL_DECODED_MAX + 1];
	const char *err = NULL;

	CHECK(sasl_decode("AGJvYgBzZWNyZXQ=", 16, out, &err) == 11);
	CHECK(memcmp(out, "\0bob\0secret", 11) == 0);
	CHECK(sasl_decode("", 0, out, &err) == 0);
	/* malformed: bad chars, missing padding, whitespace, embedded NUL */
	CHECK(sasl_decode("AGJvYgBzZWNyZXQ", 15, out, &err) < 0);
	CHECK(sasl_decode("AGJv YgBz", 9, out, &err) < 0);
	CHECK(sasl_decode("AGJv!gBz", 8, out, &err) < 0);
	CHECK(sasl_decode("AG\0vYgBz", 8, out, &err) < 0);
	CHECK(sasl_decode("=", 1, out, &err) < 0);
	/* oversize refused before decoding */
	char *huge = malloc(SASL_LINE_MAX + 4);
	memset(huge, 'A', SASL_LINE_MAX + 4);
	err = NULL;
	CHECK(sasl_decode(huge, SASL_LINE_MAX + 4, out, &err) < 0);
	CHECK(err != NULL && strstr(err, "long") != NULL);
	CHECK(sasl_decode(huge, SASL_LINE_MAX, out, &err) ==
	      SASL_LINE_MAX / 4 * 3);
	free(huge);
}

/* ---- the exchange through the public API ---- */
static void test_exchange(void)
{
	struct ma_conn conn = { .arena = ma_arena_create(0), .plaintext_ok = true };
	struct ma_sasl *sasl;
	const char *out;

	CHECK(strcmp(ma_sasl_mechanisms(&conn), "PLAIN LOGIN") == 0);

	/* PLAIN with initial response */
	reset_verify();
	CHECK(ma_sasl_begin(&conn, "PLAIN", "AGJvYgBzZWNyZXQ=", test_cb, NULL,
			    &sasl, &out) == MA_SASL_PENDING);
	CHECK(verify_calls == 1 && strcmp(verify_user, "bob") == 0 &&
	      strcmp(verify_pass, "secret") == 0);
	/* further lines after completion are an error */
	CHECK(ma_sasl_continue(sasl, "AAAA", 4, &out) == MA_SASL_ERROR);
	CHECK(verify_calls == 1);

	/* PLAIN without initial response; lowercase mechanism name */
	reset_verify();
	CHECK(ma_sasl_begin(&conn, "plain", NULL, test_cb, NULL, &sasl,
			    &out) == MA_SASL_CHALLENGE);
	CHECK(strcmp(out, "") == 0);
	const char *msg = b64("bob\0bob\0pw", 10);
	CHECK(ma_sasl_continue(sasl, msg, strlen(msg), &out) == MA_SASL_PENDING);
	CHECK(verify_calls == 1 && strcmp(verify_pass, "pw") == 0);

	/* PLAIN "=": empty response is malformed */
	reset_verify();
	CHECK(ma_sasl_begin(&conn, "PLAIN", "=", test_cb, NULL, &sasl,
			    &out) == MA_SASL_ERROR);
	CHECK(verify_calls == 0);

	/* PLAIN with authzid mismatch: refused, nothing verified */
	msg = b64("admin\0bob\0pw", 12);
	CHECK(ma_sasl_begin(&conn, "PLAIN", msg, test_cb, NULL, &sasl,
			    &out) == MA_SASL_ERROR);
	CHECK(verify_calls == 0);

	/* malformed base64 */
	CHECK(ma_sasl_begin(&conn, "PLAIN", NULL, test_cb, NULL, &sasl,
			    &out) == MA_SASL_CHALLENGE);
	CHECK(ma_sasl_continue(sasl, "not base64!", 11, &out) == MA_SASL_ERROR);
	CHECK(verify_calls == 0);

	/* "*" cancels */
	CHECK(ma_sasl_begin(&conn, "PLAIN", NULL, test_cb, NULL, &sasl,
			    &out) == MA_SASL_CHALLENGE);
	CHECK(ma_sasl_continue(sasl, "*", 1, &out) == MA_SASL_CANCELLED);
	CHECK(ma_sasl_continue(sasl, msg, strlen(msg), &out) == MA_SASL_ERROR);
	CHECK(verify_calls == 0);

	/* LOGIN, two steps */
	reset_verify();
	CHECK(ma_sasl_begin(&conn, "LOGIN", NULL, test_cb, NULL, &sasl,
			    &out) == MA_SASL_CHALLENGE);
	CHECK(strcmp(out, "VXNlcm5hbWU6") == 0);
	msg = b64("alice@example.org", 17);
	CHECK(ma_sasl_continue(sasl, msg, strlen(msg), &out) == MA_SASL_CHALLENGE);
	CHECK(strcmp(out, "UGFzc3dvcmQ6") == 0);
	msg = b64("pass word", 9);
	CHECK(ma_sasl_continue(sasl, msg, strlen(msg), &out) == MA_SASL_PENDING);
	CHECK(verify_calls == 1 && strcmp(verify_user, "alice@example.org") == 0 &&
	      strcmp(verify_pass, "pass word") == 0);

	/* LOGIN with the user as initial response */
	reset_verify();
	msg = b64("carol", 5);
	CHECK(ma_sasl_begin(&conn, "LOGIN", msg, test_cb, NULL, &sasl,
			    &out) == MA_SASL_CHALLENGE);
	CHECK(strcmp(out, "UGFzc3dvcmQ6") == 0);
	msg = b64("x", 1);
	CHECK(ma_sasl_continue(sasl, msg, strlen(msg), &out) == MA_SASL_PENDING);
	CHECK(verify_calls == 1 && strcmp(verify_user, "carol") == 0);

	/* LOGIN: embedded NUL in the user, empty password, cancel mid-way */
	reset_verify();
	CHECK(ma_sasl_begin(&conn, "LOGIN", NULL, test_cb, NULL, &sasl,
			    &out) == MA_SASL_CHALLENGE);
	msg = b64("bo\0b", 4);
	CHECK(ma_sasl_continue(sasl, msg, strlen(msg), &out) == MA_SASL_ERROR);
	CHECK(ma_sasl_begin(&conn, "LOGIN", b64("bob", 3), test_cb, NULL, &sasl,
			    &out) == MA_SASL_CHALLENGE);
	CHECK(ma_sasl_continue(sasl, "", 0, &out) == MA_SASL_ERROR);
	CHECK(ma_sasl_begin(&conn, "LOGIN", b64("bob", 3), test_cb, NULL, &sasl,
			    &out) == MA_SASL_CHALLENGE);
	CHECK(ma_sasl_continue(sasl, "*", 1, &out) == MA_SASL_CANCELLED);
	CHECK(verify_calls == 0);

	/* oversize line */
	char *huge = malloc(SASL_LINE_MAX + 8);
	memset(huge, 'A', SASL_LINE_MAX + 8);
	CHECK(ma_sasl_begin(&conn, "LOGIN", NULL, test_cb, NULL, &sasl,
			    &out) == MA_SASL_CHALLENGE);
	CHECK(ma_sasl_continue(sasl, huge, SASL_LINE_MAX + 8, &out) == MA_SASL_ERROR);
	/* a 300-byte user name decodes but is too long */
	memset(huge, 'u', 300);
	msg = b64(huge, 300);
	CHECK(ma_sasl_begin(&conn, "LOGIN", msg, test_cb, NULL, &sasl,
			    &out) == MA_SASL_ERROR);
	free(huge);
	CHECK(verify_calls == 0);

	/* unknown mechanism, NULL mechanism */
	CHECK(ma_sasl_begin(&conn, "CRAM-MD5", NULL, test_cb, NULL, &sasl,
			    &out) == MA_SASL_ERROR);
	CHECK(sasl == NULL);
	CHECK(ma_sasl_begin(&conn, NULL, NULL, test_cb, NULL, &sasl,
			    &out) == MA_SASL_ERROR);
	CHECK(ma_sasl_continue(NULL, "AAAA", 4, &out) == MA_SASL_ERROR);

	/* no plaintext allowed: nothing offered, nothing accepted */
	conn.plaintext_ok = false;
	CHECK(strcmp(ma_sasl_mechanisms(&conn), "") == 0);
	CHECK(ma_sasl_begin(&conn, "PLAIN", "AGJvYgBzZWNyZXQ=", test_cb, NULL,
			    &sasl, &out) == MA_SASL_ERROR);
	CHECK(verify_calls == 0);

	/* repeated AUTH + cancel does not grow the conn arena */
	conn.plaintext_ok = true;
	size_t before = ma_arena_allocated(conn.arena);
	for (int i = 0; i < 10000; i++) {
		CHECK(ma_sasl_begin(&conn, "LOGIN", NULL, test_cb, NULL, &sasl,
				    &out) == MA_SASL_CHALLENGE);
		CHECK(ma_sasl_continue(sasl, "*", 1, &out) == MA_SASL_CANCELLED);
	}
	CHECK(ma_arena_allocated(conn.arena) == before);

	ma_arena_destroy(&conn.arena);
}

/* Every prefix of a valid PLAIN message is rejected or verified, never
 * crashes; feeding truncated base64 must not call verify. */
static void test_truncations(void)
{
	struct ma_conn conn = { .arena = ma_arena_create(0), .plaintext_ok = true };
	struct ma_sasl *sasl;
	const char *out;
	char line[64];
	const char *full = "AGJvYgBzZWNyZXQ=";

	for (size_t i = 1; i < strlen(full); i++) {
		reset_verify();
		memcpy(line, full, i);
		CHECK(ma_sasl_begin(&conn, "PLAIN", NULL, test_cb, NULL, &sasl,
				    &out) == MA_SASL_CHALLENGE);
		enum ma_sasl_result r = ma_sasl_continue(sasl, line, i, &out);
		if (i % 4 != 0) {	/* unpadded: invalid base64 */
			CHECK(r == MA_SASL_ERROR);
			CHECK(verify_calls == 0);
		} else {		/* "\0bob\0secr" is a valid message */
			CHECK((r == MA_SASL_PENDING) == (verify_calls == 1));
		}
	}
	ma_arena_destroy(&conn.arena);
}

/* Random lines and random decoded messages: never a crash (run under
 * ASan), verify only for well-formed input. Deterministic seed. */
static void test_random(void)
{
	struct ma_conn conn = { .arena = ma_arena_create(0), .plaintext_ok = true };
	struct ma_sasl *sasl;
	const char *out;
	unsigned seed = 12345;
	unsigned char raw[600];
	char line[1000];
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=*\0 ";

	for (int i = 0; i < 20000; i++) {
		size_t n = (size_t)(rand_r(&seed) % 64);
		for (size_t k = 0; k < n; k++)
			raw[k] = (unsigned char)(rand_r(&seed) % 4 == 0 ? 0 :
						 rand_r(&seed) % 256);
		/* raw bytes as a PLAIN message */
		char user[MA_AUTH_USER_MAX], pass[SASL_PASSWORD_MAX + 1];
		const char *err;
		int r = sasl_plain_parse(raw, n, user, pass, &err);
		if (r == 0)
			CHECK(user[0] != '\0' && pass[0] != '\0');
		/* random characters as a client line */
		size_t m = (size_t)(rand_r(&seed) % 40);
		for (size_t k = 0; k < m; k++)
			line[k] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
		reset_verify();
		enum ma_sasl_result res = ma_sasl_begin(&conn,
			i % 2 ? "PLAIN" : "LOGIN", NULL, test_cb, NULL, &sasl, &out);
		CHECK(res == MA_SASL_CHALLENGE);
		res = ma_sasl_continue(sasl, line, m, &out);
		CHECK(res != MA_SASL_PENDING || verify_calls == 1);
		CHECK(res == MA_SASL_PENDING || verify_calls == 0);
		/* base64 of the random raw bytes */
		const char *msg = b64(raw, n);
		res = ma_sasl_continue(sasl, msg, strlen(msg), &out);
		(void)res;
	}
	ma_arena_destroy(&conn.arena);
}

int main(void)
{
	test_plain_parse();
	test_decode();
	test_exchange();
	test_truncations();
	test_random();
	if (failures > 0) {
		fprintf(stderr, "test-sasl: %d failures\n", failures);
		return 1;
	}
	printf("test-sasl: ok\n");
	return 0;
}
