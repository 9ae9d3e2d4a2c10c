#!/usr/bin/env bash
# floor.sh — the floor relctl is measured against: the least work that does
# the job of a relctl upgrade with batch size 1. A plain shell loop that, per
# host, drains it on HAProxy (socat to the admin socket), waits until it is
# idle, runs ONE deploy command over one multiplexed OpenSSH connection
# (ControlMaster) — the artifact on its stdin: save and unpack it, the
# pre-deploy migration on the first host, stop, switch current, start, poll
# the health check every 20 ms on the host, read the version — then waits
# for HAProxy's check and puts the host back in rotation. One SSH session per
# host (plus the post-deploy migration on the last host). It cannot stage in
# parallel: each host's upload and unpack is inside its deploy command.
#
# usage: floor.sh HOSTS_FILE ADMIN_ADDR BACKEND VERSION ARTIFACT MIGRATIONS_LOG USER -- SSH_OPTS...
#   HOSTS_FILE: lines "name ip path listen" (one per host, in deploy order)
#   SSH_OPTS: ssh options without the destination (-i key -p port -o ...)
set -euo pipefail
hosts_file=$1 admin=$2 backend=$3 version=$4 artifact=$5 mlog=$6 user=$7
shift 7; [ "$1" = "--" ] && shift
ssh_opts=("$@")
cm=$(mktemp -d)
trap 'for s in "$cm"/*; do [ -S "$s" ] && ssh -o ControlPath="$s" -O exit x 2>/dev/null || true; done; rm -rf "$cm"' EXIT

ssh_to() { local ip=$1; shift; ssh "${ssh_opts[@]}" -o ControlMaster=auto -o ControlPath="$cm/%h" -o ControlPersist=120 "$user@$ip" "$@"; }
lb() { echo "$1" | socat -t 2 stdio "TCP:$admin"; }
# stat_field SERVER COLUMN: a column of `show stat` for backend/server, by name.
stat_field() {
  lb "show stat" | awk -F, -v b="$backend" -v s="$1" -v col="$2" '
    NR==1 { sub(/^# /, ""); for (i=1; i<=NF; i++) c[$i]=i; next }
    $1==b && $2==s { print $c[col] }'
}
poll() { until "$@"; do sleep 0.02; done; }
idle() { [ "$(stat_field "$1" scur)" = 0 ] && [ "$(stat_field "$1" qcur)" = 0 ]; }
up() { [ "$(stat_field "$1" status)" = UP ]; }
checked() { case "$(stat_field "$1" check_status)" in L7OK|L4OK|L6OK) return 0 ;; esac; return 1; }

first=1
# The host list is read on fd 3: ssh inside the loop would eat stdin.
while read -r name ip path listen <&3; do
  rel="$path/releases/$version"
  pre=:
  if [ $first = 1 ]; then
    pre="$rel/bin/demoapp migrate --log $mlog --version $version --phase pre"
    first=0
  fi
  lb "set server $backend/$name state drain" >/dev/null
  poll idle "$name"
  ssh_to "$ip" "set -e
cat > $path/shop-$version.tar.gz
mkdir -p $rel && tar -xzf $path/shop-$version.tar.gz -C $rel
$pre
$path/current/bin/demoapp stop --dir $path
ln -sfn $rel $path/current.tmp && mv -T $path/current.tmp $path/current
$path/current/bin/demoapp start --dir $path --listen $listen
until $path/current/bin/demoapp check --url http://$listen --version $version >/dev/null 2>&1; do sleep 0.02; done
cat $path/current/VERSION" < "$artifact" >/dev/null
  poll checked "$name"
  lb "set server $backend/$name state ready" >/dev/null
  poll up "$name"
  last_ip=$ip last_rel=$rel
done 3< "$hosts_file"
ssh_to "$last_ip" "$last_rel/bin/demoapp migrate --log $mlog --version $version --phase post"
