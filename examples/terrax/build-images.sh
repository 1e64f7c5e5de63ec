#!/usr/bin/env bash
# Builds the Terrax walkthrough's two container images as OCI archives, without Docker and
# without network access:
#
#   terrax/beer-api:1.0  the release beer-api binary, the shared libraries it links, busybox
#   terrax/mariadb:10    this machine's MariaDB server and client, their libraries, busybox and
#                        an entrypoint that initialises the data directory like the official image
#
# Each image is assembled as a root filesystem, turned into an OCI layout with umoci and packed
# as an oci-archive tarball in $BUILD_DIR/images (default examples/terrax/build/images). When
# `keg` is on PATH the archives are then loaded with `keg image import`.
#
# Usage: examples/terrax/build-images.sh        (as root: umoci and chown need it)
# Environment: BUILD_DIR, API_IMAGE, DB_IMAGE (image references), CARGO_TARGET_DIR, PROFILE
#              (cargo profile of beer-api, default release),
#              SKIP_IMPORT=1 to leave keg's image store alone.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$here/build}
images=$build/images
work=$build/work
API_IMAGE=${API_IMAGE:-terrax/beer-api:1.0}
DB_IMAGE=${DB_IMAGE:-terrax/mariadb:10}
target_dir=${CARGO_TARGET_DIR:-$repo/target}
# The tests take the debug build they already have (PROFILE=dev); users get a release build.
profile=${PROFILE:-release}

log() { echo "build-images: $*" >&2; }
die() { log "$*"; exit 1; }

check_tools() {
  local tool
  for tool in umoci jq ldd tar cargo; do
    command -v "$tool" >/dev/null || die "$tool not found (run scripts/install-deps.sh)"
  done
  [ -x /bin/busybox ] || die "/bin/busybox not found (apt-get install busybox-static)"
  # A dynamically linked busybox would need its own libraries in the images.
  ldd /bin/busybox >/dev/null 2>&1 && die "/bin/busybox is not static (install busybox-static)"
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] ||
    die "mariadbd not found (apt-get install mariadb-server)"
  [ "$(id -u)" = 0 ] || die "run as root: the images' files must be owned by root"
}

# A merged-/usr skeleton like Debian's, so that library paths ldd reports (/lib/...,
# /lib64/...) land in the same files in the image as on this machine.
make_skeleton() {
  local root=$1
  rm -rf "$root"
  mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$root"/{etc,dev,proc,sys,run,var,tmp,root}
  ln -s usr/bin "$root/bin"
  ln -s usr/sbin "$root/sbin"
  ln -s usr/lib "$root/lib"
  ln -s usr/lib64 "$root/lib64"
  chmod 1777 "$root/tmp"
  chmod 700 "$root/root"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
    >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  # glibc resolves users and host names through these (the Service name of the database).
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
  : >"$root/etc/resolv.conf"
}

# Copies a file to the same path under the root, keeping symlinks as symlinks (and copying
# what they point to, so they do not dangle).
copy_path() {
  local root=$1 path=$2 dest
  dest=$root$path
  [ -e "$dest" ] || [ -L "$dest" ] && return 0
  mkdir -p "$(dirname "$dest")"
  if [ -L "$path" ]; then
    cp -P "$path" "$dest"
    copy_path "$root" "$(readlink -f "$path")"
  else
    cp -p "$path" "$dest"
  fi
}

# Copies the shared libraries that the given ELF files load, and the dynamic loader. ldd
# prints the whole closure, so no recursion is needed; non-ELF files are skipped.
copy_libs() {
  local root=$1 lib
  shift
  # "libx.so => /path (0x..)" for libraries, "\t/path (0x..)" for the loader; lines naming
  # the files themselves ("/usr/bin/x:") have no tab in front.
  for lib in $(ldd "$@" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}
                                            /^\t\// {print $1}' | sort -u); do
    mkdir -p "$(dirname "$root$lib")"
    # The real file under the name the loader asks for.
    [ -e "$root$lib" ] || cp -L "$lib" "$root$lib"
  done
}

# busybox for a shell and the usual tools (sh, ls, cat, wget, ...), as symlinks that never
# replace a real program.
add_busybox() {
  local root=$1 applet
  cp /bin/busybox "$root/usr/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ -e "$root/usr/bin/$applet" ] || [ -e "$root/usr/sbin/$applet" ] ||
      ln -s busybox "$root/usr/bin/$applet"
  done
}

# Packs a root filesystem as an image: one layer, then the config. $1 is the reference,
# $2 the root, the rest `umoci config` options.
pack() {
  local ref=$1 root=$2 name tag layout archive
  shift 2
  name=${ref%:*}
  tag=${ref##*:}
  layout=$work/${name//\//_}-layout
  archive=$images/$(basename "$name")-$tag.oci.tar
  rm -rf "$layout"
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci insert --image "$layout:$tag" --history.created_by "build-images.sh: rootfs" "$root" /
  umoci config --image "$layout:$tag" --os linux --architecture amd64 \
    --author "keg examples/terrax" --history.created_by "build-images.sh: config" "$@"
  umoci gc --layout "$layout"
  # umoci names the image by its tag alone; keg, containerd and podman read the whole
  # reference from io.containerd.image.name.
  local full=$ref
  [[ $name == */*/* || $name == *.*/* || $name == localhost/* ]] || full=docker.io/$ref
  jq --arg full "$full" --arg tag "$tag" \
    '.manifests |= map(.annotations = ((.annotations // {})
       + {"io.containerd.image.name": $full, "org.opencontainers.image.ref.name": $tag}))' \
    "$layout/index.json" >"$layout/index.json.new"
  mv "$layout/index.json.new" "$layout/index.json"
  mkdir -p "$images"
  tar -C "$layout" --sort=name --owner=0 --group=0 --numeric-owner \
    -cf "$archive" oci-layout index.json blobs
  log "$ref -> $archive ($(du -h "$archive" | cut -f1))"
}

build_api() {
  local root=$work/beer-api-rootfs bin
  log "building beer-api ($profile)"
  (cd "$repo" && CARGO_TARGET_DIR=$target_dir cargo build --profile "$profile" -p beer-api)
  bin=$target_dir/$([ "$profile" = dev ] && echo debug || echo "$profile")/beer-api
  make_skeleton "$root"
  cp "$bin" "$root/usr/bin/beer-api"
  # Debug line tables are for local profiling; the image ships without them.
  strip --strip-debug "$root/usr/bin/beer-api" 2>/dev/null || true
  copy_libs "$root" "$bin"
  add_busybox "$root"
  pack "$API_IMAGE" "$root" \
    --config.entrypoint /usr/bin/beer-api \
    --config.env PORT=8080 --config.env RUST_LOG=info \
    --config.env PATH=/usr/bin:/usr/sbin:/bin:/sbin \
    --config.exposedports 8080/tcp \
    --config.user 65534:65534 \
    --config.workingdir / \
    --config.label org.opencontainers.image.title=beer-api \
    --config.label "org.opencontainers.image.description=The Terrax beer API"
}

# Files of the MariaDB packages that a server image needs: the server and what initialises a
# data directory, the client and mariadb-admin (for the entrypoint and `kubectl exec`),
# mariadb-dump for backups and mariadb-upgrade for newer servers; the SQL that creates the
# system tables, error messages, character sets and plugins. The other tools (each about
# 5 MB, 100 MB together), documentation, systemd units, Debian's maintenance scripts and
# Galera helpers stay out. The mysql* names are compatibility symlinks.
mariadb_programs='mariadbd|mysqld|mariadb-install-db|mysql_install_db|my_print_defaults|resolveip'
mariadb_programs+='|mariadb|mysql|mariadb-admin|mysqladmin|mariadb-dump|mysqldump'
mariadb_programs+='|mariadb-upgrade|mysql_upgrade'
mariadb_files() {
  dpkg -L mariadb-server-core mariadb-client-core mariadb-server mariadb-client 2>/dev/null |
    grep -E "^/usr/s?bin/($mariadb_programs)\$|^/usr/(lib/mysql/plugin|share/mysql)/" |
    grep -vE '^/usr/share/mysql/(mini-benchmark|debian-start|echo_stderr|wsrep)' |
    while read -r f; do [ -d "$f" ] || echo "$f"; done
}

is_elf() {
  [ "$(od -An -c -N4 "$1" | tr -d ' ')" = '177ELF' ]
}

build_mariadb() {
  local root=$work/mariadb-rootfs f elves=()
  make_skeleton "$root"
  while read -r f; do
    copy_path "$root" "$f"
    if [ ! -L "$f" ] && is_elf "$f"; then elves+=("$f"); fi
  done < <(mariadb_files)
  copy_libs "$root" "${elves[@]}"
  add_busybox "$root"
  printf 'mysql:x:999:999:MariaDB:/var/lib/mysql:/bin/false\n' >>"$root/etc/passwd"
  printf 'mysql:x:999:\n' >>"$root/etc/group"
  mkdir -p "$root/etc/mysql" "$root/var/lib/mysql" "$root/run/mysqld" \
    "$root/docker-entrypoint-initdb.d" "$root/usr/local/bin"
  chown 999:999 "$root/var/lib/mysql" "$root/run/mysqld"
  cp "$here/images/mariadb/my.cnf" "$root/etc/mysql/my.cnf"
  install -m 0755 "$here/images/mariadb/docker-entrypoint.sh" \
    "$root/usr/local/bin/docker-entrypoint.sh"
  pack "$DB_IMAGE" "$root" \
    --config.entrypoint /usr/local/bin/docker-entrypoint.sh \
    --config.cmd mariadbd \
    --config.env PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin \
    --config.exposedports 3306/tcp \
    --config.volume /var/lib/mysql \
    --config.workingdir / \
    --config.label org.opencontainers.image.title=mariadb \
    --config.label "org.opencontainers.image.description=MariaDB $(mariadbd --version |
      grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1) from Debian packages"
}

import_into_keg() {
  if [ -n "${SKIP_IMPORT:-}" ] || ! command -v keg >/dev/null; then
    log "not importing (keg not on PATH or SKIP_IMPORT set); archives are in $images"
    return
  fi
  local archive
  for archive in "$images"/*.oci.tar; do
    log "keg image import $archive"
    keg image import "$archive"
  done
}

main() {
  check_tools
  mkdir -p "$images" "$work"
  build_api
  build_mariadb
  import_into_keg
  rm -rf "$work"
}

main "$@"
