#!/bin/sh
# valgrind memcheck over sslserver: full immediate-TLS sessions (the
# program is /bin/cat), full deferred (STARTTLS) sessions (sslserver -n
# running examples/starttls-smtpd), and broken connections (garbage, a
# ClientHello cut by a RST, a session reset mid-transfer, a close before
# any byte: the error paths), each with 5 and then 50 connections.
# Not run by make check: it takes a few minutes.
#
# usage: sh tests/valgrind.sh            (builds a private copy of the tree's
#                                         sources in a temporary directory)
#        BUILD=/path/to/build sh tests/valgrind.sh    (uses those binaries)
#        KEEP=1 ...                      (keeps the logs; printed at the end)
#
# Every process of ours is traced: the main process, each connection
# process/TLS engine, and each application process up to its exec
# (--trace-children=yes --child-silent-after-fork=no); the programs exec'd
# (cat, python) are skipped with --trace-children-skip. The verdict:
#  - no memory error (invalid read/write/free, use of uninitialised
#    values, bad syscall parameters, overlapping copies) in any process;
#  - no growth, from 5 to 50 connections, of the bytes "definitely lost"
#    plus "indirectly lost" in the main process (SIGTERM ends it with
#    _exit(0), so "still reachable" is expected and ignored);
#  - every session completed and every connection ended with status 0
#    (broken connections: every one ended, none with status 99 - with
#    --error-exitcode=99, a connection process with errors exits 99).
# Exit code: 0 PASS, 1 FAIL, 111 could not run.

top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/sslsuite-valgrind.XXXXXX) || exit 111
cleanup () { [ -n "${KEEP:-}" ] || rm -rf "$work" ; }
trap cleanup EXIT
trap 'exit 111' INT TERM

command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed" >&2 ; exit 111 ; }

if [ -n "${BUILD:-}" ] ; then
  build=$BUILD
else
  build=$work/build
  echo "valgrind.sh: building a private copy in $build" >&2
  make -s -C "$top" BUILD="$build" all >"$work/make.log" 2>&1 || { cat "$work/make.log" >&2 ; exit 111 ; }
fi
[ -x "$build/sslserver" ] || { echo "valgrind.sh: no $build/sslserver" >&2 ; exit 111 ; }

# certificates, made now
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout "$work/ca.key" -out "$work/ca.crt" -subj "/CN=valgrind test CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign >/dev/null 2>&1 || exit 111
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$work/server.key" -out "$work/server.csr" -subj "/CN=localhost" >/dev/null 2>&1 || exit 111
printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$work/server.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -set_serial 7 -days 2 \
  -extfile "$work/server.ext" -out "$work/server.crt" >/dev/null 2>&1 || exit 111

VALGRIND="valgrind --tool=memcheck --trace-children=yes --child-silent-after-fork=no --leak-check=full
  --show-leak-kinds=definite,indirect,possible --error-exitcode=99 --num-callers=30"
SKIP='*/python3*,/bin/*,/usr/bin/*,*/starttls-smtpd'   # programs we exec, not ours

# The client side, in Python (not under valgrind): N full sessions.
cat > "$work/client.py" <<'EOF'
import socket, ssl, sys
mode, port, n, cafile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(cafile)
T = 120   # valgrind is slow


def lines(f, want):
    """SMTP reply: read lines until one whose 4th char is a space."""
    out = []
    while True:
        l = f.readline()
        if not l:
            raise OSError("EOF in reply, after %r" % out)
        out.append(l)
        if len(l) < 4 or l[3:4] == b" ":
            break
    if not out[-1].startswith(want):
        raise OSError("expected %r, got %r" % (want, out))
    return out


def immediate(i):
    raw = socket.create_connection(("127.0.0.1", port), timeout=T)
    s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
    f = s.makefile("rb")
    for j in range(3):
        msg = b"session %d line %d\n" % (i, j)
        s.sendall(msg)
        if f.readline() != msg:
            raise OSError("echo mismatch")
    blob = bytes(range(256)) * 256 + b"\n"      # 64 kB through the relay
    s.sendall(blob)
    got = f.read(len(blob))
    if got != blob:
        raise OSError("64 kB echo mismatch (%d bytes)" % len(got))
    f.close()
    s.unwrap()          # close_notify both ways: cat sees EOF and exits 0
    s.close()


def deferred(i):
    raw = socket.create_connection(("127.0.0.1", port), timeout=T)
    f = raw.makefile("rb")
    lines(f, b"220")
    raw.sendall(b"EHLO client%d.example\r\n" % i)
    if not any(b"STARTTLS" in l for l in lines(f, b"250")):
        raise OSError("no STARTTLS offered")
    raw.sendall(b"STARTTLS\r\n")
    lines(f, b"220")
    f.close()
    s = ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
    f = s.makefile("rb")
    s.sendall(b"EHLO client%d.example\r\n" % i)
    lines(f, b"250")
    s.sendall(b"XSSL\r\n")
    if not any(b"SSL_PROTOCOL=TLSv1.3" in l for l in lines(f, b"250")):
        raise OSError("no SSL_PROTOCOL in XSSL")
    s.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    lines(f, b"250"); lines(f, b"250"); lines(f, b"354")
    s.sendall(b"Subject: valgrind\r\n\r\n" + b"x" * 900 + b"\r\n.\r\n")
    lines(f, b"250")
    s.sendall(b"QUIT\r\n")
    lines(f, b"221")
    if s.recv(100) != b"":      # the server's close_notify
        raise OSError("data after QUIT")
    f.close()
    s.close()


def broken(i):
    """Error paths: garbage, a ClientHello cut by a RST, a session reset in
    the middle of a transfer, a plain close before any byte. Nothing is
    expected of the server here but to cope."""
    import os, struct
    raw = socket.create_connection(("127.0.0.1", port), timeout=T)
    k = i % 4
    try:
        if k == 0:
            raw.sendall(b"\xde\xad\xbe" + os.urandom(2000))   # not a TLS or SSLv2 header
            while raw.recv(4096):
                pass
        elif k == 1:
            c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            c.check_hostname, c.verify_mode = False, ssl.CERT_NONE
            inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = c.wrap_bio(inc, out, server_hostname="localhost")
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            hello = out.read()
            raw.sendall(hello[:len(hello) // 2])
        elif k == 2:
            s = ctx.wrap_socket(raw, server_hostname="localhost")
            s.sendall(b"z" * 300000)
            s.recv(1000)
            raw = s
    except (OSError, ssl.SSLError):
        pass
    if k in (1, 2):
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()


bad = 0
for i in range(n):
    try:
        {"immediate": immediate, "deferred": deferred, "broken": broken}[mode](i)
    except (OSError, ssl.SSLError) as e:
        bad += 1
        print("session %d: %s: %s" % (i, type(e).__name__, e), file=sys.stderr)
print("%d/%d sessions ok" % (n - bad, n))
sys.exit(1 if bad else 0)
EOF

# wait_for COUNT SECONDS COMMAND...: polls COMMAND every 0.2 s, bounded.
wait_for () {
  tries=$(( $1 * 5 )) ; shift
  while [ $tries -gt 0 ] ; do
    "$@" && return 0
    tries=$(( tries - 1 ))
    sleep 0.2
  done
  return 1
}
has_port () { [ -s "$1" ] && grep -q ' : ' "$1" ; }
ends_logged () { [ "$(grep -c '^sslserver: end ' "$1")" -ge "$2" ] ; }
gone () { ! kill -0 "$1" 2>/dev/null ; }

fail=0
report=$work/report
: > "$report"

# run MODE N: one server under valgrind, N sessions, SIGTERM. Sets main_lost.
run () {
  mode=$1 ; n=$2 ; d=$work/$mode-$n ; mkdir -p "$d/vg"
  if [ "$mode" = deferred ] ; then opts="-n" ; app="$top/examples/starttls-smtpd"
  else opts="-N" ; app="/bin/cat" ; fi
  CERTFILE=$work/server.crt KEYFILE=$work/server.key PATH=/usr/bin:/bin \
    $VALGRIND --trace-children-skip="$SKIP" --log-file="$d/vg/%p" \
    "$build/sslserver" -1 -v $opts 127.0.0.1 0 $app >"$d/stdout" 2>"$d/stderr" &
  spid=$!
  if ! wait_for 120 has_port "$d/stdout" ; then
    echo "FAIL $mode N=$n: the server did not start under valgrind" | tee -a "$report"
    cat "$d/stderr" >&2 ; kill -KILL $spid 2>/dev/null ; fail=1 ; return
  fi
  port=$(sed -n 's/.* : //p' "$d/stdout" | head -n 1)
  start=$(date +%s)
  python3 "$work/client.py" "$mode" "$port" "$n" "$work/ca.crt" >"$d/client.out" 2>"$d/client.err"
  crc=$?
  took=$(( $(date +%s) - start ))
  wait_for 120 ends_logged "$d/stderr" "$n" || echo "$mode N=$n: not every connection ended" >> "$d/client.err"
  kill -TERM $spid
  wait_for 120 gone $spid || { kill -KILL $spid ; echo "$mode N=$n: the server did not exit on SIGTERM" >> "$d/client.err" ; }
  wait $spid ; src=$?

  ends=$(grep -c '^sslserver: end ' "$d/stderr")
  ends0=$(grep -c '^sslserver: end [0-9]* status 0$' "$d/stderr")
  ends99=$(grep -c '^sslserver: end [0-9]* status 25344$' "$d/stderr")   # --error-exitcode=99
  [ "$mode" = broken ] && ends0=$n      # these connections fail on purpose
  errs=$(cat "$d"/vg/* | grep -cE 'Invalid (read|write|free)|uninitialised|Mismatched free|overlap|Syscall param|Jump to the invalid|Process terminating|unhandled syscall')
  main=$d/vg/$spid
  dl=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes in \([0-9,]*\) blocks.*/\1 \2/p' "$main" | tr -d , | head -n 1)
  il=$(sed -n 's/.*indirectly lost: \([0-9,]*\) bytes in \([0-9,]*\) blocks.*/\1 \2/p' "$main" | tr -d , | head -n 1)
  sr=$(sed -n 's/.*still reachable: \([0-9,]*\) bytes in \([0-9,]*\) blocks.*/\1 \2/p' "$main" | tr -d , | head -n 1)
  [ -n "$dl" ] || dl="0 0" ; [ -n "$il" ] || il="0 0" ; [ -n "$sr" ] || sr="0 0"
  main_lost=$(( ${dl%% *} + ${il%% *} ))
  # leaks in the other processes of ours (connection processes, engines)
  other=0 ; nprocs=0
  for f in "$d"/vg/* ; do
    nprocs=$(( nprocs + 1 ))
    [ "$f" = "$main" ] && continue
    b=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$f" | tr -d , | head -n 1)
    other=$(( other + ${b:-0} ))
  done
  {
    if [ "$mode" = broken ] ; then
      echo "$mode N=$n: $(cat "$d/client.out") in ${took}s (client exit $crc); $ends end lines ($(sed -n 's/^sslserver: end [0-9]* status //p' "$d/stderr" | sort -n | uniq -c | awk '{printf "%s%dx status %s", s, $1, $2 ; s = ", "}')), $ends99 with status 25344 (valgrind errors); server exit $src"
    else
      echo "$mode N=$n: $(cat "$d/client.out") in ${took}s (client exit $crc); $ends end lines, $ends0 with status 0; server exit $src"
    fi
    echo "  processes traced: $nprocs; memory-error lines in all logs: $errs"
    echo "  main process: definitely lost ${dl% *} bytes in ${dl#* } blocks, indirectly lost ${il% *} in ${il#* }, still reachable ${sr% *} in ${sr#* }"
    echo "  other processes: definitely lost $other bytes in all"
  } | tee -a "$report"
  if [ $crc != 0 ] || [ "$ends" != "$n" ] || [ "$ends0" != "$n" ] || [ "$ends99" != 0 ] || [ $src != 0 ] || [ "$errs" != 0 ] ; then
    fail=1
    echo "  -> FAIL" | tee -a "$report"
    cat "$d/client.err" | head -n 20
    cat "$d"/vg/* | grep -B 2 -A 25 -E 'Invalid (read|write|free)|uninitialised|Mismatched free|overlap|Syscall param|Jump to the invalid|Process terminating|unhandled syscall' | head -n 120
  fi
  if [ "$other" != 0 ] ; then
    echo "  (definite leaks in child processes:)"
    grep -l 'definitely lost: [1-9]' "$d"/vg/* | head -n 3 | while read f ; do grep -A 30 'definitely lost in' "$f" | head -n 40 ; done
  fi
}

for mode in immediate deferred broken ; do
  run $mode 5 ; lost5=$main_lost
  run $mode 50 ; lost50=$main_lost
  if [ "$lost50" -gt "$lost5" ] ; then
    fail=1
    echo "$mode: FAIL: the main process loses more with 50 connections ($lost50 bytes) than with 5 ($lost5)" | tee -a "$report"
    grep -h -A 30 "definitely lost in\|indirectly lost in" "$work/$mode-50/vg/"* | head -n 60
  else
    echo "$mode: main process lost (definitely + indirectly) $lost5 bytes with 5 connections, $lost50 with 50: no growth" | tee -a "$report"
  fi
done

echo
echo "valgrind: $VALGRIND --trace-children-skip='$SKIP' --log-file=DIR/%p" | tr -s ' \n' ' '
echo
[ -n "${KEEP:-}" ] && echo "logs kept in $work"
if [ $fail = 0 ] ; then echo "VERDICT: PASS (no memory errors in any process; no leak growth in the main process)" ; exit 0 ; fi
echo "VERDICT: FAIL (see above)"
exit 1
