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
#   BENCH_REV       the commit whose worker and benchmark are measured (default HEAD): they are
#                   built from `git archive`, so uncommitted changes in the working tree are
#                   never measured
#
#   scripts/bench-server.sh profiles   only print the breakdown of the profiles already in
#                                      .bin/bench-server/
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

# breakdown FILE NAME=REGEX…: the share of a CPU profile's samples whose stack includes a
# function matching REGEX (the shares overlap: a history handler's time includes its
# persistence calls).
breakdown() {
	local file=$1 entry share line
	shift
	line="breakdown of $(basename "$file" .pprof), share of samples whose stack includes:"
	for entry in "$@"; do
		share=$(go tool pprof -top -nodecount=1000000 -nodefraction=0 -focus="${entry#*=}" "$file" 2>/dev/null |
			sed -n 's/^Showing nodes accounting for [^,]*, \([0-9.]*%\) of .*/\1/p')
		line+=" ${entry%%=*} ${share:-0%};"
	done
	echo "$line"
}
common=('gRPC transport=google.golang.org/grpc/internal/transport|golang.org/x/net/http2'
	'protobuf=google.golang.org/protobuf|github.com/gogo/protobuf'
	'GC=runtime.gcBgMarkWorker|runtime.gcAssistAlloc|runtime.bgsweep|runtime.bgscavenge'
	'gzip (the SDK compresses gRPC by default)=compress/flate|compress/gzip'
	'allocation=runtime.mallocgc' 'syscalls=syscall.Syscall|internal/runtime/syscall')
server_parts=('RPC handlers=google.golang.org/grpc.\(\*Server\).processUnaryRPC'
	'history service=go.temporal.io/server/service/history'
	'history task queues (transfer, timer, visibility)=go.temporal.io/server/service/history/queues'
	'matching service=go.temporal.io/server/service/matching'
	'frontend service=go.temporal.io/server/service/frontend'
	'workflow state writes=UpdateWorkflowExecution$|CreateWorkflowExecution$'
	'persistence layer=go.temporal.io/server/common/persistence'
	'SQL driver (lib/pq, database/sql)=github.com/lib/pq|database/sql'
	'visibility=go.temporal.io/server/common/persistence/visibility' "${common[@]}")
worker_parts=('Recoup code=github.com/recoup-dunning/recoup'
	'templates=text/template|html/template' 'regexp=^regexp'
	'Recoup store (pgx)=github.com/jackc/pgx' 'net/http (model, SendGrid)=^net/http'
	'Temporal SDK=go.temporal.io/sdk' "${common[@]}")

profile_breakdown() {
	case $1 in
	*-server.pprof) breakdown "$1" "${server_parts[@]}" ;;
	*-bench.pprof) breakdown "$1" "${worker_parts[@]}" 'Recoup ingest=recoup/internal/eventlog' ;;
	*) breakdown "$1" "${worker_parts[@]}" ;;
	esac
}
if [[ ${1:-} == profiles ]]; then
	for p in "$out"/*.pprof; do profile_breakdown "$p"; done
	exit 0
fi

# Builds first (outside the lock): the server, and the worker and the benchmark's test
# binary from a clean copy of BENCH_REV.
[[ -x $cli ]] || { echo "the Temporal CLI is missing at $cli: run \`make temporal\`" >&2; exit 1; }
"$server" build
rev=$(git rev-parse "${BENCH_REV:-HEAD}")
src=$out/src
rm -rf "$src" && mkdir -p "$src"
git archive "$rev" | tar -x -C "$src"
(cd "$src" && go build -o "$out/worker" ./worker && go test -c -o "$out/benchmarks.test" ./internal/benchmarks)

trap '"$server" stop || true; [[ ${BENCH_KEEP:-} == 1 ]] || "$server" drop || true' EXIT
exec 9>/tmp/recoup-bench.lock
if ! flock -n 9; then
	echo "waiting for another benchmark (/tmp/recoup-bench.lock)…" >&2
	flock 9
fi

summary=$out/summary.txt
{
	echo "date: $(date -u +%Y-%m-%dT%H:%MZ); runs per configuration: $runs; commit $rev$(git diff --quiet "$rev" -- . 2>/dev/null || echo " (the working tree differs from it; the commit is measured)")"
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
	(cd "$src/internal/benchmarks" && env "${env[@]}" "$out/benchmarks.test" -test.run '^TestFirstTouchThroughput$' \
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
			profile_breakdown "$p"
			echo "-- top of $(basename "$p") (flat):"
			awk '/flat%/ {f = 1; print; next} f && n++ < 12' "${p%.pprof}.txt"
		} >>"$summary"
	done
done
echo
echo "summary: $summary (profiles and their -top output in $out)"
