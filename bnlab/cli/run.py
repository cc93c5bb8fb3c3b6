"""`bnlab run`: the resolved config, the backend chosen before Keras loads, `run_experiment`, the summary."""

from __future__ import annotations

import contextlib
import os
import signal

from bnlab.cli.dry_run import print_dry_run
from bnlab.cli.output import console, fail
from bnlab.common.backends import missing_backend
from bnlab.config import ConfigError, ExperimentConfig, load_config
from bnlab.config.loader import merge_overrides


def run_command(args) -> int:
    config = resolved_config(args)
    if args.dry_run:
        return print_dry_run(config)
    if config.backend is not None:
        # Keras reads KERAS_BACKEND once, when it is first imported: set it before anything does
        os.environ["KERAS_BACKEND"] = config.backend

    # TensorFlow's C++ start-up chatter (CUDA probing on CPU machines) would bury the progress
    # display; a user who sets TF_CPP_MIN_LOG_LEVEL keeps their own choice.
    from bnlab.common.startup import import_keras_quietly

    import_keras_quietly()  # before run_experiment's modules import Keras
    return _train_and_summarize(config, args.no_progress)


def resolved_config(args) -> ExperimentConfig:
    """The config `run` trains: the file, the options and KEY=VALUE overrides, --variants; validated.

    Raises:
        ConfigError: a problem of the file or the command line, or the config's backend is
            not installed here.
    """
    config = load_config(args.config, merge_overrides(_option_overrides(args), args.overrides))
    if args.variants is not None:
        config = config.with_variants(args.variants)
    if config.backend is not None:
        problem = missing_backend(config.backend)
        if problem:
            raise ConfigError([problem])
    return config


def _option_overrides(args) -> dict:
    """The config keys the `run` options set; an option not given leaves the config's value."""
    overrides = {
        "training.epochs": args.epochs,
        "seeds": args.seeds,
        "training.batch_size": args.batch_size,
        "output_dir": args.out,
        "backend": args.backend,
        "tracking.mlflow": args.mlflow or None,
        "tracking.tensorboard": args.tensorboard or None,
        "executor.name": args.executor,
        "executor.scheduler": args.scheduler,
        "executor.workers": args.workers,
    }
    return {key: value for key, value in overrides.items() if value is not None}


def _train_and_summarize(config: ExperimentConfig, no_progress: bool) -> int:
    """`run_experiment`, then the summary table; a run's errors as one line and an exit code."""
    from bnlab.analysis.summary import summary_table
    from bnlab.execution.outcomes import ExecutorError
    from bnlab.runs.experiment import run_experiment
    from bnlab.runs.folder import RunFolderError
    from bnlab.runs.progress import NullProgress, RichProgress
    from bnlab.runs.results import load_results

    try:
        with terminate_as_interrupt():
            run_dir = run_experiment(config, progress=NullProgress() if no_progress else RichProgress())
    except (RunFolderError, ExecutorError) as error:  # a folder in use or unwritable: 2; the executor failed: 1
        return fail(error, 2 if isinstance(error, RunFolderError) else 1)
    except KeyboardInterrupt as stop:
        how, code = ("terminated (SIGTERM)", 143) if isinstance(stop, Terminated) else ("interrupted", 130)
        return fail(f"{how}. Finished trials are saved in {config.output_dir}; "
                    "run the same command again to resume.", code)
    results = load_results(run_dir)
    terminal = console()
    terminal.print(summary_table(results))
    machine = results.metadata
    terminal.print(f"Results in {run_dir} (Keras {machine.get('keras')}, {machine.get('backend')} "
                   f"{machine.get('backend_version')}, accelerator: {machine.get('accelerator')})")
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM received: `kill`, `timeout`, a job scheduler's stop. A KeyboardInterrupt, so that
    `run_experiment` stops as on Ctrl-C: finished trials kept, the run marked interrupted."""


@contextlib.contextmanager
def terminate_as_interrupt():
    """Within the block, SIGTERM raises `Terminated` instead of killing the process on the spot.

    Only the main thread may set signal handlers: called from another one, SIGTERM is left as it is.
    """
    def stop(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
