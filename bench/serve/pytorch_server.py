#!/usr/bin/env python3
"""PyTorch baseline for tread's serving benchmark: one model over HTTP.

Serves a tread `model.tar.gz` (gzip tar of `model.json`, format
"tread-model/1", and `model.safetensors`) with PyTorch, speaking the same
protocol as tread's endpoint server, so the two can be measured with one
load generator:

    POST /endpoints/{name}/invocations   body: a JPEG or PNG image
        -> 200 {"class": "<name>", "endpoint": "<name>", "model_version": "<v>",
                "probabilities": {"<class>": p, ...}}   (tread's fields)
    GET  /ping                           -> 200

Usage:
    python pytorch_server.py --model PATH/model.tar.gz --port N [--name ENDPOINT]
Prints one line `ready` on stdout once it listens (on 127.0.0.1 unless --host).

The floor tread must meet is "p50 latency <= 0.8x this baseline", so this is
PyTorch at its best on the 2-core benchmark machine, honestly:
  * 2 intra-op threads (torch.set_num_threads(2)), flush-to-zero set before
    any intra-op thread exists, torch.inference_mode(), model.eval(), no
    autograd anywhere.
  * Batch norm folded into the preceding convolution for inference
    (torch.nn.utils.fusion.fuse_conv_bn_eval: the standard PyTorch inference
    rewrite; one pass over each activation fewer, same function up to float
    rounding). The weights are first loaded unfused with
    load_state_dict(strict=True) so names and shapes are checked exactly.
  * Eager modules by default. Forward pass alone at batch 1, 224x224, on a
    quiet machine (median of 100 round-robin calls, main thread):
        resnet-small  eager NCHW 5.04 ms, eager channels-last 2.87, folded
                      BN channels-last 2.57, TorchScript-frozen 2.61,
                      torch.compile channels-last 2.43 ms
        seed-cnn      eager NCHW 17.7 ms, channels-last 19.9, TorchScript
                      17.8, torch.compile 17.1 ms
    torch.compile is 3-5% faster but needs ~30 s of compiling per memory
    format on a cold cache (bench/serve.sh waits 30 s for the server) and
    specialises to batch 1; it is available as --optimize compile.
  * Memory format: --memory-format auto (default) times a forward pass in
    NCHW and in channels-last at startup and keeps the faster, per model (it
    differs by model: see the measurements above). The decoded image is
    HWC, so channels-last input needs no copy.
  * Forward passes run one at a time on the main thread, batching what
    queued meanwhile as tread serve does (see the comment above class Job:
    called from another thread, a pass took twice as long).
  * HTTP: the stdlib ThreadingHTTPServer with HTTP/1.1 keep-alive, exact
    Content-Length, Nagle off, no per-request logging.

Preprocessing matches tread's (crates/data/src/transform.rs), which follows
torchvision's ToTensor -> Resize((size, size), antialias=True) -> Normalize:
PIL decode, convert("RGB"), bytes -> float32 in [0, 1], then (only if the
image is not already size x size, as tread) an antialiased bilinear resize
of the float tensor (F.interpolate(mode="bilinear", antialias=True,
align_corners=False)), then (x - mean) / std with model.json's statistics.
Done with numpy/torch ops (torchvision is not needed; against torchvision's
transforms the tensors differ by at most 2.4e-7).

Checked against tread (2026-11-26): on 64 PNG images the probabilities of
this server and of `tread serve` agree to 2.4e-7 for both networks, the
classes on every image; on JPEGs to 1e-4 (PIL's libjpeg-turbo and tread's
decoder round a few pixels differently), and on mixed-size images (resize
path) to 2e-5. Accuracy and confusion on every image equal `tread eval --all`.

The networks mirror crates/nn/src/network.rs; their parameter names are
the safetensors names. seed-cnn reuses bench/train/pytorch_seed_cnn.py's
definition (its conv stack; the head is sized for the model's classes and
input side). resnet-small is defined here (bench/train has none).

Install: python3 -m venv venv && venv/bin/pip install -r requirements.txt
(torch from plain PyPI; the CPU-only index is unreachable here).
"""

import argparse
import copy
import hashlib
import io
import json
import os
import queue
import statistics
import sys
import tarfile
import threading
import time
import warnings
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load as load_safetensors
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import pytorch_seed_cnn  # noqa: E402  (bench/train: the seed CNN's definition)

FORMAT = "tread-model/1"
CARD_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"
THREADS = 2
RESNET_WIDTHS = (24, 24, 48, 96, 192)  # stem and four stages, as network.rs
MAX_BODY = 64 << 20  # refuse bodies above 64 MiB
MAX_PIXELS = 64_000_000  # refuse decompression bombs before decoding pixels

# torch.from_numpy on PIL's read-only array: the tensor is only read (the
# first op, .float(), copies), so the warning about writes does not apply.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


# --- the networks ------------------------------------------------------------

def seed_cnn(classes: int, size: int) -> nn.Module:
    """Conv(3,32,3) ReLU Conv(32,32,3) ReLU Conv(32,64,3) ReLU Flatten
    Linear(64*(s-6)^2, classes); parameters 0.*, 2.*, 4.*, 7.* as tread's.

    bench/train's seed_cnn() is the recipe's network at 224 and 2 classes;
    only its head depends on those, so it is replaced when they differ.
    """
    net = pytorch_seed_cnn.seed_cnn()
    head = (64 * (size - 6) ** 2, classes)
    if (net[7].in_features, net[7].out_features) != head:
        net[7] = nn.Linear(*head)
    return net


class ConvBN(nn.Module):
    """Conv (no bias, padding k//2) then batch norm, optionally ReLU:
    tread's conv_bn, parameters `conv.weight`, `bn.{weight,bias,running_*}`."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, relu: bool):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.relu = relu

    def fuse(self) -> None:
        """Folds the batch norm into the convolution (eval mode only)."""
        if isinstance(self.bn, nn.BatchNorm2d):
            self.conv = fuse_conv_bn_eval(self.conv, self.bn)
            self.bn = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.relu(x, inplace=True) if self.relu else x


class BasicBlock(nn.Module):
    """relu(body(x) + shortcut(x)); body `0` (conv-bn-relu), `1` (conv-bn),
    shortcut `downsample` (1x1 conv-bn) when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.add_module("0", ConvBN(cin, cout, 3, stride, relu=True))
        self.add_module("1", ConvBN(cout, cout, 3, 1, relu=False))
        self.downsample = (ConvBN(cin, cout, 1, stride, relu=False)
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        out = getattr(self, "1")(getattr(self, "0")(x))
        return F.relu(out.add_(skip), inplace=True)


class ResnetSmall(nn.Module):
    """stem (3x3/2 conv-bn-relu), maxpool 3/2 pad 1, four basic blocks
    (strides 1, 2, 2, 2), global average pool, linear head `fc`."""

    def __init__(self, classes: int):
        super().__init__()
        stem, w1, w2, w3, w4 = RESNET_WIDTHS
        self.stem = ConvBN(3, stem, 3, 2, relu=True)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = BasicBlock(stem, w1, 1)
        self.layer2 = BasicBlock(w1, w2, 2)
        self.layer3 = BasicBlock(w2, w3, 2)
        self.layer4 = BasicBlock(w3, w4, 2)
        self.fc = nn.Linear(w4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stem(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


ARCHITECTURES = {"seed-cnn": seed_cnn, "resnet-small": lambda classes, size: ResnetSmall(classes)}


# --- the artifact --------------------------------------------------------------

def read_artifact(path: str) -> tuple[dict, bytes]:
    """model.json (parsed, format checked) and the weights' bytes (checksum
    checked), as tread's artifact::unpack."""
    members = {}
    with tarfile.open(path, "r:gz") as tar:
        for entry in tar:
            name = entry.name.removeprefix("./")
            if name in (CARD_FILE, WEIGHTS_FILE) and entry.isfile():
                members[name] = tar.extractfile(entry).read()
    for name in (CARD_FILE, WEIGHTS_FILE):
        if name not in members:
            raise SystemExit(f"{path}: model.tar.gz has no {name}")
    card = json.loads(members[CARD_FILE])
    if card.get("format") != FORMAT:
        raise SystemExit(f"{path}: model format {card.get('format')!r} is not {FORMAT}")
    weights = members[WEIGHTS_FILE]
    if hashlib.sha256(weights).hexdigest() != card["weights_sha256"]:
        raise SystemExit(f"{path}: model.safetensors does not match its checksum")
    return card, weights


def build_model(card: dict, weights: bytes) -> nn.Module:
    """The network with its weights, checked by load_state_dict(strict=True).

    tread stores exactly PyTorch's parameter and running-statistics names
    but not BatchNorm2d's `num_batches_tracked` counter (only used in
    training with momentum=None), so that one buffer is filled in with 0.
    """
    arch = card["architecture"]
    if arch not in ARCHITECTURES:
        raise SystemExit(f"unknown architecture {arch!r}")
    model = ARCHITECTURES[arch](len(card["classes"]), int(card["input"]["size"]))
    state = load_safetensors(weights)
    for name, buf in model.state_dict().items():
        if name.endswith(".num_batches_tracked"):
            if name in state:
                raise SystemExit(f"unexpected tensor {name} in the weights")
            state[name] = torch.zeros_like(buf)
    model.load_state_dict(state, strict=True)
    return model.eval()


def fuse_batch_norms(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, ConvBN):
            module.fuse()
    return model


# --- preprocessing and inference --------------------------------------------------

class Preprocess:
    """tread's Preprocess: to [0,1] floats, antialiased bilinear resize to
    size x size (skipped when already that size), normalise."""

    def __init__(self, spec: dict, channels_last: bool):
        self.size = int(spec["size"])
        self.mean = torch.tensor(spec["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        self.inv_std = 1.0 / torch.tensor(spec["std"], dtype=torch.float32).view(1, 3, 1, 1)
        self.channels_last = channels_last

    def __call__(self, body: bytes) -> torch.Tensor:
        image = Image.open(io.BytesIO(body))
        if image.width * image.height > MAX_PIXELS:
            raise ValueError(f"image of {image.width}x{image.height} pixels is too large")
        hwc = np.asarray(image.convert("RGB"))  # uint8 [h, w, 3]
        # [1, 3, h, w] with channels-last strides (a view of the HWC array),
        # as float in [0, 1]: to_tensor's values. The ops below keep strides.
        x = torch.from_numpy(hwc).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear",
                              antialias=True, align_corners=False)
        # (x - mean) / std, as torchvision's Normalize and tread (multiplying
        # by a precomputed 1/std differs by at most an ulp or so).
        x = x.sub_(self.mean).mul_(self.inv_std)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)


def prepare(model: nn.Module, optimize: str, channels_last: bool, size: int) -> nn.Module:
    """The model in one memory format, optimised, warmed up (compiled)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = copy.deepcopy(model).to(memory_format=fmt)
    x = torch.randn(1, 3, size, size).contiguous(memory_format=fmt)
    with torch.inference_mode():
        if optimize == "jit":
            with warnings.catch_warnings():  # TorchScript is deprecated for torch.compile
                warnings.simplefilter("ignore", FutureWarning)
                model = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, x)))
        elif optimize == "compile":
            eager = model
            model = torch.compile(model)
            try:
                model(x)
            except Exception as e:  # noqa: BLE001 - e.g. no C compiler for inductor
                print(f"torch.compile failed ({type(e).__name__}: {e}); serving eager",
                      file=sys.stderr)
                model = eager
        for _ in range(3):
            model(x)
    return model


def pick_memory_format(candidates: dict, size: int, rounds: int) -> tuple[bool, dict]:
    """Times the prepared models round-robin, one call each per round, so a
    burst of background load hits both alike; returns (channels_last, ms)."""
    times = {cl: [] for cl in candidates}
    inputs = {cl: torch.randn(1, 3, size, size).contiguous(
        memory_format=torch.channels_last if cl else torch.contiguous_format) for cl in candidates}
    with torch.inference_mode():
        for _ in range(rounds):
            for cl, model in candidates.items():
                t0 = time.perf_counter()
                model(inputs[cl])
                times[cl].append(time.perf_counter() - t0)
    ms = {cl: 1e3 * statistics.median(t) for cl, t in times.items()}
    return min(ms, key=ms.get), ms


# How forward passes are scheduled (--inference):
#   main (default): handler threads decode and preprocess their own request,
#     then queue the tensor for one inference loop on the process's main
#     thread, which runs one forward pass at a time, batching whatever queued
#     meanwhile (up to --max-batch, no waiting: what tread serve does with its
#     defaults --max-batch 16 --max-wait-ms 0). Why the main thread: measured
#     on the 2-core machine with torch 2.15 (OpenMP backend), resnet-small's
#     forward pass at 224 took 2.5 ms called from the main thread and 5.0 ms
#     called from any other thread (each non-main caller gets its own
#     OpenMP team), and preprocessing 0.58 vs 0.85 ms.
#   lock: the forward pass runs in the handler thread under a lock (serialised,
#     no batching, but on a non-main thread).
#   concurrent: handler threads run forward passes at once, each with its own
#     2-thread OpenMP team on the 2 cores (oversubscribed).
# Serialising keeps both intra-op threads for one pass at a time; decoding
# and preprocessing stay outside it, overlapping another request's pass.
class Job:
    __slots__ = ("x", "done", "probs", "error")

    def __init__(self, x: torch.Tensor):
        self.x, self.done, self.probs, self.error = x, threading.Event(), None, None


class Endpoint:
    def __init__(self, name: str, card: dict, model: nn.Module, preprocess: Preprocess,
                 inference: str, max_batch: int):
        self.name = name
        self.path = f"/endpoints/{name}/invocations"
        self.classes = card["classes"]
        self.version = card["version"]
        self.model = model
        self.preprocess = preprocess
        self.inference = inference
        self.max_batch = max_batch
        self.lock = threading.Lock()
        self.queue = queue.SimpleQueue()

    def forward(self, x: torch.Tensor) -> list:
        with torch.inference_mode():
            return torch.softmax(self.model(x), dim=1).tolist()

    def run_inference_loop(self) -> None:
        """The main thread's loop (--inference main): one pass at a time over
        everything queued, up to max_batch."""
        fmt = torch.channels_last if self.preprocess.channels_last else torch.contiguous_format
        while True:
            jobs = [self.queue.get()]
            while len(jobs) < self.max_batch:
                try:
                    jobs.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            try:
                x = jobs[0].x if len(jobs) == 1 else torch.cat([j.x for j in jobs]).contiguous(
                    memory_format=fmt)
                for job, probs in zip(jobs, self.forward(x)):
                    job.probs = probs
            except Exception as e:  # noqa: BLE001 - handed to each waiting request
                for job in jobs:
                    job.error = e
            for job in jobs:
                job.done.set()

    def infer(self, body: bytes) -> bytes:
        x = self.preprocess(body)
        if self.inference == "main":
            job = Job(x)
            self.queue.put(job)
            job.done.wait()
            if job.error is not None:
                raise job.error
            probs = job.probs
        elif self.inference == "lock":
            with self.lock:
                probs = self.forward(x)[0]
        else:
            probs = self.forward(x)[0]
        best = max(range(len(probs)), key=probs.__getitem__)
        # The same fields as tread's answer, so both bodies are alike.
        return json.dumps({"class": self.classes[best], "endpoint": self.name,
                           "model_version": self.version,
                           "probabilities": dict(zip(self.classes, probs))}).encode()


def handler_for(endpoint: Endpoint) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls on keep-alive

        def log_message(self, format, *args):  # noqa: A002 - no per-request logging
            pass

        def reply(self, status: int, body: bytes, content_type: str = "application/json"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def error(self, status: int, message: str):
            self.reply(status, json.dumps({"error": message}).encode())

        def do_GET(self):
            if self.path == "/ping":
                self.reply(HTTPStatus.OK, b"", "text/plain")
            else:
                self.error(HTTPStatus.NOT_FOUND, f"no route {self.path}")

        def do_POST(self):
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self.close_connection = True
                return self.error(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
            length = int(length)
            if length > MAX_BODY:
                self.close_connection = True
                return self.error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
            body = self.rfile.read(length)  # always consume, keeping the connection usable
            if self.path != endpoint.path:
                return self.error(HTTPStatus.NOT_FOUND, f"no endpoint at {self.path}")
            try:
                out = endpoint.infer(body)
            except Exception as e:  # undecodable or unsupported image
                return self.error(HTTPStatus.BAD_REQUEST, f"cannot read the image: {e}")
            self.reply(HTTPStatus.OK, out)

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="PyTorch serving baseline for tread")
    p.add_argument("--model", required=True, help="path to a tread model.tar.gz")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--name", default="model", help="endpoint name (default: model)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--memory-format", choices=("auto", "nchw", "channels-last"), default="auto",
                   help="auto: time both at startup, keep the faster (default)")
    p.add_argument("--optimize", choices=("eager", "compile", "jit"), default="eager",
                   help="eager (default): plain modules; compile: torch.compile (needs a C "
                        "compiler; a cold start compiles for ~30 s per memory format, longer "
                        "than bench/serve.sh waits; forward 3-5%% faster at batch 1, see the "
                        "docstring); jit: TorchScript trace+freeze+optimize_for_inference")
    p.add_argument("--no-fuse", action="store_true", help="keep batch norm as its own op")
    p.add_argument("--inference", choices=("main", "lock", "concurrent"), default="main",
                   help="where forward passes run (see the comment above class Job)")
    p.add_argument("--max-batch", type=int, default=16,
                   help="most queued requests in one forward pass with --inference main "
                        "(default 16, as tread serve; 1 with --optimize compile, whose "
                        "graphs are specialised to batch 1)")
    return p.parse_args()


def main() -> None:
    # Flush-to-zero + denormals-are-zero before any intra-op thread exists:
    # threads inherit the FP control register from the thread creating them.
    torch.set_flush_denormal(True)
    torch.set_num_threads(THREADS)
    torch.set_grad_enabled(False)
    args = parse_args()

    card, weights = read_artifact(args.model)
    model = build_model(card, weights)
    if not args.no_fuse:
        model = fuse_batch_norms(model)
    model.requires_grad_(False)
    size = int(card["input"]["size"])

    if args.memory_format == "auto":
        candidates = {cl: prepare(model, args.optimize, cl, size) for cl in (False, True)}
        rounds = 10 if card["architecture"] == "seed-cnn" else 40
        channels_last, ms = pick_memory_format(candidates, size, rounds)
        model = candidates[channels_last]
        print(f"forward at {size}x{size} ({args.optimize}): nchw {ms[False]:.2f} ms, "
              f"channels-last {ms[True]:.2f} ms", file=sys.stderr)
    else:
        channels_last = args.memory_format == "channels-last"
        model = prepare(model, args.optimize, channels_last, size)

    max_batch = 1 if args.optimize == "compile" else max(1, args.max_batch)
    endpoint = Endpoint(args.name, card, model, Preprocess(card["input"], channels_last),
                        args.inference, max_batch)
    print(f"{card['architecture']} {card['version']} ({len(card['classes'])} classes, "
          f"{size}x{size}) at http://{args.host}:{args.port}{endpoint.path}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'channels-last' if channels_last else 'nchw'}, "
          f"batch norm {'kept' if args.no_fuse else 'fused'}, {args.optimize}, "
          f"inference {args.inference}"
          f"{f' (max batch {max_batch})' if args.inference == 'main' else ''}", file=sys.stderr)

    server = Server((args.host, args.port), handler_for(endpoint))
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    print("ready", flush=True)
    try:
        if args.inference == "main":
            endpoint.run_inference_loop()
        else:
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
