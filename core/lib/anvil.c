/*
 * anvil.c - server-wide counts: open connections in total and per client
 * IP, logged-in sessions per user. Lives in the auth process (fed by every
 * worker over the auth socket) or, without one, in the single process.
 *
 * Owns: the count tables and the per-client entry tables. Every counted
 * conn is an entry owned by one client (a worker's socket), so a worker
 * that dies (EOF on its socket) loses all its counts in one call, and a
 * worker that reconnects to a restarted auth process re-registers its live
 * conns with AUTHD_CONN_FORCE (counted, never refused: they are open
 * already). Memory is bounded: entries beyond 2 x max_connections + 1024
 * are refused even when forced. Loop thread only; no locks.
 */
#include "authd-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANVIL_BUCKETS 1024
#define ANVIL_CLIENT_BUCKETS 1024

struct anvil_ip {
	struct anvil_ip *next;
	unsigned char key[16];
	unsigned count;
};

struct anvil_user {
	struct anvil_user *next;
	unsigned count;
	char name[];		/* lowercased */
};

struct anvil_entry {
	struct anvil_entry *next;	/* client bucket chain */
	uint64_t conn_id;
	unsigned char ip_key[16];
	bool count_ip;
	struct anvil_user *user;	/* session, or NULL */
};

struct ma_anvil_client {
	struct ma_anvil *anvil;
	struct anvil_entry *buckets[ANVIL_CLIENT_BUCKETS];
	unsigned n_entries;
};

struct ma_anvil {
	unsigned max_conn, max_per_ip, max_per_user;
	unsigned n_conns;		/* entries of every client */
	struct anvil_ip *ips[ANVIL_BUCKETS];
	struct anvil_user *users[ANVIL_BUCKETS];
};

static uint32_t anvil_fnv(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

struct ma_anvil *ma_anvil_create(unsigned max_connections,
				 unsigned max_connections_per_ip,
				 unsigned max_sessions_per_user)
{
	struct ma_anvil *a = ma_malloc0(sizeof(*a));
	a->max_conn = max_connections;
	a->max_per_ip = max_connections_per_ip;
	a->max_per_user = max_sessions_per_user;
	return a;
}

void ma_anvil_destroy(struct ma_anvil **anvilp)
{
	struct ma_anvil *a = *anvilp;
	if (a == NULL)
		return;
	/* Clients must be gone; free whatever counts remain anyway. */
	for (unsigned i = 0; i < ANVIL_BUCKETS; i++) {
		while (a->ips[i] != NULL) {
			struct anvil_ip *n = a->ips[i]->next;
			free(a->ips[i]);
			a->ips[i] = n;
		}
		while (a->users[i] != NULL) {
			struct anvil_user *n = a->users[i]->next;
			free(a->users[i]);
			a->users[i] = n;
		}
	}
	free(a);
	*anvilp = NULL;
}

/* ---- per-IP ---- */

static struct anvil_ip **anvil_ip_slot(struct ma_anvil *a,
				       const unsigned char key[16])
{
	struct anvil_ip **pp = &a->ips[anvil_fnv(key, 16) % ANVIL_BUCKETS];
	for (; *pp != NULL; pp = &(*pp)->next)
		if (memcmp((*pp)->key, key, 16) == 0)
			break;
	return pp;
}

static unsigned anvil_ip_get(struct ma_anvil *a, const unsigned char key[16])
{
	struct anvil_ip **pp = anvil_ip_slot(a, key);
	return *pp == NULL ? 0 : (*pp)->count;
}

static void anvil_ip_add(struct ma_anvil *a, const unsigned char key[16])
{
	struct anvil_ip **pp = anvil_ip_slot(a, key);
	if (*pp == NULL) {
		*pp = ma_malloc0(sizeof(**pp));
		memcpy((*pp)->key, key, 16);
	}
	(*pp)->count++;
}

static void anvil_ip_del(struct ma_anvil *a, const unsigned char key[16])
{
	struct anvil_ip **pp = anvil_ip_slot(a, key), *c = *pp;
	if (c == NULL)
		return;
	if (c->count > 0)
		c->count--;
	if (c->count == 0) {
		*pp = c->next;
		free(c);
	}
}

/* ---- per-user ---- */

static void anvil_user_key(const char *user, char *key)
{
	size_t i = 0;
	for (; user[i] != '\0' && i + 1 < MA_AUTH_USER_MAX; i++) {
		char c = user[i];
		key[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	key[i] = '\0';
}

static struct anvil_user **anvil_user_slot(struct ma_anvil *a, const char *key)
{
	struct anvil_user **pp =
		&a->users[anvil_fnv((const unsigned char *)key, strlen(key)) %
			  ANVIL_BUCKETS];
	for (; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->name, key) == 0)
			break;
	return pp;
}

static void anvil_user_release(struct ma_anvil *a, struct anvil_user *u)
{
	struct anvil_user **pp = anvil_user_slot(a, u->name);
	if (u->count > 0)
		u->count--;
	if (u->count == 0 && *pp == u) {
		*pp = u->next;
		free(u);
	}
}

/* ---- entries ---- */

static struct anvil_entry **anvil_entry_slot(struct ma_anvil_client *c,
					     uint64_t conn_id)
{
	struct anvil_entry **pp = &c->buckets[
		anvil_fnv((const unsigned char *)&conn_id, sizeof(conn_id)) %
		ANVIL_CLIENT_BUCKETS];
	for (; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->conn_id == conn_id)
			break;
	return pp;
}

static void anvil_entry_free(struct ma_anvil_client *c, struct anvil_entry *e)
{
	struct ma_anvil *a = c->anvil;
	if (e->count_ip)
		anvil_ip_del(a, e->ip_key);
	if (e->user != NULL)
		anvil_user_release(a, e->user);
	a->n_conns--;
	c->n_entries--;
	free(e);
}

struct ma_anvil_client *ma_anvil_client_create(struct ma_anvil *anvil)
{
	struct ma_anvil_client *c = ma_malloc0(sizeof(*c));
	c->anvil = anvil;
	return c;
}

unsigned ma_anvil_client_destroy(struct ma_anvil_client **clientp,
				 unsigned *sessions_r)
{
	struct ma_anvil_client *c = *clientp;
	unsigned conns = 0, sessions = 0;

	if (c == NULL) {
		if (sessions_r != NULL)
			*sessions_r = 0;
		return 0;
	}
	for (unsigned i = 0; i < ANVIL_CLIENT_BUCKETS; i++) {
		while (c->buckets[i] != NULL) {
			struct anvil_entry *e = c->buckets[i];
			c->buckets[i] = e->next;
			conns++;
			if (e->user != NULL)
				sessions++;
			anvil_entry_free(c, e);
		}
	}
	free(c);
	*clientp = NULL;
	if (sessions_r != NULL)
		*sessions_r = sessions;
	return conns;
}

enum authd_limit ma_anvil_conn_add(struct ma_anvil_client *c, uint64_t conn_id,
				   const unsigned char ip_key[16],
				   unsigned flags, unsigned *count_r,
				   unsigned *max_r)
{
	struct ma_anvil *a = c->anvil;
	struct anvil_entry **pp = anvil_entry_slot(c, conn_id);
	bool force = (flags & AUTHD_CONN_FORCE) != 0;
	bool count_ip = (flags & AUTHD_CONN_COUNT_IP) != 0;
	/* Hard memory bound, even for re-registrations. */
	unsigned hard = a->max_conn > (UINT32_MAX - 1024) / 2 ? UINT32_MAX :
		a->max_conn * 2 + 1024;

	*count_r = 0;
	*max_r = 0;
	if (*pp != NULL)
		return AUTHD_LIMIT_NONE;
	if (a->n_conns >= hard || (!force && a->n_conns >= a->max_conn)) {
		*count_r = a->n_conns;
		*max_r = a->max_conn;
		return AUTHD_LIMIT_MAX_CONNECTIONS;
	}
	if (count_ip && !force) {
		unsigned n = anvil_ip_get(a, ip_key);
		if (n >= a->max_per_ip) {
			*count_r = n;
			*max_r = a->max_per_ip;
			return AUTHD_LIMIT_MAX_CONNECTIONS_PER_IP;
		}
	}
	struct anvil_entry *e = ma_malloc0(sizeof(*e));
	e->conn_id = conn_id;
	memcpy(e->ip_key, ip_key, 16);
	e->count_ip = count_ip;
	if (count_ip)
		anvil_ip_add(a, ip_key);
	*pp = e;
	a->n_conns++;
	c->n_entries++;
	return AUTHD_LIMIT_NONE;
}

void ma_anvil_conn_del(struct ma_anvil_client *c, uint64_t conn_id)
{
	struct anvil_entry **pp = anvil_entry_slot(c, conn_id), *e = *pp;
	if (e == NULL)
		return;
	*pp = e->next;
	anvil_entry_free(c, e);
}

enum authd_limit ma_anvil_session_add(struct ma_anvil_client *c,
				      uint64_t conn_id, const char *user,
				      bool force, unsigned *count_r,
				      unsigned *max_r)
{
	static const unsigned char no_ip[16];
	struct ma_anvil *a = c->anvil;
	char key[MA_AUTH_USER_MAX];
	struct anvil_entry *e;

	*count_r = 0;
	*max_r = 0;
	e = *anvil_entry_slot(c, conn_id);
	if (e == NULL) {
		/* A conn we never saw (its CONN_ADD failed open): count it
		 * now so the session has an owner. */
		if (ma_anvil_conn_add(c, conn_id, no_ip, AUTHD_CONN_FORCE,
				      count_r, max_r) != AUTHD_LIMIT_NONE)
			return AUTHD_LIMIT_MAX_CONNECTIONS;
		e = *anvil_entry_slot(c, conn_id);
	}
	anvil_user_key(user, key);
	if (e->user != NULL && strcmp(e->user->name, key) == 0)
		return AUTHD_LIMIT_NONE;	/* already counted */
	struct anvil_user **pp = anvil_user_slot(a, key);
	unsigned n = *pp == NULL ? 0 : (*pp)->count;
	if (!force && n >= a->max_per_user) {
		*count_r = n;
		*max_r = a->max_per_user;
		return AUTHD_LIMIT_MAX_SESSIONS_PER_USER;
	}
	if (*pp == NULL) {
		size_t len = strlen(key);
		*pp = ma_malloc0(sizeof(**pp) + len + 1);
		memcpy((*pp)->name, key, len + 1);
	}
	struct anvil_user *u = *pp;
	u->count++;
	if (e->user != NULL)
		anvil_user_release(a, e->user);
	e->user = u;
	return AUTHD_LIMIT_NONE;
}

unsigned ma_anvil_conn_count(const struct ma_anvil *anvil,
			     const unsigned char ip_key[16])
{
	if (ip_key == NULL)
		return anvil->n_conns;
	return anvil_ip_get((struct ma_anvil *)anvil, ip_key);
}

unsigned ma_anvil_session_count(const struct ma_anvil *anvil, const char *user)
{
	char key[MA_AUTH_USER_MAX];
	anvil_user_key(user, key);
	struct anvil_user **pp = anvil_user_slot((struct ma_anvil *)anvil, key);
	return *pp == NULL ? 0 : (*pp)->count;
}

/* ---- wire messages (shared by both ends) ---- */

size_t authd_msg_size(unsigned type)
{
	switch (type) {
	case AUTHD_HELLO: return sizeof(struct authd_hello);
	case AUTHD_VERIFY:
	case AUTHD_LOOKUP: return sizeof(struct authd_check_req);
	case AUTHD_CONN_ADD:
	case AUTHD_CONN_DEL:
	case AUTHD_SESSION_ADD: return sizeof(struct authd_conn_req);
	case AUTHD_REPLY: return sizeof(struct authd_reply);
	default: return 0;
	}
}

#define HAS_NUL(field) (memchr((field), '\0', sizeof(field)) != NULL)

const char *authd_msg_validate(const void *msg, size_t len, bool from_worker)
{
	struct authd_hdr hdr;

	if (len < sizeof(hdr))
		return "truncated header";
	memcpy(&hdr, msg, sizeof(hdr));
	if (hdr.version != AUTHD_PROTO_VERSION)
		return "protocol version mismatch";
	size_t want = authd_msg_size(hdr.type);
	if (want == 0)
		return "unknown message type";
	if ((hdr.type == AUTHD_REPLY) == from_worker)
		return "message type not allowed in this direction";
	if (len != want)
		return len < want ? "truncated message" : "oversized message";
	switch (hdr.type) {
	case AUTHD_VERIFY:
	case AUTHD_LOOKUP: {
		const struct authd_check_req *r = msg;
		if (!HAS_NUL(r->user) || !HAS_NUL(r->password) ||
		    !HAS_NUL(r->ip) || !HAS_NUL(r->sid) || !HAS_NUL(r->protocol))
			return "string without NUL";
		break;
	}
	case AUTHD_CONN_ADD:
	case AUTHD_CONN_DEL:
	case AUTHD_SESSION_ADD: {
		const struct authd_conn_req *r = msg;
		if (!HAS_NUL(r->ip) || !HAS_NUL(r->sid) || !HAS_NUL(r->user))
			return "string without NUL";
		if ((r->flags & ~(AUTHD_CONN_COUNT_IP | AUTHD_CONN_FORCE)) != 0)
			return "unknown flags";
		if (hdr.type == AUTHD_SESSION_ADD && r->user[0] == '\0')
			return "empty user";
		break;
	}
	case AUTHD_REPLY: {
		const struct authd_reply *r = msg;
		if (!HAS_NUL(r->user) || !HAS_NUL(r->source))
			return "string without NUL";
		if (r->status < MA_AUTH_OK || r->status > MA_AUTH_DELAYED)
			return "bad status";
		if (r->limit >= AUTHD_LIMIT_COUNT)
			return "bad limit";
		break;
	}
	default:
		break;
	}
	return NULL;
}

const char *authd_limit_name(unsigned limit)
{
	switch (limit) {
	case AUTHD_LIMIT_MAX_CONNECTIONS: return "max_connections";
	case AUTHD_LIMIT_MAX_CONNECTIONS_PER_IP: return "max_connections_per_ip";
	case AUTHD_LIMIT_MAX_SESSIONS_PER_USER: return "max_sessions_per_user";
	default: return "none";
	}
}
