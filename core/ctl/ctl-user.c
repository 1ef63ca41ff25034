/* ctl-user.c */
