#!/usr/bin/env python3
"""Which Fashion-MNIST pair makes a useful quality benchmark (fashion_pair.py)?

For each candidate pair, the draw fashion_pair.py writes (1028 + 828 images,
--seed 0), split 1500 train / 356 held-out at random (seeds 0, 1, 2), a small
CNN at the native 28x28: conv3x3(32)-BN-ReLU-maxpool2, conv3x3(64)-BN-ReLU-
maxpool2, linear(3136, 128)-ReLU, linear; Adam 1e-3, batch 64, --epochs epochs,
no augmentation; held-out accuracy of the last epoch. Images go through the
same normalisation as tread's preprocessing (grey -> RGB, [0,1], ImageNet
mean/std), without the resize. Runs in seconds per pair on one core:

    taskset -c 1 python pair_check.py [--pairs shirt:t-shirt,pullover:coat] [--epochs 15]

Prints one line per pair: mean accuracy, min and max over the seeds.
"""

import argparse
import statistics
import time

import torch
from torch import nn

import fashion_pair

CANDIDATES = ("shirt:t-shirt,pullover:coat,pullover:shirt,t-shirt:pullover,"
              "coat:dress,t-shirt:dress,sneaker:ankle-boot,sandal:sneaker")
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def small_cnn(classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, classes))


def run(x: torch.Tensor, y: torch.Tensor, seed: int, epochs: int) -> float:
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=g)
    train, held = order[:1500], order[1500:]
    torch.manual_seed(seed)
    model = small_cnn(int(y.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        perm = train[torch.randperm(len(train), generator=g)]
        for i in range(0, len(perm), 64):
            b = perm[i:i + 64]
            opt.zero_grad()
            loss_fn(model(x[b]), y[b]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return (model(x[held]).argmax(1) == y[held]).float().mean().item()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", default=CANDIDATES)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    pixels, labels = fashion_pair.load()
    all_images = torch.frombuffer(bytearray(pixels), dtype=torch.uint8).view(-1, 28, 28)
    for pair in args.pairs.split(","):
        classes = [fashion_pair.class_name(c) for c in pair.split(":")]
        drawn = fashion_pair.draw(labels, classes, list(fashion_pair.RECIPE_PAIR), 0)
        index = torch.tensor([i for d in drawn for i in d])
        y = torch.tensor([k for k, d in enumerate(drawn) for _ in d])
        x = all_images[index].float().div(255).unsqueeze(1).expand(-1, 3, -1, -1)
        x = ((x - MEAN) / STD).contiguous()
        t0 = time.perf_counter()
        accs = [run(x, y, int(s), args.epochs) for s in args.seeds.split(",")]
        print(f"{' / '.join(classes):22s} {100 * statistics.mean(accs):6.2f} %  "
              f"({100 * min(accs):.2f}-{100 * max(accs):.2f})  {time.perf_counter() - t0:.0f} s",
              flush=True)


if __name__ == "__main__":
    main()
