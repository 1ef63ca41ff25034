/* cmd-search.c: to be written */
