#!/bin/sh
# Installs what building, the demo, the tests, make fuzz and the bench need,
# on Debian 12, then checks that each capability they rely on is really
# there: a package being installed is not enough (swaks without Net::SSLeay
# is installed and cannot do TLS; a Recommends is not installed with
# --no-install-recommends). Used by make check, check-asan, demo, fuzz.
#
# As root: apt-get installs whatever is missing. Otherwise: prints the
# apt-get line to run and exits 111. A capability still missing after that:
# one line per capability, saying what and why, and exit 111.

# Package: what needs it.
#   build-essential libssl-dev skalibs-dev: the build (gcc, make, headers)
#   openssl: certificates made at run time, s_client/s_server as peers
#   python3: the test scripts (ssl, smtplib, ... from the standard library)
#   perl: prove, the test runner
#   gnutls-bin: gnutls-cli/gnutls-serv as peers
#   ucspi-tcp: tcpserver, tcprules, tcprulescheck (compatibility peers)
#   tinycdb: the cdb tool, to read rules cdbs byte for byte
#   swaks libnet-ssleay-perl: an SMTP client; TLS needs Net::SSLeay, which
#     swaks only recommends
#   man-db: tests/manpages.t renders the man pages with man -l
#   iproute2: ss, to look at listening sockets
#   procps util-linux: ps/kill, setpriv and unshare
#   clang libclang-rt-14-dev: make fuzz (libFuzzer)
#   valgrind testssl.sh: tests/valgrind.sh, tests/testssl.sh
#   stunnel4: a peer for the bench
#   faketime: libfaketime moves the server's clock (tests/sessions.t)
#   python3-prometheus-client: its parser reads METRICSFILE (tests/metrics.t)
#   haproxy nginx-light libnginx-mod-stream: real PROXY protocol senders
#     (tests/proxy.t; nginx's stream module is a package of its own)
#   strace: tests/check.t shows that check mode makes no fork and opens
#     no socket
#   systemd: systemd-socket-activate hands sockets over (tests/supervision.t)
#   s6: s6-supervise and s6-svwait wait for readiness (tests/supervision.t)
#   fail2ban: fail2ban-regex runs examples/fail2ban's filter on real
#     failed-handshake lines (tests/fail2ban.t)
#   postfix: sendmail -bs, an unmodified SMTP daemon behind the STARTTLS front
#     (tests/starttls-front.t; installing it starts no daemon: no init here)
#   mailutils-pop3d mailutils-imap4d: pop3d/imap4d --inetd, unmodified
#     POP3/IMAP daemons behind the STARTTLS front (tests/starttls-front.t)
#   curl: an SMTP/POP3/IMAP client with --ssl-reqd (tests/starttls-front.t)
packages="build-essential libssl-dev skalibs-dev openssl perl python3 gnutls-bin ucspi-tcp tinycdb swaks libnet-ssleay-perl man-db iproute2 procps util-linux clang libclang-rt-14-dev valgrind testssl.sh stunnel4 faketime haproxy nginx-light libnginx-mod-stream fail2ban systemd s6 strace python3-prometheus-client postfix mailutils-pop3d mailutils-imap4d curl"

if command -v dpkg-query >/dev/null 2>&1 ; then
  missing=
  for p in $packages ; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
  done
  if [ -n "$missing" ] ; then
    if [ "$(id -u)" != 0 ] ; then
      echo "deps: missing packages; as root, run:" >&2
      echo "  apt-get install -y$missing" >&2
      exit 111
    fi
    echo "deps: installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 || { echo "deps: apt-get update failed" >&2 ; exit 111 ; }
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 $missing >&2 || { echo "deps: apt-get install failed" >&2 ; exit 111 ; }
  fi
else
  echo "deps: not a Debian system; make sure these (or their equivalents) are installed: $packages" >&2
fi

# Capabilities, each checked the way the tests use it.
bad=0
lack () { echo "deps: missing: $1" >&2 ; bad=1 ; }

for c in cc make openssl perl prove gnutls-cli gnutls-serv tcpserver tcprules tcprulescheck cdb swaks man ss \
         ps setpriv unshare clang valgrind testssl stunnel4 haproxy nginx fail2ban-regex \
         systemd-socket-activate s6-supervise s6-svwait strace curl ; do
  command -v "$c" >/dev/null 2>&1 || lack "the command $c (used by the build, the tests, make fuzz or the bench)"
done
for c in /usr/sbin/sendmail /usr/sbin/pop3d /usr/sbin/imap4d ; do
  [ -x $c ] || lack "$c (postfix, mailutils-pop3d, mailutils-imap4d): daemons behind the STARTTLS front in tests/starttls-front.t"
done
[ -x /usr/bin/python3 ] || lack "/usr/bin/python3 (every test is a Python script run by prove)"
for h in openssl/ssl.h:libssl-dev skalibs/skalibs.h:skalibs-dev ; do
  printf '#include <%s>\n' "${h%%:*}" | cc -E -x c - >/dev/null 2>&1 ||
    lack "the header ${h%%:*} (${h#*:}): the build"
done
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] ||
  lack "nginx's stream module (libnginx-mod-stream): tests/proxy.t puts nginx in front with proxy_protocol on"
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 ||
  lack "libfaketime (faketime): tests/sessions.t moves the server's clock with it"
if command -v swaks >/dev/null 2>&1 ; then
  swaks --support 2>&1 | grep -q '^=== TLS supported' ||
    lack "TLS in swaks (it needs Net::SSLeay, libnet-ssleay-perl): tests/starttls.t uses swaks --tls"
fi
if [ -x /usr/bin/python3 ] ; then
  err=$(/usr/bin/python3 -c '
import ssl, smtplib, selectors, termios, ctypes, statistics, resource, json
import prometheus_client.parser
if not ssl.HAS_TLSv1_3: raise SystemExit("ssl without TLS 1.3")
' 2>&1) || lack "Python modules the tests import: $err"
fi
if command -v man >/dev/null 2>&1 ; then
  printf '.TH T 1\n.SH NAME\nt \\- t\n' > "${TMPDIR:-/tmp}/deps-man.$$.1"
  out=$(MANWIDTH=80 man -l "${TMPDIR:-/tmp}/deps-man.$$.1" 2>&1)
  rm -f "${TMPDIR:-/tmp}/deps-man.$$.1"
  case $out in *NAME*) ;; *) lack "man -l cannot render a page (groff-base): tests/manpages.t: $out" ;; esac
fi
[ $bad = 0 ] || exit 111
exit 0
