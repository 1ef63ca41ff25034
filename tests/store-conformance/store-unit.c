/*
 * store-unit.c - the setup and teardown the backends' unit tests share
 * (store-unit.h): dlopen the plugin, parse a one-section config, init the
 * plugin, build the minimal core, wrap it with ma_store_create().
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "store-checks.h"
#include "store-unit.h"

int sc_unit_open(struct sc_unit *t, const char *prog, const char *so_rel,
		 const char *name, const char *extra)
{
	const char *root = getenv("MA_TEST_BUILD_ROOT");
	char conf[8192], *cerr = NULL;
	const char *ierr = NULL;
	struct ma_loaded_plugin lp;
	void *p2 = NULL;

	memset(t, 0, sizeof(*t));
	t->prog = prog;
	snprintf(t->so, sizeof(t->so), "%s/%s", root != NULL ? root : ".", so_rel);
	t->dl = dlopen(t->so, RTLD_NOW | RTLD_LOCAL);
	if (t->dl == NULL) {
		fprintf(stderr, "dlopen %s: %s\n", t->so, dlerror());
		return -1;
	}
	t->desc = dlsym(t->dl, "mailaccess_plugin");
	if (t->desc == NULL || t->desc->kind != MA_PLUGIN_STORE ||
	    strcmp(t->desc->name, name) != 0) {
		fprintf(stderr, "no %s store descriptor in %s\n", name, t->so);
		return -1;
	}
	snprintf(t->dir, sizeof(t->dir), "/tmp/%.40s-XXXXXX", prog);
	if (mkdtemp(t->dir) == NULL) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(conf, sizeof(conf), "store {\n backend = %s\n path = %s/mail\n%s}\n",
		 name, t->dir, extra);
	t->cfg = ma_config_parse("test", conf, strlen(conf), &cerr);
	if (t->cfg == NULL) {
		fprintf(stderr, "config: %s\n", cerr);
		return -1;
	}
	/* A minimal core: just what store.c uses. */
	t->core.loop = ev_loop_new(0);
	ma_changebus_init(&t->core);
	/* No store section, no path: refused. */
	CHECK(t->desc->init(&t->core, NULL, &p2, &ierr) < 0);
	const struct ma_config_section *sec =
		ma_config_child(ma_config_root(t->cfg), "store");
	if (t->desc->init(&t->core, sec, &t->pctx, &ierr) < 0) {
		fprintf(stderr, "init: %s\n", ierr);
		return -1;
	}
	memset(&lp, 0, sizeof(lp));
	lp.desc = t->desc;
	lp.ctx = t->pctx;
	lp.path = t->so;
	t->store = ma_store_create(&t->core, &lp, &cerr);
	if (t->store == NULL) {
		fprintf(stderr, "ma_store_create: %s\n", cerr);
		return -1;
	}
	return 0;
}

int sc_unit_close(struct sc_unit *t)
{
	char cmd[128];

	ma_store_destroy(&t->store);
	CHECK(t->store == NULL);
	ma_changebus_deinit(&t->core);
	/* Before the loop goes: a plugin may watch files on it. */
	t->desc->deinit(t->pctx);
	ev_loop_destroy(t->core.loop);
	ma_config_free(&t->cfg);
	dlclose(t->dl);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", t->dir);
	if (sc_failures > 0) {
		fprintf(stderr, "%s: %d failures\n", t->prog, sc_failures);
		return 1;
	}
	printf("%s: ok\n", t->prog);
	return 0;
}
