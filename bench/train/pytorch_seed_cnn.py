#!/usr/bin/env python3
"""PyTorch training baseline for tread's benchmark: the recipe's seed CNN.

PyTorch at its best on this machine (DECISIONS.md, "The PyTorch baseline"):
2 threads, flush-to-zero, the faster of NCHW and channels-last (both are
measured in the same run), malloc thresholds raised by the calling script.

Install (Python 3.11). The CPU-only index was tried first and could not be
reached from here, so the wheels come from plain PyPI (they pull the CUDA
libraries, ~5 GB, unused on CPU):
    python3 -m venv venv
    venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch torchvision \
        || venv/bin/pip install -r bench/train/requirements.txt

Environment set by the calling shell script (read by glibc at process start,
so they must be set before Python starts, not from inside this script):
    MALLOC_MMAP_THRESHOLD_=1073741824   # 1 GiB: blocks below this come from the
        # heap instead of their own mmap. The seed CNN's activations are
        # 400-780 MB each (conv3's output is 64*64*218*218*4 B = 778 MB); with
        # glibc's default (dynamic, at most 32 MiB) each one is mmapped,
        # munmapped when freed and page-faulted in again next step.
    MALLOC_TRIM_THRESHOLD_=17179869184  # 16 GiB: never give freed heap memory
        # back to the kernel between steps (peak RSS is ~4 GB).
The output reports minor page faults per step, which shows whether they took.

Usage:
    python pytorch_seed_cnn.py [--steps 5] [--warmup 1] [--batch 64]
        [--model seed-cnn|resnet-small] [--size 224]
        [--memory-format auto|nchw|channels-last]
Prints one JSON line at the end. With --memory-format auto (the default) the
script runs itself once per format in a fresh child process (so each gets its
own peak RSS and a clean allocator) and reports the faster one, with both
formats' figures under "formats".
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

THREADS = 2
SEED = 0
IMAGE_SIZE = 224
NUM_CLASSES = 2
LEARNING_RATE = 1e-3
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
FORMATS = ("nchw", "channels-last")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="PyTorch seed-CNN training baseline")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    # resnet-small is bench/serve/pytorch_server.py's replica of tread's.
    parser.add_argument("--model", choices=["seed-cnn", "resnet-small"], default="seed-cnn")
    parser.add_argument("--size", type=int, default=IMAGE_SIZE,
                        help="input side (default 224; the seed CNN takes 224 only)")
    parser.add_argument("--memory-format", choices=("auto",) + FORMATS, default="auto",
                        help="auto: measure both in child processes, report the faster")
    args = parser.parse_args()
    if args.steps < 1 or args.warmup < 0 or args.batch < 1:
        parser.error("--steps and --batch must be >= 1, --warmup >= 0")
    if args.model == "seed-cnn" and args.size != IMAGE_SIZE:
        parser.error(f"the seed CNN's linear layer fixes its input at {IMAGE_SIZE}")
    if args.size < 32:
        parser.error("--size must be >= 32")
    return args


def build(model: str) -> nn.Module:
    if model == "seed-cnn":
        return seed_cnn()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "serve"))
    import pytorch_server  # the replica of tread's resnet-small
    return pytorch_server.ResnetSmall(NUM_CLASSES)


def seed_cnn() -> nn.Module:
    """The recipe's seed CNN, exactly."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3), nn.ReLU(),
        nn.Conv2d(32, 32, 3), nn.ReLU(),
        nn.Conv2d(32, 64, 3), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * 218 * 218, NUM_CLASSES),
    )


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def measure(args: argparse.Namespace) -> dict:
    """Train in this process with one memory format; return its figures."""
    channels_last = args.memory_format == "channels-last"
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    torch.manual_seed(SEED)
    model = build(args.model).to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loss_fn = nn.CrossEntropyLoss()
    # Data from its own generator so the model's init and the data are each
    # reproducible on their own.
    data_gen = torch.Generator().manual_seed(SEED + 1)

    step_s, losses, faults = [], [], []
    for step in range(args.warmup + args.steps):
        # Random normal images and random labels, made outside the timed part.
        x = torch.randn(args.batch, 3, args.size, args.size, generator=data_gen)
        x = x.contiguous(memory_format=memory_format)
        y = torch.randint(0, NUM_CLASSES, (args.batch,), generator=data_gen)

        f0, t0 = minor_faults(), time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        loss_value = loss.item()  # also a sync point; CPU ops are synchronous anyway
        elapsed, nfaults = time.perf_counter() - t0, minor_faults() - f0

        losses.append(loss_value)
        if step >= args.warmup:
            step_s.append(elapsed)
            faults.append(nfaults)

    median = statistics.median(step_s)
    return {
        "median_step_s": round(median, 4),
        "images_per_s": round(args.batch / median, 3),
        "channels_last": channels_last,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "step_s": [round(t, 4) for t in step_s],
        "losses": [round(v, 4) for v in losses],  # warm-up steps included
        "median_minor_faults_per_step": int(statistics.median(faults)),
    }


def measure_in_child(args: argparse.Namespace, fmt: str) -> dict:
    """Run this script for one format in a fresh process; parse its JSON line."""
    cmd = [sys.executable, os.path.abspath(__file__),
           "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--batch", str(args.batch), "--model", args.model, "--size", str(args.size),
           "--memory-format", fmt]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    # Flush-to-zero + denormals-are-zero first, before any intra-op thread
    # exists: threads inherit the FP control register from the thread that
    # creates them. Without it, denormal gradients after a few Adam updates
    # make steps ~7x slower on this CPU (notes/training-stack.md).
    flush_denormal = torch.set_flush_denormal(True)
    torch.set_num_threads(THREADS)
    args = parse_args()

    if args.memory_format == "auto":
        formats = {fmt: measure_in_child(args, fmt) for fmt in FORMATS}
        best = min(formats.values(), key=lambda r: r["median_step_s"])
        result = {k: best[k] for k in ("median_step_s", "images_per_s", "channels_last",
                                       "peak_rss_mb")}
        extra = {"formats": formats}
    else:
        result = measure(args)
        extra = {}

    line = {
        "framework": "pytorch",
        "torch": torch.__version__,
        "model": args.model,
        "size": args.size,
        "batch": args.batch,
        "steps": args.steps,
        **result,
        "warmup": args.warmup,
        "threads": torch.get_num_threads(),
        "flush_denormal": flush_denormal,
        "malloc_env": {name: os.environ.get(name) for name in MALLOC_ENV},
        **extra,
    }
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
