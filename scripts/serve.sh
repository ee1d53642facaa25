#!/usr/bin/env bash
# Create the virtualenv, install rolecall, initialise an SQLite database on first run and start
# the server. Prints how to sign in. Settings come from the environment (see README).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e .

export ROLECALL_DATABASE_URL=${ROLECALL_DATABASE_URL:-sqlite:///./rolecall.db}
HOST=${ROLECALL_HOST:-127.0.0.1}
PORT=${ROLECALL_PORT:-8080}
ORG=${ROLECALL_ORG:-my-org}
ADMIN_EMAIL=${ROLECALL_ADMIN_EMAIL:-admin@example.com}

# A server secret of its own (kept beside the database), so service-account keys created through
# the wandb SDK can be shown to those who manage them; an environment value wins.
if [ -z "${ROLECALL_SECRET_KEY:-}" ]; then
  if [ ! -f .rolecall-secret-key ]; then
    (umask 077 && .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))' > .rolecall-secret-key)
  fi
  ROLECALL_SECRET_KEY=$(cat .rolecall-secret-key)
  export ROLECALL_SECRET_KEY
fi

if [ ! -f .rolecall-admin.txt ]; then
  PASSWORD=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(15))')
  KEY=$(.venv/bin/rolecall init --org "$ORG" --admin-email "$ADMIN_EMAIL" \
        --admin-password "$PASSWORD" --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
  umask 077
  printf 'email=%s\npassword=%s\napi_key=%s\n' "$ADMIN_EMAIL" "$PASSWORD" "$KEY" > .rolecall-admin.txt
fi
# shellcheck disable=SC1090
. <(sed 's/^/ADMIN_/' .rolecall-admin.txt)

cat <<MSG

rolecall is starting on http://$HOST:$PORT  (database: $ROLECALL_DATABASE_URL)

Sign in as the organization's admin (in a browser: http://$HOST:$PORT/login):
  email:    $ADMIN_email
  password: $ADMIN_password
  API key:  $ADMIN_api_key     (kept in .rolecall-admin.txt, readable only by you)

Try it:
  curl -u api:$ADMIN_api_key http://$HOST:$PORT/api/v1/viewer
  ROLECALL_BASE_URL=http://$HOST:$PORT ROLECALL_API_KEY=$ADMIN_api_key .venv/bin/python -c 'from rolecall import Api; print(Api().viewer())'
  API reference: http://$HOST:$PORT/api/v1/docs

MSG
exec .venv/bin/rolecall serve --host "$HOST" --port "$PORT"
