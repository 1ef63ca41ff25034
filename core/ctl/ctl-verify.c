/*
 * ctl-verify.c - `mailaccessctl [-c FILE] verify [--repair] USER...`:
 * checks each user's store through the store's own verify (counts against
 * headers, missing or orphan message bytes, UIDNEXT above every UID), and
 * with --repair fixes what can be derived again, so an admin never deletes
 * index files by hand.
 *
 * Output: one line per finding, then "USER: clean" or "USER: N problem(s)
 * [repaired]". Exit 0 when every user is clean (or was repaired), 1 when
 * problems remain, 67 for an unknown user, 75 on a temporary store error,
 * 64 usage, 78 config.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mailaccess/mailaccess.h>

#include "ctl.h"

static void ctl_verify_report(const char *line, void *ctx)
{
	printf("%s: %s\n", (const char *)ctx, line);
}

int ctl_verify_main(const char *config_path, int argc, char **argv)
{
	bool repair = false;
	int first = 1;

	if (argc > 1 && strcmp(argv[1], "--repair") == 0) {
		repair = true;
		first = 2;
	}
	if (first >= argc) {
		fprintf(stderr, "usage: mailaccessctl verify [--repair] USER...\n");
		return EX_USAGE;
	}

	char *error = NULL;
	struct ma_core *core = ma_core_create(config_path, 0, &error);
	if (core == NULL) {
		fprintf(stderr, "mailaccessctl: %s\n", error);
		free(error);
		return EX_CONFIG;
	}

	int status = 0;
	for (int i = first; i < argc; i++) {
		char canon[MA_AUTH_USER_MAX];
		struct ma_error_info err = { 0 };
		const char *name = argv[i];

		/* The store is keyed by the canonical name the auth source
		 * gives, the same one deliver and the protocols use. */
		enum ma_auth_status st = ma_auth_lookup_sync(core, name, canon);
		if (st == MA_AUTH_TEMPFAIL) {
			fprintf(stderr, "%s: auth source temporarily failing\n", name);
			status = status ? status : EX_TEMPFAIL;
			continue;
		}
		if (st != MA_AUTH_OK) {
			fprintf(stderr, "%s: no such user\n", name);
			status = status ? status : EX_NOUSER;
			continue;
		}
		struct ma_user *user = ma_store_user_open(ma_core_store(core), canon, &err);
		if (user == NULL) {
			fprintf(stderr, "%s: cannot open store: %s\n", canon, err.text);
			status = status ? status : EX_TEMPFAIL;
			continue;
		}
		int n = ma_store_verify(user, repair, ctl_verify_report, canon, &err);
		if (n < 0) {
			fprintf(stderr, "%s: verify failed: %s\n", canon, err.text);
			status = status ? status : EX_TEMPFAIL;
		} else if (n == 0) {
			printf("%s: clean\n", canon);
		} else {
			printf("%s: %d problem%s%s\n", canon, n, n == 1 ? "" : "s",
			       repair ? " repaired" : "");
			if (!repair && status == 0)
				status = 1;
		}
		ma_store_user_close(&user);
	}
	ma_core_destroy(&core);
	return status;
}
