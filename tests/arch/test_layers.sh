#!/bin/bash
# The layering rules (tools/check_layers.py): no call or include circles
# between the files of src/, no file over 700 lines. Reads the plain build's
# objects (make lib).
set -eu
cd "$(dirname "$0")/../.."
exec "${PYTHON:-/usr/bin/python3}" tools/check_layers.py build
