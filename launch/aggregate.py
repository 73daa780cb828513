"""Collect a sweep's results.json files into a table and the study's figures.

  python launch/aggregate.py work/demo_sweep
  python launch/aggregate.py /runs/chexpert_classes --out /runs/reports/chexpert_classes --strict

Writes aggregate.csv, aggregate.md and relative_auc_vs_{classes,samples,resolution}.png
(a figure whose axis does not vary is skipped, with the reason printed). The logic
and the rules (which files count, how lines are grouped) are in medgan/study/aggregate.py.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # without pip install -e

from medgan.study import aggregate  # noqa: E402

if __name__ == "__main__":
    sys.exit(aggregate.main(sys.argv[1:]))
