"""Could torch beat XLA here? A PyTorch epoch of the same network, without Keras.

bn_before_activation (Linear without bias, BatchNorm1d, ReLU; 784-300-100-10), softmax
cross-entropy, SGD with momentum 0.9 (foreach), batch size 32, 60,000 random images (the
time does not depend on the pixels), one warm-up epoch then three timed ones, in this process:

    eager    one Python call per step, as PyTorch tutorials write it
    compile  the same step under `torch.compile` (inductor, CPU)

Keras's torch backend adds its own per-step work on top of this (bnlab's runner measured
11.7 s an epoch, README Speed), so this is the least a torch epoch can take here.

Usage:
    python benchmarks/torch_epoch.py eager compile --threads 2
"""

from __future__ import annotations

import argparse
import time

BATCH_SIZE = 32
IMAGES = 60_000


def measure(mode: str, threads: int, epochs: int = 4) -> list[float]:
    """Seconds of each epoch of `mode` (the first one warms up or compiles)."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    x, y = torch.rand(IMAGES, 784), torch.randint(0, 10, (IMAGES,))
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 300, bias=False), torch.nn.BatchNorm1d(300), torch.nn.ReLU(),
        torch.nn.Linear(300, 100, bias=False), torch.nn.BatchNorm1d(100), torch.nn.ReLU(),
        torch.nn.Linear(100, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, foreach=True)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(x_batch, y_batch):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x_batch), y_batch)
        loss.backward()
        optimizer.step()
        return loss

    if mode == "compile":
        step = torch.compile(step)
    seconds = []
    for _ in range(epochs):
        order = torch.randperm(IMAGES)
        started = time.perf_counter()
        x_epoch, y_epoch = x[order], y[order]
        for start in range(0, IMAGES, BATCH_SIZE):
            step(x_epoch[start:start + BATCH_SIZE], y_epoch[start:start + BATCH_SIZE])
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modes", nargs="+", choices=("eager", "compile"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for mode in args.modes:
        seconds = measure(mode, args.threads)
        print(f"{mode:<8} threads {args.threads}  warm-up {seconds[0]:.3f}  timed "
              f"{' '.join(f'{s:.3f}' for s in seconds[1:])}", flush=True)


if __name__ == "__main__":
    main()
