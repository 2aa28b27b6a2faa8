#!/usr/bin/env python3
"""PyTorch reference for tread's training quality: one recipe, from a folder.

Trains an image classifier from DIR/<class>/<image> with exactly the recipe
tread's `tread train` follows (issue 14), so held-out accuracies can be
compared run for run (bench/train-quality.sh):

  split      seeded random split of all images: --split 1500,356 (counts, or
             fractions 0.8,0.2), then --val 0.1 of the train split (150
             images) carved off for validation (0: none, no early stopping).
  preprocess as tread (crates/data/src/transform.rs): decode, RGB, to float
             [0,1], Resize((size, size), bilinear, antialias) on the floats,
             Normalize(ImageNet mean/std). --size 112.
  augment    training images only (--augment, the default; --no-augment):
             RandomResizedCrop(size, scale=(0.5, 1), ratio=(3/4, 4/3)) on the
             float [0,1] image at its own resolution (--crop-from original;
             `resized` crops the size x size image instead), resized to size
             (bilinear, antialias); horizontal flip p=0.5 (with --turn, not
             tread's recipe: also a vertical flip p=0.5 and a transpose
             p=0.5, the square's 8 symmetries); brightness
             x*b, b~U[0.8,1.2]; contrast (x-m)*c+m, c~U[0.8,1.2], m the mean of
             the image's grey 0.299R+0.587G+0.114B (after brightness); clamp to
             [0,1]; Normalize. Crop parameters as torchvision's get_params (10
             tries, then the centre crop of the clamped ratio).
  optimise   AdamW(lr 2e-3, betas 0.9/0.999, eps 1e-8, weight_decay 0.05 on
             every parameter, biases and batch norm included), batch 64 (the
             last batch of an epoch may be smaller), label smoothing 0.1.
  schedule   per step s = 0..T-1 (T = epochs x steps per epoch, W = warm-up
             epochs x steps per epoch): lr*(s+1)/W while s < W, then
             lr*(1+cos(pi*(s-W)/(T-1-W)))/2, 0 at the last step of the last
             epoch. Planned over --epochs even when early stopping ends first.
  stopping   after each epoch: accuracy and mean cross-entropy (label
             smoothed as in training) on the validation part, eval mode, no
             augmentation; the weights of the lowest validation loss are kept
             (ties: higher accuracy), as tread keeps them; every epoch runs
             unless --patience N stops after N epochs without a lower loss
             (tread's default too); then the held-out split is evaluated
             ONCE with the best weights.

Networks (--arch): resnet-small (bench/serve/pytorch_server.py's replica of
crates/nn/src/network.rs, same parameter names, PyTorch's default init as
tread's crates/nn/src/init.rs), seed-cnn (the recipe's network, head sized for
--size and the classes), resnet18 (torchvision, weights=None), resnet18-no-maxpool
(the same without the stem's max-pool, for small inputs). --recipe gives
the recipe's original settings (for seed-cnn): Adam 1e-3, no schedule, no
augmentation, no label smoothing, no validation, 2 epochs, size 224; any flag
given as well overrides them.

PyTorch at its best on the 2-core machine, as bench/train/pytorch_seed_cnn.py:
2 threads, flush-to-zero set before any intra-op thread exists, the faster
memory format (--memory-format auto: a few training steps of a throwaway copy
in NCHW and in channels-last on random data, before the clock for training
starts), all images decoded and resized into memory before training (the
augmented crops are cut from the decoded originals each epoch), no DataLoader
workers (both cores compute), and malloc thresholds raised by the caller:
    MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=17179869184 \\
        python pytorch_recipe.py DIR --arch resnet-small --seed 0

Output: a JSON line per epoch while it runs ({"epoch": ...}) and one summary
line at the end (the last line of stdout): arch, seed, epochs_run,
best_epoch, heldout_accuracy, confusion (rows: true class, columns:
predicted, in `classes` order), wall seconds (total, load, train: the epoch
loop with its validation passes), seconds per epoch, training images/s, and
the configuration. --draws DIR trains on tread's own draws for the seed (its
split, each epoch's order, its initial weights; written by bench/train-bench's
tread-bench-draws), so the two frameworks differ in their arithmetic alone.
--mistakes FILE also writes the held-out images the kept
model gets wrong, one JSON line each, to look at.
"""

import argparse
import copy
import json
import math
import os
import random
import sys
import time

STARTED = time.perf_counter()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from torch import nn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "serve"))
import pytorch_server  # noqa: E402  (the networks: resnet-small and seed-cnn, as tread's)

THREADS = 2
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
ARCHS = ("resnet-small", "seed-cnn", "resnet18", "resnet18-no-maxpool")
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
# The recipe's original settings, given by --recipe (flags given override).
RECIPE = dict(optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="constant",
              warmup_epochs=0.0, augment=False, label_smoothing=0.0, val=0.0,
              epochs=2, patience=0, size=224)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="PyTorch training with tread's recipe, from a folder")
    p.add_argument("data", help="directory with one folder of images per class")
    p.add_argument("--arch", choices=ARCHS, default="resnet-small")
    p.add_argument("--recipe", action="store_true",
                   help="the recipe's original settings: Adam 1e-3, constant lr, no augmentation, "
                        "no smoothing, no validation, 2 epochs, size 224 (flags given override)")
    p.add_argument("--seed", type=int, default=0, help="split, shuffles, augmentation, init")
    p.add_argument("--split", default="1500,356", help="train,held-out: counts or fractions")
    p.add_argument("--val", type=float, default=0.1,
                   help="share of the train split for validation (0: none, no early stopping)")
    p.add_argument("--size", type=int, default=112, help="side of the network input")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                   help="augment training images (--no-augment: off)")
    p.add_argument("--crop-from", choices=("original", "resized"), default="original",
                   help="RandomResizedCrop on the decoded image (default) or on the "
                        "size x size one")
    p.add_argument("--turn", action="store_true",
                   help="also flip crops upside down and turn them a quarter at random "
                        "(the 8 symmetries of the square): a tyre photo has no up")
    p.add_argument("--optimizer", choices=("adamw", "adam"), default="adamw")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--betas", default="0.9,0.999")
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--weight-decay", type=float, default=0.05,
                   help="decoupled (AdamW) on every parameter; with --optimizer adam, L2")
    p.add_argument("--batch-size", "--batch", type=int, default=64)
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                   help="per step: linear warm-up then cosine to 0 (default), or constant")
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=0,
                   help="stop after this many epochs without a better validation score "
                        "(0: never stop early)")
    p.add_argument("--memory-format", choices=("auto", "nchw", "channels-last"), default="auto",
                   help="auto: time a few training steps in each, keep the faster")
    p.add_argument("--threads", type=int, default=THREADS)
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.add_argument("--draws", metavar="DIR",
                   help="tread's draws for this seed (bench/train-bench's tread-bench-draws: "
                        "draws.json and init.safetensors): its split, each epoch's order and "
                        "initial weights instead of this script's own")
    p.add_argument("--mistakes", metavar="FILE",
                   help="write the held-out images the kept model gets wrong here, "
                        "one JSON line each (path, true class, predicted class, its probability)")
    argv = sys.argv[1:] if argv is None else argv
    first, _ = p.parse_known_args(argv)
    if first.recipe:
        p.set_defaults(**RECIPE)
    args = p.parse_args(argv)
    args.betas = tuple(float(b) for b in args.betas.split(","))
    if not 0 <= args.val < 1 or args.epochs < 1 or args.batch_size < 1:
        p.error("--val must be in [0, 1), --epochs and --batch-size >= 1")
    return args


# --- data -------------------------------------------------------------------------

def list_images(root: str) -> tuple[list[str], list[tuple[str, int]]]:
    """Classes (sorted folder names) and (path, label) of every image, sorted."""
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
                     and not d.startswith("."))
    items = []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        for f in sorted(os.listdir(folder)):
            if f.lower().endswith(EXTENSIONS) and not f.startswith("."):
                items.append((os.path.join(folder, f), label))
    if len(classes) < 2 or not items:
        raise SystemExit(f"{root}: need at least two class folders with images")
    return classes, items


def read_draws(folder: str, data: str, classes: list[str], items: list, epochs: int) -> dict:
    """tread's draws (tread-bench-draws), checked to name the same images
    (its sample i must be this script's item i) and to order every epoch."""
    with open(os.path.join(folder, "draws.json")) as f:
        draws = json.load(f)
    keys = [os.path.relpath(path, data).replace(os.sep, "/") for path, _ in items]
    if draws["classes"] != classes or draws["keys"] != keys:
        raise SystemExit(f"{folder}: tread listed other images or classes than {data} holds")
    if len(draws["orders"]) < epochs:
        raise SystemExit(f"{folder}: orders for {len(draws['orders'])} epochs, {epochs} asked")
    return draws


def split_sizes(spec: str, n: int) -> tuple[int, int]:
    """Counts (1500,356) or fractions (0.8,0.2) of n images, as tread's --split."""
    parts = spec.split(",")
    if len(parts) != 2:
        raise SystemExit(f"--split {spec}: give train,held-out")
    if any("." in v for v in parts):
        a, b = (float(v) for v in parts)
        train = round(a * n)
        return train, min(n - train, round(b * n))
    train, held = (int(v) for v in parts)
    if train + held > n:
        raise SystemExit(f"--split {spec}: {train + held} images asked, the dataset has {n}")
    return train, held


def decode(path: str) -> torch.Tensor:
    """uint8 [3, h, w]: PIL decode, convert("RGB") (grey replicated, alpha dropped)."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8) \
        .view(rgb.height, rgb.width, 3).permute(2, 0, 1).contiguous()


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Float [3, h, w] -> [3, size, size], bilinear antialiased (tread's resize);
    unchanged when already that size, as tread."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x.unsqueeze(0), size=(size, size), mode="bilinear",
                         antialias=True, align_corners=False).squeeze(0)


class Normalize:
    def __init__(self):
        self.mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(STD).view(1, 3, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Augment:
    """The recipe's training augmentation on float [0,1] images; its own generator."""

    def __init__(self, size: int, seed: int, crop_from: str, turn: bool):
        self.size = size
        self.turn = turn
        self.g = torch.Generator().manual_seed(seed)
        self.crop_from = crop_from
        self.grey = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * torch.rand((), generator=self.g).item()

    def randint(self, lo: int, hi: int) -> int:  # inclusive
        return int(torch.randint(lo, hi + 1, (), generator=self.g).item())

    def crop_box(self, h: int, w: int) -> tuple[int, int, int, int]:
        """torchvision's RandomResizedCrop.get_params, scale (0.5, 1), ratio (3/4, 4/3)."""
        area = h * w
        log_lo, log_hi = math.log(3 / 4), math.log(4 / 3)
        for _ in range(10):
            target = area * self.uniform(0.5, 1.0)
            ratio = math.exp(self.uniform(log_lo, log_hi))
            cw = int(round(math.sqrt(target * ratio)))
            ch = int(round(math.sqrt(target / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                return self.randint(0, h - ch), self.randint(0, w - cw), ch, cw
        in_ratio = w / h
        if in_ratio < 3 / 4:
            cw, ch = w, int(round(w / (3 / 4)))
        elif in_ratio > 4 / 3:
            ch, cw = h, int(round(h * (4 / 3)))
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __call__(self, images: list[torch.Tensor]) -> torch.Tensor:
        """[n, 3, size, size] from float [0,1] images of any size."""
        out = []
        for x in images:
            i, j, ch, cw = self.crop_box(x.shape[-2], x.shape[-1])
            x = x[:, i:i + ch, j:j + cw]
            x = F.interpolate(x.unsqueeze(0), size=(self.size, self.size), mode="bilinear",
                              antialias=True, align_corners=False)
            if torch.rand((), generator=self.g).item() < 0.5:
                x = x.flip(-1)
            if self.turn:
                if torch.rand((), generator=self.g).item() < 0.5:
                    x = x.flip(-2)
                if torch.rand((), generator=self.g).item() < 0.5:
                    x = x.transpose(-1, -2)
            out.append(x)
        x = torch.cat(out)
        n = x.shape[0]
        b = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=self.g)
        c = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=self.g)
        x = x * b
        m = (x * self.grey).sum(1, keepdim=True).mean((2, 3), keepdim=True)
        x = (x - m) * c + m
        return x.clamp_(0.0, 1.0)


# --- networks ---------------------------------------------------------------------

def build(arch: str, classes: int, size: int) -> nn.Module:
    if arch.startswith("resnet18"):
        import torchvision
        model = torchvision.models.resnet18(weights=None, num_classes=classes)
        if arch == "resnet18-no-maxpool":
            # For inputs far below ImageNet's 224 px: the stem's max-pool
            # halves 96 px to 24 before the first block; without it the
            # blocks see 48 px, so a defect of a few pixels survives.
            model.maxpool = nn.Identity()
        return model
    return pytorch_server.ARCHITECTURES[arch](classes, size)


def memory_format_of(name: str):
    return torch.channels_last if name == "channels-last" else torch.contiguous_format


def pick_memory_format(model: nn.Module, args, classes: int) -> tuple[str, dict]:
    """The faster of 2 training steps (after 1 untimed) of a throwaway copy
    per format: 6 steps in all, outside the training clock (a few seconds for
    resnet-small at 112, ~30 s for seed-cnn at 224)."""
    g = torch.Generator().manual_seed(12345)
    times = {}
    for name in ("nchw", "channels-last"):
        fmt = memory_format_of(name)
        probe = copy.deepcopy(model).to(memory_format=fmt).train()
        opt = torch.optim.AdamW(probe.parameters(), lr=1e-4)
        x = torch.randn(args.batch_size, 3, args.size, args.size, generator=g) \
            .contiguous(memory_format=fmt)
        y = torch.randint(0, classes, (args.batch_size,), generator=g)
        steps = []
        for _ in range(3):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(probe(x), y).backward()
            opt.step()
            steps.append(time.perf_counter() - t0)
        times[name] = min(steps[1:])
        del probe, opt
    return min(times, key=times.get), times


# --- training ---------------------------------------------------------------------

def lr_at(step: int, total: int, warmup: int, base: float, schedule: str) -> float:
    if schedule == "constant":
        return base
    if step < warmup:
        return base * (step + 1) / warmup
    span = total - 1 - warmup
    if span <= 0:
        return base
    return base * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / span))


def evaluate(model, x: torch.Tensor, y: torch.Tensor, fmt, classes: int, batch: int = 256,
             smoothing: float = 0.0):
    """(accuracy, mean cross-entropy with `smoothing`, confusion rows=true
    cols=predicted, class probabilities per image)."""
    model.eval()
    confusion = torch.zeros(classes, classes, dtype=torch.long)
    loss = 0.0
    probs = []
    with torch.inference_mode():
        for i in range(0, len(y), batch):
            xb = x[i:i + batch].contiguous(memory_format=fmt)
            logits = model(xb)
            loss += F.cross_entropy(logits, y[i:i + batch], reduction="sum",
                                    label_smoothing=smoothing).item()
            probs.append(F.softmax(logits, 1))
            pred = logits.argmax(1)
            confusion += torch.bincount(y[i:i + batch] * classes + pred,
                                        minlength=classes * classes).view(classes, classes)
    n = max(1, len(y))
    probs = torch.cat(probs) if probs else torch.zeros(0, classes)
    return confusion.trace().item() / n, loss / n, confusion, probs


def write_mistakes(path: str, probs: torch.Tensor, held: list, classes: list) -> None:
    """One JSON line per held-out image the model gets wrong, to look at."""
    with open(path, "w") as out:
        for (image, label), p in zip(held, probs):
            pred = int(p.argmax())
            if pred != label:
                out.write(json.dumps({"path": image, "class": classes[label],
                                      "predicted": classes[pred],
                                      "probability": round(float(p[pred]), 3)}) + "\n")


def main() -> None:
    # Flush-to-zero before any intra-op thread exists (threads inherit the FP
    # control register); denormal gradients otherwise slow steps several-fold.
    flush_denormal = torch.set_flush_denormal(True)
    args = parse_args()
    torch.set_num_threads(args.threads)

    # Split (Python's RNG, seeded): train / held-out, then validation from train.
    classes, items = list_images(args.data)
    k = len(classes)
    draws = read_draws(args.draws, args.data, classes, items, args.epochs) if args.draws else None
    if draws:
        train_idx, val_idx, held_idx = draws["train"], draws["validation"], draws["test"]
    else:
        n_train, n_held = split_sizes(args.split, len(items))
        order = list(range(len(items)))
        random.Random(args.seed).shuffle(order)
        train_idx, held_idx = order[:n_train], order[n_train:n_train + n_held]
        n_val = round(args.val * n_train)
        val_idx, train_idx = train_idx[:n_val], train_idx[n_val:]
    n_val = len(val_idx)

    # Decode everything once; resized [0,1] copies for the unaugmented paths.
    t_load = time.perf_counter()
    keep_originals = args.augment and args.crop_from == "original"
    needed = sorted(set(train_idx + val_idx + held_idx))
    decoded = {i: decode(items[i][0]) for i in needed}
    # The training images' resized copies are only used without the crop
    # from the originals.
    fixed = needed if not keep_originals else sorted(set(val_idx + held_idx))
    resized = {i: resize(decoded[i].float().div_(255), args.size) for i in fixed}
    if not keep_originals:
        decoded = None
    normalize = Normalize()
    labels = torch.tensor([lab for _, lab in items])

    def stack(idx):
        return (normalize(torch.stack([resized[i] for i in idx])) if idx
                else torch.zeros(0, 3, args.size, args.size)), labels[idx]

    x_val, y_val = stack(val_idx)
    x_held, y_held = stack(held_idx)
    x_train_fixed = None if args.augment else stack(train_idx)[0]
    load_s = time.perf_counter() - t_load

    torch.manual_seed(args.seed)
    model = build(args.arch, k, args.size)
    if draws:
        model.load_state_dict(load_file(os.path.join(args.draws, "init.safetensors")))
    if args.memory_format == "auto":
        fmt_name, probe_s = pick_memory_format(model, args, k)
    else:
        fmt_name, probe_s = args.memory_format, None
    fmt = memory_format_of(fmt_name)
    model = model.to(memory_format=fmt)

    if args.optimizer == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=args.betas,
                                eps=args.eps, weight_decay=args.weight_decay)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=args.betas,
                               eps=args.eps, weight_decay=args.weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    augment = Augment(args.size, args.seed + 1, args.crop_from, args.turn) if args.augment else None
    shuffle = torch.Generator().manual_seed(args.seed + 2)
    steps_per_epoch = math.ceil(len(train_idx) / args.batch_size)
    total_steps = steps_per_epoch * args.epochs
    warmup_steps = round(args.warmup_epochs * steps_per_epoch)

    best = {"acc": -1.0, "loss": math.inf, "epoch": 0, "state": None}
    epochs_run, step, since_best = 0, 0, 0
    pass_s = 0.0
    t_train = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        if draws:
            position = {i: p for p, i in enumerate(train_idx)}
            perm = [position[i] for i in draws["orders"][epoch - 1]]
        else:
            perm = torch.randperm(len(train_idx), generator=shuffle).tolist()
        seen, loss_sum, correct = 0, 0.0, 0
        for s in range(0, len(perm), args.batch_size):
            batch = perm[s:s + args.batch_size]
            idx = [train_idx[b] for b in batch]
            if augment is None:
                xb = x_train_fixed[batch]
            elif keep_originals:
                xb = normalize(augment([decoded[i].float().div_(255) for i in idx]))
            else:
                xb = normalize(augment([resized[i] for i in idx]))
            yb = labels[idx]
            xb = xb.contiguous(memory_format=fmt)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total_steps, warmup_steps, args.lr, args.schedule)
            opt.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            opt.step()
            step += 1
            seen += len(batch)
            loss_sum += loss.item() * len(batch)
            correct += (logits.argmax(1) == yb).sum().item()
        epoch_pass = time.perf_counter() - t0
        pass_s += epoch_pass
        epochs_run = epoch
        line = {"epoch": epoch, "loss": round(loss_sum / seen, 4),
                "train_accuracy": round(correct / seen, 4),
                "lr_end": opt.param_groups[0]["lr"], "pass_s": round(epoch_pass, 2)}
        if n_val:
            acc, vloss, _, _ = evaluate(model, x_val, y_val, fmt, k,
                                        smoothing=args.label_smoothing)
            better = vloss < best["loss"] or (vloss == best["loss"] and acc > best["acc"])
            if better:
                best = {"acc": acc, "loss": vloss, "epoch": epoch,
                        "state": copy.deepcopy(model.state_dict())}
                since_best = 0
            else:
                since_best += 1
            line.update(val_accuracy=round(acc, 4), val_loss=round(vloss, 4), best=better)
        line["seconds"] = round(time.perf_counter() - t0, 2)
        if not args.quiet:
            print(json.dumps(line), flush=True)
        if n_val and args.patience > 0 and since_best >= args.patience:
            break
    train_s = time.perf_counter() - t_train

    if best["state"] is not None:
        model.load_state_dict(best["state"])
    else:
        best["epoch"] = epochs_run
    acc, held_loss, confusion, held_probs = evaluate(model, x_held, y_held, fmt, k)
    if args.mistakes:
        write_mistakes(args.mistakes, held_probs, [items[i] for i in held_idx], classes)

    summary = {
        "framework": "pytorch", "torch": torch.__version__, "arch": args.arch,
        "seed": args.seed, "data": os.path.abspath(args.data), "classes": classes,
        "images": {"train": len(train_idx), "val": n_val, "heldout": len(held_idx)},
        "epochs_run": epochs_run, "best_epoch": best["epoch"],
        "best_val_accuracy": None if not n_val else round(best["acc"], 4),
        "heldout_accuracy": round(acc, 4), "heldout_loss": round(held_loss, 4),
        "confusion": confusion.tolist(),
        "wall_s": round(time.perf_counter() - STARTED, 2),
        "load_s": round(load_s, 2), "train_s": round(train_s, 2),
        "seconds_per_epoch": round(train_s / epochs_run, 2),
        "images_per_s": round(len(train_idx) * epochs_run / pass_s, 1),
        "memory_format": fmt_name,
        "memory_format_probe_step_s": probe_s and {f: round(t, 4) for f, t in probe_s.items()},
        "config": {
            "recipe": args.recipe, "draws": "tread" if args.draws else "own",
            "split": args.split, "val": args.val, "size": args.size,
            "augment": args.augment, "crop_from": args.crop_from if args.augment else None,
            "turn": args.turn,
            "optimizer": args.optimizer, "lr": args.lr, "betas": list(args.betas),
            "eps": args.eps, "weight_decay": args.weight_decay, "batch_size": args.batch_size,
            "schedule": args.schedule, "warmup_epochs": args.warmup_epochs,
            "label_smoothing": args.label_smoothing, "epochs": args.epochs,
            "patience": args.patience, "steps_per_epoch": steps_per_epoch,
        },
        "threads": torch.get_num_threads(), "flush_denormal": flush_denormal,
        "malloc_env": {name: os.environ.get(name) for name in MALLOC_ENV},
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
