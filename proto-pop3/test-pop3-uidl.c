/*
 * test-pop3-uidl.c - UIDL presets print exactly what the other servers
 * print (docs/pop3.md has the sources), custom formats, and the checks
 * that keep every UIDL within RFC 1939 section 7.
 */
#include "pop3-private.h"

#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		failures++; \
		printf("FAIL %s:%d: ", __FILE__, __LINE__); \
		printf(__VA_ARGS__); \
		printf("\n"); \
	} \
} while (0)

static void expect(const char *spec, uint32_t uidvalidity, uint32_t uid,
		   const char *want)
{
	struct pop3_uidl_format fmt;
	const char *error = NULL;
	char out[POP3_UIDL_MAX + 1];
	size_t len;

	if (pop3_uidl_format_parse(spec, &fmt, &error) < 0) {
		CHECK(0, "'%s' refused: %s", spec, error);
		return;
	}
	len = pop3_uidl_expand(&fmt, uidvalidity, uid, out);
	CHECK(strcmp(out, want) == 0 && len == strlen(want),
	      "'%s' v=%u u=%u: got '%s' want '%s'", spec, uidvalidity, uid,
	      out, want);
	for (size_t i = 0; i < len; i++)
		CHECK(out[i] >= 0x21 && out[i] <= 0x7e, "bad char in '%s'", out);
}

static void refuse(const char *spec)
{
	struct pop3_uidl_format fmt;
	const char *error = NULL;

	CHECK(pop3_uidl_format_parse(spec, &fmt, &error) < 0,
	      "'%s' should be refused", spec);
	CHECK(error != NULL, "'%s': no error text", spec);
}

int main(void)
{
	/* Dovecot default %08Xu%08Xv: lower-case hex (var_expand %X is
	 * "%llx"), UID first */
	expect("dovecot", 1700000000u, 1, "000000016553f100");
	expect("dovecot", 0x5a3b, 0xbeef, "0000beef00005a3b");
	expect("dovecot", 4294967295u, 4294967295u, "ffffffffffffffff");
	expect("mailaccess", 0x5a3b, 0xbeef, "0000beef00005a3b");
	/* Courier (as Dovecot documents it): UIDVALIDITY-UID, decimal */
	expect("courier", 1700000000u, 42, "1700000000-42");
	/* Cyrus >= 2.1.4: UIDVALIDITY.UID, decimal */
	expect("cyrus", 1188390000u, 7, "1188390000.7");
	/* custom */
	expect("%u", 5, 123, "123");
	expect("%v-%u", 5, 123, "5-123");
	expect("%08Xv%08Xu", 0xabc, 0x10, "00000abc00000010");	/* UW ipop3d */
	expect("%Xu", 1, 255, "ff");
	expect("%010u", 1, 77, "0000000077");
	expect("x%%y%u", 1, 3, "x%y3");
	expect("%u.%v", 4294967295u, 4294967295u, "4294967295.4294967295");

	refuse("");
	refuse("%v");			/* no UID: not unique */
	refuse("a b%u");		/* space */
	refuse("\x7f%u");		/* DEL */
	refuse("\xc3\xa4%u");		/* 8-bit */
	refuse("%8u");			/* width without 0 truncates in Dovecot */
	refuse("%0u");
	refuse("%f");			/* maildir file names: not ours */
	refuse("%g");
	refuse("%u%");
	refuse("%Xx");
	refuse("%071u");
	/* 65 literal chars + 10 digits: could exceed 70 */
	refuse("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa%u");
	refuse("%061u%v");
	refuse("%u%u%u%u%u%u%u%u");	/* 80 digits possible */
	/* exactly 70 is fine */
	expect("%060u%v", 0, 1,
	       "0000000000000000000000000000000000000000000000000000000000010");
	if (failures > 0) {
		printf("%d failure(s)\n", failures);
		return 1;
	}
	printf("test-pop3-uidl: ok\n");
	return 0;
}
