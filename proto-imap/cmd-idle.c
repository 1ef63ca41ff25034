/* cmd-idle.c: to be written */
