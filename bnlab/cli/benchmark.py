"""`bnlab bench`: bnlab's epoch timed against plain Keras and the matmul floor."""

from __future__ import annotations

from bnlab.cli.output import console, fail


def bench_command(args) -> int:
    from bnlab.common.startup import import_keras_quietly

    import_keras_quietly()  # as `run` does: the files record the backend's version, without its start-up lines
    from bnlab.bench import BenchError, bench_table, run_benchmark, run_study_rounds, study_table

    terminal = console()
    try:
        result = run_benchmark(args.out, epochs=args.epochs, quick=args.quick,
                               backends=args.backends, explore=args.explore, rounds=args.rounds)
        terminal.print(bench_table(result))
        paths = result.paths
        if args.studies:
            studies = run_study_rounds(args.studies, rounds=args.rounds, out_dir=args.out)
            terminal.print(study_table(studies))
            paths = paths + studies.paths
    except BenchError as error:
        return fail(error, 2)
    terminal.print("Results in " + ", ".join(str(path) for path in paths))
    return 0
