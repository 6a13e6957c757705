#!/usr/bin/env bash
# `make demo`: sagad on an SQLite file, the simulated payment, warehouse and
# courier services around it, a few hundred orders driven through their
# lifecycle; then where the orders ended. Everything stops when it is done.
set -euo pipefail

build=${1:-build}
orders=${ORDERS:-300}
dir=$build/demo
ingress=${SAGA_INGRESS:-tcp://127.0.0.1:5570}
publish=${SAGA_PUBLISH:-tcp://127.0.0.1:5571}
replay=${SAGA_REPLAY:-tcp://127.0.0.1:5572}
endpoints=(--ingress "$ingress" --publish "$publish" --replay "$replay")

rm -rf "$dir" && mkdir -p "$dir"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$build/adapters/daemon/sagad" --db "$dir/saga.db" "${endpoints[@]}" 2>"$dir/sagad.log" &
pids+=($!)
for _ in $(seq 50); do grep -q "sagad: db" "$dir/sagad.log" 2>/dev/null && break; sleep 0.1; done
if ! grep -q "sagad: db" "$dir/sagad.log"; then cat "$dir/sagad.log"; exit 1; fi
echo "sagad running on $dir/saga.db ($ingress, $publish, $replay); log: $dir/sagad.log"

for service in payment warehouse courier; do
  "$build/examples/saga-sim" "${endpoints[@]}" --seed 7 --fail-rate 0.1 --refund-fail-rate 0.3 \
    --decisions "$dir/$service.jsonl" --db "$dir/$service.db" "$service" 2>"$dir/$service.log" &
  pids+=($!)
done

start=$(date +%s.%N)
"$build/examples/saga-sim" "${endpoints[@]}" orders --count "$orders" --prefix demo-
open="select count(*) from instances where definition = 'order_lifecycle'
      and state not in ('done', 'cancelled', 'needs_attention')"
for _ in $(seq 600); do
  [ "$(sqlite3 -readonly "$dir/saga.db" "$open")" = 0 ] && break
  sleep 0.1
done
end=$(date +%s.%N)
events=$(sqlite3 -readonly "$dir/saga.db" "select count(*) from inbox")
echo
awk -v o="$orders" -v e="$events" -v s="$start" -v t="$end" 'BEGIN {
  printf "%d orders, %d events through sagad in %.2f s: %d events/s end to end (services included)\n", o, e, t - s, e / (t - s) }'
echo
sagactl=("$build/adapters/cli/sagactl" --db "$dir/saga.db")
"${sagactl[@]}" stats
finished=$("${sagactl[@]}" list --type order_lifecycle --state done --limit 1 --json |
           python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')
echo
"${sagactl[@]}" show "$finished"
