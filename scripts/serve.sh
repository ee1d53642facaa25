#!/usr/bin/env bash
# Create the virtualenv, install rolecall, initialise an SQLite database on first run and start
# the server. Prints how to sign in (the credentials themselves on the first run only). Settings
# come from the environment (see README).
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

# The admin's credentials are made, kept in .rolecall-admin.txt (mode 600) and printed on the
# first run only: later runs say where they are, so they do not land in every start's log
# (systemd's journal, a container's). The password reaches `rolecall init` in its environment,
# which only its user can read, not on its command line, which every user sees in ps.
if [ ! -f .rolecall-admin.txt ]; then
  PASSWORD=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(15))')
  KEY=$(ROLECALL_ADMIN_PASSWORD="$PASSWORD" .venv/bin/rolecall init --org "$ORG" \
        --admin-email "$ADMIN_EMAIL" --json \
        | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
  (umask 077 && printf 'email=%s\npassword=%s\napi_key=%s\n' "$ADMIN_EMAIL" "$PASSWORD" "$KEY" \
    > .rolecall-admin.txt)
  cat <<MSG

rolecall is starting on http://$HOST:$PORT  (database: $ROLECALL_DATABASE_URL)

Sign in as the organization's admin (in a browser: http://$HOST:$PORT/login):
  email:    $ADMIN_EMAIL
  password: $PASSWORD
  API key:  $KEY
Shown this once: they are kept in $PWD/.rolecall-admin.txt (mode 600, readable only by you).

Try it:
  curl -u api:$KEY http://$HOST:$PORT/api/v1/viewer
  ROLECALL_BASE_URL=http://$HOST:$PORT ROLECALL_API_KEY=$KEY .venv/bin/python -c 'from rolecall import Api; print(Api().viewer())'
  API reference: http://$HOST:$PORT/api/v1/docs

MSG
else
  cat <<MSG

rolecall is starting on http://$HOST:$PORT  (database: $ROLECALL_DATABASE_URL)

The admin's email, password and API key are in $PWD/.rolecall-admin.txt (mode 600), made on
the first run (in a browser: http://$HOST:$PORT/login). Try it:
  curl -u "api:\$(sed -n 's/^api_key=//p' .rolecall-admin.txt)" http://$HOST:$PORT/api/v1/viewer
  API reference: http://$HOST:$PORT/api/v1/docs

MSG
fi
exec .venv/bin/rolecall serve --host "$HOST" --port "$PORT"
