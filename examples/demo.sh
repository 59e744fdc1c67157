#!/bin/sh
# make demo: a throwaway CA and certificate, sslserver serving the example
# SMTP daemon on 127.0.0.1 twice - SMTPS (immediate TLS, as on port 465) and
# SMTP with STARTTLS (deferred TLS, as on port 25/587) - and once more in
# front of a daemon that knows nothing of TLS (STARTTLS=smtp: the engine
# speaks STARTTLS for it); one session of each with openssl s_client, then
# everything is stopped and removed.
set -eu
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
smtpd=$here/starttls-smtpd
plain=$here/plain-smtpd
d=$(mktemp -d /tmp/sslsuite-demo.XXXXXX)
pids=
cleanup () {
  for p in $pids ; do kill "$p" 2>/dev/null || : ; done
  for p in $pids ; do wait "$p" 2>/dev/null || : ; done
  rm -rf "$d"
}
trap cleanup EXIT INT TERM

say () { printf '\n== %s\n' "$*" ; }

say "1. A throwaway CA and a certificate for localhost, in $d"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/O=sslsuite demo/CN=demo CA" -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=sslsuite demo/CN=localhost" \
  -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$d/ext"
openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
  -days 1 -extfile "$d/ext" -out "$d/server.crt" 2>/dev/null
chmod 600 "$d/server.key"
echo "   CERTFILE=$d/server.crt KEYFILE=$d/server.key"

# start NAME ARGS...: runs sslserver -1 on a free port; sets $port.
start () {
  name=$1 ; shift
  "$@" > "$d/$name.port" 2> "$d/$name.log" &
  pids="$pids $!"
  i=0
  while ! grep -q ' : ' "$d/$name.port" 2>/dev/null ; do
    i=$((i+1)) ; [ $i -gt 200 ] && { echo "demo: $name did not start:" ; cat "$d/$name.log" ; exit 111 ; }
    sleep 0.05
  done
  port=$(sed -n 's/.* : //p' "$d/$name.port")
}

export CERTFILE="$d/server.crt" KEYFILE="$d/server.key"

say "2. sslserver for SMTPS (immediate TLS) and for SMTP with STARTTLS (deferred TLS)"
# As root, the TLS engines leave root, as in production (a server whose
# engine stays root warns about it); the key stays readable by root only.
if [ "$(id -u)" = 0 ] ; then
  export SSL_UID="$(id -u nobody)" SSL_GID="$(id -g nobody)"
  echo "   SSL_UID=$SSL_UID SSL_GID=$SSL_GID: the TLS engines run as nobody, the daemon as root"
fi
start smtps "$build/sslserver" -v -1 -N -l localhost 127.0.0.1 0 "$smtpd"
smtps=$port
echo "   sslserver -v -N -l localhost 127.0.0.1 $smtps starttls-smtpd        (SMTPS)"
echo "   rules for the STARTTLS server, compiled with sslrules (tcprules syntax):"
printf '127.0.0.1:allow,UCSPITLS=""\n:deny\n' | tee "$d/rules" | sed 's/^/     /'
"$build/sslrules" "$d/rules.cdb" "$d/rules.tmp" < "$d/rules"
start smtp "$build/sslserver" -v -1 -l localhost -x "$d/rules.cdb" 127.0.0.1 0 "$smtpd"
smtp=$port
echo "   sslserver -v -l localhost -x rules.cdb 127.0.0.1 $smtp starttls-smtpd  (STARTTLS: UCSPITLS from the rule)"

session () {
  printf '   C: %s\n' "EHLO client.example" "XSSL (the demo's command: list the SSL_* variables it has)" "QUIT"
  printf 'EHLO client.example\r\nXSSL\r\nQUIT\r\n' |
    openssl s_client -quiet -verify_return_error -CAfile "$d/ca.crt" -servername localhost "$@" 2>"$d/client.err" |
    tr -d '\r' | sed 's/^/   S: /' || { cat "$d/client.err" ; exit 1 ; }
}

say "3. An SMTPS session: TLS from the first byte (openssl s_client)"
session -connect "127.0.0.1:$smtps"

say "4. An SMTP session with STARTTLS (openssl s_client -starttls smtp)"
echo "   (s_client sends EHLO and STARTTLS in clear; the daemon writes 'Y' to"
echo "    SSLCTLFD, sslserver's engine does the handshake and hands back the"
echo "    SSL_* variables; the daemon then talks through SSLREADFD/SSLWRITEFD)"
session -connect "127.0.0.1:$smtp" -starttls smtp

say "5. The STARTTLS front: STARTTLS=smtp before a daemon that knows nothing of TLS"
start front env STARTTLS=smtp "$build/sslserver" -v -1 -l localhost 127.0.0.1 0 /bin/sh "$plain"
front=$port
echo "   STARTTLS=smtp sslserver -v -l localhost 127.0.0.1 $front plain-smtpd"
echo "   (plain-smtpd, a shell script, talks in clear on pipes; the engine adds"
echo "    STARTTLS to its EHLO reply, answers STARTTLS itself - the daemon never"
echo "    sees it - does the handshake and goes on passing lines through TLS)"
printf '   C: %s\n' "EHLO client.example" "MAIL FROM:<a@example.org>" "RCPT TO:<b@example.org>" "DATA ..." "QUIT"
printf 'EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nSubject: demo\r\n\r\nhello\r\n.\r\nQUIT\r\n' |
  openssl s_client -quiet -verify_return_error -CAfile "$d/ca.crt" -servername localhost \
    -connect "127.0.0.1:$front" -starttls smtp 2>"$d/client.err" |
  tr -d '\r' | sed 's/^/   S: /' || { cat "$d/client.err" ; exit 1 ; }

say "6. What sslserver logged (stderr, one line per event, for multilog)"
for p in $pids ; do kill "$p" ; done
for p in $pids ; do wait "$p" 2>/dev/null || : ; done
pids=
sed 's/^/   /' "$d/smtps.log" "$d/smtp.log" "$d/front.log"

say "Done: the servers stopped, $d removed. Next: make check, man man/sslserver.1"
