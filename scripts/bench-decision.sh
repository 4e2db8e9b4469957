#!/usr/bin/env bash
# Decision-overhead benchmarks: prompt rendering, guardrail validation and message
# rendering, i.e. the in-process work of one decision without the model call and without
# PostgreSQL (see activities/bench_test.go for exactly what is in and out).
#
#   scripts/bench-decision.sh [output-file]      # default .bin/bench-decision.txt
#
# The output file is plain `go test -bench` output (-count 6), which benchstat summarises
# and compares (install: go install golang.org/x/perf/cmd/benchstat@latest):
#
#   benchstat .bin/bench-decision.txt
#   benchstat old.txt new.txt
#
# BENCH_COUNT (default 6), BENCH_TIME (default: go test's 1s) and BENCH_FILTER (default .)
# override the run. Target: BenchmarkDecisionPipeline under 1 ms/op, bounded allocs/op.
set -euo pipefail
out=${1:-.bin/bench-decision.txt}
case $out in /*) ;; *) out=$PWD/$out ;; esac
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p "$(dirname "$out")"

args=(-run '^$' -bench "${BENCH_FILTER:-.}" -benchmem -count "${BENCH_COUNT:-6}")
[ -n "${BENCH_TIME:-}" ] && args+=(-benchtime "$BENCH_TIME")

echo "machine: $(nproc) cores, $(uname -sr), $(go version | cut -d' ' -f3), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "running: go test ${args[*]} ./internal/model/templates ./internal/model/policy ./activities"
if ! go test "${args[@]}" ./internal/model/templates ./internal/model/policy ./activities >"$out"; then
  tail -n 30 "$out"
  echo "benchmarks failed; full output in $out" >&2
  exit 1
fi
echo "wrote $out"
echo

# Median of each benchmark's runs (benchstat gives the confidence intervals).
awk '/^Benchmark/ {
  name = $1; sub(/-[0-9]+$/, "", name); ns = b = al = "-"
  for (i = 3; i < NF; i++) {
    if ($(i+1) == "ns/op") ns = $i
    if ($(i+1) == "B/op") b = $i
    if ($(i+1) == "allocs/op") al = $i
  }
  print name, ns, b, al
}' "$out" | sort -k1,1 -k2,2g | awk '
  function flush() {
    if (n == 0) return
    m = int((n + 1) / 2)
    printf "%-52s %12s ns/op %9s B/op %7s allocs/op  (median of %d)\n", prev, ns[m], b[m], al[m], n
  }
  $1 != prev { flush(); prev = $1; n = 0 }
  { n++; ns[n] = $2; b[n] = $3; al[n] = $4 }
  END { flush() }'

echo
if command -v benchstat >/dev/null 2>&1; then
  echo "benchstat $out"
else
  echo "for confidence intervals and comparisons: go install golang.org/x/perf/cmd/benchstat@latest && benchstat $out"
fi
