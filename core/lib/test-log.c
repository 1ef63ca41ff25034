/*
 * test-log.c - logging to stderr: the "ident: level: " prefix, level
 * filtering, one line per call (newlines and control bytes in the message
 * replaced, over-long lines cut), %m, and lines from several threads that
 * never interleave (each is one write(2)).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mailaccess/mailaccess.h>

static int failures;
#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stdout, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
	failures++; } } while (0)

static char captured[1 << 20];
static size_t captured_len;
static int saved_stderr = -1;
static char tmpl[] = "/tmp/ma-test-log-XXXXXX";
static int cap_fd = -1;

static void capture_start(void)
{
	cap_fd = mkstemp(tmpl);
	if (cap_fd < 0) {
		perror("mkstemp");
		exit(1);
	}
	unlink(tmpl);
	saved_stderr = dup(STDERR_FILENO);
	dup2(cap_fd, STDERR_FILENO);
}

static void capture_end(void)
{
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	lseek(cap_fd, 0, SEEK_SET);
	ssize_t n = read(cap_fd, captured, sizeof(captured) - 1);
	captured_len = n > 0 ? (size_t)n : 0;
	captured[captured_len] = '\0';
	close(cap_fd);
	strcpy(tmpl, "/tmp/ma-test-log-XXXXXX");
}

static void test_format(void)
{
	CHECK(ma_log_init("tlog", "stderr", MA_LOG_INFO) == 0);
	CHECK(ma_log_init("tlog", "carrier-pigeon", MA_LOG_INFO) == -1);
	CHECK(ma_log_level_parse("debug") == MA_LOG_DEBUG);
	CHECK(ma_log_level_parse("WARNING") == MA_LOG_WARNING);
	CHECK(ma_log_level_parse("error") == MA_LOG_ERROR);
	CHECK(ma_log_level_parse("loud") == -1);
	CHECK(ma_log_level_parse(NULL) == -1);
	CHECK(ma_log_enabled(MA_LOG_INFO) && !ma_log_enabled(MA_LOG_DEBUG));

	capture_start();
	ma_debug("hidden %d", 1);
	ma_info("hello %s", "world");
	ma_error("evil\nforged: line\r\x01");
	errno = ENOENT;
	ma_warning("open: %m");
	char big[5000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ma_notice("%s", big);
	ma_log_set_level(MA_LOG_DEBUG);
	ma_debug("now visible");
	capture_end();

	const char *want =
		"tlog: info: hello world\n"
		"tlog: error: evil?forged: line??\n"
		"tlog: warning: open: No such file or directory\n";
	CHECK(strncmp(captured, want, strlen(want)) == 0);
	const char *notice = captured + strlen(want);
	const char *nl = strchr(notice, '\n');
	CHECK(strncmp(notice, "tlog: notice: xxx", 17) == 0);
	CHECK(nl != NULL && nl - notice < 2100 && nl - notice > 1000);
	CHECK(nl != NULL && strncmp(nl - 3, "...", 3) == 0);
	CHECK(nl != NULL && strcmp(nl + 1, "tlog: debug: now visible\n") == 0);
	ma_log_set_level(MA_LOG_INFO);
}

static void *log_thread(void *arg)
{
	int id = (int)(long)arg;
	for (int i = 0; i < 500; i++)
		ma_info("thread %d line %d %s", id, i,
			"padding padding padding padding padding padding padding");
	return NULL;
}

static void test_threads(void)
{
	capture_start();
	pthread_t t[4];
	for (long i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, log_thread, (void *)i);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	capture_end();
	/* Every line is whole: 2000 lines, each exactly as formatted. */
	unsigned lines = 0;
	char *save = NULL;
	for (char *l = strtok_r(captured, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save)) {
		int id, n;
		char tail[100];
		if (sscanf(l, "tlog: info: thread %d line %d %99[^\n]", &id, &n, tail) != 3 ||
		    strcmp(tail, "padding padding padding padding padding padding padding") != 0) {
			CHECK(!"interleaved or broken log line");
			printf("  line: %s\n", l);
			break;
		}
		lines++;
	}
	CHECK(lines == 2000);
}

int main(void)
{
	test_format();
	test_threads();
	if (failures) {
		printf("test-log: %d failure(s)\n", failures);
		return 1;
	}
	printf("test-log: ok\n");
	return 0;
}
