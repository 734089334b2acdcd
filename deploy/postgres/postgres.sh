#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and local work, from Debian's `postgresql` package.
#
#   deploy/postgres/postgres.sh start DIR PORT   create the cluster in DIR if new, start it on
#                                                127.0.0.1:PORT, wait until it answers, print
#                                                its SQLAlchemy URL
#   deploy/postgres/postgres.sh stop DIR         stop it (fast shutdown)
#
# The cluster trusts local connections (user `nir`): never use it for real data. When run as
# root, the server runs as the `postgres` system user, as PostgreSQL refuses to run as root.
set -euo pipefail

bindir() {
  if command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/pg_ctl" ]]; then
    pg_config --bindir; return
  fi
  local dir; dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$dir" ]] || { echo "PostgreSQL is not installed (Debian package: postgresql)" >&2; exit 1; }
  echo "$dir"
}

as_owner() {
  if [[ "$(id -u)" == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local dir="$1" port="$2" bin; bin="$(bindir)"
  mkdir -p "$dir"
  [[ "$(id -u)" == 0 ]] && chown postgres: "$dir"
  if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    as_owner "$bin/initdb" -D "$dir/data" -U nir --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c fsync=off -c max_connections=200" start >/dev/null \
    || { tail -n 30 "$dir/server.log" >&2; exit 1; }
  echo "postgresql+psycopg://nir@127.0.0.1:$port/postgres"
}

stop() {
  local dir="$1" bin; bin="$(bindir)"
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

case "${1:-}" in
  start) [[ $# == 3 ]] || { echo "usage: $0 start DIR PORT" >&2; exit 2; }; start "$2" "$3" ;;
  stop) [[ $# == 2 ]] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
