#!/usr/bin/env bash
# `make demo-cluster`: the demo on three sagad sharing one PostgreSQL (docs/postgres.md). A
# throw-away cluster (tests/support/pg_cluster.sh: initdb in /tmp, a Unix socket only), three
# sagad on one schema, the simulated payment, warehouse and courier services each sending to its
# own sagad and listening to all three, orders sent to the first; one sagad is killed half-way and
# started again. Then where the orders ended, read with sagactl from PostgreSQL. Everything stops
# when it is done.
set -euo pipefail

build=${1:-build}
orders=${ORDERS:-300}
dir=$build/demo-cluster
base=${SAGA_DEMO_PORT:-5580}  # sagad i: ingress base+3i, events base+3i+1, replay base+3i+2
here=$(cd "$(dirname "$0")/.." && pwd)

rm -rf "$dir" && mkdir -p "$dir"
state=$dir/pg.conninfo
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bash "$here/tests/support/pg_cluster.sh" stop "$state"
}
trap cleanup EXIT
bash "$here/tests/support/pg_cluster.sh" start "$state"
socket=$(sed -n 's/^host=\([^ ]*\) .*/\1/p' "$state")
db="postgresql://postgres@/postgres?host=$socket&port=5432"

ingress=() publish=() replay=()
for i in 0 1 2; do
  ingress+=("tcp://127.0.0.1:$((base + 3 * i))")
  publish+=("tcp://127.0.0.1:$((base + 3 * i + 1))")
  replay+=("tcp://127.0.0.1:$((base + 3 * i + 2))")
done
all_publish=$(IFS=,; echo "${publish[*]}")
all_replay=$(IFS=,; echo "${replay[*]}")

start_sagad() {  # i
  local i=$1
  "$build/adapters/daemon/sagad" --db "$db" --pg-schema demo --ingress "${ingress[i]}" \
    --publish "${publish[i]}" --replay "${replay[i]}" 2>>"$dir/sagad$i.log" &
  pids[i]=$!
  for _ in $(seq 100); do grep -q "sagad: db" "$dir/sagad$i.log" 2>/dev/null && return; sleep 0.1; done
  cat "$dir/sagad$i.log"
  exit 1
}
for i in 0 1 2; do start_sagad "$i"; done
echo "three sagad on $db, schema demo; logs: $dir/sagad{0,1,2}.log"

n=3
for service in payment warehouse courier; do
  i=$(((n++) % 3))
  "$build/examples/saga-sim" --ingress "${ingress[i]}" --publish "$all_publish" --replay "$all_replay" \
    --seed 7 --fail-rate 0.1 --refund-fail-rate 0.3 --decisions "$dir/$service.jsonl" \
    --db "$dir/$service.db" "$service" 2>"$dir/$service.log" &
  pids+=($!)
done

sagactl=("$build/adapters/cli/sagactl" --db "$db" --pg-schema demo)
open_orders() {
  "${sagactl[@]}" stats --json | python3 -c '
import json, sys
s = json.load(sys.stdin)["instances"].get("order_lifecycle", {})
print(sum(n for state, n in s.items() if state not in ("done", "cancelled", "needs_attention")))'
}

start=$(date +%s.%N)
"$build/examples/saga-sim" --ingress "${ingress[0]}" --publish "$all_publish" --replay "$all_replay" \
  orders --count "$orders" --prefix demo- &
shop=$!
sleep 1
echo "killing sagad 1 (SIGKILL) while orders flow, then starting it again"
kill -KILL "${pids[1]}"
wait "${pids[1]}" 2>/dev/null || true
start_sagad 1
wait "$shop"
for _ in $(seq 600); do
  [ "$(open_orders)" = 0 ] && break
  sleep 0.2
done
end=$(date +%s.%N)
echo
"${sagactl[@]}" stats
awk -v o="$orders" -v s="$start" -v t="$end" 'BEGIN {
  printf "\n%d orders through three sagad on one PostgreSQL in %.2f s (services included)\n", o, t - s }'
finished=$("${sagactl[@]}" list --type order_lifecycle --state done --limit 1 --json |
           python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')
echo
"${sagactl[@]}" show "$finished"
