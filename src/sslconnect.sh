#!/bin/sh
# sslconnect host [ port [ sslclient options ] ]: talk to a TLS server from
# the terminal (port 465 by default): lines typed go to the server with CR
# LF endings, each as soon as it is typed, and what the server sends is
# printed. At the end of input (Ctrl-D) the server sees the end of its
# input, and sslconnect ends when the server closes the connection, as it
# does at once if the server closes first. The server is verified as
# sslclient does; add -X or -N to the options to relax that.
[ $# -ge 1 ] || { echo "sslconnect: usage: sslconnect host [ port [ sslclient options ] ]" >&2 ; exit 100 ; }
host=$1 ; shift
port=${1:-465} ; [ $# -ge 1 ] && shift
# The writer is a loop of builtins, so that each line leaves at once (sed
# would buffer it). It runs in the background, whose stdin a shell without
# job control replaces by /dev/null: hence the copy of the terminal on fd 3.
# Only the writer holds fd 7, so its end is the server's end of input. When
# the server closes, the writer is still reading the terminal: stop it.
exec sslclient -RH "$@" -- "$host" "$port" sh -c '
  exec 3<&0
  while IFS= read -r line || [ -n "$line" ] ; do
    printf "%s\r\n" "$line"
  done <&3 >&7 3<&- 6<&- &
  writer=$!
  exec 3<&- 7>&-
  trap "kill \$writer 2>/dev/null ; exit 130" INT
  trap "kill \$writer 2>/dev/null ; exit 143" TERM
  cat <&6
  status=$?
  kill $writer 2>/dev/null
  wait
  exit $status'
