#!/bin/sh
# testssl.sh (Debian package testssl.sh, command "testssl") against
# sslserver at its default TLS settings on 127.0.0.1, a port the kernel
# picks: once for immediate TLS (SMTPS, port 465 style: sslserver -N) and
# once for STARTTLS (SMTP, sslserver -n), both running
# examples/starttls-smtpd. Not run by make check: it takes minutes.
#
# usage: sh tests/testssl.sh [KIND]   KIND: rsa (default) or ec, the
#        server key. BUILD=... selects the binaries (default ./build).
#        OUT=DIR keeps the JSON and text output there. CIPHERORDER=server
#        is passed to sslserver when set (the operator's switch to the
#        server's cipher order, which testssl rates).
# Prints every finding of severity LOW, MEDIUM, HIGH or CRITICAL (and
# WARN: a test that could not be done) with its id; exit 1 if any is
# MEDIUM or worse, 0 otherwise, 111 if it could not run.

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
kind=${1:-rsa}
work=$(mktemp -d /tmp/sslsuite-testssl.XXXXXX) || exit 111
out=${OUT:-$work/out}
mkdir -p "$out"
pids=
cleanup () { for p in $pids ; do kill -TERM "$p" 2>/dev/null ; done ; rm -rf "$work" ; }
trap cleanup EXIT
trap 'exit 111' INT TERM
command -v testssl >/dev/null || { echo "testssl.sh: install the Debian package testssl.sh" >&2 ; exit 111 ; }
[ -x "$build/sslserver" ] || { echo "testssl.sh: no $build/sslserver (make first)" >&2 ; exit 111 ; }

# A CA and a server certificate for localhost and 127.0.0.1, made now; the
# CA is handed to testssl (--add-ca) so that the chain checks are real.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 730 \
  -keyout "$work/ca.key" -out "$work/ca.crt" -subj "/O=sslsuite tests/CN=testssl CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1 || exit 111
if [ "$kind" = ec ] ; then keyopt="-newkey ec -pkeyopt ec_paramgen_curve:P-256" ; else keyopt="-newkey rsa:2048" ; fi
openssl req -new $keyopt -nodes -keyout "$work/server.key" -out "$work/server.csr" \
  -subj "/O=sslsuite tests/CN=localhost" >/dev/null 2>&1 || exit 111
# Like a certificate from a real CA: a year's validity, CRL and OCSP URIs
# (testssl rates their absence HIGH; they are never fetched here).
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature%s\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\ncrlDistributionPoints=URI:http://crl.example.invalid/ca.crl\nauthorityInfoAccess=OCSP;URI:http://ocsp.example.invalid/\n' \
  "$([ "$kind" = ec ] || echo ,keyEncipherment)" > "$work/server.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -set_serial 11 -days 365 \
  -extfile "$work/server.ext" -out "$work/server.crt" >/dev/null 2>&1 || exit 111
cat "$work/server.crt" "$work/ca.crt" > "$work/chain.pem"

# start MODE: sslserver -1 with default TLS settings; sets port.
start () {
  d=$work/$1 ; mkdir -p "$d"
  CERTFILE=$work/chain.pem KEYFILE=$work/server.key PATH=/usr/bin:/bin CIPHERORDER=${CIPHERORDER:-} \
    "$build/sslserver" -1 -v -H "$2" 127.0.0.1 0 "$top/examples/starttls-smtpd" >"$d/stdout" 2>"$d/stderr" &
  pids="$pids $!"
  tries=50
  while [ $tries -gt 0 ] && ! grep -q ' : ' "$d/stdout" 2>/dev/null ; do sleep 0.2 ; tries=$((tries - 1)) ; done
  port=$(sed -n 's/.* : //p' "$d/stdout" | head -n 1)
  [ -n "$port" ] || { echo "testssl.sh: sslserver did not start" >&2 ; cat "$d/stderr" >&2 ; exit 111 ; }
}

ARGS="--quiet --color 0 --warnings off --add-ca $work/ca.crt -p -E -f -S -P -U -R -C"
worst=0
for mode in immediate starttls ; do
  if [ $mode = immediate ] ; then start $mode -N ; extra= ; else start $mode -n ; extra="--starttls smtp" ; fi
  rm -f "$out/$mode-$kind.json" "$out/$mode-$kind.txt"
  echo "== $mode ($kind key): testssl $ARGS $extra --jsonfile $out/$mode-$kind.json 127.0.0.1:$port"
  testssl $ARGS $extra --jsonfile "$out/$mode-$kind.json" "127.0.0.1:$port" > "$out/$mode-$kind.txt" 2>&1
  echo "   (testssl exit $?; full output in $out/$mode-$kind.txt)"
  python3 - "$out/$mode-$kind.json" <<'EOF'
import json, sys
rank = {"WARN": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}
found = [f for f in json.load(open(sys.argv[1])) if f.get("severity") in rank]
for f in sorted(found, key=lambda f: -rank[f["severity"]]):
    print("   %-8s %-32s %s" % (f["severity"], f["id"], f["finding"]))
if not found:
    print("   no finding of severity WARN, LOW, MEDIUM, HIGH or CRITICAL")
sys.exit(max([rank[f["severity"]] for f in found] or [0]))
EOF
  s=$?
  [ $s -gt $worst ] && worst=$s
done
[ -n "${OUT:-}" ] && echo "output kept in $out"
[ $worst -ge 2 ] && exit 1
exit 0
