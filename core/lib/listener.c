/* listener.c: to be written (stub so everything links) */
#include "core-private.h"
int ma_net_init(struct ma_core *core, char **error_r) { (void)core; *error_r = ma_strdup("net not implemented"); return -1; }
int ma_net_start(struct ma_core *core, char **error_r) { (void)core; (void)error_r; return -1; }
void ma_net_shutdown(struct ma_core *core) { (void)core; }
unsigned ma_net_conn_count(const struct ma_core *core) { (void)core; return 0; }
void ma_net_deinit(struct ma_core *core) { (void)core; }
int ma_net_reload_tls(struct ma_core *core, char **error_r) { (void)core; (void)error_r; return 0; }
