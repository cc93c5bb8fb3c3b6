"""Where does a JAX epoch go? Keras's fit against two loops of its own `train_step`, and XLA's matmuls.

One mode per process (KERAS_BACKEND=jax); bn_before_activation, SGD (0.01, momentum 0.9),
batch size 32, all 60,000 MNIST training images, one warm-up epoch then three timed ones:

    fit          Keras `fit` with bnlab's settings (steps_per_execution 64, jit_compile)
    loop         `jax.jit(model.train_step)` called once per batch from Python, batches on device
    scan         one `jax.jit` program per epoch: `jax.lax.scan` of `model.train_step` over the
                 epoch's batches, gathered on the device from a fresh permutation each epoch
    pure         no Keras: the same network, BN (batch statistics, no moving averages), softmax
                 cross-entropy and SGD with momentum written in plain JAX, scanned the same
                 way (the least a JAX epoch can take with XLA's CPU code)
    pure_sgd     `pure` with plain SGD: what the momentum update costs
    pure_no_bn   `pure` without BN (a bias instead): what BN costs
    matmul_only  the floor's eight Dense-layer products per step, alone, scanned the same way
                 (what XLA's CPU code takes for the matmuls, against numpy's floor)

Usage:
    python benchmarks/jax_epoch_paths.py fit scan pure matmul_only --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

MODES = ("fit", "loop", "scan", "pure", "pure_sgd", "pure_no_bn", "matmul_only")
BATCH_SIZE = 32


def measure(mode: str, epochs: int = 4) -> list[float]:
    """Seconds of each epoch (the first one compiles) of `mode`, in this process."""
    import jax
    import keras

    from bnlab.data.mnist import load_mnist
    from bnlab.data.splits import split_mnist
    from bnlab.models.builders import build_model
    from bnlab.models.variants import preprocess_input

    splits = split_mnist(load_mnist(), validation="test")
    x = preprocess_input("bn_before_activation", splits.x_train)
    y = splits.y_train.astype("int32")
    steps = len(x) // BATCH_SIZE
    if mode == "matmul_only":
        return _matmul_only(steps, epochs)
    if mode.startswith("pure"):
        return _pure(x.reshape(len(x), -1), y, steps, epochs, momentum=mode != "pure_sgd", bn=mode != "pure_no_bn")
    keras.utils.set_random_seed(0)
    model = build_model("bn_before_activation")
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], steps_per_execution=64, jit_compile=True)
    if mode == "fit":
        seconds = []
        timer = keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs: seconds.append(-time.perf_counter()),
            on_epoch_end=lambda epoch, logs: seconds.__setitem__(-1, seconds[-1] + time.perf_counter()))
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, verbose=0, callbacks=[timer])
        return seconds
    model.fit(x[:BATCH_SIZE], y[:BATCH_SIZE], batch_size=BATCH_SIZE, epochs=1, verbose=0)  # builds the state
    state = tuple([v.value for v in variables] for variables in (
        model.trainable_variables, model.non_trainable_variables, model.optimizer.variables,
        model.metrics_variables))
    x_device, y_device = jax.numpy.asarray(x), jax.numpy.asarray(y)
    if mode == "loop":
        step = jax.jit(model.train_step, donate_argnums=0)
    else:
        def epoch_step(state, x_batches, y_batches):
            def body(state, batch):
                return model.train_step(state, batch)[1], None
            return jax.lax.scan(body, state, (x_batches, y_batches))[0]
        step = jax.jit(epoch_step, donate_argnums=0)
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        x_batches, y_batches = _shuffled_batches(x_device, y_device, steps)
        if mode == "loop":
            for index in range(steps):
                _, state = step(state, (x_batches[index], y_batches[index]))
        else:
            state = step(state, x_batches, y_batches)
        jax.block_until_ready(state)
        seconds.append(time.perf_counter() - started)
    return seconds


def _shuffled_batches(x_device, y_device, steps: int):
    """An epoch's batches, (steps, BATCH_SIZE, ...), gathered on the device from a fresh permutation."""
    import jax
    import numpy as np

    order = np.random.permutation(len(x_device))[:steps * BATCH_SIZE].reshape(steps, BATCH_SIZE)
    order = jax.numpy.asarray(order)
    return x_device[order], y_device[order]


def _matmul_only(steps: int, epochs: int) -> list[float]:
    import jax
    import numpy as np

    shapes = ((784, 300), (300, 100), (100, 10))
    rng = np.random.default_rng(0)
    kernels = [jax.numpy.asarray(rng.standard_normal(shape, dtype=np.float32)) for shape in shapes]
    batches = jax.numpy.asarray(rng.standard_normal((steps, BATCH_SIZE, 784), dtype=np.float32))

    def body(kernels, x):
        activations = [x]
        for kernel in kernels:
            activations.append(activations[-1] @ kernel)  # forward: x @ W
        gradient, updated = activations[-1], []
        for index in reversed(range(3)):
            updated.append(kernels[index] - 1e-9 * (activations[index].T @ gradient))  # kernel gradient
            if index > 0:
                gradient = gradient @ kernels[index].T  # input gradient, not for the images
        return updated[::-1], None

    epoch = jax.jit(lambda kernels, batches: jax.lax.scan(body, kernels, batches)[0])
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        kernels = jax.block_until_ready(epoch(kernels, batches))
        seconds.append(time.perf_counter() - started)
    return seconds


def _pure(x, y, steps: int, epochs: int, momentum: bool = True, bn: bool = True) -> list[float]:
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    shapes = ((784, 300), (300, 100), (100, 10))
    params = [(jnp.asarray(rng.normal(0, 0.05, shape).astype(np.float32)), jnp.zeros(shape[1], jnp.float32))
              for shape in shapes]  # (kernel, BN offset or the output bias)
    velocity = jax.tree.map(jnp.zeros_like, params)

    def loss(params, x, y):
        for index, (kernel, offset) in enumerate(params):
            x = x @ kernel
            if index < 2 and bn:  # BN before the ReLU: batch statistics, then the offset
                x = jax.nn.relu((x - x.mean(0)) / jnp.sqrt(x.var(0) + 1e-3) + offset)
            elif index < 2:
                x = jax.nn.relu(x + offset)
            else:
                x = x + offset
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(x), y[:, None], axis=1))

    def body(state, batch):
        params, velocity = state
        gradients = jax.grad(loss)(params, *batch)
        if not momentum:
            return (jax.tree.map(lambda p, g: p - 0.01 * g, params, gradients), velocity), None
        velocity = jax.tree.map(lambda v, g: 0.9 * v - 0.01 * g, velocity, gradients)
        return (jax.tree.map(jnp.add, params, velocity), velocity), None

    epoch = jax.jit(lambda state, xs, ys: jax.lax.scan(body, state, (xs, ys))[0], donate_argnums=0)
    x_device, y_device = jnp.asarray(x), jnp.asarray(y)
    state, seconds = (params, velocity), []
    for _ in range(epochs):
        started = time.perf_counter()
        state = jax.block_until_ready(epoch(state, *_shuffled_batches(x_device, y_device, steps)))
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modes", nargs="+", choices=MODES)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--worker", action="store_true")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.modes[0])))
        return
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    for index in range(args.rounds):
        for mode in args.modes if index % 2 == 0 else args.modes[::-1]:
            done = subprocess.run([sys.executable, __file__, "--worker", mode], env=env,
                                  capture_output=True, text=True, check=True)
            seconds = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"round {index + 1} {mode:<12} warm-up {seconds[0]:.3f}  timed "
                  f"{' '.join(f'{s:.3f}' for s in seconds[1:])}", flush=True)


if __name__ == "__main__":
    main()
