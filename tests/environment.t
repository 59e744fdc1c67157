#!/usr/bin/python3
# The environment the program sees: PROTO, the SSL* connection variables
# against the real socket addresses, the TCP* copies with -e only, the
# mod_ssl SSL_* variables (session and the server's own certificate) by
# default and none with -S, unknown values unset rather than empty; IPv6 and
# dual-stack addresses; the -B banner sent first, through TLS.
import os
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike, diag, skip  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
ec = pki.leaf("server-ec", ca, dns=("localhost", "mail.example.org"))
ENV = {"CERTFILE": ec["pem"], "KEYFILE": ec["key"]}


def x509(path, *args):
    r = subprocess.run(["openssl", "x509", "-noout", "-in", path] + list(args),
                       check=True, capture_output=True)
    return r.stdout.decode().strip()


def session(srv, ctx, sni="localhost", host="127.0.0.1", family=None):
    """One TLS session with report.py: returns (report, client view)."""
    if family == socket.AF_INET6:
        raw = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        raw.settimeout(suite.patience(10))
        raw.connect((host, srv.port))
    else:
        raw = socket.create_connection((host, srv.port), timeout=suite.patience(10))
    with ctx.wrap_socket(raw, server_hostname=sni) as s:
        view = {"sockname": s.getsockname()[:2], "peername": s.getpeername()[:2],
                "cipher": s.cipher(), "version": s.version()}
        rep = suite.report_of(s)
        s.sendall(b"quit\n")
        suite.read_all(s)
    return rep, view


ctx = suite.client_context(ca["crt"])

# ---------------------------------------------------------------- defaults
srv = suite.Server(["-v", "-l", "mail.example.org"], env=ENV)
ok(srv.port, "server started")
rep, view = session(srv, ctx)
env = suite.env_of(rep)
ok(rep is not None, "default: program started and reported")
is_(env.get("PROTO"), "SSL", "PROTO=SSL")
is_(env.get("SSLLOCALIP"), view["peername"][0], "SSLLOCALIP is the client's getpeername() address")
is_(env.get("SSLLOCALPORT"), str(view["peername"][1]), "SSLLOCALPORT is the client's getpeername() port")
is_(env.get("SSLLOCALPORT"), str(srv.port), "SSLLOCALPORT is the listening port")
is_(env.get("SSLREMOTEIP"), view["sockname"][0], "SSLREMOTEIP is the client's getsockname() address")
is_(env.get("SSLREMOTEPORT"), str(view["sockname"][1]), "SSLREMOTEPORT is the client's getsockname() port")
is_(env.get("SSLLOCALHOST"), "mail.example.org", "SSLLOCALHOST comes from -l")
is_(env.get("SSLREMOTEHOST"), "localhost", "SSLREMOTEHOST: reverse DNS of 127.0.0.1 (-h is the default)")
ok("SSLREMOTEINFO" not in env, "SSLREMOTEINFO unset by default (-R), not empty", repr(env.get("SSLREMOTEINFO")))
tcp = sorted(k for k in env if k.startswith("TCP"))
is_(tcp, [], "no TCP* variables without -e")
for k in ("SSLCTLFD", "SSLREADFD", "SSLWRITEFD"):
    ok(k not in env, "%s unset in immediate mode" % k)
empty = sorted(k for k, v in env.items() if (k.startswith("SSL") or k == "PROTO") and v == "")
is_(empty, [], "no SSL* variable is set to an empty value")

ok(srv.wait_log(r"^sslserver: ok \d+ mail\.example\.org:127\.0\.0\.1:%d localhost:127\.0\.0\.1::%d$"
                % (srv.port, view["sockname"][1])),
   "the 'ok' log line carries the same values (LOCALHOST:LOCALIP:LOCALPORT REMOTEHOST:REMOTEIP:INFO:REMOTEPORT)")

# Session variables.
is_(env.get("SSL_PROTOCOL"), view["version"], "SSL_PROTOCOL is the version the client negotiated")
is_(env.get("SSL_CIPHER"), view["cipher"][0], "SSL_CIPHER is the cipher the client negotiated")
is_(env.get("SSL_CIPHER_USEKEYSIZE"), str(view["cipher"][2]), "SSL_CIPHER_USEKEYSIZE is the client's secret bits")
is_(env.get("SSL_CIPHER_EXPORT"), "false", "SSL_CIPHER_EXPORT=false")
like(env.get("SSL_SESSION_ID"), r"^[0-9a-f]{16,64}$", "SSL_SESSION_ID is lowercase hex")
is_(env.get("SSL_SESSION_RESUMED"), "Initial", "SSL_SESSION_RESUMED=Initial on a new session")
is_(env.get("SSL_TLS_SNI"), "localhost", "SSL_TLS_SNI is the name the client sent")
is_(env.get("SSL_TLS_SNI_SERVERNAME"), "localhost", "SSL_TLS_SNI_SERVERNAME is the name the client sent")
like(env.get("SSL_VERSION_INTERFACE"), r"^\S+$", "SSL_VERSION_INTERFACE set")
libversion = subprocess.run(["openssl", "version"], capture_output=True).stdout.decode().strip()
libversion = libversion.split("(Library: ", 1)[1].rstrip(")") if "(Library: " in libversion else libversion
like(env.get("SSL_VERSION_LIBRARY"), r"^OpenSSL 3\.", "SSL_VERSION_LIBRARY starts with OpenSSL 3")
is_(env.get("SSL_VERSION_LIBRARY"), libversion, "SSL_VERSION_LIBRARY is the run-time library's version string")
is_(env.get("SSL_CLIENT_VERIFY"), "NONE", "SSL_CLIENT_VERIFY=NONE without a client certificate")
client_vars = sorted(k for k in env if k.startswith("SSL_CLIENT_") and k != "SSL_CLIENT_VERIFY")
is_(client_vars, [], "no SSL_CLIENT_* certificate variables without a client certificate")
ok("SSL_PEER_CERT_HASH" not in env and "SSL_PEER_CERT_SUBJECT" not in env, "no SSL_PEER_CERT_* without a client certificate")

# The server's own certificate.
serial = int(x509(ec["crt"], "-serial").split("=", 1)[1], 16)
is_(env.get("SSL_SERVER_M_VERSION"), "3", "SSL_SERVER_M_VERSION=3")
is_(env.get("SSL_SERVER_M_SERIAL"), str(serial), "SSL_SERVER_M_SERIAL: the serial in decimal")
is_(env.get("SSL_SERVER_S_DN"), "/C=DE/O=sslsuite tests/CN=server-ec", "SSL_SERVER_S_DN in /C=../O=../CN=.. form")
is_(env.get("SSL_SERVER_S_DN_CN"), "server-ec", "SSL_SERVER_S_DN_CN")
is_(env.get("SSL_SERVER_S_DN_C"), "DE", "SSL_SERVER_S_DN_C")
is_(env.get("SSL_SERVER_S_DN_O"), "sslsuite tests", "SSL_SERVER_S_DN_O")
is_(env.get("SSL_SERVER_I_DN"), "/O=sslsuite tests/CN=ca", "SSL_SERVER_I_DN: the issuing CA")
is_(env.get("SSL_SERVER_I_DN_CN"), "ca", "SSL_SERVER_I_DN_CN")
is_(env.get("SSL_SERVER_V_START"), x509(ec["crt"], "-startdate").split("=", 1)[1], "SSL_SERVER_V_START as openssl x509 -startdate prints it")
is_(env.get("SSL_SERVER_V_END"), x509(ec["crt"], "-enddate").split("=", 1)[1], "SSL_SERVER_V_END as openssl x509 -enddate prints it")
like(env.get("SSL_SERVER_V_END"), r"^[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d \d{4} GMT$", "SSL_SERVER_V_END shape: 'Nov 23 08:26:38 2026 GMT'")
is_(env.get("SSL_SERVER_A_SIG"), "ecdsa-with-SHA256", "SSL_SERVER_A_SIG=ecdsa-with-SHA256")
is_(env.get("SSL_SERVER_A_KEY"), "id-ecPublicKey", "SSL_SERVER_A_KEY=id-ecPublicKey")
is_(env.get("SSL_SERVER_SAN_DNS_0"), "localhost", "SSL_SERVER_SAN_DNS_0")
is_(env.get("SSL_SERVER_SAN_DNS_1"), "mail.example.org", "SSL_SERVER_SAN_DNS_1")
ok("SSL_SERVER_SAN_DNS_2" not in env, "no SSL_SERVER_SAN_DNS_2 for a certificate with two names")
is_((env.get("SSL_SERVER_CERT") or "").strip(), open(ec["crt"]).read().strip(), "SSL_SERVER_CERT is the PEM of the leaf")

# A second session: a fresh session id.
rep2, _ = session(srv, ctx)
ok(suite.env_of(rep2).get("SSL_SESSION_ID") and suite.env_of(rep2).get("SSL_SESSION_ID") != env.get("SSL_SESSION_ID"),
   "SSL_SESSION_ID differs between two sessions")

# TLS 1.2 with a chosen cipher, and no SNI at all.
ctx12 = suite.client_context(ca["crt"], "1.2")
ctx12.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
rep, view = session(srv, ctx12)
env = suite.env_of(rep)
is_(env.get("SSL_PROTOCOL"), "TLSv1.2", "TLS 1.2: SSL_PROTOCOL=TLSv1.2")
is_(env.get("SSL_CIPHER"), "ECDHE-ECDSA-AES128-GCM-SHA256", "TLS 1.2: SSL_CIPHER is the cipher the client chose")
is_(view["cipher"][0], env.get("SSL_CIPHER"), "TLS 1.2: the client agrees on the cipher")
is_((env.get("SSL_CIPHER_USEKEYSIZE"), env.get("SSL_CIPHER_ALGKEYSIZE")), ("128", "128"), "TLS 1.2 AES-128: USEKEYSIZE and ALGKEYSIZE 128")

nosni = suite.client_context(verify=False)
rep, view = session(srv, nosni, sni=None)
env = suite.env_of(rep)
ok(rep is not None, "no SNI: program started")
ok("SSL_TLS_SNI" not in env, "no SNI: SSL_TLS_SNI unset", repr(env.get("SSL_TLS_SNI")))
ok("SSL_TLS_SNI_SERVERNAME" not in env, "no SNI: SSL_TLS_SNI_SERVERNAME unset", repr(env.get("SSL_TLS_SNI_SERVERNAME")))

rep, view = session(srv, ctx, sni="mail.example.org")
is_(suite.env_of(rep).get("SSL_TLS_SNI"), "mail.example.org", "SNI mail.example.org: SSL_TLS_SNI")
is_(suite.env_of(rep).get("SSL_TLS_SNI_SERVERNAME"), "mail.example.org", "SNI mail.example.org: SSL_TLS_SNI_SERVERNAME")

# openssl s_client with TLS 1.3 ChaCha20: the cipher it reports is the program's SSL_CIPHER.
rc, out, err = suite.s_client(srv.port, ["-brief", "-CAfile", ca["crt"], "-servername", "localhost",
                                         "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"], input=b"quit\n")
rep = suite.json_line(out)
env = suite.env_of(rep)
like(err, r"Ciphersuite: TLS_CHACHA20_POLY1305_SHA256", "s_client negotiated TLS_CHACHA20_POLY1305_SHA256")
is_(env.get("SSL_CIPHER"), "TLS_CHACHA20_POLY1305_SHA256", "s_client: SSL_CIPHER is the suite it negotiated")
is_((env.get("SSL_CIPHER_USEKEYSIZE"), env.get("SSL_CIPHER_ALGKEYSIZE")), ("256", "256"), "ChaCha20: USEKEYSIZE and ALGKEYSIZE 256")
ok(srv.wait_log(r"^sslserver: end \d+ status 0$"), "sessions ended with status 0")
srv.stop()

# ---------------------------------------------------------------- -H, -e, -E, -S
srv = suite.Server(["-H"], env=ENV)
rep, view = session(srv, ctx)
env = suite.env_of(rep)
ok(rep is not None, "-H: program started")
ok("SSLREMOTEHOST" not in env, "-H: SSLREMOTEHOST unset, not empty", repr(env.get("SSLREMOTEHOST")))
ok("SSLLOCALHOST" not in env, "-H without -l: SSLLOCALHOST unset, not empty", repr(env.get("SSLLOCALHOST")))
srv.stop()

srv = suite.Server(["-e"], env=ENV)
rep, view = session(srv, ctx)
env = suite.env_of(rep)
ok(rep is not None, "-e: program started")
for k in ("LOCALIP", "LOCALPORT", "LOCALHOST", "REMOTEIP", "REMOTEPORT", "REMOTEHOST"):
    ok(env.get("TCP" + k) is not None and env.get("TCP" + k) == env.get("SSL" + k),
       "-e: TCP%s equals SSL%s (%r)" % (k, k, env.get("SSL" + k)), "TCP: %r SSL: %r" % (env.get("TCP" + k), env.get("SSL" + k)))
is_(env.get("TCPREMOTEIP"), view["sockname"][0], "-e: TCPREMOTEIP is the client address")
is_(env.get("TCPREMOTEPORT"), str(view["sockname"][1]), "-e: TCPREMOTEPORT is the client port")
ok("TCPREMOTEINFO" not in env, "-e: TCPREMOTEINFO unset like SSLREMOTEINFO")
is_(env.get("SSLLOCALHOST"), "localhost", "no -l, -h: SSLLOCALHOST is the reverse DNS of the local address")
is_(env.get("PROTO"), "SSL", "-e: PROTO is still SSL")
srv.stop()

srv = suite.Server(["-e", "-E"], env=ENV)
rep, view = session(srv, ctx)
is_(sorted(k for k in suite.env_of(rep) if k.startswith("TCP")), [], "-e then -E: no TCP* variables")
srv.stop()

srv = suite.Server(["-S"], env=ENV)
rep, view = session(srv, ctx)
env = suite.env_of(rep)
ok(rep is not None, "-S: program started")
is_(sorted(k for k in env if k.startswith("SSL_")), [], "-S: no SSL_* variables")
is_(env.get("SSLREMOTEIP"), view["sockname"][0], "-S: the SSL* connection variables are still there")
srv.stop()

srv = suite.Server(["-S", "-s"], env=ENV)
rep, view = session(srv, ctx)
is_(suite.env_of(rep).get("SSL_PROTOCOL"), view["version"], "-S then -s: SSL_* back")
srv.stop()

# ---------------------------------------------------------------- RSA, self-signed, big serial
d = pki.dir
rsakey, rsacrt = os.path.join(d, "self-rsa.key"), os.path.join(d, "self-rsa.crt")
subj = "/C=DE/ST=Berlin/L=Berlin/O=Example Mail/OU=Ops/CN=mail.example.org/emailAddress=postmaster@example.org"
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", rsakey, "-out", rsacrt,
                "-days", "10", "-subj", subj, "-addext", "subjectAltName=DNS:mail.example.org,DNS:localhost"],
               check=True, capture_output=True)
srv = suite.Server([], env={"CERTFILE": rsacrt, "KEYFILE": rsakey})
rep, view = session(srv, suite.client_context(rsacrt))
env = suite.env_of(rep)
ok(rep is not None, "RSA self-signed: program started")
serial = int(x509(rsacrt, "-serial").split("=", 1)[1], 16)
ok(serial > 2 ** 64, "RSA self-signed: a serial wider than 64 bits (%d bits)" % serial.bit_length())
is_(env.get("SSL_SERVER_M_SERIAL"), str(serial), "RSA: SSL_SERVER_M_SERIAL, a big serial in decimal")
is_(env.get("SSL_SERVER_A_SIG"), "sha256WithRSAEncryption", "RSA: SSL_SERVER_A_SIG=sha256WithRSAEncryption")
is_(env.get("SSL_SERVER_A_KEY"), "rsaEncryption", "RSA: SSL_SERVER_A_KEY=rsaEncryption")
is_(env.get("SSL_SERVER_S_DN"), subj, "RSA: SSL_SERVER_S_DN with every part")
is_(env.get("SSL_SERVER_I_DN"), subj, "RSA self-signed: SSL_SERVER_I_DN equals the subject")
for part, val in (("C", "DE"), ("ST", "Berlin"), ("L", "Berlin"), ("O", "Example Mail"), ("OU", "Ops"),
                  ("CN", "mail.example.org"), ("Email", "postmaster@example.org")):
    is_(env.get("SSL_SERVER_S_DN_" + part), val, "RSA: SSL_SERVER_S_DN_%s" % part)
is_(env.get("SSL_SERVER_V_START"), x509(rsacrt, "-startdate").split("=", 1)[1], "RSA: SSL_SERVER_V_START")
is_(env.get("SSL_SERVER_V_END"), x509(rsacrt, "-enddate").split("=", 1)[1], "RSA: SSL_SERVER_V_END")
is_((env.get("SSL_SERVER_SAN_DNS_0"), env.get("SSL_SERVER_SAN_DNS_1")), ("mail.example.org", "localhost"), "RSA: SAN_DNS_0 and SAN_DNS_1 in certificate order")
is_((env.get("SSL_SERVER_CERT") or "").strip(), open(rsacrt).read().strip(), "RSA: SSL_SERVER_CERT is the PEM of the certificate")
srv.stop()

# ---------------------------------------------------------------- IPv6 and dual stack
v6 = None
try:
    t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    t.bind(("::1", 0))
    t.close()
    v6 = True
except OSError as e:
    v6 = "::1 not usable here: %s" % e

if v6 is True:
    srv = suite.Server([], env=ENV, host="::1")
    ok(srv.port, "IPv6 server on ::1 started")
    rep, view = session(srv, ctx, host="::1", family=socket.AF_INET6)
    env = suite.env_of(rep)
    is_(env.get("SSLREMOTEIP"), "::1", "IPv6: SSLREMOTEIP=::1")
    is_(env.get("SSLLOCALIP"), "::1", "IPv6: SSLLOCALIP=::1")
    is_(env.get("SSLREMOTEPORT"), str(view["sockname"][1]), "IPv6: SSLREMOTEPORT is the client's port")
    is_(env.get("SSLLOCALPORT"), str(srv.port), "IPv6: SSLLOCALPORT is the listening port")
    srv.stop()

    srv = suite.Server([], env=ENV, host=":0")
    ok(srv.port, "dual-stack server (:0) started")
    rep, view = session(srv, ctx, host="127.0.0.1")
    env = suite.env_of(rep)
    is_(env.get("SSLREMOTEIP"), "127.0.0.1", "dual stack over IPv4: SSLREMOTEIP is dotted 127.0.0.1, not ::ffff:127.0.0.1")
    is_(env.get("SSLLOCALIP"), "127.0.0.1", "dual stack over IPv4: SSLLOCALIP is dotted 127.0.0.1")
    is_(env.get("SSLREMOTEPORT"), str(view["sockname"][1]), "dual stack over IPv4: SSLREMOTEPORT")
    is_(env.get("SSLREMOTEHOST"), "localhost", "dual stack over IPv4: reverse DNS works on the mapped address")
    rep, view = session(srv, ctx, host="::1", family=socket.AF_INET6)
    is_(suite.env_of(rep).get("SSLREMOTEIP"), "::1", "dual stack over IPv6: SSLREMOTEIP=::1")
    srv.stop()
else:
    for name in ("IPv6 server on ::1", "IPv6 SSLREMOTEIP=::1", "dual-stack server", "dual stack: v4-mapped peer shown dotted"):
        skip(name, v6)

# ---------------------------------------------------------------- -B banner
banner = "220 mail.example.org ESMTP ready\r\n"
srv = suite.Server(["-B", banner, "-T", "1"], env=ENV)
with suite.tls_connect(srv.port, ctx) as s:
    s.settimeout(suite.patience(10))
    got = b""
    while len(got) < len(banner):
        c = s.recv(len(banner) - len(got))
        if not c:
            break
        got += c
    is_(got.decode(), banner, "-B: the banner bytes arrive first, through TLS")
    rep = suite.report_of(s)
    ok(rep is not None and rep["env"].get("PROTO") == "SSL", "-B: the program's output follows the banner")
    s.sendall(b"quit\n")
    suite.read_all(s)
# A client that never starts TLS gets nothing in clear, not even the banner.
with socket.create_connection(("127.0.0.1", srv.port), timeout=suite.patience(10)) as raw:
    data = suite.read_all(raw)
    is_(data, b"", "-B: no banner in clear text before the handshake (cut by -T 1)")
srv.stop()
