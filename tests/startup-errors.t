#!/usr/bin/python3
# Start-up misconfiguration: one line on stderr ("sslserver: ..."), naming
# the file or value at fault, the documented exit code (111 temporary /
# configuration, 100 usage), and no listening server (with -1, no port is
# ever printed, and the process has exited). An encrypted key never prompts.
import os
import fcntl
import re
import select
import socket
import ssl
import subprocess
import sys
import termios

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike, diag  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
leaf = pki.leaf("server", ca)
other = pki.leaf("other", ca)
d = pki.dir


def path(name):
    return os.path.join(d, name)


garbage = path("garbage.pem")
with open(garbage, "w") as f:
    f.write("this is not a certificate\n")
enckey = path("server-enc.key")
subprocess.run(["openssl", "pkey", "-in", leaf["key"], "-aes256", "-passout", "pass:s3cret phrase", "-out", enckey],
               check=True, capture_output=True)
GOOD = {"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"]}


def check(name, opts=(), env=None, code=111, names=(), extra=None, host="127.0.0.1", port="0", app=("true",),
          pass_fds=()):
    """Runs sslserver -1 expecting a start-up failure."""
    rc, out, err = suite.run_server_once(["-1"] + list(opts), env=env, host=host, port=port, app=app,
                                         pass_fds=pass_fds, timeout=10)
    if not ok(rc is not None, "%s: sslserver exits at start-up (no hang, no prompt, no listening server)" % name,
              "stdout: %r stderr: %r" % (out, err)):
        return err
    is_(rc, code, "%s: exit code %d" % (name, code))
    is_(out, "", "%s: no port printed: nothing listens" % name)
    lines = err.splitlines()
    ok(len(lines) == 1 and err.endswith("\n"), "%s: exactly one line on stderr" % name, repr(err))
    like(err, r"\Asslserver: ", "%s: the line starts with 'sslserver: '" % name)
    for n in names:
        ok(n in err, "%s: the line names %r" % (name, n), repr(err))
    if extra:
        like(err, extra, "%s: the line says %r" % (name, extra))
    return err


# ---------------------------------------------------------------- certificate and key
check("no CERTFILE", env={}, names=("CERTFILE",))
check("CERTFILE empty", env={"CERTFILE": ""}, names=("CERTFILE",))
check("missing certificate file", env={"CERTFILE": path("nope.pem"), "KEYFILE": leaf["key"]}, names=(path("nope.pem"),))
check("missing key file", env={"CERTFILE": leaf["pem"], "KEYFILE": path("nope.key")}, names=(path("nope.key"),))
check("key that does not match the certificate", env={"CERTFILE": leaf["pem"], "KEYFILE": other["key"]},
      names=(other["key"],), extra=r"does not match")
check("garbage certificate file", env={"CERTFILE": garbage, "KEYFILE": leaf["key"]}, names=(garbage,))
check("garbage key file", env={"CERTFILE": leaf["pem"], "KEYFILE": garbage}, names=(garbage,))
check("certificate file is a directory", env={"CERTFILE": d, "KEYFILE": leaf["key"]}, names=(d,))
check("missing CERTCHAINFILE", env=dict(GOOD, CERTCHAINFILE=path("nochain.pem")), names=(path("nochain.pem"),))

# ---------------------------------------------------------------- TLS parameters
check("bad CIPHERS", env=dict(GOOD, CIPHERS="NO-SUCH-CIPHER"), names=("NO-SUCH-CIPHER",))
check("bad CIPHERSUITES", env=dict(GOOD, CIPHERSUITES="TLS_NO_SUCH_SUITE"), names=("TLS_NO_SUCH_SUITE",))
check("bad TLSMINVERSION", env=dict(GOOD, TLSMINVERSION="TLSv9"), names=("TLSMINVERSION", "TLSv9"))
check("bad TLSMAXVERSION", env=dict(GOOD, TLSMAXVERSION="TLSv1.7"), names=("TLSMAXVERSION", "TLSv1.7"))
check("TLSMAXVERSION below TLSMINVERSION", env=dict(GOOD, TLSMINVERSION="TLSv1.3", TLSMAXVERSION="TLSv1.2"),
      names=("TLSMAXVERSION", "TLSMINVERSION"))
check("SSLv3 as TLSMINVERSION", env=dict(GOOD, TLSMINVERSION="SSLv3"), names=("TLSMINVERSION", "SSLv3"))
check("bad GROUPS", env=dict(GOOD, GROUPS="X99999"), names=("X99999",))
check("missing DHFILE", env=dict(GOOD, DHFILE=path("nodh.pem")), names=(path("nodh.pem"),))
check("garbage DHFILE", env=dict(GOOD, DHFILE=garbage), names=(garbage,))

# ---------------------------------------------------------------- engine identity
# DESIGN 4: "A configuration error is reported at start-up". The exit codes
# are the ones the code itself gives these faults (privs_envid: 100; chroot: 111).
check("SSL_UID not a number", env=dict(GOOD, SSL_UID="qmaild"), code=100, names=("SSL_UID", "qmaild"))
check("TLS_GID not a number", env=dict(GOOD, TLS_GID="nofiles"), code=100, names=("TLS_GID", "nofiles"))
check("SSL_CHROOT does not exist", env=dict(GOOD, SSL_CHROOT=path("no-such-jail")), names=(path("no-such-jail"),))

# ---------------------------------------------------------------- encrypted key and -3
check("encrypted key without -3", env={"CERTFILE": leaf["crt"], "KEYFILE": enckey}, names=(enckey,))
# With a controlling terminal, a server that fell back to OpenSSL's own
# prompt would write to /dev/tty and wait: it must fail at once instead.
master, slave = os.openpty()


def ctty():
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


try:
    r = subprocess.run([suite.prog("sslserver"), "-1", "127.0.0.1", "0", "true"], stdin=slave, capture_output=True,
                       env={"PATH": os.environ.get("PATH", "/bin"), "CERTFILE": leaf["crt"], "KEYFILE": enckey},
                       preexec_fn=ctty, timeout=suite.patience(5))
    rc, err = r.returncode, r.stderr.decode()
except subprocess.TimeoutExpired:
    rc, err = None, "timed out: waiting for a passphrase?"
os.close(slave)
prompt = b""
while select.select([master], [], [], 0)[0]:
    try:
        c = os.read(master, 4096)
    except OSError:
        break
    if not c:
        break
    prompt += c
os.close(master)
is_(rc, 111, "encrypted key without -3, on a terminal: exit 111 without waiting for input")
is_(prompt, b"", "encrypted key without -3, on a terminal: no passphrase prompt written")
like(err, r"\Asslserver: [^\n]*%s[^\n]*\n\Z" % re.escape(enckey), "encrypted key without -3, on a terminal: one line naming the key")

with suite.fd3(b"wrong phrase\n") as fd:
    check("encrypted key, -3, wrong passphrase", opts=["-3"], env={"CERTFILE": leaf["crt"], "KEYFILE": enckey},
          names=(enckey,), pass_fds=(fd,))
check("-3 with descriptor 3 closed", opts=["-3"], env={"CERTFILE": leaf["crt"], "KEYFILE": enckey}, extra=r"3")
with suite.fd3(b"s3cret phrase\n") as fd:
    srv = suite.Server(["-3"], env={"CERTFILE": leaf["crt"], "KEYFILE": enckey}, pass_fds=(fd,))
ok(srv.port, "encrypted key, -3, right passphrase on fd 3: server starts")
if srv.port:
    with suite.tls_connect(srv.port, suite.client_context(ca["crt"])) as s:
        rep = suite.report_of(s)
        ok(rep is not None, "encrypted key, -3: a TLS session works")
        ok(rep is not None and 3 not in rep["fds"], "encrypted key, -3: descriptor 3 not passed to the program")
        s.sendall(b"quit\n")
        suite.read_all(s)
srv.stop()
with suite.fd3(b"s3cret phrase") as fd:  # no newline: EOF ends it
    srv = suite.Server(["-3"], env={"CERTFILE": leaf["crt"], "KEYFILE": enckey}, pass_fds=(fd,))
ok(srv.port, "-3: a passphrase ended by EOF, not newline, works too")
srv.stop()

# ---------------------------------------------------------------- errors that name the fix
# Each bad certificate or key set-up gets one line naming the file and what
# to do about it (not OpenSSL's "interrupted or cancelled", "unsupported" or
# a path-less "No such file or directory"), the same for sslserver, SNI
# pairs, a rule's pair, sslhandoff and sslclient -c/-k; and the same files
# with that fix applied start.
cafirst = path("ca-first.pem")
with open(cafirst, "w") as f:
    f.write(open(ca["crt"]).read() + open(leaf["crt"]).read())
leaffirst = path("leaf-first.pem")
with open(leaffirst, "w") as f:
    f.write(open(leaf["crt"]).read() + open(ca["crt"]).read())
empty = path("empty.pem")
open(empty, "w").close()
derkey = path("server.der")
subprocess.run(["openssl", "pkey", "-in", leaf["key"], "-outform", "DER", "-out", derkey], check=True, capture_output=True)
missing = path("missing.pem")
PASS = b"s3cret phrase\n"


def fatal(prog, text):
    return r"\A%s: fatal: \(111\) %s\n\Z" % (prog, re.escape(text))


def starts(name, env, opts=(), password=None):
    """sslserver -1 with env (and -3 given password) starts and listens."""
    if password is None:
        rc, out, err = suite.run_server_once(["-1"] + list(opts), env=env)
    else:
        with suite.fd3(password) as fd:
            rc, out, err = suite.run_server_once(["-1", "-3"] + list(opts), env=env, pass_fds=(fd,))
    ok(rc is None and out.endswith("\n"), "%s, fixed: sslserver starts and listens" % name, err)


FIXES = [
    ("encrypted key without -3", {"CERTFILE": leaf["crt"], "KEYFILE": enckey}, None,
     "unable to load key %s: it is encrypted: give its passphrase on fd 3 with -3" % enckey,
     ({"CERTFILE": leaf["crt"], "KEYFILE": enckey}, PASS)),
    ("encrypted key, wrong passphrase", {"CERTFILE": leaf["crt"], "KEYFILE": enckey}, b"wrong phrase\n",
     "unable to load key %s: wrong passphrase" % enckey,
     ({"CERTFILE": leaf["crt"], "KEYFILE": enckey}, PASS)),
    ("KEYFILE is the certificate", {"CERTFILE": leaf["crt"], "KEYFILE": leaf["crt"]}, None,
     "unable to load key %s: it holds a certificate, not a private key: set KEYFILE to the key's file" % leaf["crt"],
     ({"CERTFILE": leaf["crt"], "KEYFILE": leaf["key"]}, None)),
    ("no KEYFILE, CERTFILE without the key", {"CERTFILE": leaf["crt"]}, None,
     "unable to load key %s: it holds a certificate, not a private key: set KEYFILE to the key's file" % leaf["crt"],
     ({"CERTFILE": leaf["bundle"]}, None)),
    ("chain with the CA first", {"CERTFILE": cafirst, "KEYFILE": leaf["key"]}, None,
     "unable to load key %s: it matches certificate 2 of %s, not the first: put the server's own certificate first, "
     "then its CA chain" % (leaf["key"], cafirst),
     ({"CERTFILE": leaffirst, "KEYFILE": leaf["key"]}, None)),
    ("KEYFILE is the CA's key", {"CERTFILE": leaffirst, "KEYFILE": ca["key"]}, None,
     "unable to load key %s: it is the key of certificate 2 of %s, a CA's, not of the first: set KEYFILE to the "
     "server's own key" % (ca["key"], leaffirst),
     ({"CERTFILE": leaffirst, "KEYFILE": leaf["key"]}, None)),
    ("key of another certificate", {"CERTFILE": leaffirst, "KEYFILE": other["key"]}, None,
     "unable to load key %s: it does not match the certificate in %s" % (other["key"], leaffirst),
     ({"CERTFILE": leaffirst, "KEYFILE": leaf["key"]}, None)),
    ("missing key file", {"CERTFILE": leaf["crt"], "KEYFILE": missing}, None,
     "unable to read key %s: No such file or directory" % missing,
     ({"CERTFILE": leaf["crt"], "KEYFILE": leaf["key"]}, None)),
    ("missing certificate file", {"CERTFILE": missing, "KEYFILE": leaf["key"]}, None,
     "unable to read certificate %s: No such file or directory" % missing,
     ({"CERTFILE": leaf["crt"], "KEYFILE": leaf["key"]}, None)),
    ("missing CERTCHAINFILE", dict(GOOD, CERTCHAINFILE=missing), None,
     "unable to read certificate %s: No such file or directory" % missing,
     (dict(GOOD, CERTCHAINFILE=leaffirst), None)),
    ("certificate file is a directory", {"CERTFILE": d, "KEYFILE": leaf["key"]}, None,
     "unable to read certificate %s: Is a directory" % d,
     ({"CERTFILE": leaf["crt"], "KEYFILE": leaf["key"]}, None)),
    ("empty key file", {"CERTFILE": leaf["crt"], "KEYFILE": empty}, None,
     "unable to load key %s: the file is empty" % empty,
     ({"CERTFILE": leaf["crt"], "KEYFILE": leaf["key"]}, None)),
    ("empty certificate file", {"CERTFILE": empty, "KEYFILE": leaf["key"]}, None,
     "unable to load certificate %s: the file is empty" % empty,
     ({"CERTFILE": leaf["crt"], "KEYFILE": leaf["key"]}, None)),
    ("key file not PEM (DER)", {"CERTFILE": leaf["crt"], "KEYFILE": derkey}, None,
     "unable to load key %s: it holds no PEM private key (-----BEGIN PRIVATE KEY-----)" % derkey,
     ({"CERTFILE": leaf["crt"], "KEYFILE": leaf["key"]}, None)),
    ("certificate file not PEM", {"CERTFILE": garbage, "KEYFILE": leaf["key"]}, None,
     "unable to load certificate %s: it holds no PEM certificate (-----BEGIN CERTIFICATE-----)" % garbage,
     ({"CERTFILE": leaf["crt"], "KEYFILE": leaf["key"]}, None)),
    ("CERTFILE is the key", {"CERTFILE": leaf["key"], "KEYFILE": leaf["key"]}, None,
     "unable to load certificate %s: it holds a private key but no certificate: CERTFILE names the certificate "
     "chain, KEYFILE the key" % leaf["key"],
     ({"CERTFILE": leaf["crt"], "KEYFILE": leaf["key"]}, None)),
    # SNI pairs: the same checks, the same words
    ("SNI: KEYFILE:name encrypted, no -3", dict(GOOD, **{"CERTFILE:mail.example": leaf["crt"],
                                                         "KEYFILE:mail.example": enckey}), None,
     "unable to load key %s: it is encrypted: give its passphrase on fd 3 with -3" % enckey,
     (dict(GOOD, **{"CERTFILE:mail.example": leaf["crt"], "KEYFILE:mail.example": enckey}), PASS)),
    ("SNI: CERTFILE:name with the CA first", dict(GOOD, **{"CERTFILE:mail.example": cafirst,
                                                            "KEYFILE:mail.example": leaf["key"]}), None,
     "unable to load key %s: it matches certificate 2 of %s, not the first: put the server's own certificate first, "
     "then its CA chain" % (leaf["key"], cafirst),
     (dict(GOOD, **{"CERTFILE:mail.example": leaffirst, "KEYFILE:mail.example": leaf["key"]}), None)),
    ("SNI: CERTFILE:name without its key", dict(GOOD, **{"CERTFILE:mail.example": other["crt"]}), None,
     "unable to load key %s: it holds a certificate, not a private key: set KEYFILE to the key's file" % other["crt"],
     (dict(GOOD, **{"CERTFILE:mail.example": other["crt"], "KEYFILE:mail.example": other["key"]}), None)),
    ("SNI: KEYFILE:name missing", dict(GOOD, **{"CERTFILE:mail.example": other["crt"],
                                               "KEYFILE:mail.example": missing}), None,
     "unable to read key %s: No such file or directory" % missing,
     (dict(GOOD, **{"CERTFILE:mail.example": other["crt"], "KEYFILE:mail.example": other["key"]}), None)),
]
for name, env, password, text, (fixed, fixedpw) in FIXES:
    if password is None:
        err = check(name, env=env)
    else:
        with suite.fd3(password) as fd:
            err = check(name, opts=["-3"], env=env, pass_fds=(fd,))
    like(err, fatal("sslserver", text), "%s: the line names the file and the fix" % name)
    starts(name, fixed, password=fixedpw)

# A rule's pair: built per connection, so its error is that connection's
# log line (and exit 111), and the server goes on serving others.
RULECASES = [
    ("rule: KEYFILE encrypted, no -3", {"KEYFILE": enckey, "CERTFILE": leaf["crt"]},
     "unable to load key %s: it is encrypted: give its passphrase on fd 3 with -3" % enckey),
    ("rule: KEYFILE is the certificate", {"KEYFILE": other["crt"], "CERTFILE": other["crt"]},
     "unable to load key %s: it holds a certificate, not a private key: set KEYFILE to the key's file" % other["crt"]),
    ("rule: CERTFILE with the CA first", {"KEYFILE": leaf["key"], "CERTFILE": cafirst},
     "unable to load key %s: it matches certificate 2 of %s, not the first: put the server's own certificate first, "
     "then its CA chain" % (leaf["key"], cafirst)),
    ("rule: KEYFILE missing", {"KEYFILE": missing, "CERTFILE": other["crt"]},
     "unable to read key %s: No such file or directory" % missing),
]


def rules_cdb(name, text):
    cdb = path(name + ".cdb")
    r = subprocess.run([suite.prog("sslrules"), cdb, cdb + ".tmp"], input=text.encode(), capture_output=True,
                       timeout=suite.patience(10))
    ok(r.returncode == 0, "%s: rules compiled" % name, r.stderr)
    return cdb


for i, (name, rule, text) in enumerate(RULECASES):
    cdb = rules_cdb("rule%d" % i, "127.0.0.1:allow,%s\n:allow\n" % ",".join('%s="%s"' % kv for kv in rule.items()))
    srv = suite.Server(["-x", cdb], env=GOOD)
    ok(srv.port, "%s: the server starts (the rule's pair is read per connection)" % name)
    if not srv.port:
        continue
    try:
        with suite.tls_connect(srv.port, suite.client_context(ca["crt"])) as s:
            suite.read_all(s)
        refused = False
    except (ssl.SSLError, OSError):
        refused = True
    ok(refused, "%s: the connection gets no TLS" % name)
    m = srv.wait_log(r"^sslserver: fatal: \(111\) unable to apply the TLS settings of rule 127\.0\.0\.1: (.*)$")
    is_(m.group(1) if m else srv.log(), text, "%s: the connection's line names the file and the fix" % name)
    with suite.tls_connect(srv.port, suite.client_context(ca["crt"]), source=("127.0.0.2", 0)) as s:
        rep = suite.report_of(s)
        ok(rep is not None, "%s: another client is still served" % name)
    srv.stop()

# sslhandoff builds its context from its environment, per connection
HANDOFFCASES = ("encrypted key without -3", "encrypted key, wrong passphrase", "KEYFILE is the certificate",
                "chain with the CA first", "missing key file")
for name, env, password, text, (fixed, fixedpw) in (f for f in FIXES if f[0] in HANDOFFCASES):
    e = dict(env, PATH=os.environ.get("PATH", "/usr/bin:/bin"))
    args = [suite.prog("sslhandoff")] + (["-3"] if password else []) + ["-n", "true"]
    with suite.fd3(password or b"") as fd:
        r = subprocess.run(args, env=e, stdin=subprocess.DEVNULL, capture_output=True, timeout=suite.patience(10),
                           pass_fds=(fd,) if password else ())
    is_(r.returncode, 111, "sslhandoff, %s: exit 111" % name)
    like(r.stderr.decode(), fatal("sslhandoff", text), "sslhandoff, %s: one line naming the file and the fix" % name)
    e = dict(fixed, PATH=os.environ.get("PATH", "/usr/bin:/bin"))
    args = [suite.prog("sslhandoff")] + (["-3"] if fixedpw else []) + ["-n", "true"]
    with suite.fd3(fixedpw or b"") as fd:
        r = subprocess.run(args, env=e, stdin=subprocess.DEVNULL, capture_output=True, timeout=suite.patience(10),
                           pass_fds=(fd,) if fixedpw else ())
    quiet = [l for l in r.stderr.decode().splitlines() if l != "sslhandoff: " + suite.ROOT_ENGINE_WARNING]
    is_((r.returncode, quiet), (0, []), "sslhandoff, %s, fixed: the context is built, the program runs" % name)

# sslclient -c/-k: the client's certificate, the same checks; -K is its
# other way to give a passphrase
ipleaf = pki.leaf("server-ip", ca, ips=("127.0.0.1",))
srv = suite.Server([], env={"CERTFILE": ipleaf["pem"], "KEYFILE": ipleaf["key"]}, app=["true"])
ok(srv.port, "a server for sslclient")
CLIENTCASES = [
    ("encrypted key without -3 or -K", ["-c", leaf["crt"], "-k", enckey],
     "unable to load key %s: it is encrypted: give its passphrase on fd 3 with -3, or in a file with -K" % enckey,
     ["-c", leaf["crt"], "-k", enckey, "-K", path("pass")]),
    ("wrong passphrase", ["-c", leaf["crt"], "-k", enckey, "-K", path("badpass")],
     "unable to load key %s: wrong passphrase" % enckey,
     ["-c", leaf["crt"], "-k", enckey, "-K", path("pass")]),
    ("-c without -k, the certificate alone", ["-c", leaf["crt"]],
     "unable to load key %s: it holds a certificate, not a private key: give the key's file with -k" % leaf["crt"],
     ["-c", leaf["crt"], "-k", leaf["key"]]),
    ("-c with the CA first", ["-c", cafirst, "-k", leaf["key"]],
     "unable to load key %s: it matches certificate 2 of %s, not the first: put the client's own certificate first, "
     "then its CA chain" % (leaf["key"], cafirst),
     ["-c", leaffirst, "-k", leaf["key"]]),
    ("-k missing", ["-c", leaf["crt"], "-k", missing],
     "unable to read key %s: No such file or directory" % missing,
     ["-c", leaf["crt"], "-k", leaf["key"]]),
]
with open(path("pass"), "wb") as f:
    f.write(PASS)
with open(path("badpass"), "wb") as f:
    f.write(b"wrong phrase\n")
for name, opts, text, fixed in CLIENTCASES:
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    r = subprocess.run([suite.prog("sslclient"), "-a", ca["crt"]] + opts + ["127.0.0.1", str(srv.port or 1), "true"], env=e,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=suite.patience(10))
    is_(r.returncode, 111, "sslclient, %s: exit 111" % name)
    like(r.stderr.decode(), fatal("sslclient", text), "sslclient, %s: one line naming the file and the fix" % name)
    r = subprocess.run([suite.prog("sslclient"), "-a", ca["crt"]] + fixed + ["127.0.0.1", str(srv.port or 1), "true"], env=e,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=suite.patience(10))
    is_(r.returncode, 0, "sslclient, %s, fixed: connects and runs the program" % name)
srv.stop()

# ---------------------------------------------------------------- usage
check("unknown option", opts=["-j"], env=GOOD, code=100, extra=r"usage: ")
check("missing prog", env=GOOD, app=(), code=100, extra=r"usage: ")
check("-c 0", opts=["-c", "0"], env=GOOD, code=100, names=("-c", "0"))
check("-c abc", opts=["-c", "abc"], env=GOOD, code=100, names=("-c", "abc"))
check("-b -5", opts=["-b", "-5"], env=GOOD, code=100, names=("-b", "-5"))
# Bounds, so that a typo cannot make the server allocate or ask for absurd
# amounts (-c 1000000 used to kill it with SIGSEGV on a stack array).
check("-c 1000000", opts=["-c", "1000000"], env=GOOD, code=100, names=("-c", "1000000"), extra=r"\(from 1 to 100000\)$")
check("-b 70000", opts=["-b", "70000"], env=GOOD, code=100, names=("-b", "70000"), extra=r"\(from 1 to 65535\)$")
check("-c 99999999999999999999 (overflows)", opts=["-c", "99999999999999999999"], env=GOOD, code=100,
      names=("99999999999999999999",))
check("-T 1x", opts=["-T", "1x"], env=GOOD, code=100, names=("-T", "1x"))
check("-w 2147484 (over 24.8 days: poll's milliseconds overflow)", opts=["-w", "2147484"], env=GOOD, code=100,
      names=("-w", "2147484"), extra=r"\(from 0 to 2147483\)$")
rc, out, err = suite.run_server_once(["-1", "-w", "2147483", "-T", "2147483", "-t", "2147483"], env=GOOD)
ok(rc is None and out.endswith("\n"), "-w/-T/-t 2147483, the highest: sslserver starts and listens", err)
check("MAXCONIP=+3 (digits only)", env=dict(GOOD, MAXCONIP="+3"), code=100, names=("MAXCONIP", "+3"))
rc, out, err = suite.run_server_once(["-1", "-c", "100000"], env=GOOD)
ok(rc is None and out.endswith("\n"), "-c 100000, the highest: sslserver starts and listens", err)

# ---------------------------------------------------------------- users that cannot be switched to
# Only root can change its user or groups: a server started as anyone else
# with -u/-g or SSL_UID/SSL_GID must stop at start-up (as tcpserver does),
# not start and then reset every connection. (Run as nobody, with setpriv.)
if os.geteuid() == 0:
    NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    # a key nobody can read, so that nothing else stops the server
    pub = suite.tmpdir()
    PUBLIC = {"CERTFILE": os.path.join(pub, "server.pem"), "KEYFILE": os.path.join(pub, "server.key")}
    for src, dst in ((leaf["pem"], PUBLIC["CERTFILE"]), (leaf["key"], PUBLIC["KEYFILE"])):
        with open(src, "rb") as f, open(dst, "wb") as g:
            g.write(f.read())
        os.chmod(dst, 0o644)
    ctl = suite.PortCommand(NOBODY + [suite.prog("sslserver"), "-1", "127.0.0.1", "0", "true"],
                            env=dict(PUBLIC, PATH=os.environ.get("PATH", "/usr/bin:/bin")))
    ok(ctl.port, "not root, without -u/-g: sslserver starts and listens (the key is readable)", ctl.log())
    unlike(ctl.log(), r"warning", "not root, without -u/-g: no warning about an engine left as root")
    ctl.stop()
    for what, opts, env, who in ((["-u 7791"], ["-u", "7791"], {}, "the program"),
                                 (["-g 7792"], ["-g", "7792"], {}, "the program"),
                                 (["SSL_UID=7793"], [], {"SSL_UID": "7793"}, "the TLS engine")):
        e = dict(PUBLIC, PATH=os.environ.get("PATH", "/usr/bin:/bin"), **env)
        p = subprocess.Popen(NOBODY + [suite.prog("sslserver"), "-1"] + opts + ["127.0.0.1", "0", "true"], env=e,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=suite.patience(10))
            rc = p.returncode
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            rc = None
        is_((rc, out), (111, b""), "not root, %s: exit 111 at start-up, nothing listens" % what[0])
        like(err.decode(), r"\Asslserver: fatal: \(111\) unable to run %s as uid \d+ gid \d+: only root can change its user "
             r"or groups[^\n]*\n\Z" % who, "not root, %s: one line says why and what to do" % what[0])
    r = subprocess.run(NOBODY + [suite.prog("sslhandoff"), "-u", "7791", "true"], stdin=subprocess.DEVNULL,
                       capture_output=True, env=dict(PUBLIC, PATH=os.environ.get("PATH", "/usr/bin:/bin")),
                       timeout=suite.patience(10))
    like(r.stderr.decode(), r"\Asslhandoff: fatal: \(111\) unable to run the program as uid 7791 gid 0: only root",
         "sslhandoff not root with -u 7791: one line, before any TLS")
    is_(r.returncode, 111, "sslhandoff not root with -u 7791: exit 111")

# ---------------------------------------------------------------- address and port
check("unknown port name", env=GOOD, port="no-such-service", names=("no-such-service",))
check("port out of range", env=GOOD, port="70000", names=("70000",))
check("unresolvable host", env=GOOD, host="no-such-host.invalid", names=("no-such-host.invalid",))
busy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
busy.bind(("127.0.0.1", 0))
busy.listen(1)
bport = str(busy.getsockname()[1])
err = check("port already in use", env=GOOD, port=bport, names=(bport,))
like(err, r"[Aa]ddress already in use", "port already in use: the reason is given")
busy.close()
