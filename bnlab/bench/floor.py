"""The arithmetic floor: an epoch's Dense-layer matrix products at this machine's float32 rate."""

from __future__ import annotations

import time

import numpy as np

from bnlab.bench.settings import BATCH_SIZE, DENSE_SHAPES


def measure_floor(images: int, *, batch_size: int = BATCH_SIZE, repeats: int = 20) -> dict:
    """The seconds an epoch's Dense-layer matrix products take at this machine's float32 rate.

    Per step and Dense kernel (n_in, n_out): the forward product x @ W, the kernel gradient
    x.T @ dy and, except for the first layer (whose input, the images, needs no gradient),
    the input gradient dy @ W.T; each is 2 x batch x n_in x n_out FLOPs. So an epoch is
    (3 x 2 x kernel weights - 2 x 784 x 300) x images FLOPs, a little under the usual
    3 x 2 x weights x images. Each product is timed with numpy (best of `repeats` loops) at
    its own shape; biases, BN, activations, the loss and the optimizer are left out.

    Returns:
        `formula`, `flops`, `seconds` (the floor), `gflops_per_second` and `products`
        (shape and seconds of each).
    """
    rng = np.random.default_rng(0)
    products = []
    for index, (n_in, n_out) in enumerate(DENSE_SHAPES):
        shapes = [((batch_size, n_in), (n_in, n_out)), ((n_in, batch_size), (batch_size, n_out))]
        if index > 0:
            shapes.append(((batch_size, n_out), (n_out, n_in)))
        for left, right in shapes:
            a = rng.standard_normal(left, dtype=np.float32)
            b = rng.standard_normal(right, dtype=np.float32)
            seconds = _best_matmul_time(a, b, repeats)
            products.append({"shape": f"{left} x {right}", "flops": 2 * left[0] * left[1] * right[1],
                             "seconds": seconds})
    steps = -(-images // batch_size)
    step_seconds = sum(p["seconds"] for p in products)
    weights = sum(n_in * n_out for n_in, n_out in DENSE_SHAPES)
    first = DENSE_SHAPES[0][0] * DENSE_SHAPES[0][1]
    flops = steps * sum(p["flops"] for p in products)
    return {"formula": f"(3 x 2 x {weights} kernel weights - 2 x {first}) x {steps * batch_size} images",
            "flops": flops, "seconds": steps * step_seconds,
            "gflops_per_second": flops / (steps * step_seconds) / 1e9, "products": products}


def _best_matmul_time(a: np.ndarray, b: np.ndarray, repeats: int, loops: int = 200) -> float:
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.float32)
    np.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(loops):
            np.matmul(a, b, out=out)
        best = min(best, (time.perf_counter() - started) / loops)
    return best
