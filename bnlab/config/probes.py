"""The optional `probes` section: measurements of why BN helps, recorded beside training.

Each probe is a table in the run folder and a few per-trial figures in the trials table that
claims may compare (`probe_metrics`):

- `init_gradients`: the loss gradient's squared norm per Dense kernel at initialization, in
  training mode (Yang et al. 2019, "A mean field theory of batch normalization": with BN
  and ReLU it grows geometrically toward the input). Figure: `init_gradient_growth`.
- `landscape`: along the current gradient, the range of the loss, the change of the gradient and
  the effective beta-smoothness (Santurkar et al. 2018, sec. 3.1, Fig. 4).
- `covariate_shift`: Santurkar et al.'s internal covariate shift (sec. 2.2, Definition 2.1): a
  layer's gradient before and after the layers below it take one step on the same batch.
- `kernel_norms`: each kernel's norm, its effective learning rate lr/|W|^2 and how far it turns
  per step (van Laarhoven 2017: with BN the kernels feeding it are scale invariant, so weight
  decay only sets their effective learning rate).

The probes run on a fixed batch (the first `examples` training images) outside the compiled
training step: a run without them trains exactly as before, and one with them trains the same
weights (the probes read the model and change nothing).
"""

from __future__ import annotations

import dataclasses

from bnlab.config.problems import Problems, check_keys, get_section, get_value, is_number, positive_int

PROBES = ("init_gradients", "landscape", "covariate_shift", "kernel_norms")
# per-trial figures (columns of the trials table) each probe adds; `training.mechanisms` computes them
PROBE_METRICS = {
    "init_gradients": ("init_gradient_growth",),
    "landscape": ("mean_loss_range", "mean_gradient_predictiveness", "mean_beta_smoothness"),
    "covariate_shift": ("mean_ics_l2", "mean_ics_cosine"),
    "kernel_norms": ("final_kernel_norm", "final_effective_learning_rate"),
}
_KEYS = {
    "init_gradients": ("examples",),
    "landscape": ("examples", "every_n_steps", "step_sizes"),
    "covariate_shift": ("examples", "every_n_steps", "learning_rate"),
    "kernel_norms": ("every_n_steps",),
}


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
    """One probe's settings (each probe reads the ones it has: see `_KEYS`).

    Attributes:
        examples: the probe batch: the first N training images, in training mode (batch statistics).
        every_n_steps: optimizer steps between two records (None: at every evaluation); all record at step 0.
        step_sizes: landscape: the step sizes along the gradient (Santurkar et al. 2018 move up to a few
            times the learning rate; None: the learning rate times 0.5, 1, 2 and 4).
        learning_rate: covariate_shift: the step the layers below take (None: the optimizer's at that step).
    """

    examples: int = 512  # one large batch: the statistics of BN's training mode settle by a few hundred
    every_n_steps: int | None = None  # at every evaluation: the probes line up with the accuracy curves
    step_sizes: tuple[float, ...] | None = None
    learning_rate: float | None = None

    def to_dict(self, probe: str) -> dict:
        data = {key: getattr(self, key) for key in _KEYS[probe]}
        if data.get("step_sizes") is not None:
            data["step_sizes"] = list(data["step_sizes"])
        return data


def probe_metrics(probes: dict[str, ProbeConfig]) -> tuple[str, ...]:
    """The per-trial figures the configured probes add to the trials table, in `PROBES` order."""
    return tuple(metric for probe in PROBES if probe in probes for metric in PROBE_METRICS[probe])


def probes_to_dict(probes: dict[str, ProbeConfig]) -> dict:
    """Plain data that `parse_probes` accepts back."""
    return {probe: settings.to_dict(probe) for probe, settings in probes.items()}


def parse_probes(data: dict, problems: Problems) -> dict[str, ProbeConfig]:
    """The `probes` section: probe name -> its settings ({} when absent); problems recorded."""
    section = get_section(data, "probes", PROBES, problems, required=False) or {}
    probes = {}
    for probe in PROBES:
        if probe not in section:
            continue
        settings = section[probe] if section[probe] is not None else {}
        if not isinstance(settings, dict):
            problems.add(f"probes.{probe}", f"a mapping with any of {', '.join(_KEYS[probe])}, or {{}} for "
                         "the defaults", settings)
            continue
        probes[probe] = _parse_probe(settings, probe, problems)
    return probes


def _parse_probe(settings: dict, probe: str, problems: Problems) -> ProbeConfig:
    key, default = f"probes.{probe}", ProbeConfig()
    check_keys(settings, _KEYS[probe], key, problems)
    examples = get_value(settings, "examples", key, problems, positive_int,
                         "a positive integer: the first N training images form the probe batch", default.examples)
    every = get_value(settings, "every_n_steps", key, problems, lambda v: v is None or positive_int(v),
                      "null (at every evaluation) or a positive integer", default.every_n_steps)
    sizes = get_value(settings, "step_sizes", key, problems,
                      lambda v: v is None or (isinstance(v, list) and v and all(_positive(s) for s in v)),
                      "null (the learning rate times 0.5, 1, 2, 4) or a non-empty list of positive numbers",
                      default.step_sizes)
    rate = get_value(settings, "learning_rate", key, problems, lambda v: v is None or _positive(v),
                     "null (the optimizer's learning rate) or a positive number", default.learning_rate)
    return ProbeConfig(examples, every, tuple(float(s) for s in sizes) if sizes else None, rate)


def _positive(value) -> bool:
    return is_number(value) and value > 0
