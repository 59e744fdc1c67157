#!/usr/bin/python3
# Under supervisors and service managers, with the real tools: systemd
# socket activation (systemd-socket-activate, Accept=no) hands sslserver its
# listening socket on descriptor 3 and the program never sees LISTEN_*;
# what cannot be served that way is a one-line start-up error; sslhandoff
# under Accept=yes (--accept --inetd) takes the client from the socket or
# from REMOTE_ADDR/REMOTE_PORT; the sd_notify datagrams (READY, RELOADING
# with MONOTONIC_USEC, STOPPING) on a NOTIFY_SOCKET the test binds; s6's
# readiness (notification-fd 1, the -1 line) with s6-supervise and
# s6-svwait -U; REUSEPORT: two sslserver instances share one port and both
# serve.
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike, diag, scenario  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
leaf = pki.leaf("server", ca, dns=("localhost",), ips=("127.0.0.1",))
ENV = {"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"]}
SETENV = ["-E", "CERTFILE=" + leaf["pem"], "-E", "KEYFILE=" + leaf["key"]]
ctx = suite.client_context(ca["crt"])
SSLSERVER = suite.prog("sslserver")
HANDOFF = suite.prog("sslhandoff")
APP = [suite.PYTHON, suite.REPORT]
LISTEN = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")


def one_line(text):
    """The lines of text, for a check that a start-up error is one line."""
    return [l for l in text.splitlines() if l.strip()]


class Activate(suite._Logged):
    """systemd-socket-activate -l 127.0.0.1:PORT OPTS COMMAND on free ports
    (ports: how many -l), once it says it listens (bounded wait, retried
    if a port was taken meanwhile). ports is the list of its ports, empty
    if it did not start."""

    def __init__(self, opts, command, ports=1, tries=3):
        self.ports = []
        for _ in range(tries):
            want = [suite.free_port() for _ in range(ports)]
            listen = []
            for p in want:
                listen += ["-l", "127.0.0.1:%d" % p]
            self._start(["systemd-socket-activate"] + listen + list(opts) + list(command),
                        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
            if self.wait_log(r"^Listening on 127\.0\.0\.1:%d as %d\.$" % (want[-1], 2 + ports)):
                self.ports = want
                return
            self.stop()

    def wait(self, timeout=10):
        try:
            return self.proc.wait(suite.patience(timeout))
        except subprocess.TimeoutExpired:
            return None


def poke(port):
    """A TCP connection that wakes systemd-socket-activate (Accept=no: it
    starts the program at the first connection); closed at once."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=suite.patience(5)).close()
    except OSError as e:
        diag("poke: %s" % e)


def report_from(port, source=None):
    """One TLS session with report.py from source (an address); its
    report, None if it failed."""
    try:
        with suite.tls_connect(port, ctx, source=(source, 0) if source else None) as s:
            rep = suite.report_of(s)
            s.sendall(b"quit\n")
            suite.read_all(s)
        return rep
    except OSError as e:
        diag("session: %s" % e)
        return None


# ---------------------------------------------------------------- Accept=no
def accept_no():
    sa = Activate(["--fdname=tls"] + SETENV, [SSLSERVER, "-1", "-v", "0", "0"] + APP)
    ok(sa.ports, "Accept=no: systemd-socket-activate listens", sa.log())
    if not sa.ports:
        return
    port = sa.ports[0]
    rep = report_from(port)
    env = suite.env_of(rep)
    ok(rep is not None, "Accept=no: a TLS client is served on the socket systemd-socket-activate made", sa.log())
    is_(env.get("SSLLOCALPORT"), str(port), "Accept=no: the program sees the activated port")
    ok(rep is not None and not [v for v in LISTEN if v in env],
       "Accept=no: the program does not see LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES", env)
    ok(report_from(port) is not None, "Accept=no: a second client is served too")
    ok(sa.wait_log(r"^127\.0\.0\.1 : %d$" % port), "Accept=no: -1 prints the address and port of the socket served",
       sa.log())
    unlike(sa.log(), r"^sslserver: (fatal|warning: unable)", "Accept=no: no error logged")
    os.kill(sa.proc.pid, signal.SIGTERM)
    is_(sa.wait(), 0, "Accept=no: SIGTERM stops sslserver (exit 0)")


def activation_errors():
    sa = Activate(SETENV, [SSLSERVER, "-3", "0", "0"] + APP)
    if sa.ports:
        poke(sa.ports[0])
    is_(sa.wait(), 100, "-3 with socket activation: exit 100")
    err = [l for l in sa.log().splitlines() if l.startswith("sslserver:")]
    ok(len(err) == 1 and re.match(r"^sslserver: fatal: \(100\) .*-3.*socket activation", err[0]),
       "-3 with socket activation: one line saying why", sa.log())

    sa = Activate(SETENV, [SSLSERVER, "0", "0"] + APP, ports=2)
    if sa.ports:
        poke(sa.ports[0])
    is_(sa.wait(), 111, "two sockets handed over (LISTEN_FDS=2): exit 111")
    err = [l for l in sa.log().splitlines() if l.startswith("sslserver:")]
    ok(len(err) == 1 and re.match(r"^sslserver: fatal: \(111\) .*LISTEN_FDS=2", err[0]),
       "LISTEN_FDS=2: one line naming it", sa.log())

    sa = Activate(["--datagram"] + SETENV, [SSLSERVER, "0", "0"] + APP)
    if sa.ports:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.sendto(b"wake up", ("127.0.0.1", sa.ports[0]))
    is_(sa.wait(), 111, "a datagram socket on descriptor 3: exit 111")
    err = [l for l in sa.log().splitlines() if l.startswith("sslserver:")]
    ok(len(err) == 1 and re.match(r"^sslserver: fatal: \(111\) unable to use descriptor 3 .*not a listening stream socket",
                                  err[0]), "a datagram socket: one line saying why", sa.log())

    # LISTEN_PID is the pid of the shell that execs sslserver: its own
    path = os.path.join(suite.tmpdir(), "file")
    with open(path, "w") as f:
        f.write("not a socket\n")
    e = dict(ENV, PATH=os.environ.get("PATH", "/usr/bin:/bin"))
    r = suite.run(["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@" 3<"$0"', path, SSLSERVER, "-1", "0", "0"] + APP,
                  env=e, stdin=subprocess.DEVNULL)
    err = r.stderr.decode("utf-8", "replace")
    is_(r.returncode, 111, "a file on descriptor 3 with LISTEN_PID ours: exit 111")
    ok(len(one_line(err)) == 1 and re.match(r"^sslserver: fatal: \(111\) unable to use descriptor 3 from socket activation",
                                            err), "a file on descriptor 3: one line saying why", err)
    is_(r.stdout, b"", "a file on descriptor 3: no port printed")

    # another process's LISTEN_PID: not ours, bind as usual
    srv = suite.Server(["-v"], env=dict(ENV, LISTEN_PID="1", LISTEN_FDS="1", LISTEN_FDNAMES="other"))
    ok(srv.port, "LISTEN_PID of another process: sslserver binds its own socket")
    env = suite.env_of(report_from(srv.port)) if srv.port else {}
    ok(env.get("PROTO") == "SSL", "LISTEN_PID of another process: a client is served", srv.log())
    ok(env and not [v for v in LISTEN if v in env], "LISTEN_PID of another process: the program does not see LISTEN_*",
       env)
    srv.stop()


# ---------------------------------------------------------------- Accept=yes
def accept_yes():
    sa = Activate(["--accept", "--inetd"] + SETENV, [HANDOFF] + APP)
    ok(sa.ports, "Accept=yes: systemd-socket-activate --accept --inetd listens", sa.log())
    if not sa.ports:
        return
    port = sa.ports[0]
    rep = report_from(port, source="127.0.0.2")
    env = suite.env_of(rep)
    diag("systemd-socket-activate --accept --inetd set: %s" %
         sorted(k for k in env if k in ("REMOTE_ADDR", "REMOTE_PORT", "LISTEN_FDS", "LISTEN_PID")))
    ok(env.get("SSLREMOTEIP") == "127.0.0.2", "Accept=yes: SSLREMOTEIP is the client's address",
       "got: %r\n%s" % (env.get("SSLREMOTEIP"), sa.log()))
    is_(env.get("SSLLOCALIP"), "127.0.0.1", "Accept=yes: SSLLOCALIP is the socket's address")
    is_(env.get("SSLLOCALPORT"), str(port), "Accept=yes: SSLLOCALPORT is the socket's port")
    sa.stop()

    # systemd's Accept=yes sets REMOTE_ADDR and REMOTE_PORT (an IPv6 socket
    # may show an IPv4 client v4-mapped); systemd-socket-activate sets
    # neither, so they are given to it here as systemd would set them
    sa = Activate(["--accept", "--inetd", "-E", "REMOTE_ADDR=::ffff:192.0.2.7", "-E", "REMOTE_PORT=4242"] + SETENV,
                  [HANDOFF] + APP)
    env = suite.env_of(report_from(sa.ports[0], source="127.0.0.2")) if sa.ports else {}
    is_(env.get("SSLREMOTEIP"), "192.0.2.7", "REMOTE_ADDR: SSLREMOTEIP taken from it, v4-mapped shown dotted")
    is_(env.get("SSLREMOTEPORT"), "4242", "REMOTE_PORT: SSLREMOTEPORT taken from it")
    is_(env.get("SSLLOCALIP"), "127.0.0.1", "REMOTE_ADDR: the local address still from the socket")
    sa.stop()

    sa = Activate(["--accept", "--inetd", "-E", "REMOTE_ADDR=192.0.2.7", "-E", "REMOTE_PORT=4242",
                   "-E", "TCPREMOTEIP=198.51.100.9", "-E", "TCPREMOTEPORT=25"] + SETENV, [HANDOFF] + APP)
    env = suite.env_of(report_from(sa.ports[0], source="127.0.0.2")) if sa.ports else {}
    is_((env.get("SSLREMOTEIP"), env.get("SSLREMOTEPORT")), ("198.51.100.9", "25"),
        "TCPREMOTEIP set: it wins over REMOTE_ADDR")
    sa.stop()


# ---------------------------------------------------------------- NOTIFY_SOCKET
class Notified:
    """An AF_UNIX datagram socket of the test's (a path, or with abstract an
    @name) for sslserver's NOTIFY_SOCKET."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "sslsuite-test-%d-%d" % (os.getpid(), time.monotonic_ns())
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(suite.tmpdir(), "notify")
            self.sock.bind(self.address)

    def next(self, timeout=10):
        """The next datagram, as text; None if none came (bounded wait)."""
        r, _, _ = select.select([self.sock], [], [], suite.patience(timeout))
        return self.sock.recv(4096).decode() if r else None


def notify():
    n = Notified()
    d = suite.tmpdir()
    crt = os.path.join(d, "server.pem")
    shutil.copy(leaf["pem"], crt)
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CERTFILE": crt, "KEYFILE": leaf["key"],
         "NOTIFY_SOCKET": n.address}
    with open(os.path.join(d, "stderr"), "wb") as err:
        p = subprocess.Popen([SSLSERVER, "-1", "-v", "127.0.0.1", "0"] + APP, env=e, stdout=subprocess.PIPE,
                             stderr=err, stdin=subprocess.DEVNULL)

    def log():
        with open(os.path.join(d, "stderr"), "rb") as f:
            return f.read().decode("utf-8", "replace")
    try:
        is_(n.next(), "READY=1\n", "NOTIFY_SOCKET: READY=1 once listening")
        ok(select.select([p.stdout], [], [], 0)[0], "NOTIFY_SOCKET: READY=1 comes after the -1 line")
        line = p.stdout.readline().decode()
        port = int(line.rpartition(" : ")[2]) if " : " in line else None
        env = suite.env_of(report_from(port)) if port else {}
        ok(env.get("PROTO") == "SSL", "NOTIFY_SOCKET: a client is served", log())
        ok(env and "NOTIFY_SOCKET" not in env, "NOTIFY_SOCKET: the program does not see NOTIFY_SOCKET", env)

        before = time.monotonic_ns() // 1000
        p.send_signal(signal.SIGHUP)
        m = n.next()
        after = time.monotonic_ns() // 1000
        like(m, r"\ARELOADING=1\nMONOTONIC_USEC=\d+\n\Z", "SIGHUP: RELOADING=1 with MONOTONIC_USEC")
        usec = int(re.search(r"MONOTONIC_USEC=(\d+)", m).group(1)) if m and "MONOTONIC_USEC=" in m else 0
        ok(before <= usec <= after, "SIGHUP: MONOTONIC_USEC is the monotonic clock at the reload",
           "%d <= %d <= %d" % (before, usec, after))
        is_(n.next(), "READY=1\n", "SIGHUP: READY=1 once reloaded")

        with open(crt, "w") as f:
            f.write("not a certificate\n")
        p.send_signal(signal.SIGHUP)
        like(n.next(), r"\ARELOADING=1\n", "SIGHUP with broken material: RELOADING=1")
        is_(n.next(), "READY=1\n", "SIGHUP with broken material: READY=1, serving with the old material")
        ok(suite.wait_until(lambda: "unable to reload TLS material" in log()), "SIGHUP with broken material: warned",
           log())

        p.send_signal(signal.SIGTERM)
        is_(n.next(), "STOPPING=1\n", "SIGTERM: STOPPING=1")
        try:
            rc = p.wait(suite.patience(10))
        except subprocess.TimeoutExpired:
            rc = None
        is_(rc, 0, "SIGTERM: exit 0")
        is_([l for l in log().splitlines() if "notify" in l], [], "NOTIFY_SOCKET: no warning about notifying")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()

    a = Notified(abstract=True)
    srv = suite.Server(["-v"], env=dict(ENV, NOTIFY_SOCKET=a.address))
    is_(a.next(), "READY=1\n", "NOTIFY_SOCKET=@name (abstract): READY=1")
    srv.stop()

    missing = os.path.join(suite.tmpdir(), "nobody-listens")
    srv = suite.Server(["-v"], env=dict(ENV, NOTIFY_SOCKET=missing))
    ok(srv.port, "NOTIFY_SOCKET nobody listens on: sslserver starts")
    ok(srv.port and report_from(srv.port) is not None, "NOTIFY_SOCKET nobody listens on: a client is served")
    like(srv.log(), r"^sslserver: warning: unable to notify the service manager: ", "NOTIFY_SOCKET nobody listens on: "
         "a warning")
    is_(srv.stop(), 0, "NOTIFY_SOCKET nobody listens on: SIGTERM, exit 0")

    srv = suite.Server(["-v"], env=dict(ENV, NOTIFY_SOCKET="relative/path"))
    ok(srv.port and report_from(srv.port) is not None, "NOTIFY_SOCKET a relative path: a client is served")
    like(srv.log(), r"^sslserver: warning: unable to notify the service manager: NOTIFY_SOCKET is not an absolute "
         r"path or @name: relative/path$", "NOTIFY_SOCKET a relative path: a warning naming it")
    srv.stop()
    rc, err = suite.start_failure(env={"CERTFILE": "/nonexistent", "NOTIFY_SOCKET": "relative/path"})
    ok(rc == 111 and len(one_line(err)) == 1, "a start-up error with a bad NOTIFY_SOCKET is still one line", err)


# ---------------------------------------------------------------- s6
def s6():
    d = suite.tmpdir()
    svc = os.path.join(d, "sslserver")
    os.mkdir(svc)
    log = os.path.join(d, "log")
    port = suite.free_port()
    with open(os.path.join(svc, "run"), "w") as f:
        f.write("#!/bin/sh\nexec 2>>%s\nCERTFILE=%s KEYFILE=%s exec %s -1 -v 127.0.0.1 %d %s\n"
                % (log, leaf["pem"], leaf["key"], SSLSERVER, port, " ".join(APP)))
    os.chmod(os.path.join(svc, "run"), 0o755)
    with open(os.path.join(svc, "notification-fd"), "w") as f:
        f.write("1\n")
    sup = subprocess.Popen(["s6-supervise", svc], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    ms = str(int(suite.patience(10) * 1000))
    try:
        ok(suite.wait_until(lambda: os.path.exists(os.path.join(svc, "supervise", "status"))),
           "s6: s6-supervise runs the service")
        r = suite.run(["s6-svwait", "-U", "-t", ms, svc])
        ok(r.returncode == 0, "s6: s6-svwait -U returns: the -1 line on notification-fd 1 is the readiness notification",
           "exit %s: %s" % (r.returncode, r.stderr.decode()))
        st = suite.run(["s6-svstat", svc]).stdout.decode()
        like(st, r"^up .*ready", "s6: s6-svstat says up and ready")
        rep = report_from(port)
        ok(rep is not None and suite.env_of(rep).get("PROTO") == "SSL", "s6: once ready, a client is served",
           open(log).read() if os.path.exists(log) else "")
        suite.run(["s6-svc", "-d", svc])
        r = suite.run(["s6-svwait", "-D", "-t", ms, svc])
        ok(r.returncode == 0, "s6: s6-svc -d stops it", "exit %s: %s" % (r.returncode, r.stderr.decode()))
        st = suite.run(["s6-svstat", svc]).stdout.decode()
        like(st, r"^down \(exitcode 0\)", "s6: it stopped cleanly (exit 0)")
        ok(suite.connection_refused(port), "s6: nothing listens any more")
    finally:
        suite.run(["s6-svc", "-dx", svc])
        try:
            sup.wait(suite.patience(10))
        except subprocess.TimeoutExpired:
            sup.kill()
            sup.wait()
        sup.stderr.close()


# ---------------------------------------------------------------- REUSEPORT
def reuseport():
    renv = dict(ENV, REUSEPORT="1")
    a = suite.Server(["-v"], env=renv)
    ok(a.port, "REUSEPORT: a first instance starts")
    if not a.port:
        return
    rc, err = suite.start_failure(["-v"], env=ENV, port=str(a.port))
    is_(rc, 111, "without REUSEPORT, a second instance on the same port fails (exit 111)")
    like(err, r"^sslserver: fatal: \(111\) unable to bind to: 127\.0\.0\.1 port: %d: Address already in use$" % a.port,
         "without REUSEPORT: 'address in use'")
    b = suite.PortCommand([SSLSERVER, "-1", "-v", "127.0.0.1", str(a.port)] + APP, env=renv)
    is_(b.port, a.port, "REUSEPORT: a second instance starts on the same port")
    if b.port != a.port:
        return
    served = 0
    # the kernel picks the instance by a hash of the addresses and ports:
    # each new connection comes from a new source port
    for _ in range(40):
        if report_from(a.port) is not None:
            served += 1
        if suite.pids(a) and suite.pids(b):
            break
    ok(served and suite.pids(a) and suite.pids(b), "REUSEPORT: both instances serve clients",
       "%d served; first: %d connections, second: %d" % (served, len(suite.pids(a)), len(suite.pids(b))))
    is_(suite.log_problems(a) + suite.log_problems(b), [], "REUSEPORT: no error logged")
    a.stop()
    b.stop()


scenario("Accept=no", accept_no)
scenario("activation errors", activation_errors)
scenario("Accept=yes", accept_yes)
scenario("NOTIFY_SOCKET", notify)
scenario("s6", s6)
scenario("REUSEPORT", reuseport)
