/* cmd-list.c: to be written */
