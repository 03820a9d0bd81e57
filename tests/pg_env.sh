#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (Debian's postgresql package).
#
#   bash tests/pg_env.sh start DIR   initdb + start in DIR (created if needed) on a
#                                    free loopback port, unix sockets in DIR; prints
#                                    the libpq URL of database "syncd" as its last line
#   bash tests/pg_env.sh stop DIR    stop it (DIR is left for the caller to remove)
#
# PostgreSQL refuses to run as root, so as root the server runs as the
# "postgres" user, which then owns DIR.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin" >&2
  exit 1
fi

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
start)
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || { echo "no postgres user to run the server as" >&2; exit 1; }
    chown postgres "$dir"
  fi
  as_pg "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C --no-sync \
    >"$dir/initdb.log" 2>&1 || { tail -n 5 "$dir/initdb.log" >&2; exit 1; }
  for _ in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    if as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null 2>&1; then
      as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres syncd
      echo "postgresql://postgres@127.0.0.1:$port/syncd"
      exit 0
    fi
  done
  tail -n 5 "$dir/server.log" >&2 2>/dev/null || true
  echo "pg_ctl could not start the server" >&2
  exit 1
  ;;
stop)
  [ -d "$dir/data" ] || exit 0
  as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 2
  ;;
esac
