/*
 * loader.c - the plugin loader (plugin.h). Before dlopen() runs any code
 * of a file (constructors run at load time) we check that neither the file
 * nor its directory can be changed by anyone but root or us, as Postfix's
 * dynamicmaps.c does: a plugin runs with the daemon's privileges. After
 * loading, the descriptor is checked field by field in the order the ABI
 * guarantees they exist (abi_major and struct_size first), so an old,
 * new or broken plugin is refused with a message naming the file, never
 * read past its end.
 *
 * Names of loaded plugins are kept in a small process-wide list so a
 * second plugin claiming a name already in use is refused.
 */
#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core-private.h"

/* The v1 descriptor ends with `ops`: anything smaller is not ABI 1. */
#define MA_PLUGIN_V1_SIZE (offsetof(struct ma_plugin, ops) + sizeof(const void *))
/* Plugin names end up in file names and log lines: keep them plain. */
#define MA_PLUGIN_NAME_MAX 64

static pthread_mutex_t loader_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ma_loaded_plugin **loader_loaded;
static unsigned loader_n_loaded;

static char *loader_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *loader_errorf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		ma_oom();
	va_end(ap);
	return s;
}

/* 0 if st is owned by root or us and not writable by group/others. */
static int loader_check_owner(const char *path, const char *what,
			      const struct stat *st, char **error_r)
{
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		*error_r = loader_errorf("plugin %s: %s is writable by group or others (mode %04o)",
					 path, what, (unsigned)(st->st_mode & 07777));
		return -1;
	}
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		*error_r = loader_errorf("plugin %s: %s is owned by uid %u, not root or the running user (uid %u)",
					 path, what, (unsigned)st->st_uid, (unsigned)geteuid());
		return -1;
	}
	return 0;
}

static int loader_check_file(const char *path, char **error_r)
{
	struct stat st;
	/* stat() follows symlinks: what matters is the file dlopen maps. */
	if (stat(path, &st) < 0) {
		*error_r = loader_errorf("plugin %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		*error_r = loader_errorf("plugin %s: not a regular file", path);
		return -1;
	}
	if (loader_check_owner(path, "file", &st, error_r) < 0)
		return -1;

	/* The directory of the real file: whoever can write there can swap
	 * the file between our check and dlopen(). */
	char *real = realpath(path, NULL);
	if (real == NULL) {
		*error_r = loader_errorf("plugin %s: %s", path, strerror(errno));
		return -1;
	}
	const char *dir = dirname(real);
	int r = 0;
	if (stat(dir, &st) < 0) {
		*error_r = loader_errorf("plugin %s: directory %s: %s", path, dir,
					 strerror(errno));
		r = -1;
	} else {
		r = loader_check_owner(path, "its directory", &st, error_r);
	}
	free(real);
	return r;
}

static const char *loader_kind_name(enum ma_plugin_kind kind)
{
	switch (kind) {
	case MA_PLUGIN_PROTOCOL: return "protocol";
	case MA_PLUGIN_STORE: return "store";
	case MA_PLUGIN_AUTH: return "auth";
	case MA_PLUGIN_EXTENSION: return "extension";
	}
	return NULL;
}

/* Checks the descriptor; the caller holds loader_lock (name check). */
static int loader_check_desc(const char *path, const struct ma_plugin *d,
			     char **error_r)
{
	if (d->abi_major != MA_ABI_MAJOR) {
		*error_r = loader_errorf("plugin %s: built for plugin ABI %u.%u, this server has ABI %u.%u (rebuild the plugin)",
					 path, d->abi_major, d->abi_minor,
					 MA_ABI_MAJOR, MA_ABI_MINOR);
		return -1;
	}
	if (d->abi_minor > MA_ABI_MINOR) {
		*error_r = loader_errorf("plugin %s: needs plugin ABI %u.%u, this server has only %u.%u (upgrade the server)",
					 path, d->abi_major, d->abi_minor,
					 MA_ABI_MAJOR, MA_ABI_MINOR);
		return -1;
	}
	if (d->struct_size < MA_PLUGIN_V1_SIZE) {
		*error_r = loader_errorf("plugin %s: descriptor struct_size %u is smaller than the ABI %u descriptor (%zu)",
					 path, (unsigned)d->struct_size, MA_ABI_MAJOR,
					 (size_t)MA_PLUGIN_V1_SIZE);
		return -1;
	}
	const char *kind = loader_kind_name(d->kind);
	if (kind == NULL) {
		*error_r = loader_errorf("plugin %s: unknown plugin kind %d",
					 path, (int)d->kind);
		return -1;
	}
	size_t nlen = d->name ? strnlen(d->name, MA_PLUGIN_NAME_MAX + 1) : 0;
	bool name_ok = nlen > 0 && nlen <= MA_PLUGIN_NAME_MAX;
	for (size_t i = 0; name_ok && i < nlen; i++) {
		unsigned char c = (unsigned char)d->name[i];
		name_ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
	}
	if (!name_ok) {
		*error_r = loader_errorf("plugin %s: missing or invalid name (letters, digits, '-', '_', '.'; at most %d)",
					 path, MA_PLUGIN_NAME_MAX);
		return -1;
	}
	if (d->ops == NULL && d->kind != MA_PLUGIN_EXTENSION) {
		*error_r = loader_errorf("plugin %s: %s plugin '%s' has no ops table",
					 path, kind, d->name);
		return -1;
	}
	for (unsigned i = 0; i < loader_n_loaded; i++) {
		if (strcmp(loader_loaded[i]->desc->name, d->name) == 0) {
			*error_r = loader_errorf("plugin %s: a plugin named '%s' is already loaded from %s",
						 path, d->name, loader_loaded[i]->path);
			return -1;
		}
	}
	return 0;
}

struct ma_loaded_plugin *ma_plugin_load(const char *path, char **error_r)
{
	if (path == NULL || *path == '\0') {
		*error_r = loader_errorf("plugin: empty path");
		return NULL;
	}
	if (loader_check_file(path, error_r) < 0)
		return NULL;

	/* Without a '/', dlopen() would search LD_LIBRARY_PATH and the
	 * system directories instead of the file we just checked. */
	char *dlpath = strchr(path, '/') ? ma_strdup(path)
		: loader_errorf("./%s", path);
	dlerror();
	void *h = dlopen(dlpath, RTLD_NOW | RTLD_LOCAL);
	free(dlpath);
	if (h == NULL) {
		const char *e = dlerror();
		*error_r = loader_errorf("plugin %s: cannot load: %s", path,
					 e ? e : "unknown error");
		return NULL;
	}
	dlerror();
	const struct ma_plugin *d = dlsym(h, "mailaccess_plugin");
	if (d == NULL) {
		*error_r = loader_errorf("plugin %s: no 'mailaccess_plugin' symbol (not a mailaccess plugin, or built without MA_PLUGIN_EXPORT)",
					 path);
		dlclose(h);
		return NULL;
	}

	pthread_mutex_lock(&loader_lock);
	if (loader_check_desc(path, d, error_r) < 0) {
		pthread_mutex_unlock(&loader_lock);
		dlclose(h);
		return NULL;
	}
	struct ma_loaded_plugin *p = ma_malloc0(sizeof(*p));
	p->desc = d;
	p->path = ma_strdup(path);
	p->dl_handle = h;
	loader_loaded = ma_realloc(loader_loaded,
				   (loader_n_loaded + 1) * sizeof(*loader_loaded));
	loader_loaded[loader_n_loaded++] = p;
	pthread_mutex_unlock(&loader_lock);

	ma_debug("loaded %s plugin '%s' version %s from %s",
		 loader_kind_name(d->kind), d->name,
		 d->version ? d->version : "?", path);
	return p;
}

void ma_plugin_unload(struct ma_loaded_plugin **pp)
{
	struct ma_loaded_plugin *p = *pp;
	if (p == NULL)
		return;
	*pp = NULL;
	pthread_mutex_lock(&loader_lock);
	for (unsigned i = 0; i < loader_n_loaded; i++) {
		if (loader_loaded[i] == p) {
			loader_loaded[i] = loader_loaded[--loader_n_loaded];
			break;
		}
	}
	if (loader_n_loaded == 0) {
		free(loader_loaded);
		loader_loaded = NULL;
	}
	pthread_mutex_unlock(&loader_lock);
	if (p->dl_handle != NULL)
		dlclose(p->dl_handle);
	free((char *)p->path);
	free(p);
}
