/*
 * test-core.c - ma_core_create()/destroy in check-only mode with the fake
 * plugins of tests/plugins (store-teststore.so, auth-testfake*.so,
 * testproto.so): which plugins are loaded and in what order, which init()
 * ran with which section, used-key marking, the plugin_dir list and its
 * MAILACCESS_PLUGIN_DIR override, MAILACCESS_CONFIG, and each config
 * error the core itself reports.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core-private.h"

static int failures;
#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
	failures++; } } while (0)

static char tmpdir[64];
static char conf_path[256];

static void write_conf(const char *text)
{
	FILE *f = fopen(conf_path, "w");
	if (f == NULL) {
		perror(conf_path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

static struct ma_core *create(const char *text, unsigned flags, char **err)
{
	write_conf(text);
	*err = NULL;
	return ma_core_create(conf_path, flags, err);
}

static void expect_error(const char *text, unsigned flags, const char *want)
{
	char *err;
	struct ma_core *core = create(text, flags, &err);
	CHECK(core == NULL);
	if (core != NULL) {
		fprintf(stderr, "  accepted, wanted error '%s'\n", want);
		ma_core_destroy(&core);
		return;
	}
	if (err == NULL || strstr(err, want) == NULL) {
		fprintf(stderr, "  got '%s'\n  wanted '%s'\n", err ? err : "(null)", want);
		failures++;
	}
	free(err);
}

static const char good_conf[] =
	"log = stderr\n"
	"log_level = warning\n"
	"state_dir = /tmp/ma-state\n"
	"user = mail\n"
	"store {\n"
	"  backend = teststore\n"
	"  path = /nowhere\n"
	"}\n"
	"auth testfake2 {\n"
	"  anything = 1\n"
	"}\n"
	"auth testfake {\n"
	"}\n"
	"listener a {\n"
	"  protocol = testproto\n"
	"  port = 1\n"
	"}\n"
	"listener b {\n"
	"  protocol = testproto\n"
	"}\n"
	"testproto {\n"
	"  option = x\n"
	"}\n";

static void test_good(void)
{
	char *err;
	struct ma_core *core = create(good_conf, MA_CORE_PROTOCOLS | MA_CORE_CHECK_ONLY, &err);
	CHECK(core != NULL);
	if (core == NULL) {
		fprintf(stderr, "  %s\n", err);
		free(err);
		return;
	}
	CHECK(strcmp(ma_core_state_dir(core), "/tmp/ma-state") == 0);
	CHECK(ma_core_loop(core) != NULL);
	CHECK(ma_core_config(core) != NULL);
	CHECK(core->n_plugins == 4);
	/* Store, then auth sources in file order, then the protocol once. */
	const struct ma_loaded_plugin *p = ma_core_next_plugin(core, NULL);
	CHECK(p && p->desc->kind == MA_PLUGIN_STORE && strcmp(p->desc->name, "teststore") == 0);
	CHECK(p && p->ctx == NULL);	/* check-only: store init() skipped */
	p = ma_core_next_plugin(core, p);
	CHECK(p && p->desc->kind == MA_PLUGIN_AUTH && strcmp(p->desc->name, "testfake2") == 0);
	CHECK(p && p->ctx != NULL && *(int *)p->ctx == 1);
	p = ma_core_next_plugin(core, p);
	CHECK(p && strcmp(p->desc->name, "testfake") == 0 && p->desc->kind == MA_PLUGIN_AUTH);
	p = ma_core_next_plugin(core, p);
	CHECK(p && p->desc->kind == MA_PLUGIN_PROTOCOL && p->ctx != NULL);
	CHECK(ma_core_next_plugin(core, p) == NULL);
	CHECK(core->n_auth_sources == 2);
	CHECK(core->n_auth_sources == 2 &&
	      strcmp(core->auth_sources[0]->desc->name, "testfake2") == 0 &&
	      strcmp(core->auth_sources[1]->desc->name, "testfake") == 0);
	CHECK(core->store_plugin == ma_core_find_plugin(core, MA_PLUGIN_STORE, "teststore"));
	CHECK(ma_core_find_plugin(core, MA_PLUGIN_PROTOCOL, "testproto") != NULL);
	CHECK(ma_core_find_plugin(core, MA_PLUGIN_PROTOCOL, "testfake") == NULL);
	CHECK(ma_core_store(core) == NULL);	/* check-only */
	CHECK(ma_core_alloc_slot(core) == 0);
	CHECK(ma_core_alloc_slot(core) == 1);
	CHECK(ma_log_enabled(MA_LOG_WARNING) && !ma_log_enabled(MA_LOG_INFO));

	/* Plugins read their own keys in init(): one the plugin did not read
	 * is a typo, reported with its line (the test auth plugin reads
	 * nothing). Listener keys other than `protocol` are left to the
	 * network code. */
	CHECK(ma_config_check_unused(ma_core_config(core), &err) == -1);
	CHECK(err && strstr(err, ":10: unknown setting 'anything' in section 'auth testfake2'") != NULL);
	free(err);
	ma_core_destroy(&core);
	CHECK(core == NULL);

	/* Without MA_CORE_PROTOCOLS no protocol plugin is loaded. */
	core = create(good_conf, MA_CORE_CHECK_ONLY, &err);
	CHECK(core != NULL);
	if (core != NULL) {
		CHECK(core->n_plugins == 3);
		CHECK(ma_core_find_plugin(core, MA_PLUGIN_PROTOCOL, "testproto") == NULL);
		ma_core_destroy(&core);
	} else {
		free(err);
	}

	/* MAILACCESS_CONFIG names the file when the caller passes NULL. */
	setenv("MAILACCESS_CONFIG", conf_path, 1);
	core = ma_core_create(NULL, MA_CORE_CHECK_ONLY, &err);
	CHECK(core != NULL);
	if (core != NULL) {
		CHECK(strcmp(core->config_path, conf_path) == 0);
		ma_core_destroy(&core);
	} else {
		free(err);
	}
	unsetenv("MAILACCESS_CONFIG");
	ma_log_init("test-core", "stderr", MA_LOG_INFO);
}

static void test_errors(void)
{
	const unsigned f = MA_CORE_PROTOCOLS | MA_CORE_CHECK_ONLY;
	expect_error("log = 1\n", f, ":1: log: unknown destination '1'");
	expect_error("log_level = loud\n", f, ":1: log_level: unknown level 'loud'");
	expect_error("a = 1\n", f, "no 'store { backend = ... }' section");
	expect_error("store {\n}\n", f, ":1: store: missing 'backend = NAME'");
	expect_error("store {\n backend = ../x\n}\n", f, ":2: store: backend must be a plain name");
	expect_error("store {\n backend = nope\n}\n", f,
		     ":2: store backend 'nope': store-nope.so not found in plugin_dir");
	expect_error("store {\n backend = teststore\n}\nauth {\n}\n", f,
		     ":4: auth: needs a name");
	expect_error("store {\n backend = teststore\n}\nauth nope {\n}\n", f,
		     ":4: auth source 'nope': auth-nope.so not found");
	expect_error("store {\n backend = teststore\n}\nlistener x {\n port = 1\n}\n", f,
		     ":4: listener: missing 'protocol = NAME'");
	expect_error("store {\n backend = teststore\n}\nlistener x {\n protocol = imap9\n}\n", f,
		     ":5: protocol 'imap9': imap9.so not found");
	/* The plugin's init() fails: its message and section are reported. */
	expect_error("store {\n backend = teststore\n}\nauth testfake {\n fail = yes\n}\n", f,
		     ":4: auth plugin 'testfake'");
	expect_error("store {\n backend = teststore\n}\nauth testfake {\n fail = yes\n}\n", f,
		     "asked to fail");
	expect_error("store {\n backend = teststore\n}\nlistener x {\n protocol = testproto\n}\n"
		     "testproto {\n fail = yes\n}\n", f, ":7: protocol plugin 'testproto'");
	/* A plugin of the wrong kind under the expected file name (found in
	 * the first dir of the list, a symlink to the auth plugin). */
	expect_error("store {\n backend = wrongkind\n}\n", f, "not a plugin of the right kind");
	/* The same auth source twice is a duplicate section. */
	expect_error("store {\n backend = teststore\n}\nauth testfake {\n}\nauth testfake {\n}\n", f,
		     ":6: duplicate section 'auth testfake'");
	/* Parse errors come through unchanged. */
	expect_error("store {\n", f, ":1: section 'store' opened at line 1 is not closed");
	expect_error("", f, "no 'store");
	char *err = NULL;
	struct ma_core *core = ma_core_create("/nonexistent.conf", f, &err);
	CHECK(core == NULL && err && strstr(err, "/nonexistent.conf: cannot open") == err);
	free(err);
}

int main(void)
{
	const char *root = getenv("MA_TEST_BUILD_ROOT");
	if (root == NULL) {
		fprintf(stderr, "test-core: MA_TEST_BUILD_ROOT not set (run through meson test)\n");
		return 77;
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ma-test-core-XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(conf_path, sizeof(conf_path), "%s/mailaccess.conf", tmpdir);
	char plugins[4096], link_target[4200], link_path[256], dirs[8400];
	snprintf(plugins, sizeof(plugins), "%s/tests/plugins", root);
	snprintf(link_target, sizeof(link_target), "%s/auth-testfake.so", plugins);
	snprintf(link_path, sizeof(link_path), "%s/store-wrongkind.so", tmpdir);
	if (symlink(link_target, link_path) < 0)
		perror("symlink");
	/* An empty element and a missing dir in the list are skipped. */
	snprintf(dirs, sizeof(dirs), "%s::/nonexistent-dir:%s", tmpdir, plugins);
	setenv("MAILACCESS_PLUGIN_DIR", dirs, 1);

	test_good();
	test_errors();

	unlink(link_path);
	unlink(conf_path);
	rmdir(tmpdir);
	if (failures) {
		fprintf(stderr, "test-core: %d failure(s)\n", failures);
		return 1;
	}
	printf("test-core: ok\n");
	return 0;
}
