/* cmd-auth.c: to be written */
