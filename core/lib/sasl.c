/*
 * sasl.c - the server side of SASL (RFC 4422) for AUTH (POP3, RFC 5034)
 * and AUTHENTICATE (IMAP): mechanisms PLAIN (RFC 4616) and LOGIN
 * (draft-murchison-sasl-login). Protocols relay base64 lines; everything
 * about mechanisms lives here, independent of the auth source plugins.
 *
 * Owns: mechanism choice, challenge/response state, strict base64 decoding
 * of client lines, size limits, and handing the credentials to
 * ma_auth_verify(). The pure message parsers (sasl_plain_parse(),
 * sasl_decode()) take no conn so test-sasl.c can drive them directly.
 *
 * No proxy authorization: a PLAIN authzid must be empty or equal to the
 * authcid (RFC 4616 section 2 leaves authorization to the server; we have
 * no admin/master users, so anything else is refused).
 */
#include "core-private.h"

#include <string.h>

/* Longest client line we decode: RFC 4616 requires accepting 255 octets
 * per field; 2 NULs + 3 fields of up to 1024 needs 3076 decoded bytes,
 * 4104 base64 chars. Longer lines are refused before decoding. */
#define SASL_LINE_MAX 4104
#define SASL_DECODED_MAX (SASL_LINE_MAX / 4 * 3)
/* Matches AUTH_PASSWORD_MAX in auth.c. */
#define SASL_PASSWORD_MAX 1024

enum sasl_mech {
	SASL_MECH_PLAIN,
	SASL_MECH_LOGIN,
};

enum sasl_state {
	SASL_STATE_WANT_PLAIN,		/* sent "" and wait for the PLAIN message */
	SASL_STATE_WANT_USER,		/* LOGIN: sent "Username:" */
	SASL_STATE_WANT_PASSWORD,	/* LOGIN: sent "Password:" */
	SASL_STATE_FINISHED,
};

struct ma_sasl {
	struct ma_conn *conn;
	enum sasl_mech mech;
	enum sasl_state state;
	ma_auth_callback *cb;
	void *ctx;
	char user[MA_AUTH_USER_MAX];	/* LOGIN's user between the steps */
};

/* base64 of "Username:" and "Password:" (the LOGIN mechanism's customary
 * prompts; clients ignore the text but some check it is there). */
static const char sasl_login_user_prompt[] = "VXNlcm5hbWU6";
static const char sasl_login_pass_prompt[] = "UGFzc3dvcmQ6";

/* Strict base64 of one client line into out (size SASL_DECODED_MAX + 1).
 * Returns decoded length, or -1 with *error_r. An empty line is a valid
 * empty response. */
static long sasl_decode(const char *line, size_t len, unsigned char *out,
			const char **error_r)
{
	if (len > SASL_LINE_MAX) {
		*error_r = "SASL response too long";
		return -1;
	}
	if (len == 0) {
		out[0] = '\0';
		return 0;
	}
	long n = ma_base64_decode(line, len, out);
	if (n < 0) {
		*error_r = "invalid base64";
		return -1;
	}
	return n;
}

/* RFC 4616: message = [authzid] NUL authcid NUL passwd. Fills user
 * (MA_AUTH_USER_MAX) and password (SASL_PASSWORD_MAX + 1). Returns 0 or
 * -1 with *error_r. */
static int sasl_plain_parse(const unsigned char *data, size_t len, char *user,
			    char *password, const char **error_r)
{
	const unsigned char *nul1 = memchr(data, '\0', len);
	if (nul1 == NULL) {
		*error_r = "malformed PLAIN message";
		return -1;
	}
	const unsigned char *authcid = nul1 + 1;
	size_t rest = len - (size_t)(authcid - data);
	const unsigned char *nul2 = memchr(authcid, '\0', rest);
	if (nul2 == NULL) {
		*error_r = "malformed PLAIN message";
		return -1;
	}
	const unsigned char *pass = nul2 + 1;
	size_t zlen = (size_t)(nul1 - data);
	size_t clen = (size_t)(nul2 - authcid);
	size_t plen = len - (size_t)(pass - data);

	if (memchr(pass, '\0', plen) != NULL) {
		*error_r = "malformed PLAIN message";
		return -1;
	}
	if (clen == 0 || plen == 0) {
		*error_r = "empty user name or password";
		return -1;
	}
	if (clen >= MA_AUTH_USER_MAX || plen > SASL_PASSWORD_MAX) {
		*error_r = "user name or password too long";
		return -1;
	}
	if (zlen != 0 && (zlen != clen || memcmp(data, authcid, clen) != 0)) {
		*error_r = "proxy authorization not supported";
		return -1;
	}
	memcpy(user, authcid, clen);
	user[clen] = '\0';
	memcpy(password, pass, plen);
	password[plen] = '\0';
	return 0;
}

/* LOGIN steps: a user name or a password, no NULs, bounded. */
static int sasl_login_field(const unsigned char *data, size_t len, size_t max,
			    char *out, const char **error_r)
{
	if (len == 0 || memchr(data, '\0', len) != NULL || len > max) {
		*error_r = len == 0 ? "empty LOGIN response" :
			len > max ? "LOGIN response too long" :
			"malformed LOGIN response";
		return -1;
	}
	memcpy(out, data, len);
	out[len] = '\0';
	return 0;
}

const char *ma_sasl_mechanisms(const struct ma_conn *conn)
{
	return ma_conn_plaintext_auth_allowed(conn) ? "PLAIN LOGIN" : "";
}

/* Feeds one decoded response to the state machine. */
static enum ma_sasl_result sasl_step(struct ma_sasl *sasl,
				     const unsigned char *data, size_t len,
				     const char **out_r)
{
	char password[SASL_PASSWORD_MAX + 1];
	enum ma_sasl_result ret = MA_SASL_ERROR;

	switch (sasl->state) {
	case SASL_STATE_WANT_PLAIN:
		if (sasl_plain_parse(data, len, sasl->user, password, out_r) < 0)
			break;
		sasl->state = SASL_STATE_FINISHED;
		ma_auth_verify(sasl->conn, sasl->user, password, sasl->cb,
			       sasl->ctx);
		ret = MA_SASL_PENDING;
		break;
	case SASL_STATE_WANT_USER:
		if (sasl_login_field(data, len, MA_AUTH_USER_MAX - 1,
				     sasl->user, out_r) < 0)
			break;
		sasl->state = SASL_STATE_WANT_PASSWORD;
		*out_r = sasl_login_pass_prompt;
		ret = MA_SASL_CHALLENGE;
		break;
	case SASL_STATE_WANT_PASSWORD:
		if (sasl_login_field(data, len, SASL_PASSWORD_MAX, password,
				     out_r) < 0)
			break;
		sasl->state = SASL_STATE_FINISHED;
		ma_auth_verify(sasl->conn, sasl->user, password, sasl->cb,
			       sasl->ctx);
		ret = MA_SASL_PENDING;
		break;
	case SASL_STATE_FINISHED:
		*out_r = "SASL exchange already finished";
		break;
	}
	if (ret == MA_SASL_ERROR)
		sasl->state = SASL_STATE_FINISHED;
	ma_wipe(password, sizeof(password));
	return ret;
}

static enum ma_sasl_result sasl_feed_line(struct ma_sasl *sasl,
					  const char *line, size_t len,
					  const char **out_r)
{
	unsigned char buf[SASL_DECODED_MAX + 1];
	enum ma_sasl_result ret;

	if (sasl->state == SASL_STATE_FINISHED) {
		*out_r = "SASL exchange already finished";
		return MA_SASL_ERROR;
	}
	/* RFC 4422 section 3.5 / RFC 5034 section 4: "*" aborts. */
	if (len == 1 && line[0] == '*') {
		sasl->state = SASL_STATE_FINISHED;
		*out_r = "authentication cancelled";
		return MA_SASL_CANCELLED;
	}
	long n = sasl_decode(line, len, buf, out_r);
	if (n < 0) {
		sasl->state = SASL_STATE_FINISHED;
		return MA_SASL_ERROR;
	}
	ret = sasl_step(sasl, buf, (size_t)n, out_r);
	ma_wipe(buf, sizeof(buf));
	return ret;
}

enum ma_sasl_result ma_sasl_begin(struct ma_conn *conn, const char *mech,
				  const char *initial, ma_auth_callback *cb,
				  void *ctx, struct ma_sasl **sasl_r,
				  const char **out_r)
{
	struct ma_sasl *sasl;
	enum sasl_mech m;

	*sasl_r = NULL;
	if (mech == NULL) {
		*out_r = "missing mechanism";
		return MA_SASL_ERROR;
	}
	if (ma_slice_ieq(mech, strlen(mech), "PLAIN"))
		m = SASL_MECH_PLAIN;
	else if (ma_slice_ieq(mech, strlen(mech), "LOGIN"))
		m = SASL_MECH_LOGIN;
	else {
		*out_r = "unsupported mechanism";
		return MA_SASL_ERROR;
	}
	/* RFC 2595 / DESIGN: no plaintext passwords on a cleartext conn. */
	if (!ma_conn_plaintext_auth_allowed(conn)) {
		*out_r = "plaintext authentication disallowed without TLS";
		return MA_SASL_ERROR;
	}

	/* One object per conn, reused: a client looping "AUTH PLAIN" / "*"
	 * must not grow the conn arena. */
	unsigned slot = ma_auth_sasl_slot(ma_conn_core(conn));
	sasl = ma_conn_ctx_get(conn, slot);
	if (sasl == NULL) {
		sasl = ma_arena_alloc(ma_conn_arena(conn), sizeof(*sasl));
		ma_conn_ctx_set(conn, slot, sasl);
	} else {
		ma_wipe(sasl, sizeof(*sasl));
	}
	sasl->conn = conn;
	sasl->mech = m;
	sasl->cb = cb;
	sasl->ctx = ctx;
	sasl->state = m == SASL_MECH_PLAIN ? SASL_STATE_WANT_PLAIN :
		SASL_STATE_WANT_USER;
	*sasl_r = sasl;

	if (initial == NULL) {
		/* PLAIN is client-first: an empty challenge asks for it. */
		*out_r = m == SASL_MECH_PLAIN ? "" : sasl_login_user_prompt;
		return MA_SASL_CHALLENGE;
	}
	/* RFC 4422 section 4: "=" is an initial response of zero length. */
	if (strcmp(initial, "=") == 0)
		return sasl_feed_line(sasl, "", 0, out_r);
	return sasl_feed_line(sasl, initial, strlen(initial), out_r);
}

enum ma_sasl_result ma_sasl_continue(struct ma_sasl *sasl, const char *line,
				     size_t len, const char **out_r)
{
	if (sasl == NULL) {
		*out_r = "no SASL exchange";
		return MA_SASL_ERROR;
	}
	return sasl_feed_line(sasl, line, len, out_r);
}
