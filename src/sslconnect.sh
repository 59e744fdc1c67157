#!/bin/sh
# sslconnect host [ port [ sslclient options ] ]: talk to a TLS server from
# the terminal (port 465 by default): lines typed go to the server with CR
# LF endings, what the server sends is printed. The server is verified as
# sslclient does; add -X or -N to the options to relax that.
[ $# -ge 1 ] || { echo "sslconnect: usage: sslconnect host [ port [ sslclient options ] ]" >&2 ; exit 100 ; }
host=$1 ; shift
port=${1:-465} ; [ $# -ge 1 ] && shift
exec sslclient -RH "$@" -- "$host" "$port" sh -c '
  cat <&6 &
  sed -e "s/\$/\r/" >&7
  exec 7>&-
  wait'
