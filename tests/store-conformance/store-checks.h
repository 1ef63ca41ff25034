/*
 * store-checks.h - the mail-level store checks, in one copy: compiled into
 * the conformance kit (store-conformance.c) and into the unit tests
 * core/lib/test-store-kv.c (LMDB) and backends/maildir/test-maildir.c.
 *
 * Every store_check_* takes the store as the core wraps it and a user name
 * no other check uses; it reports each broken guarantee as one line through
 * sc_fail_at() (the CHECK/OK/FAILS/COUNTS macros below) and counts it in
 * sc_failures. A caller tells whether it passed by comparing sc_failures
 * before and after. Only the installed headers are used, so the kit keeps
 * building against libmailaccess alone.
 */
#ifndef STORE_CHECKS_H
#define STORE_CHECKS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <mailaccess/mailaccess.h>

struct sc_options {
	FILE *out;		/* where failure and note lines go (stderr) */
	const char *indent;	/* put before every such line ("") */
	size_t read_big_size;	/* store_check_read's large message (20 MB) */
};

extern struct sc_options sc_opts;
/* Failed assertions so far, over all checks. */
extern int sc_failures;

/* One line: sc_opts.indent, the text, a newline. sc_fail() also counts a
 * failure; sc_fail_at() puts "file:line: func: " in front (file without
 * its directory). */
void sc_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sc_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sc_fail_at(const char *file, int line, const char *func,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define CHECK(cond) do { if (!(cond)) \
	sc_fail_at(__FILE__, __LINE__, __func__, "check failed: %s", #cond); \
	} while (0)
/* For calls expected to succeed: prints the store error. Needs a
 * struct ma_error_info err in scope (also for FAILS). */
#define OK(call) do { struct ma_error_info *e_ = &err; e_->code = MA_OK; \
	e_->text[0] = '\0'; if ((call) < 0) \
	sc_fail_at(__FILE__, __LINE__, __func__, "%s failed: %s %s", #call, \
		   ma_error_name(e_->code), e_->text); } while (0)
#define FAILS(call, code_) do { err.code = MA_OK; \
	if ((call) >= 0) \
		sc_fail_at(__FILE__, __LINE__, __func__, "%s succeeded", #call); \
	else if (err.code != (code_)) \
		sc_fail_at(__FILE__, __LINE__, __func__, \
			   "%s: got %s want %s (%s)", #call, \
			   ma_error_name(err.code), ma_error_name(code_), \
			   err.text); } while (0)
/* Recounts a mailbox from an opened view and compares with STATUS. */
#define COUNTS(u, box) sc_check_counts(u, box, __FILE__, __LINE__, __func__)

/* ---- helpers ---- */

/* Opens USER: NULL with the failure (and the store's reason) counted. */
struct ma_user *sc_user_open(struct ma_store *store, const char *user);
/* A message of TEXT (not copied) with FLAGS, nothing else set. */
struct ma_append_msg sc_msg(const char *text, uint32_t flags);
/* Appends one message; prints the error on failure. */
int sc_append1(struct ma_user *u, const char *box, const char *text,
	       uint32_t flags, uint32_t *uid_r);
/* STATUS of a mailbox; a failure is counted and gives all zeros. */
struct ma_mailbox_status sc_status(struct ma_user *u, const char *box);
void sc_check_counts(struct ma_user *u, const char *box, const char *file,
		     int line, const char *func);
/* Opens BOX read-only and lists it (and its status if ST_R): the view, to
 * be closed, or NULL with the failure counted and *n_r 0. */
struct ma_mailbox *sc_open_list(struct ma_user *u, const char *box,
				const struct ma_msg **msgs_r, uint32_t *n_r,
				struct ma_mailbox_status *st_r);
/* The message UID in the view's list, or NULL. */
const struct ma_msg *sc_find_msg(struct ma_mailbox *mb, uint32_t uid);
/* The same, never NULL: a missing UID is a counted failure and gives an
 * all-zero message, so a broken backend fails the check, not the kit. */
const struct ma_msg *sc_msg_in(struct ma_mailbox *mb, uint32_t uid);
/* ma_store_verify() report callback: counts (ctx is an int) and prints. */
void sc_verify_report(const char *line, void *ctx);

/* ---- the checks ---- */

void store_check_names(struct ma_store *store);
void store_check_basic(struct ma_store *store, const char *user);
void store_check_flags(struct ma_store *store, const char *user);
void store_check_sync(struct ma_store *store, const char *user);
void store_check_tree(struct ma_store *store, const char *user);
void store_check_copy(struct ma_store *store, const char *user);
void store_check_read(struct ma_store *store, const char *user);
void store_check_multiprocess(struct ma_store *store, const char *user);
void store_check_kill9(struct ma_store *store, const char *user);
void store_check_threads(struct ma_store *store, const char *user);
void store_check_verify_clean(struct ma_store *store, const char *user);
/* The change bus: a write is announced once, on the core's loop, only to
 * subscribers of that user and mailbox. */
void store_check_changebus(struct ma_core *core, struct ma_store *store,
			   const char *user);
/* All of the above in order, each on its own user, then verify clean for
 * each of those users: what a backend's unit test runs first. */
void store_checks_run_all(struct ma_core *core, struct ma_store *store);

#endif
