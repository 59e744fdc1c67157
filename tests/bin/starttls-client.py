#!/usr/bin/python3
"""An SMTP client for sslclient -y (client-side UCSPI-TLS, DESIGN.md
sections 5 and 6), the way an MTA's remote delivery does STARTTLS.

usage: starttls-client.py REPORT [COMMAND]

In clear on fd 6/7: reads the 220 greeting, sends EHLO, then STARTTLS; on
a 220 reply writes COMMAND (default Y) on $SSLCTLFD. With Y it reads the
SSL_* block up to its final "\\0\\0" (or EOF: the program then exits 3),
then checks that EOF follows (within 10 s); with y it reads the control
socket to EOF. Then, through $SSLREADFD/$SSLWRITEFD: EHLO again, XSSL,
QUIT. Everything seen goes to REPORT (JSON, written atomically, whatever
happens). SIGTERM is ignored so that the report is always written."""
import json
import os
import select
import signal
import sys

signal.signal(signal.SIGTERM, signal.SIG_IGN)
path = sys.argv[1]
command = sys.argv[2] if len(sys.argv) > 2 else "Y"
rep = {"env": {k: v for k, v in os.environ.items()}}


def save():
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(rep, f)
    os.replace(tmp, path)


class Conn:
    def __init__(self, r, w):
        self.r, self.w, self.buf = r, w, b""

    def line(self):
        while b"\n" not in self.buf:
            c = os.read(self.r, 4096)
            if not c:
                out, self.buf = self.buf, b""
                return out.decode("utf-8", "replace")
            self.buf += c
        out, _, self.buf = self.buf.partition(b"\n")
        return out.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        lines = []
        while True:
            got = self.line()
            if not got:
                return lines
            lines.append(got)
            if len(got) < 4 or got[3] != "-":
                return lines

    def send(self, s):
        data = (s + "\r\n").encode()
        while data:
            data = data[os.write(self.w, data):]


def finish(code):
    rep["exit"] = code
    save()
    sys.exit(code)


clear = Conn(6, 7)
rep["greeting"] = clear.reply()
clear.send("EHLO client.test")
rep["ehlo_clear"] = clear.reply()
clear.send("STARTTLS")
rep["starttls"] = clear.reply()
if not rep["starttls"] or not rep["starttls"][-1].startswith("220"):
    finish(4)
ctl = int(os.environ["SSLCTLFD"])
os.write(ctl, command.encode())
block = b""
while command == "y" or (not block.endswith(b"\0\0") and block != b"\0"):
    c = os.read(ctl, 4096)
    if not c:
        break
    block += c
rep["block_raw_len"] = len(block)
rep["block_complete"] = block.endswith(b"\0\0") or block == b"\0"
rep["block"] = dict(item.decode("utf-8", "replace").partition("=")[::2] for item in block.split(b"\0") if item)
if command == "Y":
    if not rep["block_complete"]:
        finish(3)
    rep["eof_after_block"] = bool(select.select([ctl], [], [], 10)[0]) and os.read(ctl, 1) == b""
os.close(ctl)
tls = Conn(int(os.environ["SSLREADFD"]), int(os.environ["SSLWRITEFD"]))
tls.send("EHLO client.test")
rep["ehlo_tls"] = tls.reply()
tls.send("XSSL")
rep["xssl"] = tls.reply()
tls.send("QUIT")
rep["quit"] = tls.reply()
finish(0)
