# Recoup — make targets. The three a newcomer needs:
#   make demo   run a local demo on a real Temporal dev server and PostgreSQL
#   make unit   the fast lane: every test that needs no service (no PostgreSQL, no Temporal
#               dev server, no provider mocks) — go test -short, well under a minute
#   make test   run every test (builds what the tests need first)

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/.bin
TEMPORAL_CLI_VERSION := v1.5.1
# The Temporal UI server: the same version as the temporalio/ui image in docker-compose.yml
# (deploy_compose_test.go holds them equal).
UI_SERVER_VERSION := v2.42.1
WORKFLOWCHECK_VERSION := v0.6.0
SHARED ?= $(CURDIR)/../shared
PROVIDER_MOCKS := $(SHARED)/tools/provider-mocks

.PHONY: secrets all build temporal ui-server workflowcheck test unit lint simulate demo bench bench-ingress bench-first-touch bench-parked bench-decision bench-server bench-spike bench-detector bench-replies bench-retry soak chaos clean

all: build

# The operator's .env for docker compose: .env.example with fresh secrets (never overwrites
# a value already set).
secrets:
	@scripts/secrets.sh

build:
	$(GO) build -o $(BIN)/ ./worker ./starter

# The Temporal CLI (Server 1.29.1 with the Web UI), built from source: the SDK's own
# download is not used.
temporal: $(BIN)/temporal
$(BIN)/temporal:
	@echo "building the Temporal CLI $(TEMPORAL_CLI_VERSION) from source (a few minutes the first time)…"
	GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

# The Temporal UI server (the temporalio/ui image's program), built from source, with the
# image's own configuration template (config/docker.yaml, filled from TEMPORAL_* variables):
# the demo's encrypted mode and the browser test (internal/e2etest/browser) run it.
ui-server: $(BIN)/temporal-ui-server
$(BIN)/temporal-ui-server:
	@echo "building the Temporal UI server $(UI_SERVER_VERSION) from source (a few minutes the first time)…"
	rm -rf $(BIN)/.ui-server-build
	GOBIN=$(BIN)/.ui-server-build $(GO) install github.com/temporalio/ui-server/v2/cmd/server@$(UI_SERVER_VERSION)
	mkdir -p $(BIN)/temporal-ui/config
	install -m 644 "$$($(GO) env GOMODCACHE)/github.com/temporalio/ui-server/v2@$(UI_SERVER_VERSION)/config/docker.yaml" $(BIN)/temporal-ui/config/docker.yaml
	mv $(BIN)/.ui-server-build/server $@
	rmdir $(BIN)/.ui-server-build

workflowcheck: $(BIN)/workflowcheck
$(BIN)/workflowcheck:
	GOBIN=$(BIN) $(GO) install go.temporal.io/sdk/contrib/tools/workflowcheck@$(WORKFLOWCHECK_VERSION)

lint: workflowcheck
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || { echo "gofmt: the files above need formatting"; exit 1; }
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy (the diff above): run go mod tidy"; exit 1; }
	$(GO) vet ./...
	$(BIN)/workflowcheck ./workflows/...
	$(GO) run ./starter prompts lint

# The fast lane: the tests that need no service. Tests that need PostgreSQL, the Temporal
# dev server, a process of their own or the provider mocks call fakes.RequireServices (or
# fakes.MustStore / fakes.TemporalCLI), which skip them under -short; without -short a
# missing service fails them. Provider requests are checked in-process against
# internal/fakes/contracts, so the contract tests run here too.
unit:
	$(GO) test -short ./...  # results of unchanged packages come from the test cache

# All tests: lint, then unit, PostgreSQL, dev-server, replay, provider-contract and Web UI
# browser tests (headless Chromium; RECOUP_REQUIRE_BROWSER=1 fails it without one, as CI
# sets) with the race detector. Every fake provider request is validated in-process against the
# project's contract descriptions (internal/fakes/contracts), and those are held against
# the official documents in $(SHARED)/specs (CI requires them: RECOUP_REQUIRE_SPECS=1).
# Contract tests also run against the providers' OpenAPI mocks when $(PROVIDER_MOCKS)
# exists (CI requires them: RECOUP_REQUIRE_PROVIDER_MOCKS=1).
test: temporal ui-server lint
	@if [[ -x "$(PROVIDER_MOCKS)" ]]; then \
		"$(PROVIDER_MOCKS)" stop >/dev/null 2>&1 || true; \
		"$(PROVIDER_MOCKS)" start; \
	else echo "provider mocks not found at $(PROVIDER_MOCKS): contract tests will be skipped"; fi
	@set -o pipefail; mocks=(); \
	if [[ -x "$(PROVIDER_MOCKS)" ]]; then mocks=(SENDGRID_MOCK_URL=http://127.0.0.1:4010 TWILIO_MOCK_URL=http://127.0.0.1:4011 OPENAI_MOCK_URL=http://127.0.0.1:4012); fi; \
	env "$${mocks[@]}" RECOUP_SPECS_DIR=$${RECOUP_SPECS_DIR:-$(SHARED)/specs} RAPID_CHECKS=$${RAPID_CHECKS:-2000} TEMPORAL_CLI=$(BIN)/temporal $(GO) test -race -count=1 -timeout 40m ./... ; status=$$?; \
	if [[ -x "$(PROVIDER_MOCKS)" ]]; then \
		if ! "$(PROVIDER_MOCKS)" violations; then echo "provider contract violations (above)"; status=1; else echo "provider mocks: no contract violations"; fi; \
		"$(PROVIDER_MOCKS)" stop >/dev/null 2>&1 || true; \
	fi; exit $$status

# The randomized simulation of docs/INVARIANTS.md: SIM_HISTORIES generated histories (default
# 100,000) against the real DunningWorkflow, every invariant checked after each; prints the
# rate and the generator's coverage. A violation prints the minimal history and its seed.
# SIM_SEED replays a run (default: a new seed, printed first).
simulate:
	@set -o pipefail; seed=$${SIM_SEED:-$$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')}; echo "sim-seed: $$seed (SIM_SEED=$$seed make simulate replays it)"; \
	RAPID_CHECKS=$${SIM_HISTORIES:-100000} $(GO) test -count=1 -timeout 180m -run TestSimulatedHistoriesKeepInvariants -v ./workflows -args -rapid.seed=$$seed \
		| grep -E '^sim|I[0-9]+:|rapid|^(ok|FAIL|---)'

demo: temporal ui-server build
	@scripts/demo.sh

# Benchmarks (measure and report; figures go to BENCHMARKS.md with the command and machine).
bench: bench-decision bench-first-touch bench-parked bench-ingress bench-spike

bench-decision:
	@scripts/bench-decision.sh

# N payment.failed (BENCH_RUNS, default 500) to a fresh dev server until every first message
# is sent, against a baseline workflow of four no-op activities on the same server.
bench-first-touch: temporal
	@RECOUP_BENCH=1 TEMPORAL_CLI=$(BIN)/temporal $(GO) test -count=1 -timeout 30m -run FirstTouch -v ./internal/benchmarks \
		| grep -E '^first-touch|^(ok|FAIL|---)'

# N runs (BENCH_PARKED_RUNS, default 10000) parked after their first message, the real worker
# binary in its own process, configured as shipped (its sticky cache sized from its memory;
# WORKER_STICKY_CACHE_SIZE or RECOUP_WORKER_MEMORY pass through when given): worker and dev
# server memory, PostgreSQL rows and sizes, then a payment.retry_succeeded to every run.
bench-parked: temporal
	@RECOUP_BENCH=1 TEMPORAL_CLI=$(BIN)/temporal $(GO) test -count=1 -timeout 120m -run ParkedScale -v ./internal/benchmarks \
		| grep --line-buffered -E '^parked:|^(ok|FAIL|---)|_test.go'

# A soak: the worker binary with its shipped defaults at a steady event rate for SOAK_DURATION
# (default 1h; SOAK_RATE payment.failed a second, default 2; half recover, half exhaust a
# schedule of minutes), sampled every SOAK_SAMPLE (default 15s): worker RSS and Go heap, dev
# server RSS, open runs, event-log and task-queue backlogs, PostgreSQL's size. Writes
# docs/soak/soak.csv (SOAK_OUT) and draws docs/soak/soak.svg (internal/benchmarks/soakplot,
# gonum/plot; not part of the product binaries). Not part of `make bench`: it takes an hour.
soak: temporal
	@set -o pipefail; out=$${SOAK_OUT:-$(CURDIR)/docs/soak}; \
	RECOUP_BENCH=1 SOAK_OUT=$$out TEMPORAL_CLI=$(BIN)/temporal $(GO) test -count=1 -timeout 0 -run '^TestSoak$$' -v ./internal/benchmarks \
		| grep --line-buffered -E '^soak:|^(ok|FAIL|---)|_test.go'; status=$$?; \
	$(GO) run ./internal/benchmarks/soakplot -in $$out/soak.csv -out $$out/soak.svg \
		-title "make soak, commit $$(git rev-parse --short HEAD), SOAK_RATE=$${SOAK_RATE:-2}/s, $$(date -u +%F)" && echo "soak: plot $$out/soak.svg"; \
	exit $$status

# Failure-spike detection on synthetic streams: detection delay of injected spikes and the
# false-positive rate on 24 h of steady traffic, over SPIKE_SEEDS seeds (default 100).
# SPIKE_SEEDS streams per scenario (default 100; the renewal scenarios run 12 streams a seed)
# and SPIKE_DAYS stream-days of subscription-shaped traffic (default 300).
bench-spike:
	@SPIKE_SEEDS=$${SPIKE_SEEDS:-100} SPIKE_DAYS=$${SPIKE_DAYS:-300} $(GO) test -count=1 -timeout 120m \
		-run 'BINSpike|GatewayOutage|NoIncident|Renewal|SingleGateway|StreamDays' -v ./internal/model/spike \
		| grep -E '^spike-|^(ok|FAIL|---)'

# The spike detector's ingest path: BENCH_DETECTOR_RATE failures/s (default 500) for
# BENCH_DETECTOR_SECONDS (default 60) recorded in the event log and fed to the detector by the
# relay, the worker running it, on a dev server: signal lag p50/p99, backlog, signals/s.
# BENCH_DETECTOR_RUNS=1 also starts the failures' dunning runs.
bench-detector: temporal
	@RECOUP_BENCH=1 TEMPORAL_CLI=$(BIN)/temporal $(GO) test -count=1 -timeout 30m -run DetectorIngress -v ./internal/benchmarks \
		| grep -E '^detector-bench|^(ok|FAIL|---)|_test.go'

# Retry advice, a simulation (internal/model/retry/sim_test.go): a synthetic population of
# RETRY_SIM_FAILURES failed renewals (default 20000, seed 16) retried on a fixed 4-in-2-weeks
# schedule and as Recoup advises: recovered share, retries spent, network-rule violations.
bench-retry:
	@RETRY_SIM_FAILURES=$${RETRY_SIM_FAILURES:-20000} $(GO) test -count=1 -run RetrySimulation -v ./internal/model/retry \
		| grep -E '^retry-sim|^(ok|FAIL|---)'

# The load generator is a measurement tool, not part of the product binary.
# The replies' rules fallback (no model): accuracy per intent on the labelled replies it was
# tuned on and on held-out ones (internal/model/replies/testdata), en/es/de, hostile ones
# included. With RECOUP_BENCH_MODEL=1 and OPENAI_API_KEY (OPENAI_BASE_URL, OPENAI_MODEL), the
# configured model's accuracy on the same replies through the worker's path as well.
bench-replies:
	@$(GO) test -count=1 -run 'TestRulesAccuracy' -v ./internal/model/replies \
		| grep -vE '^=== RUN|miss:'
	@if [ "$$RECOUP_BENCH_MODEL" = 1 ]; then $(GO) test -count=1 -timeout 60m -run ModelAccuracyOnLabelledReplies -v ./internal/benchmarks \
		| grep -E '^replies-model|^(ok|FAIL|---)'; fi

bench-ingress: temporal build
	$(GO) build -o $(BIN)/ ./internal/benchmarks/loadgen
	@scripts/bench-ingress.sh

# The first-touch benchmark past the dev server: a Temporal server persisted in the local
# PostgreSQL with 4 history shards (scripts/temporal-server-pg.sh, deploy/bench/), the worker
# in 1 and in 2 processes, the dev server for reference, CPU profiles and the CPU split
# (BENCH_RUNS, BENCH_CONFIGS; results in .bin/bench-server/). Not part of `make bench`: it
# builds the server from source and takes a quarter of an hour.
bench-server: temporal
	@scripts/bench-server.sh

# Chaos suite against the real dev server and PostgreSQL.
chaos: temporal
	RECOUP_CHAOS=1 TEMPORAL_CLI=$(BIN)/temporal $(GO) test -count=1 -timeout 20m -v ./internal/chaos/ | grep -E '^(kill|temporal|postgres|provider|llm|storm)-|^(ok|FAIL|---)'

clean:
	rm -rf $(BIN)
