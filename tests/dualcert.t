#!/usr/bin/python3
# Dual certificates: an ECDSA pair (CERTFILE, KEYFILE) and an RSA pair
# (CERTFILE2, KEYFILE2) for the same names, per SNI name and per rule; the
# handshake uses the one the client supports, so an MTA that only does RSA
# still gets TLS while every other client gets ECDSA. Real peers: openssl
# s_client forcing RSA with -sigalgs (TLS 1.3) or an RSA cipher (TLS 1.2),
# Python's ssl, gnutls-cli with an RSA-only priority string; the program
# sees which certificate was served (SSL_SERVER_A_KEY).
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, diag  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
ec = pki.leaf("ec", ca, dns=("localhost", "mail.example.org"), ips=("127.0.0.1",), kind="ec")
rsa = pki.leaf("rsa", ca, dns=("localhost", "mail.example.org"), ips=("127.0.0.1",), kind="rsa")
ec2 = pki.leaf("ec2", ca, dns=("localhost",), kind="ec")
sni_ec = pki.leaf("sni-ec", ca, dns=("other.example.net",), kind="ec")
sni_rsa = pki.leaf("sni-rsa", ca, dns=("other.example.net",), kind="rsa")
DUAL = {"CERTFILE": ec["pem"], "KEYFILE": ec["key"], "CERTFILE2": rsa["pem"], "KEYFILE2": rsa["key"]}
RSA_SIGALGS = "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pkcs1_sha256"


def served_key(port, args, src=None):
    """The key type of the certificate s_client was served, as s_client
    reports it ("ECDSA" / "RSA"), or the failure."""
    extra = ["-bind", "%s:0" % src] if src else []
    code, out, err = suite.s_client(port, ["-CAfile", ca["crt"], "-servername", "localhost", "-verify_return_error"] + extra + list(args),
                                    input=b"quit\n")
    m = re.search(r"a:PKEY: (\S+?),", out)
    if code or not m:
        return "failed (%d): %s" % (code, (err or out)[-200:].replace("\n", " "))
    return {"id-ecPublicKey": "ECDSA", "rsaEncryption": "RSA"}.get(m.group(1), m.group(1))


def program_saw(port, ciphers=None, version=None):
    """SSL_SERVER_A_KEY as the program saw it, through Python's ssl."""
    ctx = suite.client_context(ca["crt"], version)
    if ciphers:
        ctx.set_ciphers(ciphers)
    rep = suite.report_session(port, ctx)
    return suite.env_of(rep).get("SSL_SERVER_A_KEY", rep)


srv = suite.Server(["-H"], env=DUAL)
is_(served_key(srv.port, []), "ECDSA", "a client that supports both gets the ECDSA certificate")
is_(served_key(srv.port, ["-tls1_3", "-sigalgs", RSA_SIGALGS]), "RSA", "TLS 1.3, RSA signatures only: the RSA certificate")
is_(served_key(srv.port, ["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"]), "RSA", "TLS 1.2, an RSA cipher only: the RSA certificate")
is_(served_key(srv.port, ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]), "ECDSA", "TLS 1.2, an ECDSA cipher only: the ECDSA certificate")
is_(served_key(srv.port, ["-tls1_2", "-sigalgs", "RSA+SHA256"]), "RSA", "TLS 1.2, PKCS#1 RSA signatures only (an old MTA): the RSA certificate")
like(program_saw(srv.port, "ECDHE-RSA-AES256-GCM-SHA384", "1.2"), r"^rsaEncryption$", "the program sees SSL_SERVER_A_KEY of the RSA certificate")
like(program_saw(srv.port), r"^id-ecPublicKey$", "... and of the ECDSA one for a modern client")
r = suite.gnutls_cli(srv.port, ["--x509cafile", ca["crt"], "--priority", "NORMAL:-SIGN-ALL:+SIGN-RSA-PSS-RSAE-SHA256:+SIGN-RSA-SHA256"],
                     input=b"quit\n")
ok(r[0] == 0 and re.search(r"subject `[^']*CN=rsa\b[^']*', .*, RSA key \d+ bits", r[1] + r[2]), "gnutls-cli with an RSA-only priority: served the RSA certificate",
   (r[1] + r[2])[-300:])
r = suite.gnutls_cli(srv.port, ["--x509cafile", ca["crt"]], input=b"quit\n")
ok(r[0] == 0 and re.search(r"subject `[^']*CN=ec\b[^']*', .*, EC/ECDSA key", r[1] + r[2]), "gnutls-cli by default: served the ECDSA certificate",
   (r[1] + r[2])[-300:])
is_(suite.log_problems(srv), [], "nothing wrong logged")
srv.stop()

# the other way round: RSA first, ECDSA second
srv = suite.Server(["-H"], env={"CERTFILE": rsa["pem"], "KEYFILE": rsa["key"], "CERTFILE2": ec["pem"], "KEYFILE2": ec["key"]})
is_(served_key(srv.port, []), "ECDSA", "RSA in CERTFILE, ECDSA in CERTFILE2: a modern client still gets ECDSA")
is_(served_key(srv.port, ["-tls1_3", "-sigalgs", RSA_SIGALGS]), "RSA", "... and an RSA-only one RSA")
srv.stop()

# without CERTFILE2, an RSA-only client finds no certificate it can use
srv = suite.Server(["-H"], env={"CERTFILE": ec["pem"], "KEYFILE": ec["key"]})
like(served_key(srv.port, ["-tls1_3", "-sigalgs", RSA_SIGALGS]), r"^failed", "ECDSA alone: an RSA-only client fails (what CERTFILE2 is for)")
srv.stop()

# per SNI name
env = dict(DUAL, **{"CERTFILE:other.example.net": sni_ec["pem"], "KEYFILE:other.example.net": sni_ec["key"],
                    "CERTFILE2:other.example.net": sni_rsa["pem"], "KEYFILE2:other.example.net": sni_rsa["key"]})
srv = suite.Server(["-H"], env=env)
for args, want, name in (([], "ECDSA", "a modern client"), (["-tls1_3", "-sigalgs", RSA_SIGALGS], "RSA", "an RSA-only client")):
    code, out, err = suite.s_client(srv.port, ["-CAfile", ca["crt"], "-servername", "other.example.net", "-verify_return_error",
                                               "-verify_hostname", "other.example.net"] + args, input=b"quit\n")
    m = re.search(r"a:PKEY: (\S+?),", out)
    got = {"id-ecPublicKey": "ECDSA", "rsaEncryption": "RSA"}.get(m.group(1)) if m and not code else "failed: " + err[-200:]
    is_(got, want, "SNI other.example.net, %s: its own %s certificate, verified for that name" % (name, want))
srv.stop()

# per rule: only the clients of a rule get the RSA pair
cdb = pki.path("rules.cdb")
rules = '127.0.0.2:allow,CERTFILE2="%s",KEYFILE2="%s"\n:allow\n' % (rsa["pem"], rsa["key"])
subprocess.run(["tcprules", cdb, cdb + ".tmp"], input=rules.encode(), check=True, timeout=suite.patience(10))
srv = suite.Server(["-H", "-x", cdb], env={"CERTFILE": ec["pem"], "KEYFILE": ec["key"]})
is_(served_key(srv.port, ["-tls1_3", "-sigalgs", RSA_SIGALGS], src="127.0.0.2"), "RSA", "a rule setting CERTFILE2: its client gets the RSA pair")
like(served_key(srv.port, ["-tls1_3", "-sigalgs", RSA_SIGALGS], src="127.0.0.3"), r"^failed", "... other clients do not")
srv.stop()

# sslhandoff under tcpserver
h = suite.PortCommand(["tcpserver", "-1", "-HR", "127.0.0.1", "0", suite.prog("sslhandoff"), suite.PYTHON, suite.REPORT], env=DUAL)
if ok(h.port, "tcpserver with sslhandoff started"):
    is_(served_key(h.port, ["-tls1_3", "-sigalgs", RSA_SIGALGS]), "RSA", "sslhandoff: an RSA-only client gets the RSA pair")
    is_(served_key(h.port, []), "ECDSA", "sslhandoff: a modern client the ECDSA one")
h.stop()

# configuration errors: one line at start-up, exit 111
for name, env, pattern in (
        ("two ECDSA pairs", {"CERTFILE": ec["pem"], "KEYFILE": ec["key"], "CERTFILE2": ec2["pem"], "KEYFILE2": ec2["key"]},
         r"unable to use certificate %s: its key is ECDSA, as the first certificate's: the second pair must be of another key type" % re.escape(ec2["pem"])),
        ("KEYFILE2 not matching CERTFILE2", dict(DUAL, KEYFILE2=ec["key"]), r"unable to load key %s: " % re.escape(ec["key"])),
        ("KEYFILE2 without CERTFILE2", {"CERTFILE": ec["pem"], "KEYFILE": ec["key"], "KEYFILE2": rsa["key"]}, r"KEYFILE2 is set but CERTFILE2 is not"),
        ("CERTFILE2:name without CERTFILE:name", dict(DUAL, **{"CERTFILE2:x.example": rsa["pem"]}), r"CERTFILE2 without CERTFILE for the same name"),
        ("a missing CERTFILE2", dict(DUAL, CERTFILE2="/nonexistent/rsa.pem"), r"unable to read certificate /nonexistent/rsa\.pem: No such file")):
    code, err = suite.start_failure(env=env)
    is_(code, 111, "%s: exit 111" % name)
    like(err, r"^sslserver: fatal: \(111\) .*%s" % pattern, "%s: the line says what is wrong" % name)
    is_(len(err.splitlines()), 1, "%s: one line" % name)

# the program never sees the second pair's paths
srv = suite.Server(["-H"], env=DUAL)
rep = suite.report_session(srv.port, suite.client_context(ca["crt"]))
env = suite.env_of(rep)
is_([k for k in env if k.startswith(("CERTFILE", "KEYFILE"))], [], "CERTFILE2 and KEYFILE2 are removed from the program's environment")
srv.stop()
