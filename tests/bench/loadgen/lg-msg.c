/*
 * lg-msg.c - the messages ma-loadgen delivers (LMTP) and appends (IMAP).
 *
 * A body of plain words is generated once (CRLF lines of at most 76
 * bytes, none starting with '.', so no dot-stuffing is ever needed); each
 * message is a short header that makes it unique (Message-ID, Subject)
 * followed by that body, cut so the whole is about --size bytes. The
 * needle word (--text) goes at the start of the first body line when
 * asked, in place of filler bytes, so the size does not change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lg.h"

static char *lg_body;
static size_t lg_body_len;
static size_t lg_target;
static const char *lg_needle;
static size_t lg_needle_len;

#define LG_HDR_MAX 512

static const char *const lg_words[] = {
	"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
	"hotel", "india", "juliet", "kilo", "lima", "mike", "november",
	"oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform",
	"victor", "whiskey", "xray", "yankee", "zulu", "mail", "server",
	"message", "report", "meeting", "budget", "project", "schedule",
};

int lg_msg_init(size_t size, const char *needle)
{
	uint64_t r = 0x9e3779b97f4a7c15ull;
	size_t line = 0, nw = sizeof(lg_words) / sizeof(lg_words[0]);

	lg_target = size;
	lg_needle = needle;
	lg_needle_len = needle ? strlen(needle) : 0;
	if (lg_needle_len > 40)
		return -1;
	lg_body_len = size + 2;
	lg_body = malloc(lg_body_len + 80);
	if (!lg_body)
		return -1;
	for (size_t i = 0; i < lg_body_len; ) {
		r ^= r << 13; r ^= r >> 7; r ^= r << 17;
		const char *w = lg_words[r % nw];
		size_t wl = strlen(w);
		if (line + wl + 1 > 74) {
			memcpy(lg_body + i, "\r\n", 2);
			i += 2;
			line = 0;
			continue;
		}
		if (line) {
			lg_body[i++] = ' ';
			line++;
		}
		memcpy(lg_body + i, w, wl);
		i += wl;
		line += wl;
	}
	return 0;
}

size_t lg_msg_max(void)
{
	return LG_HDR_MAX + lg_body_len + 4;
}

size_t lg_msg_write(char *dst, uint64_t seq, const char *to, bool needle)
{
	int h = snprintf(dst, LG_HDR_MAX,
		"From: Load Generator <loadgen@example.net>\r\n"
		"To: <%.200s>\r\n"
		"Subject: loadgen message %llu\r\n"
		"Date: Sun, 22 Nov 2026 12:00:00 +0000\r\n"
		"Message-ID: <lg.%llu.%u@example.net>\r\n"
		"MIME-Version: 1.0\r\n"
		"Content-Type: text/plain; charset=us-ascii\r\n"
		"\r\n",
		to, (unsigned long long)seq, (unsigned long long)seq,
		lg.o.seed);
	size_t hl = h < 0 ? 0 : (size_t)h >= LG_HDR_MAX ? LG_HDR_MAX - 1 : (size_t)h;
	size_t bl = lg_target > hl + 2 ? lg_target - hl - 2 : 0;

	if (bl > lg_body_len)
		bl = lg_body_len;
	memcpy(dst + hl, lg_body, bl);
	/* Never end on a lone CR; then close the last line. */
	if (bl && dst[hl + bl - 1] == '\r')
		bl--;
	if (needle && lg_needle_len && bl > lg_needle_len + 1) {
		memcpy(dst + hl, lg_needle, lg_needle_len);
		dst[hl + lg_needle_len] = ' ';
	}
	memcpy(dst + hl + bl, "\r\n", 2);
	return hl + bl + 2;
}
