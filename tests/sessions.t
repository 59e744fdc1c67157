#!/usr/bin/python3
# Which sessions resume where (DESIGN.md sections 8 and 12): a session
# resumes only under the SNI name and the rule it was made for; a client
# certificate is verified under an SNI name as under the default one (same
# CAs, same CRLs); a SIGHUP that changes the trusted CAs or the CRLs ends
# resumption of the sessions authenticated before it, one that changes
# nothing keeps them; a session whose client certificate has expired does
# not resume; CRLFILE/CRLDIR refuse revoked client certificates; the ticket
# keys rotate on schedule even while connections keep the server busy.
# Time is moved with libfaketime (Debian's faketime package) in the server.
import glob
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, diag  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
NAMES = ("localhost", "a.example", "b.example", "c.example", "d.example", "x.wild.example", "y.wild.example")
server = pki.leaf("server", ca, dns=NAMES)
leaf_a = pki.leaf("leaf-a", ca, dns=("a.example",))
leaf_wild = pki.leaf("leaf-wild", ca, dns=("*.wild.example",))
BASE = {"CERTFILE": server["pem"], "KEYFILE": server["key"]}
SNI = {"CERTFILE:a.example": leaf_a["pem"], "KEYFILE:a.example": leaf_a["key"],
       "CERTFILE:*.wild.example": leaf_wild["pem"], "KEYFILE:*.wild.example": leaf_wild["key"]}


class IssuingCA:
    """A client-certificate CA kept in an openssl ca database, so that it can
    revoke and publish CRLs (openssl ca -revoke, -gencrl)."""

    def __init__(self, name):
        self.ca = pki.ca(name)
        self.db = pki.path(name + ".db")
        os.makedirs(self.db)
        open(os.path.join(self.db, "index.txt"), "w").close()
        with open(os.path.join(self.db, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(self.db, "crlnumber"), "w") as f:
            f.write("01\n")
        self.cnf = os.path.join(self.db, "ca.cnf")
        with open(self.cnf, "w") as f:
            f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = {0}/index.txt\nnew_certs_dir = {0}\nserial = {0}/serial\n"
                    "crlnumber = {0}/crlnumber\ndefault_md = sha256\ndefault_days = 30\ndefault_crl_days = 30\n"
                    "policy = p\nunique_subject = no\npreserve = yes\n"
                    "[p]\ncountryName = optional\norganizationName = optional\ncommonName = supplied\n".format(self.db))

    def _ca(self, args):
        subprocess.run(["openssl", "ca", "-batch", "-notext", "-config", self.cnf, "-cert", self.ca["crt"],
                        "-keyfile", self.ca["key"]] + args, check=True, capture_output=True)

    def client(self, name, end=None):
        """A client certificate, valid from an hour ago until end
        (YYYYMMDDHHMMSSZ, default 30 days)."""
        key = pki._key(name, "ec")
        crt, csr, ext = pki.path(name + ".crt"), pki.path(name + ".csr"), pki.path(name + ".ext")
        subprocess.run(["openssl", "req", "-new", "-key", key, "-out", csr, "-subj", "/O=sslsuite tests/CN=%s" % name],
                       check=True, capture_output=True)
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
        start = time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() - 3600))
        end = end or time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() + 30 * 86400))
        self._ca(["-in", csr, "-out", crt, "-extfile", ext, "-startdate", start, "-enddate", end])
        return pki.files(name, key, crt)

    def revoke(self, cert):
        self._ca(["-revoke", cert["crt"]])

    def crl(self, path):
        """Writes the CA's current CRL to path (atomically)."""
        self._ca(["-gencrl", "-out", path + ".new"])
        os.rename(path + ".new", path)


CONTEXTS = {}


def session(port, name="localhost", version=None, cert=None, sess=None, source=None):
    """One TLS session with report.py: (the program's report or None,
    whether the session was resumed, the session for the next time, the
    error met if any)."""
    key = (version, cert["crt"] if cert else None)
    if key not in CONTEXTS:   # a session is offered only through the context that made it
        CONTEXTS[key] = suite.client_context(ca["crt"], version, cert=key[1], key=cert["key"] if cert else None)
    ctx = CONTEXTS[key]
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=suite.patience(10), source_address=source)
        with ctx.wrap_socket(raw, server_hostname=name, session=sess) as s:
            rep = suite.report_of(s)
            if rep is not None:
                s.sendall(b"quit\n")
                suite.read_all(s)
            return rep, s.session_reused, s.session, None
    except (ssl.SSLError, OSError) as e:
        return None, False, None, str(e)


def resumed_under(port, made, offered, version):
    """Makes a session under one server name, offers it under another:
    (whether the second connection resumed, SSL_SESSION_RESUMED as the
    program saw it)."""
    rep, _, sess, err = session(port, made, version)
    if sess is None:
        diag("no session under %s: %s" % (made, err))
        return None, None
    rep, reused, _, err = session(port, offered, version, sess=sess)
    return reused, suite.env_of(rep).get("SSL_SESSION_RESUMED")


# ---------------------------------------------------------------- SNI names

srv = suite.Server(["-v"], env=dict(BASE, **SNI))
ok(srv.port, "server with SNI pairs started")
for version in ("1.2", "1.3"):
    for made, offered, expect, why in (
            ("a.example", "a.example", True, "the same SNI name"),
            ("c.example", "c.example", True, "the same unlisted name (default pair)"),
            ("x.wild.example", "x.wild.example", True, "the same name under a wildcard pair"),
            ("a.example", "b.example", False, "a listed name, offered under another name"),
            ("a.example", "localhost", False, "a listed name, offered under the default pair's name"),
            ("c.example", "a.example", False, "an unlisted name, offered under a listed one"),
            ("c.example", "d.example", False, "an unlisted name, offered under another unlisted one"),
            ("x.wild.example", "y.wild.example", False, "one name under a wildcard pair, offered under another")):
        reused, seen = resumed_under(srv.port, made, offered, version)
        is_(reused, expect, "TLSv%s: %s: %s" % (version, why, "resumed" if expect else "not resumed"))
        is_(seen, "Resumed" if expect else "Initial", "TLSv%s: %s: the program saw SSL_SESSION_RESUMED=%s"
            % (version, why, "Resumed" if expect else "Initial"))
    reused, _ = resumed_under(srv.port, "A.Example", "a.example", version)
    is_(reused, True, "TLSv%s: server names compare without case" % version)
srv.stop()

# ---------------------------------------------------------------- rules

rules_txt = pki.path("rules.txt")
with open(rules_txt, "w") as f:
    f.write('127.0.0.2:allow,CIPHERORDER="server"\n:allow\n')
cdb = pki.path("rules.cdb")
subprocess.run([suite.prog("sslrules"), cdb, cdb + ".tmp"], stdin=open(rules_txt), check=True, capture_output=True)
srv = suite.Server(["-v", "-x", cdb], env=BASE)
for version in ("1.2", "1.3"):
    _, _, sess, err = session(srv.port, version=version)
    rep, reused, _, _ = session(srv.port, version=version, sess=sess)
    is_(reused, True, "TLSv%s: a session resumes from the same client under the same rule" % version)
    rep, reused, _, err = session(srv.port, version=version, sess=sess, source=("127.0.0.2", 0))
    ok(rep is not None, "TLSv%s: the client under the other rule is served" % version)
    is_(reused, False, "TLSv%s: a session made under the default settings does not resume under a rule with its own TLS settings" % version)
srv.stop()

# ---------------------------------------------------------------- client certificates under SNI names

cca = IssuingCA("clientca")
other = IssuingCA("otherca")
alice = cca.client("alice")
mallory = other.client("mallory")
srv = suite.Server(["-v", "-m"], env=dict(BASE, CAFILE=cca.ca["crt"], **SNI))
for name in ("a.example", "x.wild.example", "c.example"):
    rep, _, _, err = session(srv.port, name, cert=alice)
    is_(suite.env_of(rep).get("SSL_CLIENT_VERIFY"), "SUCCESS",
        "-m under SNI name %s: a client certificate from CAFILE is accepted" % name)
    rep, _, _, err = session(srv.port, name, cert=mallory)
    ok(rep is None, "-m under SNI name %s: a client certificate from another CA is refused" % name)
rc, out, err = suite.s_client(srv.port, ["-servername", "a.example", "-CAfile", ca["crt"], "-cert", alice["crt"],
                                         "-key", alice["key"]], input=b"quit\n")
like(out, r"Acceptable client certificate CA names\n.*CN ?= ?clientca",
     "under an SNI name the server names the CAFILE's CA as acceptable (openssl s_client)")
srv.stop()

# ---------------------------------------------------------------- a reload that changes trust

cafile = pki.path("trusted.crt")
shutil.copy(cca.ca["crt"], cafile)
crlfile = pki.path("client.crl")
cca.crl(crlfile)
bob = cca.client("bob")
carol = cca.client("carol")
srv = suite.Server(["-v", "-m"], env=dict(BASE, CAFILE=cafile, CRLFILE=crlfile))
ok(srv.port, "-m with CAFILE and CRLFILE: server started")
reloads = [0]


def reload(what):
    reloads[0] += 1
    srv.signal(1)
    ok(suite.wait_until(lambda: suite.log_count(srv, r"^sslserver: reloaded TLS material$") >= reloads[0], 10),
       "SIGHUP after %s: TLS material reloaded" % what, srv.log())


sessions = {}
for version in ("1.2", "1.3"):
    rep, _, sess, err = session(srv.port, version=version, cert=bob)
    is_(suite.env_of(rep).get("SSL_CLIENT_VERIFY"), "SUCCESS", "TLSv%s: bob's certificate is accepted" % version)
    rep, reused, sess, _ = session(srv.port, version=version, cert=bob, sess=sess)
    ok(reused and suite.env_of(rep).get("SSL_CLIENT_VERIFY") == "SUCCESS",
       "TLSv%s: bob's session resumes, SSL_CLIENT_VERIFY=SUCCESS" % version)
    sessions[version] = sess
reload("no change")
for version in ("1.2", "1.3"):
    rep, reused, sess, _ = session(srv.port, version=version, cert=bob, sess=sessions[version])
    is_(reused, True, "TLSv%s: after a reload that changed nothing, bob's session still resumes" % version)
    sessions[version] = sess or sessions[version]

# revoke bob: a new CRL is a change of trust
cca.revoke(bob)
cca.crl(crlfile)
reload("bob's certificate was revoked")
for version in ("1.2", "1.3"):
    rep, reused, _, err = session(srv.port, version=version, cert=bob, sess=sessions[version])
    is_(reused, False, "TLSv%s: after the CRL revoked bob, his session does not resume" % version)
    ok(rep is None, "TLSv%s: ... and his revoked certificate is refused (CRLFILE)" % version, suite.env_of(rep))
    rep, _, sess, err = session(srv.port, version=version, cert=carol)
    is_(suite.env_of(rep).get("SSL_CLIENT_VERIFY"), "SUCCESS", "TLSv%s: carol's certificate (not revoked) is accepted" % version)
    sessions[version] = sess
like(srv.log(), r"^sslserver: .*client certificate refused from: 127\.0\.0\.1", "the revoked certificate is logged as refused")

# another CA: sessions authenticated by the old one end
shutil.copy(other.ca["crt"], cafile)
other.crl(crlfile)
reload("CAFILE names another CA")
for version in ("1.2", "1.3"):
    rep, reused, _, err = session(srv.port, version=version, cert=carol, sess=sessions[version])
    is_(reused, False, "TLSv%s: after CAFILE changed, carol's session does not resume" % version)
    ok(rep is None, "TLSv%s: ... and her certificate, from a CA no longer trusted, is refused" % version, suite.env_of(rep))
srv.stop()

# ---------------------------------------------------------------- CRLDIR

crldir = suite.tmpdir()
dave = cca.client("dave")
cca.revoke(dave)
cca.crl(os.path.join(crldir, "clientca.crl"))
subprocess.run(["openssl", "rehash", crldir], check=True, capture_output=True)
ok(glob.glob(os.path.join(crldir, "*.r0")), "openssl rehash made the CRL's hash link")
srv = suite.Server(["-v", "-m"], env=dict(BASE, CAFILE=cca.ca["crt"], CRLDIR=crldir))
rep, _, _, err = session(srv.port, cert=dave)
ok(rep is None, "CRLDIR: a revoked client certificate is refused")
rep, _, _, err = session(srv.port, cert=carol)
is_(suite.env_of(rep).get("SSL_CLIENT_VERIFY"), "SUCCESS", "CRLDIR: a client certificate it does not list is accepted")
srv.stop()
rc, err = suite.start_failure(["-m"], env=dict(BASE, CAFILE=cca.ca["crt"], CRLFILE=server["crt"]))
is_(rc, 111, "CRLFILE without a CRL in it: start-up error, exit 111")
like(err, r"^sslserver: fatal: \(111\) unable to load CRLFILE: %s" % re.escape(server["crt"]), "... naming the file")

# ---------------------------------------------------------------- time: expiry and ticket-key rotation

FAKETIME = (glob.glob("/usr/lib/*/faketime/libfaketime.so.1") or ["libfaketime.so.1"])[0]
clock = pki.path("faketime")


def set_clock(offset):
    with open(clock + ".new", "w") as f:
        f.write("%+ds\n" % offset)
    os.rename(clock + ".new", clock)


def faked_server(opts, env):
    set_clock(0)
    # Under make check-asan, libfaketime goes in alone (ASan is told not to
    # insist on coming first): with ASan's runtime preloaded too, the
    # program, which inherits LD_PRELOAD, hangs at start.
    e = dict(env, LD_PRELOAD=FAKETIME, ASAN_OPTIONS="verify_asan_link_order=0",
             FAKETIME_TIMESTAMP_FILE=clock, FAKETIME_NO_CACHE="1")
    return suite.Server(opts, env=e)


in_half_an_hour = time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() + 1800))
erin = cca.client("erin", end=in_half_an_hour)
srv = faked_server(["-v", "-m"], dict(BASE, CAFILE=cca.ca["crt"]))
ok(srv.port, "server under libfaketime started")
for version in ("1.2", "1.3"):
    set_clock(0)
    rep, _, short, err = session(srv.port, version=version, cert=erin)
    is_(suite.env_of(rep).get("SSL_CLIENT_VERIFY"), "SUCCESS", "TLSv%s: erin's certificate (valid for half an hour) is accepted" % version)
    _, _, long, _ = session(srv.port, version=version, cert=carol)
    rep, reused, short, _ = session(srv.port, version=version, cert=erin, sess=short)
    is_(reused, True, "TLSv%s: erin's session resumes while her certificate is valid" % version)
    set_clock(3600)
    rep, reused, _, err = session(srv.port, version=version, cert=erin, sess=short)
    is_(reused, False, "TLSv%s: an hour later her certificate has expired: her session does not resume" % version)
    ok(rep is None, "TLSv%s: ... and the expired certificate is refused" % version, suite.env_of(rep))
    rep, reused, _, err = session(srv.port, version=version, cert=carol, sess=long)
    is_(reused, True, "TLSv%s: an hour later a session whose certificate is still valid resumes" % version)
srv.stop()


srv = faked_server(["-v"], BASE)
first = suite.ticket_key_name(srv.port, ca["crt"])
ok(first, "a ticket's key name is read from s_client's session", first)
is_(suite.ticket_key_name(srv.port, ca["crt"]), first, "within the hour, tickets are issued under the same key")
# The server sleeps in iopause until a connection comes: the connection
# that wakes it an hour later must already get a ticket under a new key.
set_clock(3660)
second = suite.ticket_key_name(srv.port, ca["crt"])
ok(second and second != first, "an hour later, the first connection gets a ticket under a new key (the rotation was not postponed by it)",
   "%s then %s" % (first, second))
srv.stop()
