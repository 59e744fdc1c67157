"""Helpers shared by the tests: certificates made at run time, servers on
free ports, real TLS peers, bounded waits. Nothing here sleeps as a means of
synchronisation: every wait polls a condition with a deadline."""
import atexit
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
TOP = os.path.dirname(TESTS)
BUILD = os.environ.get("BUILD") or os.path.join(TOP, "build")
REPORT = os.path.join(TESTS, "bin", "report.py")
PYTHON = "/usr/bin/python3"


def prog(name):
    return os.path.join(BUILD, name)


def tmpdir():
    d = tempfile.mkdtemp(prefix="sslsuite-test-")
    os.chmod(d, 0o755)
    atexit.register(shutil.rmtree, d, True)
    return d


def wait_until(cond, timeout=10.0, step=0.02):
    """Polls cond() until it is true or the deadline passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def run(args, input=None, timeout=20, env=None, **kw):
    return subprocess.run(args, input=input, capture_output=True, timeout=timeout, env=env, **kw)


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


# ---------------------------------------------------------------- servers

class Server:
    """sslserver (or another program taking host port prog) on 127.0.0.1 and a
    port the kernel picks, learned from -1."""

    def __init__(self, opts=(), app=None, env=None, host="127.0.0.1", program="sslserver",
                 stdin=None, pass_fds=(), start_timeout=10):
        self.dir = tmpdir()
        self.logpath = os.path.join(self.dir, "stderr")
        app = app or [PYTHON, REPORT]
        self.args = [prog(program), "-1"] + list(opts) + [host, "0"] + list(app)
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        e.update(env or {})
        self.env = e
        self.err = open(self.logpath, "wb")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.err, stdin=stdin,
                                     env=e, pass_fds=pass_fds)
        self.port = None
        line = self._readline(start_timeout)
        if line:
            self.ip, _, p = line.strip().rpartition(" : ")
            self.port = int(p)
        atexit.register(self.stop)

    def _readline(self, timeout):
        buf = b""
        deadline = time.monotonic() + timeout
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
            return self.proc.wait(timeout)
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
                           capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, "did not exit"
    return r.returncode, r.stderr.decode("utf-8", "replace")


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
    raw = socket.create_connection((host, port), timeout=timeout, source_address=source)
    return ctx.wrap_socket(raw, server_hostname=sni)


def read_line(sock, timeout=10):
    """Reads one line from a socket-like object (bounded)."""
    sock.settimeout(timeout)
    buf = b""
    while not buf.endswith(b"\n"):
        c = sock.recv(1)
        if not c:
            break
        buf += c
    return buf.decode("utf-8", "replace")


def read_all(sock, timeout=10):
    sock.settimeout(timeout)
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


def report_of(sock, timeout=10):
    """The JSON line tests/bin/report.py writes first."""
    line = read_line(sock, timeout)
    try:
        return json.loads(line)
    except ValueError:
        return None


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

    def __init__(self, args, env=None, stdin=None, pass_fds=(), start_timeout=10):
        self.dir = tmpdir()
        self.logpath = os.path.join(self.dir, "stderr")
        self.args = list(args)
        e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        e.update(env or {})
        self.env = e
        self.err = open(self.logpath, "wb")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.err, stdin=stdin,
                                     env=e, pass_fds=pass_fds)
        self.port = None
        self.ip = None
        line = self._readline(start_timeout)
        if line and line.split():
            self.ip, _, p = line.strip().rpartition(" : ")
            try:
                self.port = int(p.split()[-1])
            except ValueError:
                self.port = None
        atexit.register(self.stop)


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
        deadline = time.monotonic() + timeout
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
