/*
 * plugin.h - the plugin ABI.
 *
 * Every plugin (.so in plugin_dir) exports exactly one symbol,
 *
 *     MA_PLUGIN_EXPORT const struct ma_plugin mailaccess_plugin = { ... };
 *
 * and is built with -fvisibility=hidden so nothing else leaks. The loader
 * dlopens with RTLD_NOW|RTLD_LOCAL and refuses (with a log line naming the
 * file and the reason, never a crash): a missing symbol, abi_major !=
 * MA_ABI_MAJOR, abi_minor > MA_ABI_MINOR, struct_size smaller than the v1
 * descriptor, an unknown kind, a name already loaded, a NULL ops table, or
 * a file or directory writable by group/others or not owned by root or the
 * running user.
 *
 * Compatibility: fields are only ever added at the end of this struct and of
 * each ops table; struct_size tells the core which fields a plugin has.
 * A minor bump adds fields; a major bump breaks.
 */
#ifndef MAILACCESS_PLUGIN_H
#define MAILACCESS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define MA_ABI_MAJOR 1
#define MA_ABI_MINOR 0

#define MA_PLUGIN_EXPORT __attribute__((visibility("default")))

struct ma_core;
struct ma_config_section;

enum ma_plugin_kind {
	MA_PLUGIN_PROTOCOL = 1,	/* ops: const struct ma_protocol_ops * (conn.h) */
	MA_PLUGIN_STORE = 2,	/* ops: const struct ma_store_backend * (store.h) */
	MA_PLUGIN_AUTH = 3,	/* ops: const struct ma_auth_ops * (auth.h) */
	MA_PLUGIN_EXTENSION = 4,/* ops: unused (may be NULL) */
};

struct ma_plugin {
	uint16_t abi_major;		/* MA_ABI_MAJOR at build time */
	uint16_t abi_minor;		/* MA_ABI_MINOR at build time */
	uint32_t struct_size;		/* sizeof(struct ma_plugin) */
	enum ma_plugin_kind kind;
	const char *name;		/* unique: "pop3", "lmdb", "passwd" */
	const char *version;		/* the plugin's own version */
	/* Called once after loading, in the main process, before any
	 * connection. `config` is the plugin's own section (may be NULL).
	 * Read every key you accept here with the ma_config_get*() getters:
	 * after init the core reports any key nobody read as unknown, with
	 * its FILE:LINE, so admins learn of their typos at startup.
	 * Sets *ctx_r to the plugin's instance data, passed back to every
	 * op. Return 0, or -1 with *error_r (static or malloc'd-and-leaked
	 * string is fine: it is logged once and the program exits). */
	int (*init)(struct ma_core *core, const struct ma_config_section *config,
		    void **ctx_r, const char **error_r);
	/* Called once at shutdown; NULL allowed. */
	void (*deinit)(void *ctx);
	/* Kind-specific operation table, see enum ma_plugin_kind. */
	const void *ops;
};

#define MA_PLUGIN_INIT(kind_, name_, version_) \
	.abi_major = MA_ABI_MAJOR, .abi_minor = MA_ABI_MINOR, \
	.struct_size = sizeof(struct ma_plugin), .kind = (kind_), \
	.name = (name_), .version = (version_)

/* A loaded plugin (owned by the core). */
struct ma_loaded_plugin {
	const struct ma_plugin *desc;
	void *ctx;			/* from init() */
	const char *path;
	void *dl_handle;
};

/* Loads one plugin file; on refusal returns NULL and sets *error_r
 * (malloc'd) to why. Does not call init(). */
struct ma_loaded_plugin *ma_plugin_load(const char *path, char **error_r);
void ma_plugin_unload(struct ma_loaded_plugin **p);

#endif
