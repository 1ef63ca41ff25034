/*
 * pop3-plugin.c - the pop3.so descriptor and its settings.
 *
 * Owns the root-level `pop3 { }` section (uidl_format, login_delay,
 * expire), checked once at startup with FILE:LINE errors, and the one
 * exported symbol. Sessions read the settings through pop3_settings_get():
 * they are fixed after init and the same for every connection in the
 * process, so a plain static is enough (no per-conn slot needed).
 */
#include "pop3-session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct pop3_settings pop3_set;
static bool pop3_set_ready;

static void pop3_settings_defaults(struct pop3_settings *set)
{
	const char *error;

	memset(set, 0, sizeof(*set));
	snprintf(set->uidl_spec, sizeof(set->uidl_spec), "dovecot");
	if (pop3_uidl_format_parse("dovecot", &set->uidl, &error) < 0)
		abort();	/* our own preset: cannot fail */
	set->expire_never = true;
}

const struct pop3_settings *pop3_settings_get(void)
{
	if (!pop3_set_ready) {
		/* a conn before init() can only be a test harness */
		pop3_settings_defaults(&pop3_set);
		pop3_set_ready = true;
	}
	return &pop3_set;
}

/* "FILE:LINE: pop3: key: message", malloc'd; leaked on purpose (the
 * loader logs it once and the program exits). */
static const char *pop3_config_error(const struct ma_config_section *config,
				     const char *key, const char *msg)
{
	char *str;

	if (asprintf(&str, "%s: pop3: %s: %s",
		     ma_config_where(config, key), key, msg) < 0)
		return "pop3: out of memory";
	return str;
}

static int pop3_settings_read(const struct ma_config_section *config,
			      struct pop3_settings *set, const char **error_r)
{
	const char *value, *error;
	char *cerror = NULL;
	double seconds;

	pop3_settings_defaults(set);
	if (config == NULL)
		return 0;

	value = ma_config_get(config, "uidl_format", "dovecot");
	if (strlen(value) >= sizeof(set->uidl_spec)) {
		*error_r = pop3_config_error(config, "uidl_format", "too long");
		return -1;
	}
	if (pop3_uidl_format_parse(value, &set->uidl, &error) < 0) {
		*error_r = pop3_config_error(config, "uidl_format", error);
		return -1;
	}
	snprintf(set->uidl_spec, sizeof(set->uidl_spec), "%s", value);

	if (ma_config_get_seconds(config, "login_delay", 0, &seconds,
				  &cerror) < 0) {
		*error_r = cerror;	/* malloc'd, leaked as documented */
		return -1;
	}
	/* RFC 2449 section 6.5: an integer number of seconds */
	if (seconds < 0 || seconds > 86400.0 * 365 ||
	    seconds != (double)(uint32_t)seconds) {
		*error_r = pop3_config_error(config, "login_delay",
			"must be a whole number of seconds up to a year");
		return -1;
	}
	set->login_delay = (uint32_t)seconds;

	/* RFC 2449 section 6.7: EXPIRE NEVER or a number of days */
	value = ma_config_get(config, "expire", "NEVER");
	if (strcasecmp(value, "never") == 0) {
		set->expire_never = true;
	} else if (pop3_parse_number(value, strlen(value), 36500,
				     &set->expire_days) == 0) {
		set->expire_never = false;
	} else {
		*error_r = pop3_config_error(config, "expire",
			"must be NEVER or a number of days (0-36500)");
		return -1;
	}
	return 0;
}

static int pop3_plugin_init(struct ma_core *core,
			    const struct ma_config_section *config,
			    void **ctx_r, const char **error_r)
{
	struct pop3_settings set;

	if (pop3_settings_read(config, &set, error_r) < 0)
		return -1;
	pop3_set = set;
	pop3_set_ready = true;
	*ctx_r = &pop3_set;
	return 0;
}

static void pop3_plugin_deinit(void *ctx)
{
}

MA_PLUGIN_EXPORT const struct ma_plugin mailaccess_plugin = {
	MA_PLUGIN_INIT(MA_PLUGIN_PROTOCOL, "pop3", "1.0"),
	.init = pop3_plugin_init,
	.deinit = pop3_plugin_deinit,
	.ops = &pop3_protocol_ops,
};
