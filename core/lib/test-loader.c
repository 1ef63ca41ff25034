/*
 * test-loader.c - ma_plugin_load() against the test plugins built in
 * tests/plugins (found through MA_TEST_BUILD_ROOT): the good one loads and
 * unloads, and each broken one is refused with a message naming the file
 * and its reason. File-mode cases (group-writable file, world-writable
 * directory, directory instead of file, symlink to a good file) are made
 * here in a private temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mailaccess/mailaccess.h>

static int failures;
#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
	failures++; } } while (0)

static char plugin_dir[4096];

static char *plugin_path(const char *name)
{
	static char path[4200];
	snprintf(path, sizeof(path), "%s/%s.so", plugin_dir, name);
	return path;
}

/* Loads path, expects a refusal whose message contains path and `why`. */
static void expect_refused(const char *path, const char *why)
{
	char *err = NULL;
	struct ma_loaded_plugin *p = ma_plugin_load(path, &err);
	CHECK(p == NULL);
	if (p != NULL) {
		fprintf(stderr, "  %s was loaded, expected refusal '%s'\n", path, why);
		ma_plugin_unload(&p);
		return;
	}
	if (err == NULL || strstr(err, path) == NULL || strstr(err, why) == NULL) {
		fprintf(stderr, "  %s: got '%s', wanted '%s'\n", path,
			err ? err : "(null)", why);
		failures++;
	}
	free(err);
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
	int in = open(from, O_RDONLY);
	if (in < 0)
		return -1;
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (out < 0) {
		close(in);
		return -1;
	}
	char buf[65536];
	ssize_t n;
	int r = 0;
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (write(out, buf, (size_t)n) != n)
			r = -1;
	}
	close(in);
	close(out);
	if (chmod(to, mode) < 0)
		r = -1;
	return r;
}

static void test_good(void)
{
	char *err = NULL;
	const char *path = plugin_path("test-good");
	struct ma_loaded_plugin *p = ma_plugin_load(path, &err);
	CHECK(p != NULL);
	if (p == NULL) {
		fprintf(stderr, "  %s\n", err);
		free(err);
		return;
	}
	CHECK(strcmp(p->desc->name, "test-good") == 0);
	CHECK(p->desc->kind == MA_PLUGIN_EXTENSION);
	CHECK(p->desc->abi_major == MA_ABI_MAJOR);
	CHECK(strcmp(p->path, path) == 0);
	CHECK(p->dl_handle != NULL);
	/* The descriptor's init/deinit work (the core calls them). */
	void *ctx = NULL;
	const char *ierr = NULL;
	CHECK(p->desc->init(NULL, NULL, &ctx, &ierr) == 0 && ctx != NULL);
	CHECK(*(int *)ctx == 1);
	p->desc->deinit(ctx);
	CHECK(*(int *)ctx == 0);

	/* A second plugin with the same name is refused while the first is
	 * loaded; loading the same file again is too. */
	expect_refused(plugin_path("test-dupname"), "a plugin named 'test-good' is already loaded");
	expect_refused(path, "already loaded");
	ma_plugin_unload(&p);
	CHECK(p == NULL);
	ma_plugin_unload(&p);	/* NULL is fine */

	/* After unloading the name is free again. */
	p = ma_plugin_load(plugin_path("test-dupname"), &err);
	CHECK(p != NULL);
	if (p == NULL)
		free(err);
	ma_plugin_unload(&p);
}

static void test_refusals(void)
{
	expect_refused(plugin_path("test-badabi"), "built for plugin ABI 2.0, this server has ABI 1.0");
	expect_refused(plugin_path("test-newminor"), "needs plugin ABI 1.1");
	expect_refused(plugin_path("test-nosym"), "no 'mailaccess_plugin' symbol");
	expect_refused(plugin_path("test-badkind"), "unknown plugin kind 42");
	expect_refused(plugin_path("test-small"), "struct_size 8 is smaller");
	expect_refused(plugin_path("test-noops"), "store plugin 'test-noops' has no ops table");
	expect_refused(plugin_path("test-badname"), "missing or invalid name");
	expect_refused(plugin_path("does-not-exist"), "No such file or directory");
	expect_refused(plugin_dir, "not a regular file");

	/* Not a shared object at all. */
	char tmpl[] = "/tmp/ma-test-loader-XXXXXX";
	char *dir = mkdtemp(tmpl);
	CHECK(dir != NULL);
	if (dir == NULL)
		return;
	char path[4200], link_path[4200];
	snprintf(path, sizeof(path), "%s/garbage.so", dir);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f != NULL) {
		fputs("this is not an ELF file\n", f);
		fclose(f);
		chmod(path, 0644);
		expect_refused(path, "cannot load");
		unlink(path);
	}

	/* Group-writable file. */
	snprintf(path, sizeof(path), "%s/gw.so", dir);
	CHECK(copy_file(plugin_path("test-good"), path, 0664) == 0);
	expect_refused(path, "file is writable by group or others (mode 0664)");
	/* Other-writable file. */
	CHECK(chmod(path, 0646) == 0);
	expect_refused(path, "writable by group or others (mode 0646)");
	/* Same file, safe mode: loads (from a private temp dir, mode 0700). */
	CHECK(chmod(path, 0644) == 0);
	char *err = NULL;
	struct ma_loaded_plugin *p = ma_plugin_load(path, &err);
	CHECK(p != NULL);
	if (p == NULL) {
		fprintf(stderr, "  %s\n", err);
		free(err);
	}
	ma_plugin_unload(&p);

	/* A symlink is judged by its target: good target loads... */
	snprintf(link_path, sizeof(link_path), "%s/link.so", dir);
	CHECK(symlink(path, link_path) == 0);
	p = ma_plugin_load(link_path, &err);
	CHECK(p != NULL);
	if (p == NULL)
		free(err);
	ma_plugin_unload(&p);
	/* ...a group-writable target is refused through the link. */
	CHECK(chmod(path, 0660) == 0);
	expect_refused(link_path, "writable by group or others");
	CHECK(chmod(path, 0644) == 0);

	/* A directory others may write to. */
	CHECK(chmod(dir, 0777) == 0);
	expect_refused(path, "its directory is writable by group or others (mode 0777)");
	CHECK(chmod(dir, 0700) == 0);

	/* Owned by someone else (only testable as root). */
	if (geteuid() == 0) {
		CHECK(chown(path, 12345, 12345) == 0);
		expect_refused(path, "owned by uid 12345, not root or the running user");
		CHECK(chown(path, 0, 0) == 0);
	}

	unlink(link_path);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const char *root = getenv("MA_TEST_BUILD_ROOT");
	if (root == NULL) {
		fprintf(stderr, "test-loader: MA_TEST_BUILD_ROOT not set (run through meson test)\n");
		return 77;
	}
	snprintf(plugin_dir, sizeof(plugin_dir), "%s/tests/plugins", root);
	/* The loader refuses plugins in a group/other-writable directory:
	 * make sure the build tree's umask did not create one. */
	struct stat st;
	if (stat(plugin_dir, &st) == 0 && (st.st_mode & 022) != 0)
		chmod(plugin_dir, st.st_mode & ~(mode_t)022);
	test_good();
	test_refusals();
	if (failures) {
		fprintf(stderr, "test-loader: %d failure(s)\n", failures);
		return 1;
	}
	printf("test-loader: ok\n");
	return 0;
}
