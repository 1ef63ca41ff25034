/*
 * mailaccessctl.c - the admin tool's entry point: global options, then one
 * subcommand dispatched to its ctl-*.c file (ctl.h). Exit codes follow
 * sysexits.h: 64 (EX_USAGE) for a bad command line, 78 (EX_CONFIG) for a
 * bad config, so scripts and MTAs can tell the cases apart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core-private.h"
#include "ctl.h"
#include "ma-build-config.h"

/* Weak: the subcommands live in files of their own and may be missing in
 * a partial build; a missing one reports itself instead of failing the
 * link. */
#pragma weak ctl_user_main
#pragma weak ctl_deliver_main

struct ctl_command {
	const char *name;
	int (*main)(const char *config_path, int argc, char **argv);
	const char *usage;
};

static void ctl_usage(FILE *out)
{
	fprintf(out,
		"usage: mailaccessctl [-c FILE] COMMAND [ARGS...]\n"
		"\n"
		"options:\n"
		"  -c FILE       config file (default: $MAILACCESS_CONFIG or %s)\n"
		"  -h, --help    show this help\n"
		"  -V, --version show the version\n"
		"\n"
		"commands:\n"
		"  config check                check the config file and the plugins it names\n"
		"  user add|del|passwd|list    manage users of the passwd auth source\n"
		"  deliver USER [MAILBOX]      store a message read from standard input\n"
		"  verify [--repair] USER...   check (and repair) users' stores\n",
		MA_CONFIG_FILE);
}

int main(int argc, char **argv)
{
	const char *config_path = NULL;
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-')
			break;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			ctl_usage(stdout);
			return 0;
		}
		if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			printf("mailaccessctl %s (plugin ABI %d.%d)\n", MA_VERSION,
			       MA_ABI_MAJOR, MA_ABI_MINOR);
			return 0;
		}
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "mailaccessctl: %s needs a file name\n", a);
				return EX_USAGE;
			}
			config_path = argv[++i];
			continue;
		}
		if (strncmp(a, "-c", 2) == 0) {
			config_path = a + 2;
			continue;
		}
		if (strncmp(a, "--config=", 9) == 0) {
			config_path = a + 9;
			continue;
		}
		fprintf(stderr, "mailaccessctl: unknown option '%s'\n", a);
		ctl_usage(stderr);
		return EX_USAGE;
	}
	if (i >= argc) {
		fprintf(stderr, "mailaccessctl: no command given\n");
		ctl_usage(stderr);
		return EX_USAGE;
	}
	if (config_path != NULL && *config_path == '\0') {
		fprintf(stderr, "mailaccessctl: empty config file name\n");
		return EX_USAGE;
	}

	const struct ctl_command commands[] = {
		{ "config", ctl_config_main, "config check" },
		{ "user", ctl_user_main, "user add|del|passwd|list" },
		{ "deliver", ctl_deliver_main, "deliver USER [MAILBOX]" },
		{ "verify", ctl_verify_main, "verify [--repair] USER..." },
	};
	for (size_t c = 0; c < sizeof(commands) / sizeof(commands[0]); c++) {
		if (strcmp(argv[i], commands[c].name) != 0)
			continue;
		if (commands[c].main == NULL) {
			fprintf(stderr, "mailaccessctl: '%s' is not available in this build\n",
				commands[c].name);
			return EX_UNAVAILABLE;
		}
		return commands[c].main(config_path, argc - i, argv + i);
	}
	fprintf(stderr, "mailaccessctl: unknown command '%s'\n", argv[i]);
	ctl_usage(stderr);
	return EX_USAGE;
}
