/*
 * core.h - the core object: parsed config, event loop, loaded plugins, the
 * configured store and auth sources. One per process. Plugins get it in
 * init() and through ma_conn_core().
 *
 * Config sections the core reads (docs/config.md):
 *   root keys      plugin_dir, state_dir, log, log_level, user, group
 *   listener NAME  protocol, address, port, tls, (limits)
 *   tls            cert, key, priority, dh, and nested `domain NAME {cert key}`
 *   store          backend = NAME, the rest is the backend's
 *   auth NAME      one per auth source, tried in file order; the rest is the plugin's
 *   limits         global limits
 *   <protocol>     e.g. `pop3 { }`: handed to that protocol plugin
 *
 * Plugin files: <plugin_dir>/<protocol>.so for protocols ("pop3.so"),
 * store-<backend>.so for stores, auth-<name>.so for auth sources.
 */
#ifndef MAILACCESS_CORE_H
#define MAILACCESS_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct ma_config;
struct ma_config_section;
struct ma_loaded_plugin;
struct ma_store;
enum ma_plugin_kind;

enum ma_core_flags {
	/* Load protocol plugins named by listeners (the daemon). Without
	 * it only the store and auth plugins are loaded (mailaccessctl). */
	MA_CORE_PROTOCOLS = 1 << 0,
	/* Parse and load, but call no plugin init() that touches storage
	 * (config check). */
	MA_CORE_CHECK_ONLY = 1 << 1,
};

/* Reads config_path, loads and initialises plugins, opens the store.
 * NULL with *error_r (malloc'd) on failure. */
struct ma_core *ma_core_create(const char *config_path, unsigned flags,
			       char **error_r);
void ma_core_destroy(struct ma_core **core);

const struct ma_config *ma_core_config(const struct ma_core *core);
/* The process's libev loop (EV_DEFAULT unless replaced). */
struct ev_loop *ma_core_loop(const struct ma_core *core);
void ma_core_set_loop(struct ma_core *core, struct ev_loop *loop);

/* NULL if no plugin of that kind and name is loaded. */
const struct ma_loaded_plugin *ma_core_find_plugin(const struct ma_core *core,
						   enum ma_plugin_kind kind,
						   const char *name);
/* Iterate loaded plugins: pass prev = NULL first. */
const struct ma_loaded_plugin *ma_core_next_plugin(const struct ma_core *core,
						   const struct ma_loaded_plugin *prev);

/* The configured store (never NULL after a successful create). */
struct ma_store *ma_core_store(const struct ma_core *core);
const char *ma_core_state_dir(const struct ma_core *core);

/* A slot id for per-connection plugin data (ma_conn_ctx_get/set). */
unsigned ma_core_alloc_slot(struct ma_core *core);

/* A lock shared by every process of the server (workers, mailaccessctl):
 * an exclusive flock() on <state_dir>/locks/<kind>-<sha256(name)>. It is
 * never waited for: returns a handle (>= 0), or -1 with errno EWOULDBLOCK
 * if someone else holds it (another session in this or any other process),
 * or another errno if the lock file cannot be made. A process that dies
 * releases its locks with it. kind: [a-z0-9-], at most 32 bytes. */
int ma_core_lock_try(struct ma_core *core, const char *kind, const char *name);
/* Releases a handle from ma_core_lock_try(); -1 is ignored. */
void ma_core_unlock(int handle);

#endif
