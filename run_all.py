"""LKSBench: run the benchmark grid, list what is registered, or rebuild the report.

python run_all.py            # the quick suite on embedded data, then tables and plots
python run_all.py --help     # every flag
"""

import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
