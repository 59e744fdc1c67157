"""bench/bench.py - the measurements of bench/run, and bench/RESULTS.md.

Started by bench/run (which builds the helpers first); see bench/README.
Servers measured side by side, each with the same per-connection program:
  sslserver  (this project)           bench/echoline, bench/bulkapp
  stunnel4   (Debian, exec mode)      the same programs, via exec=
  tcpserver  (ucspi-tcp, no TLS)      the same programs: the floor
  s_server   (openssl s_server -rev)  one process, no fork: the TLS cost alone
and, in the balancer phase, sslserver reached directly against a second
sslserver (PROXYFROM=127.0.0.1) behind Debian's haproxy (send-proxy-v2).
Every number is the median of --runs runs; the servers are measured in turn
inside each run, so that a slow moment of the machine hits all of them.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HZ = os.sysconf("SC_CLK_TCK")
BALANCER_CLIENTS = (1, 2)    # the balancer phase's client counts
NCPU = os.cpu_count() or 1
TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMMANDS = []        # (what, command line) in the order run, for RESULTS.md
WARNINGS = []


def note_command(what, argv, env=None):
    prefix = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in (env or {}).items())
    line = (prefix + " " if prefix else "") + shlex.join(argv)
    if (what, line) not in COMMANDS:
        COMMANDS.append((what, line))


def warn(msg):
    WARNINGS.append(msg)
    print("bench: warning: " + msg, file=sys.stderr, flush=True)


def say(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc

def proc_stat(pid):
    """(comm, ppid, utime+stime+cutime+cstime in ticks) or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    comm = s[s.index("(") + 1:s.rindex(")")]
    f = s[s.rindex(")") + 2:].split()
    # f[0] is field 3 (state): utime..cstime are fields 14..17
    return comm, int(f[1]), int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])


def cpu_ticks(pid):
    st = proc_stat(pid)
    return st[2] if st else None


def children(pid):
    """Direct children of every thread of pid."""
    out = []
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/children" % (pid, t)) as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def tree(pid):
    """pid and all its descendants, walking /proc/PID/task/*/children."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += children(p)
    return seen


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_breakdown(mainpid, n):
    """kB of Pss per connection by (process, mapping) over mainpid's tree."""
    depth, todo, out = {mainpid: 0}, [mainpid], {}
    while todo:
        p = todo.pop()
        for c in children(p):
            depth[c] = depth[p] + 1
            todo.append(c)
    for p, d in depth.items():
        c = comm(p)
        role = "main process (%s)" % c if d == 0 else ("connection process (sslserver)" if c == "sslserver" else c)
        name = None
        try:
            with open("/proc/%d/smaps" % p) as f:
                for line in f:
                    if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                        parts = line.split()
                        name = os.path.basename(parts[5]) if len(parts) > 5 else "[anonymous]"
                    elif line.startswith("Pss:"):
                        k = (role, name)
                        out[k] = out.get(k, 0) + int(line.split()[1])
        except OSError:
            pass
    rows = sorted(out.items(), key=lambda kv: -kv[1])
    return [[k[0], k[1], v / n] for k, v in rows if v / n >= 1.0]


def machine_busy_ticks():
    """user+nice+system ticks of the whole machine (irq, softirq, steal apart)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2]


def wait_until(cond, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


# ---------------------------------------------------------------- servers

class Server:
    """One server process listening on 127.0.0.1; pid is what we measure."""

    def __init__(self, name, label, argv, env=None, stdin=None, config=None):
        self.name, self.label, self.argv, self.env = name, label, argv, env or {}
        self.config = config
        self.proc = None
        self.port = None

    def start(self, out):
        env = dict(os.environ)
        env.update(self.env)
        self.log = open(os.path.join(out, "%s.log" % self.label), "w")
        note_command("server " + self.name, self.argv, self.env)
        self.proc = subprocess.Popen(self.argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.pid = self.proc.pid
        self.port = self.find_port()
        if not self.port:
            raise SystemExit("bench: %s did not start; see %s" % (self.label, self.log.name))
        return self

    def find_port(self):
        line = wait_until(self.proc.stdout.readline, 10)
        return int(line.split()[-1]) if line and line.split()[-1].isdigit() else None

    def quiesce(self, timeout=30):
        """Waits until every connection process has ended and been reaped."""
        if not wait_until(lambda: not children(self.pid), timeout):
            warn("%s still had %d children after %ds" % (self.label, len(children(self.pid)), timeout))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class SslServer(Server):
    pass      # sslserver -1 prints "IP : PORT"


class TcpServer(Server):
    pass      # tcpserver -1 prints "PORT"


class SServer(Server):
    def find_port(self):
        def accept_line():
            line = self.proc.stdout.readline()
            return line if not line or line.startswith("ACCEPT") else accept_line()
        line = wait_until(accept_line, 10)
        m = re.search(r":(\d+)\s*$", line or "")
        return int(m.group(1)) if m else None


class Stunnel(Server):
    def __init__(self, name, label, stunnel, conf, port):
        super().__init__(name, label, [stunnel, conf])
        self.fixed_port = port

    def find_port(self):
        import socket

        def up():
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", self.fixed_port))
                return True
            except OSError:
                return False
            finally:
                s.close()
        return self.fixed_port if wait_until(up, 10, 0.05) else None


def listening(port):
    """Whether something listens on 127.0.0.1:port, read off /proc/net/tcp
    (no connection is made to find out)."""
    want = "0100007F:%04X" % port
    try:
        with open("/proc/net/tcp") as f:
            return any(x.split()[1] == want and x.split()[3] == "0A" for x in f.readlines()[1:])
    except OSError:
        return False


class Haproxy(Server):
    """Debian's haproxy -db -f cfg in front of backend (an sslserver with
    PROXYFROM): measured as the backend's tree, with haproxy's own CPU
    apart (side)."""

    def __init__(self, name, label, haproxy, cfg, port):
        super().__init__(name, label, [haproxy, "-db", "-f", cfg])
        self.fixed_port = port

    def find_port(self):
        return self.fixed_port if wait_until(lambda: listening(self.fixed_port), 10, 0.05) else None


class Via:
    """The path client -> haproxy -> sslserver, as a server to measure: the
    client connects to haproxy's port; CPU, quiescence and the program's
    processes are the backend sslserver's; haproxy's CPU is counted apart."""

    def __init__(self, name, balancer, backend):
        self.name, self.label = name, "%s via %s" % (backend.label, balancer.label)
        self.port, self.pid = balancer.port, backend.pid
        self.backend, self.side = backend, [balancer]

    def quiesce(self, timeout=30):
        self.backend.quiesce(timeout)


# ---------------------------------------------------------------- the harness

class Bench:
    def __init__(self, a):
        self.a = a
        self.build = a.build
        self.bb = os.path.join(a.build, "bench")
        self.out = a.outdir
        os.makedirs(self.out, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix="sslsuite-benchtmp-")
        os.chmod(self.tmp, 0o755)
        self.loadgen = os.path.join(self.bb, "loadgen")
        self.echoline = os.path.join(self.bb, "echoline")
        self.bulkapp = os.path.join(self.bb, "bulkapp")
        self.servers = []
        self.raw = []          # one dict per measured run
        self.results = {}
        self.meta = {}
        self.retry_budget = a.retry_budget
        self.retried = 0

    # ------------------------------------------------------------ setup

    def certs(self):
        t = self.tmp
        def run(*argv):
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(t, "ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        for key, newkey in (("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                            ("rsa", ["-newkey", "rsa:2048"])):
            p = os.path.join(t, key)
            cmds = [
                ["openssl", "req", "-x509"] + newkey + ["-nodes", "-days", "2", "-subj", "/CN=bench %s CA" % key,
                                                        "-keyout", p + "-ca.key", "-out", p + "-ca.crt"],
                ["openssl", "req"] + newkey + ["-nodes", "-subj", "/CN=localhost", "-keyout", p + ".key", "-out", p + ".csr"],
                ["openssl", "x509", "-req", "-in", p + ".csr", "-CA", p + "-ca.crt", "-CAkey", p + "-ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", os.path.join(t, "ext"), "-out", p + ".crt"],
            ]
            for c in cmds:
                note_command("certificates", c)
                run(*c)

    def cert(self, key):
        return os.path.join(self.tmp, key + ".crt"), os.path.join(self.tmp, key + ".key"), os.path.join(self.tmp, key + "-ca.crt")

    def freeport(self):
        return int(subprocess.run([self.loadgen, "freeport"], check=True, capture_output=True, text=True).stdout)

    def start_servers(self, key, app, tag, names=None, sslenv=None):
        """sslserver, stunnel4 and s_server (key) or tcpserver (key None) for
        app; only those in names if given; sslenv: more of sslserver's
        environment."""
        crt, k, _ = self.cert(key) if key else (None, None, None)
        appargv = [app]
        made = {}
        if key:
            made["sslserver"] = SslServer("sslserver", "sslserver-%s-%s" % (key, tag),
                [os.path.join(self.build, "sslserver"), "-1", "-H", "-R", "-l", "localhost",
                 "-c", "1100", "-b", "1024", "127.0.0.1", "0"] + appargv,
                env=dict({"CERTFILE": crt, "KEYFILE": k}, **(sslenv or {})))
            port = self.freeport()
            conf = os.path.join(self.tmp, "stunnel-%s-%s.conf" % (key, tag))
            with open(conf, "w") as f:
                f.write("foreground = yes\npid =\nsyslog = no\ndebug = err\n\n[bench]\n"
                        "accept = 127.0.0.1:%d\ncert = %s\nkey = %s\nexec = %s\nexecArgs = %s\n"
                        % (port, crt, k, app, os.path.basename(app)))
            self.meta.setdefault("stunnel_conf", open(conf).read())
            made["stunnel4"] = Stunnel("stunnel4", "stunnel4-%s-%s" % (key, tag), self.a.stunnel, conf, port)
            if tag == "echo":
                made["s_server"] = SServer("s_server", "s_server-%s" % key,
                    ["openssl", "s_server", "-rev", "-accept", "127.0.0.1:0", "-cert", crt, "-key", k])
        else:
            made["tcpserver"] = TcpServer("tcpserver", "tcpserver-%s" % tag,
                [self.a.tcpserver, "-1", "-H", "-R", "-l", "localhost", "-c", "1100", "-b", "1024",
                 "127.0.0.1", "0"] + appargv)
        made = {n: s for n, s in made.items() if names is None or n in names}
        for s in made.values():
            s.start(self.out)
            self.servers.append(s)
        return made

    def stop_servers(self):
        for s in self.servers:
            s.stop()
        self.servers = []

    # ------------------------------------------------------------ one run

    def loadgen_run(self, what, args, stdin=None):
        argv = [self.loadgen] + args
        note_command(what, argv)
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = p.communicate()
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return p.returncode, out, err, ru

    def measured(self, server, what, args):
        """Runs loadgen against server; returns its key=value output plus the
        server's CPU seconds and the CPU the rest of the machine used."""
        server.quiesce()
        side = getattr(server, "side", [])
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        s0 = [cpu_ticks(x.pid) for x in side]
        c0, b0, t0 = cpu_ticks(server.pid), machine_busy_ticks(), time.monotonic()
        rc, out, err, ru1 = self.loadgen_run(what, args)
        server.quiesce()
        c1, b1, t1 = cpu_ticks(server.pid), machine_busy_ticks(), time.monotonic()
        s1 = [cpu_ticks(x.pid) for x in side]
        side_s = {x.name: (e - b) / HZ if b is not None and e is not None else None for x, b, e in zip(side, s0, s1)}
        kv = dict(x.split("=", 1) for x in out.split() if "=" in x)
        if rc != 0 or err.strip():
            warn("%s against %s: exit %d: %s" % (what, server.label, rc, err.strip()[:300]))
        client = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
        server_s = (c1 - c0) / HZ if c0 is not None and c1 is not None else None
        other = (b1 - b0) / HZ - (server_s or 0) - client - sum(x or 0 for x in side_s.values())
        kv.update(server_cpu_s=server_s, client_cpu_s=client, side_cpu_s=side_s,
                  other_load=max(0.0, other) / ((t1 - t0) * NCPU), rc=rc)
        return kv

    def quiet_measure(self, server, what, args):
        """measured(), run again (up to --retries times, within a budget for the
        whole run) while other processes used more than --max-other-load of
        the machine; keeps the attempt that was least disturbed."""
        best = None
        for attempt in range(1 + self.a.retries):
            kv = self.measured(server, what, args)
            if best is None or kv["other_load"] < best["other_load"]:
                best = kv
            if kv["other_load"] <= self.a.max_other_load or self.retry_budget <= 0 or attempt == self.a.retries:
                break
            self.retry_budget -= 1
            self.retried += 1
            say("  (%s against %s: %.0f%% of the machine busy with other processes; again)" % (what, server.label, 100 * kv["other_load"]))
            time.sleep(1)
        return best

    def record(self, **kw):
        self.raw.append(kw)
        return kw

    # ------------------------------------------------------------ measurements

    def conn_matrix(self, measure=True):
        a = self.a
        say("connections/s, CPU and latency: %s x %d runs of %gs" % ("TLS 1.3/1.2 x ECDSA/RSA x 1,2,8 clients", a.runs, a.duration))
        plain = self.start_servers(None, self.echoline, "echo")
        tls = {key: self.start_servers(key, self.echoline, "echo") for key in ("ecdsa", "rsa")}
        self.echo = {"plain": plain, **tls}
        # warm up every server (page cache, first fork)
        for key, group in [(None, plain)] + list(tls.items()):
            for s in group.values():
                self.conn_once(s, "1.3", 1, 0.2, key=key, warmup=True)
        configs = [(v, k, c) for v in ("1.3", "1.2") for k in ("ecdsa", "rsa") for c in a.clients]
        for r in range(a.runs if measure else 0):
            for c in a.clients:
                self.conn_once(plain["tcpserver"], None, c, a.duration, run=r)
            for v, k, c in configs:
                for s in tls[k].values():
                    self.conn_once(s, v, c, a.duration, run=r, key=k)

    def conn_once(self, s, version, clients, duration, run=None, key=None, resume=False, warmup=False, kind=None):
        args = ["conn", "-c", str(clients), "-d", str(duration)]
        if s.name == "tcpserver":
            args += ["-P"]
        else:
            args += ["-v", version, "-A", self.cert(key or "ecdsa")[2]]
        if s.name == "s_server":
            args += ["-x"]
        if resume:
            args += ["-r"]
        args += ["127.0.0.1", str(s.port)]
        if warmup:
            return self.measured(s, "loadgen (warm-up)", args)
        kv = self.quiet_measure(s, "loadgen conn" + (" -r" if resume else ""), args)
        conns = int(kv.get("conns", 0) or 0)
        rec = self.record(kind=kind or ("resume" if resume else "conn"), server=s.name, version=version or "TCP",
                          key=key or "-", clients=clients, run=run, conns=conns,
                          errors=int(kv.get("errors", 0) or 0), rate=float(kv.get("rate", "nan")),
                          p50_ms=float(kv.get("p50_ms", "nan")), p99_ms=float(kv.get("p99_ms", "nan")),
                          resumed=int(kv.get("resumed", 0) or 0),
                          cpu_ms=1000 * kv["server_cpu_s"] / conns if conns and kv["server_cpu_s"] is not None else float("nan"),
                          client_cpu_ms=1000 * kv["client_cpu_s"] / conns if conns else float("nan"),
                          other_load=kv["other_load"], proto=kv.get("proto"), cipher=kv.get("cipher"), group=kv.get("group"))
        # processes measured apart (haproxy in front of sslserver): NAME_cpu_ms
        for name, sec in kv["side_cpu_s"].items():
            rec[name + "_cpu_ms"] = 1000 * sec / conns if conns and sec is not None else float("nan")
        say("  %-9s %-4s %-5s c=%d%s: %7.1f conn/s  cpu %.3f ms  p50 %.2f ms  p99 %.2f ms%s%s" % (
            s.name, rec["version"], rec["key"], clients, " resume" if resume else "", rec["rate"], rec["cpu_ms"],
            rec["p50_ms"], rec["p99_ms"], "  resumed %d/%d" % (rec["resumed"], conns) if resume else "",
            "".join("  %s cpu %.3f ms" % (n, rec[n + "_cpu_ms"]) for n in kv["side_cpu_s"])))
        return rec

    def resumption(self):
        a = self.a
        say("resumed handshakes/s (session tickets), %d clients" % a.resume_clients)
        for r in range(a.runs):
            for v in ("1.3", "1.2"):
                for s in self.echo["ecdsa"].values():
                    self.conn_once(s, v, a.resume_clients, a.duration, run=r, key="ecdsa", resume=True)

    def bulk(self):
        a = self.a
        n = a.bulk_bytes
        say("bulk: %d bytes each way, one connection, %d runs" % (n, a.runs))
        groups = {"plain": self.start_servers(None, self.bulkapp, "bulk"),
                  "ecdsa": self.start_servers("ecdsa", self.bulkapp, "bulk")}
        order = [groups["ecdsa"]["sslserver"], groups["ecdsa"]["stunnel4"], groups["plain"]["tcpserver"]]
        for s in order:    # warm-up
            self.bulk_once(s, "-s", 1 << 20, None)
        for r in range(a.runs):
            for direction in ("-s", "-g"):
                for s in order:
                    self.bulk_once(s, direction, n, r)

    def bulk_once(self, s, direction, n, run):
        args = ["bulk", direction, str(n)]
        args += ["-P"] if s.name == "tcpserver" else ["-v", "1.3", "-A", self.cert("ecdsa")[2]]
        args += ["127.0.0.1", str(s.port)]
        if run is None:
            self.measured(s, "loadgen bulk", args)
            return
        kv = self.quiet_measure(s, "loadgen bulk", args)
        mbps = float(kv.get("mbps", "nan"))
        cpu = kv["server_cpu_s"] * (1 << 30) / n if kv["server_cpu_s"] is not None else float("nan")
        rec = self.record(kind="bulk", server=s.name, direction="upload" if direction == "-s" else "download",
                          run=run, bytes=n, mbps=mbps, cpu_s_per_gib=cpu,
                          client_cpu_s_per_gib=kv["client_cpu_s"] * (1 << 30) / n, other_load=kv["other_load"])
        say("  %-9s %-8s: %8.1f MB/s  server %.2f CPU-s/GiB" % (s.name, rec["direction"], mbps, cpu))

    def idle(self):
        a = self.a
        say("PSS per idle connection: %s connections, %d runs" % (",".join(map(str, a.idle)), a.runs))
        order = [self.echo["ecdsa"]["sslserver"], self.echo["ecdsa"]["stunnel4"], self.echo["plain"]["tcpserver"]]
        for r in range(a.runs):
            for n in a.idle:
                for s in order:
                    self.idle_once(s, n, r)

    def idle_once(self, s, n, run):
        s.quiesce()
        time.sleep(0.2)
        base = sum(pss_kb(p) for p in tree(s.pid))
        args = ["idle", "-n", str(n)]
        args += ["-P"] if s.name == "tcpserver" else ["-v", "1.3", "-A", self.cert("ecdsa")[2]]
        args += ["127.0.0.1", str(s.port)]
        argv = [self.loadgen] + args
        note_command("loadgen idle", argv)
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        ok = line.startswith("ready")

        def settled():
            return sum(1 for q in tree(s.pid) if comm(q) == "echoline") >= n
        if ok and not wait_until(settled, 60, 0.1):
            warn("%s: only %d of %d idle programs running" % (s.label, sum(1 for q in tree(s.pid) if comm(q) == "echoline"), n))
            ok = False
        time.sleep(0.5)
        procs = tree(s.pid)
        total = sum(pss_kb(q) for q in procs)
        if ok and run == 0 and n == max(self.a.idle):
            self.results.setdefault("pss_breakdown", {})[s.name] = {"n": n, "rows": pss_breakdown(s.pid, n)}
        p.stdin.close()
        p.wait()
        err = p.stderr.read()
        if not ok:
            warn("idle %d against %s failed: %s" % (n, s.label, err.strip()[:300]))
        s.quiesce(60)
        per = (total - base) / n if ok else float("nan")
        self.record(kind="idle", server=s.name, n=n, run=run, base_kb=base, total_kb=total,
                    processes=len(procs), pss_kb_per_conn=per)
        say("  %-9s %5d idle: %.1f kB PSS per connection (%d processes, baseline %d kB)" % (s.name, n, per, len(procs), base))

    def balancer(self):
        """sslserver directly and behind haproxy (send-proxy-v2, the sslserver
        behind it with PROXYFROM=127.0.0.1), TLS 1.3 ECDSA, 1 and 2 clients,
        the two paths alternately; once per run, a check that the program
        behind haproxy saw the client's address, not haproxy's."""
        a = self.a
        say("behind haproxy: connections/s, CPU and latency, direct vs through haproxy, %s clients x %d runs of %gs"
            % (",".join(map(str, BALANCER_CLIENTS)), a.runs, a.duration))
        direct = self.start_servers("ecdsa", self.echoline, "direct", ["sslserver"])["sslserver"]
        backend = self.start_servers("ecdsa", self.echoline, "proxied", ["sslserver"], {"PROXYFROM": "127.0.0.1"})["sslserver"]
        port = self.freeport()
        cfg = os.path.join(self.tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("global\n    maxconn 4096\n\ndefaults\n    mode tcp\n    timeout connect 10s\n"
                    "    timeout client 60s\n    timeout server 60s\n\nfrontend bench\n    bind 127.0.0.1:%d\n"
                    "    maxconn 4096\n    default_backend sslserver\n\nbackend sslserver\n"
                    "    # no health checks (no \"check\")\n    server s1 127.0.0.1:%d send-proxy-v2\n" % (port, backend.port))
        self.meta["haproxy_conf"] = open(cfg).read()
        hp = Haproxy("haproxy", "haproxy-ecdsa", a.haproxy, cfg, port).start(self.out)
        self.servers.append(hp)
        via = Via("sslserver via haproxy", hp, backend)
        for s in (direct, via):    # warm-up
            self.conn_once(s, "1.3", 1, 0.2, key="ecdsa", warmup=True)
        for r in range(a.runs):
            order = [direct, via] if r % 2 == 0 else [via, direct]
            for c in BALANCER_CLIENTS:
                for s in order:
                    self.conn_once(s, "1.3", c, a.duration, run=r, key="ecdsa", kind="balancer")
            self.proxy_check(via, r)
        self.stop_servers()

    def proxy_check(self, via, run):
        """One connection through haproxy; while its program (echoline) waits
        for the line, its environment must name this client (address and
        port) as SSLREMOTE*, haproxy's frontend as SSLLOCALPORT and haproxy
        as PROXYREMOTEIP: the PROXY header was read and used."""
        import socket
        import ssl
        ctx = ssl.create_default_context(cafile=self.cert("ecdsa")[2])
        env, cport, echo, err = {}, None, b"", ""

        def program_env():
            for p in tree(via.pid):
                if comm(p) == "echoline":
                    try:
                        with open("/proc/%d/environ" % p, "rb") as f:
                            return dict(x.decode(errors="replace").split("=", 1) for x in f.read().split(b"\0") if b"=" in x)
                    except OSError:
                        pass
            return None
        try:
            with socket.create_connection(("127.0.0.1", via.port), timeout=10) as sock:
                cport = sock.getsockname()[1]
                with ctx.wrap_socket(sock, server_hostname="localhost") as t:
                    env = wait_until(program_env, 10) or {}
                    t.sendall(b"proxy check\n")
                    while not echo.endswith(b"\n"):
                        chunk = t.recv(100)
                        if not chunk:
                            break
                        echo += chunk
        except (OSError, ssl.SSLError) as e:
            err = str(e)
        keys = ("SSLREMOTEIP", "SSLREMOTEPORT", "SSLLOCALPORT", "PROXYREMOTEIP", "PROXYREMOTEPORT")
        seen = {k: env.get(k) for k in keys}
        good = (not err and echo == b"proxy check\n" and seen["SSLREMOTEIP"] == "127.0.0.1"
                and seen["SSLREMOTEPORT"] == str(cport) and seen["SSLLOCALPORT"] == str(via.port)
                and seen["PROXYREMOTEIP"] == "127.0.0.1" and seen["PROXYREMOTEPORT"] not in (None, str(cport)))
        self.results.setdefault("balancer_check", []).append({"run": run, "ok": good, "client_port": cport,
                                                              "haproxy_port": via.port, "env": seen, "error": err})
        if good:
            say("  PROXY header used: the program saw the client 127.0.0.1:%s, via haproxy 127.0.0.1:%s"
                % (seen["SSLREMOTEPORT"], seen["PROXYREMOTEPORT"]))
        else:
            warn("run %d: the program behind haproxy did not see the balancer's client (127.0.0.1:%s to 127.0.0.1:%d): "
                 "saw %s%s" % (run, cport, via.port, " ".join("%s=%s" % kv for kv in seen.items()),
                               "; " + err if err else ""))

    def speed(self):
        say("openssl speed")
        secs = str(self.a.speed_seconds)
        cmds = [["openssl", "speed", "-mr", "-seconds", secs, "ecdsap256", "rsa2048", "ecdhx25519"],
                ["openssl", "speed", "-mr", "-seconds", secs, "-bytes", "16384", "-evp", "aes-256-gcm"]]
        sp = {}
        for c in cmds:
            note_command("openssl speed", c)
            out = subprocess.run(c, capture_output=True, text=True).stdout
            for line in out.splitlines():
                f = line.split(":")
                if f[0] == "+F2" and f[2] == "2048":
                    sp["rsa2048_sign"], sp["rsa2048_verify"] = float(f[3]), float(f[4])
                elif f[0] == "+F4" and f[2] == "256":
                    sp["ecdsap256_sign"], sp["ecdsap256_verify"] = float(f[3]), float(f[4])
                elif f[0] == "+F5" and f[2] == "253":
                    sp["x25519"] = float(f[3])
                elif f[0] == "+F" and f[2] == "AES-256-GCM":
                    sp["aes256gcm_Bps"] = float(f[3])
        self.results["speed"] = sp
        say("  " + " ".join("%s=%.0f" % kv for kv in sp.items()))

    def perf_window(self, s, what, args, seconds, tag):
        """Runs loadgen (args) against server s under perf record -a, and
        classifies the samples of s's process tree."""
        a = self.a
        data = os.path.join(self.out, "perf-%s.data" % tag)
        argv = [a.perf, "record", "-a", "-e", "cpu-clock", "-F", str(a.perf_freq), "--call-graph", "dwarf,16384",
                "-o", data, "--", "sleep", str(seconds + 1.5)]
        note_command("profile", argv)
        perf = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.7)
        kv = self.measured(s, what, args)
        perf.wait()
        sargv = [a.perf, "script", "-i", data, "--show-task-events", "-F", "comm,pid,tid,time,period,event,ip,sym,dso"]
        note_command("profile", sargv)
        text = subprocess.run(sargv, capture_output=True, text=True).stdout
        prof = classify(text, s.pid)
        prof["server_cpu_s"] = kv["server_cpu_s"]
        return kv, prof

    def profile(self):
        """perf record -a (timer sampling, DWARF call chains) while loadgen runs
        against a fresh sslserver; the samples of its process tree (followed
        through the fork events) are classified by classify()."""
        a = self.a
        if not a.perf:
            self.results["profile"] = None
            return
        say("profile: perf record -a -e cpu-clock while sslserver serves TLS 1.3 ECDSA at 2 clients for %gs" % a.profile_seconds)
        crt, k, ca = self.cert("ecdsa")
        s = self.start_servers("ecdsa", self.echoline, "perf", ["sslserver"])["sslserver"]
        self.conn_once(s, "1.3", 1, 0.2, key="ecdsa", warmup=True)
        kv, prof = self.perf_window(s, "loadgen conn (profile)", ["conn", "-c", "2", "-d", str(a.profile_seconds), "-v", "1.3",
                                                                   "-A", ca, "127.0.0.1", str(s.port)], a.profile_seconds, "conn")
        self.stop_servers()
        conns = int(kv.get("conns", 0) or 0)
        prof.update(conns=conns, rate=float(kv.get("rate", "nan")),
                    cpu_ms=1000 * kv["server_cpu_s"] / conns if conns else float("nan"))
        self.results["profile"] = prof
        say("  %d samples of the sslserver tree = %.3f ms per connection (measured CPU: %.3f ms)"
            % (prof["samples"], 1000 * prof["sampled_s"] / conns if conns else float("nan"), prof["cpu_ms"]))
        # bulk, both directions
        n = min(a.bulk_bytes, a.profile_bulk_bytes)
        s = self.start_servers("ecdsa", self.bulkapp, "perfbulk", ["sslserver"])["sslserver"]
        self.results["profile_bulk"] = {}
        for direction, flag in (("upload", "-s"), ("download", "-g")):
            kv, prof = self.perf_window(s, "loadgen bulk (profile)", ["bulk", flag, str(n), "-v", "1.3", "-A", ca, "127.0.0.1", str(s.port)],
                                        max(1.0, n / 3e8), "bulk-" + direction)
            prof.update(bytes=n, mbps=float(kv.get("mbps", "nan")))
            self.results["profile_bulk"][direction] = prof
            say("  bulk %s: %d samples = %.2f CPU-s per GiB (measured: %.2f)" % (direction, prof["samples"],
                prof["sampled_s"] * (1 << 30) / n, (kv["server_cpu_s"] or 0) * (1 << 30) / n))
        self.stop_servers()
        with open(os.path.join(self.out, "perf-summary.json"), "w") as f:
            json.dump({"conn": self.results["profile"], "bulk": self.results["profile_bulk"]}, f, indent=1)

    # ------------------------------------------------------------ all

    def run(self):
        a = self.a
        self.meta.update(started=datetime.datetime.now().isoformat(timespec="seconds"))
        self.certs()
        only = a.only.split(",") if a.only else None
        want = lambda phase: not only or phase in only
        try:
            if want("speed"):
                self.speed()
            if want("conn") or want("resume") or want("idle"):
                self.conn_matrix(want("conn"))
            if want("resume"):
                self.resumption()
            if want("idle"):
                self.idle()
            if want("bulk"):
                self.bulk()
            self.stop_servers()
            if want("balancer"):
                self.balancer()
            if a.profile_seconds > 0 and want("profile"):
                self.profile()
            else:
                self.results["profile"] = None
        finally:
            self.stop_servers()
            shutil.rmtree(self.tmp, True)
        self.meta.update(finished=datetime.datetime.now().isoformat(timespec="seconds"))
        with open(os.path.join(self.out, "raw.json"), "w") as f:
            args = {k: v for k, v in vars(a).items() if isinstance(v, (int, float, str, list, bool, type(None)))}
            json.dump({"meta": self.meta, "raw": self.raw, "results": self.results, "commands": COMMANDS,
                       "warnings": WARNINGS, "args": args, "retried": self.retried}, f, indent=1)


# Call-chain anchors, innermost first wins (user space, this project and the
# OpenSSL API it calls).
CONTEXTS = [
    (("intel_check_word", "handle_intel", "get_common_cache_info", "init_cpu_features", "dl_init_cacheinfo", "update_active"),
     "ld.so: CPU and cache detection (cpuid, init_cpu_features)"),
    (("_dl_relocate_object", "_dl_lookup_symbol_x", "do_lookup_x"), "ld.so: symbol relocation"),
    (("_dl_map_object", "_dl_map_object_from_fd", "_dl_new_object", "open_verify"), "ld.so: mapping libraries"),
    (("_dl_start", "_dl_start_user", "_dl_sysdep_start", "dl_main"), "ld.so: other start-up"),
    (("EVP_DigestSign", "EVP_DigestSignFinal", "EVP_DigestSignInit", "EVP_DigestSignInit_ex", "EVP_DigestSignUpdate", "EVP_PKEY_sign"),
     "handshake: certificate signature (ECDSA P-256 sign)"),
    (("EVP_PKEY_derive", "EVP_PKEY_derive_set_peer", "EVP_PKEY_derive_set_peer_ex", "EVP_PKEY_derive_init"), "handshake: X25519 derive"),
    (("EVP_PKEY_generate", "EVP_PKEY_keygen", "EVP_PKEY_keygen_init", "EVP_PKEY_CTX_new_from_pkey", "EVP_PKEY_CTX_new_from_name"),
     "handshake: X25519 key generation"),
    (("ticket_cb",), "handshake: session ticket (ticket_cb)"),
    (("EVP_KDF_fetch", "EVP_MD_fetch", "EVP_CIPHER_fetch", "EVP_MAC_fetch", "EVP_KEYMGMT_fetch", "EVP_SIGNATURE_fetch",
      "EVP_KEYEXCH_fetch", "EVP_RAND_fetch", "ossl_method_store_fetch", "EVP_KEM_fetch", "OSSL_DECODER_CTX_new_for_pkey"),
     "handshake/OpenSSL: algorithm fetches (EVP_*_fetch by name)"),
    (("EVP_KDF_derive",), "handshake: key schedule (HKDF)"),
    (("EVP_DigestVerify", "EVP_DigestVerifyFinal", "EVP_DigestUpdate", "EVP_DigestFinal_ex"), "handshake: transcript hash"),
    (("handshake_run",), "handshake: the rest of SSL_do_handshake"),
    (("SSL_new",), "SSL_new"),
    (("SSL_free",), "SSL_free"),
    (("tlsenv_server",), "SSL_* environment (tlsenv_server)"),
    (("EVP_EncryptUpdate", "EVP_DecryptUpdate", "EVP_CipherUpdate", "EVP_EncryptFinal_ex", "EVP_DecryptFinal_ex",
      "EVP_CipherFinal_ex"), "relay: AES-GCM (EVP_EncryptUpdate/EVP_DecryptUpdate)"),
    (("ring_tidy",), "relay: ring_tidy (memmove in the relay buffer)"),
    (("SSL_read", "SSL_read_ex"), "relay: SSL_read (receive, decrypt)"),
    (("SSL_write", "SSL_write_ex"), "relay: SSL_write (encrypt, send)"),
    (("relay_run",), "relay (relay_run)"),
    (("ucspitls_send_block", "ucspitls_read_block"), "passing the SSL_* block"),
    (("app_exec", "app_immediate", "exec_ae"), "program process: environment, descriptors, execve"),
    (("privs_drop",), "privs_drop"),
    (("lookup_names", "connenv_fromsocket", "connenv_log", "connenv_modifiers", "policy_environment", "policy_context"),
     "connection set-up (addresses, environment)"),
    (("engine_run",), "engine: other"),
    (("connection",), "connection process: other"),
]
MECHANISMS = {"clone": "fork", "clone3": "fork", "fork": "fork", "vfork": "fork", "kernel_clone": "fork",
              "execve": "execve", "execveat": "execve", "exit_group": "exit", "exit": "exit", "group_exit": "exit",
              "exit_to_user_mode_loop": "return from a system call (reschedule, signal)",
              "syscall_exit_to_user_mode": "return from a system call (reschedule, signal)", "mmap_pgoff": "syscall mmap",
              "vm_mmap_pgoff": "syscall mmap"}


def classify(text, mainpid):
    """Samples of mainpid's process tree from `perf script --show-task-events`,
    by process role, by user-space context and by kernel entry."""
    parent, depth = {}, {mainpid: 0}
    fork_re = re.compile(r"PERF_RECORD_FORK\((\d+):(\d+)\):\((\d+):(\d+)\)")
    head_re = re.compile(r"^(\S.*?)\s+(\d+)/(\d+)\s+[\d.]+:\s+(\d+)\s+cpu-clock:")
    total = nsamples = 0
    agg = {"role": {}, "context": {}, "mechanism": {}, "combo": {}, "leaf": {}}
    blocks = text.split("\n\n")
    for blk in blocks:
        lines = blk.strip("\n").split("\n")
        i = 0
        # task events come as single lines, possibly ahead of a sample in the same block
        while i < len(lines) and "PERF_RECORD_" in lines[i]:
            m = fork_re.search(lines[i])
            if m and m.group(1) == m.group(2):
                child, par = int(m.group(1)), int(m.group(3))
                if par in depth and child not in depth:
                    depth[child] = depth[par] + 1
            i += 1
        if i >= len(lines):
            continue
        m = head_re.match(lines[i])
        if not m:
            continue
        comm_, pid, period = m.group(1).strip(), int(m.group(2)), int(m.group(4))
        if pid not in depth:
            continue
        frames = []
        for fl in lines[i + 1:]:
            fm = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", fl)
            if fm:
                sym = re.sub(r"\+0x[0-9a-f]+$", "", fm.group(1))
                frames.append((sym, fm.group(2)))
        total += period
        nsamples += 1
        d = depth[pid]
        role = ("main process (accept, fork, reap)" if d == 0 else
                "connection process (TLS engine)" if d == 1 else
                "program process, after execve (%s)" % comm_ if comm_ != "sslserver" else
                "program process, before execve" if d == 2 else "other descendant")
        # kernel entry: the outermost kernel frame that names one; for a system
        # call, the frame below do_syscall_64 (newer kernels inline __x64_sys_*)
        mech = "user space"
        kframes = [sym for sym, dso in reversed(frames) if "kernel" in dso]
        for j, sym in enumerate(kframes):
            if sym == "asm_exc_page_fault":
                mech = "page fault"
                break
            if sym.startswith("asm_sysvec") or sym.startswith("asm_common_interrupt"):
                mech = "interrupt"
                break
            if sym in ("ret_from_fork", "ret_from_fork_asm"):
                mech = "fork (child's first return)"
                break
            if sym == "do_syscall_64":
                inner = [x for x in kframes[j + 1:] if x not in ("x64_sys_call",)]
                name = re.sub(r"^(__x64_sys_|__ia32_sys_|__do_sys_|__se_sys_|ksys_|__sys_|do_sys_|do_)", "", inner[0]) if inner else "?"
                mech = MECHANISMS.get(name, "syscall " + name)
                break
        else:
            if kframes:
                mech = "kernel, other"
        ctx = None
        names = [f[0] for f in frames]
        for sym in names:
            for anchors, label in CONTEXTS:
                if sym in anchors:
                    ctx = label
                    break
            if ctx:
                break
        if not ctx:
            ctx = {0: "main loop", 1: "connection process: other"}.get(d, "program: main and libc" if comm_ != "sslserver" else "program process: other")
        leaf = names[0] if names else "?"
        leafdso = os.path.basename(frames[0][1]) if frames else "?"
        for key, val in (("role", role), ("context", ctx), ("mechanism", mech), ("combo", (role, ctx, mech)),
                         ("leaf", (leaf, leafdso))):
            agg[key][val] = agg[key].get(val, 0) + period
    def rows(dct, n=None):
        out = sorted(dct.items(), key=lambda kv: -kv[1])[:n]
        return [(list(k) if isinstance(k, tuple) else k, 100.0 * v / total if total else 0.0, v / 1e9) for k, v in out]
    return {"samples": nsamples, "sampled_s": total / 1e9,
            "role": rows(agg["role"]), "context": rows(agg["context"]), "mechanism": rows(agg["mechanism"]),
            "combo": rows(agg["combo"], 30), "leaf": rows(agg["leaf"], 25), "processes": len(depth)}


# ---------------------------------------------------------------- report

def med(xs):
    xs = [x for x in xs if x is not None and x == x]
    return statistics.median(xs) if xs else float("nan")


def fmt(x, nd=1):
    return "n/a" if x is None or x != x else ("%.*f" % (nd, x))


def ratio(a, b):
    return a / b if b and b == b and a == a else float("nan")


class Report:
    def __init__(self, bench):
        self.b = bench
        self.raw = bench.raw

    def sel(self, **kw):
        return [r for r in self.raw if all(r.get(k) == v for k, v in kw.items())]

    def m(self, field, **kw):
        return med([r[field] for r in self.sel(**kw)])

    def missing(self):
        """Every measurement that produced no number (for --smoke)."""
        bad = []
        for r in self.raw:
            for k, v in r.items():
                if isinstance(v, float) and v != v and not (k == "resumed"):
                    bad.append("%s %s: %s" % (r["kind"], " ".join("%s=%s" % (x, r[x]) for x in ("server", "version", "key", "clients", "direction", "n") if x in r), k))
            if r.get("errors"):
                bad.append("%s %s %s %s: %d errors" % (r["kind"], r["server"], r.get("version"), r.get("key"), r["errors"]))
            if r["kind"] == "resume" and r["resumed"] < 0.9 * (r["conns"] - self.b.a.resume_clients):
                bad.append("resume %s %s: only %d of %d resumed" % (r["server"], r["version"], r["resumed"], r["conns"]))
        sp = self.b.results.get("speed", {})
        for k in ("ecdsap256_sign", "rsa2048_sign", "x25519", "aes256gcm_Bps"):
            if k not in sp:
                bad.append("openssl speed: no " + k)
        kinds = {r["kind"] for r in self.raw}
        for k in ("conn", "resume", "bulk", "idle", "balancer"):
            if k not in kinds:
                bad.append("no %s measurement at all" % k)
        for c in self.b.results.get("balancer_check", []):
            if not c["ok"]:
                bad.append("balancer run %d: the program behind haproxy did not see the client" % c["run"])
        return bad

    def write(self, path):
        b, a = self.b, self.b.a
        L = []
        w = L.append
        sp = b.results.get("speed", {})
        T = "1.3"
        conn = lambda srv, field, v=T, k="ecdsa", c=2: self.m(field, kind="conn", server=srv, version=v, key=k, clients=c)
        tcp = lambda field, c=2: self.m(field, kind="conn", server="tcpserver", clients=c)
        # targets
        targets = []
        r1 = ratio(conn("sslserver", "rate"), conn("stunnel4", "rate"))
        targets.append(("connections/s, TLS 1.3, ECDSA, 2 clients", ">= 2.0x stunnel4",
                        "%s vs %s conn/s" % (fmt(conn("sslserver", "rate")), fmt(conn("stunnel4", "rate"))), "%.2fx" % r1, r1 >= 2.0))
        floor = tcp("cpu_ms") + conn("s_server", "cpu_ms")
        r2 = ratio(conn("sslserver", "cpu_ms"), floor)
        targets.append(("server CPU per connection (TLS 1.3, ECDSA, 2 clients)", "<= 1.2x (tcpserver + s_server)",
                        "%s ms vs %s + %s = %s ms" % (fmt(conn("sslserver", "cpu_ms"), 3), fmt(tcp("cpu_ms"), 3),
                                                       fmt(conn("s_server", "cpu_ms"), 3), fmt(floor, 3)), "%.2fx" % r2, r2 <= 1.2))
        r3 = ratio(conn("sslserver", "p50_ms", c=1), conn("stunnel4", "p50_ms", c=1))
        targets.append(("p50 fresh-connection latency (TLS 1.3, ECDSA, 1 client)", "<= 0.6x stunnel4",
                        "%s vs %s ms" % (fmt(conn("sslserver", "p50_ms", c=1), 2), fmt(conn("stunnel4", "p50_ms", c=1), 2)), "%.2fx" % r3, r3 <= 0.6))
        for d in ("upload", "download"):
            bs = lambda srv, f: self.m(f, kind="bulk", server=srv, direction=d)
            rr = ratio(bs("sslserver", "mbps"), bs("stunnel4", "mbps"))
            targets.append(("bulk MB/s, %s (client %s server)" % (d, "to" if d == "upload" else "from"), ">= 1.3x stunnel4",
                            "%s vs %s MB/s" % (fmt(bs("sslserver", "mbps")), fmt(bs("stunnel4", "mbps"))), "%.2fx" % rr, rr >= 1.3))
            rc = ratio(bs("sslserver", "cpu_s_per_gib"), bs("stunnel4", "cpu_s_per_gib"))
            targets.append(("bulk server CPU-s per GiB, %s" % d, "< stunnel4 (< 1.0x)",
                            "%s vs %s CPU-s/GiB" % (fmt(bs("sslserver", "cpu_s_per_gib"), 2), fmt(bs("stunnel4", "cpu_s_per_gib"), 2)), "%.2fx" % rc, rc < 1.0))
        for n in a.idle:
            ps = lambda srv: self.m("pss_kb_per_conn", kind="idle", server=srv, n=n)
            d = ps("sslserver") - ps("tcpserver")
            targets.append(("PSS per idle connection, %d connections" % n, "<= tcpserver + 150 kB",
                            "%s kB vs %s kB" % (fmt(ps("sslserver")), fmt(ps("tcpserver"))), "tcpserver %+.1f kB" % d, d <= 150))
        for v in ("1.3", "1.2"):
            full = conn("sslserver", "rate", v=v, c=a.resume_clients)
            res = self.m("rate", kind="resume", server="sslserver", version=v)
            rr = ratio(res, full)
            targets.append(("resumed vs full handshakes/s, TLS %s, ECDSA, %d clients" % (v, a.resume_clients), ">= 1.5x",
                            "%s vs %s conn/s" % (fmt(res), fmt(full)), "%.2fx" % rr, rr >= 1.5))
        self.targets = targets

        w("# sslsuite benchmark results\n")
        w("Written by `bench/run%s` (bench/bench.py) on %s; started %s, finished %s. "
          "Every figure is the median of %d runs; in each run the servers are measured one after the other "
          "on the same machine, so the ratios compare like with like. See bench/README for what is measured and how.\n"
          % (" --smoke" if a.smoke else "", platform.node() or "this machine", b.meta.get("started"), b.meta.get("finished"), a.runs))
        w("**This is a smoke run: durations and sizes are far too small for the numbers to mean anything.**\n" if a.smoke else "")
        w("## Machine and versions\n")
        for k, v in b.meta.get("machine", {}).items():
            w("- %s: %s" % (k, v))
        others = [r["other_load"] for r in self.raw if "other_load" in r]
        if others:
            w("- CPU used by processes outside the benchmark during the measured runs (share of all %d cores): "
              "median %.0f%%, max %.0f%%%s" % (NCPU, 100 * med(others), 100 * max(others),
                                               " - the machine was shared; treat absolute numbers with care, ratios less so" if max(others) > 0.1 else ""))
        if b.retried:
            w("- %d measurements were run again because other processes used more than %.0f%% of the machine during them "
              "(the least disturbed attempt is kept)" % (b.retried, 100 * a.max_other_load))
        w("")
        w("## Targets\n")
        w("| target | goal | measured | ratio | met |")
        w("|---|---|---|---|---|")
        for t in targets:
            w("| %s | %s | %s | %s | %s |" % (t[0], t[1], t[2], t[3], "yes" if t[4] else "**no**"))
        w("")
        # the hand-written analysis, kept across runs
        bounds = os.path.join(TOP, "bench", "BOUNDS.md")
        if os.path.exists(bounds) and not a.smoke:
            with open(bounds) as f:
                w(f.read().rstrip("\n") + "\n")

        # connection tables
        w("## New connections: full handshake + 1-line echo\n")
        w("Closed loop: each client connects, handshakes (X25519 key exchange, TLS_AES_256_GCM_SHA384 in 1.3, "
          "ECDHE-*-AES256-GCM-SHA384 in 1.2, server certificate verified by the client), writes a line, reads it back, "
          "sends close_notify and waits for the server to close. tcpserver runs the same loop without TLS; "
          "its column is the same in every row of a client count. s_server is one process with no fork "
          "(`openssl s_server -rev`, the line comes back reversed).\n")
        srv = ["sslserver", "stunnel4", "tcpserver", "s_server"]
        def table(title, field, nd, ratios):
            w("### %s\n" % title)
            w("| TLS | key | clients | " + " | ".join(srv) + " | " + " | ".join(x[0] for x in ratios) + " |")
            w("|---|---|---|" + "---|" * (len(srv) + len(ratios)))
            for v in ("1.3", "1.2"):
                for k in ("ecdsa", "rsa"):
                    for c in a.clients:
                        vals = {s: (tcp(field, c) if s == "tcpserver" else conn(s, field, v, k, c)) for s in srv}
                        rs = [fmt(f(vals), 2) + "x" for _, f in ratios]
                        w("| %s | %s | %d | %s | %s |" % (v, k.upper(), c, " | ".join(fmt(vals[s], nd) for s in srv), " | ".join(rs)))
            w("")
        table("Connections per second", "rate", 0,
              [("sslserver/stunnel4", lambda x: ratio(x["sslserver"], x["stunnel4"])),
               ("sslserver/tcpserver", lambda x: ratio(x["sslserver"], x["tcpserver"]))])
        table("Server CPU per connection, ms (utime+stime+cutime+cstime of the server's main process)", "cpu_ms", 3,
              [("sslserver/stunnel4", lambda x: ratio(x["sslserver"], x["stunnel4"])),
               ("sslserver/(tcpserver+s_server)", lambda x: ratio(x["sslserver"], x["tcpserver"] + x["s_server"]))])
        table("Latency of a fresh connection, p50 ms (connect to echoed line)", "p50_ms", 2,
              [("sslserver/stunnel4", lambda x: ratio(x["sslserver"], x["stunnel4"]))])
        table("Latency of a fresh connection, p99 ms", "p99_ms", 2,
              [("sslserver/stunnel4", lambda x: ratio(x["sslserver"], x["stunnel4"]))])
        w("Client (loadgen) CPU per connection, TLS 1.3 ECDSA 2 clients: %s ms against sslserver, %s ms against tcpserver "
          "- the client shares the machine's %d cores with the server.\n"
          % (fmt(conn("sslserver", "client_cpu_ms"), 3), fmt(tcp("client_cpu_ms"), 3), NCPU))

        w("## Resumed handshakes (session tickets)\n")
        w("Each client keeps the session of its first connection (the ticket it got) and offers it on every later "
          "connection; the client counts SSL_session_reused. Full-handshake rates are from the table above.\n")
        w("| TLS | server | resumed conn/s | resumed / offered | full conn/s | resumed/full | p50 ms | CPU ms/conn |")
        w("|---|---|---|---|---|---|---|---|")
        for v in ("1.3", "1.2"):
            for s in ("sslserver", "stunnel4", "s_server"):
                rs = self.sel(kind="resume", server=s, version=v)
                res = self.m("rate", kind="resume", server=s, version=v)
                full = conn(s, "rate", v=v, c=a.resume_clients)
                w("| %s | %s | %s | %d/%d | %s | %sx | %s | %s |" % (v, s, fmt(res), sum(r["resumed"] for r in rs),
                  sum(r["conns"] for r in rs), fmt(full), fmt(ratio(res, full), 2),
                  fmt(self.m("p50_ms", kind="resume", server=s, version=v), 2), fmt(self.m("cpu_ms", kind="resume", server=s, version=v), 3)))
        w("")

        w("## Bulk throughput, one connection each way\n")
        w("%d bytes (%s) through bench/bulkapp (a `cat > /dev/null` / `head -c N` equivalent) under each server; "
          "TLS 1.3, ECDSA, TLS_AES_256_GCM_SHA384. Upload: client to server program; download: server program to client. "
          "MB/s is 10^6 bytes/s from connect to the last byte; CPU-s/GiB is the server's.\n" % (a.bulk_bytes, human(a.bulk_bytes)))
        w("| direction | server | MB/s | server CPU-s/GiB | client CPU-s/GiB | MB/s vs stunnel4 | CPU vs stunnel4 |")
        w("|---|---|---|---|---|---|---|")
        for d in ("upload", "download"):
            for s in ("sslserver", "stunnel4", "tcpserver"):
                f = lambda x, s=s: self.m(x, kind="bulk", server=s, direction=d)
                st = lambda x: self.m(x, kind="bulk", server="stunnel4", direction=d)
                w("| %s | %s | %s | %s | %s | %sx | %sx |" % (d, s, fmt(f("mbps")), fmt(f("cpu_s_per_gib"), 2), fmt(f("client_cpu_s_per_gib"), 2),
                  fmt(ratio(f("mbps"), st("mbps")), 2), fmt(ratio(f("cpu_s_per_gib"), st("cpu_s_per_gib")), 2)))
        w("")

        w("## Memory per idle connection\n")
        w("N connections opened (TLS 1.3 handshake done, nothing sent: the program waits for its line); "
          "sum of Pss in /proc/PID/smaps_rollup over the server's process tree, minus the same sum before, divided by N. "
          "Page tables and other kernel memory (socket buffers, the per-process kernel structures) are not in Pss.\n")
        w("| N | server | kB PSS per connection | processes in tree | vs tcpserver |")
        w("|---|---|---|---|---|")
        for n in a.idle:
            for s in ("sslserver", "stunnel4", "tcpserver"):
                v = self.m("pss_kb_per_conn", kind="idle", server=s, n=n)
                t = self.m("pss_kb_per_conn", kind="idle", server="tcpserver", n=n)
                w("| %d | %s | %s | %s | %+.1f kB |" % (n, s, fmt(v), fmt(self.m("processes", kind="idle", server=s, n=n), 0), v - t))
        w("")

        bd = b.results.get("pss_breakdown")
        if bd:
            w("Where the memory of an idle connection is, at %d connections (kB of Pss per connection, by process and mapping, "
              "rows of 1 kB or more; the main process's share is included, it is spread over N):\n" % max(a.idle))
            w("| server | process | mapping | kB per connection |")
            w("|---|---|---|---|")
            for srv in ("sslserver", "stunnel4", "tcpserver"):
                for role, name, kb in bd.get(srv, {}).get("rows", [])[:10]:
                    w("| %s | %s | %s | %.1f |" % (srv, role, name, kb))
            w("")

        if self.sel(kind="balancer"):
            self.write_balancer(w)

        w("## Crypto limits (openssl speed, one core)\n")
        if sp:
            sign_e, sign_r, x = sp.get("ecdsap256_sign"), sp.get("rsa2048_sign"), sp.get("x25519")
            ver_e, ver_r = sp.get("ecdsap256_verify"), sp.get("rsa2048_verify")
            w("| operation | per second | ms |")
            w("|---|---|---|")
            for name, k in (("ECDSA P-256 sign", "ecdsap256_sign"), ("ECDSA P-256 verify", "ecdsap256_verify"),
                            ("RSA-2048 sign", "rsa2048_sign"), ("RSA-2048 verify", "rsa2048_verify"), ("X25519 derive", "x25519")):
                w("| %s | %.0f | %.4f |" % (name, sp[k], 1000 / sp[k]))
            w("| AES-256-GCM, 16 KiB blocks | %.0f MB/s | |" % (sp["aes256gcm_Bps"] / 1e6))
            w("")
            srv_e = 1 / sign_e + 2 / x
            srv_r = 1 / sign_r + 2 / x
            cli_e = 2 / ver_e + 2 / x
            cli_r = 2 / ver_r + 2 / x
            w("A full handshake costs the server one signature and two X25519 operations (key generation and derivation, "
              "counted as one derive each): %.3f ms with ECDSA (%.0f handshakes/s per core), %.3f ms with RSA (%.0f/s). "
              "The client verifies two signatures (CertificateVerify and the certificate's) and does two X25519 operations: "
              "%.3f ms (ECDSA), %.3f ms (RSA). With client and server sharing %d cores, crypto alone caps the loop at "
              "%.0f handshakes/s (ECDSA) and %.0f/s (RSA). A TLS 1.3 resumption (psk_dhe_ke) drops the signature but keeps the X25519 pair.\n"
              % (1000 * srv_e, 1 / srv_e, 1000 * srv_r, 1 / srv_r, 1000 * cli_e, 1000 * cli_r, NCPU,
                 NCPU / (srv_e + cli_e), NCPU / (srv_r + cli_r)))
            self.crypto_ms = 1000 * srv_e
        prof = b.results.get("profile")
        if prof:
            self.write_profile(w, prof)
        if WARNINGS:
            w("## Warnings during the run\n")
            for x in WARNINGS[:50]:
                w("- " + x.replace("|", "/"))
            w("")
        w("## Exact commands\n")
        w("$BUILD is %s here (bench/run: BUILD, default build/). Built by bench/run with the project's compiler "
          "(first line of conf-cc, link with conf-ld):\n" % (a.build.replace(TOP + "/", "") if a.build.startswith(TOP + "/") else a.build))
        w("```")
        for line in b.meta.get("build", []):
            w(line.replace(a.build + "/", "$BUILD/").replace(TOP + "/", ""))
        w("```\n")
        def clean(line):
            line = line.replace(a.build + "/", "$BUILD/")
            line = re.sub(r"/tmp/sslsuite-bench(tmp)?-[^/ ]+/", "$TMP/", line).replace(TOP + "/", "")
            line = re.sub(r"127\.0\.0\.1 \d+$", "127.0.0.1 $PORT", line)
            return re.sub(r"127\.0\.0\.1:\d{3,}", "127.0.0.1:$PORT", line)
        w("stunnel4 configuration (one per key and program; certificate and program vary):\n")
        w("```\n%s```\n" % "\n".join(clean(x) for x in b.meta.get("stunnel_conf", "").split("\n")))
        w("Every distinct command, in the order first run ($TMP: the run's certificates; $PORT: the server's port):\n")
        w("```")
        seen, last = set(), None
        for what, line in COMMANDS:
            line = clean(line)
            if line in seen:
                continue
            seen.add(line)
            if what != last:
                w("# " + what)
                last = what
            w(line)
        w("```\n")
        w("## All runs\n")
        w("| kind | server | TLS | key | clients / N / direction | run | result | server CPU | other load |")
        w("|---|---|---|---|---|---|---|---|---|")
        for r in self.raw:
            if r["kind"] == "balancer":
                w("| balancer | %s | %s | %s | %d | %d | %.1f conn/s p50 %.2f p99 %.2f ms | %.3f ms%s | %.0f%% |" % (
                  r["server"], r["version"], r["key"], r["clients"], r["run"], r["rate"], r["p50_ms"], r["p99_ms"], r["cpu_ms"],
                  " + haproxy %.3f ms" % r["haproxy_cpu_ms"] if "haproxy_cpu_ms" in r else "", 100 * r["other_load"]))
            elif r["kind"] in ("conn", "resume"):
                res = "%.1f conn/s p50 %.2f p99 %.2f ms%s" % (r["rate"], r["p50_ms"], r["p99_ms"],
                      " resumed %d/%d" % (r["resumed"], r["conns"]) if r["kind"] == "resume" else "")
                w("| %s | %s | %s | %s | %d | %d | %s | %.3f ms | %.0f%% |" % (r["kind"], r["server"], r["version"], r["key"], r["clients"],
                  r["run"], res, r["cpu_ms"], 100 * r["other_load"]))
            elif r["kind"] == "bulk":
                w("| bulk | %s | 1.3 | ECDSA | %s | %d | %.1f MB/s | %.2f s/GiB | %.0f%% |" % (r["server"], r["direction"], r["run"], r["mbps"],
                  r["cpu_s_per_gib"], 100 * r["other_load"]))
            elif r["kind"] == "idle":
                w("| idle | %s | 1.3 | ECDSA | %d | %d | %.1f kB/conn (%d kB - %d kB) | | |" % (r["server"], r["n"], r["run"], r["pss_kb_per_conn"],
                  r["total_kb"], r["base_kb"]))
        w("")
        with open(path, "w") as f:
            f.write("\n".join(L))

    def write_balancer(self, w):
        b = self.b
        D, V = "sslserver", "sslserver via haproxy"
        m = lambda srv, field, c: self.m(field, kind="balancer", server=srv, clients=c)
        w("## Behind HAProxy\n")
        w("The cost of the balancer hop: sslserver (TLS 1.3, ECDSA, bench/echoline, the options of the connection tests) "
          "reached directly, and through Debian's haproxy in front of a second sslserver with `PROXYFROM=127.0.0.1` "
          "(haproxy in mode tcp: one frontend, one backend server with `send-proxy-v2`, no health checks; configuration "
          "below). The loop is that of the connection tests (loadgen conn); within each run the two paths are measured "
          "alternately at each client count, the first of the pair alternating from run to run. sslserver CPU is the "
          "process tree of the sslserver that served the connections; haproxy CPU is haproxy's own process (all its "
          "threads), counted apart.\n")
        w("| clients | measure | direct | through haproxy | through/direct |")
        w("|---|---|---|---|---|")
        for c in BALANCER_CLIENTS:
            for name, field, nd in (("connections/s", "rate", 0), ("p50 latency, ms", "p50_ms", 2), ("p99 latency, ms", "p99_ms", 2),
                                    ("sslserver CPU per connection, ms", "cpu_ms", 3)):
                d, v = m(D, field, c), m(V, field, c)
                w("| %d | %s | %s | %s | %sx |" % (c, name, fmt(d, nd), fmt(v, nd), fmt(ratio(v, d), 2)))
            h = m(V, "haproxy_cpu_ms", c)
            w("| %d | haproxy CPU per connection, ms | - | %s | |" % (c, fmt(h, 3)))
            tot = med([r["cpu_ms"] + r.get("haproxy_cpu_ms", float("nan")) for r in self.sel(kind="balancer", server=V, clients=c)])
            w("| %d | server side CPU per connection (sslserver + haproxy), ms | %s | %s | %sx |"
              % (c, fmt(m(D, "cpu_ms", c), 3), fmt(tot, 3), fmt(ratio(tot, m(D, "cpu_ms", c)), 2)))
        w("")
        c1, c2 = BALANCER_CLIENTS[0], BALANCER_CLIENTS[-1]
        dp50 = m(V, "p50_ms", c1) - m(D, "p50_ms", c1)
        dcpu = m(V, "cpu_ms", c2) - m(D, "cpu_ms", c2)
        w("What the hop costs: a fresh connection's p50 latency (%d client) goes from %s to %s ms (%+.2f ms, %sx); at %d clients "
          "the loop makes %sx the connections/s of the direct path; haproxy spends %s ms of CPU per connection, and the "
          "sslserver behind it %+.3f ms against the direct one (reading the PROXY header is the one thing it does "
          "more), so the server side uses %sx the CPU per connection.\n"
          % (c1, fmt(m(D, "p50_ms", c1), 2), fmt(m(V, "p50_ms", c1), 2), dp50, fmt(ratio(m(V, "p50_ms", c1), m(D, "p50_ms", c1)), 2),
             c2, fmt(ratio(m(V, "rate", c2), m(D, "rate", c2)), 2), fmt(m(V, "haproxy_cpu_ms", c2), 3), dcpu,
             fmt(ratio(m(V, "cpu_ms", c2) + m(V, "haproxy_cpu_ms", c2), m(D, "cpu_ms", c2)), 2)))
        checks = b.results.get("balancer_check", [])
        bad = [x for x in checks if not x["ok"]]
        if checks and not bad:
            x = checks[0]
            w("The PROXY header was read and used in every run (%d of %d): one connection per run through haproxy, and its "
              "program's environment named that client's own port (SSLREMOTEIP=127.0.0.1 SSLREMOTEPORT=%s, "
              "SSLLOCALPORT=%s: haproxy's frontend), with haproxy as PROXYREMOTEIP=%s PROXYREMOTEPORT=%s.\n"
              % (len(checks), len(checks), x["env"]["SSLREMOTEPORT"], x["env"]["SSLLOCALPORT"],
                 x["env"]["PROXYREMOTEIP"], x["env"]["PROXYREMOTEPORT"]))
        else:
            w("**The PROXY header was not seen to be used in %d of %d runs** (see the warnings): the program behind haproxy "
              "did not see the client's address and port.\n" % (len(bad), len(checks)))
        conf = b.meta.get("haproxy_conf", "")
        conf = re.sub(r"127\.0\.0\.1:\d+( send-proxy)", r"127.0.0.1:$SSLPORT\1", conf)
        conf = re.sub(r"bind 127\.0\.0\.1:\d+", "bind 127.0.0.1:$PORT", conf)
        w("haproxy configuration (`haproxy -db -f` it; $PORT: a free port, $SSLPORT: the sslserver's):\n")
        w("```\n%s```\n" % conf)

    def write_profile(self, w, prof):
        a = self.b.a
        conns = prof["conns"] or float("nan")
        w("## Profile of sslserver\n")
        w("How it was taken: `perf record -a -e cpu-clock -F %d --call-graph dwarf` while loadgen ran against a fresh "
          "sslserver; the samples of sslserver's process tree (followed through perf's fork events; the client and "
          "everything else on the machine left out) are classified by bench.py. Hardware counters are not available on "
          "this machine (`perf stat -e instructions true`: not supported), so this is timer sampling, system-wide so that "
          "short-lived processes are not under-sampled; unlike callgrind it sees the kernel, where fork, execve, exit and "
          "page faults happen. Debian's libcrypto and libssl have no symbol table: their internals are named by the exported "
          "OpenSSL function or the project function found in the call chain. Raw data: %s/perf-*.data, perf-summary.json.\n"
          % (a.perf_freq, self.b.out.replace(a.build, "$BUILD")))
        w("### New connections (TLS 1.3, ECDSA, 2 clients)\n")
        w("loadgen ran %gs: %d connections, %s conn/s, %s ms of server CPU per connection by /proc; the %d samples "
          "(%d processes) add up to %s ms per connection.\n"
          % (a.profile_seconds, prof["conns"], fmt(prof["rate"]), fmt(prof["cpu_ms"], 3), prof["samples"], prof["processes"],
             fmt(1000 * prof["sampled_s"] / conns, 3)))
        unit = lambda sec: "%.3f" % (1000 * sec / conns)
        def tab(title, rows, head, unit, unitname, n=None):
            w(title + "\n")
            w("| " + " | ".join(head) + " | share | %s |" % unitname)
            w("|" + "---|" * (len(head) + 2))
            for k, pct, sec in rows[:n]:
                k = k if isinstance(k, list) else [k]
                w("| " + " | ".join(str(x).replace("|", "/") for x in k) + " | %.1f%% | %s |" % (pct, unit(sec)))
            w("")
        def collapse(rows):
            keep = [r for r in rows if r[1] >= 0.5]
            rest = [r for r in rows if r[1] < 0.5]
            if rest:
                keep.append(("%d others" % len(rest), sum(r[1] for r in rest), sum(r[2] for r in rest)))
            return keep
        tab("By process:", prof["role"], ["process"], unit, "ms per connection")
        tab("By kernel entry (the outermost system call, page fault or interrupt in the call chain; "
            "`user space` = no kernel frame):", collapse(prof["mechanism"]), ["kernel entry"], unit, "ms per connection")
        tab("By what the process was doing (the innermost project function, OpenSSL API function or ld.so stage in the "
            "call chain; kernel time counts under the user-space code that entered the kernel):", prof["context"], ["doing"],
            unit, "ms per connection")
        tab("Top 20 combinations:", prof["combo"], ["process", "doing", "kernel entry"], unit, "ms per connection", 20)
        tab("Top 20 functions (self time):", [(["`%s`" % k[0], k[1]], p, sec) for k, p, sec in prof["leaf"]],
            ["function", "object"], unit, "ms per connection", 20)
        for d, bp in (self.b.results.get("profile_bulk") or {}).items():
            gib = bp["bytes"] / (1 << 30)
            bunit = lambda sec: "%.3f" % (sec / gib)
            w("### Bulk %s (TLS 1.3, %s through bulkapp)\n" % (d, human(bp["bytes"])))
            w("%s MB/s; %s CPU-s per GiB on the server side by /proc, %s by the %d samples.\n"
              % (fmt(bp["mbps"]), fmt((bp["server_cpu_s"] or float("nan")) / gib, 2), fmt(bp["sampled_s"] / gib, 2), bp["samples"]))
            tab("Top 12 combinations:", bp["combo"], ["process", "doing", "kernel entry"], bunit, "CPU-s per GiB", 12)
            tab("Top 12 functions (self time):", [(["`%s`" % k[0], k[1]], p, sec) for k, p, sec in bp["leaf"]],
                ["function", "object"], bunit, "CPU-s per GiB", 12)


def human(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return "%g %s" % (n / size, unit)
    return "%d bytes" % n


def machine_meta(a):
    def first(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, shell=isinstance(cmd, str)).stdout.strip().splitlines()[0]
        except Exception:
            return "?"
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    def dpkg(p):
        return first("dpkg-query -W -f '${Version}' %s 2>/dev/null" % p) or "?"
    git = first("cd %s && git rev-parse --short HEAD 2>/dev/null" % shlex.quote(TOP))
    dirty = first("cd %s && git status --porcelain 2>/dev/null | head -1" % shlex.quote(TOP))
    return {
        "CPU": "%s, %d cores" % (model, NCPU),
        "kernel": platform.release(),
        "sslsuite": "%s%s" % (git, " (with uncommitted changes)" if dirty and dirty != "?" else ""),
        "compiler": first(["sh", "-c", "$(head -n1 %s | cut -d' ' -f1) --version" % shlex.quote(os.path.join(TOP, "conf-cc"))]),
        "OpenSSL": first(["openssl", "version"]),
        "stunnel4": dpkg("stunnel4"),
        "ucspi-tcp": dpkg("ucspi-tcp"),
        "haproxy": dpkg("haproxy"),
        "load average at start": open("/proc/loadavg").read().strip(),
    }


def main():
    ap = argparse.ArgumentParser(prog="bench/run", description="sslsuite performance harness")
    ap.add_argument("--smoke", action="store_true", help="CI-sized run: seconds; checks only that every measurement gave a number")
    ap.add_argument("--build", default=os.path.join(TOP, "build"))
    ap.add_argument("--out", help="the report (default bench/RESULTS.md, or BUILD/bench/out/RESULTS-smoke.md with --smoke)")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--duration", type=float, help="seconds per connection-rate run")
    ap.add_argument("--clients", default="1,2,8")
    ap.add_argument("--bulk-bytes", type=int)
    ap.add_argument("--idle", help="idle connection counts, e.g. 200,1000")
    ap.add_argument("--profile-seconds", type=float)
    ap.add_argument("--speed-seconds", type=int, default=1)
    ap.add_argument("--perf-freq", type=int, default=999)
    ap.add_argument("--profile-bulk-bytes", type=int, default=256 << 20)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--report-from", metavar="RAW.JSON", help="only write the report again from a run's raw.json")
    ap.add_argument("--max-other-load", type=float, default=0.15,
                    help="share of the machine other processes may use during a run before it is run again (default 0.15)")
    ap.add_argument("--retries", type=int, help="runs again per measurement when disturbed (default 1; smoke 0)")
    ap.add_argument("--retry-budget", type=int, default=40, help="at most this many runs again in all")
    ap.add_argument("--only", help="comma-separated phases: speed,conn,resume,idle,bulk,balancer,profile (for working on the harness)")
    a = ap.parse_args()
    if a.smoke:
        defaults = dict(runs=1, duration=0.25, bulk_bytes=8 << 20, idle="10,20", profile_seconds=0, retries=0)
    else:
        defaults = dict(runs=3, duration=2.5, bulk_bytes=1 << 30, idle="200,1000", profile_seconds=4, retries=1)
    for k, v in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.no_profile:
        a.profile_seconds = 0
    a.clients = [int(x) for x in a.clients.split(",")]
    a.idle = [int(x) for x in a.idle.split(",")]
    a.resume_clients = 2
    a.build = os.path.abspath(a.build)
    a.outdir = os.path.join(a.build, "bench", "out")
    a.out_given = bool(a.out)
    a.out = a.out or (os.path.join(a.outdir, "RESULTS-smoke.md") if a.smoke else os.path.join(TOP, "bench", "RESULTS.md"))
    a.stunnel = shutil.which("stunnel4") or shutil.which("stunnel")
    a.tcpserver = shutil.which("tcpserver")
    a.haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    a.perf = shutil.which("perf") if a.profile_seconds > 0 else None
    if a.perf and subprocess.run([a.perf, "record", "-a", "-e", "cpu-clock", "-o", "/dev/null", "--", "true"],
                                 capture_output=True).returncode != 0:
        say("perf record -a -e cpu-clock does not work here (not root?): no profile")
        a.perf = None
    if not a.stunnel or not a.tcpserver or not a.haproxy:
        raise SystemExit("bench: stunnel4, tcpserver (ucspi-tcp) and haproxy are needed")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 16384 if hard == resource.RLIM_INFINITY else min(hard, 16384)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    if a.report_from:
        # write the report again from a run's raw.json (for work on the report)
        import types
        with open(a.report_from) as f:
            d = json.load(f)
        ra = types.SimpleNamespace(**d["args"])
        ra.out = a.out if a.out_given else ra.out
        b = types.SimpleNamespace(a=ra, raw=d["raw"], results=d["results"], meta=d["meta"], retried=d["retried"],
                                  out=os.path.dirname(os.path.abspath(a.report_from)))
        COMMANDS.extend(tuple(x) for x in d["commands"])
        WARNINGS.extend(d["warnings"])
        rep = Report(b)
        rep.write(ra.out)
        say("report: %s" % ra.out)
        return 0

    b = Bench(a)
    b.meta["machine"] = machine_meta(a)
    b.meta["build"] = [x for x in os.environ.get("BENCH_BUILD_COMMANDS", "").split("\n") if x]
    t0 = time.monotonic()
    b.run()
    rep = Report(b)
    rep.write(a.out)
    say("report: %s (%.0f s)" % (a.out, time.monotonic() - t0))
    for t in rep.targets:
        say("  %-62s %-10s %s" % (t[0], t[3], "met" if t[4] else "NOT MET"))
    if a.smoke:
        bad = rep.missing()
        if bad:
            for x in bad:
                print("bench: smoke: " + x, file=sys.stderr)
            return 1
        say("smoke: every measurement produced a number")
    return 0


if __name__ == "__main__":
    sys.exit(main())
