"""The commands that list what bnlab offers: `variants` and `configs` (and `configs --show NAME`)."""

from __future__ import annotations

import sys

from bnlab.cli.output import print_table
from bnlab.config import ConfigError, list_configs, resolve_config_path


def variants_command(args) -> int:
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
    print_table("bnlab variants (784-300-100-10 MLP)", ("name", "what", "params total", "trainable",
                                                       "non-trainable"), rows)
    return 0


def configs_command(args) -> int:
    """The config names, one a line; with --show NAME that config's file as it is, comments included."""
    if args.show is None:
        print("\n".join(list_configs()))
        return 0
    if args.show not in list_configs():
        raise ConfigError([f"configs --show: expected a config name ({', '.join(list_configs())}), "
                           f"received {args.show!r}."])
    sys.stdout.write(resolve_config_path(args.show).read_text(encoding="utf-8"))
    return 0
