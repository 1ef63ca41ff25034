/*
 * maildir-store.c - store-maildir.so: the mail level (struct ma_store_ops)
 * on Maildir / Maildir++ directories, as MTAs, Dovecot and Courier write
 * them. Owns the on-disk layout (docs/maildir.md): folder name escaping,
 * our UID list `mailaccess-uidlist` (with adoption of `dovecot-uidlist` and
 * `courierimapuidlist`), Dovecot's `dovecot-keywords`, the `subscriptions`
 * file, cache side files, and the inotify watch that feeds the change bus
 * when mail arrives from outside.
 *
 * Every folder operation that reads or writes the UID list holds an
 * exclusive flock on `mailaccess-uidlist.lock` in the folder; the list is
 * replaced with write tmp + fsync + rename + fsync(dir), so readers never
 * see a half-written list and a crash leaves the old or the new one.
 * Folder handles are directory fds, so an open view survives a plain
 * rename of its mailbox.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include <mailaccess/mailaccess.h>

#include "maildir-private.h"

#define MD_UIDLIST "mailaccess-uidlist"
#define MD_UIDLIST_TMP "mailaccess-uidlist.tmp"
#define MD_LOCK "mailaccess-uidlist.lock"
#define MD_JOURNAL "mailaccess-uidlist.pending"
#define MD_KEYWORDS "dovecot-keywords"
#define MD_SPECIALUSE "mailaccess-specialuse"
#define MD_CACHEDIR "mailaccess-cache"
#define MD_UIDVALIDITY "mailaccess-uidvalidity"
#define MD_SUBS "subscriptions"
/* Maildir info letters a..z: 26 keywords per folder at most. */
#define MD_KW_MAX 26
/* tmp/ files older than this are leftovers of crashed writers (the
 * Maildir spec's 36 hours). */
#define MD_TMP_STALE_SECS (36 * 3600)
#define MD_PATH_MAX 4096
/* Largest message file we map (the store's own limits are far lower). */
#define MD_MSG_MAX ((uint64_t)1 << 34)

struct maildir_watch {
	int wd;
	unsigned refs;
	char *user;
	char *mailbox;
};

struct maildir_ctx {
	char *root;
	bool fsync;
	struct ma_core *core;
	pthread_mutex_t lock;	/* the watch table */
	int ino_fd;
	pid_t ino_pid;
	ev_io ino_io;
	bool ino_started;
	struct maildir_watch *watches;
	unsigned n_watches, cap_watches;
};

struct maildir_user {
	struct maildir_ctx *ctx;
	char *name;
	char *dir;
	int dirfd;
};

struct maildir_box {
	struct maildir_user *u;
	char *name;
	int fd;
	bool readonly;
	struct md_list snap;
	struct ma_msg *msgs;
	char *kw[MD_KW_MAX];
	const char *kw_view[MD_KW_MAX];
	unsigned n_kw;
	uint32_t *expunged, *changed;
	int wd[2];
};

struct md_data_handle {
	void *map;
	size_t map_len;
	unsigned char *buf;
};

static bool md_fsync_enabled = true;

/* ---------------- small helpers ---------------- */

static void md_fsync_fd(int fd)
{
	if (md_fsync_enabled && fsync(fd) < 0 && errno != EINVAL)
		ma_log(MA_LOG_WARNING, "maildir: fsync: %s", strerror(errno));
}

static int md_sys_error(struct ma_error_info *err, const char *what)
{
	int e = errno;

	if (e == ENOSPC || e == EDQUOT)
		return ma_error_set(err, MA_ERR_QUOTA, "Not enough disk space");
	ma_log(MA_LOG_ERROR, "maildir: %s: %s", what, strerror(e));
	if (e == ENOENT)
		return ma_error_set(err, MA_ERR_NOTFOUND, "Mailbox does not exist");
	if (e == EACCES || e == EPERM || e == EROFS)
		return ma_error_set(err, MA_ERR_PERM, "Permission denied");
	return ma_error_set(err, MA_ERR_TEMP, "Internal storage error");
}

/* Encodes our name (components split by '/') as a Maildir++ directory
 * name: "." + components joined by '.', with '.', '~' and bytes < 0x20
 * inside a component written as "~XX" (two lowercase hex digits).
 * INBOX is the Maildir root itself: "" (empty). */
int maildir_name_encode(const char *name, char *out, size_t outsize)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (strcmp(name, "INBOX") == 0) {
		if (outsize < 1)
			return -1;
		out[0] = '\0';
		return 0;
	}
	if (outsize < 2)
		return -1;
	out[o++] = '.';
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (o + 4 >= outsize)
			return -1;
		if (*p == '/')
			out[o++] = '.';
		else if (*p == '.' || *p == '~' || *p < 0x20) {
			out[o++] = '~';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		} else
			out[o++] = (char)*p;
	}
	out[o] = '\0';
	return 0;
}

static int md_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The reverse of maildir_name_encode for a directory entry ".a.b~2ec".
 * -1 for anything that is not a valid folder name. */
int maildir_name_decode(const char *dname, char *out, size_t outsize)
{
	size_t o = 0;
	const char *p = dname;

	if (p[0] != '.' || p[1] == '\0' || p[1] == '.')
		return -1;
	for (p++; *p; p++) {
		char c = *p;

		if (o + 1 >= outsize)
			return -1;
		if (c == '.') {
			if (o == 0 || out[o - 1] == '/' || p[1] == '\0')
				return -1;	/* empty component */
			c = '/';
		} else if (c == '~') {
			int h = md_hexval(p[1]), l = h < 0 ? -1 : md_hexval(p[2]);

			if (h < 0 || l < 0 || (h == 0 && l == 0))
				return -1;
			c = (char)(h * 16 + l);
			p += 2;
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return o == 0 ? -1 : 0;
}

/* ---------------- message file names ---------------- */

/* Flags and keyword bits from "base:2,DFRSTab". */
void maildir_parse_info(const char *fname, uint32_t *flags_r, uint64_t *kw_r)
{
	const char *info = strstr(fname, ":2,");
	uint32_t flags = 0;
	uint64_t kw = 0;

	if (info != NULL) {
		for (const char *p = info + 3; *p; p++) {
			switch (*p) {
			case 'D': flags |= MA_FLAG_DRAFT; break;
			case 'F': flags |= MA_FLAG_FLAGGED; break;
			case 'R': flags |= MA_FLAG_ANSWERED; break;
			case 'S': flags |= MA_FLAG_SEEN; break;
			case 'T': flags |= MA_FLAG_DELETED; break;
			default:
				if (*p >= 'a' && *p <= 'z')
					kw |= (uint64_t)1 << (*p - 'a');
				break;
			}
		}
	}
	*flags_r = flags;
	*kw_r = kw;
}

static size_t md_base_len(const char *fname)
{
	const char *c = strchr(fname, ':');

	return c != NULL ? (size_t)(c - fname) : strlen(fname);
}

/* base + ":2," + flags in ASCII order (the Maildir spec's rule). */
static int md_make_fname(const char *fname, size_t base_len, uint32_t flags,
			 uint64_t kw, char *out, size_t outsize)
{
	char info[40];
	size_t i = 0;

	if (flags & MA_FLAG_DRAFT) info[i++] = 'D';
	if (flags & MA_FLAG_FLAGGED) info[i++] = 'F';
	if (flags & MA_FLAG_ANSWERED) info[i++] = 'R';
	if (flags & MA_FLAG_SEEN) info[i++] = 'S';
	if (flags & MA_FLAG_DELETED) info[i++] = 'T';
	for (unsigned k = 0; k < MD_KW_MAX; k++)
		if (kw & ((uint64_t)1 << k))
			info[i++] = (char)('a' + k);
	info[i] = '\0';
	if ((size_t)snprintf(out, outsize, "%.*s:2,%s", (int)base_len, fname,
			     info) >= outsize)
		return -1;
	return 0;
}

/* Dovecot's ",W=<n>" is the size with CRLF line ends: exactly ours. */
static bool md_name_vsize(const char *fname, uint64_t *vsize_r)
{
	size_t bl = md_base_len(fname);
	const char *p = fname;

	while ((p = strstr(p, ",W=")) != NULL && (size_t)(p - fname) < bl) {
		uint64_t v = 0;
		const char *q = p + 3;

		if (*q < '0' || *q > '9')
			return false;
		while (*q >= '0' && *q <= '9' && v < MD_MSG_MAX)
			v = v * 10 + (uint64_t)(*q++ - '0');
		*vsize_r = v;
		return true;
	}
	return false;
}

/* Size of the file with every bare LF counted as CRLF. */
static int md_file_vsize(int dirfd, const char *fname, uint64_t *vsize_r,
			 int64_t *mtime_r)
{
	char path[MD_PATH_MAX];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "cur/%s", fname);
	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > MD_MSG_MAX) {
		close(fd);
		return -1;
	}
	if (mtime_r != NULL)
		*mtime_r = st.st_mtime;
	uint64_t v = (uint64_t)st.st_size;
	if (st.st_size > 0) {
		const unsigned char *m = mmap(NULL, (size_t)st.st_size, PROT_READ,
					      MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			close(fd);
			return -1;
		}
		for (size_t i = 0; i < (size_t)st.st_size; i++)
			if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r'))
				v++;
		munmap((void *)m, (size_t)st.st_size);
	}
	close(fd);
	*vsize_r = v;
	return 0;
}

/* ---------------- the UID list ---------------- */

void maildir_list_free(struct md_list *l)
{
	for (unsigned i = 0; i < l->n; i++)
		free(l->e[i].fname);
	free(l->e);
	memset(l, 0, sizeof(*l));
}

static struct md_entry *md_list_add(struct md_list *l)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->e = ma_realloc(l->e, l->cap * sizeof(*l->e));
	}
	memset(&l->e[l->n], 0, sizeof(l->e[0]));
	return &l->e[l->n++];
}

static FILE *md_fopenat(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	FILE *f;

	if (fd < 0)
		return NULL;
	f = fdopen(fd, "r");
	if (f == NULL)
		close(fd);
	return f;
}

static bool md_valid_fname(const char *s)
{
	if (s[0] == '\0' || s[0] == '.' || strlen(s) > 255)
		return false;
	return strchr(s, '/') == NULL;
}

/* Our format (docs/maildir.md):
 *   mailaccess-uidlist 1 V<uidvalidity> N<uidnext> M<modseq>
 *   <uid> <modseq> <vsize> <cache size> <internal date> <tz> <file name>
 * Returns 1 loaded, 0 no file, -1 corrupt/unreadable (errno set). */
int maildir_list_read(int dirfd, struct md_list *l)
{
	FILE *f = md_fopenat(dirfd, MD_UIDLIST);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int ret = 1;

	memset(l, 0, sizeof(*l));
	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	len = getline(&line, &cap, f);
	unsigned long long v, n, m;
	if (len <= 0 || sscanf(line, "mailaccess-uidlist 1 V%llu N%llu M%llu",
			       &v, &n, &m) != 3 || v == 0 || v > UINT32_MAX ||
	    n == 0 || n > UINT32_MAX) {
		ret = -1;
		errno = EINVAL;
	} else {
		l->uidvalidity = (uint32_t)v;
		l->uidnext = (uint32_t)n;
		l->modseq = m;
	}
	while (ret > 0 && (len = getline(&line, &cap, f)) > 0) {
		unsigned long long uid, ms, vs, cs;
		long long date;
		int tz, off = 0;

		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (sscanf(line, "%llu %llu %llu %llu %lld %d %n", &uid, &ms, &vs,
			   &cs, &date, &tz, &off) != 6 || off == 0 || uid == 0 ||
		    tz < -24 * 60 || tz > 24 * 60 ||
		    uid > UINT32_MAX || cs > UINT32_MAX || vs > MD_MSG_MAX ||
		    !md_valid_fname(line + off))
			continue;	/* a broken line: its file is found again */
		struct md_entry *e = md_list_add(l);
		e->uid = (uint32_t)uid;
		e->modseq = ms;
		e->vsize = vs;
		e->csize = (uint32_t)cs;
		e->date = date;
		e->tz = tz;
		e->fname = ma_strdup(line + off);
	}
	free(line);
	fclose(f);
	if (ret < 0)
		maildir_list_free(l);
	return ret;
}

static int md_list_write(int dirfd, const struct md_list *l)
{
	int fd = openat(dirfd, MD_UIDLIST_TMP,
			O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f;

	if (fd < 0)
		return -1;
	f = fdopen(fd, "w");
	if (f == NULL) {
		close(fd);
		return -1;
	}
	fprintf(f, "mailaccess-uidlist 1 V%u N%u M%llu\n", l->uidvalidity,
		l->uidnext, (unsigned long long)l->modseq);
	for (unsigned i = 0; i < l->n; i++)
		fprintf(f, "%u %llu %llu %u %lld %d %s\n", l->e[i].uid,
			(unsigned long long)l->e[i].modseq,
			(unsigned long long)l->e[i].vsize, l->e[i].csize,
			(long long)l->e[i].date, (int)l->e[i].tz, l->e[i].fname);
	if (fflush(f) != 0 || ferror(f)) {
		int e = errno;
		fclose(f);
		unlinkat(dirfd, MD_UIDLIST_TMP, 0);
		errno = e;
		return -1;
	}
	md_fsync_fd(fileno(f));
	if (fclose(f) != 0 ||
	    renameat(dirfd, MD_UIDLIST_TMP, dirfd, MD_UIDLIST) < 0)
		return -1;
	md_fsync_fd(dirfd);
	return 0;
}

/* Dovecot's dovecot-uidlist: header "3 V<uidvalidity> N<nextuid> G<guid>"
 * (version 1: "1 <uidvalidity> <nextuid>"), then "<uid> [ext fields]
 * :<basename>" (v3), "<uid> <flags> <basename>" (v2) or "<uid> <basename>"
 * (v1). Courier's courierimapuiddb (or courierimapuidlist):
 * "1 <uidvalidity> <nextuid>" then "<uid> <basename>"
 * ("2"/"3" headers, where a line may carry the name after a ":" too, are
 * read the same way). Returns 1 adopted, 0 no such file. */
int maildir_adopt(int dirfd, const char *file, struct md_list *l)
{
	FILE *f = md_fopenat(dirfd, file);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned long long ver = 0, v = 0, n = 0;

	memset(l, 0, sizeof(*l));
	if (f == NULL)
		return 0;
	len = getline(&line, &cap, f);
	if (len > 0) {
		char *p = line, *end;

		ver = strtoull(p, &end, 10);
		p = end;
		while (*p == ' ') {
			p++;
			if (*p == 'V')
				v = strtoull(p + 1, &end, 10);
			else if (*p == 'N')
				n = strtoull(p + 1, &end, 10);
			else if (*p >= '0' && *p <= '9' && v == 0)
				v = strtoull(p, &end, 10);
			else if (*p >= '0' && *p <= '9' && n == 0)
				n = strtoull(p, &end, 10);
			else
				end = p + strcspn(p, " ");
			p = end;
		}
	}
	if (ver == 0 || v == 0 || v > UINT32_MAX || n > UINT32_MAX) {
		free(line);
		fclose(f);
		return 0;
	}
	l->uidvalidity = (uint32_t)v;
	l->uidnext = n == 0 ? 1 : (uint32_t)n;
	l->modseq = 1;
	while ((len = getline(&line, &cap, f)) > 0) {
		char *end, *name;
		unsigned long long uid;

		if (line[len - 1] == '\n')
			line[--len] = '\0';
		uid = strtoull(line, &end, 10);
		if (uid == 0 || uid > UINT32_MAX || *end != ' ')
			continue;
		name = strstr(end, " :");
		if (name != NULL)
			name += 2;
		else if (ver >= 3 && end[1] == ':')
			name = end + 2;
		else {
			name = end + 1;
			while (*name == ' ')
				name++;
			/* version 2: "<uid> <flags> <filename>" */
			char *sp = strchr(name, ' ');
			if (ver == 2 && sp != NULL)
				name = sp + 1;
		}
		name[md_base_len(name)] = '\0';
		if (!md_valid_fname(name))
			continue;
		struct md_entry *e = md_list_add(l);
		e->uid = (uint32_t)uid;
		e->modseq = 1;
		e->vsize = UINT64_MAX;	/* found at the directory scan */
		e->fname = ma_strdup(name);
		if (uid >= l->uidnext)
			l->uidnext = (uint32_t)uid + 1;
	}
	free(line);
	fclose(f);
	return 1;
}

/* A UIDVALIDITY never handed out before in this user's store: the time,
 * but strictly above the last one given (kept in MD_UIDVALIDITY), so a
 * mailbox deleted and re-created in the same second still changes. */
static uint32_t md_new_uidvalidity(int userfd)
{
	uint32_t now = (uint32_t)time(NULL), last = 0, v;
	int fd = openat(userfd, MD_UIDVALIDITY, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	char buf[32];

	if (fd < 0)
		return now;
	(void)flock(fd, LOCK_EX);
	ssize_t r = pread(fd, buf, sizeof(buf) - 1, 0);
	if (r > 0) {
		buf[r] = '\0';
		last = (uint32_t)strtoul(buf, NULL, 10);
	}
	v = now > last ? now : last + 1;
	if (v == 0)
		v = 1;
	int w = snprintf(buf, sizeof(buf), "%u\n", v);
	if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)w, 0) == w)
		md_fsync_fd(fd);
	close(fd);
	return v;
}

/* ---------------- the directory scan ---------------- */

static int md_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int md_cmp_base(const char *a, const char *b)
{
	size_t la = md_base_len(a), lb = md_base_len(b);
	int c = memcmp(a, b, la < lb ? la : lb);

	return c != 0 ? c : (la < lb ? -1 : la > lb ? 1 : 0);
}

static int md_cmp_entry_base(const void *a, const void *b)
{
	const struct md_entry *x = a, *y = b;
	int c = md_cmp_base(x->fname, y->fname);

	return c != 0 ? c : (x->uid < y->uid ? -1 : x->uid > y->uid);
}

static int md_cmp_entry_uid(const void *a, const void *b)
{
	const struct md_entry *x = a, *y = b;

	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static int md_cmp_fname_base(const void *a, const void *b)
{
	return md_cmp_base(*(char *const *)a, *(char *const *)b);
}

/* Names of the files in dirfd/sub (dot files skipped). */
static int md_readdir(int dirfd, const char *sub, char ***names_r,
		      unsigned *n_r)
{
	int fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	unsigned n = 0, cap = 0;

	*names_r = NULL;
	*n_r = 0;
	if (fd < 0)
		return -1;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || !md_valid_fname(de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = ma_realloc(names, cap * sizeof(*names));
		}
		names[n++] = ma_strdup(de->d_name);
	}
	closedir(d);
	*names_r = names;
	*n_r = n;
	return 0;
}

static void md_free_names(char **names, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Mail an MTA left in new/ moves to cur/ with an empty info part, as
 * every Maildir reader does; we then only ever look at cur/. */
static void md_move_new(int dirfd)
{
	char **names;
	unsigned n;

	if (md_readdir(dirfd, "new", &names, &n) < 0)
		return;
	for (unsigned i = 0; i < n; i++) {
		char from[MD_PATH_MAX], to[MD_PATH_MAX];

		snprintf(from, sizeof(from), "new/%s", names[i]);
		if (strstr(names[i], ":2,") != NULL)
			snprintf(to, sizeof(to), "cur/%s", names[i]);
		else
			snprintf(to, sizeof(to), "cur/%.*s:2,",
				 (int)md_base_len(names[i]), names[i]);
		if (renameat(dirfd, from, dirfd, to) < 0 && errno != ENOENT)
			ma_log(MA_LOG_WARNING, "maildir: rename %s: %s", from,
			       strerror(errno));
	}
	md_free_names(names, n);
}

void maildir_clean_tmp(int dirfd)
{
	char **names;
	unsigned n;
	time_t now = time(NULL);

	if (md_readdir(dirfd, "tmp", &names, &n) < 0)
		return;
	for (unsigned i = 0; i < n; i++) {
		char p[MD_PATH_MAX];
		struct stat st;

		snprintf(p, sizeof(p), "tmp/%s", names[i]);
		if (fstatat(dirfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && st.st_mtime + MD_TMP_STALE_SECS < now)
			unlinkat(dirfd, p, 0);
	}
	md_free_names(names, n);
}

/* Brings l (the list as read) in line with cur/: drops entries whose file
 * is gone, follows renames (flag changes by anybody), gives files without
 * an entry the next UIDs in file name (delivery time) order, fixes
 * duplicates and a too small UIDNEXT. Sets *dirty when l changed; counts
 * what it fixed in rep. */
int maildir_reconcile(int dirfd, struct md_list *l, bool move_new,
		      struct md_report *rep, bool *dirty)
{
	char **names;
	unsigned n;
	struct md_list out;
	char **fresh = NULL;
	unsigned n_fresh = 0;

	memset(rep, 0, sizeof(*rep));
	/* UIDs are never reused: not even those of entries dropped below */
	uint32_t max_in = 0;
	for (unsigned k = 0; k < l->n; k++)
		if (l->e[k].uid > max_in)
			max_in = l->e[k].uid;
	if (max_in != 0 && l->uidnext <= max_in) {
		rep->uidnext_low++;
		l->uidnext = max_in == UINT32_MAX ? UINT32_MAX : max_in + 1;
	}
	if (move_new)
		md_move_new(dirfd);
	if (md_readdir(dirfd, "cur", &names, &n) < 0)
		return -1;
	if (n > 0)
		qsort(names, n, sizeof(*names), md_cmp_fname_base);
	if (l->n > 0)
		qsort(l->e, l->n, sizeof(*l->e), md_cmp_entry_base);

	memset(&out, 0, sizeof(out));
	out.uidvalidity = l->uidvalidity;
	out.uidnext = l->uidnext;
	out.modseq = l->modseq;
	fresh = n ? ma_malloc0(n * sizeof(*fresh)) : NULL;
	unsigned i = 0, j = 0;
	while (i < l->n || j < n) {
		int c = i >= l->n ? 1 : j >= n ? -1 :
			md_cmp_base(l->e[i].fname, names[j]);

		if (c < 0) {
			/* entry without a file: expunged from outside */
			rep->missing++;
			out.modseq++;
			free(l->e[i].fname);
			i++;
			continue;
		}
		if (c > 0) {
			fresh[n_fresh++] = names[j];
			names[j++] = NULL;
			continue;
		}
		/* same base name: entries of one file with several UIDs
		 * keep the lowest (sorted first) */
		struct md_entry *e = md_list_add(&out);
		*e = l->e[i];
		i++;
		while (i < l->n && md_cmp_base(l->e[i].fname, names[j]) == 0) {
			rep->dup_files++;
			free(l->e[i].fname);
			i++;
		}
		if (strcmp(e->fname, names[j]) != 0) {
			free(e->fname);
			e->fname = names[j];
			names[j] = NULL;
			e->modseq = ++out.modseq;
		}
		if (e->vsize == UINT64_MAX || e->date == 0) {
			uint64_t vs = 0;
			int64_t mt = 0;

			if (!md_name_vsize(e->fname, &vs) || e->date == 0) {
				if (md_file_vsize(dirfd, e->fname, &vs, &mt) < 0)
					vs = 0;
				if (!md_name_vsize(e->fname, &e->vsize))
					e->vsize = vs;
				e->date = mt;
			} else
				e->vsize = vs;
			rep->filled++;
		}
		j++;
	}
	/* Other base names with one file each: nothing else to skip. */
	free(l->e);
	l->e = NULL;
	l->n = l->cap = 0;

	/* Duplicate UIDs: the later file gets a new UID. */
	if (out.n > 0)
		qsort(out.e, out.n, sizeof(*out.e), md_cmp_entry_uid);
	for (unsigned k = 1; k < out.n; k++) {
		if (out.e[k].uid == out.e[k - 1].uid) {
			rep->dup_uids++;
			fresh[n_fresh++] = out.e[k].fname;
			memmove(&out.e[k], &out.e[k + 1],
				(out.n - k - 1) * sizeof(*out.e));
			out.n--;
			k--;
		}
	}
	if (out.n > 0 && out.uidnext <= out.e[out.n - 1].uid) {
		rep->uidnext_low++;
		out.uidnext = out.e[out.n - 1].uid + 1;
	}
	/* New files in delivery order: Maildir names start with the
	 * delivery time in seconds. */
	if (n_fresh > 0)
		qsort(fresh, n_fresh, sizeof(*fresh), md_cmp_str);
	for (unsigned k = 0; k < n_fresh; k++) {
		struct md_entry *e;
		uint64_t vs = 0;
		int64_t mt = 0;

		if (out.uidnext == UINT32_MAX) {
			free(fresh[k]);
			continue;	/* UID space used up: verify says so */
		}
		if (md_file_vsize(dirfd, fresh[k], &vs, &mt) < 0) {
			free(fresh[k]);
			continue;
		}
		rep->unlisted++;
		e = md_list_add(&out);
		e->uid = out.uidnext++;
		e->modseq = ++out.modseq;
		uint64_t wv;
		e->vsize = md_name_vsize(fresh[k], &wv) ? wv : vs;
		e->date = mt;
		e->fname = fresh[k];
	}
	free(fresh);
	md_free_names(names, n);
	*dirty = *dirty || rep->missing || rep->unlisted || rep->dup_files ||
		rep->dup_uids || rep->uidnext_low || rep->filled ||
		out.modseq != l->modseq;
	*l = out;
	return 0;
}

/* ---------------- folder lock + refresh ---------------- */

/* ---------------- the write journal ----------------
 *
 * A write touching several files (append or copy of n messages, expunge
 * or flag change of n) is made all-or-nothing by a journal written
 * (fsync + rename) before the first file is touched, under the folder
 * lock: "A <tmp name> <cur name>" (rename tmp/ -> cur/), "D <cur name>"
 * (unlink), "R <old> <new>" (rename within cur/). A writer killed half
 * way leaves the journal; the next locker replays it to the end (every
 * step is idempotent) before reading the folder, then removes it. */

static int md_journal_write(int dirfd, const char *text, size_t len)
{
	int fd = openat(dirfd, MD_JOURNAL ".tmp",
			O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	const char *p = text;
	size_t left = len;

	if (fd < 0)
		return -1;
	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		p += w;
		left -= (size_t)w;
	}
	md_fsync_fd(fd);
	if (close(fd) < 0 ||
	    renameat(dirfd, MD_JOURNAL ".tmp", dirfd, MD_JOURNAL) < 0)
		return -1;
	md_fsync_fd(dirfd);
	return 0;
}

static void md_fsync_sub(int dirfd, const char *sub)
{
	int fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		md_fsync_fd(fd);
		close(fd);
	}
}

static void md_journal_done(int dirfd)
{
	if (unlinkat(dirfd, MD_JOURNAL, 0) < 0 && errno != ENOENT)
		ma_log(MA_LOG_WARNING, "maildir: remove journal: %s", strerror(errno));
}

/* Lock held. */
static void md_journal_replay(int dirfd)
{
	FILE *f = md_fopenat(dirfd, MD_JOURNAL);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	if (f == NULL)
		return;
	while ((len = getline(&line, &cap, f)) > 0) {
		char a[MD_PATH_MAX], b[MD_PATH_MAX];
		char *sp;

		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (len < 3 || line[1] != ' ')
			continue;
		sp = strchr(line + 2, ' ');
		if (sp != NULL)
			*sp++ = '\0';
		if (!md_valid_fname(line + 2) || (sp != NULL && !md_valid_fname(sp)))
			continue;
		if (line[0] == 'A' && sp != NULL) {
			snprintf(a, sizeof(a), "tmp/%s", line + 2);
			snprintf(b, sizeof(b), "cur/%s", sp);
			(void)renameat(dirfd, a, dirfd, b);
		} else if (line[0] == 'R' && sp != NULL) {
			snprintf(a, sizeof(a), "cur/%s", line + 2);
			snprintf(b, sizeof(b), "cur/%s", sp);
			(void)renameat(dirfd, a, dirfd, b);
		} else if (line[0] == 'D') {
			snprintf(a, sizeof(a), "cur/%s", line + 2);
			(void)unlinkat(dirfd, a, 0);
			snprintf(a, sizeof(a), MD_CACHEDIR "/%.*s",
				 (int)md_base_len(line + 2), line + 2);
			(void)unlinkat(dirfd, a, 0);
		}
	}
	free(line);
	fclose(f);
	md_fsync_sub(dirfd, "cur");
	md_fsync_sub(dirfd, "tmp");
	ma_log(MA_LOG_INFO, "maildir: finished an interrupted write");
	md_journal_done(dirfd);
}

static int md_lock(int dirfd, struct ma_error_info *err)
{
	int fd = openat(dirfd, MD_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0) {
		if (errno == ENOENT)
			return ma_error_set(err, MA_ERR_NOTFOUND,
					    "Mailbox does not exist");
		return md_sys_error(err, "open lock");
	}
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			close(fd);
			return md_sys_error(err, "flock");
		}
	}
	return fd;
}

/* Loads (or adopts, or starts) the folder's list and reconciles it with
 * the directory; writes it back if anything changed. Lock held. */
static int md_load_locked(struct maildir_user *u, int dirfd, struct md_list *l,
			  struct ma_error_info *err)
{
	struct md_report rep;
	bool dirty = false, adopted = false;

	md_journal_replay(dirfd);
	int r = maildir_list_read(dirfd, l);

	if (r < 0) {
		ma_log(MA_LOG_WARNING, "maildir: %s: unreadable %s, rebuilding",
		       u->name, MD_UIDLIST);
		r = 0;
	}
	if (r == 0) {
		/* Courier IMAP's own name is courierimapuiddb; some
		 * tools write courierimapuidlist */
		if (maildir_adopt(dirfd, "dovecot-uidlist", l) > 0 ||
		    maildir_adopt(dirfd, "courierimapuiddb", l) > 0 ||
		    maildir_adopt(dirfd, "courierimapuidlist", l) > 0)
			adopted = true;
		else {
			memset(l, 0, sizeof(*l));
			l->uidvalidity = md_new_uidvalidity(u->dirfd);
			l->uidnext = 1;
			l->modseq = 1;
		}
		dirty = true;
	}
	if (maildir_reconcile(dirfd, l, true, &rep, &dirty) < 0) {
		maildir_list_free(l);
		return md_sys_error(err, "scan cur");
	}
	if (adopted)
		ma_log(MA_LOG_INFO, "maildir: %s: adopted UID list (%u messages, "
		       "UIDVALIDITY %u)", u->name, l->n, l->uidvalidity);
	if (dirty && md_list_write(dirfd, l) < 0) {
		maildir_list_free(l);
		return md_sys_error(err, "write uidlist");
	}
	return 0;
}

static int md_refresh(struct maildir_user *u, int dirfd, struct md_list *l,
		      struct ma_error_info *err)
{
	int lfd = md_lock(dirfd, err);

	if (lfd < 0)
		return -1;
	int r = md_load_locked(u, dirfd, l, err);
	close(lfd);
	return r;
}

/* ---------------- keywords (dovecot-keywords: "N name" lines) ---------------- */

static void md_kw_free(char **kw)
{
	for (unsigned i = 0; i < MD_KW_MAX; i++) {
		free(kw[i]);
		kw[i] = NULL;
	}
}

static void md_kw_read(int dirfd, char **kw)
{
	FILE *f = md_fopenat(dirfd, MD_KEYWORDS);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	md_kw_free(kw);
	if (f == NULL)
		return;
	while ((len = getline(&line, &cap, f)) > 0) {
		char *end;
		unsigned long idx;

		if (line[len - 1] == '\n')
			line[--len] = '\0';
		idx = strtoul(line, &end, 10);
		if (end == line || *end != ' ' || idx >= MD_KW_MAX ||
		    end[1] == '\0' || kw[idx] != NULL)
			continue;
		kw[idx] = ma_strdup(end + 1);
	}
	free(line);
	fclose(f);
}

static int md_kw_write(int dirfd, char **kw)
{
	int fd = openat(dirfd, MD_KEYWORDS ".tmp",
			O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f;

	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	for (unsigned i = 0; i < MD_KW_MAX; i++)
		if (kw[i] != NULL)
			fprintf(f, "%u %s\n", i, kw[i]);
	if (fflush(f) != 0) {
		fclose(f);
		return -1;
	}
	md_fsync_fd(fileno(f));
	if (fclose(f) != 0 ||
	    renameat(dirfd, MD_KEYWORDS ".tmp", dirfd, MD_KEYWORDS) < 0)
		return -1;
	return 0;
}

/* Bits for keyword names, adding new ones to the folder's file (lock
 * held). IMAP keywords compare case-insensitively. */
static int md_kw_map(int dirfd, const char *const *names, unsigned n,
		     uint64_t *mask_r, struct ma_error_info *err)
{
	char *kw[MD_KW_MAX] = { NULL };
	bool added = false;
	uint64_t mask = 0;

	*mask_r = 0;
	if (n == 0)
		return 0;
	md_kw_read(dirfd, kw);
	for (unsigned i = 0; i < n; i++) {
		unsigned k, free_k = MD_KW_MAX;

		if (names[i] == NULL || names[i][0] == '\0' ||
		    strpbrk(names[i], " \r\n") != NULL) {
			md_kw_free(kw);
			return ma_error_set(err, MA_ERR_BADARGS, "Invalid keyword");
		}
		for (k = 0; k < MD_KW_MAX; k++) {
			if (kw[k] == NULL) {
				if (free_k == MD_KW_MAX)
					free_k = k;
			} else if (strcasecmp(kw[k], names[i]) == 0)
				break;
		}
		if (k == MD_KW_MAX) {
			if (free_k == MD_KW_MAX) {
				md_kw_free(kw);
				return ma_error_set(err, MA_ERR_LIMIT,
					"Too many keywords in this mailbox (26)");
			}
			kw[free_k] = ma_strdup(names[i]);
			k = free_k;
			added = true;
		}
		mask |= (uint64_t)1 << k;
	}
	if (added && md_kw_write(dirfd, kw) < 0) {
		md_kw_free(kw);
		return md_sys_error(err, "write keywords");
	}
	md_kw_free(kw);
	*mask_r = mask;
	return 0;
}

/* ---------------- plugin init ---------------- */

static int maildir_init(struct ma_core *core, const struct ma_config_section *config,
			void **ctx_r, const char **error_r)
{
	const char *path = config != NULL ? ma_config_get(config, "path", NULL) : NULL;
	bool fs = true;

	if (path == NULL || path[0] != '/') {
		*error_r = "store: 'path' must be set to an absolute directory";
		return -1;
	}
	char *cerr = NULL;
	if (config != NULL &&
	    ma_config_get_bool(config, "fsync", true, &fs, &cerr) < 0) {
		*error_r = cerr;	/* logged once, then the program exits */
		return -1;
	}
	struct maildir_ctx *ctx = ma_malloc0(sizeof(*ctx));
	ctx->root = ma_strdup(path);
	ctx->fsync = fs;
	md_fsync_enabled = fs;
	ctx->core = core;
	ctx->ino_fd = -1;
	pthread_mutex_init(&ctx->lock, NULL);
	*ctx_r = ctx;
	return 0;
}

static void maildir_deinit(void *vctx)
{
	struct maildir_ctx *ctx = vctx;

	if (ctx == NULL)
		return;
	if (ctx->ino_fd >= 0 && ctx->ino_pid == getpid()) {
		if (ctx->ino_started && ctx->core != NULL &&
		    ma_core_loop(ctx->core) != NULL)
			ev_io_stop(ma_core_loop(ctx->core), &ctx->ino_io);
		close(ctx->ino_fd);
	}
	for (unsigned i = 0; i < ctx->n_watches; i++) {
		free(ctx->watches[i].user);
		free(ctx->watches[i].mailbox);
	}
	free(ctx->watches);
	pthread_mutex_destroy(&ctx->lock);
	free(ctx->root);
	free(ctx);
}

/* ---------------- inotify: mail from outside wakes IDLE ---------------- */

static void md_ino_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct maildir_ctx *ctx = w->data;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t r;

	while ((r = read(ctx->ino_fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + r;) {
			const struct inotify_event *ev = (const void *)p;
			char user[256] = "", mailbox[1024] = "";

			pthread_mutex_lock(&ctx->lock);
			for (unsigned i = 0; i < ctx->n_watches; i++) {
				if (ctx->watches[i].wd == ev->wd) {
					snprintf(user, sizeof(user), "%s",
						 ctx->watches[i].user);
					snprintf(mailbox, sizeof(mailbox), "%s",
						 ctx->watches[i].mailbox);
					break;
				}
			}
			pthread_mutex_unlock(&ctx->lock);
			if (user[0] != '\0' && ev->len > 0 && ev->name[0] != '.')
				ma_changebus_publish(ctx->core, user, mailbox);
			p += sizeof(*ev) + ev->len;
		}
	}
}

static int md_watch_add(struct maildir_ctx *ctx, const char *user,
			const char *mailbox, const char *path)
{
	struct ev_loop *loop;
	int wd;

	if (ctx->core == NULL || (loop = ma_core_loop(ctx->core)) == NULL)
		return -1;
	pthread_mutex_lock(&ctx->lock);
	if (ctx->ino_fd < 0 || ctx->ino_pid != getpid()) {
		/* a forked worker gets its own instance */
		ctx->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		ctx->ino_pid = getpid();
		ctx->ino_started = false;
		for (unsigned i = 0; i < ctx->n_watches; i++) {
			free(ctx->watches[i].user);
			free(ctx->watches[i].mailbox);
		}
		ctx->n_watches = 0;
		if (ctx->ino_fd >= 0) {
			ev_io_init(&ctx->ino_io, md_ino_cb, ctx->ino_fd, EV_READ);
			ctx->ino_io.data = ctx;
			ev_io_start(loop, &ctx->ino_io);
			ev_unref(loop);	/* never keeps the loop alive alone */
			ctx->ino_started = true;
		}
	}
	if (ctx->ino_fd < 0) {
		pthread_mutex_unlock(&ctx->lock);
		return -1;
	}
	wd = inotify_add_watch(ctx->ino_fd, path,
			       IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
			       IN_ONLYDIR);
	if (wd >= 0) {
		unsigned i;

		for (i = 0; i < ctx->n_watches; i++)
			if (ctx->watches[i].wd == wd)
				break;
		if (i < ctx->n_watches)
			ctx->watches[i].refs++;
		else {
			if (ctx->n_watches == ctx->cap_watches) {
				ctx->cap_watches = ctx->cap_watches ?
					ctx->cap_watches * 2 : 16;
				ctx->watches = ma_realloc(ctx->watches,
					ctx->cap_watches * sizeof(*ctx->watches));
			}
			ctx->watches[i].wd = wd;
			ctx->watches[i].refs = 1;
			ctx->watches[i].user = ma_strdup(user);
			ctx->watches[i].mailbox = ma_strdup(mailbox);
			ctx->n_watches++;
		}
	}
	pthread_mutex_unlock(&ctx->lock);
	return wd;
}

static void md_watch_remove(struct maildir_ctx *ctx, int wd)
{
	if (wd < 0)
		return;
	pthread_mutex_lock(&ctx->lock);
	for (unsigned i = 0; i < ctx->n_watches; i++) {
		if (ctx->watches[i].wd != wd)
			continue;
		if (--ctx->watches[i].refs == 0) {
			if (ctx->ino_fd >= 0 && ctx->ino_pid == getpid())
				inotify_rm_watch(ctx->ino_fd, wd);
			free(ctx->watches[i].user);
			free(ctx->watches[i].mailbox);
			ctx->watches[i] = ctx->watches[--ctx->n_watches];
		}
		break;
	}
	pthread_mutex_unlock(&ctx->lock);
}

/* ---------------- users and folders ---------------- */

static int md_mkdir_maildir(int parentfd, const char *name, bool folder)
{
	int fd;

	if (mkdirat(parentfd, name, 0700) < 0 && errno != EEXIST)
		return -1;
	fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if ((mkdirat(fd, "tmp", 0700) < 0 && errno != EEXIST) ||
	    (mkdirat(fd, "new", 0700) < 0 && errno != EEXIST) ||
	    (mkdirat(fd, "cur", 0700) < 0 && errno != EEXIST)) {
		close(fd);
		return -1;
	}
	if (folder) {
		/* Maildir++: marks a folder for Courier's and Dovecot's
		 * delivery agents */
		int mf = openat(fd, "maildirfolder", O_WRONLY | O_CREAT | O_CLOEXEC,
				0600);
		if (mf >= 0)
			close(mf);
	}
	md_fsync_fd(fd);
	md_fsync_fd(parentfd);
	return fd;
}

static int maildir_user_open(void *vctx, const char *user, void **user_r,
			     struct ma_error_info *err)
{
	struct maildir_ctx *ctx = vctx;
	char dir[MD_PATH_MAX];
	int rootfd, fd;

	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", ctx->root, user) >= 2048)
		return ma_error_set(err, MA_ERR_BADARGS, "User name too long");
	if (mkdir(ctx->root, 0700) < 0 && errno != EEXIST)
		return md_sys_error(err, "mkdir root");
	rootfd = open(ctx->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return md_sys_error(err, "open root");
	fd = md_mkdir_maildir(rootfd, user, false);
	close(rootfd);
	if (fd < 0)
		return md_sys_error(err, "create maildir");
	struct maildir_user *u = ma_malloc0(sizeof(*u));
	u->ctx = ctx;
	u->name = ma_strdup(user);
	u->dir = ma_strdup(dir);
	u->dirfd = fd;
	*user_r = u;
	return 0;
}

static void maildir_user_close(void *vu)
{
	struct maildir_user *u = vu;

	if (u == NULL)
		return;
	close(u->dirfd);
	free(u->name);
	free(u->dir);
	free(u);
}

/* The folder's directory fd, or -1 with NOTFOUND. */
static int md_folder_open(struct maildir_user *u, const char *name,
			  struct ma_error_info *err)
{
	char enc[2048];
	struct stat st;
	int fd;

	if (maildir_name_encode(name, enc, sizeof(enc)) < 0)
		return ma_error_set(err, MA_ERR_BADARGS, "Mailbox name too long");
	if (enc[0] == '\0')
		fd = dup(u->dirfd);
	else
		fd = openat(u->dirfd, enc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return ma_error_set(err, MA_ERR_NOTFOUND,
					    "Mailbox does not exist");
		return md_sys_error(err, "open folder");
	}
	if (fstatat(fd, "cur", &st, 0) < 0 || !S_ISDIR(st.st_mode)) {
		close(fd);
		return ma_error_set(err, MA_ERR_NOTFOUND, "Mailbox does not exist");
	}
	return fd;
}

static bool md_folder_exists(struct maildir_user *u, const char *name)
{
	struct ma_error_info e;
	int fd = md_folder_open(u, name, &e);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static uint32_t md_specialuse_read(int fd)
{
	char buf[32];
	int f = openat(fd, MD_SPECIALUSE, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (f < 0)
		return 0;
	r = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (r <= 0)
		return 0;
	buf[r] = '\0';
	return (uint32_t)strtoul(buf, NULL, 10) & MA_MBOX_SU_MASK;
}

/* ---------------- subscriptions (one name per line) ---------------- */

static char **md_subs_read(struct maildir_user *u, unsigned *n_r)
{
	FILE *f = md_fopenat(u->dirfd, MD_SUBS);
	char *line = NULL, **names = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned n = 0, ncap = 0;

	*n_r = 0;
	if (f == NULL)
		return NULL;
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		/* Dovecot 2.x writes a "V\t2" header line and tab-separated
		 * hierarchies; plain lines are Courier's and ours */
		if (len == 0 || strncmp(line, "V\t", 2) == 0)
			continue;
		for (char *p = line; *p; p++)
			if (*p == '\t')
				*p = '/';
		if (n == ncap) {
			ncap = ncap ? ncap * 2 : 16;
			names = ma_realloc(names, ncap * sizeof(*names));
		}
		names[n++] = ma_strdup(line);
	}
	free(line);
	fclose(f);
	*n_r = n;
	return names;
}

/* Rewrites the subscriptions file: subscribe adds name, !subscribe removes
 * it; with to != NULL, name and its children are renamed to `to` instead
 * (a subscription follows RENAME, as with the other backend). */
static int md_subs_edit(struct maildir_user *u, const char *name, bool subscribe,
			const char *to, struct ma_error_info *err)
{
	unsigned n;
	char **names;
	int lfd, fd;
	FILE *f;
	bool found = false;
	size_t nlen = strlen(name);

	lfd = openat(u->dirfd, MD_SUBS ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0)
		return md_sys_error(err, "subscriptions lock");
	(void)flock(lfd, LOCK_EX);
	names = md_subs_read(u, &n);
	fd = openat(u->dirfd, MD_SUBS ".tmp", O_WRONLY | O_CREAT | O_TRUNC |
		    O_CLOEXEC, 0600);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (f == NULL) {
		if (fd >= 0)
			close(fd);
		md_free_names(names, n);
		close(lfd);
		return md_sys_error(err, "write subscriptions");
	}
	for (unsigned i = 0; i < n; i++) {
		if (to != NULL) {
			if (strncmp(names[i], name, nlen) == 0 &&
			    (names[i][nlen] == '\0' || names[i][nlen] == '/'))
				fprintf(f, "%s%s\n", to, names[i] + nlen);
			else
				fprintf(f, "%s\n", names[i]);
			continue;
		}
		if (strcmp(names[i], name) == 0) {
			if (found || !subscribe)
				continue;
			found = true;
		}
		fprintf(f, "%s\n", names[i]);
	}
	if (to == NULL && subscribe && !found)
		fprintf(f, "%s\n", name);
	md_free_names(names, n);
	int ok = fflush(f) == 0;
	if (ok)
		md_fsync_fd(fileno(f));
	ok = fclose(f) == 0 && ok &&
		renameat(u->dirfd, MD_SUBS ".tmp", u->dirfd, MD_SUBS) == 0;
	close(lfd);
	if (!ok)
		return md_sys_error(err, "write subscriptions");
	md_fsync_fd(u->dirfd);
	return 0;
}

static int maildir_mailbox_subscribe(void *vu, const char *name, bool subscribe,
				     struct ma_error_info *err)
{
	struct maildir_user *u = vu;

	if (subscribe && !md_folder_exists(u, name))
		return ma_error_set(err, MA_ERR_NOTFOUND, "Mailbox does not exist");
	return md_subs_edit(u, name, subscribe, NULL, err);
}

/* ---------------- mailbox tree ---------------- */

static int maildir_mailbox_list(void *vu,
				void (*fn)(const struct ma_mailbox_info *info, void *fctx),
				void *fctx, struct ma_error_info *err)
{
	struct maildir_user *u = vu;
	unsigned n_subs;
	char **subs = md_subs_read(u, &n_subs);
	int fd = dup(u->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	struct ma_mailbox_info info;

	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		md_free_names(subs, n_subs);
		return md_sys_error(err, "list");
	}
	rewinddir(d);
	for (int pass = 0;; pass++) {
		char name[2048];
		int ffd;

		if (pass == 0)
			snprintf(name, sizeof(name), "INBOX");
		else {
			de = readdir(d);
			if (de == NULL)
				break;
			if (maildir_name_decode(de->d_name, name, sizeof(name)) < 0 ||
			    strcmp(name, "INBOX") == 0 ||
			    ma_store_check_mailbox_name(name, &(struct ma_error_info){0}) < 0)
				continue;
		}
		ffd = md_folder_open(u, name, &(struct ma_error_info){0});
		if (ffd < 0)
			continue;
		info.name = name;
		/* INBOX always counts as subscribed (as Dovecot does) */
		info.attrs = pass == 0 ? MA_MBOX_SUBSCRIBED : md_specialuse_read(ffd);
		close(ffd);
		for (unsigned i = 0; i < n_subs; i++)
			if (strcmp(subs[i], name) == 0)
				info.attrs |= MA_MBOX_SUBSCRIBED;
		fn(&info, fctx);
	}
	closedir(d);
	md_free_names(subs, n_subs);
	return 0;
}

static int maildir_mailbox_create(void *vu, const char *name, uint32_t attrs,
				  struct ma_error_info *err)
{
	struct maildir_user *u = vu;
	char enc[2048];
	struct md_list l;
	int fd, lfd;

	if (strcmp(name, "INBOX") == 0 || md_folder_exists(u, name))
		return ma_error_set(err, MA_ERR_EXISTS, "Mailbox already exists");
	if (maildir_name_encode(name, enc, sizeof(enc)) < 0 || strlen(enc) > 255)
		return ma_error_set(err, MA_ERR_BADARGS, "Mailbox name too long");
	if (mkdirat(u->dirfd, enc, 0700) < 0) {
		if (errno == EEXIST)
			return ma_error_set(err, MA_ERR_EXISTS, "Mailbox already exists");
		return md_sys_error(err, "mkdir folder");
	}
	fd = md_mkdir_maildir(u->dirfd, enc, true);
	if (fd < 0)
		return md_sys_error(err, "create folder");
	if (attrs & MA_MBOX_SU_MASK) {
		char buf[32];
		int sf = openat(fd, MD_SPECIALUSE, O_WRONLY | O_CREAT | O_TRUNC |
				O_CLOEXEC, 0600);
		int w = snprintf(buf, sizeof(buf), "%u\n", attrs & MA_MBOX_SU_MASK);

		if (sf >= 0) {
			if (write(sf, buf, (size_t)w) != w)
				ma_log(MA_LOG_WARNING, "maildir: write special-use");
			md_fsync_fd(sf);
			close(sf);
		}
	}
	/* The UID list now, so UIDVALIDITY is fixed at creation. */
	lfd = md_lock(fd, err);
	if (lfd < 0) {
		close(fd);
		return -1;
	}
	int r = md_load_locked(u, fd, &l, err);
	close(lfd);
	close(fd);
	if (r == 0)
		maildir_list_free(&l);
	if (r == 0 && (attrs & MA_MBOX_SUBSCRIBED))
		r = md_subs_edit(u, name, true, NULL, err);
	return r;
}

/* Removes a folder directory's own files (not child folders, which are
 * sibling directories in Maildir++). */
static int md_remove_tree(int parentfd, const char *name)
{
	int fd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			O_CLOEXEC);
	DIR *d;
	struct dirent *de;

	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, de->d_name, 0) < 0 &&
		    (errno == EISDIR || errno == EPERM))
			md_remove_tree(fd, de->d_name);
	}
	closedir(d);
	return unlinkat(parentfd, name, AT_REMOVEDIR);
}

static int maildir_mailbox_delete(void *vu, const char *name,
				  struct ma_error_info *err)
{
	struct maildir_user *u = vu;
	char enc[2048], gone[2100];
	int fd, lfd;

	if (strcmp(name, "INBOX") == 0)
		return ma_error_set(err, MA_ERR_PERM, "INBOX can't be deleted");
	fd = md_folder_open(u, name, err);
	if (fd < 0)
		return -1;
	lfd = md_lock(fd, err);
	close(fd);
	if (lfd < 0)
		return -1;
	maildir_name_encode(name, enc, sizeof(enc));
	/* Rename away first: the folder vanishes at once and atomically,
	 * open views learn NOTFOUND, a crash leaves only a hidden leftover. */
	snprintf(gone, sizeof(gone), "..DELETED-%ld-%d%s", (long)time(NULL),
		 (int)getpid(), enc);
	if (renameat(u->dirfd, enc, u->dirfd, gone) < 0) {
		close(lfd);
		return md_sys_error(err, "rename for delete");
	}
	md_fsync_fd(u->dirfd);
	close(lfd);
	if (md_remove_tree(u->dirfd, gone) < 0)
		ma_log(MA_LOG_WARNING, "maildir: %s: could not remove %s: %s",
		       u->name, gone, strerror(errno));
	/* a deleted mailbox is no longer subscribed (a re-created one
	 * starts unsubscribed) */
	struct ma_error_info e2;
	(void)md_subs_edit(u, name, false, NULL, &e2);
	return 0;
}

static int md_set_uidvalidity(struct maildir_user *u, int fd, uint32_t uv,
			      bool empty, struct ma_error_info *err)
{
	struct md_list l;
	int lfd = md_lock(fd, err);

	if (lfd < 0)
		return -1;
	if (md_load_locked(u, fd, &l, err) < 0) {
		close(lfd);
		return -1;
	}
	l.uidvalidity = uv;
	if (empty) {
		for (unsigned i = 0; i < l.n; i++)
			free(l.e[i].fname);
		l.n = 0;
		l.uidnext = 1;
	}
	int r = md_list_write(fd, &l);
	maildir_list_free(&l);
	close(lfd);
	return r < 0 ? md_sys_error(err, "write uidlist") : 0;
}

/* RFC 3501 6.3.5: INBOX's messages move to the new name; INBOX stays,
 * empty, with a new UIDVALIDITY (as does the new mailbox). */
static int md_rename_inbox(struct maildir_user *u, const char *to,
			   struct ma_error_info *err)
{
	struct md_list l;
	char enc[2048];
	int tfd, lfd, r = 0;

	if (maildir_mailbox_create(u, to, 0, err) < 0)
		return -1;
	maildir_name_encode(to, enc, sizeof(enc));
	tfd = openat(u->dirfd, enc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tfd < 0)
		return md_sys_error(err, "open new folder");
	lfd = md_lock(u->dirfd, err);
	if (lfd < 0) {
		close(tfd);
		return -1;
	}
	if (md_load_locked(u, u->dirfd, &l, err) < 0) {
		close(lfd);
		close(tfd);
		return -1;
	}
	/* keywords keep their letters: same mapping file */
	char *kw[MD_KW_MAX] = { NULL };
	md_kw_read(u->dirfd, kw);
	if (md_kw_write(tfd, kw) < 0)
		r = -1;
	md_kw_free(kw);
	mkdirat(tfd, MD_CACHEDIR, 0700);
	for (unsigned i = 0; i < l.n && r == 0; i++) {
		char p[MD_PATH_MAX];

		snprintf(p, sizeof(p), "cur/%s", l.e[i].fname);
		if (renameat(u->dirfd, p, tfd, p) < 0 && errno != ENOENT)
			r = -1;
		snprintf(p, sizeof(p), MD_CACHEDIR "/%.*s",
			 (int)md_base_len(l.e[i].fname), l.e[i].fname);
		(void)renameat(u->dirfd, p, tfd, p);
	}
	maildir_list_free(&l);
	md_fsync_fd(tfd);
	close(lfd);
	if (r < 0) {
		close(tfd);
		return md_sys_error(err, "move INBOX messages");
	}
	/* the new folder picks the files up at its next scan; give both a
	 * fresh UIDVALIDITY */
	r = md_set_uidvalidity(u, tfd, md_new_uidvalidity(u->dirfd), false, err);
	close(tfd);
	if (r == 0)
		r = md_set_uidvalidity(u, u->dirfd, md_new_uidvalidity(u->dirfd),
				       true, err);
	return r;
}

static int maildir_mailbox_rename(void *vu, const char *from, const char *to,
				  struct ma_error_info *err)
{
	struct maildir_user *u = vu;
	char efrom[2048], eto[2048];
	size_t flen = strlen(from);

	if (strncmp(to, from, flen) == 0 && (to[flen] == '/' || to[flen] == '\0'))
		return ma_error_set(err, MA_ERR_BADARGS,
				    "Can't rename a mailbox into itself");
	if (!md_folder_exists(u, from))
		return ma_error_set(err, MA_ERR_NOTFOUND, "Mailbox does not exist");
	if (strcmp(to, "INBOX") == 0 || md_folder_exists(u, to))
		return ma_error_set(err, MA_ERR_EXISTS, "Mailbox already exists");
	if (maildir_name_encode(to, eto, sizeof(eto)) < 0 || strlen(eto) > 200)
		return ma_error_set(err, MA_ERR_BADARGS, "Mailbox name too long");
	if (strcmp(from, "INBOX") == 0)
		return md_rename_inbox(u, to, err);
	maildir_name_encode(from, efrom, sizeof(efrom));

	/* Children first collected: ".from.*" -> ".to.*". */
	char **names = NULL;
	unsigned n = 0, cap = 0;
	int fd = dup(u->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	size_t elen = strlen(efrom);

	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return md_sys_error(err, "list for rename");
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, efrom, elen) == 0 && de->d_name[elen] == '.') {
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				names = ma_realloc(names, cap * sizeof(*names));
			}
			names[n++] = ma_strdup(de->d_name);
		}
	}
	closedir(d);
	int r = 0;
	if (renameat(u->dirfd, efrom, u->dirfd, eto) < 0)
		r = md_sys_error(err, "rename folder");
	for (unsigned i = 0; i < n && r == 0; i++) {
		char nn[4096];

		if ((size_t)snprintf(nn, sizeof(nn), "%s%s", eto,
				     names[i] + elen) >= sizeof(nn) ||
		    renameat(u->dirfd, names[i], u->dirfd, nn) < 0)
			ma_log(MA_LOG_WARNING, "maildir: %s: rename %s: %s",
			       u->name, names[i], strerror(errno));
	}
	md_free_names(names, n);
	md_fsync_fd(u->dirfd);
	if (r == 0) {
		struct ma_error_info e2;
		(void)md_subs_edit(u, from, false, to, &e2);
	}
	return r;
}

static void md_status_from(const struct md_list *l, struct ma_mailbox_status *st)
{
	memset(st, 0, sizeof(*st));
	st->messages = l->n;
	st->uidnext = l->uidnext;
	st->uidvalidity = l->uidvalidity;
	st->highestmodseq = l->modseq;
	for (unsigned i = 0; i < l->n; i++) {
		uint32_t fl;
		uint64_t kw;

		maildir_parse_info(l->e[i].fname, &fl, &kw);
		if (!(fl & MA_FLAG_SEEN))
			st->unseen++;
		st->size += l->e[i].vsize;
	}
}

static int maildir_mailbox_status(void *vu, const char *name,
				  struct ma_mailbox_status *st,
				  struct ma_error_info *err)
{
	struct maildir_user *u = vu;
	struct md_list l;
	int fd = md_folder_open(u, name, err);

	if (fd < 0)
		return -1;
	int r = md_refresh(u, fd, &l, err);
	close(fd);
	if (r < 0)
		return -1;
	md_status_from(&l, st);
	maildir_list_free(&l);
	return 0;
}

/* ---------------- views ---------------- */

static void md_guid(const char *fname, uint8_t *guid)
{
	/* two FNV-1a 64 hashes of the base name (unique per file) */
	uint64_t h1 = 0xcbf29ce484222325ULL, h2 = 0x84222325cbf29ce4ULL;
	size_t bl = md_base_len(fname);

	for (size_t i = 0; i < bl; i++) {
		h1 = (h1 ^ (unsigned char)fname[i]) * 0x100000001b3ULL;
		h2 = (h2 ^ (unsigned char)fname[bl - 1 - i]) * 0x100000001b3ULL;
	}
	memcpy(guid, &h1, 8);
	memcpy(guid + 8, &h2, 8);
}

static void md_view_build(struct maildir_box *b)
{
	free(b->msgs);
	b->msgs = b->snap.n ? ma_malloc0(b->snap.n * sizeof(*b->msgs)) : NULL;
	for (unsigned i = 0; i < b->snap.n; i++) {
		const struct md_entry *e = &b->snap.e[i];
		struct ma_msg *m = &b->msgs[i];

		m->uid = e->uid;
		maildir_parse_info(e->fname, &m->flags, &m->keywords);
		m->modseq = e->modseq;
		m->internal_date = e->date;
		m->internal_tz = e->tz;
		m->cache_size = e->csize;
		m->size = e->vsize;
		md_guid(e->fname, m->guid);
	}
	md_kw_read(b->fd, b->kw);
	b->n_kw = 0;
	for (unsigned k = 0; k < MD_KW_MAX; k++) {
		b->kw_view[k] = b->kw[k] != NULL ? b->kw[k] : "";
		if (b->kw[k] != NULL)
			b->n_kw = k + 1;
	}
}

static void maildir_mailbox_close(void *vb)
{
	struct maildir_box *b = vb;

	if (b == NULL)
		return;
	md_watch_remove(b->u->ctx, b->wd[0]);
	md_watch_remove(b->u->ctx, b->wd[1]);
	maildir_list_free(&b->snap);
	md_kw_free(b->kw);
	free(b->msgs);
	free(b->expunged);
	free(b->changed);
	free(b->name);
	close(b->fd);
	free(b);
}

static int maildir_mailbox_open(void *vu, const char *name, bool readonly,
				void **box_r, struct ma_error_info *err)
{
	struct maildir_user *u = vu;
	int fd = md_folder_open(u, name, err);

	if (fd < 0)
		return -1;
	struct maildir_box *b = ma_malloc0(sizeof(*b));
	b->u = u;
	b->name = ma_strdup(name);
	b->fd = fd;
	b->readonly = readonly;
	b->wd[0] = b->wd[1] = -1;
	if (md_refresh(u, fd, &b->snap, err) < 0) {
		maildir_mailbox_close(b);
		return -1;
	}
	maildir_clean_tmp(fd);
	md_view_build(b);
	if (u->ctx->core != NULL) {
		char enc[2048], p[MD_PATH_MAX];

		maildir_name_encode(name, enc, sizeof(enc));
		snprintf(p, sizeof(p), "%s/%s%snew", u->dir, enc, enc[0] ? "/" : "");
		b->wd[0] = md_watch_add(u->ctx, u->name, name, p);
		snprintf(p, sizeof(p), "%s/%s%scur", u->dir, enc, enc[0] ? "/" : "");
		b->wd[1] = md_watch_add(u->ctx, u->name, name, p);
	}
	*box_r = b;
	return 0;
}

static int maildir_mailbox_messages(void *vb, const struct ma_msg **msgs_r,
				    uint32_t *count_r,
				    struct ma_mailbox_status *st_r,
				    struct ma_error_info *err)
{
	struct maildir_box *b = vb;

	*msgs_r = b->msgs;
	*count_r = b->snap.n;
	if (st_r != NULL)
		md_status_from(&b->snap, st_r);
	return 0;
}

static int maildir_mailbox_keywords(void *vb, const char *const **names_r,
				    unsigned *count_r, struct ma_error_info *err)
{
	struct maildir_box *b = vb;

	*names_r = b->kw_view;
	*count_r = b->n_kw;
	return 0;
}

/* Compares the new list with the view's snapshot: O(messages), which a
 * directory scan is anyway (docs/maildir.md). */
static int maildir_mailbox_sync(void *vb, struct ma_sync_result *res,
				struct ma_error_info *err)
{
	struct maildir_box *b = vb;
	struct md_list l;
	unsigned old_kw = b->n_kw;

	memset(res, 0, sizeof(*res));
	if (md_refresh(b->u, b->fd, &l, err) < 0)
		return -1;
	if (l.uidvalidity != b->snap.uidvalidity) {
		maildir_list_free(&l);
		return ma_error_set(err, MA_ERR_NOTFOUND,
				    "Mailbox was replaced (UIDVALIDITY changed)");
	}
	free(b->expunged);
	free(b->changed);
	b->expunged = b->snap.n ? ma_malloc0(b->snap.n * sizeof(uint32_t)) : NULL;
	b->changed = b->snap.n ? ma_malloc0(b->snap.n * sizeof(uint32_t)) : NULL;
	unsigned i = 0, j = 0, ne = 0, nc = 0, nn = 0;
	uint32_t last = b->snap.n ? b->snap.e[b->snap.n - 1].uid : 0;
	while (i < b->snap.n) {
		if (j >= l.n || l.e[j].uid > b->snap.e[i].uid) {
			b->expunged[ne++] = b->snap.e[i++].uid;
		} else if (l.e[j].uid < b->snap.e[i].uid) {
			j++;	/* can't be: UIDs only grow; skip */
		} else {
			if (l.e[j].modseq != b->snap.e[i].modseq ||
			    strcmp(l.e[j].fname, b->snap.e[i].fname) != 0)
				b->changed[nc++] = l.e[j].uid;
			i++;
			j++;
		}
	}
	for (j = 0; j < l.n; j++)
		if (l.e[j].uid > last)
			nn++;
	maildir_list_free(&b->snap);
	b->snap = l;
	md_view_build(b);
	res->expunged = b->expunged;
	res->n_expunged = ne;
	res->changed = b->changed;
	res->n_changed = nc;
	res->n_new = nn;
	res->keywords_changed = b->n_kw > old_kw;
	return 0;
}

/* ---------------- reading ---------------- */

static void md_data_release(struct ma_msg_data *d)
{
	struct md_data_handle *h = d->handle;

	if (h != NULL) {
		if (h->map != NULL)
			munmap(h->map, h->map_len);
		free(h->buf);
		free(h);
	}
	d->handle = NULL;
	d->data = NULL;
	d->size = 0;
	d->release = NULL;
}

static const struct md_entry *md_find(const struct md_list *l, uint32_t uid)
{
	unsigned lo = 0, hi = l->n;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (l->e[mid].uid == uid)
			return &l->e[mid];
		if (l->e[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Opens the file of uid: the snapshot's name first, then (renamed by a
 * flag change, here or elsewhere) the current list's. */
static int md_open_msg(struct maildir_box *b, uint32_t uid, uint64_t *vsize_r,
		       struct ma_error_info *err)
{
	const struct md_entry *e = md_find(&b->snap, uid);
	char p[MD_PATH_MAX];
	int fd;

	if (e == NULL)
		return ma_error_set(err, MA_ERR_EXPUNGED, "Message was expunged");
	snprintf(p, sizeof(p), "cur/%s", e->fname);
	fd = openat(b->fd, p, O_RDONLY | O_CLOEXEC);
	*vsize_r = e->vsize;
	if (fd >= 0 || errno != ENOENT)
		return fd >= 0 ? fd : md_sys_error(err, "open message");
	struct md_list l;
	if (md_refresh(b->u, b->fd, &l, err) < 0)
		return -1;
	e = md_find(&l, uid);
	fd = -1;
	if (e != NULL) {
		snprintf(p, sizeof(p), "cur/%s", e->fname);
		fd = openat(b->fd, p, O_RDONLY | O_CLOEXEC);
		*vsize_r = e->vsize;
	}
	maildir_list_free(&l);
	if (fd < 0)
		return ma_error_set(err, MA_ERR_EXPUNGED, "Message was expunged");
	return fd;
}

static int maildir_msg_read(void *vb, uint32_t uid, struct ma_msg_data *out,
			    struct ma_error_info *err)
{
	struct maildir_box *b = vb;
	uint64_t vsize;
	struct stat st;
	int fd = md_open_msg(b, uid, &vsize, err);

	memset(out, 0, sizeof(*out));
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > MD_MSG_MAX) {
		close(fd);
		return ma_error_set(err, MA_ERR_INTERNAL, "Unreadable message");
	}
	struct md_data_handle *h = ma_malloc0(sizeof(*h));
	if (st.st_size > 0) {
		h->map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (h->map == MAP_FAILED) {
			free(h);
			close(fd);
			return md_sys_error(err, "mmap");
		}
		h->map_len = (size_t)st.st_size;
	}
	close(fd);
	out->handle = h;
	out->release = md_data_release;
	if (vsize == (uint64_t)st.st_size) {
		/* CRLF already: zero copy */
		out->data = h->map;
		out->size = h->map_len;
		return 0;
	}
	/* Bare LF from an outside MTA: one copy with CR added, exactly
	 * vsize bytes as counted when the file was first seen. */
	const unsigned char *m = h->map;
	size_t need = h->map_len;
	for (size_t i = 0; i < h->map_len; i++)
		if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r'))
			need++;
	h->buf = malloc(need ? need : 1);
	if (h->buf == NULL) {
		md_data_release(out);
		return ma_error_set(err, MA_ERR_TEMP, "Out of memory");
	}
	size_t o = 0;
	for (size_t i = 0; i < h->map_len; i++) {
		if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r'))
			h->buf[o++] = '\r';
		h->buf[o++] = m[i];
	}
	if (need != vsize)
		ma_log(MA_LOG_WARNING, "maildir: %s/%s UID %u: size changed on disk",
		       b->u->name, b->name, uid);
	munmap(h->map, h->map_len);
	h->map = NULL;
	out->data = h->buf;
	out->size = o;
	return 0;
}

static int maildir_msg_cache(void *vb, uint32_t uid, struct ma_msg_data *out,
			     struct ma_error_info *err)
{
	struct maildir_box *b = vb;
	const struct md_entry *e = md_find(&b->snap, uid);
	char p[MD_PATH_MAX];
	struct stat st;
	int fd;

	memset(out, 0, sizeof(*out));
	if (e == NULL)
		return ma_error_set(err, MA_ERR_EXPUNGED, "Message was expunged");
	if (e->csize == 0)
		return 0;
	snprintf(p, sizeof(p), MD_CACHEDIR "/%.*s", (int)md_base_len(e->fname),
		 e->fname);
	fd = openat(b->fd, p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;	/* gone: the IMAP code parses again */
	if (fstat(fd, &st) < 0 || st.st_size == 0 || st.st_size > (1 << 26)) {
		close(fd);
		return 0;
	}
	struct md_data_handle *h = ma_malloc0(sizeof(*h));
	h->map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (h->map == MAP_FAILED) {
		free(h);
		return 0;
	}
	h->map_len = (size_t)st.st_size;
	out->handle = h;
	out->release = md_data_release;
	out->data = h->map;
	out->size = h->map_len;
	return 0;
}

/* ---------------- writing ---------------- */

static void md_unique(char *out, size_t outsize, size_t size)
{
	static unsigned counter;
	char host[256];
	struct timeval tv;
	uint32_t rnd;

	gettimeofday(&tv, NULL);
	ma_random(&rnd, sizeof(rnd));
	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	/* '/' and ':' can't be in a Maildir name (the spec's \057, \072) */
	for (char *p = host; *p; p++)
		if (*p == '/' || *p == ':' || *p == '.' || *p == ',')
			*p = '_';
	snprintf(out, outsize, "%lld.M%06ldP%dQ%uR%08x.%.64s,S=%zu,W=%zu",
		 (long long)tv.tv_sec, (long)tv.tv_usec, (int)getpid(),
		 __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED), rnd, host,
		 size, size);
}

static int md_write_file(int dirfd, const char *path, const void *data,
			 size_t size, int64_t mtime)
{
	int fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	const char *p = data;
	size_t left = size;

	if (fd < 0)
		return -1;
	while (left > 0) {
		ssize_t w = write(fd, p, left);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = errno;
			close(fd);
			unlinkat(dirfd, path, 0);
			errno = e;
			return -1;
		}
		p += w;
		left -= (size_t)w;
	}
	md_fsync_fd(fd);
	if (mtime > 0) {
		struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
		futimens(fd, ts);
	}
	if (close(fd) < 0) {
		unlinkat(dirfd, path, 0);
		return -1;
	}
	return 0;
}

struct md_staged {
	char base[400];
	char fname[512];
	uint32_t flags;
	uint64_t kw;
	uint64_t vsize;
	uint32_t csize;
	int64_t date;
};

static int maildir_append(void *vu, const char *mailbox,
			  const struct ma_append_msg *msgs, unsigned n,
			  uint32_t *uids_r, uint32_t *uidvalidity_r,
			  struct ma_error_info *err)
{
	struct maildir_user *u = vu;
	struct md_staged *s;
	struct md_list l;
	unsigned staged = 0;
	int fd, lfd = -1, r = -1;

	fd = md_folder_open(u, mailbox, err);
	if (fd < 0)
		return -1;
	s = ma_malloc0((n ? n : 1) * sizeof(*s));
	/* 1. every message complete and fsynced in tmp/ (never read) */
	for (unsigned i = 0; i < n; i++) {
		char p[MD_PATH_MAX];

		if (msgs[i].size > MD_MSG_MAX) {
			ma_error_set(err, MA_ERR_LIMIT, "Message too large");
			goto out;
		}
		md_unique(s[i].base, sizeof(s[i].base), msgs[i].size);
		s[i].flags = msgs[i].flags & MA_FLAGS_ALL;
		s[i].vsize = msgs[i].size;
		s[i].date = msgs[i].internal_date ? msgs[i].internal_date :
			(int64_t)time(NULL);
		snprintf(p, sizeof(p), "tmp/%s", s[i].base);
		if (md_write_file(fd, p, msgs[i].data, msgs[i].size, s[i].date) < 0) {
			md_sys_error(err, "write tmp");
			goto out;
		}
		staged++;
		if (msgs[i].cache != NULL && msgs[i].cache_size > 0 &&
		    msgs[i].cache_size <= UINT32_MAX) {
			mkdirat(fd, MD_CACHEDIR, 0700);
			snprintf(p, sizeof(p), MD_CACHEDIR "/%s", s[i].base);
			if (md_write_file(fd, p, msgs[i].cache, msgs[i].cache_size,
					  0) == 0)
				s[i].csize = (uint32_t)msgs[i].cache_size;
		}
	}
	/* 2. under the lock: keywords, rename into cur/, new UIDs */
	lfd = md_lock(fd, err);
	if (lfd < 0)
		goto out;
	if (md_load_locked(u, fd, &l, err) < 0)
		goto out;
	for (unsigned i = 0; i < n; i++) {
		if (md_kw_map(fd, msgs[i].keywords, msgs[i].n_keywords, &s[i].kw,
			      err) < 0) {
			maildir_list_free(&l);
			goto out;
		}
	}
	if ((uint64_t)l.uidnext + n >= UINT32_MAX) {
		maildir_list_free(&l);
		ma_error_set(err, MA_ERR_LIMIT, "UID space exhausted");
		goto out;
	}
	/* the journal makes the n renames one step (see md_journal_replay) */
	{
		char *jt = NULL;
		size_t jl = 0;
		FILE *jf = open_memstream(&jt, &jl);

		for (unsigned i = 0; i < n && jf != NULL; i++) {
			md_make_fname(s[i].base, strlen(s[i].base), s[i].flags,
				      s[i].kw, s[i].fname, sizeof(s[i].fname));
			fprintf(jf, "A %s %s\n", s[i].base, s[i].fname);
		}
		if (jf == NULL || fclose(jf) != 0 ||
		    (n > 1 && md_journal_write(fd, jt, jl) < 0)) {
			free(jt);
			md_sys_error(err, "write journal");
			maildir_list_free(&l);
			goto out;
		}
		free(jt);
	}
	for (unsigned i = 0; i < n; i++) {
		char from[MD_PATH_MAX], to[MD_PATH_MAX];
		const char *fname = s[i].fname;

		snprintf(from, sizeof(from), "tmp/%s", s[i].base);
		snprintf(to, sizeof(to), "cur/%s", fname);
		if (renameat(fd, from, fd, to) < 0) {
			md_sys_error(err, "rename into cur");
			/* undo: back to tmp/, then nothing happened */
			for (unsigned k = 0; k < i; k++) {
				snprintf(from, sizeof(from), "tmp/%s", s[k].base);
				snprintf(to, sizeof(to), "cur/%s", s[k].fname);
				if (renameat(fd, to, fd, from) < 0)
					unlinkat(fd, to, 0);
			}
			md_journal_done(fd);
			maildir_list_free(&l);
			goto out;
		}
		struct md_entry *e = md_list_add(&l);
		e->uid = l.uidnext++;
		e->modseq = l.modseq + 1;	/* one modseq per write */
		e->vsize = s[i].vsize;
		e->tz = msgs[i].internal_tz;
		e->csize = s[i].csize;
		e->date = s[i].date;
		e->fname = ma_strdup(fname);
		if (uids_r != NULL)
			uids_r[i] = e->uid;
	}
	staged = 0;
	l.modseq++;
	md_fsync_fd(fd);	/* the renames */
	{
		int curfd = openat(fd, "cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (curfd >= 0) {
			md_fsync_fd(curfd);
			close(curfd);
		}
		int tmpfd = openat(fd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (tmpfd >= 0) {
			md_fsync_fd(tmpfd);
			close(tmpfd);
		}
	}
	if (md_list_write(fd, &l) < 0) {
		/* the files are in cur/: they get UIDs at the next scan */
		md_sys_error(err, "write uidlist");
		maildir_list_free(&l);
		goto out;
	}
	if (n > 1)
		md_journal_done(fd);
	if (uidvalidity_r != NULL)
		*uidvalidity_r = l.uidvalidity;
	maildir_list_free(&l);
	r = 0;
out:
	for (unsigned i = 0; i < staged; i++) {
		char p[MD_PATH_MAX];

		snprintf(p, sizeof(p), "tmp/%s", s[i].base);
		unlinkat(fd, p, 0);
		if (s[i].csize) {
			snprintf(p, sizeof(p), MD_CACHEDIR "/%s", s[i].base);
			unlinkat(fd, p, 0);
		}
	}
	if (lfd >= 0)
		close(lfd);
	close(fd);
	free(s);
	return r;
}

static int md_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int maildir_expunge_uids(struct maildir_box *b, const uint32_t *uids,
				unsigned n, struct ma_error_info *err);

/* Move between two different folders: each message's file is renamed
 * from the source's cur/ straight into the destination's cur/, one atomic
 * step per message, so a kill -9 leaves every message in exactly one of
 * the folders -- never in both, never in none. The lists catch up at the
 * next load if the kill comes before they are written (an entry without
 * its file is dropped, a file without an entry gets the next UID). Both
 * folder locks are held, taken in (device, inode) order so that two
 * opposite moves cannot deadlock. Returns 0, -1 (err set), or 1 when the
 * first rename is impossible (EXDEV: folders on different file systems)
 * and nothing was done: the caller then copies and expunges. */
static int md_move_renames(struct maildir_box *b, int dfd,
			   const uint32_t *uids, unsigned n,
			   uint32_t *new_uids_r, uint32_t *uidvalidity_r,
			   struct ma_error_info *err)
{
	struct maildir_user *u = b->u;
	struct md_list sl, dl;
	char *skw[MD_KW_MAX] = { NULL };
	struct stat ss, ds;
	int lfd1, lfd2, sfd_first;
	unsigned moved = 0;
	int r = 0;

	if (fstat(b->fd, &ss) < 0 || fstat(dfd, &ds) < 0)
		return md_sys_error(err, "stat folder");
	sfd_first = ss.st_dev < ds.st_dev ||
		    (ss.st_dev == ds.st_dev && ss.st_ino < ds.st_ino);
	lfd1 = md_lock(sfd_first ? b->fd : dfd, err);
	if (lfd1 < 0)
		return -1;
	lfd2 = md_lock(sfd_first ? dfd : b->fd, err);
	if (lfd2 < 0) {
		close(lfd1);
		return -1;
	}
	if (md_load_locked(u, b->fd, &sl, err) < 0) {
		close(lfd2);
		close(lfd1);
		return -1;
	}
	if (md_load_locked(u, dfd, &dl, err) < 0) {
		maildir_list_free(&sl);
		close(lfd2);
		close(lfd1);
		return -1;
	}
	md_kw_read(b->fd, skw);
	bool *gone = ma_malloc0((sl.n ? sl.n : 1) * sizeof(*gone));
	for (unsigned i = 0; i < n; i++)
		new_uids_r[i] = 0;
	for (unsigned i = 0; i < n; i++) {
		const struct md_entry *e = md_find(&sl, uids[i]);
		char base[400], fname[512], from[MD_PATH_MAX], to[MD_PATH_MAX];
		char cf[MD_PATH_MAX], ct[MD_PATH_MAX];
		uint32_t fl;
		uint64_t kw, dkw = 0;

		if (e == NULL || gone[e - sl.e])
			continue;	/* expunged meanwhile (or listed twice): 0 */
		maildir_parse_info(e->fname, &fl, &kw);
		/* keyword letters are per folder: map by name */
		const char *names[MD_KW_MAX];
		unsigned nk = 0;
		for (unsigned k = 0; k < MD_KW_MAX; k++)
			if ((kw & ((uint64_t)1 << k)) && skw[k] != NULL)
				names[nk++] = skw[k];
		if (md_kw_map(dfd, names, nk, &dkw, err) < 0) {
			r = -1;
			break;
		}
		md_unique(base, sizeof(base), (size_t)e->vsize);
		md_make_fname(base, strlen(base), fl, dkw, fname, sizeof(fname));
		snprintf(cf, sizeof(cf), MD_CACHEDIR "/%.*s",
			 (int)md_base_len(e->fname), e->fname);
		snprintf(ct, sizeof(ct), MD_CACHEDIR "/%s", base);
		if (e->csize > 0) {
			/* the cache first: the file never shows up without it */
			mkdirat(dfd, MD_CACHEDIR, 0700);
			(void)linkat(b->fd, cf, dfd, ct, 0);
		}
		snprintf(from, sizeof(from), "cur/%s", e->fname);
		snprintf(to, sizeof(to), "cur/%s", fname);
		if (renameat(b->fd, from, dfd, to) < 0) {
			int e2 = errno;

			(void)unlinkat(dfd, ct, 0);
			if (e2 == ENOENT)
				continue;	/* expunged meanwhile: 0 */
			errno = e2;
			if (moved == 0 && e2 == EXDEV) {
				r = 1;
				break;
			}
			md_sys_error(err, "rename into destination");
			r = -1;
			break;
		}
		(void)unlinkat(b->fd, cf, 0);
		gone[e - sl.e] = true;
		moved++;
		struct md_entry *ne = md_list_add(&dl);
		ne->uid = dl.uidnext++;
		ne->modseq = dl.modseq + 1;	/* one modseq per write */
		ne->tz = e->tz;
		ne->vsize = e->vsize;
		ne->csize = e->csize;
		ne->date = e->date;
		ne->fname = ma_strdup(fname);
		new_uids_r[i] = ne->uid;
	}
	if (moved > 0) {
		unsigned o = 0;

		md_fsync_sub(dfd, "cur");
		md_fsync_sub(b->fd, "cur");
		dl.modseq++;
		/* the destination first: its new UIDs are what the client
		 * is told; a kill before the source's list only leaves
		 * entries without files there, dropped at the next load */
		if (md_list_write(dfd, &dl) < 0 && r == 0)
			r = md_sys_error(err, "write uidlist");
		for (unsigned k = 0; k < sl.n; k++) {
			if (gone[k]) {
				free(sl.e[k].fname);
				continue;
			}
			sl.e[o++] = sl.e[k];
		}
		sl.n = o;
		sl.modseq++;	/* RFC 7162 3.2.10: an expunge raises it */
		if (md_list_write(b->fd, &sl) < 0 && r == 0)
			r = md_sys_error(err, "write uidlist");
	}
	if (r != 0 && moved == 0)
		for (unsigned i = 0; i < n; i++)
			new_uids_r[i] = 0;
	if (uidvalidity_r != NULL)
		*uidvalidity_r = dl.uidvalidity;
	free(gone);
	md_kw_free(skw);
	maildir_list_free(&sl);
	maildir_list_free(&dl);
	close(lfd2);
	close(lfd1);
	return r;
}

static int maildir_copy(void *vb, const uint32_t *uids, unsigned n,
			const char *dest, bool move, uint32_t *new_uids_r,
			uint32_t *uidvalidity_r, struct ma_error_info *err)
{
	struct maildir_box *b = vb;
	struct maildir_user *u = b->u;
	struct md_list src, dl;
	char *skw[MD_KW_MAX] = { NULL };
	char **fnames;
	int dfd, lfd, r = -1;

	if (move && b->readonly)
		return ma_error_set(err, MA_ERR_PERM, "Mailbox is read-only");
	dfd = md_folder_open(u, dest, err);
	if (dfd < 0)
		return -1;
	if (move) {
		struct stat ss, ds;

		/* another folder: renames, never in both after a kill */
		if (fstat(b->fd, &ss) == 0 && fstat(dfd, &ds) == 0 &&
		    (ss.st_dev != ds.st_dev || ss.st_ino != ds.st_ino)) {
			r = md_move_renames(b, dfd, uids, n, new_uids_r,
					    uidvalidity_r, err);
			if (r <= 0) {
				close(dfd);
				return r;
			}
			r = -1;	/* EXDEV: copy + expunge below */
		}
	}
	/* The source's current names (flags may have changed since the
	 * view's snapshot). */
	if (md_refresh(u, b->fd, &src, err) < 0) {
		close(dfd);
		return -1;
	}
	md_kw_read(b->fd, skw);
	fnames = ma_malloc0((n ? n : 1) * sizeof(*fnames));
	for (unsigned i = 0; i < n; i++) {
		const struct md_entry *e = md_find(&src, uids[i]);
		fnames[i] = e != NULL ? e->fname : NULL;
		new_uids_r[i] = 0;
	}
	lfd = md_lock(dfd, err);
	if (lfd < 0)
		goto out;
	if (md_load_locked(u, dfd, &dl, err) < 0) {
		close(lfd);
		goto out;
	}
	bool ok = true;
	/* 1. hard links (or copies) into the destination's tmp/ */
	char (*bases)[400] = ma_malloc0((n ? n : 1) * sizeof(*bases));
	unsigned nb = 0;
	for (unsigned i = 0; i < n && ok; i++) {
		const struct md_entry *e = md_find(&src, uids[i]);
		char base[400], fname[512], from[MD_PATH_MAX], to[MD_PATH_MAX];
		uint32_t fl;
		uint64_t kw, dkw = 0;

		if (e == NULL)
			continue;
		maildir_parse_info(e->fname, &fl, &kw);
		/* keyword letters are per folder: map by name */
		const char *names[MD_KW_MAX];
		unsigned nk = 0;
		for (unsigned k = 0; k < MD_KW_MAX; k++)
			if ((kw & ((uint64_t)1 << k)) && skw[k] != NULL)
				names[nk++] = skw[k];
		if (md_kw_map(dfd, names, nk, &dkw, err) < 0) {
			ok = false;
			break;
		}
		md_unique(base, sizeof(base), (size_t)e->vsize);
		md_make_fname(base, strlen(base), fl, dkw, fname, sizeof(fname));
		snprintf(from, sizeof(from), "cur/%s", e->fname);
		snprintf(to, sizeof(to), "tmp/%s", base);
		if (linkat(b->fd, from, dfd, to, 0) < 0) {
			if (errno == ENOENT)
				continue;	/* expunged meanwhile: 0 */
			if (errno != EXDEV && errno != EPERM && errno != EMLINK) {
				md_sys_error(err, "link");
				ok = false;
				break;
			}
			/* no hard links here: copy through tmp/ */
			struct ma_msg_data d;
			int sfd = openat(b->fd, from, O_RDONLY | O_CLOEXEC);
			struct stat st;
			if (sfd < 0 || fstat(sfd, &st) < 0) {
				if (sfd >= 0)
					close(sfd);
				continue;
			}
			d.size = (size_t)st.st_size;
			void *m = d.size ? mmap(NULL, d.size, PROT_READ, MAP_SHARED,
						sfd, 0) : NULL;
			close(sfd);
			int wr = m == MAP_FAILED ? -1 :
				md_write_file(dfd, to, m, d.size, e->date);
			if (m != NULL && m != MAP_FAILED)
				munmap(m, d.size);
			if (wr < 0) {
				md_sys_error(err, "copy");
				ok = false;
				break;
			}
		}
		if (e->csize > 0) {
			char cf[MD_PATH_MAX], ct[MD_PATH_MAX];

			mkdirat(dfd, MD_CACHEDIR, 0700);
			snprintf(cf, sizeof(cf), MD_CACHEDIR "/%.*s",
				 (int)md_base_len(e->fname), e->fname);
			snprintf(ct, sizeof(ct), MD_CACHEDIR "/%s", base);
			(void)linkat(b->fd, cf, dfd, ct, 0);
		}
		struct md_entry *ne = md_list_add(&dl);
		ne->uid = dl.uidnext++;
		ne->modseq = dl.modseq + 1;	/* one modseq per write */
		ne->tz = e->tz;
		ne->vsize = e->vsize;
		ne->csize = e->csize;
		ne->date = e->date;
		ne->fname = ma_strdup(fname);
		new_uids_r[i] = ne->uid;
		snprintf(bases[nb++], sizeof(bases[0]), "%s", base);
	}
	/* 2. journal, renames into cur/, the list: one step */
	unsigned first = dl.n - nb;
	if (ok) {
		char *jt = NULL;
		size_t jl = 0;
		FILE *jf = open_memstream(&jt, &jl);

		for (unsigned k = 0; k < nb && jf != NULL; k++)
			fprintf(jf, "A %s %s\n", bases[k], dl.e[first + k].fname);
		if (jf == NULL || fclose(jf) != 0 ||
		    (nb > 1 && md_journal_write(dfd, jt, jl) < 0)) {
			md_sys_error(err, "write journal");
			ok = false;
		}
		free(jt);
	}
	for (unsigned k = 0; k < nb && ok; k++) {
		char from[MD_PATH_MAX], to[MD_PATH_MAX];

		snprintf(from, sizeof(from), "tmp/%s", bases[k]);
		snprintf(to, sizeof(to), "cur/%s", dl.e[first + k].fname);
		if (renameat(dfd, from, dfd, to) < 0) {
			md_sys_error(err, "rename into cur");
			for (unsigned j = 0; j < k; j++) {
				snprintf(from, sizeof(from), "tmp/%s", bases[j]);
				snprintf(to, sizeof(to), "cur/%s", dl.e[first + j].fname);
				if (renameat(dfd, to, dfd, from) < 0)
					unlinkat(dfd, to, 0);
			}
			md_journal_done(dfd);
			ok = false;
		}
	}
	if (!ok) {
		for (unsigned k = 0; k < nb; k++) {
			char t[MD_PATH_MAX];
			snprintf(t, sizeof(t), "tmp/%s", bases[k]);
			unlinkat(dfd, t, 0);
			snprintf(t, sizeof(t), MD_CACHEDIR "/%s", bases[k]);
			unlinkat(dfd, t, 0);
		}
		for (unsigned i = 0; i < n; i++)
			new_uids_r[i] = 0;
	} else {
		md_fsync_sub(dfd, "cur");
		md_fsync_sub(dfd, "tmp");
		dl.modseq++;
		if (nb > 0 && md_list_write(dfd, &dl) < 0) {
			/* files are in cur/: they get UIDs at the next scan */
			md_sys_error(err, "write uidlist");
			ok = false;
		} else if (nb > 1)
			md_journal_done(dfd);
	}
	free(bases);
	if (uidvalidity_r != NULL)
		*uidvalidity_r = dl.uidvalidity;
	maildir_list_free(&dl);
	close(lfd);
	if (!ok)
		goto out;
	r = 0;
	if (move) {
		/* Only for a move within one folder, or across file
		 * systems: a crash here leaves the message in both places,
		 * never in none (md_move_renames does the usual case). */
		uint32_t *gone = ma_malloc0((n ? n : 1) * sizeof(*gone));
		unsigned ng = 0;
		for (unsigned i = 0; i < n; i++)
			if (new_uids_r[i] != 0)
				gone[ng++] = uids[i];
		struct maildir_box tmpb = *b;
		tmpb.readonly = false;
		r = maildir_expunge_uids(&tmpb, gone, ng, err);
		free(gone);
	}
out:
	free(fnames);
	md_kw_free(skw);
	maildir_list_free(&src);
	close(dfd);
	return r;
}

static int maildir_expunge_uids(struct maildir_box *b, const uint32_t *uids,
				unsigned n, struct ma_error_info *err)
{
	struct md_list l;
	uint32_t *sorted;
	int lfd;

	if (n == 0)
		return 0;
	lfd = md_lock(b->fd, err);
	if (lfd < 0)
		return -1;
	if (md_load_locked(b->u, b->fd, &l, err) < 0) {
		close(lfd);
		return -1;
	}
	sorted = ma_malloc0(n * sizeof(*sorted));
	memcpy(sorted, uids, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), md_cmp_u32);
	unsigned o = 0, nj = 0;
	bool changed = false;
	/* several files: journal first, so a kill leaves all or none */
	{
		char *jt = NULL;
		size_t jl = 0;
		FILE *jf = open_memstream(&jt, &jl);

		for (unsigned i = 0; i < l.n && jf != NULL; i++)
			if (bsearch(&l.e[i].uid, sorted, n, sizeof(*sorted), md_cmp_u32)) {
				fprintf(jf, "D %s\n", l.e[i].fname);
				nj++;
			}
		if (jf == NULL || fclose(jf) != 0 ||
		    (nj > 1 && md_journal_write(b->fd, jt, jl) < 0)) {
			free(jt);
			free(sorted);
			maildir_list_free(&l);
			close(lfd);
			return md_sys_error(err, "write journal");
		}
		free(jt);
	}
	for (unsigned i = 0; i < l.n; i++) {
		struct md_entry *e = &l.e[i];

		if (bsearch(&e->uid, sorted, n, sizeof(*sorted), md_cmp_u32)) {
			char p[MD_PATH_MAX];

			snprintf(p, sizeof(p), "cur/%s", e->fname);
			if (unlinkat(b->fd, p, 0) < 0 && errno != ENOENT) {
				ma_log(MA_LOG_WARNING, "maildir: unlink %s: %s",
				       p, strerror(errno));
				l.e[o++] = *e;
				continue;
			}
			snprintf(p, sizeof(p), MD_CACHEDIR "/%.*s",
				 (int)md_base_len(e->fname), e->fname);
			(void)unlinkat(b->fd, p, 0);
			free(e->fname);
			changed = true;
			continue;
		}
		l.e[o++] = *e;
	}
	l.n = o;
	free(sorted);
	int r = 0;
	if (changed) {
		/* RFC 7162 3.2.10: an expunge raises HIGHESTMODSEQ */
		l.modseq++;
		int curfd = openat(b->fd, "cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (curfd >= 0) {
			md_fsync_fd(curfd);
			close(curfd);
		}
		if (md_list_write(b->fd, &l) < 0)
			r = md_sys_error(err, "write uidlist");
	}
	if (nj > 1)
		md_journal_done(b->fd);
	maildir_list_free(&l);
	close(lfd);
	return r;
}

static int maildir_expunge(void *vb, const uint32_t *uids, unsigned n,
			   struct ma_error_info *err)
{
	struct maildir_box *b = vb;

	if (b->readonly)
		return ma_error_set(err, MA_ERR_PERM, "Mailbox is read-only");
	return maildir_expunge_uids(b, uids, n, err);
}

static int maildir_store_flags(void *vb, const uint32_t *uids, unsigned n,
			       enum ma_flag_op op, uint32_t flags,
			       const char *const *keywords, unsigned n_keywords,
			       uint64_t unchangedsince, uint32_t *failed_r,
			       unsigned *n_failed_r, struct ma_error_info *err)
{
	struct maildir_box *b = vb;
	struct md_list l;
	uint64_t kwmask = 0;
	unsigned nf = 0;
	int lfd, r = 0;
	bool changed = false;

	if (n_failed_r != NULL)
		*n_failed_r = 0;
	if (b->readonly)
		return ma_error_set(err, MA_ERR_PERM, "Mailbox is read-only");
	if (op != MA_FLAGS_ADD && op != MA_FLAGS_REMOVE && op != MA_FLAGS_REPLACE)
		return ma_error_set(err, MA_ERR_BADARGS, "Invalid flag operation");
	flags &= MA_FLAGS_ALL;
	lfd = md_lock(b->fd, err);
	if (lfd < 0)
		return -1;
	if (md_load_locked(b->u, b->fd, &l, err) < 0) {
		close(lfd);
		return -1;
	}
	if (op != MA_FLAGS_REMOVE) {
		if (md_kw_map(b->fd, keywords, n_keywords, &kwmask, err) < 0)
			goto fail;
	} else if (n_keywords > 0) {
		/* removing a keyword the folder never had: nothing to map */
		char *kw[MD_KW_MAX] = { NULL };
		md_kw_read(b->fd, kw);
		for (unsigned i = 0; i < n_keywords; i++)
			for (unsigned k = 0; k < MD_KW_MAX; k++)
				if (kw[k] != NULL && keywords[i] != NULL &&
				    strcasecmp(kw[k], keywords[i]) == 0)
					kwmask |= (uint64_t)1 << k;
		md_kw_free(kw);
	}
	char *jt = NULL;
	size_t jl = 0;
	FILE *jf = open_memstream(&jt, &jl);
	struct { struct md_entry *e; char *name; } *ren =
		ma_malloc0((n ? n : 1) * sizeof(*ren));
	unsigned nren = 0, nren_done = 0;
	for (unsigned i = 0; i < n; i++) {
		struct md_entry *e = (struct md_entry *)md_find(&l, uids[i]);
		uint32_t fl, nfl;
		uint64_t kw, nkw;
		char fname[512];

		if (e == NULL)
			continue;
		if (unchangedsince != 0 && e->modseq > unchangedsince) {
			if (failed_r != NULL)
				failed_r[nf] = e->uid;
			nf++;
			continue;
		}
		maildir_parse_info(e->fname, &fl, &kw);
		nfl = op == MA_FLAGS_ADD ? fl | flags :
			op == MA_FLAGS_REMOVE ? fl & ~flags : flags;
		nkw = op == MA_FLAGS_ADD ? kw | kwmask :
			op == MA_FLAGS_REMOVE ? kw & ~kwmask : kwmask;
		if (md_make_fname(e->fname, md_base_len(e->fname), nfl, nkw, fname,
				  sizeof(fname)) < 0)
			continue;
		if (strcmp(fname, e->fname) == 0)
			continue;	/* no change, no new modseq */
		if (jf != NULL)
			fprintf(jf, "R %s %s\n", e->fname, fname);
		ren[nren].e = e;
		ren[nren++].name = ma_strdup(fname);
	}
	/* several renames: journal first, so a kill leaves all or none */
	if (jf == NULL || fclose(jf) != 0 ||
	    (nren > 1 && md_journal_write(b->fd, jt, jl) < 0)) {
		md_sys_error(err, "write journal");
		r = -1;
		nren_done = 0;
	} else
		nren_done = nren;
	free(jt);
	for (unsigned i = 0; i < nren_done; i++) {
		struct md_entry *e = ren[i].e;
		char from[MD_PATH_MAX], to[MD_PATH_MAX];

		snprintf(from, sizeof(from), "cur/%s", e->fname);
		snprintf(to, sizeof(to), "cur/%s", ren[i].name);
		if (renameat(b->fd, from, b->fd, to) < 0) {
			if (errno == ENOENT)
				continue;
			/* the journal finishes the rest at the next lock */
			md_sys_error(err, "rename");
			r = -1;
			break;
		}
		free(e->fname);
		e->fname = ren[i].name;
		ren[i].name = NULL;
		e->modseq = l.modseq + 1;	/* one modseq per write */
		changed = true;
	}
	for (unsigned i = 0; i < nren; i++)
		free(ren[i].name);
	free(ren);
	if (changed) {
		l.modseq++;
		int curfd = openat(b->fd, "cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (curfd >= 0) {
			md_fsync_fd(curfd);
			close(curfd);
		}
		if (md_list_write(b->fd, &l) < 0)
			r = md_sys_error(err, "write uidlist");
	}
	if (nren_done > 1 && r == 0)
		md_journal_done(b->fd);
	if (n_failed_r != NULL)
		*n_failed_r = nf;
	maildir_list_free(&l);
	close(lfd);
	return r;
fail:
	maildir_list_free(&l);
	close(lfd);
	return -1;
}

/* ---------------- quota, verify ---------------- */

struct md_names {
	char **names;
	unsigned n, cap;
};

static void md_collect(const struct ma_mailbox_info *info, void *ctx)
{
	struct md_names *nm = ctx;

	if (nm->n == nm->cap) {
		nm->cap = nm->cap ? nm->cap * 2 : 16;
		nm->names = ma_realloc(nm->names, nm->cap * sizeof(*nm->names));
	}
	nm->names[nm->n++] = ma_strdup(info->name);
}

static int maildir_quota_usage(void *vu, uint64_t *bytes_r, uint64_t *messages_r,
			       struct ma_error_info *err)
{
	struct md_names nm = { 0 };
	uint64_t bytes = 0, msgs = 0;

	if (maildir_mailbox_list(vu, md_collect, &nm, err) < 0)
		return -1;
	for (unsigned i = 0; i < nm.n; i++) {
		struct ma_mailbox_status st;
		struct ma_error_info e;

		if (maildir_mailbox_status(vu, nm.names[i], &st, &e) == 0) {
			bytes += st.size;
			msgs += st.messages;
		}
	}
	md_free_names(nm.names, nm.n);
	*bytes_r = bytes;
	*messages_r = msgs;
	return 0;
}

static int maildir_verify(void *vu, bool repair,
			  void (*report)(const char *line, void *rctx), void *rctx,
			  struct ma_error_info *err)
{
	struct maildir_user *u = vu;
	struct md_names nm = { 0 };
	int problems = 0;

	if (maildir_mailbox_list(vu, md_collect, &nm, err) < 0)
		return -1;
	for (unsigned i = 0; i < nm.n; i++) {
		struct ma_error_info e;
		struct md_list l;
		struct md_report rep;
		bool dirty = false;
		char line[512];
		int fd = md_folder_open(u, nm.names[i], &e), lfd;

		if (fd < 0)
			continue;
		lfd = md_lock(fd, &e);
		if (lfd < 0) {
			close(fd);
			continue;
		}
		int rr = maildir_list_read(fd, &l);
		if (rr <= 0) {
			/* no list yet (a fresh or adoptable folder) is
			 * normal; a broken one is a problem */
			if (rr < 0) {
				problems++;
				snprintf(line, sizeof(line), "%s: %s unreadable",
					 nm.names[i], MD_UIDLIST);
				if (report)
					report(line, rctx);
			}
			if (repair) {
				struct md_list l2;
				if (rr < 0)
					unlinkat(fd, MD_UIDLIST, 0);
				if (md_load_locked(u, fd, &l2, &e) == 0)
					maildir_list_free(&l2);
			}
			close(lfd);
			close(fd);
			continue;
		}
		uint64_t old_modseq = l.modseq;
		/* verify looks, repair writes: new/ is left alone in a check */
		if (maildir_reconcile(fd, &l, repair, &rep, &dirty) == 0) {
			const struct { unsigned n; const char *what; } f[] = {
				{ rep.missing, "UID list entries without a file" },
				{ rep.unlisted, "files without a UID" },
				{ rep.dup_files, "files listed under several UIDs" },
				{ rep.dup_uids, "duplicate UIDs" },
				{ rep.uidnext_low, "UIDNEXT not above the highest UID" },
			};
			for (unsigned k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
				if (f[k].n == 0)
					continue;
				problems += (int)f[k].n;
				snprintf(line, sizeof(line), "%s: %u %s%s", nm.names[i],
					 f[k].n, f[k].what, repair ? " (repaired)" : "");
				if (report)
					report(line, rctx);
			}
			if (repair && dirty && md_list_write(fd, &l) < 0)
				md_sys_error(&e, "write uidlist");
		}
		(void)old_modseq;
		maildir_list_free(&l);
		close(lfd);
		close(fd);
	}
	md_free_names(nm.names, nm.n);
	return problems;
}

/* ---------------- descriptor ---------------- */

static const struct ma_store_ops maildir_ops = {
	.struct_size = sizeof(struct ma_store_ops),
	/* fsync on every write, directory scans on reads */
	.may_block = MA_STORE_MAY_BLOCK_READ | MA_STORE_MAY_BLOCK_WRITE,
	.user_open = maildir_user_open,
	.user_close = maildir_user_close,
	.mailbox_list = maildir_mailbox_list,
	.mailbox_create = maildir_mailbox_create,
	.mailbox_delete = maildir_mailbox_delete,
	.mailbox_rename = maildir_mailbox_rename,
	.mailbox_subscribe = maildir_mailbox_subscribe,
	.mailbox_status = maildir_mailbox_status,
	.mailbox_open = maildir_mailbox_open,
	.mailbox_close = maildir_mailbox_close,
	.mailbox_messages = maildir_mailbox_messages,
	.mailbox_keywords = maildir_mailbox_keywords,
	.mailbox_sync = maildir_mailbox_sync,
	.msg_read = maildir_msg_read,
	.msg_cache = maildir_msg_cache,
	.append = maildir_append,
	.copy = maildir_copy,
	.store_flags = maildir_store_flags,
	.expunge = maildir_expunge,
	.quota_usage = maildir_quota_usage,
	.verify = maildir_verify,
};

static const struct ma_store_backend maildir_backend = {
	.struct_size = sizeof(struct ma_store_backend),
	.mail = &maildir_ops,
	.kv = NULL,
};

MA_PLUGIN_EXPORT const struct ma_plugin mailaccess_plugin = {
	MA_PLUGIN_INIT(MA_PLUGIN_STORE, "maildir", "1.0"),
	.init = maildir_init,
	.deinit = maildir_deinit,
	.ops = &maildir_backend,
};
