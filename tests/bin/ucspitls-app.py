#!/usr/bin/python3
"""A UCSPI-TLS test program (the server side of DESIGN.md section 5).

usage: ucspitls-app.py REPORT COMMAND READER [CODE]

  REPORT   file the program writes its observations to, as JSON (replaced
           atomically each time: first at start, then after the switch)
  COMMAND  the byte written on $SSLCTLFD on STARTTLS: Y, y, or x (an
           invalid byte); or none: never ask for TLS, exit with CODE (the
           first line the client sends is answered "221 bye" and ends it)
  READER   nul: read the control socket until the block's final "\\0\\0"
           (s-qmail style), then see whether EOF follows; eof: read it to
           EOF (Gifford's ucspitls style)

Line protocol, in clear on fd 0/1: a greeting "220 ucspitls-app ready";
"STARTTLS" is answered "220 go" and switches; "QUIT" is answered
"221 bye" and ends with 0; any other line is answered "250 clear: LINE".
After the switch $SSLREADFD/$SSLWRITEFD are on 0/1, any buffered clear
bytes are thrown away, and every line comes back as "tls: LINE" until
"QUIT" or EOF.

SIGTERM is held off while the control socket is read and the report
written, so that a failed handshake (the engine closes the socket and then
terminates the program) still leaves its report behind."""
import json
import os
import select
import signal
import socket
import stat
import sys

report_path, command, reader = sys.argv[1], sys.argv[2], sys.argv[3]
code = int(sys.argv[4]) if len(sys.argv) > 4 else 0
report = {"pid": os.getpid()}


def save():
    tmp = report_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f)
    os.replace(tmp, report_path)


def describe_fd(fd):
    """What fd is: its kind, and for a socket its addresses."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    d = {"link": os.readlink("/proc/self/fd/%d" % fd)}
    if stat.S_ISSOCK(st.st_mode):
        d["kind"] = "socket"
        try:
            s = socket.socket(fileno=os.dup(fd))
            try:
                d["family"] = s.family.name
                if s.family in (socket.AF_INET, socket.AF_INET6):
                    d["sockname"] = list(s.getsockname()[:2])
                    d["peername"] = list(s.getpeername()[:2])
            finally:
                s.close()
        except OSError as e:
            d["error"] = str(e)
    elif stat.S_ISFIFO(st.st_mode):
        d["kind"] = "pipe"
    else:
        d["kind"] = "other"
    fl = __import__("fcntl").fcntl(fd, __import__("fcntl").F_GETFL)
    d["access"] = {os.O_RDONLY: "r", os.O_WRONLY: "w", os.O_RDWR: "rw"}[fl & 3]
    return d


fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
fds = [f for f in fds if os.path.exists("/proc/self/fd/%d" % f)]
report["start"] = {
    "fds": fds,
    "env": {k: v for k, v in os.environ.items() if k.startswith("SSL") or k in ("PROTO", "UCSPITLS")},
    "envnames": sorted(os.environ),
    "desc": {str(f): describe_fd(f) for f in fds},
}
save()

buf = b""


def out(line):
    os.write(1, (line + "\r\n").encode())


def readline():
    global buf
    while b"\n" not in buf:
        chunk = os.read(0, 4096)
        if not chunk:
            return None
        buf += chunk
    line, _, buf = buf.partition(b"\n")
    return line.rstrip(b"\r").decode("utf-8", "replace")


def read_control(ctl):
    """Reads the control socket per READER; returns what was seen."""
    data = b""
    eof = False
    while True:
        if reader == "nul" and (data == b"\0" or data.endswith(b"\0\0")):
            break
        chunk = os.read(ctl, 4096)
        if not chunk:
            eof = True
            break
        data += chunk
    seen = {"bytes": data.decode("latin-1"), "eof": eof}
    complete = data == b"\0" or data.endswith(b"\0\0")
    seen["result"] = "block" if complete else "EOF without block"
    if reader == "nul" and not eof:
        # The engine shuts the socket down after the block: EOF must follow.
        r, _, _ = select.select([ctl], [], [], 5)
        seen["then"] = ("eof" if not os.read(ctl, 4096) else "more data") if r else "no eof within 5s"
    if complete:
        seen["vars"] = dict(item.decode("latin-1").partition("=")[::2] for item in data.split(b"\0") if item)
    return seen


out("220 ucspitls-app ready")
while True:
    line = readline()
    if line is None:
        sys.exit(0)
    if command == "none":
        out("221 bye")
        sys.exit(code)
    if line.upper() == "QUIT":
        out("221 bye")
        sys.exit(0)
    if line.upper() != "STARTTLS":
        out("250 clear: " + line)
        continue
    out("220 go")
    ctl = int(os.environ["SSLCTLFD"])
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    report["command"] = command
    report["buffered"] = buf.decode("latin-1")
    try:
        os.write(ctl, command.encode())
        report["control"] = read_control(ctl)
    except OSError as e:
        report["control"] = {"result": "error", "error": str(e)}
    save()
    if command == "Y" and report["control"]["result"] != "block":
        os._exit(111)        # the handshake failed: the connection is unusable
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    os.close(ctl)
    os.dup2(int(os.environ["SSLREADFD"]), 0)
    os.dup2(int(os.environ["SSLWRITEFD"]), 1)
    buf = b""                # clear bytes are never carried into TLS
    break

while True:
    line = readline()
    if line is None:
        sys.exit(0)
    out("tls: " + line)
    if line.upper() == "QUIT":
        sys.exit(0)
