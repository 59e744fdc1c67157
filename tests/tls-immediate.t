#!/usr/bin/python3
# Immediate TLS (SMTPS-style): handshake and echo with real peers, TLS 1.2
# and 1.3, ECDSA and RSA; old protocols refused; a failed handshake never
# starts the program.
import os
import socket
import ssl
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike, diag  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
ec = pki.leaf("server-ec", ca)
rsa = pki.leaf("server-rsa", ca, kind="rsa")

for leaf, kind in ((ec, "ECDSA"), (rsa, "RSA")):
    srv = suite.Server(["-v"], env={"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"]})
    ok(srv.port, "%s: server started and printed its port" % kind)
    for version in ("1.2", "1.3"):
        ctx = suite.client_context(ca["crt"], version)
        with suite.tls_connect(srv.port, ctx) as s:
            rep = suite.report_of(s)
            ok(rep is not None, "%s TLSv%s: program started and reported" % (kind, version))
            is_(s.version(), "TLSv" + version, "%s TLSv%s: negotiated version" % (kind, version))
            s.sendall(b"hello over tls\n")
            is_(suite.read_line(s), "echo: hello over tls\n", "%s TLSv%s: bytes go both ways" % (kind, version))
            s.sendall(b"quit\n")
            rest = suite.read_all(s)
            is_(rest, b"", "%s TLSv%s: program's exit closes the session cleanly" % (kind, version))
            is_(rep["env"].get("SSL_PROTOCOL") if rep else None, "TLSv" + version, "%s TLSv%s: SSL_PROTOCOL" % (kind, version))
    ok(srv.wait_log(r"^sslserver: tls \d+ accept TLSv1\.3:TLS_"), "%s: tls accept line logged with protocol and cipher" % kind)
    ok(srv.wait_log(r"^sslserver: end \d+ status 0$"), "%s: end line with status 0" % kind)
    srv.stop()

# openssl s_client and gnutls-cli as peers; the program prints and exits.
srv = suite.Server(env={"CERTFILE": ec["pem"], "KEYFILE": ec["key"]}, app=["sh", "-c", "echo greeting from $SSL_PROTOCOL; head -n 1"])
rc, out, err = suite.s_client(srv.port, ["-CAfile", ca["crt"], "-servername", "localhost", "-verify_return_error", "-quiet"], input=b"line from s_client\n")
like(out, r"^greeting from TLSv1\.3$", "openssl s_client: program output arrives")
like(out, r"^line from s_client$", "openssl s_client: client bytes reach the program and come back")
rc, out, err = suite.s_client(srv.port, ["-CAfile", ca["crt"], "-tls1_2", "-quiet"], input=b"x\n")
like(out, r"^greeting from TLSv1\.2$", "openssl s_client -tls1_2: TLS 1.2 works")
rc, out, err = suite.gnutls_cli(srv.port, ["--x509cafile", ca["crt"], "--sni-hostname", "localhost", "--verify-hostname", "localhost"], input=b"line from gnutls\n")
like(out, r"greeting from TLSv1\.3", "gnutls-cli: handshake verified and program output arrives")
like(out, r"line from gnutls", "gnutls-cli: client bytes reach the program")
rc, out, err = suite.gnutls_cli(srv.port, ["--x509cafile", ca["crt"], "--verify-hostname", "localhost", "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.2"], input=b"x\n")
like(out, r"greeting from TLSv1\.2", "gnutls-cli TLS 1.2 only: works")

# Old protocols are refused at the defaults, and the program never runs.
marker = os.path.join(pki.dir, "started")
srv2 = suite.Server(["-v"], env={"CERTFILE": ec["pem"], "KEYFILE": ec["key"]}, app=["sh", "-c", "touch %s; echo started" % marker])
for flag, name in (("-tls1", "TLS 1.0"), ("-tls1_1", "TLS 1.1")):
    rc, out, err = suite.s_client(srv2.port, [flag, "-cipher", "ALL:@SECLEVEL=0"], input=b"")
    ok(rc != 0, "%s: handshake refused" % name)
    unlike(out, r"started", "%s: program output never sent" % name)
rc, out, err = suite.gnutls_cli(srv2.port, ["--insecure", "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.1:+VERS-TLS1.0"], input=b"")
ok(rc != 0, "gnutls-cli TLS 1.0/1.1 only: refused")
# A peer that speaks no TLS at all.
with socket.create_connection(("127.0.0.1", srv2.port), timeout=suite.patience(10)) as raw:
    raw.sendall(b"EHLO plaintext.example\r\n")
    data = suite.read_all(raw)
    ok(b"started" not in data, "plaintext client: program output never sent")
ok(srv2.wait_log(r"unable to accept TLS from: 127\.0\.0\.1 for pid: \d+: "), "failed handshake logged with the client address")
ok(suite.wait_until(lambda: srv2.log().count("sslserver: end ") >= 4), "every failed connection ended")
like(srv2.log(), r"end \d+ status 28416", "failed handshake: connection exits 111 (raw wait status 28416)")
ok(not os.path.exists(marker), "a failed handshake never starts the program")

# A client that connects and says nothing is cut by -T.
srv3 = suite.Server(["-v", "-T", "1"], env={"CERTFILE": ec["pem"], "KEYFILE": ec["key"]}, app=["sh", "-c", "touch %s.T; echo started" % marker])
with socket.create_connection(("127.0.0.1", srv3.port), timeout=suite.patience(10)) as raw:
    raw.settimeout(suite.patience(10))
    try:
        data = raw.recv(100)
    except OSError:
        data = b"error"
    is_(data, b"", "silent client: connection closed by the handshake timeout")
ok(srv3.wait_log(r"unable to accept TLS .*timed out"), "handshake timeout logged")
ok(not os.path.exists(marker + ".T"), "timed-out handshake never starts the program")

# Cipher order: the client's by default, the server's with CIPHERORDER=server.
order = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256"
for setting, expected in ((None, "ECDHE-ECDSA-AES128-GCM-SHA256"), ("server", "ECDHE-ECDSA-AES256-GCM-SHA384")):
    env = {"CERTFILE": ec["pem"], "KEYFILE": ec["key"], "CIPHERS": order}
    if setting:
        env["CIPHERORDER"] = setting
    s4 = suite.Server(env=env)
    ctx = suite.client_context(ca["crt"], "1.2")
    ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384")
    with suite.tls_connect(s4.port, ctx) as s:
        is_(s.cipher()[0], expected, "CIPHERORDER=%s: the %s's preference wins" % (setting or "(unset)", "server" if setting else "client"))
    s4.stop()
rc, err = suite.start_failure(env={"CERTFILE": ec["pem"], "KEYFILE": ec["key"], "CIPHERORDER": "mine"})
is_(rc, 111, "CIPHERORDER=mine: start-up error")
like(err, r"^sslserver: fatal: \(111\) invalid CIPHERORDER: mine", "CIPHERORDER=mine: one line naming the value")
