#!/usr/bin/python3
# Reused TLS engines (sslserver.1, "reused engines"): connections one after
# the other are served by the same engine pid, each with a program process
# of its own, whatever the program's status; nothing of a connection
# (client certificate, rule variables, addresses, the STARTTLS front's
# buffer) is seen by the next one on that engine; two connections open at
# once never share an engine; ENGINEREUSE bounds the connections per engine
# (1 = off) and a bad value is a start-up error; no reuse where the
# engine's identity is not the program's (SSL_UID, SSL_CHROOT), with SNI
# pairs, or with a rules cdb that sets TLS variables or an identity
# (rescanned when the file changes); SIGHUP retires engines (the next
# client gets the new certificate from a new engine); a denied connection,
# a refused client certificate and a failed handshake end their engine and
# the next client is served well; -c counts busy engines, not idle ones;
# tickets resume on a reused engine and across engines; idle engines go
# away by themselves after ENGINEIDLE seconds (at most 8 kept), and a bad
# ENGINEIDLE is a start-up error; SIGTERM leaves no engine behind.
# Peers: Python's ssl, openssl s_client, gnutls-cli. The engine pid is the
# one on the log's pid/end lines, and the program's parent.
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike, diag, skip, scenario  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
leaf1 = pki.leaf("server-one", ca)
leaf2 = pki.leaf("server-two", ca)
sni_leaf = pki.leaf("server-sni", ca, dns=("a.example",))
clientca = pki.ca("clientca")
alice = pki.leaf("alice", clientca, dns=(), client=True, email="alice@example.org")
bob = pki.leaf("bob", clientca, dns=(), client=True, email="bob@example.org")
# ENGINEIDLE=3600: an engine is not retired between two connections of a
# test however slow the machine; the idle scenario sets its own
ENV = {"CERTFILE": leaf1["pem"], "KEYFILE": leaf1["key"], "ENGINEIDLE": "3600"}
CTX = suite.client_context(ca["crt"])
D = suite.tmpdir()
ROOT = os.geteuid() == 0
# -H -R: no name look-ups, so that a client from 127.0.0.x waits for no DNS
FAST = ["-v", "-H", "-R"]


def ends(srv):
    """(pid, status) of every end line, oldest first."""
    return re.findall(r"^sslserver: end (\d+) status (\d+)$", srv.log(), re.M)


def ctx_with(cert):
    return suite.client_context(ca["crt"], cert=cert["crt"], key=cert["key"]) if cert else CTX


class Visit:
    """One whole connection to report.py, one at a time: the program's
    report (None if there was none), the pid of its log lines, its end
    status (as logged, an int), and what the client saw (.peer_cn, .error).
    It returns once the end line is logged: the engine is then idle, and
    the next client is the next connection it may be given."""

    def __init__(self, srv, ctx=CTX, src=None, talk=None):
        self.rep, self.error, self.peer_cn, self.sock = None, None, None, None
        np, ne = len(suite.pids(srv)), len(ends(srv))
        try:
            raw = socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10),
                                           source_address=(src, 0) if src else None)
            self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
            cert = self.sock.getpeercert()
            self.peer_cn = dict(x[0] for x in cert["subject"]).get("commonName") if cert else None
            self.rep = suite.report_of(self.sock)
            if talk:
                talk(self)
            self.sock.sendall(b"quit\n")
            suite.read_all(self.sock)
        except (ssl.SSLError, OSError) as e:
            self.error = "%s: %s" % (type(e).__name__, e)
        finally:
            if self.sock:
                self.sock.close()
        got = suite.wait_until(lambda: len(ends(srv)) > ne and len(suite.pids(srv)) > np, 10)
        self.pid = suite.pids(srv)[np] if got else None
        self.status = int(ends(srv)[ne][1]) if got else None
        if got and ends(srv)[ne][0] != self.pid:
            diag("end line %r is not for pid %s" % (ends(srv)[ne], self.pid))
        self.env = suite.env_of(self.rep)

    def __repr__(self):
        return "pid=%s status=%s error=%s ppid=%s" % (self.pid, self.status, self.error,
                                                    self.rep and self.rep.get("ppid"))


class Held:
    """A connection kept open: its report and the pid of its log line."""

    def __init__(self, srv, ctx=CTX, src=None):
        self.rep, self.error, self.sock = None, None, None
        try:
            raw = socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10),
                                           source_address=(src, 0) if src else None)
            self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
            self.rep = suite.report_of(self.sock)
        except (ssl.SSLError, OSError) as e:
            self.error = "%s: %s" % (type(e).__name__, e)
        self.engine = str(self.rep["ppid"]) if self.rep else None

    def close(self):
        if self.sock:
            try:
                self.sock.sendall(b"quit\n")
                suite.read_all(self.sock)
            except (ssl.SSLError, OSError):
                pass
            self.sock.close()
            self.sock = None


def running(pid):
    """The process pid exists and is not a zombie."""
    st = suite.proc_status(int(pid)) if pid else None
    return bool(st) and not st.get("State", "").startswith("Z")


def gone(pid, seconds=8):
    """Waits (bounded) until pid is no running process."""
    return suite.wait_until(lambda: not running(pid), seconds)


def engines_of(srv):
    """The server's child processes that are running (engines, idle or busy)."""
    return [k for k in suite.children_of(srv.proc.pid) if running(k)]


def same_pid(visits):
    return len(set(v.pid for v in visits)) == 1 and visits[0].pid is not None


def all_fine(visits):
    return all(v.rep is not None and v.status == 0 for v in visits)


def cdb_of(text, name):
    cdb = os.path.join(D, name + ".cdb")
    r = subprocess.run(["tcprules", cdb, cdb + ".tmp"], input=text.encode(), capture_output=True,
                       timeout=suite.patience(10))
    if r.returncode:
        diag("tcprules failed on %s: %s" % (name, r.stderr.decode()))
    return cdb


# ---------------------------------------------------------------- 1. reuse, three kinds of peers
def sequential():
    srv = suite.Server(FAST, env=ENV)
    ok(srv.port, "sequential: server started")
    v = [Visit(srv) for _ in range(3)]
    ok(all_fine(v), "sequential: three Python clients served, each ends with status 0", v)
    ok(same_pid(v), "sequential: the three connections have the same pid on their log lines (one engine)", v)
    is_([str(x.rep["ppid"]) if x.rep else None for x in v], [v[0].pid] * 3,
        "sequential: each program's parent is that engine")
    is_(len(set(x.rep["pid"] for x in v if x.rep)), 3, "sequential: but each connection has a program process of its own")
    ok(running(v[0].pid), "sequential: between connections the engine is still there")

    rc, out, err = suite.s_client(srv.port, ["-CAfile", ca["crt"], "-servername", "localhost", "-verify_return_error",
                                             "-quiet"], input=b"hello from s_client\nquit\n")
    rep = suite.json_line(out)
    ok(rep is not None and "echo: hello from s_client" in out, "sequential: openssl s_client served on it", out + err)
    ok(suite.wait_until(lambda: len(ends(srv)) == 4, 10), "sequential: s_client's end line logged")
    rc, out, err = suite.gnutls_cli(srv.port, ["--x509cafile", ca["crt"], "--sni-hostname", "localhost",
                                               "--verify-hostname", "localhost"], input=b"hello from gnutls\nquit\n")
    rep2 = suite.json_line(out)
    ok(rep2 is not None and "echo: hello from gnutls" in out, "sequential: gnutls-cli served on it", out + err)
    ok(suite.wait_until(lambda: len(ends(srv)) == 5, 10), "sequential: gnutls-cli's end line logged")
    is_(suite.pids(srv)[3:5], [v[0].pid] * 2, "sequential: s_client and gnutls-cli met the same engine pid")
    is_([str((r or {}).get("ppid")) for r in (rep, rep2)], [v[0].pid] * 2,
        "sequential: ... which is their programs' parent")
    is_([s for _, s in ends(srv)], ["0"] * 5, "sequential: five end lines, status 0 each")
    like(srv.log(), r"^sslserver: status: 0/40$", "sequential: an idle engine is not counted in status lines")
    is_(suite.log_problems(srv), [], "sequential: no warning or error logged")

    # 3. two at once, with an idle engine there: the first takes the idle
    # engine, the second gets one of its own
    a = Held(srv)
    b = Held(srv)
    ok(a.rep is not None and b.rep is not None, "concurrent: two connections open at once are both served",
       (a.error, b.error))
    is_(a.engine, v[0].pid, "concurrent: the first one is given the idle engine")
    ok(b.engine is not None and b.engine != a.engine, "concurrent: the second one has another engine",
       (a.engine, b.engine))
    is_(sorted(suite.pids(srv)[5:7]), sorted([a.engine, b.engine]), "concurrent: their pid lines name the two engines")
    ok(suite.wait_until(lambda: re.search(r"^sslserver: status: 2/40$", srv.log(), re.M), 10),
       "concurrent: 'status: 2/40' while both are open")
    a.sock.sendall(b"to a\n")
    b.sock.sendall(b"to b\n")
    is_((suite.line(a.sock), suite.line(b.sock)), ("echo: to a\n", "echo: to b\n"),
        "concurrent: each session talks to its own program")
    a.close()
    b.close()
    ok(suite.wait_until(lambda: len(ends(srv)) == 7, 10), "concurrent: both end lines logged")
    c = Visit(srv)
    ok(c.rep is not None and c.pid in (a.engine, b.engine), "concurrent: then a client is given one of the two", c)

    # at most 8 idle engines are kept
    held = [Held(srv) for _ in range(10)]
    ok(all(h.rep for h in held), "idle: ten clients at once are served", [h.error for h in held])
    n = len(ends(srv))
    for h in held:
        h.sock.sendall(b"quit\n")
    for h in held:
        h.close()
    ok(suite.wait_until(lambda: len(ends(srv)) == n + 10, 10), "idle: their ten end lines are logged")
    ok(suite.wait_until(lambda: len(engines_of(srv)) <= 8, 10), "idle: at most 8 idle engines are kept",
       engines_of(srv))
    left = engines_of(srv)
    ok(len(left) >= 1, "idle: ... and with ENGINEIDLE=3600 they are still there (%d)" % len(left), left)
    srv.stop()


scenario("sequential", sequential)


# ---------------------------------------------------------------- 10. idle engines go away
def idle():
    srv = suite.Server(FAST, env=dict(ENV, ENGINEIDLE="1"))
    v = Visit(srv)
    ok(v.rep is not None and v.status == 0, "idle: a client served", v)
    _, why = suite.bound(8)
    ok(suite.wait_until(lambda: not engines_of(srv), 8), "idle: ENGINEIDLE=1: its engine retires (%s)" % why,
       engines_of(srv))
    ok(not running(v.pid), "idle: the engine that waited is gone, reaped (no zombie)", suite.proc_status(int(v.pid)))
    is_(len(ends(srv)), 1, "idle: a retired engine logs no end line")
    ok(srv.alive(), "idle: the server is still running")
    d = Visit(srv)
    ok(d.rep is not None and d.status == 0 and d.pid != v.pid, "idle: the next client is served by a new engine", d)
    held = [Held(srv) for _ in range(10)]
    ok(all(h.rep for h in held), "idle: ten clients at once are served", [h.error for h in held])
    for h in held:
        h.sock.sendall(b"quit\n")
    for h in held:
        h.close()
    ok(suite.wait_until(lambda: len(ends(srv)) == 12, 10), "idle: their ten end lines are logged")
    ok(suite.wait_until(lambda: not engines_of(srv), 8), "idle: ... and their engines go away too (%s)" % why,
       engines_of(srv))
    is_(suite.log_problems(srv), [], "idle: no warning or error logged")
    srv.stop()
    for bad in ("0", "3601", "abc", "-1"):
        rc, out, err = suite.run_server_once(["-1"], env=dict(ENV, ENGINEIDLE=bad))
        is_((rc, err), (100, "sslserver: fatal: (100) invalid ENGINEIDLE: %s (1 to 3600)\n" % bad),
            "ENGINEIDLE=%r: exit 100 and one line" % bad)


scenario("idle", idle)


# ---------------------------------------------------------------- 2. client certificates do not carry over
def client_certs():
    # An engine that can be reused asks for a client certificate only with
    # -m (an optional request comes from a rule setting CCAFILE or CAFILE,
    # and such a cdb gets no reuse): so after alice and bob, a client
    # without one is refused by the reused engine, which ends.
    srv = suite.Server(FAST + ["-m"], env=dict(ENV, CAFILE=clientca["crt"]))
    ok(srv.port, "client certs: server with -m started")
    va = Visit(srv, suite.client_context(ca["crt"], "1.3", cert=alice["crt"], key=alice["key"]))
    vb = Visit(srv, suite.client_context(ca["crt"], "1.2", cert=bob["crt"], key=bob["key"]))
    va2 = Visit(srv, ctx_with(alice))
    v = [va, vb, va2]
    ok(all_fine(v), "client certs: alice (TLSv1.3), bob (TLSv1.2), alice: served, status 0", v)
    ok(same_pid(v), "client certs: all three on one engine", v)
    is_([(x.env.get("SSL_CLIENT_S_DN_CN"), x.env.get("SSL_CLIENT_SAN_Email_0"), x.env.get("SSL_CLIENT_VERIFY"),
          x.env.get("SSL_PROTOCOL")) for x in v],
        [("alice", "alice@example.org", "SUCCESS", "TLSv1.3"), ("bob", "bob@example.org", "SUCCESS", "TLSv1.2"),
         ("alice", "alice@example.org", "SUCCESS", "TLSv1.3")],
        "client certs: each program sees its own client and protocol")
    is_([(x.env.get("SSL_CLIENT_CERT") or "").strip() for x in v],
        [open(c["crt"]).read().strip() for c in (alice, bob, alice)], "client certs: SSL_CLIENT_CERT is each one's PEM")
    ok(not any("alice" in val for val in vb.env.values()), "client certs: nothing in bob's environment names alice",
       [k for k, val in vb.env.items() if "alice" in val])
    ok(not any("bob" in val for val in va2.env.values()), "client certs: nothing in alice's after bob's names bob",
       [k for k, val in va2.env.items() if "bob" in val])
    ok(va.env.get("SSL_SESSION_ID") != va2.env.get("SSL_SESSION_ID"), "client certs: alice's two sessions differ")

    # s_client with a certificate on the same engine
    n = len(ends(srv))
    rc, out, err = suite.s_client(srv.port, ["-CAfile", ca["crt"], "-servername", "localhost", "-quiet",
                                             "-cert", bob["crt"], "-key", bob["key"]], input=b"quit\n")
    env = (suite.json_line(out) or {}).get("env", {})
    ok(suite.wait_until(lambda: len(ends(srv)) > n, 10) and suite.pids(srv)[n] == va.pid,
       "client certs: s_client with bob's certificate on that engine too", suite.pids(srv)[n:])
    is_(env.get("SSL_CLIENT_S_DN_CN"), "bob", "client certs: ... its program sees bob")

    vn = Visit(srv)
    ok(vn.rep is None, "client certs: a client without one is refused by the reused engine, no program", vn)
    is_(vn.pid, va.pid, "client certs: ... on that engine")
    is_(vn.status, 28160, "client certs: ... which ends with status 110")
    like(srv.log(), r"^sslserver: .*client certificate refused from: 127\.0\.0\.1 for pid: %s\b" % vn.pid,
         "client certs: 'client certificate refused' logged for it")
    ok(gone(vn.pid), "client certs: ... and exits")
    vb2 = Visit(srv, ctx_with(bob))
    ok(vb2.rep is not None and vb2.pid not in (None, vn.pid), "client certs: bob after that has a new engine", vb2)
    is_(vb2.env.get("SSL_CLIENT_S_DN_CN"), "bob", "client certs: ... and sees bob")
    srv.stop()


scenario("client certs", client_certs)


# ---------------------------------------------------------------- 2, 7. rule variables, addresses, deny, bad handshakes
def rules_and_failures():
    cdb = cdb_of('127.0.0.2:allow,WHO="two",ONLY2="yes"\n127.0.0.3:allow,WHO="three"\n'
                 '127.0.0.4:deny\n:allow,WHO="default"\n', "plain")
    srv = suite.Server(FAST + ["-e", "-x", cdb], env=ENV)
    ok(srv.port, "rules: server with a cdb of plain variables started")
    v2 = Visit(srv, src="127.0.0.2")
    v3 = Visit(srv, src="127.0.0.3")
    v1 = Visit(srv, src="127.0.0.1")
    v2b = Visit(srv, src="127.0.0.2")
    v = [v2, v3, v1, v2b]
    ok(all_fine(v), "rules: .2, .3, .1, .2 served", v)
    ok(same_pid(v), "rules: all four on one engine (a cdb without TLS variables allows reuse)", v)
    want = [("127.0.0.2", "two", "yes"), ("127.0.0.3", "three", None), ("127.0.0.1", "default", None),
            ("127.0.0.2", "two", "yes")]
    got = [(x.env.get("TCPREMOTEIP"), x.env.get("WHO"), x.env.get("ONLY2")) for x in v]
    is_(got, want, "rules: each program sees its own TCPREMOTEIP and rule variables, none of the one before")
    is_([(x.env.get("SSLREMOTEIP"), x.env.get("TCPREMOTEPORT") == x.env.get("SSLREMOTEPORT")) for x in v],
        [(w[0], True) for w in want], "rules: SSLREMOTEIP/SSLREMOTEPORT are the connection's own")
    is_(len(set(x.env.get("TCPREMOTEPORT") for x in v)), 4, "rules: four different client ports seen")
    like(srv.log(), r"^sslserver: ok %s .*:127\.0\.0\.3::\d+$" % v3.pid, "rules: the ok line names .3 for that connection")

    # 7. deny on a reused engine: it ends (100); the next client is served
    good = Visit(srv, src="127.0.0.2")
    deny = Visit(srv, src="127.0.0.4")
    ok(deny.rep is None, "deny: .4 is refused", deny)
    is_(deny.pid, good.pid, "deny: by the engine that was idle")
    is_(deny.status, 25600, "deny: end status 25600 (exit 100)")
    like(srv.log(), r"^sslserver: deny %s .*:127\.0\.0\.4::\d+$" % deny.pid, "deny: 'deny PID' logged")
    ok(gone(deny.pid), "deny: that engine exits")
    after = Visit(srv, src="127.0.0.3")
    ok(after.rep is not None and after.status == 0, "deny: the next client is served", after)
    ok(after.pid != deny.pid, "deny: ... by a new engine", after)
    is_((after.env.get("TCPREMOTEIP"), after.env.get("WHO"), after.env.get("ONLY2")), ("127.0.0.3", "three", None),
        "deny: ... with its own rule's variables")

    # 7. a client speaking plain text to a reused engine: the handshake
    # fails, the engine ends; the next client is served well
    again = Visit(srv, src="127.0.0.3")
    ok(again.pid == after.pid, "bad handshake: (an engine idle again first)", again)
    np, ne = len(suite.pids(srv)), len(ends(srv))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as s:
        s.sendall(b"EHLO plain.example\r\n")
        got = suite.read_all(s)
    ok(suite.wait_until(lambda: len(ends(srv)) > ne, 10), "bad handshake: its end line is logged")
    bad_pid, bad_status = ends(srv)[ne]
    is_(suite.pids(srv)[np], after.pid, "bad handshake: served by the idle engine")
    ok(bad_status != "0" and bad_pid == after.pid, "bad handshake: it ends with a failure status (%s)" % bad_status)
    ok(not got.startswith(b"echo"), "bad handshake: the client got no program output", got)
    ok(gone(bad_pid), "bad handshake: that engine exits")
    last = [Visit(srv, src="127.0.0.2"), Visit(srv, src="127.0.0.2")]
    ok(all_fine(last), "bad handshake: the next clients are served", last)
    ok(same_pid(last) and last[0].pid != bad_pid, "bad handshake: ... by one new engine, reused", last)
    is_([(x.env.get("WHO"), x.env.get("ONLY2")) for x in last], [("two", "yes")] * 2,
        "bad handshake: ... with their rule's variables")
    unlike(srv.log(), r"status (6|11|134|139)$", "rules and failures: no engine died of a signal")
    srv.stop()


scenario("rules and failures", rules_and_failures)


# ---------------------------------------------------------------- the STARTTLS front's buffers
def smtp_session(srv, pipelined):
    """EHLO, STARTTLS (with pipelined bytes after it, which the front
    discards), EHLO and QUIT inside TLS; returns the replies."""
    replies = []
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        replies.append(suite.smtp_reply(raw))
        raw.sendall(b"EHLO client.example\r\n")
        replies.append(suite.smtp_reply(raw))
        raw.sendall(b"STARTTLS\r\n" + pipelined)
        replies.append(suite.smtp_reply(raw))
        s = CTX.wrap_socket(raw, server_hostname="localhost")
        s.sendall(b"EHLO inside.example\r\n")
        replies.append(suite.smtp_reply(s))
        s.sendall(b"QUIT\r\n")
        replies.append(suite.smtp_reply(s))
        s.close()
    return replies


def front():
    record = os.path.join(suite.tmpdir(), "lines")
    open(record, "w").close()
    srv = suite.Server(FAST, env=dict(ENV, STARTTLS="smtp"),
                       app=[suite.PYTHON, os.path.join(suite.BIN, "line-daemon.py"), "smtp", record])
    got = []
    for pipelined in (b"MAIL FROM:<secret-one@example.org>\r\n", b""):
        n = len(ends(srv))
        open(record, "w").close()
        try:
            r = smtp_session(srv, pipelined)
        except (ssl.SSLError, OSError) as e:
            r = "error: %s" % e
        ok(suite.wait_until(lambda: len(ends(srv)) > n, 10), "STARTTLS front: session ended")
        with open(record) as f:
            got.append((r[-1] if isinstance(r, list) else r, [l for l in f.read().splitlines() if l != "started"]))
    p = suite.pids(srv)
    ok(len(p) == 2 and p[0] == p[1], "STARTTLS front: two SMTP sessions on one engine", p)
    is_([g[0] for g in got], [["221 2.0.0 bye"]] * 2, "STARTTLS front: both sessions ended with QUIT's reply")
    want = [repr(b"EHLO client.example\r\n"), repr(b"EHLO inside.example\r\n"), repr(b"QUIT\r\n")]
    is_([g[1] for g in got], [want, want],
        "STARTTLS front: the daemons saw their own lines only: not what was pipelined after STARTTLS, "
        "in that session or the next")
    is_([s for _, s in ends(srv)], ["0", "0"], "STARTTLS front: status 0 each")
    srv.stop()


scenario("STARTTLS front", front)


# ---------------------------------------------------------------- 4. ENGINEREUSE
def enginereuse():
    srv = suite.Server(FAST, env=dict(ENV, ENGINEREUSE="1"))
    v = [Visit(srv) for _ in range(3)]
    ok(all_fine(v), "ENGINEREUSE=1: three clients served", v)
    ok(len(set(x.pid for x in v)) == 3, "ENGINEREUSE=1: three engine pids, no reuse", v)
    ok(all(gone(x.pid) for x in v), "ENGINEREUSE=1: each engine exited with its connection")
    is_(v[0].env.get("ENGINEREUSE"), "1", "ENGINEREUSE=1: the program sees it unchanged")
    srv.stop()

    srv = suite.Server(FAST, env=dict(ENV, ENGINEREUSE="3"))
    v = [Visit(srv) for _ in range(7)]
    ok(all_fine(v), "ENGINEREUSE=3: seven clients served", v)
    p = [x.pid for x in v]
    ok(p[0] == p[1] == p[2] and p[3] == p[4] == p[5] and len({p[0], p[3], p[6]}) == 3,
       "ENGINEREUSE=3: engines serve three connections each (pids %s)" % " ".join(map(str, p)))
    ok(gone(p[0]) and gone(p[3]), "ENGINEREUSE=3: an engine that served three has exited")
    is_(suite.log_problems(srv), [], "ENGINEREUSE=3: no warning or error logged")
    srv.stop()

    srv = suite.Server(FAST, env=dict(ENV, ENGINEREUSE=""))
    v = [Visit(srv) for _ in range(2)]
    ok(all_fine(v) and same_pid(v), "ENGINEREUSE empty: the default, engines reused", v)
    srv.stop()

    for bad in ("0", "100001", "abc", "-1", "5x", " 5"):
        # (-1: without the check, the server would print its port at once)
        rc, out, err = suite.run_server_once(["-1"], env=dict(ENV, ENGINEREUSE=bad))
        is_((rc, err), (100, "sslserver: fatal: (100) invalid ENGINEREUSE: %s (1 to 100000)\n" % bad),
            "ENGINEREUSE=%r: exit 100 and one line" % bad)
    rc, out, err = suite.run_server_once(["-1"], env=dict(ENV, ENGINEREUSE="100000"))
    ok(rc is None and " : " in out, "ENGINEREUSE=100000: accepted, the server listens", (rc, out, err))


scenario("ENGINEREUSE", enginereuse)


# ---------------------------------------------------------------- the program's status
def statuses():
    for app, want, what in (([suite.PYTHON, suite.REPORT, "exit", "3"], 768, "exits 3"),
                            (["sh", "-c", "kill -TERM $$"], (128 + 15) * 256, "is killed by SIGTERM")):
        srv = suite.Server(FAST, env=ENV, app=app)
        st = []
        for _ in range(2):
            n = len(ends(srv))
            try:
                with suite.tls_connect(srv.port, CTX) as s:
                    suite.read_all(s)
            except (ssl.SSLError, OSError) as e:
                diag("client: %s" % e)
            if suite.wait_until(lambda: len(ends(srv)) > n, 10):
                st.append(ends(srv)[n])
        p = suite.pids(srv)
        is_([int(x[1]) for x in st], [want] * 2, "a program that %s: end status %d each time" % (what, want))
        ok(len(p) == 2 and p[0] == p[1], "a program that %s: the engine is reused all the same" % what, p)
        srv.stop()


scenario("program status", statuses)


# ---------------------------------------------------------------- 5. where engines are not reused
def no_reuse(what, opts, env, n=2):
    srv = suite.Server(FAST + list(opts), env=env)
    if not ok(srv.port, "%s: server started" % what, srv.log()):
        return None
    v = [Visit(srv) for _ in range(n)]
    srv.stop()
    return v


def conditions():
    jail = suite.tmpdir()
    if ROOT:
        v = no_reuse("-u/-g", ["-u", "7791", "-g", "7792"], ENV)
        ok(v and all_fine(v) and same_pid(v), "-u/-g alone (the engine's identity is the program's): reused", v)
        ok(v and v[0].rep and (v[0].rep["uid"], v[0].rep["gid"]) == (7791, 7792), "-u/-g: the program runs as -u/-g")
        v = no_reuse("SSL_UID", ["-u", "7791", "-g", "7792"], dict(ENV, SSL_UID="7793", SSL_GID="7794"))
        ok(v and all_fine(v) and v[0].pid != v[1].pid, "SSL_UID/SSL_GID other than -u/-g: not reused", v)
        v = no_reuse("SSL_UID same", ["-u", "7791", "-g", "7792"], dict(ENV, SSL_UID="7791", SSL_GID="7792"))
        ok(v and all_fine(v) and same_pid(v), "SSL_UID/SSL_GID equal to -u/-g: reused", v)
        v = no_reuse("SSL_CHROOT", ["-u", "7791", "-g", "7792"], dict(ENV, SSL_CHROOT=jail))
        ok(v and all_fine(v) and v[0].pid != v[1].pid, "SSL_CHROOT: not reused", v)
    else:
        for name in ("-u/-g reused", "SSL_UID: not reused", "SSL_UID equal: reused", "SSL_CHROOT: not reused"):
            skip(name, "needs root")
    v = no_reuse("SNI", [], dict(ENV, **{"CERTFILE:a.example": sni_leaf["pem"], "KEYFILE:a.example": sni_leaf["key"]}))
    ok(v and all_fine(v) and v[0].pid != v[1].pid, "SNI pairs: not reused", v)

    plain = cdb_of('127.0.0.9:allow,FOO="bar"\n:allow\n', "cond-plain")
    v = no_reuse("cdb plain", ["-x", plain], ENV)
    ok(v and all_fine(v) and same_pid(v), "cdb with plain variables only: reused", v)
    for var, val in (("CIPHERS", "ECDHE+AESGCM"), ("CERTFILE", leaf2["pem"]), ("CCAFILE", clientca["crt"]),
                     ("TLSMINVERSION", "TLSv1.3"), ("SSL_UID", "7791")):
        if var == "SSL_UID" and not ROOT:
            skip("cdb with a rule setting SSL_UID: not reused", "needs root")
            continue
        cdb = cdb_of('127.0.0.9:allow,%s="%s"\n:allow\n' % (var, val), "cond-" + var)
        v = no_reuse("cdb " + var, ["-x", cdb], ENV)
        ok(v and all_fine(v) and v[0].pid != v[1].pid,
           "cdb with a rule (for another client) setting %s: not reused" % var, v)

    # the cdb replaced while running (as tcprules does): read again
    live = os.path.join(D, "live.cdb")
    shutil.copy(plain, live)
    srv = suite.Server(FAST + ["-x", live], env=ENV)
    v = [Visit(srv), Visit(srv)]
    ok(all_fine(v) and same_pid(v), "live cdb: plain, reused", v)
    cdb_of('127.0.0.9:allow,CIPHERS="ECDHE+AESGCM"\n:allow,FOO="tls"\n', "live")
    w = [Visit(srv), Visit(srv)]
    ok(all_fine(w) and len({v[0].pid, w[0].pid, w[1].pid}) == 3,
       "live cdb: rebuilt with a TLS variable: the next connections get engines of their own", w)
    is_([x.env.get("FOO") for x in w], ["tls", "tls"], "live cdb: ... and read the new rules")
    cdb_of(':allow,FOO="plain again"\n', "live")
    x = [Visit(srv), Visit(srv)]
    ok(all_fine(x) and same_pid(x), "live cdb: rebuilt plain again: reused again", x)
    is_([y.env.get("FOO") for y in x], ["plain again"] * 2, "live cdb: ... with the new rules")
    srv.stop()


scenario("conditions", conditions)


# ---------------------------------------------------------------- 6. SIGHUP
def sighup():
    crt, key = os.path.join(D, "hup.pem"), os.path.join(D, "hup.key")
    shutil.copy(leaf1["pem"], crt)
    shutil.copy(leaf1["key"], key)
    srv = suite.Server(FAST, env={"CERTFILE": crt, "KEYFILE": key})
    v = [Visit(srv), Visit(srv)]
    ok(all_fine(v) and same_pid(v), "SIGHUP: before it, one engine reused", v)
    is_([x.peer_cn for x in v], ["server-one"] * 2, "SIGHUP: ... serving the first certificate")
    busy = Held(srv)
    is_(busy.engine, v[0].pid, "SIGHUP: a connection in progress on that engine")
    shutil.copy(leaf2["pem"], crt)
    shutil.copy(leaf2["key"], key)
    srv.signal(signal.SIGHUP)
    ok(srv.wait_log(r"^sslserver: reloaded TLS material$"), "SIGHUP: 'reloaded TLS material' logged")
    busy.sock.sendall(b"still there\n")
    is_(suite.line(busy.sock), "echo: still there\n", "SIGHUP: the connection in progress goes on")
    n = len(ends(srv))
    busy.close()
    ok(suite.wait_until(lambda: len(ends(srv)) > n, 10) and ends(srv)[n] == (v[0].pid, "0"),
       "SIGHUP: it ends with status 0", ends(srv)[n:])
    ok(gone(v[0].pid), "SIGHUP: then the old engine exits")
    w = [Visit(srv), Visit(srv)]
    ok(all_fine(w), "SIGHUP: the next clients are served", w)
    is_([x.peer_cn for x in w], ["server-two"] * 2, "SIGHUP: ... with the new certificate")
    is_([x.env.get("SSL_SERVER_S_DN_CN") for x in w], ["server-two"] * 2, "SIGHUP: ... as the program sees it too")
    ok(w[0].pid != v[0].pid and same_pid(w), "SIGHUP: ... by a new engine, reused in its turn", w)
    is_([l for l in suite.log_problems(srv) if "warning: check: " not in l], [], "SIGHUP: no warning or error logged")
    srv.stop()


scenario("SIGHUP", sighup)


# ---------------------------------------------------------------- 8. -c
def limit():
    srv = suite.Server(FAST + ["-c", "1"], env=ENV)
    first = Visit(srv)
    ok(first.rep is not None and running(first.pid), "-c 1: a client served, its engine left idle", first)
    ok(suite.wait_until(lambda: srv.log().rstrip().endswith("status: 0/1"), 10),
       "-c 1: 'status: 0/1' with the idle engine there")
    a = Held(srv)
    ok(a.rep is not None, "-c 1: the next client is served although an engine is idle", a.error)
    is_(a.engine, first.pid, "-c 1: ... by the idle engine")
    got = {}

    def second():
        h = Held(srv, ctx=CTX)
        got["at"] = time.monotonic()
        got["held"] = h

    t = threading.Thread(target=second, daemon=True)
    t.start()
    early = suite.wait_until(lambda: "held" in got, 1.5, scaled=False)
    ok(not early, "-c 1: a second client at the same time gets no program while the first is busy")
    is_(len(suite.pids(srv)), 2, "-c 1: ... and is not accepted")
    closed_at = time.monotonic()
    a.close()
    t.join(suite.patience(15))
    h = got.get("held")
    ok(h is not None and h.rep is not None, "-c 1: it is served once the first ends", h and h.error)
    ok(got.get("at", 0) >= closed_at, "-c 1: ... not before")
    is_(h and h.engine, first.pid, "-c 1: ... by the same engine, idle again")
    if h:
        h.close()
    unlike(srv.log(), r"^sslserver: status: [2-9]/1$", "-c 1: never more than one busy")
    srv.stop()


scenario("-c", limit)


# ---------------------------------------------------------------- 9. tickets
def tickets():
    srv = suite.Server(FAST, env=ENV)
    sess = os.path.join(D, "s_client.sess")
    base = ["-CAfile", ca["crt"], "-servername", "localhost", "-verify_return_error"]
    for version in ("-tls1_3", "-tls1_2"):
        n = len(ends(srv))
        rc, out1, err = suite.s_client(srv.port, base + [version, "-sess_out", sess], input=b"quit\n")
        ok(suite.wait_until(lambda: len(ends(srv)) == n + 1, 10), "tickets %s: first session ended" % version)
        rc, out2, err = suite.s_client(srv.port, base + [version, "-sess_in", sess], input=b"quit\n")
        ok(suite.wait_until(lambda: len(ends(srv)) == n + 2, 10), "tickets %s: second session ended" % version)
        like(out1, r"^New, TLSv1\.[23]", "tickets %s: first session is new" % version)
        like(out2, r"^Reused, TLSv1\.[23]", "tickets %s: s_client -sess_in resumes" % version)
        p = suite.pids(srv)[n:n + 2]
        ok(len(p) == 2 and p[0] == p[1], "tickets %s: both on one engine" % version, p)
        is_([(suite.json_line(o) or {}).get("env", {}).get("SSL_SESSION_RESUMED") for o in (out1, out2)],
            ["Initial", "Resumed"], "tickets %s: the programs see SSL_SESSION_RESUMED Initial, then Resumed" % version)
        # the engine busy: the session resumes on another engine too
        busy = Held(srv)
        n = len(ends(srv))
        rc, out3, err = suite.s_client(srv.port, base + [version, "-sess_in", sess], input=b"quit\n")
        ok(suite.wait_until(lambda: len(ends(srv)) == n + 1, 10), "tickets %s: third session ended" % version)
        like(out3, r"^Reused, TLSv1\.[23]", "tickets %s: resumes on another engine" % version)
        other = suite.pids(srv)[-1]
        ok(other != busy.engine, "tickets %s: (that was another engine: %s, the busy one %s)" % (
            version, other, busy.engine))
        busy.close()
        ok(suite.wait_until(lambda: len(ends(srv)) == n + 2, 10), "tickets %s: held session ended" % version)
    srv.stop()


scenario("tickets", tickets)


# ---------------------------------------------------------------- 11. SIGTERM
def session_procs(sid):
    """Running processes of the session sid (the server's: it leads one)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(d))
    return out


def sigterm():
    srv = suite.Server(FAST, env=ENV)
    a, b = Held(srv), Held(srv)
    a.close()
    b.close()
    ok(suite.wait_until(lambda: len(ends(srv)) == 2, 10), "SIGTERM: two connections ended")
    idle = engines_of(srv)
    busy = Held(srv)
    ok(busy.rep is not None, "SIGTERM: a connection in progress", busy.error)
    ok(len([p for p in idle if str(p) != busy.engine]) >= 1, "SIGTERM: with an idle engine besides it", idle)
    sid = srv.proc.pid
    srv.signal(signal.SIGTERM)
    is_(srv.wait(10), 0, "SIGTERM: the server exits 0")
    ok(suite.wait_until(lambda: all(not running(p) for p in idle if str(p) != busy.engine), 8),
       "SIGTERM: the idle engines exit", [p for p in idle if running(p)])
    busy.sock.sendall(b"after SIGTERM\n")
    is_(suite.line(busy.sock), "echo: after SIGTERM\n", "SIGTERM: the connection in progress goes on")
    busy.close()
    ok(suite.wait_until(lambda: not session_procs(sid), 8), "SIGTERM: then no process of the server is left",
       [(p, suite.proc_status(p)) for p in session_procs(sid)])


scenario("SIGTERM", sigterm)
