/*
 * maildir-private.h - the Maildir backend's internals shared with its unit
 * test: the UID list in memory, name escaping, adoption and the scan.
 */
#ifndef MAILDIR_PRIVATE_H
#define MAILDIR_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One line of mailaccess-uidlist. */
struct md_entry {
	uint32_t uid;
	uint32_t csize;		/* cache side file size, 0 = none */
	uint64_t modseq;
	uint64_t vsize;		/* size with CRLF line ends; UINT64_MAX = not known yet */
	int64_t date;		/* internal date (file mtime when first seen) */
	int32_t tz;		/* its zone, minutes east of UTC */
	char *fname;		/* current name in cur/, with ":2,<info>" */
};

struct md_list {
	uint32_t uidvalidity, uidnext;
	uint64_t modseq;	/* folder's highest modseq */
	struct md_entry *e;	/* ascending UID after a reconcile */
	unsigned n, cap;
};

/* What a reconcile found (verify reports these). */
struct md_report {
	unsigned missing;	/* entries whose file is gone */
	unsigned unlisted;	/* files that got a new UID */
	unsigned dup_files;	/* one file under several UIDs */
	unsigned dup_uids;	/* one UID for several files */
	unsigned uidnext_low;	/* UIDNEXT not above the highest UID */
	unsigned filled;	/* sizes/dates computed (adoption) */
};

int maildir_name_encode(const char *name, char *out, size_t outsize);
int maildir_name_decode(const char *dname, char *out, size_t outsize);
void maildir_parse_info(const char *fname, uint32_t *flags_r, uint64_t *kw_r);
void maildir_list_free(struct md_list *l);
int maildir_list_read(int dirfd, struct md_list *l);
int maildir_adopt(int dirfd, const char *file, struct md_list *l);
int maildir_reconcile(int dirfd, struct md_list *l, bool move_new,
		      struct md_report *rep, bool *dirty);
void maildir_clean_tmp(int dirfd);

#endif
