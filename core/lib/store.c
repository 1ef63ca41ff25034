/* store.c: to be written (stub so everything links) */
#include "core-private.h"
struct ma_store *ma_store_create(struct ma_core *core, struct ma_loaded_plugin *backend, char **error_r)
{ (void)core; (void)backend; *error_r = ma_strdup("store not implemented"); return NULL; }
void ma_store_destroy(struct ma_store **store) { *store = NULL; }
void ma_changebus_init(struct ma_core *core) { (void)core; }
void ma_changebus_deinit(struct ma_core *core) { (void)core; }
