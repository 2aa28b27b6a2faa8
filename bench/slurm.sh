#!/usr/bin/env bash
# Runs on a Slurm cluster against runs on this machine (issue 13), in one
# run: for a pipeline whose one step is `true`, on the local backend and on
# a one-node Slurm cluster started here (.ci/slurm-cluster):
#   1. trigger → first step start (the instance's start included: for Slurm
#      the job's submission, its queue and its allocation);
#   2. last step end → instance stopped (for Slurm: the job cancelled and
#      gone from the controller's queue).
#
#   bash bench/slurm.sh            # ~1 min on 2 cores
#
# Environment: RUNS (runs per backend, default 10), PORT (19310; uses PORT
# and PORT+1), KEEP=1 keeps the temp directory. Needs slurm-wlm
# (.ci/run installs it). See bench/RESULTS.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-10}
PORT=${PORT:-19310}
API="http://127.0.0.1:$PORT"
say() { printf '[slurm.sh] %s\n' "$*" >&2; }

cd "$REPO"
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
    "$REPO/.ci/slurm-cluster" stop "$WORK/slurm" || true
    [ "${KEEP:-}" = 1 ] && say "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
mkdir "$WORK/slurm"
say "a one-node Slurm cluster"
export "$("$REPO/.ci/slurm-cluster" start "$WORK/slurm")"
export TREAD_DATA_DIR=$WORK/data TREAD_SERVER=$API TREAD_LOG=warn

say "tread up on $API"
"$TREAD" up --listen "127.0.0.1:$PORT" --s3-listen "127.0.0.1:$((PORT + 1))" 2>"$WORK/up.log" &
UP_PID=$!
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done

for backend in local slurm; do
    printf 'name = "on%s"\ndata = "/nonexistent"\n[instance]\nbackend = "%s"\n[[steps]]\nkind = "run"\ncommand = "true"\n' \
        "$backend" "$backend" >"$WORK/$backend.toml"
    "$TREAD" pipeline apply "$WORK/$backend.toml" >/dev/null
    say "$RUNS runs on the $backend backend, one after another"
    for _ in $(seq "$RUNS"); do "$TREAD" pipeline run "on$backend" --wait >/dev/null; done
done

TOKEN=$(cat "$TREAD_DATA_DIR/api-token")
curl -sf -H "Authorization: Bearer $TOKEN" "$API/api/runs?limit=1000" >"$WORK/runs.json"

python3 - "$WORK" <<'PY'
import json, statistics, sys
from datetime import datetime, timezone

runs = json.load(open(f"{sys.argv[1]}/runs.json"))

def t(s):
    # RFC 3339 with nanoseconds; Python takes microseconds.
    s = s.rstrip("Z")
    if "." in s:
        head, frac = s.split(".")
        s = f"{head}.{frac[:6]}"
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc)

def ms(a, b):
    return (t(b) - t(a)).total_seconds() * 1000

for backend in ("local", "slurm"):
    mine = [r for r in runs if r["pipeline"] == f"on{backend}" and r["state"] == "succeeded"]
    start = [ms(r["created"], r["steps"][0]["started"]) for r in mine]
    gone = [ms(r["steps"][-1]["finished"], r["instance"]["stopped"]) for r in mine]
    queued = [r["instance"]["queued_seconds"] * 1000 for r in mine]
    print(f"{backend:5s}: trigger → first step start median {statistics.median(start):7.1f} ms "
          f"(max {max(start):7.1f}); last step end → instance stopped median "
          f"{statistics.median(gone):7.1f} ms (max {max(gone):7.1f}); queued median "
          f"{statistics.median(queued):6.1f} ms; {len(mine)} runs")
PY
