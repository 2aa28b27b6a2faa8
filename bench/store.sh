#!/usr/bin/env bash
# The store benchmark (issue 2): tread's S3 server, built as deployed (the
# dist profile), against the raw file system and a plain static file server
# (nginx, sendfile), on the same disk, in one run.
#
#   bash bench/store.sh [extra tread-bench-store options, e.g. --reps 3]
#
# Environment: TREAD_PORT (default 19000), NGINX_PORT (19080),
# BENCH_JSON (every sample; default target/bench-store.json),
# TREAD_PROFILE (dist, or release to skip dist's long first build),
# KEEP=1 keeps the temp directory.
#
# Everything lives in one temp directory under the repo's target/ (the
# repo's disk): the catalog, the volume served by tread and by nginx, and the
# scratch directory of the raw baselines. See bench/RESULTS.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TREAD_PORT=${TREAD_PORT:-19000}
NGINX_PORT=${NGINX_PORT:-19080}
BENCH_JSON=${BENCH_JSON:-$REPO/target/bench-store.json}
# The cargo profile tread is built with: `dist`, the build to deploy (see
# Cargo.toml; its first build takes ~25 min on 2 cores), or `release`.
TREAD_PROFILE=${TREAD_PROFILE:-dist}

say() { printf '[store.sh] %s\n' "$*" >&2; }

cd "$REPO"
say "building tread ($TREAD_PROFILE profile) and the benchmark's client (release)"
cargo build --profile "$TREAD_PROFILE" -p tread
# The client with release tread, as `cargo test --workspace` builds them:
# alone, cargo would resolve ~30 of its crates (hyper, futures, rustls...)
# with fewer features, build them again (4 min), and the next `./ci` would
# rebuild them back. Where the tests or the demo ran, release tread is built.
cargo build --release -p tread -p tread-bench-store
TREAD=$REPO/target/$TREAD_PROFILE/tread
BENCH=$REPO/target/release/tread-bench-store

NGINX=$(command -v nginx || true)
[ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
if [ -z "$NGINX" ]; then
    say "installing nginx (Debian package)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -q >&2 || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q nginx-light >&2 ||
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q nginx >&2 || true
    NGINX=$(command -v nginx || true)
    [ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
    [ -z "$NGINX" ] && say "WARNING: nginx could not be installed; the nginx column stays empty"
fi

mkdir -p "$REPO/target"
WORK=$(mktemp -d "$REPO/target/bench-store.XXXXXX")
DATA=$WORK/data
VOL=$WORK/vol
RAW=$WORK/raw
TREAD_PID=""
NGINX_PID=""

cleanup() {
    local rc=$?
    if [ -n "$TREAD_PID" ]; then kill "$TREAD_PID" 2>/dev/null || true; wait "$TREAD_PID" 2>/dev/null || true; fi
    if [ -n "$NGINX_PID" ]; then kill -QUIT "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; fi
    if [ "${KEEP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
        say "kept $WORK (tread.log, nginx-error.log)"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT INT TERM

say "setting up $WORK"
t() { "$TREAD" --data-dir "$DATA" "$@"; }
t s3 volume create benchvol --path "$VOL" >&2
t s3 bucket create bench --volume benchvol >&2
KEYS=$(t s3 user create benchuser --json)
t s3 group create benchgroup --users benchuser --policy FullAccess >&2
json_field() { sed -n "s/.*\"$1\" *: *\"\\([^\"]*\\)\".*/\\1/p" <<<"$KEYS"; }
export BENCH_ACCESS_KEY_ID BENCH_SECRET_ACCESS_KEY
BENCH_ACCESS_KEY_ID=$(json_field access_key_id)
BENCH_SECRET_ACCESS_KEY=$(json_field secret_access_key)
[ -n "$BENCH_ACCESS_KEY_ID" ] && [ -n "$BENCH_SECRET_ACCESS_KEY" ] || { say "could not read the user's keys"; exit 1; }

# Refuses a port something already answers on (we would measure the wrong server).
port_free() {
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/"; then
        say "something already listens on 127.0.0.1:$1; set $2 to a free port"
        return 1
    fi
}
# Waits until $1 answers while process $2 is alive.
wait_http() {
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || { say "the server for $1 exited; see $WORK"; return 1; }
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    say "nothing answers at $1"
    return 1
}

port_free "$TREAD_PORT" TREAD_PORT
[ -n "$NGINX" ] && port_free "$NGINX_PORT" NGINX_PORT
say "starting tread s3 serve on 127.0.0.1:$TREAD_PORT"
"$TREAD" --data-dir "$DATA" s3 serve --listen "127.0.0.1:$TREAD_PORT" >"$WORK/tread.log" 2>&1 &
TREAD_PID=$!
wait_http "http://127.0.0.1:$TREAD_PORT/" "$TREAD_PID"

NGINX_ARGS=()
if [ -n "$NGINX" ]; then
    say "starting nginx on 127.0.0.1:$NGINX_PORT (root $VOL, sendfile on)"
    mkdir -p "$WORK/nginx-tmp"
    USER_LINE=""
    [ "$(id -u)" -eq 0 ] && USER_LINE="user $(id -un) $(id -gn);"
    cat >"$WORK/nginx.conf" <<EOF
$USER_LINE
daemon off;
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path $WORK/nginx-tmp/body;
    proxy_temp_path $WORK/nginx-tmp/proxy;
    fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
    scgi_temp_path $WORK/nginx-tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $VOL;
    }
}
EOF
    "$NGINX" -p "$WORK" -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf" &
    NGINX_PID=$!
    wait_http "http://127.0.0.1:$NGINX_PORT/" "$NGINX_PID"
    NGINX_ARGS=(--nginx-url "http://127.0.0.1:$NGINX_PORT" --nginx-pid "$NGINX_PID")
fi

# The CPU's family and model and its widest vector instructions: machines
# of one model name differ (an AMD EPYC may be Zen 3 with AVX2 or Zen 5
# with AVX-512), and RESULTS.md keeps figures per class.
cpu_class() {
    local family model isa=SSE
    family=$(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo | head -1)
    model=$(sed -n 's/^model[[:space:]]*: //p' /proc/cpuinfo | head -1)
    grep -qw avx2 /proc/cpuinfo && isa=AVX2
    grep -qw avx512f /proc/cpuinfo && isa=AVX-512
    echo "family $family, model $model, $isa"
}
# The file system's mount options and, for ext4, whether it keeps a journal.
# Both decide what a small PUT waits for: without a journal and with
# `discard`, replacing a file discards its old blocks inside the rename,
# under the file system's one rename lock (RESULTS.md).
mount_notes() {
    local dev notes
    notes="$(findmnt -no FSTYPE -T "$1" 2>/dev/null) ($(findmnt -no OPTIONS -T "$1" 2>/dev/null))"
    dev=$(basename "$(findmnt -no SOURCE -T "$1")")
    if [ -r "/sys/fs/ext4/$dev/journal_task" ]; then
        if [ "$(cat "/sys/fs/ext4/$dev/journal_task")" = "<none>" ]; then
            notes+=", no journal"
        else
            notes+=", with a journal"
        fi
    fi
    echo "$notes"
}

{
    echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit:   $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "cpu:      $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1) ($(cpu_class))"
    echo "memory:   $(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "disk:     $(df -hT "$WORK" | awk 'NR==2 {print $1 ", " $2 ", mounted on " $7}') (tread, nginx and raw all under $WORK)"
    echo "mount:    $(mount_notes "$WORK")"
    echo "kernel:   $(uname -r)"
    echo "tread:    cargo profile $TREAD_PROFILE"
    [ -n "$NGINX" ] && echo "nginx:    $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
    echo
}

say "running the benchmark (a few minutes)"
"$BENCH" \
    --endpoint "http://127.0.0.1:$TREAD_PORT" \
    --bucket bench --volume "$VOL" --raw-dir "$RAW" \
    --tread-pid "$TREAD_PID" "${NGINX_ARGS[@]}" \
    --json "$BENCH_JSON" "$@"
say "every sample: $BENCH_JSON"
