/* auth.c: to be written (stub so everything links) */
#include "core-private.h"
int ma_auth_init(struct ma_core *core, char **error_r) { (void)core; (void)error_r; return 0; }
void ma_auth_deinit(struct ma_core *core) { (void)core; }
