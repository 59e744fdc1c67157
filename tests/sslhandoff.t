#!/usr/bin/python3
# sslhandoff under ucspi-tcp's real tcpserver: immediate TLS with the
# connection variables taken over from tcpserver, deferred TLS (-n, UCSPITLS
# in the environment or from a tcprules cdb, -N overriding it) with real
# STARTTLS peers, the UCSPI-TLS descriptors, log lines, the exit status as
# tcpserver sees it, and a start-up error.
import os
import re
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike, diag, scenario  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
leaf = pki.leaf("server", ca, dns=("localhost",), ips=("127.0.0.1",))
ENV = {"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"]}
SMTPD = [suite.PYTHON, os.path.join(suite.TOP, "examples", "starttls-smtpd")]
APP = os.path.join(suite.BIN, "ucspitls-app.py")
HANDOFF = suite.prog("sslhandoff")
ctx = suite.client_context(ca["crt"])


def tcpserver(handoff_opts, app, env=ENV, tcp_opts=()):
    """tcpserver -1 -v -HR -l localhost 127.0.0.1 0 sslhandoff OPTS APP... (-l and
    -H: no DNS lookups at all)"""
    srv = suite.PortCommand(["tcpserver", "-1", "-v", "-HR", "-l", "localhost"] + list(tcp_opts) + ["127.0.0.1", "0", HANDOFF]
                            + list(handoff_opts) + list(app), env=env)
    return srv


def last_pid(srv):
    p = suite.wait_until(lambda: suite.pids(srv, "tcpserver", "127.0.0.1"), 10)
    return p[-1] if p else "?"


def s_client_starttls(srv, name):
    try:
        rc, out, err = suite.s_client(srv.port, ["-starttls", "smtp", "-CAfile", ca["crt"], "-verify_return_error",
                                                 "-verify_hostname", "localhost", "-quiet"],
                                      input=b"EHLO client.example\r\nXSSL\r\nQUIT\r\n", timeout=10)
    except subprocess.TimeoutExpired:
        rc, out, err = None, "", "s_client timed out"
    is_(rc, 0, "%s: s_client -starttls smtp exits 0" % name)
    like(out, r"^250-SSL_PROTOCOL=TLSv1\.3\r?$", "%s: XSSL inside TLS shows SSL_PROTOCOL" % name)
    m = re.search(r"^250-SSL_CIPHER=(\S+)\r?$", out, re.M)
    ok(m, "%s: XSSL inside TLS shows SSL_CIPHER" % name, out + err)
    like(out, r"^221 ", "%s: QUIT answered inside TLS" % name)
    return m.group(1) if m else None


# ---------------------------------------------------------------- immediate
def immediate_tls_under_tcpserver():
    srv = tcpserver(["-v"], [suite.PYTHON, suite.REPORT])
    ok(srv.port, "tcpserver -1 started and printed its port")
    try:
        with suite.tls_connect(srv.port, ctx) as s:
            mine = s.getsockname()[:2]
            version, cipher = s.version(), s.cipher()[0]
            rep = suite.report_of(s)
            s.sendall(b"ping\n")
            is_(suite.line(s), "echo: ping\n", "immediate: bytes go both ways")
            s.sendall(b"quit\n")
            is_(suite.read_all(s), b"", "immediate: session ends cleanly")
    except (ssl.SSLError, OSError) as e:
        rep, mine, version, cipher = None, ("?", 0), None, None
        ok(False, "immediate: verified handshake", str(e))
    env = suite.env_of(rep)
    is_(env.get("SSL_PROTOCOL"), version, "immediate: SSL_PROTOCOL is the negotiated version")
    is_(env.get("SSL_CIPHER"), cipher, "immediate: SSL_CIPHER is the negotiated cipher")
    ok(len([k for k in env if k.startswith("SSL_")]) >= 10, "immediate: SSL_* variables present")
    is_(env.get("PROTO"), "SSL", "immediate: PROTO=SSL (over tcpserver's PROTO=TCP)")
    is_(env.get("TCPREMOTEIP"), "127.0.0.1", "immediate: tcpserver set TCPREMOTEIP")
    is_(env.get("TCPREMOTEPORT"), str(mine[1]), "immediate: tcpserver set TCPREMOTEPORT to the client's port")
    is_(env.get("SSLREMOTEIP"), env.get("TCPREMOTEIP"), "immediate: SSLREMOTEIP = TCPREMOTEIP")
    is_(env.get("SSLREMOTEPORT"), env.get("TCPREMOTEPORT"), "immediate: SSLREMOTEPORT = TCPREMOTEPORT")
    is_(env.get("SSLLOCALPORT"), str(srv.port), "immediate: SSLLOCALPORT is the listening port")
    is_((env.get("TCPLOCALHOST"), env.get("SSLLOCALHOST")), ("localhost", "localhost"),
        "immediate: SSLLOCALHOST = tcpserver's TCPLOCALHOST (-l)")
    ok("TCPREMOTEHOST" not in env and "SSLREMOTEHOST" not in env, "immediate: no remote host name (-H): SSLREMOTEHOST unset")
    is_([k for k in ("KEYFILE", "CERTFILE") if k in env], [], "immediate: KEYFILE and CERTFILE removed")
    ok(not any(k in env for k in ("SSLCTLFD", "SSLREADFD", "SSLWRITEFD")), "immediate: no UCSPI-TLS descriptors announced")
    is_(rep["fds"] if rep else None, [0, 1, 2], "immediate: only fds 0, 1, 2 open in the program")
    pid = last_pid(srv)
    lm = srv.wait_log(r"^sslhandoff: tls (\d+) accept (TLSv1\.3):(\S+)$")
    is_(lm.groups() if lm else None, (pid, version, cipher), "log: 'sslhandoff: tls PID accept TLSv1.3:CIPHER' with tcpserver's pid")
    is_(suite.end_status(srv, pid, prog="tcpserver"), 0, "log: tcpserver end PID status 0")
    srv.stop()


scenario('immediate', immediate_tls_under_tcpserver)


# The program's exit status is sslhandoff's, as tcpserver sees it.
def exit_status_through_tcpserver():
    srv = tcpserver(["-v"], [suite.PYTHON, suite.REPORT, "exit", "7"])
    try:
        with suite.tls_connect(srv.port, ctx) as s:
            rep = suite.report_of(s)
            suite.read_all(s)
    except (ssl.SSLError, OSError) as e:
        rep = None
        diag(str(e))
    ok(rep, "exit 7: program ran")
    is_(suite.end_status(srv, last_pid(srv), prog="tcpserver"), 1792, "exit 7: tcpserver logs end status 1792")
    srv.stop()


scenario("The program's exit status is sslhandoff's, as tcpserver sees it", exit_status_through_tcpserver)


# An IPv4 client gets the IPv4 rules however the server before sslhandoff
# spells its address: a TCPREMOTEIP of ::ffff:127.0.0.5 (in capitals, or
# fully written out) must not slip past a 127.0.0.5:deny rule.
def v4_mapped_spellings():
    rules = os.path.join(pki.dir, "mapped")
    r = subprocess.run(["tcprules", rules + ".cdb", rules + ".tmp"], capture_output=True,
                       input=b'127.0.0.5:deny\n:allow,WHO="anyone"\n', timeout=suite.patience(10))
    is_(r.returncode, 0, "tcprules made a cdb denying 127.0.0.5")
    for spelling in ("127.0.0.5", "::ffff:127.0.0.5", "::FFFF:127.0.0.5", "0:0:0:0:0:ffff:7f00:5"):
        srv = suite.PortCommand(["tcpserver", "-1", "-v", "-HR", "-l", "localhost", "127.0.0.1", "0",
                                 "env", "TCPREMOTEIP=" + spelling, HANDOFF, "-v", "-x", rules + ".cdb",
                                 suite.PYTHON, suite.REPORT], env=ENV)
        try:
            with suite.tls_connect(srv.port, ctx) as s:
                rep = suite.report_of(s)
        except (ssl.SSLError, OSError):
            rep = None
        ok(rep is None and srv.wait_log(r"^sslhandoff: deny \d+ "),
           "TCPREMOTEIP=%s: the deny rule applies, the program never runs" % spelling, srv.log())
        srv.stop()
    # and an address no rule denies is still served
    srv = suite.PortCommand(["tcpserver", "-1", "-v", "-HR", "-l", "localhost", "127.0.0.1", "0",
                             "env", "TCPREMOTEIP=::ffff:127.0.0.6", HANDOFF, "-v", "-x", rules + ".cdb",
                             suite.PYTHON, suite.REPORT], env=ENV)
    with suite.tls_connect(srv.port, ctx) as s:
        rep = suite.report_of(s)
        s.sendall(b"quit\n")
    env = (rep or {}).get("env", {})
    is_((env.get("WHO"), env.get("SSLREMOTEIP")), ("anyone", "127.0.0.6"),
        "TCPREMOTEIP=::ffff:127.0.0.6: served, SSLREMOTEIP shown dotted")
    srv.stop()


scenario("v4-mapped and other spellings of TCPREMOTEIP", v4_mapped_spellings)


# ---------------------------------------------------------------- deferred
def deferred_tls_modes():
    srv = tcpserver(["-v", "-n"], SMTPD)
    cipher = s_client_starttls(srv, "-n")
    pid = last_pid(srv)
    lm = srv.wait_log(r"^sslhandoff: tls (\d+) accept TLSv1\.3:(\S+)$")
    is_(lm.groups() if lm else None, (pid, cipher), "-n: log 'sslhandoff: tls PID accept TLSv1.3:CIPHER'")
    is_(suite.end_status(srv, pid, prog="tcpserver"), 0, "-n: tcpserver end PID status 0")
    srv.stop()

    srv = tcpserver(["-v"], SMTPD, env=dict(ENV, UCSPITLS=""))
    s_client_starttls(srv, "UCSPITLS=\"\" in the environment")
    srv.stop()

    rules = os.path.join(pki.dir, "rules")
    r = subprocess.run(["tcprules", rules + ".cdb", rules + ".tmp"], input=b'127.:allow,UCSPITLS=""\n:deny\n',
                       capture_output=True)
    is_(r.returncode, 0, "tcprules made a cdb setting UCSPITLS")
    srv = tcpserver(["-v"], SMTPD, tcp_opts=["-x", rules + ".cdb"])
    s_client_starttls(srv, "UCSPITLS from tcpserver -x rules")
    srv.stop()

    srv = tcpserver(["-v", "-N"], [suite.PYTHON, suite.REPORT], env=dict(ENV, UCSPITLS=""))
    rep = suite.report_session(srv.port, ctx)
    env = suite.env_of(rep)
    ok(env.get("SSL_PROTOCOL") and "SSLCTLFD" not in env, "-N with UCSPITLS set: immediate TLS")
    srv.stop()


scenario('deferred', deferred_tls_modes)


# The UCSPI-TLS descriptors and the block, with sslhandoff's fds 0/1.
def ucspitls_descriptors_and_block():
    d = suite.tmpdir()
    path = os.path.join(d, "report.json")
    srv = tcpserver(["-v", "-n"], [suite.PYTHON, APP, path, "Y", "nul"])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        mine = list(raw.getsockname()[:2])
        is_(suite.line(raw), "220 ucspitls-app ready\r\n", "ucspitls-app: greeting in clear")
        raw.sendall(b"STARTTLS\r\n")
        is_(suite.line(raw), "220 go\r\n", "ucspitls-app: STARTTLS")
        try:
            s = ctx.wrap_socket(raw, server_hostname="localhost")
        except (ssl.SSLError, OSError) as e:
            s = None
            diag(str(e))
        ok(s, "ucspitls-app: verified handshake after STARTTLS")
        rep = suite.read_report(path, "control")
        ctl = rep["control"] if rep else {}
        is_((ctl.get("result"), ctl.get("then")), ("block", "eof"), "ucspitls-app: whole block, then EOF")
        if s:
            is_(ctl.get("vars", {}).get("SSL_CIPHER"), s.cipher()[0], "ucspitls-app: block's SSL_CIPHER is the negotiated one")
            s.sendall(b"hi\r\n")
            is_(suite.line(s), "tls: hi\r\n", "ucspitls-app: reached through TLS")
            s.sendall(b"QUIT\r\n")
            suite.line(s)
            is_(suite.read_all(s), b"", "ucspitls-app: session ends")
        st = rep["start"] if rep else {"env": {}, "fds": [], "desc": {}}
        is_([st["env"].get(k) for k in ("SSLCTLFD", "SSLREADFD", "SSLWRITEFD")], ["3", "4", "5"],
            "ucspitls-app: SSLCTLFD=3 SSLREADFD=4 SSLWRITEFD=5")
        is_(st["fds"], [0, 1, 2, 3, 4, 5], "ucspitls-app: fds 0-5 open, nothing else")
        is_([k for k in st["envnames"] if k.startswith(("KEYFILE", "CERTFILE"))], [],
            "ucspitls-app: KEYFILE and CERTFILE removed in deferred mode")
        is_([(st["desc"].get(f) or {}).get("peername") for f in ("0", "1")], [mine, mine],
            "ucspitls-app: fds 0 and 1 are the client's socket before TLS")
        is_([(st["desc"].get(f) or {}).get("kind") for f in ("3", "4", "5")], ["socket", "pipe", "pipe"],
            "ucspitls-app: fd 3 a socket, 4 and 5 pipes")
    is_(suite.end_status(srv, last_pid(srv), prog="tcpserver"), 0, "ucspitls-app: tcpserver end PID status 0")
    unlike(srv.log(), r"cleartext", "ucspitls-app: a session that started TLS logs no cleartext line")
    srv.stop()


scenario("The UCSPI-TLS descriptors and the block, with sslhandoff's fds 0/1", ucspitls_descriptors_and_block)


# A bad command byte under sslhandoff: exit 100.
def bad_command_byte():
    path = os.path.join(suite.tmpdir(), "report.json")
    srv = tcpserver(["-v", "-n"], [suite.PYTHON, APP, path, "x", "eof"])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        suite.line(raw)
        raw.sendall(b"STARTTLS\r\n")
        suite.line(raw)
        is_(suite.read_all(raw), b"", "bad command byte: connection closed")
    ok(srv.wait_log(r"^sslhandoff: .*protocol error"), "bad command byte: protocol error logged")
    is_(suite.end_status(srv, last_pid(srv), prog="tcpserver"), 25600, "bad command byte: tcpserver end status 25600")
    srv.stop()


scenario('A bad command byte under sslhandoff: exit 100', bad_command_byte)


# A program that never asks for TLS: "sslhandoff: cleartext PID" at -v only.
def never_asks_for_tls():
    for opts, expected in ((["-v", "-n"], 1), (["-n"], 0)):
        name = "sslhandoff %s, no STARTTLS" % " ".join(opts)
        path = os.path.join(suite.tmpdir(), "report.json")
        srv = tcpserver(opts, [suite.PYTHON, APP, path, "none", "eof", "0"])
        with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
            suite.line(raw)
            raw.sendall(b"QUIT\r\n")
            is_(suite.line(raw), "221 bye\r\n", "%s: program answers in clear" % name)
            is_(suite.read_all(raw), b"", "%s: connection closed" % name)
        pid = last_pid(srv)
        is_(suite.end_status(srv, pid, prog="tcpserver"), 0, "%s: tcpserver end PID status 0" % name)
        is_(suite.log_count(srv, r"^sslhandoff: cleartext %s$" % pid), expected,
            "%s: %s" % (name, "one 'sslhandoff: cleartext PID' line with tcpserver's pid" if expected
                        else "no cleartext line at the default verbosity"))
        is_(suite.log_count(srv, r"cleartext"), expected, "%s: no other cleartext line" % name)
        srv.stop()


scenario("A program that never asks for TLS under sslhandoff", never_asks_for_tls)


# ---------------------------------------------------------------- start-up error
def startup_error_without_certfile():
    srv = tcpserver(["-v"], [suite.PYTHON, suite.REPORT], env={})
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        is_(suite.read_all(raw), b"", "no CERTFILE: connection closed with nothing sent")
    pid = last_pid(srv)
    is_(suite.end_status(srv, pid, prog="tcpserver"), 28416, "no CERTFILE: tcpserver end status 28416 (exit 111)")
    lines = [l for l in srv.log().splitlines() if l.startswith("sslhandoff:")]
    is_(len(lines), 1, "no CERTFILE: one line from sslhandoff")
    like(lines[0] if lines else "", r"^sslhandoff: fatal: \(111\) \S", "no CERTFILE: 'sslhandoff: fatal: (111) ...'")
    srv.stop()

    r = subprocess.run([HANDOFF, suite.PYTHON, suite.REPORT], env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                       capture_output=True, timeout=suite.patience(10), stdin=subprocess.DEVNULL)
    err = r.stderr.decode("utf-8", "replace")
    is_(r.returncode, 111, "no CERTFILE, run directly: exit 111")
    like(err, r"\Asslhandoff: fatal: \(111\) [^\n]+\n\Z", "no CERTFILE, run directly: one line 'sslhandoff: fatal: (111) ...'")
    is_(r.stdout, b"", "no CERTFILE, run directly: nothing on stdout")


scenario('start-up error', startup_error_without_certfile)
