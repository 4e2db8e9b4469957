#!/usr/bin/env bash
# Ingress benchmark (`make bench-ingress`): a real Temporal dev server and PostgreSQL, one
# `starter serve`, and the load generator (internal/benchmarks/loadgen, built into .bin/ by
# the make target) posting signed payment.failed events over loopback.
# Measures events/s accepted to the durable log, accept latency at a fixed rate, and the
# delivery lag from the log to Temporal. No worker runs: delivery means the run was started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=$PWD/.bin
state=$bin/bench
rm -rf "$state"; mkdir -p "$state"
db=recoup_bench
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db?sslmode=disable
export TEMPORAL_ADDRESS=127.0.0.1:17233
export WEBHOOK_SECRETS="whsec_$(head -c 32 /dev/urandom | base64)"
export INGRESS_ADDR=127.0.0.1:18080
export LOG_LEVEL=warn
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

psql postgres://postgres@127.0.0.1:5432/postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
"$bin/temporal" server start-dev --headless --ip 127.0.0.1 --port 17233 --log-level error \
  $("$bin/starter" search-attributes | sed 's/^/--search-attribute /') >"$state/temporal.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 60); do "$bin/temporal" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 && break; sleep 1; done
"$bin/starter" migrate >/dev/null
"$bin/starter" seed >/dev/null
"$bin/starter" serve >"$state/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 30); do curl -sf "http://$INGRESS_ADDR/healthz" >/dev/null && break; sleep 0.5; done

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3); RELAY_PARALLEL=${RELAY_PARALLEL:-4}"
seconds=${BENCH_SECONDS:-30}
echo
echo "== latency: 200 events/s for $seconds s"
"$bin/loadgen" --url "http://$INGRESS_ADDR" --rate 200 --count $((200 * seconds)) --concurrency 32 --prefix fixed
echo
echo "== delivery lag: 50 events/s for $seconds s"
"$bin/loadgen" --url "http://$INGRESS_ADDR" --rate 50 --count $((50 * seconds)) --concurrency 8 --prefix slow
echo
echo "== throughput: ${BENCH_COUNT:-5000} events as fast as possible, 32 concurrent"
"$bin/loadgen" --url "http://$INGRESS_ADDR" --count "${BENCH_COUNT:-5000}" --concurrency 32 --prefix max
