/*
 * ctl.h - mailaccessctl subcommands. Each returns a process exit status
 * (sysexits.h codes where an MTA reads them). argv[0] is the subcommand.
 */
#ifndef MA_CTL_H
#define MA_CTL_H

#include <sysexits.h>

/* config check */
int ctl_config_main(const char *config_path, int argc, char **argv);
/* user add|del|passwd|list */
int ctl_user_main(const char *config_path, int argc, char **argv);
/* deliver USER [MAILBOX] < message */
int ctl_deliver_main(const char *config_path, int argc, char **argv);

/* verify [--repair] USER... */
int ctl_verify_main(const char *config_path, int argc, char **argv);

#endif
