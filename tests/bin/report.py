#!/usr/bin/python3
"""The test application: reports what it was started with as one JSON line
(environment, identity, descriptors, parent), then echoes stdin lines back
prefixed with 'echo: ' until EOF or a line 'quit'."""
import json
import os
import sys

fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
fds = [f for f in fds if os.path.exists("/proc/self/fd/%d" % f)]
with open("/proc/self/status") as f:
    status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
report = {
    "env": dict(os.environ),
    "uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
    "pid": os.getpid(), "ppid": os.getppid(), "fds": fds,
    "sigblk": status.get("SigBlk"), "sigign": status.get("SigIgn"),
}
out = sys.stdout
out.write(json.dumps(report) + "\n")
out.flush()
mode = sys.argv[1] if len(sys.argv) > 1 else "echo"
if mode == "echo":
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        out.write("echo: " + line)
        out.flush()
elif mode == "exit":
    sys.exit(int(sys.argv[2]))
