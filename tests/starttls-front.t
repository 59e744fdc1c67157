#!/usr/bin/python3
# The STARTTLS front (DESIGN.md section 11): STARTTLS=smtp|pop3|imap makes
# the engine speak the STARTTLS step for a daemon that knows nothing of TLS.
# Real unmodified daemons (postfix's sendmail -bs, mailutils' pop3d and
# imap4d in inetd mode) behind sslserver and sslhandoff, real clients
# (openssl s_client -starttls, swaks, smtplib/poplib/imaplib, curl
# --ssl-reqd); tests/bin/line-daemon.py records every line a daemon
# receives: STARTTLS and what TLSREQUIRED refuses never reach it, nothing
# pipelined after STARTTLS does either. Also: the capability added before
# TLS and gone after it, the exact replies, a reply split over reads, a
# 1 MB line, the plaintext timeout, cleartext sessions, the front chosen
# per client by a tcprules cdb, unknown values.
import imaplib
import os
import poplib
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike, diag, scenario, skip  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
leaf = pki.leaf("server", ca, dns=("localhost",), ips=("127.0.0.1",))
ENV = {"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"]}
DAEMON = os.path.join(suite.BIN, "line-daemon.py")
ctx = suite.client_context(ca["crt"])
MUST = "530 5.7.0 Must issue a STARTTLS command first"


def front(proto, opts=(), env=None, app=None, program="sslserver"):
    e = dict(ENV)
    if proto:
        e["STARTTLS"] = proto
    e.update(env or {})
    return suite.Server(["-v"] + list(opts), env=e, app=app, program=program)


def recorder(proto):
    """line-daemon.py for proto; returns (argv, the file it records into)."""
    path = os.path.join(suite.tmpdir(), "lines")
    open(path, "w").close()
    return [suite.PYTHON, DAEMON, proto, path], path


def recorded(path):
    """The lines the daemon received, as bytes; "started" entries left out."""
    with open(path) as f:
        return [eval(l) for l in f.read().splitlines() if l != "started"]  # noqa: S307


def started(path):
    with open(path) as f:
        return "started" in f.read().splitlines()


def postfix_smtpd():
    """postfix's sendmail -bs with a throwaway loopback-only configuration:
    its own queue directory (a maildrop postdrop can write into as root),
    no aliases, no local recipients, no master running."""
    d = suite.tmpdir()
    conf, queue = os.path.join(d, "conf"), os.path.join(d, "queue")
    os.makedirs(conf)
    os.makedirs(os.path.join(queue, "maildrop"))
    os.chmod(os.path.join(queue, "maildrop"), 0o1733)
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write("queue_directory = %s\ndata_directory = %s\n" % (queue, os.path.join(d, "data")))
        f.write("myhostname = front.test\nmydomain = front.test\ninet_interfaces = loopback-only\n"
                "mydestination =\nlocal_recipient_maps =\nalias_maps =\nalias_database =\n"
                "compatibility_level = 3.6\n")
    return ["/usr/sbin/sendmail", "-bs", "-C", conf]


def connect(srv, source=None):
    return socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10),
                                    source_address=(source, 0) if source else None)


def last_pid(srv, prog="sslserver"):
    p = suite.wait_until(lambda: suite.pids(srv, prog), 10)
    return p[-1] if p else "?"


# ---------------------------------------------------------------- smtp: postfix
def postfix_s_client():
    srv = front("smtp", app=postfix_smtpd())
    r = suite.s_client(srv.port, ["-starttls", "smtp", "-CAfile", ca["crt"], "-verify_return_error",
                                  "-verify_hostname", "localhost", "-quiet"],
                       input=b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n"
                             b"DATA\r\nSubject: front\r\n\r\nthrough the front\r\n.\r\nQUIT\r\n")
    rc, out, err = r
    is_(rc, 0, "postfix, s_client -starttls smtp: exit 0")
    like(out, r"^250-PIPELINING\r?$", "postfix: its EHLO reply reaches the client inside TLS")
    like(out, r"^250 2\.0\.0 Ok: queued as ", "postfix: the message went through DATA inside TLS")
    like(out, r"^221 2\.0\.0 Bye", "postfix: QUIT answered inside TLS")
    pid = last_pid(srv)
    like(srv.log(), r"^sslserver: tls %s accept TLSv1\.3:\S+$" % pid, "log: 'tls PID accept TLSv1.3:CIPHER'")
    is_(suite.end_status(srv, pid), 0, "log: the session ends with postfix's status 0")
    srv.stop()


def postfix_smtplib():
    srv = front("smtp", app=postfix_smtpd())
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=suite.patience(10))
    s.ehlo("client.example")
    ok(s.has_extn("starttls"), "smtplib: STARTTLS in postfix's EHLO reply before TLS")
    ok(s.has_extn("pipelining") and s.has_extn("chunking"), "smtplib: postfix's own extensions kept")
    code, msg = s.starttls(context=ctx)
    is_((code, msg), (220, b"2.0.0 Ready to start TLS"), "smtplib: STARTTLS answered '220 2.0.0 Ready to start TLS'")
    s.ehlo("client.example")
    ok(not s.has_extn("starttls"), "smtplib: no STARTTLS offered once TLS is on")
    ok(s.has_extn("pipelining"), "smtplib: postfix's EHLO reply inside TLS")
    is_(s.docmd("STARTTLS"), (503, b"5.5.1 TLS already active"), "smtplib: a second STARTTLS: 503 5.5.1")
    is_(s.sendmail("a@example.org", ["b@example.org"], "Subject: front\r\n\r\nhi\r\n"), {},
        "smtplib: sendmail through postfix inside TLS")
    s.quit()
    is_(suite.end_status(srv, last_pid(srv)), 0, "smtplib: status 0")
    srv.stop()


def postfix_swaks():
    srv = front("smtp", app=postfix_smtpd())
    r = suite.run(["swaks", "--server", "127.0.0.1", "--port", str(srv.port), "--tls", "--tls-verify",
                   "--tls-ca-path", ca["crt"], "--to", "b@example.org", "--from", "a@example.org"], timeout=20)
    sw = r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")
    is_(r.returncode, 0, "swaks --tls through the front to postfix: exit 0")
    like(sw, r"^<-  220 2\.0\.0 Ready to start TLS", "swaks: the engine's 220")
    like(sw, r"^=== TLS started with cipher TLSv1\.3:", "swaks: TLS started")
    like(sw, r"^<~  250 2\.0\.0 Ok: queued as ", "swaks: postfix queued the message inside TLS")
    srv.stop()


def postfix_curl():
    srv = front("smtp", app=postfix_smtpd())
    d = suite.tmpdir()
    msg = os.path.join(d, "msg")
    with open(msg, "w") as f:
        f.write("Subject: curl\r\n\r\nthrough the front\r\n")
    r = suite.run(["curl", "-sS", "--ssl-reqd", "--cacert", ca["crt"], "smtp://127.0.0.1:%d" % srv.port,
                   "--mail-from", "a@example.org", "--mail-rcpt", "b@example.org", "-T", msg], timeout=20)
    is_(r.returncode, 0, "curl --ssl-reqd smtp://: exit 0 (%s)" % r.stderr.decode().strip())
    pid = last_pid(srv)
    like(srv.log(), r"^sslserver: tls %s accept " % pid, "curl: the session went TLS")
    srv.stop()


scenario("postfix: openssl s_client", postfix_s_client)
scenario("postfix: smtplib", postfix_smtplib)
scenario("postfix: swaks", postfix_swaks)
scenario("postfix: curl", postfix_curl)


# ---------------------------------------------------------------- smtp: what the daemon sees
def smtp_injection():
    app, path = recorder("smtp")
    srv = front("smtp", app=app)
    raw = connect(srv)
    is_(suite.smtp_reply(raw), ["220 rec ESMTP"], "the daemon's greeting in clear")
    raw.sendall(b"EHLO client.example\r\n")
    is_(suite.smtp_reply(raw), ["250-rec", "250-AUTH PLAIN LOGIN", "250-PIPELINING", "250-8BITMIME", "250 STARTTLS"],
        "EHLO reply read in three pieces: STARTTLS added once, last")
    raw.sendall(b"STARTTLS\r\nNOOP\r\n")
    is_(suite.smtp_reply(raw), ["220 2.0.0 Ready to start TLS"], "STARTTLS answered by the engine")
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(b"EHLO client.example\r\n")
    got = suite.smtp_reply(s)
    is_(got, ["250-rec", "250-AUTH PLAIN LOGIN", "250-PIPELINING", "250 8BITMIME"],
        "inside TLS: the first reply is EHLO's (the pipelined NOOP was discarded), without STARTTLS")
    s.sendall(b"STARTTLS\r\n")
    is_(suite.smtp_reply(s), ["503 5.5.1 TLS already active"], "a second STARTTLS: 503 5.5.1")
    s.sendall(b"QUIT\r\n")
    is_(suite.smtp_reply(s), ["221 2.0.0 bye"], "QUIT answered by the daemon")
    s.close()
    is_(suite.end_status(srv, last_pid(srv)), 0, "status 0")
    is_(recorded(path), [b"EHLO client.example\r\n", b"EHLO client.example\r\n", b"QUIT\r\n"],
        "the daemon never saw STARTTLS, nor the NOOP pipelined after it")
    srv.stop()


def smtp_tlsrequired():
    app, path = recorder("smtp")
    srv = front("smtp", env={"TLSREQUIRED": ""}, app=app)
    raw = connect(srv)
    suite.smtp_reply(raw)
    raw.sendall(b"EHLO a\r\nNOOP\r\nSTARTTLS\r\n")
    is_(suite.smtp_reply(raw), ["250-rec", "250-PIPELINING", "250-8BITMIME", "250 STARTTLS"], "TLSREQUIRED: AUTH hidden before TLS")
    is_(suite.smtp_reply(raw), ["250 2.0.0 noop ok"], "pipelined before STARTTLS: the daemon's reply first")
    is_(suite.smtp_reply(raw), ["220 2.0.0 Ready to start TLS"], "then the engine's 220")
    raw.close()
    raw = connect(srv)
    suite.smtp_reply(raw)
    raw.sendall(b"EHLO a\r\n")
    suite.smtp_reply(raw)
    raw.sendall(b"AUTH PLAIN AGpvZQBzZWNyZXQ=\r\n")
    is_(suite.smtp_reply(raw), [MUST], "TLSREQUIRED: AUTH before TLS: '%s'" % MUST)
    raw.sendall(b"MAIL FROM:<a@example.org>\r\n")
    is_(suite.smtp_reply(raw), [MUST], "TLSREQUIRED: MAIL before TLS: '%s'" % MUST)
    raw.sendall(b"STARTTLS\r\n")
    suite.smtp_reply(raw)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(b"EHLO a\r\n")
    is_(suite.smtp_reply(s), ["250-rec", "250-AUTH PLAIN LOGIN", "250-PIPELINING", "250 8BITMIME"], "TLSREQUIRED: AUTH offered inside TLS")
    s.sendall(b"AUTH PLAIN AGpvZQBzZWNyZXQ=\r\n")
    is_(suite.smtp_reply(s), ["235 2.7.0 authenticated"], "inside TLS: AUTH reaches the daemon")
    s.sendall(b"MAIL FROM:<a@example.org>\r\n")
    is_(suite.smtp_reply(s), ["250 2.0.0 ok"], "inside TLS: MAIL reaches the daemon")
    s.sendall(b"QUIT\r\n")
    suite.smtp_reply(s)
    s.close()
    suite.wait_until(lambda: len(suite.pids(srv)) == 2 and suite.end_status(srv, suite.pids(srv)[1], 1) is not None, 10)
    is_(recorded(path), [b"EHLO a\r\n", b"NOOP\r\n", b"EHLO a\r\n", b"EHLO a\r\n",
                         b"AUTH PLAIN AGpvZQBzZWNyZXQ=\r\n", b"MAIL FROM:<a@example.org>\r\n", b"QUIT\r\n"],
        "the daemon saw AUTH and MAIL only inside TLS, and never STARTTLS")
    srv.stop()


def smtp_transaction_and_cleartext():
    app, path = recorder("smtp")
    srv = front("smtp", app=app)
    raw = connect(srv)
    suite.smtp_reply(raw)
    raw.sendall(b"EHLO a\r\nMAIL FROM:<a@example.org>\r\nSTARTTLS\r\n")
    suite.smtp_reply(raw)
    suite.smtp_reply(raw)
    is_(suite.smtp_reply(raw), ["503 5.5.1 STARTTLS not allowed in a mail transaction"], "STARTTLS inside a mail transaction: 503 5.5.1")
    raw.sendall(b"RSET\r\nNOOP " + b"x" * (1 << 20) + b"\r\nNOOP\r\n")
    suite.smtp_reply(raw)
    is_(suite.smtp_reply(raw), ["500 5.5.2 Line too long"], "a 1 MB command line: 500 5.5.2, not buffered")
    is_(suite.smtp_reply(raw), ["250 2.0.0 noop ok"], "the next command is served")
    raw.sendall(b"QUIT\r\n")
    is_(suite.smtp_reply(raw), ["221 2.0.0 bye"], "a session that never starts TLS is served in clear")
    raw.close()
    pid = last_pid(srv)
    is_(suite.end_status(srv, pid), 0, "cleartext session: status 0")
    like(srv.log(), r"^sslserver: cleartext %s$" % pid, "log: 'cleartext PID' at -v")
    like(srv.log(), r"^sslserver: warning: a client command over 8192 bytes was cut off for pid: %s$" % pid,
         "log: the long line")
    ok(max(len(l) for l in recorded(path)) < 100, "the long line never reached the daemon")
    srv.stop()


def smtp_timeout():
    app, path = recorder("smtp")
    srv = front("smtp", ["-w", "1"], app=app)
    raw = connect(srv)
    suite.smtp_reply(raw)
    is_(suite.read_all(raw, 20), b"", "a silent client in clear is cut by -w")
    pid = last_pid(srv)
    like(srv.log(), r"^sslserver: error: \(111\) timed out in plaintext with: 127\.0\.0\.1 for pid: %s$" % pid,
         "log: timed out in plaintext")
    srv.stop()


scenario("smtp: injection, second STARTTLS, split reply", smtp_injection)
scenario("smtp: TLSREQUIRED", smtp_tlsrequired)
scenario("smtp: transaction, long line, cleartext", smtp_transaction_and_cleartext)
scenario("smtp: plaintext timeout", smtp_timeout)


# ---------------------------------------------------------------- rules, values, sslhandoff
def by_rule():
    d = suite.tmpdir()
    cdb = os.path.join(d, "rules.cdb")
    text = '127.0.0.2:allow,STARTTLS="smtp"\n127.0.0.3:allow\n127.0.0.4:allow,STARTTLS="smtps"\n'
    r = subprocess.run(["tcprules", cdb, cdb + ".tmp"], input=text.encode(), capture_output=True)
    is_(r.returncode, 0, "tcprules built the cdb")
    app, path = recorder("smtp")
    srv = front(None, ["-x", cdb], app=app, env={})
    raw = connect(srv, "127.0.0.2")
    is_(suite.smtp_reply(raw), ["220 rec ESMTP"], "rule STARTTLS=smtp for 127.0.0.2: the daemon's greeting in clear")
    raw.sendall(b"EHLO a\r\n")
    like("\n".join(suite.smtp_reply(raw)), r"250 STARTTLS$", "127.0.0.2: STARTTLS offered")
    raw.close()
    s = suite.tls_connect(srv.port, ctx, source=("127.0.0.3", 0))
    is_(suite.line(s).rstrip("\r\n"), "220 rec ESMTP", "127.0.0.3, no STARTTLS in its rule: immediate TLS")
    s.close()
    open(path, "w").close()
    raw = connect(srv, "127.0.0.4")
    is_(suite.read_all(raw, 10), b"", "rule STARTTLS=smtps: nothing written, connection closed")
    pid = suite.wait_until(lambda: suite.pids(srv, src="127.0.0.4"), 10)
    pid = pid[-1] if pid else "?"
    is_(suite.end_status(srv, pid), 25600, "rule with an unknown STARTTLS value: exit 100 (end status 25600)")
    like(srv.log(), r'^sslserver: fatal: \(100\) unable to apply rule 127\.0\.0\.4: unknown STARTTLS value: smtps \(smtp, pop3 or imap\)$',
         "log: the rule and the value")
    ok(not started(path), "the program never started")
    srv.stop()


def unknown_values():
    rc, err = suite.start_failure(env=dict(ENV, STARTTLS="smtps"))
    is_(rc, 100, "sslserver with STARTTLS=smtps: start-up error, exit 100")
    like(err, r"^sslserver: fatal: \(100\) unknown STARTTLS value: smtps \(smtp, pop3 or imap\)$", "sslserver: says why")
    e = dict(ENV, STARTTLS="IMAP", PATH=os.environ.get("PATH", "/usr/bin:/bin"))
    r = subprocess.run([suite.prog("sslhandoff"), "true"], env=e, capture_output=True, stdin=subprocess.DEVNULL,
                       timeout=suite.patience(10))
    is_(r.returncode, 100, "sslhandoff with STARTTLS=IMAP: exit 100")
    like(r.stderr.decode(), r"^sslhandoff: fatal: \(100\) unknown STARTTLS value: IMAP", "sslhandoff: says why")
    app, path = recorder("smtp")
    srv = front("smtp", ["-N"], app=app)
    s = suite.tls_connect(srv.port, ctx)
    is_(suite.line(s).rstrip("\r\n"), "220 rec ESMTP", "-N beats STARTTLS: immediate TLS")
    s.close()
    srv.stop()


def handoff_front():
    app, path = recorder("smtp")
    srv = suite.PortCommand(["tcpserver", "-1", "-v", "-HR", "-l", "localhost", "127.0.0.1", "0",
                             suite.prog("sslhandoff"), "-v"] + app, env=dict(ENV, STARTTLS="smtp"))
    ok(srv.port, "tcpserver -1 ... sslhandoff with STARTTLS=smtp started")
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=suite.patience(10))
    s.ehlo("a")
    ok(s.has_extn("starttls"), "sslhandoff: STARTTLS offered")
    s.starttls(context=ctx)
    s.ehlo("a")
    ok(not s.has_extn("starttls") and s.has_extn("auth"), "sslhandoff: inside TLS, the daemon's own list")
    s.quit()
    like(srv.wait_log(r"^sslhandoff: tls \d+ accept TLSv1\.3:\S+$") and srv.log(), r"sslhandoff: tls \d+ accept",
         "sslhandoff: 'tls PID accept' logged")
    suite.wait_until(lambda: b"quit\r\n" in [l.lower() for l in recorded(path)], 10)   # smtplib sends "quit"
    is_([l for l in recorded(path) if l.upper().startswith(b"STARTTLS")], [], "sslhandoff: the daemon never saw STARTTLS")
    srv.stop()


scenario("the front chosen by a rule", by_rule)
scenario("unknown STARTTLS values, -N", unknown_values)
scenario("sslhandoff", handoff_front)


# ---------------------------------------------------------------- pop3
POP3D = ["/usr/sbin/pop3d", "--inetd", "--no-site-config"]
IMAP4D = ["/usr/sbin/imap4d", "--inetd", "--no-site-config"]


def lines_until_dot(sock):
    got = []
    while True:
        l = suite.line(sock).rstrip("\r\n")
        got.append(l)
        if l in (".", "") or (len(got) == 1 and not l.startswith("+OK")):
            return got


def pop3d_clients():
    srv = front("pop3", app=POP3D)
    rc, out, err = suite.s_client(srv.port, ["-starttls", "pop3", "-CAfile", ca["crt"], "-verify_return_error",
                                             "-verify_hostname", "localhost", "-quiet"], input=b"CAPA\r\nQUIT\r\n")
    is_(rc, 0, "pop3d, s_client -starttls pop3: exit 0")
    like(out, r"^\+OK Capability list follows", "pop3d: CAPA answered inside TLS")
    unlike(out, r"^STLS", "pop3d: no STLS in the list inside TLS")
    pid = last_pid(srv)
    like(srv.log(), r"^sslserver: tls %s accept TLSv1\.3:" % pid, "pop3d: 'tls PID accept'")
    p = poplib.POP3("127.0.0.1", srv.port, timeout=suite.patience(10))
    caps = p.capa()
    ok("STLS" in caps and "UIDL" in caps, "poplib: STLS added to pop3d's CAPA list", caps)
    is_(p.stls(context=ctx), b"+OK Begin TLS negotiation", "poplib: STLS answered '+OK Begin TLS negotiation'")
    caps = p.capa()
    ok("STLS" not in caps and "UIDL" in caps, "poplib: inside TLS, pop3d's own list", caps)
    try:
        got = p._shortcmd("STLS")
    except poplib.error_proto as e:
        got = e.args[0]
    is_(got, b"-ERR Command not permitted when TLS active", "poplib: a second STLS refused")
    p.quit()
    r = suite.run(["curl", "-sS", "--ssl-reqd", "--cacert", ca["crt"], "-u", "joe:secret",
                   "pop3://127.0.0.1:%d/" % srv.port], timeout=20)
    is_(r.returncode, 67, "curl --ssl-reqd pop3://: through STLS to pop3d, which refuses the login (67)")
    pid = last_pid(srv)
    like(srv.log(), r"^sslserver: tls %s accept " % pid, "curl pop3: the session went TLS")
    srv.stop()


def pop3_tlsrequired():
    app, path = recorder("pop3")
    srv = front("pop3", env={"TLSREQUIRED": ""}, app=app)
    raw = connect(srv)
    is_(suite.line(raw), "+OK rec ready\r\n", "pop3: the daemon's greeting")
    raw.sendall(b"CAPA\r\n")
    is_(lines_until_dot(raw), ["+OK capabilities", "UIDL", "STLS", "."], "TLSREQUIRED: USER and SASL hidden, STLS added")
    raw.sendall(b"USER joe\r\nPASS secret\r\n")
    is_([suite.line(raw), suite.line(raw)], ["-ERR Must issue a STLS command first\r\n"] * 2, "TLSREQUIRED: USER, PASS refused")
    raw.sendall(b"STLS\r\nNOOP\r\n")
    is_(suite.line(raw), "+OK Begin TLS negotiation\r\n", "STLS answered by the engine")
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(b"CAPA\r\n")
    is_(lines_until_dot(s), ["+OK capabilities", "USER", "SASL PLAIN", "UIDL", "."], "inside TLS: the daemon's list")
    s.sendall(b"USER joe\r\nSTLS\r\nQUIT\r\n")
    is_([suite.line(s) for _ in range(3)], ["+OK fine\r\n", "-ERR Command not permitted when TLS active\r\n", "+OK bye\r\n"],
        "inside TLS: USER reaches the daemon, a second STLS does not")
    s.close()
    is_(suite.end_status(srv, last_pid(srv)), 0, "pop3: status 0")
    is_(recorded(path), [b"CAPA\r\n", b"CAPA\r\n", b"USER joe\r\n", b"QUIT\r\n"],
        "pop3: the daemon saw neither STLS, nor USER/PASS before TLS, nor the NOOP after STLS")
    srv.stop()


scenario("pop3d: s_client, poplib, curl", pop3d_clients)
scenario("pop3: TLSREQUIRED", pop3_tlsrequired)


# ---------------------------------------------------------------- imap
def imap4d_clients():
    srv = front("imap", app=IMAP4D)
    rc, out, err = suite.s_client(srv.port, ["-starttls", "imap", "-CAfile", ca["crt"], "-verify_return_error",
                                             "-verify_hostname", "localhost", "-quiet"],
                                  input=b"a CAPABILITY\r\nb LOGOUT\r\n")
    is_(rc, 0, "imap4d, s_client -starttls imap: exit 0")
    like(out, r"^\* CAPABILITY IMAP4rev1 .*IDLE", "imap4d: CAPABILITY answered inside TLS")
    unlike(out, r"STARTTLS", "imap4d: no STARTTLS in the capabilities inside TLS")
    like(out, r"^b OK LOGOUT", "imap4d: LOGOUT inside TLS")
    m = imaplib.IMAP4("127.0.0.1", srv.port, timeout=suite.patience(10))
    ok("STARTTLS" in m.capabilities and "IDLE" in m.capabilities, "imaplib: STARTTLS added to imap4d's capabilities",
       m.capabilities)
    typ, data = m.starttls(ssl_context=ctx)
    is_(typ, "OK", "imaplib: STARTTLS answered OK")
    ok("STARTTLS" not in m.capabilities and "IDLE" in m.capabilities, "imaplib: inside TLS, imap4d's own list",
       m.capabilities)
    try:
        m.login("joe", "secret")
        got = "logged in"
    except imaplib.IMAP4.error as e:
        got = str(e)
    like(got, r"rejected", "imaplib: LOGIN reaches imap4d inside TLS (which refuses joe)")
    m.logout()
    r = suite.run(["curl", "-sS", "--ssl-reqd", "--cacert", ca["crt"], "-u", "joe:secret",
                   "imap://127.0.0.1:%d/" % srv.port], timeout=20)
    is_(r.returncode, 67, "curl --ssl-reqd imap://: through STARTTLS to imap4d, which refuses the login (67)")
    pid = last_pid(srv)
    like(srv.log(), r"^sslserver: tls %s accept " % pid, "curl imap: the session went TLS")
    srv.stop()


def imap_tlsrequired():
    app, path = recorder("imap")
    srv = front("imap", env={"TLSREQUIRED": ""}, app=app)
    raw = connect(srv)
    is_(suite.line(raw), "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] rec ready\r\n",
        "imap: TLSREQUIRED: the greeting's capabilities: STARTTLS, LOGINDISABLED, no AUTH=")
    raw.sendall(b"a CAPABILITY\r\n")
    is_([suite.line(raw), suite.line(raw)], ["* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n", "a OK done\r\n"],
        "imap: CAPABILITY before TLS")
    raw.sendall(b"b LOGIN joe secret\r\nc LOGIN {3+}\r\njoe {6+}\r\nsecret\r\nd AUTHENTICATE PLAIN\r\n")
    is_([suite.line(raw) for _ in range(3)],
        ["%s NO [PRIVACYREQUIRED] Must issue a STARTTLS command first\r\n" % t for t in "bcd"],
        "imap: TLSREQUIRED: LOGIN (also with literals), AUTHENTICATE refused")
    raw.sendall(b"e STARTTLS\r\nf NOOP\r\n")
    is_(suite.line(raw), "e OK Begin TLS negotiation now\r\n", "imap: STARTTLS answered by the engine")
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(b"g CAPABILITY\r\n")
    is_([suite.line(s), suite.line(s)], ["* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n", "g OK done\r\n"],
        "imap: inside TLS, the daemon's own capabilities")
    s.sendall(b"h LOGIN joe secret\r\ni STARTTLS\r\nj LOGOUT\r\n")
    is_([suite.line(s) for _ in range(4)], ["h OK fine\r\n", "i BAD TLS already active\r\n", "* BYE rec\r\n", "j OK bye\r\n"],
        "imap: inside TLS: LOGIN reaches the daemon, a second STARTTLS does not")
    s.close()
    is_(suite.end_status(srv, last_pid(srv)), 0, "imap: status 0")
    is_(recorded(path), [b"a CAPABILITY\r\n", b"g CAPABILITY\r\n", b"h LOGIN joe secret\r\n", b"j LOGOUT\r\n"],
        "imap: the daemon saw no STARTTLS, no refused LOGIN nor its literals, nothing after STARTTLS")
    srv.stop()


scenario("imap4d: s_client, imaplib, curl", imap4d_clients)
scenario("imap: TLSREQUIRED", imap_tlsrequired)


def imap_literals():
    srv = front("imap", app=IMAP4D)
    raw = connect(srv)
    like(suite.line(raw), r"^\* OK", "imap4d: greeting")
    raw.sendall(b"a LOGIN {3}\r\n")
    like(suite.line(raw), r"^\+ ", "synchronizing literal: imap4d's '+' passes through")
    raw.sendall(b"joe {6}\r\n")
    like(suite.line(raw), r"^\+ ", "a second literal in the same command")
    raw.sendall(b"secret\r\n")
    like(suite.line(raw), r"^a NO ", "imap4d answers the command once its literals are in")
    raw.sendall(b"b STARTTLS\r\n")
    is_(suite.line(raw), "b OK Begin TLS negotiation now\r\n", "after the literals, the next line is a command again")
    raw.close()
    srv.stop()
    app, path = recorder("imap")
    srv = front("imap", app=app)
    raw = connect(srv)
    suite.line(raw)
    raw.sendall(b"a NOOP {3}\r\n")
    is_(suite.line(raw), "a OK fine\r\n", "a command answered before its synchronizing literal")
    raw.sendall(b"b STARTTLS\r\n")
    is_(suite.line(raw), "b OK Begin TLS negotiation now\r\n", "the client sends no literal then: its next line is a command")
    raw.close()
    suite.wait_until(lambda: suite.end_status(srv, last_pid(srv), 1) is not None, 10)
    is_(recorded(path), [b"a NOOP {3}\r\n"], "the daemon saw the command, not the STARTTLS")
    srv.stop()


scenario("imap: literals", imap_literals)
