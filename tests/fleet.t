#!/usr/bin/python3
# A fleet sharing session-ticket keys (DESIGN.md section 10): TICKETKEYFILE
# given to several sslserver instances and to sslhandoff under tcpserver.
# A session made on one resumes on every other (TLS 1.2 and 1.3, another
# port, another program), through Debian's haproxy round-robin too; the
# first line encrypts and every line decrypts, so the cron rotation
# (prepend a key, SIGHUP) keeps sessions resuming until their key is
# dropped; a malformed file stops the start-up, and at SIGHUP leaves the
# old keys in place; the program never sees the variable.
import base64
import os
import re
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, diag  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
leaf = pki.leaf("server", ca, dns=("localhost",), ips=("127.0.0.1",))
D = suite.tmpdir()
# CAFILE: the chain is complete for the checks of a SIGHUP (CHECK MODE)
BASE = {"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"], "CAFILE": ca["crt"]}
APP = [suite.PYTHON, suite.REPORT]


def new_key():
    return base64.b64encode(os.urandom(80)).decode()


def write_keys(path, keys):
    with open(path + ".new", "w") as f:
        f.write("".join(k + "\n" for k in keys))
    os.rename(path + ".new", path)


def key_name(key):
    return base64.b64decode(key)[:16].hex()


CONTEXTS = {}


def session(port, version, sess=None, source=None):
    """(the program's environment or the error, whether the session was
    resumed, the session for the next time)."""
    if version not in CONTEXTS:
        CONTEXTS[version] = suite.client_context(ca["crt"], version)
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=suite.patience(10), source_address=source)
        with CONTEXTS[version].wrap_socket(raw, server_hostname="localhost", session=sess) as s:
            rep = suite.report_of(s)
            s.sendall(b"quit\n")
            suite.read_all(s)
            return suite.env_of(rep), s.session_reused, s.session
    except (ssl.SSLError, OSError) as e:
        return "failed: %s" % e, False, None


def resumes(made_on, offered_on, version):
    """A session made on one port, offered on another: (resumed as the
    client saw it, SSL_SESSION_RESUMED as the program saw it)."""
    env, _, sess = session(made_on, version)
    if sess is None:
        diag("no session from port %d: %s" % (made_on, env))
        return None, None
    env, reused, _ = session(offered_on, version, sess)
    return reused, env.get("SSL_SESSION_RESUMED") if isinstance(env, dict) else env


K1, K2, K3 = new_key(), new_key(), new_key()
KEYS = os.path.join(D, "ticketkeys")
write_keys(KEYS, [K1])
OTHER = os.path.join(D, "otherkeys")
write_keys(OTHER, [K3])

# two instances of different services (port, program arguments) sharing the file
a = suite.Server(["-v"], app=APP, env=dict(BASE, TICKETKEYFILE=KEYS))
b = suite.Server(["-v"], app=APP + ["echo"], env=dict(BASE, TICKETKEYFILE=KEYS))
c = suite.Server(["-v"], app=APP, env=dict(BASE, TICKETKEYFILE=OTHER))
plain1 = suite.Server(["-v"], app=APP, env=BASE)
plain2 = suite.Server(["-v"], app=APP + ["echo"], env=BASE)
for version in ("1.3", "1.2"):
    is_(resumes(a.port, b.port, version), (True, "Resumed"), "TLSv%s: a session made on instance A resumes on instance B" % version)
    is_(resumes(b.port, a.port, version), (True, "Resumed"), "TLSv%s: ... and one made on B resumes on A" % version)
    is_(resumes(a.port, c.port, version)[0], False, "TLSv%s: an instance with another key file does not resume it" % version)
    is_(resumes(plain1.port, plain2.port, version)[0], False,
        "TLSv%s: without TICKETKEYFILE, another service's sessions do not resume (its keys are its own)" % version)
env, _, _ = session(a.port, "1.3")
ok(isinstance(env, dict) and "TICKETKEYFILE" not in env, "the program never sees TICKETKEYFILE", env if not isinstance(env, dict) else "")
is_(suite.ticket_key_name(a.port, ca["crt"]), key_name(K1), "tickets are issued under the first line's key name")

# sslhandoff under tcpserver, with the same file, in the fleet
h = suite.PortCommand(["tcpserver", "-1", "-HR", "127.0.0.1", "0", suite.prog("sslhandoff")] + APP,
                      env=dict(BASE, TICKETKEYFILE=KEYS))
if ok(h.port, "tcpserver with sslhandoff started"):
    for version in ("1.3", "1.2"):
        is_(resumes(a.port, h.port, version), (True, "Resumed"), "TLSv%s: sslhandoff resumes a session made by sslserver" % version)
        is_(resumes(h.port, b.port, version), (True, "Resumed"), "TLSv%s: sslhandoff issues tickets sslserver resumes" % version)
h.stop()
h = suite.PortCommand(["tcpserver", "-1", "-HR", "127.0.0.1", "0", suite.prog("sslhandoff")] + APP, env=BASE)
if ok(h.port, "tcpserver with sslhandoff, no TICKETKEYFILE, started"):
    env, _, sess = session(h.port, "1.3")
    ok(isinstance(env, dict) and sess is not None and not sess.has_ticket,
       "without TICKETKEYFILE sslhandoff issues no ticket", env if not isinstance(env, dict) else "")
h.stop()

# rotation as the man page's cron line does it: prepend a key, SIGHUP
sessions = {v: session(a.port, v)[2] for v in ("1.3", "1.2")}
write_keys(KEYS, [K2, K1])
for srv in (a, b):
    n = suite.log_count(srv, r"^sslserver: reloaded TLS material$")
    srv.signal(1)
    ok(suite.wait_until(lambda: suite.log_count(srv, r"^sslserver: reloaded TLS material$") > n), "SIGHUP: reloaded")
is_(suite.ticket_key_name(a.port, ca["crt"]), key_name(K2), "after the rotation, tickets are issued under the new first line")
for v, sess in sessions.items():
    env, reused, renewed = session(b.port, v, sess)
    is_(reused, True, "TLSv%s: a session under the second line's key still resumes on the other instance" % v)
    sessions[v] = sess
write_keys(KEYS, [K2])
for srv in (a, b):
    n = suite.log_count(srv, r"^sslserver: reloaded TLS material$")
    srv.signal(1)
    suite.wait_until(lambda: suite.log_count(srv, r"^sslserver: reloaded TLS material$") > n)
for v, sess in sessions.items():
    env, reused, _ = session(a.port, v, sess)
    is_((reused, isinstance(env, dict)), (False, True),
        "TLSv%s: once its key is dropped, the session does not resume, and the client gets a full handshake" % v)

# a malformed file at SIGHUP: logged, the old keys kept
sess = session(a.port, "1.3")[2]
with open(KEYS, "w") as f:
    f.write(K2 + "\nnot base64 at all\n")
n = suite.log_count(a, r"^sslserver: reloaded TLS material$")
a.signal(1)
ok(a.wait_log(r"^sslserver: warning: unable to read TICKETKEYFILE %s: line 2: not a key: .*, keeping the previous keys$" % re.escape(KEYS)),
   "SIGHUP with a malformed file: one warning naming the file and the line", a.log()[-500:])
is_(session(a.port, "1.3", sess)[1], True, "SIGHUP with a malformed file: the previous keys still work")
for srv in (a, b, c, plain1, plain2):
    is_(suite.log_problems(srv) if srv is not a else [l for l in suite.log_problems(a) if "TICKETKEYFILE" not in l], [],
        "nothing else wrong logged")
    srv.stop()

# start-up errors: exit 111, one line naming the file and the problem
bad = os.path.join(D, "bad")
for name, content, pattern in (
        ("a line that is not base64", K1 + "\n" + "x" * 108 + "\n", r"line 2: not a key"),
        ("a key of 48 bytes", base64.b64encode(os.urandom(48)).decode() + "\n", r"line 1: not a key: expected the base64 of 80 bytes"),
        ("an empty file", "", r"no key in it"),
        ("65 keys", "".join(new_key() + "\n" for _ in range(65)), r"more than 64 keys|too large"),
        ("a missing file", None, r"No such file or directory")):
    if os.path.exists(bad):
        os.unlink(bad)
    if content is not None:
        with open(bad, "w") as f:
            f.write(content)
    for program in ("sslserver",):
        code, err = suite.start_failure(env=dict(BASE, TICKETKEYFILE=bad))
        is_(code, 111, "%s: %s: exit 111" % (program, name))
        like(err, r"^sslserver: fatal: \(111\) unable to read TICKETKEYFILE %s: (%s)" % (re.escape(bad), pattern),
             "%s: %s: one line naming the file" % (program, name))
        is_(len(err.splitlines()), 1, "%s: %s: one line" % (program, name))
r = subprocess.run([suite.prog("sslhandoff")] + APP, env=dict(BASE, TICKETKEYFILE=bad, PATH="/usr/bin:/bin"), capture_output=True,
                   stdin=subprocess.DEVNULL, timeout=suite.patience(10))
is_(r.returncode, 111, "sslhandoff: a missing TICKETKEYFILE: exit 111")
like(r.stderr.decode(), r"^sslhandoff: fatal: \(111\) unable to read TICKETKEYFILE %s: No such file or directory\n$" % re.escape(bad),
     "sslhandoff: one line naming the file")

# haproxy round-robin over two instances: the client's second connection
# goes to the other instance and resumes there
write_keys(KEYS, [K1])
backends = [suite.Server(["-v", "-H"], app=APP, env=dict(BASE, TICKETKEYFILE=KEYS, PROXYFROM="127.0.0.1")) for _ in range(2)]
hp = suite.Haproxy([b.port for b in backends], "send-proxy-v2")
bport = hp.port
if ok(hp.up, "haproxy listening", hp.log()):
    for version in ("1.3", "1.2"):
        env, _, sess = session(bport, version, source=("127.0.0.2", 0))
        env2, reused, _ = session(bport, version, sess, source=("127.0.0.2", 0))
        is_((reused, env2.get("SSL_SESSION_RESUMED") if isinstance(env2, dict) else env2), (True, "Resumed"),
            "TLSv%s through haproxy: the next connection, on the other instance, resumes" % version)
    ok(all(srv.wait_log(r"^sslserver: pid \d+ from 127\.0\.0\.2$") for srv in backends), "haproxy: both instances served the client")
hp.stop()
for srv in backends:
    srv.stop()

# ---------------------------------------------------------------- examples/fleet as written
# Only what is the site's own is replaced: paths, ports, the program, the
# qmail user; everything else runs as the files say.
FLEET = os.path.join(suite.TOP, "examples", "fleet")
r = subprocess.run(["haproxy", "-c", "-f", os.path.join(FLEET, "haproxy.cfg")], capture_output=True, timeout=suite.patience(20))
is_(r.returncode, 0, "examples/fleet/haproxy.cfg: haproxy -c finds it valid")

keys = os.path.join(D, "fleet-keys")
rot = os.path.join(FLEET, "rotate-ticketkeys")
lines = []
for i in range(4):
    r = subprocess.run(["sh", rot], env={"PATH": os.environ["PATH"], "TICKETKEYFILE": keys, "SERVICES": ""},
                       capture_output=True, timeout=suite.patience(20))
    is_((r.returncode, r.stderr.decode()), (0, ""), "rotate-ticketkeys, run %d: exit 0, nothing said" % (i + 1))
    with open(keys) as f:
        now = f.read().splitlines()
    is_(now[1:], lines[:2], "rotate-ticketkeys, run %d: the new key goes first, the previous two stay" % (i + 1))
    lines = now
is_(len(lines), 3, "rotate-ticketkeys: never more than three keys")
is_(oct(os.stat(keys).st_mode & 0o777), "0o600", "rotate-ticketkeys: the file is readable by its owner only")
r = subprocess.run(["/bin/sh", rot], env={"PATH": "/nonexistent", "TICKETKEYFILE": keys, "SERVICES": ""}, capture_output=True,
                   timeout=suite.patience(20))
with open(keys) as f:
    is_((r.returncode != 0, f.read().splitlines()), (True, lines), "rotate-ticketkeys without openssl: fails, the file untouched")

envfile = os.path.join(D, "ssl-env")
with open(envfile, "w") as f:
    f.write("CERTFILE=%s\nKEYFILE=%s\nCAFILE=%s\nexport CERTFILE KEYFILE CAFILE\n" % (leaf["pem"], leaf["key"], ca["crt"]))
cdbtext = b'127.0.0.3:deny\n:allow,RULES="fleet"\n'
fleetcdb = os.path.join(D, "tcp.smtpsd.cdb")
subprocess.run(["tcprules", fleetcdb, fleetcdb + ".tmp"], input=cdbtext, check=True, timeout=suite.patience(10))
instances, ports = [], {}


def instance_log(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


for name, example_port in (("smtps-a", "10465"), ("smtps-b", "10466")):
    with open(os.path.join(FLEET, name, "run")) as f:
        text = f.read()
    ports[example_port] = str(suite.free_port())
    for old, new in (("/var/qmail/ssl/env", envfile), ("/etc/ssl/private/ticketkeys", keys), ("envuidgid qmaild ", ""),
                     (" -U ", " "), ("/etc/tcp.smtpsd.cdb", fleetcdb), (" " + example_port + " ", " " + ports[example_port] + " "),
                     ("/var/qmail/bin/qmail-smtpd", "%s %s" % (suite.PYTHON, suite.REPORT))):
        ok(old in text, "%s/run holds %r, replaced for the test" % (name, old))
        text = text.replace(old, new)
    script = os.path.join(D, name + ".run")
    with open(script, "w") as f:
        f.write(text)
    # renewal day: the run script hands its arguments to sslserver
    r = subprocess.run(["sh", script, "-C"], capture_output=True, timeout=suite.patience(20),
                       env={"PATH": suite.BUILD + ":" + os.environ["PATH"]})
    ok(r.returncode == 0 and re.search(r"(?m)^sslserver: check: CERTFILE %s: ok: " % re.escape(leaf["pem"]), r.stdout.decode()),
       "%s: ./run -C checks the instance's material and exits 0" % name, r.stdout.decode())
    log = open(os.path.join(D, name + ".log"), "wb")
    instances.append((name, subprocess.Popen(["sh", script], stdout=log, stderr=subprocess.STDOUT,
                                                    env={"PATH": suite.BUILD + ":" + os.environ["PATH"]}),
                      os.path.join(D, name + ".log")))
with open(os.path.join(FLEET, "haproxy.cfg")) as f:
    cfgtext = f.read()
fport = suite.free_port()
cfgtext = cfgtext.replace("bind :465", "bind 127.0.0.1:%d" % fport)
for old, new in ports.items():
    cfgtext = cfgtext.replace("127.0.0.1:%s" % old, "127.0.0.1:%s" % new)
cfg = os.path.join(D, "fleet-haproxy.cfg")
with open(cfg, "w") as f:
    f.write(cfgtext)
ok(all(suite.wait_until(lambda p=p: suite.listening(int(p))) for p in ports.values()), "the two instances listen",
   "".join(instance_log(p)[-300:] for _, _, p in instances))
hp = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=subprocess.DEVNULL, stderr=open(cfg + ".log", "wb"))


if ok(suite.wait_until(lambda: suite.listening(fport)), "examples/fleet/haproxy.cfg: haproxy listening", open(cfg + ".log").read()):
    env, _, sess = session(fport, "1.3", source=("127.0.0.2", 0))
    env2, reused, _ = session(fport, "1.3", sess, source=("127.0.0.2", 0))
    is_((env.get("SSLREMOTEIP") if isinstance(env, dict) else env, env.get("RULES") if isinstance(env, dict) else None),
        ("127.0.0.2", "fleet"), "fleet example: the program sees the real client, and its rule")
    is_(reused, True, "fleet example: the client's next session resumes on the other instance")
    env, _, _ = session(fport, "1.3", source=("127.0.0.3", 0))
    ok(not isinstance(env, dict), "fleet example: the cdb's deny for a real client holds", env)
    ok(suite.wait_until(lambda: all(re.search(r"sslserver: pid \d+ from 127\.0\.0\.2$", instance_log(p), re.M) for _, _, p in instances)),
       "fleet example: both instances served the client")
    ok(suite.wait_until(lambda: all(re.search(r"sslserver: check \d+ from 127\.0\.0\.1$", instance_log(p), re.M)
                                    for _, _, p in instances), 30),
       "fleet example: haproxy's health checks (a LOCAL header, then nothing) are logged as checks")
hp.terminate()
hp.wait(suite.patience(10))
for name, proc, path in instances:
    proc.terminate()
    proc.wait(suite.patience(10))
    ok(not re.search(r"sslserver: (warning|error|fatal)", instance_log(path).replace(suite.ROOT_ENGINE_WARNING, "")),
       "%s: nothing wrong logged" % name, instance_log(path)[-600:])
