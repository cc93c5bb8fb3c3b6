"""The `bnlab` command: arguments -> load_config -> run_experiment -> summary, and the other commands.

It holds what a command line needs and no more: the parser, pointing Keras at the chosen backend before
anything imports it, calls into the library (`run_experiment`, `write_report`, `seed_plan`, `list_runs`,
`run_benchmark`), checks of the `plan-seeds` options, and printing: results as tables, errors as one
`bnlab: ...` line with an exit code (2 bad input, 1 executor failed, 130 interrupted)."""

from __future__ import annotations

import argparse
import os
import sys

from bnlab.common.backends import missing_backend
from bnlab.config import ConfigError, list_configs, load_config


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `bnlab` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.command(args)
    except ConfigError as error:
        for line in error.problems:
            print(f"bnlab: {line}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bnlab", description="Experiments on batch normalization in Keras.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_run(commands)
    report = commands.add_parser("report", help="write report.md and figures into a run folder")
    report.add_argument("run_dir", help="a run folder, e.g. runs/placement")
    report.add_argument("--baseline", default="no_bn", help="variant label to compare against (default no_bn)")
    report.set_defaults(command=_report)
    _add_plan_seeds(commands)
    runs = commands.add_parser("runs", help="list run folders with their config, date and status")
    runs.add_argument("root", nargs="?", default="runs", help="folder holding run folders (default: runs)")
    runs.set_defaults(command=_runs)
    commands.add_parser("variants", help="list the registered model variants").set_defaults(command=_variants)
    commands.add_parser("configs", help="list the named experiment configs").set_defaults(command=_configs)
    _add_bench(commands)
    return parser


def _add_run(commands) -> None:
    run = commands.add_parser("run", help="train every variant x seed of a named config")
    run.add_argument("config", help=f"a config name ({', '.join(list_configs())}) or a YAML file")
    run.add_argument("--epochs", type=int, help="override training.epochs")
    run.add_argument("--seeds", type=_seeds, help="a count (3 = seeds 0,1,2) or explicit seeds: 0,4,7 (one seed: 7,)")
    run.add_argument("--variants", type=_names, help="comma-separated labels or variant names")
    run.add_argument("--batch-size", type=int, help="override training.batch_size")
    run.add_argument("--out", help="run folder (default: the config's output_dir)")
    run.add_argument("--backend", help="Keras backend: tensorflow, jax or torch (default: the config's, else Keras's)")
    run.add_argument("--mlflow", action="store_true", help="also log each trial to MLflow (the extra mlflow)")
    run.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs per trial")
    run.add_argument("--executor",
                     help="where trials run: local (one after another, the default) or dask (the extra dask)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="dask: a running scheduler, e.g. tcp://HOST:8786 (default: a LocalCluster)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="dask LocalCluster: Dask workers, one process and one thread each (default 2)")
    run.add_argument("--no-progress", action="store_true", help="no progress display")
    run.set_defaults(command=_run)


def _add_plan_seeds(commands) -> None:
    plan = commands.add_parser("plan-seeds", help="seeds a paired comparison needs, from a run's seed-to-seed spread")
    plan.add_argument("run_dir", help="a finished run folder, e.g. docs/placement-run")
    plan.add_argument("--effect", type=float, required=True,
                      help="the smallest true difference worth detecting, in the figure's units (0.002: 0.2 points)")
    plan.add_argument("--figure", default="test_accuracy", help="a per-trial figure (default test_accuracy)")
    plan.add_argument("--baseline", default="no_bn", help="variant label or name to compare against (default no_bn)")
    plan.add_argument("--power", type=float, default=0.8, help="wanted power of the paired t-test (default 0.8)")
    plan.set_defaults(command=_plan_seeds)


def _add_bench(commands) -> None:
    bench = commands.add_parser("bench", help="time bnlab's epoch against plain Keras and the matmul floor")
    bench.add_argument("--epochs", type=_positive, default=3,
                       help="timed epochs per setting, after one warm-up (default 3)")
    bench.add_argument("--quick", action="store_true",
                       help="a 1,024-image slice: checks the code paths, times mean little")
    bench.add_argument("--backends", type=_names, help="backends for the runner rows (default: every installed one)")
    bench.add_argument("--rounds", type=_positive, default=1,
                       help="run every setting this many times, interleaved, and pool the epochs (default 1)")
    bench.add_argument("--explore", action="store_true",
                       help="also time other execution settings of a bare fit "
                            "(TensorFlow; JAX's XLA options when JAX is benchmarked)")
    bench.add_argument("--out", default="benchmarks/results",
                       help="folder for the CSV and JSON (default benchmarks/results)")
    bench.set_defaults(command=_bench)


def _seeds(text: str):
    parts = [p for p in text.split(",") if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or comma-separated integers, received {text!r}") from None
    return values[0] if len(values) == 1 and "," not in text else values


def _positive(text: str) -> int:
    if not text.strip().isdecimal() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}")
    return int(text)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _run(args) -> int:
    config = load_config(args.config, _run_overrides(args))
    if args.variants is not None:
        config = config.with_variants(args.variants)
    if config.backend is not None:
        _select_backend(config.backend)

    # TensorFlow's C++ start-up chatter (CUDA probing on CPU machines) would bury the progress
    # display; a user who sets TF_CPP_MIN_LOG_LEVEL keeps their own choice.
    from bnlab.common.startup import import_keras_quietly

    import_keras_quietly()  # before run_experiment's modules import Keras
    return _train_and_summarize(config, args.no_progress)


def _run_overrides(args) -> dict:
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


def _train_and_summarize(config, no_progress: bool) -> int:
    """`run_experiment`, then the summary table; a run's errors as one line and an exit code."""
    from bnlab.analysis.summary import summary_table
    from bnlab.execution.outcomes import ExecutorError
    from bnlab.runs.experiment import run_experiment
    from bnlab.runs.folder import RunFolderError
    from bnlab.runs.progress import NullProgress, RichProgress
    from bnlab.runs.results import load_results

    try:
        run_dir = run_experiment(config, progress=NullProgress() if no_progress else RichProgress())
    except (RunFolderError, ExecutorError) as error:  # a folder in use or unwritable: 2; the executor failed: 1
        return _failed(error, 2 if isinstance(error, RunFolderError) else 1)
    except KeyboardInterrupt:
        return _failed(f"interrupted. Finished trials are saved in {config.output_dir}; "
                       "run the same command again to resume.", 130)
    console = _console()
    console.print(summary_table(load_results(run_dir)))
    console.print(f"Results in {run_dir}")
    return 0


def _select_backend(backend: str) -> None:
    """Point Keras at the backend before anything imports Keras (it reads KERAS_BACKEND once)."""
    problem = missing_backend(backend)
    if problem:
        raise ConfigError([problem])
    os.environ["KERAS_BACKEND"] = backend


def _variants(args) -> int:
    from bnlab.common.startup import import_keras_quietly
    from bnlab.models.variants import VARIANTS

    import_keras_quietly()
    from bnlab.models.builders import build_model

    rows = []
    for name, variant in sorted(VARIANTS.items()):
        model = build_model(name)
        trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
        total = model.count_params()
        rows.append((name, variant.summary, f"{total:,}", f"{trainable:,}", f"{total - trainable:,}"))
    _print_table("bnlab variants (784-300-100-10 MLP)", ("name", "what", "params total", "trainable",
                                                        "non-trainable"), rows)
    return 0


def _console():
    """rich's console; in a log file or a pipe 200 columns wide, not squeezing tables into 80."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=200)


def _print_table(title: str, headings, rows) -> None:
    from rich.table import Table

    table = Table(title=title)
    for heading in headings:
        table.add_column(heading)
    for row in rows:
        table.add_row(*row)
    _console().print(table)


def _report(args) -> int:
    from bnlab.report.write import write_report

    try:
        path = write_report(args.run_dir, baseline=args.baseline)
    except (FileNotFoundError, ValueError) as error:
        return _failed(error, 2)
    print(f"Report written: {path}")
    return 0


def _plan_seeds(args) -> int:
    from bnlab.analysis.comparisons import seed_plan
    from bnlab.analysis.pairing import baseline_pairs
    from bnlab.runs.results import load_results

    try:
        results = load_results(args.run_dir)
        table = _checked_plan(results, args, baseline_pairs(results, args.baseline), seed_plan)
    except (FileNotFoundError, ValueError) as error:
        return _failed(error, 2)
    level = results.config.analysis.alpha
    print(f"Seeds for {args.power:.0%} power to detect a true mean difference of {args.effect:g} in {args.figure} "
          f"(two-sided paired t-test at level {level:g}; spread of the paired differences in {args.run_dir}):")
    for row in table.itertuples():
        needed = "more than 1,000" if _is_missing(row.seeds_needed) else int(row.seeds_needed)
        print(f"  {row.variant} vs {row.baseline}: std {row.std:.4g} over {row.n} pairs -> {needed} seeds")
    return 0


def _checked_plan(results, args, pairs, seed_plan):
    if args.effect <= 0 or not 0 < args.power < 1:
        raise ValueError(f"--effect must be positive and --power in (0, 1); received --effect {args.effect:g}, "
                         f"--power {args.power:g}.")
    if args.figure not in results.trials:
        raise ValueError(f"--figure: expected a column of the trials table ({', '.join(results.trials.columns)}); "
                         f"received {args.figure!r}.")
    if not pairs:
        raise ValueError(f"--baseline: no trials of {args.baseline!r} to pair with in {args.run_dir}.")
    return seed_plan(results, pairs, args.figure, args.effect, args.power)


def _runs(args) -> int:
    from bnlab.runs.results import list_runs

    found = list_runs(args.root)
    if found.empty:
        print(f"No run folders under {args.root}.")
        return 0
    rows = [(row.path, row.config, str(row.started or "-"), row.status,
             f"{row.trials_done}/{'?' if _is_missing(row.trials_total) else int(row.trials_total)}")
            for row in found.itertuples()]
    _print_table(f"bnlab runs under {args.root}", ("path", "config", "started", "status", "trials"), rows)
    return 0


def _is_missing(value) -> bool:
    """None or NaN (a figure a table could not give)."""
    return value is None or value != value


def _failed(error, code: int) -> int:
    """Print `error` as the command's one `bnlab: ...` line; return the exit `code`."""
    print(f"bnlab: {error}", file=sys.stderr)
    return code


def _bench(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # as for `run`: keep the table readable
    from bnlab.bench import BenchError, bench_table, run_benchmark

    try:
        result = run_benchmark(args.out, epochs=args.epochs, quick=args.quick,
                               backends=args.backends, explore=args.explore, rounds=args.rounds)
    except BenchError as error:
        return _failed(error, 2)
    console = _console()
    console.print(bench_table(result))
    console.print("Results in " + ", ".join(str(path) for path in result.paths))
    return 0


def _configs(args) -> int:
    print("\n".join(list_configs()))
    return 0
