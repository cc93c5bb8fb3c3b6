"""Keras callbacks for looking inside training; usable with any Keras model.

`ActivationPercentiles` records how the input to a nonlinearity is distributed as training
goes on: the 15th, 50th and 85th percentiles that Ioffe & Szegedy 2015 plot in Figure 1(b, c)
to show the internal covariate shift that BN removes.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import pandas as pd


class ActivationPercentiles(keras.callbacks.Callback):
    """Percentiles of the input to a layer's nonlinearity, on a fixed probe batch, every N steps.

    The probe runs in inference mode, so BatchNormalization uses (and never updates) its
    moving statistics: recording changes nothing in training.

    Which tensor is watched: if the named layer is a Dense whose activation is not linear,
    its pre-activation `inputs @ kernel + bias` (the input of the fused nonlinearity); if it
    is an Activation layer, its input (e.g. BN's output, with BN before the activation);
    otherwise the layer's output. `bnlab.models.builders.nonlinearity_layer` names the right layer of
    a bnlab MLP.

    Args:
        layer_name: the layer to watch, e.g. "hidden_3" or "hidden_3_bn" in bnlab's models.
        probe: a fixed batch of model inputs, preprocessed as for training.
        every_n_steps: record when the optimizer's step count reaches a multiple of this
            (with steps_per_execution > 1, at the first batch end at or after it).
        units: indices of the units to record (default: all).
        percentiles: which percentiles, over the probe examples, per unit.

    Attributes:
        records: after training, one row per (step, unit) with a column per percentile
            (`as_frame()` returns them as a DataFrame).

    Example:
        >>> watch = ActivationPercentiles("hidden_3_bn", x_val[:1000], every_n_steps=500)
        >>> model.fit(x, y, callbacks=[watch])
        >>> watch.as_frame().query("unit == 0")
    """

    def __init__(
        self,
        layer_name: str,
        probe,
        every_n_steps: int = 100,
        units: Sequence[int] | None = None,
        percentiles: Sequence[float] = (15, 50, 85),
    ):
        super().__init__()
        if not (isinstance(every_n_steps, int) and every_n_steps > 0):
            raise ValueError(f"every_n_steps must be a positive integer; received {every_n_steps!r}.")
        self.layer_name = layer_name
        self.probe = probe
        self.every_n_steps = every_n_steps
        self.units = None if units is None else list(units)
        self.percentiles = tuple(percentiles)
        self.records: list[dict] = []

    def on_train_begin(self, logs=None):
        self._watch = self._watched_tensor_function()
        self._next_step = self.every_n_steps
        if not self.records:
            self._record(0)  # the distribution before any update

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step >= self._next_step:
            self._record(step)
            self._next_step = (step // self.every_n_steps + 1) * self.every_n_steps

    def as_frame(self) -> pd.DataFrame:
        """The records as a DataFrame: step, unit, then one column per percentile (p15...)."""
        return pd.DataFrame(self.records)

    def _watched_tensor_function(self):
        try:
            layer = self.model.get_layer(self.layer_name)
        except ValueError:
            names = ", ".join(layer.name for layer in self.model.layers)
            raise ValueError(
                f"ActivationPercentiles: no layer named {self.layer_name!r} in model "
                f"{self.model.name!r}. Layers: {names}."
            ) from None
        fused = isinstance(layer, keras.layers.Dense) and layer.activation is not keras.activations.linear
        watch_input = fused or isinstance(layer, keras.layers.Activation)
        tensor = layer.input if watch_input else layer.output
        inputs = self.model.inputs
        probe_model = keras.Model(inputs[0] if len(inputs) == 1 else inputs, tensor)
        if not fused:
            return lambda x: probe_model(x, training=False)

        def pre_activation(x):
            inputs = probe_model(x, training=False)
            outputs = keras.ops.matmul(inputs, layer.kernel)
            return outputs + layer.bias if layer.use_bias else outputs

        return pre_activation

    def _record(self, step: int) -> None:
        values = keras.ops.convert_to_numpy(self._watch(self.probe))
        values = values.reshape(len(values), -1)
        units = self.units if self.units is not None else range(values.shape[1])
        table = np.percentile(values[:, list(units)], self.percentiles, axis=0)
        for column, unit in enumerate(units):
            row = {"step": step, "unit": unit}
            row.update({f"p{p:g}": float(table[i, column]) for i, p in enumerate(self.percentiles)})
            self.records.append(row)
