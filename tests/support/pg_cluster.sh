#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests (ctest's postgres_cluster fixture):
#   pg_cluster.sh start STATE   initdb in a new folder under /tmp, start the server listening only
#                               on a Unix socket in that folder, and write a libpq connection
#                               string for it to the file STATE
#   pg_cluster.sh stop STATE    stop that server and remove its folder and STATE
# initdb refuses to run as root, so as root the cluster belongs to the `postgres` user (runuser).
# Durability is off (no fsync, no synchronous commit): the cluster lives as long as one test run.
# SAGA_PG_DURABLE=1 leaves PostgreSQL's durable defaults on (saga-bench's cluster stage, which
# compares with SQLite's synchronous=FULL).
set -euo pipefail

bin=${SAGA_PG_BIN:-/usr/lib/postgresql/15/bin}
action=${1:?start or stop}
state=${2:?the state file}

as_owner=()
if ((EUID == 0)); then as_owner=(runuser -u postgres --); fi

stop() {
  [[ -f $state ]] || return 0
  local dir
  dir=$(sed -n 's/^host=\([^ ]*\) .*/\1/p' "$state")
  if [[ -n $dir && -d $dir/data ]]; then
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  [[ -n $dir && $dir == /tmp/saga-pg.* ]] && rm -rf "$dir"
  rm -f "$state"
}

case $action in
  start)
    stop  # a cluster a killed run left behind
    dir=$(mktemp -d /tmp/saga-pg.XXXXXX)
    if ((EUID == 0)); then chown postgres: "$dir"; fi
    if ! "${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
      --no-sync >"$dir/initdb.log" 2>&1; then
      cat "$dir/initdb.log" >&2
      rm -rf "$dir"
      exit 1
    fi
    # No TCP listener: the socket's folder is private to this run, so no port can clash.
    opts="-c listen_addresses='' -k $dir -p 5432 -c max_connections=40"
    if [[ -z ${SAGA_PG_DURABLE:-} ]]; then opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"; fi
    if ! "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -o "$opts" start >/dev/null; then
      cat "$dir/server.log" >&2
      rm -rf "$dir"
      exit 1
    fi
    echo "host=$dir port=5432 user=postgres dbname=postgres" >"$state"
    echo "pg_cluster: PostgreSQL running at $dir"
    ;;
  stop)
    stop
    ;;
  *)
    echo "usage: $0 start|stop STATE" >&2
    exit 2
    ;;
esac
