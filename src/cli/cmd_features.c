/* PLACEHOLDER: alphapulse features (being written). */
#include <stdio.h>
#include "cli/commands.h"

int ap_cmd_features(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "alphapulse features: not built yet\n");
    return 1;
}
