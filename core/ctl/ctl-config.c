/*
 * ctl-config.c - `mailaccessctl config check`: parses the config, loads
 * every plugin it names (store, auth sources, the protocols of the
 * listeners), lets the auth and protocol plugins check their own sections
 * (MA_CORE_CHECK_ONLY: the store is not opened), then reports any key
 * nobody read - a typo - with its file and line.
 *
 * The listener, tls and limits sections belong to the network code:
 * ma_net_init() on a MA_CORE_CHECK_ONLY core reads and checks all of them
 * (addresses resolved, TLS certificates and keys loaded) but binds no
 * port, so the check is safe while the daemon runs and catches the same
 * errors the daemon would at start. The check therefore runs as the user
 * the daemon starts as (root, usually) to read the TLS key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core-private.h"
#include "ctl.h"
#include "ma-build-config.h"

static void ctl_config_usage(FILE *out)
{
	fprintf(out, "usage: mailaccessctl [-c FILE] config check\n");
}

static int ctl_config_check(const char *config_path)
{
	char *err = NULL;
	struct ma_core *core = ma_core_create(config_path,
					      MA_CORE_PROTOCOLS | MA_CORE_CHECK_ONLY,
					      &err);
	if (core == NULL) {
		fprintf(stderr, "%s\n", err ? err : "config check failed");
		free(err);
		return EX_CONFIG;
	}
	int ret = 0;
	if (ma_net_init(core, &err) < 0) {
		fprintf(stderr, "%s\n", err ? err : "network config check failed");
		free(err);
		ma_net_deinit(core);
		ma_core_destroy(&core);
		return EX_CONFIG;
	}
	const struct ma_config *cfg = ma_core_config(core);
	if (ma_config_check_unused(cfg, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		free(err);
		ret = EX_CONFIG;
	} else {
		printf("config OK: %s\n", core->config_path);
	}
	ma_net_deinit(core);
	ma_core_destroy(&core);
	return ret;
}

int ctl_config_main(const char *config_path, int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "check") == 0)
		return ctl_config_check(config_path);
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		ctl_config_usage(stdout);
		return 0;
	}
	ctl_config_usage(stderr);
	return EX_USAGE;
}
