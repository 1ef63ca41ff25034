/*
 * example-auth.c - an auth source built OUTSIDE the tree, against only the
 * installed headers and pkg-config (tests/install/test_install.sh). It
 * accepts one fixed user; what it proves is that the installed ABI is
 * complete enough to write and load a plugin.
 */
#include <string.h>
#include <mailaccess/mailaccess.h>

static enum ma_auth_status
example_verify(void *ctx, const char *user, const char *password, char *user_r)
{
	(void)ctx;
	if (strcmp(user, "example@example.net") != 0)
		return MA_AUTH_UNKNOWN_USER;
	if (strcmp(password, "example") != 0)
		return MA_AUTH_FAIL;
	strcpy(user_r, user);
	return MA_AUTH_OK;
}

static enum ma_auth_status
example_lookup(void *ctx, const char *user, char *user_r)
{
	(void)ctx;
	if (strcmp(user, "example@example.net") != 0)
		return MA_AUTH_UNKNOWN_USER;
	strcpy(user_r, user);
	return MA_AUTH_OK;
}

static int example_init(struct ma_core *core, const struct ma_config_section *config,
			void **ctx_r, const char **error_r)
{
	(void)core; (void)config; (void)error_r;
	*ctx_r = NULL;
	ma_info("example auth plugin loaded (ABI %d.%d)", MA_ABI_MAJOR, MA_ABI_MINOR);
	return 0;
}

static const struct ma_auth_ops example_ops = {
	.struct_size = sizeof(struct ma_auth_ops),
	.verify = example_verify,
	.lookup = example_lookup,
};

MA_PLUGIN_EXPORT const struct ma_plugin mailaccess_plugin = {
	MA_PLUGIN_INIT(MA_PLUGIN_AUTH, "example", "1.0"),
	.init = example_init,
	.ops = &example_ops,
};
