/*
 * fuzz-config.c - libFuzzer target for the config parser (core/lib/
 * config.c): the input is parsed as a whole file with ma_config_parse(),
 * then every section is walked and every key the core and the plugins
 * read (docs/config.md) is fetched through each typed getter (uint, size,
 * seconds, bool, enum), and ma_config_check_unused() names what is left.
 *
 * Checks beyond the sanitizers: a parse either gives a tree or an error
 * string (never both, never neither), getters leave an error only when
 * they fail, and parsing the same bytes twice gives the same verdict.
 */
#include <stdlib.h>
#include <string.h>

#include <mailaccess/mailaccess.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_keys[] = {
	"address", "port", "protocol", "tls", "cert", "key", "priority",
	"backend", "path", "file", "scheme", "map_size", "log", "log_level",
	"max_connections", "max_connections_per_ip", "max_line",
	"max_message_size", "output_buffer", "idle_timeout", "login_delay",
	"auth_fail_delay", "auth_fail_lockout", "auth_fail_max_delay",
	"auth_fail_window", "expire", "uidl_format", "recipient_delimiter",
	"user", "group", "workers", "state_dir", "plugin_dir", "autocreate",
};

static void fuzz_section(const struct ma_config_section *s, unsigned depth)
{
	static const char *const choices[] = { "lmdb", "maildir", "yes", NULL };
	const struct ma_config_section *c = NULL;

	if (depth > 64)
		abort();	/* deeper than the parser allows */
	(void)ma_config_section_name(s);
	(void)ma_config_section_label(s);
	(void)ma_config_section_where(s);
	for (size_t i = 0; i < sizeof(fuzz_keys) / sizeof(fuzz_keys[0]); i++) {
		const char *k = fuzz_keys[i];
		char *err = NULL;
		uint64_t u;
		double d;
		bool b;
		unsigned idx;

		(void)ma_config_get(s, k, NULL);
		(void)ma_config_where(s, k);
#define FUZZ_GETTER(call) do { \
		err = NULL; \
		if ((call) < 0) { \
			if (err == NULL) \
				abort();	/* failure without a message */ \
			free(err); \
		} else if (err != NULL) \
			abort();	/* a message without failure */ \
	} while (0)
		FUZZ_GETTER(ma_config_get_uint(s, k, 1, 1000000, &u, &err));
		FUZZ_GETTER(ma_config_get_size(s, k, 1, &u, &err));
		FUZZ_GETTER(ma_config_get_seconds(s, k, 1.0, &d, &err));
		FUZZ_GETTER(ma_config_get_bool(s, k, false, &b, &err));
		FUZZ_GETTER(ma_config_get_enum(s, k, choices, 0, &idx, &err));
#undef FUZZ_GETTER
	}
	while ((c = ma_config_next_child(s, NULL, c)) != NULL)
		fuzz_section(c, depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ma_config *cfg, *again;
	char *err = NULL, *err2 = NULL;

	cfg = ma_config_parse("fuzz.conf", (const char *)data, size, &err);
	if ((cfg == NULL) == (err == NULL))
		abort();	/* exactly one of tree and error */
	again = ma_config_parse("fuzz.conf", (const char *)data, size, &err2);
	if ((cfg == NULL) != (again == NULL))
		abort();	/* not deterministic */
	ma_config_free(&again);
	free(err2);
	if (cfg == NULL) {
		free(err);
		return 0;
	}
	/* some sections are handed to plugins whole */
	if ((size & 1) != 0)
		ma_config_mark_used(ma_config_child(ma_config_root(cfg), "imap"));
	fuzz_section(ma_config_root(cfg), 0);
	if (ma_config_check_unused(cfg, &err) < 0) {
		if (err == NULL)
			abort();
		free(err);
	}
	ma_config_free(&cfg);
	if (cfg != NULL)
		abort();
	return 0;
}
