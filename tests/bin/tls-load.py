#!/usr/bin/python3
"""Load generator for the tests: tls-load.py PORT COUNT [LINE]

Makes COUNT TLS connections to 127.0.0.1:PORT one after the other (no
certificate verification: the point is the server's hygiene, not the
PKI). Each one: TCP connect, handshake, optionally send LINE plus a
newline, then read until the server's close_notify. A connection counts as
ok only if the handshake succeeded and the session ended with a
close_notify (a bare TCP EOF or a reset is an error). Prints one JSON line:
{"ok": N, "errors": {"reason": count, ...}, "seconds": S}."""
import json
import socket
import ssl
import sys
import time

port, count = int(sys.argv[1]), int(sys.argv[2])
line = sys.argv[3].encode() + b"\n" if len(sys.argv) > 3 else None
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ok = 0
errors = {}
t0 = time.monotonic()
for i in range(count):
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=20)
        with ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False) as s:
            if line:
                s.sendall(line)
            while s.recv(65536):
                pass
        ok += 1
    except (OSError, ssl.SSLError) as e:
        key = "%s: %s" % (type(e).__name__, e)
        errors[key] = errors.get(key, 0) + 1
print(json.dumps({"ok": ok, "errors": errors, "seconds": round(time.monotonic() - t0, 2)}), flush=True)
