#!/bin/sh
# Entrypoint of the terrax/mariadb image, after the official MariaDB image's: on the first start
# (an empty data directory) it creates the system tables, sets the root password and creates
# MYSQL_DATABASE and MYSQL_USER/MYSQL_PASSWORD; then it runs mariadbd as the data directory's
# owner. MARIADB_* names work as well as MYSQL_* ones, as in the official image.
set -eu

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock

log() { echo "entrypoint: $*" >&2; }

# Anything other than the server (or its options) runs as given, e.g. `sh` or
# `mariadbd --version`, so the image can be poked at.
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- mariadbd "$@"
fi
case "$1 ${2:-}" in
  "mariadbd --version" | "mariadbd -V" | "mariadbd --help") exec "$@" ;;
esac
[ "$1" = mariadbd ] || exec "$@"

env_of() { # env_of NAME: $MARIADB_NAME, else $MYSQL_NAME, else empty
  eval "printf '%s' \"\${MARIADB_$1:-\${MYSQL_$1:-}}\""
}
ROOT_PASSWORD=$(env_of ROOT_PASSWORD)
DATABASE=$(env_of DATABASE)
USER=$(env_of USER)
PASSWORD=$(env_of PASSWORD)
ALLOW_EMPTY=$(env_of ALLOW_EMPTY_ROOT_PASSWORD)
[ -n "$ALLOW_EMPTY" ] || ALLOW_EMPTY=$(env_of ALLOW_EMPTY_PASSWORD)
RANDOM_ROOT=$(env_of RANDOM_ROOT_PASSWORD)

mkdir -p "$DATADIR" /run/mysqld

# Run as the data directory's owner. A fresh volume usually comes owned by root (and may hold
# a lost+found): hand it to mysql before initialising it. If that is not allowed (say, a user namespace without uid 999), stay root.
# Not being root, mariadbd can only run as ourselves, and --user would only draw a warning.
USER_OPT=
if [ "$(id -u)" = 0 ]; then
  RUN_AS=$(stat -c %u "$DATADIR")
  if [ "$RUN_AS" = 0 ] && [ ! -d "$DATADIR/mysql" ] && chown mysql:mysql "$DATADIR" 2>/dev/null
  then
    RUN_AS=mysql
  fi
  # mariadbd accepts root only by that name, other users by name or number.
  if [ "$RUN_AS" = 0 ]; then RUN_AS=root; fi
  chown "$RUN_AS" /run/mysqld 2>/dev/null || true
  USER_OPT=--user=$RUN_AS
else
  RUN_AS=$(id -u)
fi

sql_escape() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/\\\\'/g"; }
ident_escape() { printf '%s' "$1" | sed -e 's/`/``/g'; }

init_sql() {
  root_pw=$(sql_escape "$ROOT_PASSWORD")
  echo "SET @@SESSION.SQL_LOG_BIN=0;"
  # mariadb-install-db also makes password-less roots for the host name and loopback
  # addresses; drop them, as the official image does, so every root login needs the password.
  echo "DROP USER IF EXISTS 'root'@'127.0.0.1', 'root'@'::1';"
  echo "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@''', @@hostname, '''');"
  echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$root_pw';"
  # The official image lets root in from anywhere, with the same password.
  echo "CREATE USER 'root'@'%' IDENTIFIED BY '$root_pw';"
  echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
  if [ -n "$DATABASE" ]; then
    echo "CREATE DATABASE IF NOT EXISTS \`$(ident_escape "$DATABASE")\`;"
  fi
  if [ -n "$USER" ] && [ -n "$PASSWORD" ]; then
    user=$(sql_escape "$USER")
    echo "CREATE USER '$user'@'%' IDENTIFIED BY '$(sql_escape "$PASSWORD")';"
    if [ -n "$DATABASE" ]; then
      echo "GRANT ALL ON \`$(ident_escape "$DATABASE")\`.* TO '$user'@'%';"
    fi
  fi
}

initialise() {
  if [ -z "$ROOT_PASSWORD" ] && [ -z "$ALLOW_EMPTY" ] && [ -z "$RANDOM_ROOT" ]; then
    log "the database is uninitialised and no root password is set:"
    log "set MYSQL_ROOT_PASSWORD, MYSQL_ALLOW_EMPTY_PASSWORD or MYSQL_RANDOM_ROOT_PASSWORD"
    exit 1
  fi
  if [ -n "$RANDOM_ROOT" ]; then
    ROOT_PASSWORD=$(head -c 18 /dev/urandom | base64)
    log "generated root password: $ROOT_PASSWORD"
  fi
  if [ -n "$USER" ] && [ -z "$PASSWORD" ]; then
    log "MYSQL_USER is set without MYSQL_PASSWORD; not creating the user"
  fi
  log "initialising $DATADIR"
  mariadb-install-db $USER_OPT --datadir="$DATADIR" --skip-test-db \
    --auth-root-authentication-method=normal --skip-name-resolve >/dev/null

  # A temporary server on the socket only, so nobody connects before the passwords are set.
  mariadbd $USER_OPT --skip-networking --socket="$SOCKET" &
  pid=$!
  tries=0
  until mariadb --protocol=socket --socket="$SOCKET" -uroot -e 'SELECT 1' >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ] || ! kill -0 "$pid" 2>/dev/null; then
      log "the temporary server did not start"
      exit 1
    fi
    sleep 1
  done
  init_sql | mariadb --protocol=socket --socket="$SOCKET" -uroot
  for f in /docker-entrypoint-initdb.d/*.sql; do
    [ -f "$f" ] || continue
    log "running $f"
    # The password through the environment: `-p` with an empty one would prompt.
    MYSQL_PWD=$ROOT_PASSWORD mariadb --protocol=socket --socket="$SOCKET" -uroot \
      ${DATABASE:+"$DATABASE"} <"$f"
  done
  kill "$pid"
  wait "$pid" || true
  log "initialised"
}

if [ ! -d "$DATADIR/mysql" ]; then
  initialise
fi
log "starting mariadbd as $RUN_AS"
exec "$@" $USER_OPT
