"""Normalization layers beyond Keras's own: ghost batch norm, batch renormalization, weight norm.

Each is registered under the package "bnlab": once this module is imported, `keras.saving.load_model`
restores a saved model without `custom_objects`. Only `keras.ops`: they run on TensorFlow, JAX and torch.
"""

import numbers

import keras
from keras import ops


def _slice_moments(x, mask, size):
    """x cut into slices of `size` examples, with each slice's weight count, mean and biased variance.

    The batch is padded with zero rows up to a multiple of `size`; the rows carry weight 0, so the
    last B mod size examples form a smaller slice of their own. Shapes: (S, size, ..., C) for the
    slices, (S, 1, ..., 1, 1) for the counts and (S, 1, ..., 1, C) for the moments.
    """
    batch = ops.shape(x)[0]  # dynamic under TensorFlow graphs: never x.shape[0]
    size = batch if size is None else size
    slices = (batch + size - 1) // size
    weight = ops.ones_like(x[..., :1]) if mask is None else ops.expand_dims(ops.cast(mask, x.dtype), -1)
    widths = [[0, slices * size - batch]] + [[0, 0]] * (len(x.shape) - 1)
    shape = [slices, size] + list(ops.shape(x)[1:])
    x = ops.reshape(ops.pad(x, widths), shape)
    weight = ops.reshape(ops.pad(weight, widths), shape[:-1] + [1])
    axes = tuple(range(1, len(shape) - 1))
    count = ops.sum(weight, axis=axes, keepdims=True)
    safe_count = ops.maximum(count, 1.0)  # a slice masked out entirely: weight 0 below, no 0/0
    mean = ops.sum(weight * x, axis=axes, keepdims=True) / safe_count
    variance = ops.sum(weight * ops.square(x - mean), axis=axes, keepdims=True) / safe_count
    return x, count, mean, variance


def _weighted_mean(values, count):
    """The count-weighted mean over slices of per-slice values, as a (C,) vector."""
    axes = tuple(range(len(values.shape) - 1))
    return ops.reshape(ops.sum(values * count, axis=axes) / ops.maximum(ops.sum(count), 1.0), (-1,))


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@keras.saving.register_keras_serializable(package="bnlab")
class GhostBatchNormalization(keras.layers.BatchNormalization):
    """Batch normalization over virtual batches (Hoffer, Hubara & Soudry 2017, sec. 4, "ghost BN").

    In training, each consecutive slice of `virtual_batch_size` examples is normalized with its own
    mean and biased variance (divided by the count), epsilon added, then gamma and beta; all slices at
    once (one reshape, no loop: it runs under `jit_compile=True`, with a dynamic batch size).
    Remainder rule: when the batch size B is not a multiple of the virtual batch size g, the first
    floor(B / g) slices hold g examples each and the last B mod g examples form a smaller slice of
    their own (B = 10, g = 4: slices of 4, 4 and 2).

    Moving statistics: `moving_mean <- momentum * moving_mean + (1 - momentum) * m`, with m the
    count-weighted mean of the slice means (the batch mean), and `moving_variance <- momentum *
    moving_variance + (1 - momentum) * v`, with v the count-weighted mean of the slices' biased
    variances: the inference variance then estimates the within-slice variance the network was
    trained with, as Keras's own biased moving variance does at the full batch. Inference
    (`training` false, or the layer frozen) is plain BN with the moving statistics, at any batch size.

    Args:
        virtual_batch_size: Examples per normalization slice, a positive integer; None normalizes
            over the whole batch, exactly as `keras.layers.BatchNormalization`.
        axis: The channel axis; only -1 is supported.
        **kwargs: The other arguments of `keras.layers.BatchNormalization` (momentum, epsilon, ...);
            Keras's `renorm=True` is refused (use `BatchRenormalization`).

    Raises:
        ValueError: For an invalid `virtual_batch_size`, an axis other than -1, or `renorm=True`.
    """

    _always_sliced = False  # BatchRenormalization slices the whole batch when virtual_batch_size is None

    def __init__(self, virtual_batch_size=None, axis=-1, **kwargs):
        name = type(self).__name__
        if virtual_batch_size is not None and (not _is_integer(virtual_batch_size) or virtual_batch_size < 1):
            raise ValueError(f"{name}: virtual_batch_size must be a positive integer or None; "
                             f"received {virtual_batch_size!r}.")
        if axis != -1:
            raise ValueError(f"{name}: only axis=-1 (channels last) is supported; received axis={axis!r}.")
        if kwargs.get("renorm"):
            raise ValueError(f"{name}: Keras's renorm=True is not supported; use "
                             "bnlab.models.layers.BatchRenormalization; received renorm=True.")
        sliced = virtual_batch_size is not None or self._always_sliced
        if sliced and kwargs.get("synchronized"):
            raise ValueError(f"{name}: synchronized=True is not supported with virtual batches (slices are "
                             "per replica); received synchronized=True.")
        super().__init__(axis=axis, **kwargs)
        self.virtual_batch_size = None if virtual_batch_size is None else int(virtual_batch_size)

    def call(self, inputs, training=None, mask=None):
        """Normalizes `inputs` by slices in training, with the moving statistics otherwise."""
        sliced = self.virtual_batch_size is not None or self._always_sliced
        if not (training and self.trainable and sliced):
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))  # as Keras: no float16 moments
        slices, count, mean, variance = _slice_moments(x, mask, self.virtual_batch_size)
        normalized = self._normalize_slices(slices, mean, variance)
        if self.scale:
            normalized = normalized * ops.cast(self.gamma, x.dtype)
        if self.center:
            normalized = normalized + ops.cast(self.beta, x.dtype)
        # after _normalize_slices: batch renormalization reads the old moving statistics there
        self._update_moving_statistics(_weighted_mean(mean, count), _weighted_mean(variance, count))
        outputs = ops.reshape(normalized, [-1] + list(ops.shape(x)[1:]))[: ops.shape(x)[0]]
        return ops.cast(outputs, self.compute_dtype)

    def _normalize_slices(self, slices, mean, variance):
        """x_hat of each example with its slice's moments (Ioffe & Szegedy 2015, Algorithm 1)."""
        return (slices - mean) / ops.sqrt(variance + self.epsilon)

    def _update_moving_statistics(self, mean, variance):
        for moving, value in ((self.moving_mean, mean), (self.moving_variance, variance)):
            moving.assign(moving * self.momentum + ops.cast(value, moving.dtype) * (1.0 - self.momentum))

    def get_config(self):
        """The layer's config: BatchNormalization's plus `virtual_batch_size`."""
        return {**super().get_config(), "virtual_batch_size": self.virtual_batch_size}


def _validate_schedule(r_max, d_max, warmup_steps, r_max_steps, d_max_steps, where: str) -> None:
    """Raises ValueError, naming `where`, unless the batch renormalization schedule is valid."""
    if not r_max >= 1:
        raise ValueError(f"{where}: r_max must be at least 1 (r is clipped to [1/r_max, r_max]); received {r_max!r}.")
    if not d_max >= 0:
        raise ValueError(f"{where}: d_max must be non-negative (d is clipped to [-d_max, d_max]); received {d_max!r}.")
    if not _is_integer(warmup_steps) or warmup_steps < 0:
        raise ValueError(f"{where}: warmup_steps must be a non-negative integer; received {warmup_steps!r}.")
    for label, steps in (("r_max_steps", r_max_steps), ("d_max_steps", d_max_steps)):
        if not _is_integer(steps) or steps < warmup_steps:
            raise ValueError(f"{where}: {label} must be an integer at least warmup_steps={warmup_steps}; "
                             f"received {steps!r}.")


def _limits(step, r_max, d_max, warmup_steps, r_max_steps, d_max_steps, clip, where):
    """(r_max, d_max) at `step`, with `clip` and `where` from Python or from `keras.ops`."""

    def fraction(final_steps):  # 0 until warmup_steps, then linear to 1 at final_steps
        if final_steps == warmup_steps:  # no ramp: the final value applies from warmup on
            return where(step >= warmup_steps, 1.0, 0.0)
        return clip((step - warmup_steps) / (final_steps - warmup_steps), 0.0, 1.0)

    return 1.0 + (r_max - 1.0) * fraction(r_max_steps), d_max * fraction(d_max_steps)


def renorm_limits(step, r_max=3.0, d_max=5.0, warmup_steps=5000, r_max_steps=40000, d_max_steps=25000):
    """The clipping limits (r_max, d_max) of batch renormalization at a training step (Ioffe 2017, sec. 4).

    Plain BN (r_max = 1, d_max = 0) for the first `warmup_steps` steps, then both relaxed linearly:
    r_max reaches its final value at `r_max_steps`, d_max at `d_max_steps`, and both stay there.

    Args:
        step: Training steps done so far (0 for the first step).
        r_max, d_max, warmup_steps, r_max_steps, d_max_steps: The schedule, as for `BatchRenormalization`.

    Returns:
        (r_max_now, d_max_now) as Python floats.

    Raises:
        ValueError: For a schedule `BatchRenormalization` would refuse.
    """
    _validate_schedule(r_max, d_max, warmup_steps, r_max_steps, d_max_steps, "renorm_limits")
    r_max_now, d_max_now = _limits(step, r_max, d_max, warmup_steps, r_max_steps, d_max_steps,
                                   lambda value, low, high: min(max(value, low), high),
                                   lambda condition, yes, no: yes if condition else no)
    return float(r_max_now), float(d_max_now)


@keras.saving.register_keras_serializable(package="bnlab")
class BatchRenormalization(GhostBatchNormalization):
    """Batch renormalization (Ioffe 2017, Algorithm 1), per slice as in `GhostBatchNormalization`.

    In training, per slice: sigma_B = sqrt(var_B + epsilon), sigma = sqrt(moving_variance + epsilon),
    r = stop_gradient(clip(sigma_B / sigma, 1 / r_max, r_max)), d = stop_gradient(clip((mean_B -
    moving_mean) / sigma, -d_max, d_max)), x_hat = (x - mean_B) / sigma_B * r + d, y = gamma * x_hat +
    beta. The limits follow `renorm_limits` (sec. 4: plain BN for 5k steps, then r_max to 3 at 40k
    and d_max to 5 at 25k), read from the non-trainable float32 scalars `renorm_steps` (training calls
    so far; a float32 counts exactly up to 2**24), `current_r_max` and `current_d_max`. After r and d
    were computed from the old moving statistics, these are updated as in `GhostBatchNormalization`
    (a moving mean and variance, not the paper's moving sigma): inference is then exactly BN's, so
    tools reading `moving_mean` and `moving_variance` keep working. `virtual_batch_size=None`
    renormalizes over the whole batch.

    Args:
        r_max: Final limit of r; at least 1.
        d_max: Final limit of d; non-negative.
        warmup_steps: Training calls of plain BN before the limits relax; a non-negative integer.
        r_max_steps: Training call at which r_max is reached; an integer at least warmup_steps.
        d_max_steps: Training call at which d_max is reached; an integer at least warmup_steps.
        **kwargs: `GhostBatchNormalization`'s arguments (virtual_batch_size, momentum, epsilon, ...).

    Raises:
        ValueError: For an invalid schedule or an invalid `GhostBatchNormalization` argument.
    """

    _always_sliced = True

    def __init__(self, r_max=3.0, d_max=5.0, warmup_steps=5000, r_max_steps=40000, d_max_steps=25000, **kwargs):
        _validate_schedule(r_max, d_max, warmup_steps, r_max_steps, d_max_steps, type(self).__name__)
        super().__init__(**kwargs)
        self.r_max, self.d_max = float(r_max), float(d_max)
        self.warmup_steps, self.r_max_steps, self.d_max_steps = int(warmup_steps), int(r_max_steps), int(d_max_steps)

    def build(self, input_shape):
        """Creates BatchNormalization's weights and the schedule scalars."""
        super().build(input_shape)
        start_r, start_d = renorm_limits(0, **self._schedule())
        for name, value in (("renorm_steps", 0.0), ("current_r_max", start_r), ("current_d_max", start_d)):
            variable = self.add_weight(shape=(), name=name, initializer=keras.initializers.Constant(value),
                                       trainable=False, dtype="float32", autocast=False)
            setattr(self, name, variable)

    def _schedule(self):
        return {name: getattr(self, name) for name in ("r_max", "d_max", "warmup_steps", "r_max_steps", "d_max_steps")}

    def _normalize_slices(self, slices, mean, variance):
        """x_hat = (x - mean_B) / sigma_B * r + d per slice, with the limits of this training call."""
        step = ops.convert_to_tensor(self.renorm_steps)
        r_max, d_max = _limits(step, **self._schedule(), clip=ops.clip, where=ops.where)
        self.current_r_max.assign(r_max)
        self.current_d_max.assign(d_max)
        self.renorm_steps.assign(step + 1.0)
        r_max, d_max = ops.cast(r_max, slices.dtype), ops.cast(d_max, slices.dtype)
        sigma_batch = ops.sqrt(variance + self.epsilon)
        sigma = ops.sqrt(ops.cast(self.moving_variance, slices.dtype) + self.epsilon)
        r = ops.stop_gradient(ops.clip(sigma_batch / sigma, 1.0 / r_max, r_max))
        d = ops.stop_gradient(ops.clip((mean - ops.cast(self.moving_mean, slices.dtype)) / sigma, -d_max, d_max))
        return (slices - mean) / sigma_batch * r + d

    def get_config(self):
        """The layer's config: GhostBatchNormalization's plus the five schedule arguments."""
        return {**super().get_config(), **self._schedule()}


@keras.saving.register_keras_serializable(package="bnlab")
class WeightNormDense(keras.layers.Layer):
    """A dense layer with a weight-normalized kernel (Salimans & Kingma 2016, eq. 2): w = g v / ||v||.

    Each output unit's kernel column v is divided by its norm and scaled by its own g (direction and
    length learned apart). At build, g is set to the column norms of the freshly initialized v, so the
    initial effective kernel equals v; the paper's data-dependent initialization (sec. 3) is not used.

    Args:
        units: Output units, a positive integer.
        activation: Activation applied to the output, as for `keras.layers.Dense`.
        use_bias: Whether to add a bias vector.
        kernel_initializer: Initializer of v (the weight `kernel`, shape (input dim, units)).
        bias_initializer: Initializer of `bias`.
        **kwargs: Base layer arguments (name, dtype, ...).

    Raises:
        ValueError: If `units` is not a positive integer.
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        if not _is_integer(units) or units < 1:
            raise ValueError(f"WeightNormDense: units must be a positive integer; received {units!r}.")
        super().__init__(**kwargs)
        self.units, self.use_bias = int(units), use_bias
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        """Creates `kernel` (v), `g` (set to v's column norms) and `bias`."""
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel",
                                      initializer=self.kernel_initializer)
        self.g = self.add_weight(shape=(self.units,), name="g", initializer="ones")
        self.g.assign(self._column_norms())
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.units,), name="bias", initializer=self.bias_initializer)

    def _column_norms(self):
        # floored so that an all-zero column gives a zero kernel column, not 0 / 0
        return ops.maximum(ops.sqrt(ops.sum(ops.square(self.kernel), axis=0)), 1e-12)

    def effective_kernel(self):
        """The kernel the layer applies: g v / ||v||, column by column.

        Returns:
            A tensor of shape (input dim, units).
        """
        return self.kernel * (self.g / self._column_norms())

    def call(self, inputs):
        """Returns activation(inputs @ effective_kernel() + bias)."""
        outputs = ops.matmul(inputs, self.effective_kernel())
        return self.activation(outputs + self.bias if self.use_bias else outputs)

    def get_config(self):
        """The layer's config, with activation and initializers serialized as `keras.layers.Dense` does."""
        return {**super().get_config(), "units": self.units, "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias, "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer)}
