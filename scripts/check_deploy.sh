#!/usr/bin/env bash
# CI: Django's deployment checklist (`manage.py check --deploy`) against the production settings,
# every warning an error. The environment is production-like but self-contained: DEBUG off, a long
# random SECRET_KEY, a real host name, a PostgreSQL URL (checks do not connect to it) and none of
# the plain-HTTP switches the test suite sets. Extra variables given to the script win.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}

secret_key=$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(64))')
exec env -i \
  PATH="$PATH" HOME="${HOME:-/tmp}" LANG=C.UTF-8 \
  DEBUG=0 \
  SECRET_KEY="$secret_key" \
  ALLOWED_HOSTS=moverz.example.com \
  DATABASE_URL=postgres://moverz@db.invalid:5432/moverz \
  REDIS_URL=redis://redis.invalid:6379/0 \
  MOVERZ_VAR_DIR="$(mktemp -d)" \
  "$@" \
  "$PYTHON" manage.py check --deploy --fail-level WARNING
