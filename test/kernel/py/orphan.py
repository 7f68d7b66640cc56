"""Starts a kernel and dies without shutting it down; prints the kernel's pid."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import start  # noqa: E402

km, kc = start()
print("kernel", km.provisioner.process.pid, flush=True)
os._exit(0)
