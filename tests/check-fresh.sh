#!/bin/sh
# tests/check-fresh.sh (make check-fresh): run the README's quick-start
# commands, exactly as written, in a pristine Debian 12 root filesystem
# (debootstrap --variant=minbase bookworm). Root only.
#
# Why: the README promises that its quick-start lines work on a bare Debian 12
# machine. CI runs on a prepared machine, where a package tests/deps.sh forgot
# is there anyway, so a green CI can hide a missing install step. Here nothing
# is installed beyond minbase and what the README's own lines install.
#
# How:
#  1. The root filesystem: on the first run, debootstrap --variant=minbase
#     bookworm from the host's Debian mirror (Release signatures checked with
#     gpgv against debian-archive-keyring), tarred at once, before anything
#     touches it, into $FRESH_CACHE/bookworm-minbase.tar (a temporary name,
#     then renamed). Every run unpacks a new copy into a new work directory,
#     /var/tmp/check-fresh.XXXXXX.
#  2. Into the copy go what this machine needs to reach the mirror and nothing
#     else: the host's Debian apt sources (third-party repositories left out:
#     the chroot lacks their keys), the host's apt.conf.d files about reaching
#     the mirror (a dated snapshot here: Check-Valid-Until "false"),
#     /etc/resolv.conf, an /etc/hosts (minbase has none; localhost, and the
#     hostname as an installed Debian has it), and a policy-rc.d so that no
#     package starts a daemon.
#  3. The repository's committed HEAD (what CI sees, not the working tree) is
#     fetched into /src.git in the chroot; REPO=/src.git. The chroot has no
#     git until the README's first line installs it.
#  4. Mounts: the chroot's root onto itself (so that / is a mount point, as
#     on a machine: unshare -m and mount --make-private / need it), /proc,
#     /sys, /dev and /dev/pts (the host's, bound), /dev/shm (a new tmpfs).
#  5. The commands: the first block of lines indented by 4 spaces after the
#     line starting with "Quick start" in HEAD's README. They run in one
#     sh -e, as root, in /root, with a clean environment (HOME PATH TERM=dumb
#     LANG USER LOGNAME REPO; the host's *_proxy variables if set), stdin
#     /dev/null, default signal dispositions, in a session of their own. Each
#     is announced with the time; each step's seconds are listed at the end.
#  6. On every exit (done, failed, INT/TERM/HUP): the chroot's processes (root
#     inside the work directory, or in the session started for it) get TERM,
#     then KILL; everything mounted under the work directory is unmounted
#     (lazily if it must); the work directory is removed only when
#     /proc/mounts shows nothing left mounted under it.
#
# Exit status: the README commands' status (0: all of them succeeded); 111 if
# the setup failed (one line says which step); 128+n on signal n.
#
# Environment:
#   FRESH_CACHE=DIR   where the rootfs tarball is kept (default
#                     /var/cache/sslsuite-fresh); remove the tarball to
#                     debootstrap again (e.g. after a Debian point release)
#   FRESH_KEEP=1      keep the work directory (unmounted) to look at afterwards
#   FRESH_COMMANDS=   run these lines (one command a line) instead of the
#                     README's: for working on this script, not for CI
#   FRESH_MIRROR=URL  the Debian mirror for debootstrap (default: the host's
#                     apt source for bookworm)

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
LC_ALL=C
export LC_ALL
umask 022     # a root login's, whatever the caller's

me=check-fresh
say() { printf '%s [%s] %s\n' "$me" "$(date +%T)" "$*"; }
warn() { printf '%s: %s\n' "$me" "$*" >&2; }
# Setup failed: one line, exit 111 (the EXIT trap cleans up).
fail() { warn "setup failed: $*"; exit 111; }

if [ "$(id -u)" != 0 ]; then
  echo "$me: must run as root (it debootstraps, mounts and chroots)" >&2
  exit 111
fi

cache=${FRESH_CACHE:-/var/cache/sslsuite-fresh}
tarball=$cache/bookworm-minbase.tar
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
chroot_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

work=
root=
group=        # pid (= process group and session id) of what runs under setsid
steps=        # "seconds<TAB>what" lines, for the summary
t0=$(date +%s)

# ---------------------------------------------------------------- timings
lap_what=
lap_start() { lap_what=$1; lap_t=$(date +%s); }
lap_end() {
  steps="$steps$(( $(date +%s) - lap_t ))	$lap_what$1
"
  lap_what=
}

# The README steps' seconds, from the start times the chroot noted in
# /run/check-fresh-steps; the step still running ends now. Sets $last.
t_run=
last=0
collect_steps() {
  [ -n "$t_run" ] && [ -f "$root/run/check-fresh-steps" ] || return 0
  t_end=$(date +%s)
  while read -r k t; do
    [ $last = 0 ] || steps="$steps$((t - last_t))	\$ $(sed -n "${last}p" "$work/steps")
"
    last=$k last_t=$t
  done <"$root/run/check-fresh-steps"
  [ $last = 0 ] || steps="$steps$((t_end - last_t))	\$ $(sed -n "${last}p" "$work/steps")
"
  t_run=
}

# ---------------------------------------------------------------- cleanup
# Processes belonging to this run: root inside $work (the chroot, or the
# debootstrap target), or in the session $group started with setsid.
our_pids() {
  {
    find /proc/[0-9]*/root -maxdepth 0 -lname "$work/*" 2>/dev/null |
      sed -n 's#^/proc/\([0-9]*\)/root$#\1#p'
    # /proc/PID/stat after "(comm) ": state ppid pgrp session ...
    [ -z "$group" ] || cat /proc/[0-9]*/stat 2>/dev/null |
      awk -v g="$group" '{ pid = $1; sub(/.*\) /, ""); if ($4 == g && $1 != "Z") print pid }'
  } | grep -v -x -e "$$" | sort -u
}

kill_ours() {
  pids=$(our_pids)
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086
  set -- $pids
  if [ $# -gt 10 ]; then
    say "stopping the chroot's $# processes: $1 $2 $3 $4 $5 ..."
  else
    say "stopping the chroot's processes: $*"
  fi
  for sig in TERM KILL; do
    # shellcheck disable=SC2086
    kill -s $sig $pids 2>/dev/null
    n=0
    while [ $n -lt 20 ]; do
      pids=$(our_pids)
      [ -n "$pids" ] || return 0
      sleep 0.5
      n=$((n + 1))
    done
  done
  warn "processes still running after SIGKILL:" $pids
  return 1
}

# Mount points at or under $1, deepest first (/proc/mounts escapes spaces as
# \040; the work directory's name has none).
mounts_under() {
  awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r
}

unmount_all() {
  pass=0
  while [ $pass -lt 3 ]; do
    m=$(mounts_under "$1")
    [ -n "$m" ] || return 0
    for x in $m; do umount "$x" 2>/dev/null; done
    pass=$((pass + 1))
  done
  for x in $(mounts_under "$1"); do
    warn "umount $x failed; detaching it lazily"
    umount -l "$x" 2>/dev/null || umount -l "$x"
  done
  [ -z "$(mounts_under "$1")" ]
}

# The EXIT trap: every way out of this script goes through here.
finish() {
  status=$1
  trap '' INT TERM HUP
  [ -z "$lap_what" ] || lap_end " (unfinished)"
  collect_steps
  lap_start cleanup
  clean=1
  if [ -n "$work" ] && [ -d "$work" ]; then
    kill_ours || clean=0
    if ! unmount_all "$work"; then
      clean=0
      warn "still mounted under $work:"
      mounts_under "$work" >&2
    fi
    if [ $clean = 0 ]; then
      warn "NOT removing $work (processes or mounts left); remove it by hand once they are gone"
    elif [ "${FRESH_KEEP:-}" = 1 ]; then
      say "kept $work (FRESH_KEEP=1); chroot: $root"
    else
      say "removing $work"
      rm -rf --one-file-system "$work" || clean=0
    fi
  fi
  lap_end
  printf '\n%s: seconds taken:\n' "$me"
  printf '%s' "$steps" | while IFS='	' read -r secs what; do
    printf '%7s  %s\n' "$secs" "$what"
  done
  printf '%7s  %s\n' $(( $(date +%s) - t0 )) "in all"
  [ $clean = 1 ] || [ "$status" != 0 ] || status=111
  exit "$status"
}

trap 'finish $?' EXIT
trap 'warn "interrupted (SIGINT)"; exit 130' INT
trap 'warn "terminated (SIGTERM)"; exit 143' TERM
trap 'warn "hung up (SIGHUP)"; exit 129' HUP

# Run "$@" in a session of its own, in the background, and wait for it: a
# signal to this script then acts at once (the trap runs while we wait), and
# the session id finds whatever it started. stdin is /dev/null; the signal
# dispositions a background job inherits from sh (INT, QUIT ignored) are put
# back to the defaults by env --default-signal where it matters.
run_session() {
  setsid "$@" </dev/null &
  group=$!
  wait $group
  rc=$?
  return $rc
}

# ---------------------------------------------------------------- the source
top=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel 2>/dev/null) ||
  fail "cannot find the git repository holding $0"
commit=$(git -C "$top" rev-parse --verify "HEAD^{commit}" 2>/dev/null) ||
  fail "no committed HEAD in $top"
branch=$(git -C "$top" symbolic-ref -q --short HEAD) || branch=main
if [ -n "$(git -C "$top" --no-optional-locks status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  say "note: the working tree has uncommitted changes; testing the committed HEAD only"
fi
say "testing $top at $(git -C "$top" log -1 --format='%h %s' "$commit")"

# The commands: FRESH_COMMANDS, or the first block indented by 4 spaces after
# the line starting with "Quick start" in HEAD's README (blank lines inside
# it skipped). A line ending in a backslash goes on with the next one.
if [ -n "${FRESH_COMMANDS:-}" ]; then
  commands=$FRESH_COMMANDS
  say "FRESH_COMMANDS given: running those instead of the README's"
else
  readme=$(git -C "$top" show "$commit:README") || fail "no README in HEAD"
  commands=$(printf '%s\n' "$readme" | awk '
    !started { if (/^Quick start/) started = 1; next }
    /^    / { inblock = 1; print substr($0, 5); next }
    inblock && /^[ \t]*$/ { next }
    inblock { exit }')
fi
commands=$(printf '%s\n' "$commands" | grep -v '^[[:space:]]*$')
[ -n "$commands" ] || fail "no commands found after \"Quick start\" in HEAD's README"
say "the commands:"
printf '%s\n' "$commands" | sed 's/^/    /'

# ---------------------------------------------------------------- the host
# The host's Debian apt entries: deb entries for bookworm suites only, signed
# by the Debian archive keyring (or, without Signed-By, at a .../debian or
# .../debian-security URI). Writes the kept entries to $1.sources (deb822) and
# $1.list (one-line), and prints "mirror URI" for the suite bookworm.
host_sources() {
  out=$1
  keyrings=" $keyring $(dpkg -L debian-archive-keyring 2>/dev/null | grep -E '\.(gpg|asc)$' | tr '\n' ' ') "
  : >"$out.sources" && : >"$out.list" || return 1
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v keyrings="$keyrings" -v out="$out.sources" '
      function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
      function flush(   n, a, i, ok, main, u) {
        if (text == "") return
        ok = (" " f["types"] " ") ~ /[ \t]deb[ \t]/ && tolower(f["enabled"]) != "no"
        n = split(f["suites"], a, /[ \t]+/)
        if (n == 0) ok = 0
        for (i = 1; i <= n; i++) {
          if (a[i] !~ /^bookworm(-[a-z-]+)?$/) ok = 0
          if (a[i] == "bookworm") main = 1
        }
        if (f["signed-by"] != "") ok = ok && index(keyrings, " " f["signed-by"] " ") > 0
        else ok = ok && f["uris"] ~ /\/debian(-security)?\/?$/
        if (ok) {
          printf "%s\n", text >out
          split(f["uris"], u, /[ \t]+/)
          if (main) print "mirror", u[1]
          print "kept", FILENAME ":", f["uris"], f["suites"]
        } else print "skipped", FILENAME ":", f["uris"], f["suites"]
        text = ""; key = ""; split("", f)
      }
      /^#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]/ { f[key] = f[key] " " trim($0); text = text $0 "\n"; next }
      { i = index($0, ":"); key = tolower(trim(substr($0, 1, i - 1)))
        f[key] = trim(substr($0, i + 1)); text = text $0 "\n" }
      END { flush() }' "$f" || return 1
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v keyrings="$keyrings" -v out="$out.list" '
      { line = $0; sub(/#.*/, "", line) }
      line !~ /[^ \t]/ { next }
      {
        n = split(line, w, /[ \t]+/); i = 1
        if (w[i] == "") i++
        type = w[i++]; opts = ""
        if (substr(w[i], 1, 1) == "[")
          while (i <= n) { opts = opts " " w[i]; if (w[i++] ~ /\]$/) break }
        uri = w[i]; suite = w[i + 1]; signed = ""
        if (match(opts, /signed-by=[^] \t]+/)) signed = substr(opts, RSTART + 10, RLENGTH - 10)
        ok = type == "deb" && suite ~ /^bookworm(-[a-z-]+)?$/
        if (signed != "") ok = ok && index(keyrings, " " signed " ") > 0
        else ok = ok && uri ~ /\/debian(-security)?\/?$/
        if (ok) {
          print $0 >out
          if (suite == "bookworm") print "mirror", uri
          print "kept", FILENAME ":", uri, suite
        } else print "skipped", FILENAME ":", uri, suite
      }' "$f" || return 1
  done
}

# ---------------------------------------------------------------- the work dir
mkdir -p "$cache" || fail "mkdir $cache"
work=$(mktemp -d /var/tmp/check-fresh.XXXXXX) || fail "mktemp -d /var/tmp/check-fresh.XXXXXX"
root=$work/root
say "work directory $work"

host_sources "$work/apt" >"$work/apt.report" || fail "reading the host's apt sources"
sed -n 's/^\(kept\|skipped\) /    apt source \1: /p' "$work/apt.report"
mirror=${FRESH_MIRROR:-$(sed -n 's/^mirror //p' "$work/apt.report" | head -n 1)}
if [ -z "$mirror" ]; then
  mirror=http://deb.debian.org/debian
  say "no Debian bookworm source on the host; using $mirror"
fi

# ---------------------------------------------------------------- the rootfs
if [ ! -s "$tarball" ]; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap on the host"
    lap_start "apt-get install debootstrap (host)"
    apt_host() { DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 "$@" </dev/null; }
    apt_host install -y debootstrap || { apt_host update && apt_host install -y debootstrap; } ||
      fail "apt-get install -y debootstrap (on the host)"
    lap_end
  fi
  [ -r "$keyring" ] || fail "no $keyring on the host (apt-get install debian-archive-keyring)"
  say "no $tarball yet: debootstrap --variant=minbase bookworm from $mirror"
  lap_start "debootstrap --variant=minbase bookworm (first run only)"
  # The suite script names the same keyring; --force-check-gpg makes a
  # missing keyring an error instead of a silent skip of the signature check.
  # debootstrap checks the signature of InRelease (or Release.gpg) with gpgv
  # --ignore-time-conflict and does not look at Valid-Until: the dated
  # snapshot needs nothing more here (apt in the chroot does: see below).
  run_session debootstrap --variant=minbase --force-check-gpg --keyring="$keyring" \
    bookworm "$work/debootstrap" "$mirror" || {
    log=$work/debootstrap/debootstrap/debootstrap.log
    [ -f "$log" ] && { warn "the end of $log:"; tail -n 15 "$log" >&2; }
    fail "debootstrap --variant=minbase bookworm $work/debootstrap $mirror"
  }
  group=
  lap_end
  unmount_all "$work/debootstrap" || fail "unmounting what debootstrap left mounted"
  lap_start "tar the pristine rootfs into $tarball (first run only)"
  tar -C "$work/debootstrap" --numeric-owner --xattrs --xattrs-include='*' \
    -cf "$tarball.tmp.$$" . || { rm -f "$tarball.tmp.$$"; fail "tar of the new rootfs into $tarball.tmp.$$"; }
  mv -f "$tarball.tmp.$$" "$tarball" || { rm -f "$tarball.tmp.$$"; fail "mv $tarball.tmp.$$ $tarball"; }
  rm -rf --one-file-system "$work/debootstrap"
  lap_end
fi

lap_start "unpack the rootfs"
mkdir "$root" || fail "mkdir $root"
tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -xpf "$tarball" ||
  fail "unpacking $tarball (remove it to debootstrap again)"
lap_end

# ---------------------------------------------------------------- configure
lap_start "configure the chroot, fetch HEAD into /src.git"
if [ -s "$work/apt.sources" ] || [ -s "$work/apt.list" ]; then
  rm -f "$root/etc/apt/sources.list"
  [ -s "$work/apt.sources" ] && { cp "$work/apt.sources" "$root/etc/apt/sources.list.d/debian.sources" || fail "copying apt sources"; }
  [ -s "$work/apt.list" ] && { cp "$work/apt.list" "$root/etc/apt/sources.list" || fail "copying apt sources"; }
fi
# apt settings about reaching the mirror (validity dates of a snapshot,
# proxies); not the host's other apt preferences.
for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
  [ -f "$f" ] || continue
  if grep -q -i -E 'check-valid-until|check-date|proxy|acquire::https?::' "$f"; then
    cp "$f" "$root/etc/apt/apt.conf.d/${f##*/}" || fail "copying $f"
    say "apt setting copied: $f"
  fi
done
# (rm first: never write through a symbolic link the rootfs may have there)
rm -f "$root/etc/resolv.conf" "$root/etc/hosts" "$root/usr/sbin/policy-rc.d"
cat /etc/resolv.conf >"$root/etc/resolv.conf" || fail "copying /etc/resolv.conf"
# minbase has no /etc/hosts; a Debian install has these lines (and the
# hostname, which the chroot shares with the host).
{
  printf '127.0.0.1\tlocalhost\n'
  printf '127.0.1.1\t%s\n' "$(hostname)"
  printf '::1\t\tlocalhost ip6-localhost ip6-loopback\n'
} >"$root/etc/hosts" || fail "writing /etc/hosts"
printf '#!/bin/sh\n# check-fresh: no daemons started in this chroot\nexit 101\n' \
  >"$root/usr/sbin/policy-rc.d" || fail "writing policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d" || fail "chmod policy-rc.d"

# HEAD alone, under the same branch name, with the tags; fetched (packed, no
# hardlinks into the host's repository), not the working tree.
if ! { git init -q --bare "$root/src.git" &&
  git -C "$root/src.git" fetch -q "$top" "+$commit:refs/heads/$branch" '+refs/tags/*:refs/tags/*' &&
  git -C "$root/src.git" symbolic-ref HEAD "refs/heads/$branch"; }; then
  fail "fetching HEAD of $top into $root/src.git"
fi
lap_end

# ---------------------------------------------------------------- mounts
# The chroot's / a mount point of its own, as / is on a machine: without it
# "unshare -m" and mount --make-private / fail (EINVAL), which tests use.
mount --bind "$root" "$root" || fail "mount --bind $root $root"
mount -t proc proc "$root/proc" || fail "mount -t proc proc $root/proc"
mount -t sysfs sysfs "$root/sys" || fail "mount -t sysfs sysfs $root/sys"
mount --bind /dev "$root/dev" || fail "mount --bind /dev $root/dev"
mount --bind /dev/pts "$root/dev/pts" || fail "mount --bind /dev/pts $root/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm" || fail "mount -t tmpfs $root/dev/shm"

# ---------------------------------------------------------------- the run
# One sh -e: the lines as written, each announced, its start time noted in
# /run/check-fresh-steps (the chroot's /run is a plain directory). A failing
# command inside an && list does not stop sh -e, so $? is checked after each.
script=$(printf '%s\n' "$commands" | awk -v q="'" -v names="$work/steps" '
  BEGIN {
    print "_check_fresh_step() { echo \"$1 $(date +%s)\" >>/run/check-fresh-steps; printf \"\\n==== check-fresh [%s] step %s: %s\\n\" \"$(date +%T)\" \"$1\" \"$2\"; }"
  }
  { cmd = cmd $0 }
  /\\$/ { cmd = cmd "\n"; next }
  { step() }
  END { if (cmd != "") step() }
  function step(   shown, name) {
    k++
    shown = cmd; gsub(q, q "\\" q q, shown)
    name = cmd; gsub(/\\\n/, " ", name)
    print name > names
    print "_check_fresh_step " k " " q shown q
    print cmd
    print "_check_fresh_rc=$?; [ $_check_fresh_rc = 0 ] || exit $_check_fresh_rc"
    cmd = ""
  }')
: >"$root/run/check-fresh-steps"

proxies=
for v in http_proxy https_proxy ftp_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  eval "val=\${$v-}"
  [ -n "$val" ] && proxies="$proxies $v=$val"
done

say "running the commands in the chroot $root"
t_run=$(date +%s)
last=0
# shellcheck disable=SC2086
run_session chroot "$root" /usr/bin/env -i --default-signal -C /root \
  HOME=/root PATH="$chroot_path" TERM=dumb LANG=C.UTF-8 USER=root LOGNAME=root \
  $proxies REPO=/src.git /bin/sh -ec "$script"
rc=$?

collect_steps

if [ $rc = 0 ]; then
  say "the commands succeeded"
elif [ $last = 0 ]; then
  warn "the chroot's sh failed before the first command (exit $rc)"
else
  warn "step $last failed (exit $rc): $(sed -n "${last}p" "$work/steps")"
fi
exit $rc
