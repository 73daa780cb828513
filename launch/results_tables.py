"""Print the RESULTS.md tables of a sweep's committed points.

  python launch/results_tables.py results/cpu_samples/points

Point rows, diagnostics rows (points with an audit) and per-class rows, each
made from a committed results.json, so that RESULTS.md holds what the points
hold (tests/test_results.py rebuilds every row). The logic is in
medgan/study/results_tables.py.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # without pip install -e

from medgan.study import results_tables  # noqa: E402

if __name__ == "__main__":
    sys.exit(results_tables.main(sys.argv[1:]))
