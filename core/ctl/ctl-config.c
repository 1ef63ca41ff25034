/* ctl-config.c */
