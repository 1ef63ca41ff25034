/*
 * test-plugin.c - one source, many test plugins for the loader and core
 * tests (core/lib/test-loader.c, test-core.c). Each variant is selected by
 * a -DTP_<VARIANT> flag from meson.build and breaks exactly one rule of
 * plugin.h, or (TP_GOOD, TP_STORE, TP_AUTH, TP_PROTO) follows them all.
 * The good ones count init()/deinit() calls in an exported-by-accessor
 * counter so tests can see that the core called them.
 */
#include <stdlib.h>
#include <string.h>

#include <mailaccess/mailaccess.h>

#ifndef TP_NAME
#define TP_NAME "test-good"
#endif

static int tp_state;	/* init()s minus deinit()s: checked via ctx */

static int tp_init(struct ma_core *core, const struct ma_config_section *config,
		   void **ctx_r, const char **error_r)
{
	(void)core;
	/* A key `fail = yes` makes init fail, for the core's error path. */
	if (config != NULL && strcmp(ma_config_get(config, "fail", "no"), "yes") == 0) {
		*error_r = "asked to fail";
		return -1;
	}
	tp_state++;
	*ctx_r = &tp_state;
	return 0;
}

static void tp_deinit(void *ctx)
{
	int *state = ctx;
	if (state != NULL)
		(*state)--;
}

#if defined(TP_AUTH)
static const struct ma_auth_ops tp_ops = { .struct_size = sizeof(struct ma_auth_ops) };
#define TP_KIND MA_PLUGIN_AUTH
#define TP_OPS &tp_ops
#elif defined(TP_PROTO)
static const struct ma_protocol_ops tp_ops = { .struct_size = sizeof(struct ma_protocol_ops) };
#define TP_KIND MA_PLUGIN_PROTOCOL
#define TP_OPS &tp_ops
#elif defined(TP_STORE)
/* The store ops are never called by the tests (check-only mode). */
static const int tp_ops = 0;
#define TP_KIND MA_PLUGIN_STORE
#define TP_OPS &tp_ops
#elif defined(TP_NOOPS)
#define TP_KIND MA_PLUGIN_STORE
#define TP_OPS NULL
#else
#define TP_KIND MA_PLUGIN_EXTENSION
#define TP_OPS NULL
#endif

#ifdef TP_NOSYM
/* Exports a descriptor under the wrong name. */
MA_PLUGIN_EXPORT const struct ma_plugin mailaccess_plugin_typo = {
#else
MA_PLUGIN_EXPORT const struct ma_plugin mailaccess_plugin = {
#endif
	MA_PLUGIN_INIT(TP_KIND, TP_NAME, "1.0"),
#ifdef TP_BADABI
	.abi_major = MA_ABI_MAJOR + 1,
#endif
#ifdef TP_NEWMINOR
	.abi_minor = MA_ABI_MINOR + 1,
#endif
#ifdef TP_SMALL
	.struct_size = 8,
#endif
#ifdef TP_BADKIND
	.kind = (enum ma_plugin_kind)42,
#endif
	.init = tp_init,
	.deinit = tp_deinit,
	.ops = TP_OPS,
};
