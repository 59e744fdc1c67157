#!/usr/bin/python3
# sslcat and sslconnect, the helper scripts around sslclient, against
# sslserver: what the server sends is printed; sslconnect sends typed lines
# with CR LF; both verify the server unless told otherwise. sslconnect on a
# real terminal (a pseudo-terminal): each typed line reaches the server at
# once, Ctrl-D is the server's end of input and ends the session, and the
# server closing the connection ends sslconnect.
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, scenario  # noqa: E402
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

# A line-echo server: each line comes back at once; "bye" makes it close
# the connection; its end of input is said on stderr (the server's log).
ECHO = ("import sys\n"
        "print('greeting', flush=True)\n"
        "for l in sys.stdin.buffer:\n"
        "    print('got: %r' % l, flush=True)\n"
        "    if l == b'bye\\r\\n':\n"
        "        sys.exit(0)\n"
        "sys.stderr.write('app: end of input\\n')\n")
echo = suite.Server(["-v", "-H", "-R"], env={"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"]},
                    app=[suite.PYTHON, "-c", ECHO])


class Terminal:
    """sslconnect with a pseudo-terminal as its controlling terminal and its
    stdin, stdout and stderr: what it printed (the terminal's echo of what
    was typed included) accumulates in out."""

    def __init__(self, port):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execve(suite.prog("sslconnect"), ["sslconnect", "localhost", str(port), "-a", ca["crt"]], env)
            finally:
                os._exit(127)
        self.out = b""
        self.status = None

    def type(self, data):
        os.write(self.fd, data)

    def _pump(self):
        """Reads what is there (without blocking); False once the terminal
        is closed on the other side."""
        while select.select([self.fd], [], [], 0)[0]:
            try:
                c = os.read(self.fd, 4096)
            except OSError:
                return False
            if not c:
                return False
            self.out += c
        return True

    def _reap(self):
        if self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.status = os.waitstatus_to_exitcode(st)
        return self.status is not None

    def seen(self, pattern, timeout=10):
        """The match of pattern in what was printed, once it is there
        (bounded wait), else None."""
        def look():
            self._pump()
            return re.search(pattern, self.out.decode("utf-8", "replace"), re.M)
        return suite.wait_until(look, timeout)

    def ended(self, timeout=10):
        """sslconnect's exit code once it has exited (bounded wait), else None."""
        suite.wait_until(lambda: (self._pump() or True) and self._reap(), timeout)
        return self.status

    def close(self):
        if not self._reap():
            os.killpg(self.pid, signal.SIGKILL)   # its session: sslclient, the shell, cat
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def sslconnect_on_a_terminal():
    t = Terminal(echo.port)
    try:
        ok(t.seen(r"^greeting\r?$"), "terminal: the server's greeting is printed", t.out)
        t.type(b"EHLO x\n")
        ok(t.seen(r"^got: b'EHLO x\\r\\n'\r?$"), "terminal: a typed line reaches the server with CR LF "
           "and its reply is printed, before any further input", t.out)
        t.type(b"second line\n")
        ok(t.seen(r"^got: b'second line\\r\\n'\r?$"), "terminal: so does the next line", t.out)
        t0 = time.monotonic()
        t.type(b"\x04")
        limit, how = suite.bound(10)
        rc = t.ended(10)
        is_(rc, 0, "terminal: Ctrl-D ends sslconnect, exit 0 (%.1fs; %s)" % (time.monotonic() - t0, how))
        ok(echo.wait_log(r"^app: end of input$"), "terminal: Ctrl-D is the server's end of input", echo.log())
    finally:
        t.close()

    t = Terminal(echo.port)
    try:
        ok(t.seen(r"^greeting\r?$"), "server closes: greeting printed", t.out)
        t.type(b"bye\n")
        ok(t.seen(r"^got: b'bye\\r\\n'\r?$"), "server closes: its last reply is printed", t.out)
        t0 = time.monotonic()
        limit, how = suite.bound(10)
        rc = t.ended(10)
        is_(rc, 0, "server closes: sslconnect ends without further input, exit 0 (%.1fs; %s)"
            % (time.monotonic() - t0, how))
    finally:
        t.close()
    n = len(suite.pids(echo))
    m = suite.wait_until(lambda: len(re.findall(r"^sslserver: end \d+ status 0$", echo.log(), re.M)) >= n, 10)
    ok(m, "terminal: both sessions ended with status 0 on the server", echo.log())


scenario("sslconnect on a terminal", sslconnect_on_a_terminal)
echo.stop()
