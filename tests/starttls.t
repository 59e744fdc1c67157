#!/usr/bin/python3
# Deferred TLS (STARTTLS, the UCSPI-TLS protocol of DESIGN.md section 5) in
# sslserver: real peers (openssl s_client -starttls smtp, swaks, Python's
# smtplib) against examples/starttls-smtpd; the mode selection (-n, -N,
# UCSPITLS); the protocol itself with tests/bin/ucspitls-app.py (both block
# reader styles, 'y', the descriptors, the banner, a bad command byte, an
# application that never asks for TLS and its "cleartext" log line, a
# failed handshake); STARTTLS command injection; the plaintext-phase
# timeout.
import json
import os
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike, diag, scenario  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
leaf = pki.leaf("server", ca, dns=("localhost",), ips=("127.0.0.1",))
other = pki.ca("other-ca")
ENV = {"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"]}
SMTPD = [suite.PYTHON, os.path.join(suite.TOP, "examples", "starttls-smtpd")]
APP = os.path.join(suite.BIN, "ucspitls-app.py")
ctx = suite.client_context(ca["crt"])


def first_end_status(srv):
    """The end status of the server's first connection (bounded wait), or None."""
    pids = suite.pids(srv)
    return suite.end_status(srv, pids[0] if pids else "?")


def app_server(command, reader, opts=(), code=None):
    """sslserver -v -n running ucspitls-app.py; returns (server, report path)."""
    d = suite.tmpdir()
    path = os.path.join(d, "report.json")
    args = [suite.PYTHON, APP, path, command, reader] + ([str(code)] if code is not None else [])
    srv = suite.Server(["-v", "-n"] + list(opts), env=ENV, app=args)
    return srv, path


def clear_greeting(raw):
    return suite.line(raw).rstrip("\r\n")


def starttls(raw, context=ctx):
    """STARTTLS on the app's line protocol; returns the TLS socket or the error."""
    raw.sendall(b"STARTTLS\r\n")
    go = suite.line(raw).rstrip("\r\n")
    if go != "220 go":
        return None, "no 220 go: %r" % go
    try:
        s = context.wrap_socket(raw, server_hostname="localhost")
        return s, None
    except (ssl.SSLError, OSError) as e:
        return None, str(e)


def echo_check(s, name):
    s.sendall(b"hello inside tls\r\n")
    is_(suite.line(s), "tls: hello inside tls\r\n", "%s: application reached through TLS on its new fds" % name)
    s.sendall(b"QUIT\r\n")
    is_(suite.line(s), "tls: QUIT\r\n", "%s: QUIT echoed" % name)
    is_(suite.read_all(s), b"", "%s: session ends when the application exits" % name)


# ---------------------------------------------------------------- openssl s_client -starttls smtp
smtpd = suite.Server(["-v", "-n"], env=ENV, app=SMTPD)
ok(smtpd.port, "sslserver -n with starttls-smtpd started")


def s_client_starttls_smtp(srv):
    rc, out, err = suite.s_client(srv.port, ["-starttls", "smtp", "-CAfile", ca["crt"], "-verify_return_error",
                                             "-verify_hostname", "localhost", "-quiet"],
                                  input=b"EHLO client.example\r\nXSSL\r\nQUIT\r\n", timeout=10)
    is_(rc, 0, "s_client -starttls smtp: exit 0 (verified handshake)")
    like(out, r"^250-AUTH PLAIN\r?$", "s_client: EHLO inside TLS offers AUTH PLAIN")
    like(out, r"^250-SSL_PROTOCOL=TLSv1\.3\r?$", "s_client: XSSL shows SSL_PROTOCOL=TLSv1.3")
    m = re.search(r"^250-SSL_CIPHER=(\S+)\r?$", out, re.M)
    ok(m, "s_client: XSSL shows SSL_CIPHER", out)
    like(out, r"^250-SSL_SESSION_ID=[0-9a-f]+\r?$", "s_client: XSSL shows SSL_SESSION_ID in hex")
    like(out, r"^250-SSL_SERVER_S_DN=/C=DE/O=sslsuite tests/CN=server\r?$", "s_client: XSSL shows the server's own certificate")
    like(out, r"^221 ", "s_client: QUIT answered inside TLS")
    pids = suite.pids(srv)
    lm = srv.wait_log(r"^sslserver: tls (\d+) accept TLSv1\.3:(\S+)$")
    ok(lm and pids and lm.group(1) == pids[0], "log: 'sslserver: tls PID accept TLSv1.3:CIPHER' for the connection's pid",
       srv.log())
    is_(lm.group(2) if lm else None, m.group(1) if m else "?", "log: the logged cipher is the one in SSL_CIPHER")
    is_(suite.end_status(srv, pids[0] if pids else "?"), 0, "log: end PID status 0")


scenario('openssl s_client -starttls smtp', s_client_starttls_smtp, smtpd)


# ---------------------------------------------------------------- swaks
def swaks_verified_and_refused(srv):
    r = suite.run(["swaks", "--server", "127.0.0.1", "--port", str(srv.port), "--tls", "--tls-verify",
                   "--tls-ca-path", ca["crt"], "--to", "a@example.org", "--from", "b@example.org"], timeout=20)
    sw = r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")
    served = r.returncode == 0 and "=== TLS started" in sw
    is_(r.returncode, 0, "swaks --tls --tls-verify: exit 0")
    like(sw, r"^=== TLS started with cipher TLSv1\.3:", "swaks: reports TLS started")
    like(sw, r"^ ~> MAIL FROM:<b@example\.org>", "swaks: the transaction ran inside TLS")
    like(sw, r"^<~  250 ok: discarded by the demo", "swaks: message accepted inside TLS")
    r = suite.run(["swaks", "--server", "127.0.0.1", "--port", str(srv.port), "--tls", "--tls-verify",
                   "--tls-ca-path", other["crt"], "--to", "a@example.org", "--from", "b@example.org"], timeout=20)
    sw = r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")
    # A refusal counts only where the same command with the right CA was
    # served, and only for the right reason (swaks without Net::SSLeay
    # "refuses" every TLS session).
    ok(served and r.returncode != 0 and "MAIL FROM" not in sw and re.search(r"(?i)certificate verify failed", sw),
       "swaks with an unrelated CA: refused because verification failed (with the right CA it was served)", sw)


scenario('swaks', swaks_verified_and_refused, smtpd)


# ---------------------------------------------------------------- Python smtplib
def smtplib_starttls(srv):
    try:
        c = smtplib.SMTP("127.0.0.1", srv.port, local_hostname="client.example", timeout=suite.patience(10))
        c.ehlo()
        ok(c.has_extn("starttls"), "smtplib: STARTTLS offered in clear")
        ok(not c.has_extn("auth"), "smtplib: no AUTH before TLS")
        code, msg = c.docmd("XSSL")
        is_((code, msg), (250, b"no TLS"), "smtplib: XSSL before TLS: no SSL_* variables")
        code, msg = c.starttls(context=ctx)
        is_(code, 220, "smtplib: starttls() with a verifying context")
        c.ehlo()
        ok(c.has_extn("auth") and "PLAIN" in c.esmtp_features.get("auth", ""), "smtplib: AUTH PLAIN offered after TLS")
        code, msg = c.docmd("XSSL")
        got = dict(l.partition("=")[::2] for l in msg.decode().splitlines())
        is_(got.get("SSL_CIPHER"), c.sock.cipher()[0], "smtplib: XSSL's SSL_CIPHER is the cipher Python negotiated")
        is_(got.get("SSL_PROTOCOL"), c.sock.version(), "smtplib: XSSL's SSL_PROTOCOL is the version Python negotiated")
        is_(c.quit()[0], 221, "smtplib: QUIT inside TLS")
    except (smtplib.SMTPException, OSError) as e:
        ok(False, "smtplib session", str(e))


scenario('Python smtplib', smtplib_starttls, smtpd)
smtpd.stop()


# ---------------------------------------------------------------- mode selection
def mode_deferred(srv, name):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        got = suite.line(raw)
        try:
            rep = json.loads(got)
        except ValueError:
            rep = None
        ok(rep is not None, "%s: the program talks in clear at once (deferred)" % name, repr(got))
        env = suite.env_of(rep)
        ok("SSL_PROTOCOL" not in env, "%s: no SSL_PROTOCOL before TLS" % name)
        is_((env.get("SSLCTLFD"), env.get("SSLREADFD"), env.get("SSLWRITEFD")), ("3", "4", "5"),
            "%s: SSLCTLFD=3 SSLREADFD=4 SSLWRITEFD=5" % name)
        is_([k for k in ("KEYFILE", "CERTFILE") if k in env], [], "%s: KEYFILE and CERTFILE removed" % name)
        is_(rep["sigblk"] if rep else None, "0000000000000000", "%s: no signals blocked in the program" % name)


def mode_immediate(srv, name):
    rep = suite.report_session(srv.port, ctx)
    env = suite.env_of(rep)
    ok(env.get("SSL_PROTOCOL", "").startswith("TLSv"), "%s: immediate TLS, program sees SSL_PROTOCOL" % name)
    ok(rep and not any(k in env for k in ("SSLCTLFD", "SSLREADFD", "SSLWRITEFD")),
       "%s: no UCSPI-TLS descriptors announced" % name)


def mode_selection():
    srv = suite.Server(["-n"], env=ENV)
    mode_deferred(srv, "-n")
    srv.stop()
    srv = suite.Server(["-N"], env=dict(ENV, UCSPITLS=""))
    mode_immediate(srv, "-N with UCSPITLS set")
    srv.stop()
    srv = suite.Server([], env=dict(ENV, UCSPITLS=""))
    mode_deferred(srv, "UCSPITLS=\"\" without -n/-N")
    srv.stop()
    srv = suite.Server([], env=ENV)
    mode_immediate(srv, "neither -n/-N nor UCSPITLS")
    srv.stop()
    # UCSPITLS set by the matching rule of a tcprules cdb (DESIGN's typical use).
    rules = os.path.join(suite.tmpdir(), "rules")
    r = subprocess.run(["tcprules", rules + ".cdb", rules + ".tmp"], input=b'127.0.0.1:allow,UCSPITLS=""\n:allow\n',
                       capture_output=True)
    is_(r.returncode, 0, "tcprules made a cdb with UCSPITLS for 127.0.0.1")
    srv = suite.Server(["-x", rules + ".cdb"], env=ENV)
    mode_deferred(srv, "UCSPITLS from the -x rule")
    srv.stop()
    srv = suite.Server(["-N", "-x", rules + ".cdb"], env=ENV)
    mode_immediate(srv, "-N over UCSPITLS from the -x rule")
    srv.stop()


scenario('mode selection', mode_selection)


# ---------------------------------------------------------------- the protocol: 'Y', reader stopping at \0\0
def tls_with_block_reader_stops_at_nul():
    srv, path = app_server("Y", "nul")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        mine = list(raw.getsockname()[:2])
        is_(clear_greeting(raw), "220 ucspitls-app ready", "Y/nul: greeting in clear")
        raw.sendall(b"EHLO x\r\n")
        is_(clear_greeting(raw), "250 clear: EHLO x", "Y/nul: the program reads fd 0 and writes fd 1 in clear")
        s, why = starttls(raw)
        ok(s, "Y/nul: handshake after STARTTLS", why)
        rep = suite.read_report(path, "control")
        ctl = rep["control"] if rep else {}
        is_(ctl.get("result"), "block", "Y/nul: the program got a complete SSL_* block")
        is_(ctl.get("then"), "eof", "Y/nul: the control socket reaches EOF after the block")
        v = ctl.get("vars", {})
        if s:
            is_(v.get("SSL_PROTOCOL"), s.version(), "Y/nul: block's SSL_PROTOCOL is the negotiated version")
            is_(v.get("SSL_CIPHER"), s.cipher()[0], "Y/nul: block's SSL_CIPHER is the negotiated cipher")
            ok(all(k.startswith("SSL_") for k in v) and len(v) >= 10, "Y/nul: the block holds SSL_* variables only", v)
            echo_check(s, "Y/nul")
        st = rep["start"] if rep else {"env": {}, "fds": [], "desc": {}}
        env, desc = st["env"], st["desc"]
        fdnums = [env.get(k) for k in ("SSLCTLFD", "SSLREADFD", "SSLWRITEFD")]
        ok(all(n and n.isdigit() and int(n) in st["fds"] for n in fdnums),
           "fds: SSLCTLFD/SSLREADFD/SSLWRITEFD name open descriptors", st)
        if all(n and n.isdigit() for n in fdnums):
            c_, r_, w_ = (desc.get(n) or {} for n in fdnums)
            is_((c_.get("kind"), c_.get("family"), c_.get("access")), ("socket", "AF_UNIX", "rw"), "fds: SSLCTLFD is a unix socket")
            is_((r_.get("kind"), r_.get("access")), ("pipe", "r"), "fds: SSLREADFD is a pipe's read end")
            is_((w_.get("kind"), w_.get("access")), ("pipe", "w"), "fds: SSLWRITEFD is a pipe's write end")
        for fd in ("0", "1"):
            d = desc.get(fd) or {}
            is_((d.get("kind"), d.get("peername")), ("socket", mine), "fds: fd %s is the client's TCP socket before TLS" % fd)
        is_(st["fds"], [0, 1, 2, 3, 4, 5], "fds: nothing else is open in the program")
        is_(env.get("PROTO"), "SSL", "env: PROTO=SSL in deferred mode")
    is_([k for k in st["envnames"] if k.startswith(("KEYFILE", "CERTFILE"))], [],
        "env: KEYFILE and CERTFILE removed in deferred mode")
    is_(first_end_status(srv), 0, "Y/nul: end PID status 0")
    unlike(srv.log(), r"cleartext", "Y/nul: a session that started TLS logs no cleartext line")
    srv.stop()


scenario("the protocol: 'Y', reader stopping at \\0\\0", tls_with_block_reader_stops_at_nul)


# ---------------------------------------------------------------- 'Y', reader going to EOF
def tls_with_block_reader_reads_to_eof():
    srv, path = app_server("Y", "eof")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        clear_greeting(raw)
        s, why = starttls(raw)
        ok(s, "Y/eof: handshake after STARTTLS", why)
        rep = suite.read_report(path, "control")
        ctl = rep["control"] if rep else {}
        is_((ctl.get("result"), ctl.get("eof")), ("block", True), "Y/eof: read to EOF, the whole block arrived")
        ok(ctl.get("bytes", "").endswith("\0\0") and ctl.get("bytes", "").count("\0\0") == 1,
           "Y/eof: block ends with one extra NUL, nothing after it", ctl.get("bytes"))
        if s:
            is_(ctl.get("vars", {}).get("SSL_CIPHER"), s.cipher()[0], "Y/eof: block's SSL_CIPHER is the negotiated cipher")
            echo_check(s, "Y/eof")
    is_(first_end_status(srv), 0, "Y/eof: end PID status 0")
    srv.stop()


scenario("'Y', reader going to EOF", tls_with_block_reader_reads_to_eof)


# ---------------------------------------------------------------- 'y': no block
def tls_without_block():
    srv, path = app_server("y", "eof")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        clear_greeting(raw)
        s, why = starttls(raw)
        ok(s, "y: handshake after STARTTLS", why)
        rep = suite.read_report(path, "control")
        ctl = rep["control"] if rep else {}
        is_((ctl.get("bytes"), ctl.get("eof")), ("", True), "y: no block, the control socket reaches EOF")
        if s:
            echo_check(s, "y")
    ok(first_end_status(srv) is not None and "cleartext" not in srv.log(),
       "y: a session that started TLS ends with no cleartext line", srv.log())
    srv.stop()


scenario("'y': no block", tls_without_block)


# ---------------------------------------------------------------- -B banner in clear
def banner_before_greeting():
    srv, path = app_server("Y", "nul", ["-B", "299 banner from sslserver\r\n"])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        is_(clear_greeting(raw), "299 banner from sslserver", "-B: banner arrives first, in clear")
        is_(clear_greeting(raw), "220 ucspitls-app ready", "-B: then the program's own greeting")
        s, why = starttls(raw)
        ok(s, "-B: STARTTLS still works", why)
        if s:
            echo_check(s, "-B")
    srv.stop()


scenario('-B banner in clear', banner_before_greeting)


# ---------------------------------------------------------------- a client that leaves in clear
def client_leaves_in_clear():
    srv, path = app_server("Y", "nul")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        clear_greeting(raw)
        raw.shutdown(socket.SHUT_WR)
        is_(suite.read_all(raw, timeout=10), b"", "client leaves in clear: connection closed")
    is_(first_end_status(srv), 0, "client leaves in clear: the program's exit 0 is the connection's")
    unlike(srv.log(), r"tls \d+ accept|error", "client leaves in clear: no TLS, no error logged")
    pids = suite.pids(srv)
    is_(suite.log_count(srv, r"^sslserver: cleartext %s$" % (pids[0] if pids else "?")), 1,
        "client leaves in clear: -v logs 'cleartext PID' once, for the connection's pid")
    srv.stop()


scenario("a client that leaves in clear", client_leaves_in_clear)


# ---------------------------------------------------------------- an invalid command byte
def invalid_command_byte():
    srv, path = app_server("x", "eof")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        clear_greeting(raw)
        raw.sendall(b"STARTTLS\r\n")
        is_(clear_greeting(raw), "220 go", "bad byte: program asked for TLS with 'x'")
        t0 = time.monotonic()
        rest = suite.read_all(raw, timeout=10)
        took, (limit, how) = time.monotonic() - t0, suite.bound(9)
        ok(rest == b"" and took < limit, "bad byte: connection closed (%.1fs; %s)" % (took, how), repr(rest))
    ok(srv.wait_log(r"^sslserver: .*protocol error.*0x78"), "bad byte: protocol error logged", srv.log())
    is_(first_end_status(srv), 25600, "bad byte: connection exits 100 (status 25600)")
    srv.stop()


scenario('an invalid command byte', invalid_command_byte)


# ---------------------------------------------------------------- an app that never asks for TLS
def program_never_asks_for_tls():
    srv, path = app_server("none", "eof", code=7)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        clear_greeting(raw)
        raw.sendall(b"QUIT\r\n")
        is_(clear_greeting(raw), "221 bye", "no STARTTLS: program answers in clear")
        is_(suite.read_all(raw, timeout=10), b"", "no STARTTLS: connection closed when the program exits")
    is_(first_end_status(srv), 1792, "no STARTTLS: program's exit 7 is the connection's (status 1792)")
    unlike(srv.log(), r"tls \d+ accept", "no STARTTLS: no TLS accept logged")
    pids = suite.pids(srv)
    is_(suite.log_count(srv, r"^sslserver: cleartext %s$" % (pids[0] if pids else "?")), 1,
        "no STARTTLS: -v logs 'sslserver: cleartext PID' once, for the connection's pid")
    is_(suite.log_count(srv, r"cleartext"), 1, "no STARTTLS: and no other cleartext line")
    log = srv.log()
    ok(0 <= log.find("cleartext ") < log.find("end %s status" % (pids[0] if pids else "?")),
       "no STARTTLS: the cleartext line comes before the end line", log)
    srv.stop()

    # At the default verbosity (-Q) there is no such line.
    d = suite.tmpdir()
    srv = suite.Server(["-n"], env=ENV, app=[suite.PYTHON, APP, os.path.join(d, "report.json"), "none", "eof", "7"])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        clear_greeting(raw)
        raw.sendall(b"QUIT\r\n")
        is_(clear_greeting(raw), "221 bye", "no STARTTLS, default verbosity: program answers in clear")
        is_(suite.read_all(raw, timeout=10), b"", "no STARTTLS, default verbosity: connection closed")
    srv.signal(15)
    is_(srv.wait(10), 0, "no STARTTLS, default verbosity: server stopped (its log is complete)")
    unlike(srv.log(), r"cleartext", "no STARTTLS, default verbosity: no cleartext line")
    srv.stop()


scenario('an app that never asks for TLS', program_never_asks_for_tls)


# ---------------------------------------------------------------- a failed handshake after 'Y'
def failed_handshakes_after_starttls():
    srv, path = app_server("Y", "eof")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        clear_greeting(raw)
        raw.sendall(b"STARTTLS\r\n")
        is_(clear_greeting(raw), "220 go", "bad handshake: STARTTLS accepted")
        raw.sendall(b"\x01\x02 this is no ClientHello at all\r\n")
        t0 = time.monotonic()
        rest = suite.read_all(raw, timeout=10)
        took, (limit, how) = time.monotonic() - t0, suite.bound(9)
        ok(took < limit, "bad handshake: connection closed within a bounded wait (%.1fs; %s)" % (took, how), repr(rest))
    rep = suite.read_report(path, "control")
    ctl = rep["control"] if rep else {}
    is_((ctl.get("result"), ctl.get("bytes")), ("EOF without block", ""), "bad handshake: the program saw EOF without a block")
    ok(srv.wait_log(r"unable to accept TLS from: 127\.0\.0\.1"), "bad handshake: failure logged")
    is_(first_end_status(srv), 28416, "bad handshake: connection exits 111 (status 28416)")
    srv.stop()

    # Plaintext the client sends before its ClientHello is not skipped: the
    # handshake fails and the program gets no block.
    srv, path = app_server("Y", "eof")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        clear_greeting(raw)
        raw.sendall(b"STARTTLS\r\n")
        is_(clear_greeting(raw), "220 go", "plaintext prefix: STARTTLS accepted")
        raw.sendall(b"NOOP\r\n")
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                got = "handshake succeeded, then %r" % suite.line(s, 5)
        except (ssl.SSLError, OSError) as e:
            got = "failed"
            diag("handshake: %s" % e)
        is_(got, "failed", "plaintext prefix before the ClientHello: handshake fails")
    rep = suite.read_report(path, "control")
    is_((rep or {}).get("control", {}).get("result"), "EOF without block", "plaintext prefix: the program saw EOF without a block")
    srv.stop()

    # A client that says STARTTLS and then nothing is cut by -T.
    srv, path = app_server("Y", "nul", ["-T", "1"])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        clear_greeting(raw)
        raw.sendall(b"STARTTLS\r\n")
        is_(clear_greeting(raw), "220 go", "silent after STARTTLS: STARTTLS accepted")
        t0 = time.monotonic()
        rest = suite.read_all(raw, timeout=10)
        took = time.monotonic() - t0
        limit, how = suite.bound(8)
        ok(rest == b"" and 0.5 <= took < 1 + limit, "silent after STARTTLS: cut by -T 1 (%.1fs; upper %s, plus 1s)" % (took, how))
    rep = suite.read_report(path, "control")
    is_((rep or {}).get("control", {}).get("result"), "EOF without block", "silent after STARTTLS: the program saw EOF without a block")
    ok(srv.wait_log(r"unable to accept TLS from: 127\.0\.0\.1 .*timed out"), "silent after STARTTLS: handshake timeout logged", srv.log())
    srv.stop()


scenario("a failed handshake after 'Y'", failed_handshakes_after_starttls)


# ---------------------------------------------------------------- STARTTLS command injection
def starttls_command_injection():
    srv = suite.Server(["-v", "-n"], env=ENV, app=SMTPD)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        like(suite.smtp_reply(raw)[0], r"^220 ", "injection: greeting")
        raw.sendall(b"EHLO client.example\r\n")
        ok("250 STARTTLS" in suite.smtp_reply(raw), "injection: STARTTLS offered")
        payload = b"STARTTLS\r\nNOOP\r\n"
        is_(raw.send(payload), len(payload), "injection: STARTTLS and NOOP sent in one send()")
        like(suite.line(raw), r"^220 ", "injection: STARTTLS answered 220")
        try:
            s = ctx.wrap_socket(raw, server_hostname="localhost")
            handshake = "ok"
        except (ssl.SSLError, OSError) as e:
            s, handshake = None, str(e)
        first = None
        if s is not None:
            s.sendall(b"EHLO client.example\r\n")
            first = suite.smtp_reply(s, timeout=5)
        ok(s is None or (first and first[0].startswith("250-") and "250 ok" not in first),
           "injection: handshake failed, or the first reply inside TLS is the EHLO reply, not the NOOP's",
           "handshake: %s, first reply: %r" % (handshake, first))
        if s is None:
            ok(True, "injection: NOOP inside TLS is visible # SKIP handshake failed (%s)" % handshake)
        else:
            s.sendall(b"NOOP\r\n")
            is_(suite.smtp_reply(s, timeout=5), ["250 ok"], "injection: a NOOP sent inside TLS is answered (the check can see one)")
            s.sendall(b"QUIT\r\n")
            suite.smtp_reply(s)
            s.close()
    srv.stop()


scenario('STARTTLS command injection', starttls_command_injection)


# ---------------------------------------------------------------- the plaintext phase's timeout
def plaintext_phase_timeout():
    srv, path = app_server("Y", "nul", ["-w", "2"])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        is_(clear_greeting(raw), "220 ucspitls-app ready", "-w 2: greeting in clear")
        t0 = time.monotonic()
        rest = suite.read_all(raw, timeout=10)
        took = time.monotonic() - t0
        limit, how = suite.bound(7)
        ok(rest == b"" and 1.5 <= took < 2 + limit,
           "-w 2: a silent client is cut in the plaintext phase (%.1fs; upper %s, plus 2s)" % (took, how), srv.log())
    ok(srv.wait_log(r"timed out in plaintext with: 127\.0\.0\.1"), "-w 2: 'timed out' logged", srv.log())
    srv.stop()

    srv, path = app_server("Y", "nul", ["-w", "2"])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        clear_greeting(raw)
        t0 = time.monotonic()
        answers = []
        n = 0
        while time.monotonic() - t0 < 3.0:
            n += 1
            try:
                raw.sendall(b"NOOP %d\r\n" % n)
            except OSError as e:
                answers.append("send failed: %s" % e)
                break
            answers.append(suite.line(raw, 5).rstrip("\r\n"))
            time.sleep(0.5)   # pacing of the client's chatter, not synchronisation
        is_(answers, ["250 clear: NOOP %d" % i for i in range(1, n + 1)], "-w 2: a chatty client is answered for 3s")
        s, why = starttls(raw)
        ok(s, "-w 2: after 3s of chatter, STARTTLS still works", why)
        if s:
            echo_check(s, "-w 2 chatty")
    unlike(srv.log(), r"timed out", "-w 2: no timeout logged for the chatty client")
    is_(first_end_status(srv), 0, "-w 2 chatty: end PID status 0")
    srv.stop()


scenario("the plaintext phase's timeout", plaintext_phase_timeout)
