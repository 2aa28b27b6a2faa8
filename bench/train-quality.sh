#!/usr/bin/env bash
# The training-quality benchmark (issue 14): held-out accuracy and wall time
# of tread's trainer against PyTorch with the same recipe, on this machine.
#
#   quality: a real-photo two-class set at the recipe's shape (Fashion-MNIST
#            pullover 1028 / coat 828, bench/train/fashion_pair.py), split
#            1500,356: `tread train` with its default network and recipe
#            against bench/train/pytorch_recipe.py --arch resnet-small (the
#            same network and recipe in PyTorch), seeds 0 1 2.
#   seedcnn: the recipe's own settings on the same set: tread --model
#            seed-cnn --epochs 2 --size 224 against pytorch_recipe.py --arch
#            seed-cnn --recipe (Adam 1e-3, no schedule, no augmentation, no
#            smoothing, no validation), seeds 0 1 2. PyTorch trains on tread's
#            draws for each seed (its split, batch order and initial weights,
#            from tread-bench-draws), so a seed's two runs differ in the
#            frameworks' arithmetic alone: two epochs at a fixed rate swing by
#            several points from the draw (bench/RESULTS.md). SEEDCNN_DRAWS=own
#            lets PyTorch draw its own.
#   tyres:   the demo's synthetic tyres (tread data synth, 1200 at 96 px,
#            seed 0, split 0.8,0.2): tread's default recipe and PyTorch
#            resnet-small at 96 (both with the demo's --epochs 30 --val 0),
#            and the strong reference PyTorch resnet18 --size 96 --epochs 60
#            --patience 60, seeds $TYRE_SEEDS.
# Then one markdown table of every run and one of the means per setting.
# Wall seconds are the whole command (PyTorch's include ~5 s of importing
# torch and its memory-format probe); train s is the epoch loop alone.
#
# Measured 2026-12-04 on one core of a loaded 2-core machine (load ~7 from
# other builds, so slow): PyTorch resnet-small at 112 ~28 s/epoch on the
# pair (1350 images, 45 img/s), resnet18 at 128 ~27 s/step. Estimated for a
# quiet machine from bench/RESULTS.md's figures: quality ~15-20 min, seedcnn
# ~20 min (six 2-epoch runs at 224), tyres ~40 min (resnet18's 60 epochs
# dominate: ~30 s/epoch); all three about 1h15.
#
#   bash bench/train-quality.sh                  # everything
#   PARTS=quality bash bench/train-quality.sh    # or seedcnn, tyres, or several
#
# Environment:
#   TREAD        tread binary (default target/release/tread; not built here)
#   DRAWS        tread-bench-draws binary for the seedcnn part (default
#                target/release/tread-bench-draws: cargo build --release -p
#                tread-bench-train)
#   TORCH_VENV   venv with torch, torchvision, pillow (default
#                target/bench-torch-venv; made from bench/train/requirements.txt
#                when missing)
#   TREAD_ARGS   extra flags for every quality/tyres `tread train` (e.g. "--epochs 10")
#   TORCH_ARGS   extra flags for every quality/tyres pytorch_recipe.py run
#   SEEDCNN_TREAD_ARGS, SEEDCNN_TORCH_ARGS   the same for the seedcnn part. The
#                seedcnn comparison assumes `tread train --model seed-cnn` still
#                trains with the recipe's settings (Adam 1e-3, constant lr, no
#                augmentation, smoothing or validation); if tread's new defaults
#                apply to seed-cnn too, pass them off here (e.g. "--val 0
#                --no-augment --warmup-epochs 0 --weight-decay 0
#                --label-smoothing 0 --lr 1e-3"; a cosine decay would remain).
#   SEEDS        seeds of quality and seedcnn (default "0 1 2")
#   TYRE_SEEDS   seeds of tyres (default "0")
#   TYRE_EPOCHS  epochs of the tyres part's resnet-small runs (default 30, the
#                demo's; `tread train` refuses a flag given twice)
#   PAIR         Fashion-MNIST classes (default pullover,coat; 4 classes work too)
#   KEEP=1       keep the temp directory (datasets, models, logs)
# The Fashion-MNIST files come from Debian's dataset-fashion-mnist, installed
# here with apt-get when missing (as root).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PARTS=${PARTS:-quality seedcnn tyres}
SEEDS=${SEEDS:-0 1 2}
TYRE_SEEDS=${TYRE_SEEDS:-0}
TYRE_EPOCHS=${TYRE_EPOCHS:-30}
TREAD=${TREAD:-$REPO/target/release/tread}
DRAWS=${DRAWS:-$REPO/target/release/tread-bench-draws}
SEEDCNN_DRAWS=${SEEDCNN_DRAWS:-tread}
TORCH_VENV=${TORCH_VENV:-$REPO/target/bench-torch-venv}
TREAD_ARGS=${TREAD_ARGS:-}
TORCH_ARGS=${TORCH_ARGS:-}
SEEDCNN_TREAD_ARGS=${SEEDCNN_TREAD_ARGS:-}
SEEDCNN_TORCH_ARGS=${SEEDCNN_TORCH_ARGS:-}
PAIR=${PAIR:-pullover,coat}
FASHION=/usr/share/datasets/fashion-mnist
say() { printf '[train-quality.sh] %s\n' "$*" >&2; }

cd "$REPO"
case $TREAD in /*) ;; *) TREAD=$REPO/$TREAD ;; esac
if [ ! -x "$TREAD" ]; then
    say "no tread binary at $TREAD: cargo build --release -p tread, or set TREAD"
    exit 1
fi
if [[ " $PARTS " =~ \ seedcnn\  ]] && [ "$SEEDCNN_DRAWS" = tread ] && [ ! -x "$DRAWS" ]; then
    say "no tread-bench-draws at $DRAWS: cargo build --release -p tread-bench-train, or set DRAWS"
    exit 1
fi
if [ ! -x "$TORCH_VENV/bin/python" ]; then
    say "making $TORCH_VENV with PyTorch and torchvision (CPU index first, PyPI otherwise; large)"
    python3 -m venv "$TORCH_VENV"
    "$TORCH_VENV/bin/pip" install -q --index-url https://download.pytorch.org/whl/cpu \
        torch==2.15.0 torchvision==0.29.2 pillow numpy safetensors 2>/dev/null ||
        "$TORCH_VENV/bin/pip" install -q -r bench/train/requirements.txt
fi
PY=$TORCH_VENV/bin/python
if [ ! -f "$FASHION/train-images-idx3-ubyte.gz" ] && [[ " $PARTS " =~ \ (quality|seedcnn)\  ]]; then
    say "installing Debian's dataset-fashion-mnist"
    apt-get install -y -q dataset-fashion-mnist >&2 ||
        { apt-get update -q >&2 && apt-get install -y -q dataset-fashion-mnist >&2; }
fi

flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -x -E 'avx2|avx512f|fma' | xargs)
echo "date:   $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
echo "cpu:    $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), flags: ${flags:-none of avx2/avx512f/fma}"
echo "load:   $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min) at start"
echo "tread:  $TREAD ($("$TREAD" --version 2>/dev/null || echo '?'))"
echo "torch:  $("$PY" -c 'import torch, torchvision; print(torch.__version__, "torchvision", torchvision.__version__)')"

mkdir -p "$REPO/target"
WORK=$(mktemp -d "$REPO/target/bench-quality.XXXXXX")
trap '[ "${KEEP:-0}" = 1 ] && say "kept $WORK" || rm -rf "$WORK"' EXIT
RESULTS=$WORK/results.jsonl
say "working in $WORK"

# PyTorch as bench/train.sh runs it: malloc thresholds raised (read by glibc
# at process start), 2 threads and flush-to-zero inside the script.
torch_run() {
    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=17179869184 \
        "$PY" bench/train/pytorch_recipe.py "$@"
}

# record PART FRAMEWORK SETTING SEED WALL_S JSON: one line of results.jsonl.
record() {
    python3 - "$@" >>"$RESULTS" <<'PY'
import json, sys
part, framework, setting, seed, wall, extra = sys.argv[1:7]
row = {"part": part, "framework": framework, "setting": setting, "seed": int(seed),
       "wall_s": round(float(wall), 1)}
row.update(json.loads(extra))
print(json.dumps(row))
PY
}

# tread_train PART SETTING SEED DATA ARGS...: trains, times, records.
tread_train() {
    local part=$1 setting=$2 seed=$3 data=$4
    shift 4
    local run=$WORK/runs/$part-tread-$setting-$seed
    mkdir -p "$run"
    say "tread train $setting seed $seed: $*"
    local started ended
    started=$(date +%s.%N)
    if ! "$TREAD" --data-dir "$WORK/tread-data" train "$data" --out "$run/out" --seed "$seed" \
        --result "$run/result.json" "$@" >"$run/stdout" 2>"$run/stderr"; then
        say "tread train failed (see below); recorded as failed"
        tail -n 5 "$run/stderr" >&2
        record "$part" tread "$setting" "$seed" 0 '{"failed": true}'
        return 0
    fi
    ended=$(date +%s.%N)
    local extra
    extra=$(python3 - "$run" <<'PY'
import glob, json, os, sys
run = sys.argv[1]
result = json.load(open(os.path.join(run, "result.json")))
ev = result["evaluation"]
row = {"accuracy": ev["accuracy"], "images": ev.get("images")}
if "confusion" in ev:
    row["confusion"] = ev["confusion"]
# Per-epoch lines next to the model (tread writes metrics.jsonl there).
for path in glob.glob(os.path.join(run, "out", "**", "metrics.jsonl"), recursive=True):
    lines = [json.loads(l) for l in open(path) if l.strip()]
    epochs = [l for l in lines if "epoch" in l]
    if epochs:
        row["epochs_run"] = len(epochs)
        row["train_s"] = round(sum(e.get("seconds", 0) for e in epochs), 1)
        row["s_per_epoch"] = round(row["train_s"] / len(epochs), 1)
    for key in ("best_epoch",):
        for l in lines:
            if key in l:
                row[key] = l[key]
# The kept epoch, from the settings `tread train --result` reports.
settings = result.get("settings") or {}
for key in ("best_epoch", "epochs_run"):
    for source in (result, settings):
        if key in source and key not in row:
            row[key] = source[key]
print(json.dumps(row))
PY
)
    record "$part" tread "$setting" "$seed" "$(python3 -c "print($ended - $started)")" "$extra"
    say "  $(tail -n1 "$RESULTS")"
}

# torch_train PART SETTING SEED DATA ARGS...: trains, times, records.
torch_train() {
    local part=$1 setting=$2 seed=$3 data=$4
    shift 4
    local run=$WORK/runs/$part-torch-$setting-$seed
    mkdir -p "$run"
    say "pytorch_recipe.py $setting seed $seed: $*"
    local started ended
    started=$(date +%s.%N)
    if ! torch_run "$data" --seed "$seed" "$@" >"$run/stdout" 2>"$run/stderr"; then
        say "pytorch_recipe.py failed (see below); recorded as failed"
        tail -n 5 "$run/stderr" >&2
        record "$part" pytorch "$setting" "$seed" 0 '{"failed": true}'
        return 0
    fi
    ended=$(date +%s.%N)
    local extra
    extra=$(tail -n1 "$run/stdout" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
print(json.dumps({"accuracy": d["heldout_accuracy"], "images": d["images"]["heldout"],
                  "confusion": d["confusion"], "epochs_run": d["epochs_run"],
                  "best_epoch": d["best_epoch"], "s_per_epoch": d["seconds_per_epoch"],
                  "train_s": d["train_s"], "memory_format": d["memory_format"]}))')
    record "$part" pytorch "$setting" "$seed" "$(python3 -c "print($ended - $started)")" "$extra"
    say "  $(tail -n1 "$RESULTS")"
}

FASHION_DIR=$WORK/fashion
fashion_set() {
    [ -d "$FASHION_DIR" ] && return 0
    say "writing Fashion-MNIST $PAIR into $FASHION_DIR"
    "$PY" bench/train/fashion_pair.py "$FASHION_DIR" --classes "$PAIR" >&2
}

quality_part() {
    fashion_set
    local seed
    for seed in $SEEDS; do
        # shellcheck disable=SC2086  # TREAD_ARGS is a list of flags
        tread_train quality default "$seed" "$FASHION_DIR" --split 1500,356 $TREAD_ARGS
    done
    for seed in $SEEDS; do
        # shellcheck disable=SC2086
        torch_train quality resnet-small "$seed" "$FASHION_DIR" --arch resnet-small \
            --split 1500,356 --quiet $TORCH_ARGS
    done
}

seedcnn_part() {
    fashion_set
    local seed
    for seed in $SEEDS; do
        # shellcheck disable=SC2086
        tread_train seedcnn seed-cnn "$seed" "$FASHION_DIR" --model seed-cnn --split 1500,356 \
            --epochs 2 --size 224 $SEEDCNN_TREAD_ARGS
    done
    for seed in $SEEDS; do
        local draws=()
        if [ "$SEEDCNN_DRAWS" = tread ]; then
            "$DRAWS" "$FASHION_DIR" --out "$WORK/draws-$seed" --model seed-cnn --seed "$seed" \
                --split 1500,356 --epochs 2 --size 224
            draws=(--draws "$WORK/draws-$seed")
        fi
        # shellcheck disable=SC2086
        torch_train seedcnn "seed-cnn-on-$SEEDCNN_DRAWS-draws" "$seed" "$FASHION_DIR" --arch seed-cnn \
            --recipe --split 1500,356 --quiet "${draws[@]}" $SEEDCNN_TORCH_ARGS
    done
}

tyres_part() {
    local tyres=$WORK/tyres
    say "synthesising the demo's 1200 tyres at 96 px (seed 0) into $tyres"
    "$TREAD" --data-dir "$WORK/tread-data" data synth "$tyres" --count 1200 --size 96 --seed 0 >&2
    local seed
    for seed in $TYRE_SEEDS; do
        # shellcheck disable=SC2086
        tread_train tyres default "$seed" "$tyres" --split 0.8,0.2 --size 96 --epochs "$TYRE_EPOCHS" \
            --val 0 $TREAD_ARGS
        # shellcheck disable=SC2086
        torch_train tyres resnet-small "$seed" "$tyres" --arch resnet-small --split 0.8,0.2 \
            --size 96 --epochs "$TYRE_EPOCHS" --val 0 --quiet $TORCH_ARGS
        # shellcheck disable=SC2086
        torch_train tyres resnet18 "$seed" "$tyres" --arch resnet18 --split 0.8,0.2 --size 96 \
            --epochs 60 --patience 60 --quiet $TORCH_ARGS
    done
}

for part in $PARTS; do
    started=$(date +%s)
    case $part in
        quality) quality_part ;;
        seedcnn) seedcnn_part ;;
        tyres) tyres_part ;;
        *) say "unknown part $part (quality, seedcnn, tyres)"; exit 2 ;;
    esac
    say "part $part took $(($(date +%s) - started)) s"
done

[ -s "$RESULTS" ] || { say "no results"; exit 1; }
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]

def pct(v):
    return "failed" if v is None else f"{100 * v:.2f} %"

print("\n| part | framework | setting | seed | held-out accuracy | epochs (best) | s/epoch | train s | wall s |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for r in rows:
    epochs = r.get("epochs_run", "")
    if epochs != "" and r.get("best_epoch") is not None:
        epochs = f"{epochs} ({r['best_epoch']})"
    print(f"| {r['part']} | {r['framework']} | {r['setting']} | {r['seed']} | "
          f"{pct(r.get('accuracy'))} | {epochs} | {r.get('s_per_epoch', '')} | "
          f"{r.get('train_s', '')} | "
          f"{r['wall_s'] if not r.get('failed') else ''} |")

print("\n| part | framework | setting | runs | mean accuracy | min-max | mean wall s |")
print("| --- | --- | --- | --- | --- | --- | --- |")
groups = {}
for r in rows:
    if not r.get("failed"):
        groups.setdefault((r["part"], r["framework"], r["setting"]), []).append(r)
for (part, framework, setting), rs in groups.items():
    accs = [r["accuracy"] for r in rs]
    walls = [r["wall_s"] for r in rs]
    print(f"| {part} | {framework} | {setting} | {len(rs)} | {pct(statistics.mean(accs))} | "
          f"{100 * min(accs):.2f}-{100 * max(accs):.2f} | {statistics.mean(walls):.1f} |")
# seedcnn: tread and PyTorch seed by seed (on one draw when SEEDCNN_DRAWS=tread).
by_seed = {}
for r in rows:
    if r["part"] == "seedcnn" and not r.get("failed"):
        by_seed.setdefault(r["seed"], {})[r["framework"]] = r["accuracy"]
pairs = [(s, v["tread"], v["pytorch"]) for s, v in sorted(by_seed.items()) if len(v) == 2]
if pairs:
    print("\n| seedcnn seed | tread | PyTorch | tread - PyTorch |")
    print("| --- | --- | --- | --- |")
    for seed, t, p in pairs:
        print(f"| {seed} | {pct(t)} | {pct(p)} | {100 * (t - p):+.2f} |")
    diffs = [t - p for _, t, p in pairs]
    print(f"| mean | {pct(statistics.mean(t for _, t, _ in pairs))} | "
          f"{pct(statistics.mean(p for _, _, p in pairs))} | {100 * statistics.mean(diffs):+.2f} |")
failed = [r for r in rows if r.get("failed")]
if failed:
    print(f"\n{len(failed)} run(s) failed: "
          + ", ".join(f"{r['part']}/{r['framework']}/{r['setting']}/seed {r['seed']}" for r in failed))
PY
