/* util.c: to be written */
