"""The names of what a job writes in its work directory, its statuses, and the skip-if-done rule.

Every job writes its answer last (`RESULT_FILE`, or `DATA_CARD_JSON` for
`synthesize`), so the presence of that file means "finished" and a job run
again with the same work directory returns it without doing anything
(docs/ARCHITECTURE.md, "Work directories"). Defined once here and imported by
the jobs, the study code and the launchers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from medgan import fileio

RESULT_FILE = "results.json"  # every job's answer, written last
MANIFEST_FILE = "manifest.json"  # a fold (real) or a synthetic cohort's splits
LOG_FILE = "log.txt"  # INFO logs of the job (the console shows stages and progress)

# train_classifier
SCORES_FILE = "test_scores.npz"  # image_ids, labels, scores, class_names of the real test split
PARAMS_DIR = "params"  # the selected network: features for the Fréchet distance and audits

# train_gan
GENERATOR_DIR = "generator"  # the selected EMA generator's params
SAMPLES_DIR = "samples"  # fixed-latent grids per evaluation

# synthesize
DATASET_DIR = "dataset"  # prepared shards of the synthetic cohort
DATA_CARD_JSON = "data_card.json"  # written last by synthesize
DATA_CARD_MD = "DATA_CARD.md"
LABELS_CSV = "labels.csv"
PREVIEW = "preview.png"

# audit
AUDIT_REPORT_FILE = "audit.md"

# benchmark
REPORT_FILE = "report.md"
FIGURES_DIR = "figures"
STAGE_TIMES_FILE = "stage_seconds.json"  # wall seconds per stage, summed over the runs that worked on it

# How a job or a training loop ended.
FINISHED, EARLY_STOPPED, PREEMPTED = "finished", "early_stopped", "preempted"


def finished_result(workdir: str, describe: Callable[[dict], str], result_file: str = RESULT_FILE) -> dict | None:
    """The result of a finished earlier run of this job in `workdir`, announced on the console; else None."""
    path = os.path.join(workdir, result_file)
    if not os.path.exists(path):
        return None
    result: dict[str, Any] = fileio.read_json(path)
    print(f"{path} exists: {describe(result)}")
    return result
