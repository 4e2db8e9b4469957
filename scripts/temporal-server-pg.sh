#!/usr/bin/env bash
# A Temporal server (1.29.1, built from source through the Go module proxy) persisted in the
# local PostgreSQL with 4 history shards, for `make bench-server`. Configuration:
# deploy/bench/temporal-postgres.yaml (frontend 127.0.0.1:27233, pprof 127.0.0.1:27936).
#
#   scripts/temporal-server-pg.sh build   go install the server and temporal-sql-tool into .bin
#   scripts/temporal-server-pg.sh reset   (re)create temporal_bench and temporal_bench_visibility
#                                         and apply the schema from the server module
#   scripts/temporal-server-pg.sh start   start the server, wait until it is healthy
#   scripts/temporal-server-pg.sh setup   namespace "default" and Recoup's search attributes,
#                                         then restart the server so that every role sees them
#   scripts/temporal-server-pg.sh up      build, reset, start, setup
#   scripts/temporal-server-pg.sh stop    stop the server this script started
#   scripts/temporal-server-pg.sh drop    stop, and drop the two databases
#   scripts/temporal-server-pg.sh status  is it running, and its pid
#
# Needs the Temporal CLI (.bin/temporal, `make temporal`) for the health check and the
# namespace, and psql-free PostgreSQL access on 127.0.0.1:5432 as user postgres (trust).
# Every command can be repeated.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
version=v1.29.1
bin=$root/.bin
srvbin=$bin/temporal-server-$version
state=$bin/temporal-server-pg
conf_dir=deploy/bench
conf_env=temporal-postgres
address=127.0.0.1:27233
pprof=127.0.0.1:27936
pg_host=${PGHOST_BENCH:-127.0.0.1}
pg_port=${PGPORT_BENCH:-5432}
dbs=(temporal_bench temporal_bench_visibility)
cli=${TEMPORAL_CLI:-$bin/temporal}
mkdir -p "$state"

log() { echo "temporal-server-pg: $*" >&2; }

# A directory outside the module, so that `go install`/`go mod download` never touch go.mod.
outside() { (cd "${TMPDIR:-/tmp}" && GOWORK=off GOFLAGS='' "$@"); }

built() { # the binary exists and was built from the pinned server module
	[[ -x $1 ]] && go version -m "$1" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+go.temporal.io/server[[:space:]]+${version}[[:space:]]"
}

cmd_build() {
	if built "$srvbin/server" && built "$srvbin/sql"; then
		return
	fi
	log "building Temporal Server $version and temporal-sql-tool into $srvbin (several minutes the first time)"
	mkdir -p "$srvbin"
	outside env GOBIN="$srvbin" go install "go.temporal.io/server/cmd/server@$version" "go.temporal.io/server/cmd/tools/sql@$version"
}

schema_dir() { # the server module's schema directory
	local dir
	dir=$(outside go mod download -json "go.temporal.io/server@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -d $dir/schema/postgresql/v12 ]] || { log "no schema in $dir"; exit 1; }
	echo "$dir/schema/postgresql/v12"
}

sqltool() { # its log goes to $state/sql.log, and to the terminal when it fails
	if ! "$srvbin/sql" --plugin postgres12 --endpoint "$pg_host" --port "$pg_port" --user postgres --password "" "$@" >>"$state/sql.log" 2>&1; then
		tail -5 "$state/sql.log" >&2
		return 1
	fi
}

pid() { # the pid of the server this script started, if it still runs
	local p
	p=$(cat "$state/server.pid" 2>/dev/null) || return 1
	[[ -n $p ]] && kill -0 "$p" 2>/dev/null && tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- "--env $conf_env" && echo "$p"
}

cmd_stop() {
	local p
	p=$(pid) || { rm -f "$state/server.pid"; return 0; }
	log "stopping the server (pid $p)"
	kill -TERM "$p"
	for _ in $(seq 1 60); do
		kill -0 "$p" 2>/dev/null || { rm -f "$state/server.pid"; return 0; }
		sleep 0.5
	done
	log "the server did not stop in 30 s: SIGKILL"
	kill -KILL "$p" 2>/dev/null || true
	rm -f "$state/server.pid"
}

cmd_drop() {
	cmd_stop
	cmd_build
	for db in "${dbs[@]}"; do
		sqltool --database "$db" drop-database --force 2>/dev/null || true
	done
	log "dropped ${dbs[*]}"
}

cmd_reset() {
	cmd_drop
	local dir
	dir=$(schema_dir)
	for db in "${dbs[@]}"; do
		local kind=temporal
		[[ $db == *_visibility ]] && kind=visibility
		sqltool --database "$db" create-database
		sqltool --database "$db" setup-schema -v 0.0
		sqltool --database "$db" update-schema -d "$dir/$kind/versioned"
	done
	log "created ${dbs[*]} with the $version schema ($dir)"
}

healthy() { "$cli" operator cluster health --address "$address" 2>/dev/null | grep -q SERVING; }

cmd_start() {
	[[ -x $cli ]] || { log "the Temporal CLI is missing at $cli: run \`make temporal\`"; exit 1; }
	if p=$(pid); then
		log "already running (pid $p)"
		return
	fi
	if healthy; then
		log "something else serves $address: stop it first"
		exit 1
	fi
	cmd_build
	"$srvbin/server" --root "$root" --config "$conf_dir" --env "$conf_env" --allow-no-auth start >>"$state/server.log" 2>&1 &
	echo $! >"$state/server.pid"
	for _ in $(seq 1 120); do
		if healthy; then
			log "serving on $address (pid $(cat "$state/server.pid"), pprof on $pprof, log $state/server.log)"
			return
		fi
		pid >/dev/null || { log "the server exited; last lines of $state/server.log:"; tail -20 "$state/server.log" >&2; exit 1; }
		sleep 0.5
	done
	log "not healthy after 60 s; see $state/server.log"
	exit 1
}

cmd_setup() {
	local ns=default attempt
	if ! "$cli" operator namespace describe --address "$address" --namespace "$ns" >/dev/null 2>&1; then
		"$cli" operator namespace create --address "$address" --namespace "$ns" --retention 720h >/dev/null
		log "namespace $ns created"
	fi
	# The starter lists the search attributes as Name=Type; a namespace just created takes a
	# few seconds to reach every role.
	while IFS='=' read -r name type; do
		for attempt in $(seq 1 30); do
			if "$cli" operator search-attribute list --address "$address" --namespace "$ns" 2>/dev/null | grep -qw "$name"; then
				break
			fi
			"$cli" operator search-attribute create --address "$address" --namespace "$ns" --name "$name" --type "$type" >/dev/null 2>&1 && break
			[[ $attempt == 30 ]] && { log "could not create search attribute $name"; exit 1; }
			sleep 1
		done
	done < <(go run ./starter search-attributes)
	log "namespace $ns has Recoup's search attributes; restarting so that every role has them cached"
	cmd_stop
	cmd_start
}

case ${1:-} in
build) cmd_build ;;
reset) cmd_reset ;;
start) cmd_start ;;
setup) cmd_setup ;;
up) cmd_build && cmd_reset && cmd_start && cmd_setup ;;
stop) cmd_stop ;;
drop) cmd_drop ;;
status) if p=$(pid); then echo "running, pid $p, frontend $address, pprof $pprof"; else echo "not running"; exit 1; fi ;;
*) sed -n '2,19p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
