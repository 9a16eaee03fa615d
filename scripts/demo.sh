#!/usr/bin/env bash
# The demo: start the sandbox (both emulators, seeded), then run the product against it using
# only the settings file the sandbox writes. The sandbox is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
state=.stagesync/demo
log="$state/sandbox.log"
mkdir -p "$state"
.venv/bin/stagesync sandbox start --state-dir "$state" --salesforce-port 0 --hubspot-port 0 \
  >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  grep -q "sandbox ready" "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "the sandbox exited early" >&2; exit 1; }
  sleep 0.2
done
grep -q "sandbox ready" "$log" || { cat "$log"; echo "the sandbox did not start" >&2; exit 1; }
cat "$log"
echo
echo "== stagesync check --env-file $state/sandbox.env"
.venv/bin/stagesync check --env-file "$state/sandbox.env"
