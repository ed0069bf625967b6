/* The CLI's subcommands. Each lives in its own cmd_*.c and returns an exit code. */
#ifndef AP_CLI_COMMANDS_H
#define AP_CLI_COMMANDS_H

int ap_cmd_predict(int argc, char **argv);
int ap_cmd_features(int argc, char **argv);
int ap_cmd_check_repo(int argc, char **argv);
int ap_cmd_serve(int argc, char **argv);
int ap_cmd_convert(int argc, char **argv);
int ap_cmd_worker(int argc, char **argv);
int ap_cmd_publish(int argc, char **argv);

#include <stdio.h>

#include "server/config.h"
/* cmd_serve.c: the settings of serve and worker from their sources. */
int ap_cli_server_config(int argc, char **argv, const char *cmd, const char *const *aliases,
                         void (*help)(FILE *), ap_server_config *cfg);

#endif
