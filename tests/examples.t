#!/usr/bin/python3
# The daemontools examples in examples/service hold as written: every run
# script is executable and valid sh; the STARTTLS services run sslserver
# deferred (-n), so a rule without UCSPITLS is plain SMTP, not TLS from the
# first byte; the TLS-from-the-first-byte ones run it with -N; a run script
# with a placeholder does not start anything until it is set, and says so;
# the README's steps make log/main writable by the log user; the services
# for daemons that know nothing of TLS set STARTTLS (and TLSREQUIRED on 587
# and 110) to a value sslserver accepts, and say which daemons need which
# mode.
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike  # noqa: E402
import suite  # noqa: E402

SERVICE = os.path.join(suite.TOP, "examples", "service")
SERVICES = {"smtpd-25": "-n", "submission-587": "-n", "pop3-110": "-n", "smtps-465": "-N", "pop3s-995": "-N"}
PLACEHOLDERS = {"pop3-110": "CHECKPASSWORD", "pop3s-995": "CHECKPASSWORD"}
# the STARTTLS front: the protocol, and whether TLSREQUIRED is set
FRONTS = {"smtpd-25": ("smtp", False), "submission-587": ("smtp", True), "pop3-110": ("pop3", True)}

is_(sorted(d for d in os.listdir(SERVICE) if os.path.isdir(os.path.join(SERVICE, d))), sorted(SERVICES),
    "examples/service holds the services this test knows")


def sslserver_options(text):
    """The words of the run script's sslserver command (its continuation
    lines joined) before its host argument, 0 in every example."""
    joined = re.sub(r"\\\n", " ", text)
    m = re.search(r"^exec .*?\bsslserver\b(.*)$", joined, re.M)
    words = shlex.split(m.group(1)) if m else []
    return words[:words.index("0")] if "0" in words else None


for name, mode in sorted(SERVICES.items()):
    for script in ("run", "log/run"):
        path = os.path.join(SERVICE, name, script)
        ok(os.access(path, os.X_OK), "%s/%s is executable" % (name, script))
        r = subprocess.run(["sh", "-n", path], capture_output=True)
        is_((r.returncode, r.stderr.decode()), (0, ""), "%s/%s: sh -n finds no syntax error" % (name, script))
    with open(os.path.join(SERVICE, name, "log", "run")) as f:
        like(f.read(), r"^exec setuidgid qmaill multilog t \./main$", "%s/log/run: multilog as qmaill into ./main" % name)
    with open(os.path.join(SERVICE, name, "run")) as f:
        text = f.read()
    opts = sslserver_options(text) or []
    flags = "".join(o[1:] for o in opts if re.fullmatch(r"-[A-Za-z]+", o))
    other = "N" if mode == "-n" else "n"
    ok(mode[1] in flags and other not in flags, "%s: sslserver runs with %s (%s)" % (
        name, mode, "deferred TLS: STARTTLS" if mode == "-n" else "TLS from the first byte"), opts)
    if mode == "-n":
        like(text, r"(?m)^#.*UCSPI-TLS", "%s: says the daemon must speak UCSPI-TLS" % name)
    if name in FRONTS:
        proto, required = FRONTS[name]
        is_(re.findall(r"(?m)^export STARTTLS=(\S*)$", text), [proto], "%s: exports STARTTLS=%s" % (name, proto))
        is_(bool(re.search(r'(?m)^export TLSREQUIRED=""$', text)), required,
            "%s: TLSREQUIRED %s" % (name, "set" if required else "not set"))
        ok(re.search(r"(?m)^#.*knows? nothing of TLS", text) and re.search(r"(?m)^#.*UCSPITLS", text),
           "%s: says which daemons need STARTTLS and which UCSPITLS" % name)
        rc, err = suite.start_failure(env={"STARTTLS": proto})
        unlike(err, r"STARTTLS", "%s: sslserver accepts STARTTLS=%s" % (name, proto))
    unlike(re.sub(r"(?m)^#.*$", "", text), r"ucspitls-pop3d|/bin/checkpassword",
           "%s: no made-up or Debian-less path outside comments" % name)

# A placeholder is an empty variable the operator sets; until then the run
# script only says so, and then sleeps (supervise would restart it every
# second). Run it with a sleep that returns at once.
stub = suite.tmpdir()
with open(os.path.join(stub, "sleep"), "w") as f:
    f.write("#!/bin/sh\necho \"sleep $*\"\n")
os.chmod(os.path.join(stub, "sleep"), 0o755)
for name, var in sorted(PLACEHOLDERS.items()):
    path = os.path.join(SERVICE, name, "run")
    with open(path) as f:
        text = f.read()
    like(text, r"(?m)^# PLACEHOLDER: set %s\b" % var, "%s: %s is marked PLACEHOLDER in a comment" % (name, var))
    like(text, r"(?m)^%s=$" % var, "%s: %s is empty as shipped" % (name, var))
    r = subprocess.run(["sh", path], capture_output=True, cwd=os.path.join(SERVICE, name), stdin=subprocess.DEVNULL,
                       env={"PATH": stub + ":/usr/bin:/bin"}, timeout=suite.patience(10))
    out = r.stdout.decode() + r.stderr.decode()
    is_(out, "%s: %s is a placeholder: set it in ./run\nsleep 60\n" % (name, var),
        "%s: as shipped, the run script says to set %s and starts nothing" % (name, var))

with open(os.path.join(SERVICE, "README")) as f:
    readme = f.read()
steps = re.findall(r"(?m)^    (mkdir|chown|cp|ln) (.*)$", readme)
is_([s[0] for s in steps], ["mkdir", "cp", "mkdir", "chown", "ln"], "README: the steps are mkdir, cp, mkdir, chown, ln")
ok(("mkdir", "/var/qmail/supervise/smtps-465/log/main") in steps
   and ("chown", "qmaill /var/qmail/supervise/smtps-465/log/main") in steps,
   "README: the steps create log/main and give it to qmaill, the user multilog runs as", steps)
like(readme, r"(?m)^  pop3s-995 .*\n(.*\n)*?.*placeholder", "README: says pop3s-995 has a placeholder")
