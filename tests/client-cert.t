#!/usr/bin/python3
# Client certificates: -m requires one signed by CAFILE (the program sees
# SSL_CLIENT_* and the s6 SSL_PEER_CERT_* names), -z also requires it to
# match the client's reverse-DNS name; unknown CA and no certificate are
# refused before the program runs (exit 110); CCAFILE=- turns the request
# off; -m without CAFILE/CADIR does not start.
import hashlib
import os
import re
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike, diag  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
server = pki.leaf("server", ca)
clientca = pki.ca("clientca")
otherca = pki.ca("otherca")
good = pki.leaf("client-good", clientca, dns=(), client=True, email="alice@example.org")
stranger = pki.leaf("client-stranger", otherca, dns=(), client=True)
hostok = pki.leaf("client-localhost", clientca, dns=("localhost",), client=True)
hostbad = pki.leaf("client-other", clientca, dns=("other.example",), client=True)

markers = suite.tmpdir()
# The program leaves a marker named after the client's port: a refused
# client must never cause one.
APP = ["sh", "-c", 'touch "$0/started.$SSLREMOTEPORT"; exec %s %s' % (suite.PYTHON, suite.REPORT), markers]
BASE = {"CERTFILE": server["pem"], "KEYFILE": server["key"]}


def nmarkers():
    return len(os.listdir(markers))


def ends(srv):
    return re.findall(r"^sslserver: end (\d+) status (\d+)$", srv.log(), re.M)


def attempt(srv, client):
    """Runs client() (one connection); returns (its result, the connection's
    end status as logged, the connection pid, whether a marker appeared)."""
    before_end, before_mark = len(ends(srv)), nmarkers()
    result = client()
    ok_end = suite.wait_until(lambda: len(ends(srv)) > before_end, 10)
    pid, status = ends(srv)[before_end] if ok_end else (None, None)
    return result, status, pid, nmarkers() > before_mark


def py_client(srv, cert=None, version=None):
    """A Python client: returns the program's report or the error it met."""
    ctx = suite.client_context(ca["crt"], version, cert=cert["crt"] if cert else None, key=cert["key"] if cert else None)
    try:
        with suite.tls_connect(srv.port, ctx) as s:
            rep = suite.report_of(s)
            if rep is None:
                return "connection ended without a report"
            s.sendall(b"quit\n")
            suite.read_all(s)
            return rep
    except (ssl.SSLError, OSError) as e:
        return "error: %s" % e


def brief(rep):
    """A short description of a client's outcome, for failure details."""
    if isinstance(rep, dict):
        e = rep["env"]
        return "program ran: SSL_CLIENT_VERIFY=%r SSL_CLIENT_S_DN=%r SSLREMOTEHOST=%r" % (
            e.get("SSL_CLIENT_VERIFY"), e.get("SSL_CLIENT_S_DN"), e.get("SSLREMOTEHOST"))
    return rep


def serial_of(crt):
    r = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", crt], check=True, capture_output=True)
    return str(int(r.stdout.decode().strip().split("=", 1)[1], 16))


def der_sha256(crt):
    return hashlib.sha256(suite.der(crt)).hexdigest()


# ---------------------------------------------------------------- -m
srv = suite.Server(["-v", "-m"], env=dict(BASE, CAFILE=clientca["crt"]), app=APP)
ok(srv.port, "-m with CAFILE: server started")

for version in ("1.3", "1.2"):
    rep, status, pid, started = attempt(srv, lambda: py_client(srv, good, version))
    env = suite.env_of(rep)
    ok(isinstance(rep, dict), "-m TLSv%s: a good client certificate is accepted" % version, brief(rep))
    is_(status, "0", "-m TLSv%s: connection ends with status 0" % version)
    is_(env.get("SSL_CLIENT_VERIFY"), "SUCCESS", "-m TLSv%s: SSL_CLIENT_VERIFY=SUCCESS" % version)
    is_(env.get("SSL_PROTOCOL"), "TLSv" + version, "-m TLSv%s: SSL_PROTOCOL" % version)
    is_(env.get("SSL_CLIENT_S_DN"), "/C=DE/O=sslsuite tests/CN=client-good", "-m TLSv%s: SSL_CLIENT_S_DN" % version)
    is_(env.get("SSL_CLIENT_S_DN_CN"), "client-good", "-m TLSv%s: SSL_CLIENT_S_DN_CN" % version)
    is_(env.get("SSL_CLIENT_I_DN"), "/O=sslsuite tests/CN=clientca", "-m TLSv%s: SSL_CLIENT_I_DN is the client CA" % version)
    is_(env.get("SSL_CLIENT_I_DN_CN"), "clientca", "-m TLSv%s: SSL_CLIENT_I_DN_CN" % version)
    is_(env.get("SSL_CLIENT_SAN_Email_0"), "alice@example.org", "-m TLSv%s: SSL_CLIENT_SAN_Email_0" % version)
    is_((env.get("SSL_CLIENT_CERT") or "").strip(), open(good["crt"]).read().strip(), "-m TLSv%s: SSL_CLIENT_CERT is the client's PEM" % version)
    is_(env.get("SSL_PEER_CERT_HASH"), "SHA256:" + der_sha256(good["crt"]), "-m TLSv%s: SSL_PEER_CERT_HASH is SHA256: + sha256 of the DER" % version)
    is_(env.get("SSL_PEER_CERT_SUBJECT"), "/C=DE/O=sslsuite tests/CN=client-good", "-m TLSv%s: SSL_PEER_CERT_SUBJECT" % version)
    is_(env.get("SSL_CLIENT_M_SERIAL"), serial_of(good["crt"]), "-m TLSv%s: SSL_CLIENT_M_SERIAL" % version)
    is_(env.get("SSL_SERVER_S_DN_CN"), "server", "-m TLSv%s: the server's own certificate is still SSL_SERVER_*" % version)
    ok(started, "-m TLSv%s: the program ran" % version)

for version in ("1.3", "1.2"):
    rep, status, pid, started = attempt(srv, lambda: py_client(srv, stranger, version))
    ok(not isinstance(rep, dict), "-m TLSv%s: a certificate from another CA is refused" % version, brief(rep))
    is_(status, "28160", "-m TLSv%s: unknown CA: connection exits 110 (raw wait status 28160)" % version)
    ok(not started, "-m TLSv%s: unknown CA: the program never started" % version)
    like(srv.log(), r"^sslserver: .*client certificate refused from: 127\.0\.0\.1 for pid: %s\b" % pid,
         "-m TLSv%s: unknown CA: 'client certificate refused' logged for that connection" % version)

    rep, status, pid, started = attempt(srv, lambda: py_client(srv, None, version))
    ok(not isinstance(rep, dict), "-m TLSv%s: no client certificate is refused" % version, brief(rep))
    is_(status, "28160", "-m TLSv%s: no certificate: connection exits 110 (raw wait status 28160)" % version)
    ok(not started, "-m TLSv%s: no certificate: the program never started" % version)
    like(srv.log(), r"^sslserver: .*client certificate refused from: 127\.0\.0\.1 for pid: %s\b" % pid,
         "-m TLSv%s: no certificate: 'client certificate refused' logged" % version)

# openssl s_client with -cert/-key.
args = ["-CAfile", ca["crt"], "-servername", "localhost", "-quiet"]
(rc, out, err), status, pid, started = attempt(srv, lambda: suite.s_client(srv.port, args + ["-cert", good["crt"], "-key", good["key"]], input=b"quit\n"))
rep = suite.json_line(out)
ok(rep is not None, "s_client with the good certificate: program started")
is_((rep or {}).get("env", {}).get("SSL_CLIENT_VERIFY"), "SUCCESS", "s_client good certificate: SSL_CLIENT_VERIFY=SUCCESS")
is_((rep or {}).get("env", {}).get("SSL_PEER_CERT_HASH"), "SHA256:" + der_sha256(good["crt"]), "s_client good certificate: SSL_PEER_CERT_HASH")
is_(status, "0", "s_client good certificate: status 0")

(rc, out, err), status, pid, started = attempt(srv, lambda: suite.s_client(srv.port, args + ["-cert", stranger["crt"], "-key", stranger["key"]], input=b"quit\n"))
ok(suite.json_line(out) is None and not started, "s_client, certificate from another CA: program never started", out)
is_(status, "28160", "s_client, certificate from another CA: exit 110")
(rc, out, err), status, pid, started = attempt(srv, lambda: suite.s_client(srv.port, args + ["-tls1_2", "-cert", stranger["crt"], "-key", stranger["key"]], input=b"quit\n"))
ok(rc != 0, "s_client -tls1_2, certificate from another CA: the handshake fails", err)
ok(suite.json_line(out) is None and not started, "s_client -tls1_2, certificate from another CA: program never started")
is_(status, "28160", "s_client -tls1_2, certificate from another CA: exit 110")
(rc, out, err), status, pid, started = attempt(srv, lambda: suite.s_client(srv.port, args, input=b"quit\n"))
ok(suite.json_line(out) is None and not started, "s_client without a certificate: program never started", out)
is_(status, "28160", "s_client without a certificate: exit 110")

# gnutls-cli, once.
(rc, out, err), status, pid, started = attempt(srv, lambda: suite.gnutls_cli(
    srv.port, ["--x509cafile", ca["crt"], "--verify-hostname", "localhost", "--sni-hostname", "localhost",
               "--x509certfile", good["crt"], "--x509keyfile", good["key"]], input=b"quit\n"))
rep = suite.json_line(out)
ok(rep is not None, "gnutls-cli with the good certificate: program started", out + err)
is_((rep or {}).get("env", {}).get("SSL_CLIENT_S_DN_CN"), "client-good", "gnutls-cli: SSL_CLIENT_S_DN_CN")
is_((rep or {}).get("env", {}).get("SSL_CLIENT_VERIFY"), "SUCCESS", "gnutls-cli: SSL_CLIENT_VERIFY=SUCCESS")
srv.stop()

# ---------------------------------------------------------------- -z
srv = suite.Server(["-v", "-z"], env=dict(BASE, CAFILE=clientca["crt"]), app=APP)
ok(srv.port, "-z with CAFILE: server started")
rep, status, pid, started = attempt(srv, lambda: py_client(srv, hostok))
env = suite.env_of(rep)
ok(isinstance(rep, dict), "-z: a certificate for DNS:localhost, the client's reverse-DNS name, is accepted", brief(rep))
is_(env.get("SSLREMOTEHOST"), "localhost", "-z: SSLREMOTEHOST=localhost")
is_(env.get("SSL_CLIENT_VERIFY"), "SUCCESS", "-z: SSL_CLIENT_VERIFY=SUCCESS")
is_(env.get("SSL_CLIENT_SAN_DNS_0"), "localhost", "-z: SSL_CLIENT_SAN_DNS_0")
is_(status, "0", "-z matching name: status 0")

for version in ("1.3", "1.2"):
    rep, status, pid, started = attempt(srv, lambda: py_client(srv, hostbad, version))
    ok(not isinstance(rep, dict), "-z TLSv%s: a good-CA certificate for other.example is refused" % version, brief(rep))
    is_(status, "28160", "-z TLSv%s: name mismatch: exit 110 (raw wait status 28160)" % version)
    ok(not started, "-z TLSv%s: name mismatch: the program never started" % version)
    like(srv.log(), r"^sslserver: .*client certificate .*for pid: %s\b" % pid, "-z TLSv%s: the refusal is logged" % version)

rep, status, pid, started = attempt(srv, lambda: py_client(srv, stranger))
is_(status, "28160", "-z: a certificate from another CA is refused too (110)")
ok(not started, "-z: unknown CA: program never started")
rep, status, pid, started = attempt(srv, lambda: py_client(srv, None))
is_(status, "28160", "-z: no certificate is refused (110)")
ok(not started, "-z: no certificate: program never started")
srv.stop()

# No remote host name known (-H, or no PTR record): nothing can match, so -z
# must refuse rather than skip the check.
srv = suite.Server(["-v", "-z", "-H"], env=dict(BASE, CAFILE=clientca["crt"]), app=APP)
rep, status, pid, started = attempt(srv, lambda: py_client(srv, hostok))
ok(not isinstance(rep, dict), "-z -H: with no remote host name to match, a valid certificate is refused", brief(rep))
is_(status, "28160", "-z -H: exit 110")
ok(not started, "-z -H: the program never started")
srv.stop()

# ---------------------------------------------------------------- chains and VERIFYDEPTH
inter = pki.ca("clientinter", issuer=clientca)
chained = pki.leaf("client-chained", inter, dns=(), client=True, chain=(inter,))
srv = suite.Server(["-v", "-m"], env=dict(BASE, CAFILE=clientca["crt"]), app=APP)
rep, status, pid, started = attempt(srv, lambda: py_client(srv, {"crt": chained["pem"], "key": chained["key"]}))
env = suite.env_of(rep)
ok(isinstance(rep, dict), "-m: a client certificate under an intermediate the client sends is accepted", brief(rep))
is_(env.get("SSL_CLIENT_I_DN"), "/O=sslsuite tests/CN=clientinter", "chain: SSL_CLIENT_I_DN is the intermediate")
is_((env.get("SSL_CLIENT_CERT") or "").strip(), open(chained["crt"]).read().strip(), "chain: SSL_CLIENT_CERT is the leaf")
is_((env.get("SSL_CLIENT_CERT_CHAIN_0") or "").strip(), open(inter["crt"]).read().strip(), "chain: SSL_CLIENT_CERT_CHAIN_0 is the intermediate")
ok("SSL_CLIENT_CERT_CHAIN_1" not in env, "chain: no SSL_CLIENT_CERT_CHAIN_1")
srv.stop()
srv = suite.Server(["-v", "-m"], env=dict(BASE, CAFILE=clientca["crt"], VERIFYDEPTH="0"), app=APP)
rep, status, pid, started = attempt(srv, lambda: py_client(srv, {"crt": chained["pem"], "key": chained["key"]}))
is_(status, "28160", "VERIFYDEPTH=0: a certificate under an intermediate is refused (110)")
ok(not started, "VERIFYDEPTH=0: program never started")
rep, status, pid, started = attempt(srv, lambda: py_client(srv, good))
ok(isinstance(rep, dict), "VERIFYDEPTH=0: a certificate issued by the CA itself is accepted", brief(rep))
srv.stop()

# ---------------------------------------------------------------- CCAFILE=-
srv = suite.Server(["-v", "-m"], env=dict(BASE, CAFILE=clientca["crt"], CCAFILE="-"), app=APP)
ok(srv.port, "-m with CCAFILE=-: server started")
rep, status, pid, started = attempt(srv, lambda: py_client(srv, None))
ok(isinstance(rep, dict), "-m with CCAFILE=-: a client without a certificate is served", brief(rep))
is_((rep or {}).get("env", {}).get("SSL_CLIENT_VERIFY") if isinstance(rep, dict) else None, "NONE", "CCAFILE=-: SSL_CLIENT_VERIFY=NONE")
is_(status, "0", "CCAFILE=-: status 0")
rep, status, pid, started = attempt(srv, lambda: py_client(srv, stranger))
ok(isinstance(rep, dict), "CCAFILE=-: a client holding an unknown-CA certificate is served (none is asked for)", brief(rep))
ok(isinstance(rep, dict) and "SSL_CLIENT_S_DN" not in rep["env"], "CCAFILE=-: no SSL_CLIENT_S_DN (no certificate requested)")
srv.stop()

srv = suite.Server(["-m"], env=dict(BASE, CCAFILE="-"), app=APP)
ok(srv.port, "-m with CCAFILE=- and no CAFILE: server starts (no client certificates at all)")
srv.stop()

# ---------------------------------------------------------------- start-up errors
for opt in ("-m", "-z"):
    rc, err = suite.start_failure([opt], env=BASE)
    is_(rc, 111, "%s without CAFILE or CADIR: start-up error, exit 111" % opt)
    like(err, r"\Asslserver: [^\n]*CAFILE[^\n]*\n\Z", "%s without CAFILE: one line naming CAFILE" % opt)
rc, err = suite.start_failure(["-m"], env=dict(BASE, CAFILE=os.path.join(pki.dir, "no-such-ca.pem")))
is_(rc, 111, "-m with a missing CAFILE: exit 111")
like(err, r"no-such-ca\.pem", "-m with a missing CAFILE: the file is named")
