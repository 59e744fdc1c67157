#!/usr/bin/python3
# Limits and signals: -c bounds concurrent connections (the next client
# waits in the backlog until one ends), status lines with -v; SIGTERM stops
# the listener at once and leaves sessions in progress alone; children are
# reaped (no zombies, one "end PID status 0" each); SIGHUP re-reads the
# certificate (a broken one is refused with a warning, the old one kept);
# -w cuts a session that stays idle.
import os
import re
import select
import shutil
import signal
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike, diag  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
leaf1 = pki.leaf("server-one", ca)
leaf2 = pki.leaf("server-two", ca)
ENV = {"CERTFILE": leaf1["pem"], "KEYFILE": leaf1["key"]}
ctx = suite.client_context(ca["crt"])


def finish(s):
    try:
        s.sendall(b"quit\n")
        suite.read_all(s)
    except OSError:
        pass
    s.close()


# ---------------------------------------------------------------- -c 2
srv = suite.Server(["-v", "-c", "2"], env=ENV)
ok(srv.port, "-c 2: server started")
ok(srv.wait_log(r"^sslserver: status: 0/2$"), "-c 2: 'status: 0/2' at start")
a = suite.tls_connect(srv.port, ctx)
ra = suite.report_of(a)
b = suite.tls_connect(srv.port, ctx)
rb = suite.report_of(b)
ok(ra is not None and rb is not None, "-c 2: two clients served at once")
ok(srv.wait_log(r"^sslserver: status: 2/2$"), "-c 2: 'status: 2/2' logged")

third = {}


def third_client():
    try:
        s = suite.tls_connect(srv.port, ctx, timeout=20)
        rep = suite.report_of(s, timeout=20)
        third["report"] = rep
        third["at"] = time.monotonic()
        third["sock"] = s
    except (OSError, ssl.SSLError) as e:
        third["error"] = str(e)


t = threading.Thread(target=third_client, daemon=True)
t.start()
early = suite.wait_until(lambda: "report" in third or "error" in third, 1.5, scaled=False)
ok(not early, "-c 2: a third concurrent client gets no report while two are served", third)
is_(suite.log_count(srv, r"^sslserver: pid \d+ from "), 2, "-c 2: the third connection was not accepted")
closed_at = time.monotonic()
finish(a)
t.join(suite.patience(15))
ok(third.get("report") is not None, "-c 2: the third client is served once one of the first two ends", third.get("error"))
ok(third.get("at", 0) >= closed_at, "-c 2: ... and only after that")
log = srv.log()
first_end = log.find("sslserver: end ")
# (where each pid line is, not which pid: a reused engine keeps its pid)
pid_at = [m.start() for m in re.finditer(r"^sslserver: pid (\d+) from ", log, re.M)]
ok(len(pid_at) == 3 and first_end != -1 and pid_at[2] > first_end,
   "-c 2: the log shows the third 'pid' line after the first 'end' line")
like(log, r"^sslserver: status: 1/2$", "-c 2: 'status: 1/2' logged when one ended")
finish(b)
if third.get("sock"):
    finish(third["sock"])
ok(suite.wait_until(lambda: suite.log_count(srv, r"^sslserver: end \d+ status 0$") == 3), "-c 2: three 'end PID status 0' lines")
ok(srv.wait_log(r"^sslserver: status: 0/2\n(?![\s\S]*status: [12]/2)"), "-c 2: back to 'status: 0/2'")
srv.stop()

# ---------------------------------------------------------------- SIGTERM
srv = suite.Server(["-v"], env=ENV)
a = suite.tls_connect(srv.port, ctx)
ra = suite.report_of(a)
ok(ra is not None, "SIGTERM: a session is in progress")
t0 = time.monotonic()
srv.signal(signal.SIGTERM)
rc = srv.wait(5)
is_(rc, 0, "SIGTERM: sslserver exits 0")
took, (limit, how) = time.monotonic() - t0, suite.bound(3)
ok(took < limit, "SIGTERM: promptly (%.2fs; %s) although a session is in progress" % (took, how))
ok(suite.connection_refused(srv.port), "SIGTERM: the port no longer accepts connections")
a.sendall(b"still there?\n")
is_(suite.read_line(a), "echo: still there?\n", "SIGTERM: the session in progress keeps working (children not killed)")
ok(suite.proc_status(ra["ppid"]) is not None if ra else False, "SIGTERM: the session's engine is still alive")
a.sendall(b"quit\n")
is_(suite.read_all(a), b"", "SIGTERM: the session in progress ends normally")
a.close()
srv.stop()

# ---------------------------------------------------------------- reaping
N = 20
srv = suite.Server(["-v"], env=ENV)
engines = []
seen_child = False
for i in range(N):
    with suite.tls_connect(srv.port, ctx) as s:
        rep = suite.report_of(s)
        if rep:
            engines.append(str(rep["ppid"]))
            if i == 0:
                seen_child = rep["ppid"] in suite.children_of(srv.proc.pid)
        s.sendall(b"quit\n")
        suite.read_all(s)
is_(len(engines), N, "%d sequential sessions served" % N)
ok(seen_child, "while a session runs, its connection process shows as a child of sslserver (so the zombie check sees children)")
ok(suite.wait_until(lambda: suite.log_count(srv, r"^sslserver: end \d+ status") >= N), "%d end lines logged" % N)
ends = re.findall(r"^sslserver: end (\d+) status (\d+)$", srv.log(), re.M)
is_(sorted(p for p, st in ends), sorted(engines), "one end line per connection, with the connection process's real pid")
is_(sorted(set(st for p, st in ends)), ["0"], "every end line says status 0")
ok(suite.wait_until(lambda: not suite.zombies_of(srv.proc.pid) and not suite.children_of(srv.proc.pid), 10),
   "no zombie and no child left under sslserver", suite.zombies_of(srv.proc.pid))
ok(srv.alive(), "sslserver still running")
srv.stop()

# ---------------------------------------------------------------- SIGHUP
d = suite.tmpdir()
certfile, keyfile = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
shutil.copy(leaf1["pem"], certfile)
shutil.copy(leaf1["key"], keyfile)
srv = suite.Server(["-v"], env={"CERTFILE": certfile, "KEYFILE": keyfile})


def peer_cert():
    with suite.tls_connect(srv.port, ctx) as s:
        c = s.getpeercert(binary_form=True)
        rep = suite.report_of(s)
        s.sendall(b"quit\n")
        suite.read_all(s)
    return c, rep


c, rep = peer_cert()
is_(c, suite.der(leaf1["crt"]), "SIGHUP: before, the first certificate is served")
with open(certfile, "w") as f:
    f.write("garbage, not a certificate\n")
srv.signal(signal.SIGHUP)
ok(srv.wait_log(r"^sslserver: warning: unable to reload TLS material"), "SIGHUP with a broken CERTFILE: a warning is logged")
like(srv.log(), r"^sslserver: warning: [^\n]*%s" % re.escape(certfile), "SIGHUP with a broken CERTFILE: the warning names the file")
ok(srv.alive(), "SIGHUP with a broken CERTFILE: sslserver keeps running")
c, rep = peer_cert()
ok(rep is not None, "SIGHUP with a broken CERTFILE: new sessions are still served")
is_(c, suite.der(leaf1["crt"]), "SIGHUP with a broken CERTFILE: ... with the old certificate")

shutil.copy(leaf2["key"], keyfile)
shutil.copy(leaf2["pem"], certfile)
nreload = suite.log_count(srv, r"reloaded")
srv.signal(signal.SIGHUP)
ok(suite.wait_until(lambda: suite.log_count(srv, r"^sslserver: reloaded TLS material$") > nreload), "SIGHUP with a new certificate: reload logged")
c, rep = peer_cert()
is_(c, suite.der(leaf2["crt"]), "SIGHUP with a new certificate: new sessions get the new certificate")
is_((rep or {}).get("env", {}).get("SSL_SERVER_S_DN_CN"), "server-two", "SIGHUP: SSL_SERVER_S_DN_CN follows the new certificate")

shutil.copy(leaf1["pem"], certfile)  # the key no longer matches
nwarn = suite.log_count(srv, r"^sslserver: warning: ")
srv.signal(signal.SIGHUP)
ok(suite.wait_until(lambda: suite.log_count(srv, r"^sslserver: warning: ") > nwarn), "SIGHUP with a key that does not match: a warning")
c, rep = peer_cert()
is_(c, suite.der(leaf2["crt"]), "SIGHUP with a key that does not match: the previous certificate is kept")
ok(srv.alive(), "sslserver survived three SIGHUPs")
srv.stop()

# ---------------------------------------------------------------- -w idle timeout
srv = suite.Server(["-v", "-w", "1"], env=ENV)
s = suite.tls_connect(srv.port, ctx)
rep = suite.report_of(s)
ok(rep is not None, "-w 1: session started")
t0 = time.monotonic()
rest = suite.read_all(s, timeout=10)
elapsed = time.monotonic() - t0
s.close()
is_(rest, b"", "-w 1: a silent client is cut (connection closed)")
limit, how = suite.bound(4)
ok(0.5 <= elapsed < 1 + limit, "-w 1: cut after about one second, not before half of it (%.2fs; upper %s, plus 1s)" % (elapsed, how))
ok(srv.wait_log(r"^sslserver: .*timed out"), "-w 1: 'timed out' logged")
like(srv.log(), r"timed out[^\n]*127\.0\.0\.1", "-w 1: the log line names the client")
ok(srv.wait_log(r"^sslserver: end %d status \d+$" % rep["ppid"] if rep else "^$"), "-w 1: the connection ended")
ok(not re.search(r"^sslserver: end %d status 0$" % (rep["ppid"] if rep else 0), srv.log(), re.M),
   "-w 1: a cut session does not end with status 0")
ok(suite.wait_until(lambda: rep is not None and suite.proc_status(rep["pid"]) is None), "-w 1: the program is gone too")

# Activity keeps a session alive past -w: the timeout is for idleness.
s = suite.tls_connect(srv.port, ctx)
rep = suite.report_of(s)
alive = True
for i in range(4):
    r, _, _ = select.select([s], [], [], 0.6)  # nothing is due from the server meanwhile
    if r and s.pending() == 0:
        peek = s.recv(1)
        if not peek:
            alive = False
            break
    s.sendall(b"ping %d\n" % i)
    if suite.read_line(s) != "echo: ping %d\n" % i:
        alive = False
        break
ok(alive, "-w 1: a client active every 0.6s for 2.4s is not cut")
finish(s)
srv.stop()
