/*
 * test-auth-passwd.c - loads auth-passwd.so (path in $AUTH_PASSWD_SO) the
 * way the core does and checks: add/verify/wrong/unknown/passwd/del/list,
 * both schemes, case-insensitive names, bad names, extra fields and
 * comments surviving rewrites, re-reading an edited file, and verify from
 * several threads while the file is rewritten.
 */
#include <mailaccess/mailaccess.h>

#include <crypt.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
static char dir[] = "/tmp/test-auth-passwd.XXXXXX";

struct instance {
	struct ma_config *cfg;
	void *ctx;
	char file[512];
};

static int instance_init(struct instance *in, const char *name,
			 const char *extra)
{
	char text[2048], *err = NULL;
	snprintf(in->file, sizeof(in->file), "%s/%s", dir, name);
	snprintf(text, sizeof(text), "auth passwd {\n  file = %s\n%s}\n",
		 in->file, extra);
	in->cfg = ma_config_parse("test.conf", text, strlen(text), &err);
	if (in->cfg == NULL) {
		fprintf(stderr, "config: %s\n", err);
		free(err);
		return -1;
	}
	const struct ma_config_section *s =
		ma_config_child(ma_config_root(in->cfg), "auth");
	const char *error = NULL;
	if (plugin->init(NULL, s, &in->ctx, &error) < 0) {
		fprintf(stderr, "init: %s\n", error);
		return -1;
	}
	return 0;
}

static void instance_deinit(struct instance *in)
{
	plugin->deinit(in->ctx);
	ma_config_free(&in->cfg);
}

static enum ma_auth_status verify(struct instance *in, const char *user,
				  const char *pw, char *user_r)
{
	char buf[MA_AUTH_USER_MAX];
	return ops->verify(in->ctx, user, pw, user_r != NULL ? user_r : buf);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return strdup("");
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return strdup(buf);
}

static void append_line(const char *path, const char *line)
{
	FILE *f = fopen(path, "a");
	fprintf(f, "%s\n", line);
	fclose(f);
}

struct list_ctx { char names[16][MA_AUTH_USER_MAX]; int n; };
static void list_fn(const char *user, void *fctx)
{
	struct list_ctx *l = fctx;
	if (l->n < 16)
		snprintf(l->names[l->n], MA_AUTH_USER_MAX, "%s", user);
	l->n++;
}

static void test_sha512(void)
{
	struct instance in;
	const char *err;
	char canon[MA_AUTH_USER_MAX];

	CHECK(instance_init(&in, "users", "  rounds = 5000\n") == 0);
	struct list_ctx l = { .n = 0 };
	CHECK(ops->user_list(in.ctx, list_fn, &l, &err) == 0 && l.n == 0);
	CHECK(verify(&in, "alice@example.org", "pw", NULL) == MA_AUTH_UNKNOWN_USER);

	CHECK(ops->user_add(in.ctx, "alice@example.org", "pw one", &err) == 0);
	struct stat st;
	CHECK(stat(in.file, &st) == 0 && (st.st_mode & 0777) == 0640);
	char *data = read_file(in.file);
	CHECK(strncmp(data, "alice@example.org:{SHA512-CRYPT}$6$", 35) == 0);
	free(data);

	/* duplicates, also differing only in case */
	err = NULL;
	CHECK(ops->user_add(in.ctx, "alice@example.org", "x", &err) < 0);
	CHECK(err != NULL && strstr(err, "exists") != NULL);
	CHECK(ops->user_add(in.ctx, "ALICE@Example.ORG", "x", &err) < 0);
	/* bad names and passwords */
	char longname[400];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	const char *bad[] = { "", "a:b", "a b", "a\tb", "a\nb", "#x", "a\x7f",
			      longname };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = NULL;
		CHECK(ops->user_add(in.ctx, bad[i], "pw", &err) < 0);
		CHECK(err != NULL && strstr(err, "invalid") != NULL);
	}
	CHECK(ops->user_add(in.ctx, "bob", "", &err) < 0);

	CHECK(verify(&in, "alice@example.org", "pw one", canon) == MA_AUTH_OK);
	CHECK(strcmp(canon, "alice@example.org") == 0);
	CHECK(verify(&in, "Alice@EXAMPLE.org", "pw one", canon) == MA_AUTH_OK);
	CHECK(strcmp(canon, "alice@example.org") == 0);
	CHECK(verify(&in, "alice@example.org", "pw on", NULL) == MA_AUTH_FAIL);
	CHECK(verify(&in, "alice@example.org", "pw one ", NULL) == MA_AUTH_FAIL);
	CHECK(verify(&in, "nobody@example.org", "pw one", NULL) == MA_AUTH_UNKNOWN_USER);
	CHECK(ops->lookup(in.ctx, "ALICE@example.org", canon) == MA_AUTH_OK);
	CHECK(strcmp(canon, "alice@example.org") == 0);
	CHECK(ops->lookup(in.ctx, "nobody", canon) == MA_AUTH_UNKNOWN_USER);

	/* passwd */
	CHECK(ops->user_passwd(in.ctx, "alice@example.org", "pw two", &err) == 0);
	CHECK(verify(&in, "alice@example.org", "pw one", NULL) == MA_AUTH_FAIL);
	CHECK(verify(&in, "alice@example.org", "pw two", NULL) == MA_AUTH_OK);
	err = NULL;
	CHECK(ops->user_passwd(in.ctx, "nobody", "x", &err) < 0);
	CHECK(err != NULL && strstr(err, "no such") != NULL);

	/* an admin edits the file by hand: comment, a crypt(3) hash with
	 * extra fields, a broken line; the plugin re-reads it */
	struct crypt_data cd;
	memset(&cd, 0, sizeof(cd));
	/* crypt_rn, not crypt_r: ASan's crypt_r interceptor misses
	 * libxcrypt's versioned symbol and calls NULL. */
	const char *h = crypt_rn("carolpw", "$6$rounds=5000$abcdefgh$", &cd,
				 sizeof(cd));
	CHECK(h != NULL && h[0] == '$');
	char line[600];
	append_line(in.file, "# a comment");
	snprintf(line, sizeof(line), "carol:{SHA512-CRYPT}%s:extra1:extra2", h);
	append_line(in.file, line);
	append_line(in.file, "broken line without colon");
	snprintf(line, sizeof(line), "dave:%s", h);	/* bare $6$: CRYPT */
	append_line(in.file, line);
	CHECK(verify(&in, "carol", "carolpw", canon) == MA_AUTH_OK);
	CHECK(verify(&in, "carol", "carolpx", NULL) == MA_AUTH_FAIL);
	CHECK(verify(&in, "dave", "carolpw", NULL) == MA_AUTH_OK);

	/* rewrite keeps the comment, the broken line and the extra fields */
	CHECK(ops->user_passwd(in.ctx, "CAROL", "new carol", &err) == 0);
	CHECK(verify(&in, "carol", "new carol", NULL) == MA_AUTH_OK);
	data = read_file(in.file);
	CHECK(strstr(data, "# a comment\n") != NULL);
	CHECK(strstr(data, "broken line without colon\n") != NULL);
	CHECK(strstr(data, ":extra1:extra2\n") != NULL);
	CHECK(strstr(data, "carol:{SHA512-CRYPT}$6$") != NULL);
	free(data);

	/* list is sorted */
	CHECK(ops->user_add(in.ctx, "Bob", "bobpw", &err) == 0);
	l.n = 0;
	CHECK(ops->user_list(in.ctx, list_fn, &l, &err) == 0);
	CHECK(l.n == 4);
	CHECK(l.n == 4 && strcmp(l.names[0], "alice@example.org") == 0 &&
	      strcmp(l.names[1], "Bob") == 0 && strcmp(l.names[2], "carol") == 0 &&
	      strcmp(l.names[3], "dave") == 0);

	/* del */
	CHECK(ops->user_del(in.ctx, "alice@EXAMPLE.org", &err) == 0);
	CHECK(verify(&in, "alice@example.org", "pw two", NULL) == MA_AUTH_UNKNOWN_USER);
	err = NULL;
	CHECK(ops->user_del(in.ctx, "alice@example.org", &err) < 0);
	CHECK(err != NULL && strstr(err, "no such") != NULL);
	CHECK(verify(&in, "bob", "bobpw", NULL) == MA_AUTH_OK);

	/* a second instance (another process, say) sees the same file */
	struct instance in2;
	CHECK(instance_init(&in2, "users", "  rounds = 5000\n") == 0);
	CHECK(verify(&in2, "carol", "new carol", NULL) == MA_AUTH_OK);
	instance_deinit(&in2);

	instance_deinit(&in);

	/* the default SHA512-CRYPT cost */
	CHECK(instance_init(&in, "users4", "") == 0);
	CHECK(ops->user_add(in.ctx, "gina", "ginapw", &err) == 0);
	data = read_file(in.file);
	CHECK(strncmp(data, "gina:{SHA512-CRYPT}$6$rounds=50000$", 35) == 0);
	free(data);
	CHECK(verify(&in, "gina", "ginapw", NULL) == MA_AUTH_OK);
	instance_deinit(&in);
}

static void test_argon2(void)
{
	struct instance in, in1;
	const char *err;
	char canon[MA_AUTH_USER_MAX];

	CHECK(instance_init(&in, "users2",
			    "  scheme = ARGON2ID\n  argon2_memory = 1M\n  argon2_passes = 1\n") == 0);
	CHECK(ops->user_add(in.ctx, "erin@example.net", "argon pw", &err) == 0);
	char *data = read_file(in.file);
	CHECK(strncmp(data, "erin@example.net:{ARGON2ID}$argon2id$v=19$m=1024,t=1,p=1$", 57) == 0);
	CHECK(verify(&in, "erin@example.net", "argon pw", canon) == MA_AUTH_OK);
	CHECK(strcmp(canon, "erin@example.net") == 0);
	CHECK(verify(&in, "erin@example.net", "argon px", NULL) == MA_AUTH_FAIL);
	CHECK(verify(&in, "frank@example.net", "argon pw", NULL) == MA_AUTH_UNKNOWN_USER);

	/* an ARGON2ID line in a SHA512-CRYPT file still verifies */
	CHECK(instance_init(&in1, "users", "  rounds = 5000\n") == 0);
	append_line(in1.file, strtok(data, "\n"));
	CHECK(verify(&in1, "erin@example.net", "argon pw", NULL) == MA_AUTH_OK);
	CHECK(verify(&in1, "erin@example.net", "nope", NULL) == MA_AUTH_FAIL);
	free(data);
	instance_deinit(&in1);
	instance_deinit(&in);

	/* bad config */
	struct ma_config *cfg;
	char *cerr = NULL;
	const char *text = "auth passwd {\n scheme = MD5\n file = /x\n}\n";
	cfg = ma_config_parse("t", text, strlen(text), &cerr);
	void *ctx = NULL;
	const char *e = NULL;
	CHECK(cfg != NULL);
	if (cfg != NULL) {
		CHECK(plugin->init(NULL, ma_config_child(ma_config_root(cfg), "auth"),
				   &ctx, &e) < 0);
		ma_config_free(&cfg);
	}
	CHECK(plugin->init(NULL, NULL, &ctx, &e) < 0);
}

/* ---- several threads verifying while the file is rewritten ---- */
struct thr {
	struct instance *in;
	int id;
	int bad;
};

static void *thr_main(void *arg)
{
	struct thr *t = arg;
	char canon[MA_AUTH_USER_MAX];
	for (int i = 0; i < 12; i++) {
		switch ((i + t->id) % 3) {
		case 0:
			if (t->in != NULL &&
			    (ops->verify(t->in->ctx, "u1", "p1", canon) != MA_AUTH_OK ||
			     strcmp(canon, "u1") != 0))
				t->bad++;
			break;
		case 1:
			if (ops->verify(t->in->ctx, "U2", "wrong", canon) != MA_AUTH_FAIL)
				t->bad++;
			break;
		case 2:
			if (ops->verify(t->in->ctx, "nobody", "p1", canon) !=
			    MA_AUTH_UNKNOWN_USER)
				t->bad++;
			break;
		}
	}
	return NULL;
}

static void test_threads(void)
{
	struct instance in;
	const char *err;
	enum { N = 8 };
	pthread_t th[N];
	struct thr t[N];

	CHECK(instance_init(&in, "users3", "  rounds = 5000\n") == 0);
	CHECK(ops->user_add(in.ctx, "u1", "p1", &err) == 0);
	CHECK(ops->user_add(in.ctx, "u2", "p2", &err) == 0);
	for (int i = 0; i < N; i++) {
		t[i] = (struct thr){ .in = &in, .id = i };
		pthread_create(&th[i], NULL, thr_main, &t[i]);
	}
	/* rewrites (new inode each time) while they run */
	for (int i = 0; i < 5; i++) {
		char name[16];
		snprintf(name, sizeof(name), "x%d", i);
		CHECK(ops->user_add(in.ctx, name, "px", &err) == 0);
		CHECK(ops->user_passwd(in.ctx, "u2", i % 2 ? "p2" : "p2b", &err) == 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		CHECK(t[i].bad == 0);
	}
	instance_deinit(&in);
}

int main(void)
{
	const char *so = getenv("AUTH_PASSWD_SO");
	if (so == NULL) {
		fprintf(stderr, "AUTH_PASSWD_SO not set\n");
		return 1;
	}
	void *dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (dl == NULL) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 1;
	}
	plugin = dlsym(dl, "mailaccess_plugin");
	if (plugin == NULL || plugin->kind != MA_PLUGIN_AUTH ||
	    strcmp(plugin->name, "passwd") != 0) {
		fprintf(stderr, "bad plugin descriptor\n");
		return 1;
	}
	ops = plugin->ops;
	CHECK(ops->struct_size == sizeof(struct ma_auth_ops));
	/* only the descriptor is exported */
	CHECK(dlsym(dl, "passwd_verify") == NULL);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	ma_log_init("test-auth-passwd", "stderr", MA_LOG_ERROR);

	test_sha512();
	test_argon2();
	test_threads();

	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	dlclose(dl);
	if (failures > 0) {
		fprintf(stderr, "test-auth-passwd: %d failures\n", failures);
		return 1;
	}
	printf("test-auth-passwd: ok\n");
	return 0;
}
