/* cmd-select.c: to be written */
