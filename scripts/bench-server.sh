#!/usr/bin/env bash
# "Past the dev server" (`make bench-server`): the first-touch benchmark
# (internal/benchmarks, TestFirstTouchThroughput: N payment.failed to their first email, then
# N baseline workflows of four no-op activities on the same server) with the worker in 1 and
# in 2 separate processes, on a Temporal server persisted in the local PostgreSQL with 4
# history shards (scripts/temporal-server-pg.sh), and on the dev server for reference.
#
#   BENCH_RUNS      runs per configuration (default 500)
#   BENCH_CONFIGS   configurations, server:workers (default "postgres:1 postgres:2 dev:1 dev:2")
#   BENCH_PROFILE_SECONDS  length of each CPU profile from the start of a phase (default 30)
#   BENCH_KEEP=1    leave the server's databases (temporal_bench*) in place at the end
#
# Each PostgreSQL configuration gets fresh databases. The measurement runs under
# flock /tmp/recoup-bench.lock, so that no other benchmark runs at the same time. Results,
# CPU profiles (.pprof) and their `go tool pprof -top` (.txt) go to .bin/bench-server/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
out=$root/.bin/bench-server
runs=${BENCH_RUNS:-500}
configs=${BENCH_CONFIGS:-postgres:1 postgres:2 dev:1 dev:2}
export BENCH_PROFILE_SECONDS=${BENCH_PROFILE_SECONDS:-30}
cli=${TEMPORAL_CLI:-$root/.bin/temporal}
server=scripts/temporal-server-pg.sh
mkdir -p "$out"

# Builds first (outside the lock): the server, the worker, the benchmark's test binary.
[[ -x $cli ]] || { echo "the Temporal CLI is missing at $cli: run \`make temporal\`" >&2; exit 1; }
"$server" build
go build -o "$out/worker" ./worker
go test -c -o "$out/benchmarks.test" ./internal/benchmarks

trap '"$server" stop || true; [[ ${BENCH_KEEP:-} == 1 ]] || "$server" drop || true' EXIT
exec 9>/tmp/recoup-bench.lock
if ! flock -n 9; then
	echo "waiting for another benchmark (/tmp/recoup-bench.lock)…" >&2
	flock 9
fi

summary=$out/summary.txt
{
	echo "date: $(date -u +%Y-%m-%dT%H:%MZ); runs per configuration: $runs"
	echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(go version | cut -d' ' -f3), $(psql -h 127.0.0.1 -U postgres -Atc 'SHOW server_version' 2>/dev/null | sed 's/^/PostgreSQL /')"
} | tee "$summary"

for cfg in $configs; do
	kind=${cfg%%:*} workers=${cfg##*:}
	label=$kind-$workers
	env=(RECOUP_BENCH=1 BENCH_RUNS="$runs" BENCH_WORKERS="$workers" BENCH_WORKER_BIN="$out/worker"
		BENCH_PROFILE_DIR="$out" BENCH_LABEL="$label" TEMPORAL_CLI="$cli")
	case $kind in
	postgres)
		"$server" reset
		"$server" start
		"$server" setup
		env+=(BENCH_TEMPORAL_ADDRESS=127.0.0.1:27233 BENCH_SERVER_PPROF=127.0.0.1:27936
			BENCH_SERVER_PID="$(cat .bin/temporal-server-pg/server.pid)")
		;;
	dev) ;;
	*) echo "unknown server kind $kind in BENCH_CONFIGS" >&2; exit 2 ;;
	esac
	echo | tee -a "$summary"
	echo "== $label: $kind server, $workers worker process(es); load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$summary"
	rm -f "$out/$label"-*.pprof "$out/$label"-*.txt
	(cd internal/benchmarks && env "${env[@]}" "$out/benchmarks.test" -test.run '^TestFirstTouchThroughput$' \
		-test.count=1 -test.timeout 40m -test.v) >"$out/$label.log" 2>&1 || {
		echo "the benchmark failed; the end of $out/$label.log:" >&2
		tail -40 "$out/$label.log" >&2
		exit 1
	}
	grep -E '^first-touch' "$out/$label.log" | tee -a "$summary"
	echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$summary"
	[[ $kind == postgres ]] && "$server" stop
	for p in "$out/$label"-*.pprof; do
		[[ -s $p ]] || continue
		go tool pprof -top -nodecount=40 "$p" >"${p%.pprof}.txt" 2>/dev/null || true
		go tool pprof -top -cum -nodecount=40 "$p" >"${p%.pprof}.cum.txt" 2>/dev/null || true
		{
			echo "-- top of $(basename "$p") (flat):"
			awk '/flat%/ {f = 1; print; next} f && n++ < 12' "${p%.pprof}.txt"
		} >>"$summary"
	done
done
echo
echo "summary: $summary (profiles and their -top output in $out)"
