/*
 * test-ctl.c - runs the mailaccessctl binary of the build tree: option
 * handling and exit codes (0, 64 EX_USAGE, 78 EX_CONFIG), and `config
 * check` on a good config (fake plugins from tests/plugins), a typo, a
 * parse error and a bad network value, checking the "FILE:LINE: message"
 * it prints.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;
#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
	failures++; } } while (0)

static char ctl[4200];
static char tmpdir[64];
static char conf[256];
static char out[8192];

/* Runs ctl with args; output (stdout+stderr) into out; returns status. */
static int run(const char *const *args)
{
	char outpath[300];
	snprintf(outpath, sizeof(outpath), "%s/out", tmpdir);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0)
			_exit(127);
		dup2(fd, 1);
		dup2(fd, 2);
		char *argv[16];
		int n = 0;
		argv[n++] = ctl;
		for (; args[n - 1] != NULL && n < 15; n++)
			argv[n] = (char *)args[n - 1];
		argv[n] = NULL;
		execv(ctl, argv);
		_exit(127);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	out[0] = '\0';
	FILE *f = fopen(outpath, "r");
	if (f != NULL) {
		size_t len = fread(out, 1, sizeof(out) - 1, f);
		out[len] = '\0';
		fclose(f);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void write_conf(const char *text)
{
	FILE *f = fopen(conf, "w");
	if (f == NULL) {
		perror(conf);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

static void expect(const char *const *args, int code, const char *text)
{
	int r = run(args);
	CHECK(r == code);
	if (r != code || strstr(out, text) == NULL) {
		fprintf(stderr, "  %s ...: exit %d (wanted %d), output:\n%s  wanted: %s\n",
			args[0] ? args[0] : "", r, code, out, text);
		if (r == code)
			failures++;
	}
}

int main(void)
{
	const char *root = getenv("MA_TEST_BUILD_ROOT");
	if (root == NULL) {
		fprintf(stderr, "test-ctl: MA_TEST_BUILD_ROOT not set (run through meson test)\n");
		return 77;
	}
	snprintf(ctl, sizeof(ctl), "%s/core/mailaccessctl", root);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ma-test-ctl-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	snprintf(conf, sizeof(conf), "%s/mailaccess.conf", tmpdir);
	char plugins[4200];
	snprintf(plugins, sizeof(plugins), "%s/tests/plugins", root);
	setenv("MAILACCESS_PLUGIN_DIR", plugins, 1);
	unsetenv("MAILACCESS_CONFIG");

	expect((const char *[]){ "--version", NULL }, 0, "mailaccessctl ");
	expect((const char *[]){ "--help", NULL }, 0, "usage: mailaccessctl");
	expect((const char *[]){ NULL }, 64, "no command given");
	expect((const char *[]){ "frobnicate", NULL }, 64, "unknown command 'frobnicate'");
	expect((const char *[]){ "-x", NULL }, 64, "unknown option '-x'");
	expect((const char *[]){ "-c", NULL }, 64, "needs a file name");
	expect((const char *[]){ "-c", conf, "config", NULL }, 64, "usage: mailaccessctl [-c FILE] config check");
	expect((const char *[]){ "-c", conf, "config", "check", "extra", NULL }, 64, "usage:");

	static const char good[] =
		"log_level = warning\n"
		"store {\n  backend = teststore\n  path = /nowhere\n}\n"
		"auth testfake {\n}\n"
		"limits {\n  max_connections = 10\n  auth_fail_delay = 2s\n  max_message_size = 10M\n}\n";
	write_conf(good);
	char want[400];
	snprintf(want, sizeof(want), "config OK: %s", conf);
	expect((const char *[]){ "-c", conf, "config", "check", NULL }, 0, want);
	/* MAILACCESS_CONFIG when -c is absent. */
	setenv("MAILACCESS_CONFIG", conf, 1);
	expect((const char *[]){ "config", "check", NULL }, 0, want);
	unsetenv("MAILACCESS_CONFIG");

	/* A typo in the top level, in a network section, a bad value. */
	write_conf("log_levl = warning\nstore {\n  backend = teststore\n}\n");
	snprintf(want, sizeof(want), "%s:1: unknown setting 'log_levl' in top level", conf);
	expect((const char *[]){ "-c", conf, "config", "check", NULL }, 78, want);
	write_conf("store {\n  backend = teststore\n}\nlimits {\n  max_conections = 5\n}\n");
	snprintf(want, sizeof(want), "%s:5: unknown setting 'max_conections' in section 'limits'", conf);
	expect((const char *[]){ "-c", conf, "config", "check", NULL }, 78, want);
	write_conf("store {\n  backend = teststore\n}\nlimits {\n  idle_timeout = soon\n}\n");
	snprintf(want, sizeof(want), "%s:5: idle_timeout: expected a duration", conf);
	expect((const char *[]){ "-c", conf, "config", "check", NULL }, 78, want);
	write_conf("store {\n  backend = teststore\n}\nfrob {\n}\n");
	snprintf(want, sizeof(want), "%s:4: unknown section 'frob'", conf);
	expect((const char *[]){ "-c", conf, "config", "check", NULL }, 78, want);
	/* Parse error and a missing plugin. */
	write_conf("store {\n  backend = teststore\n");
	snprintf(want, sizeof(want), "%s:2: section 'store' opened at line 1 is not closed", conf);
	expect((const char *[]){ "-c", conf, "config", "check", NULL }, 78, want);
	write_conf("store {\n  backend = nosuch\n}\n");
	snprintf(want, sizeof(want), "%s:2: store backend 'nosuch': store-nosuch.so not found", conf);
	expect((const char *[]){ "-c", conf, "config", "check", NULL }, 78, want);
	expect((const char *[]){ "-c", "/nonexistent/m.conf", "config", "check", NULL }, 78,
	       "/nonexistent/m.conf: cannot open");

	unlink(conf);
	char outpath[300];
	snprintf(outpath, sizeof(outpath), "%s/out", tmpdir);
	unlink(outpath);
	rmdir(tmpdir);
	if (failures) {
		fprintf(stderr, "test-ctl: %d failure(s)\n", failures);
		return 1;
	}
	printf("test-ctl: ok\n");
	return 0;
}
