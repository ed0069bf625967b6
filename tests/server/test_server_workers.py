#!/usr/bin/python3
"""The whole API test again with caller_runs off: every synchronous prediction
is handed to a batch worker and its connection suspended and resumed (the
suspend/complete handshake of ap__srv_start_inference), and must give the same
answers as the default path, where an idle batcher's batch runs on the HTTP
thread."""
import os
import runpy
import sys

os.environ["SERVER_TEST_ARGS"] = "--caller-runs false"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_server_api.py"),
               run_name="__main__")
