#!/usr/bin/python3
# Hostile peers and misbehaving programs (DESIGN.md sections 3, 8, 9;
# research 2.3-2.5, 2.9-2.12): a flood of silent connections is cut by -T
# while a real client is served; resets mid-handshake, garbage and a 1 MB
# line; a program that crashes, exits early or closes its stdout early; a
# peer that vanishes mid-transfer; 1,000 connections (10,000 in make soak)
# with no growth in the main process's descriptors or memory and no zombie;
# SIGHUP storms under load, then SIGTERM; renegotiation refused,
# compression off, TLS 1.0/1.1 only when configured.
import hashlib
import json
import os
import re
import resource
import selectors
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike, diag  # noqa: E402
import suite  # noqa: E402

LOAD = os.path.join(suite.BIN, "tls-load.py")

# The flood needs more than 1000 descriptors here; the servers get their
# own limits (and no core files) through preexec_fn, checked below.
NOFILE = 4096
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < NOFILE:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(NOFILE, hard) if hard != resource.RLIM_INFINITY else NOFILE, hard))
LIMITS = suite.rlimits(NOFILE=NOFILE, CORE=0)

pki = suite.Pki()
ca = pki.ca("ca")
leaf = pki.leaf("server", ca)
# CAFILE: the chain is complete for the checks of a SIGHUP (CHECK MODE)
ENV = {"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"], "CAFILE": ca["crt"]}
ctx = suite.client_context(ca["crt"])
WORK = suite.tmpdir()


def server(opts, app, env=None):
    """sslserver -v with the limits above, running in a scratch directory."""
    e = dict(ENV)
    e.update(env or {})
    return suite.Server(["-v"] + list(opts), app=app, env=e, preexec_fn=LIMITS, cwd=WORK)


def strict(port, timeout=10):
    """A verified TLS client on which an EOF without close_notify is an
    error (SSLEOFError), so a clean close and a cut one can be told apart."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=suite.patience(timeout))
    return ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)


def ending(s, timeout=10):
    """Reads to the end of a session: (bytes, how) where how is 'close_notify',
    'eof' (TCP FIN without close_notify), 'reset', 'timeout' or an error."""
    s.settimeout(suite.patience(timeout))
    data = b""
    try:
        while True:
            c = s.recv(65536)
            if not c:
                return data, "close_notify"
            data += c
    except ssl.SSLEOFError:
        return data, "eof"
    except ConnectionResetError:
        return data, "reset"
    except socket.timeout:
        return data, "timeout"
    except (OSError, ssl.SSLError) as e:
        return data, "error: %s" % e


def served(port, line=b"ping"):
    """One real TLS session against the report program: report, echo, quit."""
    try:
        with suite.tls_connect(port, ctx, timeout=20) as s:
            rep = suite.report_of(s, 20)
            s.sendall(line + b"\n")
            echo = suite.read_line(s, 20)
            s.sendall(b"quit\n")
            rest = suite.read_all(s, 20)
        return rep is not None and echo == "echo: %s\n" % line.decode() and rest == b""
    except (OSError, ssl.SSLError):
        return False


def reset(sock):
    """Closes with SO_LINGER 0: the kernel sends a RST, not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def pipe_bytes(pid, fd):
    """Bytes waiting in the pipe that is descriptor fd of process pid (read
    through /proc), None if that cannot be seen."""
    import fcntl
    import termios
    try:
        f = os.open("/proc/%d/fd/%d" % (pid, fd), os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return struct.unpack("i", fcntl.ioctl(f, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return None
    finally:
        os.close(f)


def tcp_rx_queue(lport, rport):
    """Bytes received and not yet read on the IPv4 TCP socket 127.0.0.1:lport
    <-> 127.0.0.1:rport (/proc/net/tcp), None if there is none."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            x = line.split()
            if int(x[1].split(":")[1], 16) == lport and int(x[2].split(":")[1], 16) == rport:
                return int(x[4].split(":")[1], 16)
    return None


def no_children(srv, timeout=10):
    return suite.wait_until(lambda: not suite.children_of(srv.proc.pid), timeout)


# ======================================================================
# 1. A flood of silent connections against -c 1000 -T T. T is 2 seconds on
# a machine that creates processes in about 1 ms, more on a slower one (up
# to 10): the real clients in the middle of the flood must finish their
# handshakes within it while 1000 engines are being forked.
N = 1000
T = min(10, max(2, int(round(suite.patience(1)))))
srv = server(["-c", str(N), "-T", str(T), "-b", "1024"], [suite.PYTHON, suite.REPORT])
ok(srv.port, "flood: sslserver -c %d -T %d started" % (N, T))
lim = suite.rlimit_of(srv.proc.pid)
ok(isinstance(lim, int) and lim >= N + 64, "flood: the server runs with a descriptor limit above %d (%r)" % (N, lim))
lim = suite.rlimit_of(os.getpid())
ok(isinstance(lim, int) and lim >= N + 64, "flood: so does the test process (%r)" % lim)

silent = []
real = {}


def real_client(key):
    real[key] = {"start": time.monotonic()}
    real[key]["ok"] = served(srv.port, key.encode())
    real[key]["done"] = time.monotonic()


t_real = None
for i in range(N):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10))
    s.setblocking(False)
    silent.append({"sock": s, "at": time.monotonic(), "closed": None, "how": None})
    if i == N // 2:
        # A real client in the middle of the flood: it has a slot, and must
        # be served while the silent ones are still hanging.
        t_real = threading.Thread(target=real_client, args=("middle",), daemon=True)
        t_real.start()
# All N slots may be taken now: this one waits in the backlog until -T frees one.
t_late = threading.Thread(target=real_client, args=("late",), daemon=True)
t_late.start()

sel = selectors.DefaultSelector()
for c in silent:
    sel.register(c["sock"], selectors.EVENT_READ, c)
left = N
# How long the server takes to accept the flood (fork an engine for each) is
# measured, not assumed: a silent connection accepted late is closed late.
accepted_all = None
deadline = time.monotonic() + suite.patience(60)
while left and time.monotonic() < deadline:
    if accepted_all is None and suite.log_count(srv, r"^sslserver: pid \d+ from ") >= N:
        accepted_all = time.monotonic()
    for key, _ in sel.select(timeout=1):
        c = key.data
        try:
            d = c["sock"].recv(4096)
            c["how"] = "fin" if d == b"" else "data"
        except ConnectionResetError:
            c["how"] = "reset"
        except BlockingIOError:
            continue
        c["closed"] = time.monotonic()
        sel.unregister(c["sock"])
        c["sock"].close()
        left -= 1
sel.close()
t_real.join(suite.patience(30))
t_late.join(suite.patience(30))
cut = [c for c in silent if c["closed"] is not None]
is_(len(cut), N, "flood: all %d silent connections were closed by the server within the bound" % N)
is_(sorted(set(c["how"] for c in cut)), ["fin"], "flood: each was closed with a FIN and no byte sent")
lives = [c["closed"] - c["at"] for c in cut] or [0]
ok(min(lives) >= T - 0.1, "flood: none closed before the -T %d handshake timeout (shortest %.2fs)" % (T, min(lives)))
accept_span = (accepted_all or time.monotonic()) - silent[0]["at"]
limit, how = suite.bound(5)
ok(max(lives) < accept_span + T + limit,
   "flood: each closed within the time to accept the flood (measured %.1fs) + -T %d + a margin (%s): longest %.2fs"
   % (accept_span, T, how, max(lives)))
m = real.get("middle", {})
ok(m.get("ok"), "flood: a real TLS client in the middle of the flood was served (report, echo, clean end)", m)
ok(m.get("ok") and sum(1 for c in silent if c["closed"] is None or c["closed"] > m["done"]) > 0,
   "flood: ... while silent connections were still being held (served meanwhile, not after the flood)")
ok(real.get("late", {}).get("ok"), "flood: a real client arriving with every slot taken is served once -T frees one",
   real.get("late"))
ok(suite.wait_until(lambda: suite.log_count(srv, r"^sslserver: end \d+ status ") >= N + 2, 20),
   "flood: an end line for every connection (%d)" % suite.log_count(srv, r"^sslserver: end \d+ status "))
is_(suite.log_count(srv, r"^sslserver: error: \(111\) unable to accept TLS from: 127\.0\.0\.1 for pid: \d+: sni: -: offered: -: timed out$"), N,
    "flood: one 'unable to accept TLS ... timed out' line per silent connection")
is_(suite.log_count(srv, r"^sslserver: end \d+ status 28416$"), N, "flood: every silent connection ended with exit 111")
ok(no_children(srv, 20), "flood: no child (engine, program or zombie) left under sslserver", suite.children_of(srv.proc.pid))
ok(suite.wait_until(lambda: (re.findall(r"^sslserver: status: (\d+/\d+)$", srv.log(), re.M) or [None])[-1] == "0/%d" % N),
   "flood: the last status line is 0/%d" % N)
ok(srv.alive(), "flood: sslserver is still running")
srv.stop()

# ======================================================================
# 2. Broken handshakes: resets mid-handshake, clients that give up, garbage.
# -T is twice the bound for "at once", so an end within that bound was
# caused by the client, not by the timeout. Each client waits for the
# server's "ok PID" line before misbehaving, so the engine is in its
# handshake when it happens.
marker = os.path.join(WORK, "started")
AT_ONCE, AT_ONCE_HOW = suite.bound(10)
srv = server(["-T", str(int(2 * AT_ONCE))], ["sh", "-c", "echo run >> %s; echo started" % marker])
hello = suite.client_hello()
ok(len(hello) > 100 and hello[0] == 0x16, "a real ClientHello to cut short (%d bytes)" % len(hello))


def misbehave(action):
    """Connects, waits until the server's connection process has logged its
    "ok" line, runs action(sock); returns (pid, end status, error reason, seconds)."""
    n = suite.log_count(srv, r"^sslserver: ok ")
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10))
    suite.wait_until(lambda: suite.log_count(srv, r"^sslserver: ok ") > n, 10)
    p = suite.pids(srv)[-1]
    action(s)
    st = suite.end_status(srv, p, 15)
    m = re.search(r"^sslserver: error: \(111\) unable to accept TLS from: 127\.0\.0\.1 for pid: %s: sni: \S+: offered: \S+: (.*)$" % p, srv.log(), re.M)
    return p, st, m.group(1) if m else None, time.monotonic() - t0


def partial_rst(s):
    s.sendall(hello[:len(hello) // 2])
    reset(s)


def full_rst(s):
    s.sendall(hello)
    s.recv(5)       # the server has answered: it now waits for our Finished
    reset(s)


def partial_fin(s):
    s.sendall(hello[:len(hello) // 2])
    s.close()


def silent_fin(s):
    s.close()


for action, name, reason in ((partial_rst, "half a ClientHello, then RST", r"^Connection reset by peer$"),
                             (full_rst, "a whole ClientHello, the ServerHello read, then RST", r"^Connection reset by peer$"),
                             (partial_fin, "half a ClientHello, then a plain close (FIN)", r"(?i)closed"),
                             (silent_fin, "nothing, then a plain close (FIN), like a TCP health check", r"(?i)closed")):
    p, st, why, took = misbehave(action)
    ok(st is not None and took < AT_ONCE, "%s: the connection ends at once (%.2fs; %s), not at -T" % (name, took, AT_ONCE_HOW))
    is_(st, 111 << 8, "%s: the connection process exits 111" % name)
    like(why, reason, "%s: the error line gives the cause" % name)

# garbage: random bytes, NULs, an oversized record, a malformed ClientHello,
# an HTTP request, records of the wrong type
# (random bytes start with a fixed non-TLS prefix: a random "version" of
# 0x03xx, or an SSLv2-style header, would make OpenSSL wait for the length
# it announces, correctly, until -T)
garbage = [("random bytes", b"\xde\xad\xbe" + os.urandom(4096)), ("NUL bytes", b"\0" * 100),
           ("a record header claiming 64 kB", b"\x16\x03\x01\xff\xff" + os.urandom(3000)),
           ("a malformed ClientHello", b"\x16\x03\x03\x00\x30\x01\x00\x00\x2c" + b"\xff" * 0x2c),
           ("an HTTP request", b"GET / HTTP/1.0\r\n\r\n" * 100),
           ("application data before a handshake", b"\x17\x03\x03\x00\x10" + b"a" * 16),
           ("a fatal alert", b"\x15\x03\x03\x00\x02\x02\x28")]
for name, g in garbage:
    got = {}

    def send_garbage(s):
        try:
            s.sendall(g)
        except OSError:
            pass
        s.settimeout(suite.patience(15))
        data = b""
        try:
            while True:
                c = s.recv(4096)
                if not c:
                    break
                data += c
            got["how"] = "fin"
        except ConnectionResetError:
            got["how"] = "reset"
        except socket.timeout:
            got["how"] = "timeout"
        got["data"] = data
        s.close()
    p, st, why, took = misbehave(send_garbage)
    ok(got.get("how") in ("fin", "reset") and took < AT_ONCE and b"started" not in got.get("data", b""),
       "garbage (%s): the connection is closed promptly (%s, %.2fs; %s), the program never speaks"
       % (name, got.get("how"), took, AT_ONCE_HOW))
    ok(st == 111 << 8 and why and "no error reported" not in why, "garbage (%s): exit 111, logged: %s" % (name, why))

ok(not os.path.exists(marker), "broken handshakes: the program never ran")
ok(no_children(srv), "broken handshakes: no child or zombie left", suite.children_of(srv.proc.pid))
with suite.tls_connect(srv.port, ctx) as s:
    is_(suite.read_line(s), "started\n", "broken handshakes: the server still serves a real client")
srv.stop()

# Connections reset while still waiting in the backlog (the only slot of
# -c 1 taken): the connection process finds a dead socket. It must still say
# who it was, like any other connection.
srv = server(["-c", "1", "-T", "20"], [suite.PYTHON, suite.REPORT])
holder = suite.tls_connect(srv.port, ctx)
ok(suite.report_of(holder) is not None, "reset in the backlog: the only slot (-c 1) is taken")
for i in range(3):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10))
    s.sendall(hello[:100])
    reset(s)
holder.sendall(b"quit\n")
suite.read_all(holder)
holder.close()
ok(suite.wait_until(lambda: suite.log_count(srv, r"^sslserver: end \d+ status ") >= 4, 15),
   "reset in the backlog: the 3 reset connections are accepted once the slot frees, and end promptly")
is_(suite.log_count(srv, r"^sslserver: pid \d+ from 127\.0\.0\.1$"), 4, "reset in the backlog: each is logged as 'pid N from 127.0.0.1'")
unlike(srv.log(), r"^sslserver: fatal: ", "reset in the backlog: a client's reset is not logged as 'fatal' (without an address)")
ok(served(srv.port), "reset in the backlog: the server keeps serving")
srv.stop()

# ======================================================================
# 3. A 1 MB line inside TLS, through cat and through head -n 1.
line = os.urandom(1 << 20).hex().encode()[: (1 << 20) - 1].replace(b"\n", b"x") + b"\n"
for app, name in ((["cat"], "cat"), (["head", "-n", "1"], "head -n 1")):
    srv = server([], app)
    s = strict(srv.port, timeout=20)
    data, how, send_error = suite.tls_exchange(s, line, until=len(line), timeout=20)
    s.settimeout(suite.patience(20))
    ok(how == "enough" and send_error is None, "1 MB line via %s: sent and read back in one thread (%s, %s)" % (name, how, send_error))
    is_(len(data), len(line), "1 MB line via %s: every byte came back" % name)
    ok(hashlib.sha256(data).digest() == hashlib.sha256(line).digest(), "1 MB line via %s: intact (same SHA-256)" % name)
    if name == "cat":
        try:
            s.unwrap()  # our close_notify; cat sees EOF, exits, and the engine answers with its own
            rest, how = b"", "close_notify"
        except (OSError, ssl.SSLError) as e:
            rest, how = b"", "error: %s" % e
    else:
        rest, how = ending(s, 20)
    s.close()
    ok(rest == b"" and how == "close_notify", "1 MB line via %s: the session ends with a close_notify (%s)" % (name, how))
    p = suite.pids(srv)
    is_(suite.end_status(srv, p[0]) if p else None, 0, "1 MB line via %s: end line, status 0" % name)
    srv.stop()

# ----------------------------------------------------------------------
# 3b. A slow reader of a 16 MB download. The client first reads nothing
# until the engine has stopped: the program's output pipe holds bytes, and
# the engine made no read or write between two looks (it waits in poll for
# the socket; a spinning engine never stands still). Then it reads in small
# pieces with pauses, then at full speed to the close_notify: every byte
# must arrive, in order.
BIG = 16 << 20
blob = os.path.join(WORK, "download.bin")
with open(blob, "wb") as f:
    f.write(os.urandom(BIG))
with open(blob, "rb") as f:
    blob_sha = hashlib.sha256(f.read()).hexdigest()


def syscalls(pid):
    """Reads and writes process pid has made (/proc/PID/io), None if unseen."""
    try:
        with open("/proc/%d/io" % pid) as f:
            kv = dict(x.split(": ") for x in f.read().splitlines())
        return int(kv["syscr"]) + int(kv["syscw"])
    except (OSError, KeyError, ValueError):
        return None


srv = server([], ["sh", "-c", "echo $$; exec cat %s" % blob])
s = strict(srv.port, timeout=20)
apppid = int(suite.read_line(s, 20).strip() or 0)
p = suite.pids(srv)
enginepid = int(p[0]) if p else 0
seen = [None]


def engine_waits():
    n, was = syscalls(enginepid), seen[0]
    seen[0] = n
    return n is not None and n == was and bool(pipe_bytes(apppid, 1))


ok(suite.wait_until(engine_waits, 20, step=0.1),
   "slow reader: with the client not reading, the engine waits (program's pipe %r bytes, engine's reads and writes %r)"
   % (pipe_bytes(apppid, 1), syscalls(enginepid)))
got = []
s.settimeout(suite.patience(20))
try:
    for i in range(200):
        got.append(s.recv(1000 + i))
        time.sleep(0.002)
    slow = sum(len(c) for c in got)
except (OSError, ssl.SSLError) as e:
    slow = "%s: %s" % (type(e).__name__, e)
ok(isinstance(slow, int) and slow > 0, "slow reader: small reads with pauses (%r bytes)" % slow)
rest, how = ending(s, 60)
s.close()
data = b"".join(got) + rest
is_(len(data), BIG, "slow reader: then at full speed: all 16 MB arrived")
is_(hashlib.sha256(data).hexdigest(), blob_sha, "slow reader: in order (same SHA-256)")
is_(how, "close_notify", "slow reader: the session ends with a close_notify")
is_(suite.end_status(srv, enginepid, 20) if enginepid else None, 0, "slow reader: end line, status 0")
srv.stop()

# ======================================================================
# 4. Programs that misbehave.
# 4a. It crashes: kill -SEGV itself.
srv = server([], ["sh", "-c", "echo ready; read x; kill -SEGV $$; echo survived"])
s = strict(srv.port)
is_(suite.read_line(s), "ready\n", "crash: the program started")
s.sendall(b"go\n")
rest, how = ending(s)
s.close()
ok(b"survived" not in rest and how in ("close_notify", "eof"), "crash: the connection ends (%s)" % how)
p = suite.pids(srv)
st = suite.end_status(srv, p[0]) if p else None
is_(st, (128 + signal.SIGSEGV) << 8, "crash: the end line shows the status: exit 139 = 128+SIGSEGV (raw %r)" % st)
ok(no_children(srv), "crash: nothing left behind", suite.children_of(srv.proc.pid))
ok(not os.path.exists(os.path.join(WORK, "core")), "crash: no core file (RLIMIT_CORE 0 in the server)")
srv.stop()

# 4b. It exits early while the client is still sending.
srv = server([], ["sh", "-c", "head -c 1000 >/dev/null; echo bye; exit 3"])
s = strict(srv.port, timeout=20)
rest, how, send_error = suite.tls_exchange(s, b"z" * (10 << 20), timeout=20)   # far more than the program reads
ok(how != "timeout", "early exit: the sending client is not left hanging (%s)" % (send_error or "all sent"))
is_(rest, b"bye\n", "early exit: the program's last words reach the client")
# The program's exit leaves the client's bytes unread, so the engine's close
# may reach the client as a RST. A socket reports a RST once: if a send
# took it, the read then sees a plain EOF, which is the same end.
reset_seen = send_error is not None and ("Reset" in send_error or "Broken pipe" in send_error)
ok(how in ("close_notify", "reset") or how == "eof" and reset_seen,
   "early exit: then the session ends (%s; sending: %s)" % (how, send_error or "all sent"))
s.close()
p = suite.pids(srv)
is_(suite.end_status(srv, p[0]) if p else None, 3 << 8, "early exit: end line shows the program's exit code 3")
ok(no_children(srv), "early exit: nothing left behind", suite.children_of(srv.proc.pid))
srv.stop()

# 4c. It closes stdout early but keeps reading stdin until the client is done.
srv = server([], ["sh", "-c", "echo bye; exec >&-; n=$(wc -c); echo \"app read $n bytes after closing stdout\" >&2"])
s = strict(srv.port)
data, how = ending(s)
is_((data, how), (b"bye\n", "close_notify"), "stdout closed early: the client gets the output then a close_notify")
ok(srv.alive() and not re.search(r"^sslserver: end ", srv.log(), re.M), "stdout closed early: the connection stays up")
try:
    s.sendall(b"0123456789\n" * 3)  # TLS allows sending after the peer's close_notify
    s.unwrap()
    sent = True
except (OSError, ssl.SSLError) as e:
    sent = "%s: %s" % (type(e).__name__, e)
s.close()
ok(sent is True, "stdout closed early: the client can still send, then close", sent)
ok(srv.wait_log(r"^app read 33 bytes after closing stdout$"), "stdout closed early: the program read all 33 bytes sent after its stdout closed")
p = suite.pids(srv)
is_(suite.end_status(srv, p[0]) if p else None, 0, "stdout closed early: end line, status 0")
srv.stop()

# ======================================================================
# 5. The peer vanishes mid-transfer (RST): while the engine writes, while it
# reads, and after the program has closed its output (the engine has
# already sent its close_notify and still reads).
fifo = os.path.join(WORK, "go")
os.mkfifo(fifo)
for direction, app in (("server sending", "echo $$; exec yes"),
                       ("server receiving", "echo $$; exec cat 3>&1 >/dev/null"),
                       ("program's output already closed", "echo $$; read x < %s; exec >&-; exec cat >/dev/null" % fifo)):
    srv = server([], ["sh", "-c", app])
    s = strict(srv.port)
    apppid = int(suite.read_line(s).strip() or 0)
    p = suite.pids(srv)
    p = p[0] if p else 0
    if direction == "server sending":
        ok(s.recv(65536).startswith(b"y"), "vanish (%s): data is flowing" % direction)
    else:
        # 384 kB: more than the program's pipe and the engine's buffer hold
        for _ in range(6):
            s.sendall(b"x" * 65536)
    if direction == "program's output already closed":
        # The program reads nothing yet: wait until the engine has stopped
        # reading the socket (the program's stdin pipe full, bytes waiting
        # in the socket), so that the RST lands while the engine is not
        # looking, and is only noticed once the program closes its stdout.
        cport = s.getsockname()[1]
        ok(suite.wait_until(lambda: pipe_bytes(apppid, 0) == 65536 and tcp_rx_queue(srv.port, cport), 10),
           "vanish (%s): the engine has stopped reading (pipe %r bytes, socket %r bytes waiting)"
           % (direction, pipe_bytes(apppid, 0), tcp_rx_queue(srv.port, cport)))
    reset(s)
    if direction == "program's output already closed":
        # only now does the program close its stdout (a rendezvous on a FIFO)
        def open_fifo():
            try:
                return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                return None
        fd = suite.wait_until(open_fifo, 10)
        try:
            os.write(fd, b"go\n")
            os.close(fd)
            told = True
        except (OSError, TypeError) as e:
            told = "%s" % e
        ok(told is True, "vanish (%s): the program was still waiting when the peer vanished, and now closes its stdout" % direction, told)
    t0 = time.monotonic()
    st = suite.end_status(srv, p, 15)
    took, (limit, how) = time.monotonic() - t0, suite.bound(10)
    ok(st is not None and took < limit, "vanish (%s): the connection ends, no hang (%.2fs; %s)" % (direction, took, how))
    m = re.search(r"^sslserver: error: \(111\) unable to speak TLS with: 127\.0\.0\.1 for pid: %s: (.*)$" % p, srv.log(), re.M)
    ok(m, "vanish (%s): the engine logs an error line" % direction, srv.log())
    like(m.group(1) if m else None, r"^(Connection reset by peer|Broken pipe)$", "vanish (%s): it names the reset" % direction)
    ok(st not in (None, 0), "vanish (%s): a session cut by the network does not end with status 0 (%r)" % (direction, st))
    ok(suite.wait_until(lambda: suite.proc_status(apppid) is None, 10), "vanish (%s): the program is gone" % direction)
    ok(no_children(srv), "vanish (%s): no engine or zombie left" % direction, suite.children_of(srv.proc.pid))
    ok(srv.alive(), "vanish (%s): sslserver still running" % direction)
    srv.stop()

# ======================================================================
# 6. Many connections (SOAK_CONNECTIONS, 1000 in make check, 10,000 in make
# soak): no growth in the main process's descriptors or memory, no zombie.
# 4 client processes in parallel, each connection a full handshake with the
# program `true`. How long that takes depends on the machine (on a 2-core
# machine creating a process in 3 ms, about 1.3 s per 100 connections), so
# the bound is derived from the rate the warm-up connections measured.
TOTAL, PROCS, WARM = int(os.environ.get("SOAK_CONNECTIONS") or 1000), 4, 200
srv = server([], ["true"])
main = srv.proc.pid


def load(n, limit):
    """n connections from PROCS client processes; each must report within
    limit seconds. Returns their results."""
    ps = [subprocess.Popen([suite.PYTHON, LOAD, str(srv.port), str(n // PROCS if PROCS > 1 else n)],
                           stdout=subprocess.PIPE) for _ in range(PROCS if n >= PROCS else 1)]
    res = []
    deadline = time.monotonic() + limit
    for p in ps:
        try:
            out, _ = p.communicate(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            out = b""
        try:
            res.append(json.loads(out))
        except ValueError:
            res.append({"ok": 0, "errors": {"no result within %.0fs" % limit: 1}})
    return res


def settled(n):
    return suite.wait_until(lambda: suite.log_count(srv, r"^sslserver: end \d+ status ") >= n and not suite.children_of(main), 20)


t0 = time.monotonic()
r = load(WARM, suite.patience(120))
warm_rate = WARM / max(0.001, time.monotonic() - t0)
ok(sum(x["ok"] for x in r) == WARM and settled(WARM), "soak: %d warm-up connections (%.0f/s)" % (WARM, warm_rate), r)
fd0, rss0 = suite.fd_count(main), suite.vm_rss_kb(main)
# A hang detector, not a speed test: ten times what the warm-up rate predicts.
limit = 60 + 10 * TOTAL / warm_rate
t0 = time.monotonic()
r = load(TOTAL, limit)
elapsed = time.monotonic() - t0
good = sum(x["ok"] for x in r)
errors = {}
for x in r:
    for k, v in x["errors"].items():
        errors[k] = errors.get(k, 0) + v
is_(good, TOTAL, "soak: all %d connections completed a handshake and a clean close (%.1fs; bound %.0fs = 60s + 10 x"
    " what the warm-up's %.0f connections/s predict)" % (TOTAL, elapsed, limit, warm_rate))
ok(not errors, "soak: no client error", errors)
ok(settled(WARM + TOTAL), "soak: every connection logged its end and was reaped")
is_(suite.log_count(srv, r"^sslserver: end \d+ status 0$"), WARM + TOTAL, "soak: every end line says status 0")
ok(not suite.zombies_of(main) and not suite.children_of(main), "soak: no zombie, no child left")
fd1, rss1 = suite.fd_count(main), suite.vm_rss_kb(main)
is_(fd1, fd0, "soak: the main process's open descriptors did not grow (%r -> %r)" % (fd0, fd1))
ok(rss0 and rss1 and rss1 - rss0 <= 256, "soak: the main process's VmRSS did not grow beyond 256 kB (%r -> %r kB)" % (rss0, rss1))
srv.stop()

# ======================================================================
# 7. SIGHUP storm under load, then SIGTERM.
srv = server([], ["sh", "-c", "echo hello; read l; echo \"got $l\""])
main = srv.proc.pid
stop = threading.Event()
lock = threading.Lock()
tally = {"done": 0, "failed": [], "refused": 0}


def worker(n):
    while not stop.is_set():
        phase = "connect"
        try:
            with strict(srv.port, timeout=20) as s:
                phase = "greeting"
                if suite.read_line(s, 20) != "hello\n":
                    raise OSError("no greeting")
                phase = "session"   # from here on, the session must complete
                s.sendall(b"w%d\n" % n)
                data, how = ending(s, 20)
                if data != b"got w%d\n" % n or how != "close_notify":
                    raise OSError("bad end: %r %s" % (data, how))
            with lock:
                tally["done"] += 1
        except (OSError, ssl.SSLError) as e:
            with lock:
                if phase == "session" or not stop.is_set() and not hup_over.is_set():
                    tally["failed"].append("%s: %s: %s" % (phase, type(e).__name__, e))
                else:
                    tally["refused"] += 1
            if stop.is_set() or hup_over.is_set():
                return


hup_over = threading.Event()
long = strict(srv.port)
ok(suite.read_line(long) == "hello\n", "SIGHUP storm: a long session is open before it")
workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(4)]
for t in workers:
    t.start()
progressed = 0
for i in range(50):
    before = tally["done"]
    srv.signal(signal.SIGHUP)
    if suite.wait_until(lambda: tally["done"] > before, 10):
        progressed += 1
is_(progressed, 50, "SIGHUP storm: after each of 50 SIGHUPs, more sessions completed (%d in all)" % tally["done"])
is_(tally["failed"], [], "SIGHUP storm: no session failed")
ok(srv.alive(), "SIGHUP storm: sslserver survived")
n = suite.log_count(srv, r"^sslserver: reloaded TLS material$")
ok(n >= 1, "SIGHUP storm: the reloads were logged (%d)" % n)
is_(suite.log_problems(srv), [], "SIGHUP storm: no warning or error logged (but the one about an engine left as root)")
long.sendall(b"still here\n")
data, how = ending(long)
long.close()
is_((data, how), (b"got still here\n", "close_notify"), "SIGHUP storm: the long session was unaffected")
# SIGTERM while the load still runs.
hup_over.set()
t0 = time.monotonic()
srv.signal(signal.SIGTERM)
rc = srv.wait(5)
took = time.monotonic() - t0
is_(rc, 0, "SIGTERM under load: sslserver exits 0")
limit, how = suite.bound(3)
ok(took < limit, "SIGTERM under load: promptly (%.2fs; %s)" % (took, how))
stop.set()
for t in workers:
    t.join(suite.patience(30))
ok(not any(t.is_alive() for t in workers), "SIGTERM under load: every client finished")
is_(tally["failed"], [], "SIGTERM under load: every session already begun completed normally (%d refused afterwards)" % tally["refused"])
ok(suite.connection_refused(srv.port), "SIGTERM under load: the port is closed")
srv.stop()

# ======================================================================
# 8. Renegotiation refused (TLS 1.2, s_client's interactive R command).
srv = server([], [suite.PYTHON, suite.REPORT])
outpath = os.path.join(WORK, "s_client.out")
with open(outpath, "wb") as out:
    sc = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.port, "-tls1_2", "-state",
                           "-CAfile", ca["crt"], "-servername", "localhost"],
                          stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)


def sc_out():
    with open(outpath, "rb") as f:
        return f.read().decode("utf-8", "replace")


ok(suite.wait_until(lambda: '"env"' in sc_out(), 10), "renegotiation: TLS 1.2 session up, program reported")
sc.stdin.write(b"before\n")
sc.stdin.flush()
ok(suite.wait_until(lambda: "echo: before" in sc_out(), 10), "renegotiation: data flows before the attempt")
sc.stdin.write(b"R\n")
sc.stdin.flush()
ok(suite.wait_until(lambda: "RENEGOTIATING" in sc_out(), 10), "renegotiation: s_client attempted it (RENEGOTIATING)")
ended = suite.wait_until(lambda: sc.poll() is not None, 10)
if not ended:
    try:
        sc.stdin.write(b"after\n")
        sc.stdin.flush()
    except OSError:
        pass
    suite.wait_until(lambda: "echo: after" in sc_out() or sc.poll() is not None, 5)
    sc.kill()
sc.wait()
text = sc_out()
after = text.split("RENEGOTIATING", 1)[-1]
ok(ended and sc.returncode != 0, "renegotiation: the connection closes and s_client fails (rc %r)" % sc.returncode)
like(after, r"alert read:warning:no renegotiation|no renegotiation", "renegotiation: the server refused it (no_renegotiation)")
unlike(after, r"SSL_connect:SSLv3/TLS read (server hello|finished)", "renegotiation: no second handshake took place")
is_(len(re.findall(r"SSL_connect:SSLv3/TLS read finished", text)), 1, "renegotiation: exactly one handshake completed")
unlike(text, r"echo: after", "renegotiation: no data after the attempt")
ok(srv.wait_log(r"^sslserver: error: \(111\) unable to speak TLS with: 127\.0\.0\.1 for pid: \d+: "), "renegotiation: the engine logged why the session ended")
ok(served(srv.port), "renegotiation: the server keeps serving other clients")
srv.stop()

# ======================================================================
# 9. Compression off, TLS 1.0/1.1 only when configured.
srv = server([], ["sh", "-c", "echo hi from $SSL_PROTOCOL"])
rc, out, err = suite.s_client(srv.port, ["-tls1_2", "-CAfile", ca["crt"], "-servername", "localhost"])
ok(re.search(r"^New, TLSv1\.2, Cipher is ECDHE-", out, re.M) and "hi from TLSv1.2" in out, "compression: TLS 1.2 session established")
like(out, r"^Compression: NONE$", "compression: s_client reports 'Compression: NONE'")


def tls12_hello(compression):
    """A hand-made TLS 1.2 ClientHello offering the given compression methods,
    so that the server's choice can be seen even though our OpenSSL never
    offers DEFLATE."""
    def ext(t, data):
        return struct.pack("!HH", t, len(data)) + data
    ciphers = [0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8]
    sigalgs = [0x0403, 0x0503, 0x0804, 0x0805, 0x0401, 0x0501]
    exts = (ext(0x000A, struct.pack("!HHH", 4, 0x001D, 0x0017)) + ext(0x000B, b"\x01\x00")
            + ext(0x000D, struct.pack("!H", 2 * len(sigalgs)) + b"".join(struct.pack("!H", a) for a in sigalgs))
            + ext(0xFF01, b"\x00") + ext(0x0017, b""))
    body = (b"\x03\x03" + os.urandom(32) + b"\x00" + struct.pack("!H", 2 * len(ciphers))
            + b"".join(struct.pack("!H", c) for c in ciphers) + bytes([len(compression)]) + compression
            + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def server_compression(port, compression):
    """The compression method in the ServerHello, or the alert."""
    with socket.create_connection(("127.0.0.1", port), timeout=suite.patience(10)) as s:
        s.sendall(tls12_hello(compression))
        s.settimeout(suite.patience(10))
        buf = b""
        try:
            while len(buf) < 5 or len(buf) < 5 + struct.unpack("!H", buf[3:5])[0]:
                c = s.recv(4096)
                if not c:
                    break
                buf += c
        except OSError:
            pass
    if buf[:1] == b"\x15":
        return "alert"
    if buf[:1] != b"\x16" or len(buf) < 9 or buf[5] != 2:
        return "unexpected: %r" % buf[:16]
    sidlen = buf[5 + 4 + 2 + 32]
    return buf[5 + 4 + 2 + 32 + 1 + sidlen + 2]


is_(server_compression(srv.port, b"\x01\x00"), 0, "compression: a client offering DEFLATE first gets method 0 (null) in the ServerHello")
ok(server_compression(srv.port, b"\x00") == 0, "compression: ... and the same hand-made hello without DEFLATE works (the probe is sound)")

for flag, name in (("-tls1", "TLS 1.0"), ("-tls1_1", "TLS 1.1")):
    rc, out, err = suite.s_client(srv.port, [flag, "-cipher", "DEFAULT:@SECLEVEL=0"])
    ok(rc != 0 and "hi from" not in out and not re.search(r"^New, TLSv1", out, re.M),
       "defaults: %s refused (rc %d)" % (name, rc))
ok(srv.wait_log(r"unable to accept TLS from: 127\.0\.0\.1 for pid: \d+: sni: -: offered: TLSv1(\.1)?: unsupported protocol"), "defaults: logged as 'unsupported protocol'")
srv.stop()

srv = server([], ["sh", "-c", "echo hi from $SSL_PROTOCOL"], env={"TLSMINVERSION": "TLSv1"})
for flag, name, proto in (("-tls1", "TLS 1.0", "TLSv1"), ("-tls1_1", "TLS 1.1", "TLSv1.1")):
    rc, out, err = suite.s_client(srv.port, [flag, "-cipher", "DEFAULT:@SECLEVEL=0", "-CAfile", ca["crt"]])
    ok(rc == 0 and re.search(r"^New, TLSv1\.0, Cipher is ECDHE-", out, re.M) and re.search(r"^hi from %s$" % re.escape(proto), out, re.M),
       "TLSMINVERSION=TLSv1: %s allowed (s_client -%s -cipher DEFAULT:@SECLEVEL=0)" % (name, flag.lstrip("-")), out[-400:])
rc, out, err = suite.s_client(srv.port, ["-CAfile", ca["crt"]])
like(out, r"^hi from TLSv1\.3$", "TLSMINVERSION=TLSv1: TLS 1.3 is still what a modern client gets")
srv.stop()
