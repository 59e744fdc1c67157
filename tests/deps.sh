#!/bin/sh
# Installs what building and testing need, on Debian. Used by make check and
# make demo. As root: apt-get installs whatever is missing. Otherwise: prints
# the apt-get line to run and exits 111.
packages="build-essential libssl-dev skalibs-dev openssl perl python3 gnutls-bin ucspi-tcp tinycdb swaks procps clang libclang-rt-14-dev valgrind testssl.sh stunnel4"
if ! command -v dpkg-query >/dev/null 2>&1 ; then
  echo "deps: not a Debian system; make sure these (or their equivalents) are installed: $packages" >&2
  exit 0
fi
missing=
for p in $packages ; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] ; then
  echo "deps: missing packages; as root, run:" >&2
  echo "  apt-get install -y$missing" >&2
  exit 111
fi
echo "deps: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2 || exit 111
apt-get install -y -q --no-install-recommends $missing >&2 || exit 111
