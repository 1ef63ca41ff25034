/*
 * lock.c - named locks shared by every process of the server (the POP3
 * maildrop lock of RFC 1939 section 4), as flock()s on files under
 * <state_dir>/locks. flock() belongs to the open file description, so two
 * sessions of the same process exclude each other just as two processes
 * do, and the kernel drops the lock when its holder dies (kill -9), so
 * there is nothing to clean up after a crash. Names are hashed (SHA-256)
 * into the file name: any user name is safe and fits NAME_MAX.
 */
#include "core-private.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_KIND_MAX 32

static bool lock_kind_ok(const char *kind)
{
	size_t n = 0;

	for (; kind[n] != '\0'; n++) {
		char c = kind[n];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return n > 0 && n <= LOCK_KIND_MAX;
}

int ma_core_lock_try(struct ma_core *core, const char *kind, const char *name)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char digest[32];
	char path[4096], file[LOCK_KIND_MAX + 2 + 2 * sizeof(digest) + 6];
	const char *dir = ma_core_state_dir(core);
	size_t i, o;
	int fd;

	if (dir == NULL || kind == NULL || name == NULL || !lock_kind_ok(kind)) {
		errno = EINVAL;
		return -1;
	}
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, name, strlen(name), digest) < 0) {
		errno = EIO;
		return -1;
	}
	o = (size_t)snprintf(file, sizeof(file), "%s-", kind);
	for (i = 0; i < sizeof(digest); i++) {
		file[o++] = hex[digest[i] >> 4];
		file[o++] = hex[digest[i] & 15];
	}
	memcpy(file + o, ".lock", 6);
	if ((size_t)snprintf(path, sizeof(path), "%s/locks", dir) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -1;
	if ((size_t)snprintf(path, sizeof(path), "%s/locks/%s", dir, file) >=
	    sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno == EINTR ? EWOULDBLOCK : errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

void ma_core_unlock(int handle)
{
	if (handle >= 0)
		close(handle);	/* closing the description drops the flock */
}
