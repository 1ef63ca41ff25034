/*
 * store-unit.h - for the backends' unit tests, not the kit: a store plugin
 * loaded by path like the daemon would, on a fresh temp dir, wrapped by
 * ma_store_create() on a minimal core (an event loop and the change bus,
 * all store.c uses). Used by core/lib/test-store-kv.c (LMDB) and
 * backends/maildir/test-maildir.c; needs the core's private header, so the
 * kit (public headers only) does not build it.
 */
#ifndef STORE_UNIT_H
#define STORE_UNIT_H

#include "core-private.h"

struct sc_unit {
	const char *prog;		/* test name: temp dir, last line */
	char dir[64];			/* the temp dir; the store is DIR/mail */
	char so[4096];			/* the plugin's path */
	void *dl;
	const struct ma_plugin *desc;
	void *pctx;			/* what the plugin's init() gave */
	struct ma_config *cfg;
	struct ma_core core;
	struct ma_store *store;
};

/* Loads $MA_TEST_BUILD_ROOT/SO_REL, which must hold the store plugin NAME,
 * and inits it on `store { backend = NAME  path = DIR/mail  EXTRA }`.
 * -1 with the reason printed (then exit 1: nothing is cleaned up). */
int sc_unit_open(struct sc_unit *t, const char *prog, const char *so_rel,
		 const char *name, const char *extra);
/* Destroys the store, the plugin and the core, removes the temp dir and
 * prints the verdict: the exit code (1 if any check failed). */
int sc_unit_close(struct sc_unit *t);

#endif
