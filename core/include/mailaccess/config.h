/*
 * config.h - the one config file.
 *
 * Syntax (docs/config.md has the full reference):
 *
 *     # comment
 *     key = value                  value runs to end of line; may be "quoted"
 *     section [label] {            sections nest
 *         key = value
 *     }
 *     include = /path/file.conf    (later)
 *
 * The tree is immutable once parsed. Every getter marks the key as used;
 * after all users have read their parts, ma_config_check_unused() reports
 * any key nobody read (a typo) with its file and line.
 * Error strings have the form "FILE:LINE: message".
 */
#ifndef MAILACCESS_CONFIG_H
#define MAILACCESS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ma_config;		/* a parsed file (owns all memory) */
struct ma_config_section;	/* a section; the root is unnamed */

/* Parses path. NULL with *error_r (malloc'd, caller frees) on failure. */
struct ma_config *ma_config_load(const char *path, char **error_r);
/* Parses a string (tests, fuzzing); `name` is used in error messages. */
struct ma_config *ma_config_parse(const char *name, const char *text, size_t len,
				  char **error_r);
void ma_config_free(struct ma_config **cfg);

const struct ma_config_section *ma_config_root(const struct ma_config *cfg);

const char *ma_config_section_name(const struct ma_config_section *s);
/* The optional label after the name ("listener pop3s {" -> "pop3s"), or NULL. */
const char *ma_config_section_label(const struct ma_config_section *s);
/* "FILE:LINE" of the section's opening line (static until config freed). */
const char *ma_config_section_where(const struct ma_config_section *s);

/* First child section with this name, or NULL. */
const struct ma_config_section *
ma_config_child(const struct ma_config_section *s, const char *name);
/* Iterate children with this name (name NULL = all): pass prev=NULL first. */
const struct ma_config_section *
ma_config_next_child(const struct ma_config_section *s, const char *name,
		     const struct ma_config_section *prev);

/* Value of key, or def if absent. Marks key used. */
const char *ma_config_get(const struct ma_config_section *s, const char *key,
			  const char *def);
/* "FILE:LINE" of key (or of the section if absent), for error messages. */
const char *ma_config_where(const struct ma_config_section *s, const char *key);

/* Typed getters: 0 ok (default used when absent), -1 on a bad value with
 * *error_r = "FILE:LINE: key: message" (malloc'd, caller frees). */
int ma_config_get_uint(const struct ma_config_section *s, const char *key,
		       uint64_t def, uint64_t max, uint64_t *out, char **error_r);
/* Sizes accept suffixes k, M, G (powers of 1024). */
int ma_config_get_size(const struct ma_config_section *s, const char *key,
		       uint64_t def, uint64_t *out, char **error_r);
/* Durations accept suffixes s, m, h, d; plain number = seconds. */
int ma_config_get_seconds(const struct ma_config_section *s, const char *key,
			  double def, double *out, char **error_r);
/* yes/no/true/false/on/off/1/0. */
int ma_config_get_bool(const struct ma_config_section *s, const char *key,
		       bool def, bool *out, char **error_r);
/* value must be one of choices (NULL-terminated); *index_out = its index. */
int ma_config_get_enum(const struct ma_config_section *s, const char *key,
		       const char *const *choices, unsigned def_index,
		       unsigned *index_out, char **error_r);

/* Marks a whole section (and everything below) used: for sections handed
 * to a plugin that does its own checking. */
void ma_config_mark_used(const struct ma_config_section *s);
/* -1 with *error_r listing the first unused key ("FILE:LINE: unknown
 * setting 'x' in section 'y'"), 0 if all were read. */
int ma_config_check_unused(const struct ma_config *cfg, char **error_r);

#endif
