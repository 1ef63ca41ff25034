/*
 * test-auth-pam.c - loads auth-pam.so ($AUTH_PAM_SO) and checks it against
 * the real libpam under pam_wrapper (meson sets LD_PRELOAD, PAM_WRAPPER=1
 * and PAM_WRAPPER_SERVICE_DIR to pam-test/, whose `mailaccess` service uses
 * pam_matrix with the users in pam-test/passdb.in): good password, wrong
 * password (FAIL for a system user, UNKNOWN_USER for one getpwnam does not
 * know), unknown user, a user whose account is not allowed for this
 * service (pam_acct_mgmt), a missing service, and verify from threads.
 */
#include <mailaccess/mailaccess.h>

#include <dlfcn.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
		failures++; \
	} \
} while (0)

static const struct ma_plugin *plugin;
static const struct ma_auth_ops *ops;

static void *init_service(const char *service)
{
	char text[256], *err = NULL;
	void *ctx = NULL;
	const char *error = NULL;
	snprintf(text, sizeof(text), "auth pam {\n service = %s\n}\n", service);
	struct ma_config *cfg = ma_config_parse("t", text, strlen(text), &err);
	if (cfg == NULL) {
		fprintf(stderr, "config: %s\n", err);
		free(err);
		return NULL;
	}
	if (plugin->init(NULL, ma_config_child(ma_config_root(cfg), "auth"),
			 &ctx, &error) < 0) {
		fprintf(stderr, "init: %s\n", error);
		ctx = NULL;
	}
	ma_config_free(&cfg);
	return ctx;
}

struct thr { void *ctx; int id; int bad; };

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	char user_r[MA_AUTH_USER_MAX];
	for (int i = 0; i < 20; i++) {
		if ((i + t->id) % 2 == 0) {
			if (ops->verify(t->ctx, "bob", "b0b", user_r) != MA_AUTH_OK ||
			    strcmp(user_r, "bob") != 0)
				t->bad++;
		} else if (ops->verify(t->ctx, "root", "b0b", user_r) !=
			   MA_AUTH_FAIL) {
			t->bad++;
		}
	}
	return NULL;
}

int main(void)
{
	const char *so = getenv("AUTH_PAM_SO");
	if (so == NULL || getenv("PAM_WRAPPER_SERVICE_DIR") == NULL) {
		fprintf(stderr, "AUTH_PAM_SO / PAM_WRAPPER_SERVICE_DIR not set: run via meson test\n");
		return 1;
	}
	void *dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (dl == NULL) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 1;
	}
	plugin = dlsym(dl, "mailaccess_plugin");
	if (plugin == NULL || plugin->kind != MA_PLUGIN_AUTH ||
	    strcmp(plugin->name, "pam") != 0) {
		fprintf(stderr, "bad plugin descriptor\n");
		return 1;
	}
	ops = plugin->ops;
	ma_log_init("test-auth-pam", "stderr", MA_LOG_ERROR);
	/* read-only source */
	CHECK(ops->user_add == NULL && ops->user_del == NULL &&
	      ops->user_passwd == NULL && ops->user_list == NULL);

	void *ctx = NULL;
	const char *error = NULL;
	/* no config: service "mailaccess" */
	CHECK(plugin->init(NULL, NULL, &ctx, &error) == 0);
	char user_r[MA_AUTH_USER_MAX];

	CHECK(ops->verify(ctx, "alice", "alice secret", user_r) == MA_AUTH_OK);
	CHECK(strcmp(user_r, "alice") == 0);
	CHECK(ops->verify(ctx, "bob", "b0b", user_r) == MA_AUTH_OK);
	/* root is in the passwd database: a wrong password is FAIL */
	CHECK(ops->verify(ctx, "root", "rootpw", user_r) == MA_AUTH_OK);
	CHECK(ops->verify(ctx, "root", "rootpW", user_r) == MA_AUTH_FAIL);
	CHECK(ops->verify(ctx, "root", "b0b", user_r) == MA_AUTH_FAIL);
	/* pam_matrix users unknown to getpwnam: a wrong password lets the
	 * next source try (UNKNOWN_USER), never OK */
	CHECK(ops->verify(ctx, "alice", "alice secreT", user_r) == MA_AUTH_UNKNOWN_USER);
	CHECK(ops->verify(ctx, "alice", "b0b", user_r) == MA_AUTH_UNKNOWN_USER);
	CHECK(ops->verify(ctx, "nosuchuser", "x", user_r) == MA_AUTH_UNKNOWN_USER);
	/* right password, but pam_acct_mgmt refuses: carol may use sshd only */
	CHECK(ops->verify(ctx, "carol", "carolpw", user_r) == MA_AUTH_FAIL);
	enum ma_auth_status st;

	/* lookup goes to the passwd database (root always exists) */
	CHECK(ops->lookup(ctx, "root", user_r) == MA_AUTH_OK);
	CHECK(strcmp(user_r, "root") == 0);
	CHECK(ops->lookup(ctx, "no-such-user-mailaccess", user_r) ==
	      MA_AUTH_UNKNOWN_USER);

	/* threads: the plugin serialises PAM, results stay right */
	enum { N = 6 };
	pthread_t th[N];
	struct thr t[N];
	for (int i = 0; i < N; i++) {
		t[i] = (struct thr){ .ctx = ctx, .id = i };
		pthread_create(&th[i], NULL, thr_main, &t[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		CHECK(t[i].bad == 0);
	}
	plugin->deinit(ctx);

	/* a service with no file: never OK */
	void *ctx2 = init_service("no-such-service");
	CHECK(ctx2 != NULL);
	if (ctx2 != NULL) {
		st = ops->verify(ctx2, "alice", "alice secret", user_r);
		CHECK(st != MA_AUTH_OK);
		plugin->deinit(ctx2);
	}
	/* bad service names refused at init */
	ctx2 = NULL;
	char text[] = "auth pam {\n service = ../etc/x\n}\n";
	char *err = NULL;
	struct ma_config *cfg = ma_config_parse("t", text, strlen(text), &err);
	CHECK(cfg != NULL);
	if (cfg != NULL) {
		CHECK(plugin->init(NULL, ma_config_child(ma_config_root(cfg), "auth"),
				   &ctx2, &error) < 0);
		ma_config_free(&cfg);
	}

	dlclose(dl);
	if (failures > 0) {
		fprintf(stderr, "test-auth-pam: %d failures\n", failures);
		return 1;
	}
	printf("test-auth-pam: ok\n");
	return 0;
}
