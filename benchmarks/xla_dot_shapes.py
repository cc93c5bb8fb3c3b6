"""XLA's CPU matmuls against numpy's at each of the floor's eight product shapes (batch size 32).

Each product is compiled by XLA as a loop of 500 dependent products (a tiny add keeps XLA
from hoisting it, and the output accumulates, so each product also reads and writes its
output once), best of 10 calls, next to the numpy time the floor uses. Run it under different
XLA_FLAGS to compare XLA's CPU options, e.g.

    python benchmarks/xla_dot_shapes.py
    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT python benchmarks/xla_dot_shapes.py
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from bnlab.bench.floor import measure_floor

LOOPS = 500


def xla_seconds(left: tuple[int, int], right: tuple[int, int], rng) -> float:
    a = jnp.asarray(rng.standard_normal(left, dtype=np.float32))
    b = jnp.asarray(rng.standard_normal(right, dtype=np.float32))

    @jax.jit
    def loop(a, b):
        def body(_, total):
            return total + (a + total[0, 0] * 1e-30) @ b
        return jax.lax.fori_loop(0, LOOPS, body, jnp.zeros((left[0], right[1]), jnp.float32))

    jax.block_until_ready(loop(a, b))
    best = float("inf")
    for _ in range(10):
        started = time.perf_counter()
        jax.block_until_ready(loop(a, b))
        best = min(best, (time.perf_counter() - started) / LOOPS)
    return best


def main() -> None:
    floor = measure_floor(60000)
    print(f"numpy floor {floor['seconds']:.3f} s per epoch ({floor['gflops_per_second']:.1f} GFLOP/s)")
    rng = np.random.default_rng(0)
    total = 0.0
    for product in floor["products"]:
        left, right = (tuple(int(n) for n in side.strip(" ()").split(",")) for side in product["shape"].split(" x "))
        seconds = xla_seconds(left, right, rng)
        total += seconds
        print(f"{product['shape']:<28} numpy {product['seconds'] * 1e6:6.1f} us  xla {seconds * 1e6:6.1f} us  "
              f"ratio {seconds / product['seconds']:.2f}")
    print(f"xla, all eight per step {total * 1e6:.1f} us: {total * 1875:.3f} s per epoch of 1,875 steps")


if __name__ == "__main__":
    main()
