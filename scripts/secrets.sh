#!/usr/bin/env bash
# Writes the operator's .env: a copy of .env.example (when .env does not exist yet) whose
# required secrets are filled with fresh random values. A secret that already has a value is
# never changed, so running it again is safe; nothing is printed but the names filled.
#
#   scripts/secrets.sh [path of .env, default .env]     (make secrets)
#
# Filled: POSTGRES_PASSWORD (hex: safe inside DATABASE_URL), WEBHOOK_SECRETS (Standard
# Webhooks, whsec_ + base64), RECOUP_CODEC_KEYS (k1: + base64 of 32 bytes), CODEC_AUTH_TOKEN,
# RECOUP_DEV_OIDC_PASSWORD (the Web UI operator's password at the dev OpenID provider) and
# TEMPORAL_AUTH_CLIENT_SECRET (the Web UI's OIDC client secret there).
# The optional secrets (BILLING_WEBHOOK_SECRET, ALERT_WEBHOOK_SECRET) are filled too: they
# are used only with their URL, and billing or on-call must be given the same value.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The path is taken as given (relative to where the command runs); default: the repository's .env.
env_file="${1:-$root/.env}"
[[ "$env_file" = /* ]] || env_file="$PWD/$env_file"
cd "$root"
command -v openssl >/dev/null || { echo "secrets: openssl is required (apt-get install openssl)" >&2; exit 1; }

if [[ ! -e "$env_file" ]]; then
  cp .env.example "$env_file"
  echo "secrets: wrote $env_file from .env.example"
fi
chmod 600 "$env_file" # it holds secrets: the owner only

fill() { # name value: set name=value when the line "name=" is empty
  local name="$1" value="$2"
  if grep -qE "^${name}=.+" "$env_file"; then
    return
  fi
  if grep -qE "^${name}=\$" "$env_file"; then
    # The values are hex, base64 or prefixed base64: "|" never occurs in them.
    sed -i.bak "s|^${name}=\$|${name}=${value}|" "$env_file" && rm -f "$env_file.bak"
  else
    printf '%s=%s\n' "$name" "$value" >>"$env_file"
  fi
  echo "secrets: generated $name"
}

fill POSTGRES_PASSWORD "$(openssl rand -hex 32)"
fill WEBHOOK_SECRETS "whsec_$(openssl rand -base64 32)"
fill RECOUP_CODEC_KEYS "k1:$(openssl rand -base64 32)"
fill CODEC_AUTH_TOKEN "$(openssl rand -hex 32)"
fill RECOUP_DEV_OIDC_PASSWORD "$(openssl rand -hex 16)"
fill TEMPORAL_AUTH_CLIENT_SECRET "$(openssl rand -hex 32)"
fill BILLING_WEBHOOK_SECRET "whsec_$(openssl rand -base64 32)"
fill ALERT_WEBHOOK_SECRET "whsec_$(openssl rand -base64 32)"
