/*
 * core.c - the core object (core.h): reads the config, sets up logging,
 * finds and loads the plugins the config names (and only those: a stray
 * .so in plugin_dir is never run), calls their init() with their own
 * section, then brings up the change bus, the store and the auth
 * framework. Teardown runs the same steps in reverse.
 *
 * Plugins are all loaded before any init() runs, so a refused plugin is
 * reported before any plugin has had side effects.
 *
 * MA_CORE_CHECK_ONLY (mailaccessctl config check): the config is parsed,
 * every plugin is loaded and the init() of auth and protocol plugins runs
 * (they validate their sections), but the store plugin's init() and
 * ma_store_create() are skipped: they may create directories or open
 * databases, which a check must not do (possibly as root, while the
 * daemon runs). The store section is still marked used; its keys are
 * checked when the daemon or a store-opening ctl command starts.
 */
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core-private.h"
#include "ma-build-config.h"

static char *core_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *core_errorf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		ma_oom();
	va_end(ap);
	return s;
}

/* Finds FILE in the colon-separated plugin_dir list; malloc'd path or
 * NULL. Empty list elements are skipped. */
static char *core_find_plugin_file(const struct ma_core *core, const char *file)
{
	const char *s = core->plugin_dir;
	while (*s != '\0') {
		const char *colon = strchr(s, ':');
		size_t len = colon ? (size_t)(colon - s) : strlen(s);
		if (len > 0) {
			char *path = core_errorf("%.*s/%s", (int)len, s, file);
			struct stat st;
			if (stat(path, &st) == 0)
				return path;
			free(path);
		}
		if (colon == NULL)
			break;
		s = colon + 1;
	}
	return NULL;
}

static void core_add_plugin(struct ma_core *core, struct ma_loaded_plugin *p)
{
	core->plugins = ma_realloc(core->plugins,
				   (core->n_plugins + 1) * sizeof(*core->plugins));
	core->plugins[core->n_plugins++] = p;
}

/* Loads FILE for the config item at `where`, checks its kind. */
static struct ma_loaded_plugin *
core_load_plugin(struct ma_core *core, const char *where, const char *what,
		 const char *file, enum ma_plugin_kind kind, char **error_r)
{
	char *path = core_find_plugin_file(core, file);
	if (path == NULL) {
		*error_r = core_errorf("%s: %s: %s not found in plugin_dir %s",
				       where, what, file, core->plugin_dir);
		return NULL;
	}
	char *err = NULL;
	struct ma_loaded_plugin *p = ma_plugin_load(path, &err);
	free(path);
	if (p == NULL) {
		*error_r = core_errorf("%s: %s: %s", where, what, err);
		free(err);
		return NULL;
	}
	if (p->desc->kind != kind) {
		*error_r = core_errorf("%s: %s: %s is not a plugin of the right kind (kind %d, wanted %d)",
				       where, what, p->path, (int)p->desc->kind, (int)kind);
		ma_plugin_unload(&p);
		return NULL;
	}
	core_add_plugin(core, p);
	return p;
}

/* Plugin names become file names: refuse anything but a plain word. */
static bool core_plugin_name_ok(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return true;
}

static int core_read_root(struct ma_core *core, char **error_r)
{
	const struct ma_config_section *root = ma_config_root(core->config);

	const char *env_dir = getenv("MAILACCESS_PLUGIN_DIR");
	const char *dir = ma_config_get(root, "plugin_dir", MA_PLUGIN_DIR);
	core->plugin_dir = ma_strdup(env_dir && *env_dir ? env_dir : dir);
	core->state_dir = ma_strdup(ma_config_get(root, "state_dir", MA_STATE_DIR));
	/* Read by the daemon when it drops privileges; read here so every
	 * program agrees they are known keys. */
	(void)ma_config_get(root, "user", NULL);
	(void)ma_config_get(root, "group", NULL);

	/* limits.max_message_size is shared by every path that stores mail
	 * (deliver, LMTP, IMAP APPEND); validated here once so a typo'd
	 * value fails at start even before any of them reads it. */
	const struct ma_config_section *limits = ma_config_child(root, "limits");
	uint64_t max_msg;
	if (ma_config_get_size(limits, "max_message_size", 64 << 20, &max_msg,
			       error_r) < 0)
		return -1;

	const char *level_name = ma_config_get(root, "log_level", "info");
	int level = ma_log_level_parse(level_name);
	if (level < 0) {
		*error_r = core_errorf("%s: log_level: unknown level '%s' (debug, info, notice, warning, error)",
				       ma_config_where(root, "log_level"), level_name);
		return -1;
	}
	const char *dest = ma_config_get(root, "log", "stderr");
	/* program_invocation_short_name: glibc's basename of argv[0]. */
	if (ma_log_init(program_invocation_short_name, dest,
			(enum ma_log_level)level) < 0) {
		*error_r = core_errorf("%s: log: unknown destination '%s' (stderr, syslog)",
				       ma_config_where(root, "log"), dest);
		return -1;
	}
	return 0;
}

/* What init() is called with, in this order. */
struct core_init_item {
	struct ma_loaded_plugin *plugin;
	const struct ma_config_section *section;
	bool skip;		/* MA_CORE_CHECK_ONLY store */
	bool inited;
};

static int core_load_all(struct ma_core *core, struct core_init_item **items_r,
			 unsigned *n_items_r, char **error_r)
{
	const struct ma_config_section *root = ma_config_root(core->config);
	/* One item per plugin at most; plugins never exceed the config's
	 * section count, itself bounded by the parser. */
	struct core_init_item *items = NULL;
	unsigned n = 0;
#define CORE_PUSH(p_, sec_, skip_) do { \
		items = ma_realloc(items, (n + 1) * sizeof(*items)); \
		items[n++] = (struct core_init_item){ .plugin = (p_), \
			.section = (sec_), .skip = (skip_) }; \
	} while (0)
	*items_r = NULL;
	*n_items_r = 0;

	/* The store. */
	const struct ma_config_section *store = ma_config_child(root, "store");
	if (store == NULL) {
		*error_r = core_errorf("%s: no 'store { backend = ... }' section",
				       ma_config_section_where(root));
		return -1;
	}
	const char *backend = ma_config_get(store, "backend", NULL);
	if (backend == NULL || !core_plugin_name_ok(backend)) {
		*error_r = core_errorf("%s: store: %s", ma_config_where(store, "backend"),
				       backend ? "backend must be a plain name like lmdb"
					       : "missing 'backend = NAME'");
		return -1;
	}
	/* Plugins read their own keys in init() with the getters, so a key
	 * nobody read is a typo ma_config_check_unused() reports. The store's
	 * init() does not run for a config check: its keys go unchecked then. */
	if ((core->flags & MA_CORE_CHECK_ONLY) != 0)
		ma_config_mark_used(store);
	char *file = core_errorf("store-%s.so", backend);
	char *what = core_errorf("store backend '%s'", backend);
	struct ma_loaded_plugin *p = core_load_plugin(core, ma_config_where(store, "backend"),
						      what, file, MA_PLUGIN_STORE, error_r);
	free(file);
	free(what);
	if (p == NULL)
		goto fail;
	core->store_plugin = p;
	CORE_PUSH(p, store, (core->flags & MA_CORE_CHECK_ONLY) != 0);

	/* Auth sources, in file order. */
	const struct ma_config_section *a = NULL;
	while ((a = ma_config_next_child(root, "auth", a)) != NULL) {
		const char *name = ma_config_section_label(a);
		if (name == NULL || !core_plugin_name_ok(name)) {
			*error_r = core_errorf("%s: auth: %s", ma_config_section_where(a),
					       name ? "the name must be a plain word like passwd"
						    : "needs a name, e.g. 'auth passwd {'");
			goto fail;
		}
		file = core_errorf("auth-%s.so", name);
		what = core_errorf("auth source '%s'", name);
		p = core_load_plugin(core, ma_config_section_where(a), what, file,
				     MA_PLUGIN_AUTH, error_r);
		free(file);
		free(what);
		if (p == NULL)
			goto fail;
		core->auth_sources = ma_realloc(core->auth_sources,
			(core->n_auth_sources + 1) * sizeof(*core->auth_sources));
		core->auth_sources[core->n_auth_sources++] = p;
		CORE_PUSH(p, a, false);
	}

	/* Protocols named by listeners, each once. */
	if ((core->flags & MA_CORE_PROTOCOLS) != 0) {
		const struct ma_config_section *l = NULL;
		while ((l = ma_config_next_child(root, "listener", l)) != NULL) {
			const char *proto = ma_config_get(l, "protocol", NULL);
			if (proto == NULL || !core_plugin_name_ok(proto)) {
				*error_r = core_errorf("%s: listener: %s",
						       ma_config_where(l, "protocol"),
						       proto ? "protocol must be a plain name like pop3"
							     : "missing 'protocol = NAME'");
				goto fail;
			}
			if (ma_core_find_plugin(core, MA_PLUGIN_PROTOCOL, proto) != NULL)
				continue;
			file = core_errorf("%s.so", proto);
			what = core_errorf("protocol '%s'", proto);
			p = core_load_plugin(core, ma_config_where(l, "protocol"), what,
					     file, MA_PLUGIN_PROTOCOL, error_r);
			free(file);
			free(what);
			if (p == NULL)
				goto fail;
			if (strcmp(p->desc->name, proto) != 0) {
				*error_r = core_errorf("%s: protocol '%s': %s calls itself '%s'",
						       ma_config_where(l, "protocol"), proto,
						       p->path, p->desc->name);
				goto fail;
			}
			const struct ma_config_section *ps = ma_config_child(root, proto);
			CORE_PUSH(p, ps, false);
		}
	}
#undef CORE_PUSH
	*items_r = items;
	*n_items_r = n;
	return 0;
fail:
	free(items);
	return -1;
}

static void core_free_plugins(struct ma_core *core)
{
	for (unsigned i = core->n_plugins; i-- > 0;)
		ma_plugin_unload(&core->plugins[i]);
	free(core->plugins);
	core->plugins = NULL;
	core->n_plugins = 0;
	free(core->auth_sources);
	core->auth_sources = NULL;
	core->n_auth_sources = 0;
	core->store_plugin = NULL;
}

/* Steps of ma_core_create() that ma_core_destroy() must undo. */
enum core_stage {
	CORE_STAGE_PLUGINS = 1,
	CORE_STAGE_BUS,
	CORE_STAGE_STORE,
	CORE_STAGE_AUTH,
};

static void core_teardown(struct ma_core *core, unsigned stage,
			  struct core_init_item *items, unsigned n_items)
{
	if (stage >= CORE_STAGE_AUTH)
		ma_auth_deinit(core);
	if (stage >= CORE_STAGE_STORE && core->store != NULL)
		ma_store_destroy(&core->store);
	if (stage >= CORE_STAGE_BUS) {
		ma_changebus_ipc_close(core);
		ma_changebus_deinit(core);
	}
	if (stage >= CORE_STAGE_BUS) {
		/* Every init() ran (but the store's under CHECK_ONLY): deinit
		 * in reverse order, even when init() left ctx NULL. */
		for (unsigned i = core->n_plugins; i-- > 0;) {
			struct ma_loaded_plugin *p = core->plugins[i];
			bool skipped = (core->flags & MA_CORE_CHECK_ONLY) != 0 &&
				       p == core->store_plugin;
			if (!skipped && p->desc->deinit != NULL)
				p->desc->deinit(p->ctx);
			p->ctx = NULL;
		}
	} else if (items != NULL) {
		/* A failed create: only the plugins whose init() ran get a
		 * deinit(). */
		for (unsigned i = n_items; i-- > 0;) {
			struct ma_loaded_plugin *p = items[i].plugin;
			if (items[i].inited && p->desc->deinit != NULL)
				p->desc->deinit(p->ctx);
			p->ctx = NULL;
		}
	}
	core_free_plugins(core);
	ma_config_free(&core->config);
	free((char *)core->config_path);
	free(core->plugin_dir);
	free(core->state_dir);
	free(core);
}

struct ma_core *ma_core_create(const char *config_path, unsigned flags,
			       char **error_r)
{
	if (config_path == NULL) {
		const char *env = getenv("MAILACCESS_CONFIG");
		config_path = env && *env ? env : MA_CONFIG_FILE;
	}
	struct ma_core *core = ma_malloc0(sizeof(*core));
	core->flags = flags;
	core->config_path = ma_strdup(config_path);
	core->next_slot = 0;
	core->config = ma_config_load(config_path, error_r);
	if (core->config == NULL) {
		core_teardown(core, 0, NULL, 0);
		return NULL;
	}
	if (core_read_root(core, error_r) < 0) {
		core_teardown(core, 0, NULL, 0);
		return NULL;
	}
	core->loop = ev_default_loop(0);
	if (core->loop == NULL) {
		*error_r = core_errorf("cannot initialise the event loop (bad LIBEV_FLAGS?)");
		core_teardown(core, 0, NULL, 0);
		return NULL;
	}

	struct core_init_item *items = NULL;
	unsigned n_items = 0;
	if (core_load_all(core, &items, &n_items, error_r) < 0) {
		core_teardown(core, CORE_STAGE_PLUGINS, NULL, 0);
		return NULL;
	}
	for (unsigned i = 0; i < n_items; i++) {
		struct ma_loaded_plugin *p = items[i].plugin;
		if (items[i].skip || p->desc->init == NULL)
			continue;
		const char *err = NULL;
		void *ctx = NULL;
		int r = p->desc->init(core, items[i].section, &ctx, &err);
		items[i].inited = true;
		p->ctx = ctx;
		if (r < 0) {
			const char *where = items[i].section
				? ma_config_section_where(items[i].section)
				: ma_config_section_where(ma_config_root(core->config));
			const char *kind = p->desc->kind == MA_PLUGIN_STORE ? "store"
				: p->desc->kind == MA_PLUGIN_AUTH ? "auth" : "protocol";
			size_t cl = strlen(core->config_path);
			if (err != NULL && strncmp(err, core->config_path, cl) == 0 &&
			    err[cl] == ':')
				/* Already "FILE:LINE: ..." (a getter's message). */
				*error_r = core_errorf("%s (%s plugin '%s')", err, kind,
						       p->desc->name);
			else
				*error_r = core_errorf("%s: %s plugin '%s' (%s): %s", where,
						       kind, p->desc->name, p->path,
						       err ? err : "init failed");
			/* A failed init() owns nothing: no deinit for it. */
			items[i].inited = false;
			p->ctx = NULL;
			core_teardown(core, CORE_STAGE_PLUGINS, items, n_items);
			free(items);
			return NULL;
		}
	}
	free(items);
	items = NULL;

	ma_changebus_init(core);
	if ((flags & MA_CORE_CHECK_ONLY) == 0) {
		core->store = ma_store_create(core, core->store_plugin, error_r);
		if (core->store == NULL) {
			core_teardown(core, CORE_STAGE_BUS, NULL, 0);
			return NULL;
		}
	}
	if (ma_auth_init(core, error_r) < 0) {
		core_teardown(core, CORE_STAGE_STORE, NULL, 0);
		return NULL;
	}
	return core;
}

void ma_core_destroy(struct ma_core **corep)
{
	struct ma_core *core = *corep;
	if (core == NULL)
		return;
	*corep = NULL;
	core_teardown(core, CORE_STAGE_AUTH, NULL, 0);
}

const struct ma_config *ma_core_config(const struct ma_core *core)
{
	return core->config;
}

struct ev_loop *ma_core_loop(const struct ma_core *core)
{
	return core->loop;
}

void ma_core_set_loop(struct ma_core *core, struct ev_loop *loop)
{
	core->loop = loop;
}

const struct ma_loaded_plugin *ma_core_find_plugin(const struct ma_core *core,
						   enum ma_plugin_kind kind,
						   const char *name)
{
	for (unsigned i = 0; i < core->n_plugins; i++) {
		const struct ma_loaded_plugin *p = core->plugins[i];
		if (p->desc->kind == kind && strcmp(p->desc->name, name) == 0)
			return p;
	}
	return NULL;
}

const struct ma_loaded_plugin *ma_core_next_plugin(const struct ma_core *core,
						   const struct ma_loaded_plugin *prev)
{
	unsigned i = 0;
	if (prev != NULL) {
		while (i < core->n_plugins && core->plugins[i] != prev)
			i++;
		i++;
	}
	return i < core->n_plugins ? core->plugins[i] : NULL;
}

struct ma_store *ma_core_store(const struct ma_core *core)
{
	return core->store;
}

const char *ma_core_state_dir(const struct ma_core *core)
{
	return core->state_dir;
}

unsigned ma_core_alloc_slot(struct ma_core *core)
{
	return core->next_slot++;
}
