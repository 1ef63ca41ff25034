/* core.c: to be written */
