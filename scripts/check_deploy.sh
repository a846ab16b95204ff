#!/usr/bin/env bash
# CI: Django's deployment checklist (`manage.py check --deploy`) against the production settings,
# every warning an error. The environment is production-like and self-contained: DEBUG off, a long
# random SECRET_KEY, a real host name, PostgreSQL and Redis URLs (the checks connect to neither)
# and none of the plain-HTTP switches the test suite sets. NAME=value arguments are added to the
# environment (e.g. `SECURE_SSL_REDIRECT=0` to see the check fail).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}

var_dir=$(mktemp -d)
trap 'rm -rf "$var_dir"' EXIT
secret_key=$("$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(64))')

env -i \
  PATH="$PATH" HOME="${HOME:-/tmp}" LANG=C.UTF-8 \
  DEBUG=0 \
  SECRET_KEY="$secret_key" \
  ALLOWED_HOSTS=moverz.example.com \
  DATABASE_URL=postgres://moverz@db.invalid:5432/moverz \
  REDIS_URL=redis://redis.invalid:6379/0 \
  MOVERZ_VAR_DIR="$var_dir" \
  "$@" \
  "$PYTHON" manage.py check --deploy --fail-level WARNING
