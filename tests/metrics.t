#!/usr/bin/python3
# Counters (issue: operations): SIGUSR1 writes one line of counters to the
# log; METRICSFILE is rewritten atomically in the Prometheus text format,
# read here with the prometheus_client parser (Debian's
# python3-prometheus-client, the parser node_exporter's textfile collector
# shares the format with). Real clients make each kind of event:
# handshakes by version and cipher, a resumed session, failed handshakes by
# reason (plaintext, an old protocol, a silent client cut by -T), refusals
# (a tcprules deny, MAXCONIP), and the current and peak concurrency.
import os
import re
import signal
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, diag  # noqa: E402
import suite  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
leaf = pki.leaf("server", ca, dns=("localhost",), ips=("127.0.0.1",))
D = suite.tmpdir()
METRICS = os.path.join(D, "metrics", "sslserver.prom")
os.mkdir(os.path.dirname(METRICS))
cdb = os.path.join(D, "rules.cdb")
subprocess.run(["tcprules", cdb, cdb + ".tmp"], input=b'127.0.0.3:deny\n127.0.0.4:allow,MAXCONIP="1"\n:allow\n', check=True, timeout=suite.patience(10))


def samples():
    """{(name, labels as a sorted tuple): value} of the metrics file, or the
    reason it could not be read."""
    try:
        with open(METRICS) as f:
            text = f.read()
    except OSError as e:
        return "unreadable: %s" % e
    if not text.endswith("\n"):
        return "not ended by a newline"
    out = {}
    try:
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    except ValueError as e:
        return "not the Prometheus text format: %s" % e
    return out


def value(name, **labels):
    got = samples()
    return got.get((name, tuple(sorted(labels.items())))) if isinstance(got, dict) else got


def settles(name, want, **labels):
    """The value becomes want (the file is rewritten after each connection
    ends); returns what it last was."""
    suite.wait_until(lambda: value(name, **labels) == want, 10)
    return value(name, **labels)


srv = suite.Server(["-v", "-H", "-T", "2", "-x", cdb], env={"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"], "METRICSFILE": METRICS})
ok(suite.wait_until(lambda: isinstance(samples(), dict)), "the metrics file is written at start-up", samples())
is_(value("sslserver_connections_total"), 0.0, "at start-up: no connection")

ctx13 = suite.client_context(ca["crt"], "1.3")
ctx12 = suite.client_context(ca["crt"], "1.2")
first = None
for ctx in (ctx13, ctx13, ctx12):
    with suite.tls_connect(srv.port, ctx) as s:
        suite.report_of(s)
        s.sendall(b"quit\n")
        suite.read_all(s)
        if ctx is ctx13:
            first = s.session
with ctx13.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)),
                       server_hostname="localhost", session=first) as s:
    suite.report_of(s)
    resumed = s.session_reused
    s.sendall(b"quit\n")
    suite.read_all(s)
ok(resumed, "a session was resumed")
is_(settles("sslserver_handshakes_total", 3.0, version="TLSv1.3", cipher="TLS_AES_256_GCM_SHA384"), 3.0,
    "handshakes_total{version=TLSv1.3,cipher=TLS_AES_256_GCM_SHA384}: 3")
is_(settles("sslserver_handshakes_total", 1.0, version="TLSv1.2", cipher="ECDHE-ECDSA-AES256-GCM-SHA384"), 1.0,
    "handshakes_total{version=TLSv1.2,cipher=ECDHE-ECDSA-AES256-GCM-SHA384}: 1")
is_(settles("sslserver_resumed_total", 1.0), 1.0, "resumed_total: 1")

# failed handshakes, by reason
s = socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10))
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
suite.read_all(s)
s.close()
is_(settles("sslserver_handshake_failures_total", 1.0, reason="not_tls"), 1.0, "a plaintext client: handshake_failures_total{reason=not_tls}")
suite.s_client(srv.port, ["-tls1_1"], input=b"")
is_(settles("sslserver_handshake_failures_total", 1.0, reason="protocol_version"), 1.0,
    "a TLS 1.1 client: handshake_failures_total{reason=protocol_version}")
s = socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10))
is_(settles("sslserver_handshake_failures_total", 1.0, reason="timeout"), 1.0, "a silent client cut by -T: {reason=timeout}")
s.close()

# refusals
s = socket.socket()
s.bind(("127.0.0.3", 0))
s.connect(("127.0.0.1", srv.port))
suite.read_all(s)
s.close()
is_(settles("sslserver_refused_total", 1.0, reason="rules"), 1.0, "a client denied by the cdb: refused_total{reason=rules}")

held = []
for src in ("127.0.0.4", "127.0.0.5"):
    h = suite.tls_connect(srv.port, ctx13, source=(src, 0))
    suite.report_of(h)
    held.append(h)
is_(settles("sslserver_connections_current", 2.0), 2.0, "two sessions open: connections_current 2")
s = socket.socket()
s.bind(("127.0.0.4", 0))
s.connect(("127.0.0.1", srv.port))
suite.read_all(s)
s.close()
is_(settles("sslserver_refused_total", 1.0, reason="maxconip"), 1.0,
    "a second connection from 127.0.0.4, over its rule's MAXCONIP: refused_total{reason=maxconip}")
for h in held:
    h.sendall(b"quit\n")
    suite.read_all(h)
    h.close()
is_(settles("sslserver_connections_current", 0.0), 0.0, "all closed: connections_current 0")
peak = value("sslserver_connections_peak")
ok(isinstance(peak, float) and peak >= 2.0, "connections_peak: at least the two held at once", peak)
total = value("sslserver_connections_total")
is_(total, 11.0, "connections_total counts every accepted connection (the MAXCONIP refusal too)")

# SIGUSR1: one line
n = suite.log_count(srv, r"^sslserver: counters: ")
srv.signal(signal.SIGUSR1)
ok(suite.wait_until(lambda: suite.log_count(srv, r"^sslserver: counters: ") > n), "SIGUSR1: a counters line")
line = re.findall(r"^sslserver: counters: (.*)$", srv.log(), re.M)[-1:]
line = line[0] if line else ""
like(line, r"^connections 11 current 0 peak \d+ handshakes 6 resumed 1 tls ", "the line starts with the totals")
like(line, r" tls (\S+=\d+ )*TLSv1\.3:TLS_AES_256_GCM_SHA384=5 ", "the line has handshakes by version and cipher")
like(line, r" failed (\S+=\d+ )*not_tls=1 ", "the line has failures by reason")
like(line, r" refused (\S+=\d+ ?)*maxconip=1", "the line has refusals by reason")
ok(srv.alive(), "SIGUSR1 does not stop the server")

ok(not [f for f in os.listdir(os.path.dirname(METRICS)) if f != os.path.basename(METRICS)],
   "only the metrics file is left in its directory (no temporary file)")
ok(oct(os.stat(METRICS).st_mode & 0o777) in ("0o644", "0o664", "0o600", "0o640"), "the file is a regular file", oct(os.stat(METRICS).st_mode))

# readers never see half a file: read it over and over while connections come and go
bad = []
for i in range(20):
    with suite.tls_connect(srv.port, ctx13) as s:
        suite.report_of(s)
        for _ in range(5):
            got = samples()
            if not isinstance(got, dict):
                bad.append(got)
        s.sendall(b"quit\n")
        suite.read_all(s)
is_(bad, [], "the file is always whole (written aside, then renamed)")
is_([l for l in suite.log_problems(srv) if "unable to accept TLS" not in l], [], "nothing wrong logged but the failed handshakes")
srv.stop()

# an unwritable METRICSFILE: a warning, and the server serves
srv = suite.Server(["-H"], env={"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"], "METRICSFILE": "/nonexistent/dir/m.prom"})
ok(srv.wait_log(r"^sslserver: warning: unable to write /nonexistent/dir/m\.prom: No such file or directory$"),
   "METRICSFILE in a missing directory: one warning", srv.log())
rep = suite.report_session(srv.port, ctx13)
ok(rep, "... and the server serves")
srv.stop()

# without METRICSFILE, SIGUSR1 still logs
srv = suite.Server(["-H"], env={"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"]})
suite.report_session(srv.port, ctx13)
srv.signal(signal.SIGUSR1)
ok(srv.wait_log(r"^sslserver: counters: connections 1 current [01] peak 1 handshakes 1 "), "SIGUSR1 at the default verbosity, no METRICSFILE: the line",
   srv.log())
srv.stop()
