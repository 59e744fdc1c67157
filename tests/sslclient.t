#!/usr/bin/python3
# sslclient (DESIGN.md sections 5 and 6) against servers we did not write -
# openssl s_server, gnutls-serv, a Python ssl server in this process - and
# our own sslserver: verification (chain, intermediate, unknown CA, expired,
# self-signed), host name checks the OpenSSL way (SANs, no CN fallback when
# there are DNS SANs, no partial wildcards, IP SANs for address literals),
# SNI for names only, pinning, -X, -N, client certificates and key
# passphrases, TLS 1.2 and 1.3, the environment (-s, -e), bytes both ways,
# exit codes, and the deferred (-y, client-side UCSPI-TLS) STARTTLS mode.
#
# The test moves itself into private network and mount namespaces when it
# can (root): gnutls-serv can only listen on every address, and the wildcard
# cases need names such as a.example.test to resolve to 127.0.0.1 (a
# private /etc/hosts). Without them those cases are skipped.
import hashlib
import itertools
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike, diag, skip, scenario  # noqa: E402
import suite  # noqa: E402

HOSTS = ("127.0.0.1 localhost\n"
         "127.0.0.1 a.example.test b.a.example.test example.test ab.example.test other.test\n")
NS = suite.private_namespaces(HOSTS)
if NS:
    diag("no private namespaces (%s): gnutls-serv and wildcard cases are skipped" % NS)

APP = os.path.join(suite.BIN, "sslclient-app.py")
SMTPCLIENT = os.path.join(suite.BIN, "starttls-client.py")
SMTPD = [suite.PYTHON, os.path.join(suite.TOP, "examples", "starttls-smtpd")]
WORK = suite.tmpdir()


# ---------------------------------------------------------------- certificates
pki = suite.Pki()
ca = pki.ca("ca")
inter = pki.ca("inter", issuer=ca)
otherca = pki.ca("other-ca")
clientca = pki.ca("client-ca")
selfsigned = pki.ca("selfsigned")
good = pki.leaf("good", ca)                                        # DNS:localhost
viaint = pki.leaf("via-inter", inter, chain=(inter,))              # pem: leaf + intermediate
inter2 = pki.ca("inter2", issuer=inter)
viaint2 = pki.leaf("via-inter2", inter2, chain=(inter2, inter))    # two intermediates
wrongname = pki.leaf("wrong-name", ca, dns=("other.test",))
cnsan = pki.leaf("cn-localhost-san-other", ca, dns=("other.test",), subj="/O=sslsuite tests/CN=localhost")
cnonly = pki.leaf("cn-only", ca, dns=(), subj="/O=sslsuite tests/CN=localhost")
wild = pki.leaf("wildcard", ca, dns=("*.example.test",))
partial = pki.leaf("partial-wildcard", ca, dns=("a*.example.test",))
ipsan = pki.leaf("ip-san", ca, dns=(), ips=("127.0.0.1", "::1"))
stranger = pki.leaf("stranger", otherca)
expired = suite.dated_leaf(pki, "expired", ca, "20200101000000Z", "20200201000000Z")
client = pki.leaf("client", clientca, dns=(), client=True)
PASS = "correct horse battery"
enckey = pki.path("client-enc.key")
subprocess.run(["openssl", "pkey", "-in", client["key"], "-aes256", "-passout", "pass:" + PASS, "-out", enckey],
               check=True, capture_output=True)
passfile = pki.path("pass")
with open(passfile, "w") as f:
    f.write(PASS + "\n")
badpass = pki.path("badpass")
with open(badpass, "w") as f:
    f.write("wrong " + PASS + "\n")


def spki(crt):
    """The DER SubjectPublicKeyInfo (what HPKP-style and DANE 3 1 1 pins digest)."""
    pem = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-pubkey"], check=True, capture_output=True).stdout
    return subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pem, check=True,
                          capture_output=True).stdout


def keybits(crt):
    """The subjectPublicKey BIT STRING's contents (for EC the encoded point):
    the end of the SPKI, after the BIT STRING header and its unused-bits byte."""
    d = spki(crt)
    i = 1 + (1 if d[1] < 0x80 else 1 + (d[1] & 0x7f))   # past the SEQUENCE header
    i += 2 + d[i + 1]                                     # past the AlgorithmIdentifier (short form)
    assert d[i] == 0x03                                   # BIT STRING
    n = d[i + 1]
    i += 2 if n < 0x80 else 2 + (n & 0x7f)
    return d[i + 1:]                                      # past the unused-bits byte


def subject(crt, what="-subject"):
    out = subprocess.run(["openssl", "x509", "-in", crt, "-noout", what, "-nameopt", "compat"], check=True,
                         capture_output=True).stdout.decode()
    return out.strip().partition("=")[2]


def pem(crt):
    with open(crt) as f:
        return f.read().strip()


# ---------------------------------------------------------------- running sslclient

def sslclient(opts, host, port, app, env=None, timeout=30):
    """Runs sslclient in a clean environment; returns (exit code, stdout, stderr);
    the exit code is None if it had to be killed."""
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    e.update(env or {})
    try:
        r = subprocess.run([suite.prog("sslclient")] + list(opts) + [host, str(port)] + list(app), env=e,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=suite.patience(timeout))
    except subprocess.TimeoutExpired as x:
        return None, "", "timed out: %r" % (x.stderr,)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


report_numbers = itertools.count(1)   # each attempt's report has a file of its own


def attempt(opts, host, port, line="hello", code=None, env=None):
    """sslclient running sslclient-app.py report: returns (exit code, stderr,
    the program's report or None if it never ran)."""
    path = os.path.join(WORK, "report%d.json" % next(report_numbers))
    app = [suite.PYTHON, APP, "report", path] + ([line] if line is not None else [])
    if code is not None:
        app.append(str(code))
    rc, out, err = sslclient(opts, host, port, app, env=env)
    try:
        with open(path) as f:
            rep = json.load(f)
    except (OSError, ValueError):
        # started (it leaves path.started first thing) but stopped before its report
        rep = {"env": {}, "fds": [], "incomplete": True} if os.path.exists(path + ".started") else None
    return rc, err, rep


def accepted(name, res, got=None):
    rc, err, rep = res
    ok(rc == 0 and rep is not None and "incomplete" not in rep, "%s: accepted, program ran, exit 0" % name,
       "exit %r, stderr %r" % (rc, err))
    if got is not None:
        is_(rep.get("got") if rep else None, got, "%s: bytes went both ways" % name)


def refused(name, res, reason, code=110):
    rc, err, rep = res
    is_(rc, code, "%s: exit %d" % (name, code))
    ok(rep is None, "%s: program never ran" % name)
    like(err, reason, "%s: the reason is given" % name)


# ---------------------------------------------------------------- openssl s_server: verification

def s_server(cert, extra=(), name="openssl s_server"):
    """s_server -rev (lines come back reversed) with cert (a Pki leaf, or a CA
    for a self-signed certificate)."""
    args = ["-cert", cert["crt"], "-key", cert["key"], "-rev"] + list(extra)
    srv = suite.OpensslServer(args)
    ok(srv.port, "%s with %s started" % (name, cert["name"]), srv.log())
    return srv


def t_good():
    srv = s_server(good)
    res = attempt(["-a", ca["crt"]], "localhost", srv.port)
    accepted("s_server, leaf signed by the -a CA", res, "olleh\n")
    is_(res[1], "", "s_server: nothing on stderr without -v")
    res = attempt(["-v", "-a", ca["crt"]], "localhost", srv.port)
    like(res[1], r"^sslclient: tls \d+ connect TLSv1\.3:TLS_\S+$", "-v: the tls connect line names protocol and cipher")
    res = attempt(["-a", ca["crt"]], "localhost", srv.port, code=7)
    is_(res[0], 7, "the program's exit status (7) is sslclient's")
    res = attempt([], "localhost", srv.port)
    refused("no -a: the system store does not know the test CA", res, r"\(110\) server certificate refused.*local issuer")
    res = attempt([], "localhost", srv.port, env={"CAFILE": ca["crt"]})
    accepted("CAFILE in the environment", res, "olleh\n")
    res = attempt(["-a", otherca["crt"]], "localhost", srv.port)
    refused("-a with another CA", res, r"unable to get local issuer certificate")
    srv.stop()


def t_intermediate():
    srv = s_server(viaint, ["-cert_chain", inter["crt"]], "s_server sending leaf + intermediate")
    res = attempt(["-s", "-a", ca["crt"]], "localhost", srv.port)
    accepted("intermediate chain, only the root trusted", res, "olleh\n")
    env = suite.env_of(res[2])
    is_(env.get("SSL_SERVER_I_DN"), "/O=sslsuite tests/CN=inter", "intermediate: SSL_SERVER_I_DN names the intermediate")
    is_((env.get("SSL_SERVER_CERT_CHAIN_0") or "").strip(), pem(inter["crt"]),
        "intermediate: SSL_SERVER_CERT_CHAIN_0 is the intermediate's PEM")
    srv.stop()
    chain2 = pki.path("inter2-inter.pem")
    with open(chain2, "w") as f:
        f.write(open(inter2["crt"]).read() + open(inter["crt"]).read())
    srv = s_server(viaint2, ["-cert_chain", chain2], "s_server sending leaf + two intermediates")
    res = attempt(["-a", ca["crt"]], "localhost", srv.port)
    accepted("two intermediates at the default depth", res, "olleh\n")
    res = attempt(["-V", "2", "-a", ca["crt"]], "localhost", srv.port)
    accepted("two intermediates, -V 2", res)
    res = attempt(["-V", "1", "-a", ca["crt"]], "localhost", srv.port)
    refused("two intermediates, -V 1", res, r"server certificate refused.*chain too long")
    srv.stop()
    srv = s_server(viaint, (), "s_server sending the leaf without its intermediate")
    res = attempt(["-a", ca["crt"]], "localhost", srv.port)
    refused("leaf without its intermediate", res, r"unable to get local issuer certificate")
    srv.stop()


def t_names():
    srv = s_server(wrongname)
    res = attempt(["-a", ca["crt"]], "localhost", srv.port)
    refused("wrong name (SAN other.test, host localhost)", res, r"hostname mismatch")
    lines = res[1].splitlines()
    is_(len(lines), 1, "wrong name: exactly one line on stderr")
    like(lines[0] if lines else "", r"^sslclient: error: \(110\) server certificate refused from: 127\.0\.0\.1 .*: hostname mismatch \(expected localhost\)$",
         "wrong name: the line says the certificate was refused for a hostname mismatch")
    res = attempt(["-N", "-a", ca["crt"]], "localhost", srv.port)
    accepted("-N: the name is not checked", res, "olleh\n")
    if NS:
        skip("the same certificate by its own name (other.test)", "no private /etc/hosts: %s" % NS)
    else:
        res = attempt(["-a", ca["crt"]], "other.test", srv.port)
        accepted("the same certificate by its own name (other.test)", res, "olleh\n")
    srv.stop()
    srv = s_server(stranger)
    res = attempt(["-N", "-a", ca["crt"]], "localhost", srv.port)
    refused("-N still verifies the chain (unknown CA)", res, r"unable to get local issuer certificate")
    srv.stop()


def t_sni_openssl():
    # s_server picks its certificate by SNI: "localhost" gets good (DNS:localhost),
    # no SNI gets ip-san (IP:127.0.0.1 only), another name a fatal alert.
    srv = s_server(ipsan, ["-servername", "localhost", "-servername_fatal", "-cert2", good["crt"], "-key2", good["key"]],
                   "s_server choosing its certificate by SNI")
    res = attempt(["-s", "-a", ca["crt"]], "localhost", srv.port)
    accepted("s_server SNI: name localhost gets the DNS:localhost certificate", res, "olleh\n")
    is_(suite.env_of(res[2]).get("SSL_SERVER_S_DN"), subject(good["crt"]), "s_server SNI: the certificate chosen by the name sent")
    res = attempt(["-s", "-a", ca["crt"]], "127.0.0.1", srv.port)
    accepted("s_server SNI: IP literal sends none, gets the IP SAN certificate", res, "olleh\n")
    is_(suite.env_of(res[2]).get("SSL_SERVER_S_DN"), subject(ipsan["crt"]), "s_server SNI: the default certificate without SNI")
    srv.stop()


def t_expired_unknown_selfsigned():
    srv = s_server(expired)
    res = attempt(["-a", ca["crt"]], "localhost", srv.port)
    refused("expired certificate", res, r"certificate has expired")
    srv.stop()
    srv = s_server(stranger)
    res = attempt(["-a", ca["crt"]], "localhost", srv.port)
    refused("unknown CA", res, r"unable to get local issuer certificate")
    srv.stop()
    srv = s_server(selfsigned)
    res = attempt(["-a", ca["crt"]], "localhost", srv.port)
    refused("self-signed certificate", res, r"self[- ]signed certificate")
    res = attempt(["-X"], "localhost", srv.port)
    accepted("-X: self-signed, wrong name, no CA: accepted", res, "olleh\n")
    srv.stop()


def t_pins():
    srv = s_server(good)
    certpin = hashlib.sha256(suite.der(good["crt"])).hexdigest()
    keypin = hashlib.sha256(spki(good["crt"])).hexdigest()
    otherpin = hashlib.sha256(suite.der(stranger["crt"])).hexdigest()
    res = attempt(["-F", "sha256:" + certpin], "localhost", srv.port)
    accepted("-F sha256 of the certificate (no -a)", res, "olleh\n")
    colons = ":".join(certpin[i:i + 2] for i in range(0, 64, 2)).upper()
    res = attempt(["-F", "SHA256:" + colons], "localhost", srv.port)
    accepted("-F with colons and upper case", res)
    res = attempt(["-F", "sha256:" + keypin], "localhost", srv.port)
    accepted("-F sha256 of the DER SubjectPublicKeyInfo (HPKP/DANE 3 1 1 form)", res, "olleh\n")
    res = attempt(["-F", "sha256:" + hashlib.sha256(keybits(good["crt"])).hexdigest()], "localhost", srv.port)
    refused("-F sha256 of the bare public key bits (not a standard pin form)", res, r"pin mismatch")
    res = attempt(["-F", "sha256:" + otherpin], "localhost", srv.port)
    refused("-F pin mismatch", res, r"\(110\) server certificate refused.*pin mismatch")
    res = attempt(["-F", "sha256:" + otherpin, "-a", ca["crt"]], "localhost", srv.port)
    refused("-F pin mismatch, chain valid", res, r"pin mismatch")
    res = attempt(["-F", "sha256:1234"], "localhost", srv.port)
    refused("-F too short", res, r"fingerprint", code=100)
    srv.stop()


def t_clientcert():
    for ver in ("1.3", "1.2"):
        flag = "-tls1_3" if ver == "1.3" else "-tls1_2"
        srv = s_server(good, ["-Verify", "1", "-CAfile", clientca["crt"], flag],
                       "s_server demanding a client certificate, TLS %s only," % ver)
        res = attempt(["-a", ca["crt"], "-c", client["crt"], "-k", client["key"]], "localhost", srv.port)
        accepted("TLS %s client certificate with -c/-k" % ver, res, "olleh\n")
        ok(srv.wait_log(r"Peer certificate: .*CN = client"), "TLS %s: s_server saw our client certificate" % ver)
        res = attempt(["-a", ca["crt"], "-c", client["crt"], "-k", enckey, "-K", passfile], "localhost", srv.port)
        accepted("TLS %s encrypted key with -K passfile" % ver, res, "olleh\n")
        res = attempt(["-a", ca["crt"]], "localhost", srv.port)
        if ver == "1.2":
            refused("TLS 1.2 no client certificate", res, r"\(111\) unable to connect TLS to: 127\.0\.0\.1 .*handshake failure",
                    code=111)
        else:
            # TLS 1.3: the server's verdict comes after the client's Finished, so
            # the program may already be running: the relay fails, the program
            # gets SIGTERM, and sslclient.1 documents its status (usually 143)
            # as the exit code; 111, what the error line announces, would do too.
            ok(res[0] in (111, 143), "TLS 1.3 no client certificate: exit 111 or the terminated program's 143",
               "exit %r" % res[0])
            like(res[1], r"\(111\) .*certificate required", "TLS 1.3 no client certificate: the reason is given")
        srv.stop()
    res = attempt(["-a", ca["crt"], "-c", client["crt"], "-k", enckey, "-K", badpass], "localhost", "1")
    refused("-K with the wrong passphrase", res, r"unable to load key", code=111)
    res = attempt(["-a", ca["crt"], "-c", client["crt"], "-k", enckey], "localhost", "1")
    refused("encrypted key and no passphrase", res, r"unable to load key", code=111)


def t_versions_env():
    for ver in ("1.2", "1.3"):
        srv = s_server(good, ["-tls1_2" if ver == "1.2" else "-tls1_3"], "s_server TLS %s only" % ver)
        res = attempt(["-s", "-a", ca["crt"]], "localhost", srv.port)
        accepted("TLS %s only server" % ver, res, "olleh\n")
        env = suite.env_of(res[2])
        is_(env.get("SSL_PROTOCOL"), "TLSv" + ver, "TLS %s: -s: SSL_PROTOCOL" % ver)
        if ver == "1.3":
            is_(env.get("SSL_SERVER_S_DN"), subject(good["crt"]), "-s: SSL_SERVER_S_DN is the server's subject")
            is_(env.get("SSL_SERVER_I_DN"), subject(good["crt"], "-issuer"), "-s: SSL_SERVER_I_DN is its issuer")
            is_((env.get("SSL_SERVER_CERT") or "").strip(), pem(good["crt"]), "-s: SSL_SERVER_CERT is the server's PEM")
            is_(env.get("SSL_SERVER_SAN_DNS_0"), "localhost", "-s: SSL_SERVER_SAN_DNS_0")
            is_(env.get("SSL_PEER_CERT_HASH"), "SHA256:" + hashlib.sha256(suite.der(good["crt"])).hexdigest(),
                "-s: SSL_PEER_CERT_HASH (s6 name) is the certificate's SHA-256")
            is_(env.get("SSL_TLS_SNI"), "localhost", "-s: SSL_TLS_SNI is the name sent")
            ok(env and not [k for k in env if k.startswith("SSL_CLIENT_")], "-s without -c: no SSL_CLIENT_* variables")
            is_(env.get("PROTO"), "SSL", "PROTO=SSL")
            res = attempt(["-a", ca["crt"]], "localhost", srv.port)
            env = suite.env_of(res[2])
            ok(env and not [k for k in env if k.startswith("SSL_")], "without -s: no SSL_* variables",
               sorted(k for k in env if k.startswith("SSL_")))
        srv.stop()


# ---------------------------------------------------------------- a Python ssl server: names, SNI

def py_server(cert, host="127.0.0.1"):
    return suite.PyTLSServer(cert["pem"], cert["key"], host=host)


def py_attempt(ps, opts, host, name):
    """One connection to a PyTLSServer; returns (result, the server's record)."""
    n = len(ps.conns)
    res = attempt(opts, host, ps.port)
    rec = ps.conns[n] if ps.wait_conns(n + 1) else None
    if rec is None:
        diag("%s: the Python server saw no connection" % name)
    return res, rec or {}


def t_python():
    ps = py_server(good)
    res, rec = py_attempt(ps, ["-a", ca["crt"]], "localhost", "python")
    accepted("Python ssl server", res, "hello from python\n")
    is_(rec.get("line"), "hello\n", "Python server received the program's line")
    is_(rec.get("sni"), "localhost", "SNI sent for a name")
    res, rec = py_attempt(ps, ["-N", "-a", ca["crt"]], "localhost", "python -N")
    is_(rec.get("sni"), "localhost", "-N: SNI still sent")
    res, rec = py_attempt(ps, ["-X"], "localhost", "python -X")
    is_(rec.get("sni"), "localhost", "-X: SNI still sent")
    res, rec = py_attempt(ps, ["-a", ca["crt"]], "127.0.0.1", "python IP, no IP SAN")
    refused("IP literal, certificate without an IP SAN", res, r"IP address mismatch")
    is_(rec.get("sni"), None, "IP literal: no SNI sent")
    ps.stop()

    ps = py_server(ipsan)
    res, rec = py_attempt(ps, ["-a", ca["crt"]], "127.0.0.1", "python IP SAN")
    accepted("IP literal 127.0.0.1 with IP SAN", res, "hello from python\n")
    is_(rec.get("sni"), None, "IP literal with IP SAN: no SNI sent")
    res, rec = py_attempt(ps, ["-a", ca["crt"]], "0", "python host 0")
    accepted("host 0 is 127.0.0.1, checked against the IP SAN", res, "hello from python\n")
    is_(rec.get("sni"), None, "host 0: no SNI sent")
    res, rec = py_attempt(ps, ["-a", ca["crt"]], "localhost", "python IP SAN by name")
    refused("certificate with only IP SANs, by DNS name", res, r"hostname mismatch")
    ps.stop()
    try:
        ps6 = py_server(ipsan, host="::1")
    except OSError as e:
        skip("IPv6 literal ::1 with IP SAN", "no ::1: %s" % e)
    else:
        res, rec = py_attempt(ps6, ["-a", ca["crt"]], "::1", "python ::1")
        accepted("IPv6 literal ::1 with IP SAN", res, "hello from python\n")
        is_(rec.get("sni"), None, "IPv6 literal: no SNI sent")
        ps6.stop()

    ps = py_server(cnsan)
    res, rec = py_attempt(ps, ["-a", ca["crt"]], "localhost", "python CN+SAN")
    refused("CN=localhost but SAN DNS:other.test, host localhost (no CN fallback)", res, r"hostname mismatch")
    ps.stop()
    ps = py_server(cnonly)
    res, rec = py_attempt(ps, ["-a", ca["crt"]], "localhost", "python CN only")
    accepted("CN=localhost and no SAN at all: the CN is the name", res, "hello from python\n")
    ps.stop()

    if NS:
        for what in ("*.example.test matches a.example.test", "*.example.test refuses b.a.example.test",
                     "*.example.test refuses example.test", "a*.example.test (partial) refuses ab.example.test"):
            skip(what, "no private /etc/hosts: %s" % NS)
        return
    ps = py_server(wild)
    res, rec = py_attempt(ps, ["-a", ca["crt"]], "a.example.test", "python wildcard")
    accepted("*.example.test matches a.example.test", res, "hello from python\n")
    is_(rec.get("sni"), "a.example.test", "wildcard: SNI is the name given")
    res, rec = py_attempt(ps, ["-a", ca["crt"]], "b.a.example.test", "python wildcard 2 labels")
    refused("*.example.test refuses b.a.example.test", res, r"hostname mismatch")
    res, rec = py_attempt(ps, ["-a", ca["crt"]], "example.test", "python wildcard apex")
    refused("*.example.test refuses example.test", res, r"hostname mismatch")
    ps.stop()
    ps = py_server(partial)
    res, rec = py_attempt(ps, ["-a", ca["crt"]], "ab.example.test", "python partial wildcard")
    refused("a*.example.test (partial) refuses ab.example.test", res, r"hostname mismatch")
    ps.stop()


# ---------------------------------------------------------------- gnutls-serv

def t_gnutls():
    names = ["gnutls-serv, leaf + intermediate", "gnutls-serv TLS 1.2 only", "gnutls-serv TLS 1.3 only",
             "gnutls-serv wrong name"]
    if NS:
        for n in names:
            skip(n, "gnutls-serv listens on every address; no private network namespace: %s" % NS)
        return
    base = ["--echo", "-a", "--x509certfile", viaint["pem"], "--x509keyfile", viaint["key"]]
    gs = suite.GnutlsServer(base)
    ok(gs.port, "gnutls-serv started", gs.log())
    res = attempt(["-s", "-a", ca["crt"]], "localhost", gs.port)
    accepted(names[0], res, "hello\n")
    is_(suite.env_of(res[2]).get("SSL_SERVER_I_DN"), "/O=sslsuite tests/CN=inter", "gnutls-serv: the intermediate is the issuer")
    gs.stop()
    for ver, name in (("1.2", names[1]), ("1.3", names[2])):
        gs = suite.GnutlsServer(base + ["--priority", "NORMAL:-VERS-ALL:+VERS-TLS%s" % ver])
        res = attempt(["-s", "-a", ca["crt"]], "localhost", gs.port)
        accepted(name, res, "hello\n")
        is_(suite.env_of(res[2]).get("SSL_PROTOCOL"), "TLSv" + ver, "%s: SSL_PROTOCOL" % name)
        gs.stop()
    gs = suite.GnutlsServer(["--echo", "-a", "--x509certfile", wrongname["pem"], "--x509keyfile", wrongname["key"]])
    res = attempt(["-a", ca["crt"]], "localhost", gs.port)
    refused(names[3], res, r"hostname mismatch")
    gs.stop()


# ---------------------------------------------------------------- our sslserver: environment, bytes, exit codes

SRVENV = {"CERTFILE": good["pem"], "KEYFILE": good["key"]}


def t_environment():
    srv = suite.Server(env=SRVENV)   # report.py: the server's JSON report first, then an echo
    ok(srv.port, "sslserver started")
    for tcp in (False, True):
        opts = (["-e"] if tcp else []) + ["-a", ca["crt"]]
        res = attempt(opts, "localhost", srv.port)
        tag = "-e" if tcp else "without -e"
        accepted("sslserver %s" % tag, res)
        env = suite.env_of(res[2])
        try:
            server = json.loads(res[2]["got"])["env"] if res[2] else {}
        except ValueError:
            server = {}
        is_(env.get("PROTO"), "SSL", "%s: PROTO=SSL" % tag)
        is_(env.get("SSLREMOTEIP"), "127.0.0.1", "%s: SSLREMOTEIP" % tag)
        is_(env.get("SSLREMOTEPORT"), str(srv.port), "%s: SSLREMOTEPORT is the server's port" % tag)
        is_(env.get("SSLLOCALIP"), "127.0.0.1", "%s: SSLLOCALIP" % tag)
        ok(env.get("SSLLOCALPORT") and env.get("SSLLOCALPORT") == server.get("SSLREMOTEPORT"),
           "%s: SSLLOCALPORT is the port the server saw" % tag, (env.get("SSLLOCALPORT"), server.get("SSLREMOTEPORT")))
        tcpvars = sorted(k for k in env if k.startswith("TCP"))
        if tcp:
            for v in ("LOCALIP", "LOCALPORT", "REMOTEIP", "REMOTEPORT"):
                ok(env.get("TCP" + v) and env.get("TCP" + v) == env.get("SSL" + v), "-e: TCP%s equals SSL%s" % (v, v),
                   (env.get("TCP" + v), env.get("SSL" + v)))
        else:
            ok(env and not tcpvars, "without -e: no TCP* variables", tcpvars)
        fds = sorted(f for f, _ in res[2]["fds"]) if res[2] else []
        is_([f for f in fds if f > 2], [6, 7], "%s: the program has fds 6 and 7 and nothing else above 2" % tag)
    srv.stop()


def t_bytes():
    a = os.path.join(WORK, "a.bin")
    b = os.path.join(WORK, "b.bin")
    with open(a, "wb") as f:
        f.write(os.urandom(1 << 20))
    with open(b, "wb") as f:
        f.write(os.urandom(1 << 20))
    recv = os.path.join(WORK, "server-recv.bin")
    # each way separately: the server stores what came until EOF, then sends b
    srv = suite.Server(env=SRVENV, app=["sh", "-c", 'cat > "$0"; cat "$1"', recv, b])
    got = os.path.join(WORK, "got1.bin")
    rc, out, err = sslclient(["-a", ca["crt"]], "localhost", srv.port, [suite.PYTHON, APP, "pump", a, got])
    is_(rc, 0, "1 MB each way: exit 0")
    ok(open(recv, "rb").read() == open(a, "rb").read(), "1 MB client -> server: identical bytes, then EOF (half-close)")
    ok(open(got, "rb").read() == open(b, "rb").read(), "1 MB server -> client: identical bytes, then EOF")
    srv.stop()
    # both ways at once: cat as the server's program
    srv = suite.Server(env=SRVENV, app=["cat"])
    got = os.path.join(WORK, "got2.bin")
    rc, out, err = sslclient(["-a", ca["crt"]], "localhost", srv.port, [suite.PYTHON, APP, "pump", a, got])
    is_(rc, 0, "1 MB echoed by cat: exit 0")
    ok(open(got, "rb").read() == open(a, "rb").read(), "1 MB echoed by cat: identical bytes")
    srv.stop()


def t_connect_errors():
    port = suite.free_port()
    res = attempt(["-a", ca["crt"]], "127.0.0.1", port)
    refused("connection refused", res, r"\(110\) unable to connect to: 127\.0\.0\.1 port: %d: Connection refused" % port)
    res = attempt(["-a", ca["crt"]], "nonexistent.invalid", port)
    refused("unresolvable name", res, r"\(111\) unable to connect to: nonexistent\.invalid", code=111)


# ---------------------------------------------------------------- deferred mode (-y) against starttls-smtpd

def smtp_report(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def t_deferred():
    srv = suite.Server(["-n"], env=SRVENV, app=SMTPD)
    ok(srv.port, "sslserver -n with starttls-smtpd started")
    path = os.path.join(WORK, "smtp-ok.json")
    rc, out, err = sslclient(["-y", "-a", ca["crt"]], "localhost", srv.port, [suite.PYTHON, SMTPCLIENT, path])
    is_(rc, 0, "-y STARTTLS: exit 0")
    r = smtp_report(path)
    like("\n".join(r.get("greeting", [])), r"^220 ", "-y: the 220 greeting read in clear on fd 6")
    ehlo = "\n".join(r.get("ehlo_clear", []))
    like(ehlo, r"STARTTLS", "-y: EHLO in clear offers STARTTLS")
    unlike(ehlo, r"AUTH", "-y: EHLO in clear offers no AUTH")
    like("\n".join(r.get("starttls", [])), r"^220 ", "-y: STARTTLS answered 220")
    env = r.get("env", {})
    ok(all(k in env for k in ("SSLCTLFD", "SSLREADFD", "SSLWRITEFD")), "-y: SSLCTLFD, SSLREADFD, SSLWRITEFD set",
       sorted(env))
    ok(env and not [k for k in env if k.startswith("SSL_")], "-y: no SSL_* in the environment (they come in the block)",
       sorted(env))
    ok(r.get("block_complete"), "-y 'Y': the block ends with \\0\\0")
    block = r.get("block", {})
    like(block.get("SSL_PROTOCOL"), r"^TLSv1\.[23]$", "-y: the block holds SSL_PROTOCOL")
    is_(block.get("SSL_SERVER_S_DN"), subject(good["crt"]), "-y: the block holds the server's SSL_SERVER_S_DN")
    like("\n".join(r.get("ehlo_tls", [])), r"^250[- ]AUTH PLAIN$", "-y: EHLO through SSLREADFD/SSLWRITEFD offers AUTH PLAIN (TLS is on)")
    like("\n".join(r.get("xssl", [])), r"^250[- ]SSL_PROTOCOL=TLSv1\.[23]$", "-y: XSSL: the server sees TLS")
    like("\n".join(r.get("quit", [])), r"^221 ", "-y: QUIT answered inside TLS")
    ok(r.get("eof_after_block"), "-y 'Y': the control socket reads EOF after the block")

    path = os.path.join(WORK, "smtp-y.json")
    rc, out, err = sslclient(["-y", "-a", ca["crt"]], "localhost", srv.port, [suite.PYTHON, SMTPCLIENT, path, "y"])
    is_(rc, 0, "-y 'y': exit 0")
    r = smtp_report(path)
    is_(r.get("block_raw_len"), 0, "-y 'y': nothing on the control socket, then EOF")
    like("\n".join(r.get("ehlo_tls", [])), r"^250[- ]AUTH PLAIN$", "-y 'y': EHLO inside TLS offers AUTH PLAIN")
    like("\n".join(r.get("quit", [])), r"^221 ", "-y 'y': QUIT answered inside TLS")

    path = os.path.join(WORK, "smtp-bad.json")
    rc, out, err = sslclient(["-y", "-a", otherca["crt"]], "localhost", srv.port, [suite.PYTHON, SMTPCLIENT, path])
    is_(rc, 110, "-y, verification failing: exit 110")
    r = smtp_report(path)
    like("\n".join(r.get("starttls", [])), r"^220 ", "-y failing: STARTTLS was answered 220 first")
    is_(r.get("block_raw_len"), 0, "-y failing: the control socket closed with nothing written")
    is_(r.get("exit"), 3, "-y failing: the program saw EOF instead of a block")
    like(err, r"\(110\) server certificate refused from: 127\.0\.0\.1 .*local issuer", "-y failing: the reason is given")
    srv.stop()


scenario("good chain", t_good)
scenario("intermediate", t_intermediate)
scenario("names", t_names)
scenario("SNI with s_server", t_sni_openssl)
scenario("expired, unknown CA, self-signed", t_expired_unknown_selfsigned)
scenario("pins", t_pins)
scenario("client certificates", t_clientcert)
scenario("versions and environment", t_versions_env)
scenario("python server", t_python)
scenario("gnutls-serv", t_gnutls)
scenario("environment", t_environment)
scenario("bytes", t_bytes)
scenario("connect errors", t_connect_errors)
scenario("deferred", t_deferred)
