/* cmd-store.c: to be written */
