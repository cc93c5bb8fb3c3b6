"""Validation of the sections of a config: dataset, seeds, training, targets, tracking and
executor (the variants are in `bnlab.config.variants`); and the checks of training against the
data (step-mode counts)."""

from __future__ import annotations

from bnlab.config.problems import (
    REQUIRED,
    check_keys,
    get_section,
    get_value,
    is_int,
    is_number,
    is_text,
    positive_int,
)
from bnlab.config.schema import (
    DATA_ORDERS,
    EXECUTORS,
    LOSSES,
    OPTIMIZERS,
    VALIDATION_MODES,
    WEIGHT_DECAY_GROUPS,
    OptimizerConfig,
    TrainingConfig,
)
from bnlab.config.settings import DatasetConfig, ExecutorConfig, TrackingConfig

_BOOLEAN_PARAMS = {"nesterov", "amsgrad", "centered"}
_FRACTION_PARAMS = {"momentum", "beta_1", "beta_2", "rho"}  # must lie in [0, 1)


def check_dataset_fits(dataset, training, key, problems) -> None:
    """Checks of training against the data: batch size, and step mode's exact step counts."""
    remaining = dataset.remaining_images
    if dataset.train_subset is not None and dataset.train_subset > remaining:
        problems.add("dataset.train_subset", f"at most the {remaining} training images left "
                     "after the validation hold-out", dataset.train_subset)
        return
    if training.batch_size > dataset.train_images:
        problems.add(f"{key}.batch_size", f"at most the {dataset.train_images} training images",
                     training.batch_size)
        return
    if training.step_mode:
        _check_step_counts(training, training.steps_per_epoch(dataset.train_images), key, problems)


def _check_step_counts(training, per_epoch, key, problems) -> None:
    # Evaluations happen between two calls into the backend, each running steps_per_execution
    # steps from the start of an epoch: so that they fall exactly every eval_every_steps, the
    # execution must divide both the evaluation interval and the epoch.
    every, execution = training.eval_every_steps, training.steps_per_execution
    if training.steps % every:
        problems.add(f"{key}.steps", f"a multiple of {key}.eval_every_steps ({every})", training.steps)
    if every % execution or per_epoch % execution:
        divisors = [d for d in range(1, min(every, per_epoch) + 1) if every % d == 0 and per_epoch % d == 0]
        problems.add(f"{key}.steps_per_execution",
                     f"in step mode, a divisor of both {key}.eval_every_steps ({every}) and the steps in "
                     f"an epoch ({per_epoch}), so that evaluations fall exactly every {every} steps; "
                     f"the largest is {divisors[-1]}", execution)


def parse_tracking(data, problems) -> TrackingConfig:
    section = get_section(data, "tracking", ("mlflow", "tensorboard"), problems, required=False) or {}
    return TrackingConfig(**{
        key: get_value(section, key, "tracking", problems, lambda v: isinstance(v, bool), "true or false", False)
        for key in ("mlflow", "tensorboard")
    })


def parse_executor(data, problems) -> ExecutorConfig:
    section = get_section(data, "executor", ("name", "scheduler", "workers"), problems, required=False) or {}
    default = ExecutorConfig()
    name = get_value(section, "name", "executor", problems, lambda v: v in EXECUTORS,
                  f"one of {', '.join(EXECUTORS)}", default.name)
    scheduler = get_value(section, "scheduler", "executor", problems, lambda v: v is None or is_text(v),
                       "null or a Dask scheduler address such as tcp://HOST:8786", default.scheduler)
    workers = get_value(section, "workers", "executor", problems, positive_int, "a positive integer",
                     default.workers)
    if name == "local" and scheduler is not None:  # a scheduler asked for would go unused
        problems.add("executor.scheduler", "null when executor.name is local (a scheduler address is "
                     "for the dask executor: --executor dask)", scheduler)
    return ExecutorConfig(name, scheduler, workers)


def parse_dataset(data, problems) -> DatasetConfig:
    fields = ("validation", "validation_size", "train_subset", "stratify", "binarize")
    section = get_section(data, "dataset", fields, problems, required=False) or {}
    default = DatasetConfig()
    return DatasetConfig(
        validation=get_value(section, "validation", "dataset", problems, lambda v: v in VALIDATION_MODES,
                          f"one of {', '.join(VALIDATION_MODES)}", default.validation),
        validation_size=get_value(section, "validation_size", "dataset", problems,
                               lambda v: is_int(v) and 0 < v < 60000,
                               "an integer from 1 to 59999", default.validation_size),
        train_subset=get_value(section, "train_subset", "dataset", problems,
                            lambda v: v is None or (is_int(v) and 0 < v < 60000),
                            "null or an integer from 1 to 59999", default.train_subset),
        stratify=get_value(section, "stratify", "dataset", problems, lambda v: isinstance(v, bool),
                        "true or false", default.stratify),
        binarize=get_value(section, "binarize", "dataset", problems, lambda v: isinstance(v, bool),
                        "true or false", default.binarize),
    )


def parse_seeds(value, problems) -> tuple[int, ...]:
    expected = "a positive count of seeds (0, 1, ...) or a non-empty list of distinct integers"
    if value is REQUIRED:
        problems.add("seeds", expected + "; the key is missing")
        return ()
    if positive_int(value):
        return tuple(range(value))
    if isinstance(value, list) and value and all(is_int(s) and s >= 0 for s in value):
        duplicates = sorted({s for s in value if value.count(s) > 1})
        if duplicates:
            problems.add("seeds", "distinct seeds", f"{', '.join(map(str, duplicates))} more than once", raw=True)
        return tuple(value)
    problems.add("seeds", expected, value)
    return ()


TRAINING_FIELDS = ("epochs", "batch_size", "optimizer", "loss", "eval_batch_size", "steps_per_execution",
                   "jit_compile", "deterministic", "steps", "eval_every_steps", "save_model", "weight_decay_on",
                   "reuse_compiled", "fused_steps", "data_order")


def parse_training(data, problems) -> TrainingConfig | None:
    section = get_section(data, "training", TRAINING_FIELDS, problems)
    if section is None:
        return None
    optimizer = _parse_optimizer(section, problems)
    default = TrainingConfig
    epochs, steps, every = _parse_length(section, problems)
    return TrainingConfig(
        epochs=epochs,
        batch_size=get_value(section, "batch_size", "training", problems, positive_int, "a positive integer"),
        optimizer=optimizer,
        loss=get_value(section, "loss", "training", problems, lambda v: v in LOSSES,
                    f"one of {', '.join(LOSSES)}", default.loss),
        eval_batch_size=get_value(section, "eval_batch_size", "training", problems, positive_int,
                               "a positive integer", default.eval_batch_size),
        steps_per_execution=get_value(section, "steps_per_execution", "training", problems, positive_int,
                                   "a positive integer", default.steps_per_execution),
        jit_compile=get_value(section, "jit_compile", "training", problems, lambda v: isinstance(v, bool),
                           "true or false", default.jit_compile),
        deterministic=get_value(section, "deterministic", "training", problems,
                             lambda v: isinstance(v, bool), "true or false", default.deterministic),
        steps=steps,
        eval_every_steps=every,
        save_model=get_value(section, "save_model", "training", problems, lambda v: isinstance(v, bool),
                             "true (save model.keras in each trial's folder) or false", default.save_model),
        weight_decay_on=get_value(section, "weight_decay_on", "training", problems, lambda v: v in WEIGHT_DECAY_GROUPS,
                                  f"one of {', '.join(WEIGHT_DECAY_GROUPS)} (the variables the optimizer's "
                                  "weight_decay reaches)", default.weight_decay_on),
        reuse_compiled=get_value(section, "reuse_compiled", "training", problems, lambda v: isinstance(v, bool),
                                 "true (trials of one network share its compiled functions) or false",
                                 default.reuse_compiled),
        fused_steps=get_value(section, "fused_steps", "training", problems, lambda v: isinstance(v, bool),
                              "true (TensorFlow with XLA: each execution's steps in one XLA loop) or false",
                              default.fused_steps),
        data_order=get_value(section, "data_order", "training", problems, lambda v: v in DATA_ORDERS,
                             f"one of {', '.join(DATA_ORDERS)} (a new permutation every epoch, the first one "
                             "repeated, or Keras's own fit order)", default.data_order),
    )


def _parse_length(section, problems) -> tuple[int | None, int | None, int | None]:
    """(epochs, steps, eval_every_steps): a trial runs for epochs, or for steps."""
    if "steps" not in section and "eval_every_steps" not in section:
        if "epochs" not in section:
            problems.add("training.epochs", "a positive integer (or training.steps with "
                         "training.eval_every_steps); the key is missing")
            return None, None, None
        return get_value(section, "epochs", "training", problems, positive_int, "a positive integer"), None, None
    if "epochs" in section:
        problems.add("training.epochs", "no epochs when training.steps is given (a trial runs either for "
                     "epochs or for steps)", section["epochs"])
    steps = get_value(section, "steps", "training", problems, positive_int,
                   "a positive integer (with eval_every_steps: step mode)")
    every = get_value(section, "eval_every_steps", "training", problems, positive_int,
                   "a positive integer (with steps: step mode)")
    return None, steps, every


def _parse_optimizer(training: dict, problems) -> OptimizerConfig | None:
    key = "training.optimizer"
    value = training.get("optimizer", REQUIRED)
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        received = () if value is REQUIRED else (value,)
        problems.add(key, "a mapping with name and learning_rate" + ("; the key is missing" if not received else ""),
                     *received)
        return None
    name = get_value(value, "name", key, problems, lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}")
    if name is None:
        return None
    check_keys(value, ("name",) + OPTIMIZERS[name], key, problems)
    params = {k: v for k, v in value.items() if k in OPTIMIZERS[name]}
    get_value(value, "learning_rate", key, problems, lambda v: is_number(v) and v > 0, "a positive number")
    for param, setting in params.items():
        _check_optimizer_param(f"{key}.{param}", param, setting, problems)
    return OptimizerConfig(name, params)


def _check_optimizer_param(key, param, value, problems):
    if param in _BOOLEAN_PARAMS:
        if not isinstance(value, bool):
            problems.add(key, "true or false", value)
    elif param in _FRACTION_PARAMS:
        if not (is_number(value) and 0 <= value < 1):
            problems.add(key, "a number in [0, 1)", value)
    elif param != "learning_rate" and not (is_number(value) and value >= 0):
        problems.add(key, "a non-negative number", value)


def parse_targets(value, problems) -> tuple[float, ...]:
    expected = "a non-empty list of validation accuracies in (0, 1], e.g. [0.97, 0.98]"
    if is_number(value):
        value = [value]
    if value is REQUIRED or not isinstance(value, list) or not value:
        problems.add("targets", expected + ("; the key is missing" if value is REQUIRED else ""),
                     *(() if value is REQUIRED else (value,)))
        return ()
    for i, target in enumerate(value):
        if not (is_number(target) and 0 < target <= 1):
            problems.add(f"targets[{i}]", "a number in (0, 1]", target)
    if len(set(value)) < len(value):
        problems.add("targets", "distinct targets", value)
    return tuple(sorted(float(t) for t in value if is_number(t)))
