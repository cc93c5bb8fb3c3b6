"""Scale invariance and weight decay: which kernels batch normalization makes scale invariant, how their
norms and effective learning rates move in training, and weight decay restricted to the kernels.

A kernel W whose output goes straight into a batch-statistics normalization layer is scale invariant
in training: BN(c W x) = BN(W x) for any c > 0 (up to BN's epsilon), so the loss gradient with respect
to c W is the gradient with respect to W divided by c (van Laarhoven 2017, sec. 2). A step of SGD then
turns W by an angle that scales with the effective learning rate lr / |W|**2 (van Laarhoven 2017, sec. 3;
Hoffer, Banner, Golan & Soudry 2018, "Norm matters", sec. 2): weight decay does not regularize such a
kernel, it keeps its norm, and so its effective learning rate, from drifting.

Example:
    >>> optimizer = keras.optimizers.SGD(0.1, weight_decay=5e-4)
    >>> restrict_weight_decay(model, optimizer, on="normalized_kernels")
    >>> norms = KernelNorms(every_n_steps=100)
    >>> model.compile(optimizer, "sparse_categorical_crossentropy")
    >>> model.fit(x, y, callbacks=[norms]); norms.as_frame().query("normalized")
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd

WEIGHT_DECAY_CHOICES = ("all", "kernels", "normalized_kernels")
COLUMNS = ("step", "layer", "kernel_norm", "effective_learning_rate", "angle_degrees", "steps_between", "normalized")


def _kernel(layer):
    """The layer's `kernel` weight (Dense, convolutions, bnlab's WeightNormDense), or None."""
    kernel = getattr(layer, "kernel", None)
    return kernel if isinstance(kernel, keras.Variable) else None


def _graph(model: keras.Model, where: str):
    """The functional graph of a functional model, or of a Sequential one with a known input."""
    graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    if getattr(graph, "_nodes_by_depth", None) is None:
        raise ValueError(f"{where}: expected a functional or Sequential model built from keras.Input, whose graph "
                         f"shows which layer feeds which; received {type(model).__name__} {model.name!r}, which has "
                         "no such graph (a subclassed model, or a Sequential model without an input shape).")
    return graph


def _consumers(graph) -> dict[int, list]:
    """{id(layer): the layers that take its output} over every call in the graph."""
    consumers: dict[int, list] = {}
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            for parent in node.parent_nodes:
                consumers.setdefault(id(parent.operation), []).append(node.operation)
    return consumers


def normalized_kernels(model: keras.Model) -> list[tuple[str, keras.Variable]]:
    """The kernels that batch normalization makes scale invariant, input to output.

    A layer's kernel counts when the layer has a `kernel` (Dense, convolutions), no activation of its
    own, its output is no model output, and every layer that takes its output is a batch-statistics
    normalization layer: `keras.layers.BatchNormalization` or a subclass (bnlab's ghost, renorm and
    noisy BN). A Dense with a fused activation does not count, so bnlab's bn_after_activation has none:
    BN(sigmoid(c z)) depends on c. (A positively homogeneous activation, relu(c z) = c relu(z), would
    keep the kernel scale invariant; the rule stays with the plain Dense -> BN case.) Batch
    renormalization (Ioffe 2017) is scale invariant only while r and d are clipped to 1 and 0 (its
    warm-up): they come from the moving statistics, which do not scale.

    Args:
        model: a functional model, or a Sequential one built from `keras.Input`.

    Returns:
        (layer name, kernel variable) of each such layer.

    Raises:
        ValueError: the model has no functional graph (subclassed, or Sequential without an input).
    """
    graph = _graph(model, "normalized_kernels")
    consumers = _consumers(graph)
    outputs = {id(tensor._keras_history.operation) for tensor in graph.outputs}
    found = []
    for layer in graph.operations:
        takers = consumers.get(id(layer), [])
        linear = getattr(layer, "activation", None) in (None, keras.activations.linear)
        if (_kernel(layer) is not None and linear and id(layer) not in outputs and takers
                and all(isinstance(taker, keras.layers.BatchNormalization) for taker in takers)):
            found.append((layer.name, _kernel(layer)))
    return found


def restrict_weight_decay(model: keras.Model, optimizer: keras.optimizers.Optimizer, on: str) -> list[str]:
    """Keep the optimizer's weight decay on some of the model's trainable variables only.

    Every other trainable variable is excluded with `optimizer.exclude_from_weight_decay(var_list=...)`,
    which Keras matches by variable identity (`_use_weight_decay`); it replaces any exclusion set before.
    Keras applies the decay, then the gradient step: with SGD, w <- w - lr * wd * w - lr * g for a
    decayed variable, w <- w - lr * g for an excluded one.

    Args:
        model: a built model; "normalized_kernels" needs its functional graph (see `normalized_kernels`).
        optimizer: a Keras optimizer with `weight_decay` set, not built yet (call this before the first fit).
        on: "all" (every trainable variable), "kernels" (the `kernel` of each layer; no bias, gamma or
            beta) or "normalized_kernels" (the kernels that feed batch normalization).

    Returns:
        The paths of the variables that keep weight decay.

    Raises:
        ValueError: unknown `on` (the message lists the choices), an optimizer without weight decay, or
            one already built.
    """
    if on not in WEIGHT_DECAY_CHOICES:
        raise ValueError(f"restrict_weight_decay: on must be one of {', '.join(map(repr, WEIGHT_DECAY_CHOICES))}; "
                         f"received {on!r}.")
    if not optimizer.weight_decay:
        raise ValueError(f"restrict_weight_decay: expected an optimizer with weight decay, e.g. keras.optimizers."
                         f"SGD(0.1, weight_decay=5e-4); received {type(optimizer).__name__} with weight_decay="
                         f"{optimizer.weight_decay!r}.")
    if optimizer.built:
        raise ValueError("restrict_weight_decay: expected an optimizer not built yet (Keras fixes which variables "
                         "decay when it builds); received one already built: create a new optimizer, restrict it, "
                         "then compile and fit.")
    if on == "all":
        decayed = list(model.trainable_variables)
    elif on == "kernels":
        decayed = [kernel for kernel in map(_kernel, model.layers) if kernel is not None and kernel.trainable]
    else:
        decayed = [kernel for _, kernel in normalized_kernels(model)]
    kept = {id(variable) for variable in decayed}
    optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if id(v) not in kept])
    return [variable.path for variable in decayed]


def _angle_degrees(before: np.ndarray, after: np.ndarray) -> float:
    """The angle between two kernels as vectors, stable for tiny angles: 2 atan2(|u - v|, |u + v|)."""
    norms = np.linalg.norm(before), np.linalg.norm(after)
    if not all(norms):
        return float("nan")
    u, v = before / norms[0], after / norms[1]
    return float(np.degrees(2.0 * np.arctan2(np.linalg.norm(u - v), np.linalg.norm(u + v))))


class KernelNorms(keras.callbacks.Callback):
    """Kernel norms, effective learning rates and the angle each kernel turned, every N steps.

    Records when training begins (step 0 on the first fit) and when the optimizer's step count reaches
    a multiple of `every_n_steps` (with steps_per_execution > 1, at the first batch end at or after
    it), as `ActivationPercentiles` does. One row per (step, layer):

    - `kernel_norm`: the Frobenius norm |W|.
    - `effective_learning_rate`: the optimizer's current learning rate / |W|**2 (van Laarhoven 2017,
      sec. 3): the step size that matters for a scale-invariant kernel (`normalized` true).
    - `angle_degrees`, `steps_between`: the angle between W now and W at the previous batch end, and the
      steps between the two (1 with steps_per_execution 1: the per-step angle; Hoffer et al. 2018, sec.
      2, track this angle). NaN at the first record, where there is no previous batch end.
    - `normalized`: whether the kernel feeds batch normalization (`normalized_kernels`).

    Only the kernels at the batch end just before a record are copied: after each batch end at step
    s, when s + steps_per_execution reaches the next record step, the next batch end may be a
    record, so the kernels are kept; otherwise none are. A last, shorter execution of an epoch only
    makes a copy unneeded, never missing; `steps_between` says how far apart the two kernels really are.
    The callback only reads weights: training is unchanged.

    Args:
        every_n_steps: record every this many optimizer steps, a positive integer.
        layers: names of the layers to watch; None: every layer with a `kernel` (Dense, convolutions).

    Raises:
        ValueError: a bad `every_n_steps`; when training begins, a named layer missing or without a
            kernel, or a model without a functional graph (see `normalized_kernels`).

    Example:
        >>> norms = KernelNorms(every_n_steps=50)
        >>> model.fit(x, y, callbacks=[norms])
        >>> norms.as_frame().pivot(index="step", columns="layer", values="effective_learning_rate")
    """

    def __init__(self, every_n_steps: int = 100, layers: Sequence[str] | None = None):
        super().__init__()
        if not (isinstance(every_n_steps, int) and not isinstance(every_n_steps, bool) and every_n_steps > 0):
            raise ValueError(f"KernelNorms: every_n_steps must be a positive integer; received {every_n_steps!r}.")
        if isinstance(layers, str):
            raise ValueError(f"KernelNorms: layers must be a list of layer names or None; received the string "
                             f"{layers!r} (write [{layers!r}]).")
        self.every_n_steps = every_n_steps
        self.layers = None if layers is None else list(layers)
        self.records: list[dict] = []
        self._previous: tuple[int, dict[str, np.ndarray]] | None = None

    def on_train_begin(self, logs=None):
        self._watched = self._watched_kernels()
        step = self._step()
        if not self.records:
            self._record(step)  # the kernels before any update
        self._next_step = (step // self.every_n_steps + 1) * self.every_n_steps
        self._keep_if_next_may_record(step)

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        if step >= self._next_step:
            self._record(step)
            self._next_step = (step // self.every_n_steps + 1) * self.every_n_steps
        self._keep_if_next_may_record(step)

    def as_frame(self) -> pd.DataFrame:
        """The records as a DataFrame with the columns `COLUMNS`, one row per (step, layer)."""
        return pd.DataFrame(self.records, columns=list(COLUMNS))

    def _step(self) -> int:
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def _watched_kernels(self) -> list[tuple[str, keras.Variable, bool]]:
        """(layer name, kernel, feeds BN) of each watched layer, in the model's layer order."""
        normalized = {name for name, _ in normalized_kernels(self.model)}
        kernels = {layer.name: _kernel(layer) for layer in self.model.layers if _kernel(layer) is not None}
        names = list(kernels) if self.layers is None else self.layers
        missing = [name for name in names if name not in kernels]
        if missing:
            raise ValueError(f"KernelNorms: no layer with a kernel named {', '.join(map(repr, missing))} in model "
                             f"{self.model.name!r}. Layers with a kernel: {', '.join(kernels) or 'none'}.")
        return [(name, kernels[name], name in normalized) for name in names]

    def _values(self) -> dict[str, np.ndarray]:
        return {name: np.array(keras.ops.convert_to_numpy(kernel), dtype=np.float64)
                for name, kernel, _ in self._watched}

    def _keep_if_next_may_record(self, step: int) -> None:
        per_execution = int(getattr(self.model, "steps_per_execution", 1) or 1)
        self._previous = (step, self._values()) if step + per_execution >= self._next_step else None

    def _record(self, step: int) -> None:
        learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        previous_step, previous = self._previous if self._previous else (None, {})
        current = self._values()
        for name, _, normalized in self._watched:
            values, norm = current[name], float(np.linalg.norm(current[name]))
            self.records.append({
                "step": step, "layer": name, "kernel_norm": norm,
                "effective_learning_rate": learning_rate / norm**2 if norm else float("inf"),
                "angle_degrees": _angle_degrees(previous[name], values) if name in previous else float("nan"),
                "steps_between": step - previous_step if name in previous else float("nan"),
                "normalized": normalized,
            })
