/* The CLI's subcommands. Each lives in its own cmd_*.c and returns an exit code. */
#ifndef AP_CLI_COMMANDS_H
#define AP_CLI_COMMANDS_H

int ap_cmd_predict(int argc, char **argv);
int ap_cmd_features(int argc, char **argv);
int ap_cmd_check_repo(int argc, char **argv);
int ap_cmd_serve(int argc, char **argv);
int ap_cmd_convert(int argc, char **argv);

#endif
