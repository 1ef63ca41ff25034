/* threadpool.c: to be written */
