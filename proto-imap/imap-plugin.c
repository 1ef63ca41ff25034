/*
 * imap-plugin.c - the imap.so descriptor and its settings.
 *
 * Owns the root-level `imap { }` section (idle_timeout, autocreate,
 * autocreate_subscribe; docs/imap.md) and reads limits.max_message_size
 * (the APPEND literal limit, shared with every other path that stores
 * mail). Settings are checked once at startup with FILE:LINE errors and
 * are the plugin's ctx: sessions find them with ma_core_find_plugin().
 */
#include "imap-private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct imap_settings imap_set;

static const struct {
	const char *name;
	uint32_t attr;
} imap_special_uses[] = {
	{ "drafts", MA_MBOX_SU_DRAFTS },
	{ "sent", MA_MBOX_SU_SENT },
	{ "trash", MA_MBOX_SU_TRASH },
	{ "junk", MA_MBOX_SU_JUNK },
	{ "archive", MA_MBOX_SU_ARCHIVE },
	{ "all", MA_MBOX_SU_ALL },
	{ "flagged", MA_MBOX_SU_FLAGGED },
	{ "none", 0 },
};

/* "FILE:LINE: imap: key: message", malloc'd; leaked on purpose (the
 * loader logs it once and the program exits). */
static const char *imap_config_error(const struct ma_config_section *config,
				     const char *key, const char *msg,
				     const char *what)
{
	char *str;

	if (asprintf(&str, "%s: imap: %s: %s%s%s%s", ma_config_where(config, key),
		     key, msg, what != NULL ? " '" : "",
		     what != NULL ? what : "", what != NULL ? "'" : "") < 0)
		return "imap: out of memory";
	return str;
}

static void imap_settings_free(struct imap_settings *set)
{
	for (unsigned i = 0; i < set->n_autocreate; i++)
		free((char *)set->autocreate[i].name);
	set->n_autocreate = 0;
}

/* autocreate = "Name:use Name:use ...": space-separated, each a mailbox
 * name (UTF-8, '/' as separator, no spaces) optionally followed by ':'
 * and a special-use (RFC 6154) of drafts, sent, trash, junk, archive,
 * all, flagged or none. The empty string disables it. */
static int imap_autocreate_parse(const struct ma_config_section *config,
				 const char *value, struct imap_settings *set,
				 const char **error_r)
{
	const char *p = value;

	while (*p != '\0') {
		char word[256], *colon;
		size_t n;
		uint32_t attr = 0;
		struct ma_error_info err;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		n = strcspn(p, " \t");
		if (n >= sizeof(word)) {
			*error_r = imap_config_error(config, "autocreate",
						     "name too long", NULL);
			return -1;
		}
		memcpy(word, p, n);
		word[n] = '\0';
		p += n;
		colon = strrchr(word, ':');
		if (colon != NULL) {
			unsigned i;

			*colon = '\0';
			for (i = 0; i < sizeof(imap_special_uses) /
				    sizeof(imap_special_uses[0]); i++) {
				if (strcasecmp(colon + 1, imap_special_uses[i].name) == 0)
					break;
			}
			if (i == sizeof(imap_special_uses) / sizeof(imap_special_uses[0])) {
				*error_r = imap_config_error(config, "autocreate",
					"unknown special-use (drafts sent trash junk "
					"archive all flagged none)", colon + 1);
				return -1;
			}
			attr = imap_special_uses[i].attr;
		}
		if (ma_store_check_mailbox_name(word, &err) < 0 ||
		    strcasecmp(word, "INBOX") == 0) {
			*error_r = imap_config_error(config, "autocreate",
						     "invalid mailbox name", word);
			return -1;
		}
		if (set->n_autocreate >= sizeof(set->autocreate) /
					 sizeof(set->autocreate[0])) {
			*error_r = imap_config_error(config, "autocreate",
						     "at most 8 mailboxes", NULL);
			return -1;
		}
		set->autocreate[set->n_autocreate].name = ma_strdup(word);
		set->autocreate[set->n_autocreate].attr = attr;
		set->n_autocreate++;
	}
	return 0;
}

static int imap_settings_read(struct ma_core *core,
			      const struct ma_config_section *config,
			      struct imap_settings *set, const char **error_r)
{
	const struct ma_config_section *limits = NULL;
	char *cerror = NULL;

	memset(set, 0, sizeof(*set));
	set->max_message_size = 64ull << 20;
	set->idle_timeout = 30 * 60;
	set->max_line = IMAP_LINE_MAX;
	set->max_literal = IMAP_LITERAL_MAX;
	set->autocreate_subscribe = true;

	if (core != NULL && ma_core_config(core) != NULL)
		limits = ma_config_child(ma_config_root(ma_core_config(core)),
					 "limits");
	if (limits != NULL &&
	    ma_config_get_size(limits, "max_message_size", 64ull << 20,
			       &set->max_message_size, &cerror) < 0) {
		*error_r = cerror;	/* malloc'd, leaked as documented */
		return -1;
	}
	if (config == NULL) {
		/* the defaults of docs/imap.md */
		return imap_autocreate_parse(NULL,
			"Drafts:drafts Sent:sent Trash:trash Junk:junk Archive:archive", set,
			error_r);
	}
	/* RFC 3501 5.4: at least 30 minutes */
	if (ma_config_get_seconds(config, "idle_timeout", 30 * 60,
				  &set->idle_timeout, &cerror) < 0) {
		*error_r = cerror;
		return -1;
	}
	if (set->idle_timeout < 1 || set->idle_timeout > 7 * 86400) {
		*error_r = imap_config_error(config, "idle_timeout",
					     "must be between 1s and 7d", NULL);
		return -1;
	}
	if (ma_config_get_size(config, "max_line", IMAP_LINE_MAX,
			       &set->max_line, &cerror) < 0 ||
	    ma_config_get_size(config, "max_literal", IMAP_LITERAL_MAX,
			       &set->max_literal, &cerror) < 0) {
		*error_r = cerror;
		return -1;
	}
	if (set->max_line < 1024 || set->max_line > (1u << 20)) {
		*error_r = imap_config_error(config, "max_line",
					     "must be between 1k and 1M", NULL);
		return -1;
	}
	if (set->max_literal < 1024 || set->max_literal > (16u << 20)) {
		*error_r = imap_config_error(config, "max_literal",
					     "must be between 1k and 16M", NULL);
		return -1;
	}
	if (ma_config_get_bool(config, "autocreate_subscribe", true,
			       &set->autocreate_subscribe, &cerror) < 0) {
		*error_r = cerror;
		return -1;
	}
	if (imap_autocreate_parse(config, ma_config_get(config, "autocreate",
			"Drafts:drafts Sent:sent Trash:trash Junk:junk Archive:archive"),
			set, error_r) < 0) {
		imap_settings_free(set);
		return -1;
	}
	return 0;
}

static int imap_plugin_init(struct ma_core *core,
			    const struct ma_config_section *config,
			    void **ctx_r, const char **error_r)
{
	struct imap_settings set;

	if (imap_settings_read(core, config, &set, error_r) < 0)
		return -1;
	imap_settings_free(&imap_set);
	imap_set = set;
	*ctx_r = &imap_set;
	return 0;
}

static void imap_plugin_deinit(void *ctx)
{
	(void)ctx;
	imap_settings_free(&imap_set);
}

MA_PLUGIN_EXPORT const struct ma_plugin mailaccess_plugin = {
	MA_PLUGIN_INIT(MA_PLUGIN_PROTOCOL, "imap", "1.0"),
	.init = imap_plugin_init,
	.deinit = imap_plugin_deinit,
	.ops = &imap_protocol_ops,
};
