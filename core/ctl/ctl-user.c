/*
 * ctl-user.c - `mailaccessctl user add|passwd|del|list`: user admin
 * against an auth source that has admin ops (auth-passwd; PAM has none).
 *
 *   mailaccessctl [-c FILE] user [--source NAME] add USER [PASSWORD]
 *   mailaccessctl [-c FILE] user [--source NAME] passwd USER [PASSWORD]
 *   mailaccessctl [-c FILE] user [--source NAME] del USER
 *   mailaccessctl [-c FILE] user [--source NAME] list
 *
 * Without PASSWORD the password is one line from standard input; on a
 * terminal it is asked twice with echo off. Exit codes (sysexits.h): 0 ok,
 * 64 usage, 65 bad user name or password, 67 no such user, 73 user exists,
 * 74 I/O error writing the file, 78 config (or no source with admin ops).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "core-private.h"
#include "ctl.h"

#define CTL_PASSWORD_MAX 1024

static void ctl_user_usage(void)
{
	fprintf(stderr,
		"usage: mailaccessctl [-c FILE] user [--source NAME] add USER [PASSWORD]\n"
		"       mailaccessctl [-c FILE] user [--source NAME] passwd USER [PASSWORD]\n"
		"       mailaccessctl [-c FILE] user [--source NAME] del USER\n"
		"       mailaccessctl [-c FILE] user [--source NAME] list\n"
		"Without PASSWORD, one line is read from standard input.\n");
}

/* One line (without the newline) into buf (CTL_PASSWORD_MAX + 2).
 * 0 ok, -1 on EOF/error, -2 too long. */
static int ctl_read_line(FILE *in, char *buf, size_t size)
{
	if (fgets(buf, (int)size, in) == NULL)
		return -1;
	size_t len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n') {
		buf[--len] = '\0';
		if (len > 0 && buf[len - 1] == '\r')
			buf[--len] = '\0';
		return 0;
	}
	if (len + 1 >= size) {
		ma_wipe(buf, size);
		return -2;
	}
	return 0;	/* last line without newline */
}

static int ctl_prompt(const char *prompt, char *buf, size_t size)
{
	struct termios old, quiet;
	bool tty = tcgetattr(STDIN_FILENO, &old) == 0;
	if (tty) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		quiet.c_lflag |= ICANON;
		/* Echo off before the prompt, or a quick typist's first
		 * characters would show. */
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
		fputs(prompt, stderr);
		fflush(stderr);
	}
	int r = ctl_read_line(stdin, buf, size);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	return r;
}

/* Fills password from the argument or stdin. Returns 0 or an exit code. */
static int ctl_get_password(const char *arg, char *password, size_t size)
{
	if (arg != NULL) {
		if (strlen(arg) + 1 >= size) {
			fprintf(stderr, "mailaccessctl: password too long\n");
			return EX_DATAERR;
		}
		snprintf(password, size, "%s", arg);
	} else {
		int r = ctl_prompt("Password: ", password, size);
		if (r == 0 && isatty(STDIN_FILENO)) {
			char again[CTL_PASSWORD_MAX + 2];
			r = ctl_prompt("Retype password: ", again, sizeof(again));
			if (r == 0 && strcmp(again, password) != 0) {
				fprintf(stderr, "mailaccessctl: passwords differ\n");
				ma_wipe(again, sizeof(again));
				return EX_DATAERR;
			}
			ma_wipe(again, sizeof(again));
		}
		if (r == -2) {
			fprintf(stderr, "mailaccessctl: password too long\n");
			return EX_DATAERR;
		}
		if (r < 0) {
			fprintf(stderr, "mailaccessctl: no password on standard input\n");
			return EX_DATAERR;
		}
	}
	if (password[0] == '\0') {
		fprintf(stderr, "mailaccessctl: empty password\n");
		return EX_DATAERR;
	}
	return 0;
}

/* Exit code for an admin op's error text. */
static int ctl_error_code(const char *error)
{
	if (error == NULL)
		return EX_SOFTWARE;
	if (strstr(error, "invalid") != NULL)
		return EX_DATAERR;
	if (strstr(error, "exists") != NULL)
		return EX_CANTCREAT;
	if (strstr(error, "no such user") != NULL)
		return EX_NOUSER;
	return EX_IOERR;
}

static void ctl_list_fn(const char *user, void *fctx)
{
	(void)fctx;
	printf("%s\n", user);
}

static const struct ma_loaded_plugin *
ctl_find_source(const struct ma_core *core, const char *name)
{
	for (unsigned i = 0; i < core->n_auth_sources; i++) {
		const struct ma_loaded_plugin *p = core->auth_sources[i];
		const struct ma_auth_ops *ops = p->desc->ops;
		if (name != NULL && strcmp(p->desc->name, name) != 0)
			continue;
		if (ops != NULL && ops->struct_size >= sizeof(struct ma_auth_ops) &&
		    ops->user_add != NULL && ops->user_del != NULL &&
		    ops->user_passwd != NULL && ops->user_list != NULL)
			return p;
		if (name != NULL)
			return NULL;
	}
	return NULL;
}

static int ctl_user_run(struct ma_core *core, const char *source,
			const char *verb, int argc, char **argv)
{
	const struct ma_loaded_plugin *p = ctl_find_source(core, source);
	if (p == NULL) {
		if (source != NULL)
			fprintf(stderr, "mailaccessctl: no auth source '%s' with user administration\n",
				source);
		else
			fprintf(stderr, "mailaccessctl: no auth source with user administration (e.g. 'auth passwd { file = ... }')\n");
		return EX_CONFIG;
	}
	const struct ma_auth_ops *ops = p->desc->ops;
	const char *error = NULL;
	char user_r[MA_AUTH_USER_MAX];
	char password[CTL_PASSWORD_MAX + 2];
	int ret;

	if (strcmp(verb, "list") == 0) {
		if (argc != 0) {
			ctl_user_usage();
			return EX_USAGE;
		}
		if (ops->user_list(p->ctx, ctl_list_fn, NULL, &error) < 0) {
			fprintf(stderr, "mailaccessctl: %s\n", error);
			return ctl_error_code(error);
		}
		return fflush(stdout) == 0 ? 0 : EX_IOERR;
	}

	bool is_add = strcmp(verb, "add") == 0;
	bool is_passwd = strcmp(verb, "passwd") == 0;
	bool is_del = strcmp(verb, "del") == 0;
	if ((!is_add && !is_passwd && !is_del) || argc < 1 ||
	    argc > (is_del ? 1 : 2)) {
		ctl_user_usage();
		return EX_USAGE;
	}
	const char *user = argv[0];
	if (user[0] == '\0' || strlen(user) >= MA_AUTH_USER_MAX) {
		fprintf(stderr, "mailaccessctl: invalid user name\n");
		return EX_DATAERR;
	}
	enum ma_auth_status st = ops->lookup(p->ctx, user, user_r);
	if (st == MA_AUTH_TEMPFAIL) {
		fprintf(stderr, "mailaccessctl: auth source '%s' unavailable\n",
			p->desc->name);
		return EX_TEMPFAIL;
	}
	if (is_add && st == MA_AUTH_OK) {
		fprintf(stderr, "mailaccessctl: user %s exists\n", user_r);
		return EX_CANTCREAT;
	}
	if (!is_add && st != MA_AUTH_OK) {
		fprintf(stderr, "mailaccessctl: no such user: %s\n", user);
		return EX_NOUSER;
	}
	if (is_del) {
		ret = ops->user_del(p->ctx, user, &error);
	} else {
		ret = ctl_get_password(argc > 1 ? argv[1] : NULL, password,
				       sizeof(password));
		if (ret != 0)
			return ret;
		ret = is_add ? ops->user_add(p->ctx, user, password, &error) :
			ops->user_passwd(p->ctx, user, password, &error);
		ma_wipe(password, sizeof(password));
	}
	if (ret < 0) {
		fprintf(stderr, "mailaccessctl: user %s %s: %s\n", verb, user,
			error != NULL ? error : "failed");
		return ctl_error_code(error);
	}
	return 0;
}

int ctl_user_main(const char *config_path, int argc, char **argv)
{
	const char *source = NULL;
	const char *verb = NULL;
	char *rest[3];
	int n_rest = 0;

	/* --source may come anywhere after "user". */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--source") == 0 || strcmp(a, "-s") == 0) {
			if (i + 1 >= argc) {
				ctl_user_usage();
				return EX_USAGE;
			}
			source = argv[++i];
		} else if (strncmp(a, "--source=", 9) == 0) {
			source = a + 9;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			ctl_user_usage();
			return 0;
		} else if (verb == NULL) {
			verb = a;
		} else if (n_rest < 3) {
			rest[n_rest++] = argv[i];
		} else {
			ctl_user_usage();
			return EX_USAGE;
		}
	}
	if (verb == NULL || (strcmp(verb, "add") != 0 && strcmp(verb, "del") != 0 &&
			     strcmp(verb, "passwd") != 0 && strcmp(verb, "list") != 0)) {
		ctl_user_usage();
		return EX_USAGE;
	}

	char *err = NULL;
	struct ma_core *core = ma_core_create(config_path, 0, &err);
	if (core == NULL) {
		fprintf(stderr, "mailaccessctl: %s\n", err != NULL ? err : "cannot start");
		free(err);
		return EX_CONFIG;
	}
	int ret = ctl_user_run(core, source, verb, n_rest, rest);
	ma_core_destroy(&core);
	return ret;
}
