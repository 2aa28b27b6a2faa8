#!/usr/bin/env bash
# The console on a busy install (issue 15): every page's server time with
# 10,000 runs (5 steps and an instance each), 1,000 model versions and a
# bucket folder of 100,000 objects. The floor is 200 ms a page.
#
#   bash bench/console.sh
#
# Environment: RUNS (10000), VERSIONS (1000), OBJECTS (100000), REPS (5),
# KEEP=1 keeps the temp directory.
#
# `tread up` runs on a fresh data dir; the runs, instances and versions are
# written straight into its SQLite catalog (running 10,000 pipelines would
# take hours and time nothing the pages do), the objects as files in the
# bucket's directory, as a NAS user would put them there. Each page is asked
# REPS times over loopback with the session cookie; the median of curl's
# total time is printed (loopback adds well under a millisecond). The
# bucket's folder is listed once before timing, so the store has the
# objects' ETags: its first listing reads every file, as S3 clients' first
# listing of a NAS share does (see issue 16's cold LIST).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-10000}
VERSIONS=${VERSIONS:-1000}
OBJECTS=${OBJECTS:-100000}
REPS=${REPS:-5}
say() { printf '[console.sh] %s\n' "$*" >&2; }

cd "$REPO"
say "building the release binary"
cargo build --release -p tread
TREAD=$REPO/target/release/tread
WORK=$(mktemp -d "$REPO/target/bench-console.XXXXXX")
DATA=$WORK/data
cleanup() {
    [ -n "${UP_PID:-}" ] && kill "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null || true
    [ "${KEEP:-0}" = 1 ] && say "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API_PORT=$(free_port)
S3_PORT=$(free_port)
"$TREAD" --data-dir "$DATA" up --listen "127.0.0.1:$API_PORT" --s3-listen "127.0.0.1:$S3_PORT" \
    >"$WORK/up.log" 2>&1 &
UP_PID=$!
API=http://127.0.0.1:$API_PORT
for _ in $(seq 100); do curl -sf "$API/ping" >/dev/null 2>&1 && break; sleep 0.1; done
TOKEN=$(cat "$DATA/api-token")

curl -sf -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d '{"name": "big"}' "$API/api/buckets" >/dev/null
cat >"$WORK/busy.toml" <<'TOML'
name = "busy"
data = "s3://big/img"
schedule = "rate(1 day)"
[[steps]]
kind = "train"
out = "s3://big/models/"
[[steps]]
kind = "evaluate"
[[steps]]
kind = "gate"
min_accuracy = 0.5
[[steps]]
kind = "register"
[[steps]]
kind = "deploy"
endpoint = "busy-ep"
TOML
curl -sf -H "Authorization: Bearer $TOKEN" --data-binary @"$WORK/busy.toml" "$API/api/pipelines" >/dev/null
curl -sf -H "Authorization: Bearer $TOKEN" -X POST "$API/api/pipelines/busy/pause" >/dev/null

say "writing $RUNS runs, their steps and instances, and $VERSIONS model versions"
python3 - "$DATA/tread.db" "$RUNS" "$VERSIONS" <<'PY'
import json, sqlite3, sys
db, runs, versions = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = sqlite3.connect(db, timeout=30)
at = "2026-11-01T03:00:00Z"
c.executemany(
    "INSERT INTO pipeline_runs (id, pipeline, trigger, state, created, started, finished, model_version, daemon)"
    " VALUES (?, 'busy', 'schedule', ?, ?, ?, ?, ?, 'bench')",
    [(i, "succeeded" if i % 7 else "gated", at, at, at, min(i, versions)) for i in range(1, runs + 1)])
steps = ["train", "evaluate", "gate", "register", "deploy"]
c.executemany(
    "INSERT INTO pipeline_run_steps (run_id, idx, kind, state, started, finished, message)"
    " VALUES (?, ?, ?, 'succeeded', ?, ?, 'done')",
    [(i, k + 1, kind, at, at) for i in range(1, runs + 1) for k, kind in enumerate(steps)])
c.executemany(
    "INSERT INTO pipeline_instances (run_id, backend, type, hourly_price, state, workdir, started, stopped,"
    " billed_seconds, cost, idle_seconds) VALUES (?, 'local', 'test-1cpu', 3.6, 'stopped', '/tmp', ?, ?, 90, 0.09, 1)",
    [(i, at, at) for i in range(1, runs + 1)])
metrics = json.dumps({"images": 356, "accuracy": 0.9, "classes": [
    {"name": n, "precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 178} for n in ("defective", "good")],
    "confusion": [[160, 18], [18, 160]]})
c.executemany(
    "INSERT INTO pipeline_models (name, version, pipeline, run_id, uri, artifact_version, accuracy, metrics,"
    " dataset_digest, production, created, settings) VALUES ('busy', ?, 'busy', ?, ?, ?, ?, ?, 'sha256:00', ?, ?, '{}')",
    [(v, v, f"s3://big/models/v{v}/model.tar.gz", f"v{v}", 0.8 + (v % 100) / 1000, metrics,
      v == versions, at) for v in range(1, versions + 1)])
c.commit()
PY

say "writing $OBJECTS objects into one folder of bucket big"
python3 - "$DATA/volumes/default/big/img" "$OBJECTS" <<'PY'
import os, sys
folder, count = sys.argv[1], int(sys.argv[2])
os.makedirs(folder, exist_ok=True)
for i in range(count):
    with open(os.path.join(folder, f"{i:06d}.jpg"), "wb") as f:
        f.write(b"x" * 64)
PY

JAR=$WORK/cookies
curl -sf -c "$JAR" -o /dev/null --data-urlencode "token=$TOKEN" --data-urlencode "next=/console/" \
    "$API/console/sign-in"
page_ms() {
    local times=()
    for _ in $(seq "$REPS"); do
        times+=("$(curl -s -b "$JAR" -o /dev/null -w '%{http_code} %{time_total}' "$API$1")")
    done
    printf '%s\n' "${times[@]}" | python3 -c '
import statistics, sys
rows = [line.split() for line in sys.stdin if line.strip()]
codes = {r[0] for r in rows}
ms = statistics.median(float(r[1]) * 1000 for r in rows)
print("%8.1f ms  %s" % (ms, " ".join(sorted(codes))))'
}
COLD=$(curl -s -b "$JAR" -o /dev/null -w '%{time_total}' "$API/console/buckets/big?prefix=img%2F")
say "the folder's first page, listed cold (the store reads every object's ETag): $COLD s"

grep -m1 -o 'avx512[a-z]*' /proc/cpuinfo >/dev/null && FLAGS=avx512 || FLAGS=avx2
say "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') ($FLAGS), $(nproc) cores"
echo "page (median of $REPS; $RUNS runs, $VERSIONS versions, $OBJECTS objects in one folder)"
for path in /console/ /console/pipelines /console/pipelines/busy /console/runs "/console/runs/$RUNS" \
    /console/models "/console/models/busy/$VERSIONS" \
    "/console/models/compare?v=busy%2F$((VERSIONS - 1))&v=busy%2F$VERSIONS" \
    /console/endpoints /console/instances /console/schedules?expr=rate%281+day%29 \
    /console/buckets "/console/buckets/big?prefix=img%2F" \
    /console/access; do
    printf '%-60s %s\n' "$path" "$(page_ms "$path")"
done
