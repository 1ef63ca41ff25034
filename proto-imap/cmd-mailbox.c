/* cmd-mailbox.c: to be written */
