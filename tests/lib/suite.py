"""Helpers shared by the tests: certificates made at run time, servers on
free ports, real TLS peers, bounded waits. Nothing here sleeps as a means of
synchronisation: every wait polls a condition with a deadline."""
import atexit
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from tap import diag

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
TOP = os.path.dirname(TESTS)
BUILD = os.environ.get("BUILD") or os.path.join(TOP, "build")
PYTHON = "/usr/bin/python3"


def prog(name):
    return os.path.join(BUILD, name)


def tmpdir():
    d = tempfile.mkdtemp(prefix="sslsuite-test-")
    os.chmod(d, 0o755)
    atexit.register(shutil.rmtree, d, True)
    return d


# ---------------------------------------------------------------- patience
# Every wait in this suite is a hang detector: it ends as soon as what it
# waits for happens, and its bound only matters when something is wrong.
# The bounds are written for a machine on which creating a process (spawn
# /bin/true and wait for it) takes about 1 ms; on a slower machine, or one
# that is busy, they are stretched by how much longer that takes here,
# measured when the test file starts. SSLSUITE_PATIENCE=F sets the factor.

def _spawn_seconds(n=15):
    """The median time to create a process and wait for it, in seconds."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        pid = os.posix_spawn("/bin/true", ["true"], {})
        os.waitpid(pid, 0)
        times.append(time.perf_counter() - t)
    times.sort()
    return times[n // 2]


SPAWN = _spawn_seconds()
SLOWDOWN = float(os.environ.get("SSLSUITE_PATIENCE") or 0) or min(30.0, max(1.0, SPAWN / 0.001))


def patience(seconds):
    """A hang detector's bound on this machine: seconds, stretched."""
    return seconds * SLOWDOWN


def bound(seconds):
    """patience(seconds), and words for a failure message that say how the
    bound was derived."""
    return patience(seconds), "bound %.1fs = %gs x %.1f (process creation here: %.1f ms)" % (
        patience(seconds), seconds, SLOWDOWN, SPAWN * 1000)


def _public_bin():
    """A copy of tests/bin in a directory every user can read: the programs
    in it run as other uids (-u), which may not be able to enter the
    checkout (a clone under /root, mode 0700 on Debian)."""
    d = os.path.join(tmpdir(), "bin")
    shutil.copytree(os.path.join(TESTS, "bin"), d)
    for name in os.listdir(d):
        os.chmod(os.path.join(d, name), 0o755)
    os.chmod(d, 0o755)
    return d


BIN = _public_bin()
REPORT = os.path.join(BIN, "report.py")


def wait_until(cond, timeout=10.0, step=0.02, scaled=True):
    """Polls cond() until it is true or the deadline passes; returns its last
    value. The deadline is patience(timeout), unless scaled is false (a window
    in which something must NOT happen: a slower machine does not make it
    fail falsely)."""
    deadline = time.monotonic() + (patience(timeout) if scaled else timeout)
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def run(args, input=None, timeout=20, env=None, **kw):
    return subprocess.run(args, input=input, capture_output=True, timeout=patience(timeout), env=env, **kw)


# ---------------------------------------------------------------- certificates

class Pki:
    """A throwaway PKI in a directory, made with the openssl command."""

    def __init__(self, d=None):
        self.dir = d or tmpdir()
        self.n = 0

    def path(self, name):
        return os.path.join(self.dir, name)

    def _key(self, name, kind):
        key = self.path(name + ".key")
        if kind == "rsa":
            args = ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
        else:
            args = ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        subprocess.run(args + ["-out", key], check=True, capture_output=True)
        os.chmod(key, 0o600)
        return key

    def ca(self, name="ca", kind="ec", issuer=None):
        """A CA certificate; with issuer, an intermediate signed by it."""
        key = self._key(name, kind)
        crt = self.path(name + ".crt")
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                    "subjectKeyIdentifier=hash\n")
        if issuer is None:
            subprocess.run(["openssl", "req", "-x509", "-new", "-key", key, "-out", crt, "-days", "30",
                            "-subj", "/O=sslsuite tests/CN=%s" % name,
                            "-addext", "basicConstraints=critical,CA:TRUE",
                            "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                           check=True, capture_output=True)
        else:
            self._sign(name, key, crt, issuer, "/O=sslsuite tests/CN=%s" % name, ext)
        return {"name": name, "key": key, "crt": crt}

    def _sign(self, name, key, crt, issuer, subj, ext, days="30"):
        csr = self.path(name + ".csr")
        subprocess.run(["openssl", "req", "-new", "-key", key, "-out", csr, "-subj", subj],
                       check=True, capture_output=True)
        self.n += 1
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", issuer["crt"], "-CAkey", issuer["key"],
                        "-set_serial", str(1000 + self.n), "-days", days, "-extfile", ext, "-out", crt],
                       check=True, capture_output=True)

    def leaf(self, name, issuer, dns=("localhost",), ips=(), kind="ec", client=False, subj=None,
             email=None, chain=()):
        """A server (or, with client, a client) certificate. Returns paths of the
        key, the certificate, and 'pem': leaf + chain + key in one file."""
        key = self._key(name, kind)
        crt = self.path(name + ".crt")
        ext = self.path(name + ".ext")
        san = ["DNS:%s" % d for d in dns] + ["IP:%s" % i for i in ips]
        if email:
            san.append("email:%s" % email)
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\n")
            f.write("extendedKeyUsage=%s\n" % ("clientAuth" if client else "serverAuth"))
            if san:
                f.write("subjectAltName=%s\n" % ",".join(san))
        self._sign(name, key, crt, issuer, subj or "/C=DE/O=sslsuite tests/CN=%s" % name, ext)
        return self.files(name, key, crt, chain)

    def files(self, name, key, crt, chain=()):
        """The leaf's files: 'pem' = leaf + chain, 'bundle' = that + key."""
        full = self.path(name + ".pem")
        with open(full, "w") as out:
            for p in [crt] + [c["crt"] for c in chain]:
                out.write(open(p).read())
        bundle = self.path(name + ".bundle")
        with open(bundle, "w") as out:
            out.write(open(full).read())
            out.write(open(key).read())
        os.chmod(bundle, 0o600)
        return {"name": name, "key": key, "crt": crt, "pem": full, "bundle": bundle}


def der(crt):
    """The DER bytes of the certificate in a PEM file of one certificate."""
    with open(crt) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def preload(*libs):
    """An LD_PRELOAD value that loads libs into the programs under test:
    under make check-asan the sanitizer's runtime has to come first."""
    ldd = subprocess.run(["ldd", prog("sslserver")], capture_output=True, timeout=patience(10)).stdout.decode()
    asan = [l.split("=>")[1].split()[0] for l in ldd.splitlines() if "libasan" in l and "=>" in l]
    return " ".join(asan + list(libs))


# ---------------------------------------------------------------- servers

class Server:
    """sslserver (or another program taking host port prog) on 127.0.0.1 and a
    port the kernel picks, learned from -1. popen_kw: more subprocess.Popen
    keywords for the server process, e.g. preexec_fn (resource limits set in
    it before exec; see rlimits()) or cwd."""

    def __init__(self, opts=(), app=None, env=None, host="127.0.0.1", program="sslserver",
                 stdin=None, pass_fds=(), start_timeout=10, **popen_kw):
        app = app or [PYTHON, REPORT]
        line = self._launch([prog(program), "-1"] + list(opts) + [host, "0"] + list(app), env, stdin, pass_fds,
                            start_timeout, popen_kw)
        if line:
            self.ip, _, p = line.strip().rpartition(" : ")
            self.port = int(p)

    def _launch(self, args, env, stdin, pass_fds, start_timeout, popen_kw):
        """Starts args with PATH and env as its environment, stdout a pipe and
        stderr a file; returns its first stdout line (bounded wait), None if
        none came."""
        self.dir = tmpdir()
        self.logpath = os.path.join(self.dir, "stderr")
        self.args = list(args)
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        e.update(env or {})
        self.env = e
        self.err = open(self.logpath, "wb")
        # a process group of its own: what the server leaves running (a
        # connection whose program never ends, after the main process
        # stopped) is killed when the test file ends, never left to load
        # the machine for the next test
        popen_kw.setdefault("start_new_session", True)
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.err, stdin=stdin,
                                     env=e, pass_fds=pass_fds, **popen_kw)
        self.port = None
        line = self._readline(start_timeout)
        atexit.register(self._kill_leftovers)
        atexit.register(self.stop)   # runs first
        return line

    def _kill_leftovers(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass

    def _readline(self, timeout):
        buf = b""
        deadline = time.monotonic() + patience(timeout)
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                return None
            c = os.read(self.proc.stdout.fileno(), 1)
            if not c:
                return None
            buf += c
        return buf.decode()

    def log(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, pattern, timeout=10):
        import re
        return wait_until(lambda: re.search(pattern, self.log(), re.M), timeout)

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout=10):
        try:
            return self.proc.wait(patience(timeout))
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            if self.wait(10) is None:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        return self.proc.returncode


def start_failure(opts=(), env=None, app=("true",), host="127.0.0.1", port="0", program="sslserver",
                  timeout=10):
    """Runs a server that is expected not to start; returns (exit code, stderr)."""
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    e.update(env or {})
    try:
        r = subprocess.run([prog(program)] + list(opts) + [host, port] + list(app), env=e,
                           capture_output=True, timeout=patience(timeout), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, "did not exit"
    return r.returncode, r.stderr.decode("utf-8", "replace")


# ---------------------------------------------------------------- what a server logged

# Logged once at start-up by a server running as root with no user for the
# TLS engine (sslhandoff: per connection).
ROOT_ENGINE_WARNING = "warning: the TLS engine will run as root: set SSL_UID and SSL_GID (or -u and -g)"


def log_problems(srv, prog="sslserver"):
    """The warning, error and fatal lines of srv's log, except the warning
    about an engine left as root (many tests run sslserver as root without
    -u): what a test that expects a quiet log must find empty."""
    return [l for l in srv.log().splitlines()
            if re.match(r"%s: (warning|error|fatal)" % prog, l) and l != "%s: %s" % (prog, ROOT_ENGINE_WARNING)]


def log_count(srv, pattern):
    """How many lines of srv's log match pattern (^ and $ match at each line)."""
    return len(re.findall(pattern, srv.log(), re.M))


def pids(srv, prog="sslserver", src=None):
    """The connection pids in srv's log ("PROG: pid PID from ..."), as
    strings, oldest first; with src, only those from that address."""
    tail = re.escape(src) + "$" if src else ""
    return re.findall(r"^%s: pid (\d+) from %s" % (prog, tail), srv.log(), re.M)


def end_status(srv, pid, timeout=10, prog="sslserver", after=0):
    """The wait status W of "PROG: end PID status W" in srv's log, once it
    is there (bounded wait), or None. A reused engine serves several
    connections under one pid, each from its "pid PID from" line to its
    end line: this is the end of PID's last connection, or of the one that
    logged at offset after in the log (a connection refused before its pid
    line)."""
    started = re.compile(r"^%s: pid %s from " % (prog, pid), re.M)
    ended = re.compile(r"^%s: end %s status (\d+)$" % (prog, pid), re.M)

    def last_end():
        log = srv.log()
        starts = [m.end() for m in started.finditer(log)]
        return ended.search(log, max(starts[-1] if starts else 0, after))
    m = wait_until(last_end, timeout)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- clients

def client_context(cafile=None, version=None, cert=None, key=None, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if version == "1.2":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif version == "1.3":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def tls_connect(port, ctx, host="127.0.0.1", sni="localhost", timeout=10, source=None):
    raw = socket.create_connection((host, port), timeout=patience(timeout), source_address=source)
    return ctx.wrap_socket(raw, server_hostname=sni)


def connection_refused(port, host="127.0.0.1", timeout=5):
    """True if a TCP connection to host:port is refused (nothing listens
    there), False if it is accepted (bounded wait)."""
    try:
        socket.create_connection((host, port), timeout=patience(timeout)).close()
    except ConnectionRefusedError:
        return True
    return False


def read_line(sock, timeout=10):
    """Reads one line from a socket-like object (bounded)."""
    sock.settimeout(patience(timeout))
    buf = b""
    while not buf.endswith(b"\n"):
        c = sock.recv(1)
        if not c:
            break
        buf += c
    return buf.decode("utf-8", "replace")


def line(sock, timeout=10):
    """One line, like read_line, but "" on EOF, timeout or a socket error
    (said with diag): the check that reads it fails, and the next one
    still runs."""
    try:
        return read_line(sock, timeout)
    except (OSError, ssl.SSLError) as e:
        diag("read: %s" % e)
        return ""


def read_all(sock, timeout=10):
    sock.settimeout(patience(timeout))
    chunks = []
    try:
        while True:
            c = sock.recv(65536)
            if not c:
                break
            chunks.append(c)
    except (ssl.SSLError, ConnectionResetError, socket.timeout):
        pass
    return b"".join(chunks)


def tls_exchange(sock, data, until=None, timeout=20):
    """Sends data on a TLS socket while reading what comes back, in one
    thread: an SSL object must never be used by two threads at once (a read
    that processes the server's NewSessionTicket while another thread writes
    can corrupt the session). Reads until `until` bytes came back or the
    session ends. Returns (bytes read, how the reading ended: 'enough',
    'close_notify', 'eof' (TCP FIN without close_notify), 'reset',
    'timeout' or 'error: ...', the sending error or None). A socket
    reports a reset once: to the send that meets it, after which the read
    sees a plain EOF."""
    sock.setblocking(False)
    deadline = time.monotonic() + patience(timeout)
    sent, got, send_error = 0, b"", None
    try:
        while True:
            try:
                while until is None or len(got) < until:
                    c = sock.recv(65536)
                    if not c:
                        return got, "close_notify", send_error
                    got += c
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except ssl.SSLEOFError:
                return got, "eof", send_error
            except ConnectionResetError:
                return got, "reset", send_error
            except (OSError, ssl.SSLError) as e:
                return got, "error: %s" % e, send_error
            if until is not None and len(got) >= until:
                return got, "enough", send_error
            sending = sent < len(data) and send_error is None
            if sending:
                try:
                    sent += sock.send(data[sent:sent + 16384])
                    continue
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
                except (OSError, ssl.SSLError) as e:
                    send_error = "%s: %s" % (type(e).__name__, e)
                    continue
            left = deadline - time.monotonic()
            if left <= 0:
                return got, "timeout", send_error
            select.select([sock], [sock] if sending else [], [], min(left, 1.0))
    finally:
        sock.setblocking(True)


def report_of(sock, timeout=10):
    """The JSON line tests/bin/report.py writes first."""
    line = read_line(sock, timeout)
    try:
        return json.loads(line)
    except ValueError:
        return None


def report_session(port, ctx):
    """One TLS session with report.py: its report, then "quit" and the end of
    the session. None if the session failed (the reason said with diag)."""
    try:
        with tls_connect(port, ctx) as s:
            rep = report_of(s)
            s.sendall(b"quit\n")
            read_all(s)
        return rep
    except (ssl.SSLError, OSError) as e:
        diag(str(e))
        return None


def env_of(rep):
    """The environment in a program's report (report.py, sslclient-app.py);
    {} without one (None, or the text of the error that came instead)."""
    return rep["env"] if isinstance(rep, dict) else {}


def json_line(text):
    """The first line of text that starts with "{", parsed (e.g. report.py's
    report in what s_client printed); None if there is none or it is not
    JSON."""
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def read_report(path, key=None, timeout=10):
    """The JSON report a program writes to path (e.g. ucspitls-app.py),
    once it is whole and, with key, holds key (bounded wait); else None."""
    def get():
        try:
            with open(path) as f:
                r = json.load(f)
        except (OSError, ValueError):
            return None
        return r if key is None or key in r else None
    return wait_until(get, timeout)


def client_hello():
    """A real ClientHello (TLS 1.3 and 1.2 offered), as Python's ssl sends it."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = c.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def s_client(port, args=(), input=b"", timeout=20):
    """openssl s_client; returns (exit code, stdout, stderr)."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-ign_eof"] + list(args)
    r = run(cmd, input=input, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def gnutls_cli(port, args=(), input=b"", timeout=20):
    cmd = ["gnutls-cli", "-p", str(port)] + list(args) + ["127.0.0.1"]
    r = run(cmd, input=input, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def proc_status(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return None


def children_of(pid):
    kids = []
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                kids += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return kids


def zombies_of(pid):
    out = []
    for k in children_of(pid):
        st = proc_status(k)
        if st and st.get("State", "").startswith("Z"):
            out.append(k)
    return out


# ---------------------------------------------------------------- any command with a port line

class PortCommand(Server):
    """An arbitrary listening command (e.g. ucspi-tcp's tcpserver -1, which
    prints just the port; sslserver -1 prints "ip : port") whose first stdout
    line names the port, read with a bounded wait. stderr goes to a file, as
    with Server; log(), wait_log(), alive(), wait() and stop() are Server's."""

    def __init__(self, args, env=None, stdin=None, pass_fds=(), start_timeout=10, **popen_kw):
        line = self._launch(args, env, stdin, pass_fds, start_timeout, popen_kw)
        self.ip = None
        if line and line.split():
            self.ip, _, p = line.strip().rpartition(" : ")
            try:
                self.port = int(p.split()[-1])
            except ValueError:
                self.port = None


# ---------------------------------------------------------------- added helpers

class fd3:
    """Context manager: while active, descriptor 3 of this process reads data
    then EOF (a pipe), ready to be handed to a child with pass_fds=(3,) -
    e.g. a key passphrase for sslserver -3. Restores descriptor 3 after."""

    def __init__(self, data):
        self.data = data

    def __enter__(self):
        r, w = os.pipe()
        os.write(w, self.data)
        os.close(w)
        self.saved = None
        if r != 3:
            try:
                self.saved = os.dup(3)
            except OSError:
                self.saved = None
            os.dup2(r, 3)
            os.close(r)
        os.set_inheritable(3, True)
        return 3

    def __exit__(self, *exc):
        if self.saved is not None:
            os.dup2(self.saved, 3)
            os.close(self.saved)
        else:
            os.close(3)
        return False


def run_server_once(opts=(), env=None, app=("true",), host="127.0.0.1", port="0", program="sslserver",
                    timeout=10, pass_fds=()):
    """Like start_failure, with stdout too: returns (exit code, stdout,
    stderr). stdin is /dev/null. The exit code is None if the program did not
    exit: it printed a whole stdout line (with -1: it is listening) or was
    still running after timeout; it is then killed."""
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    e.update(env or {})
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen([prog(program)] + list(opts) + [host, port] + list(app), env=e, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=err, pass_fds=pass_fds)
        out = b""
        deadline = time.monotonic() + patience(timeout)
        while b"\n" not in out:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([p.stdout], [], [], left)[0]:
                break
            c = os.read(p.stdout.fileno(), 4096)
            if not c:
                break
            out += c
        rc = None
        if b"\n" not in out:
            try:
                rc = p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                rc = None
        if rc is None:
            p.kill()
            p.wait()
        p.stdout.close()
        err.seek(0)
        return rc, out.decode("utf-8", "replace"), err.read().decode("utf-8", "replace")


# ---------------------------------------------------------------- peers we did not write, namespaces, dated certificates

def free_port(host="127.0.0.1"):
    """A TCP port the kernel reports free on host (bound, then released), for
    servers that cannot be told to pick their own; start them with a bounded
    wait for their listening message and retry on a bind failure."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def private_namespaces(hosts=None):
    """Moves this process, and so every child it starts later, into a network
    namespace of its own (a fresh loopback with 127.0.0.1 and ::1 that no
    other process shares, so that servers which can only listen on every
    address, like gnutls-serv, stay private) and a mount namespace of its
    own, where, with hosts (text), /etc/hosts is replaced by it. Needs
    CAP_SYS_ADMIN (root). Returns None on success, else the reason: callers
    skip what needed it."""
    import ctypes
    import fcntl
    import struct
    libc = ctypes.CDLL(None, use_errno=True)
    CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
    MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1

    try:
        orig = [os.open("/proc/self/ns/net", os.O_RDONLY), os.open("/proc/self/ns/mnt", os.O_RDONLY),
                os.open("/", os.O_RDONLY | os.O_DIRECTORY), os.open(".", os.O_RDONLY | os.O_DIRECTORY)]
    except OSError as e:
        return "open /proc/self/ns: %s" % e

    def failed(what, reason=None):
        reason = reason or os.strerror(ctypes.get_errno())
        libc.setns(orig[0], CLONE_NEWNET)   # back where we were
        libc.setns(orig[1], CLONE_NEWNS)
        # setns into a mount namespace resets the root and the working
        # directory to the namespace's: inside a chroot (make check-fresh)
        # that would leave the chroot. Go back into it.
        os.fchdir(orig[2])
        os.chroot(".")
        os.fchdir(orig[3])
        return "%s: %s" % (what, reason)
    try:
        if libc.unshare(CLONE_NEWNS | CLONE_NEWNET) != 0:
            return failed("unshare")
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                ifr = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sh22x", b"lo", 0))
                flags = struct.unpack("16sh22x", ifr)[1]
                fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))
        except OSError as e:
            return failed("bring up lo", str(e))
        if hosts is not None:
            if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
                return failed("make the mounts private")
            path = os.path.join(tmpdir(), "hosts")
            with open(path, "w") as f:
                f.write(hosts)
            os.chmod(path, 0o644)
            if libc.mount(path.encode(), b"/etc/hosts", None, MS_BIND, None) != 0:
                return failed("bind-mount /etc/hosts")
        return None
    finally:
        for fd in orig:
            os.close(fd)


def dated_leaf(pki, name, issuer, start, end, dns=("localhost",), kind="ec"):
    """Like Pki.leaf (server certificate, same returned paths) with the
    validity start..end, both YYYYMMDDHHMMSSZ - e.g. in the past, for an
    expired certificate. Made with openssl ca (-startdate/-enddate): OpenSSL
    3.0's x509 and req commands cannot set a past notBefore."""
    key = pki._key(name, kind)
    crt, csr, ext = pki.path(name + ".crt"), pki.path(name + ".csr"), pki.path(name + ".ext")
    subprocess.run(["openssl", "req", "-new", "-key", key, "-out", csr, "-subj", "/C=DE/O=sslsuite tests/CN=%s" % name],
                   check=True, capture_output=True)
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        if dns:
            f.write("subjectAltName=%s\n" % ",".join("DNS:%s" % d for d in dns))
    db = pki.path(name + ".cadb")
    os.makedirs(db, exist_ok=True)
    open(os.path.join(db, "index.txt"), "w").close()
    pki.n += 1
    with open(os.path.join(db, "serial"), "w") as f:
        f.write("%04X\n" % (2000 + pki.n))
    cnf = os.path.join(db, "ca.cnf")
    with open(cnf, "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\nnew_certs_dir = %s\nserial = %s/serial\n"
                "default_md = sha256\npolicy = p\nunique_subject = no\npreserve = yes\n"
                "[p]\ncountryName = optional\norganizationName = optional\ncommonName = supplied\n" % (db, db, db))
    subprocess.run(["openssl", "ca", "-batch", "-notext", "-config", cnf, "-cert", issuer["crt"], "-keyfile", issuer["key"],
                    "-in", csr, "-out", crt, "-startdate", start, "-enddate", end, "-extfile", ext],
                   check=True, capture_output=True)
    return pki.files(name, key, crt)


class _Logged:
    """A command whose stdout and stderr go to files (never a pipe it could
    block on); log() is both."""

    def _start(self, args, env=None, stdin=subprocess.DEVNULL):
        self.dir = tmpdir()
        self.outpath = os.path.join(self.dir, "stdout")
        self.logpath = os.path.join(self.dir, "stderr")
        self.args = list(args)
        with open(self.outpath, "wb") as out, open(self.logpath, "wb") as err:
            self.proc = subprocess.Popen(self.args, stdin=stdin, stdout=out, stderr=err, env=env)
        atexit.register(self.stop)

    def log(self):
        text = ""
        for p in (self.outpath, self.logpath):
            with open(p, "rb") as f:
                text += f.read().decode("utf-8", "replace")
        return text

    def wait_log(self, pattern, timeout=10):
        import re
        return wait_until(lambda: re.search(pattern, self.log(), re.M) or self.proc.poll() is not None, timeout) \
            and re.search(pattern, self.log(), re.M)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(patience(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class OpensslServer(_Logged):
    """openssl s_server listening on 127.0.0.1 and a port it picks itself
    (-accept 127.0.0.1:0), learned from its "ACCEPT" line (bounded wait).
    args: the rest of its command line, e.g. ["-cert", c, "-key", k, "-rev"]
    (-rev: each line the client sends comes back reversed). port is None if
    it did not start; log() tells why."""

    def __init__(self, args, start_timeout=10):
        self._start(["openssl", "s_server", "-accept", "127.0.0.1:0"] + list(args))
        m = self.wait_log(r"^ACCEPT 127\.0\.0\.1:(\d+)$", start_timeout)
        self.port = int(m.group(1)) if m else None


class GnutlsServer(_Logged):
    """gnutls-serv on a free port (it cannot pick one, and listens on every
    address: use it inside private_namespaces()). args: the rest of its
    command line, e.g. ["--echo", "--x509certfile", c, "--x509keyfile", k,
    "-a"]. Waits (bounded) for its "listening ... done" line; port is None
    if it did not start."""

    def __init__(self, args, start_timeout=10, tries=3):
        self.port = None
        for _ in range(tries):
            port = free_port()
            self._start(["gnutls-serv", "-p", str(port)] + list(args))
            if self.wait_log(r"IPv4 0\.0\.0\.0 port %d\.\.\.done" % port, start_timeout):
                self.port = port
                return
            self.stop()


class PyTLSServer:
    """A TLS server in a thread of the test process (Python's ssl module) on
    127.0.0.1 and a port the kernel picks. For each connection it records,
    in conns (a list of dicts, appended once the connection is over): "sni"
    (the name the client sent, None without; "(no SNI callback)" if the
    handshake never got that far), "version", "line" (the first
    line the client sent after the server's greeting), "error" (a failed
    handshake). certfile may hold the chain after the leaf; cafile: demand a
    client certificate signed by it."""

    def __init__(self, certfile, keyfile, host="127.0.0.1", version=None, greeting=b"hello from python\n",
                 cafile=None):
        import threading
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certfile, keyfile)
        if version == "1.2":
            self.ctx.minimum_version = self.ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        elif version == "1.3":
            self.ctx.minimum_version = self.ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        if cafile:
            self.ctx.load_verify_locations(cafile)
            self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.sni_callback = self._sni
        self.greeting = greeting
        self.conns = []
        self._cur = None
        self._stopping = False
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        atexit.register(self.stop)

    def _sni(self, sslobj, name, ctx):
        if self._cur is not None:
            self._cur["sni"] = name
        return None

    def _loop(self):
        while not self._stopping:
            try:
                raw, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._cur = cur = {"sni": "(no SNI callback)", "version": None, "line": None, "error": None}
            raw.settimeout(patience(10))
            try:
                with self.ctx.wrap_socket(raw, server_side=True) as s:
                    cur["version"] = s.version()
                    peer = s.getpeercert()
                    cur["peer"] = dict(x[0] for x in peer.get("subject", ())) if peer else None
                    s.sendall(self.greeting)
                    cur["line"] = read_line(s, 10)
            except (OSError, ssl.SSLError) as e:
                cur["error"] = str(e)
            finally:
                raw.close()
                self._cur = None
                self.conns.append(cur)

    def wait_conns(self, n, timeout=10):
        """True once n connections are over (bounded wait)."""
        return wait_until(lambda: len(self.conns) >= n, timeout)

    def stop(self):
        self._stopping = True
        self.thread.join(patience(5))
        self.sock.close()


# ---------------------------------------------------------------- resource limits, descriptor and memory counts

def rlimits(**limits):
    """A preexec_fn setting resource limits in the child, e.g.
    rlimits(NOFILE=4096, CORE=0): each value is the soft and hard limit."""
    import resource

    def apply():
        for name, v in limits.items():
            resource.setrlimit(getattr(resource, "RLIMIT_" + name), (v, v))
    return apply


def rlimit_of(pid, what="Max open files"):
    """The soft limit of a running process as /proc/PID/limits shows it (an
    int, or 'unlimited'), None if unreadable."""
    try:
        with open("/proc/%d/limits" % pid) as f:
            for line in f:
                if line.startswith(what):
                    v = line[len(what):].split()[0]
                    return int(v) if v.isdigit() else v
    except OSError:
        pass
    return None


def fd_count(pid):
    """Open descriptors of a process (/proc/PID/fd), None if it is gone."""
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def vm_rss_kb(pid):
    """Resident set size of a process in kB (VmRSS), None if it is gone."""
    st = proc_status(pid)
    try:
        return int(st["VmRSS"].split()[0])
    except (TypeError, KeyError, ValueError, IndexError):
        return None


# ---------------------------------------------------------------- balancers, tickets

def listening(port, host="127.0.0.1"):
    """Whether something listens on host:port (IPv4), read off
    /proc/net/tcp, so that no connection is made to find out (a probe
    would be a failed handshake in the server's log)."""
    want = "%s:%04X" % ("".join("%02X" % int(b) for b in reversed(host.split("."))), port)
    with open("/proc/net/tcp") as f:
        return any(l.split()[1] == want and l.split()[3] == "0A" for l in f.readlines()[1:])


class Haproxy(_Logged):
    """Debian's haproxy in front of backends (ports on 127.0.0.1), round
    robin, each connection sent with `send` (send-proxy, send-proxy-v2, or
    "" for none), on a free port of 127.0.0.1; .up says whether it
    listens (bounded wait), .log() what it said."""

    def __init__(self, backends, send="send-proxy-v2"):
        self.port = free_port()
        self.cfg = os.path.join(tmpdir(), "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write("global\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n"
                    "  timeout server 30s\nfrontend front\n  bind 127.0.0.1:%d\n  default_backend back\n"
                    "backend back\n  balance roundrobin\n" % self.port)
            for i, p in enumerate(backends):
                f.write("  server s%d 127.0.0.1:%d %s\n" % (i, p, send))
        self._start(["haproxy", "-db", "-f", self.cfg])
        self.up = wait_until(lambda: listening(self.port), 10)


def ticket_key_name(port, cafile):
    """The key name (the first 16 bytes, hex) of the session ticket a new
    session with the server on port gets, read with openssl s_client
    -sess_out and openssl sess_id -text; None if none came."""
    out = os.path.join(tmpdir(), "sess.pem")
    s_client(port, ["-CAfile", cafile, "-servername", "localhost", "-sess_out", out], input=b"quit\n")
    if not os.path.exists(out):
        return None
    text = subprocess.run(["openssl", "sess_id", "-in", out, "-noout", "-text"], capture_output=True).stdout.decode()
    m = re.search(r"TLS session ticket:\n((?:\s*[0-9a-f]{4} - .*\n)+)", text)
    if not m:
        return None
    hexbytes = re.findall(r"\b[0-9a-f]{2}\b", " ".join(l.split(" - ", 1)[1][:48] for l in m.group(1).splitlines()))
    return "".join(hexbytes[:16])


def smtp_reply(sock, timeout=10):
    """One SMTP reply (multi-line too) as a list of lines without CR LF."""
    lines = []
    while True:
        got = line(sock, timeout)
        if not got:
            return lines
        lines.append(got.rstrip("\r\n"))
        if len(got) < 4 or got[3] != "-":
            return lines
