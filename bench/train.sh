#!/usr/bin/env bash
# The training benchmark (issue 3), in one run on this machine:
#   1. step:   seed-cnn training step (batch 64, 224x224, Adam) in tread's
#              engine against PyTorch at its best on the same machine
#              (bench/train/pytorch_seed_cnn.py: 2 threads, flush-to-zero,
#              the faster of NCHW and channels-last, malloc thresholds raised).
#   2. recipe: the recipe's configuration from tread's own S3 store: 1856
#              synthetic tyres, split 1500,356, 2 epochs, batch 64, for
#              seed-cnn and resnet-small: wall time and held-out accuracy.
#   3. loader: one seed-cnn epoch from the bucket (GET, decode, resize while
#              training) against one epoch from tensors already in memory
#              (--preload decodes the split before the clock starts), both
#              from fresh weights, so first-step buffer growth is in both;
#              four runs in ABBA order, each mode's mean.
#
#   bash bench/train.sh                 # everything (~20 min on 2 cores)
#   PARTS=step bash bench/train.sh      # or PARTS=recipe, PARTS=loader
#
# Environment: STEPS (timed steps, default 5), TORCH_VENV (default
# target/bench-torch-venv; made here, torch from PyPI), TREAD_PORT (19100),
# COUNT (1856), KEEP=1 keeps the temp directory. See bench/RESULTS.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PARTS=${PARTS:-step recipe loader}
STEPS=${STEPS:-5}
TORCH_VENV=${TORCH_VENV:-$REPO/target/bench-torch-venv}
TREAD_PORT=${TREAD_PORT:-19100}
COUNT=${COUNT:-1856}
say() { printf '[train.sh] %s\n' "$*" >&2; }
json() { python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print($1)"; }

cd "$REPO"
say "building release binaries"
cargo build --release -p tread -p tread-bench-train
TREAD=$REPO/target/release/tread
echo "date:   $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
echo "cpu:    $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at start"

step_bench() {
    if [ ! -x "$TORCH_VENV/bin/python" ]; then
        say "making $TORCH_VENV with PyTorch (CPU index first, PyPI otherwise; large)"
        python3 -m venv "$TORCH_VENV"
        "$TORCH_VENV/bin/pip" install -q --index-url https://download.pytorch.org/whl/cpu torch==2.15.0 2>/dev/null ||
            "$TORCH_VENV/bin/pip" install -q -r bench/train/requirements.txt
    fi
    say "tread: seed-cnn, batch 64, $STEPS steps after 1 warm-up"
    local ours theirs
    ours=$("$REPO/target/release/tread-bench-train" --model seed-cnn --batch 64 --steps "$STEPS" --warmup 1)
    say "PyTorch: the same"
    theirs=$(MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=17179869184 \
        "$TORCH_VENV/bin/python" bench/train/pytorch_seed_cnn.py --steps "$STEPS" --warmup 1 --batch 64 | tail -n1)
    echo "tread:   $ours"
    echo "pytorch: $theirs"
    local a b
    a=$(json 'd["median_step_s"]' <<<"$ours")
    b=$(json 'd["median_step_s"]' <<<"$theirs")
    python3 -c "a,b=$a,$b; print(f'seed-cnn step: tread {a:.2f} s ({64/a:.1f} img/s), PyTorch {b:.2f} s ({64/b:.1f} img/s): tread = {b/a:.2f}x PyTorch (floor 1.0x)')"
}

start_store() {
    [ -n "${S3_PID:-}" ] && return 0
    mkdir -p "$REPO/target"
    WORK=$(mktemp -d "$REPO/target/bench-train.XXXXXX")
    local data=$WORK/data
    t() { "$TREAD" --data-dir "$data" "$@"; }
    t s3 volume create vol1 --path "$WORK/vol1" >&2
    t s3 bucket create fsxn-ontap --volume vol1 >&2
    local keys
    keys=$(t s3 user create s3user --json)
    t s3 group create s3group --users s3user --policy FullAccess >&2
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION=us-east-1
    AWS_ACCESS_KEY_ID=$(json 'd["access_key_id"]' <<<"$keys")
    AWS_SECRET_ACCESS_KEY=$(json 'd["secret_access_key"]' <<<"$keys")
    export AWS_ENDPOINT_URL=http://127.0.0.1:$TREAD_PORT
    if curl -s -o /dev/null --max-time 1 "$AWS_ENDPOINT_URL"; then
        say "something already listens on 127.0.0.1:$TREAD_PORT; set TREAD_PORT to a free port"
        exit 1
    fi
    # Not through t(): $! must be the server itself, not a subshell, for the kill below.
    "$TREAD" --data-dir "$data" s3 serve --listen "127.0.0.1:$TREAD_PORT" >"$WORK/s3.log" 2>&1 &
    S3_PID=$!
    trap 'kill $S3_PID 2>/dev/null || true; [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"' EXIT
    for _ in $(seq 100); do curl -s -o /dev/null "$AWS_ENDPOINT_URL" && break; sleep 0.1; done
    say "synthesising $COUNT tyres into s3://fsxn-ontap/dataset/tyre"
    "$TREAD" data synth s3://fsxn-ontap/dataset/tyre --count "$COUNT" --seed 77
}

SPLIT="$((COUNT * 1500 / 1856)),$((COUNT - COUNT * 1500 / 1856))"

recipe_bench() {
    start_store
    for model in seed-cnn resnet-small; do
        say "training $model: split 1500,356, 2 epochs, batch 64"
        local started ended out
        started=$(date +%s.%N)
        out=$("$TREAD" train s3://fsxn-ontap/dataset/tyre --model "$model" --epochs 2 --batch-size 64 \
            --split "$SPLIT" --seed 77 --lr 1e-3 \
            --out s3://fsxn-ontap/models/tyre-quality/ 2>"$WORK/train-$model.log")
        ended=$(date +%s.%N)
        local uri metrics
        uri=$(sed -n 's/^model s3:\/\/fsxn-ontap\///p' <<<"$out")
        metrics=$WORK/vol1/${uri%model.tar.gz}metrics.jsonl
        python3 - "$metrics" "$model" "$started" "$ended" <<'PY'
import json, sys
path, model, started, ended = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
lines = [json.loads(l) for l in open(path)]
epochs = [l for l in lines if "epoch" in l]
ev = next(l["evaluation"] for l in lines if "evaluation" in l)
print(f"{model}: wall {ended - started:.1f} s, held-out accuracy {ev['accuracy'] * 100:.2f} % "
      f"on {ev['images']} images, train accuracy by epoch "
      + ", ".join(f"{e['accuracy'] * 100:.1f} %" for e in epochs))
for e in epochs:
    print(f"  epoch {e['epoch']}: {e['seconds']:.1f} s, {e['images_per_s']:.1f} img/s, loss {e['loss']:.4f}")
PY
        echo "  $out" | grep -m1 accuracy || true
    done
}

# Seconds of epoch 1 in the metrics.jsonl of the model `tread train` printed.
epoch_seconds() {
    local uri
    uri=$(sed -n 's/^model s3:\/\/fsxn-ontap\///p' <<<"$1")
    python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['seconds'])" \
        "$WORK/vol1/${uri%model.tar.gz}metrics.jsonl"
}

# ABBA order (stream, preload, preload, stream), each mode's mean: the first
# large run after others pays seconds of kernel page zeroing and compaction
# in its first step, whichever mode it is (measured: +6 s either way).
loader_bench() {
    start_store
    local -A total=([stream]=0 [preload]=0)
    local run=0
    for mode in stream preload preload stream; do
        run=$((run + 1))
        say "seed-cnn, one epoch, $mode (run $run of 4)"
        local flag=()
        [ "$mode" = preload ] && flag=(--preload)
        out=$("$TREAD" train s3://fsxn-ontap/dataset/tyre --model seed-cnn --epochs 1 --batch-size 64 \
            --split "$SPLIT" --seed 77 "${flag[@]}" --out s3://fsxn-ontap/models/loader-$mode-$run/ 2>"$WORK/loader-$mode-$run.log")
        local seconds
        seconds=$(epoch_seconds "$out")
        echo "  $mode run $run: $seconds s"
        total[$mode]=$(python3 -c "print(${total[$mode]} + $seconds)")
    done
    python3 -c "a,b=${total[stream]}/2,${total[preload]}/2; print(f'loader: seed-cnn epoch from the bucket {a:.1f} s, from memory {b:.1f} s (means of 2, ABBA): {(a/b-1)*100:+.1f} % (floor: at most +5 %)')"
}

for part in $PARTS; do
    case $part in
        step) step_bench ;;
        recipe) recipe_bench ;;
        loader) loader_bench ;;
        *) say "unknown part $part (step, recipe, loader)"; exit 2 ;;
    esac
done
