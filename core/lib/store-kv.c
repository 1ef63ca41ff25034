/* store-kv.c: to be written */
