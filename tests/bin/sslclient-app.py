#!/usr/bin/python3
"""A program for sslclient to run (the server's stream on fd 6, to the
server on fd 7).

usage: sslclient-app.py report FILE [LINE [CODE]]
         creates FILE.started at once; then writes FILE (JSON,
         atomically) with the environment, the open
         descriptors and, with LINE, the server's first line after LINE
         was sent; then exits with CODE (default 0)
       sslclient-app.py pump INFILE OUTFILE
         sends INFILE on fd 7 and closes it, while reading fd 6 to EOF into
         OUTFILE
       sslclient-app.py exit CODE
         exits with CODE at once"""
import json
import os
import sys
import threading


def readline(fd, limit=65536):
    buf = b""
    while not buf.endswith(b"\n") and len(buf) < limit:
        c = os.read(fd, 1)
        if not c:
            break
        buf += c
    return buf.decode("utf-8", "replace")


def writeall(fd, data):
    while data:
        n = os.write(fd, data)
        data = data[n:]


def fds():
    out = []
    for f in sorted(int(x) for x in os.listdir("/proc/self/fd")):
        try:
            out.append([f, os.readlink("/proc/self/fd/%d" % f)])
        except OSError:
            pass
    return out


mode = sys.argv[1]
if mode == "report":
    path = sys.argv[2]
    open(path + ".started", "w").close()
    rep = {"env": dict(os.environ), "fds": fds()}
    if len(sys.argv) > 3:
        writeall(7, sys.argv[3].encode() + b"\n")
        rep["got"] = readline(6)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rep, f)
    os.replace(tmp, path)
    sys.exit(int(sys.argv[4]) if len(sys.argv) > 4 else 0)
elif mode == "pump":
    src, dst = sys.argv[2], sys.argv[3]

    def send():
        with open(src, "rb") as f:
            while True:
                chunk = f.read(65536)
                if not chunk:
                    break
                writeall(7, chunk)
        os.close(7)

    t = threading.Thread(target=send)
    t.start()
    with open(dst, "wb") as out:
        while True:
            chunk = os.read(6, 65536)
            if not chunk:
                break
            out.write(chunk)
    t.join()
elif mode == "exit":
    sys.exit(int(sys.argv[2]))
else:
    sys.exit(100)
