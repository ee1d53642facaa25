#!/usr/bin/env bash
# Install everything the tests need (PostgreSQL included) and run the whole suite:
# lint, import contracts, then the tests on SQLite and those that reach the database again on
# PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "== installing PostgreSQL (Debian package; the tests start their own throwaway cluster)"
  as_root apt-get update -qq
  # Keep the package from starting a system-wide cluster: the harness runs its own.
  as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    postgresql >/dev/null
  as_root rm -f /usr/sbin/policy-rc.d
fi

# The LDAP tests start their own throwaway OpenLDAP servers (tests/idp/slapd/start.sh): install
# the package without a system instance (no service start, no default directory).
if [ ! -x /usr/sbin/slapd ] || ! command -v ldapadd >/dev/null 2>&1; then
  echo "== installing OpenLDAP (slapd, ldap-utils)"
  as_root apt-get update -qq
  as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
  echo "slapd slapd/no_configuration boolean true" | as_root debconf-set-selections
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd ldap-utils >/dev/null
  as_root rm -f /usr/sbin/policy-rc.d
fi

# The browser tests drive Debian's Chromium through Playwright (which never downloads one).
if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Chromium"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
fi

# The OIDC provider the identity tests run against is node's oidc-provider (needs node >= 20).
if ! command -v npm >/dev/null 2>&1; then
  echo "error: node >= 20 with npm is needed for the identity-provider tests" >&2
  exit 1
fi
(cd tests/idp/oidc_provider && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

echo "== lint"
.venv/bin/ruff check src tests bench
.venv/bin/lint-imports --no-cache
.venv/bin/mypy src/rolecall/authz src/rolecall/identity src/rolecall/federation
echo "== tests on SQLite"
if [ $# -eq 0 ]; then
  # The whole suite (no arguments) also measures branch coverage of the access-deciding
  # packages, which must stay at 100% (STYLE: authz, identity, federation), over the tests of
  # that code and of the surfaces that call it (the REST API, sign-in, the wandb SDK's). The
  # other tests run in a pass of their own, untraced: coverage's tracer makes the code it
  # watches run about 1.5 times as long, and the suite must stay quick.
  covering=(tests/unit tests/api tests/idp tests/wandb)
  echo "-- with branch coverage: ${covering[*]}"
  .venv/bin/pytest -q -n 2 -p no:cacheprovider --db sqlite \
    --cov=rolecall.authz --cov=rolecall.identity --cov=rolecall.federation --cov-branch \
    --cov-report=term-missing:skip-covered --cov-fail-under=100 "${covering[@]}"
  echo "-- the other tests"
  .venv/bin/pytest -q -n 2 -p no:cacheprovider --db sqlite "${covering[@]/#/--ignore=}"
else
  .venv/bin/pytest -q -n 2 -p no:cacheprovider --db sqlite "$@"
fi
echo "== tests on PostgreSQL"
# Only the tests that reach the database run again (tests/conftest.py: BACKEND_FIXTURES).
.venv/bin/pytest -q -n 2 -p no:cacheprovider --db postgres "$@"
