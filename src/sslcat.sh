#!/bin/sh
# sslcat host [ port [ sslclient options ] ]: print what a TLS server sends
# (port 443 by default), sending nothing: the server sees the end of its
# input at once. The server is verified as sslclient does; add -X
# or -N to the options to relax that.
[ $# -ge 1 ] || { echo "sslcat: usage: sslcat host [ port [ sslclient options ] ]" >&2 ; exit 100 ; }
host=$1 ; shift
port=${1:-443} ; [ $# -ge 1 ] && shift
exec sslclient -RH "$@" -- "$host" "$port" sh -c 'exec 7>&- ; exec cat <&6'
