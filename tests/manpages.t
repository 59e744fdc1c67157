#!/usr/bin/python3
# The man pages tell the truth: every option a SYNOPSIS lists is the one
# the program's usage line lists, is described under OPTIONS, and is
# accepted by the program; no source line is over 80 columns; the
# defaults the pages state are the ones the code uses (read back from
# sslserver -V, the listening socket's backlog, and the cipher lists a
# client can negotiate).
import os
import re
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, diag  # noqa: E402
import suite  # noqa: E402

MAN = os.path.join(suite.TOP, "man")


def render(prog):
    env = dict(os.environ, MANWIDTH="1000")
    r = subprocess.run(["man", "-l", os.path.join(MAN, prog + ".1")], capture_output=True, env=env, timeout=suite.patience(30))
    return r.stdout.decode("utf-8", "replace")


def section(text, name):
    m = re.search(r"^%s\n(.*?)(?=^[A-Z][A-Z ]+\n)" % re.escape(name), text, re.S | re.M)
    return m.group(1) if m else ""


def letters(synopsis):
    """Option letters in a usage text: the [ -abc ] flag group and the
    [ -x arg ] options, as (flags, with_argument)."""
    flags = set()
    for group in re.findall(r"\[\s*-([A-Za-z0-9]+)\s*\]", synopsis):
        flags |= set(group)
    args = set(re.findall(r"\[\s*-([A-Za-z0-9])\s+[^\]\s]+\s*\]", synopsis))
    return flags, args


def usage_of(prog):
    r = subprocess.run([suite.prog(prog), "-%"], capture_output=True, timeout=suite.patience(10))
    return r.returncode, r.stderr.decode()


pki = suite.Pki()
ca = pki.ca("ca")
leaf = pki.leaf("server", ca)
client = pki.leaf("client", ca, client=True)
passfile = os.path.join(pki.dir, "pass")
with open(passfile, "w") as f:
    f.write("secret\n")
pin = "sha256:" + "00" * 32

# Arguments that pass each option's own validation.
ARGS = {
    "sslserver": {"c": "5", "x": "/nonexistent.cdb", "B": "hi", "g": "0", "u": "0", "b": "5", "l": "name",
                  "t": "5", "T": "5", "w": "5"},
    "sslhandoff": {"x": "/nonexistent.cdb", "B": "hi", "g": "0", "u": "0", "T": "5", "w": "5"},
    "sslclient": {"i": "127.0.0.1", "p": "0", "T": "1+1", "l": "name", "t": "1", "a": ca["crt"], "A": pki.dir,
                  "c": client["crt"], "k": client["key"], "K": passfile, "V": "3", "z": "ECDHE-ECDSA-AES128-GCM-SHA256",
                  "F": pin, "w": "5"},
}


def accepted(prog, opt):
    """Runs prog with opt and otherwise incomplete or failing operands:
    an unknown option stops at the usage line (exit 100), a known one gets
    past option parsing to the next error."""
    env = {"PATH": os.environ["PATH"], "UID": "0", "GID": "0"}
    cmd = [suite.prog(prog), "-" + opt] + ([ARGS[prog][opt]] if opt in ARGS[prog] else [])
    if prog == "sslserver":
        cmd += ["127.0.0.1", "0", "true"]          # no CERTFILE: exit 111
    elif prog == "sslhandoff":
        cmd += ["true"]                            # no CERTFILE: exit 111 (or 110 for -x)
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd += ["127.0.0.1", str(port), "true"]   # nothing listens: exit 110
    r = subprocess.run(cmd, capture_output=True, timeout=suite.patience(20), env=env, stdin=subprocess.DEVNULL,
                       input=None, pass_fds=())
    err = r.stderr.decode()
    return r.returncode != 100 and "usage:" not in err, "%s -> %d %s" % (" ".join(cmd), r.returncode, err.strip())


for prog in ("sslserver", "sslhandoff", "sslclient"):
    text = render(prog)
    ok(text, "%s.1 renders" % prog)
    syn = section(text, "SYNOPSIS")
    opts = section(text, "OPTIONS")
    code, usage = usage_of(prog)
    is_(code, 100, "%s: an unknown option exits 100" % prog)
    mflags, margs = letters(syn)
    uflags, uargs = letters(usage)
    ok(mflags and margs, "%s.1: SYNOPSIS lists options" % prog, syn)
    is_(sorted(mflags), sorted(uflags), "%s: SYNOPSIS flags are the program's" % prog)
    is_(sorted(margs), sorted(uargs), "%s: SYNOPSIS options with arguments are the program's" % prog)
    for opt in sorted(mflags | margs):
        ok(re.search(r"^\s+-%s\b" % re.escape(opt), opts, re.M), "%s.1: -%s is described under OPTIONS" % (prog, opt))
        if opt == "3":
            continue   # needs a passphrase on fd 3; covered by tests/startup-errors.t
        good, detail = accepted(prog, opt)
        ok(good, "%s accepts -%s" % (prog, opt), detail)

# Source lines of at most 80 columns: pages are read and patched in
# terminals and mail (a long literal line is split with a backslash at its
# end, which roff joins again).
for path in sorted(os.listdir(MAN)):
    if not path.endswith(".1"):
        continue
    with open(os.path.join(MAN, path), encoding="utf-8") as f:
        long_lines = ["%d: %d columns" % (n, len(l.rstrip("\n"))) for n, l in enumerate(f, 1) if len(l.rstrip("\n")) > 80]
    is_(long_lines, [], "man/%s: no source line over 80 columns" % path)

# sslrules: both forms of its SYNOPSIS.
text = render("sslrules")
syn = section(text, "SYNOPSIS")
like(syn, r"sslrules rules\.cdb rules\.tmp", "sslrules.1: SYNOPSIS has the compile form")
like(syn, r"sslrules -c rules\.cdb ip", "sslrules.1: SYNOPSIS has the query form")

# ---------------------------------------------------------------- defaults
text = render("sslserver")
opts = section(text, "OPTIONS")


def stated_default(letter):
    m = re.search(r"^\s+-%s\s.*?\(default (\d+)" % letter, opts, re.M | re.S)
    return m.group(1) if m else None


srv = suite.Server(["-V"], env={"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"]})
ok(srv.port, "sslserver -V started")
ok(srv.wait_log(r"config: rules"), "-V printed its configuration")
log = srv.log()
for letter, line in (("c", "limit"), ("b", "backlog"), ("t", "lookup timeout"), ("T", "handshake timeout"),
                     ("w", "idle timeout")):
    d = stated_default(letter)
    ok(d is not None, "sslserver.1 states a default for -%s" % letter)
    like(log, r"config: %s %s\b" % (line, d), "sslserver -%s default %s is the code's" % (letter, d))
d = stated_default("b")
ss = subprocess.run(["ss", "-ltnH", "sport = :%d" % srv.port], capture_output=True, timeout=suite.patience(10)).stdout.decode()
fields = ss.split()
is_(fields[2] if len(fields) > 2 else None, d, "the listening socket's backlog (ss Send-Q) is the stated -b default")
ok(srv.wait_log(r"status: 0/%s$" % stated_default("c")), "the status line shows the stated -c default")

# The TLS defaults the page states are the ones a client gets.
env_read = section(text, "ENVIRONMENT READ") + section(text, "TLS DEFAULTS")
flat = re.sub(r"\s*:\s*", ":", re.sub(r"\s+", " ", env_read))   # lists broken over lines
m = re.search(r"((?:ECDHE-[A-Z0-9-]+:){5}ECDHE-[A-Z0-9-]+)", flat)
ok(m, "sslserver.1 states the default TLS 1.2 cipher list")
if m:
    like(log, r"config: CIPHERS=%s$" % re.escape(m.group(1)), "the stated TLS 1.2 cipher list is the code's")
m = re.search(r"((?:TLS_[A-Z0-9_]+:){2}TLS_[A-Z0-9_]+)", flat)
ok(m, "sslserver.1 states the default TLS 1.3 suites")
if m:
    like(log, r"config: CIPHERSUITES=%s$" % re.escape(m.group(1)), "the stated TLS 1.3 suites are the code's")
    # and a client offering only a suite outside the list is refused
    ctx = suite.client_context(ca["crt"], "1.3")
    try:
        ctx.set_ciphersuites("TLS_AES_128_CCM_SHA256")   # Python >= 3.13 only
        offered = True
    except AttributeError:
        offered = False
    if offered:
        try:
            with suite.tls_connect(srv.port, ctx):
                refused = False
        except (ssl.SSLError, OSError):
            refused = True
        ok(refused, "a suite outside the default list is refused")
like(flat, r"X25519:P-256:P-384", "sslserver.1 states the default groups")
like(log, r"config: GROUPS=X25519:P-256:P-384$", "the stated groups are the code's")
like(flat, r"TLS ?1\.2", "sslserver.1 states TLS 1.2 as the minimum")
like(log, r"config: TLSMINVERSION=TLSv1\.2$", "the code's minimum is TLS 1.2")
# Each TLS 1.2 cipher of the stated list that fits the ECDSA certificate is negotiable.
for cipher in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"):
    ctx = suite.client_context(ca["crt"], "1.2")
    ctx.set_ciphers(cipher)
    with suite.tls_connect(srv.port, ctx) as s:
        is_(s.cipher()[0], cipher, "TLS 1.2 default list includes %s" % cipher)
ctx = suite.client_context(ca["crt"], "1.2")
ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA")
try:
    with suite.tls_connect(srv.port, ctx):
        cbc = True
except (ssl.SSLError, OSError):
    cbc = False
ok(not cbc, "a CBC cipher outside the stated list is refused")
srv.stop()
