#!/usr/bin/python3
# sslserver -x with real TLS clients connecting from several 127.0.0.0/8
# source addresses: cdb files built by Debian's tcprules and by sslrules;
# allow, deny and rule variables as the program sees them; tcpserver's key
# order (exact, =host, prefixes, =.suffix, =, default), ranges; a deny sends
# nothing; rule variables override connection variables; =host rules via
# PTR names from an /etc/hosts bind mount (with and without -p); info@ip
# via a fake identd, and -t bounding a silent one; per-rule certificate,
# cipher suites, minimum version, client-certificate request and deferred
# mode; MAXCONIP global and per rule, counted per client; the cdb replaced
# while running; missing and corrupt cdb files; sslhandoff -x under
# tcpserver.
import os
import random
import re
import shutil
import smtplib
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike, diag, scenario  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
leaf = pki.leaf("server", ca, dns=("localhost",), ips=("127.0.0.1",))
alt = pki.leaf("alt-server", ca, dns=("localhost",), ips=("127.0.0.1",))
cca = pki.ca("client-ca")
client = pki.leaf("client", cca, dns=(), client=True)
ENV = {"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"]}
CTX = suite.client_context(ca["crt"])
SSLRULES = suite.prog("sslrules")
SMTPD = [suite.PYTHON, os.path.join(suite.TOP, "examples", "starttls-smtpd")]
D = suite.tmpdir()
BUILDERS = (("tcprules", "tcprules"), ("sslrules", SSLRULES))


def cdb_of(text, name, builder="tcprules"):
    """Compiles rule text with Debian's tcprules or sslrules; returns the cdb path."""
    prog = dict(BUILDERS)[builder]
    cdb = os.path.join(D, name + ".cdb")
    r = subprocess.run([prog, cdb, cdb + ".tmp"], input=text.encode(), capture_output=True, timeout=suite.patience(10))
    if r.returncode:
        diag("%s failed on %s: %s" % (builder, name, r.stderr.decode()))
    return cdb


class Conn:
    """A TLS connection to the report program from a chosen source address.
    .rep is the program's report (None if refused), .error the failure."""

    def __init__(self, port, src, ctx=CTX, sni="localhost", timeout=10):
        self.sock, self.rep, self.error = None, None, None
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=suite.patience(timeout), source_address=(src, 0))
            self.sock = ctx.wrap_socket(raw, server_hostname=sni)
            self.rep = suite.report_of(self.sock, timeout)
        except (ssl.SSLError, OSError) as e:
            self.error = e

    @property
    def env(self):
        return self.rep["env"] if self.rep else {}

    def close(self):
        if self.sock is not None:
            try:
                if self.rep:
                    self.sock.sendall(b"quit\n")
                    suite.read_all(self.sock, 10)
            except (ssl.SSLError, OSError):
                pass
            self.sock.close()
            self.sock = None


def visit(port, src, **kw):
    """One complete TLS visit; returns the program's environment, or None if refused."""
    c = Conn(port, src, **kw)
    env = c.env if c.rep else None
    c.close()
    return env


HELLO = suite.client_hello()


def refused(port, src, hello=True, timeout=10):
    """Connects from src, sends a ClientHello (or nothing) and reads until the
    server closes. Returns what came back: b"" for a plain close (EOF or
    reset), the bytes otherwise, or "timeout" if the server kept the
    connection open."""
    with socket.create_connection(("127.0.0.1", port), timeout=suite.patience(timeout), source_address=(src, 0)) as s:
        if hello:
            s.sendall(HELLO)
        data = b""
        s.settimeout(suite.patience(timeout))
        try:
            while True:
                c = s.recv(65536)
                if not c:
                    break
                data += c
        except ConnectionResetError:
            pass
        except socket.timeout:
            return "timeout"
        return data


def new_pid(srv, src, before, prog="sslserver"):
    """The pid of the connection from src logged after the first `before` ones."""
    p = suite.wait_until(lambda: len(suite.pids(srv, prog, src)) > before and suite.pids(srv, prog, src), 10)
    return p[before] if p else "none"


def no_crash(srv, name):
    unlike(srv.log(), r"status (6|11|134|139)$", "%s: no connection died of a signal" % name)
    ok(srv.alive(), "%s: the server is still running" % name)


# ---------------------------------------------------------------- allow, deny, env, precedence

RULES = """# precedence and ranges
127.0.0.2:allow,WHICH="exact"
127.0.0.3:deny
127.0.0.:allow,WHICH="p3",RELAYCLIENT=""
127.0.1.:deny
127.0.1:allow,WHICH="no-dot-never-a-prefix"
127.0.2.10-12:allow,WHICH="range"
127.0.2.:deny
127.0.3-4.:allow,WHICH="range-prefix"
127.0.5.250-300:allow,WHICH="clipped"
127.0.5.:deny
127.0.6.5-3:allow,WHICH="never"
127.0.6.:deny
127.0.7.9:allow,PROTO="XYZ",SSLREMOTEHOST="spoofed",A="1",A="2",V="a,b:c=d"
127.0.8.1:deny,WHY="x"
127.0.8.1:allow,WHICH="second"
127.0.8.2:allow,WHICH="first"
127.0.8.2:deny
=:deny
:allow,WHICH="default"
"""
CASES = [
    ("127.0.0.2", "exact", "exact IP beats its prefix"),
    ("127.0.0.3", None, "exact deny beats an allowing prefix"),
    ("127.0.0.9", "p3", "longest prefix 127.0.0."),
    ("127.0.1.1", None, "prefix deny; the dotless 127.0.1 is never a prefix"),
    ("127.0.2.11", "range", "range 10-12 covers .11"),
    ("127.0.2.13", None, "range 10-12 ends at .12"),
    ("127.0.3.7", "range-prefix", "prefix range 3-4 covers 127.0.3."),
    ("127.0.4.7", "range-prefix", "prefix range 3-4 covers 127.0.4."),
    ("127.0.5.255", "clipped", "250-300 clipped at .255"),
    ("127.0.5.249", None, "250-300 starts at .250"),
    ("127.0.6.4", None, "5-3 writes no keys"),
    ("127.0.8.1", None, "first duplicate (deny) wins"),
    ("127.0.8.2", "first", "first duplicate (allow) wins"),
    ("127.0.9.9", "default", "no other match: the empty key; '=' skipped without a host name"),
]
for builder, _ in BUILDERS:
    cdb = cdb_of(RULES, "precedence-" + builder, builder)
    srv = suite.Server(["-v", "-H", "-R", "-x", cdb], env=ENV)
    ok(srv.port, "%s cdb: server started" % builder)
    for src, which, what in CASES:
        env = visit(srv.port, src)
        if which is None:
            ok(env is None, "%s cdb, %s: denied (%s)" % (builder, src, what), env)
        else:
            is_(env.get("WHICH") if env else "refused", which, "%s cdb, %s: %s" % (builder, src, what))
            is_(env.get("SSLREMOTEIP") if env else None, src, "%s cdb, %s: SSLREMOTEIP" % (builder, src))
    env = visit(srv.port, "127.0.0.9") or {}
    is_(env.get("RELAYCLIENT"), "", "%s cdb: an empty value sets the variable to the empty string" % builder)
    env = visit(srv.port, "127.0.0.2") or {}
    ok("RELAYCLIENT" not in env, "%s cdb: variables of rules that did not match are absent" % builder)
    env = visit(srv.port, "127.0.7.9") or {}
    is_((env.get("PROTO"), env.get("SSLREMOTEHOST")), ("XYZ", "spoofed"),
        "%s cdb: rule variables override PROTO and SSLREMOTEHOST" % builder)
    is_((env.get("A"), env.get("V")), ("2", "a,b:c=d"), "%s cdb: later duplicate variable wins; value bytes kept" % builder)
    is_(env.get("SSLREMOTEIP"), "127.0.7.9", "%s cdb: connection variables not overridden are kept" % builder)
    no_crash(srv, "%s cdb" % builder)
    srv.stop()

# A deny: nothing is sent, not even a ServerHello; the connection ends 100.
cdb = cdb_of("127.0.0.3:deny\n127.0.0.4:deny,WHY=\"x\"\n", "deny")
srv = suite.Server(["-v", "-H", "-R", "-x", cdb], env=ENV)
is_(refused(srv.port, "127.0.0.3", hello=False), b"", "deny, silent client: plain EOF, no bytes")
pid = new_pid(srv, "127.0.0.3", 0)
ok(srv.wait_log(r"^sslserver: deny %s :127\.0\.0\.1:%d :127\.0\.0\.3::\d+$" % (pid, srv.port)),
   "deny: 'sslserver: deny PID ...' logged with -v", srv.log())
is_(suite.end_status(srv, pid), 25600, "deny: end status 25600 (exit 100)")
is_(refused(srv.port, "127.0.0.3"), b"", "deny, client sends a ClientHello: no ServerHello, just the close")
is_(refused(srv.port, "127.0.0.4"), b"", "deny with variables after it: still nothing sent")
unlike(srv.log(), r"^sslserver: (ok|tls) ", "deny: no ok or tls line")
env = visit(srv.port, "127.0.0.5")
ok(env is not None and "WHY" not in env, "no matching rule and no default: allowed, no rule variables")
srv.stop()

# An IPv6 client (::1) against sslrules-built IPv6 keys: exact, then ':' prefixes.
for text, which, what in (('::1:allow,WHICH="v6-exact"\n:::allow,WHICH="v6-prefix"\n:deny\n', "v6-exact", "exact ::1"),
                          (':::allow,WHICH="v6-prefix"\n:deny\n', "v6-prefix", "the ':' prefix ::")):
    cdb = cdb_of(text, "v6", "sslrules")
    srv = suite.Server(["-v", "-H", "-R", "-x", cdb], env=ENV, host="::1")
    env = None
    try:
        with CTX.wrap_socket(socket.create_connection(("::1", srv.port), timeout=suite.patience(10)), server_hostname="localhost") as s:
            env = (suite.report_of(s) or {}).get("env")
            s.sendall(b"quit\n")
    except (ssl.SSLError, OSError) as e:
        diag(str(e))
    is_((env or {}).get("WHICH"), which, "IPv6 client ::1 matches %s" % what)
    is_((env or {}).get("SSLREMOTEIP"), "::1", "IPv6 client: SSLREMOTEIP=::1")
    srv.stop()

# ---------------------------------------------------------------- =host and =.domain via PTR names

HOSTS = os.path.join(D, "hosts")
with open(HOSTS, "w") as f:
    f.write("127.0.0.1 localhost\n127.0.0.70 host.example.com\n127.0.0.76 host.example.com\n"
            "127.0.0.71 deep.sub.example.org\n127.0.0.72 mail.example.net\n127.0.0.73 Local.Example.COM\n"
            "127.0.0.74 127.0.0.98\n127.0.0.75 other.test\n127.0.1.5 host2.example.org\n"
            "127.0.1.6 host3.example.org\n")
HOSTRULES = """127.0.0.76:allow,WHICH="exact-ip"
=host.example.com:allow,WHICH="host"
=.sub.example.org:allow,WHICH="sub"
=.example.org:allow,WHICH="org"
=example.net:deny
=local.example.com:allow,WHICH="lower"
=127.0.0.98:allow,WHICH="unverified"
127.0.1.:allow,WHICH="prefix"
=host3.example.org:allow,WHICH="host3"
=:allow,WHICH="anyhost"
:allow,WHICH="nohost"
"""


def ns_server(opts, cdb, app=None):
    """sslserver in a private mount namespace where /etc/hosts is HOSTS."""
    app = app or [suite.PYTHON, suite.REPORT]
    return suite.PortCommand(["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', HOSTS,
                              suite.prog("sslserver"), "-1"] + list(opts) + ["-x", cdb, "127.0.0.1", "0"] + app,
                             env=ENV)


HOSTCASES = [
    ("127.0.0.70", "host.example.com", "host", "=host matches the PTR name"),
    ("127.0.0.76", "host.example.com", "exact-ip", "exact IP beats =host"),
    ("127.0.0.71", "deep.sub.example.org", "sub", "longest =.suffix first"),
    ("127.0.0.72", "mail.example.net", "anyhost", "=example.net is not a suffix; '=' matches any name"),
    ("127.0.0.73", "local.example.com", "lower", "the name is lower-cased"),
    ("127.0.0.74", "127.0.0.98", "unverified", "without -p the name is used unchecked"),
    ("127.0.0.75", "other.test", "anyhost", "'=' for a name no other rule matches"),
    ("127.0.1.5", "host2.example.org", "prefix", "IP prefixes beat =.suffix"),
    ("127.0.1.6", "host3.example.org", "host3", "=host beats IP prefixes"),
]
for builder, _ in BUILDERS:
    cdb = cdb_of(HOSTRULES, "hosts-" + builder, builder)
    srv = ns_server(["-v", "-R"], cdb)
    if not ok(srv.port, "%s cdb: sslserver started under unshare -m with the hosts file" % builder):
        diag(srv.log())
        continue
    for src, host, which, what in HOSTCASES:
        env = visit(srv.port, src) or {}
        is_((env.get("WHICH"), env.get("SSLREMOTEHOST")), (which, host), "%s cdb, %s: %s" % (builder, src, what))
    is_((visit(srv.port, "127.0.0.70") or {}).get("SSLLOCALHOST"), "localhost", "%s cdb: SSLLOCALHOST from the hosts file" % builder)
    no_crash(srv, "%s cdb, host names" % builder)
    srv.stop()

cdb = cdb_of(HOSTRULES, "hosts-p")
srv = ns_server(["-v", "-R", "-p"], cdb)
env = visit(srv.port, "127.0.0.70") or {}
is_((env.get("WHICH"), env.get("SSLREMOTEHOST")), ("host", "host.example.com"), "-p: a name that resolves back is used")
env = visit(srv.port, "127.0.0.74") or {}
is_((env.get("WHICH"), env.get("SSLREMOTEHOST")), ("nohost", None),
    "-p: a name that does not resolve back is not used (no =host, no '=', no SSLREMOTEHOST)")
srv.stop()
srv = ns_server(["-v", "-R", "-H"], cdb)
env = visit(srv.port, "127.0.0.70") or {}
is_((env.get("WHICH"), env.get("SSLREMOTEHOST")), ("nohost", None), "-H: no name, the =... rules are skipped")
srv.stop()

# ---------------------------------------------------------------- info@ip via a fake identd


class Identd:
    """RFC 1413 on ADDR:113: answers "USERID : UNIX : user", an ERROR, or nothing."""

    def __init__(self, addr, mode, user="joe"):
        self.addr, self.mode, self.user = addr, mode, user
        self.queries, self.held = [], []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, 113))
        self.sock.listen(8)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if self.mode == "silent":
                self.held.append(c)
                continue
            c.settimeout(suite.patience(10))
            q = b""
            try:
                while not q.endswith(b"\n"):
                    x = c.recv(100)
                    if not x:
                        break
                    q += x
                self.queries.append(q.decode("ascii", "replace"))
                ports = q.decode("ascii", "replace").strip()
                if self.mode == "user":
                    c.sendall(("%s : USERID : UNIX : %s\r\n" % (ports, self.user)).encode())
                else:
                    c.sendall(("%s : ERROR : NO-USER\r\n" % ports).encode())
            except OSError:
                pass
            c.close()


IDENTRULES = """joe@127.0.113.1:allow,WHICH="joe-ip"
127.0.113.1:allow,WHICH="ip"
@127.0.113.2:allow,WHICH="empty-info"
127.0.113.2:allow,WHICH="ip2"
joe@127.0.113.:deny
127.0.113.:allow,WHICH="prefix"
:allow,WHICH="default"
"""
try:
    identds = [Identd("127.0.113.1", "user"), Identd("127.0.113.2", "error"), Identd("127.0.113.3", "silent"),
               Identd("127.0.113.5", "user")]
except OSError as e:
    identds = None
    ok(False, "fake identd listening on 127.0.113.x:113", str(e))
if identds:
    # Where the identd answers, -t only bounds the wait: it is made long
    # enough for a slow or busy machine (the answer comes from a thread of
    # this test). The silent identd below keeps -t 2, the time it measures.
    ANSWER_T = str(max(2, int(round(suite.patience(5)))))
    # The oracle: Debian's tcpserver with the same identd and rules.
    cdb = cdb_of(IDENTRULES, "ident-oracle")
    tcp = suite.PortCommand(["tcpserver", "-1", "-v", "-H", "-r", "-t", ANSWER_T, "-x", cdb, "127.0.0.1", "0",
                             suite.PYTHON, suite.REPORT])
    for src, which, info in (("127.0.113.1", "joe-ip", "joe"), ("127.0.113.2", "empty-info", ""),
                             ("127.0.113.5", "prefix", "joe")):
        try:
            with socket.create_connection(("127.0.0.1", tcp.port), source_address=(src, 0), timeout=suite.patience(10)) as s:
                env = (suite.report_of(s) or {}).get("env", {})
        except OSError:
            env = {}
        is_((env.get("WHICH"), env.get("TCPREMOTEINFO")), (which, info), "oracle: tcpserver -r from %s" % src)
    tcp.stop()
    for builder, _ in BUILDERS:
        cdb = cdb_of(IDENTRULES, "ident-" + builder, builder)
        srv = suite.Server(["-v", "-H", "-r", "-t", ANSWER_T, "-x", cdb], env=ENV)
        c = Conn(srv.port, "127.0.113.1")
        is_((c.env.get("WHICH"), c.env.get("SSLREMOTEINFO")), ("joe-ip", "joe"), "%s cdb, -r: info@ip matches the ident answer" % builder)
        cport = c.sock.getsockname()[1] if c.sock else 0
        c.close()
        ok(identds[0].queries and identds[0].queries[-1] == "%d , %d\r\n" % (cport, srv.port),
           "%s cdb: the ident query is 'remoteport , localport'" % builder, identds[0].queries)
        env = visit(srv.port, "127.0.113.2") or {}
        is_((env.get("WHICH"), env.get("SSLREMOTEINFO")), ("empty-info", ""), "%s cdb: an ident error gives an empty info matching @ip" % builder)
        env = visit(srv.port, "127.0.113.5") or {}
        is_((env.get("WHICH"), env.get("SSLREMOTEINFO")), ("prefix", "joe"), "%s cdb: info@prefix is never tried" % builder)
        env = visit(srv.port, "127.0.113.4") or {}
        is_((env.get("WHICH"), env.get("SSLREMOTEINFO", "unset")), ("prefix", "unset"), "%s cdb: no identd: info unset, info rules skipped" % builder)
        srv.stop()
    cdb = cdb_of(IDENTRULES, "ident-R")
    srv = suite.Server(["-v", "-H", "-R", "-x", cdb], env=ENV)
    nq = len(identds[0].queries)
    env = visit(srv.port, "127.0.113.1") or {}
    is_((env.get("WHICH"), env.get("SSLREMOTEINFO", "unset")), ("ip", "unset"), "-R: no ident, the info@ip rule is skipped")
    is_(len(identds[0].queries), nq, "-R: the identd is never asked")
    srv.stop()
    # A silent identd is cut by -t.
    srv = suite.Server(["-v", "-H", "-r", "-t", "2", "-x", cdb], env=ENV)
    t0 = time.monotonic()
    env = visit(srv.port, "127.0.113.3", timeout=15)
    took = time.monotonic() - t0
    ok(env is not None, "silent identd with -t 2: the connection proceeds")
    is_((env or {}).get("SSLREMOTEINFO", "unset"), "unset", "silent identd: SSLREMOTEINFO unset")
    is_((env or {}).get("WHICH"), "prefix", "silent identd: the rules are applied without info")
    limit, how = suite.bound(4)
    ok(1.5 <= took <= 2 + limit, "silent identd: the connection waited about -t 2 seconds (%.1f s; upper %s, plus 2s)" % (took, how))
    srv.stop()

# ---------------------------------------------------------------- per-rule TLS settings

TLSRULES = """127.0.20.1:allow,CERTFILE="%s",KEYFILE="%s"
127.0.20.2:allow,CIPHERSUITES="TLS_CHACHA20_POLY1305_SHA256"
127.0.20.3:allow,TLSMINVERSION="TLSv1.3"
127.0.20.4:allow,CCAFILE="%s"
127.0.20.5:allow,CAFILE="%s"
:allow
""" % (alt["pem"], alt["key"], cca["crt"], cca["crt"])


def subject_cn(port, src, ctx=CTX):
    c = Conn(port, src, ctx)
    cert = c.sock.getpeercert() if c.sock and c.rep else None
    c.close()
    if not cert:
        return None
    return dict(x[0] for x in cert["subject"]).get("commonName")


for builder, _ in BUILDERS:
    cdb = cdb_of(TLSRULES, "tls-" + builder, builder)
    # CAFILE in the environment is the trust for client certificates; by
    # itself it asks nobody (no -m/-z): only the rules' CCAFILE/CAFILE do.
    srv = suite.Server(["-v", "-H", "-R", "-x", cdb], env=dict(ENV, CAFILE=cca["crt"]))
    b = builder + " cdb"
    is_(subject_cn(srv.port, "127.0.20.1"), "alt-server", "%s: a rule's CERTFILE/KEYFILE gives that client another certificate" % b)
    is_(subject_cn(srv.port, "127.0.20.9"), "server", "%s: other clients get the default certificate" % b)
    c = Conn(srv.port, "127.0.20.2")
    is_(c.sock.cipher()[0] if c.rep else c.error, "TLS_CHACHA20_POLY1305_SHA256", "%s: a rule's CIPHERSUITES is that handshake's only suite" % b)
    is_(c.env.get("SSL_CIPHER"), "TLS_CHACHA20_POLY1305_SHA256", "%s: SSL_CIPHER shows it" % b)
    c.close()
    c = Conn(srv.port, "127.0.20.9")
    ok(c.rep and c.sock.cipher()[0] != "TLS_CHACHA20_POLY1305_SHA256", "%s: other clients keep the default (the client's first choice)" % b,
       c.sock.cipher() if c.rep else c.error)
    c.close()
    tls12 = suite.client_context(ca["crt"], "1.2")
    ok(visit(srv.port, "127.0.20.3", ctx=tls12) is None, "%s: TLSMINVERSION=TLSv1.3 refuses that client's TLS 1.2 handshake" % b)
    is_((visit(srv.port, "127.0.20.3") or {}).get("SSL_PROTOCOL"), "TLSv1.3", "%s: the same client with TLS 1.3 is served" % b)
    is_((visit(srv.port, "127.0.20.9", ctx=tls12) or {}).get("SSL_PROTOCOL"), "TLSv1.2", "%s: other clients may still use TLS 1.2" % b)
    withcert = suite.client_context(ca["crt"], cert=client["crt"], key=client["key"])
    for src, var in (("127.0.20.4", "CCAFILE"), ("127.0.20.5", "CAFILE")):
        env = visit(srv.port, src, ctx=withcert) or {}
        is_(env.get("SSL_CLIENT_VERIFY"), "SUCCESS", "%s: a rule's %s asks for a certificate: verified" % (b, var))
        like(env.get("SSL_CLIENT_S_DN"), r"/CN=client$", "%s: %s rule: SSL_CLIENT_S_DN is the client's" % (b, var))
        env = visit(srv.port, src) or {}
        is_(env.get("SSL_CLIENT_VERIFY"), "NONE", "%s: %s rule, no certificate sent: NONE (optional)" % (b, var))
    env = visit(srv.port, "127.0.20.9", ctx=withcert) or {}
    is_((env.get("SSL_CLIENT_VERIFY"), env.get("SSL_CLIENT_S_DN")), ("NONE", None),
        "%s: other clients are not asked (their certificate is never sent)" % b)
    rc, out, err = (lambda r: (r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")))(
        suite.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.port, "-bind", "127.0.20.4:0",
                   "-CAfile", ca["crt"], "-servername", "localhost"], input=b""))
    like(out, r"Acceptable client certificate CA names\n.*CN ?= ?client-ca", "%s: s_client sees the CertificateRequest naming the rule's CA" % b)
    rc, out, err = (lambda r: (r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")))(
        suite.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.port, "-bind", "127.0.20.9:0",
                   "-CAfile", ca["crt"], "-servername", "localhost"], input=b""))
    ok("Acceptable client certificate CA names" not in out and "Verify return code: 0" in out,
       "%s: s_client from another address gets no CertificateRequest" % b, out[-600:])
    no_crash(srv, b)
    srv.stop()

# ---------------------------------------------------------------- UCSPITLS="" from a rule: deferred mode for one client

for builder, _ in BUILDERS:
    cdb = cdb_of('127.0.21.1:allow,UCSPITLS=""\n:allow\n', "ucspitls-" + builder, builder)
    srv = suite.Server(["-v", "-H", "-R", "-x", cdb], env=ENV, app=SMTPD)
    b = builder + " cdb"
    try:
        with smtplib.SMTP("127.0.0.1", srv.port, source_address=("127.0.21.1", 0), timeout=suite.patience(10)) as s:
            code, banner = s.ehlo("client.example")
            ok(code == 250 and b"STARTTLS" in banner, "%s: UCSPITLS rule: plaintext greeting, STARTTLS offered" % b, banner)
            code, _ = s.starttls(context=suite.client_context(ca["crt"]))
            is_(code, 220, "%s: UCSPITLS rule: STARTTLS accepted" % b)
            code, banner = s.ehlo("client.example")
            like(banner.decode(), r"X-TLS TLSv1\.3 ", "%s: UCSPITLS rule: EHLO inside TLS" % b)
    except (smtplib.SMTPException, OSError, ssl.SSLError) as e:
        ok(False, "%s: deferred mode for 127.0.21.1" % b, str(e))
    try:
        with smtplib.SMTP_SSL("127.0.0.1", srv.port, source_address=("127.0.21.2", 0), timeout=suite.patience(10),
                              context=suite.client_context(ca["crt"])) as s:
            code, banner = s.ehlo("client.example")
            ok(code == 250 and b"X-TLS TLSv1.3" in banner and b"STARTTLS" not in banner,
               "%s: other clients get immediate TLS" % b, banner)
    except (smtplib.SMTPException, OSError, ssl.SSLError) as e:
        ok(False, "%s: other clients get immediate TLS" % b, str(e))
    try:
        with smtplib.SMTP_SSL("127.0.0.1", srv.port, source_address=("127.0.21.1", 0), timeout=suite.patience(10),
                              context=suite.client_context(ca["crt"])):
            ok(False, "%s: UCSPITLS client: immediate TLS is not offered" % b)
    except (smtplib.SMTPException, OSError, ssl.SSLError):
        ok(True, "%s: UCSPITLS client: immediate TLS is not offered" % b)
    srv.stop()
# The same with openssl s_client -starttls smtp -bind.
cdb = cdb_of('127.0.21.1:allow,UCSPITLS=""\n:allow\n', "ucspitls-s_client")
srv = suite.Server(["-v", "-H", "-R", "-x", cdb], env=ENV, app=SMTPD)
r = suite.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.port, "-bind", "127.0.21.1:0", "-starttls", "smtp",
               "-CAfile", ca["crt"], "-verify_return_error", "-servername", "localhost", "-quiet"],
              input=b"EHLO c.example\r\nXSSL\r\nQUIT\r\n")
like(r.stdout.decode("utf-8", "replace"), r"^250-SSL_PROTOCOL=TLSv1\.3\r?$", "s_client -starttls smtp -bind 127.0.21.1: STARTTLS works")
srv.stop()

# ---------------------------------------------------------------- MAXCONIP


def close_and_wait(srv, conns):
    """Ends the connections and waits until the server has logged the end
    of each one's connection process (the report program's parent)."""
    pids = [c.rep["ppid"] for c in conns if c.rep]
    for c in conns:
        c.close()
    return len(pids) == len(conns) and all(suite.end_status(srv, p) is not None for p in pids)


srv = suite.Server(["-v", "-H", "-R"], env=dict(ENV, MAXCONIP="2"))
A, B = "127.0.30.1", "127.0.30.2"
a1, a2 = Conn(srv.port, A), Conn(srv.port, A)
ok(a1.rep and a2.rep, "global MAXCONIP=2: two connections from one client served")
is_(refused(srv.port, A), b"", "global MAXCONIP=2: the third from it is closed without TLS")
ok(srv.wait_log(r"^sslserver: warning: ip connection limit of 2 exceeded for: 127\.0\.30\.1$"), "global MAXCONIP: the refusal is logged")
b1, b2 = Conn(srv.port, B), Conn(srv.port, B)
ok(b1.rep and b2.rep, "global MAXCONIP: another client is served meanwhile (its own count)")
ok(close_and_wait(srv, [b1, b2]), "global MAXCONIP: the other client's connections ended")
is_(refused(srv.port, A), b"", "global MAXCONIP: another client's ends do not free the first client's slots")
ok(close_and_wait(srv, [a1]), "global MAXCONIP: one of the client's connections ended")
a3 = Conn(srv.port, A)
ok(a3.rep, "global MAXCONIP: after one ends, a new connection from that client is accepted")
is_(refused(srv.port, A), b"", "global MAXCONIP: and the one after is refused again")
ok(close_and_wait(srv, [a2, a3]), "global MAXCONIP: all of its connections ended")
a4, a5 = Conn(srv.port, A), Conn(srv.port, A)
ok(a4.rep and a5.rep, "global MAXCONIP: the count went back to zero: two accepted again")
is_(refused(srv.port, A), b"", "global MAXCONIP: third refused again")
close_and_wait(srv, [a4, a5])
no_crash(srv, "global MAXCONIP")
srv.stop()

for builder, _ in BUILDERS:
    cdb = cdb_of('127.0.31.1:allow,MAXCONIP="1",WHICH="limited"\n:allow,WHICH="free"\n', "maxconip-" + builder, builder)
    srv = suite.Server(["-v", "-H", "-R", "-x", cdb], env=ENV)
    b = builder + " cdb"
    C, E = "127.0.31.1", "127.0.31.2"
    c1 = Conn(srv.port, C)
    is_(c1.env.get("WHICH"), "limited", "%s: rule MAXCONIP=1: first connection served" % b)

    def refused_by_rule(what):
        """A connection from C closed without TLS, and its process reaped."""
        before = len(suite.pids(srv, src=C))
        is_(refused(srv.port, C), b"", "%s: rule MAXCONIP: %s: closed without TLS" % (b, what))
        pid = new_pid(srv, C, before)
        ok(srv.wait_log(r"^sslserver: deny %s :127\.0\.0\.1:\d+ :127\.0\.31\.1::\d+ ip connection limit:1 exceeded$" % pid),
           "%s: rule MAXCONIP: %s: the refusal is logged" % (b, what))
        is_(suite.end_status(srv, pid), 25600, "%s: rule MAXCONIP: %s: that connection exits 100" % (b, what))

    refused_by_rule("the second connection")
    e1, e2 = Conn(srv.port, E), Conn(srv.port, E)
    ok(e1.env.get("WHICH") == "free" and e2.env.get("WHICH") == "free", "%s: rule MAXCONIP: other clients are served" % b)
    close_and_wait(srv, [e1, e2])
    refused_by_rule("other clients' ends do not free the slot")
    ok(close_and_wait(srv, [c1]), "%s: rule MAXCONIP: the client's connection ended" % b)
    c2 = Conn(srv.port, C)
    is_(c2.env.get("WHICH"), "limited", "%s: rule MAXCONIP: then a new one from that client is accepted" % b)
    refused_by_rule("the next one again")
    close_and_wait(srv, [c2])
    no_crash(srv, b)
    srv.stop()

# ---------------------------------------------------------------- the cdb replaced while running

cdb = os.path.join(D, "live.cdb")
cdb_of('127.0.40.1:allow,GEN="1"\n', "live")
srv = suite.Server(["-v", "-H", "-R", "-x", cdb], env=ENV)
is_((visit(srv.port, "127.0.40.1") or {}).get("GEN"), "1", "live cdb: first version allows")
cdb_of('127.0.40.1:deny\n', "live")
ok(visit(srv.port, "127.0.40.1") is None, "live cdb: tcprules rerun: the very next connection is denied")
cdb_of('127.0.40.1:allow,GEN="3"\n', "live", "sslrules")
is_((visit(srv.port, "127.0.40.1") or {}).get("GEN"), "3", "live cdb: sslrules rerun: the very next connection sees it")
srv.stop()

# ---------------------------------------------------------------- missing and unreadable cdb files

missing = os.path.join(D, "missing.cdb")
srv = suite.Server(["-v", "-H", "-R", "-x", missing], env=ENV)
for i in range(2):
    is_(refused(srv.port, "127.0.41.1"), b"", "missing cdb (%d): connection closed without TLS" % i)
    pid = new_pid(srv, "127.0.41.1", i)
    is_(suite.end_status(srv, pid), 28160, "missing cdb (%d): the connection exits 110" % i)
    is_(len(re.findall(r"^sslserver: fatal: \(110\) unable to read \S*missing\.cdb: .*$", srv.log(), re.M)), i + 1,
        "missing cdb (%d): one 'unable to read' line naming the file" % i)
ok(srv.alive(), "missing cdb: the server keeps running")
srv.stop()
srv = suite.Server(["-v", "-H", "-R", "-X", "-x", missing], env=ENV)
ok(visit(srv.port, "127.0.41.1") is not None, "missing cdb with -X: the connection is allowed")
srv.stop()

good = cdb_of("".join('10.%d.%d.%d:allow,N="%d"\n' % (i >> 16, (i >> 8) & 255, i & 255, i) for i in range(3000))
              + ':allow,WHICH="default"\n', "big")
goodbytes = open(good, "rb").read()
bad = os.path.join(D, "bad.cdb")
srv = suite.Server(["-v", "-H", "-R", "-x", bad], env=ENV)
srv_X = suite.Server(["-v", "-H", "-R", "-X", "-x", bad], env=ENV)
shutil.copy(good, bad)
is_((visit(srv.port, "127.0.42.1") or {}).get("WHICH"), "default", "corrupt cdb: the good file works first")
CORRUPT = [
    ("random bytes", random.Random(7).randbytes(4096)),
    ("truncated in the records", goodbytes[:len(goodbytes) // 2]),
    ("truncated in the header", goodbytes[:1000]),
    ("empty file", b""),
    ("a directory", None),
]
n = 0
for name, content in CORRUPT:
    if content is None:
        os.unlink(bad)
        os.mkdir(bad)
    else:
        with open(bad, "wb") as f:
            f.write(content)
    for s, label in ((srv, ""), (srv_X, " with -X")):
        src = "127.0.42.%d" % (10 + n)
        n += 1
        got = refused(s.port, src)
        is_(got, b"", "%s%s: connection closed without TLS" % (name, label))
        pid = new_pid(s, src, 0)
        is_(suite.end_status(s, pid), 28160, "%s%s: the connection exits 110, no crash" % (name, label))
        is_(len(re.findall(r"^sslserver: fatal: \(110\) unable to read \S*bad\.cdb: .*$", s.log(), re.M)),
            len(re.findall(r"^sslserver: pid \d+ from", s.log(), re.M)) - (1 if s is srv else 0),
            "%s%s: one 'unable to read' line for it" % (name, label))
for s, label in ((srv, "corrupt cdb"), (srv_X, "corrupt cdb with -X")):
    no_crash(s, label)
    s.stop()

# ---------------------------------------------------------------- crafted cdb files

def cdb_hash(key):
    h = 5381
    for c in key:
        h = (((h << 5) + h) ^ c) & 0xffffffff
    return h


def cdb_bytes(records, claims=None):
    """djb's cdb format, written here so that a record can lie: records is
    [(key, data)]; claims maps a key to the data length its record header
    states instead of the real one."""
    claims = claims or {}
    body, slots, pos = b"", [], 2048
    for k, d in records:
        body += struct.pack("<II", len(k), claims.get(k, len(d))) + k + d
        slots.append((cdb_hash(k), pos))
        pos += 8 + len(k) + len(d)
    header, tables = b"", b""
    for b in range(256):
        mine = [e for e in slots if e[0] & 255 == b]
        n = 2 * len(mine)
        table = [(0, 0)] * n
        for h, p in mine:
            j = (h >> 8) % n
            while table[j][1]:
                j = (j + 1) % n
            table[j] = (h, p)
        header += struct.pack("<II", pos + len(tables), n)
        tables += b"".join(struct.pack("<II", h, p) for h, p in table)
    return header + body + tables


def variables(n, same=False):
    if same:
        return b"+A=\0" * n
    return b"".join(b"+V%d=%d\0" % (i, i) for i in range(n))


def crafted_cdbs():
    """A rules cdb whose records lie about their length, or carry more than
    a rule may (1000 variables, 65536 bytes): the connection ends with one
    line and exit 110, never with a signal; a rule at the limits works."""
    cdb = os.path.join(D, "crafted.cdb")
    records = [
        (b"127.0.43.1", b"+WHICH=overrun\0"),
        (b"127.0.43.2", b"+WHICH=overrun-by-one\0"),
        (b"127.0.43.3", variables(3000000, same=True)),
        (b"127.0.43.4", variables(1001)),
        (b"127.0.43.5", variables(1000)),
        (b"127.0.43.6", b"+BIG=" + b"x" * 65531 + b"\0"),
        (b"127.0.43.7", b"+BIG=" + b"x" * 65530 + b"\0"),
        (b"127.0.43.8", b"+WHICH=fine\0"),
    ]
    size = len(cdb_bytes(records))
    start = 2048 + 8 + len(records[0][0]) + len(records[0][1]) + 8 + len(records[1][0])
    with open(cdb, "wb") as f:
        f.write(cdb_bytes(records, {b"127.0.43.1": 0xfffffff0, b"127.0.43.2": size - start + 1}))
    ok(len(records[5][1]) == 65537 and len(records[6][1]) == 65536,
       "crafted cdb: the records are the sizes meant")
    srv = suite.Server(["-v", "-H", "-R", "-x", cdb], env=ENV)
    env = visit(srv.port, "127.0.43.8") or {}
    is_(env.get("WHICH"), "fine", "crafted cdb: a sound record in it is served")
    env = visit(srv.port, "127.0.43.5") or {}
    is_((env.get("V0"), env.get("V999")), ("0", "999"), "crafted cdb: a rule of 1000 variables is served whole")
    env = visit(srv.port, "127.0.43.7") or {}
    is_(len(env.get("BIG", "")), 65530, "crafted cdb: a rule of 65536 bytes is served whole")
    for n, (last, what, line) in enumerate((
            (1, "data length running 4 GiB past the end", r"unable to read \S*crafted\.cdb: Protocol error"),
            (2, "data length running one byte past the end", r"unable to read \S*crafted\.cdb: Protocol error"),
            (3, "3 million variables", r"unable to read \S*crafted\.cdb: rule 127\.0\.43\.3 carries over "
                                       r"1000 variables or 65536 bytes"),
            (4, "1001 variables", r"unable to read \S*crafted\.cdb: rule 127\.0\.43\.4 carries over "
                                  r"1000 variables or 65536 bytes"),
            (6, "65537 bytes", r"unable to read \S*crafted\.cdb: rule 127\.0\.43\.6 carries over "
                               r"1000 variables or 65536 bytes"))):
        src = "127.0.43.%d" % last
        is_(refused(srv.port, src), b"", "crafted cdb, %s: connection closed without TLS" % what)
        pid = new_pid(srv, src, 0)
        is_(suite.end_status(srv, pid), 28160, "crafted cdb, %s: the connection exits 110, not by a signal" % what)
        like(srv.log(), r"^sslserver: fatal: \(110\) %s$" % line, "crafted cdb, %s: a line says why" % what)
        is_(suite.log_count(srv, r"^sslserver: fatal: "), n + 1, "crafted cdb, %s: one line" % what)
        r = subprocess.run([suite.prog("sslhandoff"), "-x", cdb, "true"], env=dict(ENV, TCPREMOTEIP=src),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=suite.patience(20))
        err = r.stderr.decode("utf-8", "replace")
        is_(r.returncode, 110, "crafted cdb, %s: sslhandoff exits 110, not by a signal" % what)
        like(err, r"\Asslhandoff: fatal: \(110\) %s\n\Z" % line, "crafted cdb, %s: sslhandoff says why in one line" % what)
    no_crash(srv, "crafted cdb")
    srv.stop()


scenario("crafted cdb files", crafted_cdbs)

# ---------------------------------------------------------------- sslhandoff -x under tcpserver

for builder, _ in BUILDERS:
    cdb = cdb_of('127.0.50.1:deny\n127.0.50.2:allow,WHICH="handoff",PROTO="XYZ"\n', "handoff-" + builder, builder)
    srv = suite.PortCommand(["tcpserver", "-1", "-v", "-HR", "127.0.0.1", "0", suite.prog("sslhandoff"), "-v",
                             "-x", cdb, suite.PYTHON, suite.REPORT], env=ENV)
    b = builder + " cdb"
    if not ok(srv.port, "%s: tcpserver with sslhandoff -x started" % b):
        continue
    is_(refused(srv.port, "127.0.50.1"), b"", "%s: sslhandoff deny rule: closed without TLS" % b)
    pid = new_pid(srv, "127.0.50.1", 0, "tcpserver")
    is_(suite.end_status(srv, pid, prog="tcpserver"), 25600, "%s: sslhandoff deny: exit 100 as tcpserver sees it" % b)
    like(srv.log(), r"^sslhandoff: deny \d+ .*127\.0\.50\.1", "%s: sslhandoff logs the deny" % b)
    env = visit(srv.port, "127.0.50.2") or {}
    is_((env.get("WHICH"), env.get("PROTO")), ("handoff", "XYZ"), "%s: sslhandoff env rule reaches the program and overrides PROTO" % b)
    env = visit(srv.port, "127.0.50.3")
    ok(env is not None and "WHICH" not in env, "%s: sslhandoff, no matching rule: allowed without rule variables" % b)
    srv.stop()
