#!/usr/bin/python3
# Check mode for renewal day (sslserver -C, sslhandoff -C): with the run
# script's own options and environment it loads what the server would and
# says, per certificate, whether the key matches, the chain is in order and
# complete, the names are covered, how long it has left and whether the
# TLSA records still match: exit 0 with one "check: ... ok:" line per
# certificate on stdout, 111 with one "fatal: (111) check:" line per
# problem on stderr. It binds nothing and starts nothing (strace shows no
# fork and no socket). SIGHUP runs the same checks and logs each problem,
# keeping the old context when the new material does not load.
# examples/renewal/deploy-hook, run as written (certbot's variables, a
# fake svc), reloads only what passed the check.
import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
inter = pki.ca("inter", issuer=ca)
# leaf + intermediate: a complete chain against CAFILE=ca
good = pki.leaf("mx", inter, dns=("mx.example.org", "smtp.example.org"), chain=[inter])
other = pki.leaf("other", ca, dns=("other.example.org",))
wild = pki.leaf("wild", ca, dns=("*.example.net",))
d = pki.dir
PATH = os.environ.get("PATH", "/usr/bin:/bin")
PROBLEM = re.compile(r"^(sslserver|sslhandoff): fatal: \(111\) check: ")


def path(name):
    return os.path.join(d, name)


def cat(name, *files):
    with open(path(name), "w") as out:
        for f in files:
            out.write(open(f).read())
    return path(name)


def when(days):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    return t.strftime("%Y%m%d%H%M%SZ")


def check(env, opts=(), program="sslserver", host="127.0.0.1", port="0", app=("true",)):
    """Runs PROGRAM -C; returns (exit code, stdout lines, stderr lines)."""
    e = {"PATH": PATH}
    e.update(env)
    args = [suite.prog(program), "-C"] + list(opts) + ([host, port] if program == "sslserver" else []) + list(app)
    try:
        r = subprocess.run(args, env=e, capture_output=True, stdin=subprocess.DEVNULL, timeout=suite.patience(20))
    except subprocess.TimeoutExpired:
        return None, [], ["did not exit"]
    return r.returncode, r.stdout.decode().splitlines(), r.stderr.decode().splitlines()


def problems(name, env, count, pattern, opts=(), program="sslserver"):
    """Expects exit 111 and exactly count problem lines, one matching pattern."""
    rc, out, err = check(env, opts, program)
    is_(rc, 111, "%s: exit 111" % name)
    bad = [l for l in err if PROBLEM.match(l)]
    ok(len(bad) == count, "%s: %d problem line(s)" % (name, count), err)
    ok(len(err) == len(bad), "%s: stderr holds only problem lines" % name, err)
    ok(any(re.search(pattern, l) for l in bad), "%s: a line says %r" % (name, pattern), err)
    return out, bad


def spki_sha256(crt):
    """3 1 1 data, computed with the openssl command as an operator does."""
    pub = subprocess.run(["openssl", "x509", "-in", crt, "-pubkey", "-noout"], capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, capture_output=True, check=True).stdout
    dgst = subprocess.run(["openssl", "dgst", "-sha256"], input=der, capture_output=True, check=True).stdout.decode()
    return dgst.split()[-1]


GOOD = {"CERTFILE": good["pem"], "KEYFILE": good["key"], "CAFILE": ca["crt"]}

# ---------------------------------------------------------------- a good pair
rc, out, err = check(GOOD, ["-l", "mx.example.org"])
is_(rc, 0, "good pair: exit 0")
is_(err, [], "good pair: nothing on stderr")
ok(len(out) == 1, "good pair: one summary line on stdout", out)
line = out[0] if out else ""
like(line, r"^sslserver: check: CERTFILE %s: ok: CN=mx, names mx\.example\.org,smtp\.example\.org, expires in (29|30) days "
     r"\(\d{4}-\d\d-\d\d\), key matches, chain complete \(3 certificates, root CN=ca\)$" % re.escape(good["pem"]),
     "good pair: the line says CN, names, days to expiry, key, chain")

# ---------------------------------------------------------------- key, order, completeness
problems("key not matching", dict(GOOD, KEYFILE=other["key"]), 1, r"CERTFILE %s: unable to load key %s: it does not match"
         % (re.escape(good["pem"]), re.escape(other["key"])))
# leaf, root, intermediate: the key matches the first, the order is wrong
problems("chain in the wrong order", dict(GOOD, CERTFILE=cat("disorder.pem", good["crt"], ca["crt"], inter["crt"])), 1,
         r"chain out of order: certificate 2 \(CN=ca\) is not the issuer of certificate 1 \(CN=mx\)")
# the intermediate first, then the leaf: tlsctx's own start-up message
problems("CA first", dict(GOOD, CERTFILE=cat("cafirst.pem", inter["crt"], good["crt"])), 1,
         r"matches certificate 2 of .*put the server's own certificate first")
problems("chain missing its intermediate", dict(GOOD, CERTFILE=good["crt"]), 1,
         r"chain incomplete: the issuer of CN=mx \(CN=inter\) is neither in the file nor in CAFILE %s or the system's store"
         % re.escape(ca["crt"]))
problems("no CAFILE: the system's store does not know the test CA", dict(GOOD, CAFILE=""), 1,
         r"chain incomplete: .* nor in the system's store")

# ---------------------------------------------------------------- names
problems("-l name not covered", GOOD, 1, r"the certificate does not cover mail\.example\.com \(-l\): its names are "
         r"mx\.example\.org,smtp\.example\.org", opts=["-l", "mail.example.com"])
env = dict(GOOD, **{"CERTFILE:other.example.org": other["pem"], "KEYFILE:other.example.org": other["key"],
                    "CERTFILE:smtp.example.com": other["pem"], "KEYFILE:smtp.example.com": other["key"]})
out, bad = problems("SNI name not covered", env, 1, r"CERTFILE:smtp\.example\.com %s: the certificate does not cover "
                    r"smtp\.example\.com \(SNI\)" % re.escape(other["pem"]), opts=["-l", "mx.example.org"])
ok(len(out) == 2, "SNI name not covered: the other two pairs have their ok line", out)
like("\n".join(out), r"(?m)^sslserver: check: CERTFILE:other\.example\.org %s: ok: CN=other" % re.escape(other["pem"]),
     "SNI: the covered pair's line names its variable and file")
rc, out, err = check(dict(GOOD, **{"CERTFILE:*.example.net": wild["pem"], "KEYFILE:*.example.net": wild["key"]}))
is_((rc, err), (0, []), "a wildcard SNI entry with a wildcard certificate: no problem")
problems("a wildcard SNI entry with a one-name certificate",
         dict(GOOD, **{"CERTFILE:*.example.org": other["pem"], "KEYFILE:*.example.org": other["key"]}), 1,
         r"does not cover \*\.example\.org \(SNI\)")

# ---------------------------------------------------------------- CERTFILE2: a second pair of another key type
rsa = pki.leaf("mx-rsa", inter, dns=("mx.example.org", "smtp.example.org"), kind="rsa", chain=[inter])
DUAL = dict(GOOD, CERTFILE2=rsa["pem"], KEYFILE2=rsa["key"])
rc, out, err = check(DUAL, ["-l", "mx.example.org"])
is_((rc, err), (0, []), "CERTFILE2 beside CERTFILE: exit 0")
like("\n".join(out), r"(?m)^sslserver: check: CERTFILE2 %s: ok: CN=mx-rsa, .*chain complete" % re.escape(rsa["pem"]),
     "CERTFILE2: its own ok line")
problems("CERTFILE2 with a key that does not match", dict(DUAL, KEYFILE2=other["key"]), 1,
         r"check: CERTFILE2 %s: unable to load key %s" % (re.escape(rsa["pem"]), re.escape(other["key"])))
problems("CERTFILE2 not covering the -l name", dict(GOOD, CERTFILE2=cat("other-rsa.pem", pki.leaf("o-rsa", ca, kind="rsa")["crt"]),
                                                    KEYFILE2=pki.path("o-rsa.key")), 1,
         r"check: CERTFILE2 .*: the certificate does not cover mx\.example\.org \(-l\)", opts=["-l", "mx.example.org"])
problems("CERTFILE2 of the same key type as CERTFILE", dict(GOOD, CERTFILE2=other["pem"], KEYFILE2=other["key"]), 1,
         r"check: unable to use certificate %s: its key is ECDSA" % re.escape(other["pem"]))
rc, out, err = check(dict(DUAL, **{"CERTFILE:smtp.example.com": other["pem"], "KEYFILE:smtp.example.com": other["key"],
                                   "CERTFILE2:smtp.example.com": rsa["pem"], "KEYFILE2:smtp.example.com": rsa["key"]}))
ok(any(re.match(r"sslserver: fatal: \(111\) check: CERTFILE2:smtp\.example\.com %s: the certificate does not cover "
                r"smtp\.example\.com \(SNI\)" % re.escape(rsa["pem"]), l) for l in err),
   "CERTFILE2:name not covering its SNI name: a problem line naming CERTFILE2:name", err)

# ---------------------------------------------------------------- expiry
soon = suite.dated_leaf(pki, "soon", ca, when(-10), when(3.2))
expired = suite.dated_leaf(pki, "expired", ca, when(-40), when(-2))
problems("expiring in 3 days", {"CERTFILE": soon["pem"], "KEYFILE": soon["key"], "CAFILE": ca["crt"]}, 1,
         r"CERTFILE %s: the certificate expires in 3 days \(\d{4}-\d\d-\d\d\), within CHECKDAYS=14: renew it"
         % re.escape(soon["pem"]))
rc, out, err = check({"CERTFILE": soon["pem"], "KEYFILE": soon["key"], "CAFILE": ca["crt"], "CHECKDAYS": "2"})
is_((rc, err), (0, []), "expiring in 3 days with CHECKDAYS=2: no problem")
like(" ".join(out), r"expires in 3 days", "CHECKDAYS=2: the summary says 3 days")
problems("expired", {"CERTFILE": expired["pem"], "KEYFILE": expired["key"], "CAFILE": ca["crt"]}, 1,
         r"the certificate has expired \(\d{4}-\d\d-\d\d\): renew it")
problems("CHECKDAYS not a number", dict(GOOD, CHECKDAYS="two weeks"), 1, r"invalid CHECKDAYS two weeks")

# ---------------------------------------------------------------- TLSA
mine, theirs = spki_sha256(good["crt"]), spki_sha256(other["crt"])
rc, out, err = check(dict(GOOD, TLSA="3 1 1 %s" % mine))
is_((rc, err), (0, []), "TLSA 3 1 1 matching: exit 0")
like(" ".join(out), r", TLSA 3 1 1 matches$", "TLSA 3 1 1 matching: said on the summary line")
rc, out, err = check(dict(GOOD, TLSA="3 1 1 %s, 3 1 1 %s" % (theirs, mine.upper())))
is_((rc, err), (0, []), "TLSA: the second of two records (upper-case hex) matches: exit 0")
problems("TLSA 3 1 1 not matching", dict(GOOD, TLSA="3 1 1 %s" % theirs), 1,
         r"no record of TLSA matches: this certificate's key is \"3 1 1 %s\"" % mine)
rc, out, err = check(dict(DUAL, TLSA="3 1 1 %s, 3 1 1 %s" % (mine, spki_sha256(rsa["crt"]))))
is_((rc, err), (0, []), "TLSA: one record per key, CERTFILE and CERTFILE2: each pair matches its own")
problems("TLSA: only the ECDSA key's record, CERTFILE2 beside it", dict(DUAL, TLSA="3 1 1 %s" % mine), 1,
         r"CERTFILE2 %s: no record of TLSA matches: this certificate's key is \"3 1 1 %s\""
         % (re.escape(rsa["pem"]), spki_sha256(rsa["crt"])))
spki = subprocess.run("openssl x509 -in %s -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha512" % good["crt"],
                      shell=True, capture_output=True, check=True).stdout.decode().split()[-1]
full = subprocess.run("openssl x509 -in %s -outform DER | openssl dgst -sha256" % good["crt"],
                      shell=True, capture_output=True, check=True).stdout.decode().split()[-1]
for rec, what in (("3 1 2 " + spki, "3 1 2 (SHA-512 of the key)"), ("3 0 1 " + full, "3 0 1 (SHA-256 of the certificate)")):
    rc, out, err = check(dict(GOOD, TLSA=rec))
    ok(rc == 0 and err == [] and " TLSA %s matches" % rec[:5] in " ".join(out), "TLSA %s matching: exit 0, said" % what, err)
problems("TLSA usage 1 (PKIX-EE)", dict(GOOD, TLSA="1 1 1 %s" % mine), 1, r"record 1 .* is malformed: usage 1: only 2 \(DANE-TA\) and 3")
inter_spki = spki_sha256(inter["crt"])
rc, out, err = check(dict(GOOD, TLSA="2 1 1 %s" % inter_spki))
is_((rc, err), (0, []), "TLSA 2 1 1 of the intermediate the server sends: exit 0")
like(" ".join(out), r", TLSA 2 1 1 matches$", "TLSA 2 1 1: said on the summary line")
problems("TLSA 2 1 1 of a CA the server does not send", dict(GOOD, TLSA="2 1 1 %s" % spki_sha256(ca["crt"])), 1,
         r"no record of TLSA matches")
problems("TLSA malformed", dict(GOOD, TLSA="3 1 1 %s, 3 1 1 xyz" % mine), 1,
         r"TLSA: record 2 \(\"3 1 1 xyz\"\) is malformed")

# ---------------------------------------------------------------- per-rule pairs from a tcprules cdb
cdb = path("rules.cdb")
text = ('127.0.0.2:allow,CERTFILE="%s",KEYFILE="%s"\n' % (other["pem"], good["key"])
        + '127.0.0.3:allow,CERTFILE="%s",KEYFILE="%s"\n' % (other["pem"], other["key"])
        + '127.0.0.4:deny\n:allow,RELAYCLIENT=""\n')
r = subprocess.run(["tcprules", cdb, cdb + ".tmp"], input=text.encode(), capture_output=True, timeout=suite.patience(10))
is_(r.returncode, 0, "tcprules built the cdb")
out, bad = problems("a rule's pair whose key does not match", GOOD, 1,
                    r"^sslserver: fatal: \(111\) check: rule \"127\.0\.0\.2\": CERTFILE %s: unable to load key %s"
                    % (re.escape(other["pem"]), re.escape(good["key"])), opts=["-x", cdb])
like("\n".join(out), r"(?m)^sslserver: check: rule \"127\.0\.0\.3\": CERTFILE %s: ok: CN=other" % re.escape(other["pem"]),
     "the rule with a good pair has its ok line")
ok(len(out) == 2, "the default pair and the good rule's: two ok lines (rules setting no TLS variable are not checked)", out)
cdb2 = path("rules2.cdb")
text = '127.0.0.5:allow,CIPHERS="ECDHE-ECDSA-AES128-GCM-SHA256"\n127.0.0.6:allow,CIPHERS="NO-SUCH-CIPHER"\n'
r = subprocess.run(["tcprules", cdb2, cdb2 + ".tmp"], input=text.encode(), capture_output=True, timeout=suite.patience(10))
is_(r.returncode, 0, "tcprules built the second cdb")
problems("a rule's unusable CIPHERS", GOOD, 1, r"^sslserver: fatal: \(111\) check: rule \"127\.0\.0\.6\": unable to set cipher list: "
         r"NO-SUCH-CIPHER", opts=["-x", cdb2])
problems("the server's own key not matching, with rules that set TLS variables", dict(GOOD, KEYFILE=other["key"]), 1,
         r"check: CERTFILE %s: unable to load key" % re.escape(good["pem"]), opts=["-x", cdb2])
problems("-x cdb missing", GOOD, 1, r"unable to read rules %s" % re.escape(path("nope.cdb")), opts=["-x", path("nope.cdb")])
rc, out, err = check(GOOD, ["-X", "-x", path("nope.cdb")])
is_((rc, err), (0, []), "-X with the cdb missing: no problem")

# ---------------------------------------------------------------- ticket keys, several problems
keys = path("ticketkeys")
with open(keys, "w") as f:
    f.write("not a key\n")
problems("bad TICKETKEYFILE", dict(GOOD, TICKETKEYFILE=keys), 1, r"TICKETKEYFILE %s: line 1" % re.escape(keys))
r = subprocess.run("openssl rand 80 | base64 -w0", shell=True, capture_output=True, check=True)
with open(keys, "w") as f:
    f.write(r.stdout.decode() + "\n")
rc, out, err = check(dict(GOOD, TICKETKEYFILE=keys))
is_((rc, err), (0, []), "good TICKETKEYFILE: exit 0")
like("\n".join(out), r"(?m)^sslserver: check: TICKETKEYFILE %s: ok$" % re.escape(keys), "good TICKETKEYFILE: its ok line")
problems("bad DHFILE", dict(GOOD, DHFILE=path("nodh.pem")), 1, re.escape(path("nodh.pem")))
rc, out, err = check(dict(GOOD, KEYFILE=other["key"], TLSA="3 1 9 00", TICKETKEYFILE=path("nokeys")),
                     ["-l", "x.example.com"])
is_(rc, 111, "three problems at once: exit 111")
ok(len([l for l in err if PROBLEM.match(l)]) == 3, "three problems at once: three lines (TLSA, key, ticket keys)", err)

# ---------------------------------------------------------------- binds nothing, starts nothing
marker = path("started")
busy = socket.socket()
busy.bind(("127.0.0.1", 0))
busy.listen(1)
port = busy.getsockname()[1]
rc, out, err = check(GOOD, port=str(port), app=("sh", "-c", "touch %s" % marker))
is_(rc, 0, "on a port already in use, -C still exits 0: it does not bind")
ss = subprocess.run(["ss", "-ltnp"], capture_output=True, timeout=suite.patience(10)).stdout.decode()
listening = [l for l in ss.splitlines() if re.search(r"127\.0\.0\.1:%d\b" % port, l)]
ok(len(listening) == 1, "ss -ltn: only the test's own socket listens on that port", listening)
unlike(" ".join(listening), r"sslserver", "ss -ltnp: no sslserver among the listeners")
busy.close()
ok(not os.path.exists(marker), "the program was never started")
free = suite.free_port()
rc, out, err = check(GOOD, port=str(free), app=("sh", "-c", "touch %s" % marker))
is_(rc, 0, "on a free port: exit 0")
ok(suite.connection_refused(free), "the port is still free afterwards")

# strace: not one process made, socket opened, bound or listened on
def syscalls(program, args):
    out = path("strace-" + program)
    e = dict(GOOD, PATH=PATH)
    r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=fork,vfork,clone,clone3,execve,socket,bind,listen", "-o", out,
                        suite.prog(program), "-C"] + args, env=e, capture_output=True, timeout=suite.patience(30))
    calls = [l.split(None, 1)[1].split("(")[0] for l in open(out).read().splitlines() if l.strip()] if os.path.exists(out) else []
    return r.returncode, calls


is_(syscalls("sslserver", ["-x", cdb, "127.0.0.1", "0", "true"]), (111, ["execve"]),
    "strace: sslserver -C (with a rules cdb and a problem) makes no fork, clone, socket, bind or listen call; its one execve is its own")
is_(syscalls("sslhandoff", ["true"]), (0, ["execve"]), "strace: sslhandoff -C makes none either")

# ---------------------------------------------------------------- sslhandoff -C
rc, out, err = check(GOOD, program="sslhandoff", app=("sh", "-c", "touch %s" % marker))
is_((rc, err), (0, []), "sslhandoff -C, good pair: exit 0")
like(" ".join(out), r"^sslhandoff: check: CERTFILE %s: ok: CN=mx" % re.escape(good["pem"]), "sslhandoff -C: its summary line")
ok(not os.path.exists(marker), "sslhandoff -C: the program was never started")
problems("sslhandoff -C, key not matching", dict(GOOD, KEYFILE=other["key"]), 1,
         r"^sslhandoff: fatal: \(111\) check: CERTFILE .*does not match", program="sslhandoff")
problems("sslhandoff -C, a rule's pair", GOOD, 1, r"rule \"127\.0\.0\.2\"", opts=["-x", cdb], program="sslhandoff")

# ---------------------------------------------------------------- SIGHUP
live = suite.tmpdir()
certfile, keyfile = os.path.join(live, "cert.pem"), os.path.join(live, "key.pem")
shutil.copy(good["pem"], certfile)
shutil.copy(good["key"], keyfile)
srv = suite.Server(["-v"], env={"CERTFILE": certfile, "KEYFILE": keyfile, "CAFILE": ca["crt"]})
ctx = suite.client_context(verify=False)


def served():
    try:
        with suite.tls_connect(srv.port, ctx) as s:
            c = s.getpeercert(binary_form=True)
            suite.report_of(s)
            s.sendall(b"quit\n")
            suite.read_all(s)
        return c
    except OSError:
        return None


is_(served(), suite.der(good["crt"]), "SIGHUP: before, the certificate is served")
is_(suite.log_problems(srv), [], "SIGHUP: a good set-up logs no warning at start")
shutil.copy(other["key"], keyfile)
srv.signal(signal.SIGHUP)
ok(srv.wait_log(r"^sslserver: warning: unable to reload TLS material"), "SIGHUP with a key that does not match: reload refused")
like(srv.log(), r"(?m)^sslserver: warning: check: CERTFILE %s: unable to load key %s: it does not match"
     % (re.escape(certfile), re.escape(keyfile)), "SIGHUP: the check's problem line is logged as a warning")
ok(srv.alive(), "SIGHUP: sslserver keeps running")
is_(served(), suite.der(good["crt"]), "SIGHUP: the old certificate is still served")
shutil.copy(soon["pem"], certfile)
shutil.copy(soon["key"], keyfile)
n = suite.log_count(srv, r"^sslserver: reloaded TLS material$")
srv.signal(signal.SIGHUP)
ok(suite.wait_until(lambda: suite.log_count(srv, r"^sslserver: reloaded TLS material$") > n),
   "SIGHUP with a certificate that loads but expires soon: reloaded")
like(srv.log(), r"(?m)^sslserver: warning: check: CERTFILE %s: the certificate expires in 3 days" % re.escape(certfile),
     "SIGHUP: ... and the check warns that it expires in 3 days")
is_(served(), suite.der(soon["crt"]), "SIGHUP: the new certificate is served")
srv.stop()

# ---------------------------------------------------------------- examples/renewal/deploy-hook, as written
HOOK = os.path.join(suite.TOP, "examples", "renewal", "deploy-hook")
ok(os.access(HOOK, os.X_OK), "examples/renewal/deploy-hook is executable")
w = suite.tmpdir()
stub, lineage, ssldir, service = (os.path.join(w, n) for n in ("bin", "live", "ssl", "service"))
for p in (stub, lineage, ssldir, service):
    os.mkdir(p)
calls = os.path.join(w, "svc-calls")
with open(os.path.join(stub, "svc"), "w") as f:
    f.write('#!/bin/sh\necho "svc $*" >> %s\n' % calls)
os.chmod(os.path.join(stub, "svc"), 0o755)
shutil.copy(suite.prog("sslserver"), os.path.join(stub, "sslserver"))
# the service's own run script and environment file, as examples/service has them
with open(os.path.join(ssldir, "env"), "w") as f:
    f.write("CERTFILE=%s/cert.pem\nKEYFILE=%s/key.pem\nCAFILE=%s\nexport CERTFILE KEYFILE CAFILE\n" % (ssldir, ssldir, ca["crt"]))
with open(os.path.join(service, "run"), "w") as f:
    f.write('#!/bin/sh\nexec 2>&1\n. %s/env\nexec sslserver "$@" -v -l mx.example.org 127.0.0.1 %d sh -c "touch %s"\n'
            % (ssldir, suite.free_port(), marker))
os.chmod(os.path.join(service, "run"), 0o755)
shutil.copy(other["pem"], os.path.join(ssldir, "cert.pem"))
shutil.copy(other["key"], os.path.join(ssldir, "key.pem"))
HOOKENV = {"PATH": stub + ":" + PATH, "RENEWED_LINEAGE": lineage, "RENEWED_DOMAINS": "mx.example.org",
           "CERTDIR": ssldir, "SERVICES": service}


def hook():
    r = subprocess.run([HOOK], env=HOOKENV, capture_output=True, timeout=suite.patience(30), stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout.decode() + r.stderr.decode()


def svc_calls():
    return open(calls).read() if os.path.exists(calls) else ""


# a renewal whose key does not match: nothing reloaded, the old files back
shutil.copy(good["pem"], os.path.join(lineage, "fullchain.pem"))
shutil.copy(other["key"], os.path.join(lineage, "privkey.pem"))
rc, out = hook()
ok(rc == 111, "hook, broken renewal: exit 111", out)
like(out, r"sslserver: fatal: \(111\) check: CERTFILE %s/cert\.pem: unable to load key" % re.escape(ssldir),
     "hook, broken renewal: prints the problem line")
is_(svc_calls(), "", "hook, broken renewal: svc is not called, the running server is left alone")
is_(open(os.path.join(ssldir, "cert.pem")).read(), open(other["pem"]).read(), "hook, broken renewal: the previous certificate is back")
is_(open(os.path.join(ssldir, "key.pem")).read(), open(other["key"]).read(), "hook, broken renewal: the previous key is back")
# a good renewal: installed, checked, svc -h
shutil.copy(good["key"], os.path.join(lineage, "privkey.pem"))
rc, out = hook()
ok(rc == 0, "hook, good renewal: exit 0", out)
like(out, r"sslserver: check: CERTFILE %s/cert\.pem: ok: CN=mx" % re.escape(ssldir), "hook, good renewal: prints the summary")
is_(svc_calls(), "svc -h %s\n" % service, "hook, good renewal: svc -h SERVICE, once")
is_(open(os.path.join(ssldir, "cert.pem")).read(), open(good["pem"]).read(), "hook, good renewal: the new certificate is in place")
is_(oct(os.stat(os.path.join(ssldir, "key.pem")).st_mode & 0o777), "0o600", "hook, good renewal: the key is mode 600")
ok(not os.path.exists(marker), "hook: the service's program was never started")
