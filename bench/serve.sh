#!/usr/bin/env bash
# The serving benchmark (issue 4), in one run on this machine: end-to-end
# HTTP latency (request, decode, preprocess, forward, JSON answer) of one
# 384×384 JPEG, for resnet-small (the default network) and seed-cnn, served
# by `tread serve` and by a Python baseline serving the same weights with
# PyTorch at its best (bench/serve/pytorch_server.py). The same client
# (wrk, from Debian) measures both: p50/p99 at concurrency 1, and
# throughput at concurrency 16. One server runs at a time.
#
#   bash bench/serve.sh               # ~6 min on 2 cores
#
# Environment: DURATION (seconds per measurement, default 20), TORCH_VENV
# (default target/bench-torch-venv, made here with bench/serve/requirements.txt),
# PORT (19200), KEEP=1 keeps the temp directory. See bench/RESULTS.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-20}
TORCH_VENV=${TORCH_VENV:-$REPO/target/bench-torch-venv}
PORT=${PORT:-19200}
say() { printf '[serve.sh] %s\n' "$*" >&2; }

cd "$REPO"
command -v wrk >/dev/null || { say "installing wrk"; apt-get install -y -qq wrk >/dev/null; }
if [ ! -x "$TORCH_VENV/bin/python" ]; then
    say "making $TORCH_VENV with PyTorch from PyPI (large)"
    python3 -m venv "$TORCH_VENV"
fi
"$TORCH_VENV/bin/pip" install -q -r bench/serve/requirements.txt
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    say "port $PORT is busy: set PORT"; exit 2
fi
say "building the release binary"
cargo build --release -p tread
TREAD=$REPO/target/release/tread
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ "${KEEP:-}" = 1 ] && say "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
echo "date:   $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
echo "cpu:    $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

say "training both networks for one epoch on 64 synthetic tyres (224×224 input)"
"$TREAD" data synth "$WORK/data" --count 64 --seed 5 --size 384 >/dev/null
declare -A MODEL
for net in resnet-small seed-cnn; do
    MODEL[$net]=$("$TREAD" train "$WORK/data" --model "$net" --epochs 1 --batch-size 16 \
        --split 48,16 --out "$WORK/models/$net" 2>/dev/null | sed -n 's/^model //p')
done
IMAGE=$(find "$WORK/data/good" -name '*.jpg' | sort | head -n1)
cat >"$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/jpeg"
local f = io.open("$IMAGE", "rb"); wrk.body = f:read("*a"); f:close()
LUA

wait_for() {
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$PORT/ping" >/dev/null && return 0
        sleep 0.1
    done
    say "server on $PORT did not start"; exit 1
}

# Prints "p50_ms p99_ms rps" of one wrk run.
measure() {
    local url=$1 connections=$2 threads=$(( $2 < 2 ? 1 : 2 ))
    wrk -t"$threads" -c"$connections" -d"${DURATION}s" --latency -s "$WORK/post.lua" "$url" |
        python3 -c '
import re, sys
text = sys.stdin.read()
def ms(label):
    m = re.search(r"^\s*" + label + r"\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors: sys.exit(f"wrk saw {errors.group(1)} failed responses:\n{text}")
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50, p99 = ms("50%"), ms("99%")
print(f"{p50:.2f} {p99:.2f} {rps:.1f}")'
}

declare -A RESULT
bench_server() {
    local who=$1 net=$2 url=$3
    wait_for
    curl -sf -X POST -H 'Content-Type: image/jpeg' --data-binary "@$IMAGE" "$url" >/dev/null
    say "$who $net: concurrency 1, then 16, ${DURATION}s each"
    RESULT[$who,$net,1]=$(measure "$url" 1)
    RESULT[$who,$net,16]=$(measure "$url" 16)
}

say "tread serve"
TREAD_LOG=warn "$TREAD" --data-dir "$WORK/tread" serve --listen "127.0.0.1:$PORT" 2>"$WORK/tread.log" &
PIDS+=($!)
wait_for
for net in resnet-small seed-cnn; do
    "$TREAD" --data-dir "$WORK/tread" deploy "${MODEL[$net]}" --endpoint "$net" \
        --server "http://127.0.0.1:$PORT" >/dev/null
done
for net in resnet-small seed-cnn; do
    bench_server tread "$net" "http://127.0.0.1:$PORT/endpoints/$net/invocations"
done
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

for net in resnet-small seed-cnn; do
    say "PyTorch baseline, $net"
    "$TORCH_VENV/bin/python" bench/serve/pytorch_server.py --model "${MODEL[$net]}" \
        --port "$PORT" --name "$net" >"$WORK/torch-$net.log" 2>&1 &
    PIDS+=($!)
    bench_server pytorch "$net" "http://127.0.0.1:$PORT/endpoints/$net/invocations"
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
done

echo "image:  $(python3 -c "import sys; print(sys.argv[1].split('/')[-1])" "$IMAGE"), $(stat -c %s "$IMAGE") bytes, 384x384 JPEG"
printf '%-13s %-8s %9s %9s %12s\n' network server "p50 ms" "p99 ms" "req/s @16"
for net in resnet-small seed-cnn; do
    for who in tread pytorch; do
        read -r p50 p99 _ <<<"${RESULT[$who,$net,1]}"
        read -r _ _ rps <<<"${RESULT[$who,$net,16]}"
        printf '%-13s %-8s %9s %9s %12s\n' "$net" "$who" "$p50" "$p99" "$rps"
    done
    read -r a _ _ <<<"${RESULT[tread,$net,1]}"; read -r b _ _ <<<"${RESULT[pytorch,$net,1]}"
    read -r _ _ x <<<"${RESULT[tread,$net,16]}"; read -r _ _ y <<<"${RESULT[pytorch,$net,16]}"
    python3 -c "a,b,x,y=$a,$b,$x,$y; print(f'$net: p50 tread/PyTorch = {a/b:.2f} (floor <= 0.8), throughput tread/PyTorch = {x/y:.2f}x')"
done
