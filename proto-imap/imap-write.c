/* imap-write.c: to be written */
