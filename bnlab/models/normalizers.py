"""The table of normalizers a bnlab model can use: batch, ghost, renorm, noisy, layer, group, weight, none.

`build_mlp(normalization=NAME, ...)` looks its normalizer up here; only the block builder
(`bnlab.models.blocks`) turns an entry into layers. This module imports no Keras, so configs
check a normalizer and its options before Keras is first imported: each entry names the
function that makes its layer as a "module:function" reference, imported when a model is built.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Mapping

_BLOCKS = "bnlab.models.blocks"
_RENORM_OPTIONS = ("renorm_r_max", "renorm_d_max", "renorm_warmup_steps", "renorm_r_max_steps", "renorm_d_max_steps")


@dataclasses.dataclass(frozen=True)
class Normalizer:
    """One normalizer: what it is, where it comes from, and the builder arguments it reads.

    Attributes:
        name: the value of `build_mlp(normalization=...)`.
        summary: one line for tables and listings.
        source: the paper that introduced it.
        options: the `build_mlp` keyword arguments it reads besides momentum and epsilon.
        layer: "module:function" of `make(name, arguments) -> keras layer`; None: it adds no layer.
        suffix: the name of its layers after the block's, e.g. "bn" in "hidden_1_bn".
        on_kernel: it reparametrizes the Dense kernel (weight normalization) instead of adding
            a layer, so the placement before or after the activation does not apply.
        batch_statistics: it normalizes with statistics over examples of the batch, so training
            and inference differ (and the optimizer batch must hold whole normalization batches).
    """

    name: str
    summary: str
    source: str
    options: tuple[str, ...] = ()
    layer: str | None = None
    suffix: str = ""
    on_kernel: bool = False
    batch_statistics: bool = False

    @property
    def on_input(self) -> bool:
        """Whether it can normalize the flattened input (a kernel reparametrization cannot)."""
        return not self.on_kernel


_TABLE = (
    Normalizer("batch", "Keras BatchNormalization: statistics over the whole batch",
               "Ioffe & Szegedy 2015", (), f"{_BLOCKS}:batch_layer", "bn", batch_statistics=True),
    Normalizer("ghost", "ghost batch norm: statistics over slices of virtual_batch_size examples",
               "Hoffer, Hubara & Soudry 2017, sec. 4", ("virtual_batch_size",), f"{_BLOCKS}:ghost_layer",
               "ghost_bn", batch_statistics=True),
    Normalizer("renorm", "batch renormalization with the r_max / d_max schedule, over slices as ghost",
               "Ioffe 2017, Algorithm 1 and sec. 4", ("virtual_batch_size", *_RENORM_OPTIONS),
               f"{_BLOCKS}:renorm_layer", "renorm", batch_statistics=True),
    Normalizer("noisy", "Keras BatchNormalization, then noise whose mean and variance change every step (training)",
               "Santurkar et al. 2018, sec. 2.1", ("noise_mean", "noise_stddev"), f"{_BLOCKS}:noisy_layer", "noisy_bn",
               batch_statistics=True),
    Normalizer("layer", "Keras LayerNormalization: statistics over the units of each example",
               "Ba, Kiros & Hinton 2016", (), f"{_BLOCKS}:layer_layer", "ln"),
    Normalizer("group", "Keras GroupNormalization: statistics over groups of units of each example",
               "Wu & He 2018", ("groups",), f"{_BLOCKS}:group_layer", "gn"),
    Normalizer("weight", "weight normalization of the Dense kernel: w = g v / |v|",
               "Salimans & Kingma 2016", (), None, "", on_kernel=True),
    Normalizer("none", "no normalization layer anywhere, whatever the placement", "", (), None, ""),
)
NORMALIZERS: Mapping[str, Normalizer] = MappingProxyType({entry.name: entry for entry in _TABLE})


def list_normalizers() -> list[str]:
    """The names `build_mlp(normalization=...)` accepts, in table order."""
    return list(NORMALIZERS)


def get_normalizer(name: str) -> Normalizer:
    """The table entry of a normalizer.

    Raises:
        ValueError: unknown name; the message lists the choices.
    """
    if name not in NORMALIZERS:
        raise ValueError(f"Unknown normalization {name!r}. Available: {', '.join(NORMALIZERS)}.")
    return NORMALIZERS[name]


def divisors(number: int) -> list[int]:
    """The positive divisors of a positive integer, ascending."""
    return [d for d in range(1, number + 1) if number % d == 0]


def group_problem(groups, widths: dict[str, int]) -> str | None:
    """What `groups` must be to divide every normalized width ({where: units}); None when it does."""
    misfits = [where for where, units in widths.items() if units % groups]
    if not misfits:
        return None
    common = sorted(set.intersection(*(set(divisors(units)) for units in widths.values())))
    shown = ", ".join(f"{where} {units}" for where, units in widths.items())
    return (f"a number of groups that divides every normalized width ({shown}): one of "
            f"{', '.join(map(str, common))}")


def virtual_batch_problem(virtual_batch_size, batch_size: int) -> str | None:
    """What `virtual_batch_size` must be for a training batch of `batch_size`; None when it fits."""
    if virtual_batch_size is None or batch_size % virtual_batch_size == 0:
        return None
    return (f"a divisor of training.batch_size ({batch_size}), so that every full batch splits into "
            f"whole normalization batches: one of {', '.join(map(str, divisors(batch_size)))}")
