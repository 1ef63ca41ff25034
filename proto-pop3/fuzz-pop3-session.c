/*
 * fuzz-pop3-session.c - libFuzzer target: arbitrary client bytes through
 * the real session/command/parser code on the fake core of
 * test-pop3-session.c. The first input byte picks the output limit and
 * the listener flags, the second the chunk size; the rest is the client.
 * Logs in first half the time so TRANSACTION commands are reached.
 *
 * Build (clang only; meson builds it when the compiler is clang):
 *   clang -g -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *     -Icore/include -Iproto-pop3 proto-pop3/fuzz-pop3-session.c \
 *     proto-pop3/pop3-{session,commands,plugin,parser,uidl,dotstuff}.c \
 *     -o fuzz-pop3-session
 *   ./fuzz-pop3-session -max_len=4096 corpus/
 */
#define POP3_FUZZ 1
/* the unit tests in there are not run here */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "test-pop3-session.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ma_conn *c;
	size_t chunk, off;

	if (size < 2 || size > 32768)
		return 0;
	box_reset();
	c = conn_new();
	c->high_water = 1 + (size_t)(data[0] & 0x3f) * 8;
	c->starttls_avail = (data[0] & 0x40) != 0;
	c->plaintext_ok = true;
	chunk = 1 + data[1] % 64;
	if (data[0] & 0x80) {
		feed(c, "USER bob\r\nPASS secret\r\n");
		pump(c);
	}
	for (off = 2; off < size && !c->close_done; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;

		feed_bytes(c, data + off, n);
		pump(c);
	}
	if (expunge_not_in_update != 0)
		abort();	/* only QUIT from TRANSACTION may expunge */
	conn_free(c);
	if (user_opens != 0 || box_opens != 0 || msg_reads_open != 0)
		abort();	/* store handles leaked */
	failures = 0;
	return 0;
}
