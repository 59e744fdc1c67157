#!/usr/bin/python3
# Trust boundaries: what a less trusted process can make a more trusted one
# believe. The application process takes from the TLS engine only SSL_*
# variables, in a block of at most 1 MiB; anything else ends the connection
# before the program starts. The compromised engine is played by a shim
# LD_PRELOADed into sslserver that rewrites the block the engine writes on
# the control pipe (run as root: the engine and the program must run as
# different users for the block to cross a process boundary at all).
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike, diag, skip_all  # noqa: E402
import suite  # noqa: E402

if os.geteuid() != 0:
    skip_all("trust.t needs root (the engine and the program run as different users)")

pki = suite.Pki()
ca = pki.ca("ca")
leaf = pki.leaf("server", ca)
ctx = suite.client_context(ca["crt"])
WORK = suite.tmpdir()

# The shim: every write(2) of a block (it starts with SSL_ and holds
# SSL_PROTOCOL=) is preceded by what SHIM_MODE asks for. Its constructor
# removes LD_PRELOAD from the environment, so only sslserver (and the
# processes it forks, the engine among them) carry it.
SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static ssize_t (*real_write)(int, void const *, size_t) ;
static char const *mode ;
__attribute__((constructor)) static void init (void)
{
  mode = getenv("SHIM_MODE") ;
  unsetenv("LD_PRELOAD") ;
}
ssize_t write (int fd, void const *buf, size_t len)
{
  if (!real_write) real_write = (ssize_t (*)(int, void const *, size_t))dlsym(RTLD_NEXT, "write") ;
  if (mode && len > 13 && !memcmp(buf, "SSL_", 4) && memmem(buf, len, "SSL_PROTOCOL=", 13))
  {
    if (!strcmp(mode, "names"))
    {
      static char const forged[] = "SSL_FORGED_OK=1\0FORGED=yes\0LD_PRELOAD=/nonexistent.so\0RELAYCLIENT=\0" ;
      real_write(fd, forged, sizeof(forged) - 1) ;
    }
    else if (!strcmp(mode, "sslonly"))
    {
      static char const forged[] = "SSL_FORGED_OK=1\0" ;
      real_write(fd, forged, sizeof(forged) - 1) ;
    }
    else if (!strcmp(mode, "big"))
    {
      static char pad[65536] ;
      memset(pad, 'x', sizeof(pad)) ;
      memcpy(pad, "SSL_PAD=", 8) ;
      pad[sizeof(pad) - 1] = 0 ;
      for (int i = 0 ; i < 24 ; i++) if (real_write(fd, pad, sizeof(pad)) < 0) return -1 ;
    }
  }
  return real_write(fd, buf, len) ;
}
"""
shim = os.path.join(WORK, "shim.so")
src = os.path.join(WORK, "shim.c")
with open(src, "w") as f:
    f.write(SHIM_C)
r = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", shim, src, "-ldl"], capture_output=True,
                   timeout=suite.patience(60))
if not ok(r.returncode == 0, "the engine shim compiles", r.stderr.decode()):
    sys.exit(1)
os.chmod(shim, 0o755)

BASE = {"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"], "SSL_UID": "7793", "SSL_GID": "7794"}

PRELOAD = suite.preload(shim)


def session(mode):
    """A server whose engine (uid 7793) runs the shim in mode (None: no
    shim) and whose program (uid 7791) reports; returns (report or None,
    all the client read, the server's log, the end status)."""
    env = dict(BASE)
    if mode:
        env.update(LD_PRELOAD=PRELOAD, SHIM_MODE=mode)
    srv = suite.Server(["-v", "-u", "7791", "-g", "7792"], env=env)
    rep, rest = None, b""
    try:
        with suite.tls_connect(srv.port, ctx) as s:
            rest = suite.read_line(s).encode()
            try:
                rep = json.loads(rest)
            except ValueError:
                rep = None
            if rep:
                s.sendall(b"quit\n")
            rest += suite.read_all(s)
    except OSError as e:
        diag("client: %s" % e)
    m = srv.wait_log(r"^sslserver: end \d+ status (\d+)$")
    status = int(m.group(1)) if m else None
    log = srv.log()
    srv.stop()
    return rep, rest, log, status


# The same path, with an honest engine: the program runs with the block.
rep, rest, log, status = session(None)
ok(rep is not None, "honest engine: the program ran", log)
env = (rep or {}).get("env", {})
like(env.get("SSL_PROTOCOL", ""), r"^TLSv1\.[23]$", "honest engine: the program got SSL_PROTOCOL")
is_(((rep or {}).get("uid"), status), (7791, 0), "honest engine: the program ran as -u, the connection ended with status 0")

# An engine that forges SSL_* variables is believed: that is what SSL_*
# variables are (the check above shows the shim's hook point is real).
rep, rest, log, status = session("sslonly")
is_((rep or {}).get("env", {}).get("SSL_FORGED_OK"), "1", "engine shim: an extra SSL_* variable reaches the program")

# An engine that sends any other name: the program never starts.
rep, rest, log, status = session("names")
ok(rep is None, "forged FORGED/LD_PRELOAD/RELAYCLIENT: the program never started",
   (rep or {}).get("env", {}).get("FORGED"))
is_(rest, b"", "forged names: the client reads nothing at all before the connection ends")
like(log, r"^sslserver: fatal: \(100\) UCSPI-TLS protocol error: the TLS engine sent more than 1 MiB or a variable "
     r"that is not SSL_\*$", "forged names: one line says why")
is_(status, 100 << 8, "forged names: the connection ends with exit 100")

# An engine that sends more than 1 MiB: the same.
rep, rest, log, status = session("big")
ok(rep is None, "a block over 1 MiB: the program never started")
like(log, r"UCSPI-TLS protocol error: the TLS engine sent more than 1 MiB", "a block over 1 MiB: one line says why")
# (the shim's engine is still writing when the program's process gives up:
# its write fails, and the engine ends the connection with its own 111)
ok(status in (100 << 8, 111 << 8), "a block over 1 MiB: the connection ends with exit 100 or 111 (%r)" % status)

# ----------------------------------------------------------------------
# A failed handshake in deferred mode: the program holds the raw socket
# too, runs as another user than the engine (so SIGTERM cannot reach it),
# ignores SIGTERM anyway, and goes on talking in clear (until the test
# creates its stop file). The engine must shut the connection down first,
# and not wait for the program for ever.
STUBBORN = os.path.join(WORK, "stubborn.py")
with open(STUBBORN, "w") as f:
    f.write(r'''
import os, select, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.write(1, b"220 stubborn ready\r\n")
line = b""
while not line.endswith(b"\n"):
    c = os.read(0, 1)
    if not c:
        sys.exit(0)
    line += c
os.write(1, b"220 go\r\n")
os.write(3, b"y")
os.read(3, 1)          # EOF: the handshake failed
t0 = time.monotonic()
while time.monotonic() - t0 < 120 and not os.path.exists(sys.argv[1]):
    try:
        os.write(1, b"250 still talking in clear\r\n")
    except OSError:
        pass            # and it does not give up
    select.select([0], [], [], 0.2)   # pacing, not synchronisation
''')
os.chmod(STUBBORN, 0o755)
env = dict(BASE)
srv = suite.Server(["-v", "-n", "-u", "7791", "-g", "7792", "-c", "1"], env=env, app=[suite.PYTHON, STUBBORN, os.path.join(WORK, "stop")])
got = b""
with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
    greeting = suite.read_line(raw)
    raw.sendall(b"STARTTLS\r\n")
    go = suite.read_line(raw)
    raw.sendall(b"\x16\x03\x01\x00\x05hello, this is no ClientHello\r\n")
    got = suite.read_all(raw, 20)
is_((greeting, go), ("220 stubborn ready\r\n", "220 go\r\n"), "stubborn program: STARTTLS asked for")
unlike(got.decode("latin-1"), r"still talking in clear", "stubborn program: after the failed handshake, not a byte in clear reaches the client")
pids = re.findall(r"^sslserver: pid (\d+) from ", srv.log(), re.M)
m = srv.wait_log(r"^sslserver: end %s status (\d+)$" % (pids[0] if pids else "none"), 5 + 10)
is_(int(m.group(1)) if m else None, 111 << 8, "stubborn program: the connection ends with 111 although the program lives on")
like(srv.log(), r"^sslserver: warning: the program of pid %s has not exited 5 seconds after its connection failed"
     % (pids[0] if pids else "none"), "stubborn program: the engine says it stopped waiting")
ok(srv.wait_log(r"^sslserver: status: 0/1$"), "stubborn program: the -c 1 slot is free again")
open(os.path.join(WORK, "stop"), "w").close()
srv.stop()

# ----------------------------------------------------------------------
# sslclient -y against a man in the middle that answers STARTTLS and then
# fails the handshake: the delivery program (which ignores the verdict and
# writes its MAIL FROM anyway, on the raw socket it holds) must not get a
# byte through in clear.
MTA = os.path.join(WORK, "careless-mta.py")
with open(MTA, "w") as f:
    f.write(r'''
import os, signal
signal.signal(signal.SIGTERM, signal.SIG_IGN)
def line():
    b = b""
    while not b.endswith(b"\n"):
        c = os.read(6, 1)
        if not c:
            break
        b += c
    return b
line()
os.write(7, b"STARTTLS\r\n")
line()
os.write(int(os.environ["SSLCTLFD"]), b"y")
os.read(int(os.environ["SSLCTLFD"]), 1)   # EOF: the handshake failed
for _ in range(3):
    try:
        os.write(7, b"MAIL FROM:<secret@example.org>\r\n")
    except OSError:
        pass
''')
mitm = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
mitm.bind(("127.0.0.1", 0))
mitm.listen(1)
cmd = [suite.prog("sslclient"), "-y", "-a", ca["crt"], "127.0.0.1", str(mitm.getsockname()[1]), suite.PYTHON, MTA]
p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                     env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
mitm.settimeout(suite.patience(10))
c, _ = mitm.accept()
c.settimeout(suite.patience(10))
c.sendall(b"220 mitm ready\r\n")
first = suite.read_line(c)
c.sendall(b"220 go ahead\r\n")
c.sendall(b"\x15\x03\x03\x00\x02\x02\x28")   # a fatal alert instead of a ServerHello
after = suite.read_all(c, 20)
c.close()
mitm.close()
try:
    _, err = p.communicate(timeout=suite.patience(20))
except subprocess.TimeoutExpired:
    p.kill()
    _, err = p.communicate()
is_(first, "STARTTLS\r\n", "sslclient -y: the program asked for STARTTLS")
unlike(after.decode("latin-1"), r"MAIL FROM", "sslclient -y: after the failed handshake the man in the middle gets no MAIL FROM in clear")
ok(p.returncode == 111, "sslclient -y: exit 111 after the failed handshake (%r)" % p.returncode, err.decode())

# ---------------------------------------------------------------- what the engine can read
# A connection process serves one connection: once its TLS context is
# ready it holds no key passphrase, and once the handshake is done, no
# private key but the one it serves (and the default pair's, which its
# context was made from). The engine's memory is read through /proc while
# its program waits; the key in use is the control that the search finds
# a key at all.
PASSPHRASE = b"passphrase-3c0d1e9a-marker"


def key_forms(key):
    """Byte strings that betray an EC private key in memory: its scalar
    (big-endian, and as OpenSSL's BIGNUM words hold it on a little-endian
    machine) and a line of its PEM text."""
    text = subprocess.run(["openssl", "pkey", "-in", key, "-noout", "-text"], capture_output=True,
                          check=True).stdout.decode()
    hexs = re.search(r"priv:\n((?:\s+[0-9a-f:]+\n)+)", text).group(1)
    scalar = bytes.fromhex(re.sub(r"[\s:]", "", hexs)).lstrip(b"\0").rjust(32, b"\0")
    pem = open(key).read().splitlines()
    return {"scalar": scalar, "reversed scalar": scalar[::-1], "PEM line": pem[1].encode()}


class Memory:
    """The readable mappings of process pid, each searched on its own;
    mappings over 1 GiB (AddressSanitizer's shadow under make check-asan)
    are left out."""

    def __init__(self, pid):
        self.chunks = []
        with open("/proc/%s/maps" % pid) as maps, open("/proc/%s/mem" % pid, "rb", 0) as mem:
            for line in maps:
                span, perm = line.split()[:2]
                lo, hi = (int(x, 16) for x in span.split("-"))
                if not perm.startswith("r") or hi - lo > 1 << 30:
                    continue
                try:
                    mem.seek(lo)
                    self.chunks.append(mem.read(hi - lo))
                except (OSError, ValueError, OverflowError):
                    pass

    def __contains__(self, b):
        return any(b in c for c in self.chunks)

    def __len__(self):
        return sum(len(c) for c in self.chunks)


def found(memory, key):
    return [name for name, b in key_forms(key).items() if b in memory]


secret = pki.leaf("secret-default", ca)
encrypted = pki.path("secret-default.enc.key")
subprocess.run(["openssl", "pkey", "-in", secret["key"], "-aes256", "-passout", "pass:" + PASSPHRASE.decode(),
                "-out", encrypted], check=True, capture_output=True)
sni_a = pki.leaf("secret-a", ca, dns=("a.example",))
sni_b = pki.leaf("secret-b", ca, dns=("b.example",))
sni_c = pki.leaf("secret-c", ca, dns=("c.example",))   # a bundle: key and chain in one file
by_rule = pki.leaf("secret-rule", ca)
rules_txt = os.path.join(WORK, "secrets.rules")
with open(rules_txt, "w") as f:
    f.write('127.0.0.2:allow,CERTFILE="%s",KEYFILE="%s"\n:allow\n' % (by_rule["pem"], by_rule["key"]))
secrets_cdb = os.path.join(WORK, "secrets.cdb")
subprocess.run([suite.prog("sslrules"), secrets_cdb, secrets_cdb + ".tmp"], stdin=open(rules_txt), check=True,
               capture_output=True)
env = {"CERTFILE": secret["pem"], "KEYFILE": encrypted,
       "CERTFILE:a.example": sni_a["pem"], "KEYFILE:a.example": sni_a["key"],
       "CERTFILE:b.example": sni_b["pem"], "KEYFILE:b.example": sni_b["key"],
       "CERTFILE:c.example": sni_c["bundle"]}
with suite.fd3(PASSPHRASE + b"\n"):
    srv = suite.Server(["-v", "-3", "-x", secrets_cdb], env=env, pass_fds=(3,))
ok(srv.port, "server with an encrypted default key (-3), SNI pairs and a rule's pair started")


def engine_memory(name, source):
    """The memory of the engine of one connection from source, under SNI
    name, while its program waits for input."""
    before = len(suite.pids(srv))
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10), source_address=(source, 0))
    cctx = suite.client_context(ca["crt"], verify=False)
    with cctx.wrap_socket(raw, server_hostname=name) as s:
        rep = suite.report_of(s)
        suite.wait_until(lambda: len(suite.pids(srv)) > before, 10)
        pid = suite.pids(srv)[before] if len(suite.pids(srv)) > before else None
        memory = Memory(pid) if rep and pid else b""
        s.sendall(b"quit\n")
        suite.read_all(s)
    return rep, memory


for sni, keyfile, others in (("a.example", sni_a["key"], (sni_b, sni_c, by_rule)),
                             ("c.example", sni_c["key"], (sni_a, sni_b, by_rule))):
    rep, memory = engine_memory(sni, "127.0.0.1")
    ok(len(memory) > 100000, "engine of an SNI %s connection: its memory was read" % sni)
    ok(found(memory, keyfile), "engine for %s: the key it serves is found in its memory (the search works)" % sni)
    ok(PASSPHRASE not in memory, "engine for %s: the key passphrase is not in its memory" % sni)
    for other in others:
        is_(found(memory, other["key"]), [], "engine for %s: %s's private key is not in its memory" % (sni, other["name"]))
rep, memory = engine_memory("localhost", "127.0.0.2")
ok(rep is not None and found(memory, by_rule["key"]), "engine of a connection under the rule's pair: the rule's key is found")
for other in (secret, sni_a, sni_b, sni_c):
    is_(found(memory, other["key"]), [], "engine under the rule's pair: %s's private key is not in its memory" % other["name"])
ok(PASSPHRASE not in memory, "engine under the rule's pair: the key passphrase is not in its memory")
srv.stop()

def stopped_memory(pid):
    """Memory(pid) read while the process is stopped, so that an idle
    engine cannot be retired meanwhile; b"" if it cannot be read."""
    try:
        os.kill(pid, signal.SIGSTOP)
        try:
            return Memory(pid)
        finally:
            os.kill(pid, signal.SIGCONT)
    except (OSError, TypeError) as e:
        diag("engine %r: %s" % (pid, e))
        return b""


# ---------------------------------------------------------------- what a reused engine keeps
# An engine whose connection ended well waits for the next one
# (ENGINEREUSE): nothing that connection relayed, either way, may stay in
# its memory. The program upper-cases what it reads, so the client's bytes
# (network to program) and the program's (program to network) differ. The
# control: while the connection is open, both are found. The engine is
# stopped while it is read, so that it cannot be retired meanwhile.
UPPER = "import sys\nfor l in sys.stdin.buffer:\n    sys.stdout.buffer.write(l.upper())\n    sys.stdout.flush()\n"
srv = suite.Server(["-v"], app=[suite.PYTHON, "-c", UPPER], env={"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"]})
ok(srv.port, "server with reusable engines started")
MARK = b"relayed-%s-" % os.urandom(12).hex().encode()
payload = b"".join(MARK + b"%06d\n" % i for i in range(4000))   # 164 kB: many records, the buffers wrap
pid, during, how = None, b"", None
with suite.tls_connect(srv.port, ctx) as s:
    echoed, how, _ = suite.tls_exchange(s, payload, until=len(payload), timeout=20)
    p = suite.pids(srv)
    pid = int(p[0]) if p else None
    during = Memory(pid) if pid else b""
    try:
        s.unwrap()   # our close_notify: the program sees EOF, the engine answers
    except (OSError, ssl.SSLError) as e:
        diag("unwrap: %s" % e)
is_((how, echoed == payload.upper()), ("enough", True), "reused engine: the program's answer came back whole")
is_(suite.end_status(srv, pid) if pid else None, 0, "reused engine: the connection ended, status 0")
after = stopped_memory(pid)
ok(MARK in during and MARK.upper() in during,
   "reused engine: while the connection is open, what it relays is in its memory (the search works)")
ok(len(after) > 100000, "reused engine: after the connection, the engine waits for the next one and its memory was read")
ok(MARK not in after, "reused engine: after the connection, none of the client's bytes is in its memory")
ok(MARK.upper() not in after, "reused engine: after the connection, none of the program's bytes is in its memory")
srv.stop()

# ---------------------------------------------------------------- what a reused STARTTLS front keeps
# The same with STARTTLS=smtp: the lines the front read and passed in the
# clear before STARTTLS, and the daemon's replies, sit in the front's own
# buffers; none may stay in the engine once the session ended well.
record = os.path.join(WORK, "front-lines")
srv = suite.Server(["-v"], env={"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"], "STARTTLS": "smtp"},
                   app=[suite.PYTHON, os.path.join(suite.BIN, "line-daemon.py"), "smtp", record])
ok(srv.port, "server with a STARTTLS front and reusable engines started")
# searched for, the random part: later lines overwrite a buffer's start
FHEX = os.urandom(12).hex().encode()
FMARK = b"front-" + FHEX + b".example"
pid, during, replies = None, b"", []
try:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
        replies.append(suite.smtp_reply(raw))
        raw.sendall(b"EHLO " + FMARK + b"\r\n")
        replies.append(suite.smtp_reply(raw))
        p = suite.pids(srv)
        pid = int(p[0]) if p else None
        during = Memory(pid) if pid else b""
        raw.sendall(b"STARTTLS\r\n")
        replies.append(suite.smtp_reply(raw))
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"QUIT\r\n")
            replies.append(suite.smtp_reply(s))
except (OSError, ssl.SSLError) as e:
    diag("STARTTLS session: %s" % e)
is_(replies[-1:], [["221 2.0.0 bye"]], "reused front: the session went through STARTTLS to QUIT's reply")
is_(suite.end_status(srv, pid) if pid else None, 0, "reused front: the session ended, status 0")
after = stopped_memory(pid)
ok(FHEX in during, "reused front: during the session, the line passed in the clear is in its memory (the search works)")
ok(len(after) > 100000, "reused front: after the session, the engine waits for the next one and its memory was read")
ok(FHEX not in after, "reused front: after the session, the line passed in the clear is not in its memory")
srv.stop()
