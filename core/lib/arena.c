/* arena.c: to be written */
