#!/usr/bin/env bash
# The demo: the sandbox (both emulators, seeded with messy data), the default mapping, one full
# cycle, the gaps it found and the funnel report, then a scripted change on each side and a
# second, incremental cycle that carries them across. Uses only the settings file the sandbox
# writes. Then the operator's web console on the demo's store, until Ctrl-C: DEMO_CONSOLE=0
# skips it (without a terminal on stdin it is skipped unless DEMO_CONSOLE=1), and
# DEMO_CONSOLE_PORT picks its port (default: a free one).
set -euo pipefail
cd "$(dirname "$0")/.."
state=.stagesync/demo
log="$state/sandbox.log"
rm -rf "$state"
mkdir -p "$state"
bin=.venv/bin
"$bin/stagesync" sandbox start --state-dir "$state" --salesforce-port 0 --hubspot-port 0 \
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
env_file="$state/sandbox.env"
mapping="$state/stagesync.yaml"
db="sqlite:///$state/state.db"
step() { echo; echo "== $*"; }
step "stagesync check"
"$bin/stagesync" check --env-file "$env_file"
step "stagesync init && stagesync mapping validate --live"
"$bin/stagesync" init --mapping "$mapping" --force
"$bin/stagesync" mapping validate "$mapping" --live --env-file "$env_file"
step "stagesync sync once   (the first, full cycle)"
"$bin/stagesync" sync once --mapping "$mapping" --env-file "$env_file" --db "$db"
step "stagesync gaps"
"$bin/stagesync" gaps --db "$db" --limit 3
step "stagesync report   (the funnel both tools share; charts in $state/report.html)"
"$bin/stagesync" report --mapping "$mapping" --db "$db" --html "$state/report.html"
step "a change on each side"
sleep 1
"$bin/python" scripts/demo_change.py "$env_file" "$db"
sleep 1
step "stagesync sync once --dry-run   (what the next cycle would write)"
"$bin/stagesync" sync once --dry-run --mapping "$mapping" --env-file "$env_file" --db "$db" \
  | grep -E "VP Revenue|Lisbon|nothing written" || true
step "stagesync sync once   (the second, incremental cycle)"
"$bin/stagesync" sync once --mapping "$mapping" --env-file "$env_file" --db "$db"
step "stagesync status"
"$bin/stagesync" status --db "$db"
step "stagesync console   (the operator's web console on this store)"
if [ "${DEMO_CONSOLE:-}" = 0 ] || { [ -z "${DEMO_CONSOLE:-}" ] && [ ! -t 0 ]; }; then
  echo "skipped (DEMO_CONSOLE=0, or no terminal on stdin; DEMO_CONSOLE=1 starts it anyway)"
else
  echo "open the URL below in a browser; Ctrl-C stops the console and the sandbox"
  "$bin/stagesync" console --db "$db" --mapping "$mapping" --env-file "$env_file" \
    --port "${DEMO_CONSOLE_PORT:-0}" || true
fi
