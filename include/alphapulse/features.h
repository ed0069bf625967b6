/* alphapulse: streaming bars and the alphapulse-v1 features (being written). */
#ifndef ALPHAPULSE_FEATURES_H
#define ALPHAPULSE_FEATURES_H
#include "alphapulse/common.h"
#endif
