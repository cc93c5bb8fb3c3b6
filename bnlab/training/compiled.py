"""Compiled models reused by the trials of a run that share an architecture and training settings.

Compiling costs a trial 1 to 4 s on a 2-core CPU (tracing, and with XLA a compilation for each
batch shape) before its first step; a grid over learning rates or seeds pays it again for every
trial of the same network. Keras keeps a model's compiled train, test and predict functions on
the model, so a trial takes the model an earlier trial of the same kind compiled and puts into it
the state a freshly built and compiled model would start with:

- every variable of the model (weights, BN's moving statistics, seed generators' states) from a
  model built afresh after `keras.utils.set_random_seed(seed)`, so the initial weights are the
  seed's, drawn exactly as for a new model;
- every optimizer variable (step count, momentum or moment slots, the learning rate) from a new
  optimizer with the trial's settings, built for the model's weights.

The learning rate is an optimizer variable, so trials that differ only in it share a model; any
other optimizer setting, the loss, the execution settings or the architecture make another kind.
Keras's fit resets the metrics and the stop flag itself. A test trains a trial on a reused model
and on a fresh one and finds every per-epoch figure identical.
"""

from __future__ import annotations

import collections
import json

import keras


class CompiledModels:
    """Compiled models by kind, the least recently used dropped beyond `max_parameters` in all.

    Args:
        max_parameters: the most model parameters kept together (each kept model also holds its
            optimizer's slots and compiled functions); a model larger than this is never kept.
    """

    def __init__(self, max_parameters: int = 5_000_000):
        self.max_parameters = max_parameters
        self.models: collections.OrderedDict[str, keras.Model] = collections.OrderedDict()

    def take(self, kind: str, fresh: keras.Model, optimizer, compile_model) -> keras.Model:
        """A compiled model of `kind` in `fresh`'s state with a new `optimizer`'s state.

        Args:
            kind: what must agree for two trials to share a model (see `model_kind`).
            fresh: the trial's freshly built, uncompiled model.
            optimizer: the trial's new optimizer (unbuilt).
            compile_model: called as `compile_model(model, optimizer)` when no model of this kind is kept.
        """
        kept = self.models.get(kind)
        if kept is not None and _same_shapes(kept.variables, fresh.variables) and kept.optimizer.built:
            self.models.move_to_end(kind)
            _assign(kept.variables, fresh.variables)
            optimizer.build(kept.trainable_variables)  # the same optimizer settings (the kind): the same slots
            _assign(kept.optimizer.variables, optimizer.variables)
            return kept
        compile_model(fresh, optimizer)
        self._keep(kind, fresh)
        return fresh

    def clear(self) -> None:
        self.models.clear()

    def _keep(self, kind: str, model: keras.Model) -> None:
        self.models.pop(kind, None)
        if model.count_params() > self.max_parameters:
            return
        self.models[kind] = model
        while sum(kept.count_params() for kept in self.models.values()) > self.max_parameters:
            self.models.popitem(last=False)


def model_kind(model: keras.Model, variant_name: str, overrides: dict, training, backend: str) -> str:
    """What two trials must share to train on one compiled model: everything but the learning rate
    (an optimizer variable), the epochs and the batch size (a new batch shape compiles its own step).

    The architecture is each layer's type and configuration (names aside: Keras numbers unnamed
    layers anew in every model), so a variant registered again with another builder is another kind.
    """
    layers = [(type(layer).__qualname__, {k: v for k, v in layer.get_config().items() if k != "name"})
              for layer in model.layers]
    optimizer = {key: value for key, value in training.optimizer.params.items() if key != "learning_rate"}
    if not isinstance(training.optimizer.params.get("learning_rate"), (int, float)):
        optimizer["learning_rate"] = training.optimizer.params.get("learning_rate")  # a schedule: compiled in
    return json.dumps({"variant": variant_name, "overrides": overrides, "layers": layers,
                       "optimizer": training.optimizer.name, "params": optimizer, "loss": training.loss,
                       "weight_decay_on": training.weight_decay_on,
                       "steps_per_execution": training.steps_per_execution, "jit_compile": training.jit_compile,
                       "backend": backend}, sort_keys=True, default=repr)


def _same_shapes(left, right) -> bool:
    return len(left) == len(right) and all(
        tuple(a.shape) == tuple(b.shape) and a.dtype == b.dtype for a, b in zip(left, right))


def _assign(targets, sources) -> None:
    for target, source in zip(targets, sources):
        target.assign(source.value)
