/*
 * auth-pam.c - auth source "pam": checks passwords with the system's PAM
 * stack (service `service`, default "mailaccess": /etc/pam.d/mailaccess),
 * and looks users up with getpwnam_r().
 *
 * verify() runs pam_start / pam_authenticate / pam_acct_mgmt / pam_end on
 * an auth thread; blocking there is fine. Not every PAM module is
 * thread-safe (pam_unix's helpers, some LDAP and RADIUS modules keep
 * globals), so one mutex serialises whole PAM transactions in this
 * process: checks run one at a time, off the loop. A slow PAM backend
 * therefore limits logins per second, never other sessions.
 *
 * The conversation answers every PAM_PROMPT_ECHO_OFF with the password
 * (that is what pam_unix asks), refuses PAM_PROMPT_ECHO_ON for anything
 * but the user name, and ignores informational messages. Read-only: no
 * admin ops (use the system's own tools).
 */
#include <mailaccess/mailaccess.h>

#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <security/pam_appl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct pam_source_ctx {
	char *service;
};

struct pam_conv_data {
	const char *user;
	const char *password;
};

static pthread_mutex_t pam_source_lock = PTHREAD_MUTEX_INITIALIZER;

/* Copies s into memory PAM frees with free(). */
static char *pam_source_dup(const char *s)
{
	return strdup(s);
}

static int pam_source_conv(int num_msg, const struct pam_message **msg,
			   struct pam_response **resp_r, void *appdata)
{
	const struct pam_conv_data *d = appdata;

	if (num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	struct pam_response *resp = calloc((size_t)num_msg, sizeof(*resp));
	if (resp == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < num_msg; i++) {
		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
			resp[i].resp = pam_source_dup(d->password);
			break;
		case PAM_PROMPT_ECHO_ON:
			/* Only ever a login prompt; we passed the user to
			 * pam_start, but some modules ask again. */
			resp[i].resp = pam_source_dup(d->user);
			break;
		case PAM_ERROR_MSG:
		case PAM_TEXT_INFO:
			resp[i].resp = NULL;
			break;
		default:
			goto fail;
		}
		if (resp[i].resp == NULL && (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF ||
					     msg[i]->msg_style == PAM_PROMPT_ECHO_ON))
			goto fail;
	}
	*resp_r = resp;
	return PAM_SUCCESS;
fail:
	for (int i = 0; i < num_msg; i++) {
		if (resp[i].resp != NULL) {
			ma_wipe(resp[i].resp, strlen(resp[i].resp));
			free(resp[i].resp);
		}
	}
	free(resp);
	return PAM_CONV_ERR;
}

static enum ma_auth_status pam_source_status(int r)
{
	switch (r) {
	case PAM_SUCCESS:
		return MA_AUTH_OK;
	case PAM_USER_UNKNOWN:
		return MA_AUTH_UNKNOWN_USER;
	case PAM_AUTHINFO_UNAVAIL:
	case PAM_SYSTEM_ERR:
	case PAM_BUF_ERR:
	case PAM_ABORT:
	case PAM_CONV_ERR:
	case PAM_SERVICE_ERR:
	case PAM_TRY_AGAIN:
		return MA_AUTH_TEMPFAIL;
	default:	/* AUTH_ERR, PERM_DENIED, MAXTRIES, ACCT_EXPIRED, ... */
		return MA_AUTH_FAIL;
	}
}

static enum ma_auth_status pam_source_lookup(void *vctx, const char *user,
					     char *user_r);

static enum ma_auth_status pam_source_verify(void *vctx, const char *user,
					     const char *password, char *user_r)
{
	struct pam_source_ctx *ctx = vctx;
	struct pam_conv_data data = { .user = user, .password = password };
	struct pam_conv conv = { .conv = pam_source_conv, .appdata_ptr = &data };
	pam_handle_t *pamh = NULL;
	enum ma_auth_status st;

	pthread_mutex_lock(&pam_source_lock);
	int r = pam_start(ctx->service, user, &conv, &pamh);
	if (r != PAM_SUCCESS) {
		ma_error("auth pam: pam_start(%s) failed: %s", ctx->service,
			 pam_strerror(pamh, r));
		pthread_mutex_unlock(&pam_source_lock);
		return MA_AUTH_TEMPFAIL;
	}
	r = pam_authenticate(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
	if (r == PAM_SUCCESS)
		r = pam_acct_mgmt(pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
	st = pam_source_status(r);
	if (st == MA_AUTH_TEMPFAIL)
		ma_warning("auth pam: %s", pam_strerror(pamh, r));
	if (st == MA_AUTH_OK) {
		/* A module may have mapped the name (PAM_USER). */
		const void *item = NULL;
		if (pam_get_item(pamh, PAM_USER, &item) != PAM_SUCCESS ||
		    item == NULL)
			item = user;
		snprintf(user_r, MA_AUTH_USER_MAX, "%s", (const char *)item);
	}
	pam_end(pamh, r);
	pthread_mutex_unlock(&pam_source_lock);

	/* pam_unix (and most modules) answer AUTH_ERR for unknown users too.
	 * If the system does not know the name either, say so, so the next
	 * source (auth passwd with virtual users) gets its turn whatever the
	 * order of the `auth` sections. The client sees FAIL either way. */
	if (st == MA_AUTH_FAIL && (r == PAM_AUTH_ERR || r == PAM_USER_UNKNOWN)) {
		char canon[MA_AUTH_USER_MAX];
		if (pam_source_lookup(ctx, user, canon) == MA_AUTH_UNKNOWN_USER)
			st = MA_AUTH_UNKNOWN_USER;
	}
	return st;
}

static enum ma_auth_status pam_source_lookup(void *vctx, const char *user,
					     char *user_r)
{
	(void)vctx;
	struct passwd pw, *res = NULL;
	long max = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t size = max > 0 ? (size_t)max : 16384;
	enum ma_auth_status st;

	/* Grow the buffer on ERANGE, bounded (a huge gecos is not a user). */
	for (;;) {
		char *buf = malloc(size);
		if (buf == NULL)
			ma_oom();
		int r = getpwnam_r(user, &pw, buf, size, &res);
		if (r == ERANGE && size < 1024 * 1024) {
			free(buf);
			size *= 2;
			continue;
		}
		if (r != 0 && r != ENOENT && r != ESRCH && r != EBADF &&
		    r != EPERM) {
			st = MA_AUTH_TEMPFAIL;
		} else if (res == NULL) {
			st = MA_AUTH_UNKNOWN_USER;
		} else {
			snprintf(user_r, MA_AUTH_USER_MAX, "%s", res->pw_name);
			st = MA_AUTH_OK;
		}
		free(buf);
		return st;
	}
}

static int pam_source_init(struct ma_core *core,
			   const struct ma_config_section *config, void **ctx_r,
			   const char **error_r)
{
	(void)core;
	const char *service = config != NULL ?
		ma_config_get(config, "service", "mailaccess") : "mailaccess";
	if (service[0] == '\0' || strchr(service, '/') != NULL) {
		*error_r = "auth pam: service must be a plain name (a file in /etc/pam.d)";
		return -1;
	}
	struct pam_source_ctx *ctx = ma_malloc0(sizeof(*ctx));
	ctx->service = ma_strdup(service);
	*ctx_r = ctx;
	return 0;
}

static void pam_source_deinit(void *vctx)
{
	struct pam_source_ctx *ctx = vctx;
	if (ctx == NULL)
		return;
	free(ctx->service);
	free(ctx);
}

static const struct ma_auth_ops pam_source_ops = {
	.struct_size = sizeof(struct ma_auth_ops),
	.verify = pam_source_verify,
	.lookup = pam_source_lookup,
};

MA_PLUGIN_EXPORT const struct ma_plugin mailaccess_plugin = {
	MA_PLUGIN_INIT(MA_PLUGIN_AUTH, "pam", "1.0"),
	.init = pam_source_init,
	.deinit = pam_source_deinit,
	.ops = &pam_source_ops,
};
