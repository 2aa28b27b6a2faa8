#!/usr/bin/env bash
# The pipeline benchmark (issue 5), in one run on this machine:
#   1. scheduler overhead: trigger → first step start, for runs triggered
#      through the API (N of them) and for runs fired by an at() schedule;
#   2. instance idle time: last step's end → instance stopped (floor 5 s);
#   3. `tread demo` wall time on a fresh data dir (floor 3 min).
# The recipe's equivalents are an EventBridge rule → Lambda → a notebook
# instance that boots in minutes, and a cron job that stops the instance up
# to 5 minutes after the work.
#
#   bash bench/pipeline.sh            # ~2 min on 2 cores
#
# Environment: RUNS (API-triggered runs, default 20), PORT (19300; uses
# PORT and PORT+1), KEEP=1 keeps the temp directory. See bench/RESULTS.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-20}
PORT=${PORT:-19300}
API="http://127.0.0.1:$PORT"
say() { printf '[pipeline.sh] %s\n' "$*" >&2; }

cd "$REPO"
for p in "$PORT" "$((PORT + 1))"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then say "port $p is busy: set PORT"; exit 2; fi
done
say "building the release binary"
cargo build --release -p tread
TREAD=$REPO/target/release/tread
WORK=$(mktemp -d)
# Open as a home directory is: steps of the local backend run as `nobody`
# under root and must reach their working directory and the tread binary.
chmod 755 "$WORK"
UP_PID=
cleanup() {
    [ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null || true
    [ "${KEEP:-}" = 1 ] && say "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
export TREAD_DATA_DIR=$WORK/data TREAD_SERVER=$API TREAD_LOG=warn

say "tread up on $API"
"$TREAD" up --listen "127.0.0.1:$PORT" --s3-listen "127.0.0.1:$((PORT + 1))" 2>"$WORK/up.log" &
UP_PID=$!
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done

cat >"$WORK/quick.toml" <<'EOF'
name = "quick"
data = "/nonexistent"
[[steps]]
kind = "run"
command = "true"
EOF
"$TREAD" pipeline apply "$WORK/quick.toml" >/dev/null
say "$RUNS runs triggered through the API, one after another"
for _ in $(seq "$RUNS"); do "$TREAD" pipeline run quick --wait >/dev/null; done

say "3 runs fired by at() schedules"
for n in 1 2 3; do
    at=$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%S)
    printf 'name = "timed%s"\ndata = "/nonexistent"\nschedule = "at(%s)"\n[[steps]]\nkind = "run"\ncommand = "true"\n' "$n" "$at" >"$WORK/timed$n.toml"
    "$TREAD" pipeline apply "$WORK/timed$n.toml" >/dev/null
    echo "$at" >"$WORK/timed$n.at"
done
sleep 5

TOKEN=$(cat "$TREAD_DATA_DIR/api-token")
curl -sf -H "Authorization: Bearer $TOKEN" "$API/api/runs?limit=1000" >"$WORK/runs.json"
kill "$UP_PID"; wait "$UP_PID" 2>/dev/null || true; UP_PID=

say "tread demo on a fresh data dir"
start=$(date +%s.%N)
"$TREAD" --data-dir "$WORK/demo" demo --listen "127.0.0.1:$PORT" --s3-listen "127.0.0.1:$((PORT + 1))" >"$WORK/demo.out"
demo_seconds=$(echo "$(date +%s.%N) - $start" | bc)
demo_idle=$(grep -o 'stopped [0-9.]* s after the last step' "$WORK/demo.out" | grep -o '[0-9.]*' | head -1)

python3 - "$WORK" "$demo_seconds" "$demo_idle" <<'EOF'
import json, statistics, sys
from datetime import datetime, timezone

work, demo_seconds, demo_idle = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
runs = json.load(open(f"{work}/runs.json"))

def t(s):
    # RFC 3339 with nanoseconds; Python takes microseconds.
    s = s.rstrip("Z")
    if "." in s:
        head, frac = s.split(".")
        s = f"{head}.{frac[:6]}"
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc)

def ms(a, b):
    return (t(b) - t(a)).total_seconds() * 1000

api = [r for r in runs if r["pipeline"] == "quick"]
trigger_to_step = [ms(r["created"], r["steps"][0]["started"]) for r in api]
idle = [r["instance"]["idle_seconds"] for r in api]
timed = [r for r in runs if r["pipeline"].startswith("timed")]
scheduled = []
for r in timed:
    at = open(f"{work}/{r['pipeline']}.at").read().strip()
    scheduled.append(ms(at + "Z", r["steps"][0]["started"]))

print(f"API trigger → first step start: median {statistics.median(trigger_to_step):.1f} ms, "
      f"max {max(trigger_to_step):.1f} ms over {len(api)} runs (instance start included)")
print(f"at() fire time → first step start: median {statistics.median(scheduled):.0f} ms, "
      f"max {max(scheduled):.0f} ms over {len(timed)} runs (the scheduler ticks every 100 ms)")
print(f"instance idle after the last step: median {statistics.median(idle) * 1000:.2f} ms, "
      f"max {max(idle) * 1000:.2f} ms over {len(idle)} runs; demo's training run {demo_idle * 1000:.1f} ms; "
      f"ratio to the 5 s floor {max(idle + [demo_idle]) / 5:.5f}")
print(f"tread demo wall time: {demo_seconds:.1f} s; ratio to the 3 min floor {demo_seconds / 180:.2f}")
EOF
grep -E 'model |instance ' "$WORK/demo.out" | sed 's/^/  demo: /'
