/* imap-plugin.c: to be written */
