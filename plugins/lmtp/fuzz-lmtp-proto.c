/*
 * fuzz-lmtp-proto.c - libFuzzer target for the pure LMTP parsers: the
 * input, split at its first byte's value, is fed to the DATA unstuffer in
 * two pieces (resumability), then every line of it to the MAIL/RCPT path,
 * parameter and detail parsers. Built with clang only (meson.build).
 */
#include "lmtp-private.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lmtp_dot d;
	struct ma_buf b;
	size_t split = size > 0 ? data[0] % (size + 1) : 0;
	size_t pos = 0;
	bool done = false;

	memset(&d, 0, sizeof(d));
	ma_buf_init(&b, 4096);
	pos = lmtp_dot_feed(&d, data, split, &b, &done);
	if (!done && pos == split)
		pos += lmtp_dot_feed(&d, data + split, size - split, &b, &done);
	if (pos > size)
		abort();
	ma_buf_free(&b);

	char *line = malloc(size + 1);
	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	for (char *p = line, *e; p != NULL; p = e) {
		char addr[LMTP_PATH_MAX + 1], user[LMTP_PATH_MAX + 1];
		char detail[LMTP_PATH_MAX + 1];
		const char *params, *bad;
		uint64_t sz;

		e = strchr(p, '\n');
		if (e != NULL)
			*e++ = '\0';
		if (lmtp_parse_path(p, "FROM:", true, addr, &params) == 0) {
			(void)lmtp_parse_mail_params(params, &sz, &bad);
			(void)lmtp_split_detail(addr, "+-", user, sizeof(user),
						detail, sizeof(detail));
		}
		if (lmtp_parse_path(p, "TO:", false, addr, &params) == 0 &&
		    strlen(addr) > LMTP_PATH_MAX)
			abort();
	}
	free(line);
	return 0;
}
