"""Times bnlab's epoch against plain Keras code and the matmul floor: `bnlab bench` as a script.

Usage: python benchmarks/bench_epoch.py [--epochs 3] [--quick] [--explore] [--out benchmarks/results]
"""

import sys

from bnlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
