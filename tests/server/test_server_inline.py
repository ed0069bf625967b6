#!/usr/bin/python3
"""The whole API test again with inline_inference on: synchronous predictions
evaluated on the HTTP thread instead of the batcher must give the same answers
(async ones still go through the batcher)."""
import os
import runpy
import sys

os.environ["SERVER_TEST_ARGS"] = "--inline-inference true"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_server_api.py"),
               run_name="__main__")
