#!/usr/bin/env bash
# Checks the archives build-images.sh made, without a container runtime: unpacks each image
# with umoci, runs its programs under chroot, then runs the two together the way the cluster
# does (database first start, API against it, database restart on the same volume).
#
# Usage: examples/terrax/check-images.sh     (as root: chroot, mounts)
# Environment: BUILD_DIR (as for build-images.sh), DB_PORT (default 33306), API_PORT (18080).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
images=${BUILD_DIR:-$here/build}/images
DB_PORT=${DB_PORT:-33306}
API_PORT=${API_PORT:-18080}
tmp=$(mktemp -d /tmp/terrax-check.XXXXXX)
pids=()

log() { echo "check-images: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

cleanup() {
  local status=$? pid
  if [ "$status" != 0 ]; then
    log "db log:" && cat "$tmp/db.log" >&2 || true
    log "api log:" && cat "$tmp/api.log" >&2 || true
  fi
  for pid in "${pids[@]}"; do stop "$pid"; done
  wait_db_gone 2>/dev/null || true
  umount "$tmp/db/bundle/rootfs/var/lib/mysql" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# unpack ARCHIVE DIR: the image's bundle (rootfs/ and the runtime config.json) in DIR.
unpack() {
  local archive=$1 dir=$2 tag
  mkdir -p "$dir/layout"
  tar -xf "$archive" -C "$dir/layout"
  tag=$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]' \
    "$dir/layout/index.json")
  umoci unpack --image "$dir/layout:$tag" "$dir/bundle" >/dev/null
  log "$(basename "$archive"): $(jq -r '.manifests[0].annotations["io.containerd.image.name"]' \
    "$dir/layout/index.json"), $(du -sh "$dir/bundle/rootfs" | cut -f1) unpacked"
}

# in_root ROOT USERSPEC CMD...: (run in the background, it execs unshare, so $! is unshare's
# PID) CMD chrooted into ROOT (as USERSPEC, uid:gid, when not
# empty), with /dev and /proc, in pid and mount namespaces of its own, so that the mounts
# vanish with it and no process outlives it. unshare ignores SIGTERM; SIGKILL to it makes the
# kernel send SIGTERM to the namespace's first process, a shell that passes it on to CMD and
# waits. CMD cannot get it straight from unshare: a parent-death signal does not survive the
# change of user that mariadbd and `chroot --userspec` make.
in_root() {
  local root=$1 userspec=$2
  shift 2
  exec unshare --pid --mount --fork --kill-child=TERM sh -c '
    root=$1; userspec=$2; shift 2
    mount --bind /dev "$root/dev" && mount -t proc proc "$root/proc" || exit 1
    chroot ${userspec:+--userspec="$userspec"} "$root" "$@" &
    child=$!
    trap "kill -TERM $child 2>/dev/null" TERM
    wait $child || wait $child
  ' sh "$root" "$userspec" "$@"
}

wait_http() { # wait_http URL: until it answers 200, for up to 60 s
  local i
  for i in $(seq 120); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.5
  done
  fail "$1 never answered 200"
}

start_db() {
  in_root "$tmp/db/bundle/rootfs" "" env -i PATH=/usr/local/bin:/usr/bin:/usr/sbin \
    MYSQL_ROOT_PASSWORD=root-pw MYSQL_DATABASE=beers MYSQL_USER=terrax MYSQL_PASSWORD="it's-pw" \
    /usr/local/bin/docker-entrypoint.sh mariadbd --port="$DB_PORT" >>"$tmp/db.log" 2>&1 &
  db_pid=$!
  pids+=("$db_pid")
}

start_api() {
  # As in the image config: user nobody, settings from the environment.
  in_root "$tmp/api/bundle/rootfs" 65534:65534 env -i PORT="$API_PORT" DB_HOST=127.0.0.1 \
    DB_PORT="$DB_PORT" DB_NAME=beers DB_USER=terrax DB_PASSWORD="it's-pw" RUST_LOG=info \
    /usr/bin/beer-api >>"$tmp/api.log" 2>&1 &
  api_pid=$!
  pids+=("$api_pid")
}

stop() { # stop PID (an in_root): see in_root for why SIGKILL means a clean SIGTERM
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# mariadbd outlives the unshare process it was started under by its shutdown; it removes its
# pid file (in the data directory) last.
wait_db_gone() {
  local i
  for i in $(seq 120); do
    compgen -G "$tmp/volume/*.pid" >/dev/null || return 0
    sleep 0.5
  done
  fail "mariadbd did not stop"
}

main() {
  unpack "$images/beer-api-1.0.oci.tar" "$tmp/api"
  unpack "$images/mariadb-10.oci.tar" "$tmp/db"
  log "api config: $(jq -c '{args: .process.args, user: .process.user, env: .process.env}' \
    "$tmp/api/bundle/config.json")"
  log "db config: $(jq -c '{args: .process.args, user: .process.user}' \
    "$tmp/db/bundle/config.json")"

  chroot "$tmp/api/bundle/rootfs" /usr/bin/beer-api --help | grep -q DB_PASSWORD ||
    fail "beer-api --help"
  chroot "$tmp/api/bundle/rootfs" /bin/sh -c 'echo shell works' >/dev/null || fail "api sh"
  log "mariadbd: $(chroot "$tmp/db/bundle/rootfs" /usr/sbin/mariadbd --version)"
  log "client: $(chroot "$tmp/db/bundle/rootfs" /usr/bin/mariadb --version)"

  # The volume: an empty, root-owned directory, as a fresh disk is.
  mkdir -p "$tmp/volume"
  mount --bind "$tmp/volume" "$tmp/db/bundle/rootfs/var/lib/mysql"
  start_db
  start_api
  wait_http "http://127.0.0.1:$API_PORT/readyz"
  log "first start: api ready; volume $(du -sh "$tmp/volume" | cut -f1), owner uid $(stat -c %u "$tmp/volume")"
  local client=(chroot "$tmp/db/bundle/rootfs" mariadb -h127.0.0.1 -P"$DB_PORT" -uroot)
  if "${client[@]}" -e 'SELECT 1' >/dev/null 2>&1; then fail "root needs no password"; fi
  "${client[@]}" -proot-pw -e 'SELECT 1' >/dev/null || fail "root's password is refused"
  local created id
  created=$(curl -fsS -H 'content-type: application/json' \
    -d '{"name":"Chroot Bock","brewery":"Terrax","style":"Bock","abv":6.8}' \
    "http://127.0.0.1:$API_PORT/api/beers")
  id=$(jq -r .id <<<"$created")
  curl -fsSL -o /dev/null "http://127.0.0.1:$API_PORT/swagger-ui.html" || fail "swagger-ui.html"

  log "restarting the database on the same volume"
  stop "$db_pid"
  wait_db_gone
  start_db
  wait_http "http://127.0.0.1:$API_PORT/api/beers/$id"
  [ "$(curl -fsS "http://127.0.0.1:$API_PORT/api/beers/$id" | jq -r .name)" = "Chroot Bock" ] ||
    fail "beer $id lost across the restart"
  grep -q 'initialising' "$tmp/db.log" || fail "no first-start initialisation logged"
  [ "$(grep -c 'initialising' "$tmp/db.log")" = 1 ] || fail "initialised twice"
  stop "$api_pid"
  stop "$db_pid"
  wait_db_gone
  log "OK: images unpack, run under chroot, initialise, serve and persist"
}

main "$@"
