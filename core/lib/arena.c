/* arena.c: to be written (stub so everything links) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core-private.h"
void ma_oom(void) { fputs("out of memory\n", stderr); abort(); }
void *ma_malloc0(size_t size) { void *p = calloc(1, size ? size : 1); if (!p) ma_oom(); return p; }
void *ma_realloc(void *p, size_t size) { p = realloc(p, size ? size : 1); if (!p) ma_oom(); return p; }
char *ma_strdup(const char *s) { char *p = strdup(s); if (!p) ma_oom(); return p; }
