#!/usr/bin/env python3
"""PyTorch per-layer timings of the seed CNN's three convolutions.

The reference a Rust convolution kernel is measured against, layer by layer
(notes/training-stack.md, "Convolutions: where the time goes"). For each conv
at batch 64:
    conv1  3 -> 32 on 224x224
    conv2 32 -> 32 on 222x222
    conv3 32 -> 64 on 220x220
it times the forward pass and the backward pass (grad of input + grad of
weight and bias, what training computes for conv2 and conv3; grad of weight
and bias alone, what it computes for conv1, is reported too), in NCHW and in
channels-last, each the median of --reps runs after --warmup untimed ones.
2 threads and flush-to-zero, as in pytorch_seed_cnn.py. Prints one JSON line
per layer with both memory formats.

Install: see the header of pytorch_seed_cnn.py (same venv, requirements.txt).
Run with the same malloc environment as the training baseline so allocation
costs match:
    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=17179869184 \
        python pytorch_layers.py [--reps 5] [--warmup 1] [--batch 64]
"""

import argparse
import json
import os
import statistics
import time

import torch
from torch import nn

THREADS = 2
SEED = 0
# (name, in channels, out channels, input height = width); kernel 3, stride 1,
# no padding, bias, as in the seed CNN.
LAYERS = (
    ("conv1", 3, 32, 224),
    ("conv2", 32, 32, 222),
    ("conv3", 32, 64, 220),
)
KERNEL = 3
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
FORMATS = (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="PyTorch conv per-layer timings")
    parser.add_argument("--reps", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--layers", default="conv1,conv2,conv3",
                        help="comma-separated subset of conv1,conv2,conv3")
    args = parser.parse_args()
    if args.reps < 1 or args.warmup < 0 or args.batch < 1:
        parser.error("--reps and --batch must be >= 1, --warmup >= 0")
    return args


def time_layer(conv: nn.Conv2d, x: torch.Tensor, grad_out: torch.Tensor,
               reps: int, warmup: int) -> dict:
    """Median forward and backward wall times in ms, one fresh graph per run.

    The backward is timed twice: grad of input + weight + bias (one aten
    convolution_backward call with all outputs), and grad of weight + bias
    only (autograd then skips grad input). The second is what training does
    for conv1, whose input is the image; the difference is grad input's cost.
    """
    fwd, bwd, bwd_w = [], [], []
    for i in range(warmup + reps):
        t0 = time.perf_counter()
        y = conv(x)  # with autograd on, as in training
        t1 = time.perf_counter()
        torch.autograd.grad(y, (x, conv.weight, conv.bias), grad_out)
        t2 = time.perf_counter()
        del y
        y = conv(x)
        t3 = time.perf_counter()
        torch.autograd.grad(y, (conv.weight, conv.bias), grad_out)
        t4 = time.perf_counter()
        del y
        if i >= warmup:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            bwd_w.append(t4 - t3)
    return {"forward_ms": 1e3 * statistics.median(fwd),
            "backward_ms": 1e3 * statistics.median(bwd),
            "backward_weight_only_ms": 1e3 * statistics.median(bwd_w),
            "forward_ms_runs": [round(1e3 * t, 1) for t in fwd],
            "backward_ms_runs": [round(1e3 * t, 1) for t in bwd]}


def main() -> None:
    # FTZ/DAZ before any intra-op thread exists (threads inherit it).
    flush_denormal = torch.set_flush_denormal(True)
    torch.set_num_threads(THREADS)
    args = parse_args()
    wanted = set(args.layers.split(","))
    unknown = wanted - {name for name, *_ in LAYERS}
    if unknown:
        raise SystemExit(f"unknown layers: {sorted(unknown)}")

    for name, cin, cout, hw in LAYERS:
        if name not in wanted:
            continue
        out_hw = hw - KERNEL + 1
        # FLOPs of the forward (multiply-add = 2); the backward does two
        # GEMMs of the same size (grad input, grad weight).
        fwd_gflop = 2 * args.batch * cout * out_hw * out_hw * cin * KERNEL * KERNEL / 1e9
        line = {"framework": "pytorch", "torch": torch.__version__, "layer": name,
                "cin": cin, "cout": cout, "in_hw": hw, "out_hw": out_hw,
                "batch": args.batch, "reps": args.reps, "warmup": args.warmup,
                "threads": torch.get_num_threads(), "flush_denormal": flush_denormal,
                "forward_gflop": round(fwd_gflop, 2)}
        for fmt_name, fmt in FORMATS:
            torch.manual_seed(SEED)
            conv = nn.Conv2d(cin, cout, KERNEL).to(memory_format=fmt)
            x = torch.randn(args.batch, cin, hw, hw).contiguous(memory_format=fmt)
            x.requires_grad_(True)
            grad_out = torch.randn(args.batch, cout, out_hw, out_hw).contiguous(memory_format=fmt)
            r = time_layer(conv, x, grad_out, args.reps, args.warmup)
            line[fmt_name] = {
                "forward_ms": round(r["forward_ms"], 1),
                "backward_ms": round(r["backward_ms"], 1),
                "forward_gflops": round(fwd_gflop / (r["forward_ms"] / 1e3), 1),
                "backward_gflops": round(2 * fwd_gflop / (r["backward_ms"] / 1e3), 1),
                "backward_weight_only_ms": round(r["backward_weight_only_ms"], 1),
                "forward_ms_runs": r["forward_ms_runs"],
                "backward_ms_runs": r["backward_ms_runs"],
            }
            del conv, x, grad_out
        line["malloc_env"] = {k: os.environ.get(k) for k in MALLOC_ENV}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
