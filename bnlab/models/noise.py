"""Noisy batch normalization: BN whose output is perturbed, in training, by noise whose distribution
changes every step (Santurkar, Tsipras, Ilyas & Madry 2018, "How does batch normalization help
optimization?", sec. 2.1, Fig. 2).

Registered under the package "bnlab", like the layers of `bnlab.models.layers`: once this module is
imported, `keras.saving.load_model` restores it without `custom_objects`. It runs on TensorFlow, JAX and
torch, inside compiled train steps: `keras.ops` and `keras.random`, except that on TensorFlow the noise is
drawn by a small XLA-compiled function (`_tensorflow_noise`), so that eager and jit-compiled fits agree.
"""

import functools
import math
import numbers

import keras
from keras import ops


@functools.cache
def _tensorflow_noise():
    """The noise draws on TensorFlow, always compiled with XLA: XLA's stateless generators give other
    numbers than TensorFlow's own kernels for the same seed (even naming alg="philox"), so drawing
    with XLA everywhere makes an eager or graph fit see the noise of a jit-compiled one."""
    import tensorflow as tf

    @tf.function(jit_compile=True)
    def noise(like, seeds, mean_bound, stddev_bound, axis):
        seeds = tf.cast(tf.math.floormod(seeds, tf.int32.max - 1), tf.int32)  # as Keras's TF random
        units = [1] * len(like.shape)
        units[axis] = like.shape[axis]
        mean = tf.random.stateless_uniform(units, seeds[0], minval=-mean_bound, maxval=mean_bound)
        stddev = tf.random.stateless_uniform(units, seeds[1], minval=1.0, maxval=stddev_bound)
        return mean + stddev * tf.random.stateless_normal(tf.shape(like), seeds[2])

    return noise


def _is_finite(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _noise_problem(noise_mean, noise_stddev, seed) -> str | None:
    """What is wrong with the noise arguments, as "<argument> must be ...; received ...", or None."""
    if not (_is_finite(noise_mean) and noise_mean >= 0):
        return (f"noise_mean must be a finite number of at least 0 (each step's noise mean is drawn from "
                f"[-noise_mean, noise_mean]); received {noise_mean!r}.")
    if not (_is_finite(noise_stddev) and noise_stddev >= 1):
        return (f"noise_stddev must be a finite number of at least 1 (each step's noise standard deviation is "
                f"drawn from [1, noise_stddev]); received {noise_stddev!r}.")
    if seed is not None and not (isinstance(seed, numbers.Integral) and not isinstance(seed, bool)):
        return f"seed must be None or an integer; received {seed!r}."
    return None


@keras.saving.register_keras_serializable(package="bnlab")
class NoisyBatchNormalization(keras.layers.BatchNormalization):
    """Batch normalization followed, in training only, by noise from a distribution that changes every step.

    What the paper says (Santurkar et al. 2018, sec. 2.1 and Fig. 2): to test whether BN helps by
    stabilizing the distribution of layer inputs, they "perturb each activation for each sample in the
    batch using i.i.d. noise sampled from a non-zero mean and non-unit variance distribution", and
    "this noise distribution changes at each time step", so that "every unit in the layer experiences
    a different distribution of inputs at each time step". The noisy-BN network's layer inputs are
    less stable than even the network without BN, yet it trains about as well as with plain BN.
    The exact distributions are given in the paper's appendix, which could not be consulted when
    this was written; the scheme below is the one the text of sec. 2.1 describes, and the default
    bounds are bnlab's choice, not values read from the paper.

    What this layer does, in training (`training` true and the layer trainable), at every call t:
    y = BN(x) (Keras BatchNormalization: batch statistics, gamma, beta; moving statistics updated
    from x, before the noise), then for every unit j a mean m_tj ~ U(-noise_mean, noise_mean) and a
    standard deviation s_tj ~ U(1, noise_stddev) are drawn (the distribution of step t), and
    output_ij = y_ij + n_ij with n_ij ~ N(m_tj, s_tj**2) i.i.d. over the examples i (and, for a
    convolution, over the positions). Every draw takes its seed from a `keras.random.SeedGenerator`, so
    the noise is new at every call, also inside a compiled train step (`jit_compile=True`,
    `steps_per_execution > 1`), and repeats for a fixed seed; on TensorFlow it is drawn with XLA even
    in an eager fit, which then gives the weights of a jit-compiled one. In inference the layer is
    exactly `keras.layers.BatchNormalization` with the moving statistics: no noise.

    Args:
        noise_mean: Bound of the per-step noise mean, a number of at least 0 (0: zero-mean noise).
        noise_stddev: Upper bound of the per-step noise standard deviation, a number of at least 1
            (1: the standard deviation is always 1).
        seed: Seed of the noise; None takes one from the global seed that
            `keras.utils.set_random_seed` sets.
        **kwargs: The arguments of `keras.layers.BatchNormalization` (momentum, epsilon, axis, ...).

    Raises:
        ValueError: For a noise argument out of range, or an invalid BatchNormalization argument.

    Example:
        >>> keras.utils.set_random_seed(0)
        >>> layer = NoisyBatchNormalization(noise_mean=0.5, noise_stddev=1.5)
        >>> layer(x, training=True)  # BN(x) plus this call's noise; layer(x) is plain BN
    """

    def __init__(self, noise_mean=0.5, noise_stddev=1.5, seed=None, **kwargs):
        problem = _noise_problem(noise_mean, noise_stddev, seed)
        if problem:
            raise ValueError(f"{type(self).__name__}: {problem}")
        super().__init__(**kwargs)
        self.noise_mean, self.noise_stddev = float(noise_mean), float(noise_stddev)
        self.seed = None if seed is None else int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def call(self, inputs, training=None, mask=None):
        """Batch normalization, plus this step's noise when training."""
        outputs = super().call(inputs, training=training, mask=mask)
        if not (training and self.trainable):
            return outputs
        outputs = ops.cast(outputs, "float32")
        return ops.cast(outputs + self._noise(outputs), self.compute_dtype)

    def _noise(self, like):
        """n ~ N(m_j, s_j**2) per unit j, with m_j and s_j drawn for this call (float32, the shape of `like`)."""
        if keras.backend.backend() == "tensorflow":
            seeds = ops.stack([self.seed_generator.next() for _ in range(3)])
            return _tensorflow_noise()(ops.stop_gradient(like), seeds, self.noise_mean, self.noise_stddev, self.axis)
        units = [1] * len(like.shape)
        units[self.axis] = like.shape[self.axis]
        mean = keras.random.uniform(units, -self.noise_mean, self.noise_mean, seed=self.seed_generator)
        stddev = keras.random.uniform(units, 1.0, self.noise_stddev, seed=self.seed_generator)
        return mean + stddev * keras.random.normal(ops.shape(like), seed=self.seed_generator)

    def get_config(self):
        """The layer's config: BatchNormalization's plus `noise_mean`, `noise_stddev` and `seed`."""
        return {**super().get_config(), "noise_mean": self.noise_mean, "noise_stddev": self.noise_stddev,
                "seed": self.seed}
