/*
 * auth-passwd.c - auth source "passwd": users and password hashes in one
 * text file, Dovecot passwd-file style (docs/auth.md):
 *
 *     # comment
 *     alice@example.org:{SHA512-CRYPT}$6$rounds=50000$salt$hash
 *     bob@example.org:{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$salt$hash:extra
 *
 * Fields after the hash (":extra...") are kept untouched for later use
 * (quota, home) and survive every rewrite. Schemes: SHA512-CRYPT (and
 * CRYPT: any hash libcrypt knows, e.g. "$y$" yescrypt) via crypt_rn(),
 * ARGON2ID via libargon2. A hash without {SCHEME} that starts with "$" is
 * taken as CRYPT.
 *
 * Owns: reading the file (again whenever its inode, size, mtime or ctime
 * changes), verify/lookup on auth threads, and the admin ops for
 * `mailaccessctl user` which rewrite the file atomically (temp + fsync +
 * rename) under an flock on "<file>.lock".
 *
 * User names match ASCII case-insensitively over the whole name ("Alice@
 * Example.ORG" is alice@example.org); the canonical name is the one in the
 * file. Unknown users cost one hash of a dummy password with the default
 * scheme, so timing does not tell which names exist.
 */
#include <mailaccess/mailaccess.h>

#include <argon2.h>
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* One line: 255 bytes of name, a hash (argon2 encodings are ~100 bytes)
 * and extra fields. The file: large enough for a million users. */
#define PASSWD_LINE_MAX 4096
#define PASSWD_FILE_MAX (256u * 1024 * 1024)
#define PASSWD_HASH_MAX 512
#define PASSWD_PASSWORD_MAX 1024

/* SHA512-CRYPT: glibc's default is 5000 rounds (2008); we take ten times
 * that, ~30 ms on a current core. */
#define PASSWD_DEFAULT_ROUNDS 50000
/* ARGON2ID: the OWASP minimum (19 MiB, 2 passes, 1 lane). */
#define PASSWD_DEFAULT_ARGON2_KIB 19456
#define PASSWD_DEFAULT_ARGON2_PASSES 2
#define PASSWD_ARGON2_SALT 16
#define PASSWD_ARGON2_HASH 32

enum passwd_scheme {
	PASSWD_SHA512_CRYPT = 0,
	PASSWD_ARGON2ID,
	PASSWD_CRYPT,
	PASSWD_UNKNOWN,
};

static const char *const passwd_scheme_names[] = {
	"SHA512-CRYPT", "ARGON2ID", NULL
};

struct passwd_entry {
	char *line;		/* the raw line, without newline */
	char *user;		/* NULL for comments, blanks, bad lines */
	char *hash;		/* "{SCHEME}..." */
	const char *rest;	/* into line: ":extra..." or "" */
};

struct passwd_table {
	struct passwd_entry *entries;	/* in file order */
	size_t n_entries;
	struct passwd_entry **sorted;	/* users only, by name (casecmp) */
	size_t n_users;
};

struct passwd_ctx {
	char *file;
	char *lock_file;
	enum passwd_scheme scheme;
	unsigned rounds;
	unsigned argon2_kib, argon2_passes;

	pthread_mutex_t reload_lock;	/* serialises reloads and admin rewrites */
	pthread_rwlock_t lock;		/* guards table */
	struct passwd_table *table;
	bool have_stat;
	struct stat st;

	char dummy_hash[PASSWD_HASH_MAX];
};

/* ---------- names ---------- */

static int passwd_casecmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		int ca = (unsigned char)*a, cb = (unsigned char)*b;
		if (ca >= 'A' && ca <= 'Z')
			ca += 'a' - 'A';
		if (cb >= 'A' && cb <= 'Z')
			cb += 'a' - 'A';
		if (ca != cb || ca == 0)
			return ca - cb;
	}
}

/* Names we store: 1..255 bytes, no ':' (field separator), no spaces or
 * control characters (they would break the file and log lines), not
 * starting with '#' (comment). UTF-8 is fine. */
static bool passwd_name_valid(const char *user, const char **error_r)
{
	size_t len = strlen(user);
	if (len == 0 || len >= MA_AUTH_USER_MAX) {
		*error_r = "invalid user name: length must be 1..255 bytes";
		return false;
	}
	if (user[0] == '#') {
		*error_r = "invalid user name: starts with '#'";
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)user[i];
		if (c <= ' ' || c == 0x7f || c == ':') {
			*error_r = "invalid user name: ':', space or control character";
			return false;
		}
	}
	return true;
}

/* ---------- hashing ---------- */

static enum passwd_scheme passwd_hash_scheme(const char *hash, const char **body_r)
{
	static const struct { const char *prefix; enum passwd_scheme s; } map[] = {
		{ "{SHA512-CRYPT}", PASSWD_SHA512_CRYPT },
		{ "{ARGON2ID}", PASSWD_ARGON2ID },
		{ "{CRYPT}", PASSWD_CRYPT },
		{ "{SHA256-CRYPT}", PASSWD_CRYPT },
		{ "{BLF-CRYPT}", PASSWD_CRYPT },
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		size_t n = strlen(map[i].prefix);
		if (strncmp(hash, map[i].prefix, n) == 0) {
			*body_r = hash + n;
			return map[i].s;
		}
	}
	*body_r = hash;
	return hash[0] == '$' ? PASSWD_CRYPT : PASSWD_UNKNOWN;
}

/* Compare without an early exit on the first different byte. */
static bool passwd_equal_ct(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;
	size_t n = la < lb ? la : lb;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

static bool passwd_check(const char *stored, const char *password)
{
	const char *body;
	bool ok = false;

	switch (passwd_hash_scheme(stored, &body)) {
	case PASSWD_SHA512_CRYPT:
	case PASSWD_CRYPT: {
		struct crypt_data *cd = ma_malloc0(sizeof(*cd));
		const char *out = crypt_rn(password, body, cd, sizeof(*cd));
		ok = out != NULL && out[0] != '*' && passwd_equal_ct(out, body);
		ma_wipe(cd, sizeof(*cd));
		free(cd);
		break;
	}
	case PASSWD_ARGON2ID:
		ok = argon2id_verify(body, password, strlen(password)) == ARGON2_OK;
		break;
	case PASSWD_UNKNOWN:
		ok = false;
		break;
	}
	return ok;
}

/* Writes "{SCHEME}hash" for password into out (PASSWD_HASH_MAX). */
static int passwd_make_hash(const struct passwd_ctx *ctx,
			    enum passwd_scheme scheme, const char *password,
			    char *out, const char **error_r)
{
	if (scheme == PASSWD_ARGON2ID) {
		unsigned char salt[PASSWD_ARGON2_SALT];
		char enc[PASSWD_HASH_MAX - 16];
		ma_random(salt, sizeof(salt));
		int r = argon2id_hash_encoded(ctx->argon2_passes, ctx->argon2_kib,
					      1, password, strlen(password),
					      salt, sizeof(salt),
					      PASSWD_ARGON2_HASH, enc, sizeof(enc));
		if (r != ARGON2_OK) {
			*error_r = argon2_error_message(r);
			return -1;
		}
		snprintf(out, PASSWD_HASH_MAX, "{ARGON2ID}%s", enc);
		return 0;
	}
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	/* NULL random bytes: libcrypt reads them from the kernel. */
	if (crypt_gensalt_rn("$6$", ctx->rounds, NULL, 0, setting,
			     sizeof(setting)) == NULL) {
		*error_r = "crypt_gensalt failed";
		return -1;
	}
	struct crypt_data *cd = ma_malloc0(sizeof(*cd));
	const char *h = crypt_rn(password, setting, cd, sizeof(*cd));
	int ret = 0;
	if (h == NULL || h[0] == '*') {
		*error_r = "crypt failed";
		ret = -1;
	} else {
		snprintf(out, PASSWD_HASH_MAX, "{SHA512-CRYPT}%s", h);
	}
	ma_wipe(cd, sizeof(*cd));
	free(cd);
	return ret;
}

/* ---------- the table ---------- */

static void passwd_table_free(struct passwd_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n_entries; i++) {
		free(t->entries[i].line);
		free(t->entries[i].user);
		free(t->entries[i].hash);
	}
	free(t->entries);
	free(t->sorted);
	free(t);
}

static int passwd_sort_cmp(const void *a, const void *b)
{
	const struct passwd_entry *ea = *(const struct passwd_entry *const *)a;
	const struct passwd_entry *eb = *(const struct passwd_entry *const *)b;
	return passwd_casecmp(ea->user, eb->user);
}

static struct passwd_entry *passwd_find(const struct passwd_table *t,
					const char *user)
{
	size_t lo = 0, hi = t->n_users;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = passwd_casecmp(user, t->sorted[mid]->user);
		if (c == 0)
			return t->sorted[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Parses one line into e (takes `line`). Logs and keeps bad lines raw. */
static void passwd_parse_line(const char *file, unsigned lineno, char *line,
			      struct passwd_entry *e)
{
	const char *error;
	memset(e, 0, sizeof(*e));
	e->line = line;
	e->rest = "";
	if (line[0] == '\0' || line[0] == '#')
		return;
	char *colon = strchr(line, ':');
	if (colon == NULL) {
		ma_warning("%s:%u: no ':' after the user name; line ignored",
			   file, lineno);
		return;
	}
	char *hash = colon + 1;
	char *end = strchr(hash, ':');
	size_t hlen = end != NULL ? (size_t)(end - hash) : strlen(hash);
	char *user = ma_strdup(line);
	user[colon - line] = '\0';
	if (!passwd_name_valid(user, &error) || hlen == 0 ||
	    hlen >= PASSWD_HASH_MAX) {
		ma_warning("%s:%u: %s; line ignored", file, lineno,
			   hlen == 0 ? "empty password hash" :
			   hlen >= PASSWD_HASH_MAX ? "password hash too long" :
			   error);
		free(user);
		return;
	}
	e->user = user;
	e->hash = malloc(hlen + 1);
	if (e->hash == NULL)
		ma_oom();
	memcpy(e->hash, hash, hlen);
	e->hash[hlen] = '\0';
	e->rest = end != NULL ? end : "";
	const char *body;
	if (passwd_hash_scheme(e->hash, &body) == PASSWD_UNKNOWN)
		ma_warning("%s:%u: unknown password scheme for %s; nobody can log in as it",
			   file, lineno, user);
}

/* Reads the file. NULL + *error_r (static) on an I/O error; a missing
 * file is an empty table (the first `user add` creates it). */
static struct passwd_table *passwd_read(const char *file, struct stat *st_r,
					bool *exists_r, const char **error_r)
{
	struct passwd_table *t = ma_malloc0(sizeof(*t));
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	*exists_r = false;
	if (fd < 0) {
		if (errno == ENOENT) {
			memset(st_r, 0, sizeof(*st_r));
			return t;
		}
		*error_r = strerror(errno);
		free(t);
		return NULL;
	}
	if (fstat(fd, st_r) < 0 || !S_ISREG(st_r->st_mode) ||
	    (uint64_t)st_r->st_size > PASSWD_FILE_MAX) {
		*error_r = "not a regular file, or too large";
		close(fd);
		free(t);
		return NULL;
	}
	*exists_r = true;
	size_t size = (size_t)st_r->st_size;
	char *data = ma_malloc0(size + 1);
	size_t got = 0;
	while (got < size) {
		ssize_t r = read(fd, data + got, size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;	/* shrank under us: parse what we have */
		got += (size_t)r;
	}
	close(fd);
	data[got] = '\0';

	size_t cap = 0;
	unsigned lineno = 0;
	for (char *p = data; p < data + got;) {
		char *nl = memchr(p, '\n', (size_t)(data + got - p));
		size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(data + got - p);
		lineno++;
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (t->n_entries == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			t->entries = ma_realloc(t->entries,
						cap * sizeof(*t->entries));
		}
		char *line = malloc(len + 1);
		if (line == NULL)
			ma_oom();
		memcpy(line, p, len);
		line[len] = '\0';
		if (memchr(p, '\0', len) != NULL || len > PASSWD_LINE_MAX) {
			ma_warning("%s:%u: NUL byte or line too long; line ignored",
				   file, lineno);
			/* kept verbatim (NULs cut) so a rewrite loses nothing else */
			memset(&t->entries[t->n_entries], 0, sizeof(t->entries[0]));
			t->entries[t->n_entries].line = line;
			t->entries[t->n_entries].rest = "";
		} else {
			passwd_parse_line(file, lineno, line,
					  &t->entries[t->n_entries]);
		}
		t->n_entries++;
		p += (nl != NULL ? (size_t)(nl - p) + 1 : len);
		if (nl == NULL)
			break;
	}
	ma_wipe(data, got);
	free(data);

	t->sorted = ma_malloc0((t->n_entries + 1) * sizeof(*t->sorted));
	for (size_t i = 0; i < t->n_entries; i++)
		if (t->entries[i].user != NULL)
			t->sorted[t->n_users++] = &t->entries[i];
	qsort(t->sorted, t->n_users, sizeof(*t->sorted), passwd_sort_cmp);
	/* Duplicates (same name up to case): the first line wins. */
	size_t w = 0;
	for (size_t i = 0; i < t->n_users; i++) {
		if (w > 0 && passwd_casecmp(t->sorted[w - 1]->user,
					    t->sorted[i]->user) == 0) {
			struct passwd_entry *a = t->sorted[w - 1], *b = t->sorted[i];
			struct passwd_entry *later = a > b ? a : b;
			ma_warning("%s: duplicate user %s; the first line wins",
				   file, later->user);
			t->sorted[w - 1] = a < b ? a : b;
			continue;
		}
		t->sorted[w++] = t->sorted[i];
	}
	t->n_users = w;
	return t;
}

static bool passwd_stat_same(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
		a->st_size == b->st_size &&
		a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
		a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
		a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
		a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Re-reads the file if it changed (or always, with force). -1 if it
 * could not be read (the old table stays). Caller holds reload_lock. */
static int passwd_refresh_locked(struct passwd_ctx *ctx, bool force,
				 const char **error_r)
{
	struct stat st;
	int ret = 0;
	bool exists = stat(ctx->file, &st) == 0;
	if (!exists)
		memset(&st, 0, sizeof(st));

	if (!force && ctx->table != NULL &&
	    (exists ? ctx->have_stat && passwd_stat_same(&st, &ctx->st) :
	     !ctx->have_stat))
		return 0;
	const char *error = NULL;
	struct stat nst;
	struct passwd_table *t = passwd_read(ctx->file, &nst, &exists, &error);
	if (t == NULL) {
		ma_error("auth passwd: cannot read %s: %s", ctx->file, error);
		if (error_r != NULL)
			*error_r = error;
		ret = -1;
	} else {
		pthread_rwlock_wrlock(&ctx->lock);
		struct passwd_table *old = ctx->table;
		ctx->table = t;
		ctx->st = nst;
		ctx->have_stat = exists;
		pthread_rwlock_unlock(&ctx->lock);
		if (old != NULL)
			ma_debug("auth passwd: re-read %s (%zu users)",
				 ctx->file, t->n_users);
		passwd_table_free(old);
	}
	return ret;
}

static int passwd_refresh(struct passwd_ctx *ctx, bool force,
			  const char **error_r)
{
	pthread_mutex_lock(&ctx->reload_lock);
	int ret = passwd_refresh_locked(ctx, force, error_r);
	pthread_mutex_unlock(&ctx->reload_lock);
	return ret;
}

/* Copies the user's hash and canonical name out under the read lock. */
static bool passwd_get(struct passwd_ctx *ctx, const char *user,
		       char *hash_r, char *user_r)
{
	bool found = false;
	pthread_rwlock_rdlock(&ctx->lock);
	const struct passwd_entry *e =
		ctx->table != NULL ? passwd_find(ctx->table, user) : NULL;
	if (e != NULL) {
		snprintf(hash_r, PASSWD_HASH_MAX, "%s", e->hash);
		if (user_r != NULL)
			snprintf(user_r, MA_AUTH_USER_MAX, "%s", e->user);
		found = true;
	}
	pthread_rwlock_unlock(&ctx->lock);
	return found;
}

/* ---------- ops ---------- */

static enum ma_auth_status passwd_verify(void *vctx, const char *user,
					 const char *password, char *user_r)
{
	struct passwd_ctx *ctx = vctx;
	char hash[PASSWD_HASH_MAX];
	char canon[MA_AUTH_USER_MAX];

	(void)passwd_refresh(ctx, false, NULL);
	if (strlen(user) >= MA_AUTH_USER_MAX ||
	    !passwd_get(ctx, user, hash, canon)) {
		/* Same work as for a real user: no timing oracle. */
		(void)passwd_check(ctx->dummy_hash, password);
		return MA_AUTH_UNKNOWN_USER;
	}
	bool ok = passwd_check(hash, password);
	ma_wipe(hash, sizeof(hash));
	if (!ok)
		return MA_AUTH_FAIL;
	memcpy(user_r, canon, MA_AUTH_USER_MAX);
	return MA_AUTH_OK;
}

static enum ma_auth_status passwd_lookup(void *vctx, const char *user,
					 char *user_r)
{
	struct passwd_ctx *ctx = vctx;
	char hash[PASSWD_HASH_MAX];

	/* On a read error the last good table answers. */
	(void)passwd_refresh(ctx, false, NULL);
	if (strlen(user) >= MA_AUTH_USER_MAX ||
	    !passwd_get(ctx, user, hash, user_r))
		return MA_AUTH_UNKNOWN_USER;
	return MA_AUTH_OK;
}

/* ---- admin: rewrite the file ---- */

static char *passwd_strerror(const char *what, const char *path)
{
	char *s = NULL;
	if (asprintf(&s, "%s %s: %s", what, path, strerror(errno)) < 0)
		return (char *)"out of memory";
	return s;
}

static int passwd_write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, data, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Writes the table with `skip` left out, `replace` written as
 * `replace_line` instead, and `append` added at the end. */
static int passwd_write(struct passwd_ctx *ctx, const struct passwd_entry *skip,
			const struct passwd_entry *replace,
			const char *replace_line, const char *append,
			const char **error_r)
{
	char tmp[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", ctx->file,
			     (long)getpid()) >= sizeof(tmp)) {
		*error_r = "file name too long";
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		      0640);
	if (fd < 0) {
		*error_r = passwd_strerror("cannot create", tmp);
		return -1;
	}
	/* 0640 whatever the umask; keep the old owner and group (mail
	 * group readable) when we may. */
	(void)fchmod(fd, 0640);
	if (ctx->have_stat && geteuid() == 0)
		(void)fchown(fd, ctx->st.st_uid, ctx->st.st_gid);

	const struct passwd_table *t = ctx->table;
	int r = 0;
	for (size_t i = 0; r == 0 && t != NULL && i < t->n_entries; i++) {
		const struct passwd_entry *e = &t->entries[i];
		if (e == skip)
			continue;
		const char *line = e == replace ? replace_line : e->line;
		r = passwd_write_all(fd, line, strlen(line));
		if (r == 0)
			r = passwd_write_all(fd, "\n", 1);
	}
	if (r == 0 && append != NULL) {
		r = passwd_write_all(fd, append, strlen(append));
		if (r == 0)
			r = passwd_write_all(fd, "\n", 1);
	}
	if (r < 0 || fsync(fd) < 0) {
		*error_r = passwd_strerror("cannot write", tmp);
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (close(fd) < 0 || rename(tmp, ctx->file) < 0) {
		*error_r = passwd_strerror("cannot replace", ctx->file);
		unlink(tmp);
		return -1;
	}
	/* Make the rename itself durable. */
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", ctx->file);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* Takes the admin lock (flock against other processes, reload_lock so no
 * thread of ours swaps the table under us), re-reads the file. Returns the
 * lock fd or -1. */
static int passwd_admin_begin(struct passwd_ctx *ctx, const char **error_r)
{
	int fd = open(ctx->lock_file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		*error_r = passwd_strerror("cannot open", ctx->lock_file);
		return -1;
	}
	if (flock(fd, LOCK_EX) < 0) {
		*error_r = passwd_strerror("cannot lock", ctx->lock_file);
		close(fd);
		return -1;
	}
	pthread_mutex_lock(&ctx->reload_lock);
	if (passwd_refresh_locked(ctx, true, error_r) < 0) {
		pthread_mutex_unlock(&ctx->reload_lock);
		close(fd);
		return -1;
	}
	return fd;
}

static int passwd_admin_end(struct passwd_ctx *ctx, int lock_fd, int ret)
{
	if (ret == 0)
		(void)passwd_refresh_locked(ctx, true, NULL);
	pthread_mutex_unlock(&ctx->reload_lock);
	close(lock_fd);	/* releases the flock */
	return ret;
}

static bool passwd_password_valid(const char *password, const char **error_r)
{
	size_t len = strlen(password);
	if (len == 0 || len > PASSWD_PASSWORD_MAX) {
		*error_r = "invalid password: length must be 1..1024 bytes";
		return false;
	}
	return true;
}

static int passwd_user_add(void *vctx, const char *user, const char *password,
			   const char **error_r)
{
	struct passwd_ctx *ctx = vctx;
	char hash[PASSWD_HASH_MAX];
	if (!passwd_name_valid(user, error_r) ||
	    !passwd_password_valid(password, error_r))
		return -1;
	int lock = passwd_admin_begin(ctx, error_r);
	if (lock < 0)
		return -1;
	int ret = -1;
	if (passwd_find(ctx->table, user) != NULL) {
		*error_r = "user exists";
	} else if (passwd_make_hash(ctx, ctx->scheme, password, hash,
				    error_r) == 0) {
		char *line = NULL;
		if (asprintf(&line, "%s:%s", user, hash) < 0)
			ma_oom();
		ret = passwd_write(ctx, NULL, NULL, NULL, line, error_r);
		free(line);
	}
	return passwd_admin_end(ctx, lock, ret);
}

static int passwd_user_passwd(void *vctx, const char *user,
			      const char *password, const char **error_r)
{
	struct passwd_ctx *ctx = vctx;
	char hash[PASSWD_HASH_MAX];
	if (!passwd_password_valid(password, error_r))
		return -1;
	int lock = passwd_admin_begin(ctx, error_r);
	if (lock < 0)
		return -1;
	int ret = -1;
	const struct passwd_entry *e = passwd_find(ctx->table, user);
	if (e == NULL) {
		*error_r = "no such user";
	} else if (passwd_make_hash(ctx, ctx->scheme, password, hash,
				    error_r) == 0) {
		char *line = NULL;
		if (asprintf(&line, "%s:%s%s", e->user, hash, e->rest) < 0)
			ma_oom();
		ret = passwd_write(ctx, NULL, e, line, NULL, error_r);
		free(line);
	}
	return passwd_admin_end(ctx, lock, ret);
}

static int passwd_user_del(void *vctx, const char *user, const char **error_r)
{
	struct passwd_ctx *ctx = vctx;
	int lock = passwd_admin_begin(ctx, error_r);
	if (lock < 0)
		return -1;
	int ret = -1;
	const struct passwd_entry *e = passwd_find(ctx->table, user);
	if (e == NULL)
		*error_r = "no such user";
	else
		ret = passwd_write(ctx, e, NULL, NULL, NULL, error_r);
	return passwd_admin_end(ctx, lock, ret);
}

static int passwd_user_list(void *vctx, void (*fn)(const char *user, void *fctx),
			    void *fctx, const char **error_r)
{
	struct passwd_ctx *ctx = vctx;
	if (passwd_refresh(ctx, false, error_r) < 0)
		return -1;
	pthread_rwlock_rdlock(&ctx->lock);
	for (size_t i = 0; ctx->table != NULL && i < ctx->table->n_users; i++)
		fn(ctx->table->sorted[i]->user, fctx);
	pthread_rwlock_unlock(&ctx->lock);
	return 0;
}

/* ---------- plugin ---------- */

static void passwd_deinit(void *vctx)
{
	struct passwd_ctx *ctx = vctx;
	if (ctx == NULL)
		return;
	passwd_table_free(ctx->table);
	pthread_rwlock_destroy(&ctx->lock);
	pthread_mutex_destroy(&ctx->reload_lock);
	free(ctx->file);
	free(ctx->lock_file);
	free(ctx);
}

/* init() errors: one static buffer (init runs once, on the main thread),
 * so nothing is leaked when the caller ignores the string. */
__attribute__((format(printf, 1, 2)))
static const char *passwd_init_error(const char *fmt, ...)
{
	static char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return buf;
}

static int passwd_init(struct ma_core *core, const struct ma_config_section *config,
		       void **ctx_r, const char **error_r)
{
	(void)core;
	char *cerr = NULL;
	const char *file = config != NULL ? ma_config_get(config, "file", NULL) : NULL;
	if (file == NULL || file[0] == '\0') {
		*error_r = "auth passwd: `file` is required";
		return -1;
	}
	unsigned scheme = PASSWD_SHA512_CRYPT;
	uint64_t rounds = PASSWD_DEFAULT_ROUNDS, kib = PASSWD_DEFAULT_ARGON2_KIB * 1024ull;
	uint64_t passes = PASSWD_DEFAULT_ARGON2_PASSES;
	if (ma_config_get_enum(config, "scheme", passwd_scheme_names, 0,
			       &scheme, &cerr) < 0 ||
	    ma_config_get_uint(config, "rounds", PASSWD_DEFAULT_ROUNDS,
			       999999999, &rounds, &cerr) < 0 ||
	    ma_config_get_size(config, "argon2_memory",
			       PASSWD_DEFAULT_ARGON2_KIB * 1024ull, &kib,
			       &cerr) < 0 ||
	    ma_config_get_uint(config, "argon2_passes",
			       PASSWD_DEFAULT_ARGON2_PASSES, 100, &passes,
			       &cerr) < 0) {
		*error_r = passwd_init_error("%s", cerr);
		free(cerr);
		return -1;
	}
	if (rounds < 1000) {
		*error_r = "auth passwd: rounds must be at least 1000";
		return -1;
	}
	kib /= 1024;
	if (kib < 8 || kib > 4u * 1024 * 1024 || passes < 1) {
		*error_r = "auth passwd: argon2_memory must be 8k..4G, argon2_passes >= 1";
		return -1;
	}

	struct passwd_ctx *ctx = ma_malloc0(sizeof(*ctx));
	ctx->file = ma_strdup(file);
	if (asprintf(&ctx->lock_file, "%s.lock", file) < 0)
		ma_oom();
	ctx->scheme = (enum passwd_scheme)scheme;
	ctx->rounds = (unsigned)rounds;
	ctx->argon2_kib = (unsigned)kib;
	ctx->argon2_passes = (unsigned)passes;
	pthread_mutex_init(&ctx->reload_lock, NULL);
	pthread_rwlock_init(&ctx->lock, NULL);

	const char *error = NULL;
	if (passwd_refresh(ctx, true, &error) < 0) {
		*error_r = passwd_init_error("auth passwd: cannot read %s: %s",
					     file, error);
		passwd_deinit(ctx);
		return -1;
	}
	if (!ctx->have_stat)
		ma_warning("auth passwd: %s does not exist yet (no users)", file);

	/* A hash of a random password, checked for unknown users. */
	unsigned char rnd[16];
	char dummy[sizeof(rnd) * 2 + 1];
	ma_random(rnd, sizeof(rnd));
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(dummy + i * 2, 3, "%02x", rnd[i]);
	if (passwd_make_hash(ctx, ctx->scheme, dummy, ctx->dummy_hash,
			     &error) < 0) {
		*error_r = error;
		passwd_deinit(ctx);
		return -1;
	}
	*ctx_r = ctx;
	return 0;
}

static const struct ma_auth_ops passwd_ops = {
	.struct_size = sizeof(struct ma_auth_ops),
	.verify = passwd_verify,
	.lookup = passwd_lookup,
	.user_add = passwd_user_add,
	.user_del = passwd_user_del,
	.user_passwd = passwd_user_passwd,
	.user_list = passwd_user_list,
};

MA_PLUGIN_EXPORT const struct ma_plugin mailaccess_plugin = {
	MA_PLUGIN_INIT(MA_PLUGIN_AUTH, "passwd", "1.0"),
	.init = passwd_init,
	.deinit = passwd_deinit,
	.ops = &passwd_ops,
};
