#!/usr/bin/env bash
# Beyond one machine (issue 12), in one run on this machine:
#   1. the store with 1 gateway and with 3 gateways over one volume and one
#      PostgreSQL catalog (the 3 behind nginx as the load balancer the README
#      shows): PUT/GET of 4 KiB (16 clients), of 1 MiB, LIST of 10,000 keys.
#      One box: this shows the cost of coordination, not scale. Then an
#      access change by the CLI until all three gateways apply it (3 times).
#   2. catalog-bound operations on SQLite and on PostgreSQL: PutObject of
#      4 KiB (one gateway, 16 clients), CreateUser (one `tread s3 user
#      create` process each, start included) and run creation through the
#      API (POST → the run's row, one after another).
#   3. two `tread up` on one PostgreSQL catalog: the scheduler's lease holder
#      SIGKILLed until the other holds the lease (3 times), and a deploy on
#      one daemon until the other answers with the new model (3 times).
#
#   bash bench/beyond.sh        # ~3 min on 2 cores after the build
#
# Environment: PORT (first of 10 ports from 19400), KEEP=1 keeps the temp
# directory. Needs PostgreSQL from the distribution's packages (.ci/run
# installs it) and nginx (installed here as bench/store.sh does).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PORT=${PORT:-19400}
say() { printf '[beyond.sh] %s\n' "$*" >&2; }

cd "$REPO"
say "building release binaries"
cargo build --release -p tread -p tread-bench-store
TREAD=$REPO/target/release/tread
BENCH=$REPO/target/release/tread-bench-store
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then
    say "installing nginx (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >&2 ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >&2
fi

WORK=$(mktemp -d "$REPO/target/bench-beyond.XXXXXX")
# Apart: the server runs as the postgres user, who may not enter $WORK.
PGDIR=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}" $(cat "$WORK"/d*.pid 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    .ci/pg-cluster stop "$PGDIR" 2>/dev/null || true
    rm -rf "$PGDIR"
    [ "${KEEP:-}" = 1 ] && say "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT

PG=$(.ci/pg-cluster start "$PGDIR" "$((PORT + 9))")
export TREAD_LOG=warn
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; say "nothing on port $1"; return 1; }
now() { date +%s.%N; }
# Waits until the command "$@" succeeds, 60 s at most.
wait_for() { for _ in $(seq 1200); do "$@" && return 0; sleep 0.05; done; say "gave up waiting for: $*"; return 1; }
took_lease() { [ "$(grep -c "this daemon fires the schedules" "$1" || true)" -gt "$2" ]; }
answers() { curl -s -H 'content-type: image/jpeg' --data-binary "@$img" "$api1/endpoints/shared/invocations" | grep -q "\"model_version\":\"$1\""; }

echo "date:   $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
echo "cpu:    $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "postgres: $("$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/postgres" --version)"

# --- 1. one gateway against three behind nginx ------------------------------
say "1. the store: 1 gateway, then 3 behind nginx, one volume, one PostgreSQL catalog"
t() { "$TREAD" --database-url "$PG" --data-dir "$WORK/gw0" "$@"; }
t s3 volume create benchvol --path "$WORK/vol" >/dev/null
t s3 bucket create bench --volume benchvol >/dev/null
KEYS=$(t s3 user create benchuser --json)
t s3 group create benchgroup --users benchuser --policy FullAccess >/dev/null
export BENCH_ACCESS_KEY_ID BENCH_SECRET_ACCESS_KEY
BENCH_ACCESS_KEY_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["access_key_id"])' "$KEYS")
BENCH_SECRET_ACCESS_KEY=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["secret_access_key"])' "$KEYS")
for n in 0 1 2; do
    "$TREAD" --database-url "$PG" --data-dir "$WORK/gw$n" s3 serve --listen "127.0.0.1:$((PORT + n))" 2>"$WORK/gw$n.log" &
    PIDS+=($!)
    wait_port "$((PORT + n))"
done
mkdir -p "$WORK/nginx-tmp"
USER_LINE=""
[ "$(id -u)" -eq 0 ] && USER_LINE="user $(id -un) $(id -gn);"
cat >"$WORK/nginx.conf" <<CONF
$USER_LINE
daemon off;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx-tmp/body;
    proxy_temp_path $WORK/nginx-tmp/proxy;
    fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
    scgi_temp_path $WORK/nginx-tmp/scgi;
    upstream tread_s3 {
        server 127.0.0.1:$PORT; server 127.0.0.1:$((PORT + 1)); server 127.0.0.1:$((PORT + 2));
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$((PORT + 3));
        client_max_body_size 0;
        proxy_request_buffering off;
        location / {
            proxy_pass http://tread_s3;
            proxy_set_header Host \$http_host;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
"$NGINX" -p "$WORK" -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf" &
PIDS+=($!)
wait_port "$((PORT + 3))"
mkdir -p "$WORK/raw"
store_bench() {
    "$BENCH" --endpoint "$1" --bucket bench --volume "$WORK/vol" --raw-dir "$WORK/raw" \
        --reps 5 --small-secs 4 --only "$2"
}
for phase in small mib1 list; do
    store_bench "http://127.0.0.1:$PORT" "$phase" >"$WORK/one-$phase.json"
    store_bench "http://127.0.0.1:$((PORT + 3))" "$phase" >"$WORK/three-$phase.json"
done
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
def load(name):
    return json.load(open(f"{work}/{name}.json"))
def med(figure):
    return figure["median"] if isinstance(figure, dict) else figure
print("\n| operation | 1 gateway | 3 gateways behind nginx |\n|---|---|---|")
for phase, rows in [("small", [("PUT 4 KiB, 16 clients (ops/s)", "put_tread_aws_sdk"), ("GET 4 KiB, 16 clients (ops/s)", "get_tread_aws_sdk")]),
                    ("mib1", [("PUT 1 MiB (MB/s)", "put_tread_presigned_reqwest"), ("GET 1 MiB (MB/s)", "get_tread_presigned_reqwest")]),
                    ("list", [("LIST 10,000 keys, warm (ms)", "tread_warm")])]:
    one, three = load(f"one-{phase}"), load(f"three-{phase}")
    for label, key in rows:
        print(f"| {label} | {med(one[key]):.1f} | {med(three[key]):.1f} |")
PY
# An access change made by the CLI (a user added to the bucket's group, then
# removed) until every gateway answers the user's listing with the new status.
status_on() { # $1: port; the user's keys in ADMIN_KEY / ADMIN_SECRET
    curl -s -o /dev/null -w "%{http_code}" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$ADMIN_KEY:$ADMIN_SECRET" "http://127.0.0.1:$1/bench?list-type=2&max-keys=1"
}
all_answer() { for n in 0 1 2; do [ "$(status_on "$((PORT + n))")" = "$1" ] || return 1; done; }
for round in 1 2 3; do
    KEYS=$(t s3 user create "admin$round" --json)
    ADMIN_KEY=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["access_key_id"])' "$KEYS")
    ADMIN_SECRET=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["secret_access_key"])' "$KEYS")
    wait_for all_answer 403
    start=$(now)
    t s3 group add-user benchgroup "admin$round" >/dev/null
    wait_for all_answer 200
    granted=$(now)
    t s3 group remove-user benchgroup "admin$round" >/dev/null
    wait_for all_answer 403
    echo "grant_s $(echo "$granted - $start" | bc -l)" >>"$WORK/access.txt"
    echo "revoke_s $(echo "$(now) - $granted" | bc -l)" >>"$WORK/access.txt"
done
python3 - "$WORK/access.txt" <<'PY'
import sys
figures = {"grant_s": [], "revoke_s": []}
for line in open(sys.argv[1]):
    what, value = line.split()
    figures[what].append(float(value))
print("\n| access change by the CLI → all 3 gateways answer accordingly | runs | each (s) | floor |\n|---|---|---|---|")
for what, label in [("grant_s", "user added to the bucket's group → 200 everywhere"),
                    ("revoke_s", "user removed from the group → 403 everywhere")]:
    print(f"| {label} | {len(figures[what])} | {', '.join(f'{v:.2f}' for v in figures[what])} | 1 s |")
PY
for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
wait 2>/dev/null || true
PIDS=()

# --- 2. catalog-bound operations on SQLite and PostgreSQL -------------------
say "2. catalog-bound operations on SQLite and on PostgreSQL"
put_small() { # $1: label, $2: data dir, then the URL arguments: one gateway's PUT 4 KiB
    local label=$1 data=$2 port=$((PORT + 8)) keys
    shift 2
    "$TREAD" "$@" --data-dir "$data" s3 volume create "ops-$label" --path "$WORK/vol-$label" >/dev/null
    "$TREAD" "$@" --data-dir "$data" s3 bucket create "ops-$label" --volume "ops-$label" >/dev/null
    keys=$("$TREAD" "$@" --data-dir "$data" s3 user create "ops$label" --json)
    "$TREAD" "$@" --data-dir "$data" s3 group create "ops-$label" --users "ops$label" --policy FullAccess >/dev/null
    "$TREAD" "$@" --data-dir "$data" s3 serve --listen "127.0.0.1:$port" 2>"$WORK/ops-gw-$label.log" &
    PIDS+=($!)
    wait_port "$port"
    BENCH_ACCESS_KEY_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["access_key_id"])' "$keys") \
        BENCH_SECRET_ACCESS_KEY=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["secret_access_key"])' "$keys") \
        "$BENCH" --endpoint "http://127.0.0.1:$port" --bucket "ops-$label" --volume "$WORK/vol-$label" \
        --raw-dir "$WORK/raw" --reps 5 --small-secs 4 --only small >"$WORK/ops-small-$label.json"
    python3 -c 'import json,sys; f=json.load(open(sys.argv[1]))["put_tread_aws_sdk"]; print(sys.argv[2], "put_4k_ops", f["median"] if isinstance(f, dict) else f)' \
        "$WORK/ops-small-$label.json" "$label"
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
    unset 'PIDS[-1]'
}
catalog_ops() { # $1: label, $2: --database-url or empty
    local data=$WORK/ops-$1 url=(${2:+--database-url "$2"}) api=$((PORT + 4))
    local users=20 runs=20
    local start end
    start=$(now)
    for n in $(seq $users); do "$TREAD" "${url[@]}" --data-dir "$data" s3 user create "u$1$n" >/dev/null; done
    end=$(now)
    echo "$1 create_user_ms $(echo "($end - $start) * 1000 / $users" | bc -l)"
    put_small "$1" "$data" "${url[@]}"
    "$TREAD" "${url[@]}" --data-dir "$data" up --listen "127.0.0.1:$api" --s3-listen "127.0.0.1:$((api + 1))" 2>"$WORK/up-$1.log" &
    PIDS+=($!)
    wait_port "$api"
    printf 'name = "quick"\ndata = "/nonexistent"\n[[steps]]\nkind = "run"\ncommand = "true"\n' >"$WORK/quick.toml"
    TREAD_SERVER="http://127.0.0.1:$api" "$TREAD" --data-dir "$data" pipeline apply "$WORK/quick.toml" >/dev/null
    local token
    token=$(cat "$data/api-token")
    for _ in $(seq $runs); do
        curl -s -o /dev/null -w '%{time_total}\n' -X POST -H "Authorization: Bearer $token" \
            "http://127.0.0.1:$api/api/pipelines/quick/runs"
        sleep 0.3 # one run at a time: each holds an instance for its step
    done | awk -v label="$1" '{ s += $1; n++ } END { printf "%s create_run_ms %f\n", label, s * 1000 / n }'
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
    unset 'PIDS[-1]'
}
{ catalog_ops sqlite ""; catalog_ops postgres "$PG"; } >"$WORK/ops.txt"
python3 - "$WORK/ops.txt" <<'PY'
import sys
figures = {}
for line in open(sys.argv[1]):
    engine, what, value = line.split()
    figures[(engine, what)] = float(value)
print("\n| operation | SQLite | PostgreSQL |\n|---|---|---|")
for what, label in [("put_4k_ops", "PutObject 4 KiB, one gateway, 16 clients (ops/s)"),
                    ("create_user_ms", "CreateUser: `tread s3 user create`, whole process (ms)"),
                    ("create_run_ms", "run creation: POST /api/pipelines/NAME/runs (ms)")]:
    print(f"| {label} | {figures[('sqlite', what)]:.1f} | {figures[('postgres', what)]:.1f} |")
PY

# --- 3. two daemons: scheduler failover and deploy propagation ---------------
say "3. two tread up on one PostgreSQL catalog"
start_daemon() { # $1: n
    local api=$((PORT + 4 + 2 * $1))
    "$TREAD" --database-url "$PG" --data-dir "$WORK/d$1" up --listen "127.0.0.1:$api" \
        --s3-listen "127.0.0.1:$((api + 1))" 2>>"$WORK/d$1.log" &
    echo $! >"$WORK/d$1.pid"
    wait_port "$api"
}
TREAD_LOG=info start_daemon 0
TREAD_LOG=info start_daemon 1
holder() { # the daemon that last said it took the lease
    for n in 0 1; do
        if kill -0 "$(cat "$WORK/d$n.pid")" 2>/dev/null &&
            grep -q "this daemon fires the schedules" "$WORK/d$n.log"; then
            echo "$n"; return
        fi
    done
}
for round in 1 2 3; do
    sleep 2
    held=$(holder)
    other=$((1 - held))
    before=$(grep -c "this daemon fires the schedules" "$WORK/d$other.log" || true)
    killed=$(now)
    kill -9 "$(cat "$WORK/d$held.pid")"
    wait_for took_lease "$WORK/d$other.log" "$before"
    echo "failover_s $(echo "$(now) - $killed" | bc -l)" >>"$WORK/two.txt"
    : >"$WORK/d$held.log"
    TREAD_LOG=info start_daemon "$held"
done
api0="http://127.0.0.1:$((PORT + 4))" api1="http://127.0.0.1:$((PORT + 6))"
# Models of one contract, each from a 1-epoch train on a few images.
"$TREAD" data synth "$WORK/set" --count 16 --size 32 >/dev/null
img=$(find "$WORK/set" -name '*.jpg' | head -1)
for v in 1 2 3 4; do
    "$TREAD" train "$WORK/set" --out "$WORK/models/v$v" --epochs 1 --size 32 --seed "$v" >/dev/null 2>&1
done
for v in 1 2 3 4; do
    model=$(find "$WORK/models/v$v" -name model.tar.gz | head -1)
    version=$(python3 -c 'import json,sys,tarfile; t=tarfile.open(sys.argv[1]); print(json.load(t.extractfile("model.json"))["version"])' "$model")
    start=$(now)
    TREAD_SERVER=$api0 "$TREAD" --data-dir "$WORK/d0" deploy "$model" --endpoint shared >/dev/null
    deployed=$(now)
    wait_for answers "$version"
    [ "$v" -gt 1 ] && echo "deploy_s $(echo "$(now) - $deployed" | bc -l) $(echo "$deployed - $start" | bc -l)" >>"$WORK/two.txt"
done
for n in 0 1; do kill "$(cat "$WORK/d$n.pid")" 2>/dev/null || true; done
python3 - "$WORK/two.txt" <<'PY'
import sys
failover, deploy = [], []
for line in open(sys.argv[1]):
    parts = line.split()
    (failover if parts[0] == "failover_s" else deploy).append([float(p) for p in parts[1:]])
print("\n| two daemons | runs | each (s) | floor |\n|---|---|---|---|")
print(f"| lease holder SIGKILLed → the other holds the lease | {len(failover)} | {', '.join(f'{f[0]:.2f}' for f in failover)} | 10 s |")
print(f"| deploy on A returned → B answers with the new version | {len(deploy)} | {', '.join(f'{d[0]:.2f}' for d in deploy)} | 2 s |")
print(f"| (the deploy itself on A: load, warm, record) | {len(deploy)} | {', '.join(f'{d[1]:.2f}' for d in deploy)} | |")
PY
