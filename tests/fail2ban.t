#!/usr/bin/python3
# One log line per failed server-side handshake, for fail2ban: sslserver and
# sslhandoff log "unable to accept TLS from: IP for pid: PID: sni: NAME:
# offered: VERSION: REASON" (and the 110 client-certificate line with the
# same fields) at the default verbosity, whatever failed: an old version
# (openssl s_client -tls1_1), a plaintext client, a silent client or half a
# ClientHello (timeout), a refused client certificate (-m), a hostile SNI
# name (sanitised, bounded, no space), a version shown in hex. Then
# Debian's fail2ban-regex runs examples/fail2ban's filter on the collected
# log: it finds every failure with its host (IPv4 and IPv6) and no line of
# a successful session's log.
import os
import re
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like  # noqa: E402
import suite  # noqa: E402

FILTER = os.path.join(suite.TOP, "examples", "fail2ban", "filter.d", "sslserver.conf")

pki = suite.Pki()
ca = pki.ca("ca")
leaf = pki.leaf("server", ca, dns=("localhost",), ips=("127.0.0.1",))
clientca = pki.ca("clientca")
otherca = pki.ca("otherca")
stranger = pki.leaf("client-stranger", otherca, dns=(), client=True)
ENV = {"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"], "CAFILE": clientca["crt"]}
T = 2   # -T: the handshake timeout

FIELDS = r"for pid: (\d+): sni: (\S+): offered: (\S+): (.*)$"


def failure_lines(text, prog="sslserver"):
    return re.findall(r"^%s: error: \(11[01]\) (?:unable to accept TLS|client certificate refused) from: (\S+) %s" % (prog, FIELDS),
                      text, re.M)


def errors(srv, prog="sslserver"):
    return [l for l in srv.log().splitlines() if l.startswith(prog + ": error:")]


def next_failure(srv, n, prog="sslserver"):
    """Waits for the (n+1)th error line; returns it split into (ip, pid,
    sni, offered, reason), or None."""
    if not suite.wait_until(lambda: len(errors(srv, prog)) > n, 3 * T + 10):
        return None
    m = re.match(r"^%s: error: \(11[01]\) (?:unable to accept TLS|client certificate refused) from: (\S+) %s" % (prog, FIELDS),
                 errors(srv, prog)[n])
    return m.groups() if m else ("unexpected line", errors(srv, prog)[n], "", "", "")


def s_client(host, port, args):
    cmd = ["openssl", "s_client", "-connect", "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)] + args
    try:
        return suite.run(cmd, input=b"", timeout=20).returncode
    except subprocess.TimeoutExpired:
        return None


def raw(host, port, source, data, wait_close=True):
    """Connects from source, sends data, reads until the server closes."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(suite.patience(3 * T + 10))
    try:
        s.bind((source, 0))
        s.connect((host, port))
        if data:
            s.sendall(data)
        got = b""
        while wait_close:
            c = s.recv(4096)
            if not c:
                break
            got += c
        return got
    except OSError as e:
        return e
    finally:
        s.close()


def client_hello(name, versions):
    """A hand-made ClientHello: server_name name (any bytes), supported_versions
    versions, and one cipher suite (RC4-SHA) that no server here accepts."""
    sn = struct.pack("!BH", 0, len(name)) + name
    ext = struct.pack("!HHH", 0, len(sn) + 2, len(sn)) + sn
    sv = b"".join(struct.pack("!H", v) for v in versions)
    ext += struct.pack("!HHB", 43, len(sv) + 1, len(sv)) + sv
    body = b"\x03\x03" + os.urandom(32) + b"\x00" + struct.pack("!HH", 2, 0x0005) + b"\x01\x00" + struct.pack("!H", len(ext)) + ext
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def sanitised(name):
    """What the log must show of a hostile name: bytes outside 33..126, '%'
    and ':' as '?', the first 100 bytes then '...'."""
    s = "".join(chr(b) if 33 <= b <= 126 and b not in b"%:" else "?" for b in name[:100])
    return s + ("..." if len(name) > 100 else "")


def tai64n(line):
    t = time.time()
    return "@%016x%08x %s" % (2 ** 62 + 10 + int(t), int((t % 1) * 1e9), line)


def fail2ban_regex(lines):
    """fail2ban-regex -o ip on lines (stamped as multilog t does); returns
    (exit code, the hosts it found in order, its stderr)."""
    path = os.path.join(suite.tmpdir(), "f2b.log")
    with open(path, "w") as f:
        f.write("".join(tai64n(l) + "\n" for l in lines))
    r = suite.run(["fail2ban-regex", "-o", "ip", path, FILTER], timeout=60)
    return r.returncode, r.stdout.decode("utf-8", "replace").split(), r.stderr.decode("utf-8", "replace")


collected = []   # every server's log lines, for fail2ban-regex
expected = []    # the host of every failure line, in log order

# ---------------------------------------------------------------- sslserver, IPv4
srv = suite.Server(["-m", "-T", str(T)], env=ENV)
ok(srv.port, "sslserver -m started")
n = 0

rc = s_client("127.0.0.1", srv.port, ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-servername", "some.name"])
ok(rc not in (None, 0), "s_client -tls1_1: refused (rc %r)" % rc)
f = next_failure(srv, n)
n += 1
is_(f and f[0], "127.0.0.1", "-tls1_1: one line with the client's address")
is_(f and f[2:4], ("some.name", "TLSv1.1"), "-tls1_1: it shows the SNI name sent and the version offered")
like(f and f[4], r"^unsupported protocol$", "-tls1_1: and OpenSSL's reason")
expected.append("127.0.0.1")

raw("127.0.0.1", srv.port, "127.0.0.2", b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
f = next_failure(srv, n)
n += 1
is_(f and f[:1] + f[2:4], ("127.0.0.2", "-", "-"), "plaintext client from 127.0.0.2: sni and offered are '-'")
like(f and f[4], r"^(http request|wrong version number|.*record.*)$", "plaintext client: OpenSSL's reason")
expected.append("127.0.0.2")

raw("127.0.0.1", srv.port, "127.0.0.3", b"")
f = next_failure(srv, n)
n += 1
is_(f and f[:1] + f[2:], ("127.0.0.3", "-", "-", "timed out"), "silent client from 127.0.0.3: 'timed out', sni and offered '-'")
expected.append("127.0.0.3")

hello = client_hello(b"half.example", (0x0304, 0x0303))
raw("127.0.0.1", srv.port, "127.0.0.4", hello[:len(hello) // 2])
f = next_failure(srv, n)
n += 1
is_(f and f[:1] + f[2:], ("127.0.0.4", "-", "-", "timed out"), "half a ClientHello from 127.0.0.4: 'timed out', nothing offered yet")
expected.append("127.0.0.4")

ctx = suite.client_context(ca["crt"], cert=stranger["crt"], key=stranger["key"])
try:
    with suite.tls_connect(srv.port, ctx, sni="localhost", source=("127.0.0.5", 0)) as s:
        s.recv(1)
except OSError:
    pass
f = next_failure(srv, n)
n += 1
ok(f and re.search(r"^sslserver: error: \(110\) client certificate refused from: 127\.0\.0\.5 for pid: \d+: sni: localhost: offered: TLSv1\.3: \S",
                   errors(srv)[n - 1]), "refused client certificate from 127.0.0.5: the 110 line carries sni and offered", errors(srv)[n - 1:n])
expected.append("127.0.0.5")

name = b"\x01evil name:%\x1b[31m" + b"a" * 200 + b"\xff"
raw("127.0.0.1", srv.port, "127.0.0.6", client_hello(name, (0x3a3a, 0x0304, 0x0303)))
f = next_failure(srv, n)
n += 1
is_(f and f[:1] + f[2:4], ("127.0.0.6", sanitised(name), "TLSv1.3"),
    "hostile SNI from 127.0.0.6: sanitised and bounded, GREASE not taken for a version")
like(f and f[4], r"^[ -~]+$", "hostile SNI: the reason is printable")
expected.append("127.0.0.6")
raw("127.0.0.1", srv.port, "127.0.0.8", client_hello(b"draft.example", (0x7f1c,)))
f = next_failure(srv, n)
n += 1
is_(f and f[:1] + f[2:4], ("127.0.0.8", "draft.example", "0x7f1c"), "a version OpenSSL has no name for (from 127.0.0.8): shown in hex")
expected.append("127.0.0.8")

log = srv.log()
ok("\x01" not in log and "\x1b" not in log and "\ufffd" not in log, "hostile SNI: no raw control or non-ASCII byte in the log")

is_(len(errors(srv)), n, "one error line per failed handshake, no more")
collected += srv.log().splitlines()
srv.stop()

# ---------------------------------------------------------------- sslserver, IPv6
srv6 = suite.Server(["-T", str(T)], env=ENV, host="::1")
ok(srv6.port, "sslserver on ::1 started")
rc = s_client("::1", srv6.port, ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-servername", "some.name"])
f = next_failure(srv6, 0)
is_(f and f[:1] + f[2:4], ("::1", "some.name", "TLSv1.1"), "-tls1_1 over ::1: address, sni and offered")
expected.append("::1")
raw("::1", srv6.port, "::1", b"\x00" * 64)
f = next_failure(srv6, 1)
is_(f and f[:1] + f[2:4], ("::1", "-", "-"), "garbage over ::1: sni and offered '-'")
expected.append("::1")
collected += srv6.log().splitlines()
srv6.stop()

# ---------------------------------------------------------------- sslhandoff
HANDOFF = suite.prog("sslhandoff")
ho = suite.PortCommand(["tcpserver", "-1", "-HR", "-l", "localhost", "127.0.0.1", "0", HANDOFF, "-T", str(T),
                        suite.PYTHON, suite.REPORT], env=ENV)
ok(ho.port, "tcpserver + sslhandoff started")
rc = s_client("127.0.0.1", ho.port, ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-servername", "handoff.name"])
f = next_failure(ho, 0, "sslhandoff")
is_(f and f[:1] + f[2:4], ("127.0.0.1", "handoff.name", "TLSv1.1"), "sslhandoff: the same line, with sni and offered")
raw("127.0.0.1", ho.port, "127.0.0.7", b"EHLO plaintext\r\n")
f = next_failure(ho, 1, "sslhandoff")
is_(f and f[:1] + f[2:4], ("127.0.0.7", "-", "-"), "sslhandoff: plaintext client from 127.0.0.7")
expected += ["127.0.0.1", "127.0.0.7"]
collected += ho.log().splitlines()
ho.stop()

# ---------------------------------------------------------------- fail2ban-regex
rc, hosts, err = fail2ban_regex(collected)
is_(rc, 0, "fail2ban-regex runs the filter")
is_(hosts, expected, "fail2ban-regex: every failure line matched, each with its host (IPv4 and IPv6)")

good = suite.Server(["-v", "-T", str(T)], env={"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"]})
for _ in range(2):
    with suite.tls_connect(good.port, suite.client_context(ca["crt"]), sni="localhost") as s:
        suite.report_of(s)
rc = s_client("127.0.0.1", good.port, ["-servername", "localhost", "-CAfile", ca["crt"], "-verify_return_error"])
ok(suite.wait_until(lambda: suite.log_count(good, r"^sslserver: end \d+ status 0$") >= 3, 20), "three successful sessions", good.log())
ok(suite.log_count(good, r"^sslserver: tls \d+ accept ") >= 3, "their log has status lines (-v)")
rc, hosts, err = fail2ban_regex(good.log().splitlines())
is_((rc, hosts), (0, []), "fail2ban-regex: no line of successful sessions' log matches")
good.stop()
