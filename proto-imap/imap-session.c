/* imap-session.c: to be written */
