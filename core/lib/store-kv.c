/* store-kv.c: to be written (stub so everything links) */
#include "core-private.h"
const struct ma_store_ops *ma_store_kv_mail_ops(void) { return NULL; }
void *ma_store_kv_ctx_create(const struct ma_kv_ops *kv, void *kv_ctx) { (void)kv; (void)kv_ctx; return NULL; }
void ma_store_kv_ctx_destroy(void *ctx) { (void)ctx; }
