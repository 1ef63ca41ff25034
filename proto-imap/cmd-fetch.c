/* cmd-fetch.c: to be written */
