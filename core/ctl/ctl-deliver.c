/*
 * ctl-deliver.c - `mailaccessctl [-c FILE] deliver USER [MAILBOX] < message`:
 * local delivery for an MTA (Postfix pipe(8), procmail-style setups).
 *
 * Reads the message from stdin (at most limits.max_message_size), turns
 * bare LF line ends into CRLF (the store keeps CRLF, RFC 5322 2.3; existing
 * CRLF and 8-bit bytes are left alone), makes sure it ends with CRLF, checks
 * the user exists through the auth sources, and appends it in one durable
 * store transaction: when this exits 0 the message is on disk.
 *
 * Exit codes (sysexits.h, as MTAs read them; docs/store.md):
 *   0  delivered             64 EX_USAGE     bad command line
 *   65 EX_DATAERR  empty or too large message (permanent: bounce)
 *   67 EX_NOUSER   no such user (permanent)
 *   75 EX_TEMPFAIL store or auth temporarily failing, store full (retry)
 *   77 EX_NOPERM   the store refused the write
 *   78 EX_CONFIG   config or plugin error (Postfix defers on it)
 *   74 EX_IOERR    reading stdin failed
 * A MAILBOX that does not exist (or is not a valid name) is not an error:
 * the message goes to INBOX and a line on stderr says so.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mailaccess/mailaccess.h>

#include "ctl.h"

#define DELIVER_DEFAULT_MAX ((uint64_t)64 << 20)

static int deliver_usage(void)
{
	fprintf(stderr, "usage: mailaccessctl [-c FILE] deliver USER [MAILBOX] < message\n");
	return EX_USAGE;
}

/* Reads all of stdin into *data_r (malloc'd), at most max bytes; 1 if the
 * input is larger (too big), 0 ok, -1 read error. */
static int deliver_read(int fd, uint64_t max, unsigned char **data_r,
			size_t *len_r)
{
	size_t alloc = 65536, len = 0;
	unsigned char *data = ma_malloc0(alloc);

	for (;;) {
		if (len == alloc) {
			if (alloc > max)
				break;
			alloc = alloc * 2 > max + 1 ? (size_t)max + 1 : alloc * 2;
			data = ma_realloc(data, alloc);
		}
		ssize_t n = read(fd, data + len, alloc - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(data);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			free(data);
			return 1;
		}
	}
	if (len > max) {
		free(data);
		return 1;
	}
	*data_r = data;
	*len_r = len;
	return 0;
}

/* Bare LF -> CRLF; adds a final CRLF if missing. Returns a new buffer. */
static unsigned char *deliver_crlf(const unsigned char *in, size_t len,
				   size_t *len_r)
{
	size_t extra = 2;

	for (size_t i = 0; i < len; i++)
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			extra++;
	unsigned char *out = ma_malloc0(len + extra);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = in[i];
	}
	if (o < 2 || out[o - 2] != '\r' || out[o - 1] != '\n') {
		/* A trailing lone CR becomes the CR of the final CRLF. */
		if (o > 0 && out[o - 1] == '\r')
			out[o++] = '\n';
		else {
			out[o++] = '\r';
			out[o++] = '\n';
		}
	}
	*len_r = o;
	return out;
}

static int deliver_exit_for(enum ma_error code)
{
	switch (code) {
	case MA_ERR_NOTFOUND:
		return EX_NOUSER;
	case MA_ERR_PERM:
		return EX_NOPERM;
	case MA_ERR_LIMIT:
	case MA_ERR_BADARGS:
		return EX_DATAERR;
	case MA_ERR_QUOTA:	/* LMDB map full: the admin can grow it */
	case MA_ERR_TEMP:
	case MA_ERR_INUSE:
	case MA_ERR_INTERNAL:
	default:
		return EX_TEMPFAIL;
	}
}

int ctl_deliver_main(const char *config_path, int argc, char **argv)
{
	const char *user_arg, *mailbox = "INBOX";
	char canon[MA_AUTH_USER_MAX];
	struct ma_core *core = NULL;
	char *error = NULL;
	unsigned char *raw = NULL, *msg = NULL;
	size_t raw_len = 0, msg_len = 0;
	uint64_t max = DELIVER_DEFAULT_MAX;
	struct ma_error_info err;
	struct ma_user *user = NULL;
	int ret;

	if (argc < 2 || argc > 3 || argv[1][0] == '\0')
		return deliver_usage();
	user_arg = argv[1];
	if (argc == 3)
		mailbox = argv[2];

	core = ma_core_create(config_path, 0, &error);
	if (core == NULL) {
		fprintf(stderr, "deliver: %s\n", error != NULL ? error : "cannot start");
		free(error);
		return EX_CONFIG;
	}
	const struct ma_config_section *limits =
		ma_config_child(ma_config_root(ma_core_config(core)), "limits");
	if (limits != NULL &&
	    ma_config_get_size(limits, "max_message_size", DELIVER_DEFAULT_MAX,
			       &max, &error) < 0) {
		fprintf(stderr, "deliver: %s\n", error);
		free(error);
		ret = EX_CONFIG;
		goto out;
	}

	if (ma_store_check_user_name(user_arg, &err) < 0) {
		fprintf(stderr, "deliver: %s: %s\n", user_arg, err.text);
		ret = EX_NOUSER;
		goto out;
	}
	/* The user must exist in an auth source: mail for a typo'd address
	 * must bounce, not create a store. */
	memset(canon, 0, sizeof(canon));
	switch (ma_auth_lookup_sync(core, user_arg, canon)) {
	case MA_AUTH_OK:
		if (canon[0] == '\0' || ma_store_check_user_name(canon, &err) < 0)
			snprintf(canon, sizeof(canon), "%s", user_arg);
		break;
	case MA_AUTH_FAIL:
	case MA_AUTH_UNKNOWN_USER:
		fprintf(stderr, "deliver: %s: no such user\n", user_arg);
		ret = EX_NOUSER;
		goto out;
	case MA_AUTH_TEMPFAIL:
	case MA_AUTH_DELAYED:
	default:
		fprintf(stderr, "deliver: %s: user lookup failed temporarily\n", user_arg);
		ret = EX_TEMPFAIL;
		goto out;
	}

	int rc = deliver_read(STDIN_FILENO, max, &raw, &raw_len);
	if (rc < 0) {
		fprintf(stderr, "deliver: reading the message: %s\n", strerror(errno));
		ret = EX_IOERR;
		goto out;
	}
	if (rc > 0) {
		fprintf(stderr, "deliver: message larger than max_message_size (%llu bytes)\n",
			(unsigned long long)max);
		ret = EX_DATAERR;
		goto out;
	}
	if (raw_len == 0) {
		fprintf(stderr, "deliver: empty message\n");
		ret = EX_DATAERR;
		goto out;
	}
	msg = deliver_crlf(raw, raw_len, &msg_len);
	free(raw);
	raw = NULL;
	if (msg_len > max) {
		fprintf(stderr, "deliver: message larger than max_message_size (%llu bytes)\n",
			(unsigned long long)max);
		ret = EX_DATAERR;
		goto out;
	}

	user = ma_store_user_open(ma_core_store(core), canon, &err);
	if (user == NULL) {
		fprintf(stderr, "deliver: %s: opening the store: %s\n", canon, err.text);
		ret = deliver_exit_for(err.code == MA_ERR_NOTFOUND ? MA_ERR_TEMP : err.code);
		goto out;
	}
	if (strcmp(mailbox, "INBOX") != 0) {
		struct ma_mailbox_status st;
		if (ma_store_mailbox_status(user, mailbox, &st, &err) < 0) {
			if (err.code != MA_ERR_NOTFOUND && err.code != MA_ERR_BADARGS) {
				fprintf(stderr, "deliver: %s: %s\n", mailbox, err.text);
				ret = deliver_exit_for(err.code);
				goto out;
			}
			fprintf(stderr, "deliver: mailbox '%s' %s, delivering to INBOX\n",
				mailbox, err.code == MA_ERR_NOTFOUND ?
				"does not exist" : "is not a valid name");
			mailbox = "INBOX";
		}
	}

	struct ma_append_msg am;
	uint32_t uid = 0, uidvalidity = 0;
	memset(&am, 0, sizeof(am));
	am.data = msg;
	am.size = msg_len;
	if (ma_store_append(user, mailbox, &am, 1, &uid, &uidvalidity, &err) < 0) {
		fprintf(stderr, "deliver: %s/%s: %s\n", canon, mailbox, err.text);
		/* Deleted between the check and the append: a retry will go
		 * to INBOX. */
		ret = err.code == MA_ERR_NOTFOUND ? EX_TEMPFAIL : deliver_exit_for(err.code);
		goto out;
	}
	ret = EX_OK;
out:
	ma_store_user_close(&user);
	free(raw);
	free(msg);
	ma_core_destroy(&core);
	return ret;
}
