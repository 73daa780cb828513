"""Score reader-study answer sheets against the answer key.

  python launch/score_readers.py work/readers/key/answer_key.csv answers-*.csv [--out DIR]

Writes scores.md and scores.json (default: beside the key): accuracy per
reader and resolution with a Wilson interval and a binomial test against
guessing, AUC of the confidence-signed answers, and agreement between readers.
The logic is in medgan/study/readers.py and medgan/eval/reader_study.py.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # without pip install -e

from medgan.study import readers  # noqa: E402

if __name__ == "__main__":
    sys.exit(readers.main(sys.argv[1:]))
