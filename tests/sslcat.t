#!/usr/bin/python3
# sslcat and sslconnect, the helper scripts around sslclient, against
# sslserver: what the server sends is printed; sslconnect sends typed lines
# with CR LF; both verify the server unless told otherwise.
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like  # noqa: E402
import suite  # noqa: E402

pki = suite.Pki()
ca = pki.ca("ca")
leaf = pki.leaf("server", ca)
env = {"PATH": suite.BUILD + ":" + os.environ.get("PATH", "/usr/bin:/bin")}
srv = suite.Server(["-H", "-R"], env={"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"]},
                   app=[suite.PYTHON, "-c", "import sys; print('greeting'); sys.stdout.flush(); print(repr(sys.stdin.buffer.readline()))"])


def run(args, input=b""):
    r = subprocess.run([os.path.join(suite.BUILD, args[0])] + args[1:], input=input, capture_output=True,
                       env=env, timeout=suite.patience(20))
    return r.returncode, r.stdout.decode(), r.stderr.decode()


rc, out, err = run(["sslcat", "localhost", str(srv.port), "-a", ca["crt"]])
is_(rc, 0, "sslcat: exit 0")
like(out, r"^greeting$", "sslcat: prints what the server sends")
rc, out, err = run(["sslconnect", "localhost", str(srv.port), "-a", ca["crt"]], input=b"EHLO x\n")
is_(rc, 0, "sslconnect: exit 0")
like(out, r"^greeting$", "sslconnect: prints the server's greeting")
like(out, r"^b'EHLO x\\r\\n'$", "sslconnect: the typed line reached the server with CR LF")
rc, out, err = run(["sslcat", "localhost", str(srv.port)])
is_(rc, 110, "sslcat: an unknown CA is refused (the server is verified)")
like(err, r"sslclient: error: \(110\) server certificate refused", "sslcat: the refusal is sslclient's line")
rc, out, err = run(["sslcat", "localhost", str(srv.port), "-X"])
like(out, r"^greeting$", "sslcat -X: no verification when asked")
rc, out, err = run(["sslcat"])
is_(rc, 100, "sslcat without a host: usage, exit 100")
srv.stop()
