/* cmd-append.c: to be written */
