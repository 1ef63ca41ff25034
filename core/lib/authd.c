/*
 * authd.c - STUB (to be replaced): the auth process and the anvil.
 * See core-private.h for the contract.
 */
#include "core-private.h"

#include <ev.h>
#include <stdlib.h>
#include <string.h>

int ma_authd_listen(struct ma_core *core, uid_t uid, gid_t gid, char **error_r)
{
	(void)core;
	(void)uid;
	(void)gid;
	*error_r = strdup("auth process not implemented yet");
	return -1;
}

int ma_authd_run(struct ma_core *core, int listen_fd)
{
	(void)listen_fd;
	ev_run(core->loop, 0);
	return 0;
}

int ma_auth_use_authd(struct ma_core *core, char **error_r)
{
	(void)core;
	(void)error_r;
	return 0;
}
