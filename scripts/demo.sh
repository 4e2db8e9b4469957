#!/usr/bin/env bash
# Recoup local demo: a real Temporal dev server (with the Web UI) and PostgreSQL, the worker,
# and a handful of billing events that show what the engine does. Run it with `make demo`.
#
# The follow-up schedule is shortened to seconds, quiet hours are off and the contact cap is
# raised so that the whole story plays out in about a minute. No provider credentials are needed: without them emails
# and SMS are rendered, stored in PostgreSQL and logged ("log delivery mode"). Set
# SENDGRID_API_KEY / TWILIO_* / OPENAI_API_KEY to use the real providers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
bin=$root/.bin
state=$bin/demo
mkdir -p "$state"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { printf '\ndemo: %s\n' "$*" >&2; exit 1; }

export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/recoup?sslmode=disable}
export TEMPORAL_ADDRESS=${TEMPORAL_ADDRESS:-127.0.0.1:7233}
export LOG_FORMAT=${LOG_FORMAT:-text}
export RECOUP_SCHEDULE=${RECOUP_SCHEDULE:-0s,15s,30s}
export RECOUP_FINAL_WAIT=${RECOUP_FINAL_WAIT:-10s}
export RECOUP_IGNORE_QUIET_HOURS=${RECOUP_IGNORE_QUIET_HOURS:-true}
# The schedule of seconds, and every earlier demo run messaging the same demo customers,
# would hit the weekly contact cap of policy.yaml.
export RECOUP_CONTACT_CAP=${RECOUP_CONTACT_CAP:-1000/7}
ui_port=${TEMPORAL_UI_PORT:-8233}

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "PostgreSQL"
# The default database "recoup" is created if it does not exist yet.
if [[ $DATABASE_URL == postgres://postgres@127.0.0.1:5432/recoup* ]] && command -v psql >/dev/null; then
  if ! psql "postgres://postgres@127.0.0.1:5432/postgres" -tAc "SELECT 1" >/dev/null 2>&1; then
    die "no PostgreSQL answers on 127.0.0.1:5432. Start one (e.g. pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start) or set DATABASE_URL."
  fi
  if [[ -z $(psql "postgres://postgres@127.0.0.1:5432/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname = 'recoup'") ]]; then
    psql "postgres://postgres@127.0.0.1:5432/postgres" -qc "CREATE DATABASE recoup"
    echo "created database recoup"
  fi
fi
"$bin/starter" migrate || die "cannot use DATABASE_URL; see the message above."
"$bin/starter" seed

encrypted=
headless=()
if [[ -n ${RECOUP_CODEC_KEYS:-} ]]; then
  # Encryption on: every payload Temporal stores is encrypted. The Web UI that decodes is the
  # Temporal UI server (built from source: .bin/temporal-ui-server) with sign-in: the
  # operator signs in at the dev OpenID provider, and the UI passes the access token to the
  # codec server (HTTPS, self-signed), which checks it. The dev server runs without its UI.
  encrypted=1
  headless=(--headless)
  [[ -x $bin/temporal-ui-server ]] || die "the Temporal UI server is missing: run make ui-server (make demo builds it)."
  command -v openssl >/dev/null || die "openssl is required for the encrypted demo's secrets."
  oidc_port=${RECOUP_DEV_OIDC_PORT:-8234}
  issuer="http://localhost:$oidc_port/oidc"
  password_where="RECOUP_DEV_OIDC_PASSWORD"
  if [[ -z ${RECOUP_DEV_OIDC_PASSWORD:-} ]]; then
    [[ -s $state/operator-password ]] || (umask 077 && openssl rand -hex 16 >"$state/operator-password")
    RECOUP_DEV_OIDC_PASSWORD=$(cat "$state/operator-password")
    password_where="in $state/operator-password"
  fi
  client_secret=$(openssl rand -hex 24)
  RECOUP_DEV_OIDC_PASSWORD=$RECOUP_DEV_OIDC_PASSWORD RECOUP_DEV_OIDC_CLIENT_SECRET=$client_secret \
    RECOUP_DEV_OIDC_ADDR=127.0.0.1:$oidc_port RECOUP_DEV_OIDC_PUBLIC_URL=http://localhost:$oidc_port \
    RECOUP_DEV_OIDC_REDIRECT_URIS=http://localhost:$ui_port/auth/sso/callback \
    "$bin/starter" dev-oidc >"$state/dev-oidc.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 30); do
    "$bin/starter" probe "http://127.0.0.1:$oidc_port/healthz" >/dev/null 2>&1 && break
    kill -0 "${pids[-1]}" 2>/dev/null || die "the dev OpenID provider exited; see $state/dev-oidc.log"
    sleep 1
  done
  export CODEC_AUTH_TOKEN=${CODEC_AUTH_TOKEN:-$(openssl rand -hex 16)}
  (umask 077 && printf '%s\n' "$CODEC_AUTH_TOKEN" >"$state/codec-token")
  export CODEC_ADDR=${CODEC_ADDR:-127.0.0.1:8081}
  CODEC_TLS_SELF_SIGNED=true CODEC_TLS_SELF_SIGNED_DIR=$state CODEC_OIDC_ISSUER=$issuer CODEC_OIDC_AUDIENCE=temporal-ui \
    CODEC_OIDC_ALLOWED_EMAILS=operator@localhost \
    CODEC_CORS_ORIGINS=http://localhost:$ui_port "$bin/starter" codec-server >"$state/codec.log" 2>&1 &
  pids+=($!)
  echo "payload encryption on (keys ${RECOUP_CODEC_KEYS%%:*}…); codec server on https://$CODEC_ADDR; sign-in at $issuer"
fi

# start_ui runs the Temporal UI server with sign-in, configured as docker-compose.yml does:
# the temporalio/ui image's own template (config/docker.yaml) filled from TEMPORAL_* variables.
start_ui() {
  say "Temporal Web UI with sign-in (log: $state/ui-server.log)"
  mkdir -p "$state/ui/config"
  cp "$bin/temporal-ui/config/docker.yaml" "$state/ui/config/docker.yaml"
  # On this machine only (the template listens on every interface, as a container must).
  printf '\nhost: 127.0.0.1\n' >>"$state/ui/config/docker.yaml"
  TEMPORAL_UI_PORT=$ui_port TEMPORAL_CORS_ORIGINS=http://localhost:$ui_port \
    TEMPORAL_CODEC_ENDPOINT=https://$CODEC_ADDR TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true \
    TEMPORAL_AUTH_ENABLED=true TEMPORAL_AUTH_PROVIDER_URL=$issuer TEMPORAL_AUTH_CLIENT_ID=temporal-ui \
    TEMPORAL_AUTH_CLIENT_SECRET=$client_secret TEMPORAL_AUTH_CALLBACK_URL=http://localhost:$ui_port/auth/sso/callback \
    TEMPORAL_AUTH_SCOPES=openid,profile,email TEMPORAL_NOTIFY_ON_NEW_VERSION=false \
    "$bin/temporal-ui-server" --root "$state/ui" --config config --env docker start >"$state/ui-server.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 30); do
    "$bin/starter" probe "http://127.0.0.1:$ui_port/healthz" >/dev/null 2>&1 && break
    kill -0 "${pids[-1]}" 2>/dev/null || die "the UI server exited; see $state/ui-server.log"
    sleep 1
  done
  echo "Web UI on http://localhost:$ui_port (sign-in required)"
}

say "Temporal dev server"
if "$bin/temporal" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1; then
  echo "a Temporal server already answers on $TEMPORAL_ADDRESS; using it"
  for sa in $("$bin/starter" search-attributes); do
    "$bin/temporal" operator search-attribute create --address "$TEMPORAL_ADDRESS" --name "${sa%=*}" --type "${sa#*=}" >/dev/null 2>&1 || true
  done
else
  "$bin/temporal" server start-dev --ip 127.0.0.1 --port "${TEMPORAL_ADDRESS##*:}" --ui-port "$ui_port" \
    --log-level error "${headless[@]}" \
    $("$bin/starter" search-attributes | sed 's/^/--search-attribute /') >"$state/temporal.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 60); do
    "$bin/temporal" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 && break
    kill -0 "${pids[-1]}" 2>/dev/null || die "the dev server exited; see $state/temporal.log"
    sleep 1
  done
  if [[ -n $encrypted ]]; then echo "dev server on $TEMPORAL_ADDRESS"; else echo "dev server on $TEMPORAL_ADDRESS, Web UI on http://localhost:$ui_port"; fi
fi
[[ -z $encrypted ]] || start_ui

say "Worker (log: $state/worker.log)"
"$bin/worker" >"$state/worker.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 30); do
  grep -q "worker polling" "$state/worker.log" && break
  kill -0 "${pids[-1]}" 2>/dev/null || die "the worker exited; see $state/worker.log"
  sleep 1
done
grep -E "rules policy|delivery mode|LLM decisions" "$state/worker.log" | sed 's/^.*msg=/  /' || true

# Invoice ids are unique per demo run, so the demo can be run again on the same database.
run=$(date +%H%M%S)
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }
event() { echo "$1" | "$bin/starter" event -; }
failed() { # invoice customer amount [times]: the same event (one body, one timestamp) sent times times
  local body="{\"type\":\"payment.failed\",\"event_id\":\"evt_${1}_failed\",\"invoice_id\":\"$1\",\"customer_id\":\"$2\",\"amount_minor\":$3,\"currency\":\"USD\",\"failure_code\":\"card_declined\",\"attempt_id\":\"att_1\",\"occurred_at\":\"$(now)\"}"
  for ((i = 0; i < ${4:-1}; i++)); do event "$body"; done
}
recovers=inv_demo_${run}_recovers
optout=inv_demo_${run}_optout
exhausts=inv_demo_${run}_exhausts
cancels=inv_demo_${run}_cancels

say "Billing events"
echo "-- a payment fails, and billing sends the same event twice:"
failed "$recovers" cus_demo_01 4900 2
echo "-- three more failed payments:"
failed "$optout" cus_demo_02 9900
failed "$exhausts" cus_demo_04 2900
failed "$cancels" cus_demo_05 49900
echo "-- a malformed event is refused with the field at fault, and nothing starts:"
echo '{"type":"payment.failed","event_id":"evt_bad","invoice_id":"inv_bad","customer_id":"cus_demo_01","amount_minor":-5,"currency":"XYZ","occurred_at":"yesterday"}' \
  | "$bin/starter" event - || echo "   (exit status $?)"

sleep 3
echo "-- the retried charge of $recovers succeeds:"
event "{\"type\":\"payment.retry_succeeded\",\"event_id\":\"evt_${recovers}_retry\",\"invoice_id\":\"$recovers\",\"attempt_id\":\"att_2\",\"occurred_at\":\"$(now)\"}"
echo "-- the customer of $optout replies STOP to SMS:"
event "{\"type\":\"dunning.opt_out\",\"event_id\":\"evt_${optout}_stop\",\"invoice_id\":\"$optout\",\"channel\":\"sms\",\"occurred_at\":\"$(now)\"}"
echo "-- billing writes off $cancels:"
event "{\"type\":\"dunning.cancel\",\"event_id\":\"evt_${cancels}_cancel\",\"invoice_id\":\"$cancels\",\"reason\":\"written off by finance\",\"occurred_at\":\"$(now)\"}"

say "Waiting for $optout and $exhausts to run their schedule ($RECOUP_SCHEDULE, then $RECOUP_FINAL_WAIT)"
for _ in $(seq 1 120); do
  s1=$("$bin/starter" status --json "$optout" | sed -n 's/^  "status": "\(.*\)",$/\1/p')
  s2=$("$bin/starter" status --json "$exhausts" | sed -n 's/^  "status": "\(.*\)",$/\1/p')
  [[ -t 1 ]] && printf '\r  %s: %-10s %s: %-10s' "$optout" "$s1" "$exhausts" "$s2"
  [[ $s1 == exhausted && $s2 == exhausted ]] && break
  sleep 2
done
echo

say "What happened"
for inv in "$recovers" "$optout" "$exhausts" "$cancels"; do
  echo
  "$bin/starter" status "$inv"
done

say "Messages stored in PostgreSQL (log delivery mode)"
if command -v psql >/dev/null; then
  psql "$DATABASE_URL" -P pager=off -c "SELECT idempotency_key, status, left(replace(body, E'\n', ' '), 70) AS message FROM sends WHERE workflow_id LIKE 'dunning-inv_demo_${run}%' ORDER BY created_at"
fi

say "Runs left waiting, to practise on"
# The story above ran on a schedule of seconds. The worker restarts with the policy's own
# schedule (prompts/policy.yaml: days 0, 3, 7, 14), so these runs send their first message now
# and then wait for days: pause them, act now, change channel, from the UI or the CLI.
kill "${pids[-1]}" 2>/dev/null || true
wait "${pids[-1]}" 2>/dev/null || true
unset 'pids[-1]'
# Approvals on (prompts/policy.yaml ships them off), for the plan rule only: every message to
# an enterprise customer waits for support.
rm -rf "$state/prompts" && cp -r prompts "$state/prompts"
sed -i '/^approval:/,/^[a-z]/ { s/^  enabled: false/  enabled: true/; s/^    first_sms: true/    first_sms: false/ }' "$state/prompts/policy.yaml"
grep -q '^  enabled: true' <(sed -n '/^approval:/,/^[a-z]/p' "$state/prompts/policy.yaml") || die "could not turn approvals on in $state/prompts/policy.yaml"
PROMPTS_DIR=$state/prompts env -u RECOUP_SCHEDULE -u RECOUP_FINAL_WAIT "$bin/worker" >"$state/worker-waiting.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 30); do
  grep -q "worker polling" "$state/worker-waiting.log" && break
  kill -0 "${pids[-1]}" 2>/dev/null || die "the worker exited; see $state/worker-waiting.log"
  sleep 1
done
waits=inv_demo_${run}_waits
paused=inv_demo_${run}_paused
approve=inv_demo_${run}_approve
failed "$waits" cus_demo_07 12900
failed "$paused" cus_demo_10 9900
failed "$approve" cus_demo_08 249000
step_of() { "$bin/starter" status --json "$1" 2>/dev/null | sed -n 's/^  "step": \(.*\),$/\1/p'; }
status_of() { "$bin/starter" status --json "$1" 2>/dev/null | sed -n 's/^  "status": "\(.*\)",$/\1/p'; }
for _ in $(seq 1 60); do
  [[ $(step_of "$waits") == 1 && $(step_of "$paused") == 1 && $(status_of "$approve") == awaiting_approval ]] && break
  sleep 1
done
"$bin/starter" pause "$paused" --by demo --reason "the customer called: paying by bank transfer"
ui_base="http://localhost:$ui_port/namespaces/default"
link() { # invoice: the run's page in the Web UI
  local wf=dunning-$1 rid
  rid=$("$bin/temporal" workflow describe --address "$TEMPORAL_ADDRESS" --workflow-id "$wf" -o json 2>/dev/null |
    sed -n 's/^ *"runId": "\([^"]*\)".*$/\1/p' | head -1)
  echo "$ui_base/workflows/$wf/$rid/history"
}
for inv in "$waits" "$paused" "$approve"; do
  echo
  "$bin/starter" status "$inv"
done
cat <<EOF

  $waits   waits 3 days for step 2: try the Updates pause, act-now or set-next-channel
    $(link "$waits")
  $paused  paused by support: try resume
    $(link "$paused")
  $approve  its first message waits for approval (enterprise plan): try approve, reject or edit
    $(link "$approve")
    or: $bin/starter approvals; $bin/starter approvals approve $approve --by you
In the UI: open a run, "Send an Update" (top right), pick the action and fill in its JSON;
the run's current details at the top say what it will do next.
EOF

say "Where to look"
q() { printf '%s/workflows?query=%s' "$ui_base" "$(printf '%s' "$1" | sed 's/ /%20/g; s/"/%22/g; s/=/%3D/g')"; }
cat <<EOF
Temporal Web UI: $ui_base/workflows
The list's "Completed" only says the run ended; its outcome is the DunningStatus search
attribute. Ready-made lists (or paste the filter into the UI's search box):
  waiting for a step  $(q 'DunningStatus="active"')
  paused              $(q 'DunningStatus="paused"')
  needs support       $(q 'DunningStatus="needs_attention"')
  recovered           $(q 'DunningStatus="recovered"')
  one customer        $(q 'CustomerId="cus_demo_02"')
  awaiting approval   $(q 'DunningStatus="awaiting_approval"')
  closed by Terminate/reset/timeout  $ui_base/workflows?query=ExecutionStatus%21%3D%22Running%22%20AND%20ExecutionStatus%21%3D%22ContinuedAsNew%22%20AND%20DunningStatus%20NOT%20IN%20(%22recovered%22%2C%22exhausted%22%2C%22canceled%22%2C%22failed%22)
Add the DunningStatus column with the list's column settings. Act on runs with their Updates
(pause, resume, act-now, approve, …) or the UI's Cancel, not Terminate or Reset (README:
"Which Web UI buttons to use").
Each run's "Queries" tab answers the "status" query with its whole state.
Worker logs: $state/worker.log (the story), $state/worker-waiting.log (the waiting runs)

Who decided: each decision above says "decider: …". Without a model the rules decide. To see
a model decide, run the demo against any OpenAI-compatible endpoint, hosted or local:
  OPENAI_API_KEY=sk-… make demo
  OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=llama3.1 make demo   # a local server, e.g. Ollama
Every answer is checked against prompts/policy.yaml; when one is refused, the decision says
why and the rules decide ("starter status INVOICE", or the run's status query).
EOF
[[ -z $encrypted ]] || cat <<EOF
Payloads are encrypted. Sign in to the Web UI as "${RECOUP_DEV_OIDC_USER:-operator}" (password $password_where).
Open https://$CODEC_ADDR/healthz once first and accept its self-signed certificate, or the UI
says "Codec Server could not connect". The CLI decodes with the static token (in
$state/codec-token) once it trusts the certificate:
  openssl s_client -connect $CODEC_ADDR </dev/null 2>/dev/null | openssl x509 >$state/codec.pem
  SSL_CERT_FILE=$state/codec.pem $bin/temporal workflow show -w <workflow id> \\
    --codec-endpoint https://$CODEC_ADDR --codec-auth "Bearer \$(cat $state/codec-token)"
EOF

if [[ -t 0 && -t 1 && ${DEMO_EXIT:-} != 1 ]]; then
  echo
  echo "The dev server and worker keep running so you can explore the UI. Press Ctrl-C to stop."
  while sleep 3600; do :; done
fi
