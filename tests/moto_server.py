"""A local S3-compatible server for the tests (moto's server mode), on 127.0.0.1:<port>.

Prints `ready` once it answers, then runs until the process that started it (the test
binary) is gone, so that no server outlives the tests.
"""
import os
import sys
import time

from moto.server import ThreadedMotoServer

port = int(sys.argv[1])
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
print("ready", flush=True)
parent = os.getppid()
while os.getppid() == parent:
    time.sleep(0.5)
server.stop()
