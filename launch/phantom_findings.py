"""How visible the phantoms' findings are: the table and pictures of BENCHMARKS.md.

  python launch/phantom_findings.py --out=results/phantom_findings [--conspicuity=0.6]

The logic is in medgan/study/phantom_findings.py.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # without pip install -e

from medgan.study import phantom_findings  # noqa: E402

if __name__ == "__main__":
    sys.exit(phantom_findings.main(sys.argv[1:]))
