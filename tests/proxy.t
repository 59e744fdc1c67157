#!/usr/bin/python3
# The PROXY protocol on input (DESIGN.md section 10): sslserver and
# sslhandoff with PROXYFROM, fed hand-built v1 and v2 headers and real
# balancers (Debian's haproxy with send-proxy and send-proxy-v2, nginx's
# stream module with proxy_protocol on). The header's addresses are the
# connection's everywhere (environment, log lines, a tcprules cdb, MAXCONIP,
# -z); the balancer's is PROXYREMOTEIP; health checks keep their own
# addresses; malformed, late and missing headers are refused with one log
# line and the program never starts; an unlisted peer's bytes are never
# read as a header; a slow header does not hold up other clients.
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, diag  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
leaf = pki.leaf("server", ca, dns=("localhost",), ips=("127.0.0.1",))
cca = pki.ca("client-ca")
ENV = {"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"]}
CTX = suite.client_context(ca["crt"])
D = suite.tmpdir()
MARK = os.path.join(D, "started")
# the report program, leaving a line in MARK each time it is started
APP = ["/bin/sh", "-c", 'echo "$SSLREMOTEIP" >> %s ; exec %s %s' % (MARK, suite.PYTHON, suite.REPORT)]


def started():
    try:
        with open(MARK) as f:
            return f.read().split()
    except OSError:
        return []


def v1(src, dst, sport, dport):
    return ("PROXY %s %s %s %d %d\r\n" % ("TCP6" if ":" in src else "TCP4", src, dst, sport, dport)).encode()


def v2(src=None, dst=None, sport=0, dport=0, cmd=1, tlvs=b"", fam=None, version=2):
    if src is None:
        addrs = b""
        fam = 0 if fam is None else fam
    elif ":" in src:
        addrs = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + struct.pack("!HH", sport, dport)
        fam = 0x21 if fam is None else fam
    else:
        addrs = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
        fam = 0x11 if fam is None else fam
    body = addrs + tlvs
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([version << 4 | cmd, fam]) + struct.pack("!H", len(body)) + body


def tlv(t, value):
    return bytes([t]) + struct.pack("!H", len(value)) + value


def connect(port, src="127.0.0.1", host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(suite.patience(10))
    s.bind((src, 0))
    s.connect((host, port))
    return s


class BioTLS:
    """A TLS client over a socket through memory BIOs, so that what goes on
    the wire is ours to shape: prefix is sent in the same send() as the
    ClientHello (one segment), or, with drip, the prefix goes a byte at a
    time first."""

    def __init__(self, sock, prefix=b"", ctx=CTX, drip=False):
        self.sock, self.inc, self.out = sock, ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        if drip:
            for b in prefix:
                sock.sendall(bytes([b]))
            prefix = b""
        self.prefix = prefix
        self._pump(self.obj.do_handshake)

    def _flush(self):
        data, self.prefix = self.prefix + self.out.read(), b""
        if data:
            self.sock.sendall(data)

    def _pump(self, op):
        while True:
            try:
                r = op()
                self._flush()
                return r
            except ssl.SSLWantReadError:
                self._flush()
                d = self.sock.recv(65536)
                if not d:
                    raise ConnectionError("connection closed")
                self.inc.write(d)

    def readline(self):
        buf = b""
        while b"\n" not in buf:
            buf += self._pump(lambda: self.obj.read(65536))
        return buf

    def write(self, data):
        self._pump(lambda: self.obj.write(data))


def session(port, header, src="127.0.0.1", drip=False, ctx=CTX):
    """A TLS session with the report program after header: its report's
    environment, or the error as text."""
    try:
        s = connect(port, src)
        t = BioTLS(s, header, ctx=ctx, drip=drip)
        import json
        rep = json.loads(t.readline())
        t.write(b"quit\n")
        s.close()
        return rep["env"]
    except (OSError, ssl.SSLError, ValueError, ConnectionError) as e:
        return "failed: %s" % e


def refused(srv, port, data, src="127.0.0.1", reason=None, code=100, name="", close=False):
    """Sends data (a bad header, or nothing with data None) and checks the
    refusal: the connection closed with nothing sent, one log line naming
    the peer and the reason, the program never started, the exit code."""
    before = len(started())
    pat = r"^sslserver: error: \(%d\) unable to read the PROXY header from: %s for pid: (\d+): (.*)$" % (code, re.escape(src))
    seen = suite.log_count(srv, pat)
    s = connect(port, src)
    if data:
        s.sendall(data)
    if close:
        s.shutdown(socket.SHUT_WR)
    got = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except OSError as e:
        diag("recv: %s" % e)
    s.close()
    is_(got, b"", "%s: nothing sent back" % name)
    m = suite.wait_until(lambda: suite.log_count(srv, pat) > seen and list(re.finditer(pat, srv.log(), re.M))[-1])
    if not ok(m, "%s: one line names the balancer %s" % (name, src), srv.log()[-600:]):
        return
    if reason:
        like(m.group(2), reason, "%s: the line says why" % name)
    is_(suite.end_status(srv, m.group(1), after=m.end()), code << 8, "%s: exit %d" % (name, code))
    is_(len(started()), before, "%s: the program never started" % name)


# ---------------------------------------------------------------- hand-built headers

srv = suite.Server(["-v", "-e", "-H", "-T", "4"], app=APP,
                   env=dict(ENV, PROXYFROM="10.0.0.0/8, 127.0.0.1 ::1", PROXYREMOTEIP="6.6.6.6"))
port = srv.port

env = session(port, v1("192.0.2.7", "198.51.100.1", 40001, 465))
is_(env.get("SSLREMOTEIP") if isinstance(env, dict) else env, "192.0.2.7", "v1 TCP4: SSLREMOTEIP is the client's")
if isinstance(env, dict):
    is_((env.get("SSLREMOTEPORT"), env.get("SSLLOCALIP"), env.get("SSLLOCALPORT")), ("40001", "198.51.100.1", "465"),
        "v1 TCP4: the other addresses are the header's")
    is_((env.get("TCPREMOTEIP"), env.get("TCPREMOTEPORT")), ("192.0.2.7", "40001"), "v1 TCP4: -e: TCP* are the client's too")
    is_(env.get("PROXYREMOTEIP"), "127.0.0.1", "v1 TCP4: PROXYREMOTEIP is the balancer's")
    ok(env.get("PROXYREMOTEPORT", "").isdigit() and env.get("PROXYREMOTEPORT") != "40001",
       "v1 TCP4: PROXYREMOTEPORT is the balancer's port", env.get("PROXYREMOTEPORT"))
pid = suite.pids(srv, src="192.0.2.7")
ok(pid, "v1 TCP4: the pid line names the client", srv.log()[-400:])
ok(srv.wait_log(r"^sslserver: ok \d+ :198\.51\.100\.1:465 :192\.0\.2\.7::40001$"), "v1 TCP4: the ok line names the client")
ok(srv.wait_log(r"^sslserver: proxy \d+ via 127\.0\.0\.1:\d+$"), "v1 TCP4: -v: a proxy line names the balancer")

env = session(port, v1("2001:db8::7", "2001:db8::1", 40002, 465))
is_(env.get("SSLREMOTEIP") if isinstance(env, dict) else env, "2001:db8::7", "v1 TCP6: SSLREMOTEIP is the client's")

tlvs = tlv(0x01, b"smtp") + tlv(0x04, b"") + tlv(0xEE, b"x" * 300) + tlv(0x20, b"\x01\x00\x00\x00\x00")
env = session(port, v2("192.0.2.8", "198.51.100.1", 40003, 587, tlvs=tlvs))
is_(env.get("SSLREMOTEIP") if isinstance(env, dict) else env, "192.0.2.8", "v2 INET with TLVs: the TLVs are skipped")
if isinstance(env, dict):
    is_((env.get("SSLREMOTEPORT"), env.get("SSLLOCALPORT")), ("40003", "587"), "v2 INET: the ports are the header's")

env = session(port, v2("2001:db8::9", "2001:db8::1", 40004, 465))
is_(env.get("SSLREMOTEIP") if isinstance(env, dict) else env, "2001:db8::9", "v2 INET6: SSLREMOTEIP is the client's")
env = session(port, v2("::ffff:192.0.2.10", "::ffff:198.51.100.1", 40005, 465))
is_(env.get("SSLREMOTEIP") if isinstance(env, dict) else env, "192.0.2.10", "v2 INET6 v4-mapped: shown dotted")

for name, header in (("v2 LOCAL", v2(cmd=0)), ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n"),
                     ("v1 UNKNOWN with addresses", b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"),
                     ("v2 PROXY AF_UNSPEC", v2(cmd=1, fam=0x00))):
    env = session(port, header)
    if ok(isinstance(env, dict), "%s: served normally" % name, env):
        is_((env.get("SSLREMOTEIP"), env.get("SSLLOCALIP"), env.get("PROXYREMOTEIP")), ("127.0.0.1", "127.0.0.1", "127.0.0.1"),
            "%s: the connection's own addresses are kept" % name)

# a balancer's plain TCP health check: a LOCAL header, then the connection closed
for name, header in (("v2 LOCAL", v2(cmd=0)), ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n")):
    before = len(started())
    n = suite.log_count(srv, r"^sslserver: check \d+ from 127\.0\.0\.1$")
    s = connect(port)
    s.sendall(header)
    s.shutdown(socket.SHUT_WR)
    try:
        s.recv(10)
    except OSError:
        pass
    s.close()
    ok(suite.wait_until(lambda: suite.log_count(srv, r"^sslserver: check \d+ from 127\.0\.0\.1$") > n),
       "%s then a close: a health check, logged as such with -v" % name, srv.log()[-300:])
    pid = re.findall(r"^sslserver: check (\d+) from", srv.log(), re.M)[-1:]
    if pid:
        is_(suite.end_status(srv, pid[0]), 0, "%s health check: exit 0" % name)
    is_(len(started()), before, "%s health check: the program never started" % name)
ok(not re.search(r"unable to accept TLS", srv.log()), "health checks: no failed handshake logged")
s = connect(port, "127.0.0.9")
s.shutdown(socket.SHUT_WR)
s.close()
ok(srv.wait_log(r"^sslserver: error: \(111\) unable to accept TLS from: 127\.0\.0\.9 "),
   "a client closing without a byte is still a failed handshake (only a balancer's check is not)")

env = session(port, v1("192.0.2.11", "198.51.100.1", 40006, 465), drip=True)
is_(env.get("SSLREMOTEIP") if isinstance(env, dict) else env, "192.0.2.11", "v1 sent a byte at a time: read whole")
env = session(port, v2("192.0.2.12", "198.51.100.1", 40007, 465, tlvs=tlv(0xE0, b"y" * 40)), drip=True)
is_(env.get("SSLREMOTEIP") if isinstance(env, dict) else env, "192.0.2.12", "v2 sent a byte at a time: read whole")

# from ::1 (listed) on a dual-stack listener: the same rules for v6 peers
srv6 = suite.Server(["-v", "-H"], app=APP, host="::1", env=dict(ENV, PROXYFROM="::1"))
try:
    s = connect(srv6.port, "::1", "::1")
    t = BioTLS(s, v1("192.0.2.13", "198.51.100.1", 1, 2))
    import json
    env = json.loads(t.readline())["env"]
    s.close()
except (OSError, ssl.SSLError, ValueError, ConnectionError) as e:
    env = "failed: %s" % e
is_(env.get("SSLREMOTEIP") if isinstance(env, dict) else env, "192.0.2.13", "listed ::1: its header is read")
if isinstance(env, dict):
    is_(env.get("PROXYREMOTEIP"), "::1", "listed ::1: PROXYREMOTEIP=::1")
srv6.stop()

# bad headers: one line, the program never started
BAD = (
    ("v1 unknown protocol", b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "protocol other than"),
    ("v1 TCP4 with an IPv6 address", b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "not IPv4"),
    ("v1 port out of range", b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n", "source port"),
    ("v1 missing port", b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "destination port"),
    ("v1 LF without CR", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "CRLF"),
    ("v1 longer than 107 bytes", b"PROXY UNKNOWN " + b"x" * 120 + b"\r\n", "107"),
    ("v2 version 1", v2("1.2.3.4", "5.6.7.8", 1, 2, version=1), "version"),
    ("v2 command 3", v2("1.2.3.4", "5.6.7.8", 1, 2, cmd=3), "command"),
    ("v2 family 5", v2("1.2.3.4", "5.6.7.8", 1, 2, fam=0x51), "family"),
    ("v2 shorter than its addresses", v2(fam=0x11, cmd=1, tlvs=b"\x01\x02\x03"), "shorter"),
    ("v2 TLV overrunning the header", v2("1.2.3.4", "5.6.7.8", 1, 2, tlvs=b"\x01\x00\x09abc"), "overruns"),
    ("v2 truncated TLV", v2("1.2.3.4", "5.6.7.8", 1, 2, tlvs=b"\x01\x00"), "truncated"),
    ("no header: a ClientHello", suite.client_hello(), "no PROXY protocol header"),
    ("no header: SMTP", b"EHLO x\r\n", "no PROXY protocol header"),
)
for name, data, why in BAD:
    refused(srv, port, data, reason=why, name=name)
refused(srv, port, b"PROXY TCP4 1.2.3.4", reason="closed", code=111, name="closed inside the header", close=True)
refused(srv, port, None, reason="timed out", code=111, name="no header within -T")
refused(srv, port, b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x01\x02", reason="timed out", code=111,
        name="half a v2 header within -T")

# an unlisted peer: its bytes go to TLS as they are; nothing is believed
s = connect(port, "127.0.0.2")
s.sendall(v1("192.0.2.66", "198.51.100.1", 1, 2))
try:
    s.recv(100)
except OSError:
    pass
s.close()
m = srv.wait_log(r"^sslserver: error: \(111\) unable to accept TLS from: 127\.0\.0\.2 for pid: (\d+)")
ok(m, "unlisted 127.0.0.2 sending a header: a failed TLS handshake", srv.log()[-400:])
ok("192.0.2.66" not in srv.log() and "192.0.2.66" not in started(), "unlisted peer: its header is never believed")
env = session(port, b"", src="127.0.0.2")
if ok(isinstance(env, dict), "unlisted 127.0.0.2 without a header: served", env):
    is_(env.get("SSLREMOTEIP"), "127.0.0.2", "unlisted: SSLREMOTEIP is the TCP peer")
    is_(env.get("PROXYREMOTEIP"), None, "unlisted: no PROXYREMOTEIP, not even the server's own")

# a slow header holds up nobody: a stalled balancer connection, meanwhile
# another client and another balancer connection are served
stall = connect(port)
stall.sendall(b"PROXY TCP4 192.0.2.")
env = session(port, b"", src="127.0.0.3")
is_(env.get("SSLREMOTEIP") if isinstance(env, dict) else env, "127.0.0.3", "a stalled header: another client is served")
env = session(port, v1("192.0.2.14", "198.51.100.1", 1, 2))
is_(env.get("SSLREMOTEIP") if isinstance(env, dict) else env, "192.0.2.14", "a stalled header: another balancer connection is served")
stall.close()
srv.stop()

r = suite.start_failure(env=dict(ENV, PROXYFROM="127.0.0.1, 300.1.2.3"))
is_(r[0], 100, "invalid PROXYFROM: exit 100")
like(r[1], r"^sslserver: fatal: \(100\) invalid PROXYFROM entry: 300\.1\.2\.3$", "invalid PROXYFROM: one line naming it")
r = suite.start_failure(env=dict(ENV, PROXYFROM="10.0.0.0/33"))
is_(r[0], 100, "PROXYFROM prefix over 32 for IPv4: exit 100")

# ---------------------------------------------------------------- rules, MAXCONIP, -z on the real client

cdb = os.path.join(D, "rules.cdb")
rules = b'192.0.2.66:deny\n192.0.2.:allow,FROMRULE="yes"\n192.0.2.77:allow,MAXCONIP="1"\n127.0.0.1:deny\n:allow\n'
r = subprocess.run(["tcprules", cdb, cdb + ".tmp"], input=rules, capture_output=True, timeout=suite.patience(10))
ok(r.returncode == 0, "tcprules built the cdb", r.stderr)
srv = suite.Server(["-v", "-H", "-x", cdb], app=APP, env=dict(ENV, PROXYFROM="127.0.0.1", MAXCONIP="2"))
port = srv.port
before = len(started())
s = connect(port)
s.sendall(v1("192.0.2.66", "198.51.100.1", 1, 2))
is_(s.recv(10), b"", "rules: a rule denying the real client 192.0.2.66 applies")
s.close()
ok(srv.wait_log(r"^sslserver: deny \d+ :198\.51\.100\.1:2 :192\.0\.2\.66::1$"), "rules: the deny line names the real client")
env = session(port, v1("192.0.2.7", "198.51.100.1", 1, 2))
is_(env.get("FROMRULE") if isinstance(env, dict) else env, "yes",
    "rules: the real client's rule applies, not the balancer's 127.0.0.1:deny")


def hold(src_real):
    """A session left open: its socket and TLS object."""
    s = connect(port)
    t = BioTLS(s, v1(src_real, "198.51.100.1", 1, 2))
    t.readline()
    return s


def answer_to(client):
    """What a connection from client through the balancer gets back."""
    s = connect(port)
    s.sendall(v1(client, "198.51.100.1", 1, 2))
    try:
        got = s.recv(10)
    except OSError:
        got = b""
    s.close()
    return got


held = [hold("192.0.2.8"), hold("192.0.2.8")]
is_(answer_to("192.0.2.8"), b"", "MAXCONIP=2: a third connection of 192.0.2.8 through the balancer is refused")
ok(srv.wait_log(r"^sslserver: warning: ip connection limit of 2 exceeded for: 192\.0\.2\.8$"),
   "MAXCONIP: the warning names the real client")
env = session(port, v1("192.0.2.9", "198.51.100.1", 1, 2))
ok(isinstance(env, dict), "MAXCONIP: another real client through the same balancer is served", env)
held.append(hold("192.0.2.77"))
is_(answer_to("192.0.2.77"), b"", "a rule's MAXCONIP=1 counts the real client")
ok(srv.wait_log(r"^sslserver: deny \d+ .*:192\.0\.2\.77::1 ip connection limit:1 exceeded$"), "the rule's limit: a deny line")
for h in held:
    h.close()
srv.stop()

# -z: the client certificate must carry the real client's address
client = pki.leaf("client", cca, dns=(), ips=("192.0.2.7",), client=True)
cctx = suite.client_context(ca["crt"], cert=client["crt"], key=client["key"])
srv = suite.Server(["-v", "-H", "-z"], app=APP, env=dict(ENV, PROXYFROM="127.0.0.1", CCAFILE=cca["crt"]))
env = session(srv.port, v1("192.0.2.7", "198.51.100.1", 1, 2), ctx=cctx)
is_(env.get("SSL_CLIENT_VERIFY") if isinstance(env, dict) else env, "SUCCESS", "-z: a certificate for the real client's address is accepted")
env = session(srv.port, v1("192.0.2.8", "198.51.100.1", 1, 2), ctx=cctx)
ok(not isinstance(env, dict), "-z: the same certificate from another real client is refused", env)
ok(srv.wait_log(r"client certificate does not match host name from: 192\.0\.2\.8 "), "-z: the refusal names the real client")
srv.stop()

# ---------------------------------------------------------------- deferred: the program never sees the header

srv = suite.Server(["-v", "-H", "-n"], app=[suite.PYTHON, suite.REPORT], env=dict(ENV, PROXYFROM="127.0.0.1"))
s = connect(srv.port)
s.sendall(v2("192.0.2.20", "198.51.100.1", 1, 2) + b"hello\n")
f = s.makefile("rb")
import json
try:
    rep = json.loads(f.readline())
    echo = f.readline()
except (OSError, ValueError) as e:
    rep, echo = {"env": {}}, str(e)
is_(rep["env"].get("SSLREMOTEIP"), "192.0.2.20", "deferred: the program sees the real client")
is_(echo, b"echo: hello\n", "deferred: the program's first byte is the one after the header")
s.close()
srv.stop()

# ---------------------------------------------------------------- sslhandoff under tcpserver

srv = suite.PortCommand(["tcpserver", "-1", "-v", "-HR", "-l", "tcplocal", "127.0.0.1", "0", suite.prog("sslhandoff"), "-v"] + APP,
                        env=dict(ENV, PROXYFROM="127.0.0.0/24"))
if ok(srv.port, "tcpserver with sslhandoff started"):
    env = session(srv.port, v1("192.0.2.30", "198.51.100.1", 40030, 25), src="127.0.0.4")
    if ok(isinstance(env, dict), "sslhandoff: a proxied session", env):
        is_((env.get("SSLREMOTEIP"), env.get("SSLREMOTEPORT"), env.get("SSLLOCALIP")), ("192.0.2.30", "40030", "198.51.100.1"),
            "sslhandoff: SSL* are the header's")
        is_((env.get("TCPREMOTEIP"), env.get("TCPREMOTEPORT"), env.get("TCPLOCALPORT")), ("192.0.2.30", "40030", "25"),
            "sslhandoff: tcpserver's TCP* are rewritten to the client's")
        is_(env.get("TCPLOCALHOST"), "tcplocal", "sslhandoff: TCPLOCALHOST (this host's name) is kept")
        is_(env.get("PROXYREMOTEIP"), "127.0.0.4", "sslhandoff: PROXYREMOTEIP is tcpserver's TCPREMOTEIP")
    s = connect(srv.port, "127.0.0.4")
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    try:
        got = s.recv(10)
    except OSError:
        got = b""
    s.close()
    is_(got, b"", "sslhandoff: no header from a listed peer: nothing sent back")
    m = srv.wait_log(r"^sslhandoff: error: \(100\) unable to read the PROXY header from: 127\.0\.0\.4 for pid: (\d+): no PROXY protocol header$")
    ok(m, "sslhandoff: one line names the balancer and the reason", srv.log()[-400:])
    if m:
        is_(suite.end_status(srv, m.group(1), prog="tcpserver"), 25600, "sslhandoff: exit 100")
srv.stop()

# ---------------------------------------------------------------- real balancers


def balanced_sessions(bport, srcs):
    out = []
    for src in srcs:
        out.append(session(bport, b"", src=src))
    return out


cdb2 = os.path.join(D, "balanced.cdb")
r = subprocess.run(["tcprules", cdb2, cdb2 + ".tmp"], input=b'127.0.0.3:deny\n127.0.0.1:deny\n:allow,VIA="rules"\n',
                   capture_output=True, timeout=suite.patience(10))
backends = [suite.Server(["-v", "-H", "-x", cdb2], app=APP, env=dict(ENV, PROXYFROM="127.0.0.1")) for _ in range(2)]
for mode in ("send-proxy", "send-proxy-v2"):
    hp = suite.Haproxy([b.port for b in backends], mode)
    bport = hp.port
    if not ok(hp.up, "haproxy %s: listening" % mode, hp.log()):
        hp.stop()
        continue
    envs = balanced_sessions(bport, ["127.0.0.2", "127.0.0.2", "127.0.0.5"])
    is_([e.get("SSLREMOTEIP") if isinstance(e, dict) else e for e in envs], ["127.0.0.2", "127.0.0.2", "127.0.0.5"],
        "haproxy %s: each program sees its real client" % mode)
    is_([e.get("VIA") if isinstance(e, dict) else e for e in envs], ["rules"] * 3,
        "haproxy %s: the cdb's rule for the client applies, not 127.0.0.1:deny for the balancer" % mode)
    is_(sorted(set(e.get("PROXYREMOTEIP") for e in envs if isinstance(e, dict))), ["127.0.0.1"],
        "haproxy %s: PROXYREMOTEIP is haproxy's address" % mode)
    env = session(bport, b"", src="127.0.0.3")
    ok(not isinstance(env, dict), "haproxy %s: the client denied by the cdb is refused" % mode, env)
    ok(all(b.wait_log(r"^sslserver: pid \d+ from 127\.0\.0\.2$") for b in backends),
       "haproxy %s: round robin reached both instances" % mode)
    ok(any(b.wait_log(r"^sslserver: deny \d+ .*:127\.0\.0\.3::\d+$", 1) for b in backends),
       "haproxy %s: the deny line names the real client" % mode)
    hp.stop()
for b in backends:
    is_(suite.log_problems(b), [], "haproxy: nothing wrong logged by an instance")
    b.stop()

srv = suite.Server(["-v", "-H"], app=APP, env=dict(ENV, PROXYFROM="127.0.0.1"))
nport = suite.free_port()
ndir = suite.tmpdir()
conf = os.path.join(ndir, "nginx.conf")
with open(conf, "w") as f:
    f.write("load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
            "daemon off;\nmaster_process off;\npid %s/nginx.pid;\nerror_log %s/error.log info;\n"
            "events { worker_connections 64; }\n"
            "stream { server { listen 127.0.0.1:%d; proxy_pass 127.0.0.1:%d; proxy_protocol on; } }\n"
            % (ndir, ndir, nport, srv.port))
ng = subprocess.Popen(["nginx", "-c", conf, "-p", ndir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if ok(suite.wait_until(lambda: suite.listening(nport)), "nginx stream with proxy_protocol on: listening", open(os.path.join(ndir, "error.log")).read()[-500:]):
    env = session(nport, b"", src="127.0.0.6")
    is_(env.get("SSLREMOTEIP") if isinstance(env, dict) else env, "127.0.0.6", "nginx: the program sees the real client")
    if isinstance(env, dict):
        is_(env.get("PROXYREMOTEIP"), "127.0.0.1", "nginx: PROXYREMOTEIP is nginx's address")
ng.terminate()
ng.wait(suite.patience(10))
is_(suite.log_problems(srv), [], "nginx: nothing wrong logged")
srv.stop()

