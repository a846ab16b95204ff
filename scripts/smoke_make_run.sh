#!/usr/bin/env bash
# CI step: the `make run` path on its own (SQLite + private Redis), long enough to take one photo
# to DONE through the API, then Ctrl-C, and check that everything it started has stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
var_dir=$(mktemp -d)
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log="$var_dir/run.log"
cleanup() { [ -n "${pgid:-}" ] && kill -KILL -- "-$pgid" 2>/dev/null || true; }
trap cleanup EXIT

env -u DATABASE_URL -u REDIS_URL -u DEBUG -u SECRET_KEY MOVERZ_VAR_DIR="$var_dir" PORT="$port" \
  setsid make run >"$log" 2>&1 &
pgid=$!
for _ in $(seq 1 120); do grep -q "API token:" "$log" && break; sleep 0.5; done
token=$(grep "API token:" "$log" | awk '{print $3}')
[ -n "$token" ] || { echo "make run did not start:"; tail -50 "$log"; exit 1; }
base="http://127.0.0.1:$port"
auth="Authorization: Token $token"
json() { .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)$1)"; }

curl -sf "$base/healthz" | grep -q '"ok"'
project=$(curl -sf -H "$auth" -H 'Content-Type: application/json' -d '{"name":"Smoke"}' "$base/api/projects" | json '["id"]')
.venv/bin/python -c "from PIL import Image; Image.new('RGB', (640, 480), (90, 140, 200)).save('$var_dir/room.jpg')"
photo=$(curl -sf -H "$auth" -F image=@"$var_dir/room.jpg" -F projectId="$project" -F enqueue=true "$base/api/photos" | json '["photo"]["id"]')
status=""
for _ in $(seq 1 60); do
  status=$(curl -sf -H "$auth" "$base/api/photos/$photo" | json '["photo"]["status"]')
  [ "$status" = DONE ] || [ "$status" = ERROR ] && break
  sleep 0.5
done
[ "$status" = DONE ] || { echo "photo ended $status"; tail -50 "$log"; exit 1; }
for _ in $(seq 1 40); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" "$base/api/projects/$project/inventory")
  [ "$code" = 200 ] && break
  sleep 0.5
done
[ "$code" = 200 ] || { echo "no inventory snapshot"; tail -50 "$log"; exit 1; }

kill -INT -- "-$pgid"
for _ in $(seq 1 90); do grep -q "\[run\] stopped" "$log" && break; sleep 0.5; done
grep -q "\[run\] stopped" "$log" || { echo "make run did not stop on Ctrl-C"; tail -30 "$log"; exit 1; }
sleep 1
if pgrep -f "$var_dir" >/dev/null; then echo "processes left behind:"; pgrep -af "$var_dir"; exit 1; fi
echo "make run smoke: photo $photo DONE, inventory built, clean shutdown"
