/* imap-utf7.c: to be written */
