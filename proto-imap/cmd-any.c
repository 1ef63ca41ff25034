/* cmd-any.c: to be written */
