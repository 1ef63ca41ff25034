/*
 * test-util.c - base64 against the RFC 4648 section 10 vectors both ways,
 * and the strict decoder's refusals (bad length, bad characters,
 * whitespace, misplaced padding, non-zero pad bits); ma_parse_uint bounds;
 * ma_slice_ieq; ma_wipe; ma_random; ma_monotonic.
 */
#include <stdio.h>
#include <string.h>

#include <mailaccess/mailaccess.h>

static int failures;
#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
	failures++; } } while (0)

static void test_base64_vectors(void)
{
	static const char *const v[][2] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		size_t len = strlen(v[i][0]);
		char enc[32];
		CHECK(ma_base64_encoded_len(len) == strlen(v[i][1]));
		ma_base64_encode(v[i][0], len, enc);
		CHECK(strcmp(enc, v[i][1]) == 0);
		unsigned char dec[32];
		long n = ma_base64_decode(v[i][1], strlen(v[i][1]), dec);
		CHECK(n == (long)len);
		CHECK(n >= 0 && memcmp(dec, v[i][0], len) == 0 && dec[len] == '\0');
	}
	/* All byte values round-trip; SASL PLAIN carries NULs. */
	unsigned char all[256], back[256 + 4];
	char enc[400];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	ma_base64_encode(all, 256, enc);
	CHECK(ma_base64_decode(enc, strlen(enc), back) == 256);
	CHECK(memcmp(all, back, 256) == 0);
	/* AUTH PLAIN "\0user\0pass" */
	CHECK(ma_base64_decode("AHVzZXIAcGFzcw==", 16, back) == 10);
	CHECK(memcmp(back, "\0user\0pass", 10) == 0);
}

static void test_base64_invalid(void)
{
	static const char *const bad[] = {
		"Zg",		/* missing padding */
		"Zg=",		/* short */
		"Zm9",		/* length not a multiple of 4 */
		"Zg== ",	/* trailing space */
		" Zg==",
		"Zm 9v",
		"Zm9v\r\n",
		"Z===",		/* too much padding */
		"====",
		"Zg==Zm9v",	/* padding before the end */
		"Zm=v",		/* '=' inside a quantum */
		"Zh==",		/* non-zero pad bits (RFC 4648 3.5) */
		"Zm9=",
		"Zm9v!A==",
		"Zm9v-_==",	/* base64url alphabet is not base64 */
		"\x80\x81\x82\x83",
	};
	unsigned char out[32];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		long n = ma_base64_decode(bad[i], strlen(bad[i]), out);
		if (n != -1)
			fprintf(stderr, "accepted bad base64 '%s'\n", bad[i]);
		CHECK(n == -1);
	}
	/* Embedded NUL inside the declared length. */
	CHECK(ma_base64_decode("Zm\0v", 4, out) == -1);
}

static void test_parse_uint(void)
{
	uint64_t v = 7;
	CHECK(ma_parse_uint("0", 1, 10, &v) == 0 && v == 0);
	CHECK(ma_parse_uint("10", 2, 10, &v) == 0 && v == 10);
	CHECK(ma_parse_uint("11", 2, 10, &v) == -1);
	CHECK(ma_parse_uint("5", 1, 3, &v) == -1);	/* one digit over max */
	CHECK(ma_parse_uint("", 0, 10, &v) == -1);
	CHECK(ma_parse_uint("-1", 2, 10, &v) == -1);
	CHECK(ma_parse_uint("+1", 2, 10, &v) == -1);
	CHECK(ma_parse_uint(" 1", 2, 10, &v) == -1);
	CHECK(ma_parse_uint("1x", 2, 10, &v) == -1);
	CHECK(ma_parse_uint("18446744073709551615", 20, UINT64_MAX, &v) == 0 &&
	      v == UINT64_MAX);
	CHECK(ma_parse_uint("18446744073709551616", 20, UINT64_MAX, &v) == -1);
	CHECK(ma_parse_uint("99999999999999999999999", 23, UINT64_MAX, &v) == -1);
	CHECK(ma_parse_uint("123456", 3, 1000, &v) == 0 && v == 123); /* slice */
	CHECK(ma_parse_uint("0000000000000000000000042", 25, 100, &v) == 0 && v == 42);
}

static void test_misc(void)
{
	CHECK(ma_slice_ieq("USER x", 4, "user"));
	CHECK(ma_slice_ieq("uSeR", 4, "USER"));
	CHECK(!ma_slice_ieq("USE", 3, "user"));
	CHECK(!ma_slice_ieq("USERS", 5, "user"));
	CHECK(ma_slice_ieq("", 0, ""));
	CHECK(!ma_slice_ieq("\xc4", 1, "d"));

	char secret[16] = "hunter2hunter2!";
	ma_wipe(secret, sizeof(secret));
	int zero = 1;
	for (size_t i = 0; i < sizeof(secret); i++)
		zero &= secret[i] == 0;
	CHECK(zero);
	ma_wipe(NULL, 0);

	unsigned char r1[32] = { 0 }, r2[32] = { 0 };
	ma_random(r1, sizeof(r1));
	ma_random(r2, sizeof(r2));
	CHECK(memcmp(r1, r2, sizeof(r1)) != 0);

	double t1 = ma_monotonic(), t2 = ma_monotonic();
	CHECK(t1 > 0 && t2 >= t1);
}

int main(void)
{
	test_base64_vectors();
	test_base64_invalid();
	test_parse_uint();
	test_misc();
	if (failures) {
		fprintf(stderr, "test-util: %d failure(s)\n", failures);
		return 1;
	}
	printf("test-util: ok\n");
	return 0;
}
