#!/usr/bin/python3
# Privileges (run as root): the program runs as -u/-g with only [gid] as
# supplementary groups, the TLS engine (the program's parent) as
# SSL_UID/SSL_GID (TLS_UID/TLS_GID) or else -u/-g, in SSL_CHROOT; secrets
# never reach the program's environment; the program gets fds 0, 1, 2 only,
# an empty signal mask and SIGPIPE at its default; -U; a root-only key; a
# warning when nothing tells the engine to leave root (sslserver at start-up,
# sslhandoff per connection); the name and ident look-ups run as the engine's
# user, and what they report cannot change the client's address.
import os
import signal
import stat
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike, diag, skip, skip_all  # noqa: E402
import suite  # noqa: E402

if os.geteuid() != 0:
    skip_all("privileges.t needs root")

pki = suite.Pki()
ca = pki.ca("ca")
leaf = pki.leaf("server", ca)
BASE = {"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"]}
ctx = suite.client_context(ca["crt"])

# sslserver starts with supplementary groups of its own: the program and the
# engine must end up with [gid] only.
os.setgroups([4242, 4243])


def ids(status, field):
    return [int(x) for x in status.get(field, "").split()]


def with_session(srv, look):
    """Opens a session, gets the program's report, calls look(report) while
    the program and its engine are alive, then ends the session."""
    with suite.tls_connect(srv.port, ctx) as s:
        rep = suite.report_of(s)
        res = look(rep) if rep else None
        s.sendall(b"quit\n")
        suite.read_all(s)
    return rep, res


def engine_view(rep):
    ppid = rep["ppid"]
    try:
        root = os.readlink("/proc/%d/root" % ppid)
        cwd = os.readlink("/proc/%d/cwd" % ppid)
    except OSError as e:
        root = cwd = "unreadable: %s" % e
    return {"pid": ppid, "status": suite.proc_status(ppid) or {}, "root": root, "cwd": cwd,
            "approot": os.readlink("/proc/%d/root" % rep["pid"])}


# ---------------------------------------------------------------- -u/-g only
srv = suite.Server(["-v", "-u", "7791", "-g", "7792"], env=dict(BASE, FOO="bar baz"))
ok(srv.port, "-u 7791 -g 7792: server started")
rep, eng = with_session(srv, engine_view)
ok(rep is not None, "-u/-g: program started")
rep = rep or {"uid": None, "gid": None, "groups": None, "env": {}, "fds": None, "sigblk": None, "sigign": None, "ppid": None}
eng = eng or {"status": {}, "pid": None, "root": None, "cwd": None, "approot": None}
is_(rep["uid"], 7791, "program uid is -u")
is_(rep["gid"], 7792, "program gid is -g")
is_(rep["groups"], [7792], "program supplementary groups are [gid] only")
is_(ids(eng["status"], "Uid"), [7791] * 4, "engine (program's parent): real/effective/saved/fs uid = -u without SSL_UID")
is_(ids(eng["status"], "Gid"), [7792] * 4, "engine: all gids = -g without SSL_GID")
is_(ids(eng["status"], "Groups"), [7792], "engine: supplementary groups [gid] only")
is_(int(eng["status"].get("PPid", "0")), srv.proc.pid, "engine is a child of the sslserver main process")
is_(eng["root"], "/", "engine not chrooted without SSL_CHROOT")
is_(eng["approot"], "/", "program not chrooted")
is_(suite.proc_status(srv.proc.pid)["Uid"].split(), ["0"] * 4, "the main process stays root (to re-read the key on SIGHUP)")
is_(rep["env"].get("FOO"), "bar baz", "an ordinary variable passes through to the program")
srv.stop()

# ---------------------------------------------------------------- SSL_UID/SSL_GID/SSL_CHROOT and secrets
jail = suite.tmpdir()
secrets = {
    "CERTFILE": leaf["pem"], "KEYFILE": leaf["key"], "CERTCHAINFILE": leaf["pem"],
    "CERTFILE:mail.example.org": leaf["pem"], "KEYFILE:mail.example.org": leaf["key"],
    "SSL_UID": "7793", "SSL_GID": "7794", "SSL_CHROOT": jail, "TLS_UID": "7795", "TLS_GID": "7796",
}
srv = suite.Server(["-u", "7791", "-g", "7792"], env=dict(secrets, FOO="bar", MAILNAME="mail.example.org"))
ok(srv.port, "SSL_UID/SSL_GID/SSL_CHROOT and every secret set: server started")
rep, eng = with_session(srv, engine_view)
ok(rep is not None, "SSL_UID/SSL_GID/SSL_CHROOT: program started")
rep = rep or {"uid": None, "gid": None, "groups": None, "env": {}}
eng = eng or {"status": {}, "root": None, "cwd": None}
is_((rep["uid"], rep["gid"], rep["groups"]), (7791, 7792, [7792]), "program still runs as -u/-g")
is_(ids(eng["status"], "Uid"), [7793] * 4, "engine runs as SSL_UID (SSL_UID wins over TLS_UID)")
is_(ids(eng["status"], "Gid"), [7794] * 4, "engine runs as SSL_GID (SSL_GID wins over TLS_GID)")
is_(ids(eng["status"], "Groups"), [7794], "engine supplementary groups: [SSL_GID] only")
is_(eng["root"], jail, "engine's root is SSL_CHROOT")
is_(eng["cwd"], jail, "engine's working directory is the top of the chroot")
leaked = sorted(k for k in secrets if k in rep["env"])
is_(leaked, [], "no secret variable in the program's environment")
leaked = sorted(k for k in rep["env"] if k.startswith("KEYFILE") or k.startswith("CERTFILE"))
is_(leaked, [], "no KEYFILE* or CERTFILE* variable at all")
is_((rep["env"].get("FOO"), rep["env"].get("MAILNAME")), ("bar", "mail.example.org"), "ordinary variables pass through")
srv.stop()

# The s6 spellings alone.
srv = suite.Server(["-u", "7791", "-g", "7792"], env=dict(BASE, TLS_UID="7795", TLS_GID="7796"))
rep, eng = with_session(srv, engine_view)
ok(rep is not None, "TLS_UID/TLS_GID: program started")
is_(ids((eng or {"status": {}})["status"], "Uid"), [7795] * 4, "TLS_UID sets the engine's uid")
is_(ids((eng or {"status": {}})["status"], "Gid"), [7796] * 4, "TLS_GID sets the engine's gid")
is_(((rep or {}).get("uid"), (rep or {}).get("gid")), (7791, 7792), "TLS_UID/TLS_GID: program still -u/-g")
ok(rep is not None and "TLS_UID" not in rep["env"] and "TLS_GID" not in rep["env"], "TLS_UID/TLS_GID not passed to the program")
srv.stop()

# SSL_UID/SSL_GID without -u/-g: the program keeps the server's identity (root).
srv = suite.Server([], env=dict(BASE, SSL_UID="7793", SSL_GID="7794"))
rep, eng = with_session(srv, engine_view)
is_(ids((eng or {"status": {}})["status"], "Uid"), [7793] * 4, "SSL_UID without -u: engine unprivileged")
is_(((rep or {}).get("uid"), (rep or {}).get("gid")), (0, 0), "SSL_UID without -u: program keeps the server's uid/gid")
srv.stop()

# ---------------------------------------------------------------- descriptors and signals
extra_r, extra_w = os.pipe()
os.set_inheritable(extra_r, True)
srv = suite.Server(["-u", "7791", "-g", "7792"], env=BASE, pass_fds=(extra_r,))
os.close(extra_r)
ok(srv.port, "server started with an extra inherited descriptor %d" % extra_r)
ok(str(extra_r) in os.listdir("/proc/%d/fd" % srv.proc.pid), "sslserver itself did inherit descriptor %d" % extra_r)
rep, _ = with_session(srv, lambda r: None)
is_((rep or {}).get("fds"), [0, 1, 2], "program has descriptors 0, 1, 2 only")
is_((rep or {}).get("sigblk"), "0000000000000000", "program starts with no blocked signal")
srv.stop()
os.close(extra_w)

# Python ignores SIGPIPE itself, so the signal state is read by cat, exec'd
# directly by sslserver.
srv = suite.Server([], env=BASE, app=["cat", "/proc/self/status"])
with suite.tls_connect(srv.port, ctx) as s:
    text = suite.read_all(s).decode()
st = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
ok("SigIgn" in st, "the program's /proc/self/status arrived", text[:200])
sigign = int(st.get("SigIgn", "0"), 16)
sigblk = int(st.get("SigBlk", "f"), 16)
is_(sigign & (1 << (signal.SIGPIPE - 1)), 0, "SIGPIPE is not ignored in the program")
is_(sigblk, 0, "no signal blocked in the program (SigBlk all zeros)")
for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
    is_(sigign & (1 << (sig - 1)), 0, "%s not ignored in the program" % sig.name)
srv.stop()

# ---------------------------------------------------------------- -U
srv = suite.Server(["-U"], env=dict(BASE, UID="7797", GID="7798"))
rep, eng = with_session(srv, engine_view)
is_(((rep or {}).get("uid"), (rep or {}).get("gid"), (rep or {}).get("groups")), (7797, 7798, [7798]), "-U: program runs as $UID/$GID")
is_(ids((eng or {"status": {}})["status"], "Uid"), [7797] * 4, "-U: engine runs as $UID without SSL_UID")
srv.stop()
rc, err = suite.start_failure(["-U"], env=BASE)
is_(rc, 100, "-U without $UID: exit 100")
like(err, r"^sslserver: .*UID", "-U without $UID: says so")

# ---------------------------------------------------------------- root-only key, unprivileged engine
st = os.stat(leaf["key"])
is_((stat.S_IMODE(st.st_mode), st.st_uid), (0o600, 0), "the key file is mode 0600 and owned by root")
srv = suite.Server(["-v", "-u", "7791", "-g", "7792"], env=dict(BASE, SSL_UID="7793", SSL_GID="7794", SSL_CHROOT=jail))
for i in range(2):
    rep, eng = with_session(srv, engine_view)
    ok(rep is not None and ids(eng["status"], "Uid") == [7793] * 4,
       "root-only key, engine as 7793 in a chroot: session %d served (key read once at start-up)" % (i + 1))
ok(srv.wait_log(r"^sslserver: end \d+ status 0$"), "sessions ended with status 0")
unlike(srv.log(), r"error|fatal|warning", "no error logged")
srv.stop()

# ---------------------------------------------------------------- an engine left as root
ROOTWARN = r"^%s: warning: the TLS engine will run as root: set SSL_UID and SSL_GID \(or -u and -g\)$"
for what, opts, env, warned in (("neither -u nor SSL_UID", [], {}, True),
                                ("-g without -u", ["-g", "7792"], {}, True),
                                ("-u 0", ["-u", "0"], {}, True),
                                ("-u", ["-u", "7791"], {}, False),
                                ("SSL_UID", [], {"SSL_UID": "7793"}, False),
                                ("TLS_UID", [], {"TLS_UID": "7795"}, False),
                                ("-U", ["-U"], {"UID": "7797", "GID": "7798"}, False)):
    srv = suite.Server(["-v"] + opts, env=dict(BASE, **env))
    ok(srv.port, "%s: server started" % what)
    # -1 prints the port after the warning: no wait needed, and no client yet
    log = srv.log()
    if warned:
        is_(suite.log_count(srv, ROOTWARN % "sslserver"), 1, "%s: one warning line before the port is printed" % what)
        like(log, r"\A%s\n(sslserver: status: 0/40\n)?\Z" % (ROOTWARN[1:-1] % "sslserver"),
             "%s: the warning comes before anything else is logged" % what)
    else:
        unlike(log, r"warning", "%s: no warning" % what)
    for i in range(2):
        ok(suite.report_session(srv.port, ctx) is not None, "%s: session %d served" % (what, i + 1))
    ok(suite.wait_until(lambda: suite.log_count(srv, r"^sslserver: end \d+ status 0$") == 2), "%s: both sessions ended" % what)
    is_(suite.log_count(srv, r"warning"), 1 if warned else 0, "%s: %s" % (what, "still one warning after two connections" if warned else "still no warning after two connections"))
    srv.stop()

# sslhandoff is started per connection: it warns per connection, after the
# rules (a rule may give the engine an identity), before the handshake.
RULES = os.path.join(suite.tmpdir(), "rules.cdb")
r = suite.run([suite.prog("sslrules"), RULES, RULES + ".tmp"], input=b"127.0.0.2:allow,SSL_UID=\"7793\"\n:allow\n")
ok(r.returncode == 0, "sslrules: a rule giving the engine SSL_UID", r.stderr.decode())
for what, opts, env, src, warned in (("neither -u nor SSL_UID", [], {}, "127.0.0.1", True),
                                     ("-u", ["-u", "7791"], {}, "127.0.0.1", False),
                                     ("SSL_UID", [], {"SSL_UID": "7793"}, "127.0.0.1", False),
                                     ("SSL_UID from the rule", ["-x", RULES], {}, "127.0.0.2", False),
                                     ("another rule", ["-x", RULES], {}, "127.0.0.1", True)):
    tcp = suite.PortCommand(["tcpserver", "-1", "-v", "-HR", "-l", "localhost", "127.0.0.1", "0", suite.prog("sslhandoff")]
                            + opts + [suite.PYTHON, suite.REPORT], env=dict(BASE, **env))
    ok(tcp.port, "sslhandoff, %s: tcpserver started" % what)
    for i in range(2):
        try:
            with suite.tls_connect(tcp.port, ctx, source=(src, 0)) as s:
                ok(suite.report_of(s) is not None, "sslhandoff, %s: session %d served" % (what, i + 1))
                s.sendall(b"quit\n")
                suite.read_all(s)
        except OSError as e:
            ok(False, "sslhandoff, %s: session %d served" % (what, i + 1), str(e))
    ok(suite.wait_until(lambda: suite.log_count(tcp, r"^tcpserver: end \d+ status 0$") == 2), "sslhandoff, %s: both sessions ended" % what)
    is_(suite.log_count(tcp, ROOTWARN % "sslhandoff"), 2 if warned else 0, "sslhandoff, %s: %s" % (what, "one warning per connection" if warned else "no warning"))
    is_(suite.log_count(tcp, r"warning"), suite.log_count(tcp, ROOTWARN % "sslhandoff"), "sslhandoff, %s: no other warning" % what)
    tcp.stop()

# ---------------------------------------------------------------- look-ups without privileges
# The PTR, paranoid and ident look-ups parse what DNS servers and the
# client's identd send: they run as the engine's user and group (SSL_UID,
# else -u), with no supplementary groups. A shim LD_PRELOADed into sslserver
# records the identity each getnameinfo, getaddrinfo and connect to port 113
# runs under; with SHIM_FORGE it plays a subverted look-up process, which
# rewrites the client's address in its answer and leaves the name without
# its end. In private namespaces: the test's identd needs port 113, and
# /etc/hosts names the client.
import socket  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402

LOOKUP_SHIM = r"""
#define _GNU_SOURCE
#define connect shim_glibc_connect
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#undef connect
static char const *logpath ;
static char const *forge ;
static int looked_up ;
__attribute__((constructor)) static void init (void)
{
  logpath = getenv("SHIM_LOG") ;
  forge = getenv("SHIM_FORGE") ;
  unsetenv("LD_PRELOAD") ;
}
static void note (char const *what)
{
  gid_t g[64] ;
  int n = getgroups(64, g), fd ;
  if (!logpath) return ;
  fd = open(logpath, O_WRONLY | O_APPEND) ;
  if (fd < 0) return ;
  dprintf(fd, "%s %d %u %u %d\n", what, (int)getpid(), (unsigned)geteuid(), (unsigned)getegid(), n) ;
  close(fd) ;
}
int getnameinfo (struct sockaddr const *sa, socklen_t salen, char *host, socklen_t hostlen, char *serv, socklen_t servlen, int flags)
{
  int (*real)(struct sockaddr const *, socklen_t, char *, socklen_t, char *, socklen_t, int) = dlsym(RTLD_NEXT, "getnameinfo") ;
  note("getnameinfo") ;
  looked_up = 1 ;
  return real(sa, salen, host, hostlen, serv, servlen, flags) ;
}
int getaddrinfo (char const *node, char const *service, struct addrinfo const *hints, struct addrinfo **res)
{
  int (*real)(char const *, char const *, struct addrinfo const *, struct addrinfo **) = dlsym(RTLD_NEXT, "getaddrinfo") ;
  note("getaddrinfo") ;
  return real(node, service, hints, res) ;
}
int connect (int fd, struct sockaddr const *sa, socklen_t len)
{
  int (*real)(int, struct sockaddr const *, socklen_t) = dlsym(RTLD_NEXT, "connect") ;
  if (sa->sa_family == AF_INET && ((struct sockaddr_in const *)sa)->sin_port == htons(113)) note("connect113") ;
  return real(fd, sa, len) ;
}
ssize_t write (int fd, void const *buf, size_t len)
{
  ssize_t (*real)(int, void const *, size_t) = dlsym(RTLD_NEXT, "write") ;
  char *p, *name ;
  char copy[4096] ;
  if (!forge || !looked_up || len < 512 || len > sizeof(copy)) return real(fd, buf, len) ;
  memcpy(copy, buf, len) ;
  for (p = copy ; (p = memmem(p, copy + len - p, "127.0.0.80", 10)) ; p += 10) memcpy(p, "127.0.0.99", 10) ;
  name = memmem(copy, len, "lookup.example.org", 18) ;
  if (name) memset(name + 18, 'x', copy + len - 8 - (name + 18)) ;
  return real(fd, copy, len) < 0 ? -1 : (ssize_t)len ;
}
"""
lwork = suite.tmpdir()
lshim = os.path.join(lwork, "lookup-shim.so")
with open(lshim[:-3] + ".c", "w") as f:
    f.write(LOOKUP_SHIM)
r = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-Wall", "-o", lshim, lshim[:-3] + ".c", "-ldl"], capture_output=True,
                   timeout=suite.patience(60))
ok(r.returncode == 0, "the look-up shim compiles", r.stderr.decode())
os.chmod(lshim, 0o755)
# Under make check-asan the sanitizer's runtime must come first in LD_PRELOAD.
ASAN = [line.split("=>")[1].split()[0] for line in subprocess.run(["ldd", suite.prog("sslserver")], capture_output=True,
        timeout=suite.patience(10)).stdout.decode().splitlines() if "libasan" in line and "=>" in line]
LPRELOAD = " ".join(ASAN + [lshim])
LRULES = os.path.join(lwork, "rules.cdb")
r = suite.run([suite.prog("sslrules"), LRULES, LRULES + ".tmp"],
              input=b'127.0.0.99:allow,WHICH="forged"\n127.0.0.80:allow,WHICH="real"\n:allow,WHICH="other"\n')
ok(r.returncode == 0, "sslrules: rules for the look-up client", r.stderr.decode())


class Identd:
    """RFC 1413 on 127.0.0.80:113: every query gets "USERID : UNIX : joe"."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.80", 113))
        self.sock.listen(8)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.settimeout(suite.patience(10))
            q = b""
            try:
                while not q.endswith(b"\n"):
                    x = c.recv(100)
                    if not x:
                        break
                    q += x
                c.sendall(b"%s : USERID : UNIX : joe\r\n" % q.strip())
            except OSError:
                pass
            c.close()


def lookups(what, opts, env, forge=False):
    """A session from 127.0.0.80 to sslserver -p -r (PTR, paranoid, ident)
    with the shim; returns (the program's environment, the look-ups seen
    outside the main process as (function, euid, egid, number of groups))."""
    log = os.path.join(suite.tmpdir(), "lookups")
    open(log, "w").close()
    os.chmod(log, 0o666)
    e = dict(BASE, LD_PRELOAD=LPRELOAD, SHIM_LOG=log, **env)
    if forge:
        e["SHIM_FORGE"] = "1"
    srv = suite.Server(["-v", "-p", "-r", "-t", "60", "-x", LRULES] + opts, env=e)
    ok(srv.port, "%s: server started" % what)
    rep = None
    try:
        with suite.tls_connect(srv.port, ctx, source=("127.0.0.80", 0)) as s:
            rep = suite.report_of(s)
            s.sendall(b"quit\n")
            suite.read_all(s)
    except OSError as ex:
        diag("%s: %s" % (what, ex))
    suite.wait_until(lambda: suite.log_count(srv, r"^sslserver: end \d+ status") == 1)
    srv.stop()
    seen = []
    with open(log) as f:
        for line in f:
            fn, pid, uid, gid, n = line.split()
            if int(pid) != srv.proc.pid:
                seen.append((fn, int(uid), int(gid), int(n)))
    return suite.env_of(rep), sorted(set(seen))


why = suite.private_namespaces(hosts="127.0.0.1 localhost\n127.0.0.80 lookup.example.org\n")
if why:
    skip("look-ups without privileges", "no private namespaces: %s" % why)
else:
    Identd()
    FNS = ["connect113", "getaddrinfo", "getnameinfo"]
    for what, opts, env, ident in (("SSL_UID/SSL_GID and -u/-g", ["-u", "7791", "-g", "7792"],
                                    {"SSL_UID": "7793", "SSL_GID": "7794"}, (7793, 7794, 0)),
                                   ("-u/-g alone", ["-u", "7791", "-g", "7792"], {}, (7791, 7792, 0)),
                                   ("TLS_UID/TLS_GID alone", [], {"TLS_UID": "7795", "TLS_GID": "7796"}, (7795, 7796, 0)),
                                   ("root with no user for the engine", [], {}, (0, 0, 2))):
        env, seen = lookups(what, opts, env)
        is_((env.get("WHICH"), env.get("SSLREMOTEIP"), env.get("SSLREMOTEHOST"), env.get("SSLREMOTEINFO")),
            ("real", "127.0.0.80", "lookup.example.org", "joe"), "%s: the look-ups find what they found before" % what)
        is_(seen, [(fn,) + ident for fn in FNS],
            "%s: PTR, paranoid and ident look-ups ran as uid %d gid %d with %d supplementary groups" % ((what,) + ident))
    env, seen = lookups("a subverted look-up process", ["-u", "7791", "-g", "7792"],
                        {"SSL_UID": "7793", "SSL_GID": "7794"}, forge=True)
    is_((env.get("WHICH"), env.get("SSLREMOTEIP")), ("real", "127.0.0.80"),
        "a subverted look-up process cannot change the client's address (nor so its rule)")
    host = env.get("SSLREMOTEHOST", "")
    ok(host.startswith("lookup.example.org") and len(host) < 256, "a subverted look-up process: a name without its end is cut (%d bytes)" % len(host))
