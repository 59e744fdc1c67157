#!/usr/bin/python3
"""A daemon that knows nothing of TLS, for the STARTTLS front's tests:
speaks just enough SMTP, POP3 or IMAP (argv[1]) on fd 0/1 and appends every
line it receives, as Python repr, to the file argv[2] - what the tests read
to see that the engine kept STARTTLS (and anything refused) from it. It
offers AUTH (SMTP, IMAP AUTH=PLAIN) and USER/SASL (POP3), and writes its
EHLO reply in three pieces a little apart, so that the engine reads one
reply over several reads. It writes "started" to the file first."""
import os
import sys
import time

proto, record = sys.argv[1], sys.argv[2]
buf = b""


def out(data):
    os.write(1, data.encode())


def readline():
    global buf
    while b"\n" not in buf:
        chunk = os.read(0, 65536)
        if not chunk:
            sys.exit(0)
        buf += chunk
    line, _, buf = buf.partition(b"\n")
    with open(record, "a") as f:
        f.write(repr(line + b"\n") + "\n")
    return line.rstrip(b"\r").decode("utf-8", "replace")


def smtp():
    out("220 rec ESMTP\r\n")
    while True:
        words = readline().split()
        cmd = words[0].upper() if words else ""
        if cmd == "EHLO":
            for piece in ("250-rec\r\n250-AU", "TH PLAIN LOGIN\r\n250-PIPELINING\r\n25", "0 8BITMIME\r\n"):
                out(piece)
                time.sleep(0.05)
        elif cmd == "DATA":
            out("354 go ahead\r\n")
            while readline() != ".":
                pass
            out("250 2.0.0 queued\r\n")
        elif cmd in ("MAIL", "RCPT", "RSET", "HELO"):
            out("250 2.0.0 ok\r\n")
        elif cmd == "AUTH":
            out("235 2.7.0 authenticated\r\n")
        elif cmd == "NOOP":
            out("250 2.0.0 noop ok\r\n")
        elif cmd == "QUIT":
            out("221 2.0.0 bye\r\n")
            return
        else:
            out("502 5.5.2 unknown command %s\r\n" % cmd)


def pop3():
    out("+OK rec ready\r\n")
    while True:
        words = readline().split()
        cmd = words[0].upper() if words else ""
        if cmd == "CAPA":
            out("+OK capabilities\r\nUSER\r\nSASL PLAIN\r\nUIDL\r\n.\r\n")
        elif cmd in ("USER", "PASS", "NOOP", "AUTH"):
            out("+OK fine\r\n")
        elif cmd == "QUIT":
            out("+OK bye\r\n")
            return
        else:
            out("-ERR unknown command %s\r\n" % cmd)


def imap():
    out("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] rec ready\r\n")
    while True:
        words = readline().split()
        tag, cmd = (words + ["", ""])[:2]
        cmd = cmd.upper()
        if cmd == "CAPABILITY":
            out("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n%s OK done\r\n" % tag)
        elif cmd in ("LOGIN", "NOOP", "AUTHENTICATE"):
            out("%s OK fine\r\n" % tag)
        elif cmd == "LOGOUT":
            out("* BYE rec\r\n%s OK bye\r\n" % tag)
            return
        else:
            out("%s BAD unknown command %s\r\n" % (tag, cmd))


with open(record, "a") as f:
    f.write("started\n")
{"smtp": smtp, "pop3": pop3, "imap": imap}[proto]()
