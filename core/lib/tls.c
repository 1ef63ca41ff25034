/*
 * tls.c - GnuTLS for the server side: loading the `tls` section
 * (credentials, per-domain certificates chosen by SNI, priority string),
 * and the non-blocking session on a connection's fd (handshake driven by
 * the loop, record send/recv, close_notify).
 *
 * SNI: every `domain NAME { cert key }` gets credentials of its own; the
 * post-client-hello hook reads the name the client sent and switches the
 * session to that domain's credentials (exact match, or "*.example.org"
 * for one leading label), else the default cert is used. The choice is
 * made by the configured label, not by what the certificate says, so the
 * admin sees in the config which cert a name gets.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net-private.h"

#define MA_TLS_DEFAULT_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* RFC 1035: a DNS name is at most 253 characters. */
#define MA_TLS_SNI_MAX 255

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_global_ret;

static void tls_global_init(void)
{
	tls_global_ret = gnutls_global_init();
}

static char *tls_errdup(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *tls_errdup(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		ma_oom();
	va_end(ap);
	return s;
}

static int tls_load_pair(const struct ma_config_section *s, const char *what,
			 gnutls_dh_params_t dh,
			 gnutls_certificate_credentials_t *creds_r, char **error_r)
{
	const char *cert = ma_config_get(s, "cert", NULL);
	const char *key = ma_config_get(s, "key", NULL);
	int ret;

	*creds_r = NULL;
	if (cert == NULL || key == NULL) {
		*error_r = tls_errdup("%s: %s: both cert and key are required",
				      ma_config_section_where(s), what);
		return -1;
	}
	ret = gnutls_certificate_allocate_credentials(creds_r);
	if (ret < 0) {
		*error_r = tls_errdup("%s: %s: %s", ma_config_section_where(s),
				      what, gnutls_strerror(ret));
		return -1;
	}
	ret = gnutls_certificate_set_x509_key_file2(*creds_r, cert, key,
						    GNUTLS_X509_FMT_PEM, NULL, 0);
	if (ret < 0) {
		*error_r = tls_errdup("%s: %s: cannot load cert %s / key %s: %s",
				      ma_config_where(s, "cert"), what, cert, key,
				      gnutls_strerror(ret));
		gnutls_certificate_free_credentials(*creds_r);
		*creds_r = NULL;
		return -1;
	}
	if (dh != NULL)
		gnutls_certificate_set_dh_params(*creds_r, dh);
	else
		(void)gnutls_certificate_set_known_dh_params(*creds_r,
							     GNUTLS_SEC_PARAM_MEDIUM);
	return 0;
}

static int tls_load_dh(const struct ma_config_section *tls, const char *path,
		       gnutls_dh_params_t *dh_r, char **error_r)
{
	gnutls_datum_t d = { NULL, 0 };
	int ret;

	ret = gnutls_load_file(path, &d);
	if (ret < 0) {
		*error_r = tls_errdup("%s: dh: cannot read %s: %s",
				      ma_config_where(tls, "dh"), path,
				      gnutls_strerror(ret));
		return -1;
	}
	gnutls_dh_params_init(dh_r);
	ret = gnutls_dh_params_import_pkcs3(*dh_r, &d, GNUTLS_X509_FMT_PEM);
	gnutls_free(d.data);
	if (ret < 0) {
		*error_r = tls_errdup("%s: dh: bad parameters in %s: %s",
				      ma_config_where(tls, "dh"), path,
				      gnutls_strerror(ret));
		gnutls_dh_params_deinit(*dh_r);
		*dh_r = NULL;
		return -1;
	}
	return 0;
}

struct ma_tls_ctx *ma_tls_ctx_load(const struct ma_config_section *tls,
				   char **error_r)
{
	const struct ma_config_section *d;
	struct ma_tls_ctx *ctx;
	const char *prio, *dh, *errpos = NULL;
	int ret;

	pthread_once(&tls_once, tls_global_init);
	if (tls_global_ret < 0) {
		*error_r = tls_errdup("gnutls_global_init: %s",
				      gnutls_strerror(tls_global_ret));
		return NULL;
	}
	ctx = ma_malloc0(sizeof(*ctx));
	ctx->refcount = 1;
	dh = ma_config_get(tls, "dh", NULL);
	if (dh != NULL && tls_load_dh(tls, dh, &ctx->dh, error_r) < 0)
		goto fail;
	if (tls_load_pair(tls, "tls", ctx->dh, &ctx->creds, error_r) < 0)
		goto fail;
	prio = ma_config_get(tls, "priority", MA_TLS_DEFAULT_PRIORITY);
	ret = gnutls_priority_init(&ctx->priority, prio, &errpos);
	if (ret < 0) {
		*error_r = tls_errdup("%s: priority: %s near '%s'",
				      ma_config_where(tls, "priority"),
				      gnutls_strerror(ret),
				      errpos != NULL ? errpos : "");
		ctx->priority = NULL;
		goto fail;
	}
	for (d = ma_config_next_child(tls, "domain", NULL); d != NULL;
	     d = ma_config_next_child(tls, "domain", d)) {
		const char *label = ma_config_section_label(d);
		struct ma_tls_domain *dom;

		if (label == NULL || *label == '\0' || strlen(label) > MA_TLS_SNI_MAX) {
			*error_r = tls_errdup("%s: domain needs a name (domain mail.example.org { ... })",
					      ma_config_section_where(d));
			goto fail;
		}
		ctx->domains = ma_realloc(ctx->domains,
					  sizeof(*ctx->domains) * (ctx->n_domains + 1));
		dom = &ctx->domains[ctx->n_domains];
		memset(dom, 0, sizeof(*dom));
		dom->name = ma_strdup(label);
		for (char *p = dom->name; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		ctx->n_domains++;
		if (tls_load_pair(d, "domain", ctx->dh, &dom->creds, error_r) < 0)
			goto fail;
	}
	return ctx;
fail:
	ma_tls_ctx_unref(&ctx);
	return NULL;
}

void ma_tls_ctx_ref(struct ma_tls_ctx *ctx)
{
	ctx->refcount++;
}

void ma_tls_ctx_unref(struct ma_tls_ctx **ctxp)
{
	struct ma_tls_ctx *ctx = *ctxp;

	*ctxp = NULL;
	if (ctx == NULL || --ctx->refcount > 0)
		return;
	for (unsigned i = 0; i < ctx->n_domains; i++) {
		if (ctx->domains[i].creds != NULL)
			gnutls_certificate_free_credentials(ctx->domains[i].creds);
		free(ctx->domains[i].name);
	}
	free(ctx->domains);
	if (ctx->creds != NULL)
		gnutls_certificate_free_credentials(ctx->creds);
	if (ctx->priority != NULL)
		gnutls_priority_deinit(ctx->priority);
	if (ctx->dh != NULL)
		gnutls_dh_params_deinit(ctx->dh);
	free(ctx);
}

static bool tls_name_matches(const char *pattern, const char *name)
{
	if (strcmp(pattern, name) == 0)
		return true;
	if (pattern[0] == '*' && pattern[1] == '.') {
		const char *dot = strchr(name, '.');
		/* one label only: *.example.org matches a.example.org */
		return dot != NULL && dot != name && strcmp(dot + 1, pattern + 2) == 0;
	}
	return false;
}

/* After ClientHello, before the server picks a cert (gnutls docs for
 * gnutls_handshake_set_post_client_hello_function). */
static int tls_client_hello_cb(gnutls_session_t s)
{
	struct ma_conn *conn = gnutls_session_get_ptr(s);
	char name[MA_TLS_SNI_MAX + 1];
	size_t len = sizeof(name);
	unsigned type = 0;

	if (conn == NULL || conn->tls_ctx == NULL)
		return 0;
	if (gnutls_server_name_get(s, name, &len, &type, 0) < 0 ||
	    type != GNUTLS_NAME_DNS || len == 0 || len >= sizeof(name))
		return 0;
	name[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];

		/* Only hostname characters go to the log or to plugins. */
		if (!(isalnum(ch) || ch == '-' || ch == '.' || ch == '_'))
			return 0;
		name[i] = (char)tolower(ch);
	}
	free(conn->sni);
	conn->sni = ma_strdup(name);
	for (unsigned i = 0; i < conn->tls_ctx->n_domains; i++) {
		struct ma_tls_domain *d = &conn->tls_ctx->domains[i];

		if (tls_name_matches(d->name, name)) {
			gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, d->creds);
			break;
		}
	}
	return 0;
}

int ma_tls_begin(struct ma_conn *conn)
{
	struct ma_tls_ctx *ctx = conn->net->tls;
	gnutls_session_t s;
	int ret;

	if (ctx == NULL) {
		ma_conn_close_with(conn, MA_CLOSE_TLS_ERROR, "tls not configured");
		return -1;
	}
	ret = gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (ret < 0) {
		ma_conn_log(conn, MA_LOG_ERROR, "gnutls_init: %s", gnutls_strerror(ret));
		ma_conn_close_with(conn, MA_CLOSE_TLS_ERROR, "tls init failed");
		return -1;
	}
	conn->tls = s;
	ma_tls_ctx_ref(ctx);
	conn->tls_ctx = ctx;
	if ((ret = gnutls_priority_set(s, ctx->priority)) < 0 ||
	    (ret = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, ctx->creds)) < 0) {
		ma_conn_log(conn, MA_LOG_ERROR, "TLS setup: %s", gnutls_strerror(ret));
		ma_conn_close_with(conn, MA_CLOSE_TLS_ERROR, "tls init failed");
		return -1;
	}
	gnutls_certificate_server_set_request(s, GNUTLS_CERT_IGNORE);
	gnutls_session_set_ptr(s, conn);
	gnutls_handshake_set_post_client_hello_function(s, tls_client_hello_cb);
	gnutls_transport_set_int(s, conn->fd);
	conn->tls_state = MA_CONN_TLS_HANDSHAKE;
	conn->hs_started = ev_now(conn->net->loop);
	conn->tls_send_pending = 0;
	ma_conn_update_io(conn);
	/* Arms the handshake deadline. */
	ev_timer_stop(conn->net->loop, &conn->timer);
	{
		double idle = conn->net->idle_timeout;
		double hs = idle < MA_TLS_HANDSHAKE_SECS ? idle : MA_TLS_HANDSHAKE_SECS;

		ev_timer_set(&conn->timer, hs, 0.);
		ev_timer_start(conn->net->loop, &conn->timer);
	}
	ret = ma_tls_handshake_step(conn);
	if (ret == 0)
		ma_conn_update_io(conn);
	return ret < 0 ? -1 : 0;
}

int ma_tls_handshake_step(struct ma_conn *conn)
{
	int ret;

	if (conn->tls == NULL || conn->closing)
		return -1;
	/* A warning alert mid-handshake is not fatal: go on (bounded). */
	for (unsigned i = 0; i < 8; i++) {
		ret = gnutls_handshake(conn->tls);
		if (ret == GNUTLS_E_SUCCESS) {
			if (ma_log_enabled(MA_LOG_DEBUG)) {
				char *desc = gnutls_session_get_desc(conn->tls);

				ma_conn_log(conn, MA_LOG_DEBUG, "TLS established: %s sni=%s",
					    desc != NULL ? desc : "?",
					    conn->sni != NULL ? conn->sni : "-");
				gnutls_free(desc);
			}
			ma_conn_tls_ready(conn);
			return 1;
		}
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
			return 0;
		if (gnutls_error_is_fatal(ret))
			break;
	}
	ma_conn_log(conn, MA_LOG_INFO, "TLS handshake failed: %s",
		    gnutls_strerror(ret));
	ma_conn_close_with(conn, MA_CLOSE_TLS_ERROR, "tls handshake failed");
	return -1;
}

ssize_t ma_tls_recv(struct ma_conn *conn, void *buf, size_t len)
{
	for (unsigned i = 0; i < 8; i++) {
		ssize_t ret = gnutls_record_recv(conn->tls, buf, len);

		if (ret >= 0)
			return ret;
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
			errno = EAGAIN;
			return -1;
		}
		/* Most clients just close the TCP connection. */
		if (ret == GNUTLS_E_PREMATURE_TERMINATION)
			return 0;
		if (ret == GNUTLS_E_REHANDSHAKE) {
			/* No renegotiation (TLS 1.2 only; 1.3 has none). */
			(void)gnutls_alert_send(conn->tls, GNUTLS_AL_WARNING,
						GNUTLS_A_NO_RENEGOTIATION);
			continue;
		}
		if (!gnutls_error_is_fatal((int)ret))
			continue;
		ma_conn_log(conn, MA_LOG_INFO, "TLS read: %s",
			    gnutls_strerror((int)ret));
		conn->write_failed = true;	/* no close_notify on a broken session */
		ma_conn_close_with(conn, MA_CLOSE_TLS_ERROR, "tls record error");
		return -2;
	}
	errno = EAGAIN;
	return -1;
}

ssize_t ma_tls_send(struct ma_conn *conn, const void *buf, size_t len)
{
	ssize_t ret = gnutls_record_send(conn->tls, buf, len);

	if (ret >= 0)
		return ret;
	if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
		errno = EAGAIN;
		return -1;
	}
	ma_conn_log(conn, MA_LOG_DEBUG, "TLS write: %s", gnutls_strerror((int)ret));
	conn->write_failed = true;
	ma_conn_close_with(conn, MA_CLOSE_ERROR, "write error");
	return -2;
}

size_t ma_tls_pending(struct ma_conn *conn)
{
	return conn->tls != NULL ? gnutls_record_check_pending(conn->tls) : 0;
}

int ma_tls_direction(struct ma_conn *conn)
{
	return conn->tls != NULL ? gnutls_record_get_direction(conn->tls) : 0;
}

void ma_tls_end(struct ma_conn *conn, bool send_bye)
{
	if (conn->tls == NULL)
		return;
	/* Non-blocking: one try, we are closing anyway. */
	if (send_bye)
		(void)gnutls_bye(conn->tls, GNUTLS_SHUT_WR);
	gnutls_deinit(conn->tls);
	conn->tls = NULL;
}
