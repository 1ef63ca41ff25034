/* imap-seqset.c: to be written */
