/* cmd-copy.c: to be written */
