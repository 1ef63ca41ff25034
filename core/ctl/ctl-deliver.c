/* ctl-deliver.c */
