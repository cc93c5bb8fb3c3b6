"""The `bnlab` command line: every command and option, and parsing one command line."""

from __future__ import annotations

import argparse

from bnlab import __version__
from bnlab.cli.benchmark import bench_command
from bnlab.cli.compare import compare_command
from bnlab.cli.folders import plan_seeds_command, report_command, runs_command
from bnlab.cli.listing import configs_command, variants_command
from bnlab.cli.run import run_command
from bnlab.cli.values import names, positive, seeds
from bnlab.config import list_configs


def parse_command_line(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed arguments; `run`'s KEY=VALUE overrides may come before, between or after its options.

    argparse matches a command's positionals in one go, at the first of them, so an override
    after an option comes back unrecognized: it joins `overrides` here. Anything else left
    over is the error `parse_args` gives.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "overrides", None) is None or any(item.startswith("-") for item in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def build_parser() -> argparse.ArgumentParser:
    """The `bnlab` parser: each command's function is its `command` default."""
    parser = argparse.ArgumentParser(prog="bnlab", description="Experiments on batch normalization in Keras.")
    parser.add_argument("--version", action="version", version=f"bnlab {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_run(commands)
    report = commands.add_parser("report", help="write report.md and figures into a run folder")
    report.add_argument("run_dir", help="a run folder, e.g. runs/placement")
    report.add_argument("--baseline", default="no_bn", help="variant label to compare against (default no_bn)")
    report.set_defaults(command=report_command)
    _add_plan_seeds(commands)
    _add_compare(commands)
    runs = commands.add_parser("runs", help="list run folders with their config, date and status")
    runs.add_argument("root", nargs="?", default="runs", help="folder holding run folders (default: runs)")
    runs.set_defaults(command=runs_command)
    commands.add_parser("variants", help="list the registered model variants").set_defaults(command=variants_command)
    configs = commands.add_parser("configs", help="list the named experiment configs")
    configs.add_argument("--show", metavar="NAME", help="print the named config's YAML file, comments included")
    configs.set_defaults(command=configs_command)
    _add_bench(commands)
    return parser


def _add_run(commands) -> None:
    run = commands.add_parser("run", help="train every variant x seed of a named config")
    run.add_argument("config", help=f"a config name ({', '.join(list_configs())}) or a YAML file")
    run.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                     help="replace a config value: a dotted key and a YAML value, e.g. "
                          "training.optimizer.learning_rate=0.1 seeds=3 evaluation.modes=[precise_bn]")
    run.add_argument("--epochs", type=int, help="override training.epochs")
    run.add_argument("--seeds", type=seeds, help="a count (3 = seeds 0,1,2) or explicit seeds: 0,4,7 (one seed: 7,)")
    run.add_argument("--variants", type=names, help="comma-separated labels or variant names")
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
    run.add_argument("--dry-run", action="store_true",
                     help="print the resolved config (YAML that `bnlab run` accepts) and the trial count; "
                          "train nothing, write nothing")
    run.set_defaults(command=run_command)


def _add_plan_seeds(commands) -> None:
    plan = commands.add_parser("plan-seeds", help="seeds a paired comparison needs, from a run's seed-to-seed spread")
    plan.add_argument("run_dir", help="a finished run folder, e.g. docs/placement-run")
    plan.add_argument("--effect", type=float, required=True,
                      help="the smallest true difference worth detecting, in the figure's units (0.002: 0.2 points)")
    plan.add_argument("--figure", default="test_accuracy", help="a per-trial figure (default test_accuracy)")
    plan.add_argument("--baseline", default="no_bn", help="variant label or name to compare against (default no_bn)")
    plan.add_argument("--power", type=float, default=0.8, help="wanted power of the paired t-test (default 0.8)")
    plan.set_defaults(command=plan_seeds_command)


def _add_compare(commands) -> None:
    compare = commands.add_parser("compare", help="final accuracies of several runs, and their differences")
    compare.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                         help="run folders, e.g. runs/placement runs/placement-lr0.1; the first is the baseline")
    compare.add_argument("--out", metavar="FOLDER", help="also write FOLDER/compare.md and one figure")
    compare.set_defaults(command=compare_command)


def _add_bench(commands) -> None:
    bench = commands.add_parser("bench", help="time bnlab's epoch against plain Keras and the matmul floor")
    bench.add_argument("--epochs", type=positive, default=3,
                       help="timed epochs per setting, after one warm-up (default 3)")
    bench.add_argument("--quick", action="store_true",
                       help="a 1,024-image slice: checks the code paths, times mean little")
    bench.add_argument("--backends", type=names, help="backends for the runner rows (default: every installed one)")
    bench.add_argument("--rounds", type=positive, default=1,
                       help="run every setting this many times, interleaved, and pool the epochs (default 1)")
    bench.add_argument("--explore", action="store_true",
                       help="also time other execution settings of a bare fit "
                            "(TensorFlow; JAX's XLA options when JAX is benchmarked)")
    bench.add_argument("--studies", type=names, metavar="CONFIGS",
                       help="also time whole studies, e.g. quickstart,lr_sweep: each `bnlab run CONFIG` over the "
                            "same rounds, its wall time against the sum of its steady training epochs")
    bench.add_argument("--out", default="benchmarks/results",
                       help="folder for the CSV and JSON (default benchmarks/results)")
    bench.set_defaults(command=bench_command)
