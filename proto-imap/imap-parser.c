/* imap-parser.c: to be written */
