/* buf.c: to be written */
