#!/usr/bin/python3
# sslrules against Debian's tcprules (ucspi-tcp 0.88) as the oracle: for
# every input tcprules accepts the two cdb files are byte-identical and dump
# the same; every line tcprules rejects makes sslrules exit 100 with one
# line naming the line number, leaving rules.cdb untouched and no tmp file;
# the lines that hang Debian's IPv6 tcprules never hang sslrules; IPv6 and
# CIDR lines compile to the documented keys; tmp + rename replaces the cdb
# atomically; write and rename failures exit 111; usage errors exit 100;
# "sslrules -c" prints what tcprulescheck prints; and an IPv6 key the
# lookup can never produce is warned about (line number, key, why) and
# still compiled, while every key it can produce is not.
import itertools
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tap import ok, is_, like, unlike, diag  # noqa: E402
import suite  # noqa: E402

SSLRULES = suite.prog("sslrules")
D = suite.tmpdir()
os.umask(0o022)


def path(*names):
    return os.path.join(D, *names)


def compile_(prog, text, cdb, tmp, timeout=10, **kw):
    """Runs prog cdb tmp < text; returns (exit code or None on timeout, stderr)."""
    args = [prog, cdb, tmp] if isinstance(prog, str) else list(prog) + [cdb, tmp]
    try:
        r = subprocess.run(args, input=text, capture_output=True, timeout=suite.patience(timeout), **kw)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    return r.returncode, r.stderr.decode("utf-8", "replace")


def dump(cdb):
    """The records of a cdb as (key, data) pairs, in file order, from tinycdb's cdb -d."""
    r = subprocess.run(["cdb", "-d", cdb], capture_output=True, timeout=suite.patience(10))
    if r.returncode:
        return None
    out, i, recs = r.stdout, 0, []
    while i < len(out) and out[i:i + 1] == b"+":
        comma = out.index(b",", i)
        colon = out.index(b":", comma)
        klen, dlen = int(out[i + 1:comma]), int(out[comma + 1:colon])
        k0 = colon + 1
        key = out[k0:k0 + klen]
        assert out[k0 + klen:k0 + klen + 2] == b"->"
        d0 = k0 + klen + 2
        recs.append((key, out[d0:d0 + dlen]))
        i = d0 + dlen + 1
    return recs


def raw_dump(cdb):
    r = subprocess.run(["cdb", "-d", cdb], capture_output=True, timeout=suite.patience(10))
    return r.stdout if r.returncode == 0 else None


def identity(p):
    st = os.stat(p)
    with open(p, "rb") as f:
        return (st.st_ino, f.read())


case_numbers = itertools.count(1)   # each case compiles in directories of its own


def same_as_tcprules(name, text, expect=None):
    """Compiles text with both programs; the files must be byte-identical.
    expect: optional list of (key, data) the dump must equal."""
    n = next(case_numbers)
    dt, ds = path("t%d" % n), path("s%d" % n)
    os.mkdir(dt)
    os.mkdir(ds)
    rt, et = compile_("tcprules", text, os.path.join(dt, "rules.cdb"), os.path.join(dt, "rules.tmp"))
    rs, es = compile_(SSLRULES, text, os.path.join(ds, "rules.cdb"), os.path.join(ds, "rules.tmp"))
    if not is_(rt, 0, "%s: tcprules (the oracle) accepts it" % name):
        diag(et)
    if not is_(rs, 0, "%s: sslrules accepts it" % name):
        diag(es)
        return None
    is_(es, "", "%s: sslrules says nothing" % name)
    c = subprocess.run(["cmp", os.path.join(dt, "rules.cdb"), os.path.join(ds, "rules.cdb")], capture_output=True)
    is_(c.returncode, 0, "%s: cdb files byte-identical (cmp)" % name)
    dump_t, dump_s = raw_dump(os.path.join(dt, "rules.cdb")), raw_dump(os.path.join(ds, "rules.cdb"))
    ok(dump_s is not None and dump_t == dump_s, "%s: cdb -d dumps identical" % name,
       "tcprules: %r\nsslrules: %r" % (dump_t, dump_s))
    ok(not os.path.exists(os.path.join(ds, "rules.tmp")), "%s: no tmp file left" % name)
    recs = dump(os.path.join(ds, "rules.cdb"))
    if expect is not None:
        is_(recs, expect, "%s: records are exactly the documented keys and values" % name)
    return recs


# ---------------------------------------------------------------- accepted inputs, byte for byte

same_as_tcprules("exact IPs", b"1.2.3.4:allow\n127.0.0.1:deny\n",
                 [(b"1.2.3.4", b""), (b"127.0.0.1", b"D\0")])
same_as_tcprules("dotted prefixes", b"1.2.3.:allow,RELAYCLIENT=\"\"\n10.:deny\n192.168.:allow,X=\"1\"\n",
                 [(b"1.2.3.", b"+RELAYCLIENT=\0"), (b"10.", b"D\0"), (b"192.168.", b"+X=1\0")])
same_as_tcprules("literal forms (no final dot, leading blank, literal slash-less text)",
                 b"1.2.3:allow\n 1.2.3.4:allow\n #x:deny\n0.0.0.0:allow\n",
                 [(b"1.2.3", b""), (b" 1.2.3.4", b""), (b" #x", b"D\0"), (b"0.0.0.0", b"")])
ranges = same_as_tcprules("ranges", b"1.2.3.37-40:allow,R=\"1\"\n10.2-3.:deny\n1.2.4.250-300:allow\n"
                          b"1.2.5.5-3:allow\n1.2.6.-2:allow\n1.2.7.1-:allow\n1.2.8.01-03:allow\n"
                          b"1.2.3.1-2.9:allow\n7-9.:deny\n")
is_([k for k, v in ranges or []],
    [b"1.2.3.37", b"1.2.3.38", b"1.2.3.39", b"1.2.3.40", b"10.2.", b"10.3.",
     b"1.2.4.250", b"1.2.4.251", b"1.2.4.252", b"1.2.4.253", b"1.2.4.254", b"1.2.4.255",
     b"1.2.6.0", b"1.2.6.1", b"1.2.6.2", b"1.2.8.1", b"1.2.8.2", b"1.2.8.3",
     b"1.2.3.1.9", b"1.2.3.2.9", b"7.", b"8.", b"9."],
    "ranges: expansion, clipping at 255, 5-3 and 1- write nothing, -2 starts at 0, no leading zeros")
same_as_tcprules("wide range 0-255", b"10.0.0-255.:allow,R=\"1\"\n")
same_as_tcprules("host rules", b"=host.example.com:deny\n=.example.org:allow,DOM=\"1\"\n=:allow,ANY=\"1\"\n"
                 b"=host-1.example.com:allow\n=Mixed.Example.COM:allow\n",
                 [(b"=host.example.com", b"D\0"), (b"=.example.org", b"+DOM=1\0"), (b"=", b"+ANY=1\0"),
                  (b"=host-1.example.com", b""), (b"=Mixed.Example.COM", b"")])
same_as_tcprules("info rules", b"joe@127.0.0.1:allow,WHO=\"joe\"\njoe@=host.example.com:allow\n@1.2.3.4:deny\n"
                 b"x@1.2.3.1-3:allow\n",
                 [(b"joe@127.0.0.1", b"+WHO=joe\0"), (b"joe@=host.example.com", b""), (b"@1.2.3.4", b"D\0"),
                  (b"x@1.2.3.1-3", b"")])
same_as_tcprules("the empty key", b":allow,X=\"a b\",Y='c\"d',Z=/e=f/\n:deny\n",
                 [(b"", b"+X=a b\0+Y=c\"d\0+Z=e=f\0"), (b"", b"D\0")])

# Every byte but newline as the delimiter of a value, followed by another
# instruction so a blank delimiter is not a trailing blank.
lines = []
for b in range(0, 256):
    if b == 10:
        continue
    v = b"v1" if b not in b"v1" else b"w2"
    lines.append(b"q%d:allow,Q=%c%s%c,Z=\"z\"\n" % (b, b, v, b))
quotes = same_as_tcprules("every quote character (255 delimiters)", b"".join(lines))
ok(quotes is not None and len(quotes) == 255 and all(d in (b"+Q=v1\0+Z=z\0", b"+Q=w2\0+Z=z\0") for k, d in quotes),
   "every quote character: each value stored without its delimiters")
same_as_tcprules("empty values", b"1.2.3.4:allow,RELAYCLIENT=\"\",D=||,E=''\n5.6.7.8:deny,X=\"\"\n",
                 [(b"1.2.3.4", b"+RELAYCLIENT=\0+D=\0+E=\0"), (b"5.6.7.8", b"D\0+X=\0")])
same_as_tcprules("commas, colons and = in values; odd names",
                 b"1.2.9.1:allow,A=xyzx,B=:x:,C=\"a,b:c\",D=/a=b/,E=\":allow\",F=\":deny,\",G='q\"q'\n"
                 b"1.2.9.2:allow,A B=/x/,,A=\"1\",=//\n",
                 [(b"1.2.9.1", b"+A=yz\0+B=x\0+C=a,b:c\0+D=a=b\0+E=:allow\0+F=:deny,\0+G=q\"q\0"),
                  (b"1.2.9.2", b"+A B=x\0+,A=1\0+=\0")])
same_as_tcprules("binary bytes in keys and values", b"\xff\xfe.:allow,X=\"\x00\x01\xe9\",Y=\"a\rb\"\n")
same_as_tcprules("duplicate keys kept in order", b"5.6.7.8:deny,WHY=\"x\"\n5.6.7.8:allow,R=\"second\"\n"
                 b"1.2.9.3:allow,A=\"1\",A=\"2\"\n",
                 [(b"5.6.7.8", b"D\0+WHY=x\0"), (b"5.6.7.8", b"+R=second\0"), (b"1.2.9.3", b"+A=1\0+A=2\0")])
same_as_tcprules("comments, blank lines, lines without a colon",
                 b"# a comment\n\n#1.2.3.4:deny\nno colon on this line\n  # indented text\n   \n\t\n\r\n"
                 b"1.2.3.4:allow\n#\n",
                 [(b"1.2.3.4", b"")])
same_as_tcprules("trailing blanks and a last line without newline",
                 b"1.2.3.4:allow   \t \n1.2.3.5:allow,X=\"1\" \t\n1.2.3.6:deny\t\n1.2.3.7:allow,Y=\"t\"",
                 [(b"1.2.3.4", b""), (b"1.2.3.5", b"+X=1\0"), (b"1.2.3.6", b"D\0"), (b"1.2.3.7", b"+Y=t\0")])
same_as_tcprules("empty input", b"", [])
same_as_tcprules("comments only", b"# nothing here\n\n", [])
same_as_tcprules("a typical tcp.smtpd",
                 b"# /etc/tcp.smtpd\n127.0.0.1:allow,RELAYCLIENT=\"\",QMAILQUEUE=\"/var/qmail/bin/qmail-queue\"\n"
                 b"192.168.1.:allow,RELAYCLIENT=\"\"\n10.0.0.5-20:allow,RELAYCLIENT=\"\",DATABYTES=\"20000000\"\n"
                 b"=mx.partner.example:allow,RELAYCLIENT=\"\"\n203.0.113.66:deny\n198.51.100.:allow,RBLSMTPD=\"-go away\"\n"
                 b":allow,SMTPAUTH=\"\",GREETDELAY=\"5\",QMAILQUEUE=\"/usr/bin/spamc-wrapper\"\n")

# A large input: thousands of lines, so that lines straddle every read buffer.
rnd = random.Random(20240601)
big = []
for i in range(6000):
    k = rnd.choice(["%d.%d.%d.%d" % (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)),
                    "%d.%d." % (rnd.randrange(256), rnd.randrange(256)),
                    "10.%d.%d-%d" % (rnd.randrange(256), rnd.randrange(5), rnd.randrange(3, 8)),
                    "=h%d.example.com" % i, "u%d@127.0.0.%d" % (i, rnd.randrange(256)), "# comment %d" % i, ""])
    act = rnd.choice(["allow", "deny", "allow,X=\"%d\"" % i, "allow,RELAYCLIENT=\"\",V=/%s/" % ("y" * rnd.randrange(50))])
    big.append((k + ":" + act if not k.startswith("#") and k else k) + rnd.choice(["", " ", "\t"]))
same_as_tcprules("6000 generated lines", ("\n".join(big) + "\n").encode())

# ---------------------------------------------------------------- malformed lines

GOOD = b"1.2.3.4:allow,OLD=\"1\"\n"
BAD = [
    ("Allow", b"1.2.3.4:Allow"),
    ("': allow'", b": allow"),
    ("'1.2.3.4: allow'", b"1.2.3.4: allow"),
    ("allowed", b"1.2.3.4:allowed"),
    ("denyx", b"1.2.3.4:denyx"),
    ("'allow ,X'", b"1.2.3.4:allow ,X=\"1\""),
    ("trailing comma", b"1.2.3.4:allow,X=\"1\","),
    ("';' separator", b"1.2.3.4:allow,X=\"1\";Y=\"2\""),
    ("X= with no value", b"1.2.3.4:allow,X="),
    ("unterminated value", b"1.2.3.4:allow,X=\"1"),
    ("no '='", b"1.2.3.4:allow,X"),
    ("host-1.example.com without '='", b"host-1.example.com:allow"),
    ("1-2-3", b"1-2-3:allow"),
    ("non-digit range", b"1.2.3.4-x:allow"),
    ("empty action", b"1.2.3.4:"),
    ("CRLF line", b"1.2.3.4:allow\r"),
    ("CRLF line with a value", b"1.2.3.4:allow,X=\"1\"\r"),
]
base = path("bad")
os.mkdir(base)
cdb, tmp = os.path.join(base, "rules.cdb"), os.path.join(base, "rules.tmp")
rc, err = compile_(SSLRULES, GOOD, cdb, tmp)
is_(rc, 0, "malformed: the existing rules.cdb was made")
before = identity(cdb)
for name, line in BAD:
    text = b"# first line\n\n" + GOOD + line + b"\n9.9.9.9:deny\n"
    rt, et = compile_("tcprules", text, path("oracle.cdb"), path("oracle.tmp"))
    is_(rt, 100, "%s: tcprules (the oracle) rejects it" % name)
    rs, es = compile_(SSLRULES, text, cdb, tmp)
    is_(rs, 100, "%s: sslrules exits 100" % name)
    ok(es.count("\n") == 1 and es.startswith("sslrules: ") and es.endswith("\n"),
       "%s: exactly one line on stderr" % name, es)
    like(es, r"\bline 4\b", "%s: the message names line 4" % name)
    ok(identity(cdb) == before, "%s: rules.cdb untouched (same inode and bytes)" % name)
    ok(not os.path.exists(tmp), "%s: no tmp file left" % name)

# The bad line is the last one, without a newline, after many good lines.
text = b"".join(b"10.0.%d.%d:allow,N=\"%d\"\n" % (i // 256, i % 256, i) for i in range(5000)) + b"1.2.3.4:allow,"
rs, es = compile_(SSLRULES, text, cdb, tmp)
is_(rs, 100, "bad last line after 5000 good ones: exit 100")
like(es, r"\bline 5001\b", "bad last line: the message names line 5001")
ok(identity(cdb) == before and not os.path.exists(tmp), "bad last line: rules.cdb untouched, no tmp file")

# Debian's ucspi-tcp-ipv6 rejects an IPv6 address with a range, so must an
# IPv6-aware tcprules (0.88 rejects it too).
rt, et = compile_("tcprules", b"2001:db8::1-3:allow\n", path("oracle.cdb"), path("oracle.tmp"))
is_(rt, 100, "IPv6 address with a range: tcprules 0.88 rejects it")
rs, es = compile_(SSLRULES, b"2001:db8::1-3:allow\n", cdb, tmp)
is_(rs, 100, "IPv6 address with a range (2001:db8::1-3): exit 100, as ucspi-tcp-ipv6")
ok(identity(cdb) == before and not os.path.exists(tmp), "IPv6 range: rules.cdb untouched, no tmp file")

# ---------------------------------------------------------------- lines that hang Debian's IPv6 tcprules

for name, text, code in (("a line without a colon", b"no colon here\n1.2.3.4:allow\n", 0),
                         ("indented text", b"  # indented text\n1.2.3.4:allow\n", 0),
                         ("both, many times", b"x\n  # y\n" * 2000 + b"1.2.3.4:allow\n", 0),
                         ("Allow", b"1.2.3.4:Allow\n", 100),
                         ("': allow'", b"1.2.3.4: allow\n", 100)):
    d = path("spin%d" % len(os.listdir(D)))
    os.mkdir(d)
    rs, es = compile_(SSLRULES, text, os.path.join(d, "rules.cdb"), os.path.join(d, "rules.tmp"), timeout=5)
    is_(rs, code, "v6patch hang input (%s): sslrules exits %d within 5 s" % (name, code))
    if code == 0:
        is_(dump(os.path.join(d, "rules.cdb")), [(b"1.2.3.4", b"")], "v6patch hang input (%s): line ignored as by 0.88" % name)

# ---------------------------------------------------------------- IPv6 and CIDR

d6 = path("v6")
os.mkdir(d6)
v6text = (b"::1:allow\n2001:db8::1:deny,X=\"1\"\n2001:DB8::5:allow\n2001:db8::allow\n:::allow\n"
          b"2001:db8:0:1:1:1:1:1:allow\n2001:0db8:0000:0000:0000:0000:0000:0009:allow\n::ffff:1.2.3.:allow\n"
          b"joe@2001:DB8::7:allow\n10.0.0.0/8:deny\n2001:db8::/32:allow,NET=\"v6\"\n192.168.1.0/24:allow\n")
rs, es = compile_(SSLRULES, v6text, os.path.join(d6, "rules.cdb"), os.path.join(d6, "rules.tmp"))
is_(rs, 0, "IPv6 and CIDR lines compile")
if rs:
    diag(es)
recs = dump(os.path.join(d6, "rules.cdb")) or []
expect6 = [
    (b"::1", b""), (b"2001:db8::1", b"D\0+X=1\0"), (b"2001:db8::5", b""), (b"2001:db8:", b""), (b"::", b""),
    (b"2001:db8::1:1:1:1:1", b""), (b"2001:db8::9", b""), (b"::ffff:1.2.3.", b""), (b"joe@2001:db8::7", b""),
    (b"_0000e0g0", b"D\0"), (b"^00`000000000000a0000bc0de0fgh000", b"+NET=v6\0"),
    (b"_" + b"".join(b"0" if not (((192 << 16 | 168 << 8 | 1) >> (23 - i)) & 1) else b"abcdefghijklmnopqrstuvwxyz123456"[i:i + 1]
                     for i in range(24)), b""),
]
for want, got in zip(expect6, recs + [None] * len(expect6)):
    is_(got, want, "IPv6/CIDR key %r" % want[0].decode())
is_(len(recs), len(expect6), "IPv6/CIDR: no other records")
# Text with a '/' that is no CIDR block is stored as written, as tcprules
# stores it (such a key never matches).
same_as_tcprules("slash text that is no CIDR block", b"10.0.0.0/33:allow\n10.0.0.0/x:allow\nx/y:deny\n1.2.3.4/:allow\n",
                 [(b"10.0.0.0/33", b""), (b"10.0.0.0/x", b""), (b"x/y", b"D\0"), (b"1.2.3.4/", b"")])
rs, es = compile_(SSLRULES, b"2001:db8::/129:allow\n", path("cidr.cdb"), path("cidr.tmp"))
ok(rs == 0 and dump(path("cidr.cdb")) == [(b"2001:db8::/129", b"")], "IPv6 /129: stored as written, never a CIDR key")

# ---------------------------------------------------------------- atomic replacement

da = path("atomic")
os.mkdir(da)
cdb, tmp = os.path.join(da, "rules.cdb"), os.path.join(da, "rules.tmp")
compile_(SSLRULES, b"1.2.3.4:allow,GEN=\"old\"\n", cdb, tmp)
old_ino = os.stat(cdb).st_ino
oldfd = open(cdb, "rb")
old_bytes = open(cdb, "rb").read()
p = subprocess.Popen([SSLRULES, cdb, tmp], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
p.stdin.write(b"1.2.3.4:allow,GEN=\"new\"\n")
p.stdin.flush()
ok(suite.wait_until(lambda: os.path.exists(tmp), 10), "atomic: the tmp file exists while input is being read")
tmp_ino = os.stat(tmp).st_ino if os.path.exists(tmp) else None
is_(os.stat(cdb).st_ino, old_ino, "atomic: the old cdb is in place meanwhile")
is_(dump(cdb), [(b"1.2.3.4", b"+GEN=old\0")], "atomic: the old cdb still reads the old rules meanwhile")
p.stdin.close()
try:
    rc = p.wait(suite.patience(10))
except subprocess.TimeoutExpired:
    p.kill()
    rc = None
is_(rc, 0, "atomic: sslrules exits 0")
st = os.stat(cdb)
ok(st.st_ino != old_ino, "atomic: the new cdb is a new inode")
is_(st.st_ino, tmp_ino, "atomic: the new cdb is the tmp file, renamed")
ok(not os.path.exists(tmp), "atomic: no tmp file left")
is_(dump(cdb), [(b"1.2.3.4", b"+GEN=new\0")], "atomic: the new rules are in place")
ok(oldfd.read() == old_bytes and old_bytes != open(cdb, "rb").read(), "atomic: a descriptor opened before still reads the whole old file")
oldfd.close()
is_(oct(st.st_mode & 0o777), "0o644", "atomic: mode 0644 under umask 022 (as tcprules)")
# An existing tmp file is reused, as by tcprules.
with open(tmp, "wb") as f:
    f.write(b"stale junk" * 1000)
rc, err = compile_(SSLRULES, b"5.6.7.8:deny\n", cdb, tmp)
ok(rc == 0 and dump(cdb) == [(b"5.6.7.8", b"D\0")] and not os.path.exists(tmp), "atomic: a stale tmp file is truncated and reused")

# ---------------------------------------------------------------- write and rename failures: 111

before = identity(cdb)
shm = "/dev/shm"
if os.path.isdir(shm) and os.stat(shm).st_dev != os.stat(da).st_dev:
    xtmp = os.path.join(shm, "sslrules-test-%d.tmp" % os.getpid())
    rc, err = compile_(SSLRULES, b"1.2.3.4:allow\n", cdb, xtmp)
    is_(rc, 111, "tmp on another filesystem: exit 111")
    like(err, r"^sslrules: .*(cross-device|rename|move)", "tmp on another filesystem: the error is reported")
    ok(identity(cdb) == before, "tmp on another filesystem: old cdb untouched")
    if os.path.exists(xtmp):
        os.unlink(xtmp)
else:
    for _ in range(3):
        ok(True, "tmp on another filesystem # SKIP /dev/shm is not a separate filesystem here")

rc, err = compile_(SSLRULES, b"1.2.3.4:allow\n", cdb, path("no", "such", "dir", "rules.tmp"))
is_(rc, 111, "tmp in a missing directory: exit 111")
ok(identity(cdb) == before, "tmp in a missing directory: old cdb untouched")

# An unwritable directory (root ignores modes, so run as nobody).
ro = path("readonly")
os.mkdir(ro, 0o755)
rocdb = os.path.join(ro, "rules.cdb")
compile_(SSLRULES, b"1.2.3.4:allow\n", rocdb, os.path.join(ro, "rules.tmp"))
ro_before = identity(rocdb)
nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SSLRULES]
rc, err = compile_(nobody, b"5.6.7.8:deny\n", rocdb, os.path.join(ro, "rules.tmp"))
is_(rc, 111, "unwritable directory (tmp cannot be created): exit 111")
like(err, r"^sslrules: .*rules\.tmp", "unwritable directory: the tmp file is named")
ok(identity(rocdb) == ro_before, "unwritable directory: old cdb untouched")
wr = path("writable")
os.mkdir(wr)
os.chmod(wr, 0o777)
rc, err = compile_(nobody, b"5.6.7.8:deny\n", rocdb, os.path.join(wr, "rules.tmp"))
is_(rc, 111, "cdb in an unwritable directory (rename refused): exit 111")
ok(identity(rocdb) == ro_before, "rename refused: old cdb untouched")
dirfd = os.open(D, os.O_RDONLY)
r = subprocess.run([SSLRULES, cdb, tmp], stdin=dirfd, capture_output=True, timeout=suite.patience(10))
os.close(dirfd)
is_(r.returncode, 111, "stdin is a directory: exit 111")
ok(identity(cdb) == before and not os.path.exists(tmp), "stdin is a directory: old cdb untouched, no tmp file")

# ---------------------------------------------------------------- usage

for args in ([], [cdb], [cdb, tmp, "extra"], ["-c"], ["-c", cdb], ["-c", cdb, "1.2.3.4", "h", "i", "extra"]):
    r = subprocess.run([SSLRULES] + args, input=b"1.2.3.4:allow\n", capture_output=True, timeout=suite.patience(10))
    is_(r.returncode, 100, "usage %r: exit 100" % (args,))
    like(r.stderr.decode(), r"^sslrules: usage: ", "usage %r: a usage line" % (args,))
ok(identity(cdb) == before, "usage errors never touch a cdb")

# ---------------------------------------------------------------- sslrules -c against tcprulescheck

LOOKUP = b"""127.0.0.2:allow,WHICH="exact"
127.0.0.1:deny
127.0.0.:allow,WHICH="p3"
127.0.:deny
127.1.2.:allow,WHICH="p3b"
127.1.:allow,WHICH="p1"
127.1.2:deny
127.2.0.2-4:allow,WHICH="range"
=host.example.com:allow,WHICH="host"
=.example.com:allow,WHICH="dotcom"
=.sub.example.org:allow,WHICH="sub"
=.example.org:allow,WHICH="org"
=example.net:deny
=:allow,WHICH="anyhost",RELAYCLIENT=""
joe@127.0.0.5:allow,WHICH="joe-ip"
joe@=host.example.com:allow,WHICH="joe-host"
joe@127.0.0.:deny
@127.0.0.6:allow,WHICH="emptyinfo"
10.0.0.1:deny,WHY="x"
10.0.0.2:allow,A="1",A="2",B=/a=b/
5.5.5.5:allow,R="first"
5.5.5.5:deny
:allow,WHICH="default"
"""
dl = path("lookup")
os.mkdir(dl)
lcdb = os.path.join(dl, "rules.cdb")
subprocess.run(["tcprules", lcdb, lcdb + ".tmp"], input=LOOKUP, check=True, timeout=suite.patience(10))
nodef = os.path.join(dl, "nodefault.cdb")
subprocess.run(["tcprules", nodef, nodef + ".tmp"], input=LOOKUP.replace(b':allow,WHICH="default"\n', b""),
               check=True, timeout=suite.patience(10))
CASES = [
    (lcdb, "127.0.0.2", None, None), (lcdb, "127.0.0.1", None, None), (lcdb, "127.0.0.9", None, None),
    (lcdb, "127.0.5.5", None, None), (lcdb, "127.1.2.3", None, None), (lcdb, "127.1.3.3", None, None),
    (lcdb, "127.1.2", None, None), (lcdb, "127.2.0.3", None, None), (lcdb, "127.2.0.5", None, None),
    (lcdb, "127.0.0.2", "host.example.com", None), (lcdb, "127.0.0.9", "host.example.com", None),
    (lcdb, "9.9.9.9", "host.example.com", None), (lcdb, "9.9.9.9", "a.host.example.com", None),
    (lcdb, "9.9.9.9", "deep.sub.example.org", None), (lcdb, "9.9.9.9", "x.example.org", None),
    (lcdb, "9.9.9.9", "mail.example.net", None), (lcdb, "127.0.0.9", "x.example.org", None),
    (lcdb, "127.0.0.5", None, "joe"), (lcdb, "127.0.0.5", None, "bob"), (lcdb, "127.0.0.9", "host.example.com", "joe"),
    (lcdb, "127.0.0.9", None, "joe"), (lcdb, "127.0.0.6", None, ""), (lcdb, "127.0.0.6", None, None),
    (lcdb, "10.0.0.1", None, None), (lcdb, "10.0.0.2", None, None), (lcdb, "5.5.5.5", None, None),
    (lcdb, "8.8.8.8", None, None), (nodef, "8.8.8.8", None, None), (nodef, "8.8.8.8", "other.test", None),
]
for f, ip, host, info in CASES:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TCPREMOTEIP": ip}
    args = [SSLRULES, "-c", f, ip]
    if host is not None:
        env["TCPREMOTEHOST"] = host
    if info is not None:
        env["TCPREMOTEINFO"] = info
    if host is not None or info is not None:
        args.append(host or "")
    if info is not None:
        args.append(info)
    t = subprocess.run(["tcprulescheck", f], env=env, capture_output=True, timeout=suite.patience(10))
    s = subprocess.run(args, capture_output=True, timeout=suite.patience(10))
    name = "-c %s host=%s info=%s%s" % (ip, host, info, " (no default rule)" if f == nodef else "")
    ok(s.returncode == t.returncode and s.stdout == t.stdout, "%s: same lines as tcprulescheck" % name,
       "tcprulescheck (%d):\n%s\nsslrules -c (%d):\n%s" % (t.returncode, t.stdout.decode(), s.returncode, s.stdout.decode()))
r = subprocess.run([SSLRULES, "-c", path("missing.cdb"), "1.2.3.4"], capture_output=True, timeout=suite.patience(10))
is_(r.returncode, 111, "-c on a missing cdb: exit 111, as tcprulescheck")
like(r.stderr.decode(), r"^sslrules: .*unable to read .*missing\.cdb", "-c on a missing cdb: the file is named")
# IPv6 and CIDR lookups (no oracle: the documented keys).
v6cdb = os.path.join(d6, "rules.cdb")
for ip, want in (("::1", "rule ::1:\nallow connection\n"),
                 ("2001:db8::1", "rule 2001:db8::1:\nset environment variable X=1\ndeny connection\n"),
                 ("2001:db8:0:0:0:0:0:5", "rule 2001:db8::5:\nallow connection\n"),
                 ("2001:db8::2", "rule 2001:db8::\nallow connection\n"),
                 ("10.9.8.7", "rule _0000e0g0:\ndeny connection\n"),
                 ("192.168.1.77", "rule _%s:\nallow connection\n" % expect6[-1][0][1:].decode()),
                 ("2001:db9::1", "default:\nallow connection\n")):
    r = subprocess.run([SSLRULES, "-c", v6cdb, ip], capture_output=True, timeout=suite.patience(10))
    if ip == "2001:db8::1":
        want = "rule 2001:db8::1:\ndeny connection\n"   # tcprulescheck stops at the deny
    is_(r.stdout.decode(), want, "-c %s on the IPv6/CIDR cdb" % ip)

# ---------------------------------------------------------------- IPv6 keys that can never match

# An IPv6 prefix is compared with the one spelling the lookup makes (lower
# case, no leading zeros, the longest run of zero groups as ::, a dotted
# tail only after ::ffff:): a key no such spelling starts with is warned
# about, with its line number, and compiled exactly as tcprules does.
NEVER = [
    (b"2001:0db8::allow,W=\"lead\"", "2001:0db8:", "write IPv6 groups without leading zeros"),
    (b"0:0:0:0:0:0:0::allow", "0:0:0:0:0:0:0:",
     "the lookup writes the longest run of zero groups, even a single one, as '::'"),
    (b"fe80:0:0:0::deny", "fe80:0:0:0:", "the lookup writes the longest run of zero groups, even a single one, as '::'"),
    (b"2001:db8::0::allow", "2001:db8::0:", "the lookup writes the longest run of zero groups, even a single one, as '::'"),
    (b"::ffff:127.000.0.:allow", "::ffff:127.000.0.", "write the IPv4 part without leading zeros"),
    (b"::127.0.0.:allow", "::127.0.0.", "the lookup writes a dotted IPv4 part only after a leading '::ffff:'"),
    (b"2001:db8:allow", "2001:db8", "an IPv6 prefix ends with ':'"),
    (b"1:2:3:4:5:6:7:8::allow", "1:2:3:4:5:6:7:8:", "an IPv6 address has 8 groups"),
    (b"2001:db8:xyz::allow", "2001:db8:xyz:", "not an IPv6 address or prefix"),
    (b"joe@2001:0DB8::allow", "joe@2001:0db8:", "write IPv6 groups without leading zeros"),
]
text = b"# keys that can never match\n" + b"".join(line + b"\n1.2.3.4:allow\n" for line, _, _ in NEVER)
dn = path("never")
os.mkdir(dn)
rs, es = compile_(SSLRULES, text, os.path.join(dn, "rules.cdb"), os.path.join(dn, "rules.tmp"))
is_(rs, 0, "never-matching IPv6 keys: sslrules exits 0")
# tcprules 0.88 rejects these lines (its address ends at the first colon):
# each is stored as sslrules always stored IPv6 text it cannot normalise,
# as written, hex letters in lower case
want = []
for line, key, _ in NEVER:
    want += [(key.encode(), b"D\0" if b":deny" in line else b"+W=lead\0" if b"W=" in line else b""), (b"1.2.3.4", b"")]
is_(dump(os.path.join(dn, "rules.cdb")), want, "never-matching IPv6 keys: the records are the same as without the warnings")
warned = es.splitlines()
is_(len(warned), len(NEVER), "never-matching IPv6 keys: one line on stderr for each, none for the others")
for i, (line, key, why) in enumerate(NEVER):
    is_(warned[i] if i < len(warned) else None,
        "sslrules: warning: line %d: %s can never match: %s" % (2 + 2 * i, key, why),
        "warning for %s: the line number, the key and why" % line.decode())

# Keys the lookup can produce, whole or as a prefix: no warning.
FINE = (b"::1:allow\n:::allow\n::allow\n::ffff:127.0.0.:allow\n::ffff:1.:allow\n::ffff::allow\n"
        b"2001:db8::allow\n2001:DB8::1::allow\n2001:db8:0::allow\n2001:db8:0:0:1:0:0:1:allow\n"
        b"2001:db8::1:allow\n2001:0db8:0000:0000:0000:0000:0000:0009:allow\nfe80::allow\nfe80::1::allow\n"
        b"::ffff:0:1::allow\n1:2:3:4:5:6:7::allow\n1:0:2:0::allow\njoe@::1:allow\n2001:db8::/32:allow\n"
        b"127.0.0.:allow\n=host.example:allow\n:allow\n")
rs, es = compile_(SSLRULES, FINE, os.path.join(dn, "fine.cdb"), os.path.join(dn, "fine.tmp"))
is_((rs, es), (0, ""), "IPv6 keys and prefixes the lookup can produce: compiled, no warning")

# A warned key never matches: not a real connection from ::1 (the address
# 0:0:0:0:0:0:0: aims at), where the same rule written as the lookup
# spells it does; nor a lookup of the addresses the others aim at.
pki = suite.Pki()
ca = pki.ca("ca")
leaf = pki.leaf("server", ca, dns=("localhost",), ips=("::1",))
live = os.path.join(dn, "live.cdb")
compile_(SSLRULES, b"0:0:0:0:0:0:0::allow,WHICH=\"never\"\n:allow,WHICH=\"default\"\n", live, live + ".tmp")
srv = suite.Server(["-v", "-H", "-R", "-x", live], env={"CERTFILE": leaf["pem"], "KEYFILE": leaf["key"]}, host="::1")
ctx = suite.client_context(ca["crt"])


def which_from_v6_loopback():
    try:
        with suite.tls_connect(srv.port, ctx, host="::1") as s:
            rep = suite.report_of(s)
            s.sendall(b"quit\n")
            suite.read_all(s)
    except (OSError, ValueError) as e:
        diag(str(e))
        rep = None
    return suite.env_of(rep).get("WHICH")


is_(which_from_v6_loopback(), "default", "a real connection from ::1 does not match 0:0:0:0:0:0:0:")
compile_(SSLRULES, b":::allow,WHICH=\"prefix\"\n:allow,WHICH=\"default\"\n", live, live + ".tmp")
is_(which_from_v6_loopback(), "prefix", "a real connection from ::1 matches the prefix :: written as the lookup spells it")
srv.stop()
for ip in ("2001:db8::1", "fe80::1", "2001:db8::1:2", "::ffff:127.0.0.1"):
    r = subprocess.run([SSLRULES, "-c", os.path.join(dn, "rules.cdb"), ip], capture_output=True, timeout=suite.patience(10))
    is_(r.stdout.decode(), "default:\nallow connection\n", "-c %s: no warned key matches it" % ip)

# Keys far longer than any address (an info@ part of 30 MB) are built on
# the heap, never on the stack: no crash, and the same key as with a short
# info@ part.
huge = b"i" * 30000000
for rest in (b"@2001:DB8::1:allow\n", b"@2001:db8:AB:allow\n"):
    compile_(SSLRULES, b"x" + rest, path("small.cdb"), path("small.tmp"))
    small = [k for k, _ in dump(path("small.cdb")) or []]
    rc, err = compile_(SSLRULES, huge + rest, path("huge.cdb"), path("huge.tmp"), timeout=60)
    is_(rc, 0, "a rule line with a 30 MB info@ part compiles (exit 0, not a crash): ...%s" % rest.decode().strip())
    keys = [k for k, _ in dump(path("huge.cdb")) or []]
    ok(small and keys == [huge + k[1:] for k in small], "... to the key a short info@ part gets: x%s" % (small or [b"?"])[0][1:].decode())
tail = b".5" * 15000000
rc, err = compile_(SSLRULES, b"10.0-1" + tail + b":allow\n", path("huge.cdb"), path("huge.tmp"), timeout=60)
is_(rc, 0, "a 30 MB range rule compiles (exit 0, not a crash)")
is_([k for k, _ in dump(path("huge.cdb")) or []], [b"10.0" + tail, b"10.1" + tail], "... to one key per number of the range")
